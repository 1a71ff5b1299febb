//! End to end: intake → matching → payload → a real receiver, and the delivery logs.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::receiver::{resource_data, Receiver, Reply};
use crate::helpers::{
    eventually, http_client, patched, spawn_app, spawn_app_with, Backend, TestApp,
};

pub(crate) const HOOKS: &str = "/v3/extensions/event-webhooks";
const EVENTS: &[&str] = &["triggered", "reassigned", "acknowledged", "resolved"];

fn sample(version: &str, name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/squadcast-samples/{version}/incident-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
}

fn all_triggers() -> Value {
    Value::Array(
        EVENTS
            .iter()
            .map(|e| json!({"event_class": "incident", "event_type": e}))
            .collect(),
    )
}

/// A webhook for every incident event, all teams, to the given URLs.
pub(crate) fn hook(name: &str, urls: Value) -> Value {
    json!({"name": name, "triggers": all_triggers(), "urls": urls, "is_all_teams_configured": true})
}

pub(crate) fn incident(id: &str, status: &str) -> Value {
    json!({
        "id": id, "message": format!("{id} is on fire"), "status": status,
        "service": {"id": "svc-1", "name": "API", "slug": "api"},
        "alert_source": {"id": "as-1", "type": "Prometheus", "short_name": "prom"},
        "tags": {"severity": {"value": "critical", "color": "#f00"}}
    })
}

pub(crate) fn event(kind: &str, team: &str, incident: Value) -> Value {
    json!({"type": format!("incident.{kind}"), "team": {"id": team, "name": "SRE"}, "incident": incident})
}

impl TestApp {
    pub(crate) async fn ingest(&self, body: &Value) -> Value {
        let reply = self.owner(Method::POST, "/v3/events", Some(body)).await;
        assert_eq!(reply.status, 202, "intake: {}", reply.body);
        reply.body["data"].clone()
    }

    /// Posts `incident.triggered` for incidents `inc-{i}`, one event each.
    pub(crate) async fn ingest_incidents(&self, range: std::ops::Range<usize>) {
        for i in range {
            self.ingest(&event(
                "triggered",
                "t",
                incident(&format!("inc-{i}"), "triggered"),
            ))
            .await;
        }
    }

