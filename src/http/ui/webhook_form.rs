//! Adding and editing a webhook in Squadcast's steps: (1) details and triggers, (2) URLs
//! and headers, (3) filters, (4) payload. Every form field is named after the API's field
//! (`urls[0].method`, `filters.conditions[1].lhs`), the form becomes the API's JSON body,
//! and that goes through the same code as `POST`/`PUT /v3/extensions/event-webhooks`, so
//! rules and messages are the API's; they are shown next to their fields.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use minijinja::{context, Value as Ctx};
use serde_json::{json, Map, Value};

use super::{base_context, error_page, flash, forms::Node, render, FormBody, Person};
use crate::{
    domain::{directory::Kind, event_type::EVENT_TYPES, token::Ability, webhook::Webhook},
    filter,
    http::{
        api::webhooks::{create_webhook, existing, update_webhook, webhook_json},
        error::ApiError,
        AppState,
    },
    payload::{self, presets::PRESETS},
};

/// Which parts of a webhook a form edits: the new-webhook page has them all, each tab some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Details,
    Urls,
    Filters,
    Payload,
}

const ALL: &[Section] = &[
    Section::Details,
    Section::Urls,
    Section::Filters,
    Section::Payload,
];

/// A new webhook's starting values, as the API would show it.
fn defaults() -> Value {
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

const DIRECTORY_FIELDS: &[&str] = &["service", "alert_source", "team"];

/// One filter group of the form as the API's JSON; conditions without a field are
/// dropped (an empty row), and a group left empty disappears.
fn filter_group(node: &Node) -> Option<Value> {
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
            let pick = c.text("rhs_pick").trim();
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
fn body_from_form(tree: &Node, sections: &[Section], mut base: Value) -> Value {
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
                let teams = split_list(tree.text("teams"));
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

/// The API's field errors by field, for the template; each also in the summary at the top.
fn errors_by_field(e: &ApiError) -> (BTreeMap<String, String>, Vec<String>) {
    match e {
        ApiError::Invalid(_, errors) => (
            errors
                .iter()
                .map(|f| (f.field.clone(), f.message.clone()))
                .collect(),
            errors.iter().map(ToString::to_string).collect(),
        ),
        other => (BTreeMap::new(), vec![other.to_string()]),
    }
}

/// A filter tree flattened into rows the template draws in order: a group opens, its
/// conditions follow, the group closes. Each carries its field-name prefix.
fn filter_rows(filters: &Value) -> Vec<Value> {
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
const LHS_CHOICES: &[(&str, &str)] = &[
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

const OPS: &[(&str, &str)] = &[
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

async fn directory(state: &AppState, organization_id: &str) -> Ctx {
    let mut out = BTreeMap::new();
    for kind in Kind::ALL {
        let entries = state
            .store
            .directory(organization_id, kind)
            .await
            .unwrap_or_default();
        let items: Vec<Ctx> = entries
            .iter()
            .map(|e| context! { id => &e.id, name => &e.name })
            .collect();
        out.insert(kind.as_str(), items);
    }
    Ctx::from(out)
}

fn trigger_groups(values: &Value) -> Vec<Ctx> {
    let chosen: Vec<String> = values["triggers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| {
                    format!(
                        "{}.{}",
                        t["event_class"].as_str().unwrap_or(""),
                        t["event_type"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut groups: Vec<(String, Vec<Ctx>)> = Vec::new();
    for t in EVENT_TYPES {
        let item = context! {
            value => t.name,
            label => capitalize(t.action),
            checked => chosen.iter().any(|c| c == t.name),
        };
        match groups.iter_mut().find(|(class, _)| class == t.class) {
            Some((_, items)) => items.push(item),
            None => groups.push((t.class.to_owned(), vec![item])),
        }
    }
    groups
        .into_iter()
        .map(|(class, items)| context! { resource => capitalize(&class.replace('_', " ")), items => items })
        .collect()
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// Everything the form template needs to draw `values` with `errors`.
async fn form_context(
    state: &AppState,
    person: &Person,
    values: &Value,
    errors: (BTreeMap<String, String>, Vec<String>),
) -> Ctx {
    let header: Vec<Ctx> = values["header"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| context! { key => k, value => v.as_str().unwrap_or("") })
                .collect()
        })
        .unwrap_or_default();
    let payload_kind = match (
        values["payload_type"].as_str(),
        values["custom_payload_template_slug"].as_str(),
    ) {
        (Some("custom"), Some(slug)) if !slug.is_empty() => slug.to_owned(),
        (Some("custom"), _) => "custom".to_owned(),
        _ => "standard".to_owned(),
    };
    let teams = values["teams"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let urls = match values["urls"].as_array() {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![json!({"url": "", "method": "POST"})],
    };
    context! {
        v => Ctx::from(minijinja::value::Serde(values)),
        urls => Ctx::from(minijinja::value::Serde(&urls)),
        header => header,
        teams => teams,
        triggers => trigger_groups(values),
        filter_rows => Ctx::from(minijinja::value::Serde(filter_rows(&values["filters"]))),
        lhs_choices => LHS_CHOICES.iter().map(|(v, l)| context! { value => *v, label => *l }).collect::<Vec<_>>(),
        ops => OPS.iter().map(|(v, l)| context! { value => *v, label => *l }).collect::<Vec<_>>(),
        directory => directory(state, person.caller().organization_id()).await,
        presets => PRESETS.iter().map(|p| context! { slug => p.slug, name => p.name, description => p.description }).collect::<Vec<_>>(),
        payload_kind => payload_kind,
        errors => Ctx::from(errors.0),
        summary => errors.1,
    }
}

fn sections_of(tab: &str) -> &'static [Section] {
    match tab {
        "configure" => &[Section::Details, Section::Urls],
        "filters" => &[Section::Filters],
        "payload" => &[Section::Payload],
        _ => ALL,
    }
}

/// Draws the form: the new-webhook page, or one tab of an existing webhook.
#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    hook: Option<&Webhook>,
    tab: &str,
    values: &Value,
    errors: (BTreeMap<String, String>, Vec<String>),
    query: Option<&str>,
) -> Response {
    let sections: Vec<&str> = sections_of(tab)
        .iter()
        .map(|s| match s {
            Section::Details => "details",
            Section::Urls => "urls",
            Section::Filters => "filters",
            Section::Payload => "payload",
        })
        .collect();
    let title = match hook {
        Some(h) => h.spec.name.clone(),
        None => "Add webhook".to_owned(),
    };
    let form = form_context(state, person, values, errors).await;
    render(
        status,
        "webhook_form.html",
        base_context(Some(person.caller())),
        context! {
            title => title,
            nav => "webhooks",
            tab => tab,
            hook => hook.map(|h| context! { id => &h.id, name => &h.spec.name, enabled => h.spec.enabled }),
            sections => sections,
            flash => flash(query),
            can_edit => person.caller().allows(Ability::ManageWebhooks),
            ..form
        },
    )
}

pub async fn new(State(state): State<AppState>, person: Person) -> Response {
    if !person.caller().allows(Ability::ManageWebhooks) {
        return person.refuse("adding webhooks");
    }
    page(
        &state,
        &person,
        StatusCode::OK,
        None,
        "new",
        &defaults(),
        Default::default(),
        None,
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> Response {
    if let Err(r) = person.verify(&headers, &form) {
        return r;
    }
    let tree = Node::tree(&form.0);
    let body = body_from_form(&tree, ALL, defaults());
    match create_webhook(&state, person.caller(), &body).await {
        Ok(hook) => {
            Redirect::to(&format!("/webhooks/{}/settings?done=created", hook.id)).into_response()
        }
        Err(e @ (ApiError::Invalid(..) | ApiError::Forbidden(_))) => {
            let status = e.status();
            page(
                &state,
                &person,
                status,
                None,
                "new",
                &body,
                errors_by_field(&e),
                None,
            )
            .await
        }
        Err(e) => error_page(person.caller(), e),
    }
}

async fn show_tab(
    state: AppState,
    person: Person,
    id: String,
    tab: &str,
    query: Option<String>,
) -> Response {
    match existing(&state, person.caller(), &id).await {
        Ok(hook) => {
            let values = webhook_json(&hook);
            page(
                &state,
                &person,
                StatusCode::OK,
                Some(&hook),
                tab,
                &values,
                Default::default(),
                query.as_deref(),
            )
            .await
        }
        Err(e) => error_page(person.caller(), e),
    }
}

async fn save_tab(
    state: AppState,
    person: Person,
    headers: HeaderMap,
    id: String,
    tab: &'static str,
    form: FormBody,
) -> Response {
    if let Err(r) = person.verify(&headers, &form) {
        return r;
    }
    let hook = match existing(&state, person.caller(), &id).await {
        Ok(h) => h,
        Err(e) => return error_page(person.caller(), e),
    };
    let tree = Node::tree(&form.0);
    let body = body_from_form(&tree, sections_of(tab), webhook_json(&hook));
    match update_webhook(&state, person.caller(), &id, &body).await {
        Ok(_) => Redirect::to(&format!("/webhooks/{id}/{tab}?done=saved")).into_response(),
        Err(e @ (ApiError::Invalid(..) | ApiError::Forbidden(_))) => {
            let status = e.status();
            page(
                &state,
                &person,
                status,
                Some(&hook),
                tab,
                &body,
                errors_by_field(&e),
                None,
            )
            .await
        }
        Err(e) => error_page(person.caller(), e),
    }
}

/// The form tabs of a webhook: which sections each edits.
const TABS: &[&str] = &["configure", "filters", "payload"];

fn tab_of(tab: &str) -> Option<&'static str> {
    TABS.iter().copied().find(|t| *t == tab)
}

/// `GET /webhooks/{id}/{tab}` for the form tabs (Configure, Filters, Payload).
pub async fn show(
    State(state): State<AppState>,
    person: Person,
    Path((id, tab)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    match tab_of(&tab) {
        Some(tab) => show_tab(state, person, id, tab, q).await,
        None => error_page(person.caller(), ApiError::NotFound(format!("page {tab}"))),
    }
}

/// `POST /webhooks/{id}/{tab}`: saves what that tab edits.
pub async fn save(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path((id, tab)): Path<(String, String)>,
    form: FormBody,
) -> Response {
    match tab_of(&tab) {
        Some(tab) => save_tab(state, person, headers, id, tab, form).await,
        None => error_page(person.caller(), ApiError::NotFound(format!("page {tab}"))),
    }
}

/// The payload step's live preview (htmx): what the chosen payload sends for the sample
/// incident, or why it cannot be rendered.
pub async fn preview(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> Response {
    if let Err(r) = person.verify(&headers, &form) {
        return r;
    }
    let tree = Node::tree(&form.0);
    let mut body = body_from_form(&tree, &[Section::Payload], defaults());
    body["name"] = json!("Preview");
    body["urls"] = json!([{"url": "https://preview.invalid/", "method": "POST"}]);
    body["version"] = Value::String(match tree.text("version") {
        "v1" => "v1".to_owned(),
        _ => "v2".to_owned(),
    });
    let incident_id = tree.text("preview_incident").trim().to_owned();
    let event = if incident_id.is_empty() {
        Ok(payload::sample_event())
    } else {
        match state
            .store
            .latest_incident_event(person.caller().organization_id(), &incident_id)
            .await
        {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(format!(
                "tocsin has received no event for incident \"{incident_id}\""
            )),
            Err(e) => Err(e.to_string()),
        }
    };
    let outcome = event
        .and_then(|event| {
            crate::domain::webhook::parse_spec(&body)
                .map_err(|errors| {
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .map(|spec| (spec, event))
        })
        .and_then(|(spec, event)| {
            let hook = Webhook::new(person.caller().organization_id(), "preview", spec);
            payload::render(&hook, &event)
        })
        .map(|text| {
            serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text)
        });
    let (output, error) = match outcome {
        Ok(text) => (Some(text), None),
        Err(e) => (None, Some(e)),
    };
    render(
        StatusCode::OK,
        "preview.html",
        context! {},
        context! { output => output, error => error, incident => incident_id },
    )
}

/// "Test against an incident" on the filters tab (htmx): the filter as typed, against the
/// latest snapshot of an incident tocsin received; whether it matches and which
/// conditions held.
pub async fn test_filter(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(_id): Path<String>,
    form: FormBody,
) -> Response {
    if let Err(r) = person.verify(&headers, &form) {
        return r;
    }
    let tree = Node::tree(&form.0);
    let filters = tree
        .get("filters")
        .and_then(filter_group)
        .unwrap_or(Value::Null);
    let incident_id = tree.text("test_incident").trim().to_owned();
    let org = person.caller().organization_id().to_owned();
    let event = if incident_id.is_empty() {
        Ok(payload::sample_event())
    } else {
        match state.store.latest_incident_event(&org, &incident_id).await {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(format!(
                "tocsin has received no event for incident \"{incident_id}\""
            )),
            Err(e) => Err(e.to_string()),
        }
    };
    let parsed = event.and_then(|event| {
        filter::parse(&filters)
            .map_err(|problems| {
                problems
                    .into_iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .map(|parsed| (parsed, event))
    });
    let result = match parsed {
        Err(e) => Err(e),
        Ok((None, _)) => Ok((true, Vec::new())),
        Ok((Some(f), event)) => {
            let team_id = event.team_id().to_owned();
            let explanation =
                crate::http::api::filters::explain_off_the_workers(f, event.incident, team_id)
                    .await;
            let mut lines = Vec::new();
            explain_lines(
                &filters,
                &serde_json::to_value(&explanation).unwrap_or_default(),
                0,
                &mut lines,
            );
            Ok((explanation.matched, lines))
        }
    };
    let ctx = match result {
        Ok((matched, lines)) => {
            context! { matched => matched, lines => Ctx::from(minijinja::value::Serde(&lines)), incident => incident_id }
        }
        Err(error) => context! { error => error },
    };
    render(StatusCode::OK, "filter_test.html", context! {}, ctx)
}

/// The filter and its explanation side by side, one line per group or condition.
fn explain_lines(filter: &Value, explanation: &Value, depth: usize, out: &mut Vec<Value>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
