//! What the tests share: test databases on both backends, the server in-process, the
//! binary, a receiver, an SMTP server, a browser, a person's HTTP session.

pub mod binary;
pub mod browser;
pub mod commit_cutter;
pub mod receiver;
pub mod smtp_server;
pub mod visitor;

use std::{io::Write, sync::Arc};

use reqwest::Method;
use serde_json::Value;
use tocsin::{
    app::Application,
    config::Config,
    domain::{clock::Clock, sealing::SecretKey},
    store::{self, Store},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `both_backends!(name, …)` makes `name::sqlite` and
/// `name::postgres` from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

/// Registers tests that need what only PostgreSQL gives (several nodes on one database,
/// locks across connections): one `postgres` case each, no SQLite twin that would pass
/// without running anything.
#[macro_export]
macro_rules! postgres_only {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

/// A database that lives as long as the test: a temporary SQLite file, or a PostgreSQL
/// database created for this test and dropped afterwards.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

const PG_ENV: &str = "TEST_POSTGRES_URL";

impl TestDb {
    /// `None` (with a printed line; a failure under `CI=true`) when the backend is PostgreSQL
    /// and no server is configured.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/tocsin.db", dir.path().display());
                Some(TestDb {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let Ok(admin) = std::env::var(PG_ENV) else {
                    let thread = std::thread::current();
                    let name = thread.name().unwrap_or("a test");
                    skipped(&format!(
                        "SKIPPED on PostgreSQL: {name} ({PG_ENV} is not set; .ci/run sets it)"
                    ));
                    return None;
                };
                let name = format!(
                    "tocsin_test_{}",
                    tocsin::domain::ids::new_id("t").to_lowercase()
                );
                run_admin(&admin, &format!("CREATE DATABASE {name}")).await;
                let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{name}"));
                Some(TestDb {
                    url: url.to_string(),
                    _dir: None,
                    postgres: Some((admin, name)),
                })
            }
        }
    }
}

async fn run_admin(admin_url: &str, sql: &str) {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    conn.execute(sql).await.expect(sql);
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop runs outside async; a short-lived runtime on its own thread does the work.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(run_admin(
                        &admin,
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ))
            })
            .join();
        }
    }
}

pub async fn open_store(backend: Backend) -> Option<(Arc<dyn Store>, TestDb)> {
    let db = TestDb::new(backend).await?;
    let store = store::open(&db.url, &test_key()).await.expect("open store");
    Some((store, db))
}

pub struct TestApp {
    pub address: String,
    /// `metrics_listen`'s address, when the test set one.
    pub metrics_address: Option<String>,
    pub owner_token: String,
    /// The first start's setup link for the owner account (only on the first start).
    pub owner_setup_url: Option<String>,
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub db: TestDb,
    /// The clock the server runs on (a test's, to step its wall time).
    clock: Clock,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// How long a test waits for an observable outcome before it fails.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// The secret key of every test database (tests of the key itself make their own).
pub fn test_key() -> SecretKey {
    SecretKey::from_base64("dG9jc2luIHRlc3Qga2V5IC0gMzIgYnl0ZXMgbG9uZyE=").expect("32 bytes")
}

/// Test receivers live on loopback, so tests allow it; retries come quickly.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.to_owned(),
        secret_key: test_key().to_base64(),
        ..Config::default()
    };
    config.delivery.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    config.delivery.retry_schedule = vec![std::time::Duration::from_millis(100)];
    // Tests poll as fast as they like; the limits have a test of their own.
    config.http.rate_limit = 0;
    config.http.intake_rate_limit = 0;
    config.http.organization_rate_limit = 0;
    config
}

/// Starts the real server in-process on a fresh database of the given backend.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// The same, with the test configuration changed first.
pub async fn spawn_app_with(backend: Backend, change: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db.url);
    change(&mut config);
    Some(start(db, config, None, Clock::system()).await)
}

