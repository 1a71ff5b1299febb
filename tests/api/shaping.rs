//! Filters, custom payload templates and chat presets, through the real server.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::delivery::{hook, HOOKS};
use crate::helpers::receiver::{resource_data, Receiver};
use crate::helpers::{patched, spawn_app, Backend};

fn incident_event(n: usize, service: &str, source: &str, severity: &str) -> Value {
    json!({
        "type": "incident.triggered",
        "team": {"id": "t"},
        "incident": {
            "id": format!("inc-{n}"), "message": format!("incident {n}"), "status": "triggered",
            "service": {"id": service}, "alert_source": {"id": source},
            "tags": {"severity": {"value": severity, "color": "#000"}}
        }
    })
}

fn cond(op: &str, lhs: &str, rhs: &str) -> Value {
    json!({"op": op, "lhs": lhs, "rhs": rhs})
}

async fn filtered_webhooks_receive_exactly_their_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let by_service = json!({"op": "and", "conditions": [cond("is", "service", "svc-a")]});
    let by_source = json!({"op": "and", "conditions": [cond("is", "alert_source", "as-x")]});
    let nested = json!({"op": "or", "conditions": [
        {"op": "and", "conditions": [cond("is", "service", "svc-a"), cond("is", "alert_source", "as-x")]},
        cond("is", "tags.severity", "critical")
    ]});
    for (path, filters) in [
        ("/service", by_service),
        ("/source", by_source),
        ("/nested", nested),
    ] {
        app.create_webhook(&patched(
            hook(path, json!([{"url": receiver.url(path)}])),
            json!({"filters": filters}),
        ))
        .await;
    }
    let mut expected = std::collections::HashMap::<&str, Vec<String>>::new();
    let mut n = 0;
    for service in ["svc-a", "svc-b"] {
        for source in ["as-x", "as-y"] {
            for severity in ["critical", "low"] {
                n += 1;
                let body = incident_event(n, service, source, severity);
                let wants = [
                    ("/service", service == "svc-a"),
                    ("/source", source == "as-x"),
                    (
                        "/nested",
                        (service == "svc-a" && source == "as-x") || severity == "critical",
                    ),
                ];
                let count = wants.iter().filter(|(_, w)| *w).count();
                let reply = app.owner(Method::POST, "/v3/events", Some(&body)).await;
                assert_eq!(
                    reply.body["data"]["deliveries"], count,
                    "event {n}: {service} {source} {severity}"
                );
                for (path, wanted) in wants {
                    if wanted {
                        expected.entry(path).or_default().push(format!("inc-{n}"));
                    }
                }
            }
        }
    }
    for (path, incidents) in expected {
        let got = receiver.wait_for(path, incidents.len()).await;
        let mut ids = resource_data(&got, "id");
        ids.sort();
        let mut want = incidents.clone();
        want.sort();
        assert_eq!(ids, want, "{path}");
    }
}

/// `resource.<path>` filters look at a note's (task's, …) own fields; the incident's fields
/// still work on the same event; an incident event has no resource, so it never matches.
async fn resource_filters_choose_resource_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let filters = json!({"op": "and", "conditions": [
        cond("contains", "resource.message", "rollback"),
        cond("is", "service", "svc-1"),
    ]});
    app.create_webhook(&patched(
        hook("notes", json!([{"url": receiver.url("/notes")}])),
        json!({"filters": filters, "triggers": [
            {"event_class": "incident", "event_type": "triggered"},
            {"event_class": "incident", "event_type": "incident_notes_created"}
        ]}),
    ))
    .await;
    let incident = crate::delivery::incident("inc-r", "triggered");
    let triggered = app
        .ingest(&crate::delivery::event("triggered", "t", incident.clone()))
        .await;
    assert_eq!(triggered["deliveries"], 0, "no resource: {triggered}");
    let mut sent = Vec::new();
    for (n, message) in [(1, "looking"), (2, "rollback started"), (3, "done")] {
        let mut note = crate::delivery::event("incident_notes_created", "t", incident.clone());
        note["resource"] = json!({"id": format!("note-{n}"), "message": message});
        let accepted = app.ingest(&note).await;
        let wanted = message.contains("rollback");
        assert_eq!(accepted["deliveries"], u64::from(wanted), "note {n}");
        if wanted {
            sent.push(format!("note-{n}"));
        }
    }
    let got = receiver.wait_for("/notes", sent.len()).await;
    assert_eq!(resource_data(&got, "id"), sent);
}