    pub(crate) async fn logs(&self, webhook_id: &str, query: &str) -> Value {
        let reply = self
            .owner(
                Method::GET,
                &format!("{HOOKS}/{webhook_id}/logs{query}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["data"].clone()
    }

    pub(crate) async fn log_entry(&self, webhook_id: &str, delivery_id: &str) -> Value {
        let reply = self
            .owner(
                Method::GET,
                &format!("{HOOKS}/{webhook_id}/logs/{delivery_id}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["data"].clone()
    }

    /// Waits until every delivery of the webhook has left `pending`; returns the entries.
    pub(crate) async fn settled_logs(&self, webhook_id: &str, expected: usize) -> Vec<Value> {
        eventually(
            "deliveries settle",
            || async {
                self.logs(webhook_id, "?limit=200").await["result"]
                    .as_array()
                    .unwrap()
                    .clone()
            },
            |rows: &Vec<Value>| {
                rows.len() == expected && rows.iter().all(|r| r["state"] != "pending")
            },
        )
        .await
    }
}

/// Every v2 sample Squadcast publishes (the whole folder: a new file is covered without new
/// code), posted as an event, reaches a receiver as the very same bytes.
async fn v2_payloads_equal_squadcast_samples(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = format!(
        "{}/tests/fixtures/squadcast-samples/v2",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect(&dir)
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 23, "the samples are there: {files:?}");
    let samples: Vec<(String, Value)> = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    // One webhook subscribed to every type the samples show.
    let triggers: Vec<Value> = samples
        .iter()
        .map(|(_, s)| {
            let kind = s["event"]["type"].as_str().unwrap();
            json!({"event_class": "incident", "event_type": kind.trim_start_matches("incident.")})
        })
        .collect();
    let receiver = Receiver::start().await;
    app.create_webhook(&json!({
        "name": "every event", "triggers": triggers, "is_all_teams_configured": true,
        "urls": [{"url": receiver.url("/v2")}]
    }))
    .await;
    for (i, (name, sample)) in samples.iter().enumerate() {
        let data = &sample["data"];
        // Events about a note, task, … carry it as `resource` beside the incident.
        let mut body = json!({
            "id": sample["event"]["id"],
            "type": sample["event"]["type"],
            "timestamp": sample["event"]["timestamp"],
            "organization": data["organization"],
            "team": data["team"],
            "incident": data.get("incident").unwrap_or(&data["resource_data"]),
        });
        if data.get("incident").is_some() {
            body["resource"] = data["resource_data"].clone();
        }
        app.ingest(&body).await;
        let got = receiver.wait_for("/v2", i + 1).await;
        let delivered = got
            .iter()
            .find(|r| r.json()["event"]["id"] == sample["event"]["id"])
            .unwrap_or_else(|| panic!("{name} delivered"));
        assert_eq!(delivered.json(), *sample, "{name}");
        assert_eq!(
            delivered.body,
            serde_json::to_vec(sample).unwrap(),
            "{name}: same bytes, key order included"
        );
    }
}

async fn v1_payloads_equal_squadcast_samples(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let mut webhook = hook("v1", json!([{"url": receiver.url("/v1")}]));
    webhook["version"] = json!("v1");
    app.create_webhook(&webhook).await;
    for (i, name) in EVENTS.iter().enumerate() {
        let sample = sample("v1", name);
        let mut incident = sample.as_object().unwrap().clone();
        incident.shift_remove("event_type");
        let organization = incident.shift_remove("organization").unwrap();
        let body = json!({
            "id": format!("v1-{name}"),
            "type": sample["event_type"],
            "organization": organization,
            "team": {"id": "team-1"},
            "incident": incident,
        });
        app.ingest(&body).await;
        let got = receiver.wait_for("/v1", i + 1).await;
        assert_eq!(got[i].json(), sample, "{name}");
        assert_eq!(
            got[i].body,
            serde_json::to_vec(&sample).unwrap(),
            "{name}: same bytes"
        );
    }
}

async fn every_url_gets_its_method_headers_and_a_valid_signature(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let mut body = hook(
        "three",
        json!([
            {"url": receiver.url("/post"), "method": "POST"},
            {"url": receiver.url("/put"), "method": "PUT"},
            {"url": receiver.url("/patch"), "method": "patch"}
        ]),
    );
    body["header"] = json!({"Authorization": "Bearer receiver-secret-1", "X-Team": "sre"});
    let created = app.create_webhook(&body).await;
    let secret = created["secret"].as_str().unwrap();
    let accepted = app
        .ingest(&event("triggered", "t1", incident("inc-1", "triggered")))
        .await;
    assert_eq!(accepted["deliveries"], 3);

    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    for (path, method) in [("/post", "POST"), ("/put", "PUT"), ("/patch", "PATCH")] {
        let got = receiver.wait_for(path, 1).await;
        assert_eq!(got.len(), 1, "{path} once");
        let r = &got[0];
        assert_eq!(r.method.as_str(), method);
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("user-agent").starts_with("tocsin/"));
        assert_eq!(r.header("authorization"), "Bearer receiver-secret-1");
        assert_eq!(r.header("x-team"), "sre");
        assert!(r.header("webhook-id").starts_with("msg_"));
        verifier
            .verify(&r.body, &r.headers)
            .expect("signature verifies independently");
        assert_eq!(r.json()["event"]["type"], "incident.triggered");
    }
    let mut tampered = receiver.received("/post")[0].clone();
    tampered.body = axum::body::Bytes::from_static(b"{\"forged\": true}");
    assert!(
        verifier.verify(&tampered.body, &tampered.headers).is_err(),
        "a changed body fails"
    );
}

async fn only_matching_webhooks_receive(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let mut resolved_only = hook("resolved only", json!([{"url": receiver.url("/resolved")}]));
    resolved_only["triggers"] = json!([{"event_class": "incident", "event_type": "resolved"}]);
    let mut disabled = hook("disabled", json!([{"url": receiver.url("/disabled")}]));
    disabled["enabled"] = json!(false);
    let mut manual = hook("manual", json!([{"url": receiver.url("/manual")}]));
    manual["trigger_type"] = json!("manual");
    let mut team_b = hook("team b", json!([{"url": receiver.url("/team-b")}]));
    team_b["is_all_teams_configured"] = json!(false);
    team_b["teams"] = json!(["team-b"]);
    for body in [&resolved_only, &disabled, &manual, &team_b] {
        app.create_webhook(body).await;
    }
    let none = app
        .ingest(&event(
            "triggered",
            "team-a",
            incident("inc-1", "triggered"),
        ))
        .await;
    assert_eq!(
        none["deliveries"], 0,
        "no webhook matches: nothing is created, so nothing can be sent"
    );

    let both_a = app
        .create_webhook(&hook("all a", json!([{"url": receiver.url("/a")}])))
        .await;
    let both_b = app
        .create_webhook(&hook("all b", json!([{"url": receiver.url("/b")}])))
        .await;
    let two = app
        .ingest(&event(
            "triggered",
            "team-b",
            incident("inc-2", "triggered"),
        ))
        .await;
    assert_eq!(
        two["deliveries"], 3,
        "team b's webhook and the two all-team webhooks"
    );
    receiver.wait_for("/a", 1).await;
    receiver.wait_for("/b", 1).await;
    receiver.wait_for("/team-b", 1).await;
    for id in [&both_a["id"], &both_b["id"]] {
        app.settled_logs(id.as_str().unwrap(), 1).await;
    }
    for path in ["/resolved", "/disabled", "/manual"] {
        assert!(receiver.received(path).is_empty(), "{path} got nothing");
    }
}

async fn a_repeated_producer_id_is_accepted_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let created = app
        .create_webhook(&hook(
            "once",
            json!([{"url": receiver.url("/x")}, {"url": receiver.url("/y")}]),
        ))
        .await;
    let mut body = event("triggered", "t", incident("inc-1", "triggered"));
    body["id"] = json!("producer-event-42");
    let first = app.ingest(&body).await;
    let second = app.ingest(&body).await;
    assert_eq!(first, second, "the same answer");
    assert_eq!(first["deliveries"], 2);
    app.settled_logs(created["id"].as_str().unwrap(), 2).await;
    assert_eq!(receiver.received("/x").len(), 1);
    assert_eq!(receiver.received("/y").len(), 1);
}

async fn invalid_events_are_refused_and_store_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let created = app
        .create_webhook(&hook("h", json!([{"url": receiver.url("/h")}])))
        .await;
    let valid = event("triggered", "t", incident("inc-bad", "triggered"));
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        ("type", Box::new(|b| b["type"] = json!("incident.melted"))),
        (
            "type",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("type");
            }),
        ),
        (
            "team",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("team");
            }),
        ),
        ("team.id", Box::new(|b| b["team"] = json!({"name": "x"}))),
        ("incident", Box::new(|b| b["incident"] = json!("inc"))),
        (
            "incident.id",
            Box::new(|b| {
                b["incident"].as_object_mut().unwrap().remove("id");
            }),
        ),
        (
            "incident.message",
            Box::new(|b| b["incident"]["message"] = json!(5)),
        ),
        (
            "incident.status",
            Box::new(|b| {
                b["incident"].as_object_mut().unwrap().remove("status");
            }),
        ),
        (
            "incident.service.id",
            Box::new(|b| b["incident"]["service"] = json!({})),
        ),
        (
            "incident.alert_source.id",
            Box::new(|b| b["incident"]["alert_source"] = json!(null)),
        ),
        (
            "timestamp",
            Box::new(|b| b["timestamp"] = json!("last tuesday")),
        ),
        ("extra", Box::new(|b| b["extra"] = json!(1))),
    ];
    for (field, change) in cases {
        let mut body = valid.clone();
        change(&mut body);
        let reply = app.owner(Method::POST, "/v3/events", Some(&body)).await;
        assert_eq!(reply.status, 422, "{field}: {}", reply.body);
        assert_eq!(reply.body["meta"]["error_code"], "invalid_event");
        assert!(
            reply.message().contains(&format!("{field}:")),
            "{field}: {}",
            reply.message()
        );
    }
    let not_json = app
        .call(
            Method::POST,
            "/v3/events",
            Some(&app.owner_token.clone()),
            Some("{".into()),
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert!(
        app.logs(created["id"].as_str().unwrap(), "").await["result"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let org = app.organization().await;
    assert!(
        app.store
            .latest_incident_event(&org.id, "inc-bad")
            .await
            .unwrap()
            .is_none(),
        "no event stored"
    );
    let manual = app
        .owner(
            Method::POST,
            &format!(
                "/v3/incidents/inc-bad/actions/webhook/{}",
                created["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(manual.status, 404);
    assert!(receiver.received("/h").is_empty());
}

async fn logs_show_what_the_receiver_got(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.script("/flaky", vec![Reply::status(500)]);
    let mut body = hook(
        "logged",
        json!([{"url": receiver.url("/flaky"), "method": "PUT"}]),
    );
    body["header"] = json!({"X-Api-Key": "key-0123456789abcd"});
    let created = app.create_webhook(&body).await;
    let id = created["id"].as_str().unwrap();
    app.ingest(&event(
        "acknowledged",
        "t",
        incident("inc-7", "acknowledged"),
    ))
    .await;
    let rows = app.settled_logs(id, 1).await;
    let row = &rows[0];
    assert_eq!(row["state"], "succeeded");
    assert_eq!(row["attempts"], 2, "500 then 200");
    assert_eq!(row["last_status"], 200);
    assert_eq!(row["event_type"], "incident.acknowledged");
    assert_eq!(row["incident_id"], "inc-7");
    assert_eq!(row["method"], "PUT");
    assert_eq!(row["url"], receiver.url("/flaky"));

    let detail = app.log_entry(id, row["id"].as_str().unwrap()).await;
    let got = receiver.received("/flaky");
    assert_eq!(got.len(), 2);
    assert_eq!(
        detail["payload"].as_str().unwrap().as_bytes(),
        &got[1].body[..],
        "the exact payload sent"
    );
    assert_eq!(
        detail["request_headers"]["webhook-id"],
        got[1].header("webhook-id")
    );
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "stable across attempts"
    );
    assert_eq!(
        detail["request_headers"]["webhook-signature"],
        got[1].header("webhook-signature")
    );
    assert_eq!(
        detail["request_headers"]["X-Api-Key"], "****abcd",
        "credentials masked"
    );
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["response_status"], 500);
    assert_eq!(attempts[0]["response_body"], "receiver says hi");
    assert_eq!(attempts[1]["response_status"], 200);
    assert!(attempts[1]["response_headers"]["content-length"].is_string());

    let filtered = app.logs(id, "?state=failed").await;
    assert!(filtered["result"].as_array().unwrap().is_empty());
    let by_incident = app
        .logs(id, "?incident_id=inc-7&event_type=incident_acknowledged")
        .await;
    assert_eq!(by_incident["result"].as_array().unwrap().len(), 1);
    let bad = app
        .owner(Method::GET, &format!("{HOOKS}/{id}/logs?state=lost"), None)
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.message().contains("state"));
    let missing = app
        .owner(Method::GET, &format!("{HOOKS}/{id}/logs/msg_nope"), None)
        .await;
    assert_eq!(missing.status, 404);
}

/// Runs statements on the app's database directly, in order (to inject a fault).
async fn run_sql(app: &TestApp, statements: &[&str]) {
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    for sql in statements {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
}

/// Makes the app's database refuse to insert into `table` any row for which `condition`
/// (SQL on `NEW`) holds, with an error saying it was injected; on either backend.
async fn refuse_inserts(app: &TestApp, backend: Backend, table: &str, condition: &str) {
    let refusal = format!("injected: this row of {table} cannot be stored");
    let statements = match backend {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN {condition} \
             BEGIN SELECT RAISE(ABORT, '{refusal}'); END"
        )],
        Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN \
                 IF {condition} THEN RAISE EXCEPTION '{refusal}'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
            format!(
                "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
            ),
        ],
    };
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    run_sql(app, &statements).await;
}

