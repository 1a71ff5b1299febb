//! Each kind's settings (`settings` in the API), parsed with every problem named by its
//! field path.

use serde_json::{json, Map, Value};

use super::{expression, SourceKind};
use crate::domain::{field_error::json_kind as kind, FieldError};

/// What the API shows in place of a stored secret; sent back, it keeps the stored value.
pub const MASK: &str = "********";
pub const MAX_LABEL: usize = 200;
pub const MAX_SECRET: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum SourceSettings {
    Squadcast,
    /// Alertmanager and Grafana.
    Alerts(AlertSettings),
    PagerDuty {
        /// The webhook subscription's signing secret; when set, every payload must carry
        /// a valid `X-PagerDuty-Signature`.
        signing_secret: Option<String>,
    },
    Opsgenie,
    Generic(GenericMapping),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentPer {
    /// One incident per alert group (`groupKey`).
    Group,
    /// One incident per alert (`fingerprint`).
    Alert,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    pub incident_per: IncidentPer,
    /// The label naming the service; `job` when it is absent.
    pub service_label: String,
    /// The label naming the team; the source's team when it is absent.
    pub team_label: String,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            incident_per: IncidentPer::Group,
            service_label: "service".to_owned(),
            team_label: "team".to_owned(),
        }
    }
}

/// The generic source's expressions over `payload` (see [`expression`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericMapping {
    pub incident_id: String,
    /// Gives `triggered`, `acknowledged`, `reassigned` or `resolved` (also `firing`,
    /// `alerting`, `open`, `ack`, `ok`, `closed`, or an `incident.*` event type).
    pub status: String,
    pub message: String,
    pub description: Option<String>,
    pub service: Option<String>,
    pub alert_source: Option<String>,
    pub team: Option<String>,
    /// The notification's own id: one seen before is not a new event.
    pub dedupe_key: Option<String>,
}

