//! Event sources: where an alerting or incident tool (Alertmanager, Grafana, PagerDuty,
//! Opsgenie, Squadcast, or any JSON) posts, and what tocsin keeps about each: its settings,
//! its credential's hash, the state of every incident it spoke of, and what it received.
//! Parsed once into a valid [`SourceSpec`]; the mapping of payloads lives in `sources/`.

pub mod expression;
mod incident;
mod receipt;
mod settings;

use serde_json::{json, Map, Value};

pub use incident::{IncidentState, IncidentStatus, SourceState};
pub use receipt::{
    worth_writing, DayCounts, Receipt, ReceiptOutcome, RECEIPTS_KEPT, RECEIPT_BODY_MAX,
};
pub use settings::{
    AlertSettings, GenericMapping, IncidentPer, SourceSettings, MASK, MAX_LABEL, MAX_SECRET,
};

use super::{field_error::json_kind as kind, ids::OrganizationId, ids::SourceId, FieldError};
use crate::domain::{
    text::{has_hidden_controls, HIDDEN_CONTROLS},
    Timestamp,
};

pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 2000;

/// Which tool posts to a source, and so how its payloads are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Squadcast,
    Alertmanager,
    Grafana,
    PagerDuty,
    Opsgenie,
    Generic,
}

impl SourceKind {
    pub const ALL: [SourceKind; 6] = [
        SourceKind::Alertmanager,
        SourceKind::Grafana,
        SourceKind::PagerDuty,
        SourceKind::Opsgenie,
        SourceKind::Squadcast,
        SourceKind::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Squadcast => "squadcast",
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Grafana => "grafana",
            SourceKind::PagerDuty => "pagerduty",
            SourceKind::Opsgenie => "opsgenie",
            SourceKind::Generic => "generic",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// What people call the tool.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Squadcast => "Squadcast",
            SourceKind::Alertmanager => "Prometheus Alertmanager",
            SourceKind::Grafana => "Grafana Alerting",
            SourceKind::PagerDuty => "PagerDuty",
            SourceKind::Opsgenie => "Opsgenie / Jira Service Management",
            SourceKind::Generic => "Any JSON (generic mapping)",
        }
    }

    fn names() -> String {
        Self::ALL.map(|k| k.as_str()).join(", ")
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a person configures: valid by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceKind,
    pub description: String,
    pub enabled: bool,
    /// `{id, name}`: the team of incidents whose payload names none.
    pub team: Option<Value>,
    pub settings: SourceSettings,
}

/// A stored source.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: SourceId,
    pub organization_id: OrganizationId,
    pub spec: SourceSpec,
    /// SHA-256 (hex) of the credential; the credential itself is shown once.
    pub token_hash: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The team used when neither the payload nor the source names one: Squadcast's name for
/// an organization's first team.
pub fn default_team() -> Value {
    json!({"id": "default", "name": "Default Team"})
}

impl Source {
    /// The team of this source's incidents when their payload names none.
    pub fn team(&self) -> Value {
        self.spec.team.clone().unwrap_or_else(default_team)
    }
}

/// A source's credential: `tsrc_` and 43 base62 characters, shown once, stored hashed.
pub fn new_token() -> String {
    use rand::{distr::Alphanumeric, Rng};
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect();
    format!("tsrc_{random}")
}

pub fn hash_token(token: &str) -> String {
    super::token::hash_token(token)
}

const FIELDS: [&str; 6] = ["name", "kind", "description", "enabled", "team", "settings"];
/// What a response adds, accepted and ignored on input so GET → edit → PUT works.
const READ_ONLY: [&str; 10] = [
    "id",
    "token",
    "url",
    "organization_id",
    "created_at",
    "updated_at",
    "kind_label",
    "last_received_at",
    "counts_today",
    "last_error",
];