/// Two webhooks: "odd", whose receiver answers 200 with `body`, and "plain", answered as
/// usual. Returns them as created, in that order.
async fn one_odd_answer(app: &TestApp, receiver: &Receiver, body: &'static [u8]) -> (Value, Value) {
    receiver.respond("/odd", move |_, _| Reply {
        body,
        ..Reply::status(200)
    });
    let odd = app
        .create_webhook(&hook("odd", json!([{"url": receiver.url("/odd")}])))
        .await;
    let plain = app
        .create_webhook(&hook("plain", json!([{"url": receiver.url("/plain")}])))
        .await;
    (odd, plain)
}

/// A receiver's answer may hold a NUL byte (a binary body), which PostgreSQL's text cannot
/// store. It is logged with U+FFFD in its place, as invalid UTF-8 is. Before, the whole
/// recording batch failed on PostgreSQL, so this delivery and another webhook's recorded
/// with it stayed pending until their leases expired and were sent again.
async fn an_answer_with_a_nul_byte_is_logged(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (binary, plain) = one_odd_answer(&app, &receiver, b"ok\0\xffbin").await;
    app.ingest(&event("triggered", "t", incident("inc-nul", "triggered")))
        .await;
    for (created, body) in [
        (&binary, "ok\u{fffd}\u{fffd}bin"),
        (&plain, "receiver says hi"),
    ] {
        let id = created["id"].as_str().unwrap();
        let rows = app.settled_logs(id, 1).await;
        assert_eq!(rows[0]["state"], "succeeded", "{rows:?}");
        assert_eq!(rows[0]["attempts"], 1, "recorded at once, not sent again");
        let detail = app.log_entry(id, rows[0]["id"].as_str().unwrap()).await;
        assert_eq!(detail["attempts"][0]["response_body"], body);
    }
    assert_eq!(receiver.received("/odd").len(), 1);
    assert_eq!(receiver.received("/plain").len(), 1);
}

