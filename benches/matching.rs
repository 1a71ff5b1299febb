//! Matching one event against 1,000, 10,000 and 100,000 webhooks with filters: what intake
//! pays per event once the catalog has the webhooks parsed in memory, evaluating every
//! webhook (as before the index) and through the catalog's index (what intake does).
//! Run: `cargo bench --bench matching`.

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
            let filters = json!({"op": "or", "conditions": [
                {"op": "and", "conditions": [
                    {"op": "is", "lhs": "service", "rhs": format!("svc-{}", i % 100)},
                    {"op": "in", "lhs": "alert_source", "rhs": ["as-1", "as-2", format!("as-{}", i % 50)]}
                ]},
                {"op": "is", "lhs": "tags.severity", "rhs": if i % 10 == 0 { "critical" } else { "never" }},
                {"op": "matches", "lhs": "message", "rhs": format!("^db-{}[^0-9]", i % 1000)}
            ]});
            let checked = tocsin::webhook_check::check(&json!({
                "name": format!("hook {i}"),
                "triggers": [{"event_class": "incident", "event_type": "triggered"}],
                "urls": [{"url": "https://example.com/hook"}],
                "is_all_teams_configured": true,
                "filters": filters
            }))
            .expect("valid");
            CompiledWebhook {
                webhook: Webhook::new(&"org".into(), "tok", checked.spec),
                filter: checked.filter,
            }
        })
        .collect()
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

fn main() {
    let event = event();
    for count in [1_000, 10_000, 100_000] {
        let parsed = Instant::now();
        let hooks = webhooks(count);
        let parsed = parsed.elapsed();
        let built = Instant::now();
        let snapshot = Snapshot::new(None, hooks);
        let built = built.elapsed();
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
        println!(
            "{count:>7} webhooks: every webhook evaluated {plain:>10.2?}, indexed {indexed:>10.2?} per event; {matched} matched; parsed and checked in {parsed:.2?}, indexed in {built:.2?}"
        );
    }
}
