//! One suite for every `Store` method, run against SQLite and PostgreSQL alike.

use serde_json::json;
use tocsin::domain::{
    audit::{token_created, webhook_object, Actor, AuditEntry},
    organization::Organization,
    token::{hash_token, Ability, NewToken},
    webhook::{parse_spec, Webhook},
    Timestamp,
};

use tocsin::store::AuditQuery;

use crate::both_backends;

/// An audit entry for a webhook write made in a test.
fn entry(org: &tocsin::domain::ids::OrganizationId, hook: &str) -> AuditEntry {
    AuditEntry::new(
        org,
        &Actor::cli(),
        "webhook.updated",
        webhook_object(hook, "x"),
        Vec::new(),
    )
}
use crate::helpers::{minimal_webhook, open_store, Backend};

/// An organization with one minimal webhook named `name`, stored.
async fn org_with_webhook(store: &dyn tocsin::store::Store, name: &str) -> (Organization, Webhook) {
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let hook = Webhook::new(&org.id, "tok", parse_spec(&minimal_webhook(name)).unwrap());
    store
        .insert_webhook(&hook, &entry(&org.id, &hook.id))
        .await
        .unwrap();
    (org, hook)
}

/// Intake's admission when this node takes work at once under `lease` (nothing parked).
fn leasing(lease: tocsin::store::Lease) -> tocsin::store::Admission {
    tocsin::store::Admission {
        lease: Some(lease),
        park_urls: Vec::new(),
        park_until: Timestamp::now(),
    }
}

/// A lease held by `owner` for another minute.
fn for_a_minute(owner: &str) -> tocsin::store::Lease {
    tocsin::store::Lease {
        owner: owner.into(),
        until: Timestamp::now().plus(std::time::Duration::from_secs(60)),
    }
}

/// `n` events, each of its own incident (inc-0, inc-1, …) with one delivery to one URL.
fn one_per_incident(
    org: &Organization,
    hook: &Webhook,
    n: usize,
) -> Vec<(
    tocsin::domain::event::Event,
    Vec<tocsin::domain::delivery::NewDelivery>,
)> {
    (0..n)
        .map(|i| {
            let (e, d) = crate::helpers::event_and_delivery(
                &org.id,
                &hook.id,
                &format!("inc-{i}"),
                "https://receiver.example/hook",
            );
            (e, vec![d])
        })
        .collect()
}

async fn store_ping_and_bootstrap_once(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    store.ping().await.unwrap();
    assert_eq!(store.installation_organization().await.unwrap(), None);

    let org = Organization::new("First");
    let owner = NewToken::generate(&org.id, "owner", Ability::ALL.to_vec());
    assert!(store.bootstrap(&org, &owner, None).await.unwrap());
    assert_eq!(
        store.installation_organization().await.unwrap(),
        Some(org.clone())
    );

    let late = Organization::new("Second");
    let late_owner = NewToken::generate(&late.id, "owner", Ability::ALL.to_vec());
    assert!(
        !store.bootstrap(&late, &late_owner, None).await.unwrap(),
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
    for t in [&a, &b] {
        store
            .create_token(t, &token_created(&t.token, &Actor::cli()))
            .await
            .unwrap();
    }

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
    let listed = store.list_tokens(None).await.unwrap();
    assert_eq!(listed, vec![a.token.clone(), b.token.clone()]);
    assert_eq!(store.list_tokens(Some(&org.id)).await.unwrap().len(), 2);
    assert!(store
        .list_tokens(Some(&"org_other".into()))
        .await
        .unwrap()
        .is_empty());

    let at = Timestamp::from_micros(1_800_000_000_000_000);
    let cli = Actor::cli();
    assert!(
        store
            .revoke_token(Some(&"org_other".into()), &a.token.id, at, &cli)
            .await
            .unwrap()
            .is_none(),
        "another organization's token is not found"
    );
    assert!(store
        .revoke_token(Some(&org.id), &a.token.id, at, &cli)
        .await
        .unwrap()
        .is_some());
    assert!(
        store
            .revoke_token(None, &a.token.id, at, &cli)
            .await
            .unwrap()
            .is_none(),
        "already revoked"
    );
    assert!(store
        .revoke_token(None, "tok_missing", at, &cli)
        .await
        .unwrap()
        .is_none());
    let audit = store
        .list_audit(
            &org.id,
            &AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|(_, e)| e.action.as_str()).collect();
    assert_eq!(actions, ["token.revoked", "token.created", "token.created"]);

    // Last use is recorded, and not again within the minute.
    store.touch_token(&b.token.id, at).await.unwrap();
    let later = Timestamp::from_micros(at.as_micros() + 30_000_000);
    store.touch_token(&b.token.id, later).await.unwrap();
    let b_now = store.token_by_hash(&b.hash).await.unwrap().unwrap();
    assert_eq!(b_now.last_used_at, Some(at));
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
        store
            .insert_webhook(&hook, &entry(&org.id, &hook.id))
            .await
            .unwrap();
        hooks.push(hook);
    }
    let foreign = Webhook::new(
        &other.id,
        "tok_x",
        parse_spec(&minimal_webhook("foreign")).unwrap(),
    );
    store
        .insert_webhook(&foreign, &entry(&other.id, &foreign.id))
        .await
        .unwrap();

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
        .update_webhook(
            &org.id,
            &hooks[0].id,
            &spec,
            at,
            &entry(&org.id, &hooks[0].id),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.spec, spec);
    assert_eq!(updated.updated_at, at);
    assert_eq!(updated.created_at, hooks[0].created_at);
    assert!(store
        .update_webhook(
            &other.id,
            &hooks[0].id,
            &spec,
            at,
            &entry(&other.id, &hooks[0].id)
        )
        .await
        .unwrap()
        .is_none());

    let previous = tocsin::domain::webhook::PreviousSecret {
        secret: hooks[0].secret.clone(),
        until: Timestamp::from_micros(at.as_micros() + 3_600_000_000),
    };
    let rotated = store
        .set_webhook_secret(
            &org.id,
            &hooks[0].id,
            "whsec_new",
            Some(&previous),
            at,
            &entry(&org.id, &hooks[0].id),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, "whsec_new");
    assert_eq!(rotated.previous_secret.as_ref(), Some(&previous));
    assert_eq!(
        store.webhook(&org.id, &hooks[0].id).await.unwrap().unwrap(),
        rotated,
        "read back with the previous secret"
    );
    assert!(store
        .set_webhook_secret(
            &other.id,
            &hooks[0].id,
            "whsec_x",
            None,
            at,
            &entry(&other.id, &hooks[0].id)
        )
        .await
        .unwrap()
        .is_none());

    let gone = |org: &tocsin::domain::ids::OrganizationId| entry(org, &hooks[0].id);
    assert!(!store
        .delete_webhook(&other.id, &hooks[0].id, &gone(&other.id))
        .await
        .unwrap());
    assert!(store
        .delete_webhook(&org.id, &hooks[0].id, &gone(&org.id))
        .await
        .unwrap());
    assert!(!store
        .delete_webhook(&org.id, &hooks[0].id, &gone(&org.id))
        .await
        .unwrap());
    // One audit entry per write that happened: 3 inserts, update, rotation, delete; none
    // for the writes that found nothing.
    let all = AuditQuery {
        limit: 50,
        ..AuditQuery::default()
    };
    assert_eq!(store.list_audit(&org.id, &all).await.unwrap().len(), 6);
    assert_eq!(store.list_audit(&other.id, &all).await.unwrap().len(), 1);
    assert_eq!(store.list_webhooks(&org.id, 10, 0).await.unwrap().total, 2);
    assert_eq!(
        store.list_webhooks(&other.id, 10, 0).await.unwrap().total,
        1
    );
}

