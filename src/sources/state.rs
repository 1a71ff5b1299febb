//! What the incident's state makes of a change (pure): send an event, or say why not. A
//! source's repeats, late duplicates and notifications out of order are decided here:
//!
//! | change ↓ / state →  | none             | triggered        | acknowledged     | resolved          |
//! |---------------------|------------------|------------------|------------------|-------------------|
//! | trigger             | triggered (new)  | not new          | not new          | triggered (anew)  |
//! | reopen              | triggered (new)  | not new          | not new          | triggered (anew)  |
//! | acknowledge         | never triggered  | acknowledged     | already          | already resolved  |
//! | unacknowledge       | never triggered  | not acknowledged | triggered        | already resolved  |
//! | reassign            | never triggered  | reassigned       | reassigned       | already resolved  |
//! | resolve             | never triggered  | resolved         | resolved         | already resolved  |
//! | other (note, task…) | sent, no state   | sent             | sent             | sent              |
//!
//! "anew": an alert group that fires again after it resolved is a new incident (a new
//! generation, so a new id where tocsin names it). "never triggered" does not hold for a
//! relayed incident posted whole (Squadcast's): it is passed on and followed from then on.

use serde_json::{Map, Value};

use super::change::{derived_id, Change, Intent};
use crate::domain::{
    event_type::EventType,
    ids::SourceId,
    source::{IncidentState, IncidentStatus},
    Timestamp,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send {
        event_type: &'static EventType,
        incident_id: String,
        /// The event's `id` (idempotency key).
        event_id: String,
        /// The status the incident object carries.
        status: IncidentStatus,
        /// The state to keep, `None` where nothing is kept (an event about an incident the
        /// source never triggered, such as a note).
        next: Option<Box<IncidentState>>,
    },
    /// Nothing to send, and why (for the receipt).
    Skip(String),
}

fn lifecycle(name: &str) -> &'static EventType {
    EventType::from_name(name).expect("the four incident lifecycle types exist")
}

/// The event id the tool gave this change, as tocsin stores it (a source-local key made
/// the source's own).
fn given_event_id(source_id: &SourceId, change: &Change) -> Option<String> {
    let id = change.event_id.as_deref()?;
    Some(if change.event_id_is_local {
        derived_id(&[source_id.as_str(), "dedupe", id])
    } else {
        id.to_owned()
    })
}

