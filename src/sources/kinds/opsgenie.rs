//! Opsgenie / Jira Service Management outgoing webhooks: one alert action per delivery,
//! `{"action": "Create", "alert": {"alertId", "message", …}, "source", "integrationName"}`.
//! Every action carries the alert's fields as they stand, so each describes the incident.

use serde_json::{json, Map, Value};

use crate::{
    domain::Timestamp,
    sources::{
        change::derived_id,
        change::{self, text_at, Change, Intent, Item, Refusal},
    },
};

pub fn looks_like(payload: &Value) -> bool {
    text_at(payload, "action").is_some() && text_at(payload, "alert.alertId").is_some()
}

pub fn read(payload: &Value) -> Result<Vec<Item>, Refusal> {
    let Some(action) = text_at(payload, "action") else {
        return Err(Refusal::new(
            "action",
            "is required: the alert action Opsgenie's webhook integration posts, like \"Create\", \"Acknowledge\" or \"Close\"",
        ));
    };
    let intent = match action {
        "Create" => Intent::Trigger,
        "Acknowledge" => Intent::Acknowledge,
        "UnAcknowledge" => Intent::Unacknowledge,
        "AssignOwnership" => Intent::Reassign,
        "AddNote" => Intent::note(),
        "Close" => Intent::Resolve,
        other => {
            return Ok(vec![Item::Ignored(format!(
                "ignored: Opsgenie's {other} action is not an incident change tocsin sends"
            ))])
        }
    };
    let Some(alert) = payload.get("alert").filter(|a| a.is_object()) else {
        return Err(Refusal::new(
            "alert",
            format!("is required for {action}: the alert the action is on, as an object"),
        ));
    };
    let Some(alert_id) = text_at(alert, "alertId") else {
        return Err(Refusal::new(
            "alert.alertId",
            "is required: Opsgenie's id for the alert, which names the incident",
        ));
    };
    let required = match action {
        "Create" => Some(("message", "the alert's message")),
        "AssignOwnership" => Some(("owner", "the user the alert is now assigned to")),
        "AddNote" => Some(("note", "the note's text")),
        _ => None,
    };
    if let Some((field, what)) = required {
        if text_at(alert, field).is_none() {
            return Err(Refusal::new(
                format!("alert.{field}"),
                format!("is required for {action}: {what}"),
            ));
        }
    }
    let mut change = Change::new(alert_id, intent, incident(payload, alert));
    change.incident_id = Some(alert_id.to_owned());
    // Opsgenie gives an action no id of its own: the event's id is made from the incident's
    // state, so a redelivery on the same state is the same event.
    change.timestamp = alert.get("updatedAt").and_then(from_nanos);
    change.team = first_team(alert);
    if action == "AddNote" {
        change.resource = Some(note_resource(alert_id, alert));
    }
    Ok(vec![Item::Change(Box::new(change))])
}

/// The Squadcast incident object from the alert as the action leaves it.
fn incident(payload: &Value, alert: &Value) -> Map<String, Value> {
    let mut incident = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            incident.insert(key.to_owned(), v);
        }
    };
    let text = |path: &str| text_at(alert, path).map(|s| json!(s));
    // As posted, even empty: a message is what every incident has.
    put(
        "message",
        alert.get("message").filter(|m| m.is_string()).cloned(),
    );
    put("description", text("description"));
    put("service", Some(service(payload, alert)));
    put(
        "alert_source",
        Some(json!({"id": "opsgenie", "type": "Opsgenie", "short_name": "opsgenie"})),
    );
    put(
        "created_at",
        alert
            .get("createdAt")
            .and_then(from_millis)
            .map(Value::String),
    );
    put(
        "assigned_to",
        text_at(alert, "owner").map(|o| json!({"id": o, "name": o, "type": "user"})),
    );
    let list = alert.get("tags").and_then(Value::as_array);
    put("tags", list.map(Vec::as_slice).map(tags));
    put("priority", alert.get("priority").and_then(priority));
    put("alias", text("alias"));
    put("tiny_id", text("tinyId"));
    put("event_payload", Some(payload.clone()));
    incident
}

/// The alert's `entity` names what is affected; without one, the integration that posts
/// stands for it. (`source.name` is who took this action, `web` or `API`, so it would
/// change the service from one action to the next.)
fn service(payload: &Value, alert: &Value) -> Value {
    let name = text_at(alert, "entity")
        .or_else(|| text_at(payload, "integrationName"))
        .unwrap_or("opsgenie");
    json!({"id": name, "name": name})
}

