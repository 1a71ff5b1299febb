//! Event sources over the API: managing them (fields, validation, abilities, audit, the
//! credential shown once and rotated, secrets masked) and what their payloads become
//! (incident state across notifications, PagerDuty signatures, receipts).

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::{
    eventually, http_client, minimal_webhook, receiver::Receiver, spawn_app, Backend, TestApp,
};

/// An Alertmanager notification for one group, firing or resolved.
fn alertmanager(group: &str, status: &str) -> Value {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{group}\"}}"), "status": status,
        "receiver": "tocsin", "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "service": "db", "team": "storage"},
        "commonAnnotations": {"summary": format!("{group} on db-1"), "description": "95% used"},
        "externalURL": "http://am.example",
        "alerts": [{"status": status, "labels": {"alertname": group, "service": "db", "team": "storage"},
            "annotations": {"summary": format!("{group} on db-1")},
            "startsAt": "2026-12-07T08:00:00Z",
            "endsAt": if status == "resolved" { "2026-12-07T08:10:00Z" } else { "0001-01-01T00:00:00Z" },
            "generatorURL": "http://prom.example/graph", "fingerprint": format!("fp-{group}")}]
    })
}

async fn create(app: &TestApp, body: Value) -> Value {
    let reply = app.owner(Method::POST, "/v3/sources", Some(&body)).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["data"].clone()
}

async fn post(app: &TestApp, source: &Value, token: &str, body: &Value) -> (u16, Value) {
    let path = format!("/v3/sources/{}/events", source["id"].as_str().unwrap());
    let reply = app
        .call(Method::POST, &path, Some(token), Some(body.to_string()))
        .await;
    (reply.status, reply.body)
}

/// The source's receipts once there are `count` of them (they are written a moment after
/// each answer: nothing waits for them).
async fn receipts(app: &TestApp, source: &Value, count: usize) -> Vec<Value> {
    let path = format!("/v3/sources/{}/receipts", source["id"].as_str().unwrap());
    eventually(
        &format!("{count} receipts"),
        || async {
            let reply = app.owner(Method::GET, &path, None).await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            reply.body["data"].as_array().unwrap().clone()
        },
        |kept| kept.len() >= count,
    )
    .await
}

/// A webhook for every incident lifecycle type, to `receiver`'s `/in`.
async fn listen(app: &TestApp, receiver: &Receiver) {
    let mut hook = minimal_webhook("all");
    hook["urls"] = json!([{"url": receiver.url("/in"), "method": "POST"}]);
    hook["triggers"] = json!([
        "triggered",
        "acknowledged",
        "reassigned",
        "resolved",
        "incident_notes_created"
    ]
    .iter()
    .map(|t| json!({"event_class": "incident", "event_type": t}))
    .collect::<Vec<_>>());
    app.create_webhook(&hook).await;
}