both_backends!(store_ping_and_bootstrap_once, store_tokens, store_webhooks);

/// The SQLite file and its write-ahead log hold secrets: only their owner may read them.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let Some((store, db)) = open_store(Backend::Sqlite).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
}

/// A write transaction that fails part-way leaves nothing behind and the store usable: on
/// SQLite its BEGIN and COMMIT ride on its statements, so the failure must roll it back
/// (the connection is closed and replaced) before the next write.
async fn store_a_failed_write_leaves_nothing_behind(backend: Backend) {
    use tocsin::store::Admission;
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "f").await;
    let event = |incident: &str| crate::helpers::incident_event(&org.id, incident, None);
    let admission = Admission {
        lease: None,
        park_urls: Default::default(),
        park_until: Timestamp::now(),
    };
    let url = "https://receiver.example/hook";
    // Two deliveries with one id: the event, incident and payload rows are written before
    // the deliveries' insert fails on its primary key.
    let doomed = event("inc-doomed");
    let first = crate::helpers::delivery_of(&doomed, &hook.id, url);
    let mut twin = crate::helpers::delivery_of(&doomed, &hook.id, url);
    twin.id = first.id.clone();
    let failed = store
        .accept_events(&[(doomed.clone(), vec![first, twin])], &admission)
        .await;
    assert!(
        failed.is_err(),
        "a repeated delivery id must fail the batch"
    );
    assert_eq!(
        store
            .latest_incident_event(&org.id, "inc-doomed")
            .await
            .unwrap(),
        None,
        "the failed batch's incident and event were rolled back"
    );

    // The next write goes through, on a connection without the failed transaction.
    let fine = event("inc-fine");
    let delivery = crate::helpers::delivery_of(&fine, &hook.id, url);
    store
        .accept_events(&[(fine.clone(), vec![delivery.clone()])], &admission)
        .await
        .unwrap();
    assert_eq!(
        store
            .latest_incident_event(&org.id, "inc-fine")
            .await
            .unwrap()
            .map(|e| e.id),
        Some(fine.id.clone())
    );
    assert!(store
        .delivery(&org.id, &hook.id, &delivery.id)
        .await
        .unwrap()
        .is_some());
}

both_backends!(store_a_failed_write_leaves_nothing_behind);

/// After a write whose answer was lost, the store says which events it holds, with their
/// delivery counts, and gives back the deliveries the writer leased (it never started
/// them) so that they can be claimed at once; another node's leases stay.
async fn store_events_stored_anyway_are_found_and_their_leases_given_back(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "s").await;
    let batch = one_per_incident(&org, &hook, 2);
    store
        .accept_events(&batch[..1], &leasing(for_a_minute("writer")))
        .await
        .unwrap();
    store
        .accept_events(&batch[1..], &leasing(for_a_minute("other")))
        .await
        .unwrap();
    let probe = for_a_minute("probe");
    assert!(store
        .claim_due(&probe, Timestamp::now(), 10)
        .await
        .unwrap()
        .is_empty());

    let (mine, theirs) = (&batch[0].0, &batch[1].0);
    assert!(store
        .stored_anyway("writer", &["evt_never_stored"])
        .await
        .unwrap()
        .is_empty());
    // One id alone (the usual case: a batch of one).
    let found = store
        .stored_anyway("writer", &[mine.id.as_str()])
        .await
        .unwrap();
    assert_eq!(found, [(mine.id.clone(), 1)].into_iter().collect());
    let claimed = store.claim_due(&probe, Timestamp::now(), 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|d| &d.event_id).collect::<Vec<_>>(),
        [&mine.id],
        "only the writer's lease was given back"
    );
    let found = store
        .stored_anyway("writer", &[theirs.id.as_str()])
        .await
        .unwrap();
    assert_eq!(found.get(&theirs.id), Some(&1));
    assert!(store
        .claim_due(&probe, Timestamp::now(), 10)
        .await
        .unwrap()
        .is_empty());

    // The same for deliveries added to a stored event (a resend, a manual trigger), by
    // their own ids; another node's lease on the event's first delivery stays.
    let more = crate::helpers::delivery_of(theirs, &hook.id, "https://receiver.example/more");
    store
        .add_deliveries(
            std::slice::from_ref(&more),
            &leasing(for_a_minute("writer")),
        )
        .await
        .unwrap();
    assert!(store
        .deliveries_stored_anyway("writer", &["dlv_never_stored"])
        .await
        .unwrap()
        .is_empty());
    assert!(
        store
            .claim_due(&probe, Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased by the writer"
    );
    let found = store
        .deliveries_stored_anyway("writer", &[more.id.as_str(), "dlv_never_stored"])
        .await
        .unwrap();
    assert_eq!(found, [more.id.as_str().to_owned()]);
    let claimed = store.claim_due(&probe, Timestamp::now(), 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [more.id.as_str()],
        "only the added delivery's lease was given back"
    );
}