impl SourceSpec {
    /// Parses a create or update body. On update, `kind` must be the source's own: a
    /// source's URL is given to one tool, so changing what it expects would break it.
    pub fn parse(input: &Value, existing: Option<&SourceSpec>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = input.as_object() else {
            return Err(vec![FieldError::new(
                "body",
                format!("must be a JSON object, got {}", kind(input)),
            )]);
        };
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) && !READ_ONLY.contains(&key.as_str()) {
                errors.push(FieldError::new(
                    key.clone(),
                    format!("unknown field; a source has {}", FIELDS.join(", ")),
                ));
            }
        }
        let name = match obj.get("name") {
            Some(Value::String(s))
                if !s.trim().is_empty()
                    && s.chars().count() <= MAX_NAME
                    && !has_hidden_controls(s) =>
            {
                s.trim().to_owned()
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(FieldError::new("name", "must not be empty"));
                String::new()
            }
            Some(Value::String(s)) if has_hidden_controls(s) => {
                errors.push(FieldError::new("name", HIDDEN_CONTROLS));
                String::new()
            }
            Some(Value::String(_)) => {
                errors.push(FieldError::new(
                    "name",
                    format!("must be at most {MAX_NAME} characters"),
                ));
                String::new()
            }
            None | Some(Value::Null) => {
                errors.push(FieldError::new(
                    "name",
                    "is required: what people call this source, like \"Prometheus production\"",
                ));
                String::new()
            }
            Some(other) => {
                errors.push(FieldError::new(
                    "name",
                    format!("must be a string, got {}", kind(other)),
                ));
                String::new()
            }
        };
        let source_kind = match obj.get("kind") {
            Some(Value::String(s)) => match SourceKind::parse(s) {
                Some(k) => Some(k),
                None => {
                    errors.push(FieldError::new(
                        "kind",
                        format!("unknown kind \"{s}\"; one of {}", SourceKind::names()),
                    ));
                    None
                }
            },
            None | Some(Value::Null) => match existing {
                Some(e) => Some(e.kind),
                None => {
                    errors.push(FieldError::new(
                        "kind",
                        format!("is required: one of {}", SourceKind::names()),
                    ));
                    None
                }
            },
            Some(other) => {
                errors.push(FieldError::new(
                    "kind",
                    format!(
                        "must be a string, one of {}, got {}",
                        SourceKind::names(),
                        kind(other)
                    ),
                ));
                None
            }
        };
        if let (Some(existing), Some(k)) = (existing, source_kind) {
            if existing.kind != k {
                errors.push(FieldError::new(
                    "kind",
                    format!(
                        "cannot change from {} to {k}: the source's URL is set up in one tool; add a new source for {}",
                        existing.kind,
                        k.label()
                    ),
                ));
            }
        }
        let description = match obj.get("description") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.chars().count() <= MAX_DESCRIPTION => s.clone(),
            Some(Value::String(_)) => {
                errors.push(FieldError::new(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters"),
                ));
                String::new()
            }
            Some(other) => {
                errors.push(FieldError::new(
                    "description",
                    format!("must be a string, got {}", kind(other)),
                ));
                String::new()
            }
        };
        let enabled = match obj.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                errors.push(FieldError::new(
                    "enabled",
                    format!("must be true or false, got {}", kind(other)),
                ));
                true
            }
        };
        let team = parse_team(obj.get("team"), &mut errors);
        let settings = match source_kind {
            Some(k) => {
                let previous = existing.map(|e| &e.settings);
                match SourceSettings::parse(k, obj.get("settings"), previous) {
                    Ok(s) => Some(s),
                    Err(mut e) => {
                        errors.append(&mut e);
                        None
                    }
                }
            }
            None => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SourceSpec {
            name,
            kind: source_kind.expect("checked above"),
            description,
            enabled,
            team,
            settings: settings.expect("checked above"),
        })
    }
}

