//! Squadcast's payload shapes (reference/squadcast-samples): the v2 envelope and the flat v1
//! object. Incident fields pass through as the producer wrote them (exact numbers and
//! escapes) and in the order they were received.

use serde::{ser::SerializeMap, Serialize, Serializer};
use serde_json::{value::RawValue, Value};

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
    resource_data: &'a RawValue,
    resource_type: &'static str,
    organization: &'a Value,
    team: &'a Value,
    /// For events about a note, task, channel, …: the incident it belongs to, after the
    /// rest, as in Squadcast's samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<&'a RawValue>,
}

pub fn render_v2(event: &Event) -> V2<'_> {
    V2 {
        version: "v2",
        event: V2Event {
            id: &event.payload_event_id,
            kind: event.event_type.name,
            resource: event.event_type.resource,
            timestamp: &event.timestamp,
        },
        data: match &event.resource {
            Some(resource) => V2Data {
                resource_data: resource.text.raw(),
                resource_type: event.event_type.resource,
                organization: &event.organization,
                team: &event.team,
                incident: Some(event.incident_text.raw()),
            },
            None => V2Data {
                resource_data: event.incident_text.raw(),
                resource_type: event.event_type.resource,
                organization: &event.organization,
                team: &event.team,
                incident: None,
            },
        },
    }
}

/// v1 is the incident itself with `event_type` and `organization` after its `id`.
pub struct V1<'a> {
    event: &'a Event,
    incident: Vec<(String, &'a RawValue)>,
}

pub fn render_v1(event: &Event) -> V1<'_> {
    V1 {
        event,
        incident: event.incident_text.members(),
    }
}

impl Serialize for V1<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.incident.len() + 2))?;
        map.serialize_entry("id", self.event.incident_id())?;
        // Webhooks with v1 payloads subscribe only to the types that have a v1 name.
        map.serialize_entry(
            "event_type",
            self.event
                .event_type
                .v1_name
                .unwrap_or(self.event.event_type.name),
        )?;
        map.serialize_entry("organization", &self.event.organization)?;
        for (key, value) in &self.incident {
            if key != "id" {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{parse_event_text, Tenant};

    #[test]
    fn incident_numbers_and_escapes_reach_both_versions_as_written() {
        let text = br#"{"type": "incident.triggered", "team": {"id": "t"},
            "incident": {"id": "i", "message": "caf\u00e9", "status": "triggered",
              "service": {"id": "s"}, "alert_source": {"id": "a"},
              "big": 123456789012345678901234567890, "e": 1E2, "f": 2.50}}"#;
        let value: Value = serde_json::from_slice(text).unwrap();
        let tenant = Tenant { id: "o", name: "O" };
        let event = parse_event_text(&value, text, tenant).unwrap();
        let incident = r#"{"id":"i","message":"caf\u00e9","status":"triggered","service":{"id":"s"},"alert_source":{"id":"a"},"big":123456789012345678901234567890,"e":1E2,"f":2.50}"#;
        let v2 = serde_json::to_string(&render_v2(&event)).unwrap();
        assert!(
            v2.contains(&format!(r#""resource_data":{incident},"#)),
            "{v2}"
        );
        let v1 = serde_json::to_string(&render_v1(&event)).unwrap();
        assert_eq!(
            v1,
            r#"{"id":"i","event_type":"incident_triggered","organization":{"id":"o","name":"O"},"message":"caf\u00e9","status":"triggered","service":{"id":"s"},"alert_source":{"id":"a"},"big":123456789012345678901234567890,"e":1E2,"f":2.50}"#
        );
    }
}