both_backends!(store_events_stored_anyway_are_found_and_their_leases_given_back);

/// A delivery taken back from the parked ones (a refill, a circuit's probe) and then given
/// back unsent (the node restarted or stopped) is due at once. Before, it kept its park's
/// far time (an hour away) and was no longer parked: neither claim found it for that hour
/// (the kill -9 test's two missing deliveries).
async fn store_deliveries_taken_from_parked_and_given_back_are_due_at_once(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "p").await;
    let batch = one_per_incident(&org, &hook, 3);
    store
        .accept_events(&batch, &leasing(for_a_minute("node-a")))
        .await
        .unwrap();
    let ids: Vec<_> = batch.iter().map(|(_, d)| d[0].id.clone()).collect();
    let url = batch[0].1[0].url.clone();
    let an_hour = Timestamp::now().plus(std::time::Duration::from_secs(3600));
    store.park("node-a", &ids, an_hour).await.unwrap();
    let probe = for_a_minute("probe");
    let due = |store: std::sync::Arc<dyn tocsin::store::Store>| async move {
        let mut ids: Vec<String> = store
            .claim_due(&for_a_minute("probe"), Timestamp::now(), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id.as_str().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert!(due(store.clone()).await.is_empty(), "parked for an hour");

    // Each way a lease is given back: a graceful stop (the owner's), a write whose answer
    // was lost (by delivery id), and, on SQLite, a start after a crash (every lease).
    let taken = store.claim_parked(&probe, &url, 3, false).await.unwrap();
    assert_eq!(taken.len(), 3);
    store.release_leases("probe").await.unwrap();
    let mut expected: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
    expected.sort();
    assert_eq!(due(store.clone()).await, expected, "due once given back");

    store.park("probe", &ids, an_hour).await.unwrap();
    store.claim_parked(&probe, &url, 3, false).await.unwrap();
    let one = [ids[0].as_str()];
    assert_eq!(
        store.deliveries_stored_anyway("probe", &one).await.unwrap(),
        one
    );
    assert_eq!(due(store.clone()).await, [ids[0].as_str()]);

    if backend == Backend::Sqlite {
        store.park("probe", &ids, an_hour).await.unwrap();
        store.claim_parked(&probe, &url, 3, false).await.unwrap();
        assert_eq!(store.release_stale_leases().await.unwrap(), 3);
        assert_eq!(due(store.clone()).await, expected, "due after a restart");
    }
}

both_backends!(store_deliveries_taken_from_parked_and_given_back_are_due_at_once);

/// Login failures: an attempt is recorded and read back with the key's others; those from
/// before the window are forgotten as attempts come (the table stays one window's worth);
/// an attempt can be taken back, and an email's failures cleared.
async fn store_login_failures_hold_one_window(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let minute = std::time::Duration::from_secs(60);
    let now = Timestamp::now();
    let old = now.minus(20 * minute);
    let seen = store
        .login_attempt(&["email:a", "ip:1"], old, old.minus(15 * minute))
        .await
        .unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let seen = store
        .login_attempt(&["email:a"], now, now.minus(15 * minute))
        .await
        .unwrap();
    assert_eq!(seen, vec![("email:a".to_owned(), now)]);
    // Read from the beginning of time: the old rows of both keys are gone, not just unread.
    let next = now.plus(std::time::Duration::from_micros(1));
    let mut seen = store
        .login_attempt(&["email:a", "ip:1"], next, Timestamp::from_micros(0))
        .await
        .unwrap();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("email:a".to_owned(), now),
            ("email:a".to_owned(), next),
            ("ip:1".to_owned(), next)
        ]
    );
    store.forget_login_attempt(&["ip:1"], next).await.unwrap();
    store.clear_login_failures("email:a").await.unwrap();
    let later = next.plus(std::time::Duration::from_micros(1));
    let seen = store
        .login_attempt(&["email:a", "ip:1"], later, Timestamp::from_micros(0))
        .await
        .unwrap();
    assert_eq!(
        seen.len(),
        2,
        "only the last attempt's rows remain: {seen:?}"
    );
    // Read without counting, and unlocked with its audit entry.
    let read = |keys: &'static [&'static str]| {
        let store = store.clone();
        async move {
            let mut seen = store
                .login_failures(keys, Timestamp::from_micros(0))
                .await
                .unwrap();
            seen.sort();
            seen
        }
    };
    let both = vec![("email:a".to_owned(), later), ("ip:1".to_owned(), later)];
    assert_eq!(read(&["email:a", "ip:1", "email:b"]).await, both);
    assert_eq!(
        read(&["email:a", "ip:1"]).await,
        both,
        "reading counted nothing"
    );
    assert!(read(&[]).await.is_empty());
    let org = Organization::new("Unlocking");
    store.create_organization(&org).await.unwrap();
    let entry = AuditEntry::new(
        &org.id,
        &Actor::cli(),
        "user.unlocked",
        tocsin::domain::audit::user_object(&tocsin::domain::user::User::new(
            &org.id,
            "a@example.com",
            "A",
            tocsin::domain::user::Role::Viewer,
        )),
        Vec::new(),
    );
    // An attempt at another email from the same address, later: it stays.
    let last = later.plus(std::time::Duration::from_micros(1));
    store
        .login_attempt(&["email:b", "ip:1"], last, Timestamp::from_micros(0))
        .await
        .unwrap();
    store.unlock_login("email:a", &entry).await.unwrap();
    assert_eq!(
        read(&["email:a", "ip:1", "email:b"]).await,
        vec![("email:b".to_owned(), last), ("ip:1".to_owned(), last)],
        "the attempts made with email:a are taken back under ip:1 too"
    );
    // Asked for an email alone, the addresses its attempts came from come with it (all of
    // their failures).
    store
        .login_attempt(
            &["email:c", "ip:1"],
            last.plus(std::time::Duration::from_micros(1)),
            Timestamp::from_micros(0),
        )
        .await
        .unwrap();
    let with_address = read(&["email:b"]).await;
    assert_eq!(
        with_address
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["email:b", "ip:1", "ip:1"],
        "{with_address:?}"
    );
    let query = AuditQuery {
        limit: 10,
        ..AuditQuery::default()
    };
    let audit = store.list_audit(&org.id, &query).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|(_, e)| e.action.as_str()).collect();
    assert_eq!(actions, ["user.unlocked"], "audited with the unlock");
}

