//! The real binary: first-start token, token commands while the server runs, `config`.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use crate::helpers::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");
use crate::helpers::DEADLINE;

pub struct Server {
    child: Child,
    pub url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `tocsin serve` and waits (with a deadline) for it to say where it listens.
    pub fn start(database_url: &str) -> Server {
        Self::start_with(database_url, &[])
    }

    /// The same with extra environment variables (settings).
    pub fn start_with(database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let log_sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
                let mut log = log_sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = stdout.clone();
        let mut out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let url = rx
            .recv_timeout(DEADLINE)
            .expect("server reports its address");
        Server {
            child,
            url,
            stdout,
            stderr: log,
            reader: Some(reader),
        }
    }

    /// Everything logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The owner token a first start prints (waits for it with a deadline).
    pub fn owner_token(&self) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(token) = find_token(&self.stdout.lock().unwrap()) {
                return token;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no owner token printed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status and everything printed on standard output.
    pub fn stop(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = wait_with_deadline(&mut self.child);
        // The reader sees end-of-file once the process is gone.
        let _ = self.reader.take().unwrap().join();
        let out = self.stdout.lock().unwrap().clone();
        (status.success(), out)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        wait_with_deadline(&mut self.child);
    }
}

fn wait_with_deadline(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tocsin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub async fn get_status(url: &str, token: &str) -> u16 {
    crate::helpers::http_client()
        .get(format!("{url}/v3/extensions/event-webhooks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn find_token(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_'))
        .find(|w| tocsin::domain::token::looks_like_token(w))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_the_owner_token_once() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let server = Server::start(&db.url);
    assert!(server.url.starts_with("http://127.0.0.1:"));
    let (exited_cleanly, first_out) = server.stop();
    assert!(exited_cleanly, "SIGTERM ends the server with status 0");
    let token =
        find_token(&first_out).unwrap_or_else(|| panic!("owner token printed: {first_out}"));
    assert!(
        first_out.contains("curl -H 'Authorization: Bearer"),
        "with an example: {first_out}"
    );

    let again = Server::start(&db.url);
    assert_eq!(
        get_status(&again.url, &token).await,
        200,
        "the printed token works"
    );
    let (_, second_out) = again.stop();
    assert!(
        find_token(&second_out).is_none(),
        "never printed again: {second_out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_commands_work_while_the_server_runs() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let server = Server::start(&db.url);

    let (ok, stdout, stderr) = tocsin(&[
        "token",
        "create",
        "--name",
        "ci-reader",
        "--abilities",
        "read",
        "--database-url",
        &db.url,
    ]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the token on stdout: {stdout:?}");
    assert!(
        tocsin::domain::token::looks_like_token(lines[0]),
        "{stdout:?}"
    );
    assert!(
        stderr.contains("ci-reader"),
        "what happened goes to stderr: {stderr}"
    );
    let token = lines[0];

    assert_eq!(get_status(&server.url, token).await, 200);
    let create = crate::helpers::http_client()
        .post(format!("{}/v3/extensions/event-webhooks", server.url))
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(create.status().as_u16(), 403, "read only");

    let (ok, listing, _) = tocsin(&["token", "list", "--database-url", &db.url]);
    assert!(ok);
    assert!(
        listing.contains("ci-reader") && listing.contains("owner"),
        "{listing}"
    );
    assert!(!listing.contains(token), "values are never listed");
    let id = listing
        .lines()
        .find(|l| l.contains("ci-reader"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();

    let (ok, _, stderr) = tocsin(&["token", "revoke", &id, "--database-url", &db.url]);
    assert!(ok, "{stderr}");
    // The server trusts a token it read for 100 ms; past that the revocation holds.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(
        get_status(&server.url, token).await,
        401,
        "revoked within 100 ms"
    );
    let (ok, _, stderr) = tocsin(&["token", "revoke", &id, "--database-url", &db.url]);
    assert!(
        !ok && stderr.contains(&id),
        "revoking twice explains: {stderr}"
    );

    let (ok, _, stderr) = tocsin(&[
        "token",
        "create",
        "--name",
        "x",
        "--abilities",
        "read,write",
        "--database-url",
        &db.url,
    ]);
    assert!(!ok && stderr.contains("`write`"), "{stderr}");
    server.stop();
}

#[test]
fn config_prints_every_key_and_unknown_keys_are_named() {
    let (ok, stdout, _) = tocsin(&["config"]);
    assert!(ok);
    for (key, meaning) in tocsin::config::KEYS {
        let name = key.rsplit('.').next().unwrap();
        assert!(stdout.contains(&format!("\n{name} = ")), "{key} printed");
        assert!(stdout.contains(meaning), "{key} explained");
    }
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", "sqlite::memory:"])
        .env("TOCSIN_DELIVERY__RETRY", "1s")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TOCSIN_DELIVERY__RETRY") && stderr.contains("delivery.retry"),
        "{stderr}"
    );
}

/// A check of the instrument, not of speed: a small tocsin-bench run reports every field
/// and sees every delivery exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tocsin_bench_reports_completely_on_a_small_run() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = tokio::task::spawn_blocking({
        let json = json.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_tocsin-bench"))
                .args([
                    "--scenario",
                    "fanout",
                    "--events",
                    "20",
                    "--concurrency",
                    "4",
                    "--tocsin",
                    BIN,
                ])
                .arg("--json")
                .arg(&json)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every delivery exactly once          yes"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["deliveries_expected"], 20 * 10 * 2);
    assert_eq!(report["deliveries_distinct"], 400);
    assert_eq!(
        (report["missing"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(0))
    );
    for key in [
        "intake_events_per_s",
        "end_to_end_deliveries_per_s",
        "baseline_requests_per_s",
        "ratio_to_baseline",
        "tocsin_peak_rss_mb",
        "tocsin_cpu_seconds",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {}",
            report[key]
        );
    }
    for p in ["p50", "p90", "p99", "max"] {
        assert!(
            report["latency_ms"][p].as_f64().is_some_and(|v| v > 0.0),
            "latency {p}"
        );
    }
}