fn parse_team(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            let id = o.get("id").and_then(Value::as_str).unwrap_or_default();
            // Without a name the team is known by its id.
            let name = match o.get("name") {
                None | Some(Value::Null) => Some(id),
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => None,
            };
            let unknown: Vec<&String> = o.keys().filter(|k| *k != "id" && *k != "name").collect();
            if id.trim().is_empty() || id.chars().count() > 255 || has_hidden_controls(id) {
                errors.push(FieldError::new(
                    "team.id",
                    "is required: the id of the team this source's incidents belong to (at most 255 characters)",
                ));
                None
            } else if name.is_none_or(|n| n.chars().count() > 255 || has_hidden_controls(n)) {
                errors.push(FieldError::new(
                    "team.name",
                    format!("must be text of at most 255 characters, and {HIDDEN_CONTROLS}"),
                ));
                None
            } else if let Some(k) = unknown.first() {
                errors.push(FieldError::new(
                    format!("team.{k}"),
                    "unknown field; a team is {\"id\", \"name\"}",
                ));
                None
            } else {
                let mut team = Map::new();
                team.insert("id".into(), Value::String(id.trim().to_owned()));
                team.insert(
                    "name".into(),
                    Value::String(name.unwrap_or(id).trim().to_owned()),
                );
                Some(Value::Object(team))
            }
        }
        Some(other) => {
            errors.push(FieldError::new(
                "team",
                format!(
                    "must be an object like {{\"id\": \"…\", \"name\": \"…\"}}, got {}",
                    kind(other)
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_source_takes_defaults() {
        let spec =
            SourceSpec::parse(&json!({"name": " Prom ", "kind": "alertmanager"}), None).unwrap();
        assert_eq!(spec.name, "Prom");
        assert_eq!(spec.kind, SourceKind::Alertmanager);
        assert!(spec.enabled);
        assert_eq!(spec.team, None);
        assert!(matches!(spec.settings, SourceSettings::Alerts(_)));
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = SourceSpec::parse(
            &json!({"name": "", "kind": "nagios", "enabled": "yes", "team": {"name": "x"}, "colour": 1}),
            None,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "name", "kind", "enabled", "team.id"]);
        assert!(errors[2].message.contains("alertmanager"), "{errors:?}");
    }

    #[test]
    fn the_kind_cannot_change_and_may_be_left_out_on_update() {
        let old = SourceSpec::parse(&json!({"name": "a", "kind": "grafana"}), None).unwrap();
        let same = SourceSpec::parse(&json!({"name": "b"}), Some(&old)).unwrap();
        assert_eq!(same.kind, SourceKind::Grafana);
        let errors =
            SourceSpec::parse(&json!({"name": "b", "kind": "pagerduty"}), Some(&old)).unwrap_err();
        assert_eq!(errors[0].field, "kind");
        assert!(errors[0].message.contains("add a new source"), "{errors:?}");
    }

    #[test]
    fn names_with_direction_overrides_are_refused() {
        let errors = SourceSpec::parse(&json!({"name": "a\u{202E}b", "kind": "squadcast"}), None)
            .unwrap_err();
        assert_eq!(errors[0].field, "name");
    }

    #[test]
    fn a_receipt_never_holds_nul() {
        let r = Receipt::new(
            &SourceId::generate(),
            ReceiptOutcome::Refused,
            400,
            vec![],
            vec![],
            b"{\"a\": \0}",
        );
        assert_eq!(
            r.body, "{\"a\": \u{FFFD}}",
            "PostgreSQL's text cannot store NUL"
        );
    }

    #[test]
    fn a_receipt_cuts_its_body_on_a_character_boundary() {
        let body = "é".repeat(RECEIPT_BODY_MAX);
        let r = Receipt::new(
            &SourceId::generate(),
            ReceiptOutcome::Refused,
            413,
            vec![],
            vec![],
            body.as_bytes(),
        );
        assert!(r.truncated);
        assert!(r.body.len() <= RECEIPT_BODY_MAX && r.body.len() > RECEIPT_BODY_MAX - 2);
    }
}
