//! Any JSON, mapped by the expressions of the source's settings: one payload is one change
//! to one incident. [`preview`] shows a person what each expression gives before saving.

use serde_json::{json, Map, Value};

use crate::domain::event::MAX_PRODUCER_ID as MAX_EVENT_ID;
use crate::{
    domain::{
        event_type::EventType,
        source::{
            expression::{as_text, evaluate},
            GenericMapping,
        },
    },
    sources::change::{Change, Intent, Item, Refusal},
};

pub fn read(payload: &Value, mapping: &GenericMapping) -> Result<Vec<Item>, Refusal> {
    mapped(payload, &Given::evaluate(payload, mapping)).map(|item| vec![item])
}

/// What each expression of the mapping gave for one payload, in the settings' order.
struct Given<'a> {
    fields: Vec<(&'static str, Option<&'a str>, Result<Value, String>)>,
}

impl<'a> Given<'a> {
    fn evaluate(payload: &Value, mapping: &'a GenericMapping) -> Self {
        let expressions = [
            ("incident_id", Some(mapping.incident_id.as_str())),
            ("status", Some(mapping.status.as_str())),
            ("message", Some(mapping.message.as_str())),
            ("description", mapping.description.as_deref()),
            ("service", mapping.service.as_deref()),
            ("alert_source", mapping.alert_source.as_deref()),
            ("team", mapping.team.as_deref()),
            ("dedupe_key", mapping.dedupe_key.as_deref()),
        ];
        let fields = expressions
            .into_iter()
            .map(|(name, expression)| {
                let value = match expression {
                    Some(e) => evaluate(e, payload),
                    None => Ok(Value::Null),
                };
                (name, expression, value)
            })
            .collect();
        Given { fields }
    }

    /// The value of `name`'s expression; `Null` where the setting is unset.
    fn value(&self, name: &str) -> Result<&Value, Refusal> {
        match self.fields.iter().find(|(n, _, _)| *n == name) {
            Some((_, _, Ok(value))) => Ok(value),
            Some((_, _, Err(why))) => Err(Refusal::new(
                format!("settings.{name}"),
                format!("could not be evaluated on this payload: {why}"),
            )),
            None => Ok(&Value::Null),
        }
    }
}

fn mapped(payload: &Value, given: &Given<'_>) -> Result<Item, Refusal> {
    // The status first: a payload that is not an incident change (a warning, a test) need
    // not name an incident.
    let intent = match status(given.value("status")?) {
        Ok(intent) => intent,
        Err(why) => return Ok(Item::Ignored(why)),
    };
    let incident_id = required(
        given,
        "incident_id",
        "an incident needs an id, the same in every notification about it",
    )?;
    let mut incident = Map::new();
    incident.insert(
        "message".into(),
        Value::String(required(given, "message", "an incident needs a title")?),
    );
    if let Some(description) = text_or_json(given.value("description")?) {
        incident.insert("description".into(), Value::String(description));
    }
    let service = named(given, "service", |v| json!({"id": v, "name": v}))?
        .unwrap_or_else(|| json!({"id": "generic", "name": "generic"}));
    incident.insert("service".into(), service);
    let alert_source = named(
        given,
        "alert_source",
        |v| json!({"id": v, "type": v, "short_name": v}),
    )?
    .unwrap_or_else(|| json!({"id": "generic", "type": "Generic", "short_name": "generic"}));
    incident.insert("alert_source".into(), alert_source);
    incident.insert("event_payload".into(), payload.clone());
    let mut change = Change::new(incident_id.clone(), intent, incident);
    change.incident_id = Some(incident_id);
    change.team = named(given, "team", |v| json!({"id": v, "name": v}))?;
    change.event_id = dedupe_key(given)?;
    change.event_id_is_local = true;
    Ok(Item::Change(Box::new(change)))
}

