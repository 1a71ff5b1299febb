//! Matching one event against 1,000, 10,000 and 100,000 webhooks with filters: what intake
//! pays per event once the catalog has the webhooks parsed in memory, evaluating every
//! webhook (as before the index) and through the catalog's index (what intake does).
//! Then, with the webhooks in a SQLite store: the catalog's first read of them (its memory)
//! and how long a change to one of them takes to reach matching.
//! Run: `cargo bench --bench matching` (`MATCHING_STORE_MAX=10000` stops the store part
//! there; seeding 100,000 takes a few minutes).

use std::time::{Duration, Instant};

use serde_json::json;
use tocsin::{
    catalog::{fires_for, CompiledWebhook, Snapshot},
    domain::{
        event::{parse_event, Event, Tenant},
        webhook::Webhook,
    },
};

/// Webhooks like the seed's: service and alert-source groups, a tag, a regex.
fn webhooks(count: usize) -> Vec<CompiledWebhook> {
    (0..count)
        .map(|i| {
            let mut checked = tocsin::webhook_check::check(&webhook_body(i)).expect("valid");
            // As the catalog keeps them: the filter parsed, not its stored form.
            checked.spec.filters = None;
            CompiledWebhook::new(
                Webhook::new(&"org".into(), "tok", checked.spec),
                checked.filter,
            )
        })
        .collect()
}

fn webhook_body(i: usize) -> serde_json::Value {
    let filters = json!({"op": "or", "conditions": [
        {"op": "and", "conditions": [
            {"op": "is", "lhs": "service", "rhs": format!("svc-{}", i % 100)},
            {"op": "in", "lhs": "alert_source", "rhs": ["as-1", "as-2", format!("as-{}", i % 50)]}
        ]},
        {"op": "is", "lhs": "tags.severity", "rhs": if i % 10 == 0 { "critical" } else { "never" }},
        {"op": "matches", "lhs": "message", "rhs": format!("^db-{}[^0-9]", i % 1000)}
    ]});
    json!({
        "name": format!("hook {i}"),
        "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": "https://example.com/hook"}],
        "is_all_teams_configured": true,
        "filters": filters
    })
}

fn event() -> Event {
    parse_event(
        &json!({
            "type": "incident.triggered", "team": {"id": "t"},
            "incident": {"id": "inc", "message": "db-42 disk full", "status": "triggered",
                         "service": {"id": "svc-42"}, "alert_source": {"id": "as-2"},
                         "tags": {"severity": {"value": "critical"}}}
        }),
        Tenant {
            id: "org",
            name: "org",
        },
    )
    .expect("valid")
}

/// The time per call of `f`, over enough calls to take about a second.
fn per_call(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let started = Instant::now();
    let mut rounds = 0u32;
    let mut matched = 0;
    while started.elapsed() < Duration::from_secs(1) || rounds < 3 {
        matched = f();
        rounds += 1;
    }
    (started.elapsed() / rounds, matched)
}