async fn invalid_filters_and_templates_are_refused_at_save(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let bad_filter = patched(
        hook("f", json!([{"url": "https://e.example/h"}])),
        json!({"filters": {"op": "and", "conditions": [
            cond("is", "service", "a"),
            {"op": "or", "conditions": [{"op": "matches", "lhs": "message", "rhs": "(["}]}
        ]}}),
    );
    let reply = app.owner(Method::POST, HOOKS, Some(&bad_filter)).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply
            .message()
            .contains("filters.conditions[1].conditions[0].rhs:"),
        "{}",
        reply.message()
    );

    // A condition on an empty value (the builder's "Choose…" left) never holds: inside an
    // "and" group the webhook would silently never fire.
    let empty_value = patched(
        hook("e", json!([{"url": "https://e.example/h"}])),
        json!({"filters": {"op": "and", "conditions": [cond("is", "service", "")]}}),
    );
    let reply = app.owner(Method::POST, HOOKS, Some(&empty_value)).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply
            .message()
            .contains("filters.conditions[0].rhs: must not be empty"),
        "{}",
        reply.message()
    );
    // One saved under the earlier rules stays savable as it is (GET → PUT, the switch),
    // and matches what it matched; only a changed filter meets today's rule.
    let saved = app
        .create_webhook(&patched(
            hook("old", json!([{"url": "https://e.example/h"}])),
            json!({"filters": {"op": "and", "conditions": [cond("is", "service", "was-set")]}}),
        ))
        .await;
    let id = saved["id"].as_str().unwrap().to_owned();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE webhooks SET spec = REPLACE(spec, '\"was-set\"', '\"\"') WHERE id = $1")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut body = app
        .owner(Method::GET, &format!("{HOOKS}/{id}"), None)
        .await
        .body["data"]
        .clone();
    assert_eq!(
        body["filters"]["conditions"][0]["rhs"], "",
        "stored under the old rules"
    );
    body["enabled"] = json!(false);
    let kept = app
        .owner(Method::PUT, &format!("{HOOKS}/{id}"), Some(&body))
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    body["filters"]["conditions"][0]["lhs"] = json!("alert_source");
    let changed = app
        .owner(Method::PUT, &format!("{HOOKS}/{id}"), Some(&body))
        .await;
    assert_eq!(changed.status, 422, "{}", changed.body);

    let bad_template = patched(
        hook("t", json!([{"url": "https://e.example/h"}])),
        json!({
            "payload_type": "custom", "custom_payload": "{\n  \"a\": {% if incident.status %}1\n}"
        }),
    );
    let reply = app.owner(Method::POST, HOOKS, Some(&bad_template)).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.message().contains("custom_payload: line"),
        "{}",
        reply.message()
    );

    let not_json = patched(
        hook("t", json!([{"url": "https://e.example/h"}])),
        json!({
            "payload_type": "custom", "custom_payload": "text: {{ incident.message }}"
        }),
    );
    let reply = app.owner(Method::POST, HOOKS, Some(&not_json)).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.message().contains("not valid JSON"),
        "{}",
        reply.message()
    );

    let runaway = patched(
        hook("t", json!([{"url": "https://e.example/h"}])),
        json!({
            "payload_type": "custom",
            "custom_payload": "[{% for i in range(1000000) %}{% for j in range(1000000) %}0,{% endfor %}{% endfor %}0]"
        }),
    );
    let reply = app.owner(Method::POST, HOOKS, Some(&runaway)).await;
    assert_eq!(reply.status, 422, "stopped by the bound");
    assert_eq!(
        app.webhook_count().await,
        1,
        "only the one saved under the old rules"
    );
}