fn dedupe_key(given: &Given<'_>) -> Result<Option<String>, Refusal> {
    match as_text(given.value("dedupe_key")?) {
        Some(key) if key.len() > MAX_EVENT_ID => Err(Refusal::new(
            "settings.dedupe_key",
            format!(
                "gave a key of {} characters for this payload; an event's id is at most {MAX_EVENT_ID}, so point it at the notification's id",
                key.len()
            ),
        )),
        key => Ok(key),
    }
}

/// The intent a status names, or why the payload is ignored.
fn status(value: &Value) -> Result<Intent, String> {
    let word = as_text(value)
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let intent = match word.as_str() {
        "triggered" | "trigger" | "firing" | "alerting" | "open" | "problem" => {
            Some(Intent::Trigger)
        }
        "acknowledged" | "ack" | "acknowledge" => Some(Intent::Acknowledge),
        "unacknowledged" | "unacknowledge" | "unack" => Some(Intent::Unacknowledge),
        "reopened" | "reopen" => Some(Intent::Reopen),
        "reassigned" => Some(Intent::Reassign),
        "resolved" | "resolve" | "ok" | "closed" | "close" | "recovered" => Some(Intent::Resolve),
        _ => None,
    };
    if let Some(intent) = intent {
        return Ok(intent);
    }
    match EventType::from_name(&word) {
        Some(t) if t.has_resource() => Err(format!(
            "ignored: status gave \"{word}\", an event about {} that a generic mapping cannot describe (it maps incidents only)",
            t.resource_description()
        )),
        Some(t) => Ok(match t.action {
            "triggered" => Intent::Trigger,
            "acknowledged" => Intent::Acknowledge,
            "reassigned" => Intent::Reassign,
            "resolved" => Intent::Resolve,
            _ => Intent::Other(t),
        }),
        None => Err(format!(
            "ignored: status gave {}, which is none of triggered, acknowledged, reassigned, resolved (or firing, alerting, open, problem, ack, ok, closed, recovered, or an incident.* event type)",
            shown(value)
        )),
    }
}

/// The text `name` gave, which must not be empty.
fn required(given: &Given<'_>, name: &str, why: &str) -> Result<String, Refusal> {
    let value = given.value(name)?;
    as_text(value).ok_or_else(|| {
        Refusal::new(
            format!("settings.{name}"),
            format!(
                "gave nothing for this payload: {}; {why}, so point the expression at a field every payload has",
                shown(value)
            ),
        )
    })
}

/// A service, alert source or team: text becomes the object `of_text` makes of it; an
/// object is kept, with its id as text; `None` where the expression gave nothing.
fn named(
    given: &Given<'_>,
    name: &str,
    of_text: impl Fn(&str) -> Value,
) -> Result<Option<Value>, Refusal> {
    let value = given.value(name)?;
    let refuse = || {
        Refusal::new(
            format!("settings.{name}"),
            format!(
                "gave {}; give its name as text, or an object with a non-empty id",
                shown(value)
            ),
        )
    };
    match value {
        Value::Null => Ok(None),
        Value::Object(o) => {
            let id = o.get("id").and_then(as_text).ok_or_else(refuse)?;
            let mut object = o.clone();
            object.insert("id".into(), Value::String(id));
            Ok(Some(Value::Object(object)))
        }
        Value::Array(_) => Err(refuse()),
        other => Ok(as_text(other).map(|text| of_text(&text))),
    }
}

/// Text as it is; an object or array as its JSON (a description may be a structure).
fn text_or_json(value: &Value) -> Option<String> {
    match value {
        Value::Object(_) | Value::Array(_) => Some(value.to_string()),
        other => as_text(other),
    }
}

/// What an expression gave, for a person reading why it did not fit.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "null (the expression names no field of this payload)".to_owned(),
        Value::String(s) if s.is_empty() => "an empty text".to_owned(),
        Value::String(s) => format!("\"{s}\""),
        Value::Object(_) => format!("an object, {value}"),
        Value::Array(_) => format!("a list, {value}"),
        other => other.to_string(),
    }
}

