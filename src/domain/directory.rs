//! What tocsin knows of the incident platform's services, alert sources and teams: learnt
//! from every event it accepts, or declared by an operator before the first event.

use serde_json::Value;

use super::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    AlertSource,
    Team,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Service, Kind::AlertSource, Kind::Team];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::AlertSource => "alert_source",
            Kind::Team => "team",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub id: String,
    /// Its name, or its id when nothing named it.
    pub name: String,
    /// Whether `name` was given (by the event or a person) rather than the id standing in:
    /// a missing name never replaces a known one.
    pub named: bool,
    pub last_seen: Option<Timestamp>,
}

const MAX_FIELD: usize = 200;
/// A declared name's length (`PUT /v3/services/{id}` and the like).
pub const MAX_NAME: usize = MAX_FIELD;

/// An entry a person declares (a service, alert source or team events have not named yet,
/// or a better name for one), checked: the API's `PUT` and the filter builder's "Add".
pub fn declared(kind: Kind, id: &str, name: &str) -> Result<Entry, Vec<crate::domain::FieldError>> {
    use crate::domain::FieldError;
    let mut errors = Vec::new();
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        errors.push(FieldError::new(
            "name",
            "is required: 1–200 characters without line breaks",
        ));
    } else if super::text::has_hidden_controls(name) {
        errors.push(FieldError::new("name", super::text::HIDDEN_CONTROLS));
    }
    if id.len() > MAX_FIELD {
        errors.push(FieldError::new("id", "must be at most 200 characters"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Entry {
        kind,
        id: id.to_owned(),
        name: name.to_owned(),
        named: true,
        last_seen: None,
    })
}

fn text(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_FIELD)
        .map(str::to_owned)
}

/// The service, alert source and team an event names (an event body as `POST /v3/events`
/// takes it). An entry without a name is named by its id.
pub fn from_event(body: &Value, at: Timestamp) -> Vec<Entry> {
    let incident = body.get("incident");
    from_parts(
        incident.and_then(|i| i.get("service")),
        incident.and_then(|i| i.get("alert_source")),
        body.get("team"),
        at,
    )
}

/// The entries of an incident's service and alert source and an event's team.
pub fn from_parts(
    service: Option<&Value>,
    alert_source: Option<&Value>,
    team: Option<&Value>,
    at: Timestamp,
) -> Vec<Entry> {
    let pick = |kind: Kind, object: Option<&Value>, names: &[&str]| {
        let object = object?;
        let id = text(object.get("id"))?;
        let given = names.iter().find_map(|n| text(object.get(*n)));
        Some(Entry {
            kind,
            named: given.is_some(),
            name: given.unwrap_or_else(|| id.clone()),
            id,
            last_seen: Some(at),
        })
    };
    [
        pick(Kind::Service, service, &["name", "slug"]),
        pick(
            Kind::AlertSource,
            alert_source,
            &["type", "name", "short_name"],
        ),
        pick(Kind::Team, team, &["name"]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_come_from_the_incident_and_team_with_names() {
        let body = json!({"team": {"id": "t1", "name": "SRE"},
            "incident": {"service": {"id": "s1", "name": "API"},
                         "alert_source": {"id": "a1", "type": "Prometheus"}}});
        let at = Timestamp::from_micros(5);
        let entries = from_event(&body, at);
        let names: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|e| (e.kind.as_str(), e.id.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("service", "s1", "API"),
                ("alert_source", "a1", "Prometheus"),
                ("team", "t1", "SRE")
            ]
        );
        let bare = from_event(&json!({"incident": {"service": {"id": "s2"}}}), at);
        assert_eq!(bare[0].name, "s2");
        assert!(from_event(&json!({}), at).is_empty());
    }
}
