//! Who may do what: missing, malformed, revoked tokens; abilities; organization scoping.

use reqwest::Method;
use tocsin::domain::{
    audit::{token_created, Actor},
    organization::Organization,
    token::{Ability, NewToken},
    Timestamp,
};

use crate::both_backends;
use crate::helpers::{minimal_webhook, spawn_app, Backend, TestApp};

const BASE: &str = "/v3/extensions/event-webhooks";

async fn token_with(app: &TestApp, abilities: &[Ability]) -> NewToken {
    let org = app.organization().await;
    let token = NewToken::generate(&org.id, "test", abilities.to_vec());
    app.store
        .create_token(&token, &token_created(&token.token, &Actor::cli()))
        .await
        .unwrap();
    token
}

async fn auth_matrix(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hook = app.create_webhook(&minimal_webhook("mine")).await;
    let path = format!("{BASE}/{}", hook["id"].as_str().unwrap());

    let none = app.call(Method::GET, BASE, None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.body["meta"]["error_code"], "unauthorized");
    assert!(
        none.message().contains("Authorization: Bearer"),
        "{}",
        none.message()
    );

    for bad in ["tocsin_short", "Basic abc", "tocsin_ with space", ""] {
        let reply = app.call(Method::GET, BASE, Some(bad), None).await;
        assert_eq!(reply.status, 401, "{bad:?}");
    }
    // Well-formed but unknown.
    let stranger = NewToken::generate(&"org_x".into(), "x", vec![Ability::Admin]);
    assert_eq!(
        app.call(Method::GET, BASE, Some(&stranger.plaintext), None)
            .await
            .status,
        401
    );

    let reader = token_with(&app, &[Ability::Read]).await;
    assert_eq!(
        app.call(Method::GET, &path, Some(&reader.plaintext), None)
            .await
            .status,
        200
    );
    let body = minimal_webhook("nope").to_string();
    let forbidden = app
        .call(
            Method::POST,
            BASE,
            Some(&reader.plaintext),
            Some(body.clone()),
        )
        .await;
    assert_eq!(forbidden.status, 403);
    assert!(
        forbidden.message().contains("manage-webhooks"),
        "{}",
        forbidden.message()
    );
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&reader.plaintext), None)
            .await
            .status,
        403
    );

    let ingest_only = token_with(&app, &[Ability::Ingest]).await;
    assert_eq!(
        app.call(Method::GET, BASE, Some(&ingest_only.plaintext), None)
            .await
            .status,
        403
    );

    let manager = token_with(&app, &[Ability::ManageWebhooks]).await;
    assert_eq!(
        app.call(Method::POST, BASE, Some(&manager.plaintext), Some(body))
            .await
            .status,
        201
    );

    // Revoked tokens stop working within 100 ms (the server trusts a token it read for
    // that long); after that window the revocation must hold, every time.
    assert!(app
        .store
        .revoke_token(None, &reader.token.id, Timestamp::now(), &Actor::cli())
        .await
        .unwrap()
        .is_some());
    let revoked = crate::helpers::eventually(
        "the revoked token refused",
        || app.call(Method::GET, &path, Some(&reader.plaintext), None),
        |reply| reply.status == 401,
    )
    .await;
    assert!(revoked.message().contains("revoked"));
}

async fn other_organizations_objects_do_not_exist(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hook = app.create_webhook(&minimal_webhook("ours")).await;
    let path = format!("{BASE}/{}", hook["id"].as_str().unwrap());

    let other = Organization::new("Other");
    app.store.create_organization(&other).await.unwrap();
    let theirs = NewToken::generate(&other.id, "other", vec![Ability::Admin]);
    app.store
        .create_token(&theirs, &token_created(&theirs.token, &Actor::cli()))
        .await
        .unwrap();
    let t = Some(theirs.plaintext.as_str());

    let body = minimal_webhook("hijack").to_string();
    assert_eq!(app.call(Method::GET, &path, t, None).await.status, 404);
    assert_eq!(
        app.call(Method::PUT, &path, t, Some(body)).await.status,
        404
    );
    assert_eq!(app.call(Method::DELETE, &path, t, None).await.status, 404);
    assert_eq!(
        app.call(Method::POST, &format!("{path}/rotate-secret"), t, None)
            .await
            .status,
        404
    );
    let list = app.call(Method::GET, BASE, t, None).await;
    assert_eq!(list.body["data"]["meta"]["total_count"], 0);

    // Untouched for its owner.
    let mine = app.owner(Method::GET, &path, None).await;
    assert_eq!(mine.body["data"]["name"], "ours");
    assert_eq!(mine.body["data"]["updated_at"], hook["updated_at"]);
}

