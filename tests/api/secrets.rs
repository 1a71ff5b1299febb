//! Secrets at rest: sealed in the database on both backends, a wrong key refused at start,
//! clear secrets from earlier versions sealed, `rotate-key`, and the generated key file.

use std::process::Command;

use serde_json::json;
use sqlx::Row;
use tocsin::{
    domain::{
        delivery::NewDelivery,
        organization::Organization,
        sealing::SecretKey,
        webhook::{parse_spec, Webhook},
        Timestamp,
    },
    store::{self, Admission, Lease, Store, StoreError},
};

use crate::both_backends;
use crate::helpers::binary::Server;
use crate::helpers::receiver::Receiver;
use crate::helpers::{open_store, test_key, Backend, TestDb};

const URL_PASSWORD: &str = "pw-Zq81xx";
const HEADER_VALUE: &str = "Bearer hdr-Ux93kk-credential";

/// Every text the database holds where secrets live: webhook specs and secrets, and the
/// URLs of deliveries.
async fn stored_text(url: &str) -> String {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut text = String::new();
    for row in sqlx::query("SELECT spec, secret FROM webhooks")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        text.push_str(&row.get::<String, _>("spec"));
        text.push_str(&row.get::<String, _>("secret"));
    }
    for row in sqlx::query("SELECT url FROM deliveries")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        text.push_str(&row.get::<String, _>("url"));
    }
    for row in sqlx::query("SELECT query FROM retry_jobs")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        text.push_str(&row.get::<Option<String>, _>("query").unwrap_or_default());
    }
    pool.close().await;
    text
}

async fn raw(url: &str, sql: &str) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

fn secret_webhook(org: &tocsin::domain::ids::OrganizationId, receiver_url: &str) -> Webhook {
    let spec = parse_spec(&json!({
        "name": "sealed", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": receiver_url}], "is_all_teams_configured": true,
        "header": {"Authorization": HEADER_VALUE, "X-Team": "sre"}
    }))
    .unwrap();
    Webhook::new(org, "tok", spec)
}

/// One parked delivery to the webhook's URL (with its password).
async fn park_one(store: &dyn Store, org: &Organization, hook: &Webhook) -> NewDelivery {
    let url = hook.spec.urls[0].url.clone();
    let (event, delivery) = crate::helpers::event_and_delivery(&org.id, &hook.id, "inc", &url);
    let admission = Admission {
        lease: None,
        park_urls: [url].into_iter().collect(),
        park_until: Timestamp::now(),
    };
    store
        .accept_events(&[(event, vec![delivery.clone()])], &admission)
        .await
        .unwrap();
    delivery
}

fn lease() -> Lease {
    Lease {
        owner: "node".into(),
        until: Timestamp::from_micros(Timestamp::now().as_micros() + 60_000_000),
    }
}

