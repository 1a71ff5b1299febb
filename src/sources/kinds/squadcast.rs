//! Squadcast's outgoing webhook body, v1 and v2 (all 23 types): relayed as posted. A v2
//! incident and resource keep their text exactly, so a receiver behind tocsin gets the same
//! `data` Squadcast sent; v1 is the incident itself, reshaped into an event.

use serde_json::{value::RawValue, Map, Value};

use crate::{
    domain::{
        event_type::{EventType, EVENT_TYPES},
        json_text::JsonText,
        source::SourceKind,
        Timestamp,
    },
    sources::change::{at, derived_id, text_at, Change, ExactTexts, Intent, Item, Refusal},
};

pub fn looks_like(payload: &Value) -> bool {
    looks_like_v2(payload) || looks_like_v1(payload)
}

fn looks_like_v2(payload: &Value) -> bool {
    payload.get("version").is_some_and(Value::is_string)
        && text_at(payload, "event.id").is_some()
        && text_at(payload, "event.type").is_some()
        && payload.get("data").is_some_and(Value::is_object)
}

fn looks_like_v1(payload: &Value) -> bool {
    text_at(payload, "id").is_some() && text_at(payload, "event_type").and_then(v1_type).is_some()
}

pub fn read(payload: &Value, text: &[u8]) -> Result<Vec<Item>, Refusal> {
    let change =
        if payload.get("event").is_some_and(Value::is_object) && payload.get("data").is_some() {
            read_v2(payload, text)?
        } else if payload.get("event_type").is_some() {
            read_v1(payload, text)?
        } else {
            return Err(Refusal::new(
                "body",
                format!(
                    "is not a Squadcast webhook body: expected {}",
                    super::expects(SourceKind::Squadcast)
                ),
            ));
        };
    Ok(vec![Item::Change(Box::new(change))])
}

fn read_v2(payload: &Value, text: &[u8]) -> Result<Change, Refusal> {
    let event_id = required(payload, "event.id", "Squadcast's id for this event")?;
    let name = required(
        payload,
        "event.type",
        "the event's type, like incident.triggered",
    )?;
    let event_type = EventType::from_name(name).ok_or_else(|| {
        Refusal::new(
            "event.type",
            format!(
                "unknown Squadcast event type \"{name}\"; {}",
                accepted_types()
            ),
        )
    })?;
    let data = payload
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Refusal::new(
                "data",
                "must be an object holding resource_data, organization and team",
            )
        })?;
    let raw = data_texts(text)?;
    // For incident and tag events the incident is the resource; for the others the
    // resource (note, task, …) comes with the incident it belongs to.
    let (incident_at, incident_text) = if event_type.has_resource() {
        ("data.incident", raw.incident)
    } else {
        ("data.resource_data", raw.resource_data)
    };
    let incident = object(data, incident_at, "the Squadcast incident object")?;
    let incident_id = check_incident(incident, incident_at, true)?;
    let resource = if event_type.has_resource() {
        let what = event_type.resource_description();
        object(data, "data.resource_data", what)?;
        let text = raw.resource_data.map(JsonText::exact);
        Some((data["resource_data"].clone(), text))
    } else {
        None
    };
    let mut change = Change::new(incident_id, intent(event_type), incident.clone());
    change.incident_id = Some(incident_id.to_owned());
    change.event_id = Some(event_id.to_owned());
    change.timestamp = timestamp(payload)?;
    change.organization = organization(data.get("organization"), "data.organization")?;
    change.team = team(data.get("team"))?;
    let (resource, resource_text) = resource.unzip();
    change.exact = incident_text.map(|incident| ExactTexts {
        incident: JsonText::exact(incident),
        resource: resource_text.flatten(),
    });
    change.resource = resource;
    Ok(change)
}

fn accepted_types() -> String {
    let names: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
    format!(
        "the {} Squadcast types are accepted: {}",
        names.len(),
        names.join(", ")
    )
}

fn intent(event_type: &'static EventType) -> Intent {
    match event_type.name {
        "incident.triggered" => Intent::Trigger,
        "incident.acknowledged" => Intent::Acknowledge,
        "incident.reassigned" => Intent::Reassign,
        "incident.resolved" => Intent::Resolve,
        _ => Intent::Other(event_type),
    }
}

