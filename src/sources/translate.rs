//! From what a kind read to the events to store (pure): each change is decided against its
//! incident's state (as left by the changes before it in the same payload), and what is
//! sent becomes a body in `POST /v3/events`' shape.

use std::collections::HashMap;

use serde_json::{value::RawValue, Map, Value};

use super::{
    change::{Change, Intent, Item},
    state::{decide, Decision},
};
use crate::domain::{
    event_type::EventType,
    source::{IncidentState, Source},
    Timestamp,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Event(Box<Made>),
    Ignored(String),
}

/// An event to store: its `/v3/events` body, as a value and as text (the text carries a
/// relayed incident exactly as posted), and the state to keep once it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    pub body: Value,
    pub text: Vec<u8>,
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
                let (body, text) = event_body(
                    source,
                    &change,
                    event_type,
                    &incident_id,
                    &event_id,
                    status.as_str(),
                );
                let next = next.map(|next| {
                    let mut next = *next;
                    if let Some(Value::Object(incident)) = body.get("incident") {
                        // Without the platform's own data, often the largest part: a later
                        // change brings its own, and the row stays small.
                        next.incident = incident
                            .iter()
                            .filter(|(k, _)| *k != "event_payload")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                    }
                    next.team = body.get("team").cloned();
                    current.insert(change.key.clone(), next.clone());
                    next
                });
                out.push(Outcome::Event(Box::new(Made {
                    body,
                    text,
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

fn event_body(
    source: &Source,
    change: &Change,
    event_type: &'static EventType,
    incident_id: &str,
    event_id: &str,
    status: &str,
) -> (Value, Vec<u8>) {
    let mut body = Map::new();
    body.insert("id".into(), Value::String(event_id.to_owned()));
    body.insert("type".into(), Value::String(event_type.name.to_owned()));
    if let Some(t) = &change.timestamp {
        body.insert("timestamp".into(), Value::String(t.clone()));
    }
    if let Some(o) = &change.organization {
        body.insert("organization".into(), o.clone());
    }
    body.insert(
        "team".into(),
        change.team.clone().unwrap_or_else(|| source.team()),
    );
    let incident = match &change.exact {
        Some(_) => change.incident.clone(),
        None => {
            let mut incident = Map::with_capacity(change.incident.len() + 2);
            incident.insert("id".into(), Value::String(incident_id.to_owned()));
            for (k, v) in &change.incident {
                if k != "id" && k != "status" {
                    incident.insert(k.clone(), v.clone());
                }
            }
            incident.insert("status".into(), Value::String(status.to_owned()));
            incident
        }
    };
    body.insert("incident".into(), Value::Object(incident));
    if let Some(r) = &change.resource {
        body.insert("resource".into(), r.clone());
    }
    let value = Value::Object(body);
    let text = match &change.exact {
        // The members as posted, spliced in: numbers and escapes reach receivers unchanged.
        Some(exact) => {
            let mut outer = value.clone();
            let obj = outer.as_object_mut().expect("built as an object");
            obj.remove("incident");
            obj.remove("resource");
            let mut text = serde_json::to_string(&outer).expect("JSON values always serialize");
            text.pop(); // the closing brace
            let raw = |t: &str| RawValue::from_string(t.to_owned()).is_ok();
            if raw(&exact.incident) {
                text.push_str(",\"incident\":");
                text.push_str(&exact.incident);
            }
            if let Some(r) = exact.resource.as_deref().filter(|r| raw(r)) {
                text.push_str(",\"resource\":");
                text.push_str(r);
            }
            text.push('}');
            text.into_bytes()
        }
        None => serde_json::to_vec(&value).expect("JSON values always serialize"),
    };
    (value, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::source::{SourceKind, SourceSettings},
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
        assert_eq!(made.body["type"], "incident.triggered");
        assert_eq!(made.body["team"]["id"], "t1");
        assert_eq!(made.body["incident"]["status"], "triggered");
        assert_eq!(made.body["incident"]["id"], made.incident_id.as_str());
        let parsed: Value = serde_json::from_slice(&made.text).unwrap();
        assert_eq!(parsed, made.body);
        let event = crate::domain::event::parse_event_text(
            &made.body,
            &made.text,
            crate::domain::event::Tenant {
                id: "org_1",
                name: "Acme",
            },
        )
        .expect("a valid event");
        assert_eq!(event.payload_event_id, made.body["id"].as_str().unwrap());
    }

    #[test]
    fn exact_texts_are_spliced_in_unchanged() {
        let mut c = Change::new("i1", Intent::Trigger, incident());
        c.incident_id = Some("i1".into());
        let text = r#"{"id":"i1","message":"Disk full","status":"triggered","n":1.10,"service":{"id":"db"},"alert_source":{"id":"prometheus"}}"#;
        c.exact = Some(ExactTexts {
            incident: text.into(),
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
        let written = String::from_utf8(made.text.clone()).unwrap();
        assert!(
            written.ends_with(&format!(",\"incident\":{text}}}")),
            "{written}"
        );
    }
}
