//! Sources against what really posts to them: Debian's Prometheus Alertmanager (the
//! `prometheus-alertmanager` package, which `.ci/run` installs), one tocsin relaying to a
//! second tocsin's Squadcast source, and `POST /v3/sources/{id}/events` over HTTP at its
//! edges (credentials, repeats, wrong shapes, sizes, the receipts kept).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::receiver::{Received, Receiver};
use crate::helpers::{eventually, http_client, spawn_app, tools_or_skip, Backend, TestApp};

/// A source as created: where a tool posts and its credential.
struct Source {
    id: String,
    url: String,
    token: String,
}

async fn create_source(app: &TestApp, name: &str, kind: &str) -> Source {
    let reply = app
        .owner(
            Method::POST,
            "/v3/sources",
            Some(&json!({"name": name, "kind": kind})),
        )
        .await;
    assert_eq!(reply.status, 201, "create source: {}", reply.body);
    let data = &reply.body["data"];
    let text = |field: &str| {
        data[field]
            .as_str()
            .unwrap_or_else(|| panic!("source {field} in {data}"))
            .to_owned()
    };
    let source = Source {
        id: text("id"),
        url: text("url"),
        token: text("token"),
    };
    assert_eq!(
        source.url,
        format!("{}/v3/sources/{}/events", app.address, source.id),
        "the URL a tool is given is this server's"
    );
    source
}

/// The source's receipts, newest first.
async fn receipts(app: &TestApp, source_id: &str) -> Vec<Value> {
    let reply = app
        .owner(
            Method::GET,
            &format!("/v3/sources/{source_id}/receipts"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "receipts: {}", reply.body);
    reply.body["data"].as_array().expect("a list").clone()
}

/// The source's receipts once `settled` holds of them: receipts are written a moment after
/// each answer (nothing waits for them).
async fn receipts_when(
    app: &TestApp,
    source_id: &str,
    settled: impl Fn(&Vec<Value>) -> bool,
) -> Vec<Value> {
    eventually(
        "the receipts are written",
        || receipts(app, source_id),
        settled,
    )
    .await
}

/// How a request presents a source's credential.
enum Credential<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    None,
}

/// Posts `body` to a source's URL as a tool would: the status and the JSON answer.
async fn post_to(
    url: &str,
    credential: Credential<'_>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = http_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    request = match credential {
        Credential::Bearer(token) => request.bearer_auth(token),
        Credential::Basic(user, password) => request.basic_auth(user, Some(password)),
        Credential::None => request,
    };
    let response = request.send().await.expect("the source answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("an answer body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer, got {text:?}"));
    (status, body)
}

fn results(receipt: &Value) -> String {
    receipt["results"].to_string()
}

// ---------------------------------------------------------------------------------------
// A real Alertmanager.

/// The Alertmanager and amtool binaries, or `None` after saying the test is skipped.
fn alertmanager_tools() -> Option<(PathBuf, PathBuf)> {
    let found = tools_or_skip(
        &["prometheus-alertmanager", "amtool"],
        "prometheus-alertmanager or amtool is not installed (.ci/run installs the Debian package prometheus-alertmanager)",
    )?;
    Some((found[0].clone(), found[1].clone()))
}

/// A port nobody listens on just now: bound on loopback and let go.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().unwrap().port()
}