pub fn decide(
    source_id: &SourceId,
    prior: Option<&IncidentState>,
    change: &Change,
    now: Timestamp,
) -> Decision {
    use IncidentStatus::*;
    let given = given_event_id(source_id, change);
    let fresh = |generation: u32| {
        change.incident_id.clone().unwrap_or_else(|| {
            derived_id(&[source_id.as_str(), &change.key, &generation.to_string()])
        })
    };
    // A relayed platform's incident, posted whole (Squadcast's), is its own record: an
    // update about one it triggered before this source was connected is passed on, and the
    // incident followed from then on, as if its trigger had come through here.
    let relayed;
    let prior = match (prior, &change.exact, change.intent) {
        (
            None,
            Some(_),
            Intent::Acknowledge | Intent::Unacknowledge | Intent::Reassign | Intent::Resolve,
        ) => {
            relayed = IncidentState {
                key: change.key.clone(),
                incident_id: fresh(1),
                status: if change.intent == Intent::Unacknowledge {
                    IncidentStatus::Acknowledged
                } else {
                    IncidentStatus::Triggered
                },
                generation: 1,
                events: 0,
                last_event_id: String::new(),
                incident: Map::new(),
                team: None,
                updated_at: now,
            };
            Some(&relayed)
        }
        _ => prior,
    };
    // The platform sending again the event it sent last (its own id): the same event,
    // which intake answers as a duplicate of the first, not a change decided anew.
    if let (Some(p), Some(id)) = (prior, &given) {
        if &p.last_event_id == id {
            return Decision::Send {
                event_type: sent_as(change.intent),
                incident_id: p.incident_id.clone(),
                event_id: id.clone(),
                status: p.status,
                next: Some(Box::new(p.clone())),
            };
        }
    }
    let never = || {
        Decision::Skip(format!(
            "ignored: this source never triggered incident \"{}\" (its trigger came before the source was connected, or was refused), so it is not {}",
            change.key,
            match change.intent {
                Intent::Acknowledge => "acknowledged",
                Intent::Unacknowledge => "unacknowledged",
                Intent::Reassign => "reassigned",
                _ => "resolved",
            }
        ))
    };
    // (type, incident id, generation, status the incident is left in)
    let (event_type, incident_id, generation, left) = match (change.intent, prior) {
        (Intent::Trigger | Intent::Reopen, None) => {
            (lifecycle("incident.triggered"), fresh(1), 1, Triggered)
        }
        (Intent::Trigger | Intent::Reopen, Some(p)) if p.status == Resolved => {
            let generation = p.generation + 1;
            (
                lifecycle("incident.triggered"),
                fresh(generation),
                generation,
                Triggered,
            )
        }
        (Intent::Trigger | Intent::Reopen, Some(p)) => {
            return Decision::Skip(format!(
                "ignored: incident {} is already {} (a re-notification is not a new event)",
                p.incident_id,
                p.status.as_str()
            ))
        }
        (Intent::Other(t), None) => {
            // No state to keep: an event about a note or task of an incident this source
            // never triggered is sent as it is, and leaves nothing behind.
            let incident_id = fresh(1);
            // The resource names the event: a second note on the same incident is not a
            // repeat of the first.
            let resource = change
                .resource
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default();
            let event_id = given.clone().unwrap_or_else(|| {
                derived_id(&[source_id.as_str(), &incident_id, t.name, "0", &resource])
            });
            let status = match change.incident.get("status").and_then(|s| s.as_str()) {
                Some(s) => IncidentStatus::parse(s).unwrap_or(Triggered),
                None => Triggered,
            };
            return Decision::Send {
                event_type: t,
                incident_id,
                event_id,
                status,
                next: None,
            };
        }
        (Intent::Other(t), Some(p)) => (t, p.incident_id.clone(), p.generation, p.status),
        (_, None) => return never(),
        (_, Some(p)) if p.status == Resolved => {
            return Decision::Skip(format!(
                "ignored: incident {} is already resolved",
                p.incident_id
            ))
        }
        (Intent::Acknowledge, Some(p)) if p.status == Acknowledged => {
            return Decision::Skip(format!(
                "ignored: incident {} is already acknowledged",
                p.incident_id
            ))
        }
        (Intent::Acknowledge, Some(p)) => (
            lifecycle("incident.acknowledged"),
            p.incident_id.clone(),
            p.generation,
            Acknowledged,
        ),
        (Intent::Unacknowledge, Some(p)) if p.status == Triggered => {
            return Decision::Skip(format!(
                "ignored: incident {} is not acknowledged",
                p.incident_id
            ))
        }
        (Intent::Unacknowledge, Some(p)) => (
            lifecycle("incident.triggered"),
            p.incident_id.clone(),
            p.generation,
            Triggered,
        ),
        (Intent::Reassign, Some(p)) => (
            lifecycle("incident.reassigned"),
            p.incident_id.clone(),
            p.generation,
            p.status,
        ),
        (Intent::Resolve, Some(p)) => (
            lifecycle("incident.resolved"),
            p.incident_id.clone(),
            p.generation,
            Resolved,
        ),
    };
    // The number of events before this one names it; a new generation starts counting again.
    let events = match prior {
        Some(p) if p.generation == generation => p.events,
        _ => 0,
    };
    // The generation too: a platform's incident id stays the same when it reopens, and its
    // second life must not repeat the first one's event ids.
    let event_id = given.unwrap_or_else(|| {
        derived_id(&[
            source_id.as_str(),
            &incident_id,
            event_type.name,
            &generation.to_string(),
            &events.to_string(),
        ])
    });
    Decision::Send {
        event_type,
        incident_id: incident_id.clone(),
        event_id: event_id.clone(),
        status: left,
        next: Some(Box::new(IncidentState {
            key: change.key.clone(),
            incident_id,
            status: left,
            generation,
            events: events + 1,
            last_event_id: event_id,
            // Filled in with the incident as sent (`translate`).
            incident: Map::new(),
            team: None,
            updated_at: now,
        })),
    }
}

