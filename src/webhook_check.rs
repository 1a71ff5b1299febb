//! Whether a webhook's settings are valid, in one place: its fields
//! (`domain::webhook::parse_spec`), its filter, and that a custom payload renders to JSON
//! for a sample incident. The API, the pages and the CLI save only what passes here; the
//! catalog caches and matches what was saved.

use serde_json::Value;

use crate::{
    domain::{
        webhook::{parse_spec, PayloadType, WebhookSpec},
        FieldError,
    },
    filter::{self, Filter},
    payload::{self, presets, template},
};

/// A webhook's settings that passed every check, with the filter they hold parsed.
#[derive(Debug, Clone)]
pub struct Checked {
    pub spec: WebhookSpec,
    pub filter: Option<Filter>,
}

/// The whole check of a webhook body; every problem found is reported, each naming its
/// field.
pub fn check(body: &Value) -> Result<Checked, Vec<FieldError>> {
    check_change(body, None)
}

/// The same for a body replacing a webhook whose filters were `stored`: a filter saved
/// under earlier rules (a condition on an empty value) may stay as it is — the webhook must
/// remain savable and switchable — but a changed one meets today's rules.
pub fn check_change(body: &Value, stored: Option<&Value>) -> Result<Checked, Vec<FieldError>> {
    let spec = parse_spec(body)?;
    let kept = stored.is_some() && spec.filters.as_ref() == stored;
    let filter = check_spec(&spec, kept)?;
    Ok(Checked { spec, filter })
}

/// Checks what `parse_spec` cannot: the filter (under the rules it was saved with when
/// `kept`), and that a custom payload renders to JSON for a sample incident. Returns the
/// parsed filter.
pub fn check_spec(spec: &WebhookSpec, kept: bool) -> Result<Option<Filter>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let parse = if kept {
        filter::parse_stored
    } else {
        filter::parse
    };
    let parsed = match &spec.filters {
        Some(value) => parse(value).unwrap_or_else(|problems| {
            errors.extend(
                problems
                    .into_iter()
                    .map(|p| FieldError::new(p.path, p.message)),
            );
            None
        }),
        None => None,
    };
    if spec.payload_type == PayloadType::Custom {
        match (&spec.custom_payload, &spec.custom_payload_template_slug) {
            (None, Some(slug)) if presets::preset(slug).is_none() => errors.push(FieldError::new(
                "custom_payload_template_slug",
                format!(
                    "\"{slug}\" is not a preset; use one of {} or give custom_payload",
                    presets::PRESETS
                        .iter()
                        .map(|p| p.slug)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            _ => {
                let source = payload::custom_source(spec).unwrap_or_default();
                let context = template::context(&payload::sample_event(), "wh_sample", &spec.name);
                if let Err(e) = template::render(&source, &context) {
                    errors.push(FieldError::new(
                        "custom_payload",
                        format!("{e} (rendered against a sample incident)"),
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_reports_filter_and_template_problems_by_field() {
        let spec = parse_spec(&json!({
            "name": "w", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://e.example/h"}], "is_all_teams_configured": true,
            "filters": {"op": "and", "conditions": [{"op": "near", "lhs": "service", "rhs": "x"}]},
            "payload_type": "custom", "custom_payload": "{\"a\": {{ incident.message }"
        }))
        .unwrap();
        let fields: Vec<String> = check_spec(&spec, false)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["filters.conditions[0].op", "custom_payload"]);
        let preset = parse_spec(&json!({
            "name": "w", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://e.example/h"}], "is_all_teams_configured": true,
            "payload_type": "custom", "custom_payload_template_slug": "pagerduty"
        }))
        .unwrap();
        assert_eq!(
            check_spec(&preset, false).unwrap_err()[0].field,
            "custom_payload_template_slug"
        );
    }

    #[test]
    fn a_valid_body_comes_back_with_its_filter_parsed() {
        let checked = check(&json!({
            "name": "w", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://e.example/h"}], "is_all_teams_configured": true,
            "filters": {"op": "and", "conditions": [{"op": "is", "lhs": "service", "rhs": "x"}]}
        }))
        .unwrap();
        assert!(checked.filter.is_some());
        assert_eq!(checked.spec.name, "w");
        let errors = check(&json!({"name": ""})).unwrap_err();
        assert!(errors.iter().any(|e| e.field == "name"), "{errors:?}");
    }
}