both_backends!(store_login_failures_hold_one_window);

/// A batch larger than one statement's chunk of lanes and producer ids: repeats are still
/// found, and every fresh delivery first in its lane is leased, the rest are not.
async fn store_large_batches_read_in_chunks(backend: Backend) {
    use tocsin::store::Admission;
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "c").await;
    let event = |incident: String, producer: String| {
        crate::helpers::incident_event(&org.id, &incident, Some(&producer))
    };
    let url = "https://receiver.example/hook";
    let admission = leasing(for_a_minute("node-a"));
    // inc-0 has a pending delivery already: its lane is busy.
    let early = event("inc-0".into(), "early".into());
    store
        .accept_events(
            &[(
                early.clone(),
                vec![crate::helpers::delivery_of(&early, &hook.id, url)],
            )],
            &Admission {
                lease: None,
                ..admission.clone()
            },
        )
        .await
        .unwrap();
    // 900 events over 900 incidents (more than two chunks of lanes and of producer ids),
    // the last a repeat of the first one's producer id.
    let mut batch: Vec<_> = (0..900)
        .map(|i| {
            let e = event(format!("inc-{i}"), format!("p-{i}"));
            let d = crate::helpers::delivery_of(&e, &hook.id, url);
            (e, vec![d])
        })
        .collect();
    let repeat = event("inc-x".into(), "early".into());
    batch.push((
        repeat.clone(),
        vec![crate::helpers::delivery_of(&repeat, &hook.id, url)],
    ));
    let answers = store.accept_events(&batch, &admission).await.unwrap();
    assert!(answers[..900].iter().all(|a| !a.duplicate));
    assert!(answers[900].duplicate, "the repeat is found in any chunk");
    assert_eq!(answers[900].event_id, early.id);
    assert!(answers[0].leased.is_empty(), "inc-0's lane was busy");
    assert!(
        answers[1..900].iter().all(|a| a.leased.len() == 1),
        "every other fresh delivery is first in its lane"
    );
}

both_backends!(store_large_batches_read_in_chunks);

/// Several nodes claiming at once the work a dead node leased: each delivery goes to one
/// of them only. (On PostgreSQL a claim that read the work before another node's claim
/// committed must not take it over once that commit lands.)
async fn store_expired_leases_are_claimed_once(backend: Backend) {
    use tocsin::store::Lease;
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "x").await;
    // Leased to a node that is gone: the leases ran out a second ago.
    let dead = leasing(Lease {
        owner: "dead-node".into(),
        until: Timestamp::now().minus(std::time::Duration::from_secs(1)),
    });
    let batch = one_per_incident(&org, &hook, 1000);
    store.accept_events(&batch, &dead).await.unwrap();

    let mut nodes = vec![store.clone()];
    for _ in 0..3 {
        nodes.push(
            tocsin::store::open(&db.url, &crate::helpers::test_key())
                .await
                .unwrap(),
        );
    }
    // All at once, so that their claims overlap.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(nodes.len()));
    let claimers: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(n, node)| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let lease = Lease {
                    owner: format!("node-{n}"),
                    until: Timestamp::now().plus(std::time::Duration::from_secs(60)),
                };
                let mut mine = Vec::new();
                loop {
                    let claimed = node.claim_due(&lease, Timestamp::now(), 50).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|d| d.id));
                }
            })
        })
        .collect();
    let mut seen = std::collections::HashMap::new();
    for (node, claimer) in claimers.into_iter().enumerate() {
        let claimed = tokio::time::timeout(std::time::Duration::from_secs(30), claimer)
            .await
            .expect("claims finish within 30 s (claimers waiting on each other?)")
            .unwrap();
        for id in claimed {
            if let Some(other) = seen.insert(id.clone(), node) {
                panic!("{id} was claimed by node {other} and again by node {node}");
            }
        }
    }
    assert_eq!(seen.len(), 1000, "every delivery is claimed");
}

both_backends!(store_expired_leases_are_claimed_once);

/// Rate slots are a token bucket in the database: every node (every store on it) shares
/// it, and the time is the caller's.
async fn store_rate_slots(backend: Backend) {
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    let other_node = tocsin::store::open(&db.url, &crate::helpers::test_key())
        .await
        .unwrap();
    let t0 = Timestamp::from_micros(1_000_000_000);
    assert_eq!(
        store.take_rate_slot("k", 2.0, 2.0, t0).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        other_node.take_rate_slot("k", 2.0, 2.0, t0).await.unwrap(),
        Ok(())
    );
    let wait = store
        .take_rate_slot("k", 2.0, 2.0, t0)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        (wait.as_secs_f64() - 0.5).abs() < 0.01,
        "one token at 2 per second: {wait:?}"
    );
    let later = Timestamp::from_micros(t0.as_micros() + 500_000);
    assert_eq!(
        other_node
            .take_rate_slot("k", 2.0, 2.0, later)
            .await
            .unwrap(),
        Ok(())
    );
    assert!(store
        .take_rate_slot("k", 2.0, 2.0, later)
        .await
        .unwrap()
        .is_err());
    assert_eq!(
        store.take_rate_slot("other", 2.0, 2.0, t0).await.unwrap(),
        Ok(())
    );
    // A call racing the last one reads the slot as written a moment "later": still empty.
    let racing = Timestamp::from_micros(later.as_micros() - 1_000);
    assert!(store
        .take_rate_slot("k", 2.0, 2.0, racing)
        .await
        .unwrap()
        .is_err());
    // The wall clock stepped back ten minutes: the slot, empty and written "later", is not
    // a ten-minute wait.
    let stepped_back = Timestamp::from_micros(later.as_micros() - 600_000_000);
    assert_eq!(
        store
            .take_rate_slot("k", 2.0, 2.0, stepped_back)
            .await
            .unwrap(),
        Ok(())
    );
}