/// The texts of `data.resource_data` and `data.incident` as posted.
struct DataTexts<'a> {
    resource_data: Option<&'a RawValue>,
    incident: Option<&'a RawValue>,
}

fn data_texts(text: &[u8]) -> Result<DataTexts<'_>, Refusal> {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        data: Data<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Data<'a> {
        #[serde(borrow)]
        resource_data: Option<&'a RawValue>,
        #[serde(borrow)]
        incident: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Body<'_>>(text)
        .map(|b| DataTexts {
            resource_data: b.data.resource_data,
            incident: b.data.incident,
        })
        .map_err(|e| Refusal::new("data", format!("could not be read as posted: {e}")))
}

fn timestamp(payload: &Value) -> Result<Option<String>, Refusal> {
    match at(payload, "event.timestamp") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if Timestamp::parse_rfc3339(s).is_some() => Ok(Some(s.clone())),
        Some(other) => Err(Refusal::new(
            "event.timestamp",
            format!("must be an RFC 3339 time like 2022-10-06T05:26:34.945695898Z, got {other}"),
        )),
    }
}

fn organization(value: Option<&Value>, field: &str) -> Result<Option<Value>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(m)) if m.get("id").is_some_and(Value::is_string) => Ok(Some(o.clone())),
        Some(other) => Err(Refusal::new(
            field,
            format!("must be an object with a string id, like {{\"id\": \"…\", \"name\": \"…\"}}, got {other}"),
        )),
    }
}

fn team(value: Option<&Value>) -> Result<Option<Value>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(t) if text_at(t, "id").is_some() => Ok(Some(t.clone())),
        Some(other) => Err(Refusal::new(
            "data.team",
            format!("must be an object with a non-empty id, like {{\"id\": \"…\", \"name\": \"…\"}}, got {other}"),
        )),
    }
}

/// The v1 type an `event_type` names: v1 bodies exist only for the four incident events.
fn v1_type(name: &str) -> Option<&'static EventType> {
    EventType::from_name(name).filter(|t| t.v1_name == Some(name))
}

fn read_v1(payload: &Value, text: &[u8]) -> Result<Change, Refusal> {
    let name = required(
        payload,
        "event_type",
        "the v1 event's type, like incident_triggered",
    )?;
    let event_type = v1_type(name).ok_or_else(|| {
        Refusal::new(
            "event_type",
            format!(
                "unknown Squadcast v1 event type \"{name}\"; v1 bodies are sent for {}",
                EVENT_TYPES
                    .iter()
                    .filter_map(|t| t.v1_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let body = payload
        .as_object()
        .ok_or_else(|| Refusal::new("body", "must be a JSON object"))?;
    let mut incident = body.clone();
    incident.shift_remove("event_type");
    let organization = organization(
        incident.shift_remove("organization").as_ref(),
        "organization",
    )?;
    let incident_id = check_incident(&incident, "", false)?.to_owned();
    let team = body
        .get("owner")
        .filter(|o| text_at(o, "type") == Some("team"))
        .and_then(|o| {
            let id = text_at(o, "id")?;
            let name = text_at(o, "name").unwrap_or(id);
            Some(serde_json::json!({"id": id, "name": name}))
        });
    let mut change = Change::new(incident_id.clone(), intent(event_type), incident);
    change.incident_id = Some(incident_id);
    // v1 carries no id of its own: the body names it, so a retry of it is the same event.
    change.event_id = Some(format!(
        "sqv1-{}",
        derived_id(&[&String::from_utf8_lossy(text)])
    ));
    change.organization = organization;
    change.team = team;
    Ok(change)
}

/// The incident's id, once what every event's incident needs is there (intake's own rule,
/// `event::incident_problems`, its fields named where they are in this body). A relayed
/// incident is sent as posted, so its `status` must be there too.
fn check_incident<'a>(
    incident: &'a Map<String, Value>,
    path: &str,
    with_status: bool,
) -> Result<&'a str, Refusal> {
    let problem = crate::domain::event::incident_problems(incident)
        .into_iter()
        .find(|e| with_status || e.field != "incident.status");
    if let Some(e) = problem {
        let name = e.field.trim_start_matches("incident.");
        let field = match path {
            "" => name.to_owned(),
            p => format!("{p}.{name}"),
        };
        return Err(Refusal::new(field, e.message));
    }
    Ok(incident
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default())
}

fn required<'a>(payload: &'a Value, path: &str, what: &str) -> Result<&'a str, Refusal> {
    text_at(payload, path)
        .ok_or_else(|| Refusal::new(path, format!("is required: {what}, as non-empty text")))
}

fn object<'a>(
    data: &'a Map<String, Value>,
    path: &str,
    what: &str,
) -> Result<&'a Map<String, Value>, Refusal> {
    let name = path.trim_start_matches("data.");
    data.get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| Refusal::new(path, format!("must be an object: {what}")))
}

