//! The real binary: first-start token, token commands while the server runs, `config`.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::{
    binary::{find_token, get_status, tocsin, Server, BIN},
    Backend, TestDb, DEADLINE,
};

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
    crate::helpers::eventually(
        "the revoked token refused by the running server",
        || get_status(&server.url, token),
        |status| *status == 401,
    )
    .await;
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

/// The path of the first `…/setup/<code>` link in `text`.
fn setup_path(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.contains("/setup/"))
        .and_then(|w| url::Url::parse(w).ok())
        .map(|u| u.path().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_and_the_first_start_setup_link() {
    use crate::helpers::visitor::{Visitor, PASSWORD};
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let server = Server::start(&db.url);
    server.owner_token();
    let printed = server.stdout();
    assert!(
        printed.contains("create your owner account"),
        "the first start says what the link is for: {printed}"
    );
    let first = setup_path(&printed).unwrap_or_else(|| panic!("a setup link: {printed}"));
    let page = Visitor::at(&server.url).get(&first).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Create your account"));

    let db_arg = ["--database-url", db.url.as_str()];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&db_arg);
        tocsin(&all)
    };
    let (ok, stdout, stderr) = run(&[
        "user",
        "create",
        "--email",
        "ann@example.com",
        "--name",
        "Ann",
        "--role",
        "member",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the link on stdout: {stdout:?}"
    );
    assert!(stderr.contains("ann@example.com"), "{stderr}");
    let link = setup_path(&stdout).expect("a setup link");
    let mut ann = Visitor::at(&server.url);
    let form = ann.get(&link).await;
    assert!(form.text.contains("ann@example.com"), "{}", form.text);
    let done = ann
        .fill_setup(&link, &[("password", PASSWORD), ("confirm", PASSWORD)])
        .await;
    assert_eq!(done.status, 303);

    // --password-stdin: no link; the password works at once; a weak one is refused.
    let with_stdin = |input: &str, email: &str| {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .args([
                "user",
                "create",
                "--email",
                email,
                "--name",
                "Bo",
                "--role",
                "viewer",
                "--password-stdin",
            ])
            .args(db_arg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, stderr) = with_stdin("short\n", "weak@example.com");
    assert!(!ok && stderr.contains("at least 12"), "{stderr}");
    let (ok, stdout, stderr) = with_stdin(&format!("{PASSWORD}\n"), "bo@example.com");
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let mut bo = Visitor::at(&server.url);
    bo.login_ok("bo@example.com").await;

    let (ok, listing, _) = run(&["user", "list"]);
    assert!(ok);
    let line = |email: &str| {
        listing
            .lines()
            .find(|l| l.contains(email))
            .unwrap_or_else(|| panic!("{email} in {listing}"))
            .to_owned()
    };
    assert!(
        line("ann@example.com").contains("\tmember\tactive"),
        "{listing}"
    );
    assert!(
        line("bo@example.com").contains("\tviewer\tactive"),
        "{listing}"
    );
    assert!(!listing.contains("argon2"), "never a password hash");

    let (ok, _, stderr) = run(&["user", "set-role", "ann@example.com", "admin"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&["user", "set-role", "ann@example.com", "boss"]);
    assert!(
        !ok && stderr.contains("owner, admin, member, viewer"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&["user", "set-role", "nobody@example.com", "admin"]);
    assert!(!ok && stderr.contains("nobody@example.com"), "{stderr}");
    let (_, listing, _) = run(&["user", "list"]);
    assert!(
        listing
            .lines()
            .any(|l| l.contains("ann@example.com") && l.contains("\tadmin\t")),
        "{listing}"
    );

    let (ok, _, stderr) = run(&["user", "disable", "bo@example.com"]);
    assert!(ok, "{stderr}");
    let gone = bo
        .send(
            reqwest::Method::GET,
            "/v3/extensions/event-webhooks",
            None,
            None,
        )
        .await;
    assert_eq!(gone.status, 401, "disabling ends sessions");
    assert_eq!(
        Visitor::at(&server.url)
            .login("bo@example.com", PASSWORD)
            .await
            .status,
        401
    );
    let (ok, _, _) = run(&["user", "enable", "bo@example.com"]);
    assert!(ok);
    assert_eq!(
        Visitor::at(&server.url)
            .login("bo@example.com", PASSWORD)
            .await
            .status,
        303
    );

    let (ok, stdout, stderr) = run(&["user", "reset-password", "bo@example.com"]);
    assert!(ok, "{stderr}");
    assert!(setup_path(&stdout).is_some(), "{stdout}");
    assert_eq!(
        Visitor::at(&server.url)
            .login("bo@example.com", PASSWORD)
            .await
            .status,
        401,
        "the old password ended"
    );

    // Ten wrong passwords lock ann out: by this address, which failed twice above, so her
    // last tries were refused without counting. The listing says so; the command line lets
    // her in again at once.
    let mut ann = Visitor::at(&server.url);
    for _ in 0..10 {
        let status = ann
            .login("ann@example.com", "wrong wrong wrong")
            .await
            .status;
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(ann.login("ann@example.com", PASSWORD).await.status, 429);
    let (_, listing, _) = run(&["user", "list"]);
    let ann_line = listing
        .lines()
        .find(|l| l.contains("ann@example.com"))
        .unwrap();
    assert!(
        ann_line.contains("locked by failed logins for 15 more min"),
        "{listing}"
    );
    let (ok, _, stderr) = run(&["user", "unlock", "ann@example.com"]);
    assert!(ok && stderr.contains("may log in again now"), "{stderr}");
    assert_eq!(ann.login("ann@example.com", PASSWORD).await.status, 303);
    let (_, listing, _) = run(&["user", "list"]);
    assert!(!listing.contains("locked"), "{listing}");
    server.stop();
}

/// A webhook name with a line break and terminal escapes could forge a log line or colour
/// the operator's terminal: it is refused, naming the field, and nothing of it is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_supplied_strings_cannot_forge_log_lines() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let server = Server::start(&db.url);
    let token = server.owner_token();
    let create = |name: &str| {
        let body = serde_json::json!({
            "name": name,
            "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://example.com/hook"}],
            "is_all_teams_configured": true
        });
        crate::helpers::http_client()
            .post(format!("{}/v3/extensions/event-webhooks", server.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let forged = "ops\n2026-11-27T00:00:00.000000Z  INFO tocsin: FORGED admin logged in\u{1b}[31m";
    let refused = create(forged).await.unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("\"name\"") && body.contains("line breaks"),
        "{body}"
    );
    assert_eq!(create("ops plain").await.unwrap().status().as_u16(), 201);
    let deadline = std::time::Instant::now() + DEADLINE;
    while !server.stderr().contains("webhook created") {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = server.stderr();
    assert!(log.contains("ops plain"), "{log}");
    assert!(
        !log.contains("FORGED"),
        "nothing of the refused name: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "a raw escape reached the log: {log:?}"
    );
    server.stop();
}

/// Runs the binary with one setting in its environment, which it must refuse: its
/// standard error.
fn refused(args: &[&str], (var, value): (&str, &str)) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env(var, value)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{var}={value} refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    let stderr = refused(
        &["migrate", "--database-url", "sqlite::memory:"],
        ("TOCSIN_DELIVERY__RETRY", "1s"),
    );
    assert!(
        stderr.contains("TOCSIN_DELIVERY__RETRY") && stderr.contains("delivery.retry"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_the_async_workers_its_settings_ask_for() {
    let cores = std::thread::available_parallelism().unwrap().get();
    for (setting, workers) in [(None, (cores / 2).max(1)), (Some("3"), 3)] {
        let db = TestDb::new(Backend::Sqlite).await.unwrap();
        let env: Vec<(&str, &str)> = setting
            .map(|n| ("TOCSIN_WORKER_THREADS", n))
            .into_iter()
            .collect();
        let server = Server::start_with(&db.url, &env);
        // The runtime's own count, as the start line reports it.
        let plural = if workers == 1 { "" } else { "s" };
        let said = format!("({workers} async worker thread{plural}; node node_");
        assert!(
            server.stderr().contains(&said),
            "worker_threads {setting:?} on {cores} cores: {}",
            server.stderr()
        );
        server.stop();
    }
    let stderr = refused(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
        ],
        ("TOCSIN_WORKER_THREADS", "5000"),
    );
    assert!(
        stderr.contains("worker_threads") && stderr.contains("at most 1024"),
        "{stderr}"
    );
}

/// PostgreSQL without autovacuum never refreshes the planner's statistics, and tocsin's
/// queries slow down as its tables grow: `serve` says so at start, naming the setting, and
/// says nothing when it is on. The test server's own setting decides which is checked (CI's
/// PostgreSQL runs without autovacuum).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_when_postgresql_runs_without_autovacuum() {
    use sqlx::Connection;
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let setting: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let server = Server::start(&db.url);
    let warned = server.stderr().contains("autovacuum is off")
        && server.stderr().contains("autovacuum = on");
    assert_eq!(
        warned,
        setting == "off",
        "autovacuum {setting}: {}",
        server.stderr()
    );
    server.stop();
}

/// A check of the instrument, not of speed: a small tocsin-bench run reports every field
/// and sees every delivery exactly once; on SQLite PostgreSQL's CPU is not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tocsin_bench_reports_completely_on_a_small_run() {
    let (row, report) = small_bench_run(&[]).await;
    assert_eq!(row("PostgreSQL CPU per event, under load (ms)"), "-");
    assert!(report["postgresql_cpu_ms_per_event"].is_null());
}

/// On PostgreSQL (running on this machine, as in CI) the report adds PostgreSQL's own CPU
/// per event, the other half of what an event costs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tocsin_bench_reports_postgresql_cpu_on_postgresql() {
    // For the skip line and the server's address; the bench makes its own database, whose
    // name must start with tocsin_bench.
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let mut url = url::Url::parse(&db.url).unwrap();
    let name = format!("tocsin_bench_{}", url.path().trim_start_matches('/'));
    url.set_path(&format!("/{name}"));
    let (row, report) = small_bench_run(&["--database-url", url.as_str()]).await;
    let shown: f64 = row("PostgreSQL CPU per event, under load (ms)")
        .parse()
        .expect("a number of milliseconds");
    assert!(shown > 0.0);
    assert!(report["postgresql_cpu_ms_per_event"]
        .as_f64()
        .is_some_and(|v| v > 0.0));
    let mut admin = url.clone();
    admin.set_path("/postgres");
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin.as_str())
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut conn,
        format!("DROP DATABASE {name} WITH (FORCE)").as_str(),
    )
    .await
    .unwrap();
}

