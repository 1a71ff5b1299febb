//! An incident event as received at the intake, parsed once into a valid [`Event`].

use serde_json::{json, value::RawValue, Map, Value};

use super::{
    event_type::EventType, field_error::json_kind as kind, json_text::JsonText, FieldError,
    Timestamp,
};

/// An event's `id` (the producer's idempotency key) is at most this long.
pub const MAX_PRODUCER_ID: usize = 255;

/// A received event, valid by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// tocsin's own id (`evt_…`).
    pub id: String,
    pub organization_id: crate::domain::ids::OrganizationId,
    /// The producer's `id`, the idempotency key, when given.
    pub producer_id: Option<String>,
    pub event_type: &'static EventType,
    /// `event.id` in payloads: the producer's id, or tocsin's.
    pub payload_event_id: String,
    /// `event.timestamp` in payloads, exactly as given or generated.
    pub timestamp: String,
    /// `{id, name}` as it appears in payloads.
    pub organization: Value,
    pub team: Value,
    /// The Squadcast incident object, unknown fields kept in their order: what filters and
    /// templates read.
    pub incident: Map<String, Value>,
    /// The same incident as the producer wrote it (exact numbers and escapes): what v1 and
    /// v2 payloads and the stored event carry.
    pub incident_text: JsonText,
    /// What the event is about when that is not the incident itself (a note, task list,
    /// channel, SLO violation, status page update), with its text as written; `None` for
    /// incident and tag events.
    pub resource: Option<Resource>,
    pub received_at: Timestamp,
    /// For an event an event source made: the state its incident is left in, written in
    /// the transaction that stores the event (so a stored event always has its state).
    pub source_state: Option<super::source::SourceState>,
}

impl Event {
    pub fn incident_id(&self) -> &str {
        self.incident
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn team_id(&self) -> &str {
        self.team
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The stored form: everything needed to render payloads again (manual trigger).
    pub fn body_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Stored<'a> {
            organization: &'a Value,
            team: &'a Value,
            incident: &'a RawValue,
            #[serde(skip_serializing_if = "Option::is_none")]
            resource: Option<&'a RawValue>,
        }
        serde_json::to_string(&Stored {
            organization: &self.organization,
            team: &self.team,
            incident: self.incident_text.raw(),
            resource: self.resource.as_ref().map(|r| r.text.raw()),
        })
        .expect("JSON values always serialize")
    }
}

/// An event's own resource: parsed for filters and templates, and as written for payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub value: Map<String, Value>,
    pub text: JsonText,
}

/// The organization a token belongs to, used when the producer names none.
pub struct Tenant<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

/// The texts of an event's `incident` and `resource` members, as written.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemberTexts<'a> {
    pub incident: Option<&'a RawValue>,
    pub resource: Option<&'a RawValue>,
}

pub fn member_texts(text: &[u8]) -> MemberTexts<'_> {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        incident: Option<&'a RawValue>,
        #[serde(borrow)]
        resource: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Body<'_>>(text)
        .map(|b| MemberTexts {
            incident: b.incident,
            resource: b.resource,
        })
        .unwrap_or_default()
}

/// Parses the body of `POST /v3/events` given as `text` (parsed into `input` already),
/// keeping the incident's text exactly as written.
pub fn parse_event_text(
    input: &Value,
    text: &[u8],
    tenant: Tenant<'_>,
) -> Result<Event, Vec<FieldError>> {
    parse(input, member_texts(text), tenant)
}

/// Parses an event built as a value (samples, tests, forms): the incident's text is its
/// serialization.
pub fn parse_event(input: &Value, tenant: Tenant<'_>) -> Result<Event, Vec<FieldError>> {
    parse(input, MemberTexts::default(), tenant)
}

/// An event's members, owned and not yet checked: what a `POST /v3/events` body holds. An
/// event source builds these directly, so its events pass the same checks as a posted body
/// without being written out and read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Members {
    pub id: Option<Value>,
    pub event_type: Option<Value>,
    pub timestamp: Option<Value>,
    pub organization: Option<Value>,
    pub team: Option<Value>,
    pub incident: Option<Value>,
    pub resource: Option<Value>,
    /// The incident's text as written, for payloads; `None`: its serialization.
    pub incident_text: Option<JsonText>,
    /// The resource's text as written; `None`: its serialization.
    pub resource_text: Option<JsonText>,
}