/// A server whose wall clock the test steps: `(app, step)`, where `step(by, forward)` moves
/// the wall clock by that much, forward or back, from where it stands (process time does
/// not move).
pub async fn spawn_app_with_stepped_clock(
    backend: Backend,
    change: impl FnOnce(&mut Config),
) -> Option<(TestApp, impl Fn(std::time::Duration, bool))> {
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db.url);
    change(&mut config);
    let offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let read = offset.clone();
    let clock = Clock::with_wall(move || {
        let system = tocsin::domain::Timestamp::now().as_micros();
        tocsin::domain::Timestamp::from_micros(
            system + read.load(std::sync::atomic::Ordering::SeqCst),
        )
    });
    let step = move |by: std::time::Duration, forward: bool| {
        let micros = by.as_micros() as i64;
        let micros = if forward { micros } else { -micros };
        offset.fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
    };
    Some((start(db, config, None, clock).await, step))
}

async fn start(db: TestDb, config: Config, owner_token: Option<String>, clock: Clock) -> TestApp {
    let application = Application::build_with_clock(config.clone(), clock.clone())
        .await
        .expect("server starts");
    let owner_token = owner_token
        .or_else(|| application.first_start_token().map(|t| t.plaintext.clone()))
        .expect("a fresh database yields an owner token");
    let owner_setup_url = application.first_start_setup_url();
    let address = format!("http://{}", application.address());
    let metrics_address = application.metrics_address().map(|a| format!("http://{a}"));
    let store = application.store();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        application
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
    });
    TestApp {
        address,
        metrics_address,
        owner_token,
        owner_setup_url,
        store,
        config,
        db,
        clock,
        client: http_client(),
        stop: Some(stop),
        server: Some(server),
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The error message of a `{"meta": …}` answer.
    pub fn message(&self) -> &str {
        self.body["meta"]["error_message"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// The installation's organization (made at the first start).
    pub async fn organization(&self) -> tocsin::domain::organization::Organization {
        self.store
            .installation_organization()
            .await
            .unwrap()
            .expect("the first start made the organization")
    }

    /// Stops the server gracefully (as on SIGTERM) and waits until it has.
    pub async fn stop(&mut self) {
        let _ = self.stop.take().expect("running").send(());
        self.server
            .take()
            .expect("running")
            .await
            .expect("server stopped cleanly");
    }

    /// Another node on the same database (PostgreSQL), with the same settings and owner
    /// token; the database stays this app's to drop.
    pub async fn another_node(&self) -> TestApp {
        let db = TestDb {
            url: self.db.url.clone(),
            _dir: None,
            postgres: None,
        };
        start(
            db,
            self.config.clone(),
            Some(self.owner_token.clone()),
            self.clock.restarted(),
        )
        .await
    }

    /// Another node on the same database, its settings changed by `change`.
    pub async fn another_node_with(&self, change: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb {
            url: self.db.url.clone(),
            _dir: None,
            postgres: None,
        };
        let mut config = self.config.clone();
        change(&mut config);
        start(
            db,
            config,
            Some(self.owner_token.clone()),
            self.clock.restarted(),
        )
        .await
    }

    /// Stops the server (unless stopped already) and starts a new one on the same database.
    pub async fn restart(mut self) -> TestApp {
        if self.server.is_some() {
            self.stop().await;
        }
        let owner = self.owner_token.clone();
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                _dir: None,
                postgres: None,
            },
        );
        let config = self.config.clone();
        start(db, config, Some(owner), self.clock.restarted()).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let text = response.text().await.expect("response body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer, got {text:?}"))
        };
        Reply { status, body }
    }

    /// A call with the owner token.
    pub async fn owner(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call(
            method,
            path,
            Some(&self.owner_token.clone()),
            body.map(Value::to_string),
        )
        .await
    }

    pub async fn create_webhook(&self, body: &Value) -> Value {
        let reply = self
            .owner(Method::POST, "/v3/extensions/event-webhooks", Some(body))
            .await;
        assert_eq!(reply.status, 201, "create failed: {}", reply.body);
        reply.body["data"].clone()
    }

    pub async fn webhook_count(&self) -> u64 {
        let reply = self
            .owner(Method::GET, "/v3/extensions/event-webhooks", None)
            .await;
        assert_eq!(reply.status, 200);
        reply.body["data"]["meta"]["total_count"]
            .as_u64()
            .expect("total_count")
    }
}

