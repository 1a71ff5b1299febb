//! JSON → [`Filter`], refusing what cannot be evaluated, with the JSON path of each problem.

use serde_json::{json, Value};

use super::{Field, Filter, Test};

const MAX_DEPTH: usize = 5;
const MAX_CONDITIONS: usize = 100;
/// Incident fields a condition may start from (Squadcast's incident object).
const INCIDENT_ROOTS: &[&str] = &[
    "id",
    "message",
    "description",
    "url",
    "alert_source",
    "service",
    "status",
    "priority",
    "created_at",
    "assigned_to",
    "tags",
    "event_payload",
    "timeline",
    "event_count",
    "owner",
    "manually_created_by",
    "request_id",
    "analytics",
];

const OPERATORS: &str =
    "is, is_not, in, not_in, contains, not_contains, starts_with, matches, exists, not_exists";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// e.g. `filters.conditions[1].rhs`
    pub path: String,
    pub message: String,
}

/// Parses a webhook's `filters` as given to be saved or tried: [`parse_stored`]'s rules,
/// and no condition on an empty value — `service is ""` never holds, so inside an "and"
/// group the webhook silently never fired (the builder saved one when "Choose…" was left).
pub fn parse(value: &Value) -> Result<Option<Filter>, Vec<FilterError>> {
    let mut empty = Vec::new();
    empty_values(value, "filters", &mut empty);
    match parse_stored(value) {
        Ok(filter) if empty.is_empty() => Ok(filter),
        Ok(_) => Err(empty),
        Err(mut errors) => {
            let new: Vec<FilterError> = empty
                .into_iter()
                .filter(|e| !errors.iter().any(|o| o.path == e.path))
                .collect();
            errors.extend(new);
            Err(errors)
        }
    }
}

/// Conditions under `value` (a group at `path`) that compare with an empty value.
fn empty_values(value: &Value, path: &str, errors: &mut Vec<FilterError>) {
    let Some(items) = value.get("conditions").and_then(Value::as_array) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}.conditions[{i}]");
        if item.get("conditions").is_some() {
            empty_values(item, &item_path, errors);
            continue;
        }
        let blank = |v: &Value| v.as_str().is_some_and(|s| s.trim().is_empty());
        let rhs = item.get("rhs");
        let empty = match item.get("op").and_then(Value::as_str) {
            Some("is" | "is_not" | "contains" | "not_contains" | "starts_with" | "matches") => {
                rhs.is_some_and(blank)
            }
            Some("in" | "not_in") => rhs
                .and_then(Value::as_array)
                .is_some_and(|list| list.is_empty() || list.iter().any(blank)),
            _ => false,
        };
        if empty {
            error(
                errors,
                &format!("{item_path}.rhs"),
                "must not be empty: a condition on an empty value never holds (or always does); choose a value, or use exists / not_exists",
            );
        }
    }
}

