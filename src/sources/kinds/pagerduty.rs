//! PagerDuty Webhooks v3: one event per delivery, `{"event": {"id", "event_type",
//! "resource_type", "occurred_at", "agent", "data"}}`, signed with the subscription's secret.
//! The incident events carry the whole incident in `data`; `incident.annotated` carries the
//! note and only a reference to its incident.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::{
    domain::Timestamp,
    sources::change::{self, at, text_at, Change, Intent, Item, Refusal},
};

/// What PagerDuty's own payload looks like, for refusals.
const SHAPE: &str = "PagerDuty's v3 webhook body is {\"event\": {\"id\", \"event_type\", \"resource_type\", \"data\": {…}}}";

pub fn looks_like(payload: &Value) -> bool {
    let Some(event) = payload.get("event") else {
        return false;
    };
    let typed = text_at(event, "event_type").is_some_and(|t| {
        ["incident.", "service.", "pagey."]
            .iter()
            .any(|prefix| t.starts_with(prefix))
    });
    typed
        && event.get("id").is_some_and(Value::is_string)
        && event.get("resource_type").is_some_and(Value::is_string)
        && event.get("data").is_some_and(Value::is_object)
}

/// Whether `X-PagerDuty-Signature` (`signature`) carries a valid `v1=` signature of `body`.
/// During a secret rotation PagerDuty sends one signature per secret: one that holds is
/// enough.
pub fn verify(signature: Option<&str>, body: &[u8], secret: &str) -> Result<(), Refusal> {
    const EXPECTED: &str = "v1=<hex HMAC-SHA256 of the raw body, keyed with the webhook subscription's signing secret>";
    let Some(header) = signature.filter(|s| !s.trim().is_empty()) else {
        return Err(Refusal::unauthorized(format!(
            "the X-PagerDuty-Signature header is missing: this source has a signing secret, so every delivery must carry {EXPECTED}. Post from a PagerDuty v3 webhook subscription, or clear the source's signing secret"
        )));
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Err(Refusal::unauthorized(
            "the source's signing secret cannot key an HMAC",
        ));
    };
    mac.update(body);
    let holds = header
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if holds {
        Ok(())
    } else {
        Err(Refusal::unauthorized(format!(
            "no signature in X-PagerDuty-Signature holds for this body: expected {EXPECTED}. The signing secret set on this source is not the subscription's (PagerDuty shows it once, when the subscription is created), or the body was altered on the way"
        )))
    }
}

pub fn read(payload: &Value) -> Result<Vec<Item>, Refusal> {
    let Some(event) = payload.get("event").filter(|e| e.is_object()) else {
        return Err(Refusal::new("event", format!("is required: {SHAPE}")));
    };
    let Some(event_type) = text_at(event, "event_type") else {
        return Err(Refusal::new(
            "event.event_type",
            "is required: what happened, like \"incident.triggered\" or \"incident.resolved\"",
        ));
    };
    let intent = match event_type {
        "incident.triggered" => Intent::Trigger,
        "incident.acknowledged" => Intent::Acknowledge,
        "incident.unacknowledged" => Intent::Unacknowledge,
        "incident.reopened" => Intent::Reopen,
        "incident.reassigned" => Intent::Reassign,
        "incident.resolved" => Intent::Resolve,
        "incident.annotated" => return read_note(event).map(|c| vec![Item::Change(Box::new(c))]),
        other => {
            return Ok(vec![Item::Ignored(format!(
                "ignored: PagerDuty's {other} is not an incident change tocsin sends"
            ))])
        }
    };
    read_incident_event(event, event_type, intent).map(|c| vec![Item::Change(Box::new(c))])
}

