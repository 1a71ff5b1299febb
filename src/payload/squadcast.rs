//! Squadcast's payload shapes (reference/squadcast-samples): the v2 envelope and the flat v1
//! object. Incident fields pass through in the order they were received.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::domain::event::Event;

/// The v2 envelope, borrowing from the event: serialized straight to text, with no copy of
/// the incident. Fields serialize in declaration order, which is Squadcast's.
#[derive(Serialize)]
pub struct V2<'a> {
    version: &'static str,
    event: V2Event<'a>,
    data: V2Data<'a>,
}

#[derive(Serialize)]
struct V2Event<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    resource: &'static str,
    timestamp: &'a str,
}

#[derive(Serialize)]
struct V2Data<'a> {
    resource_data: &'a Map<String, Value>,
    resource_type: &'static str,
    organization: &'a Value,
    team: &'a Value,
}

pub fn render_v2(event: &Event) -> V2<'_> {
    V2 {
        version: "v2",
        event: V2Event {
            id: &event.payload_event_id,
            kind: event.event_type.name,
            resource: event.event_type.class,
            timestamp: &event.timestamp,
        },
        data: V2Data {
            resource_data: &event.incident,
            resource_type: event.event_type.class,
            organization: &event.organization,
            team: &event.team,
        },
    }
}

/// v1 is the incident itself with `event_type` and `organization` after its `id`.
pub fn render_v1(event: &Event) -> Value {
    let mut body = Map::with_capacity(event.incident.len() + 2);
    body.insert("id".to_owned(), json!(event.incident_id()));
    body.insert("event_type".to_owned(), json!(event.event_type.v1_name));
    body.insert("organization".to_owned(), event.organization.clone());
    for (key, value) in &event.incident {
        if key != "id" {
            body.insert(key.clone(), value.clone());
        }
    }
    Value::Object(body)
}
