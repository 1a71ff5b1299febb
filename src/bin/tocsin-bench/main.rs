//! tocsin-bench: measures tocsin end to end, as a separate process against its own fast
//! receiver, with the raw baseline (the same load straight to the receiver) in the same run.
//!
//! `cargo run --release --bin tocsin-bench -- --scenario throughput [--source KIND] [--database-url URL] [--nodes N] [--json FILE]`

mod load;
mod receiver;
mod report;
mod server;

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::net::TcpListener;

use load::Load;
use receiver::Inbox;
use server::Tocsin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 20,000 events, 1 webhook, 1 URL, as fast as intake takes them.
    Throughput,
    /// 2,000 events to 10 webhooks × 2 URLs.
    Fanout,
    /// 1,000 events/s for 20 s, 1 webhook.
    Latency,
    /// The throughput load plus a second webhook whose URL never answers.
    Isolation,
    /// The receiver refuses connections while 1,000,000 deliveries pile up, then drains.
    Backlog,
    /// Ordinary traffic: 200 events/s for 30 s, 1 webhook; what matters is CPU per event.
    Steady,
}

#[derive(Parser)]
#[command(
    name = "tocsin-bench",
    about = "Measures tocsin end to end against a raw baseline"
)]
struct Args {
    #[arg(long, value_enum, default_value = "throughput")]
    scenario: Scenario,
    /// Default: a fresh SQLite file. A postgres:// URL must name a database whose name starts
    /// with tocsin_bench; it is dropped and created afresh.
    #[arg(long)]
    database_url: Option<String>,
    /// Overrides the scenario's number of events.
    #[arg(long)]
    events: Option<usize>,
    /// Requests in flight from the load generator.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Writes the report as JSON too.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The tocsin binary (default: the one beside this program, built if missing).
    #[arg(long)]
    tocsin: Option<PathBuf>,
    /// Runs this many `tocsin serve` processes on the one database (PostgreSQL only); the
    /// load goes to them round-robin. CPU seconds are their sum, peak RSS their largest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    nodes: u32,
    /// Posts the events through an event source of this kind (its own body shape, its
    /// URL and credential) instead of `/v3/events`.
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceKind {
    Alertmanager,
    Squadcast,
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Squadcast => "squadcast",
        }
    }

    /// What the tool posts for event `i`: the same incident as [`event_body`], one firing
    /// alert group (Alertmanager) or Squadcast's v2 webhook body.
    fn body(self) -> fn(usize) -> String {
        match self {
            SourceKind::Alertmanager => alertmanager_body,
            SourceKind::Squadcast => squadcast_body,
        }
    }
}

fn alertmanager_body(i: usize) -> String {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"CPUThrottling\", instance=\"bench-{i}\"}}"),
        "status": "firing", "receiver": "tocsin", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "CPUThrottling", "instance": format!("bench-{i}")},
        "commonLabels": {"alertname": "CPUThrottling", "instance": format!("bench-{i}"), "service": "api", "severity": "critical"},
        "commonAnnotations": {"summary": "CPU Throttling: Over 90% of cpu is being utilized",
            "description": "Over 90% of cpu is being utilized from the past 2 hours which is a drastic increase from before."},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{"status": "firing",
            "labels": {"alertname": "CPUThrottling", "instance": format!("bench-{i}"), "service": "api", "severity": "critical"},
            "annotations": {"summary": "CPU Throttling: Over 90% of cpu is being utilized"},
            "startsAt": "2026-11-27T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=cpu", "fingerprint": format!("{i:016x}")}]
    })
    .to_string()
}

fn squadcast_body(i: usize) -> String {
    let event: serde_json::Value = serde_json::from_str(&event_body(i)).expect("JSON");
    json!({
        "version": "v2",
        "event": {"id": format!("bench-{i}"), "type": "incident.triggered", "resource": "incident",
                  "timestamp": "2026-11-27T08:00:00.000000000Z"},
        "data": {"resource_data": event["incident"], "resource_type": "incident",
                 "organization": {"id": "org-bench", "name": "Bench"}, "team": event["team"]}
    })
    .to_string()
}

struct Plan {
    events: usize,
    rate: Option<f64>,
    webhooks: usize,
    urls: usize,
    hanging: bool,
    refuse_first: bool,
}

fn plan(args: &Args) -> Plan {
    let (events, rate, webhooks, urls) = match args.scenario {
        Scenario::Throughput | Scenario::Isolation => (20_000, None, 1, 1),
        Scenario::Fanout => (2_000, None, 10, 2),
        Scenario::Latency => (20_000, Some(1_000.0), 1, 1),
        Scenario::Backlog => (1_000_000, None, 1, 1),
        Scenario::Steady => (6_000, Some(200.0), 1, 1),
    };
    Plan {
        events: args.events.unwrap_or(events),
        rate,
        webhooks,
        urls,
        hanging: args.scenario == Scenario::Isolation,
        refuse_first: args.scenario == Scenario::Backlog,
    }
}

