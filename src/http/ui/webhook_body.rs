//! The webhook form as data: which sections a form edits, the form's fields (named after
//! the API's) turned into the API's JSON body, and a stored filter drawn back as rows.
//! Pure: the handlers in `webhook_form.rs` carry these out.

use serde_json::{json, Map, Value};

use super::forms::Node;
use crate::filter;

/// Which parts of a webhook a form edits: the new-webhook page has them all, each tab some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Details,
    Urls,
    Filters,
    Payload,
}

pub(super) const ALL: &[Section] = &[
    Section::Details,
    Section::Urls,
    Section::Filters,
    Section::Payload,
];

/// A new webhook's starting values, as the API would show it.
pub(super) fn defaults() -> Value {
    json!({
        "name": "", "description": "", "version": "v2",
        "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": "", "method": "POST"}], "header": {}, "filters": null,
        "max_retry": 3, "timeout_seconds": 10, "enabled": true, "mail_ids": [],
        "teams": [], "is_all_teams_configured": true, "trigger_type": "automatic",
        "payload_type": "standard", "custom_payload": "", "custom_payload_template_slug": "",
    })
}

/// A number field as a number when it is one; otherwise as typed, so the API's message
/// names the field and the rule.
pub fn number(text: &str) -> Value {
    text.trim()
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Splits a list typed as text: commas, spaces or lines.
pub fn split_list(text: &str) -> Vec<Value> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_owned()))
        .collect()
}

pub(super) const DIRECTORY_FIELDS: &[&str] = &["service", "alert_source", "team"];

/// One filter group of the form as the API's JSON; conditions without a field are
/// dropped (an empty row), and a group left empty disappears.
pub(super) fn filter_group(node: &Node) -> Option<Value> {
    let conditions: Vec<Value> = node
        .rows("conditions")
        .into_iter()
        .filter_map(|c| {
            if c.get("conditions").is_some() {
                return filter_group(c);
            }
            let mut lhs = c.text("lhs").trim().to_owned();
            if lhs == "other" {
                lhs = c.text("lhs_other").trim().to_owned();
            }
            if lhs.is_empty() {
                return None;
            }
            let op = c.text("op").to_owned();
            // "Another id…" in the value's list: the id is typed in the text field.
            let pick = match c.text("rhs_pick").trim() {
                TYPED => "",
                pick => pick,
            };
            let text = c.text("rhs");
            let mut condition = json!({"op": op, "lhs": lhs});
            match op.as_str() {
                "exists" | "not_exists" => {}
                "in" | "not_in" => {
                    let mut items = split_list(text);
                    if DIRECTORY_FIELDS.contains(&lhs.as_str()) && !pick.is_empty() {
                        items.insert(0, Value::String(pick.to_owned()));
                    }
                    condition["rhs"] = Value::Array(items);
                }
                _ => {
                    condition["rhs"] =
                        if DIRECTORY_FIELDS.contains(&lhs.as_str()) && !pick.is_empty() {
                            Value::String(pick.to_owned())
                        } else {
                            Value::String(text.to_owned())
                        }
                }
            }
            Some(condition)
        })
        .collect();
    if conditions.is_empty() {
        return None;
    }
    let op = match node.text("op") {
        "or" => "or",
        _ => "and",
    };
    Some(json!({"op": op, "conditions": conditions}))
}