async fn custom_templates_and_presets_reach_the_receiver(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    // Explodes only for one incident: that delivery fails with the reason, the others go.
    let template = "{% if incident.message == \"boom\" %}[{% for i in range(1000000) %}{% for j in range(1000000) %}0,{% endfor %}{% endfor %}0]{% else %}{\"summary\": {{ incident.message ~ \" (\" ~ incident.status ~ \")\" }}, \"hook\": {{ webhook.name }}, \"event\": {{ event.type }}}{% endif %}";
    let custom = app
        .create_webhook(&patched(
            hook("Custom", json!([{"url": receiver.url("/custom")}])),
            json!({
                "payload_type": "custom", "custom_payload": template
            }),
        ))
        .await;
    app.create_webhook(&patched(
        hook("Slack", json!([{"url": receiver.url("/slack")}])),
        json!({
            "payload_type": "custom", "custom_payload_template_slug": "slack"
        }),
    ))
    .await;
    let mut fine = incident_event(1, "svc-a", "as-x", "low");
    fine["incident"]["message"] = json!("Disk full");
    let mut boom = incident_event(2, "svc-a", "as-x", "low");
    boom["incident"]["message"] = json!("boom");
    for body in [&fine, &boom] {
        assert_eq!(
            app.owner(Method::POST, "/v3/events", Some(body))
                .await
                .status,
            202
        );
    }
    let got = receiver.wait_for("/custom", 1).await;
    assert_eq!(
        got[0].json(),
        json!({"summary": "Disk full (triggered)", "hook": "Custom", "event": "incident.triggered"})
    );
    let slack = receiver.wait_for("/slack", 2).await;
    assert!(slack
        .iter()
        .any(|r| r.json()["text"].as_str().unwrap().contains("[TRIGGERED]")));

    let rows = app.settled_logs(custom["id"].as_str().unwrap(), 2).await;
    let failed: Vec<&Value> = rows.iter().filter(|r| r["state"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["incident_id"], "inc-2");
    assert_eq!(failed[0]["attempts"], 0, "never sent");
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("custom payload template"),
        "{}",
        failed[0]
    );
    assert_eq!(receiver.received("/custom").len(), 1);
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status,
        200,
        "the process is fine"
    );
}

