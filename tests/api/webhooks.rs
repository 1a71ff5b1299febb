//! The webhook configuration API: round trips, validation, pagination, masking, secrets.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{minimal_webhook, patched, spawn_app, spawn_app_with, Backend, TestApp};

const BASE: &str = "/v3/extensions/event-webhooks";

fn full_webhook() -> Value {
    json!({
        "name": "Ops bridge",
        "description": "Pages the bridge",
        "triggers": [
            {"event_class": "incident", "event_type": "triggered"},
            {"event_class": "incident", "event_type": "resolved"}
        ],
        "urls": [
            {"url": "https://a.example/hook", "method": "POST"},
            {"url": "https://b.example/hook", "method": "put"},
            {"url": "http://c.example:8080/x?y=1", "method": "PATCH"}
        ],
        "header": {"X-Team": "sre", "Authorization": "Bearer abcdefgh12345678"},
        "filters": {"op": "and", "conditions": [{"op": "is", "lhs": "service", "rhs": "svc1"}]},
        "max_retry": 5,
        "timeout_seconds": 20,
        "enabled": false,
        "teams": ["team-a", "team-b"],
        "is_all_teams_configured": false,
        "mail_ids": ["ops@example.com", "lead@example.com"],
        "trigger_type": "manual",
        "payload_type": "custom",
        "version": "v1",
        "custom_payload": "{\"text\": {{ incident.message }}}",
        "custom_payload_template_slug": "my-template",
        "language": "jinja"
    })
}

/// Every configured field comes back as sent (methods upper-cased, credentials masked).
fn assert_configured_fields(data: &Value, sent: &Value) {
    for key in [
        "name",
        "description",
        "triggers",
        "filters",
        "max_retry",
        "timeout_seconds",
        "enabled",
        "teams",
        "is_all_teams_configured",
        "mail_ids",
        "trigger_type",
        "payload_type",
        "version",
        "custom_payload",
        "custom_payload_template_slug",
        "language",
    ] {
        assert_eq!(data[key], sent[key], "field {key}");
    }
    let urls = sent["urls"].as_array().unwrap();
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(data["urls"][i]["url"], url["url"]);
        assert_eq!(
            data["urls"][i]["method"],
            url["method"].as_str().unwrap().to_uppercase()
        );
    }
    for (name, value) in sent["header"].as_object().unwrap() {
        let shown = data["header"][name].as_str().unwrap();
        if name == "Authorization" {
            assert!(
                shown.starts_with("****") && shown != value,
                "{name} masked: {shown}"
            );
        } else {
            assert_eq!(shown, value);
        }
    }
    for key in [
        "id",
        "created_at",
        "updated_at",
        "organization_id",
        "author_id",
        "slug",
    ] {
        assert!(
            data[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} present"
        );
    }
}