/// An event whose `data` is the incident itself.
fn read_incident_event(event: &Value, event_type: &str, intent: Intent) -> Result<Change, Refusal> {
    let Some(data) = event.get("data").filter(|d| d.is_object()) else {
        return Err(Refusal::new(
            "event.data",
            format!("is required for {event_type}: the incident, as an object"),
        ));
    };
    let Some(id) = text_at(data, "id") else {
        return Err(Refusal::new(
            "event.data.id",
            "is required: PagerDuty's incident id, which names the incident",
        ));
    };
    // A new incident must be described in full: nothing before it can complete it.
    if matches!(intent, Intent::Trigger | Intent::Reopen) {
        for (path, what) in [
            ("title", "the incident's title (its message)"),
            ("service.id", "the PagerDuty service the incident is on"),
        ] {
            if text_at(data, path).is_none() {
                return Err(Refusal::new(
                    format!("event.data.{path}"),
                    format!("is required for {event_type}: {what}"),
                ));
            }
        }
    }
    let mut change = Change::new(id, intent, incident(data));
    change.incident_id = Some(id.to_owned());
    change.event_id = text_at(event, "id").map(str::to_owned);
    change.timestamp = occurred_at(event);
    change.team = first(data, "teams").and_then(|t| reference(t, None));
    Ok(change)
}

/// The Squadcast incident object from PagerDuty's incident.
fn incident(data: &Value) -> Map<String, Value> {
    let mut incident = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            incident.insert(key.to_owned(), v);
        }
    };
    let text = |path: &str| text_at(data, path).map(|s| Value::String(s.to_owned()));
    put("message", text("title"));
    put("url", text("html_url"));
    put(
        "service",
        data.get("service").and_then(|s| reference(s, None)),
    );
    put("alert_source", Some(alert_source()));
    put("created_at", text("created_at"));
    put(
        "assigned_to",
        first(data, "assignees").and_then(|a| reference(a, Some("user"))),
    );
    put("priority", text("priority.summary"));
    put("urgency", text("urgency"));
    put(
        "number",
        data.get("number").filter(|n| n.is_number()).cloned(),
    );
    put("incident_key", text("incident_key"));
    put("event_payload", Some(data.clone()));
    incident
}

/// `incident.annotated`: a note on an incident the payload names only by reference. The
/// incident's state completes it from what PagerDuty said of it before.
fn read_note(event: &Value) -> Result<Change, Refusal> {
    let Some(note) = event.get("data").filter(|d| d.is_object()) else {
        return Err(Refusal::new(
            "event.data",
            "is required for incident.annotated: the note, as an object",
        ));
    };
    let Some(incident_id) = text_at(note, "incident.id") else {
        return Err(Refusal::new(
            "event.data.incident.id",
            "is required for incident.annotated: the id of the incident the note is on",
        ));
    };
    let Some(content) = at(note, "content").and_then(Value::as_str) else {
        return Err(Refusal::new(
            "event.data.content",
            "is required for incident.annotated: the note's text",
        ));
    };
    let mut incident = Map::new();
    incident.insert("id".into(), Value::String(incident_id.to_owned()));
    if let Some(url) = text_at(note, "incident.html_url") {
        incident.insert("url".into(), Value::String(url.to_owned()));
    }
    let mut change = Change::new(incident_id, Intent::note(), incident);
    change.incident_id = Some(incident_id.to_owned());
    change.event_id = text_at(event, "id").map(str::to_owned);
    change.timestamp = occurred_at(event);
    change.resource = Some(note_resource(event, note, content));
    Ok(change)
}

/// The note in Squadcast's shape (`data.resource_data` of `incident.incident_notes_created`).
fn note_resource(event: &Value, note: &Value, content: &str) -> Value {
    change::note_resource(
        text_at(note, "id"),
        event.get("agent").and_then(|a| reference(a, None)),
        content,
        occurred_at(event).as_deref(),
    )
}

fn alert_source() -> Value {
    json!({"id": "pagerduty", "type": "PagerDuty", "short_name": "pagerduty"})
}

/// `event.occurred_at`, when it is a time receivers can read.
fn occurred_at(event: &Value) -> Option<String> {
    text_at(event, "occurred_at")
        .filter(|t| Timestamp::parse_rfc3339(t).is_some())
        .map(str::to_owned)
}

/// The first element of the array at `key`.
fn first<'a>(data: &'a Value, key: &str) -> Option<&'a Value> {
    data.get(key)
        .and_then(Value::as_array)
        .and_then(|a| a.first())
}

