//! How long the web UI's pages take with 1,000 webhooks and 1,000,000 deliveries, on the
//! real server over HTTP with a logged-in session. Run: `cargo bench --bench pages`
//! (`PAGES_DATABASE_URL=postgres://…/tocsin_bench_pages` for PostgreSQL: a database whose
//! name starts with tocsin_bench, emptied first; `PAGES_SQLITE_PATH=/tmp/pages.db` keeps the
//! SQLite file). Seeded deliveries are stored as failed
//! with a reason, so none is ever sent anywhere.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tocsin::{
    accounts::{self, NewUser},
    app::{self, Application},
    config::Config,
    domain::{
        audit::{webhook_object, Actor, AuditEntry},
        event::{parse_event, Tenant},
        user::Manager,
        webhook::{parse_spec, Webhook},
    },
    intake::plan_deliveries,
    store::{self, Admission, Store},
};

const WEBHOOKS: usize = 1_000;
const DELIVERIES: usize = 1_000_000;
/// Each event goes to this many webhooks (one URL each).
const FANOUT: usize = 10;
const ROUNDS: usize = 30;
const PASSWORD: &str = "plum orbit candle ferry";

async fn seed(store: &Arc<dyn Store>) -> (tocsin::domain::ids::OrganizationId, Vec<Webhook>) {
    let first = app::bootstrap(store.as_ref())
        .await
        .unwrap()
        .expect("an empty database");
    let org = first.token.token.organization_id.clone();
    let mut hooks = Vec::new();
    for i in 0..WEBHOOKS {
        let spec = parse_spec(&json!({
            "name": format!("hook {i:04}"),
            "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            // Never contacted: every seeded delivery is stored as already failed.
            "urls": [{"url": "http://127.0.0.1:9/never"}],
            "is_all_teams_configured": true,
        }))
        .unwrap();
        let hook = Webhook::new(&org, "tok_bench", spec);
        let entry = AuditEntry::new(
            &org,
            &Actor::cli(),
            "webhook.created",
            webhook_object(&hook.id, &hook.spec.name),
            vec![],
        );
        store.insert_webhook(&hook, &entry).await.unwrap();
        hooks.push(hook);
    }
    let admission = Admission {
        lease: None,
        park_urls: Vec::new(),
        park_until: tocsin::domain::Timestamp::now(),
    };
    let events = DELIVERIES / FANOUT;
    let started = Instant::now();
    let mut batch = Vec::new();
    for i in 0..events {
        let event = parse_event(
            &json!({"id": format!("seed-{i}"), "type": "incident.triggered", "team": {"id": "t"},
                "incident": {"id": format!("inc-{}", i % 5000), "message": format!("Seeded incident {i}"), "status": "triggered",
                             "service": {"id": "svc-1", "name": "API"}, "alert_source": {"id": "as-1", "type": "Prometheus"}}}),
            Tenant { id: &org, name: "Default" },
        )
        .unwrap();
        let targets = (0..FANOUT).map(|k| &hooks[(i * FANOUT + k) % WEBHOOKS]);
        let mut deliveries = plan_deliveries(&event, targets);
        for d in &mut deliveries {
            d.failure = Some("seeded by the pages benchmark".to_owned());
        }
        batch.push((event, deliveries));
        if batch.len() == 256 || i + 1 == events {
            store.accept_events(&batch, &admission).await.unwrap();
            batch.clear();
        }
        if i % 20_000 == 0 && i > 0 {
            eprintln!(
                "  seeded {} deliveries ({:.0}/s)",
                i * FANOUT,
                (i * FANOUT) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "seeded {WEBHOOKS} webhooks and {DELIVERIES} deliveries in {:.0?}",
        started.elapsed()
    );
    (org, hooks)
}

async fn fresh_postgres(url: &str) {
    use sqlx::{Connection, Executor};
    let mut parsed = url::Url::parse(url).unwrap();
    let name = parsed.path().trim_start_matches('/').to_owned();
    assert!(
        name.starts_with("tocsin_bench")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "the database name must start with tocsin_bench"
    );
    parsed.set_path("/postgres");
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(parsed.as_str()).await.unwrap();
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let database_url = match std::env::var("PAGES_DATABASE_URL") {
        Ok(url) => {
            fresh_postgres(&url).await;
            url
        }
        // PAGES_SQLITE_PATH keeps the seeded file (for looking at query plans afterwards).
        Err(_) => match std::env::var("PAGES_SQLITE_PATH") {
            Ok(path) => {
                let _ = std::fs::remove_file(&path);
                format!("sqlite://{path}")
            }
            Err(_) => format!("sqlite://{}/pages.db", dir.path().display()),
        },
    };
    let key = tocsin::domain::sealing::SecretKey::generate();
    let store = store::open(&database_url, &key).await.unwrap();
    let (org, hooks) = seed(&store).await;
    let input = NewUser {
        email: "bench@example.com".into(),
        name: "Bench".into(),
        role: "admin".into(),
        password: Some(PASSWORD.into()),
    };
    accounts::create_user(store.as_ref(), &org, input, Manager::Cli, &Actor::cli())
        .await
        .unwrap();
    drop(store);

    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.clone(),
        secret_key: key.to_base64(),
        ..Config::default()
    };
    let application = Application::build(config).await.unwrap();
    let base = format!("http://{}", application.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "email=bench%40example.com&password={}",
            PASSWORD.replace(' ', "+")
        ))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let busy = &hooks[0].id;
    let logs = client
        .get(format!(
            "{base}/v3/extensions/event-webhooks/{busy}/logs?limit=1"
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let delivery = serde_json::from_slice::<serde_json::Value>(&logs.bytes().await.unwrap())
        .unwrap()["data"]["result"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pages = [
        "/".to_owned(),
        "/webhooks".to_owned(),
        "/webhooks?page=40".to_owned(),
        "/webhooks?q=hook+0999".to_owned(),
        format!("/webhooks/{busy}/logs"),
        format!("/webhooks/{busy}/logs?state=failed&incident_id=inc-10"),
        format!("/webhooks/{busy}/logs/{delivery}"),
        format!("/webhooks/{busy}/configure"),
        format!("/webhooks/{busy}/settings"),
        "/incidents".to_owned(),
        "/audit".to_owned(),
        "/users".to_owned(),
    ];
    println!("| page | p50 | p95 | max |");
    println!("|---|---|---|---|");
    for page in &pages {
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let response = client
                .get(format!("{base}{page}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{page}");
            response.bytes().await.unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "| `{page}` | {:.1} ms | {:.1} ms | {:.1} ms |",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            times.last().unwrap().as_secs_f64() * 1e3
        );
    }
    let _ = stop.send(());
    let _ = server.await;
}
