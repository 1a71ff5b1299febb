//! Matching one event against 10,000 webhooks with filters: what intake pays per event once
//! the catalog has the webhooks parsed in memory. Run: `cargo bench --bench matching`.

use std::time::Instant;

use serde_json::json;
use tocsin::{
    catalog::{fires_for, CompiledWebhook},
    domain::{
        event::{parse_event, Tenant},
        webhook::Webhook,
    },
};

const WEBHOOKS: usize = 10_000;
const ROUNDS: usize = 200;

fn main() {
    let webhooks: Vec<CompiledWebhook> = (0..WEBHOOKS)
        .map(|i| {
            // Filters like the seed's: service and alert-source groups, a tag, a regex.
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
        .collect();
    let event = parse_event(
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
    .expect("valid");

    let mut matched = 0;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        matched = webhooks.iter().filter(|w| fires_for(w, &event)).count();
    }
    let per_event = started.elapsed() / ROUNDS as u32;
    println!(
        "matching one event against {WEBHOOKS} webhooks with filters: {per_event:?} per event ({:.0} ns per webhook), {matched} matched",
        per_event.as_nanos() as f64 / WEBHOOKS as f64
    );
}
