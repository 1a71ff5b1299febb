//! One pure reader per kind of source: a received payload (and the source's settings)
//! becomes [`Item`]s. Each is unit-tested on its platform's documented payloads
//! (`tests/fixtures/sources/`).

pub mod alertmanager;
pub mod generic;
pub mod opsgenie;
pub mod pagerduty;
pub mod squadcast;

use serde_json::Value;

use super::change::{Item, Refusal};
use crate::domain::source::{SourceKind, SourceSettings};

/// Reads `payload` as `kind` posts it. `text` is the body as received (signatures and exact
/// incident texts are taken from it).
pub fn read(
    kind: SourceKind,
    settings: &SourceSettings,
    payload: &Value,
    text: &[u8],
) -> Result<Vec<Item>, Refusal> {
    let read = match (kind, settings) {
        (SourceKind::Squadcast, _) => squadcast::read(payload, text),
        (SourceKind::Alertmanager, SourceSettings::Alerts(s)) => {
            alertmanager::read(alertmanager::Flavour::Prometheus, payload, s)
        }
        (SourceKind::Grafana, SourceSettings::Alerts(s)) => {
            alertmanager::read(alertmanager::Flavour::Grafana, payload, s)
        }
        (SourceKind::PagerDuty, _) => pagerduty::read(payload),
        (SourceKind::Opsgenie, _) => opsgenie::read(payload),
        (SourceKind::Generic, SourceSettings::Generic(m)) => generic::read(payload, m),
        (kind, _) => {
            return Err(Refusal::new(
                "settings",
                format!("the source's settings are not those of a {kind} source"),
            ))
        }
    };
    // A body of another tool's shape: say which, and what this source expects.
    read.map_err(|refusal| match recognise(payload) {
        Some(other) if other != kind && refusal.status == 422 => Refusal::new(
            "body",
            format!(
                "this is a {} webhook body; this source expects {}'s ({}). Point {} at a {} source instead, or change what posts here",
                other.label(),
                kind.label(),
                expects(kind),
                other.label(),
                other.as_str(),
            ),
        ),
        _ => refusal,
    })
}

/// Which tool's shape `payload` has, when it is recognisably one.
pub fn recognise(payload: &Value) -> Option<SourceKind> {
    if squadcast::looks_like(payload) {
        Some(SourceKind::Squadcast)
    } else if alertmanager::looks_like_grafana(payload) {
        Some(SourceKind::Grafana)
    } else if alertmanager::looks_like(payload) {
        Some(SourceKind::Alertmanager)
    } else if pagerduty::looks_like(payload) {
        Some(SourceKind::PagerDuty)
    } else if opsgenie::looks_like(payload) {
        Some(SourceKind::Opsgenie)
    } else {
        None
    }
}

/// What a kind's body looks like, for refusals.
pub fn expects(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Squadcast => {
            "a v2 body {\"version\", \"event\": {\"id\", \"type\"}, \"data\": {…}} or a v1 incident with \"event_type\""
        }
        SourceKind::Alertmanager => {
            "{\"version\": \"4\", \"groupKey\", \"status\", \"alerts\": [{\"labels\", \"annotations\", \"fingerprint\"}]}"
        }
        SourceKind::Grafana => {
            "{\"receiver\", \"status\", \"orgId\", \"groupKey\", \"alerts\": [{\"labels\", \"annotations\", \"fingerprint\"}]}"
        }
        SourceKind::PagerDuty => {
            "{\"event\": {\"id\", \"event_type\": \"incident.triggered\", \"data\": {…}}}"
        }
        SourceKind::Opsgenie => "{\"action\": \"Create\", \"alert\": {\"alertId\", \"message\"}}",
        SourceKind::Generic => "any JSON object",
    }
}