/// A PagerDuty reference (`{id, summary, type: "…_reference"}`) as Squadcast's
/// `{id, name[, type]}`.
fn reference(r: &Value, kind: Option<&str>) -> Option<Value> {
    let id = text_at(r, "id")?;
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("name".into(), json!(text_at(r, "summary").unwrap_or(id)));
    if let Some(kind) = kind {
        out.insert("type".into(), json!(kind));
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use crate::sources::testing::{self, event, skipped};
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::{
        domain::source::{IncidentState, SourceKind, SourceSettings},
        sources::translate::Outcome,
    };

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../tests/fixtures/sources/pagerduty/", $name))
        };
    }

    // One incident's real deliveries, signed by PagerDuty with this subscription secret
    // (Aldaviva/PagerDuty, Tests/Webhooks/WebhookResourceTests.cs).
    const SECRET: &str = "HvPtlQNKMPpHSSqJpCdndXfo7HnGXa1pnH6w5axpxLFn9aRBNBGh4e8/HlonK5mz";
    const SIGNED: [(&str, &str); 5] = [
        (
            fixture!("incident-triggered.json"),
            "v1=3e3032b45bbe1801c13f182b0e0a7f4f3f530225cef07e3e90cbc57874d01c49",
        ),
        (
            fixture!("incident-acknowledged.json"),
            "v1=91f533c0411d09f3e68622e2b57fdb561e7113ce7635318a2bbf5cde45d3d876",
        ),
        (
            fixture!("incident-resolved.json"),
            "v1=60a745384fb05b03acfc592b157b05e105e498da2f72f53c437c9d7c8d9aa879",
        ),
        (
            fixture!("incident-annotated.json"),
            "v1=7b1cc279d644e35511cfca431696498477e97d46f2403ed46d426435e0efef2b",
        ),
        (
            fixture!("pagey-ping.json"),
            "v1=0e83584cbab86f98c51517cf96a70c90e910532d3d2f067d58c753cc8980a05b",
        ),
    ];

    const ALL: [&str; 13] = [
        fixture!("incident-triggered.json"),
        fixture!("incident-acknowledged.json"),
        fixture!("incident-unacknowledged.json"),
        fixture!("incident-reassigned.json"),
        fixture!("incident-resolved.json"),
        fixture!("incident-reopened.json"),
        fixture!("incident-annotated.json"),
        fixture!("incident-priority-updated.json"),
        fixture!("incident-responder-added.json"),
        fixture!("incident-status-update-published.json"),
        fixture!("service-updated.json"),
        fixture!("pagey-ping.json"),
        fixture!("signed-priority-updated.json"),
    ];

    fn json(text: &str) -> Value {
        serde_json::from_str(text).expect("fixtures are JSON")
    }

    fn change(text: &str) -> Change {
        change_of(&json(text))
    }

    fn change_of(payload: &Value) -> Change {
        match read(payload).expect("readable").as_slice() {
            [Item::Change(c)] => (**c).clone(),
            other => panic!("{other:?}"),
        }
    }

    fn refusal(payload: Value) -> Refusal {
        read(&payload).expect_err("refused")
    }

    /// `text` with its event type replaced: the same incident, as another event.
    fn retyped(text: &str, event_type: &str) -> Value {
        let mut payload = json(text);
        payload["event"]["event_type"] = json!(event_type);
        payload["event"]["id"] = json!(format!("{event_type}-of-{}", payload["event"]["id"]));
        payload
    }

    /// Reads and decides `payload` on `states`, keeping what it leaves there.
    fn deliver(payload: &Value, states: &mut HashMap<String, IncidentState>) -> Vec<Outcome> {
        let source = testing::source(
            SourceKind::PagerDuty,
            SourceSettings::PagerDuty {
                signing_secret: None,
            },
            None,
        );
        testing::deliver(&source, read(payload).expect("readable"), states)
    }

    #[test]
    fn looks_like_pagerduty_events_and_nothing_else() {
        for text in ALL {
            assert!(looks_like(&json(text)), "{text}");
            let kind = super::super::recognise(&json(text));
            assert_eq!(
                kind,
                Some(SourceKind::PagerDuty),
                "no other kind claims it: {text}"
            );
        }
        let others = [
            include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-triggered.json"),
            include_str!("../../../tests/fixtures/sources/opsgenie/create.json"),
            include_str!("../../../tests/fixtures/sources/opsgenie/addnote.json"),
        ];
        for text in others {
            assert!(!looks_like(&json(text)), "{text}");
        }
    }

    #[test]
    fn pagerdutys_own_signatures_hold() {
        for (body, signature) in SIGNED {
            assert_eq!(
                verify(Some(signature), body.as_bytes(), SECRET),
                Ok(()),
                "{body}"
            );
        }
        // PagerDuty's documented example (go-pagerduty, webhookv3/webhookv3_test.go).
        let secret = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK";
        let signature = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd";
        let body = fixture!("signed-priority-updated.json");
        assert_eq!(verify(Some(signature), body.as_bytes(), secret), Ok(()));
    }

    #[test]
    fn one_valid_signature_among_several_is_enough_while_a_secret_rotates() {
        let (body, signature) = SIGNED[0];
        let stale = "v1=f03de6f61df6e454f3620c4d6aca17ad072d3f8bbb2760eac3b2ad391b5e8073";
        for header in [
            format!("{stale},{signature}"),
            format!("{signature}, {stale}"),
        ] {
            assert_eq!(
                verify(Some(&header), body.as_bytes(), SECRET),
                Ok(()),
                "{header}"
            );
        }
    }

    #[test]
    fn a_signature_that_does_not_hold_is_refused_without_revealing_the_expected_one() {
        let (body, signature) = SIGNED[0];
        let expected = signature.trim_start_matches("v1=");
        let tampered = body.replacen("\"title\":\"Test\"", "\"title\":\"Tset\"", 1);
        assert_ne!(tampered, body);
        let cases = [
            (
                "v1=f03de6f61df6e454f3620c4d6aca17ad072d3f8bbb2760eac3b2ad391b5e8073".to_owned(),
                body,
            ),
            ("v1=not-hex,v1=".to_owned(), body),
            // Only v1 signatures count.
            (signature.replacen("v1=", "v0=", 1), body),
            (signature.to_owned(), &tampered),
        ];
        for (header, body) in &cases {
            let refused = verify(Some(header), body.as_bytes(), SECRET).expect_err("refused");
            assert_eq!((refused.status, refused.field.as_str()), (401, "signature"));
            assert!(
                refused.message.contains("v1=<hex HMAC-SHA256"),
                "{}",
                refused.message
            );
            assert!(!refused.message.contains(expected), "{}", refused.message);
        }
        assert!(verify(Some(signature), body.as_bytes(), "another secret").is_err());
    }

    #[test]
    fn a_missing_signature_is_refused_and_says_what_is_expected() {
        for header in [None, Some(""), Some("  ")] {
            let refused = verify(header, SIGNED[0].0.as_bytes(), SECRET).expect_err("refused");
            assert_eq!(refused.status, 401);
            assert!(refused
                .message
                .contains("X-PagerDuty-Signature header is missing"));
            assert!(refused.message.contains("v1=<hex HMAC-SHA256"));
        }
    }

    #[test]
    fn a_triggered_incident_becomes_the_squadcast_incident() {
        let c = change(fixture!("incident-triggered.json"));
        assert_eq!(c.intent, Intent::Trigger);
        assert_eq!(c.key, "Q2CKYRLH85UNN4");
        assert_eq!(c.incident_id.as_deref(), Some("Q2CKYRLH85UNN4"));
        assert_eq!(c.event_id.as_deref(), Some("01FKZSRAPTMF55RE69G8BQHGC6"));
        assert_eq!(c.timestamp.as_deref(), Some("2025-04-07T03:47:13.414Z"));
        assert_eq!(c.team, None, "teams is empty");
        let i = &c.incident;
        assert_eq!(i["message"], "Test");
        assert_eq!(i.get("description"), None);
        assert_eq!(
            i["url"],
            "https://aldaviva.pagerduty.com/incidents/Q2CKYRLH85UNN4"
        );
        assert_eq!(
            i["service"],
            json!({"id": "PNE3JZM", "name": "Webhook Tester"})
        );
        assert_eq!(
            i["alert_source"],
            json!({"id": "pagerduty", "type": "PagerDuty", "short_name": "pagerduty"})
        );
        assert_eq!(
            i["assigned_to"],
            json!({"id": "PVE0ZR9", "name": "Ben", "type": "user"})
        );
        assert_eq!(i["created_at"], "2025-04-07T03:47:13Z");
        assert_eq!(i["urgency"], "low");
        assert_eq!(i["number"], 37);
        assert_eq!(i["incident_key"], "dfead9d88e0649e8b7dee514b1875756");
        assert_eq!(i.get("priority"), None, "priority is null");
        assert_eq!(
            i["event_payload"],
            json(fixture!("incident-triggered.json"))["event"]["data"]
        );
        assert_eq!(i.get("status"), None, "the decision sets the status");
    }

    #[test]
    fn the_documented_incident_gives_its_priority_and_first_team() {
        let payload = retyped(
            fixture!("incident-priority-updated.json"),
            "incident.triggered",
        );
        let c = change_of(&payload);
        assert_eq!(
            c.team,
            Some(json!({"id": "PFCVPS0", "name": "Engineering"}))
        );
        assert_eq!(c.incident["priority"], "P1");
        assert_eq!(c.incident["urgency"], "high");
        assert_eq!(
            c.incident["service"],
            json!({"id": "PF9KMXH", "name": "API Service"})
        );
        assert_eq!(
            c.incident["assigned_to"],
            json!({"id": "PTUXL6G", "name": "User 123", "type": "user"})
        );
    }

    #[test]
    fn each_incident_event_type_reads_as_its_change() {
        let cases = [
            (
                fixture!("incident-acknowledged.json"),
                Intent::Acknowledge,
                "Q2CKYRLH85UNN4",
            ),
            (
                fixture!("incident-unacknowledged.json"),
                Intent::Unacknowledge,
                "PQ1K5C8",
            ),
            (
                fixture!("incident-reassigned.json"),
                Intent::Reassign,
                "PIQUG8X",
            ),
            (
                fixture!("incident-resolved.json"),
                Intent::Resolve,
                "Q2CKYRLH85UNN4",
            ),
            (
                fixture!("incident-reopened.json"),
                Intent::Reopen,
                "Q05XJA8GDXGOB3",
            ),
        ];
        for (text, intent, id) in cases {
            let c = change(text);
            assert_eq!((c.intent, c.key.as_str()), (intent, id), "{text}");
            assert_eq!(c.incident_id.as_deref(), Some(id));
            assert_eq!(c.event_id.as_deref(), json(text)["event"]["id"].as_str());
        }
        let reassigned = change(fixture!("incident-reassigned.json"));
        assert_eq!(
            reassigned.incident["assigned_to"],
            json!({"id": "PI9DT01", "name": "Test User", "type": "user"})
        );
        let resolved = change(fixture!("incident-resolved.json"));
        assert_eq!(
            resolved.incident.get("assigned_to"),
            None,
            "no assignees left"
        );
    }

    #[test]
    fn a_note_names_its_incident_and_carries_the_note_as_squadcasts() {
        let c = change(fixture!("incident-annotated.json"));
        assert_eq!(c.intent, Intent::note());
        assert_eq!(c.key, "Q2CKYRLH85UNN4");
        assert_eq!(c.incident_id.as_deref(), Some("Q2CKYRLH85UNN4"));
        assert_eq!(c.event_id.as_deref(), Some("01FKZSYEOK0YQYTT9OZQJDS1P4"));
        assert_eq!(
            Value::Object(c.incident.clone()),
            json!({"id": "Q2CKYRLH85UNN4", "url": "https://aldaviva.pagerduty.com/incidents/Q2CKYRLH85UNN4"}),
            "no message or service is invented"
        );
        assert_eq!(
            c.resource,
            Some(json!({
                "id": "PTSAIFZ",
                "created_by": {"id": "PVE0ZR9", "name": "Ben"},
                "message": {
                    "message": "Resolution Note: I'm resolving it",
                    "raw_message": "Resolution Note: I'm resolving it"
                },
                "created_at": "2025-04-07T03:49:36.680Z",
                "updated_at": "2025-04-07T03:49:36.680Z",
                "type": "message"
            }))
        );
    }

    #[test]
    fn other_event_types_are_ignored_and_say_which() {
        for (text, kind) in [
            (
                fixture!("incident-priority-updated.json"),
                "incident.priority_updated",
            ),
            (
                fixture!("incident-responder-added.json"),
                "incident.responder.added",
            ),
            (
                fixture!("incident-status-update-published.json"),
                "incident.status_update_published",
            ),
            (fixture!("service-updated.json"), "service.updated"),
            (fixture!("pagey-ping.json"), "pagey.ping"),
        ] {
            assert_eq!(
                read(&json(text)).unwrap(),
                vec![Item::Ignored(format!(
                    "ignored: PagerDuty's {kind} is not an incident change tocsin sends"
                ))]
            );
        }
    }

    #[test]
    fn refusals_name_the_field_at_fault() {
        let triggered = json(fixture!("incident-triggered.json"));
        let without = |path: &[&str]| {
            let mut p = triggered.clone();
            let (last, parents) = path.split_last().unwrap();
            let mut v = &mut p;
            for key in parents {
                v = &mut v[*key];
            }
            v.as_object_mut().unwrap().remove(*last);
            p
        };
        let cases = [
            (json!({"alerts": []}), "event"),
            (json!({"event": "incident.triggered"}), "event"),
            (without(&["event", "event_type"]), "event.event_type"),
            (without(&["event", "data"]), "event.data"),
            (without(&["event", "data", "id"]), "event.data.id"),
            (without(&["event", "data", "title"]), "event.data.title"),
            (
                without(&["event", "data", "service"]),
                "event.data.service.id",
            ),
        ];
        for (payload, field) in cases {
            let r = refusal(payload);
            assert_eq!((r.status, r.field.as_str()), (422, field), "{}", r.message);
            assert!(r.message.starts_with("is required"), "{}", r.message);
        }
        let mut note = json(fixture!("incident-annotated.json"));
        note["event"]["data"]["incident"] = json!({"summary": "Test"});
        assert_eq!(refusal(note.clone()).field, "event.data.incident.id");
        note["event"]["data"]["incident"]["id"] = json!("Q2CKYRLH85UNN4");
        note["event"]["data"]
            .as_object_mut()
            .unwrap()
            .remove("content");
        assert_eq!(refusal(note).field, "event.data.content");
    }

    #[test]
    fn an_incident_only_pagerduty_knows_of_is_not_acknowledged_resolved_or_noted() {
        for text in [
            fixture!("incident-acknowledged.json"),
            fixture!("incident-unacknowledged.json"),
            fixture!("incident-reassigned.json"),
            fixture!("incident-resolved.json"),
            fixture!("incident-annotated.json"),
        ] {
            let out = deliver(&json(text), &mut HashMap::new());
            assert!(skipped(&out).contains("never triggered"), "{out:?}");
        }
        for text in [
            fixture!("incident-triggered.json"),
            fixture!("incident-reopened.json"),
        ] {
            let e = event(&deliver(&json(text), &mut HashMap::new()));
            assert_eq!(e.event_type.name, "incident.triggered");
            assert_eq!(e.incident_id(), json(text)["event"]["data"]["id"]);
        }
    }

    #[test]
    fn one_incidents_deliveries_become_its_events_in_turn() {
        let mut states = HashMap::new();
        let triggered = event(&deliver(
            &json(fixture!("incident-triggered.json")),
            &mut states,
        ));
        assert_eq!(triggered.event_type.name, "incident.triggered");
        assert_eq!(triggered.payload_event_id, "01FKZSRAPTMF55RE69G8BQHGC6");
        assert_eq!(triggered.timestamp, "2025-04-07T03:47:13.414Z");
        assert_eq!(triggered.incident["id"], "Q2CKYRLH85UNN4");
        assert_eq!(triggered.incident["status"], "triggered");
        assert_eq!(
            triggered.team["id"], "default",
            "the source's team when PagerDuty names none"
        );

        let acked = event(&deliver(
            &json(fixture!("incident-acknowledged.json")),
            &mut states,
        ));
        assert_eq!(acked.event_type.name, "incident.acknowledged");
        assert_eq!(acked.incident["status"], "acknowledged");
        // PagerDuty sending the same delivery again (its answer was lost) is the same event,
        // which intake stores once; another acknowledgement is not a new event.
        let again = event(&deliver(
            &json(fixture!("incident-acknowledged.json")),
            &mut states,
        ));
        assert_eq!(again.payload_event_id, acked.payload_event_id);
        let mut another = json(fixture!("incident-acknowledged.json"));
        another["event"]["id"] = json!("01ANOTHERACKNOWLEDGEMENT0");
        let another = deliver(&another, &mut states);
        assert!(skipped(&another).contains("already acknowledged"));

        let resolved = event(&deliver(
            &json(fixture!("incident-resolved.json")),
            &mut states,
        ));
        assert_eq!(resolved.event_type.name, "incident.resolved");
        assert_eq!(
            resolved.incident["assigned_to"]["name"], "Ben",
            "kept from before"
        );

        // The note names only the incident: the rest comes from what was sent before.
        let noted = event(&deliver(
            &json(fixture!("incident-annotated.json")),
            &mut states,
        ));
        assert_eq!(noted.event_type.name, "incident.incident_notes_created");
        assert_eq!(noted.incident["id"], "Q2CKYRLH85UNN4");
        assert_eq!(noted.incident["message"], "Test");
        assert_eq!(noted.incident["service"]["id"], "PNE3JZM");
        assert_eq!(noted.incident["status"], "resolved");
        let note = noted.resource.expect("the note");
        assert_eq!(
            note.value["message"]["message"],
            "Resolution Note: I'm resolving it"
        );
    }

    #[test]
    fn unacknowledge_reassign_and_reopen_follow_the_incidents_state() {
        let unack = fixture!("incident-unacknowledged.json");
        let mut states = HashMap::new();
        deliver(&retyped(unack, "incident.triggered"), &mut states);
        assert!(skipped(&deliver(&json(unack), &mut states)).contains("not acknowledged"));
        deliver(&retyped(unack, "incident.acknowledged"), &mut states);
        let e = event(&deliver(&json(unack), &mut states));
        assert_eq!(
            (e.event_type.name, e.incident["status"].as_str()),
            ("incident.triggered", Some("triggered"))
        );

        let reassign = fixture!("incident-reassigned.json");
        let mut states = HashMap::new();
        deliver(&retyped(reassign, "incident.triggered"), &mut states);
        let e = event(&deliver(&json(reassign), &mut states));
        assert_eq!(e.event_type.name, "incident.reassigned");
        assert_eq!(e.incident["assigned_to"]["id"], "PI9DT01");

        let reopen = fixture!("incident-reopened.json");
        let mut states = HashMap::new();
        deliver(&retyped(reopen, "incident.triggered"), &mut states);
        assert!(skipped(&deliver(&json(reopen), &mut states)).contains("already triggered"));
        deliver(&retyped(reopen, "incident.resolved"), &mut states);
        let e = event(&deliver(&json(reopen), &mut states));
        assert_eq!(e.event_type.name, "incident.triggered");
        assert_eq!(
            e.incident["id"], "Q05XJA8GDXGOB3",
            "PagerDuty's id, kept across the reopen"
        );
        assert_eq!(states["Q05XJA8GDXGOB3"].generation, 2);
    }
}