async fn round_trip_covers_every_field_and_survives_restart(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let sent = full_webhook();
    let created = app.create_webhook(&sent).await;
    assert_configured_fields(&created, &sent);
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = created["id"].as_str().unwrap().to_owned();

    let got = app.owner(Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(got.status, 200);
    let mut without_secret = created.clone();
    without_secret.as_object_mut().unwrap().remove("secret");
    assert_eq!(
        got.body["data"], without_secret,
        "GET shows what create stored, minus the secret"
    );

    let list = app.owner(Method::GET, BASE, None).await;
    assert_eq!(list.body["data"]["meta"]["total_count"], 1);
    assert_eq!(list.body["data"]["result"][0]["id"], id.as_str());

    // GET → edit → PUT, read-only fields and the masked header included (the URL stays on a
    // server it already had: a masked credential is not carried to a new one).
    let mut edited = got.body["data"].clone();
    edited["name"] = json!("Ops bridge 2");
    edited["urls"] = json!([{"url": "https://a.example/new", "method": "PATCH"}]);
    edited["enabled"] = json!(true);
    edited["max_retry"] = json!(0);
    let put = app
        .owner(Method::PUT, &format!("{BASE}/{id}"), Some(&edited))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["data"]["name"], "Ops bridge 2");
    assert_eq!(
        put.body["data"]["urls"],
        json!([{"url": "https://a.example/new", "method": "PATCH"}])
    );
    assert_eq!(put.body["data"]["max_retry"], 0);
    assert_eq!(put.body["data"]["created_at"], created["created_at"]);
    assert!(put.body["data"]["updated_at"].as_str() >= created["updated_at"].as_str());

    let app = app.restart().await;
    let after = app.owner(Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.body["data"], put.body["data"],
        "data survives a restart"
    );

    let deleted = app
        .owner(Method::DELETE, &format!("{BASE}/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        app.owner(Method::GET, &format!("{BASE}/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.owner(Method::DELETE, &format!("{BASE}/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(app.webhook_count().await, 0);
}

fn with(patch: Value) -> Value {
    patched(minimal_webhook("v"), patch)
}

async fn every_validation_rule_is_a_4xx_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let long_urls: Vec<Value> = (0..11)
        .map(|i| json!({"url": format!("https://e.example/{i}")}))
        .collect();
    let many_headers: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let many_mails: Vec<String> = (0..11).map(|i| format!("a{i}@example.com")).collect();
    let cases = [
        (json!({"name": null}), "name"),
        (json!({"name": "n".repeat(256)}), "name"),
        (json!({"triggers": []}), "triggers"),
        (
            json!({"triggers": [{"event_class": "incident", "event_type": "deleted"}]}),
            "triggers[0]",
        ),
        (json!({"urls": []}), "urls"),
        (json!({"urls": long_urls}), "urls"),
        (json!({"urls": [{"url": "mailto:x@y.z"}]}), "urls[0].url"),
        (json!({"urls": [{"url": "https://"}]}), "urls[0].url"),
        (
            json!({"urls": [{"url": "https://ok.example"}, {"url": "https://ok.example", "method": "DELETE"}]}),
            "urls[1].method",
        ),
        (json!({"header": many_headers}), "header"),
        (json!({"header": {"Bad Header": "x"}}), "header.Bad Header"),
        (json!({"header": {"X-Ok": "line\nbreak"}}), "header.X-Ok"),
        (
            json!({"header": {"Content-Type": "text/plain"}}),
            "header.Content-Type",
        ),
        (
            json!({"header": {"webhook-signature": "v1,x"}}),
            "header.webhook-signature",
        ),
        (json!({"max_retry": 11}), "max_retry"),
        (json!({"max_retry": -1}), "max_retry"),
        (json!({"timeout_seconds": 31}), "timeout_seconds"),
        (json!({"enabled": 1}), "enabled"),
        (json!({"mail_ids": many_mails}), "mail_ids"),
        (json!({"mail_ids": ["ops at example"]}), "mail_ids[0]"),
        (json!({"is_all_teams_configured": false}), "teams"),
        (
            json!({"teams": "team-a", "is_all_teams_configured": false}),
            "teams",
        ),
        (json!({"trigger_type": "cron"}), "trigger_type"),
        (json!({"payload_type": "xml"}), "payload_type"),
        (json!({"payload_type": "custom"}), "custom_payload"),
        (json!({"version": 2}), "version"),
        (json!({"surprise": true}), "surprise"),
    ];
    for (patch, field) in cases {
        let body = with(patch.clone());
        let reply = app.owner(Method::POST, BASE, Some(&body)).await;
        assert_eq!(reply.status, 422, "{patch}: {}", reply.body);
        assert_eq!(reply.body["meta"]["error_code"], "invalid_webhook");
        assert!(
            reply.message().contains(&format!("{field}:")),
            "{patch} should name {field}: {}",
            reply.message()
        );
    }
    assert_eq!(app.webhook_count().await, 0, "nothing was written");

    // A rejected update leaves the stored webhook as it was.
    let created = app.create_webhook(&minimal_webhook("keep")).await;
    let path = format!("{BASE}/{}", created["id"].as_str().unwrap());
    let reply = app
        .owner(
            Method::PUT,
            &path,
            Some(&with(json!({"name": "changed", "max_retry": 99}))),
        )
        .await;
    assert_eq!(reply.status, 422);
    let now = app.owner(Method::GET, &path, None).await;
    assert_eq!(now.body["data"], {
        let mut c = created.clone();
        c.as_object_mut().unwrap().remove("secret");
        c
    });
}

async fn malformed_oversized_and_mistyped_bodies_are_clear_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = app.owner_token.clone();
    let bad = app
        .call(
            Method::POST,
            BASE,
            Some(&token),
            Some("{\"name\": \"x\",\n  \"urls\": [}".into()),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.message().contains("line 2 column"), "{}", bad.message());

    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let too_big = app.call(Method::POST, BASE, Some(&token), Some(huge)).await;
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.body["meta"]["error_code"], "payload_too_large");

    let not_object = app
        .call(Method::POST, BASE, Some(&token), Some("[1, 2]".into()))
        .await;
    assert_eq!(not_object.status, 422);
    assert!(not_object.message().contains("body"));

    let mistyped = app
        .owner(
            Method::POST,
            BASE,
            Some(&with(json!({"urls": "https://x.example"}))),
        )
        .await;
    assert_eq!(mistyped.status, 422);
    assert!(
        mistyped.message().contains("urls: must be an array"),
        "{}",
        mistyped.message()
    );

    // JSON Schema's integers include 3.0, so the API takes them; 3.5 is no whole number.
    let whole = app
        .owner(
            Method::POST,
            BASE,
            Some(&with(json!({"max_retry": 3.0, "timeout_seconds": 5e0}))),
        )
        .await;
    assert_eq!(whole.status, 201, "{:?}", whole.body);
    assert_eq!(whole.body["data"]["max_retry"], 3);
    let id = whole.body["data"]["id"].as_str().unwrap().to_owned();
    let half = app
        .owner(Method::POST, BASE, Some(&with(json!({"max_retry": 3.5}))))
        .await;
    assert_eq!(half.status, 422);
    assert!(half.message().contains("max_retry"), "{}", half.message());
    // A trigger names its class and type, nothing else.
    let extra = app
        .owner(
            Method::POST,
            BASE,
            Some(&with(json!({"triggers": [
                {"event_class": "incident", "event_type": "triggered", "colour": "red"}
            ]}))),
        )
        .await;
    assert_eq!(extra.status, 422);
    assert!(
        extra
            .message()
            .contains("triggers[0].colour: unknown field"),
        "{}",
        extra.message()
    );
    // An optional body is an object or nothing.
    let rotate = format!("{BASE}/{id}/rotate-secret");
    let number = app
        .call(Method::POST, &rotate, Some(&token), Some("5".into()))
        .await;
    assert_eq!(number.status, 400);
    assert!(
        number
            .message()
            .contains("must be a JSON object, or left empty"),
        "{}",
        number.message()
    );
    let grace = app
        .owner(
            Method::POST,
            &rotate,
            Some(&json!({"grace_period_seconds": 60.0})),
        )
        .await;
    assert_eq!(grace.status, 200, "{:?}", grace.body);
    app.owner(Method::DELETE, &format!("{BASE}/{id}"), None)
        .await;

    let unknown_route = app.owner(Method::GET, "/v3/nothing-here", None).await;
    assert_eq!(unknown_route.status, 404);
    assert_eq!(app.webhook_count().await, 0);
}

async fn pagination_uses_page_limit_and_offset(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_webhook(&minimal_webhook(&format!("hook {i}")))
                .await["id"]
                .clone(),
        );
    }
    let page = |limit: u32, offset: u32| {
        let app: &TestApp = &app;
        async move {
            let reply = app
                .owner(
                    Method::GET,
                    &format!("{BASE}?page-limit={limit}&offset={offset}"),
                    None,
                )
                .await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body["data"]["meta"]["total_count"], 5);
            reply.body["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].clone())
                .collect::<Vec<_>>()
        }
    };
    let mut walked = Vec::new();
    for offset in [0, 2, 4] {
        walked.extend(page(2, offset).await);
    }
    assert_eq!(walked, ids, "pages walk every webhook once, oldest first");
    assert!(page(2, 10).await.is_empty());
    for bad in ["page-limit=0", "page-limit=abc", "offset=-1", "limit=3"] {
        let reply = app.owner(Method::GET, &format!("{BASE}?{bad}"), None).await;
        assert_eq!(reply.status, 400, "{bad}");
        let name = bad.split('=').next().unwrap();
        assert!(reply.message().contains(name), "{bad}: {}", reply.message());
    }
}

