//! `/sources`: where alerting and incident tools post, each with its URL, what it received
//! today and its last error at a glance; the enabled switch; a source's Receipts tab, each
//! receipt expandable to what it became and the body received. Adding and the Setup tab
//! are in `source_form.rs`.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use minijinja::{context, value::Serde, Value as Ctx};
use serde_json::{json, Value};

use super::{
    base_context, flash, render,
    source_form::{find, heading},
    FormBody, Person,
};
use super::{OrPage, PageResult};
use crate::{
    domain::{ids::SourceId, source::RECEIPTS_KEPT, token::Ability, Timestamp},
    http::AppState,
    sources::{
        manage,
        view::{receipt_json, source_json},
    },
};

pub async fn list(
    State(state): State<AppState>,
    person: Person,
    RawQuery(query): RawQuery,
) -> PageResult {
    let org = person.caller().organization_id();
    let sources = state
        .store
        .list_sources(org)
        .await
        .or_page(person.caller())?;
    let activity = state
        .store
        .source_activity(org, Timestamp::now())
        .await
        .or_page(person.caller())?;
    let public_url = state.config.public_url();
    let rows: Vec<Value> = sources
        .iter()
        .map(|s| source_json(s, &public_url, activity.get(&s.id)))
        .collect();
    Ok(render(
        StatusCode::OK,
        "sources.html",
        base_context(Some(person.caller())),
        context! {
            title => "Sources",
            nav => "sources",
            flash => flash(query.as_deref()),
            rows => Ctx::from(Serde(rows)),
            can_edit => person.caller().allows(Ability::ManageWebhooks),
        },
    ))
}

/// The list's enabled switch: the source goes back through the update with only `enabled`
/// changed. A disabled source takes nothing (its tool is answered 401).
pub async fn set_enabled(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<SourceId>,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::ManageWebhooks, "changing sources")?;
    let source = find(&state, &person, &id).await?;
    let caller = person.caller();
    let mut body = source_json(&source, &state.config.public_url(), None);
    body["enabled"] = json!(form.get("enabled") == "true");
    manage::update(
        &state.store,
        caller.organization_id(),
        &caller.actor(),
        &id,
        &body,
    )
    .await
    .or_page(caller)?;
    Ok(super::redirect("/sources").into_response())
}

/// `GET /sources/{id}/receipts`: what the source received, newest first.
pub async fn receipts(
    State(state): State<AppState>,
    person: Person,
    Path(id): Path<SourceId>,
) -> PageResult {
    let source = find(&state, &person, &id).await?;
    let receipts = state
        .store
        .receipts(&id, RECEIPTS_KEPT as u32)
        .await
        .or_page(person.caller())?;
    let rows: Vec<Value> = receipts.iter().map(receipt_json).collect();
    Ok(render(
        StatusCode::OK,
        "source_receipts.html",
        base_context(Some(person.caller())),
        context! {
            title => format!("{} · Receipts", source.spec.name),
            nav => "sources",
            tab => "receipts",
            source => heading(&source),
            rows => Ctx::from(Serde(rows)),
            kept => RECEIPTS_KEPT,
        },
    ))
}

/// One receipt opened (htmx): every line of what it became, and the body received.
pub async fn receipt(
    State(state): State<AppState>,
    person: Person,
    Path((id, receipt_id)): Path<(SourceId, String)>,
) -> PageResult {
    find(&state, &person, &id).await?;
    let receipts = state
        .store
        .receipts(&id, RECEIPTS_KEPT as u32)
        .await
        .or_page(person.caller())?;
    let Some(r) = receipts.iter().find(|r| r.id == receipt_id) else {
        return Err(crate::http::error::ApiError::NotFound(format!(
            "receipt {receipt_id} (only the newest {RECEIPTS_KEPT} are kept)"
        )))
        .or_page(person.caller());
    };
    // JSON as it would be read; a body that is not JSON (or was cut) as received.
    let body = serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| r.body.clone());
    Ok(render(
        StatusCode::OK,
        "source_receipt.html",
        context! {},
        context! { r => Ctx::from(Serde(receipt_json(r))), body => body },
    ))
}
