//! Squadcast's published v2 samples (`tests/fixtures/squadcast-samples/v2/`), one per event
//! type, compiled in: what "Send a test" sends and what previews render, so a receiver or a
//! template sees a realistic event of each type.

use serde_json::{json, Value};

use crate::domain::{
    event::{parse_event, Event, Tenant},
    event_type::EventType,
};

const SAMPLES: &[(&str, &str)] = &[
    ("incident.acknowledged", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-acknowledged.json")),
    ("incident.communication_channel_created", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-communication-channel-created.json")),
    ("incident.communication_channel_deleted", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-communication-channel-deleted.json")),
    ("incident.communication_channel_updated", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-communication-channel-updated.json")),
    ("incident.incident_notes_created", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-notes-created.json")),
    ("incident.incident_notes_deleted", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-notes-deleted.json")),
    ("incident.incident_notes_starred", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-note-starred.json")),
    ("incident.incident_notes_unstarred", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-note-unstarred.json")),
    ("incident.incident_notes_updated", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-notes-updated.json")),
    ("incident.incident_task_completed", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-task-completed.json")),
    ("incident.incident_task_created", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-task-created.json")),
    ("incident.incident_task_deleted", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-task-deleted.json")),
    ("incident.incident_task_uncompleted", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-task-uncompleted.json")),
    ("incident.incident_task_updated", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-task-updated.json")),
    ("incident.reassigned", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-reassigned.json")),
    ("incident.resolved", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-resolved.json")),
    ("incident.slo_violating_incident_created", include_str!("../../tests/fixtures/squadcast-samples/v2/slo-violating-incident.json")),
    ("incident.slo_violating_incident_error_budget_spent_updated", include_str!("../../tests/fixtures/squadcast-samples/v2/slo-violating-incident-update-error-budget.json")),
    ("incident.slo_violating_incident_false_positive_marked", include_str!("../../tests/fixtures/squadcast-samples/v2/slo-violation-false-positive.json")),
    ("incident.slo_violating_incident_false_positive_unmarked", include_str!("../../tests/fixtures/squadcast-samples/v2/slo-violation-unmark-false-positive.json")),
    ("incident.statuspage_updated", include_str!("../../tests/fixtures/squadcast-samples/v2/statuspage-updated.json")),
    ("incident.tags_updated", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-tags-updated.json")),
    ("incident.triggered", include_str!("../../tests/fixtures/squadcast-samples/v2/incident-triggered.json")),
];

/// An event of `event_type` built from its sample, as a producer would post it: the
/// sample's incident (and resource), team and organization (the tenant's when given), with
/// a new id and the current time.
pub fn event_of(event_type: &EventType, tenant: Option<Tenant<'_>>) -> Event {
    let text = SAMPLES
        .iter()
        .find(|(name, _)| *name == event_type.name)
        .map(|(_, text)| *text)
        .expect("every event type has a sample (a unit test holds them in step)");
    let sample: Value = serde_json::from_str(text).expect("the samples are JSON");
    let data = &sample["data"];
    let mut body = json!({
        "type": event_type.name,
        "team": data["team"],
        "incident": data.get("incident").unwrap_or(&data["resource_data"]),
    });
    if data.get("incident").is_some() {
        body["resource"] = data["resource_data"].clone();
    }
    let tenant = match tenant {
        Some(tenant) => tenant,
        None => {
            body["organization"] = data["organization"].clone();
            Tenant {
                id: "org",
                name: "org",
            }
        }
    };
    parse_event(&body, tenant).expect("the samples are valid events")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event_type::EVENT_TYPES;

    #[test]
    fn every_event_type_has_a_sample_that_parses_as_that_type() {
        assert_eq!(SAMPLES.len(), EVENT_TYPES.len());
        for t in EVENT_TYPES {
            let event = event_of(t, Some(Tenant { id: "o", name: "O" }));
            assert_eq!(event.event_type, t);
            assert_eq!(event.resource.is_some(), t.has_resource(), "{}", t.name);
            assert_eq!(event.organization["id"], "o");
        }
    }
}