async fn credential_headers_are_masked_and_round_trip(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let body = with(json!({"header": {
        "Authorization": "Bearer live-secret-0001",
        "X-Api-Key": "key-abcdefghijkl",
        "X-Team": "sre"
    }}));
    let created = app.create_webhook(&body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["header"]["Authorization"], "****0001");
    assert_eq!(created["header"]["X-Api-Key"], "****ijkl");
    assert_eq!(created["header"]["X-Team"], "sre");
    let shown = app
        .owner(Method::GET, &format!("{BASE}/{id}"), None)
        .await
        .body["data"]
        .clone();
    assert_eq!(shown["header"], created["header"]);

    // Sending the masked values back keeps the secrets; a new value replaces one.
    let mut edited = shown.clone();
    edited["header"]["X-Api-Key"] = json!("key-rotated-zzzz9999");
    let put = app
        .owner(Method::PUT, &format!("{BASE}/{id}"), Some(&edited))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let stored = app
        .store
        .webhook(
            &created["organization_id"].as_str().unwrap().into(),
            &id.as_str().into(),
        )
        .await
        .unwrap()
        .unwrap();
    let value = |name: &str| {
        stored
            .spec
            .header
            .iter()
            .find(|h| h.name == name)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(value("Authorization"), "Bearer live-secret-0001");
    assert_eq!(value("X-Api-Key"), "key-rotated-zzzz9999");
    assert_eq!(put.body["data"]["header"]["X-Api-Key"], "****9999");
}

async fn secret_is_shown_at_creation_and_rotation_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let created = app.create_webhook(&minimal_webhook("signed")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = created["secret"].as_str().unwrap().to_owned();
    let got = app.owner(Method::GET, &format!("{BASE}/{id}"), None).await;
    assert!(got.body["data"].get("secret").is_none());
    let list = app.owner(Method::GET, BASE, None).await;
    assert!(list.body["data"]["result"][0].get("secret").is_none());

    let rotated = app
        .owner(Method::POST, &format!("{BASE}/{id}/rotate-secret"), None)
        .await;
    assert_eq!(rotated.status, 200);
    let second = rotated.body["data"]["secret"].as_str().unwrap();
    assert!(second.starts_with("whsec_") && second != first);
    let stored = app
        .store
        .webhook(
            &created["organization_id"].as_str().unwrap().into(),
            &id.as_str().into(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.secret, second);
    let missing = app
        .owner(Method::POST, &format!("{BASE}/wh_nope/rotate-secret"), None)
        .await;
    assert_eq!(missing.status, 404);
}

async fn health_and_readiness(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );
}

/// URLs with line breaks, tabs, backslashes or no host are refused, not repaired; what is
/// stored is the normalized URL.
async fn urls_are_refused_unless_clean(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for bad in [
        "https://example.com/a\r\nX-Injected: 1",
        "https://example.com/\tb",
        "https://example.com\\@evil.example/",
        "http:///h",
    ] {
        let body = patched(minimal_webhook("u"), json!({"urls": [{"url": bad}]}));
        let reply = app.owner(Method::POST, BASE, Some(&body)).await;
        assert_eq!(reply.status, 422, "{bad:?}");
        assert_eq!(
            reply.body["meta"]["errors"][0]["field"], "urls[0].url",
            "{bad:?}"
        );
    }
    assert_eq!(app.webhook_count().await, 0);
    let body = patched(
        minimal_webhook("u"),
        json!({"urls": [{"url": "HTTPS://Example.COM:443/Hook"}]}),
    );
    let made = app.create_webhook(&body).await;
    assert_eq!(made["urls"][0]["url"], "https://example.com/Hook");
}

/// Header names and values are bounded, visible ASCII only, and hop-by-hop or framing
/// headers are refused.
async fn headers_are_bounded_and_hop_by_hop_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let long_name = "X-".to_owned() + &"a".repeat(300);
    for (name, value, says) in [
        ("Connection", "close".to_owned(), "hop-by-hop"),
        ("Transfer-Encoding", "chunked".to_owned(), "hop-by-hop"),
        ("TE", "trailers".to_owned(), "hop-by-hop"),
        ("Upgrade", "h2c".to_owned(), "hop-by-hop"),
        ("Proxy-Authorization", "Basic eA==".to_owned(), "hop-by-hop"),
        ("Expect", "100-continue".to_owned(), "hop-by-hop"),
        ("X-Big", "v".repeat(9000), "at most 8 KiB"),
        ("X-Name", "caf\u{e9}".to_owned(), "visible ASCII"),
        (long_name.as_str(), "v".to_owned(), "at most 256 bytes"),
    ] {
        let body = patched(minimal_webhook("h"), json!({"header": {name: value}}));
        let reply = app.owner(Method::POST, BASE, Some(&body)).await;
        assert_eq!(reply.status, 422, "{name}");
        assert!(
            reply.message().contains(says),
            "{name}: {}",
            reply.message()
        );
    }
    assert_eq!(app.webhook_count().await, 0);
}