impl Members {
    /// The `POST /v3/events` body these members make (a preview shows it).
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        for (name, value) in [
            ("id", &self.id),
            ("type", &self.event_type),
            ("timestamp", &self.timestamp),
            ("organization", &self.organization),
            ("team", &self.team),
            ("incident", &self.incident),
            ("resource", &self.resource),
        ] {
            if let Some(value) = value {
                body.insert(name.to_owned(), value.clone());
            }
        }
        Value::Object(body)
    }
}

/// Checks an event's members (as [`parse_event_text`] checks a body) and makes the event.
pub fn event_from_members(members: Members, tenant: Tenant<'_>) -> Result<Event, Vec<FieldError>> {
    build(members, Vec::new(), tenant)
}

fn parse(
    input: &Value,
    texts: MemberTexts<'_>,
    tenant: Tenant<'_>,
) -> Result<Event, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = input.as_object() else {
        return Err(vec![FieldError::new(
            "body",
            format!("must be a JSON object, got {}", kind(input)),
        )]);
    };
    for key in obj.keys() {
        if ![
            "id",
            "type",
            "timestamp",
            "organization",
            "team",
            "incident",
            "resource",
        ]
        .contains(&key.as_str())
        {
            errors.push(FieldError::new(
                key.clone(),
                "unknown field; an event has id, type, timestamp, organization, team, incident and (for notes, tasks, channels, SLO violations and status pages) resource",
            ));
        }
    }
    let members = Members {
        id: obj.get("id").cloned(),
        event_type: obj.get("type").cloned(),
        timestamp: obj.get("timestamp").cloned(),
        organization: obj.get("organization").cloned(),
        team: obj.get("team").cloned(),
        incident: obj.get("incident").cloned(),
        resource: obj.get("resource").cloned(),
        incident_text: texts.incident.map(JsonText::exact),
        resource_text: texts.resource.map(JsonText::exact),
    };
    build(members, errors, tenant)
}

