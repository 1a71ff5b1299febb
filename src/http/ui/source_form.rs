//! Adding a source (choose the tool, then its form) and a source's Setup tab: the URL, the
//! steps and snippet for its tool, its settings, a new token, deletion. The form's field
//! names are the API's (`team.id`, `settings.incident_per`), the form becomes the API's
//! JSON body and goes through `sources::manage` like `POST`/`PUT /v3/sources`, so rules and
//! messages are the API's; they are shown next to their fields. The token is shown once:
//! on the page answering the create or the rotation, where the snippet is filled with it.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use minijinja::{context, value::Serde, Value as Ctx};
use serde_json::{json, Map, Value};

use super::{
    base_context, flash,
    forms::Node,
    render,
    source_setup::{blurb, expression_fields, setup, TOKEN_PLACEHOLDER},
    FormBody, PageError, Person,
};
use super::{OrPage, PageResult};
use crate::{
    domain::{
        ids::SourceId,
        source::{Source, SourceKind, SourceSettings},
        token::Ability,
    },
    http::{error::ApiError, extract::query_pairs, AppState},
    sources::{
        manage::{self, SourceError},
        view::{ingest_url, source_json},
    },
};

type Errors = (BTreeMap<String, String>, Vec<String>);

fn errors_of(e: &[crate::domain::FieldError]) -> Errors {
    (
        e.iter()
            .map(|f| (f.field.clone(), f.message.clone()))
            .collect(),
        e.iter().map(ToString::to_string).collect(),
    )
}

/// The form as the API's body. `kind` only when creating: it cannot change.
pub(super) fn body_from_form(form: &FormBody, creating: bool) -> Value {
    let tree = Node::tree(&form.0);
    let team = tree.get("team");
    let team_id = team.map_or("", |t| t.text("id")).trim();
    let team_name = team.map_or("", |t| t.text("name")).trim();
    let team = match (team_id.is_empty(), team_name.is_empty()) {
        (true, true) => Value::Null,
        (_, true) => json!({ "id": team_id }),
        _ => json!({ "id": team_id, "name": team_name }),
    };
    let settings: Map<String, Value> = match tree.get("settings") {
        Some(Node::Object(members)) => members
            .iter()
            .filter_map(|(k, n)| match n {
                Node::Text(t) => Some((k.clone(), Value::String(t.clone()))),
                _ => None,
            })
            .collect(),
        _ => Map::new(),
    };
    let mut body = json!({
        "name": tree.text("name"),
        "description": tree.text("description"),
        "enabled": creating || tree.text("enabled") == "true",
        "team": team,
        "settings": settings,
    });
    if creating {
        body["kind"] = Value::String(tree.text("kind").to_owned());
    }
    body
}

/// What `source_tabs.html` shows of a source.
pub(super) fn heading(s: &Source) -> Ctx {
    context! { id => s.id.as_str(), name => &s.spec.name, enabled => s.spec.enabled, kind_label => s.spec.kind.label() }
}

/// What a page answering a change shows once: the new token, and why it is shown.
struct Shown<'a> {
    token: &'a str,
    flash: &'static str,
}

/// Draws the form: for a new source of `kind`, or the Setup tab of `source`.
#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    kind: SourceKind,
    source: Option<&Source>,
    values: &Value,
    errors: Errors,
    shown: Option<Shown<'_>>,
    query: Option<&str>,
) -> PageResult {
    let public_url = state.config.public_url();
    let url = source.map(|s| ingest_url(&public_url, &s.id));
    let token = shown.as_ref().map(|s| s.token);
    let connect = url
        .as_deref()
        .map(|url| setup(kind, url, token.unwrap_or(TOKEN_PLACEHOLDER)));
    let title = match source {
        Some(s) => s.spec.name.clone(),
        None => format!("Connect {}", kind.label()),
    };
    Ok(render(
        status,
        "source_form.html",
        base_context(Some(person.caller())),
        context! {
            title => title,
            nav => "sources",
            tab => "setup",
            flash => shown.as_ref().map(|s| s.flash).or_else(|| flash(query)),
            source => source.map(heading),
            kind => kind.as_str(),
            kind_label => kind.label(),
            url => url,
            token => token,
            setup => connect,
            v => Ctx::from(Serde(values)),
            expressions => expression_fields(&values["settings"], &errors.0),
            errors => Ctx::from(errors.0),
            summary => errors.1,
            can_edit => person.caller().allows(Ability::ManageWebhooks),
        },
    ))
}

/// A new source's values before anything is typed.
fn defaults(kind: SourceKind) -> Value {
    let settings = SourceSettings::parse(kind, None, None)
        .map(|s| s.to_json())
        .unwrap_or_else(|_| json!({}));
    json!({"name": "", "description": "", "team": null, "enabled": true, "settings": settings})
}

/// `/sources/new`: the tools to choose from; `?kind=…`: that tool's form.
pub async fn new(
    State(state): State<AppState>,
    person: Person,
    RawQuery(q): RawQuery,
) -> PageResult {
    if !person.caller().allows(Ability::ManageWebhooks) {
        return Err(person.refuse("adding sources").into());
    }
    let chosen = query_pairs(q.as_deref())
        .into_iter()
        .find(|(k, _)| k == "kind")
        .and_then(|(_, v)| SourceKind::parse(&v));
    match chosen {
        Some(kind) => {
            page(
                &state,
                &person,
                StatusCode::OK,
                kind,
                None,
                &defaults(kind),
                Default::default(),
                None,
                None,
            )
            .await
        }
        None => Ok(render(
            StatusCode::OK,
            "source_kinds.html",
            base_context(Some(person.caller())),
            context! {
                title => "Connect a source",
                nav => "sources",
                kinds => SourceKind::ALL.iter().map(|k| context! { kind => k.as_str(), label => k.label(), blurb => blurb(*k) }).collect::<Vec<_>>(),
            },
        )),
    }
}