impl SourceSettings {
    pub fn parse(
        source_kind: SourceKind,
        value: Option<&Value>,
        previous: Option<&SourceSettings>,
    ) -> Result<Self, Vec<FieldError>> {
        let empty = Map::new();
        let obj = match value {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(other) => {
                return Err(vec![FieldError::new(
                    "settings",
                    format!("must be an object, got {}", kind(other)),
                )])
            }
        };
        let mut errors = Vec::new();
        let allowed: &[&str] = match source_kind {
            SourceKind::Squadcast | SourceKind::Opsgenie => &[],
            SourceKind::Alertmanager | SourceKind::Grafana => {
                &["incident_per", "service_label", "team_label"]
            }
            SourceKind::PagerDuty => &["signing_secret"],
            SourceKind::Generic => &[
                "incident_id",
                "status",
                "message",
                "description",
                "service",
                "alert_source",
                "team",
                "dedupe_key",
            ],
        };
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                let known = if allowed.is_empty() {
                    format!("{} sources have no settings", source_kind.label())
                } else {
                    format!(
                        "{} sources have {}",
                        source_kind.label(),
                        allowed.join(", ")
                    )
                };
                errors.push(FieldError::new(
                    format!("settings.{key}"),
                    format!("unknown setting; {known}"),
                ));
            }
        }
        let settings = match source_kind {
            SourceKind::Squadcast => SourceSettings::Squadcast,
            SourceKind::Opsgenie => SourceSettings::Opsgenie,
            SourceKind::Alertmanager | SourceKind::Grafana => {
                let defaults = AlertSettings::default();
                let incident_per = match obj.get("incident_per") {
                    None | Some(Value::Null) => IncidentPer::Group,
                    Some(Value::String(s)) if s == "group" => IncidentPer::Group,
                    Some(Value::String(s)) if s == "alert" => IncidentPer::Alert,
                    Some(other) => {
                        errors.push(FieldError::new(
                            "settings.incident_per",
                            format!("must be \"group\" (one incident per alert group, by groupKey) or \"alert\" (one per alert, by fingerprint), got {other}"),
                        ));
                        IncidentPer::Group
                    }
                };
                SourceSettings::Alerts(AlertSettings {
                    incident_per,
                    service_label: label(obj, "service_label", defaults.service_label, &mut errors),
                    team_label: label(obj, "team_label", defaults.team_label, &mut errors),
                })
            }
            SourceKind::PagerDuty => {
                let kept = match previous {
                    Some(SourceSettings::PagerDuty { signing_secret }) => signing_secret.clone(),
                    _ => None,
                };
                let signing_secret = match obj.get("signing_secret") {
                    // Left out (a PUT that names no settings): kept, never dropped by
                    // omission; null or empty text removes it.
                    None => kept,
                    Some(Value::Null) => None,
                    Some(Value::String(s)) if s.is_empty() => None,
                    Some(Value::String(s)) if s == MASK => {
                        if kept.is_none() {
                            errors.push(FieldError::new(
                                "settings.signing_secret",
                                "is the mask of a secret this source does not have: enter the secret from PagerDuty's webhook subscription",
                            ));
                        }
                        kept
                    }
                    Some(Value::String(s))
                        if s.chars().count() <= MAX_SECRET && !s.chars().any(char::is_control) =>
                    {
                        Some(s.clone())
                    }
                    Some(other) => {
                        errors.push(FieldError::new(
                            "settings.signing_secret",
                            format!("must be the subscription's secret as text (at most {MAX_SECRET} characters), got {}", kind(other)),
                        ));
                        None
                    }
                };
                SourceSettings::PagerDuty { signing_secret }
            }
            SourceKind::Generic => {
                let mut field = |name: &str, required: bool| -> Option<String> {
                    match obj.get(name) {
                        None | Some(Value::Null) => {
                            if required {
                                errors.push(FieldError::new(
                                    format!("settings.{name}"),
                                    format!("is required: an expression over the received JSON, like {}", example(name)),
                                ));
                            }
                            None
                        }
                        Some(Value::String(s)) if s.trim().is_empty() && !required => None,
                        Some(Value::String(s)) => match expression::check(s) {
                            Ok(()) => Some(s.trim().to_owned()),
                            Err(why) => {
                                errors.push(FieldError::new(format!("settings.{name}"), why));
                                None
                            }
                        },
                        Some(other) => {
                            errors.push(FieldError::new(
                                format!("settings.{name}"),
                                format!(
                                    "must be an expression as text, like {}, got {}",
                                    example(name),
                                    kind(other)
                                ),
                            ));
                            None
                        }
                    }
                };
                let incident_id = field("incident_id", true);
                let status = field("status", true);
                let message = field("message", true);
                let description = field("description", false);
                let service = field("service", false);
                let alert_source = field("alert_source", false);
                let team = field("team", false);
                let dedupe_key = field("dedupe_key", false);
                SourceSettings::Generic(GenericMapping {
                    incident_id: incident_id.unwrap_or_default(),
                    status: status.unwrap_or_default(),
                    message: message.unwrap_or_default(),
                    description,
                    service,
                    alert_source,
                    team,
                    dedupe_key,
                })
            }
        };
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }

    /// The settings as the API shows them: secrets masked.
    pub fn to_json(&self) -> Value {
        match self {
            SourceSettings::Squadcast | SourceSettings::Opsgenie => json!({}),
            SourceSettings::Alerts(a) => json!({
                "incident_per": match a.incident_per { IncidentPer::Group => "group", IncidentPer::Alert => "alert" },
                "service_label": a.service_label,
                "team_label": a.team_label,
            }),
            SourceSettings::PagerDuty { signing_secret } => json!({
                "signing_secret": signing_secret.as_ref().map(|_| MASK),
            }),
            SourceSettings::Generic(g) => {
                let mut out = Map::new();
                out.insert("incident_id".into(), json!(g.incident_id));
                out.insert("status".into(), json!(g.status));
                out.insert("message".into(), json!(g.message));
                for (name, value) in [
                    ("description", &g.description),
                    ("service", &g.service),
                    ("alert_source", &g.alert_source),
                    ("team", &g.team),
                    ("dedupe_key", &g.dedupe_key),
                ] {
                    out.insert(name.into(), json!(value));
                }
                Value::Object(out)
            }
        }
    }

    /// The settings as stored: like [`Self::to_json`], with the secret in clear (the store
    /// seals it on the way in).
    pub fn to_stored_json(&self) -> Value {
        let mut out = self.to_json();
        if let SourceSettings::PagerDuty { signing_secret } = self {
            out["signing_secret"] = json!(signing_secret);
        }
        out
    }

    pub fn signing_secret(&self) -> Option<&str> {
        match self {
            SourceSettings::PagerDuty { signing_secret } => signing_secret.as_deref(),
            _ => None,
        }
    }

    pub fn with_signing_secret(&self, secret: Option<String>) -> Self {
        match self {
            SourceSettings::PagerDuty { .. } => SourceSettings::PagerDuty {
                signing_secret: secret,
            },
            other => other.clone(),
        }
    }
}