async fn secrets_are_sealed_at_rest_and_rotate(backend: Backend) {
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let hook = secret_webhook(
        &org.id,
        &format!("https://user:{URL_PASSWORD}@hooks.example/in"),
    );
    let audit = tocsin::domain::audit::AuditEntry::new(
        &org.id,
        &tocsin::domain::audit::Actor::cli(),
        "webhook.created",
        tocsin::domain::audit::webhook_object(&hook.id, "sealed"),
        Vec::new(),
    );
    store.insert_webhook(&hook, &audit).await.unwrap();
    let parked = park_one(store.as_ref(), &org, &hook).await;
    // A bulk retry filtered by that URL keeps it sealed too, and through a rotation.
    let job = tocsin::domain::delivery::RetryJob {
        id: "rtj_url".into(),
        organization_id: org.id.clone(),
        webhook_id: hook.id.clone(),
        filters: serde_json::json!({"state": "failed", "url": "0"}),
        state: tocsin::domain::delivery::RetryJobState::Running,
        total: 0,
        done: 0,
        after_seq: 0,
        error: None,
        created_at: Timestamp::from_micros(Timestamp::now().as_micros() - 600_000_000),
        finished_at: None,
    };
    let by_url = tocsin::store::LogQuery {
        url: Some(hook.spec.urls[0].url.clone()),
        ..Default::default()
    };
    store
        .create_retry_job(&job, &by_url, "run_gone")
        .await
        .unwrap();

    let text = stored_text(&db.url).await;
    for secret in [hook.secret.as_str(), HEADER_VALUE, URL_PASSWORD] {
        assert!(!text.contains(secret), "{secret} stored in clear: {text}");
    }
    assert!(text.contains("tsk1.") && text.contains("sre"), "{text}");
    assert_eq!(
        store.webhook(&org.id, &hook.id).await.unwrap().as_ref(),
        Some(&hook),
        "read back opened"
    );
    // Parked deliveries are found by their URL as the engine knows it (in clear).
    assert_eq!(
        store.parked_urls().await.unwrap(),
        vec![hook.spec.urls[0].url.clone()]
    );
    let claimed = store
        .claim_parked(&lease(), &hook.spec.urls[0].url, 10, false)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, parked.id);
    assert_eq!(claimed[0].url, hook.spec.urls[0].url);

    // Rotation: the new key opens everything, the old one nothing.
    let new_key = SecretKey::generate();
    assert!(store.rotate_key(&new_key).await.unwrap() >= 2);
    drop(store);
    let err = match store::open(&db.url, &test_key()).await {
        Err(e) => e,
        Ok(_) => panic!("the old key still opens the database"),
    };
    assert!(matches!(err, StoreError::WrongKey(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&test_key().id()) && message.contains(&new_key.id()),
        "names both keys: {message}"
    );
    assert!(
        message.contains("TOCSIN_SECRET_KEY"),
        "says the fix: {message}"
    );
    let store = store::open(&db.url, &new_key).await.unwrap();
    assert_eq!(
        store.webhook(&org.id, &hook.id).await.unwrap().as_ref(),
        Some(&hook)
    );
    let (delivery, _) = store
        .delivery(&org.id, &hook.id, &parked.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.url, hook.spec.urls[0].url);
    let now = Timestamp::now();
    let (_, adopted) = store
        .adopt_retry_job("run_new", now, now)
        .await
        .unwrap()
        .expect("the silent job is taken up");
    assert_eq!(adopted.url, by_url.url, "its URL opened with the new key");
    let text = stored_text(&db.url).await;
    assert!(!text.contains(URL_PASSWORD) && !text.contains(HEADER_VALUE));
}

/// A database written before secrets were sealed: the first start with a key seals them.
async fn secrets_stored_in_clear_are_sealed_on_start(backend: Backend) {
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let hook = secret_webhook(
        &org.id,
        &format!("https://user:{URL_PASSWORD}@hooks.example/in"),
    );
    let audit = tocsin::domain::audit::AuditEntry::new(
        &org.id,
        &tocsin::domain::audit::Actor::cli(),
        "webhook.created",
        tocsin::domain::audit::webhook_object(&hook.id, "sealed"),
        Vec::new(),
    );
    store.insert_webhook(&hook, &audit).await.unwrap();
    park_one(store.as_ref(), &org, &hook).await;
    drop(store);
    // What an earlier version left: everything in clear and no key recorded.
    let spec = serde_json::to_string(&hook.spec).unwrap();
    raw(
        &db.url,
        &format!(
            "UPDATE webhooks SET spec = '{}', secret = '{}'",
            spec.replace('\'', "''"),
            hook.secret
        ),
    )
    .await;
    raw(
        &db.url,
        &format!("UPDATE deliveries SET url = '{}'", hook.spec.urls[0].url),
    )
    .await;
    raw(&db.url, "DELETE FROM key_check").await;
    assert!(stored_text(&db.url).await.contains(URL_PASSWORD));

    let store = store::open(&db.url, &test_key()).await.unwrap();
    let text = stored_text(&db.url).await;
    for secret in [hook.secret.as_str(), HEADER_VALUE, URL_PASSWORD] {
        assert!(!text.contains(secret), "{secret} still in clear: {text}");
    }
    assert_eq!(
        store.webhook(&org.id, &hook.id).await.unwrap().as_ref(),
        Some(&hook)
    );
    assert_eq!(
        store.parked_urls().await.unwrap(),
        vec![hook.spec.urls[0].url.clone()]
    );
}