/// JSON text holding a NUL character (`\u0000`) is refused with a 400 that says so, on
/// both backends alike: PostgreSQL's text cannot store it, and an event carrying one
/// failed its whole intake batch first (then itself, as a 500 its producer would retry).
async fn text_with_a_nul_character_is_refused_at_the_door(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let refused = app
        .owner(
            Method::POST,
            "/v3/events",
            Some(&event("triggered", "t", incident("inc\u{0}x", "triggered"))),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.to_string().contains("NUL character"),
        "{}",
        refused.body
    );
    let mut body = hook("n\u{0}ame", json!([{"url": "https://example.com/h"}]));
    let refused = app.owner(Method::POST, HOOKS, Some(&body)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    body["name"] = json!("name");
    body["header"] = json!({"X-K\u{0}ey": "v"});
    let refused = app.owner(Method::POST, HOOKS, Some(&body)).await;
    assert_eq!(refused.status, 400, "a key too: {}", refused.body);
    assert_eq!(app.webhook_count().await, 0);
    // In an address (a path parameter or a filter looked up in the store), too: before,
    // a 500 on PostgreSQL.
    for path in [&format!("{HOOKS}/whk%00x"), "/v3/audit-logs?object=a%00b"] {
        let refused = app.owner(Method::GET, path, None).await;
        assert_eq!(refused.status, 400, "{path}: {}", refused.body);
        let said = refused.body["meta"]["error_message"].to_string();
        assert!(said.contains("NUL character"), "{path}: {said}");
    }
    let page = http_client()
        .get(format!("{}/webhooks/whk%00x/logs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<html") && page.contains("NUL character"),
        "{page}"
    );
    let org = app.organization().await;
    let stored = app.store.recent_incidents(&org.id, 10).await.unwrap();
    assert!(stored.is_empty(), "no event stored: {stored:?}");
}

async fn log_pages_walk_every_delivery_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let created = app
        .create_webhook(&hook("paged", json!([{"url": receiver.url("/p")}])))
        .await;
    let id = created["id"].as_str().unwrap();
    app.ingest_incidents(0..7).await;
    let all = app.settled_logs(id, 7).await;
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app.logs(id, &format!("?limit=3{cursor}")).await;
        walked.extend(
            page["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone()),
        );
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<Value> = all.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(walked, expected, "newest first, each once");
    let incidents: Vec<&str> = all
        .iter()
        .map(|r| r["incident_id"].as_str().unwrap())
        .collect();
    assert_eq!(incidents[0], "inc-6");
    assert_eq!(incidents[6], "inc-0");
}

async fn manual_trigger_sends_the_latest_snapshot(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let mut manual = hook("manual", json!([{"url": receiver.url("/manual")}]));
    manual["trigger_type"] = json!("manual");
    manual["triggers"] = json!([{"event_class": "incident", "event_type": "resolved"}]);
    let created = app.create_webhook(&manual).await;
    let id = created["id"].as_str().unwrap();
    app.ingest(&event("triggered", "t", incident("inc-9", "triggered")))
        .await;
    let mut later = incident("inc-9", "acknowledged");
    later["message"] = json!("updated message");
    app.ingest(&event("acknowledged", "t", later.clone())).await;
    // A note comes after: not the incident's state, so not what the trigger sends (a v1
    // webhook has no payload for it).
    let mut note = event("incident_notes_created", "t", later);
    note["resource"] = json!({"id": "note-1", "message": "looking"});
    app.ingest(&note).await;
    assert!(
        receiver.received("/manual").is_empty(),
        "manual webhooks do not fire by themselves"
    );

    let reply = app
        .owner(
            Method::POST,
            &format!("/v3/incidents/inc-9/actions/webhook/{id}"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["data"]["id"], id);
    assert_eq!(reply.body["data"]["name"], "manual");
    let got = receiver.wait_for("/manual", 1).await;
    let body = got[0].json();
    assert_eq!(body["event"]["type"], "incident.acknowledged");
    assert_eq!(body["data"]["resource_data"]["status"], "acknowledged");
    assert_eq!(body["data"]["resource_data"]["message"], "updated message");

    let unknown = app
        .owner(
            Method::POST,
            &format!("/v3/incidents/inc-404/actions/webhook/{id}"),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.message().contains("inc-404"));
    let no_hook = app
        .owner(
            Method::POST,
            "/v3/incidents/inc-9/actions/webhook/wh_missing",
            None,
        )
        .await;
    assert_eq!(no_hook.status, 404);
}

async fn private_addresses_are_refused_by_default(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.delivery.allowed_networks.clear()).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let created = app
        .create_webhook(&hook("local", json!([{"url": receiver.url("/local")}])))
        .await;
    let id = created["id"].as_str().unwrap();
    app.ingest(&event("triggered", "t", incident("inc-1", "triggered")))
        .await;
    let rows = app.settled_logs(id, 1).await;
    assert_eq!(rows[0]["state"], "failed");
    assert_eq!(rows[0]["attempts"], 1, "refused at once, not retried");
    let error = rows[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1") && error.contains("delivery.allowed_networks"),
        "{error}"
    );
    assert!(receiver.received("/local").is_empty());

    // The same through a host name: the resolved address is what is checked.
    let by_name = app
        .create_webhook(&hook(
            "by name",
            json!([{"url": receiver.url("/named").replace("127.0.0.1", "localhost")}]),
        ))
        .await;
    app.ingest(&event("triggered", "t", incident("inc-2", "triggered")))
        .await;
    let rows = app.settled_logs(by_name["id"].as_str().unwrap(), 1).await;
    assert_eq!(rows[0]["state"], "failed");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("delivery.allowed_networks"),
        "{}",
        rows[0]
    );
    assert!(receiver.received("/named").is_empty());
}