/// Parses a webhook's `filters` as stored (saved under earlier rules, so an empty value
/// still parses and keeps meaning what it meant). `null`, `{}` and a group without
/// conditions match everything and parse to `None`.
pub fn parse_stored(value: &Value) -> Result<Option<Filter>, Vec<FilterError>> {
    if value.is_null() || value.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let mut count = 0;
    let filter = group(value, "filters", 1, &mut count, &mut errors);
    if count > MAX_CONDITIONS {
        errors.push(FilterError {
            path: "filters".into(),
            message: format!("has {count} conditions; at most {MAX_CONDITIONS} are allowed"),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(filter.filter(|f| !matches!(f, Filter::Group { conditions, .. } if conditions.is_empty())))
}

/// The filters [`parse`] takes, as a JSON Schema for the API document: `null`, `{}`, or a
/// group of conditions and groups, five deep. Where the rules go further than a schema can
/// (at most 100 conditions in all, `matches` takes a valid regular expression) it states
/// a plain subset (`matches` with a plain word).
pub fn json_schema() -> Value {
    let roots = INCIDENT_ROOTS.join("|");
    let lhs = json!({
        "type": "string",
        "description": "team, service, alert_source, resource.<path>, or a path into the incident",
        "pattern": format!("^(team|service|alert_source|resource(\\.[^.]+)+|({roots})(\\.[^.]+)*)$")
    });
    let text = json!({"type": "string", "pattern": "\\S"});
    let condition = |ops: &[&str], rhs: Value| {
        let mut properties = json!({"op": {"enum": ops}, "lhs": lhs});
        if !rhs.is_null() {
            properties["rhs"] = rhs;
        }
        let required: &[&str] = if properties.get("rhs").is_some() {
            &["op", "lhs", "rhs"]
        } else {
            &["op", "lhs"]
        };
        json!({"type": "object", "required": required, "additionalProperties": false, "properties": properties})
    };
    let conditions = [
        condition(
            &["is", "is_not", "contains", "not_contains", "starts_with"],
            text.clone(),
        ),
        condition(
            &["in", "not_in"],
            json!({"type": "array", "minItems": 1, "items": text}),
        ),
        condition(
            &["matches"],
            json!({"type": "string", "pattern": "^[A-Za-z0-9]+$"}),
        ),
        condition(&["exists", "not_exists"], Value::Null),
    ];
    let group = |items: Value| {
        json!({
            "type": "object", "required": ["op", "conditions"], "additionalProperties": false,
            "properties": {
                "op": {"enum": ["and", "or"]},
                "conditions": {"type": "array", "maxItems": MAX_CONDITIONS, "items": items}
            }
        })
    };
    // Groups nest MAX_DEPTH deep: the innermost holds conditions only.
    let mut nested = group(json!({"anyOf": conditions}));
    for _ in 1..MAX_DEPTH {
        let mut either = conditions.to_vec();
        either.push(nested);
        nested = group(json!({"anyOf": either}));
    }
    json!({"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}, nested]})
}

fn error(errors: &mut Vec<FilterError>, path: &str, message: impl Into<String>) {
    errors.push(FilterError {
        path: path.to_owned(),
        message: message.into(),
    });
}

fn group(
    value: &Value,
    path: &str,
    depth: usize,
    count: &mut usize,
    errors: &mut Vec<FilterError>,
) -> Option<Filter> {
    let Some(obj) = value.as_object() else {
        error(
            errors,
            path,
            "must be a group like {\"op\": \"and\", \"conditions\": […]}",
        );
        return None;
    };
    if depth > MAX_DEPTH {
        error(
            errors,
            path,
            format!("nests groups deeper than {MAX_DEPTH} levels"),
        );
        return None;
    }
    let all = match obj.get("op").and_then(Value::as_str) {
        Some("and") => true,
        Some("or") => false,
        _ => {
            error(
                errors,
                &format!("{path}.op"),
                "a group's op must be \"and\" or \"or\"",
            );
            return None;
        }
    };
    let Some(items) = obj.get("conditions").and_then(Value::as_array) else {
        error(
            errors,
            &format!("{path}.conditions"),
            "must be an array of conditions or groups",
        );
        return None;
    };
    for key in obj.keys().filter(|k| *k != "op" && *k != "conditions") {
        error(
            errors,
            &format!("{path}.{key}"),
            "unknown field; a group has op and conditions",
        );
    }
    let mut conditions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        *count += 1;
        let item_path = format!("{path}.conditions[{i}]");
        let is_group = item.get("conditions").is_some();
        let parsed = if is_group {
            group(item, &item_path, depth + 1, count, errors)
        } else {
            condition(item, &item_path, errors)
        };
        conditions.extend(parsed);
    }
    Some(Filter::Group { all, conditions })
}

fn condition(value: &Value, path: &str, errors: &mut Vec<FilterError>) -> Option<Filter> {
    let Some(obj) = value.as_object() else {
        error(errors, path, "must be a condition like {\"op\": \"is\", \"lhs\": \"service\", \"rhs\": \"…\"} or a group");
        return None;
    };
    for key in obj
        .keys()
        .filter(|k| !["op", "lhs", "rhs"].contains(&k.as_str()))
    {
        error(
            errors,
            &format!("{path}.{key}"),
            "unknown field; a condition has op, lhs and rhs",
        );
    }
    let field = match obj.get("lhs").and_then(Value::as_str) {
        Some(lhs) => field(lhs)
            .map_err(|m| error(errors, &format!("{path}.lhs"), m))
            .ok(),
        None => {
            error(
                errors,
                &format!("{path}.lhs"),
                "is required: the field to test, like service or tags.severity",
            );
            None
        }
    };
    let rhs = obj.get("rhs");
    let rhs_path = format!("{path}.rhs");
    let text = |errors: &mut Vec<FilterError>| match rhs {
        Some(Value::String(s)) => Some(s.clone()),
        _ => {
            error(errors, &rhs_path, "must be a string");
            None
        }
    };
    let test = match obj.get("op").and_then(Value::as_str) {
        Some("is") => text(errors).map(Test::Is),
        Some("is_not") => text(errors).map(Test::IsNot),
        Some("contains") => text(errors).map(Test::Contains),
        Some("not_contains") => text(errors).map(Test::NotContains),
        Some("starts_with") => text(errors).map(Test::StartsWith),
        Some(op @ ("in" | "not_in")) => {
            let list = rhs.and_then(Value::as_array).and_then(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            });
            match list {
                Some(list) if op == "in" => Some(Test::In(list)),
                Some(list) => Some(Test::NotIn(list)),
                None => {
                    error(errors, &rhs_path, "must be an array of strings");
                    None
                }
            }
        }
        Some("matches") => {
            let pattern = text(errors)?;
            match super::regexes::compiled(&pattern) {
                Ok(re) => Some(Test::Matches(re)),
                Err(e) => {
                    error(
                        errors,
                        &rhs_path,
                        format!("is not a valid regular expression: {e}"),
                    );
                    None
                }
            }
        }
        Some(op @ ("exists" | "not_exists")) => {
            if rhs.is_some_and(|v| !v.is_null()) {
                error(
                    errors,
                    &rhs_path,
                    format!("must be absent: {op} takes no value"),
                );
            }
            Some(if op == "exists" {
                Test::Exists
            } else {
                Test::NotExists
            })
        }
        Some(other) => {
            error(
                errors,
                &format!("{path}.op"),
                format!("unknown operator \"{other}\"; use one of {OPERATORS}"),
            );
            None
        }
        None => {
            error(
                errors,
                &format!("{path}.op"),
                format!("is required: one of {OPERATORS}"),
            );
            None
        }
    };
    Some(Filter::Condition {
        field: field?,
        test: test?,
    })
}

/// `service` → `service.id`, `tags.x` → `tags.x.value`, `team` → the event's team.
fn field(lhs: &str) -> Result<Field, String> {
    let parts: Vec<String> = lhs.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("\"{lhs}\" is not a field path like service.slug"));
    }
    match parts.as_slice() {
        [only] if only == "team" => Ok(Field::Team),
        [root, rest @ ..] if root == "resource" && !rest.is_empty() => {
            Ok(Field::Resource(rest.to_vec()))
        }
        [only] if only == "service" || only == "alert_source" => {
            Ok(Field::Incident(vec![only.clone(), "id".into()]))
        }
        [root, ..] if INCIDENT_ROOTS.contains(&root.as_str()) => Ok(Field::Incident(parts)),
        [root, ..] => Err(format!(
            "\"{root}\" is not part of an incident; use team, service, alert_source, resource.<path> (what a note, task, … event is about) or a path into the incident ({})",
            INCIDENT_ROOTS.join(", ")
        )),
        [] => Err("is empty".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(value: Value) -> Vec<String> {
        parse(&value)
            .unwrap_err()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn empty_filters_match_everything() {
        assert!(parse(&Value::Null).unwrap().is_none());
        assert!(parse(&json!({})).unwrap().is_none());
        assert!(parse(&json!({"op": "and", "conditions": []}))
            .unwrap()
            .is_none());
    }

    #[test]
    fn conditions_on_empty_values_are_refused_when_saved_and_kept_when_stored() {
        let filters = json!({"op": "and", "conditions": [
            {"op": "is", "lhs": "service", "rhs": ""},
            {"op": "or", "conditions": [{"op": "in", "lhs": "status", "rhs": []},
                                         {"op": "contains", "lhs": "message", "rhs": "  "}]},
            {"op": "exists", "lhs": "priority"},
            {"op": "is", "lhs": "service", "rhs": "api"}
        ]});
        let errors = parse(&filters).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "filters.conditions[0].rhs",
                "filters.conditions[1].conditions[0].rhs",
                "filters.conditions[1].conditions[1].rhs"
            ]
        );
        assert!(errors[0].message.contains("must not be empty"));
        assert!(
            parse_stored(&filters).unwrap().is_some(),
            "a stored one still loads"
        );
    }

    #[test]
    fn errors_name_the_json_path_of_the_condition() {
        let nested = json!({"op": "and", "conditions": [
            {"op": "is", "lhs": "service", "rhs": "a"},
            {"op": "or", "conditions": [
                {"op": "resembles", "lhs": "status", "rhs": "x"},
                {"op": "in", "lhs": "status", "rhs": "triggered"},
                {"op": "matches", "lhs": "message", "rhs": "(unclosed"},
                {"op": "is", "lhs": "weather", "rhs": "rain"},
                {"op": "exists", "lhs": "priority", "rhs": "P1"}
            ]}
        ]});
        assert_eq!(
            paths(nested),
            [
                "filters.conditions[1].conditions[0].op",
                "filters.conditions[1].conditions[1].rhs",
                "filters.conditions[1].conditions[2].rhs",
                "filters.conditions[1].conditions[3].lhs",
                "filters.conditions[1].conditions[4].rhs",
            ]
        );
        assert_eq!(
            paths(json!({"op": "xor", "conditions": []})),
            ["filters.op"]
        );
        assert_eq!(
            paths(json!({"op": "and", "conditions": [{"op": "is", "lhs": "status", "rhs": 3}]})),
            ["filters.conditions[0].rhs"]
        );
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut deep = json!({"op": "and", "conditions": [{"op": "exists", "lhs": "status"}]});
        for _ in 0..5 {
            deep = json!({"op": "and", "conditions": [deep]});
        }
        let errors = parse(&deep).unwrap_err();
        assert!(errors[0].message.contains("deeper than 5"), "{errors:?}");
        let five_deep = {
            let mut f = json!({"op": "and", "conditions": [{"op": "exists", "lhs": "status"}]});
            for _ in 0..4 {
                f = json!({"op": "or", "conditions": [f]});
            }
            f
        };
        assert!(parse(&five_deep).is_ok());
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"op": "exists", "lhs": "status"}))
            .collect();
        let errors = parse(&json!({"op": "or", "conditions": many})).unwrap_err();
        assert_eq!(errors[0].path, "filters");
    }

    #[test]
    fn shorthand_fields_mean_ids_and_tag_values() {
        assert_eq!(
            field("service").unwrap(),
            Field::Incident(vec!["service".into(), "id".into()])
        );
        assert_eq!(
            field("alert_source.short_name").unwrap(),
            Field::Incident(vec!["alert_source".into(), "short_name".into()])
        );
        assert_eq!(field("team").unwrap(), Field::Team);
        assert!(field("weather").is_err());
        assert!(field("service..id").is_err());
    }
}