#[cfg(test)]
mod tests {
    use crate::sources::testing;
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::{
        domain::{
            event::{event_from_members, Event, Tenant},
            json_text::JsonText,
            source::{IncidentState, IncidentStatus, Source, SourceSettings},
        },
        payload::{render_v1, render_v2},
        sources::translate::{decide_all, Outcome},
    };

    const V2: &[&str] = &[
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-acknowledged.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-communication-channel-created.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-communication-channel-deleted.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-communication-channel-updated.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-note-starred.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-note-unstarred.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-notes-created.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-notes-deleted.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-notes-updated.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-reassigned.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-resolved.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-tags-updated.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-task-completed.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-task-created.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-task-deleted.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-task-uncompleted.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-task-updated.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-triggered.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/slo-violating-incident-update-error-budget.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/slo-violating-incident.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/slo-violation-false-positive.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/slo-violation-unmark-false-positive.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v2/statuspage-updated.json"),
    ];

    const V1: &[&str] = &[
        include_str!("../../../tests/fixtures/squadcast-samples/v1/incident-triggered.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v1/incident-acknowledged.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v1/incident-reassigned.json"),
        include_str!("../../../tests/fixtures/squadcast-samples/v1/incident-resolved.json"),
    ];

    const NOTE: &str =
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-notes-created.json");