async fn round_trip_validation_and_audit(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let created = create(
        &app,
        json!({"name": "Prometheus prod", "kind": "alertmanager", "description": "prod cluster",
               "team": {"id": "t-sre", "name": "SRE"}, "settings": {"incident_per": "alert", "service_label": "app"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("src_"), "{id}");
    assert!(created["token"].as_str().unwrap().starts_with("tsrc_"));
    assert_eq!(
        created["url"],
        format!("{}/v3/sources/{id}/events", app.address)
    );
    assert_eq!(created["settings"]["incident_per"], "alert");
    assert_eq!(created["settings"]["service_label"], "app");
    assert_eq!(created["settings"]["team_label"], "team", "a default");

    // The credential is shown once: not in a read, not in the list.
    let one = app
        .owner(Method::GET, &format!("/v3/sources/{id}"), None)
        .await;
    assert_eq!(one.status, 200);
    assert!(one.body["data"].get("token").is_none(), "{:?}", one.body);
    let list = app.owner(Method::GET, "/v3/sources", None).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert!(!list
        .body
        .to_string()
        .contains(created["token"].as_str().unwrap()));

    // GET → edit → PUT works (read-only fields are accepted and ignored); the kind stays.
    let mut edited = one.body["data"].clone();
    edited["name"] = json!("Prometheus production");
    edited["enabled"] = json!(false);
    let put = app
        .owner(Method::PUT, &format!("/v3/sources/{id}"), Some(&edited))
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(put.body["data"]["name"], "Prometheus production");
    assert_eq!(put.body["data"]["enabled"], false);
    edited["kind"] = json!("grafana");
    let refused = app
        .owner(Method::PUT, &format!("/v3/sources/{id}"), Some(&edited))
        .await;
    assert_eq!(refused.status, 409, "a clash with the stored source");
    assert!(
        refused
            .message()
            .contains("kind: cannot change from alertmanager"),
        "{}",
        refused.message()
    );

    // Every bad field is named, and nothing is stored.
    let bad = app
        .owner(
            Method::POST,
            "/v3/sources",
            Some(&json!({"name": "", "kind": "nagios", "settings": {"x": 1}, "colour": "red"})),
        )
        .await;
    assert_eq!(bad.status, 422);
    for field in ["name", "kind", "colour"] {
        assert!(bad.message().contains(field), "{field}: {}", bad.message());
    }
    let generic = app
        .owner(
            Method::POST,
            "/v3/sources",
            Some(&json!({"name": "g", "kind": "generic", "settings": {"incident_id": "payload.id", "message": "payload."}})),
        )
        .await;
    assert_eq!(generic.status, 422);
    assert!(
        generic.message().contains("settings.status"),
        "{}",
        generic.message()
    );
    assert!(
        generic.message().contains("settings.message"),
        "{}",
        generic.message()
    );
    let list = app.owner(Method::GET, "/v3/sources", None).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);

    // Each change is audited, never with the credential.
    let deleted = app
        .owner(Method::DELETE, &format!("/v3/sources/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    let gone = app
        .owner(Method::GET, &format!("/v3/sources/{id}"), None)
        .await;
    assert_eq!(gone.status, 404);
    let audit = app
        .owner(Method::GET, &format!("/v3/audit-logs?object={id}"), None)
        .await;
    let actions: Vec<&str> = audit.body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["source.deleted", "source.updated", "source.created"]
    );
    assert!(!audit
        .body
        .to_string()
        .contains(created["token"].as_str().unwrap()));
}

async fn abilities_decide_who_manages_sources(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = |abilities: Value| {
        let app = &app;
        async move {
            let reply = app
                .owner(
                    Method::POST,
                    "/v3/api-tokens",
                    Some(&json!({"name": "t", "abilities": abilities})),
                )
                .await;
            reply.body["data"]["token"].as_str().unwrap().to_owned()
        }
    };
    let reader = token(json!(["read"])).await;
    let manager = token(json!(["read", "manage-webhooks"])).await;
    let body = json!({"name": "pd", "kind": "pagerduty"}).to_string();
    let as_reader = app
        .call(
            Method::POST,
            "/v3/sources",
            Some(&reader),
            Some(body.clone()),
        )
        .await;
    assert_eq!(as_reader.status, 403, "{:?}", as_reader.body);
    let as_manager = app
        .call(Method::POST, "/v3/sources", Some(&manager), Some(body))
        .await;
    assert_eq!(as_manager.status, 201, "{:?}", as_manager.body);
    let listed = app
        .call(Method::GET, "/v3/sources", Some(&reader), None)
        .await;
    assert_eq!(listed.status, 200);
    // A source's credential is not an API token, nor the other way round.
    let source_token = as_manager.body["data"]["token"].as_str().unwrap();
    let as_source = app
        .call(Method::GET, "/v3/sources", Some(source_token), None)
        .await;
    assert_eq!(as_source.status, 401);
    let id = as_manager.body["data"]["id"].as_str().unwrap();
    let with_api_token = app
        .call(
            Method::POST,
            &format!("/v3/sources/{id}/events"),
            Some(&app.owner_token),
            Some("{}".into()),
        )
        .await;
    assert_eq!(with_api_token.status, 401);
}

async fn rotation_ends_the_old_credential(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let source = create(&app, json!({"name": "prom", "kind": "alertmanager"})).await;
    let old = source["token"].as_str().unwrap().to_owned();
    let empty = json!({"version": "4", "groupKey": "g", "status": "firing", "alerts": []});
    assert_eq!(post(&app, &source, &old, &empty).await.0, 202);
    let rotated = app
        .owner(
            Method::POST,
            &format!(
                "/v3/sources/{}/rotate-token",
                source["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new = rotated.body["data"]["token"].as_str().unwrap();
    assert_ne!(new, old);
    let (status, body) = post(&app, &source, &old, &empty).await;
    assert_eq!(status, 401, "{body:?}");
    assert_eq!(post(&app, &source, new, &empty).await.0, 202);
    // The refusal is where a person setting up the tool looks.
    let kept = receipts(&app, &source, 3).await;
    assert_eq!(kept[1]["outcome"], "refused");
    assert!(
        kept[1]["results"][0]
            .as_str()
            .unwrap()
            .contains("wrong token"),
        "{:?}",
        kept[1]
    );
}

async fn an_alert_group_is_one_incident_from_firing_to_resolved(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    listen(&app, &receiver).await;
    let source = create(
        &app,
        json!({"name": "prom", "kind": "alertmanager", "team": {"id": "t-ops", "name": "Ops"}}),
    )
    .await;
    let token = source["token"].as_str().unwrap();

    // Never triggered: a resolve is ignored, and says why.
    let (status, body) = post(&app, &source, token, &alertmanager("Early", "resolved")).await;
    assert_eq!(status, 202, "{body:?}");
    assert_eq!(body["data"]["events"], json!([]));
    assert!(
        body["data"]["ignored"][0]
            .as_str()
            .unwrap()
            .contains("never triggered"),
        "{body:?}"
    );

    let (status, first) = post(&app, &source, token, &alertmanager("DiskFull", "firing")).await;
    assert_eq!(status, 202, "{first:?}");
    assert_eq!(first["data"]["events"][0]["type"], "incident.triggered");
    let incident = first["data"]["events"][0]["incident_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A re-notification of the firing group is not a new event.
    let (_, again) = post(&app, &source, token, &alertmanager("DiskFull", "firing")).await;
    assert_eq!(again["data"]["events"], json!([]), "{again:?}");
    assert!(again["data"]["ignored"][0]
        .as_str()
        .unwrap()
        .contains("re-notification"));
    let (_, resolved) = post(&app, &source, token, &alertmanager("DiskFull", "resolved")).await;
    assert_eq!(resolved["data"]["events"][0]["type"], "incident.resolved");
    assert_eq!(
        resolved["data"]["events"][0]["incident_id"],
        incident.as_str()
    );
    let (_, twice) = post(&app, &source, token, &alertmanager("DiskFull", "resolved")).await;
    assert!(twice["data"]["ignored"][0]
        .as_str()
        .unwrap()
        .contains("already resolved"));
    // Firing again after resolving is a new incident.
    let (_, anew) = post(&app, &source, token, &alertmanager("DiskFull", "firing")).await;
    assert_eq!(anew["data"]["events"][0]["type"], "incident.triggered");
    assert_ne!(anew["data"]["events"][0]["incident_id"], incident.as_str());

    let got = receiver.wait_for("/in", 3).await;
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    // Per incident in order; two incidents do not wait for each other.
    let of = |id: &str| -> Vec<&str> {
        bodies
            .iter()
            .filter(|b| b["data"]["resource_data"]["id"] == id)
            .map(|b| b["event"]["type"].as_str().unwrap())
            .collect()
    };
    assert_eq!(of(&incident), ["incident.triggered", "incident.resolved"]);
    let second = anew["data"]["events"][0]["incident_id"].as_str().unwrap();
    assert_eq!(of(second), ["incident.triggered"]);
    let data = &bodies
        .iter()
        .find(|b| b["data"]["resource_data"]["id"] == incident.as_str())
        .unwrap()["data"];
    assert_eq!(data["resource_data"]["id"], incident.as_str());
    assert_eq!(data["resource_data"]["message"], "DiskFull on db-1");
    assert_eq!(data["resource_data"]["service"]["id"], "db");
    assert_eq!(data["resource_data"]["alert_source"]["type"], "Prometheus");
    assert_eq!(
        data["team"]["id"], "storage",
        "the team label wins over the source's team"
    );
    assert!(bodies
        .iter()
        .any(|b| b["event"]["type"] == "incident.resolved"
            && b["data"]["resource_data"]["status"] == "resolved"));

    // The receipts tell the story, newest first, with what each became.
    let kept = receipts(&app, &source, 6).await;
    let outcomes: Vec<&str> = kept
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["accepted", "ignored", "accepted", "ignored", "accepted", "ignored"]
    );
    assert!(kept[5]["body"].as_str().unwrap().contains("Early"));
    let list = app.owner(Method::GET, "/v3/sources", None).await;
    let shown = &list.body["data"][0];
    assert_eq!(
        shown["counts_today"],
        json!({"accepted": 3, "ignored": 3, "refused": 0})
    );
    assert!(shown["last_received_at"].is_string());
    // What sources have seen fills the filter builder's lists.
    let services = app.owner(Method::GET, "/v3/services", None).await;
    assert!(
        services.body.to_string().contains("\"db\""),
        "{:?}",
        services.body
    );
}

/// Retention forgets what a source knew of long-resolved incidents but for their counters:
/// a group that fires again is a new incident whose events are new, not duplicates of the
/// first incident's (still stored: an incident keeps its latest event).
async fn a_pruned_state_still_makes_a_new_incident(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let source = create(&app, json!({"name": "prom", "kind": "alertmanager"})).await;
    let token = source["token"].as_str().unwrap();
    let (_, first) = post(&app, &source, token, &alertmanager("Disk", "firing")).await;
    let (_, resolved) = post(&app, &source, token, &alertmanager("Disk", "resolved")).await;
    assert_eq!(resolved["data"]["events"][0]["duplicate"], false);
    let later = tocsin::domain::Timestamp::now().plus(std::time::Duration::from_secs(60));
    app.store.prune_records(later, 500).await.unwrap();
    let (_, again) = post(&app, &source, token, &alertmanager("Disk", "firing")).await;
    let (_, resolved_again) = post(&app, &source, token, &alertmanager("Disk", "resolved")).await;
    for (answer, kind) in [
        (&again, "incident.triggered"),
        (&resolved_again, "incident.resolved"),
    ] {
        let event = &answer["data"]["events"][0];
        assert_eq!(event["type"], kind, "{answer:?}");
        assert_eq!(event["duplicate"], false, "a new event: {answer:?}");
    }
    assert_ne!(
        again["data"]["events"][0]["incident_id"],
        first["data"]["events"][0]["incident_id"]
    );
}

fn signed(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn pagerduty_signatures_are_checked_when_a_secret_is_set(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let source = create(
        &app,
        json!({"name": "pd", "kind": "pagerduty", "settings": {"signing_secret": "whsec-pd"}}),
    )
    .await;
    assert_eq!(source["settings"]["signing_secret"], "********", "masked");
    let token = source["token"].as_str().unwrap();
    let url = format!(
        "{}/v3/sources/{}/events",
        app.address,
        source["id"].as_str().unwrap()
    );
    let body = json!({"event": {"id": "01DEN1HKP8Y3WTJHLNKBS1CU9W", "event_type": "incident.triggered",
        "resource_type": "incident", "occurred_at": "2026-12-07T08:00:00Z",
        "data": {"id": "PGR0VU2", "type": "incident", "title": "A little bump in the road", "status": "triggered",
                 "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                 "service": {"id": "PF9KMXH", "summary": "API Service", "type": "service_reference"},
                 "urgency": "high", "number": 2}}})
    .to_string();
    let client = http_client();
    let send = |signature: Option<String>| {
        let request = client
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone());
        let request = match signature {
            Some(s) => request.header("x-pagerduty-signature", s),
            None => request,
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(None).await, 401, "unsigned");
    assert_eq!(
        send(Some(signed("other", &body))).await,
        401,
        "wrong secret"
    );
    // During a rotation PagerDuty signs with several secrets: any one that holds will do.
    let both = format!(
        "{},{}",
        signed("old-secret", &body),
        signed("whsec-pd", &body)
    );
    assert_eq!(send(Some(both)).await, 202);
    let kept = receipts(&app, &source, 3).await;
    assert_eq!(kept[0]["outcome"], "accepted");
    assert_eq!(kept[1]["outcome"], "refused");
    assert_eq!(kept[1]["status"], 401);

    // The masked secret sent back keeps it; the audit log never shows it.
    let mut edited = source.clone();
    edited["description"] = json!("PD prod");
    let put = app
        .owner(
            Method::PUT,
            &format!("/v3/sources/{}", source["id"].as_str().unwrap()),
            Some(&edited),
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let again = format!("{},{}", signed("nope", &body), signed("whsec-pd", &body));
    assert_eq!(send(Some(again)).await, 202, "still the same secret");
    // A rename that names no settings does not turn the check off.
    let renamed = app
        .owner(
            Method::PUT,
            &format!("/v3/sources/{}", source["id"].as_str().unwrap()),
            Some(&json!({"name": "PagerDuty prod", "kind": "pagerduty"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(
        renamed.body["data"]["settings"]["signing_secret"],
        "********"
    );
    assert_eq!(send(None).await, 401, "still checked after a rename");
    let audit = app.owner(Method::GET, "/v3/audit-logs", None).await;
    assert!(!audit.body.to_string().contains("whsec-pd"));
}

/// A node stopping writes the receipts still waiting for company: the last payload before
/// a restart is in the source's receipts when the node has stopped.
async fn a_stopping_node_writes_its_last_receipts(backend: Backend) {
    let Some(mut app) = spawn_app(backend).await else {
        return;
    };
    let source = create(&app, json!({"name": "prom", "kind": "alertmanager"})).await;
    let token = source["token"].as_str().unwrap().to_owned();
    let (status, _) = post(&app, &source, &token, &alertmanager("DiskFull", "firing")).await;
    assert_eq!(status, 202);
    app.stop().await;
    let id = tocsin::domain::ids::SourceId::from(source["id"].as_str().unwrap());
    let kept = app.store.receipts(&id, 10).await.unwrap();
    assert_eq!(
        kept.len(),
        1,
        "the receipt is written by the time the node has stopped"
    );
    assert_eq!(kept[0].status, 202);
}

both_backends!(
    a_stopping_node_writes_its_last_receipts,
    round_trip_validation_and_audit,
    abilities_decide_who_manages_sources,
    rotation_ends_the_old_credential,
    an_alert_group_is_one_incident_from_firing_to_resolved,
    pagerduty_signatures_are_checked_when_a_secret_is_set,
    a_pruned_state_still_makes_a_new_incident,
);