/// Opsgenie's tags are strings; `key:value` ones become Squadcast's `{key: {value}}`.
fn tags(list: &[Value]) -> Value {
    let mut tags = Map::new();
    for tag in list
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        let (key, value) = match tag.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => (k.trim(), v.trim()),
            _ => (tag, tag),
        };
        tags.insert(key.to_owned(), json!({"value": value, "color": ""}));
    }
    Value::Object(tags)
}

/// `P1`…`P5`; older deliveries write the level as a bare number.
fn priority(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) if !s.is_empty() => Some(json!(s)),
        Value::Number(n) => n.as_u64().map(|n| json!(format!("P{n}"))),
        _ => None,
    }
}

/// `teams` lists the alert's team ids (objects `{id, name}` in some deliveries).
fn first_team(alert: &Value) -> Option<Value> {
    let team = alert.get("teams")?.as_array()?.first()?;
    let id = team.as_str().or_else(|| text_at(team, "id"))?;
    let name = text_at(team, "name").unwrap_or(id);
    (!id.is_empty()).then(|| json!({"id": id, "name": name}))
}

/// The note in Squadcast's shape (`data.resource_data` of `incident.incident_notes_created`).
/// Opsgenie gives a note no id: one is made from the alert, the time and the text, the same
/// for every delivery of the same note.
fn note_resource(alert_id: &str, alert: &Value) -> Value {
    let note = text_at(alert, "note").unwrap_or_default();
    let updated = alert
        .get("updatedAt")
        .map(Value::to_string)
        .unwrap_or_default();
    // Opsgenie gives a note no id: one made of what names it, the same on redelivery.
    let id = derived_id(&[alert_id, &updated, note]);
    let by = text_at(alert, "username").map(|user| {
        let id = text_at(alert, "userId").unwrap_or(user);
        json!({"id": id, "name": user})
    });
    let at = alert.get("updatedAt").and_then(from_nanos);
    change::note_resource(Some(&id), by, note, at.as_deref())
}

/// `createdAt` counts milliseconds since the epoch.
fn from_millis(value: &Value) -> Option<String> {
    rfc3339(value.as_i64()?.checked_mul(1_000)?)
}

/// `updatedAt` counts nanoseconds since the epoch.
fn from_nanos(value: &Value) -> Option<String> {
    rfc3339(value.as_i64()? / 1_000)
}

fn rfc3339(micros: i64) -> Option<String> {
    // Up to the end of year 9999, the last RFC 3339 can write.
    const LAST: i64 = 253_402_300_799_999_999;
    (0..=LAST)
        .contains(&micros)
        .then(|| Timestamp::from_micros(micros).to_rfc3339())
}

#[cfg(test)]
mod tests {
    use crate::sources::testing::{self, event, skipped};
    use std::collections::HashMap;