/// Waits (at most `DEADLINE`) until `check` holds for the value `probe` returns.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F, check: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let value = probe().await;
        if check(&value) {
            return value;
        }
        if std::time::Instant::now() > deadline {
            panic!("{what}: not reached before the deadline; last seen {value:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `body` with the fields of `patch` set.
pub fn patched(mut body: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().expect("a patch is an object") {
        body[k] = v.clone();
    }
    body
}

/// A valid webhook body to start tests from.
pub fn minimal_webhook(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": "https://receiver.example/hook", "method": "POST"}],
        "is_all_teams_configured": true
    })
}

/// An HTTP client for tests. reqwest is built without a TLS provider of its own, so one is
/// installed first (whichever test runs first in the process).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Polls futures side by side until all are done (what `futures::join_all` does).
pub async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, future) in out.iter_mut().zip(pending.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}

/// A triggered event of incident `incident`, with the producer's own id if given, as
/// intake would parse it.
pub fn incident_event(
    organization_id: &str,
    incident: &str,
    producer_id: Option<&str>,
) -> tocsin::domain::event::Event {
    use tocsin::domain::event::{parse_event, Tenant};
    let mut body = serde_json::json!({"type": "incident.triggered", "team": {"id": "t"},
        "incident": {"id": incident, "message": "m", "status": "triggered",
                     "service": {"id": "s"}, "alert_source": {"id": "a"}}});
    if let Some(id) = producer_id {
        body["id"] = serde_json::json!(id);
    }
    parse_event(
        &body,
        Tenant {
            id: organization_id,
            name: "Org",
        },
    )
    .unwrap()
}

/// An event of incident `incident` and one delivery of it to `url` for the webhook, as
/// intake would make them: for tests of the store that write deliveries directly.
pub fn event_and_delivery(
    organization_id: &str,
    webhook_id: &tocsin::domain::ids::WebhookId,
    incident: &str,
    url: &str,
) -> (
    tocsin::domain::event::Event,
    tocsin::domain::delivery::NewDelivery,
) {
    let event = incident_event(organization_id, incident, None);
    let delivery = delivery_of(&event, webhook_id, url);
    (event, delivery)
}

/// A delivery of `event` to `url` for the webhook, as intake would make it.
pub fn delivery_of(
    event: &tocsin::domain::event::Event,
    webhook_id: &tocsin::domain::ids::WebhookId,
    url: &str,
) -> tocsin::domain::delivery::NewDelivery {
    tocsin::domain::delivery::NewDelivery {
        id: tocsin::domain::ids::DeliveryId::generate(),
        organization_id: event.organization_id.clone(),
        webhook_id: webhook_id.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.name,
        incident_id: event.incident_id().to_owned(),
        url: url.to_owned(),
        method: tocsin::domain::webhook::Method::Post,
        payload: "{}".into(),
        payload_id: Some(tocsin::domain::ids::new_id("pld")),
        failure: None,
        notify: false,
        origin: Default::default(),
        created_at: tocsin::domain::Timestamp::now(),
    }
}

/// A port that refuses connections for as long as the socket is held: bound, so that no
/// other test's listener can be given it meanwhile (a port merely found free could be, and
/// deliveries would then reach that listener), and not listening.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Says that (part of) a test did not run, and why: printed past the harness's capture, so
/// a skip is always seen. Under `CI=true` it fails the test instead: CI has every service
/// and tool, and a missing one must be a red run, not a silent pass.
pub fn skipped(line: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{line}: under CI=true nothing may be skipped (.ci/run installs and starts what the tests need)");
    }
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The programs `names` found on `PATH`, in order, or `None` after saying the test is
/// skipped and `why` ([`skipped`]: under `CI=true` a missing program fails the test).
pub fn tools_or_skip(names: &[&str], why: &str) -> Option<Vec<std::path::PathBuf>> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let found: Option<Vec<_>> = names
        .iter()
        .map(|name| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .collect();
    if found.is_none() {
        skipped(&format!(
            "SKIPPED: {} ({why})",
            std::thread::current().name().unwrap_or("a test")
        ));
    }
    found
}