/// What the mapping makes of `payload`, for a person trying expressions before saving:
/// each expression with the value it gave (or why it failed), and the result: the change
/// (its intent, ids, team — null for the source's own — and incident), the reason it is
/// ignored, or the refusal.
pub fn preview(payload: &Value, mapping: &GenericMapping) -> Value {
    let given = Given::evaluate(payload, mapping);
    let mut fields = Map::new();
    for (name, expression, value) in &given.fields {
        let mut field = Map::new();
        field.insert("expression".into(), json!(expression));
        match value {
            Ok(v) => field.insert("value".into(), v.clone()),
            Err(why) => field.insert("error".into(), Value::String(why.clone())),
        };
        fields.insert((*name).into(), Value::Object(field));
    }
    let result = match mapped(payload, &given) {
        Ok(Item::Change(change)) => json!({
            "outcome": "change",
            "intent": intent_name(change.intent),
            "incident_id": change.incident_id,
            "event_id": change.event_id,
            "team": change.team,
            "incident": change.incident,
        }),
        Ok(Item::Ignored(reason)) => json!({"outcome": "ignored", "reason": reason}),
        Err(refusal) => json!({
            "outcome": "refused",
            "field": refusal.field,
            "message": refusal.message,
        }),
    };
    json!({"fields": fields, "result": result})
}

fn intent_name(intent: Intent) -> &'static str {
    match intent {
        Intent::Trigger => "triggered",
        Intent::Acknowledge => "acknowledged",
        Intent::Unacknowledge => "unacknowledged",
        Intent::Reopen => "reopened",
        Intent::Reassign => "reassigned",
        Intent::Resolve => "resolved",
        Intent::Other(t) => t.name,
    }
}

#[cfg(test)]
mod tests {
    use crate::sources::testing;
    use std::collections::HashMap;

    use super::*;
    use crate::{
        domain::{
            event::{event_from_members, Event, Tenant},
            source::{IncidentState, Source, SourceKind, SourceSettings},
            Timestamp,
        },
        sources::translate::{decide_all, Outcome},
    };

    const DOWN: &str =
        include_str!("../../../tests/fixtures/sources/generic/alertifypro-monitor-down.json");
    const RECOVERED: &str =
        include_str!("../../../tests/fixtures/sources/generic/alertifypro-monitor-recovered.json");
    const DEGRADED: &str =
        include_str!("../../../tests/fixtures/sources/generic/alertifypro-monitor-degraded.json");
    const UPTRACK: &str =
        include_str!("../../../tests/fixtures/sources/generic/uptrack-monitor-down.json");
    const E2E: &str =
        include_str!("../../../tests/fixtures/sources/generic/e2e-tir-alert-firing.json");

