//! One suite for every `Store` method, run against SQLite and PostgreSQL alike.

use serde_json::json;
use tocsin::domain::{
    organization::Organization,
    token::{hash_token, Ability, NewToken},
    webhook::{parse_spec, Webhook},
    Timestamp,
};

use crate::both_backends;
use crate::helpers::{minimal_webhook, open_store, Backend};

async fn store_ping_and_bootstrap_once(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    store.ping().await.unwrap();
    assert_eq!(store.installation_organization().await.unwrap(), None);

    let org = Organization::new("First");
    let owner = NewToken::generate(&org.id, "owner", Ability::ALL.to_vec());
    assert!(store.bootstrap(&org, &owner).await.unwrap());
    assert_eq!(
        store.installation_organization().await.unwrap(),
        Some(org.clone())
    );

    let late = Organization::new("Second");
    let late_owner = NewToken::generate(&late.id, "owner", Ability::ALL.to_vec());
    assert!(
        !store.bootstrap(&late, &late_owner).await.unwrap(),
        "only the first start bootstraps"
    );
    assert_eq!(store.installation_organization().await.unwrap(), Some(org));
    assert!(
        store
            .token_by_hash(&late_owner.hash)
            .await
            .unwrap()
            .is_none(),
        "nothing of the loser is kept"
    );
    assert!(store.token_by_hash(&owner.hash).await.unwrap().is_some());
}

async fn store_tokens(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let a = NewToken::generate(&org.id, "a", vec![Ability::Read, Ability::Ingest]);
    let b = NewToken::generate(&org.id, "b", vec![Ability::Admin]);
    store.create_token(&a).await.unwrap();
    store.create_token(&b).await.unwrap();

    let found = store
        .token_by_hash(&hash_token(&a.plaintext))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, a.token);
    assert!(store
        .token_by_hash(&hash_token("tocsin_unknown"))
        .await
        .unwrap()
        .is_none());
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed, vec![a.token.clone(), b.token.clone()]);

    let at = Timestamp::from_micros(1_800_000_000_000_000);
    assert!(store.revoke_token(&a.token.id, at).await.unwrap());
    assert!(
        !store.revoke_token(&a.token.id, at).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_token("tok_missing", at).await.unwrap());
    let revoked = store.token_by_hash(&a.hash).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
}

async fn store_webhooks(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    let other = Organization::new("Other");
    store.create_organization(&org).await.unwrap();
    store.create_organization(&other).await.unwrap();

    let mut hooks = Vec::new();
    for i in 0..3 {
        let spec = parse_spec(&minimal_webhook(&format!("hook {i}"))).unwrap();
        let hook = Webhook::new(&org.id, "tok_author", spec);
        store.insert_webhook(&hook).await.unwrap();
        hooks.push(hook);
    }
    let foreign = Webhook::new(
        &other.id,
        "tok_x",
        parse_spec(&minimal_webhook("foreign")).unwrap(),
    );
    store.insert_webhook(&foreign).await.unwrap();

    assert_eq!(
        store.webhook(&org.id, &hooks[1].id).await.unwrap().as_ref(),
        Some(&hooks[1])
    );
    assert_eq!(
        store.webhook(&org.id, &foreign.id).await.unwrap(),
        None,
        "scoped to the organization"
    );

    let page = store.list_webhooks(&org.id, 2, 1).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.items, hooks[1..3].to_vec());

    let mut body = minimal_webhook("renamed");
    body["max_retry"] = json!(7);
    let spec = parse_spec(&body).unwrap();
    let at = Timestamp::from_micros(hooks[0].updated_at.as_micros() + 5);
    let updated = store
        .update_webhook(&org.id, &hooks[0].id, &spec, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.spec, spec);
    assert_eq!(updated.updated_at, at);
    assert_eq!(updated.created_at, hooks[0].created_at);
    assert!(store
        .update_webhook(&other.id, &hooks[0].id, &spec, at)
        .await
        .unwrap()
        .is_none());

    let rotated = store
        .set_webhook_secret(&org.id, &hooks[0].id, "whsec_new", at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, "whsec_new");
    assert!(store
        .set_webhook_secret(&other.id, &hooks[0].id, "whsec_x", at)
        .await
        .unwrap()
        .is_none());

    assert!(!store.delete_webhook(&other.id, &hooks[0].id).await.unwrap());
    assert!(store.delete_webhook(&org.id, &hooks[0].id).await.unwrap());
    assert!(!store.delete_webhook(&org.id, &hooks[0].id).await.unwrap());
    assert_eq!(store.list_webhooks(&org.id, 10, 0).await.unwrap().total, 2);
    assert_eq!(
        store.list_webhooks(&other.id, 10, 0).await.unwrap().total,
        1
    );
}

both_backends!(store_ping_and_bootstrap_once, store_tokens, store_webhooks);