    use super::*;
    use crate::{
        domain::source::{IncidentState, SourceKind, SourceSettings},
        sources::translate::Outcome,
    };

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../tests/fixtures/sources/opsgenie/", $name))
        };
    }

    const ALL: [&str; 9] = [
        fixture!("create.json"),
        fixture!("create-delivered.json"),
        fixture!("acknowledge.json"),
        fixture!("unacknowledge.json"),
        fixture!("assignownership.json"),
        fixture!("addnote.json"),
        fixture!("close.json"),
        fixture!("addtags.json"),
        fixture!("escalate.json"),
    ];

    const ALERT: &str = "052652ac-5d1c-464a-812a-7dd18bbfba8c";

    fn json(text: &str) -> Value {
        serde_json::from_str(text).expect("fixtures are JSON")
    }

    fn change_of(payload: &Value) -> Change {
        match read(payload).expect("readable").as_slice() {
            [Item::Change(c)] => (**c).clone(),
            other => panic!("{other:?}"),
        }
    }

    fn change(text: &str) -> Change {
        change_of(&json(text))
    }

    fn at_micros(text: &Value) -> i64 {
        let text = text.as_str().expect("a time");
        Timestamp::parse_rfc3339(text)
            .expect("RFC 3339")
            .as_micros()
    }

    /// Reads and decides `text` on `states`, keeping what it leaves there.
    fn deliver(text: &str, states: &mut HashMap<String, IncidentState>) -> Vec<Outcome> {
        let source = testing::source(
            SourceKind::Opsgenie,
            SourceSettings::Opsgenie,
            Some(json!({"id": "t1", "name": "SRE"})),
        );
        testing::deliver(&source, read(&json(text)).expect("readable"), states)
    }

    #[test]
    fn looks_like_opsgenie_actions_and_nothing_else() {
        for text in ALL {
            assert!(looks_like(&json(text)), "{text}");
            let kind = super::super::recognise(&json(text));
            assert_eq!(
                kind,
                Some(SourceKind::Opsgenie),
                "no other kind claims it: {text}"
            );
        }
        let others = [
            include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-triggered.json"),
            include_str!("../../../tests/fixtures/sources/pagerduty/incident-triggered.json"),
            include_str!("../../../tests/fixtures/sources/pagerduty/incident-annotated.json"),
        ];
        for text in others {
            assert!(!looks_like(&json(text)), "{text}");
        }
    }

    #[test]
    fn a_created_alert_becomes_the_squadcast_incident() {
        let c = change(fixture!("create.json"));
        assert_eq!(c.intent, Intent::Trigger);
        assert_eq!(c.key, ALERT);
        assert_eq!(c.incident_id.as_deref(), Some(ALERT));
        assert_eq!(c.event_id, None, "Opsgenie gives an action no id");
        assert_eq!(c.team, Some(json!({"id": "team1", "name": "team1"})));
        let updated = c.timestamp.as_deref().and_then(Timestamp::parse_rfc3339);
        assert_eq!(updated, Some(Timestamp::from_micros(1_420_452_193_166_002)));
        let i = &c.incident;
        assert_eq!(i["message"], " test alert", "as posted");
        assert_eq!(i.get("description"), None);
        assert_eq!(i.get("url"), None);
        // No entity: the integration stands for the service.
        assert_eq!(
            i["service"],
            json!({"id": "Integration1", "name": "Integration1"})
        );
        assert_eq!(
            i["alert_source"],
            json!({"id": "opsgenie", "type": "Opsgenie", "short_name": "opsgenie"})
        );
        assert_eq!(
            i["tags"],
            json!({"tag1": {"value": "tag1", "color": ""}, "tag2": {"value": "tag2", "color": ""}})
        );
        assert_eq!(at_micros(&i["created_at"]), 1_420_452_191_104_000);
        assert_eq!(i["alias"], "aliastest");
        assert_eq!(i["tiny_id"], "23");
        assert_eq!(i.get("assigned_to"), None);
        assert_eq!(i["event_payload"], json(fixture!("create.json")));
        assert_eq!(i.get("status"), None, "the decision sets the status");
    }

    #[test]
    fn an_alert_with_an_entity_and_a_priority_names_both() {
        let c = change(fixture!("create-delivered.json"));
        assert_eq!(c.key, "ec03dad6-62c8-4c94-b38b-d88f398e900f");
        assert_eq!(
            c.incident["service"],
            json!({"id": "Server", "name": "Server"})
        );
        assert_eq!(
            c.incident["priority"], "P3",
            "a bare level is Opsgenie's P3"
        );
        assert_eq!(
            c.incident["tags"],
            json!({"vip": {"value": "vip", "color": ""}})
        );
        assert_eq!(c.team, None, "teams is empty");
        assert_eq!(at_micros(&c.incident["created_at"]), 1_502_709_956_288_000);
        let mut p = json(fixture!("create-delivered.json"));
        p["alert"]["priority"] = json!("P1");
        assert_eq!(change_of(&p).incident["priority"], "P1");
    }

    #[test]
    fn key_value_tags_become_squadcast_tags() {
        let mut p = json(fixture!("create.json"));
        p["alert"]["tags"] = json!(["env:prod", "region: eu-west-1", "vip", "http://x", ":odd"]);
        assert_eq!(
            change_of(&p).incident["tags"],
            json!({
                "env": {"value": "prod", "color": ""},
                "region": {"value": "eu-west-1", "color": ""},
                "vip": {"value": "vip", "color": ""},
                "http": {"value": "//x", "color": ""},
                ":odd": {"value": ":odd", "color": ""}
            })
        );
    }

    #[test]
    fn teams_given_as_objects_keep_their_names() {
        let mut p = json(fixture!("create.json"));
        p["alert"]["teams"] = json!([{"id": "8d1c", "name": "Platform"}]);
        assert_eq!(
            change_of(&p).team,
            Some(json!({"id": "8d1c", "name": "Platform"}))
        );
    }

    #[test]
    fn each_action_reads_as_its_change() {
        for (text, intent) in [
            (fixture!("acknowledge.json"), Intent::Acknowledge),
            (fixture!("unacknowledge.json"), Intent::Unacknowledge),
            (fixture!("assignownership.json"), Intent::Reassign),
            (fixture!("addnote.json"), Intent::note()),
            (fixture!("close.json"), Intent::Resolve),
        ] {
            let c = change(text);
            assert_eq!((c.intent, c.key.as_str()), (intent, ALERT), "{text}");
            assert_eq!(c.incident["message"], "test alert");
        }
        let assigned = change(fixture!("assignownership.json"));
        assert_eq!(
            assigned.incident["assigned_to"],
            json!({"id": "user2@ifountain.com", "name": "user2@ifountain.com", "type": "user"})
        );
    }

    #[test]
    fn a_note_is_the_event_resource_in_squadcasts_shape() {
        let c = change(fixture!("addnote.json"));
        let note = c.resource.expect("the note");
        assert_eq!(
            note["message"],
            json!({"message": "note to test alert", "raw_message": "note to test alert"})
        );
        assert_eq!(
            note["created_by"],
            json!({"id": "daed1180-0ce8-438b-8f8e-57e1a5920a2d", "name": "fili@ifountain.com"})
        );
        assert_eq!(note["type"], "message");
        assert_eq!(at_micros(&note["created_at"]), 1_420_452_275_002_000);
        assert_eq!(
            note["id"],
            change(fixture!("addnote.json")).resource.unwrap()["id"],
            "stable"
        );
        assert_eq!(note["id"].as_str().map(str::len), Some(24));
    }

    #[test]
    fn other_actions_are_ignored_and_say_which() {
        for (text, action) in [
            (fixture!("addtags.json"), "AddTags"),
            (fixture!("escalate.json"), "Escalate"),
        ] {
            assert_eq!(
                read(&json(text)).unwrap(),
                vec![Item::Ignored(format!(
                    "ignored: Opsgenie's {action} action is not an incident change tocsin sends"
                ))]
            );
        }
    }

    #[test]
    fn refusals_name_the_field_at_fault() {
        let without = |text: &str, path: &[&str]| {
            let mut p = json(text);
            let (last, parents) = path.split_last().unwrap();
            let mut v = &mut p;
            for key in parents {
                v = &mut v[*key];
            }
            v.as_object_mut().unwrap().remove(*last);
            p
        };
        let cases = [
            (without(fixture!("create.json"), &["action"]), "action"),
            (json!({"action": "Create", "alert": "x"}), "alert"),
            (
                without(fixture!("create.json"), &["alert", "alertId"]),
                "alert.alertId",
            ),
            (
                without(fixture!("create.json"), &["alert", "message"]),
                "alert.message",
            ),
            (
                without(fixture!("addnote.json"), &["alert", "note"]),
                "alert.note",
            ),
            (
                without(fixture!("assignownership.json"), &["alert", "owner"]),
                "alert.owner",
            ),
        ];
        for (payload, field) in cases {
            let r = read(&payload).expect_err("refused");
            assert_eq!((r.status, r.field.as_str()), (422, field), "{}", r.message);
            assert!(r.message.starts_with("is required"), "{}", r.message);
        }
    }

    #[test]
    fn an_alerts_actions_become_its_events_in_turn() {
        let mut states = HashMap::new();
        for text in [fixture!("acknowledge.json"), fixture!("close.json")] {
            assert!(skipped(&deliver(text, &mut HashMap::new())).contains("never triggered"));
        }
        let created = event(&deliver(fixture!("create.json"), &mut states));
        assert_eq!(created.event_type.name, "incident.triggered");
        assert_eq!(created.incident["id"], ALERT);
        assert_eq!(created.incident["status"], "triggered");
        assert_eq!(created.team, json!({"id": "team1", "name": "team1"}));
        assert!(skipped(&deliver(fixture!("create.json"), &mut states)).contains("re-notification"));

        let steps = [
            (
                fixture!("acknowledge.json"),
                "incident.acknowledged",
                "acknowledged",
            ),
            (
                fixture!("unacknowledge.json"),
                "incident.triggered",
                "triggered",
            ),
            (
                fixture!("assignownership.json"),
                "incident.reassigned",
                "triggered",
            ),
            (
                fixture!("addnote.json"),
                "incident.incident_notes_created",
                "triggered",
            ),
            (fixture!("close.json"), "incident.resolved", "resolved"),
        ];
        let mut ids = vec![created.payload_event_id.clone()];
        for (text, kind, status) in steps {
            let e = event(&deliver(text, &mut states));
            assert_eq!(
                (e.event_type.name, e.incident["status"].as_str()),
                (kind, Some(status))
            );
            assert_eq!(e.incident["id"], ALERT);
            ids.push(e.payload_event_id.clone());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "each action is its own event");
        assert!(skipped(&deliver(fixture!("close.json"), &mut states)).contains("already resolved"));
        let closed = states[ALERT].incident.clone();
        assert_eq!(
            closed["assigned_to"]["name"], "user2@ifountain.com",
            "kept from before"
        );
    }

    #[test]
    fn a_note_on_an_alert_never_created_here_is_sent_as_posted() {
        let e = event(&deliver(fixture!("addnote.json"), &mut HashMap::new()));
        assert_eq!(e.event_type.name, "incident.incident_notes_created");
        assert_eq!(e.incident["id"], ALERT);
        assert_eq!(
            e.team,
            json!({"id": "t1", "name": "SRE"}),
            "the source's team"
        );
        assert!(e.resource.is_some());
    }
}