both_backends!(store_rate_slots);

/// PostgreSQL: intake takes each lane's advisory lock before it decides whether the lane is
/// busy, so a node whose transaction holds a lane makes another node's intake for that
/// lane wait (seen in pg_locks) until it commits — and then see its delivery.
async fn store_lanes_are_locked_across_nodes(backend: Backend) {
    // (PostgreSQL only: SQLite's one writer serialises its transactions already.)
    use tocsin::domain::delivery::lane;
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "l").await;
    let url = "https://receiver.example/hook";
    let (event, delivery) = crate::helpers::event_and_delivery(&org.id, &hook.id, "inc-l", url);
    assert_eq!(
        delivery.lane(),
        lane(
            &hook.id,
            tocsin::domain::webhook::Method::Post,
            url,
            "inc-l"
        )
    );
    // "The other node": a transaction holding the lane.
    let pool = sqlx::postgres::PgPool::connect(&db.url).await.unwrap();
    let mut other = pool.begin().await.unwrap();
    // The lane's key as intake derives it: its first 16 hex digits.
    let key = u64::from_str_radix(&delivery.lane()[..16], 16).unwrap() as i64;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *other)
        .await
        .unwrap();
    let intake = {
        let store = store.clone();
        let delivery = delivery.clone();
        tokio::spawn(async move {
            store
                .accept_events(&[(event, vec![delivery])], &leasing(for_a_minute("node-b")))
                .await
                .unwrap()
        })
    };
    crate::helpers::eventually(
        "node B's intake waits for the lane",
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        },
        |waiting| *waiting >= 1,
    )
    .await;
    assert!(
        !intake.is_finished(),
        "it has not decided while the lane is held"
    );
    other.commit().await.unwrap();
    let answers = intake.await.unwrap();
    assert_eq!(
        answers[0].leased,
        vec![delivery.id.clone()],
        "free lane: leased"
    );
}

crate::postgres_only!(store_lanes_are_locked_across_nodes);

/// The next change heard other than a (re)connection, within the deadline.
async fn next_change(
    heard: &mut tokio::sync::broadcast::Receiver<tocsin::store::Change>,
) -> tocsin::store::Change {
    use tocsin::store::Change;
    loop {
        match tokio::time::timeout(crate::helpers::DEADLINE, heard.recv()).await {
            Ok(Ok(Change::Missed)) => continue,
            Ok(Ok(change)) => return change,
            Ok(Err(e)) => panic!("the change feed failed: {e}"),
            Err(_) => panic!("no change heard within {:?}", crate::helpers::DEADLINE),
        }
    }
}

/// Another node hears what this one changes as it commits (PostgreSQL's NOTIFY): webhook
/// writes name their organization, a revoked token says so, and deliveries any node may
/// claim now (released leases) wake pollers — work already leased to its node does not.
/// SQLite has one process and no feed.
async fn store_changes_are_heard_by_other_nodes(backend: Backend) {
    use tocsin::store::Change;
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    if backend == Backend::Sqlite {
        assert!(store.subscribe().is_none(), "SQLite has no change feed");
        return;
    }
    let other = tocsin::store::open(&db.url, &crate::helpers::test_key())
        .await
        .unwrap();
    let mut heard = other.subscribe().expect("PostgreSQL has a change feed");
    // Listening starts with a `Missed`: from then on nothing is missed.
    let first = tokio::time::timeout(crate::helpers::DEADLINE, heard.recv()).await;
    assert!(
        matches!(first, Ok(Ok(Change::Missed))),
        "the listener connects: {first:?}"
    );

    let (org, hook) = org_with_webhook(store.as_ref(), "n").await;
    assert_eq!(
        next_change(&mut heard).await,
        Change::Webhooks(org.id.clone())
    );

    // Work leased to the node that accepted it is nobody else's business.
    let (event, delivery) = crate::helpers::event_and_delivery(
        &org.id,
        &hook.id,
        "inc-n",
        "https://receiver.example/hook",
    );
    let accepted = store
        .accept_events(
            &[(event, vec![delivery.clone()])],
            &leasing(for_a_minute("node-a")),
        )
        .await
        .unwrap();
    assert_eq!(accepted[0].leased, vec![delivery.id.clone()]);
    // Notifications arrive in commit order: had the leased delivery woken anyone, `Work`
    // would come before the token's change.
    let token = NewToken::generate(&org.id, "t", vec![Ability::Read]);
    store
        .create_token(&token, &token_created(&token.token, &Actor::cli()))
        .await
        .unwrap();
    store
        .revoke_token(None, &token.token.id, Timestamp::now(), &Actor::cli())
        .await
        .unwrap();
    assert_eq!(next_change(&mut heard).await, Change::Tokens);

    // Node A stops and gives its delivery back: claimable by anyone now.
    assert_eq!(store.release_leases("node-a").await.unwrap(), 1);
    assert_eq!(next_change(&mut heard).await, Change::Work);
}

both_backends!(store_changes_are_heard_by_other_nodes);

