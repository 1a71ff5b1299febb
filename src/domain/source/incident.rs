//! What a source said last about each incident it spoke of: the state its next payload is
//! decided against (`sources/state.rs`), stored with the events that leave it.

use serde_json::{Map, Value};

use crate::domain::{ids::SourceId, Timestamp};

/// Where an incident a source spoke of stands, as far as that source has said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Triggered => "triggered",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Triggered, Self::Acknowledged, Self::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What a source said last about one incident, keyed by the source's own name for it (an
/// alert group's key, an alert's fingerprint, PagerDuty's incident id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentState {
    pub key: String,
    /// The incident id tocsin's events carry.
    pub incident_id: String,
    pub status: IncidentStatus,
    /// How many times this key has been triggered anew after a resolve (1 for the first):
    /// an alert group that fires again after resolving is a new incident.
    pub generation: u32,
    /// Events sent for this incident so far: names the next one, so that two deliveries of
    /// one payload racing each other make the same event id and the second is a duplicate.
    pub events: u32,
    /// The id of the last event sent: the platform sending that event again (a retry whose
    /// answer was lost) is answered as a duplicate, not decided anew.
    pub last_event_id: String,
    /// The incident object of the last event sent: later changes that carry only part of
    /// it (a PagerDuty note names just the incident) are completed from it.
    pub incident: Map<String, Value>,
    /// The team of the last event sent: a later payload that names none (an Opsgenie
    /// action after Create, a PagerDuty note) keeps the incident in its team.
    pub team: Option<Value>,
    pub updated_at: Timestamp,
}

/// An incident state under its source, as an event carries it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    pub source_id: SourceId,
    pub state: IncidentState,
}