/// A receiver that sends its status line and headers, then stalls: the attempt is a
/// timeout failure after the webhook's timeout, not a success.
async fn an_answer_that_stalls_after_its_status_line_is_a_timeout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut open = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 65536];
            let _ = socket.read(&mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
                .await;
            open.push(socket); // never finished, never closed
        }
    });
    let mut body = hook(
        "stalling",
        json!([{"url": format!("http://127.0.0.1:{port}/hook")}]),
    );
    body["timeout_seconds"] = json!(1);
    body["max_retry"] = json!(0);
    let created = app.create_webhook(&body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let event = json!({"type": "incident.triggered", "team": {"id": "t"}, "incident": incident("inc-stall", "triggered")});
    assert_eq!(
        app.owner(Method::POST, "/v3/events", Some(&event))
            .await
            .status,
        202
    );
    let logs = eventually(
        "the attempt is recorded",
        || async {
            app.owner(Method::GET, &format!("{HOOKS}/{id}/logs"), None)
                .await
                .body["data"]["result"][0]
                .clone()
        },
        |d: &Value| d["state"] != "pending" && !d.is_null(),
    )
    .await;
    assert_eq!(logs["state"], "failed", "{logs}");
    let detail = app
        .owner(
            Method::GET,
            &format!("{HOOKS}/{id}/logs/{}", logs["id"].as_str().unwrap()),
            None,
        )
        .await;
    let attempt = &detail.body["data"]["attempts"][0];
    assert!(
        attempt["error"].as_str().unwrap().contains("timeout"),
        "{attempt}"
    );
    assert!(
        attempt["duration_ms"].as_u64().unwrap() < 5_000,
        "{attempt}"
    );
}

/// A rotation with a grace period: deliveries carry a signature with each secret (either
/// verifies) until it ends; without one only the new secret signs. Out of range: 422.
async fn rotated_secrets_sign_together_during_the_grace_period(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let created = app
        .create_webhook(&hook("rotating", json!([{"url": receiver.url("/in")}])))
        .await;
    let id = created["id"].as_str().unwrap();
    let first = created["secret"].as_str().unwrap().to_owned();
    let rotate = |body: Option<Value>| {
        let path = format!("{HOOKS}/{id}/rotate-secret");
        let app = &app;
        async move { app.owner(Method::POST, &path, body.as_ref()).await }
    };

    let reply = rotate(Some(json!({"grace_period_seconds": 3600}))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.body["data"]["secret"].as_str().unwrap().to_owned();
    assert!(reply.body["data"]["previous_secret_expires_at"].is_string());
    app.ingest(&event("triggered", "t", incident("inc-rot-1", "triggered")))
        .await;
    let got = receiver.wait_for("/in", 1).await;
    let signature = got[0].header("webhook-signature").to_owned();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    for secret in [&first, &second] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&got[0].body, &got[0].headers)
            .expect("both secrets verify during the grace period");
    }

    let reply = rotate(Some(json!({"grace_period_seconds": 0}))).await;
    let third = reply.body["data"]["secret"].as_str().unwrap().to_owned();
    assert!(reply.body["data"]["previous_secret_expires_at"].is_null());
    app.ingest(&event("triggered", "t", incident("inc-rot-2", "triggered")))
        .await;
    let got = receiver.wait_for("/in", 2).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 1);
    standardwebhooks::Webhook::new(&third)
        .unwrap()
        .verify(&got[1].body, &got[1].headers)
        .expect("the new secret verifies");
    for old in [&first, &second] {
        assert!(standardwebhooks::Webhook::new(old)
            .unwrap()
            .verify(&got[1].body, &got[1].headers)
            .is_err());
    }

    let reply = rotate(Some(json!({"grace_period_seconds": 604801}))).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.message().contains("grace_period_seconds"),
        "{}",
        reply.body
    );
    let reply = rotate(None).await;
    assert_eq!(reply.status, 200, "no body: 24 hours of grace");
}