/// A masked credential is only kept for the servers it was entered for: pointing a URL
/// elsewhere while sending the mask back is refused, naming the header.
async fn masked_credentials_do_not_follow_a_new_url(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let body = patched(
        minimal_webhook("creds"),
        json!({"urls": [{"url": "https://hooks.example/in"}], "header": {"Authorization": "Bearer secret-value-1234"}}),
    );
    let hook = app.create_webhook(&body).await;
    let path = format!("{BASE}/{}", hook["id"].as_str().unwrap());
    let mut shown = app.owner(Method::GET, &path, None).await.body["data"].clone();
    assert_eq!(shown["header"]["Authorization"], "****1234");

    shown["urls"] = json!([{"url": "https://attacker.example/collect"}]);
    let moved = app.owner(Method::PUT, &path, Some(&shown)).await;
    assert_eq!(moved.status, 422, "{}", moved.body);
    assert_eq!(
        moved.body["meta"]["errors"][0]["field"],
        "header.Authorization"
    );
    let kept = app
        .store
        .webhook(
            &hook["organization_id"].as_str().unwrap().into(),
            &hook["id"].as_str().unwrap().into(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.spec.urls[0].url, "https://hooks.example/in",
        "nothing written"
    );

    // Another path on the same server keeps it; a new server with the value typed again is fine.
    shown["urls"] = json!([{"url": "https://hooks.example/other"}]);
    assert_eq!(
        app.owner(Method::PUT, &path, Some(&shown)).await.status,
        200
    );
    shown["urls"] = json!([{"url": "https://new.example/in"}]);
    shown["header"]["Authorization"] = json!("Bearer typed-again-5678");
    assert_eq!(
        app.owner(Method::PUT, &path, Some(&shown)).await.status,
        200
    );
}

/// Passwords in URLs are masked wherever a URL is shown, and kept when a masked URL comes
/// back unchanged.
async fn url_passwords_are_masked_and_kept(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = crate::helpers::receiver::Receiver::start().await;
    let url = receiver
        .url("/in")
        .replace("http://", "http://ops:s3cret-pass@");
    let hook = app
        .create_webhook(&patched(
            minimal_webhook("basic"),
            json!({"urls": [{"url": url}]}),
        ))
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let path = format!("{BASE}/{id}");
    let shown = app.owner(Method::GET, &path, None).await.body["data"].clone();
    let masked = shown["urls"][0]["url"].as_str().unwrap().to_owned();
    assert!(
        masked.contains("ops:****@") && !masked.contains("s3cret"),
        "{masked}"
    );
    let mut renamed = shown.clone();
    renamed["name"] = json!("basic renamed");
    assert_eq!(
        app.owner(Method::PUT, &path, Some(&renamed)).await.status,
        200
    );

    let event = json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i", "message": "m", "status": "triggered", "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    assert_eq!(
        app.owner(Method::POST, "/v3/events", Some(&event))
            .await
            .status,
        202
    );
    let got = receiver.wait_for("/in", 1).await;
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ops:s3cret-pass")
    );
    assert_eq!(
        got[0].header("authorization"),
        expected,
        "the stored password is still used"
    );
    let logs = crate::helpers::eventually(
        "logged",
        || async {
            app.owner(Method::GET, &format!("{path}/logs"), None)
                .await
                .body
                .to_string()
        },
        |text: &String| text.contains("succeeded"),
    )
    .await;
    assert!(
        !logs.contains("s3cret") && logs.contains("ops:****@"),
        "{logs}"
    );
    let audit = app
        .owner(Method::GET, &format!("/v3/audit-logs?object={id}"), None)
        .await;
    assert!(!audit.body.to_string().contains("s3cret"), "{}", audit.body);
}