fn build(
    members: Members,
    mut errors: Vec<FieldError>,
    tenant: Tenant<'_>,
) -> Result<Event, Vec<FieldError>> {
    let producer_id = match members.id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_PRODUCER_ID => Some(s),
        Some(other) => {
            errors.push(FieldError::new(
                "id",
                format!(
                    "must be a non-empty string of at most {MAX_PRODUCER_ID} characters, got {}",
                    kind(&other)
                ),
            ));
            None
        }
    };

    let event_type = match &members.event_type {
        Some(Value::String(s)) => EventType::from_name(s).or_else(|| {
            errors.push(FieldError::new(
                "type",
                format!("unknown event type \"{s}\"; known: {}", known_types()),
            ));
            None
        }),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "type",
                format!("is required: one of {}", known_types()),
            ));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                "type",
                format!(
                    "must be a string, one of {}, got {}",
                    known_types(),
                    kind(other)
                ),
            ));
            None
        }
    };

    let received_at = Timestamp::now();
    let timestamp = match members.timestamp {
        None | Some(Value::Null) => received_at_nanos(),
        Some(Value::String(s)) if Timestamp::parse_rfc3339(&s).is_some() => s,
        Some(other) => {
            errors.push(FieldError::new(
                "timestamp",
                format!("must be an RFC 3339 time like 2026-11-27T08:00:00Z, got {other}"),
            ));
            String::new()
        }
    };

    let organization = match members.organization {
        None | Some(Value::Null) => json!({"id": tenant.id, "name": tenant.name}),
        Some(Value::Object(o)) if o.get("id").is_some_and(Value::is_string) => Value::Object(o),
        Some(_) => {
            errors.push(FieldError::new("organization", "must be an object with a string id, like {\"id\": \"…\", \"name\": \"…\"}, or absent"));
            Value::Null
        }
    };

    let team = match members.team {
        Some(Value::Object(o))
            if o.get("id")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()) =>
        {
            Value::Object(o)
        }
        Some(Value::Object(_)) => {
            errors.push(FieldError::new(
                "team.id",
                "is required: the id of the team the incident belongs to",
            ));
            Value::Null
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "team",
                "is required: an object like {\"id\": \"…\", \"name\": \"…\"}",
            ));
            Value::Null
        }
        Some(other) => {
            errors.push(FieldError::new(
                "team",
                format!("must be an object with an id, got {}", kind(&other)),
            ));
            Value::Null
        }
    };

    let incident = match members.incident {
        Some(Value::Object(o)) => {
            check_incident(&o, &mut errors);
            o
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "incident",
                "is required: the Squadcast incident object",
            ));
            Map::new()
        }
        Some(other) => {
            errors.push(FieldError::new(
                "incident",
                format!("must be an object, got {}", kind(&other)),
            ));
            Map::new()
        }
    };

    let resource_text = members.resource_text;
    let resource = match (event_type, members.resource) {
        (Some(t), Some(Value::Object(o))) if t.has_resource() => Some(Resource {
            text: resource_text.unwrap_or_else(|| JsonText::from_value(&o)),
            value: o,
        }),
        (Some(t), None | Some(Value::Null)) if t.has_resource() => {
            errors.push(FieldError::new(
                "resource",
                format!(
                    "is required for {}: {}, as an object (it becomes data.resource_data)",
                    t.name,
                    t.resource_description()
                ),
            ));
            None
        }
        (Some(t), Some(other)) if t.has_resource() => {
            errors.push(FieldError::new(
                "resource",
                format!(
                    "must be an object ({}), got {}",
                    t.resource_description(),
                    kind(&other)
                ),
            ));
            None
        }
        (Some(t), Some(other)) if !other.is_null() => {
            errors.push(FieldError::new(
                "resource",
                format!(
                    "is not used by {}: its payload is about the incident; leave resource out",
                    t.name
                ),
            ));
            None
        }
        _ => None,
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    let id = super::ids::new_id("evt");
    let incident_text = members
        .incident_text
        .unwrap_or_else(|| JsonText::from_value(&incident));
    Ok(Event {
        payload_event_id: producer_id.clone().unwrap_or_else(|| id.clone()),
        id,
        organization_id: tenant.id.into(),
        producer_id,
        event_type: event_type.expect("checked above"),
        timestamp,
        organization,
        team,
        incident,
        incident_text,
        resource,
        received_at,
        source_state: None,
    })
}

/// What an incident lacks of the fields receivers and filters rely on, each named
/// `incident.<path>` (empty when it has them all).
pub fn incident_problems(incident: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_incident(incident, &mut errors);
    errors
}

/// The incident fields receivers and filters rely on must be non-empty strings.
fn check_incident(incident: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    for path in ["id", "message", "status", "service.id", "alert_source.id"] {
        let mut value: Option<&Value> = None;
        for (i, key) in path.split('.').enumerate() {
            value = if i == 0 {
                incident.get(key)
            } else {
                value.and_then(|v| v.get(key))
            };
        }
        match value {
            Some(Value::String(s)) if !s.is_empty() || path == "message" => {}
            Some(Value::String(_)) => errors.push(FieldError::new(
                format!("incident.{path}"),
                "must not be empty",
            )),
            None | Some(Value::Null) => {
                errors.push(FieldError::new(format!("incident.{path}"), "is required"))
            }
            Some(other) => errors.push(FieldError::new(
                format!("incident.{path}"),
                format!("must be a string, got {}", kind(other)),
            )),
        }
    }
}

