//! `GET /v3/openapi.json` held to the code: every route served is described and every
//! described route is served, real answers of (nearly) every operation validate against the
//! described schemas, and Squadcast's paths agree with Squadcast's own document.

use std::collections::{BTreeSet, HashMap};

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::{
    both_backends,
    delivery::{event, hook, incident, HOOKS},
    helpers::{eventually, receiver::Receiver, spawn_app, Backend, Reply, TestApp},
};

fn document() -> Value {
    tocsin::http::api::openapi::document()
}

/// `{id}` and `{eventWebhookID}` alike become `{}`: names of path parameters differ.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            _ if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_described_and_every_described_route_is_served() {
    let served: BTreeSet<(String, String)> = tocsin::http::api::routes()
        .operations
        .into_iter()
        .map(|(method, path)| (method.to_string(), path))
        .collect();
    let doc = document();
    let described = operations(&doc);
    let undescribed: Vec<_> = served.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "served but not described: {undescribed:?}"
    );
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "described but not served: {unserved:?}"
    );
    assert_eq!(doc["openapi"], "3.1.0");
    // Every reference points at a schema that exists.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{name} is referred to but not defined"
        );
    }

    // Served as is, without a token.
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let reply = app.call(Method::GET, "/v3/openapi.json", None, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, doc);
}

/// A schema's properties and required names, following `$ref` and `allOf`.
fn flatten(doc: &Value, schema: &Value) -> (Map<String, Value>, BTreeSet<String>) {
    let mut properties = Map::new();
    let mut required = BTreeSet::new();
    if let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.trim_start_matches('#');
        let target = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{reference}"));
        return flatten(doc, target);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = flatten(doc, part);
        properties.extend(p);
        required.extend(r);
    }
    if let Some(own) = schema["properties"].as_object() {
        properties.extend(own.clone());
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        required.insert(name.as_str().unwrap().to_owned());
    }
    (properties, required)
}

/// A property's simple types (`["string"]`, `["string", "null"]`), after `$ref`.
fn types(doc: &Value, schema: &Value) -> BTreeSet<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        return types(doc, doc.pointer(reference.trim_start_matches('#')).unwrap());
    }
    match &schema["type"] {
        Value::String(t) => BTreeSet::from([t.clone()]),
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => schema["anyOf"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| types(doc, s))
            .collect(),
    }
}

/// The `data` of a 2xx answer's schema (Squadcast's document wraps its create answer in a
/// `body` object that its API, and so its SDK's client, never sees: unwrapped here).
fn answer_data(doc: &Value, op: &Value, status: &str) -> Option<Value> {
    let schema = op["responses"][status]["content"]["application/json"]["schema"].clone();
    if schema.is_null() {
        return None;
    }
    let (mut properties, _) = flatten(doc, &schema);
    if let Some(body) = properties.remove("body") {
        properties = flatten(doc, &body).0;
    }
    properties.get("data").cloned()
}