both_backends!(
    secrets_are_sealed_at_rest_and_rotate,
    secrets_stored_in_clear_are_sealed_on_start,
);

fn key_file(db: &TestDb) -> std::path::PathBuf {
    tocsin::secret_key::key_path(&db.url)
}

/// Runs the binary with extra environment; (success, stdout, stderr).
fn tocsin_with(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const LOOPBACK: (&str, &str) = ("TOCSIN_DELIVERY__ALLOWED_NETWORKS", "127.0.0.0/8");

/// The first start generates `tocsin.key` (0600) and says so; a wrong key is a clear start
/// error; `rotate-key` replaces the key file, and deliveries afterwards still carry the
/// credential and a signature made with the webhook's secret; a rotation interrupted between
/// its commit and the key file's move is finished at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_file_is_generated_checked_and_rotated() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let receiver = Receiver::start().await;
    let server = Server::start_with(&db.url, &[LOOPBACK]);
    let token = server.owner_token();
    let (_, first_out) = server.stop();
    let path = key_file(&db);
    assert!(
        first_out.contains("Generated the secret key") && first_out.contains("tocsin.key"),
        "{first_out}"
    );
    // No line of the first start's words hangs past the 4-space indent of what is to be
    // copied (a wrapped line once hung at 13 spaces).
    assert!(
        !first_out.lines().any(|l| l.starts_with("     ")),
        "{first_out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file is private");
    }
    let generated = std::fs::read_to_string(&path).unwrap();

    let server = Server::start_with(&db.url, &[LOOPBACK]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        generated,
        "later starts read the key file"
    );
    let client = crate::helpers::http_client();
    let created: serde_json::Value = client
        .post(format!("{}/v3/extensions/event-webhooks", server.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(
            json!({
                "name": "sealed", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
                "urls": [{"url": receiver.url("/in")}], "is_all_teams_configured": true,
                "header": {"Authorization": HEADER_VALUE}
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    let secret = created["data"]["secret"].as_str().unwrap().to_owned();
    server.stop();

    let wrong = SecretKey::generate().to_base64();
    let (ok, _, stderr) = tocsin_with(
        &["migrate", "--database-url", &db.url],
        &[("TOCSIN_SECRET_KEY", &wrong)],
    );
    assert!(!ok, "a wrong key must not start");
    assert!(
        stderr.contains("is not the one this database's secrets are sealed with"),
        "{stderr}"
    );

    let (ok, _, stderr) = tocsin_with(&["rotate-key", "--database-url", &db.url], &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("now holds the new key"), "{stderr}");
    let after = std::fs::read_to_string(&path).unwrap();
    assert_ne!(generated, after);

    // Interrupted after the commit: the old key in place, the new one beside it.
    let (ok, _, stderr) = tocsin_with(&["rotate-key", "--database-url", &db.url], &[]);
    assert!(ok, "{stderr}");
    let newest = std::fs::read_to_string(&path).unwrap();
    std::fs::write(path.with_extension("key.next"), &newest).unwrap();
    std::fs::write(&path, &after).unwrap();

    let server = Server::start_with(&db.url, &[LOOPBACK]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), newest);
    assert!(!path.with_extension("key.next").exists());
    let event = json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i", "message": "m", "status": "triggered",
                     "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    let status = client
        .post(format!("{}/v3/events", server.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(event.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    let got = receiver.wait_for("/in", 1).await;
    assert_eq!(got[0].header("authorization"), HEADER_VALUE);
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .expect("signed with the webhook's own secret");
    server.stop();
}

/// With a configured key, a generated new key is shown before the rotation commits: when it
/// cannot be (standard output nobody can write), nothing changes and the old key still
/// opens the database; `--new-key-file` writes it (0600) instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_rotation_never_loses_the_new_key() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let old = test_key().to_base64();
    let configured = [("TOCSIN_SECRET_KEY", old.as_str())];
    let (ok, _, stderr) = tocsin_with(&["migrate", "--database-url", &db.url], &configured);
    assert!(ok, "{stderr}");

    // Standard output on /dev/full: every write to it fails (ENOSPC), as to a pipe or
    // terminal that is gone.
    let unwritable = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["rotate-key", "--database-url", &db.url])
        .envs(configured)
        .stdout(unwritable)
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let (ok, _, stderr) = tocsin_with(&["migrate", "--database-url", &db.url], &configured);
    assert!(ok, "the old key still opens the database: {stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.key");
    let (ok, stdout, stderr) = tocsin_with(
        &[
            "rotate-key",
            "--database-url",
            &db.url,
            "--new-key-file",
            file.to_str().unwrap(),
        ],
        &configured,
    );
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "written, not printed: {stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file is private");
    }
    let new = std::fs::read_to_string(&file).unwrap();
    let (ok, _, _) = tocsin_with(&["migrate", "--database-url", &db.url], &configured);
    assert!(!ok, "the old key no longer opens it");
    let (ok, _, stderr) = tocsin_with(
        &["migrate", "--database-url", &db.url],
        &[("TOCSIN_SECRET_KEY", new.trim())],
    );
    assert!(ok, "the written key does: {stderr}");
}

/// `rotate-key` refuses while a node serves the database (that node would keep the old key:
/// every event and list would fail on it), and goes ahead once every node has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_waits_until_every_node_has_stopped() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let server = Server::start_with(&db.url, &[LOOPBACK]);
    let before = std::fs::read_to_string(key_file(&db)).unwrap();
    let (ok, _, stderr) = tocsin_with(&["rotate-key", "--database-url", &db.url], &[]);
    assert!(!ok, "refused while a node serves: {stderr}");
    assert!(
        stderr.contains("nothing was changed") && stderr.contains("stop every node first"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(key_file(&db)).unwrap(), before);
    let (stopped, _) = server.stop();
    assert!(stopped);
    let (ok, _, stderr) = tocsin_with(&["rotate-key", "--database-url", &db.url], &[]);
    assert!(ok, "a stopped node no longer counts: {stderr}");
    assert_ne!(std::fs::read_to_string(key_file(&db)).unwrap(), before);
}

/// A node that died without saying so counts as alive only until its last beat ages.
async fn a_node_counts_as_alive_until_its_last_beat_ages(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let now = Timestamp::now();
    let old = now.minus(std::time::Duration::from_secs(60));
    store.node_beat("node-a", old, now).await.unwrap();
    store.node_beat("node-b", old, old).await.unwrap();
    let since = now.minus(tocsin::store::NODE_GONE_AFTER);
    let live: Vec<String> = store
        .live_nodes(since)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(live, ["node-a"]);
    store.node_stopped("node-a").await.unwrap();
    assert!(store.live_nodes(since).await.unwrap().is_empty());
}

/// One webhook that cannot be read (its secret sealed under another key) costs itself:
/// the others still list, match and deliver.
async fn an_unreadable_webhook_costs_only_itself(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let broken = app
        .create_webhook(&json!({
            "name": "broken", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": receiver.url("/broken")}], "is_all_teams_configured": true
        }))
        .await;
    let other_key = tocsin::domain::sealing::Sealer::new(&SecretKey::generate());
    let sealed = other_key.seal("elsewhere", "secret");
    raw(
        &app.db.url,
        &format!(
            "UPDATE webhooks SET secret = '{sealed}' WHERE id = '{}'",
            broken["id"].as_str().unwrap()
        ),
    )
    .await;
    // Created after, so every node reads the organization's webhooks again.
    app.create_webhook(&json!({
        "name": "fine", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": receiver.url("/fine")}], "is_all_teams_configured": true
    }))
    .await;
    let list = app
        .owner(reqwest::Method::GET, "/v3/extensions/event-webhooks", None)
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let names: Vec<&str> = list.body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fine"]);
    let event = json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": "i", "message": "m", "status": "triggered",
                     "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    let accepted = app
        .owner(reqwest::Method::POST, "/v3/events", Some(&event))
        .await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    receiver.wait_for("/fine", 1).await;
    assert!(receiver.received("/broken").is_empty());
}

both_backends!(
    a_node_counts_as_alive_until_its_last_beat_ages,
    an_unreadable_webhook_costs_only_itself,
);