async fn filter_test_endpoint_explains_matches(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let filters = json!({"op": "or", "conditions": [
        {"op": "and", "conditions": [cond("is", "service", "svc-a"), cond("is", "alert_source", "as-x")]},
        cond("is", "tags.severity", "critical")
    ]});
    let incident = incident_event(1, "svc-a", "as-y", "critical")["incident"].clone();
    let reply = app
        .owner(
            Method::POST,
            &format!("{HOOKS}/filters/test"),
            Some(&json!({"filters": filters, "incident": incident})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = &reply.body["data"];
    assert_eq!(data["matches"], true);
    assert_eq!(data["explanation"]["conditions"][0]["matched"], false);
    assert_eq!(
        data["explanation"]["conditions"][0]["conditions"][0]["matched"],
        true
    );
    assert_eq!(
        data["explanation"]["conditions"][0]["conditions"][1]["value"],
        "as-y"
    );
    assert_eq!(data["explanation"]["conditions"][1]["matched"], true);

    let other = incident_event(2, "svc-b", "as-y", "low")["incident"].clone();
    let reply = app
        .owner(
            Method::POST,
            &format!("{HOOKS}/filters/test"),
            Some(&json!({"filters": filters, "incident": other})),
        )
        .await;
    assert_eq!(reply.body["data"]["matches"], false);

    let reply = app
        .owner(
            Method::POST,
            &format!("{HOOKS}/filters/test"),
            Some(&json!({"filters": {"op": "nand", "conditions": []}, "incident": {}})),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert!(reply.message().contains("filters.op"));

    // A large field is shown as its first 200 characters, once per condition: the answer
    // stays small however large the incident.
    let mut big = incident_event(3, "svc-a", "as-x", "low")["incident"].clone();
    big["message"] = json!("x".repeat(500_000));
    let many: Vec<Value> = (0..50)
        .map(|i| cond("contains", "message", &format!("y{i}")))
        .collect();
    let reply = app
        .owner(
            Method::POST,
            &format!("{HOOKS}/filters/test"),
            Some(&json!({"filters": {"op": "or", "conditions": many}, "incident": big})),
        )
        .await;
    assert_eq!(reply.status, 200);
    let shown = reply.body["data"]["explanation"]["conditions"][0]["value"]
        .as_str()
        .unwrap();
    assert_eq!(shown.chars().count(), 201, "200 characters and an ellipsis");
    assert!(
        reply.body.to_string().len() < 50_000,
        "not 50 copies of the field"
    );
}

async fn presets_are_listed_with_examples(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let reply = app
        .owner(Method::GET, &format!("{HOOKS}/templates"), None)
        .await;
    assert_eq!(reply.status, 200);
    let list = reply.body["data"].as_array().unwrap();
    let slugs: Vec<&str> = list.iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["slack", "msteams", "discord"]);
    assert!(list[0]["example"]["text"].is_string());
    assert_eq!(list[1]["example"]["@type"], "MessageCard");
    assert!(list[2]["example"]["embeds"].is_array());
}

/// `|safe` and `{% autoescape false %}` would let incident data add keys to the JSON a
/// receiver gets; templates using them are refused when saved.
async fn templates_have_no_escape_hatch(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for source in [
        r#"{"text": "{{ incident.message|safe }}"}"#,
        r#"{% autoescape false %}{"text": "{{ incident.message }}"}{% endautoescape %}"#,
    ] {
        let mut body = crate::helpers::minimal_webhook("hatch");
        body["payload_type"] = json!("custom");
        body["custom_payload"] = json!(source);
        let reply = app.owner(Method::POST, HOOKS, Some(&body)).await;
        assert_eq!(reply.status, 422, "{source}");
        assert_eq!(reply.body["meta"]["errors"][0]["field"], "custom_payload");
    }
    assert_eq!(app.webhook_count().await, 0);
}

/// Regex work is bounded: each condition looks at the first 64 KiB of its field, and one
/// event's conditions together at 16 MiB; past that, regex conditions do not match (and
/// the server says so in its log) instead of holding the server for seconds.
async fn regex_work_per_event_is_bounded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = crate::helpers::receiver::Receiver::start().await;
    // Three webhooks each scan the message 100 times (300 × 64 KiB > 16 MiB) and match
    // nothing; the fourth, evaluated last, would match.
    for i in 0..3 {
        let conditions: Vec<Value> = (0..100)
            .map(|k| cond("matches", "message", &format!("absent-{i}-{k}")))
            .collect();
        let mut body = crate::helpers::minimal_webhook(&format!("heavy {i}"));
        body["urls"] = json!([{"url": receiver.url(&format!("/heavy{i}"))}]);
        body["filters"] = json!({"op": "or", "conditions": conditions});
        app.create_webhook(&body).await;
    }
    let mut last = crate::helpers::minimal_webhook("last");
    last["urls"] = json!([{"url": receiver.url("/last")}]);
    last["filters"] = json!({"op": "and", "conditions": [cond("matches", "message", "^start")]});
    let last = app.create_webhook(&last).await;
    let mut plain = crate::helpers::minimal_webhook("plain");
    plain["urls"] = json!([{"url": receiver.url("/plain")}]);
    app.create_webhook(&plain).await;

    // A regex sees only the first 64 KiB of a field.
    let mut event = incident_event(1, "s", "a", "low");
    event["incident"]["message"] = json!(format!("start {} tail-marker", "x".repeat(200_000)));
    let reply = app.owner(Method::POST, "/v3/events", Some(&event)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body["data"]["deliveries"], 1,
        "only the webhook without a regex fires"
    );
    receiver.wait_for("/plain", 1).await;
    assert!(
        receiver.received("/last").is_empty(),
        "the budget ran out before it"
    );
    let logs = app
        .owner(
            Method::GET,
            &format!("{HOOKS}/{}/logs", last["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(logs.body["data"]["result"].as_array().unwrap().len(), 0);

    let probe = json!({"filters": {"op": "and", "conditions": [cond("matches", "message", "tail-marker")]},
                       "incident": event["incident"]});
    let tested = app
        .owner(Method::POST, &format!("{HOOKS}/filters/test"), Some(&probe))
        .await;
    assert_eq!(
        tested.body["data"]["matches"], false,
        "past 64 KiB is not looked at"
    );
}

/// README: "every other incident field is passed through to receivers unchanged": numbers
/// beyond 64 bits, exponents, trailing zeros and string escapes arrive as written, in v1
/// and v2, at intake and when the stored event is sent again by the manual trigger.
async fn incident_text_reaches_receivers_exactly(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let v2 = app
        .create_webhook(&hook("v2", json!([{"url": receiver.url("/v2")}])))
        .await;
    app.create_webhook(&patched(
        hook("v1", json!([{"url": receiver.url("/v1")}])),
        json!({"version": "v1"}),
    ))
    .await;
    let event = r#"{
        "type": "incident.triggered", "team": {"id": "t", "name": "SRE"},
        "incident": {
            "id": "inc-exact", "message": "caf\u00e9 \"quoted\"", "status": "triggered",
            "service": {"id": "s"}, "alert_source": {"id": "a"},
            "big": 123456789012345678901234567890, "e": 1E2, "price": 10.50,
            "nested": {"n": [ -0.0, 1e-7 ]}, "huge": 1e400
        }
    }"#;
    let reply = app
        .call(
            Method::POST,
            "/v3/events",
            Some(&app.owner_token),
            Some(event.to_owned()),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let fields = r#""message":"caf\u00e9 \"quoted\"","status":"triggered","service":{"id":"s"},"alert_source":{"id":"a"},"big":123456789012345678901234567890,"e":1E2,"price":10.50,"nested":{"n":[-0.0,1e-7]},"huge":1e400"#;
    let v2_body = String::from_utf8(receiver.wait_for("/v2", 1).await[0].body.to_vec()).unwrap();
    assert!(
        v2_body.contains(&format!(
            r#""resource_data":{{"id":"inc-exact",{fields}}},"resource_type":"incident""#
        )),
        "{v2_body}"
    );
    let v1_body = String::from_utf8(receiver.wait_for("/v1", 1).await[0].body.to_vec()).unwrap();
    assert!(
        v1_body
            .starts_with(r#"{"id":"inc-exact","event_type":"incident_triggered","organization":{"#),
        "{v1_body}"
    );
    assert!(v1_body.ends_with(&format!("}},{fields}}}")), "{v1_body}");

    // The manual trigger renders again from the stored event.
    let path = format!(
        "/v3/incidents/inc-exact/actions/webhook/{}",
        v2["id"].as_str().unwrap()
    );
    let reply = app.owner(Method::POST, &path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let again = String::from_utf8(receiver.wait_for("/v2", 2).await[1].body.to_vec()).unwrap();
    assert!(
        again.contains(&format!(r#"{{"id":"inc-exact",{fields}}}"#)),
        "{again}"
    );
}

both_backends!(
    resource_filters_choose_resource_events,
    incident_text_reaches_receivers_exactly,
    regex_work_per_event_is_bounded,
    templates_have_no_escape_hatch,
    filtered_webhooks_receive_exactly_their_events,
    invalid_filters_and_templates_are_refused_at_save,
    custom_templates_and_presets_reach_the_receiver,
    filter_test_endpoint_explains_matches,
    presets_are_listed_with_examples,
);