/// A key given twice is refused, in webhooks and in events, naming the key.
async fn duplicate_json_keys_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = Some(app.owner_token.clone());
    let hook = r#"{"name": "a", "name": "b", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": "https://example.com/h"}], "is_all_teams_configured": true}"#;
    let reply = app
        .call(Method::POST, BASE, token.as_deref(), Some(hook.to_owned()))
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.message().contains("duplicate key \"name\""),
        "{}",
        reply.message()
    );
    let event = r#"{"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i", "id": "j", "message": "m", "status": "triggered", "service": {"id": "s"}, "alert_source": {"id": "a"}}}"#;
    let reply = app
        .call(
            Method::POST,
            "/v3/events",
            token.as_deref(),
            Some(event.to_owned()),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.message().contains("duplicate key \"id\""),
        "{}",
        reply.message()
    );
    assert_eq!(app.webhook_count().await, 0);
}

/// The value of a metric line (`name{labels} value`) in a scrape; 0 when absent.
fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `GET /metrics`: the read ability on the API's address, none on `metrics_listen`;
/// counters move with the work; labels hold no ids or URLs. (The counters are the
/// process's, shared by tests running beside this one: it looks at what grew.)
async fn metrics_count_the_work(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.metrics_listen = "127.0.0.1:0".into()).await
    else {
        return;
    };
    let anonymous = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(anonymous.status, 401);
    let scrape = || async {
        let response = crate::helpers::http_client()
            .get(format!("{}/metrics", app.metrics_address.as_ref().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "no authentication on metrics_listen"
        );
        response.text().await.unwrap()
    };
    let before = scrape().await;
    for family in [
        "tocsin_build_info{version=",
        "# TYPE tocsin_attempt_duration_seconds histogram",
        "# TYPE tocsin_intake_duration_seconds histogram",
        "# TYPE tocsin_intake_batch_events histogram",
        "tocsin_deliveries_pending ",
        "tocsin_deliveries_parked ",
        "tocsin_circuits_open ",
    ] {
        assert!(before.contains(family), "{family} in\n{before}");
    }
    let receiver = crate::helpers::receiver::Receiver::start().await;
    app.create_webhook(&crate::delivery::hook(
        "counted",
        json!([{"url": receiver.url("/in")}]),
    ))
    .await;
    let events = r#"tocsin_events_total{type="incident.triggered"}"#;
    let succeeded = r#"tocsin_deliveries_total{outcome="succeeded"}"#;
    let ok_calls = r#"tocsin_attempts_total{result="2xx"}"#;
    for i in 0..2 {
        let body = crate::delivery::event(
            "triggered",
            "t",
            crate::delivery::incident(&format!("inc-m{i}"), "triggered"),
        );
        assert_eq!(
            app.owner(Method::POST, "/v3/events", Some(&body))
                .await
                .status,
            202
        );
    }
    receiver.wait_for("/in", 2).await;
    let after = crate::helpers::eventually("the counters grew", scrape, |after: &String| {
        metric(after, succeeded) >= metric(&before, succeeded) + 2.0
            && metric(after, ok_calls) >= metric(&before, ok_calls) + 2.0
    })
    .await;
    let batches = "tocsin_intake_batch_events_sum ";
    assert!(
        metric(&after, batches) >= metric(&before, batches) + 2.0,
        "the two events were counted in intake batches: {after}"
    );
    assert!(
        metric(&after, events) >= metric(&before, events) + 2.0,
        "{after}"
    );
    assert!(
        !after.contains("127.0.0.1") && !after.contains("wh_") && !after.contains("inc-m"),
        "labels carry no URLs or ids:\n{after}"
    );
    let with_token = crate::helpers::http_client()
        .get(format!("{}/metrics", app.address))
        .bearer_auth(&app.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_token.status(),
        200,
        "the read ability on the API's address"
    );
    assert!(with_token
        .text()
        .await
        .unwrap()
        .contains("tocsin_events_total"));
    // The Grafana dashboard asks only for metrics that exist.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/tocsin-dashboard.json"
    ))
    .unwrap();
    let mut asked = 0;
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(name) = word.strip_prefix("tocsin_") {
            // A family is declared by its TYPE line even before it has a sample.
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            asked += 1;
            assert!(
                after.contains(&format!("# TYPE tocsin_{family} ")),
                "tocsin_{family} is not exported"
            );
        }
    }
    assert!(asked >= 8, "the dashboard queries the metrics");
}