fn known_types() -> String {
    super::event_type::EVENT_TYPES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Now, in RFC 3339 with nanoseconds, as Squadcast writes `event.timestamp`.
fn received_at_nanos() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    now.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: Tenant<'static> = Tenant {
        id: "org_1",
        name: "Acme",
    };

    fn valid() -> Value {
        json!({
            "type": "incident_triggered",
            "team": {"id": "team-1", "name": "SRE"},
            "incident": {
                "id": "inc-1", "message": "CPU high", "status": "triggered",
                "service": {"id": "svc-1"}, "alert_source": {"id": "as-1"},
                "custom_field": {"kept": true}
            }
        })
    }

    #[test]
    fn a_minimal_event_gets_generated_ids_and_the_tenant_organization() {
        let e = parse_event(&valid(), TENANT).unwrap();
        assert_eq!(
            e.event_type.name, "incident.triggered",
            "v1 names are accepted"
        );
        assert_eq!(e.payload_event_id, e.id);
        assert_eq!(e.organization, json!({"id": "org_1", "name": "Acme"}));
        assert_eq!(e.incident["custom_field"], json!({"kept": true}));
        assert!(Timestamp::parse_rfc3339(&e.timestamp).is_some());
        assert_eq!(
            e.timestamp.split('.').nth(1).unwrap().len(),
            10,
            "nanoseconds and Z: {}",
            e.timestamp
        );
    }

    #[test]
    fn events_about_a_resource_carry_it_and_others_do_not() {
        let mut input = valid();
        input["type"] = json!("incident.incident_notes_created");
        let errors = parse_event(&input, TENANT).unwrap_err();
        assert_eq!(errors[0].field, "resource");
        assert!(errors[0].message.contains("the note"), "{errors:?}");
        input["resource"] = json!("a note");
        let errors = parse_event(&input, TENANT).unwrap_err();
        assert!(
            errors[0].message.contains("must be an object"),
            "{errors:?}"
        );
        input["resource"] = json!({"id": "n1", "note": "rolling back"});
        let e = parse_event(&input, TENANT).unwrap();
        let resource = e.resource.as_ref().expect("kept");
        assert_eq!(resource.value["note"], "rolling back");
        assert_eq!(
            resource.text.as_str(),
            r#"{"id":"n1","note":"rolling back"}"#
        );
        assert!(e.body_json().contains(r#""resource":{"id":"n1""#));

        let mut plain = valid();
        plain["resource"] = json!({"id": "n1"});
        let errors = parse_event(&plain, TENANT).unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("is not used by incident.triggered"),
            "{errors:?}"
        );
        let mut tags = valid();
        tags["type"] = json!("incident.tags_updated");
        assert!(
            parse_event(&tags, TENANT).unwrap().resource.is_none(),
            "tags: the incident is the resource"
        );
    }

    #[test]
    fn producer_id_and_timestamp_are_kept_unchanged() {
        let mut input = valid();
        input["id"] = json!("633e670afbb04a577527b4b8");
        input["timestamp"] = json!("2022-10-06T05:26:34.945695898Z");
        let e = parse_event(&input, TENANT).unwrap();
        assert_eq!(e.payload_event_id, "633e670afbb04a577527b4b8");
        assert_eq!(e.producer_id.as_deref(), Some("633e670afbb04a577527b4b8"));
        assert_eq!(e.timestamp, "2022-10-06T05:26:34.945695898Z");
    }

    #[test]
    fn every_required_field_is_named() {
        let cases = [
            ("type", json!(null)),
            ("type", json!("incident.exploded")),
            ("team", json!(null)),
            ("incident", json!(null)),
            ("timestamp", json!("yesterday")),
            ("id", json!(42)),
        ];
        for (field, value) in cases {
            let mut input = valid();
            input[field] = value.clone();
            let errors = parse_event(&input, TENANT).unwrap_err();
            assert!(
                errors.iter().any(|e| e.field == field),
                "{field}={value}: {errors:?}"
            );
        }
        for path in ["id", "message", "status"] {
            let mut input = valid();
            input["incident"].as_object_mut().unwrap().remove(path);
            let errors = parse_event(&input, TENANT).unwrap_err();
            assert!(
                errors.iter().any(|e| e.field == format!("incident.{path}")),
                "{errors:?}"
            );
        }
        let mut input = valid();
        input["incident"]["service"] = json!({});
        input["incident"]["alert_source"] = json!({"id": 3});
        input["team"] = json!({"name": "no id"});
        let fields: Vec<String> = parse_event(&input, TENANT)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["team.id", "incident.service.id", "incident.alert_source.id"]
        );
    }
}