    const TENANT: Tenant<'static> = Tenant {
        id: "org_1",
        name: "Acme",
    };

    fn source() -> Source {
        testing::source(SourceKind::Squadcast, SourceSettings::Squadcast, None)
    }

    fn change_of(text: &str) -> Change {
        let payload: Value = serde_json::from_str(text).unwrap();
        match read(&payload, text.as_bytes()).unwrap().as_slice() {
            [Item::Change(c)] => (**c).clone(),
            other => panic!("{other:?}"),
        }
    }

    /// The incident under `key` as an earlier trigger through this source left it.
    fn triggered(key: &str, incident_id: &str) -> HashMap<String, IncidentState> {
        let state = IncidentState {
            key: key.to_owned(),
            incident_id: incident_id.to_owned(),
            status: IncidentStatus::Triggered,
            generation: 1,
            events: 1,
            last_event_id: String::new(),
            incident: Map::new(),
            team: None,
            updated_at: Timestamp::from_micros(1),
        };
        HashMap::from([(key.to_owned(), state)])
    }

    /// The event tocsin stores for `change`, parsed as intake parses `POST /v3/events`.
    fn stored(change: Change, states: &HashMap<String, IncidentState>) -> Event {
        let items = vec![Item::Change(Box::new(change))];
        let out = decide_all(&source(), items, states, Timestamp::from_micros(2));
        let [Outcome::Event(made)] = out.as_slice() else {
            panic!("{out:?}")
        };
        event_from_members(made.members.clone(), TENANT).expect("a valid event")
    }

    fn compact(text: &str) -> String {
        JsonText::exact(serde_json::from_str::<&RawValue>(text).unwrap())
            .as_str()
            .to_owned()
    }

    #[test]
    fn every_v2_sample_reaches_a_receiver_behind_tocsin_byte_for_byte() {
        for text in V2 {
            let change = change_of(text);
            let sample: Value = serde_json::from_str(text).unwrap();
            let name = sample["event"]["type"].as_str().unwrap();
            // Acknowledge, reassign and resolve need the incident's trigger first; the other
            // types pass with or without it.
            let states = match change.intent {
                Intent::Trigger => vec![HashMap::new()],
                Intent::Other(_) => vec![HashMap::new(), triggered(&change.key, &change.key)],
                _ => vec![triggered(&change.key, &change.key)],
            };
            for state in &states {
                let event = stored(change.clone(), state);
                let rendered = serde_json::to_string(&render_v2(&event)).unwrap();
                assert_eq!(rendered, compact(text), "{name}");
                assert_eq!(
                    event.payload_event_id,
                    sample["event"]["id"].as_str().unwrap()
                );
            }
        }
    }

    #[test]
    fn v2_types_give_their_intents_and_ids() {
        let intents: Vec<(String, Intent)> = V2
            .iter()
            .map(|t| {
                let c = change_of(t);
                (c.event_id.clone().unwrap(), c.intent)
            })
            .collect();
        let of = |id: &str| intents.iter().find(|(i, _)| i == id).unwrap().1;
        assert_eq!(of("633e670afbb04a577527b4b8"), Intent::Trigger);
        assert_eq!(of("633e697dfbb04a577527b4b9"), Intent::Acknowledge);
        assert_eq!(of("633e69d3fbb04a577527b4bc"), Intent::Reassign);
        assert_eq!(of("633e699ffbb04a577527b4ba"), Intent::Resolve);
        let others = intents
            .iter()
            .filter(|(_, i)| matches!(i, Intent::Other(_)))
            .count();
        assert_eq!(others, 19);

        let note = change_of(NOTE);
        assert_eq!(
            note.key, "633e69cce9980815a9c9f2a3",
            "the incident, not the note"
        );
        assert_eq!(
            note.incident_id.as_deref(),
            Some("633e69cce9980815a9c9f2a3")
        );
        assert_eq!(
            note.resource.as_ref().unwrap()["id"],
            "633e806c488a9b8c053e04e1"
        );
        assert_eq!(
            note.timestamp.as_deref(),
            Some("2022-10-06T07:14:52.907286419Z")
        );
        assert_eq!(
            note.organization,
            Some(json!({"id": "61963631090a650008fff21d", "name": "sqdev"}))
        );
        assert_eq!(
            note.team,
            Some(json!({"id": "6196371cda7b4ab764b13a1f", "name": "Yash"}))
        );
    }

    #[test]
    fn v2_member_texts_keep_numbers_and_escapes_as_posted() {
        let text = r#"{"version": "v2",
            "event": {"id": "e1", "type": "incident.triggered", "resource": "incident", "timestamp": "2022-10-06T05:26:34Z"},
            "data": {"resource_data": {"id": "i1", "message": "caf\u00e9", "status": "triggered",
                "service": {"id": "s"}, "alert_source": {"id": "a"}, "n": 1E2, "big": 123456789012345678901234567890},
              "resource_type": "incident", "organization": {"id": "o", "name": "O"}, "team": {"id": "t", "name": "T"}}}"#;
        let event = stored(change_of(text), &HashMap::new());
        let rendered = serde_json::to_string(&render_v2(&event)).unwrap();
        assert_eq!(rendered, compact(text));
        assert!(rendered.contains(r#""message":"caf\u00e9""#) && rendered.contains(r#""n":1E2"#));
    }

    #[test]
    fn v1_samples_become_their_events_and_render_back_as_posted() {
        for text in V1 {
            let change = change_of(text);
            let sample: Value = serde_json::from_str(text).unwrap();
            assert_eq!(change.key, "61c075f78589dca75fdb2f44");
            assert_eq!(
                change.incident_id.as_deref(),
                Some("61c075f78589dca75fdb2f44")
            );
            assert!(change.event_id.as_deref().unwrap().starts_with("sqv1-"));
            assert_eq!(change.organization.as_ref(), Some(&sample["organization"]));
            assert_eq!(
                change.team,
                Some(json!({"id": "6129ac09518568defa927536", "name": "Default Team"}))
            );
            assert!(
                !change.incident.contains_key("event_type")
                    && !change.incident.contains_key("organization")
            );
            assert_eq!(change.exact, None);
            let states = match change.intent {
                Intent::Trigger => HashMap::new(),
                _ => triggered(&change.key, &change.key),
            };
            let event = stored(change, &states);
            assert_eq!(event.event_type.v1_name, sample["event_type"].as_str());
            let rendered: Value = serde_json::to_value(render_v1(&event)).unwrap();
            assert_eq!(rendered, sample, "{}", event.event_type.name);
        }
    }

    #[test]
    fn a_v1_body_sent_twice_is_one_event_and_two_bodies_are_two() {
        let once = change_of(V1[0]).event_id;
        assert_eq!(once, change_of(V1[0]).event_id);
        assert_ne!(once, change_of(V1[1]).event_id);
    }

    #[test]
    fn a_v1_owner_that_is_not_a_team_leaves_the_sources_team() {
        let mut body: Value = serde_json::from_str(V1[0]).unwrap();
        body["owner"] = json!({"id": "u1", "name": "Ann", "type": "user"});
        let text = body.to_string();
        assert_eq!(change_of(&text).team, None);
    }

    #[test]
    fn both_versions_look_like_squadcast_and_alertmanager_does_not() {
        for text in V2.iter().chain(V1) {
            assert!(looks_like(&serde_json::from_str(text).unwrap()));
        }
        let alertmanager =
            json!({"version": "4", "groupKey": "x", "status": "firing", "alerts": []});
        assert!(!looks_like(&alertmanager));
        assert!(!looks_like(
            &json!({"event": {"id": "x", "event_type": "incident.triggered", "data": {}}})
        ));
    }

    fn refusal(payload: Value) -> Refusal {
        read(&payload, payload.to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn refusals_name_the_field_at_fault() {
        let sample: Value = serde_json::from_str(NOTE).unwrap();
        let mut p = sample.clone();
        p["event"]["type"] = json!("incident.exploded");
        let r = refusal(p);
        assert_eq!(r.field, "event.type");
        assert!(
            r.message.contains("\"incident.exploded\"")
                && r.message.contains("the 23 Squadcast types")
        );
        assert!(
            r.message.contains("incident.statuspage_updated"),
            "{}",
            r.message
        );

        let mut p = sample.clone();
        p["event"].as_object_mut().unwrap().remove("id");
        assert_eq!(refusal(p).field, "event.id");

        let mut p = sample.clone();
        p["data"].as_object_mut().unwrap().remove("incident");
        assert_eq!(refusal(p).field, "data.incident");

        let mut p = sample.clone();
        p["data"]["resource_data"] = json!("a note");
        let r = refusal(p);
        assert_eq!(r.field, "data.resource_data");
        assert!(r.message.contains("the note"));

        let mut p = sample.clone();
        p["data"]["incident"]["service"] = json!({"name": "x"});
        assert_eq!(refusal(p).field, "data.incident.service.id");

        let mut p = sample.clone();
        p["event"]["timestamp"] = json!("yesterday");
        assert_eq!(refusal(p).field, "event.timestamp");

        let mut p = sample;
        p["data"]["team"] = json!({"name": "no id"});
        assert_eq!(refusal(p).field, "data.team");

        let mut v1: Value = serde_json::from_str(V1[0]).unwrap();
        v1["event_type"] = json!("incident_exploded");
        let r = refusal(v1.clone());
        assert_eq!(r.field, "event_type");
        assert!(
            r.message
                .contains("incident_triggered, incident_reassigned"),
            "{}",
            r.message
        );
        v1["event_type"] = json!("incident_triggered");
        v1.as_object_mut().unwrap().remove("alert_source");
        assert_eq!(refusal(v1).field, "alert_source.id");

        let r = refusal(json!({"version": "4", "groupKey": "x", "status": "firing", "alerts": []}));
        assert_eq!(r.field, "body");
        assert!(r.message.contains("event_type"), "{}", r.message);
    }
}