/// The type of event a change is sent as when it is sent.
fn sent_as(intent: Intent) -> &'static EventType {
    match intent {
        Intent::Trigger | Intent::Reopen | Intent::Unacknowledge => lifecycle("incident.triggered"),
        Intent::Acknowledge => lifecycle("incident.acknowledged"),
        Intent::Reassign => lifecycle("incident.reassigned"),
        Intent::Resolve => lifecycle("incident.resolved"),
        Intent::Other(t) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(intent: Intent) -> Change {
        Change::new("group-1", intent, Map::new())
    }

    fn source() -> SourceId {
        SourceId::from("src_1")
    }

    fn run(prior: Option<&IncidentState>, intent: Intent) -> Decision {
        decide(&source(), prior, &change(intent), Timestamp::from_micros(1))
    }

    fn sent(d: &Decision) -> (&'static str, IncidentState) {
        match d {
            Decision::Send {
                event_type, next, ..
            } => (event_type.name, *next.clone().expect("kept")),
            Decision::Skip(why) => panic!("skipped: {why}"),
        }
    }

    fn skipped(d: &Decision) -> &str {
        match d {
            Decision::Skip(why) => why,
            other => panic!("sent {other:?}"),
        }
    }

    #[test]
    fn a_group_fires_once_resolves_once_and_a_new_firing_is_a_new_incident() {
        let (t, first) = sent(&run(None, Intent::Trigger));
        assert_eq!(t, "incident.triggered");
        assert_eq!(first.generation, 1);
        assert!(skipped(&run(Some(&first), Intent::Trigger)).contains("re-notification"));
        let (t, resolved) = sent(&run(Some(&first), Intent::Resolve));
        assert_eq!(t, "incident.resolved");
        assert_eq!(resolved.incident_id, first.incident_id, "the same incident");
        assert!(skipped(&run(Some(&resolved), Intent::Resolve)).contains("already resolved"));
        let (t, again) = sent(&run(Some(&resolved), Intent::Trigger));
        assert_eq!(t, "incident.triggered");
        assert_eq!(again.generation, 2);
        assert_ne!(again.incident_id, first.incident_id, "a new incident");
    }

    #[test]
    fn nothing_but_a_trigger_starts_an_incident() {
        for intent in [
            Intent::Acknowledge,
            Intent::Unacknowledge,
            Intent::Reassign,
            Intent::Resolve,
        ] {
            assert!(
                skipped(&run(None, intent)).contains("never triggered"),
                "{intent:?}"
            );
        }
    }

    #[test]
    fn acknowledgements_go_both_ways_once_each() {
        let (_, open) = sent(&run(None, Intent::Trigger));
        assert!(skipped(&run(Some(&open), Intent::Unacknowledge)).contains("not acknowledged"));
        let (t, acked) = sent(&run(Some(&open), Intent::Acknowledge));
        assert_eq!(
            (t, acked.status),
            ("incident.acknowledged", IncidentStatus::Acknowledged)
        );
        assert!(skipped(&run(Some(&acked), Intent::Acknowledge)).contains("already acknowledged"));
        let (t, back) = sent(&run(Some(&acked), Intent::Unacknowledge));
        assert_eq!(
            (t, back.status),
            ("incident.triggered", IncidentStatus::Triggered)
        );
        let (t, again) = sent(&run(Some(&back), Intent::Acknowledge));
        assert_eq!(t, "incident.acknowledged");
        let id = |d: &Decision| match d {
            Decision::Send { event_id, .. } => event_id.clone(),
            _ => unreachable!(),
        };
        assert_ne!(
            id(&run(Some(&open), Intent::Acknowledge)),
            id(&run(Some(&back), Intent::Acknowledge)),
            "a second acknowledgement is a second event"
        );
        let (t, reassigned) = sent(&run(Some(&again), Intent::Reassign));
        assert_eq!(
            (t, reassigned.status),
            ("incident.reassigned", IncidentStatus::Acknowledged)
        );
    }

    #[test]
    fn the_same_change_on_the_same_state_makes_the_same_event_id() {
        let a = run(None, Intent::Trigger);
        let b = run(None, Intent::Trigger);
        assert_eq!(a, b, "a payload delivered twice at once is one event");
    }

    #[test]
    fn a_platform_incident_id_is_kept_across_a_reopen() {
        let mut c = change(Intent::Trigger);
        c.incident_id = Some("PD123".into());
        let (_, open) = sent(&decide(&source(), None, &c, Timestamp::from_micros(1)));
        assert_eq!(open.incident_id, "PD123");
        c.intent = Intent::Resolve;
        let (_, done) = sent(&decide(
            &source(),
            Some(&open),
            &c,
            Timestamp::from_micros(2),
        ));
        c.intent = Intent::Reopen;
        let (t, reopened) = sent(&decide(
            &source(),
            Some(&done),
            &c,
            Timestamp::from_micros(3),
        ));
        assert_eq!(
            (t, reopened.incident_id.as_str()),
            ("incident.triggered", "PD123")
        );
    }

    #[test]
    fn a_platforms_event_sent_again_is_the_same_event_not_a_new_decision() {
        let mut c = change(Intent::Trigger);
        c.event_id = Some("evt-1".into());
        let (_, open) = sent(&decide(&source(), None, &c, Timestamp::from_micros(1)));
        let again = decide(&source(), Some(&open), &c, Timestamp::from_micros(2));
        match &again {
            Decision::Send {
                event_id,
                event_type,
                next,
                ..
            } => {
                assert_eq!(
                    (event_id.as_str(), event_type.name),
                    ("evt-1", "incident.triggered")
                );
                assert_eq!(next.as_deref(), Some(&open), "the state is left as it was");
            }
            other => panic!("{other:?}"),
        }
        c.event_id = Some("evt-2".into());
        assert!(
            skipped(&decide(
                &source(),
                Some(&open),
                &c,
                Timestamp::from_micros(3)
            ))
            .contains("re-notification"),
            "another trigger of an open incident is still not new"
        );
    }

    #[test]
    fn a_relayed_incident_triggered_before_the_source_existed_is_followed() {
        let mut c = change(Intent::Acknowledge);
        c.incident_id = Some("sq-1".into());
        c.exact = Some(crate::sources::change::ExactTexts {
            incident: crate::domain::json_text::JsonText::parse("{}").unwrap(),
            resource: None,
        });
        let (t, acked) = sent(&decide(&source(), None, &c, Timestamp::from_micros(1)));
        assert_eq!(
            (t, acked.incident_id.as_str()),
            ("incident.acknowledged", "sq-1")
        );
        c.intent = Intent::Resolve;
        let (t, _) = sent(&decide(
            &source(),
            Some(&acked),
            &c,
            Timestamp::from_micros(2),
        ));
        assert_eq!(t, "incident.resolved");
        c.exact = None;
        assert!(
            skipped(&decide(&source(), None, &c, Timestamp::from_micros(3)))
                .contains("never triggered"),
            "a payload that is not the whole incident still needs its trigger"
        );
    }

    #[test]
    fn other_events_pass_for_unknown_incidents_without_leaving_state() {
        let note = EventType::from_name("incident.incident_notes_created").unwrap();
        match run(None, Intent::Other(note)) {
            Decision::Send {
                next, event_type, ..
            } => {
                assert_eq!(event_type.name, note.name);
                assert_eq!(next, None);
            }
            other => panic!("{other:?}"),
        }
        let (_, open) = sent(&run(None, Intent::Trigger));
        let (t, after) = sent(&run(Some(&open), Intent::Other(note)));
        assert_eq!((t, after.status), (note.name, IncidentStatus::Triggered));
    }
}