    fn mapping(settings: Value) -> GenericMapping {
        match SourceSettings::parse(SourceKind::Generic, Some(&settings), None) {
            Ok(SourceSettings::Generic(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// AlertifyPro's monitor events, mapped as a person would.
    fn alertifypro() -> GenericMapping {
        mapping(json!({
            "incident_id": "payload.data.alert.id",
            "status": r#"{"monitor.down": "triggered", "monitor.recovered": "resolved"}[payload.event]"#,
            "message": "payload.data.monitor.name",
            "description": "payload.data.alert.reason",
            "service": "payload.data.monitor",
            "alert_source": "\"AlertifyPro\"",
        }))
    }

    /// Uptrack's monitor.down with only the three required expressions.
    fn uptrack() -> GenericMapping {
        mapping(json!({
            "incident_id": "payload.incident.id",
            "status": r#""triggered" if payload.event == "monitor.down" else "resolved""#,
            "message": "payload.incident.cause",
        }))
    }

    fn source(m: &GenericMapping) -> Source {
        testing::source(
            SourceKind::Generic,
            SourceSettings::Generic(m.clone()),
            Some(json!({"id": "t1", "name": "SRE"})),
        )
    }

    fn payload(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn change(text: &str, m: &GenericMapping) -> Change {
        match read(&payload(text), m).unwrap().as_slice() {
            [Item::Change(c)] => (**c).clone(),
            other => panic!("{other:?}"),
        }
    }

    fn ignored(text: &str, m: &GenericMapping) -> String {
        match read(&payload(text), m).unwrap().as_slice() {
            [Item::Ignored(why)] => why.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// The event stored for `text`, parsed as intake parses it, and the state it leaves.
    fn stored(
        text: &str,
        m: &GenericMapping,
        states: &HashMap<String, IncidentState>,
    ) -> (Event, Option<IncidentState>) {
        let items = read(&payload(text), m).unwrap();
        let out = decide_all(&source(m), items, states, Timestamp::from_micros(1));
        let [Outcome::Event(made)] = out.as_slice() else {
            panic!("{out:?}")
        };
        let tenant = Tenant {
            id: "org_1",
            name: "Acme",
        };
        let event = event_from_members(made.members.clone(), tenant).expect("a valid event");
        (event, made.next.clone())
    }

    #[test]
    fn a_monitor_going_down_and_recovering_triggers_and_resolves_one_incident() {
        let m = alertifypro();
        let (down, state) = stored(DOWN, &m, &HashMap::new());
        assert_eq!(down.event_type.name, "incident.triggered");
        assert_eq!(down.incident_id(), "alt_def456");
        assert_eq!(down.incident["message"], "Production API");
        assert_eq!(down.incident["description"], "HTTP 503 Service Unavailable");
        assert_eq!(down.incident["service"]["id"], "mon_abc123");
        assert_eq!(
            down.incident["service"]["url"], "https://api.yourapp.com/health",
            "the object as given"
        );
        assert_eq!(
            down.incident["alert_source"],
            json!({"id": "AlertifyPro", "type": "AlertifyPro", "short_name": "AlertifyPro"})
        );
        assert_eq!(down.incident["event_payload"], payload(DOWN));
        assert_eq!(down.team["id"], "t1", "the source's team");

        let state = state.unwrap();
        let states = HashMap::from([(state.key.clone(), state)]);
        let (recovered, _) = stored(RECOVERED, &m, &states);
        assert_eq!(recovered.event_type.name, "incident.resolved");
        assert_eq!(recovered.incident_id(), "alt_def456");
        assert_eq!(recovered.incident["status"], "resolved");

        let why = ignored(DEGRADED, &m);
        assert!(why.starts_with("ignored: status gave null"), "{why}");
    }

    #[test]
    fn every_status_word_gives_its_intent_whatever_its_case() {
        let m =
            mapping(json!({"incident_id": "\"i1\"", "status": "payload.s", "message": "\"m\""}));
        let intent_of = |word: &str| match read(&json!({"s": word}), &m).unwrap().as_slice() {
            [Item::Change(c)] => Some(c.intent),
            _ => None,
        };
        let words = [
            (
                Intent::Trigger,
                &[
                    "triggered",
                    "trigger",
                    "firing",
                    "alerting",
                    "open",
                    "problem",
                    "FIRING",
                    " Triggered ",
                ][..],
            ),
            (
                Intent::Acknowledge,
                &["acknowledged", "ack", "acknowledge", "ACK"][..],
            ),
            (Intent::Reassign, &["reassigned", "Reassigned"][..]),
            (
                Intent::Unacknowledge,
                &["unacknowledged", "unacknowledge", "UNACK"][..],
            ),
            (Intent::Reopen, &["reopened", "reopen"][..]),
            (
                Intent::Resolve,
                &[
                    "resolved",
                    "resolve",
                    "ok",
                    "closed",
                    "close",
                    "recovered",
                    "OK",
                ][..],
            ),
        ];
        for (intent, words) in words {
            for word in words {
                assert_eq!(intent_of(word), Some(intent), "{word}");
            }
        }
        for (name, intent) in [
            ("incident.triggered", Intent::Trigger),
            ("Incident.Acknowledged", Intent::Acknowledge),
            ("incident.reassigned", Intent::Reassign),
            ("incident.resolved", Intent::Resolve),
        ] {
            assert_eq!(intent_of(name), Some(intent), "{name}");
        }
        let tags = EventType::from_name("incident.tags_updated").unwrap();
        assert_eq!(
            intent_of("incident.tags_updated"),
            Some(Intent::Other(tags))
        );
    }

    #[test]
    fn other_statuses_are_ignored_saying_what_they_gave() {
        let m =
            mapping(json!({"incident_id": "\"i1\"", "status": "payload.s", "message": "\"m\""}));
        let why = |s: Value| match read(&json!({"s": s}), &m).unwrap().as_slice() {
            [Item::Ignored(why)] => why.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            why(json!("pending")),
            "ignored: status gave \"pending\", which is none of triggered, acknowledged, reassigned, resolved (or firing, alerting, open, problem, ack, ok, closed, recovered, or an incident.* event type)"
        );
        assert!(why(json!(3)).starts_with("ignored: status gave 3,"));
        assert!(why(json!("incident.incident_notes_created")).contains("the note"));
        assert!(why(json!("incident.exploded")).contains("\"incident.exploded\""));
    }

    #[test]
    fn defaults_fill_the_service_alert_source_and_team() {
        let c = change(UPTRACK, &uptrack());
        assert_eq!(c.key, "inc_Nv4bL2xHcT");
        assert_eq!(c.incident_id.as_deref(), Some("inc_Nv4bL2xHcT"));
        assert_eq!(
            c.incident["service"],
            json!({"id": "generic", "name": "generic"})
        );
        assert_eq!(
            c.incident["alert_source"],
            json!({"id": "generic", "type": "Generic", "short_name": "generic"})
        );
        assert!(!c.incident.contains_key("description"));
        assert_eq!(c.team, None);
        assert_eq!(c.event_id, None);
        let (event, _) = stored(UPTRACK, &uptrack(), &HashMap::new());
        assert_eq!(event.incident["message"], "HTTP 503 Service Unavailable");
        assert_eq!(event.team, json!({"id": "t1", "name": "SRE"}));
    }

    #[test]
    fn services_and_teams_are_text_or_objects_with_an_id() {
        let with = |service: &str, team: &str| {
            let mut m = uptrack();
            m.service = Some(service.to_owned());
            m.team = Some(team.to_owned());
            read(&payload(UPTRACK), &m)
        };
        let Ok(items) = with("payload.monitor.name", "\"Platform\"") else {
            panic!()
        };
        let [Item::Change(c)] = items.as_slice() else {
            panic!()
        };
        assert_eq!(
            c.incident["service"],
            json!({"id": "Production API", "name": "Production API"})
        );
        assert_eq!(c.team, Some(json!({"id": "Platform", "name": "Platform"})));

        let Ok(items) = with("payload.monitor", r#"{"id": 7, "name": "Web"}"#) else {
            panic!()
        };
        let [Item::Change(c)] = items.as_slice() else {
            panic!()
        };
        assert_eq!(c.incident["service"]["id"], "mon_7kQ3xR9pWm");
        assert_eq!(c.incident["service"]["check_interval"], 60);
        assert_eq!(
            c.team,
            Some(json!({"id": "7", "name": "Web"})),
            "a number id as text"
        );

        let refused = with("payload.check", "\"x\"").unwrap_err();
        assert_eq!(refused.field, "settings.service");
        assert!(refused.message.contains("an object"), "{}", refused.message);
        assert_eq!(
            with("payload.monitor", "[1]").unwrap_err().field,
            "settings.team"
        );
    }

    #[test]
    fn numbers_become_text_ids_and_the_event_is_valid() {
        let m = mapping(json!({
            "incident_id": "payload.alert.id",
            "status": "payload.status",
            "message": "payload.alert.name",
            "description": "payload.affected_resources",
            "service": "payload.project",
        }));
        let c = change(E2E, &m);
        assert_eq!((c.key.as_str(), c.intent), ("0", Intent::Trigger));
        assert_eq!(c.incident["service"]["id"], "0");
        assert!(c.incident["description"]
            .as_str()
            .unwrap()
            .starts_with("[{\"id\":0"));
        let (event, _) = stored(E2E, &m, &HashMap::new());
        assert_eq!(event.incident_id(), "0");
    }

    #[test]
    fn a_dedupe_key_is_the_events_id() {
        let mut m = uptrack();
        m.dedupe_key = Some(r#"payload.incident.id ~ "/" ~ payload.event"#.to_owned());
        assert_eq!(
            change(UPTRACK, &m).event_id.as_deref(),
            Some("inc_Nv4bL2xHcT/monitor.down")
        );
        let (event, _) = stored(UPTRACK, &m, &HashMap::new());
        let (again, _) = stored(UPTRACK, &m, &HashMap::new());
        assert_eq!(
            event.payload_event_id, again.payload_event_id,
            "a repeat is the same event"
        );
        assert_ne!(
            event.payload_event_id, "inc_Nv4bL2xHcT/monitor.down",
            "made the source's own: another source's key never collides with it"
        );
        m.dedupe_key = Some("payload.incident.cause * 20".to_owned());
        let r = read(&payload(UPTRACK), &m).unwrap_err();
        assert_eq!(r.field, "settings.dedupe_key");
    }

    #[test]
    fn refusals_name_the_setting_and_what_it_gave() {
        let mut m = uptrack();
        m.incident_id = "payload.incident.number".into();
        let r = read(&payload(UPTRACK), &m).unwrap_err();
        assert_eq!(r.field, "settings.incident_id");
        assert!(
            r.message.starts_with("gave nothing for this payload: null"),
            "{}",
            r.message
        );

        let mut m = uptrack();
        m.message = "payload.check.error".into();
        assert_eq!(
            read(&payload(UPTRACK), &m).unwrap_err().field,
            "settings.message"
        );

        let mut m = uptrack();
        m.description = Some("range(100000) | join(',')".into());
        let r = read(&payload(UPTRACK), &m).unwrap_err();
        assert_eq!(r.field, "settings.description");
        assert!(
            r.message
                .starts_with("could not be evaluated on this payload: "),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_preview_shows_each_expression_and_what_the_payload_becomes() {
        let m = alertifypro();
        let p = preview(&payload(DOWN), &m);
        assert_eq!(
            p["fields"]["incident_id"],
            json!({"expression": "payload.data.alert.id", "value": "alt_def456"})
        );
        assert_eq!(p["fields"]["status"]["value"], "triggered");
        assert_eq!(
            p["fields"]["team"],
            json!({"expression": null, "value": null})
        );
        assert_eq!(p["result"]["outcome"], "change");
        assert_eq!(p["result"]["intent"], "triggered");
        assert_eq!(p["result"]["incident_id"], "alt_def456");
        assert_eq!(p["result"]["incident"]["service"]["id"], "mon_abc123");

        assert_eq!(
            preview(&payload(RECOVERED), &m)["result"]["intent"],
            "resolved"
        );
        let degraded = preview(&payload(DEGRADED), &m);
        assert_eq!(degraded["result"]["outcome"], "ignored");
        assert!(degraded["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("status gave null"));

        let mut broken = m.clone();
        broken.message = "range(100000) | join(',')".into();
        let p = preview(&payload(DOWN), &broken);
        assert!(p["fields"]["message"]["error"].is_string(), "{p}");
        assert_eq!(
            p["fields"]["incident_id"]["value"], "alt_def456",
            "the others still shown"
        );
        assert_eq!(p["result"]["outcome"], "refused");
        assert_eq!(p["result"]["field"], "settings.message");
    }
}