/// A realistic event (about 1 KiB), one incident per event so no delivery waits for another.
fn event_body(i: usize) -> String {
    json!({
        "id": format!("bench-{i}"),
        "type": "incident.triggered",
        "team": {"id": "team-bench", "name": "Bench"},
        "incident": {
            "id": format!("inc-{i}"),
            "message": "CPU Throttling: Over 90% of cpu is being utilized",
            "description": "Over 90% of cpu is being utilized from the past 2 hours which is a drastic increase from before.",
            "url": format!("https://incidents.example/incident/{i}"),
            "status": "triggered",
            "created_at": "2026-11-27T08:00:00Z",
            "service": {"id": "svc-1", "name": "API", "slug": "api"},
            "alert_source": {"id": "as-1", "type": "Prometheus", "short_name": "prometheus"},
            "assigned_to": {"id": "ep-1", "name": "SRE escalation", "type": "escalationpolicy"},
            "tags": {"severity": {"value": "critical", "color": "#FF0A49"}},
            "event_count": 1
        }
    })
    .to_string()
}

async fn fresh_postgres(url: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let mut parsed = url::Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    anyhow::ensure!(
        name.starts_with("tocsin_bench")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "the PostgreSQL database must be named tocsin_bench…: it is dropped and created afresh"
    );
    parsed.set_path("/postgres");
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(parsed.as_str()).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let plan = plan(&args);
    let binary = server::binary(args.tocsin.clone())?;
    let temp = std::env::temp_dir().join(format!("tocsin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&temp)?;
    let database_url = match &args.database_url {
        Some(url) if url.starts_with("postgres") => {
            fresh_postgres(url).await?;
            url.clone()
        }
        Some(url) => url.clone(),
        None => format!("sqlite://{}/tocsin.db", temp.display()),
    };
    let backend = if database_url.starts_with("postgres") {
        "postgresql"
    } else {
        "sqlite"
    };
    anyhow::ensure!(
        args.nodes == 1 || backend == "postgresql",
        "--nodes {} needs --database-url postgres://…/tocsin_bench…: one SQLite file serves one node",
        args.nodes
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    // The receiver; for the backlog scenario its port refuses connections at first.
    let inbox = Arc::new(Inbox::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let receiver_address = listener.local_addr()?;
    let listener = if plan.refuse_first {
        drop(listener);
        None
    } else {
        receiver::serve(listener, inbox.clone());
        Some(())
    };
    let expected = plan.events * plan.webhooks * plan.urls;

    // The raw baseline: the same generator, the same number of requests, straight in.
    let baseline = if plan.refuse_first {
        None
    } else {
        eprintln!("baseline: {expected} requests straight to the receiver…");
        let load = Load {
            urls: vec![format!("http://{receiver_address}/baseline")],
            token: None,
            n: expected,
            concurrency: args.concurrency,
            rate: None,
        };
        Some(
            load::run(&client, &load, event_body, Arc::default())
                .await?
                .per_second(),
        )
    };

    let mut settings = vec![(
        "TOCSIN_DELIVERY__ALLOWED_NETWORKS",
        "127.0.0.0/8".to_owned(),
    )];
    if plan.refuse_first {
        settings.push(("TOCSIN_DELIVERY__RETRY_SCHEDULE", "5s".to_owned()));
    }
    let tocsin = Tocsin::start(&binary, &database_url, &settings)?;
    let mut nodes = vec![];
    for _ in 1..args.nodes {
        nodes.push(tocsin.another(&binary, &database_url, &settings)?);
    }
    let source = match args.source {
        Some(kind) => Some(create_source(&client, &tocsin, kind).await?),
        None => None,
    };
    let urls: Vec<String> = std::iter::once(&tocsin)
        .chain(&nodes)
        .map(|node| match &source {
            Some((path, _)) => format!("{}{path}", node.url),
            None => format!("{}/v3/events", node.url),
        })
        .collect();
    eprintln!(
        "tocsin {} on {} ({backend}, {} node(s))",
        tocsin.url, database_url, args.nodes
    );
    for w in 0..plan.webhooks {
        let urls: Vec<_> = (0..plan.urls)
            .map(|u| json!({"url": format!("http://{receiver_address}/hook/{}", w * plan.urls + u), "method": "POST"}))
            .collect();
        create_webhook(&client, &tocsin, &format!("bench {w}"), urls).await?;
    }
    if plan.hanging {
        let hole = receiver::black_hole().await;
        create_webhook(
            &client,
            &tocsin,
            "hanging",
            vec![json!({"url": format!("http://{hole}/never")})],
        )
        .await?;
    }

    let posted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = spawn_progress(posted.clone(), inbox.clone(), plan.events, expected);
    let load = Load {
        urls,
        token: Some(match &source {
            Some((_, token)) => token.clone(),
            None => tocsin.token.clone(),
        }),
        n: plan.events,
        concurrency: args.concurrency,
        rate: plan.rate,
    };
    let cpu_before_load = cpu_seconds(&tocsin, &nodes);
    // PostgreSQL's backends spend as much CPU per event as tocsin or more (BENCHMARKS.md).
    let postgres_before_load = (backend == "postgresql")
        .then(server::postgres_cpu_seconds)
        .flatten();
    let body = args
        .source
        .map_or(event_body as fn(usize) -> String, SourceKind::body);
    let intake = load::run(&client, &load, body, posted).await?;
    let mut pile_up_rss = None;
    let mut drain_started = intake.started;
    if plan.refuse_first {
        pile_up_rss = Some(peak_rss_mb(&tocsin, &nodes));
        eprintln!(
            "all {} events accepted; peak RSS {:.0} MB; the receiver comes up now",
            plan.events,
            pile_up_rss.unwrap_or(0.0)
        );
        let listener = TcpListener::bind(receiver_address).await?;
        drain_started = Instant::now();
        receiver::serve(listener, inbox.clone());
    }
    let _ = listener;

    let deadline = Instant::now() + Duration::from_secs(if plan.refuse_first { 3600 } else { 600 });
    while inbox.count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_during_load = cpu_seconds(&tocsin, &nodes) - cpu_before_load;
    let postgres_during_load =
        postgres_before_load.and_then(|before| Some(server::postgres_cpu_seconds()? - before));
    // Anything more than expected (a duplicate) would arrive now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    progress.abort();

    let report = report::build(report::Inputs {
        scenario: match args.source {
            Some(kind) => format!("{:?} via {} source", args.scenario, kind.name()).to_lowercase(),
            None => format!("{:?}", args.scenario).to_lowercase(),
        },
        backend: &if args.nodes == 1 {
            backend.to_owned()
        } else {
            format!("{backend} × {} nodes", args.nodes)
        },
        events: plan.events,
        expected,
        intake: &intake,
        drain_started,
        arrivals: &inbox.arrivals.lock().unwrap(),
        baseline,
        peak_rss_mb: peak_rss_mb(&tocsin, &nodes),
        pile_up_rss_mb: pile_up_rss,
        cpu_seconds: cpu_seconds(&tocsin, &nodes),
        cpu_seconds_during_load: cpu_during_load,
        postgres_cpu_seconds_during_load: postgres_during_load,
    });
    tocsin.stop();
    for node in nodes {
        node.stop();
    }
    let _ = std::fs::remove_dir_all(&temp);
    println!("{}", report::table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(report["complete"] == true)
}

/// The CPU time of the run's nodes so far, summed.
fn cpu_seconds(first: &Tocsin, others: &[Tocsin]) -> f64 {
    first.cpu_seconds() + others.iter().map(Tocsin::cpu_seconds).sum::<f64>()
}

/// The largest peak resident memory of the run's nodes.
fn peak_rss_mb(first: &Tocsin, others: &[Tocsin]) -> f64 {
    others
        .iter()
        .map(Tocsin::peak_rss_mb)
        .fold(first.peak_rss_mb(), f64::max)
}

async fn create_webhook(
    client: &reqwest::Client,
    tocsin: &Tocsin,
    name: &str,
    urls: Vec<serde_json::Value>,
) -> anyhow::Result<()> {
    let body = json!({
        "name": name,
        "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": urls,
        "is_all_teams_configured": true,
        "max_retry": 10,
        "timeout_seconds": 10,
    });
    let response = client
        .post(format!("{}/v3/extensions/event-webhooks", tocsin.url))
        .bearer_auth(&tocsin.token)
        .body(body.to_string())
        .send()
        .await?;
    anyhow::ensure!(
        response.status().as_u16() == 201,
        "creating a webhook failed: {}",
        response.text().await?
    );
    Ok(())
}

/// An event source of `kind`: the path of its ingest URL and its credential.
async fn create_source(
    client: &reqwest::Client,
    tocsin: &Tocsin,
    kind: SourceKind,
) -> anyhow::Result<(String, String)> {
    let response = client
        .post(format!("{}/v3/sources", tocsin.url))
        .bearer_auth(&tocsin.token)
        .body(json!({"name": "bench", "kind": kind.name(), "team": {"id": "team-bench", "name": "Bench"}}).to_string())
        .send()
        .await?;
    anyhow::ensure!(
        response.status().as_u16() == 201,
        "creating a source failed: {}",
        response.text().await?
    );
    let created: serde_json::Value = serde_json::from_str(&response.text().await?)?;
    let id = created["data"]["id"].as_str().unwrap_or_default();
    let token = created["data"]["token"].as_str().unwrap_or_default();
    Ok((format!("/v3/sources/{id}/events"), token.to_owned()))
}

fn spawn_progress(
    posted: Arc<std::sync::atomic::AtomicUsize>,
    inbox: Arc<Inbox>,
    events: usize,
    expected: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            eprintln!(
                "[{:>4.0} s] events posted {}/{events}, deliveries received {}/{expected}",
                started.elapsed().as_secs_f64(),
                posted.load(Ordering::Relaxed),
                inbox.count.load(Ordering::Relaxed)
            );
        }
    })
}