/// A URL deliveries would be refused (a literal private or loopback address outside
/// `delivery.allowed_networks`) is saved, and said so: in the API's answer as a warning
/// naming the field and the setting, and beside the field on the Configure tab.
async fn urls_the_policy_refuses_are_warned_of_at_save(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let body = patched(
        minimal_webhook("private"),
        json!({"urls": [{"url": "https://hooks.example.com/h"}, {"url": "http://10.1.2.3:8080/h"}]}),
    );
    let created = app.owner(Method::POST, BASE, Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let warnings = created.body["warnings"]
        .as_array()
        .expect("warnings")
        .clone();
    assert_eq!(warnings.len(), 1, "{}", created.body);
    assert_eq!(warnings[0]["field"], "urls[1].url");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("10.1.2.3")
            && message.contains("private")
            && message.contains("delivery.allowed_networks"),
        "{message}"
    );
    let id = created.body["data"]["id"].as_str().unwrap().to_owned();
    // A PUT keeping it says it again; one without it says nothing.
    let kept = app
        .owner(Method::PUT, &format!("{BASE}/{id}"), Some(&body))
        .await;
    assert_eq!(kept.body["warnings"][0]["field"], "urls[1].url");
    let fine = patched(
        minimal_webhook("private"),
        json!({"urls": [{"url": "https://hooks.example.com/h"}]}),
    );
    let fixed = app
        .owner(Method::PUT, &format!("{BASE}/{id}"), Some(&fine))
        .await;
    assert_eq!(fixed.status, 200);
    assert!(fixed.body.get("warnings").is_none(), "{}", fixed.body);

    app.owner(Method::PUT, &format!("{BASE}/{id}"), Some(&body))
        .await;
    crate::helpers::visitor::person(&app, "ivy@example.com", "member").await;
    let mut v = crate::helpers::visitor::Visitor::new(&app);
    v.login_ok("ivy@example.com").await;
    let page = v.get(&format!("/webhooks/{id}/configure")).await;
    assert!(
        page.text.contains("url-warning")
            && page.text.contains("deliveries to 10.1.2.3 will be refused"),
        "{}",
        page.text
    );
}

both_backends!(
    urls_the_policy_refuses_are_warned_of_at_save,
    metrics_count_the_work,
    duplicate_json_keys_are_refused,
    masked_credentials_do_not_follow_a_new_url,
    url_passwords_are_masked_and_kept,
    headers_are_bounded_and_hop_by_hop_refused,
    urls_are_refused_unless_clean,
    round_trip_covers_every_field_and_survives_restart,
    every_validation_rule_is_a_4xx_naming_the_field,
    malformed_oversized_and_mistyped_bodies_are_clear_errors,
    pagination_uses_page_limit_and_offset,
    credential_headers_are_masked_and_round_trip,
    secret_is_shown_at_creation_and_rotation_only,
    health_and_readiness,
);
