//! What the catalog's tests build from: webhooks and events, by hand and at random.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::CompiledWebhook;
use crate::domain::{
    event::{parse_event, Event, Tenant},
    webhook::Webhook,
};

/// An incident event of type `kind` for team `team`.
pub fn incident_event(kind: &str, team: &str) -> Event {
    let body = json!({
        "type": kind, "team": {"id": team},
        "incident": {"id": "i", "message": "m", "status": "triggered",
                     "service": {"id": "s"}, "alert_source": {"id": "a"}}
    });
    parse_event(&body, Tenant { id: "o", name: "O" }).unwrap()
}

/// A valid webhook with `patch`'s members in place.
pub fn hook(patch: Value) -> CompiledWebhook {
    let mut body = json!({
        "name": "w",
        "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": "https://e.example/h"}],
        "is_all_teams_configured": true
    });
    for (k, v) in patch.as_object().unwrap() {
        body[k] = v.clone();
    }
    let checked = crate::webhook_check::check(&body).unwrap();
    CompiledWebhook::new(Webhook::new(&"o".into(), "t", checked.spec), checked.filter)
}

// Random webhooks and events over a few fields, values, patterns and triggers.
const FIELDS: [&str; 5] = [
    "service",
    "alert_source",
    "message",
    "tags.severity",
    "team",
];
const VALUES: [&str; 6] = ["a", "ab", "b", "db-1", "db-12", "12"];
const PATTERNS: [&str; 5] = ["^db-1", "^(a|b)", "b", "^db-1[^0-9]", "(?i)^AB"];
const TRIGGERS: [&str; 2] = ["triggered", "resolved"];

fn condition() -> impl Strategy<Value = Value> {
    let value = proptest::sample::select(VALUES.to_vec());
    (
        proptest::sample::select(FIELDS.to_vec()),
        0..10usize,
        value.clone(),
        proptest::collection::vec(value, 1..3),
        proptest::sample::select(PATTERNS.to_vec()),
    )
        .prop_map(|(lhs, op, value, list, pattern)| match op {
            0 => json!({"op": "is", "lhs": lhs, "rhs": value}),
            1 => json!({"op": "is_not", "lhs": lhs, "rhs": value}),
            2 => json!({"op": "in", "lhs": lhs, "rhs": list}),
            3 => json!({"op": "not_in", "lhs": lhs, "rhs": list}),
            4 => json!({"op": "contains", "lhs": lhs, "rhs": value}),
            5 => json!({"op": "starts_with", "lhs": lhs, "rhs": value}),
            6 => json!({"op": "matches", "lhs": lhs, "rhs": pattern}),
            7 => json!({"op": "exists", "lhs": lhs}),
            8 => json!({"op": "not_exists", "lhs": lhs}),
            _ => json!({"op": "not_contains", "lhs": lhs, "rhs": value}),
        })
}

fn filter() -> impl Strategy<Value = Value> {
    condition().prop_recursive(3, 12, 4, |inner| {
        (any::<bool>(), proptest::collection::vec(inner, 1..4)).prop_map(|(all, conditions)| {
            json!({"op": if all { "and" } else { "or" }, "conditions": conditions})
        })
    })
}

pub fn webhook() -> impl Strategy<Value = CompiledWebhook> {
    (
        proptest::option::of(filter()),
        (any::<bool>(), any::<bool>()),
        proptest::sample::subsequence(TRIGGERS.to_vec(), 1..=2),
        // Every team, or some.
        proptest::option::of(proptest::sample::subsequence(VALUES.to_vec(), 1..=2)),
    )
        .prop_map(|(filters, (enabled, manual), triggers, teams)| {
            // A top-level condition is wrapped in a group, as the API takes filters.
            let filters = filters.map(|f| match f.get("conditions") {
                Some(_) => f,
                None => json!({"op": "and", "conditions": [f]}),
            });
            let triggers: Vec<Value> = triggers
                .iter()
                .map(|t| json!({"event_class": "incident", "event_type": t}))
                .collect();
            let checked = crate::webhook_check::check(&json!({
                "name": "hook",
                "triggers": triggers,
                "urls": [{"url": "https://example.com/hook"}],
                "is_all_teams_configured": teams.is_none(),
                "teams": teams.unwrap_or_default(),
                "enabled": enabled,
                "trigger_type": if manual { "manual" } else { "automatic" },
                "filters": filters,
            }))
            .expect("a valid webhook");
            CompiledWebhook::new(
                Webhook::new(&"org".into(), "tok", checked.spec),
                checked.filter,
            )
        })
}

pub fn event() -> impl Strategy<Value = Event> {
    let maybe = || proptest::option::of(proptest::sample::select(VALUES.to_vec()));
    (
        proptest::sample::select(TRIGGERS.to_vec()),
        maybe(),
        maybe(),
        proptest::sample::select(VALUES.to_vec()),
        maybe(),
        proptest::sample::select(VALUES.to_vec()),
    )
        .prop_map(|(action, service, source, message, severity, team)| {
            let mut incident = json!({"id": "i", "message": message, "status": action,
                "service": {"id": service.unwrap_or("x")},
                "alert_source": {"id": source.unwrap_or("x")}});
            // A tag as {value, color}, as a plain string, or a number (matched as text).
            incident["tags"] = match severity {
                Some("b") => json!({"severity": "b"}),
                Some("db-12") => json!({"severity": {"value": 12}}),
                Some(severity) => json!({"severity": {"value": severity}}),
                None => json!({}),
            };
            parse_event(
                &json!({"type": format!("incident.{action}"), "team": {"id": team},
                        "incident": incident}),
                Tenant {
                    id: "org",
                    name: "Org",
                },
            )
            .expect("a valid event")
        })
}