/// The cluster's circuits: the first opener is told so, one claim of a due probe wins (and
/// is given back with the node's leases), a failed probe doubles the cool-down (capped), the first closer is told so, and a circuit
/// nobody probed for the retention time is pruned.
async fn store_circuits(backend: Backend) {
    use std::time::Duration;
    use tocsin::store::ProbeClaim;
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let t = |ms: i64| Timestamp::from_micros(1_800_000_000_000_000 + ms * 1000);
    let key = tocsin::domain::delivery::url_key("https://dead.example/hook");
    let second = Duration::from_secs(1);
    assert!(store
        .open_circuit(&key, t(1000), second, t(0))
        .await
        .unwrap());
    assert!(
        !store
            .open_circuit(&key, t(5000), second, t(10))
            .await
            .unwrap(),
        "open already: the first opener keeps it"
    );
    assert_eq!(
        store.open_circuits().await.unwrap(),
        vec![(key.clone(), t(1000))]
    );
    assert_eq!(
        store
            .claim_probe(&key, "a", t(999), t(60_999))
            .await
            .unwrap(),
        ProbeClaim::Wait(t(1000)),
        "not due yet"
    );
    assert_eq!(
        store
            .claim_probe(&key, "a", t(1000), t(61_000))
            .await
            .unwrap(),
        ProbeClaim::Won
    );
    assert_eq!(
        store
            .claim_probe(&key, "b", t(1001), t(61_001))
            .await
            .unwrap(),
        ProbeClaim::Wait(t(61_000)),
        "node a's probe is out"
    );
    // Node a stops (or, on SQLite, a start finds it gone): its probe's claim is given
    // back, and the next probe may go at once, not when the claim would have run out.
    if backend == Backend::Sqlite {
        store.release_stale_leases().await.unwrap();
    } else {
        store.release_leases("a").await.unwrap();
    }
    assert_eq!(
        store
            .claim_probe(&key, "b", t(1002), t(61_002))
            .await
            .unwrap(),
        ProbeClaim::Won
    );
    store.release_leases("b").await.unwrap();
    assert_eq!(
        store
            .claim_probe(&key, "a", t(1003), t(61_003))
            .await
            .unwrap(),
        ProbeClaim::Won
    );
    let max = Duration::from_secs(30);
    assert_eq!(
        store.probe_failed(&key, t(1500), max).await.unwrap(),
        Some(t(3500)),
        "twice the first cool-down"
    );
    assert_eq!(
        store
            .claim_probe(&key, "b", t(3500), t(63_500))
            .await
            .unwrap(),
        ProbeClaim::Won,
        "anyone may take the next one"
    );
    for _ in 0..6 {
        store.probe_failed(&key, t(4000), max).await.unwrap();
    }
    assert_eq!(
        store.probe_failed(&key, t(4000), max).await.unwrap(),
        Some(t(34_000)),
        "capped"
    );
    assert!(store.close_circuit(&key).await.unwrap());
    assert!(!store.close_circuit(&key).await.unwrap(), "closed already");
    assert_eq!(
        store
            .claim_probe(&key, "a", t(40_000), t(100_000))
            .await
            .unwrap(),
        ProbeClaim::Closed
    );
    assert_eq!(
        store.probe_failed(&key, t(40_000), max).await.unwrap(),
        None
    );

    // The wall clock stepped back ten minutes after the circuit opened and its probe went
    // out: the probe time and the claim now read ten minutes ahead, further than any
    // cool-down or claim reaches, so they were written under the old time. The next probe
    // goes (node a is gone) instead of waiting ten minutes.
    let stepped = tocsin::domain::delivery::url_key("https://stepped.example/hook");
    assert!(store
        .open_circuit(&stepped, t(1000), second, t(0))
        .await
        .unwrap());
    assert_eq!(
        store
            .claim_probe(&stepped, "a", t(1000), t(61_000))
            .await
            .unwrap(),
        ProbeClaim::Won
    );
    let back = -600_000;
    assert_eq!(
        store
            .claim_probe(&stepped, "b", t(back + 2000), t(back + 62_000))
            .await
            .unwrap(),
        ProbeClaim::Won,
        "a stepped-back clock does not hold the probe for the step's length"
    );
    assert!(store.close_circuit(&stepped).await.unwrap());

    assert!(store
        .open_circuit(&key, t(1000), second, t(0))
        .await
        .unwrap());
    store.prune_records(t(999), 100).await.unwrap();
    assert_eq!(
        store.open_circuits().await.unwrap().len(),
        1,
        "recent: kept"
    );
    store.prune_records(t(1001), 100).await.unwrap();
    assert!(
        store.open_circuits().await.unwrap().is_empty(),
        "stale: pruned"
    );
}

both_backends!(store_circuits);

/// E-mailing about a webhook is reserved by one notifier at a time: another waits for the
/// reservation's end, the holder may renew it, a released or run-out one is free.
async fn store_mail_reservations(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (_, hook) = org_with_webhook(store.as_ref(), "m").await;
    let t = |s: i64| Timestamp::from_micros(1_800_000_000_000_000 + s * 1_000_000);
    let id = &hook.id;
    assert_eq!(
        store.reserve_mail(id, "a", t(0), t(60)).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        store.reserve_mail(id, "b", t(1), t(61)).await.unwrap(),
        Err(t(60)),
        "node a is e-mailing"
    );
    assert_eq!(
        store.reserve_mail(id, "a", t(2), t(62)).await.unwrap(),
        Ok(()),
        "renewed"
    );
    store.release_mail(id, "b").await.unwrap();
    assert_eq!(
        store.reserve_mail(id, "b", t(3), t(63)).await.unwrap(),
        Err(t(62)),
        "only the holder gives it back"
    );
    store.release_mail(id, "a").await.unwrap();
    assert_eq!(
        store.reserve_mail(id, "b", t(4), t(64)).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        store.reserve_mail(id, "a", t(64), t(124)).await.unwrap(),
        Ok(()),
        "a reservation that ran out (its node died) is free"
    );
}

both_backends!(store_mail_reservations);