/// RFC 9110: the authentication scheme is case-insensitive.
async fn bearer_scheme_in_any_case(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let status = crate::helpers::http_client()
            .get(format!("{}{BASE}", app.address))
            .header("authorization", format!("{scheme} {}", app.owner_token))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{scheme}");
    }
    let basic = crate::helpers::http_client()
        .get(format!("{}{BASE}", app.address))
        .header("authorization", format!("Basic {}", app.owner_token))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
}

/// Each token has its own budget of requests, and events are counted apart; past it the
/// answer is 429 with Retry-After.
async fn requests_are_limited_per_token(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |c| {
        c.http.rate_limit = 1;
        c.http.rate_burst = 3;
        c.http.intake_rate_limit = 1;
        c.http.intake_rate_burst = 2;
    })
    .await
    else {
        return;
    };
    let token = Some(app.owner_token.clone());
    for _ in 0..3 {
        assert_eq!(
            app.call(Method::GET, BASE, token.as_deref(), None)
                .await
                .status,
            200
        );
    }
    let refused = crate::helpers::http_client()
        .get(format!("{}{BASE}", app.address))
        .bearer_auth(&app.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another token has its own budget; events are counted apart.
    let reader = token_with(&app, &[Ability::Read, Ability::Ingest]).await;
    assert_eq!(
        app.call(Method::GET, BASE, Some(&reader.plaintext), None)
            .await
            .status,
        200
    );
    let event = serde_json::json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i", "message": "m", "status": "triggered", "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    let post = |n: usize| {
        let mut e = event.clone();
        e["id"] = serde_json::json!(format!("e-{n}"));
        app.call(
            Method::POST,
            "/v3/events",
            token.as_deref(),
            Some(e.to_string()),
        )
    };
    assert_eq!(post(1).await.status, 202, "intake has its own budget");
    assert_eq!(post(2).await.status, 202);
    let third = post(3).await;
    assert_eq!(third.status, 429);
    assert!(
        third.message().contains("too many requests"),
        "{}",
        third.message()
    );
}

/// Ten tokens are not ten budgets: an organization's API calls share one budget on top of
/// each caller's; and pages spend the same budgets as the API (before, a person's pages,
/// "Send a test" included, were not limited at all).
async fn organizations_and_pages_have_budgets_too(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |c| {
        c.http.rate_limit = 1;
        c.http.rate_burst = 20;
        c.http.organization_rate_limit = 1;
        c.http.organization_rate_burst = 10;
    })
    .await
    else {
        return;
    };
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(token_with(&app, &[Ability::Read]).await.plaintext);
    }
    // Three callers with fifteen each: forty-five asked, each within its own budget; the
    // organization's ten answered, and what refilled (one a second) while they were asked.
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for token in &tokens {
        for _ in 0..15 {
            statuses.push(app.call(Method::GET, BASE, Some(token), None).await.status);
        }
    }
    let refilled = started.elapsed().as_secs() as usize + 1;
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        answered >= 10 && answered <= 10 + refilled && answered < 45,
        "{statuses:?} in {:?}",
        started.elapsed()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );

    let Some(app) = crate::helpers::spawn_app_with(backend, |c| {
        c.http.rate_limit = 1;
        c.http.rate_burst = 4;
    })
    .await
    else {
        return;
    };
    crate::helpers::visitor::person(&app, "pam@example.com", "member").await;
    let mut pam = crate::helpers::visitor::Visitor::new(&app);
    pam.login_ok("pam@example.com").await;
    // Her budget is four at once, one a second after: ten pages asked at once outrun it.
    let mut pages = Vec::new();
    for _ in 0..10 {
        pages.push(pam.get("/webhooks").await);
    }
    let refused = pages
        .iter()
        .find(|p| p.status == 429)
        .expect("a page refused");
    assert!(
        refused.text.contains("Too many requests"),
        "{}",
        refused.text
    );
    assert!(refused.headers.contains_key("retry-after"));
}

both_backends!(
    organizations_and_pages_have_budgets_too,
    requests_are_limited_per_token,
    auth_matrix,
    other_organizations_objects_do_not_exist,
    bearer_scheme_in_any_case
);