/// "Send a test": a sample of the webhook's first trigger (or the type asked for) goes to
/// every URL now; the answer has each URL's status, time and answer; the log marks them
/// `test`, a failure is not retried. "Resend" makes a new delivery of a logged one with the
/// same bytes, linked to it.
async fn tests_and_resends_are_sent_now_and_logged(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.respond("/bad", |_, _| Reply::status(500));
    let created = app
        .create_webhook(&json!({
            "name": "tested", "is_all_teams_configured": true,
            "triggers": [{"event_class": "incident", "event_type": "triggered"},
                         {"event_class": "incident", "event_type": "incident_notes_created"}],
            "urls": [{"url": receiver.url("/ok")}, {"url": receiver.url("/bad"), "method": "PUT"}]
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("{HOOKS}/{id}/test");

    let reply = app.owner(Method::POST, &path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["data"]["event_type"], "incident.triggered");
    let results = reply.body["data"]["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    let ok = results
        .iter()
        .find(|r| r["url"].as_str().unwrap().ends_with("/ok"))
        .unwrap();
    assert_eq!(
        (ok["succeeded"].clone(), ok["status"].clone()),
        (json!(true), json!(200))
    );
    assert!(ok["duration_ms"].is_u64());
    let bad = results.iter().find(|r| r["method"] == "PUT").unwrap();
    assert_eq!(
        (bad["succeeded"].clone(), bad["status"].clone()),
        (json!(false), json!(500))
    );
    // Already there when the answer came: the call was made before answering.
    let got = receiver.received("/ok");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["event"]["type"], "incident.triggered");
    assert_eq!(
        got[0].header("webhook-id"),
        ok["delivery_id"].as_str().unwrap()
    );

    let reply = app
        .owner(
            Method::POST,
            &path,
            Some(&json!({"event_type": "incident.incident_notes_created"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = receiver.received("/ok");
    assert_eq!(got[1].json()["data"]["resource_type"], "incident_notes");
    let reply = app
        .owner(
            Method::POST,
            &path,
            Some(&json!({"event_type": "incident.exploded"})),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert!(reply.message().contains("event_type"), "{}", reply.body);

    let rows = app.settled_logs(id, 4).await;
    assert!(rows.iter().all(|r| r["origin"] == "test"), "{rows:?}");
    let failed: Vec<&Value> = rows.iter().filter(|r| r["state"] == "failed").collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed.iter().all(|r| r["attempts"] == 1),
        "a test is one attempt"
    );
    // The sample incident did not happen: it is in no incident list (the manual trigger,
    // which sends a known incident again, does not know it either).
    let org = app.organization().await;
    assert!(
        app.store
            .recent_incidents(&org.id, 50)
            .await
            .unwrap()
            .is_empty(),
        "test traffic stays out of the Incidents page"
    );

    // Resend the first successful one: a new delivery of the same payload row.
    let payloads = || async {
        let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payloads")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    };
    let payloads_before = payloads().await;
    let original = ok["delivery_id"].as_str().unwrap();
    let reply = app
        .owner(
            Method::POST,
            &format!("{HOOKS}/{id}/logs/{original}/resend"),
            None,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let new_id = reply.body["data"]["id"].as_str().unwrap().to_owned();
    let got = receiver.wait_for("/ok", 3).await;
    let again = got
        .iter()
        .find(|r| r.header("webhook-id") == new_id)
        .expect("resent");
    assert_eq!(again.body, got[0].body, "the same bytes");
    let row = app
        .owner(Method::GET, &format!("{HOOKS}/{id}/logs/{new_id}"), None)
        .await;
    assert_eq!(row.body["data"]["origin"], "resend");
    assert_eq!(row.body["data"]["resent_from"], original);
    assert_eq!(
        payloads().await,
        payloads_before,
        "no second copy of the bytes"
    );
    let missing = app
        .owner(
            Method::POST,
            &format!("{HOOKS}/{id}/logs/msg_nope/resend"),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
}

/// Waits for a bulk retry's progress (at `progress_path`) to say `done`; returns it.
async fn retry_done(app: &TestApp, progress_path: &str) -> crate::helpers::Reply {
    eventually(
        "the bulk retry finishes",
        || app.owner(Method::GET, progress_path, None),
        |r| r.body["data"]["state"] == "done",
    )
    .await
}

/// A webhook without retries whose URL refused every call until now: the three lifecycle
/// events of each of `incidents` failed, in order. The URL answers from now on.
async fn failed_lifecycles(app: &TestApp, incidents: &[&str]) -> (Receiver, Value) {
    let receiver = Receiver::start().await;
    let up = receiver.failing_until("/flaky", 422);
    let created = app
        .create_webhook(&patched(
            hook("flaky", json!([{"url": receiver.url("/flaky")}])),
            json!({"max_retry": 0}),
        ))
        .await;
    for incident_id in incidents {
        for status in ["triggered", "acknowledged", "resolved"] {
            app.ingest(&event(status, "t", incident(incident_id, status)))
                .await;
        }
    }
    let id = created["id"].as_str().unwrap();
    let rows = app.settled_logs(id, incidents.len() * 3).await;
    assert!(rows.iter().all(|r| r["state"] == "failed"), "{rows:?}");
    up.on();
    (receiver, created)
}

/// A bulk retry re-queues every matching finished delivery, in order, in the background;
/// its progress can be read, and each re-queued delivery gets one more attempt.
async fn a_bulk_retry_requeues_matching_deliveries_in_order(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (receiver, created) = failed_lifecycles(&app, &["inc-a", "inc-b", "inc-c"]).await;
    let id = created["id"].as_str().unwrap();

    let path = format!("{HOOKS}/{id}/logs/retry");
    let bad = app
        .owner(Method::POST, &path, Some(&json!({"state": "pending"})))
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    // A disabled webhook sends nothing, re-queued or not: enable it first.
    let one = format!("{HOOKS}/{id}");
    let mut off = app.owner(Method::GET, &one, None).await.body["data"].clone();
    off["enabled"] = json!(false);
    assert_eq!(app.owner(Method::PUT, &one, Some(&off)).await.status, 200);
    let refused = app
        .owner(Method::POST, &path, Some(&json!({"state": "failed"})))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.message().contains("enable it first"),
        "{}",
        refused.body
    );
    off["enabled"] = json!(true);
    assert_eq!(app.owner(Method::PUT, &one, Some(&off)).await.status, 200);
    let bad = app
        .owner(Method::POST, &path, Some(&json!({"colour": "red"})))
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);

    let started = app
        .owner(
            Method::POST,
            &path,
            Some(&json!({"state": "failed", "incident_id": "inc-b"})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    assert_eq!(started.body["data"]["total"], 3);
    let job = started.body["data"]["id"].as_str().unwrap().to_owned();
    let progress_path = format!("{path}/{job}");
    let progress = retry_done(&app, &progress_path).await;
    assert_eq!(progress.body["data"]["done"], 3);

    // The three of inc-b go again, in their order; the others stay failed.
    let got = receiver.wait_for("/flaky", 12).await;
    assert_eq!(
        resource_data(&got[9..], "status"),
        ["triggered", "acknowledged", "resolved"]
    );
    assert!(got[9..]
        .iter()
        .all(|r| r.json()["data"]["resource_data"]["id"] == "inc-b"));
    let rows = app.settled_logs(id, 9).await;
    for row in &rows {
        let again = row["incident_id"] == "inc-b";
        assert_eq!(
            row["state"],
            if again { "succeeded" } else { "failed" },
            "{row}"
        );
        assert_eq!(row["attempts"], if again { 2 } else { 1 }, "{row}");
    }
}

/// `delivery.record_linger`: results wait that long for company before they are written,
/// and an incident's next event goes once its previous one is recorded, so it follows no
/// sooner; with `0s` it follows sooner than that. (Compared with each other, not with a
/// wall-clock bound a slow machine could pass.)
async fn results_wait_for_company_as_configured(backend: Backend) {
    let mut gaps = Vec::new();
    for linger in [Duration::from_millis(600), Duration::ZERO] {
        let Some(app) = spawn_app_with(backend, |c| c.delivery.record_linger = linger).await else {
            return;
        };
        let receiver = Receiver::start().await;
        app.create_webhook(&hook("one", json!([{"url": receiver.url("/in")}])))
            .await;
        for status in ["triggered", "acknowledged"] {
            app.ingest(&event(status, "t", incident("inc-l", status)))
                .await;
        }
        let got = receiver.wait_for("/in", 2).await;
        let gap = got[1].at.duration_since(got[0].at);
        assert!(
            gap >= linger.saturating_sub(Duration::from_millis(50)),
            "linger {linger:?}: the next came after {gap:?}"
        );
        gaps.push(gap);
    }
    assert!(
        gaps[1] < gaps[0],
        "without a linger the next event followed after {:?}, with 600 ms after {:?}",
        gaps[1],
        gaps[0]
    );
}

/// A bulk retry whose node died mid-way (its job row left `running`, silent, half done) is
/// taken up by a running node from where it stopped: the rest goes again, in order, and
/// what was already re-queued is not sent twice.
async fn a_bulk_retry_left_by_a_dead_node_is_finished(backend: Backend) {
    use tocsin::domain::delivery::{DeliveryState, RetryJob, RetryJobState};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (receiver, created) = failed_lifecycles(&app, &["inc-a", "inc-b"]).await;
    let id = created["id"].as_str().unwrap();

    // The dead node had re-queued inc-a's three (position: the third delivery) when it
    // stopped; its job has been silent for five minutes.
    let org: tocsin::domain::ids::OrganizationId =
        created["organization_id"].as_str().unwrap().into();
    let hook_id: tocsin::domain::ids::WebhookId = id.into();
    let failed = tocsin::store::LogQuery {
        state: Some(DeliveryState::Failed),
        limit: 100,
        ..Default::default()
    };
    let mut seqs: Vec<i64> = app
        .store
        .list_deliveries(&org, &hook_id, &failed)
        .await
        .unwrap()
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    seqs.sort();
    let job = RetryJob {
        id: "rtj_left".into(),
        organization_id: org.clone(),
        webhook_id: hook_id.clone(),
        filters: json!({"state": "failed"}),
        state: RetryJobState::Running,
        total: 6,
        done: 3,
        after_seq: seqs[2],
        error: None,
        created_at: tocsin::domain::Timestamp::from_micros(
            tocsin::domain::Timestamp::now().as_micros() - 300_000_000,
        ),
        finished_at: None,
    };
    let q = tocsin::store::LogQuery {
        state: Some(DeliveryState::Failed),
        ..Default::default()
    };
    app.store
        .create_retry_job(&job, &q, "run_dead")
        .await
        .unwrap();

    let progress_path = format!("{HOOKS}/{id}/logs/retry/rtj_left");
    let progress = retry_done(&app, &progress_path).await;
    assert_eq!(progress.body["data"]["done"], 6, "{}", progress.body);
    let got = receiver.wait_for("/flaky", 9).await;
    let again: Vec<(String, String)> = got[6..]
        .iter()
        .map(|r| {
            let data = &r.json()["data"]["resource_data"];
            (
                data["id"].as_str().unwrap().to_owned(),
                data["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        again,
        [
            ("inc-b".to_owned(), "triggered".to_owned()),
            ("inc-b".to_owned(), "acknowledged".to_owned()),
            ("inc-b".to_owned(), "resolved".to_owned()),
        ]
    );
    let rows = app.settled_logs(id, 6).await;
    for row in &rows {
        let again = row["incident_id"] == "inc-b";
        assert_eq!(
            row["state"],
            if again { "succeeded" } else { "failed" },
            "{row}"
        );
    }
}

/// A bulk retry of deliveries older than `delivery.max_age` gives them a fresh start: they
/// are sent, not failed as expired before their first new attempt.
async fn a_bulk_retry_restarts_the_max_age_clock(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.delivery.max_age = std::time::Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let up = receiver.failing_until("/late", 422);
    let created = app
        .create_webhook(&patched(
            hook("late", json!([{"url": receiver.url("/late")}])),
            json!({"max_retry": 0}),
        ))
        .await;
    let id = created["id"].as_str().unwrap();
    app.ingest_incidents(0..2).await;
    app.settled_logs(id, 2).await;
    // Wait until they are older than max_age.
    eventually(
        "the failed deliveries are older than max_age",
        || async {
            app.logs(id, "").await["result"][0]["created_at"]
                .as_str()
                .unwrap()
                .to_owned()
        },
        |created: &String| {
            let made = time::OffsetDateTime::parse(
                created,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            time::OffsetDateTime::now_utc() - made > time::Duration::milliseconds(1500)
        },
    )
    .await;
    up.on();
    let started = app
        .owner(
            Method::POST,
            &format!("{HOOKS}/{id}/logs/retry"),
            Some(&json!({"state": "failed"})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    receiver.wait_for("/late", 4).await;
    let rows = app.settled_logs(id, 2).await;
    assert!(rows.iter().all(|r| r["state"] == "succeeded"), "{rows:?}");
}

/// An event the database refuses to take is answered 503 with `Retry-After` and words that
/// say nothing was kept and to send it again (a sender's cue to retry), not a 500 that
/// reads as a bug; the database's own words stay in the log. Other events go through.
async fn an_event_the_store_cannot_write_is_answered_503(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    app.create_webhook(&hook("h", json!([{"url": receiver.url("/h")}])))
        .await;
    refuse_inserts(&app, backend, "events", "NEW.incident_id = 'inc-refused'").await;
    let refused = http_client()
        .post(format!("{}/v3/events", app.address))
        .bearer_auth(&app.owner_token)
        .header("content-type", "application/json")
        .body(event("triggered", "t", incident("inc-refused", "triggered")).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["meta"]["error_code"], "unavailable", "{body}");
    let said = body["meta"]["error_message"].as_str().unwrap();
    assert!(
        said.contains("nothing of it was kept: send it again") && !said.contains("injected"),
        "{said}"
    );
    app.ingest(&event("triggered", "t", incident("inc-ok", "triggered")))
        .await;
    let got = receiver.wait_for("/h", 1).await;
    assert_eq!(got[0].json()["data"]["resource_data"]["id"], "inc-ok");
    let org = app.organization().await;
    let stored = app.store.recent_incidents(&org.id, 10).await.unwrap();
    assert_eq!(stored.len(), 1, "only inc-ok: {stored:?}");
}

/// A result the store refuses (here a trigger refuses one answer's attempt) costs only its
/// own delivery: once its batch has failed for good, the results are recorded one by one,
/// so another webhook's delivery recorded in the same batch is not left to its lease's
/// expiry and sent again (as it was when a chunked upsert or a NUL failed whole batches).
async fn a_result_the_store_refuses_does_not_take_its_batch_with_it(backend: Backend) {
    // Long enough that both results share one batch.
    let Some(app) = spawn_app_with(backend, |c| {
        c.delivery.record_linger = Duration::from_millis(500)
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let (poison, fine) = one_odd_answer(&app, &receiver, b"poison").await;
    refuse_inserts(&app, backend, "attempts", "NEW.response_body = 'poison'").await;
    app.ingest(&event("triggered", "t", incident("inc-p", "triggered")))
        .await;
    receiver.wait_for("/odd", 1).await;
    receiver.wait_for("/plain", 1).await;

    let rows = app.settled_logs(fine["id"].as_str().unwrap(), 1).await;
    assert_eq!(rows[0]["state"], "succeeded", "{rows:?}");
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(receiver.received("/plain").len(), 1, "sent once");
    let refused = app.logs(poison["id"].as_str().unwrap(), "").await;
    assert_eq!(
        refused["result"][0]["state"], "pending",
        "the refused result alone waits for its lease: {refused}"
    );
}

/// A bulk retry whose steps fail for a while (the store refuses them, as during a
/// failover) tries again and finishes, instead of giving up at the first error.
async fn a_bulk_retry_outlasts_a_store_that_hiccups(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (receiver, created) = failed_lifecycles(&app, &["inc-h"]).await;
    let id = created["id"].as_str().unwrap();

    // Every update of a bulk retry's row fails until `until` (seconds since the epoch);
    // a step begins with one.
    let hiccup = Duration::from_millis(2500);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        + hiccup;
    let fault: &[&str] = match backend {
        Backend::Sqlite => &[
            "CREATE TABLE fault (until REAL NOT NULL)",
            "CREATE TRIGGER fault BEFORE UPDATE ON retry_jobs \
             WHEN (SELECT until FROM fault) > unixepoch('subsec') \
             BEGIN SELECT RAISE(ABORT, 'injected: the store hiccups'); END",
        ],
        Backend::Postgres => &[
            "CREATE TABLE fault (until DOUBLE PRECISION NOT NULL)",
            "CREATE FUNCTION fault() RETURNS trigger AS $$ BEGIN \
               IF (SELECT until FROM fault) > extract(epoch FROM clock_timestamp()) THEN \
                 RAISE EXCEPTION 'injected: the store hiccups'; \
               END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fault BEFORE UPDATE ON retry_jobs \
             FOR EACH ROW EXECUTE FUNCTION fault()",
        ],
    };
    let fill = format!("INSERT INTO fault (until) VALUES ({})", until.as_secs_f64());
    run_sql(&app, &[fault, &[fill.as_str()]].concat()).await;

    let path = format!("{HOOKS}/{id}/logs/retry");
    let started_at = std::time::Instant::now();
    let started = app
        .owner(Method::POST, &path, Some(&json!({"state": "failed"})))
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let job = started.body["data"]["id"].as_str().unwrap().to_owned();
    let progress_path = format!("{path}/{job}");
    let ended = eventually(
        "the bulk retry ends",
        || app.owner(Method::GET, &progress_path, None),
        |r| r.body["data"]["state"] != "running",
    )
    .await;
    assert_eq!(ended.body["data"]["state"], "done", "{}", ended.body);
    assert_eq!(ended.body["data"]["done"], 3, "{}", ended.body);
    assert!(
        started_at.elapsed() >= hiccup - Duration::from_millis(500),
        "the steps were refused until the fault ended ({:?})",
        started_at.elapsed()
    );
    // Sent again once each, in order.
    let got = receiver.wait_for("/flaky", 6).await;
    assert_eq!(
        resource_data(&got[3..], "status"),
        ["triggered", "acknowledged", "resolved"]
    );
}

both_backends!(
    an_event_the_store_cannot_write_is_answered_503,
    a_result_the_store_refuses_does_not_take_its_batch_with_it,
    a_bulk_retry_outlasts_a_store_that_hiccups,
    results_wait_for_company_as_configured,
    a_bulk_retry_left_by_a_dead_node_is_finished,
    a_bulk_retry_restarts_the_max_age_clock,
    a_bulk_retry_requeues_matching_deliveries_in_order,
    tests_and_resends_are_sent_now_and_logged,
    rotated_secrets_sign_together_during_the_grace_period,
    an_answer_that_stalls_after_its_status_line_is_a_timeout,
    v2_payloads_equal_squadcast_samples,
    v1_payloads_equal_squadcast_samples,
    every_url_gets_its_method_headers_and_a_valid_signature,
    only_matching_webhooks_receive,
    a_repeated_producer_id_is_accepted_once,
    invalid_events_are_refused_and_store_nothing,
    logs_show_what_the_receiver_got,
    an_answer_with_a_nul_byte_is_logged,
    text_with_a_nul_character_is_refused_at_the_door,
    log_pages_walk_every_delivery_once,
    manual_trigger_sends_the_latest_snapshot,
    private_addresses_are_refused_by_default,
);