#[test]
fn squadcast_paths_agree_with_squadcast() {
    let reference: Value = serde_json::from_str(include_str!(
        "../fixtures/squadcast-v3-event-webhooks.openapi.json"
    ))
    .unwrap();
    let ours = document();
    let by_shape: HashMap<String, &Value> = ours["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| (shape(path), item))
        .collect();
    let mut compared = 0;
    for (path, item) in reference["paths"].as_object().unwrap() {
        let our_item = by_shape
            .get(&shape(path))
            .unwrap_or_else(|| panic!("Squadcast's {path} is not described"));
        for (method, theirs) in item.as_object().unwrap() {
            let at = format!("{} {path}", method.to_uppercase());
            let mine = &our_item[method.as_str()];
            assert!(mine.is_object(), "{at} is not described");
            // Query parameters.
            for p in theirs["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "query" {
                    assert!(
                        mine["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|q| q["name"] == p["name"] && q["in"] == "query"),
                        "{at}: query parameter {} missing",
                        p["name"]
                    );
                }
            }
            // What Squadcast's clients send is accepted: every field they may send is
            // known, and nothing is required that they may leave out.
            let body = &theirs["requestBody"]["content"]["application/json"]["schema"];
            if !body.is_null() {
                let (their_fields, their_required) = flatten(&reference, body);
                let (our_fields, our_required) = flatten(
                    &ours,
                    &mine["requestBody"]["content"]["application/json"]["schema"],
                );
                for (name, field) in &their_fields {
                    let ours_field = our_fields
                        .get(name)
                        .unwrap_or_else(|| panic!("{at}: request field {name} unknown"));
                    let (t, o) = (types(&reference, field), types(&ours, ours_field));
                    assert!(
                        t.is_empty() || o.is_empty() || t.iter().any(|k| o.contains(k)),
                        "{at}: request field {name} is {t:?} for Squadcast, {o:?} here"
                    );
                }
                assert!(
                    our_required.is_subset(&their_required),
                    "{at}: requires {our_required:?}, Squadcast only {their_required:?}"
                );
            }
            // What they read is there: each 2xx status, and every field of its `data`.
            for status in theirs["responses"].as_object().unwrap().keys() {
                if !status.starts_with('2') {
                    continue;
                }
                assert!(
                    mine["responses"].get(status).is_some(),
                    "{at}: answers {status} for Squadcast, not here"
                );
                let Some(their_data) = answer_data(&reference, theirs, status) else {
                    continue;
                };
                let our_data = answer_data(&ours, mine, status)
                    .unwrap_or_else(|| panic!("{at} {status}: no data described"));
                let (their_fields, their_required) = flatten(&reference, &their_data);
                let (our_fields, our_required) = flatten(&ours, &our_data);
                for (name, field) in &their_fields {
                    let ours_field = our_fields
                        .get(name)
                        .unwrap_or_else(|| panic!("{at} {status}: answer field {name} missing"));
                    let (t, o) = (types(&reference, field), types(&ours, ours_field));
                    assert!(
                        t.is_empty() || o.is_empty() || t.iter().any(|k| o.contains(k)),
                        "{at} {status}: answer field {name} is {t:?} for Squadcast, {o:?} here"
                    );
                }
                for name in &their_required {
                    assert!(
                        our_required.contains(name),
                        "{at} {status}: Squadcast always sends {name}; not promised here"
                    );
                }
                // The list's items too.
                if let Some(items) = their_fields.get("result") {
                    let (their_items, their_items_required) = flatten(&reference, &items["items"]);
                    let (our_items, our_items_required) =
                        flatten(&ours, &our_fields["result"]["items"]);
                    for name in their_items.keys() {
                        assert!(
                            our_items.contains_key(name),
                            "{at}: list field {name} missing"
                        );
                    }
                    assert!(their_items_required.is_subset(&our_items_required));
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 5, "only {compared} answers compared");
}

/// Validates answers against the document.
struct Checker {
    doc: Value,
    /// (method, path template) → operation, with templates as regular expressions.
    routes: Vec<(String, regex::Regex, String)>,
    checked: BTreeSet<(String, String, u16)>,
}

impl Checker {
    fn new() -> Self {
        let doc = document();
        let mut routes = Vec::new();
        let parameter = regex::Regex::new(r"\\\{[^}]*\\\}").unwrap();
        for (method, path) in operations(&doc) {
            let pattern = format!(
                "^{}$",
                parameter.replace_all(&regex::escape(&path), "[^/]+")
            );
            routes.push((method, regex::Regex::new(&pattern).unwrap(), path));
        }
        // Fixed segments before parameters: `/logs/retry` is not `/logs/{delivery_id}`.
        routes.sort_by_key(|(_, _, path)| path.matches('{').count());
        Self {
            doc,
            routes,
            checked: BTreeSet::new(),
        }
    }

    /// The answer must be one the document describes for this call, and match its schema.
    fn check(&mut self, method: &Method, path: &str, reply: &Reply) {
        let bare = path.split('?').next().unwrap();
        let (_, _, template) = self
            .routes
            .iter()
            .find(|(m, re, _)| m == method.as_str() && re.is_match(bare))
            .unwrap_or_else(|| panic!("{method} {bare} is not described"))
            .clone();
        let op = &self.doc["paths"][&template][method.as_str().to_lowercase()];
        let status = reply.status.to_string();
        let response = &op["responses"][&status];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which is not described: {}",
            reply.body
        );
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            assert!(
                reply.body.is_null(),
                "{method} {template} {status}: no body described"
            );
        } else {
            let root = json!({"allOf": [schema], "components": self.doc["components"]});
            let validator = jsonschema::validator_for(&root).expect("a valid schema");
            let errors: Vec<String> = validator
                .iter_errors(&reply.body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {template} {status} does not match its schema: {errors:#?}\n{}",
                reply.body
            );
        }
        if !schema.is_null() {
            self.no_undescribed_fields(
                &format!("{method} {template} {status}"),
                schema,
                &reply.body,
            );
        }
        self.checked
            .insert((method.to_string(), template, reply.status));
    }

    /// Every field of the answer's objects is described (down through `data`, its
    /// `result` list and each list's first item): the document misses nothing.
    fn no_undescribed_fields(&self, at: &str, schema: &Value, value: &Value) {
        let schema = match schema["$ref"].as_str() {
            Some(reference) => self.doc.pointer(reference.trim_start_matches('#')).unwrap(),
            None => schema,
        };
        match value {
            Value::Object(fields) => {
                let (described, _) = flatten(&self.doc, schema);
                let open = schema["additionalProperties"].is_object()
                    || (described.is_empty() && schema["allOf"].is_null());
                if open {
                    return;
                }
                for (name, field) in fields {
                    let Some(field_schema) = described.get(name) else {
                        panic!("{at}: field {name} is not described");
                    };
                    if matches!(name.as_str(), "data" | "result" | "meta") {
                        self.no_undescribed_fields(at, field_schema, field);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    self.no_undescribed_fields(at, &schema["items"], first);
                }
            }
            _ => {}
        }
    }

    async fn call(
        &mut self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let reply = app.owner(method.clone(), path, body.as_ref()).await;
        self.check(&method, path, &reply);
        reply
    }
}

async fn answers_match_the_described_schemas(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let mut c = Checker::new();
    let get = Method::GET;
    let post = Method::POST;
    let put = Method::PUT;

    for path in ["/healthz", "/readyz", "/v3/openapi.json"] {
        let reply = app.call(get.clone(), path, None, None).await;
        c.check(&get, path, &reply);
    }
    let created = c
        .call(
            &app,
            post.clone(),
            HOOKS,
            Some(hook("described", json!([{"url": receiver.url("/h")}]))),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["data"]["id"].as_str().unwrap().to_owned();
    let one = format!("{HOOKS}/{id}");
    c.call(&app, get.clone(), HOOKS, None).await;
    let shown = c.call(&app, get.clone(), &one, None).await;
    let mut edited = shown.body["data"].clone();
    edited["description"] = json!("edited");
    assert_eq!(
        c.call(&app, put.clone(), &one, Some(edited)).await.status,
        200
    );
    c.call(
        &app,
        post.clone(),
        &format!("{one}/rotate-secret"),
        Some(json!({"grace_period_seconds": 60})),
    )
    .await;
    c.call(&app, post.clone(), &format!("{one}/test"), Some(json!({})))
        .await;
    c.call(
        &app,
        post.clone(),
        "/v3/extensions/event-webhooks/filters/test",
        Some(json!({"filters": {"op": "and", "conditions": [{"op": "is", "lhs": "service", "rhs": "svc-1"}]},
                    "incident": incident("i-1", "triggered"), "team": {"id": "t"}})),
    )
    .await;
    c.call(
        &app,
        get.clone(),
        "/v3/extensions/event-webhooks/templates",
        None,
    )
    .await;

    let accepted = c
        .call(
            &app,
            post.clone(),
            "/v3/events",
            Some(event("triggered", "t", incident("inc-d", "triggered"))),
        )
        .await;
    assert_eq!(accepted.status, 202);
    receiver.wait_for("/h", 2).await; // the test and the event's delivery
    let succeeded = format!("{one}/logs?state=succeeded");
    let logs = eventually(
        "the delivery is logged as succeeded",
        || app.owner(get.clone(), &succeeded, None),
        |r| {
            r.status == 200
                && r.body["data"]["result"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    c.check(&get, &format!("{one}/logs"), &logs);
    let delivery = logs.body["data"]["result"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.call(&app, get.clone(), &format!("{one}/logs/{delivery}"), None)
        .await;
    c.call(
        &app,
        post.clone(),
        &format!("{one}/logs/{delivery}/resend"),
        None,
    )
    .await;
    let job = c
        .call(
            &app,
            post.clone(),
            &format!("{one}/logs/retry"),
            Some(json!({"state": "failed"})),
        )
        .await;
    let job_id = job.body["data"]["id"].as_str().unwrap().to_owned();
    c.call(
        &app,
        get.clone(),
        &format!("{one}/logs/retry/{job_id}"),
        None,
    )
    .await;
    c.call(&app, get.clone(), &format!("{one}/notifications"), None)
        .await;
    c.call(
        &app,
        post.clone(),
        &format!("/v3/incidents/inc-d/actions/webhook/{id}"),
        None,
    )
    .await;

    let user = c
        .call(
            &app,
            post.clone(),
            "/v3/users",
            Some(json!({"email": "ann@example.com", "name": "Ann", "role": "member"})),
        )
        .await;
    let user_id = user.body["data"]["id"].as_str().unwrap().to_owned();
    c.call(&app, get.clone(), "/v3/users", None).await;
    c.call(&app, get.clone(), "/v3/users/roles", None).await;
    c.call(&app, get.clone(), &format!("/v3/users/{user_id}"), None)
        .await;
    c.call(
        &app,
        put.clone(),
        &format!("/v3/users/{user_id}"),
        Some(json!({"name": "Ann B", "role": "viewer"})),
    )
    .await;
    c.call(
        &app,
        post.clone(),
        &format!("/v3/users/{user_id}/reset-password"),
        None,
    )
    .await;
    c.call(
        &app,
        post.clone(),
        &format!("/v3/users/{user_id}/unlock"),
        None,
    )
    .await;
    let token = c
        .call(
            &app,
            post.clone(),
            "/v3/api-tokens",
            Some(json!({"name": "ci", "abilities": ["read"]})),
        )
        .await;
    c.call(&app, get.clone(), "/v3/api-tokens", None).await;
    let audit = c.call(&app, get.clone(), "/v3/audit-logs", None).await;
    let entry = audit.body["data"]["result"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.call(&app, get.clone(), &format!("/v3/audit-logs/{entry}"), None)
        .await;
    for kind in ["services", "alert-sources", "teams"] {
        c.call(&app, get.clone(), &format!("/v3/{kind}"), None)
            .await;
        c.call(
            &app,
            put.clone(),
            &format!("/v3/{kind}/x-1"),
            Some(json!({"name": "X"})),
        )
        .await;
    }

    // Event sources, and a tool posting to one with the source's own credential.
    let source = c
        .call(
            &app,
            post.clone(),
            "/v3/sources",
            Some(json!({"name": "prom", "kind": "alertmanager"})),
        )
        .await;
    let source_id = source.body["data"]["id"].as_str().unwrap().to_owned();
    let source_token = source.body["data"]["token"].as_str().unwrap().to_owned();
    let one_source = format!("/v3/sources/{source_id}");
    c.call(&app, get.clone(), "/v3/sources", None).await;
    c.call(&app, get.clone(), &one_source, None).await;
    c.call(
        &app,
        put.clone(),
        &one_source,
        Some(
            json!({"name": "prom 2", "kind": "alertmanager", "team": {"id": "t1", "name": "SRE"}}),
        ),
    )
    .await;
    let ingest = format!("{one_source}/events");
    let firing = json!({"version": "4", "groupKey": "{}:{alertname=\"Disk\"}", "status": "firing",
        "receiver": "tocsin", "groupLabels": {"alertname": "Disk"}, "commonLabels": {"alertname": "Disk", "service": "db"},
        "commonAnnotations": {"summary": "Disk full"}, "externalURL": "http://am.example",
        "alerts": [{"status": "firing", "labels": {"alertname": "Disk", "service": "db"}, "annotations": {"summary": "Disk full"},
                    "startsAt": "2026-12-07T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom.example", "fingerprint": "f1"}]});
    let reply = app
        .call(
            post.clone(),
            &ingest,
            Some(&source_token),
            Some(firing.to_string()),
        )
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    c.check(&post, &ingest, &reply);
    let refused = app
        .call(
            post.clone(),
            &ingest,
            Some("tsrc_wrong"),
            Some(firing.to_string()),
        )
        .await;
    c.check(&post, &ingest, &refused);
    c.call(&app, get.clone(), &format!("{one_source}/receipts"), None)
        .await;
    c.call(
        &app,
        post.clone(),
        "/v3/sources/preview",
        Some(json!({"kind": "alertmanager", "payload": firing})),
    )
    .await;
    c.call(
        &app,
        post.clone(),
        &format!("{one_source}/rotate-token"),
        None,
    )
    .await;
    c.call(&app, Method::DELETE, &one_source, None).await;

    // Errors are described too.
    c.call(&app, get.clone(), &format!("{HOOKS}/whk_missing"), None)
        .await;
    c.call(&app, post.clone(), HOOKS, Some(json!({"name": ""})))
        .await;
    let refused = app
        .call(get.clone(), HOOKS, Some("tocsin_wrong"), None)
        .await;
    c.check(&get, HOOKS, &refused);
    let token_id = token.body["data"]["id"].as_str().unwrap().to_owned();
    let delete = Method::DELETE;
    c.call(
        &app,
        delete.clone(),
        &format!("/v3/api-tokens/{token_id}"),
        None,
    )
    .await;
    c.call(&app, delete.clone(), &format!("/v3/users/{user_id}"), None)
        .await;
    c.call(&app, delete.clone(), &one, None).await;

    // Nearly every operation was exercised (not `/metrics`, whose answer is text).
    let exercised: BTreeSet<(String, String)> = c
        .checked
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let missing: Vec<_> = operations(&c.doc)
        .into_iter()
        .filter(|op| !exercised.contains(op) && op.1 != "/metrics")
        .collect();
    assert!(missing.is_empty(), "not exercised: {missing:?}");
}

both_backends!(answers_match_the_described_schemas);

/// schemathesis against the served document, on a fresh installation: every request the
/// document calls valid is taken, every one it calls invalid is refused, no answer is a
/// 5xx or strays from its schema. A fixed seed and one worker make the run repeatable.
/// Two rules are beyond JSON Schema (a token's `expires_at` in the future; at most 100
/// filter conditions in all): those two operations run again without the "valid is
/// taken" check.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_document_is_the_contract() {
    let Some(st) = crate::helpers::tools_or_skip(
        &["st"],
        "schemathesis is not installed (.ci/run installs it: pip install schemathesis)",
    ) else {
        return;
    };
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemathesis/schemathesis.toml"
    );
    let report = tempfile::tempdir().unwrap();
    let beyond_schema = [
        "POST /v3/api-tokens",
        "POST /v3/extensions/event-webhooks/filters/test",
    ];
    let run = |selection: Vec<String>| {
        let mut command = std::process::Command::new(&st[0]);
        command
            .current_dir(report.path())
            .args(["--config-file", config, "--no-color", "run"])
            .arg(format!("{}/v3/openapi.json", app.address))
            .args([
                "--header",
                &format!("Authorization: Bearer {}", app.owner_token),
            ])
            .args(["--seed", "1", "--workers", "1", "--max-failures", "20"])
            .args(selection);
        command
    };
    let mut everything_else = Vec::new();
    let mut only_those = vec![
        "--exclude-checks".to_owned(),
        "positive_data_acceptance".to_owned(),
    ];
    for name in beyond_schema {
        everything_else.extend(["--exclude-name".to_owned(), name.to_owned()]);
        only_those.extend(["--include-name".to_owned(), name.to_owned()]);
    }
    for mut command in [run(everything_else), run(only_those)] {
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("schemathesis runs");
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis found disagreements between the document and the server:\n{said}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(said.contains(" passed"), "it ran test cases:\n{said}");
    }
}
