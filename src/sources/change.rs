//! What a kind reads in a received payload, before the incident's state decides what of it
//! becomes an event. Pure data.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::{event_type::EventType, json_text::JsonText};

/// One thing a payload says: a change to an incident, or something tocsin reads and does not
/// send (with why, for the receipt).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Change(Box<Change>),
    Ignored(String),
}

/// The longest incident key kept as it is (see [`Change::new`]).
pub const MAX_KEY: usize = 255;

/// What a payload asks of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// It fires: `incident.triggered` unless already open.
    Trigger,
    /// `incident.acknowledged`, for an open incident.
    Acknowledge,
    /// Back to triggered from acknowledged (`incident.triggered`).
    Unacknowledge,
    /// Open again after a resolve (`incident.triggered`, same incident id when the platform
    /// names it).
    Reopen,
    /// `incident.reassigned`, for an open or acknowledged incident.
    Reassign,
    /// `incident.resolved`, once, for an incident that was triggered.
    Resolve,
    /// Any other of Squadcast's types (notes, tasks, channels, SLO, status page, tags): sent
    /// for an incident the source has spoken of, as posted.
    Other(&'static EventType),
}

impl Intent {
    /// A note added to the incident (`incident.incident_notes_created`).
    pub fn note() -> Intent {
        Intent::Other(
            EventType::from_name("incident.incident_notes_created")
                .expect("Squadcast's incident.incident_notes_created type exists"),
        )
    }
}

/// A note as Squadcast's `incident.incident_notes_created` carries it in
/// `data.resource_data`: `{id, created_by: {id, name}, message: {message, raw_message},
/// created_at, updated_at, type: "message"}`, each part only when known.
pub fn note_resource(
    id: Option<&str>,
    created_by: Option<Value>,
    text: &str,
    at: Option<&str>,
) -> Value {
    let mut resource = Map::new();
    if let Some(id) = id {
        resource.insert("id".into(), Value::String(id.to_owned()));
    }
    if let Some(by) = created_by {
        resource.insert("created_by".into(), by);
    }
    resource.insert(
        "message".into(),
        serde_json::json!({"message": text, "raw_message": text}),
    );
    if let Some(at) = at {
        resource.insert("created_at".into(), Value::String(at.to_owned()));
        resource.insert("updated_at".into(), Value::String(at.to_owned()));
    }
    resource.insert("type".into(), Value::String("message".into()));
    Value::Object(resource)
}

/// One incident change, in the shape of `POST /v3/events` less what the state fills in.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The source's own name for the incident (a group key, a fingerprint, an incident id):
    /// what its state is kept under.
    pub key: String,
    pub intent: Intent,
    /// The platform's incident id, kept as the event's `incident.id`; `None`: tocsin names the
    /// incident from the source, the key and the generation.
    pub incident_id: Option<String>,
    /// The platform's id for this notification (the event's `id`, so a retry by the platform
    /// is not a second event); `None`: made from the incident id and the event type.
    pub event_id: Option<String>,
    /// Whether `event_id` is unique to this source only (a generic mapping's dedupe key, a
    /// counter perhaps): it is then made the source's own, so two sources (or a producer
    /// of `/v3/events`) using the same key never take each other's events for repeats.
    pub event_id_is_local: bool,
    /// `timestamp` of the event, RFC 3339, when the payload says when.
    pub timestamp: Option<String>,
    /// `organization` of the event as posted (Squadcast relays); `None`: the source's own.
    pub organization: Option<Value>,
    /// `{id, name}`; `None`: the source's team.
    pub team: Option<Value>,
    /// The Squadcast incident object. `id` and `status` are set from the decision unless
    /// `exact` holds the text.
    pub incident: Map<String, Value>,
    /// For notes and other resources: the event's `resource`.
    pub resource: Option<Value>,
    /// The incident's and resource's text exactly as posted (Squadcast relays), kept so that
    /// numbers and escapes reach receivers unchanged; the incident is then not altered.
    pub exact: Option<ExactTexts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExactTexts {
    pub incident: JsonText,
    pub resource: Option<JsonText>,
}

impl Change {
    /// A change with everything optional left to the state and the source. A key longer
    /// than [`MAX_KEY`] (an alert group's key holds every grouping label) is kept as its
    /// hash: PostgreSQL's index refuses a key of a few KiB, which SQLite would have stored.
    pub fn new(key: impl Into<String>, intent: Intent, incident: Map<String, Value>) -> Self {
        let key = key.into();
        let key = if key.len() > MAX_KEY {
            format!("sha256:{}", derived_id(&[&key]))
        } else {
            key
        };
        Change {
            key,
            intent,
            incident_id: None,
            event_id: None,
            event_id_is_local: false,
            timestamp: None,
            organization: None,
            team: None,
            incident,
            resource: None,
            exact: None,
        }
    }
}

/// A payload a kind cannot read: 422 with this message, recorded as a refused receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status: 422 for a body tocsin cannot read, 401 for a bad signature.
    pub status: u16,
    /// The field at fault, when one is (`alerts[0].labels`), else `body`.
    pub field: String,
    pub message: String,
}

impl Refusal {
    /// A body this kind cannot read (422).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Refusal {
            status: 422,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A payload whose signature does not hold (401).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Refusal {
            status: 401,
            field: "signature".to_owned(),
            message: message.into(),
        }
    }
}

/// `value` at a dotted path of objects (`labels.team`).
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// The non-empty string at a dotted path.
pub fn text_at<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The incident id tocsin gives an incident its platform does not name: 24 hex digits,
/// like Squadcast's, fixed by the source, the key and the generation.
pub fn derived_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_key_is_kept_as_its_hash_and_a_short_one_as_it_is() {
        let short = Change::new("{}:{alertname=\"Disk\"}", Intent::Trigger, Map::new());
        assert_eq!(short.key, "{}:{alertname=\"Disk\"}");
        let long_key = format!("{{}}:{{{}}}", "label=\"value\", ".repeat(200));
        let long = Change::new(long_key.clone(), Intent::Trigger, Map::new());
        assert!(
            long.key.starts_with("sha256:") && long.key.len() <= MAX_KEY,
            "{}",
            long.key
        );
        assert_eq!(
            Change::new(long_key, Intent::Resolve, Map::new()).key,
            long.key,
            "the same group always has the same key"
        );
    }
}