pub async fn create(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::ManageWebhooks, "adding sources")?;
    let caller = person.caller();
    let body = body_from_form(&form, true);
    match manage::create(
        &state.store,
        caller.organization_id(),
        &caller.actor(),
        &body,
    )
    .await
    {
        // The token is shown on the source's page this once; a reload adds nothing.
        Ok(created) => Ok(shown_once(
            &state,
            &person,
            &created.source.id,
            &created.token,
            "added",
        )),
        Err(SourceError::Invalid(errors)) => match SourceKind::parse(form.get("kind")) {
            Some(kind) => {
                page(
                    &state,
                    &person,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    kind,
                    None,
                    &body,
                    errors_of(&errors),
                    None,
                    None,
                )
                .await
            }
            None => Err(ApiError::Invalid("invalid_source", errors)).or_page(caller),
        },
        Err(e) => Err(e).or_page(caller),
    }
}

/// The person's organization's source `id`, or the page that says it is not there.
pub async fn find(state: &AppState, person: &Person, id: &SourceId) -> Result<Source, PageError> {
    manage::find(&state.store, person.caller().organization_id(), id)
        .await
        .or_page(person.caller())
}

/// A change to source `id`: the CSRF token and the role checked, then the source found.
async fn to_change(
    state: &AppState,
    person: &Person,
    headers: &HeaderMap,
    form: &FormBody,
    id: &SourceId,
) -> Result<Source, PageError> {
    person.permit(headers, form, Ability::ManageWebhooks, "changing sources")?;
    find(state, person, id).await
}

/// `GET /sources/{id}`: the Setup tab.
/// To the source's page, which shows its new `token` this once (see `once.rs`).
fn shown_once(
    state: &AppState,
    person: &Person,
    id: &SourceId,
    token: &str,
    why: &str,
) -> Response {
    super::once::redirect(
        state,
        person.caller(),
        &format!("/sources/{id}"),
        "source-token",
        serde_json::json!({"source": id.as_str(), "token": token, "why": why}),
    )
}

pub async fn show(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<SourceId>,
    RawQuery(q): RawQuery,
) -> PageResult {
    let source = find(&state, &person, &id).await?;
    let values = source_json(&source, &state.config.public_url(), None);
    let once = super::once::take(&state, &headers, person.caller(), "source-token")
        .filter(|v| v["source"] == id.as_str());
    let shown = once.as_ref().map(|v| Shown {
        token: v["token"].as_str().unwrap_or_default(),
        flash: if v["why"] == "rotated" {
            "Token rotated: the old one no longer works."
        } else {
            "Source added."
        },
    });
    let had = shown.is_some();
    let drawn = page(
        &state,
        &person,
        StatusCode::OK,
        source.spec.kind,
        Some(&source),
        &values,
        Default::default(),
        shown,
        q.as_deref(),
    )
    .await?;
    Ok(super::once::finish(&state, drawn, had))
}

/// The Setup tab again, with `errors` (the form's fields kept as typed in `values`).
async fn refused(
    state: &AppState,
    person: &Person,
    source: &Source,
    values: &Value,
    errors: Errors,
) -> PageResult {
    page(
        state,
        person,
        StatusCode::UNPROCESSABLE_ENTITY,
        source.spec.kind,
        Some(source),
        values,
        errors,
        None,
        None,
    )
    .await
}

pub async fn save(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<SourceId>,
    form: FormBody,
) -> PageResult {
    let source = to_change(&state, &person, &headers, &form, &id).await?;
    let caller = person.caller();
    let body = body_from_form(&form, false);
    match manage::update(
        &state.store,
        caller.organization_id(),
        &caller.actor(),
        &id,
        &body,
    )
    .await
    {
        Ok(_) => Ok(super::redirect(&format!("/sources/{id}?done=saved")).into_response()),
        Err(SourceError::Invalid(errors)) => {
            refused(&state, &person, &source, &body, errors_of(&errors)).await
        }
        Err(e) => Err(e).or_page(caller),
    }
}

pub async fn rotate(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<SourceId>,
    form: FormBody,
) -> PageResult {
    let source = to_change(&state, &person, &headers, &form, &id).await?;
    let values = source_json(&source, &state.config.public_url(), None);
    if form.get("confirm") != "yes" {
        let message = "Tick the box to confirm: the tool is refused until it has the new token.";
        let errors = (
            [("rotate".to_owned(), message.to_owned())].into(),
            Vec::new(),
        );
        return refused(&state, &person, &source, &values, errors).await;
    }
    let caller = person.caller();
    let rotated =
        manage::rotate_token(&state.store, caller.organization_id(), &caller.actor(), &id)
            .await
            .or_page(caller)?;
    Ok(shown_once(
        &state,
        &person,
        &rotated.source.id,
        &rotated.token,
        "rotated",
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<SourceId>,
    form: FormBody,
) -> PageResult {
    let source = to_change(&state, &person, &headers, &form, &id).await?;
    if form.get("confirm_name").trim() != source.spec.name.trim() {
        let values = source_json(&source, &state.config.public_url(), None);
        let message = format!(
            "Type the source's name, {}, to delete it.",
            source.spec.name
        );
        let errors = ([("confirm_name".to_owned(), message)].into(), Vec::new());
        return refused(&state, &person, &source, &values, errors).await;
    }
    let caller = person.caller();
    manage::delete(&state.store, caller.organization_id(), &caller.actor(), &id)
        .await
        .or_page(caller)?;
    Ok(super::redirect("/sources?done=source-deleted").into_response())
}