/// An Alertmanager child process, killed when dropped.
struct Alertmanager {
    child: Child,
    url: String,
    amtool: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts it with `config` on 127.0.0.1, clustering off, and waits until it is ready.
    async fn start(binary: &Path, amtool: PathBuf, config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = dir.path().join("alertmanager.log");
        let out = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty: no cluster, so nothing listens on 0.0.0.0:9094.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("prometheus-alertmanager starts");
        let mut am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            amtool,
            log,
            _dir: dir,
        };
        let client = http_client();
        let ready = format!("{}/-/ready", am.url);
        let deadline = std::time::Instant::now() + crate::helpers::DEADLINE;
        loop {
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("Alertmanager exited ({status}):\n{}", am.log());
            }
            let answer = client.get(&ready).send().await.map(|r| r.status().as_u16());
            if answer.as_ref().is_ok_and(|s| *s == 200) {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("Alertmanager not ready ({answer:?}):\n{}", am.log());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `amtool alert add` against this Alertmanager.
    async fn add_alert(&self, labels: &[&str], summary: &str, end: Option<String>) {
        let mut args = vec![
            format!("--alertmanager.url={}", self.url),
            "alert".into(),
            "add".into(),
        ];
        args.extend(labels.iter().map(|l| l.to_string()));
        args.push(format!("--annotation=summary={summary}"));
        if let Some(end) = end {
            args.push(format!("--end={end}"));
        }
        let amtool = self.amtool.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(amtool)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .expect("amtool runs")
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "amtool alert add {labels:?}: {}{}\nAlertmanager:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

fn alertmanager_config(bearer: &Source, basic: &Source) -> String {
    format!(
        r#"route:
  receiver: bearer
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
  routes:
    - receiver: basic
      matchers: ['auth="basic"']
receivers:
  - name: bearer
    webhook_configs:
      - url: '{}'
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: '{}'
  - name: basic
    webhook_configs:
      - url: '{}'
        send_resolved: true
        http_config:
          basic_auth:
            username: alertmanager
            password: '{}'
"#,
        bearer.url, bearer.token, basic.url, basic.token
    )
}

/// Whether, after the source's first accepted receipt, an ignored re-notification came.
fn renotified(receipts: &[Value]) -> bool {
    let Some(first_accepted) = receipts.iter().rposition(|r| r["outcome"] == "accepted") else {
        return false;
    };
    receipts[..first_accepted]
        .iter()
        .any(|r| r["outcome"] == "ignored" && results(r).contains("re-notification"))
}

fn by_message<'a>(got: &'a [Received], message: &str) -> Vec<(&'a Received, Value)> {
    got.iter()
        .map(|r| (r, r.json()))
        .filter(|(_, body)| body["data"]["resource_data"]["message"] == message)
        .collect()
}

/// Alertmanager fires two groups, one through a source it reaches with a bearer token and
/// one with basic auth; it re-notifies both every 2 s, then both alerts end. Each incident
/// reaches the receiver exactly twice, triggered then resolved with the same incident id,
/// and the re-notifications are received, ignored and sent nowhere.
async fn a_real_alertmanager_triggers_and_resolves_once(backend: Backend) {
    let Some((alertmanager, amtool)) = alertmanager_tools() else {
        return;
    };
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(&json!({
            "name": "from alertmanager",
            "triggers": [
                {"event_class": "incident", "event_type": "triggered"},
                {"event_class": "incident", "event_type": "resolved"}
            ],
            "urls": [{"url": receiver.url("/am"), "method": "POST"}],
            "is_all_teams_configured": true
        }))
        .await;
    let bearer = create_source(&app, "Alertmanager (bearer)", "alertmanager").await;
    let basic = create_source(&app, "Alertmanager (basic auth)", "alertmanager").await;
    let am =
        Alertmanager::start(&alertmanager, amtool, &alertmanager_config(&bearer, &basic)).await;

    // (labels, summary, service, the source its route posts to)
    let alerts: [(&[&str], &str, &str, &Source); 2] = [
        (
            &["alertname=DiskFull", "service=db", "severity=critical"],
            "Disk full on db-1",
            "db",
            &bearer,
        ),
        (
            &[
                "alertname=CpuHot",
                "service=web",
                "severity=warning",
                "auth=basic",
            ],
            "CPU hot on web-1",
            "web",
            &basic,
        ),
    ];
    for (labels, summary, _, _) in &alerts {
        am.add_alert(labels, summary, None).await;
    }
    let fired = receiver.wait_for("/am", 2).await;
    for (_, summary, _, _) in &alerts {
        assert_eq!(
            by_message(&fired, summary).len(),
            1,
            "{summary} triggered once"
        );
    }
    // Re-notifications came (every repeat_interval) and made nothing.
    for (_, summary, _, source) in &alerts {
        eventually(
            &format!("a re-notification of {summary} is received and ignored"),
            || receipts(&app, &source.id),
            |r: &Vec<Value>| renotified(r),
        )
        .await;
    }

    let end = tocsin::domain::Timestamp::now().to_rfc3339();
    for (labels, summary, _, _) in &alerts {
        am.add_alert(labels, summary, Some(end.clone())).await;
    }
    receiver.wait_for("/am", 4).await;
    // Every delivery made is done: nothing more is on its way.
    let hook_id = hook["id"].as_str().unwrap();
    let logs = app.settled_logs(hook_id, 4).await;
    assert!(
        logs.iter().all(|l| l["state"] == "succeeded"),
        "deliveries: {logs:?}"
    );
    let got = receiver.received("/am");
    assert_eq!(
        got.len(),
        4,
        "two incidents, each triggered and resolved, and nothing more"
    );

    for (_, summary, service, source) in &alerts {
        let bodies = by_message(&got, summary);
        let types: Vec<&str> = bodies
            .iter()
            .map(|(_, b)| b["event"]["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["incident.triggered", "incident.resolved"],
            "{summary}: once each, in order"
        );
        let (_, triggered) = &bodies[0];
        let (_, resolved) = &bodies[1];
        let incident = &triggered["data"]["resource_data"];
        assert!(incident["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(
            incident["id"], resolved["data"]["resource_data"]["id"],
            "{summary}: one incident"
        );
        assert_eq!(incident["service"]["id"], *service, "{summary}: {incident}");
        assert_eq!(resolved["data"]["resource_data"]["status"], "resolved");

        // What the source received: the two events, and only ignored re-notifications.
        // (A receipt is written once its events are stored, so it may follow their delivery.)
        let seen = eventually(
            &format!("{summary}: the resolve's receipt"),
            || receipts(&app, &source.id),
            |r: &Vec<Value>| r.iter().any(|r| results(r).contains("incident.resolved")),
        )
        .await;
        let accepted: Vec<&Value> = seen.iter().filter(|r| r["outcome"] == "accepted").collect();
        assert_eq!(accepted.len(), 2, "{summary}: {seen:#?}");
        assert!(
            results(accepted[0]).contains("incident.resolved"),
            "{}",
            accepted[0]
        );
        assert!(
            results(accepted[1]).contains("incident.triggered"),
            "{}",
            accepted[1]
        );
        assert!(
            seen.iter()
                .all(|r| r["outcome"] == "accepted" || r["outcome"] == "ignored"),
            "nothing refused: {seen:#?}"
        );
    }
    drop(am);
}

// ---------------------------------------------------------------------------------------
// A relay: tocsin A's webhook posts to tocsin B's Squadcast source.

/// One tocsin's webhook sends to a second tocsin's `squadcast` source: the receiver behind
/// the second gets the same `data`, `event.id` and `event.type` as a receiver of the first,
/// for an incident's whole life and a note on it, in the same order.
async fn a_second_tocsin_relays_what_the_first_sends(backend: Backend) {
    let Some(a) = spawn_app(backend).await else {
        return;
    };
    let Some(b) = spawn_app(backend).await else {
        return;
    };
    let types = [
        "triggered",
        "acknowledged",
        "incident_notes_created",
        "resolved",
    ];
    let triggers: Vec<Value> = types
        .iter()
        .map(|t| json!({"event_class": "incident", "event_type": t}))
        .collect();
    let r1 = Receiver::start().await;
    let r2 = Receiver::start().await;

    let source = create_source(&b, "tocsin A", "squadcast").await;
    b.create_webhook(&json!({
        "name": "behind the relay",
        "triggers": triggers,
        "urls": [{"url": r2.url("/r2"), "method": "POST"}],
        "is_all_teams_configured": true
    }))
    .await;
    a.create_webhook(&json!({
        "name": "to the receiver and to tocsin B",
        "triggers": triggers,
        "urls": [
            {"url": r1.url("/r1"), "method": "POST"},
            {"url": source.url, "method": "POST"}
        ],
        "header": {"Authorization": format!("Bearer {}", source.token)},
        "is_all_teams_configured": true
    }))
    .await;

    let incident = |status: &str| {
        json!({
            "id": "inc-relay-1", "message": "Checkout is failing", "status": status,
            "description": "5xx above 2% \"since\" 10:02 — ünïcode",
            "service": {"id": "svc-checkout", "name": "Checkout", "slug": "checkout"},
            "alert_source": {"id": "as-1", "type": "Prometheus", "short_name": "prom"},
            "tags": {"severity": {"value": "critical", "color": "#f00"}}
        })
    };
    let team = json!({"id": "team-sre", "name": "SRE"});
    let mut note = json!({"type": "incident.incident_notes_created", "team": team,
        "incident": incident("acknowledged"),
        "resource": {"id": "note-1", "message": "rolling back to 4.1.2"}});
    note["incident"]["status"] = json!("acknowledged");
    let events = [
        json!({"type": "incident.triggered", "team": team, "incident": incident("triggered")}),
        json!({"type": "incident.acknowledged", "team": team, "incident": incident("acknowledged")}),
        note,
        json!({"type": "incident.resolved", "team": team, "incident": incident("resolved")}),
    ];
    for event in &events {
        let reply = a.owner(Method::POST, "/v3/events", Some(event)).await;
        assert_eq!(reply.status, 202, "A takes {event}: {}", reply.body);
        assert_eq!(reply.body["data"]["deliveries"], 2, "{}", reply.body);
    }

    let first = r1.wait_for("/r1", events.len()).await;
    let relayed = r2.wait_for("/r2", events.len()).await;
    let bodies = |got: &[Received]| got.iter().map(Received::json).collect::<Vec<Value>>();
    let (first, relayed) = (bodies(&first), bodies(&relayed));
    let kinds = |bodies: &[Value]| {
        bodies
            .iter()
            .map(|b| b["event"]["type"].as_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(&first),
        types.map(|t| format!("incident.{t}")).to_vec(),
        "A sends in order"
    );
    assert_eq!(kinds(&relayed), kinds(&first), "B relays in the same order");
    for (sent, got) in first.iter().zip(&relayed) {
        let what = &sent["event"]["type"];
        assert_eq!(got["event"]["id"], sent["event"]["id"], "{what}: event.id");
        assert_eq!(
            got["event"]["type"], sent["event"]["type"],
            "{what}: event.type"
        );
        assert_eq!(got["data"], sent["data"], "{what}: data");
    }
    // What B's source received: four events, one receipt each, nothing ignored. (A receipt
    // is written once its events are stored, so it may follow their delivery.)
    let seen = eventually(
        "B's source records four receipts",
        || receipts(&b, &source.id),
        |r: &Vec<Value>| r.len() >= 4,
    )
    .await;
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(seen.iter().all(|r| r["outcome"] == "accepted"), "{seen:#?}");
}

// ---------------------------------------------------------------------------------------
// The ingest endpoint over HTTP.

/// An Alertmanager notification of nothing: read, and ignored.
fn empty_notification(group: &str) -> Value {
    json!({"version": "4", "groupKey": group, "status": "firing", "receiver": "tocsin",
           "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
           "externalURL": "http://alertmanager.invalid", "alerts": []})
}

/// A wrong token, no token, a source that does not exist and a disabled source get the very
/// same answer, so a caller learns nothing of which sources exist; the right token works as
/// a bearer token and as the basic-auth password; the refusals show in the receipts.
async fn refusals_of_the_caller_all_look_the_same(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let source = create_source(&app, "Prometheus", "alertmanager").await;
    let other = create_source(&app, "to be disabled", "alertmanager").await;
    let body = empty_notification("{}:{alertname=\"x\"}").to_string();

    let (status, ok) = post_to(&source.url, Credential::Bearer(&source.token), body.clone()).await;
    assert_eq!(status, 202, "{ok}");
    assert_eq!(ok["data"]["events"], json!([]));
    let (status, ok) = post_to(
        &source.url,
        Credential::Basic("alertmanager", &source.token),
        body.clone(),
    )
    .await;
    assert_eq!(
        status, 202,
        "basic auth with the token as the password: {ok}"
    );

    let reply = app
        .owner(Method::GET, &format!("/v3/sources/{}", other.id), None)
        .await;
    let mut disabled = reply.body["data"].clone();
    disabled["enabled"] = json!(false);
    let reply = app
        .owner(
            Method::PUT,
            &format!("/v3/sources/{}", other.id),
            Some(&disabled),
        )
        .await;
    assert_eq!(reply.status, 200, "disable: {}", reply.body);
    assert_eq!(reply.body["data"]["enabled"], false);

    let unknown = source.url.replace(&source.id, "src_doesnotexist0000000000");
    let attempts = [
        (
            "a wrong token",
            source.url.as_str(),
            Credential::Bearer("tsrc_wrong"),
        ),
        ("no token", source.url.as_str(), Credential::None),
        (
            "a wrong basic-auth password",
            source.url.as_str(),
            Credential::Basic("alertmanager", "tsrc_wrong"),
        ),
        (
            "an unknown source",
            unknown.as_str(),
            Credential::Bearer(&source.token),
        ),
        (
            "a disabled source",
            other.url.as_str(),
            Credential::Bearer(&other.token),
        ),
    ];
    let mut answers = Vec::new();
    for (what, url, credential) in attempts {
        let (status, answer) = post_to(url, credential, body.clone()).await;
        assert_eq!(status, 401, "{what}: {answer}");
        answers.push((what, answer));
    }
    for (what, answer) in &answers[1..] {
        assert_eq!(
            answer, &answers[0].1,
            "{what} is answered as {}",
            answers[0].0
        );
    }

    // Where the person setting the tool up looks: the refusals, newest first, no body kept.
    let seen = receipts_when(&app, &source.id, |r| r.len() >= 5).await;
    let outcomes: Vec<(&str, u64)> = seen
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("refused", 401),
            ("refused", 401),
            ("refused", 401),
            ("ignored", 202),
            ("ignored", 202)
        ],
        "{seen:#?}"
    );
    assert!(results(&seen[1]).contains("no token"), "{}", seen[1]);
    assert!(results(&seen[2]).contains("wrong token"), "{}", seen[2]);
    assert_eq!(seen[0]["body"], "", "a refused caller's body is not kept");
}

/// The same Squadcast payload posted twice (a retry) is one event: one delivery, and the
/// second answer is the first's, saying it is a duplicate. For a note and for a trigger.
async fn a_repeated_payload_is_one_event(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(&json!({
            "name": "hook",
            "triggers": [
                {"event_class": "incident", "event_type": "triggered"},
                {"event_class": "incident", "event_type": "incident_notes_created"}
            ],
            "urls": [{"url": receiver.url("/hook"), "method": "POST"}],
            "is_all_teams_configured": true
        }))
        .await;
    let source = create_source(&app, "Squadcast", "squadcast").await;
    let sample = |name: &str| {
        let path = format!(
            "{}/tests/fixtures/squadcast-samples/v2/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).expect(&path)
    };
    let mut answers = Vec::new();
    for name in ["incident-notes-created", "incident-triggered"] {
        let body = sample(name);
        let (status, first) =
            post_to(&source.url, Credential::Bearer(&source.token), body.clone()).await;
        assert_eq!(status, 202, "{name}: {first}");
        let made = &first["data"]["events"];
        assert_eq!(made.as_array().map(Vec::len), Some(1), "{name}: {first}");
        assert_eq!(made[0]["duplicate"], false, "{name}: {first}");
        assert_eq!(made[0]["deliveries"], 1, "{name}: {first}");
        let (status, again) = post_to(&source.url, Credential::Bearer(&source.token), body).await;
        assert_eq!(status, 202, "{name} again: {again}");
        answers.push((name, first, again));
    }
    receiver.wait_for("/hook", 2).await;
    // Every delivery made is done: no third is on its way.
    app.settled_logs(hook["id"].as_str().unwrap(), 2).await;
    let got = receiver.received("/hook");
    assert_eq!(got.len(), 2, "one delivery per event");
    let ids: Vec<Value> = got
        .iter()
        .map(|r| r.json()["event"]["id"].clone())
        .collect();
    assert_ne!(ids[0], ids[1]);

    for (name, first, again) in answers {
        let mut expected = first["data"]["events"].clone();
        expected[0]["duplicate"] = json!(true);
        assert_eq!(
            again["data"],
            json!({"events": expected, "ignored": []}),
            "{name} posted again is answered as a duplicate of the first"
        );
    }
}

/// What cannot be read is refused, saying why, and shows in the receipts: another tool's
/// body (422, naming both tools), a body over 1 MiB (413), a body that is not JSON (400).
async fn unreadable_payloads_are_refused_and_recorded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let source = create_source(&app, "Prometheus", "alertmanager").await;
    let post = |body: Vec<u8>| post_to(&source.url, Credential::Bearer(&source.token), body);

    let squadcast = std::fs::read(format!(
        "{}/tests/fixtures/squadcast-samples/v2/incident-triggered.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (status, answer) = post(squadcast).await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["meta"]["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("this is a Squadcast webhook body")
            && message.contains("this source expects Prometheus Alertmanager's"),
        "{message}"
    );

    let mut large = empty_notification("big").to_string().into_bytes();
    large.pop();
    large.extend_from_slice(b", \"padding\": \"");
    large.resize(1024 * 1024 + 1024, b'x');
    large.extend_from_slice(b"\"}");
    let (status, answer) = post(large).await;
    assert_eq!(status, 413, "{answer}");

    let (status, answer) = post(b"{\"version\": \"4\", \"alerts\": [".to_vec()).await;
    assert_eq!(status, 400, "{answer}");

    let seen = receipts_when(&app, &source.id, |r| r.len() >= 3).await;
    let shown: Vec<(&str, u64)> = seen
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [("refused", 400), ("refused", 413), ("refused", 422)],
        "each receipt says what was answered: {seen:#?}"
    );
    assert!(results(&seen[2]).contains("Squadcast"), "{}", seen[2]);
    assert!(results(&seen[1]).contains("1 MiB"), "{}", seen[1]);
    assert_eq!(
        seen[0]["body"], "{\"version\": \"4\", \"alerts\": [",
        "the malformed body is kept to look at"
    );
}

/// A source keeps its newest 100 receipts: 105 notifications leave the last 100, newest
/// first.
async fn receipts_keep_the_newest_hundred(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let source = create_source(&app, "Prometheus", "alertmanager").await;
    for n in 0..105 {
        let body = empty_notification(&format!("group-{n}")).to_string();
        let (status, answer) = post_to(&source.url, Credential::Bearer(&source.token), body).await;
        assert_eq!(status, 202, "{n}: {answer}");
    }
    let seen = receipts_when(&app, &source.id, |r| {
        r.first()
            .and_then(|r| r["body"].as_str())
            .is_some_and(|b| b.contains("group-104"))
    })
    .await;
    let groups: Vec<String> = seen
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            body["groupKey"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (5..105).rev().map(|n| format!("group-{n}")).collect();
    assert_eq!(groups, expected, "the newest 100, newest first");
    assert!(seen.iter().all(|r| r["outcome"] == "ignored"));
    // Not only shown: the store keeps no more.
    let kept = app
        .store
        .receipts(
            &tocsin::domain::ids::SourceId::from(source.id.clone()),
            1000,
        )
        .await
        .unwrap();
    assert_eq!(kept.len(), 100);
}

both_backends!(
    a_real_alertmanager_triggers_and_resolves_once,
    a_second_tocsin_relays_what_the_first_sends,
    refusals_of_the_caller_all_look_the_same,
    a_repeated_payload_is_one_event,
    unreadable_payloads_are_refused_and_recorded,
    receipts_keep_the_newest_hundred,
);