fn example(name: &str) -> &'static str {
    match name {
        "incident_id" => "payload.alert.id",
        "status" => "\"resolved\" if payload.state == \"ok\" else \"triggered\"",
        "message" => "payload.title",
        "service" => "payload.service",
        _ => "payload.field",
    }
}

fn label(
    obj: &Map<String, Value>,
    name: &str,
    default: String,
    errors: &mut Vec<FieldError>,
) -> String {
    match obj.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::String(s)) if s.trim().is_empty() => default,
        Some(Value::String(s))
            if s.chars().count() <= MAX_LABEL && !s.chars().any(char::is_control) =>
        {
            s.trim().to_owned()
        }
        Some(other) => {
            errors.push(FieldError::new(
                format!("settings.{name}"),
                format!(
                    "must be a label name (at most {MAX_LABEL} characters), got {}",
                    kind(other)
                ),
            ));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_settings_default_and_refuse_unknown_values() {
        let s = SourceSettings::parse(SourceKind::Grafana, None, None).unwrap();
        assert_eq!(s, SourceSettings::Alerts(AlertSettings::default()));
        let e = SourceSettings::parse(
            SourceKind::Alertmanager,
            Some(&json!({"incident_per": "host", "colour": 1})),
            None,
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["settings.colour", "settings.incident_per"]);
    }

    #[test]
    fn a_masked_secret_sent_back_keeps_the_stored_one() {
        let first = SourceSettings::parse(
            SourceKind::PagerDuty,
            Some(&json!({"signing_secret": "s3cret"})),
            None,
        )
        .unwrap();
        assert_eq!(first.to_json()["signing_secret"], MASK);
        let again =
            SourceSettings::parse(SourceKind::PagerDuty, Some(&first.to_json()), Some(&first))
                .unwrap();
        assert_eq!(again.signing_secret(), Some("s3cret"));
        let err =
            SourceSettings::parse(SourceKind::PagerDuty, Some(&first.to_json()), None).unwrap_err();
        assert_eq!(err[0].field, "settings.signing_secret");
        let left_out = SourceSettings::parse(SourceKind::PagerDuty, None, Some(&first)).unwrap();
        assert_eq!(
            left_out.signing_secret(),
            Some("s3cret"),
            "never dropped by omission"
        );
        let emptied = SourceSettings::parse(
            SourceKind::PagerDuty,
            Some(&json!({"signing_secret": ""})),
            Some(&first),
        )
        .unwrap();
        assert_eq!(emptied.signing_secret(), None, "removed when asked");
    }

    #[test]
    fn generic_mapping_needs_its_three_expressions_and_checks_each() {
        let e = SourceSettings::parse(
            SourceKind::Generic,
            Some(&json!({"message": "payload.", "service": 3})),
            None,
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "settings.incident_id",
                "settings.status",
                "settings.message",
                "settings.service"
            ]
        );
    }
}
