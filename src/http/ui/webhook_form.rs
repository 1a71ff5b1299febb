//! Adding and editing a webhook in Squadcast's steps: (1) details and triggers, (2) URLs
//! and headers, (3) filters, (4) payload. Every form field is named after the API's field
//! (`urls[0].method`, `filters.conditions[1].lhs`), the form becomes the API's JSON body,
//! and that goes through the same code as `POST`/`PUT /v3/extensions/event-webhooks`, so
//! rules and messages are the API's; they are shown next to their fields.

use crate::domain::ids::{OrganizationId, WebhookId};
use std::collections::BTreeMap;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use minijinja::{context, Value as Ctx};
use serde_json::{json, Value};

use super::{
    base_context, flash,
    forms::Node,
    render,
    webhook_body::{
        body_from_form, defaults, explain_lines, filter_group, filter_rows, sections_of, Section,
        ALL, LHS_CHOICES, OPS,
    },
    FormBody, Person,
};
use super::{OrPage, PageResult};
use crate::{
    domain::{directory::Kind, event_type::EventType, token::Ability, webhook::Webhook},
    filter,
    http::{api::webhooks::webhook_json, error::ApiError, AppState},
    payload::{self, presets::PRESETS},
};

/// The API's field errors by field, for the template; each also in the summary at the top.
fn errors_by_field(e: &ApiError) -> (BTreeMap<String, String>, Vec<String>) {
    match e {
        ApiError::Invalid(_, errors) => (
            errors
                .iter()
                .map(|f| {
                    // One trigger's problem is shown under the triggers as a whole.
                    let field = if f.field.starts_with("triggers[") {
                        "triggers".to_owned()
                    } else {
                        f.field.clone()
                    };
                    (field, f.message.clone())
                })
                .collect(),
            errors.iter().map(ToString::to_string).collect(),
        ),
        other => (BTreeMap::new(), vec![other.to_string()]),
    }
}

/// The services, alert sources and teams the builder's lists and the team picker offer.
async fn directory(
    state: &AppState,
    organization_id: &OrganizationId,
) -> BTreeMap<&'static str, Vec<crate::domain::directory::Entry>> {
    let mut out = BTreeMap::new();
    for kind in Kind::ALL {
        let entries = state
            .store
            .directory(organization_id, kind)
            .await
            .unwrap_or_default();
        out.insert(kind.as_str(), entries);
    }
    out
}