/// Counts the bytes allocated and not yet freed, so that what the catalog holds is
/// measured exactly (a resident-memory delta hides what an earlier round freed).
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated and not freed, in MiB.
fn live_mib() -> f64 {
    LIVE.load(std::sync::atomic::Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

/// How long after `write` commits the catalog's next look shows it (`seen`).
async fn seen_after(
    catalog: &tocsin::catalog::Catalog,
    organization_id: &tocsin::domain::ids::OrganizationId,
    write: impl std::future::Future<Output = ()>,
    seen: impl Fn(&Snapshot) -> bool,
) -> Duration {
    let started = Instant::now();
    write.await;
    let written = started.elapsed();
    catalog.invalidate(organization_id);
    let snapshot = catalog.webhooks(organization_id).await.unwrap();
    assert!(seen(&snapshot), "the write is seen");
    started.elapsed() - written
}

/// `count` webhooks in a fresh SQLite store; the catalog's first read of them, and a change
/// to one of them made in the store (as another node would) until matching sees it.
async fn through_the_store(count: usize, event: &Event) {
    use tocsin::{
        catalog::Catalog,
        domain::{
            audit::{webhook_object, Actor, AuditEntry},
            organization::Organization,
            webhook::parse_spec,
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let key = tocsin::domain::sealing::SecretKey::generate();
    let store = tocsin::store::open(&format!("sqlite://{}/m.db", dir.path().display()), &key)
        .await
        .unwrap();
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let audit = |hook: &Webhook| {
        AuditEntry::new(
            &org.id,
            &Actor::cli(),
            "webhook.created",
            webhook_object(&hook.id, "w"),
            vec![],
        )
    };
    let seeded = Instant::now();
    let mut first = None;
    for i in 0..count {
        let hook = Webhook::new(&org.id, "tok", parse_spec(&webhook_body(i)).unwrap());
        store.insert_webhook(&hook, &audit(&hook)).await.unwrap();
        first.get_or_insert(hook);
    }
    let seeded = seeded.elapsed();
    let catalog = Catalog::new(store.clone());
    let before = live_mib();
    let loaded = Instant::now();
    let snapshot = catalog.webhooks(&org.id).await.unwrap();
    let loaded = loaded.elapsed();
    let memory = live_mib() - before;
    let matched = snapshot.matching(event).count();
    drop(snapshot);
    // One webhook changed so that it no longer matches (disabled): written by "another
    // node", heard of by this one, then looked for until matching no longer finds it.
    let hook = first.unwrap();
    let mut body = webhook_body(0);
    body["enabled"] = json!(false);
    let spec = parse_spec(&body).unwrap();
    let at = tocsin::domain::Timestamp::now;
    let visible = seen_after(
        &catalog,
        &org.id,
        async {
            let entry = audit(&hook);
            let written = store.update_webhook(&org.id, &hook.id, &spec, at(), &entry);
            written.await.unwrap().unwrap();
        },
        |s| s.matching(event).count() + 1 == matched,
    )
    .await;
    // One deleted, then one created: each until matching sees it.
    let gone = store.webhook_ids(&org.id).await.unwrap()[count / 2].clone();
    let deleted_seen = seen_after(
        &catalog,
        &org.id,
        async {
            let entry = audit(&hook);
            assert!(store.delete_webhook(&org.id, &gone, &entry).await.unwrap());
        },
        |s| s.get(gone.as_str()).is_none(),
    )
    .await;
    let new = Webhook::new(&org.id, "tok", parse_spec(&webhook_body(count)).unwrap());
    let created_seen = seen_after(
        &catalog,
        &org.id,
        async { store.insert_webhook(&new, &audit(&new)).await.unwrap() },
        |s| s.get(new.id.as_str()).is_some(),
    )
    .await;
    // A second change, now that the pages the seeding left cold have been read once.
    let mut body = webhook_body(1);
    body["name"] = json!("changed again");
    let spec = parse_spec(&body).unwrap();
    let again = store.webhook_ids(&org.id).await.unwrap()[1].clone();
    let again_seen = seen_after(
        &catalog,
        &org.id,
        async {
            let entry = audit(&hook);
            let written = store.update_webhook(&org.id, &again, &spec, at(), &entry);
            written.await.unwrap().unwrap();
        },
        |s| s.get(again.as_str()).map(|w| w.webhook.spec.name.as_str()) == Some("changed again"),
    )
    .await;
    println!(
        "{count:>7} webhooks in a store: seeded in {seeded:.1?}; the catalog's first read {loaded:.2?}, {memory:.0} MiB; seen by matching after a change {visible:.2?}, a deletion {deleted_seen:.2?}, a creation {created_seen:.2?}, a second change {again_seen:.2?}"
    );
}

fn main() {
    let event = event();
    for count in [1_000, 10_000, 100_000] {
        let before = live_mib();
        let parsed = Instant::now();
        let hooks = webhooks(count);
        let parsed = parsed.elapsed();
        let built = Instant::now();
        let snapshot = Snapshot::new(None, hooks);
        let built = built.elapsed();
        let held = live_mib() - before;
        let (plain, matched_plain) = per_call(|| {
            snapshot
                .webhooks
                .iter()
                .filter(|w| fires_for(w, &event))
                .count()
        });
        let (indexed, matched) = per_call(|| snapshot.matching(&event).count());
        assert_eq!(
            matched, matched_plain,
            "the index and plain evaluation agree"
        );
        drop(snapshot);
        println!(
            "{count:>7} webhooks: every webhook evaluated {plain:>10.2?}, indexed {indexed:>10.2?} per event; {matched} matched; parsed and checked in {parsed:.2?}, indexed in {built:.2?}; held in {held:.0} MiB"
        );
    }
    let max: usize = std::env::var("MATCHING_STORE_MAX")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for count in [1_000, 10_000, 100_000].into_iter().filter(|&c| c <= max) {
        runtime.block_on(through_the_store(count, &event));
    }
}
