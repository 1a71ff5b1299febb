//! From what a kind read to the events to store (pure): each change is decided against its
//! incident's state (as left by the changes before it in the same payload), and what is
//! sent becomes an event's members, checked as a `POST /v3/events` body is.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{
    change::{Change, Intent, Item},
    state::{decide, Decision},
};
use crate::domain::{
    event::Members,
    event_type::EventType,
    source::{IncidentState, Source},
    Timestamp,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Event(Box<Made>),
    Ignored(String),
}

/// An event to store: its members (a relayed incident's text exactly as posted), and the
/// state to keep once it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    pub members: Members,
    pub event_type: &'static EventType,
    pub incident_id: String,
    pub next: Option<IncidentState>,
}

/// The keys whose state deciding `items` needs.
pub fn keys(items: &[Item]) -> Vec<String> {
    let mut keys: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Item::Change(c) => Some(c.key.clone()),
            Item::Ignored(_) => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

pub fn decide_all(
    source: &Source,
    items: Vec<Item>,
    states: &HashMap<String, IncidentState>,
    now: Timestamp,
) -> Vec<Outcome> {
    // The state as this payload's own changes leave it: two alerts of one group in one
    // notification trigger it once.
    let mut current: HashMap<String, IncidentState> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let change = match item {
            Item::Ignored(why) => {
                out.push(Outcome::Ignored(why));
                continue;
            }
            Item::Change(change) => change,
        };
        let prior = current
            .get(&change.key)
            .or_else(|| states.get(&change.key))
            .cloned();
        let mut change = change;
        let fresh = matches!(change.intent, Intent::Trigger | Intent::Reopen);
        if let (Some(p), None, false) = (&prior, &change.exact, fresh) {
            // What the source said of the incident before, updated by what it says now.
            let mut incident = p.incident.clone();
            for (k, v) in std::mem::take(&mut change.incident) {
                incident.insert(k, v);
            }
            change.incident = incident;
        }
        if change.team.is_none() {
            change.team = prior.as_ref().and_then(|p| p.team.clone());
        }
        if prior.is_none() && change.exact.is_none() && !complete(&change.incident) {
            out.push(Outcome::Ignored(format!(
                "ignored: incident \"{}\" was never triggered through this source, and this payload does not describe it (message, service, alert source)",
                change.key
            )));
            continue;
        }
        match decide(&source.id, prior.as_ref(), &change, now) {
            Decision::Skip(why) => out.push(Outcome::Ignored(why)),
            Decision::Send {
                event_type,
                incident_id,
                event_id,
                status,
                next,
            } => {
                let key = std::mem::take(&mut change.key);
                let members = event_members(
                    source,
                    *change,
                    event_type,
                    &incident_id,
                    event_id,
                    status.as_str(),
                );
                let next = next.map(|next| {
                    let mut next = *next;
                    match &members.incident {
                        // A relayed incident comes whole every time and is never merged
                        // with what came before: its state keeps no copy (each payload
                        // paid for writing it, and for reading it back).
                        Some(_) if members.incident_text.is_some() => next.incident.clear(),
                        // Without the platform's own data, often the largest part: a later
                        // change brings its own, and the row stays small.
                        Some(Value::Object(incident)) => {
                            next.incident = incident
                                .iter()
                                .filter(|(k, _)| *k != "event_payload")
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect();
                        }
                        _ => {}
                    }
                    next.team = members.team.clone();
                    current.insert(key, next.clone());
                    next
                });
                out.push(Outcome::Event(Box::new(Made {
                    members,
                    event_type,
                    incident_id,
                    next,
                })));
            }
        }
    }
    out
}

/// Whether an incident has what every event's incident needs (intake's rule), but for the
/// `id` and `status` the decision gives it.
fn complete(incident: &Map<String, Value>) -> bool {
    crate::domain::event::incident_problems(incident)
        .iter()
        .all(|e| e.field == "incident.id" || e.field == "incident.status")
}