/// A bulk retry's runner holds it while it saves progress; once silent, one other runner
/// takes it over with its query and position, and the first one's saves are refused.
async fn store_retry_jobs_are_taken_over_when_silent(backend: Backend) {
    use tocsin::domain::delivery::{DeliveryState, RetryJob, RetryJobState};
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "m").await;
    let now = Timestamp::now();
    let minutes_ago = |m: i64| Timestamp::from_micros(now.as_micros() - m * 60_000_000);
    let q = tocsin::store::LogQuery {
        state: Some(DeliveryState::Failed),
        event_type: Some("incident.triggered".into()),
        incident_id: Some("inc-7".into()),
        since: Some(minutes_ago(90)),
        until: Some(minutes_ago(30)),
        ..Default::default()
    };
    let mut job = RetryJob {
        id: "rtj_1".into(),
        organization_id: org.id.clone(),
        webhook_id: hook.id.clone(),
        filters: json!({"state": "failed"}),
        state: RetryJobState::Running,
        total: 10,
        done: 0,
        after_seq: 0,
        error: None,
        created_at: minutes_ago(5),
        finished_at: None,
    };
    store.create_retry_job(&job, &q, "run_a").await.unwrap();
    let read = |job_id: &'static str| {
        let store = store.clone();
        let (org, hook) = (org.id.clone(), hook.id.clone());
        async move { store.retry_job(&org, &hook, job_id).await.unwrap().unwrap() }
    };
    assert_eq!(
        read("rtj_1").await.state,
        RetryJobState::Interrupted,
        "silent for five minutes"
    );

    // Its runner saves progress: heard of, not taken.
    job.done = 4;
    job.after_seq = 40;
    assert!(store.save_retry_job(&job, "run_a").await.unwrap());
    assert_eq!(read("rtj_1").await.state, RetryJobState::Running);
    assert_eq!(
        store
            .adopt_retry_job("run_b", minutes_ago(1), now)
            .await
            .unwrap(),
        None
    );

    // Silent since: run_b takes it with query and position; only once.
    let later = Timestamp::from_micros(now.as_micros() + 120_000_000);
    let (taken, taken_q) = store
        .adopt_retry_job("run_b", minutes_ago(-1), later)
        .await
        .unwrap()
        .expect("a silent job is taken over");
    assert_eq!((taken.done, taken.after_seq), (4, 40));
    assert_eq!(taken_q, q);
    assert_eq!(
        store
            .adopt_retry_job("run_c", minutes_ago(-1), later)
            .await
            .unwrap(),
        None,
        "one runner takes it"
    );
    // The old runner's saves and steps are refused (a step re-queues nothing); the new
    // one's count.
    assert!(!store.save_retry_job(&job, "run_a").await.unwrap());
    assert_eq!(
        store
            .requeue_finished(&job, "run_a", &q, 10, later)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .requeue_finished(&taken, "run_b", &q, 10, later)
            .await
            .unwrap(),
        Some(tocsin::store::RetryStep {
            requeued: 0,
            done: 4,
            after_seq: 40
        }),
        "the new runner's step runs from the saved position (nothing matches the query)"
    );
    let mut finished = taken;
    finished.state = RetryJobState::Done;
    finished.done = 10;
    assert!(store.save_retry_job(&finished, "run_b").await.unwrap());
    let done = read("rtj_1").await;
    assert_eq!((done.state, done.done), (RetryJobState::Done, 10));
    assert_eq!(
        store.adopt_retry_job("run_c", later, later).await.unwrap(),
        None,
        "a finished job is nobody's to take"
    );

    // A job whose stored filters cannot be read again ends, saying why, instead of being
    // taken up and failing every minute.
    let mut broken = job.clone();
    broken.id = "rtj_broken".into();
    store.create_retry_job(&broken, &q, "run_a").await.unwrap();
    let pool = sqlx::AnyPool::connect(&_db.url).await.unwrap();
    sqlx::query("UPDATE retry_jobs SET query = '{not json' WHERE id = 'rtj_broken'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        store.adopt_retry_job("run_d", later, later).await.unwrap(),
        None
    );
    let ended = read("rtj_broken").await;
    assert_eq!(ended.state, RetryJobState::Failed);
    assert!(
        ended
            .error
            .as_deref()
            .is_some_and(|e| e.contains("could not be read")),
        "{ended:?}"
    );
}

both_backends!(store_retry_jobs_are_taken_over_when_silent);

/// A bulk retry's step starts from the position the store holds: a runner whose step
/// committed but whose answer was lost (its copy of the job still says where it was
/// before) tries the step again without taking the same deliveries a second time.
async fn store_bulk_retry_steps_start_where_the_store_says(backend: Backend) {
    use tocsin::domain::delivery::{
        Attempt, AttemptResult, DeliveryState, RetryJob, RetryJobState,
    };
    use tocsin::domain::ids::DeliveryId;
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "s").await;
    let now = Timestamp::now();
    let lease = for_a_minute("node-a");
    let batch = one_per_incident(&org, &hook, 4);
    store
        .accept_events(&batch, &leasing(lease.clone()))
        .await
        .unwrap();
    let ids: Vec<DeliveryId> = batch.iter().map(|(_, d)| d[0].id.clone()).collect();
    let fail = |ids: &[DeliveryId], number| -> Vec<AttemptResult> {
        ids.iter()
            .map(|id| AttemptResult {
                delivery_id: id.clone(),
                attempt: Attempt {
                    number,
                    started_at: now,
                    response_status: Some(500),
                    ..Attempt::default()
                },
                state: DeliveryState::Failed,
                next_attempt_at: None,
                notify: false,
            })
            .collect()
    };
    store
        .record_attempts("node-a", &fail(&ids, 1))
        .await
        .unwrap();

    let q = tocsin::store::LogQuery {
        state: Some(DeliveryState::Failed),
        ..Default::default()
    };
    let job = RetryJob {
        id: "rtj_s".into(),
        organization_id: org.id.clone(),
        webhook_id: hook.id.clone(),
        filters: json!({"state": "failed"}),
        state: RetryJobState::Running,
        total: 4,
        done: 0,
        after_seq: 0,
        error: None,
        created_at: now,
        finished_at: None,
    };
    store.create_retry_job(&job, &q, "run").await.unwrap();
    // Each step from the same copy of the job, as a runner that lost the first answer.
    let step = || async {
        let step = store
            .requeue_finished(&job, "run", &q, 2, now)
            .await
            .unwrap()
            .expect("the runner holds the job");
        (step.requeued, step.done)
    };
    assert_eq!(step().await, (2, 2), "the first step takes two");

    // Those two are sent again and fail again before the runner, which never heard its
    // step's answer, tries the step again from its old copy of the job.
    let again = store.claim_due(&lease, Timestamp::now(), 10).await.unwrap();
    let again: Vec<DeliveryId> = again.into_iter().map(|d| d.id).collect();
    assert_eq!(again, ids[..2].to_vec(), "the oldest two were re-queued");
    store
        .record_attempts("node-a", &fail(&again, 2))
        .await
        .unwrap();
    assert_eq!(
        step().await,
        (2, 4),
        "the count is the store's, not the old copy's 0 + 2"
    );
    for (i, id) in ids.iter().enumerate() {
        let (d, _) = store
            .delivery(&org.id, &hook.id, id)
            .await
            .unwrap()
            .unwrap();
        let expected = if i < 2 {
            DeliveryState::Failed
        } else {
            DeliveryState::Pending
        };
        assert_eq!(d.state, expected, "delivery {i} after the second step");
    }
}