/// Runs `tocsin-bench` on 20 events of the fan-out scenario with `extra` arguments and
/// checks what every run reports. Returns a lookup of the table's rows and the JSON report.
async fn small_bench_run(extra: &[&str]) -> (impl Fn(&str) -> String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
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
                .args(&extra)
                .arg("--json")
                .arg(&json)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = move |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label} row: {stdout}"))
    };
    assert_eq!(row("every delivery exactly once"), "yes");
    let cpu = row("tocsin CPU per event, under load (ms)");
    assert!(cpu.parse::<f64>().is_ok(), "tocsin CPU per event: {cpu}");
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
        "tocsin_cpu_ms_per_event",
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
    (row, report)
}

/// `log_format = "json"`: every line on standard error is one JSON object with timestamp,
/// level, target and fields; requests are logged with method, route, status, duration and
/// the request id, which is honoured from `X-Request-Id` or made, and echoed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_request_ids() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let server = Server::start_with(
        &db.url,
        &[
            ("TOCSIN_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,tocsin::http=debug"),
        ],
    );
    let token = server.owner_token();
    let client = crate::helpers::http_client();
    let answer = client
        .get(format!("{}/v3/extensions/event-webhooks", server.url))
        .bearer_auth(&token)
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["x-request-id"],
        "trace-abc-123",
        "honoured and echoed"
    );
    let made = client
        .get(format!(
            "{}/v3/extensions/event-webhooks/wh_nope",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 404);
    let made_id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(made_id.starts_with("req_"), "{made_id}");

    let lines = crate::helpers::eventually(
        "both requests logged",
        || async { server.stderr() },
        |log: &String| log.contains("trace-abc-123") && log.contains(&made_id),
    )
    .await;
    let mut requests = Vec::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("every line is JSON: {line}"));
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(entry.get(key).is_some(), "{key} in {line}");
        }
        if entry["target"] == "tocsin::http::request" {
            requests.push(entry["fields"].clone());
        }
    }
    let ours = requests
        .iter()
        .find(|f| f["request_id"] == "trace-abc-123")
        .expect("the request with our id");
    assert_eq!(ours["method"], "GET");
    assert_eq!(ours["route"], "/v3/extensions/event-webhooks");
    assert_eq!(ours["status"], 200);
    assert!(ours["duration_ms"].is_number());
    let missing = requests
        .iter()
        .find(|f| f["request_id"] == made_id.as_str())
        .unwrap();
    assert_eq!(
        missing["route"], "/v3/extensions/event-webhooks/{id}",
        "the pattern, not the id"
    );
    assert_eq!(missing["status"], 404);
    server.stop();
}