fn directory_ctx(entries: &BTreeMap<&'static str, Vec<crate::domain::directory::Entry>>) -> Ctx {
    let lists: BTreeMap<&str, Vec<Ctx>> = entries
        .iter()
        .map(|(kind, list)| {
            let items = list
                .iter()
                .map(|e| context! { id => &e.id, name => &e.name })
                .collect();
            (*kind, items)
        })
        .collect();
    Ctx::from(lists)
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
    EventType::by_resource()
        .into_iter()
        .map(|(title, types)| {
            let items: Vec<Ctx> = types
                .iter()
                .map(|t| {
                    context! {
                        value => t.name,
                        label => t.label,
                        checked => chosen.iter().any(|c| c == t.name),
                    }
                })
                .collect();
            let v2_only = types.iter().all(|t| t.v1_name.is_none());
            context! { resource => title, items => items, v2_only => v2_only }
        })
        .collect()
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
    // Known teams are picked by name; ids no event has named yet stay typed.
    let chosen: Vec<&str> = values["teams"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let directory = directory(state, person.caller().organization_id()).await;
    let known_teams = directory
        .get(Kind::Team.as_str())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let team_choices: Vec<Ctx> = known_teams
        .iter()
        .map(|e| context! { id => &e.id, name => &e.name, checked => chosen.contains(&e.id.as_str()) })
        .collect();
    let teams = chosen
        .iter()
        .filter(|id| !known_teams.iter().any(|e| e.id == **id))
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let mut urls = match values["urls"].as_array() {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![json!({"url": "", "method": "POST"})],
    };
    // A URL deliveries would be refused is said beside it (saved all the same).
    let policy =
        crate::dispatch::guard::NetworkPolicy::new(&state.config.delivery.allowed_networks);
    for u in &mut urls {
        if let Some(warning) = u["url"]
            .as_str()
            .and_then(|url| policy.warning_at_save(url))
        {
            u["warning"] = json!(warning);
        }
    }
    context! {
        v => Ctx::from(minijinja::value::Serde(values)),
        urls => Ctx::from(minijinja::value::Serde(&urls)),
        header => header,
        teams => teams,
        team_choices => team_choices,
        can_declare => person.caller().allows(Ability::ManageWebhooks),
        typed => super::webhook_body::TYPED,
        triggers => trigger_groups(values),
        filter_rows => Ctx::from(minijinja::value::Serde(filter_rows(&values["filters"]))),
        lhs_choices => LHS_CHOICES.iter().map(|(v, l)| context! { value => *v, label => *l }).collect::<Vec<_>>(),
        ops => OPS.iter().map(|(v, l)| context! { value => *v, label => *l }).collect::<Vec<_>>(),
        directory => directory_ctx(&directory),
        presets => PRESETS.iter().map(|p| context! { slug => p.slug, name => p.name, description => p.description }).collect::<Vec<_>>(),
        payload_kind => payload_kind,
        errors => Ctx::from(errors.0),
        summary => errors.1,
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
) -> PageResult {
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
    Ok(render(
        status,
        "webhook_form.html",
        base_context(Some(person.caller())),
        context! {
            title => title,
            nav => "webhooks",
            tab => tab,
            hook => hook.map(|h| context! { id => h.id.as_str(), name => &h.spec.name, enabled => h.spec.enabled }),
            sections => sections,
            flash => flash(query),
            can_edit => person.caller().allows(Ability::ManageWebhooks),
            ..form
        },
    ))
}

pub async fn new(State(state): State<AppState>, person: Person) -> PageResult {
    if !person.caller().allows(Ability::ManageWebhooks) {
        return Err(person.refuse("adding webhooks").into());
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
) -> PageResult {
    person.verify(&headers, &form)?;
    let tree = Node::tree(&form.0);
    let body = body_from_form(&tree, ALL, defaults());
    let created: Result<_, ApiError> =
        async { Ok(state.webhook_editor(person.caller())?.create(&body).await?) }.await;
    match created {
        Ok(hook) => {
            let created = format!("/webhooks/{}/settings?done=created", hook.id);
            Ok(super::redirect(&created).into_response())
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
        Err(e) => Err(e).or_page(person.caller()),
    }
}

async fn show_tab(
    state: AppState,
    person: Person,
    id: WebhookId,
    tab: &str,
    query: Option<String>,
) -> PageResult {
    let hook = person.webhook(&state, &id).await?;
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

async fn save_tab(
    state: AppState,
    person: Person,
    headers: HeaderMap,
    id: WebhookId,
    tab: &'static str,
    form: FormBody,
) -> PageResult {
    let hook = person
        .webhook_to_change(&state, &headers, &form, &id)
        .await?;
    let tree = Node::tree(&form.0);
    let body = body_from_form(&tree, sections_of(tab), webhook_json(&hook));
    match person.update_webhook(&state, &id, &body).await {
        Ok(_) => Ok(super::redirect(&format!("/webhooks/{id}/{tab}?done=saved")).into_response()),
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
        Err(e) => Err(e).or_page(person.caller()),
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
    Path((id, tab)): Path<(WebhookId, String)>,
    RawQuery(q): RawQuery,
) -> PageResult {
    match tab_of(&tab) {
        Some(tab) => show_tab(state, person, id, tab, q).await,
        None => Err(ApiError::NotFound(format!("page {tab}"))).or_page(person.caller()),
    }
}

/// `POST /webhooks/{id}/{tab}`: saves what that tab edits.
pub async fn save(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path((id, tab)): Path<(WebhookId, String)>,
    form: FormBody,
) -> PageResult {
    match tab_of(&tab) {
        Some(tab) => save_tab(state, person, headers, id, tab, form).await,
        None => Err(ApiError::NotFound(format!("page {tab}"))).or_page(person.caller()),
    }
}

/// The payload step's live preview (htmx): what the chosen payload sends for the sample
/// incident, or why it cannot be rendered.
pub async fn preview(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> PageResult {
    person.verify(&headers, &form)?;
    let tree = Node::tree(&form.0);
    let mut body = body_from_form(&tree, &[Section::Payload], defaults());
    // The webhook's own name, as its payloads will carry it: typed on the new-webhook
    // form, or the saved one's on its Payload tab.
    let name = [tree.text("name"), tree.text("preview_name")]
        .into_iter()
        .map(str::trim)
        .find(|n| !n.is_empty())
        .unwrap_or("Your webhook")
        .to_owned();
    body["name"] = json!(name);
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
    Ok(render(
        StatusCode::OK,
        "preview.html",
        context! {},
        context! { output => output, error => error, incident => incident_id },
    ))
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
) -> PageResult {
    person.verify(&headers, &form)?;
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
            let explanation = crate::http::api::filters::explain_off_the_workers(
                f,
                event.incident,
                event.resource.map(|r| r.value),
                team_id,
            )
            .await;
            let mut lines = Vec::new();
            explain_lines(
                &filters,
                &serde_json::to_value(&explanation).unwrap_or_default(),
                0,
                &mut lines,
            );
            // What the person picked by name is shown by name.
            let mut names = std::collections::HashMap::new();
            for kind in Kind::ALL {
                for e in state.store.directory(&org, kind).await.unwrap_or_default() {
                    names.insert((kind.as_str().to_owned(), e.id), e.name);
                }
            }
            super::webhook_body::with_names(&mut lines, &names);
            Ok((explanation.matched, lines))
        }
    };
    let ctx = match result {
        Ok((matched, lines)) => {
            context! { matched => matched, lines => Ctx::from(minijinja::value::Serde(&lines)), incident => incident_id }
        }
        Err(error) => context! { error => error },
    };
    Ok(render(StatusCode::OK, "filter_test.html", context! {}, ctx))
}