/// Overlays what the form's sections hold onto `base` (the stored webhook as the API shows
/// it, or the defaults).
pub(super) fn body_from_form(tree: &Node, sections: &[Section], mut base: Value) -> Value {
    let set = |base: &mut Value, key: &str, value: Value| {
        base[key] = value;
    };
    for section in sections {
        match section {
            Section::Details => {
                set(
                    &mut base,
                    "name",
                    Value::String(tree.text("name").to_owned()),
                );
                set(
                    &mut base,
                    "description",
                    Value::String(tree.text("description").to_owned()),
                );
                set(
                    &mut base,
                    "version",
                    Value::String(tree.text("version").to_owned()),
                );
                set(
                    &mut base,
                    "trigger_type",
                    Value::String(tree.text("trigger_type").to_owned()),
                );
                let triggers: Vec<Value> = tree
                    .texts("triggers")
                    .into_iter()
                    .map(|t| match t.split_once('.') {
                        Some((class, action)) => {
                            json!({"event_class": class, "event_type": action})
                        }
                        None => json!({"event_class": t, "event_type": ""}),
                    })
                    .collect();
                set(&mut base, "triggers", Value::Array(triggers));
                // Teams picked from the known ones, then any other ids typed.
                let mut teams: Vec<Value> = tree
                    .texts("team_ids")
                    .into_iter()
                    .map(|id| Value::String(id.to_owned()))
                    .collect();
                for other in split_list(tree.text("teams")) {
                    if !teams.contains(&other) {
                        teams.push(other);
                    }
                }
                set(
                    &mut base,
                    "is_all_teams_configured",
                    Value::Bool(teams.is_empty()),
                );
                set(&mut base, "teams", Value::Array(teams));
            }
            Section::Urls => {
                let urls: Vec<Value> = tree
                    .rows("urls")
                    .into_iter()
                    .filter(|row| !row.text("url").trim().is_empty())
                    .map(|row| json!({"url": row.text("url").trim(), "method": row.text("method")}))
                    .collect();
                set(&mut base, "urls", Value::Array(urls));
                let header: Map<String, Value> = tree
                    .rows("header")
                    .into_iter()
                    .filter(|row| !row.text("key").trim().is_empty())
                    .map(|row| {
                        (
                            row.text("key").trim().to_owned(),
                            Value::String(row.text("value").to_owned()),
                        )
                    })
                    .collect();
                set(&mut base, "header", Value::Object(header));
            }
            Section::Filters => {
                let filters = tree
                    .get("filters")
                    .and_then(filter_group)
                    .unwrap_or(Value::Null);
                set(&mut base, "filters", filters);
            }
            Section::Payload => {
                let kind = tree.text("payload_kind");
                let (payload_type, slug) = match kind {
                    "custom" => ("custom", ""),
                    "standard" | "" => ("standard", ""),
                    preset => ("custom", preset),
                };
                set(
                    &mut base,
                    "payload_type",
                    Value::String(payload_type.to_owned()),
                );
                set(
                    &mut base,
                    "custom_payload_template_slug",
                    Value::String(slug.to_owned()),
                );
                let source = if kind == "custom" {
                    tree.text("custom_payload")
                } else {
                    ""
                };
                set(
                    &mut base,
                    "custom_payload",
                    Value::String(source.to_owned()),
                );
            }
        }
    }
    base
}

/// A filter tree flattened into rows the template draws in order: a group opens, its
/// conditions follow, the group closes. Each carries its field-name prefix.
pub(super) fn filter_rows(filters: &Value) -> Vec<Value> {
    fn walk(group: &Value, path: &str, depth: usize, out: &mut Vec<Value>) {
        let conditions = group["conditions"].as_array().cloned().unwrap_or_default();
        out.push(
            json!({"kind": "open", "path": path, "op": group["op"].as_str().unwrap_or("and"),
                        "depth": depth, "next": conditions.len()}),
        );
        for (i, c) in conditions.iter().enumerate() {
            let child = format!("{path}.conditions[{i}]");
            if c.get("conditions").is_some() {
                walk(c, &child, depth + 1, out);
            } else {
                let lhs = c["lhs"].as_str().unwrap_or("");
                let known = LHS_CHOICES.iter().any(|(v, _)| *v == lhs);
                let rhs = match &c["rhs"] {
                    Value::Array(items) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.push(
                    json!({"kind": "condition", "path": child, "depth": depth + 1,
                    "lhs": if known || lhs.is_empty() { lhs } else { "other" },
                    "lhs_other": if known { "" } else { lhs },
                    "op": c["op"].as_str().unwrap_or("is"), "rhs": rhs,
                    "pick": DIRECTORY_FIELDS.contains(&lhs)}),
                );
            }
        }
        out.push(json!({"kind": "close", "path": path, "depth": depth}));
    }
    let mut out = Vec::new();
    let root = if filters.is_object() {
        filters.clone()
    } else {
        json!({"op": "and", "conditions": []})
    };
    walk(&root, "filters", 0, &mut out);
    out
}

/// The fields the builder offers, Service and Alert source first (the seed's drop-downs).
pub(super) const LHS_CHOICES: &[(&str, &str)] = &[
    ("service", "Service"),
    ("alert_source", "Alert source"),
    ("team", "Team"),
    ("status", "Status"),
    ("priority", "Priority"),
    ("message", "Message"),
    ("description", "Description"),
    ("assigned_to.type", "Assigned to (type)"),
    ("other", "Other field…"),
];

pub(super) const OPS: &[(&str, &str)] = &[
    ("is", "is"),
    ("is_not", "is not"),
    ("contains", "contains"),
    ("not_contains", "does not contain"),
    ("starts_with", "starts with"),
    ("matches", "matches (regex)"),
    ("in", "is one of"),
    ("not_in", "is none of"),
    ("exists", "exists"),
    ("not_exists", "does not exist"),
];

pub(super) fn sections_of(tab: &str) -> &'static [Section] {
    match tab {
        "configure" => &[Section::Details, Section::Urls],
        "filters" => &[Section::Filters],
        "payload" => &[Section::Payload],
        _ => ALL,
    }
}