fn event_members(
    source: &Source,
    change: Change,
    event_type: &'static EventType,
    incident_id: &str,
    event_id: String,
    status: &str,
) -> Members {
    let (incident, incident_text, resource_text) = match change.exact {
        // The texts as posted: numbers and escapes reach receivers unchanged.
        Some(exact) => (change.incident, Some(exact.incident), exact.resource),
        None => {
            let mut incident = Map::with_capacity(change.incident.len() + 2);
            incident.insert("id".into(), Value::String(incident_id.to_owned()));
            for (k, v) in change.incident {
                if k != "id" && k != "status" {
                    incident.insert(k, v);
                }
            }
            incident.insert("status".into(), Value::String(status.to_owned()));
            (incident, None, None)
        }
    };
    Members {
        id: Some(Value::String(event_id)),
        event_type: Some(Value::String(event_type.name.to_owned())),
        timestamp: change.timestamp.map(Value::String),
        organization: change.organization,
        team: Some(change.team.unwrap_or_else(|| source.team())),
        incident: Some(Value::Object(incident)),
        resource: change.resource,
        incident_text,
        resource_text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{
            json_text::JsonText,
            source::{SourceKind, SourceSettings},
        },
        sources::change::ExactTexts,
    };
    use serde_json::json;

    fn source() -> Source {
        crate::sources::testing::source(
            SourceKind::Alertmanager,
            SourceSettings::parse(SourceKind::Alertmanager, None, None).unwrap(),
            Some(json!({"id": "t1", "name": "SRE"})),
        )
    }

    fn incident() -> Map<String, Value> {
        json!({"message": "Disk full", "service": {"id": "db"}, "alert_source": {"id": "prometheus"}})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn two_alerts_of_one_group_in_one_payload_trigger_it_once() {
        let items = vec![
            Item::Change(Box::new(Change::new("g", Intent::Trigger, incident()))),
            Item::Change(Box::new(Change::new("g", Intent::Trigger, incident()))),
        ];
        let out = decide_all(&source(), items, &HashMap::new(), Timestamp::from_micros(1));
        assert!(matches!(out[0], Outcome::Event(_)));
        assert!(matches!(&out[1], Outcome::Ignored(why) if why.contains("re-notification")));
    }

    #[test]
    fn the_body_carries_the_decision_and_the_sources_team() {
        let items = vec![Item::Change(Box::new(Change::new(
            "g",
            Intent::Trigger,
            incident(),
        )))];
        let out = decide_all(&source(), items, &HashMap::new(), Timestamp::from_micros(1));
        let Outcome::Event(made) = &out[0] else {
            panic!("{out:?}")
        };
        let body = made.members.body();
        assert_eq!(body["type"], "incident.triggered");
        assert_eq!(body["team"]["id"], "t1");
        assert_eq!(body["incident"]["status"], "triggered");
        assert_eq!(body["incident"]["id"], made.incident_id.as_str());
        let tenant = || crate::domain::event::Tenant {
            id: "org_1",
            name: "Acme",
        };
        let event = crate::domain::event::event_from_members(made.members.clone(), tenant())
            .expect("a valid event");
        assert_eq!(event.payload_event_id, body["id"].as_str().unwrap());
        // The same event as the body posted to `/v3/events` makes.
        let posted = crate::domain::event::parse_event(&body, tenant()).expect("a valid body");
        assert_eq!(event.incident, posted.incident);
        assert_eq!(event.incident_text, posted.incident_text);
        assert_eq!(event.team, posted.team);
    }

    #[test]
    fn exact_texts_are_kept_unchanged() {
        let mut c = Change::new("i1", Intent::Trigger, incident());
        c.incident_id = Some("i1".into());
        let text = r#"{"id":"i1","message":"Disk full","status":"triggered","n":1.10,"service":{"id":"db"},"alert_source":{"id":"prometheus"}}"#;
        // As a relay reads it: the incident parsed, and its text as posted.
        c.incident = serde_json::from_str(text).unwrap();
        c.exact = Some(ExactTexts {
            incident: JsonText::parse(text).unwrap(),
            resource: None,
        });
        let out = decide_all(
            &source(),
            vec![Item::Change(Box::new(c))],
            &HashMap::new(),
            Timestamp::from_micros(1),
        );
        let Outcome::Event(made) = &out[0] else {
            panic!()
        };
        let event = crate::domain::event::event_from_members(
            made.members.clone(),
            crate::domain::event::Tenant {
                id: "org_1",
                name: "Acme",
            },
        )
        .expect("a valid event");
        assert_eq!(event.incident_text.as_str(), text);
        assert!(event.body_json().contains(&format!("\"incident\":{text}")));
        let next = made.next.as_ref().expect("the incident is followed");
        assert!(
            next.incident.is_empty(),
            "a relayed incident comes whole each time: its state keeps no copy of it"
        );
    }

    #[test]
    fn a_tools_incident_is_kept_in_its_state_without_the_tools_own_data() {
        let mut with_payload = incident();
        with_payload.insert("event_payload".into(), json!({"alerts": [1, 2, 3]}));
        let items = vec![Item::Change(Box::new(Change::new(
            "g",
            Intent::Trigger,
            with_payload,
        )))];
        let out = decide_all(&source(), items, &HashMap::new(), Timestamp::from_micros(1));
        let Outcome::Event(made) = &out[0] else {
            panic!("{out:?}")
        };
        let kept = &made.next.as_ref().expect("a state").incident;
        assert_eq!(kept["message"], "Disk full", "merged into later changes");
        assert!(!kept.contains_key("event_payload"));
    }
}