both_backends!(store_bulk_retry_steps_start_where_the_store_says);

/// A recording batch larger than one statement's chunk (200 results) is recorded whole:
/// its per-webhook counts and URL health are one upsert each. Written per chunk, the second
/// chunk's upsert touched the same rows again, which PostgreSQL refuses within one
/// statement; the batch failed for good and its deliveries were sent again (seen under
/// load, when results pile up faster than they are recorded).
async fn store_records_a_batch_of_several_chunks(backend: Backend) {
    use tocsin::domain::delivery::{Attempt, AttemptResult, DeliveryState};
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "big").await;
    let batch = one_per_incident(&org, &hook, 450);
    store
        .accept_events(&batch, &leasing(for_a_minute("node-a")))
        .await
        .unwrap();
    let now = Timestamp::now();
    // Successes in the first chunk and the second, failures in the second and third.
    let state_of = |i: usize| {
        if i < 300 {
            DeliveryState::Succeeded
        } else {
            DeliveryState::Failed
        }
    };
    let results: Vec<AttemptResult> = batch
        .iter()
        .enumerate()
        .map(|(i, (_, d))| AttemptResult {
            delivery_id: d[0].id.clone(),
            attempt: Attempt {
                number: 1,
                started_at: now,
                response_status: Some(if i < 300 { 200 } else { 500 }),
                ..Attempt::default()
            },
            state: state_of(i),
            next_attempt_at: None,
            notify: false,
        })
        .collect();
    store.record_attempts("node-a", &results).await.unwrap();

    let counts = store
        .webhook_counts(&org.id, now.minus(std::time::Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        counts.get(&hook.id),
        Some(&(300, 150)),
        "every chunk counted"
    );
    for (i, (_, d)) in batch.iter().enumerate() {
        let (delivery, attempts) = store
            .delivery(&org.id, &hook.id, &d[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.state, state_of(i), "delivery {i}");
        assert_eq!(attempts.len(), 1, "delivery {i}'s attempt is kept");
    }
}

both_backends!(store_records_a_batch_of_several_chunks);

/// A source's incident states are read many keys at once (what `sources::state_reads`
/// asks), and of a batch of receipts beyond what is kept only the newest are written while
/// every one is counted.
async fn store_source_states_and_receipts(backend: Backend) {
    use tocsin::domain::{
        ids::SourceId,
        source::{
            IncidentState, IncidentStatus, Receipt, ReceiptOutcome, Source, SourceKind,
            SourceSettings, SourceSpec, SourceState, RECEIPTS_KEPT,
        },
    };
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let (org, hook) = org_with_webhook(store.as_ref(), "relay").await;
    let source = Source {
        id: SourceId::generate(),
        organization_id: org.id.clone(),
        spec: SourceSpec {
            name: "am".into(),
            kind: SourceKind::Alertmanager,
            description: String::new(),
            enabled: true,
            team: None,
            settings: SourceSettings::parse(SourceKind::Alertmanager, None, None).unwrap(),
        },
        token_hash: "x".into(),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    store
        .insert_source(&source, &entry(&org.id, &hook.id))
        .await
        .unwrap();
    let mut batch = one_per_incident(&org, &hook, 3);
    for (i, (event, _)) in batch.iter_mut().enumerate() {
        event.source_state = Some(SourceState {
            source_id: source.id.clone(),
            state: IncidentState {
                key: format!("group-{i}"),
                incident_id: event.incident_id().to_owned(),
                status: IncidentStatus::Triggered,
                generation: 1,
                events: 1,
                last_event_id: event.payload_event_id.clone(),
                incident: serde_json::Map::new(),
                team: None,
                updated_at: Timestamp::now(),
            },
        });
    }
    store
        .accept_events(&batch, &leasing(for_a_minute("node-a")))
        .await
        .unwrap();
    let keys: Vec<String> = ["group-0", "group-2", "group-9", "group-1"]
        .map(String::from)
        .to_vec();
    let states = store.source_incidents(&source.id, &keys).await.unwrap();
    let mut found: Vec<&str> = states.keys().map(String::as_str).collect();
    found.sort();
    assert_eq!(
        found,
        ["group-0", "group-1", "group-2"],
        "an unknown key is absent"
    );
    assert_eq!(states["group-2"].incident_id, batch[2].0.incident_id());

    let receipts: Vec<Receipt> = (0..RECEIPTS_KEPT + 30)
        .map(|n| {
            Receipt::new(
                &source.id,
                ReceiptOutcome::Accepted,
                202,
                vec![format!("payload {n}")],
                Vec::new(),
                b"{}",
            )
        })
        .collect();
    store.record_receipts(&receipts).await.unwrap();
    let kept = store
        .receipts(&source.id, 2 * RECEIPTS_KEPT as u32)
        .await
        .unwrap();
    assert_eq!(kept.len(), RECEIPTS_KEPT);
    assert_eq!(kept[0].results, [format!("payload {}", RECEIPTS_KEPT + 29)]);
    assert_eq!(kept[RECEIPTS_KEPT - 1].results, ["payload 30"]);
    let activity = store
        .source_activity(&org.id, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        activity[&source.id].today.accepted,
        (RECEIPTS_KEPT + 30) as u64,
        "every receipt counted"
    );
}

both_backends!(store_source_states_and_receipts);