/// The filter and its explanation side by side, one line per group or condition.
pub(super) fn explain_lines(
    filter: &Value,
    explanation: &Value,
    depth: usize,
    out: &mut Vec<Value>,
) {
    let matched = explanation["matched"].as_bool().unwrap_or(false);
    if let Some(conditions) = filter["conditions"].as_array() {
        out.push(json!({"depth": depth, "matched": matched, "group": true, "op": filter["op"]}));
        let parts = explanation["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (f, e) in conditions.iter().zip(parts.iter()) {
            explain_lines(f, e, depth + 1, out);
        }
    } else {
        let cut = |v: &Value| -> Value {
            match v {
                Value::String(s) if s.chars().count() > filter::SHOWN_VALUE => {
                    Value::String(s.chars().take(filter::SHOWN_VALUE).collect::<String>() + "…")
                }
                Value::Array(items) => Value::String(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                other => other.clone(),
            }
        };
        out.push(json!({"depth": depth, "matched": matched, "group": false,
            "lhs": filter["lhs"], "op": filter["op"], "rhs": cut(&filter["rhs"]),
            "value": cut(&explanation["value"])}));
    }
}

/// The value-list choice that says "the id is typed in the text field instead".
pub(super) const TYPED: &str = "__typed__";

/// The explanation's lines with the services, alert sources and teams a person picked by
/// name shown by name: `API (svc-api)` where the directory knows `svc-api` as API. `names`
/// maps (field, id) to the name.
pub(super) fn with_names(
    lines: &mut [Value],
    names: &std::collections::HashMap<(String, String), String>,
) {
    for line in lines.iter_mut() {
        let Some(field) = line["lhs"].as_str().map(str::to_owned) else {
            continue;
        };
        if !["service", "alert_source", "team"].contains(&field.as_str()) {
            continue;
        }
        let name = |id: &str| match names.get(&(field.clone(), id.to_owned())) {
            Some(name) if name != id => format!("{name} ({id})"),
            _ => id.to_owned(),
        };
        for key in ["rhs", "value"] {
            if let Some(text) = line[key].as_str().map(str::to_owned) {
                let shown: Vec<String> = text.split(", ").map(name).collect();
                line[key] = Value::String(shown.join(", "));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ids_are_shown_by_name() {
        let names: std::collections::HashMap<(String, String), String> = [
            (
                ("service".to_owned(), "svc-api".to_owned()),
                "API".to_owned(),
            ),
            (
                ("alert_source".to_owned(), "as-prom".to_owned()),
                "Prometheus".to_owned(),
            ),
        ]
        .into();
        let mut lines = vec![
            json!({"lhs": "service", "rhs": "svc-api", "value": "svc-db"}),
            json!({"lhs": "alert_source", "rhs": "as-prom, as-dd", "value": "as-prom"}),
            json!({"lhs": "message", "rhs": "svc-api", "value": "x"}),
        ];
        with_names(&mut lines, &names);
        assert_eq!(lines[0]["rhs"], "API (svc-api)");
        assert_eq!(lines[0]["value"], "svc-db", "an unknown id stays an id");
        assert_eq!(lines[1]["rhs"], "Prometheus (as-prom), as-dd");
        assert_eq!(lines[1]["value"], "Prometheus (as-prom)");
        assert_eq!(lines[2]["rhs"], "svc-api", "other fields are not names");
    }

    fn tree(list: &[(&str, &str)]) -> Node {
        let pairs: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Node::tree(&pairs)
    }

    #[test]
    fn a_filled_form_is_the_api_body() {
        let t = tree(&[
            ("name", "Ops"),
            ("description", ""),
            ("version", "v2"),
            ("trigger_type", "automatic"),
            ("triggers", "incident.triggered"),
            ("triggers", "incident.resolved"),
            ("urls[0].url", "https://a.example/h"),
            ("urls[0].method", "POST"),
            ("urls[2].url", "https://b.example/h"),
            ("urls[2].method", "PUT"),
            ("urls[3].url", "  "),
            ("urls[3].method", "POST"),
            ("header[0].key", "X-Team"),
            ("header[0].value", "sre"),
            ("header[1].key", ""),
            ("header[1].value", "dropped"),
            ("filters.op", "or"),
            ("filters.conditions[0].lhs", "service"),
            ("filters.conditions[0].op", "is"),
            ("filters.conditions[0].rhs_pick", "svc-1"),
            ("filters.conditions[0].rhs", ""),
            ("filters.conditions[1].op", "and"),
            ("filters.conditions[1].conditions[0].lhs", "other"),
            (
                "filters.conditions[1].conditions[0].lhs_other",
                "tags.severity",
            ),
            ("filters.conditions[1].conditions[0].op", "in"),
            ("filters.conditions[1].conditions[0].rhs", "critical, high"),
            ("filters.conditions[4].lhs", ""),
            ("payload_kind", "slack"),
            ("custom_payload", "ignored"),
        ]);
        let body = body_from_form(&t, ALL, defaults());
        assert_eq!(
            body["triggers"],
            json!([{"event_class": "incident", "event_type": "triggered"}, {"event_class": "incident", "event_type": "resolved"}])
        );
        assert_eq!(
            body["urls"],
            json!([{"url": "https://a.example/h", "method": "POST"}, {"url": "https://b.example/h", "method": "PUT"}])
        );
        assert_eq!(body["header"], json!({"X-Team": "sre"}));
        assert_eq!(
            body["filters"],
            json!({"op": "or", "conditions": [
            {"op": "is", "lhs": "service", "rhs": "svc-1"},
            {"op": "and", "conditions": [{"op": "in", "lhs": "tags.severity", "rhs": ["critical", "high"]}]}]})
        );
        assert_eq!(body["payload_type"], "custom");
        assert_eq!(body["custom_payload_template_slug"], "slack");
        assert_eq!(body["custom_payload"], "");
        assert_eq!(body["is_all_teams_configured"], true);
        // What the API accepts.
        let spec = crate::domain::webhook::parse_spec(&body).expect("valid");
        assert_eq!(spec.urls.len(), 2);
    }

    #[test]
    fn filter_rows_round_trip_through_the_form() {
        let filters = json!({"op": "or", "conditions": [
            {"op": "is", "lhs": "service", "rhs": "svc-1"},
            {"op": "and", "conditions": [{"op": "in", "lhs": "tags.severity", "rhs": ["critical", "high"]}]}]});
        let rows = filter_rows(&filters);
        let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["open", "condition", "open", "condition", "close", "close"]
        );
        assert_eq!(rows[3]["path"], "filters.conditions[1].conditions[0]");
        assert_eq!(rows[3]["lhs"], "other");
        assert_eq!(rows[3]["lhs_other"], "tags.severity");
        assert_eq!(rows[3]["rhs"], "critical, high");
        // Drawn back as form fields, the rows give the same filter.
        let mut pairs = Vec::new();
        for r in &rows {
            let path = r["path"].as_str().unwrap();
            match r["kind"].as_str().unwrap() {
                "open" => pairs.push((format!("{path}.op"), r["op"].as_str().unwrap().to_owned())),
                "condition" => {
                    for k in ["lhs", "lhs_other", "op", "rhs"] {
                        pairs.push((format!("{path}.{k}"), r[k].as_str().unwrap().to_owned()));
                    }
                }
                _ => {}
            }
        }
        let t = Node::tree(&pairs);
        assert_eq!(t.get("filters").and_then(filter_group), Some(filters));
    }
}
