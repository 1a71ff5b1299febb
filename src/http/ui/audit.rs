//! `/audit`: who changed what, newest first, with the changed fields.

use axum::{
    extract::{RawQuery, State},
    http::StatusCode,
};
use minijinja::{context, Value as Ctx};
use serde_json::Value;

use super::{base_context, render, short_time as ts, Person};
use super::{OrPage, PageResult};
use crate::http::{
    api::{audit::parse_query, paging},
    AppState,
};

pub async fn show(
    State(state): State<AppState>,
    person: Person,
    RawQuery(query): RawQuery,
) -> PageResult {
    // Empty filter fields from the form mean "any".
    let cleaned: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            crate::http::extract::query_pairs(query.as_deref())
                .into_iter()
                .filter(|(_, v)| !v.trim().is_empty()),
        )
        .finish();
    let caller = person.caller();
    let mut q = parse_query(Some(&cleaned)).or_page(caller)?;
    let limit = q.limit as usize;
    q.limit += 1;
    let mut rows = state
        .store
        .list_audit(caller.organization_id(), &q)
        .await
        .or_page(caller)?;
    let next = paging::next_cursor(&mut rows, limit).map(|c| {
        let mut pairs: Vec<(String, String)> = crate::http::extract::query_pairs(Some(&cleaned))
            .into_iter()
            .filter(|(k, _)| k != "cursor")
            .collect();
        pairs.push(("cursor".into(), c));
        format!(
            "/audit?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        )
    });
    let entries: Vec<Ctx> = rows
        .iter()
        .map(|(_, e)| {
            let changes: Vec<Ctx> = e.changes.iter().map(|c| context! {
                field => &c.field, before => short(&c.before), after => short(&c.after),
            }).collect();
            context! {
                id => &e.id, at => ts(Some(e.at)), actor => &e.actor.name, actor_kind => e.actor.kind.as_str(),
                action => &e.action, object_kind => e.object.kind, object_id => &e.object.id,
                object_name => &e.object.name, changes => changes,
            }
        })
        .collect();
    let f = |k: &str| {
        crate::http::extract::query_pairs(Some(&cleaned))
            .into_iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    Ok(render(
        StatusCode::OK,
        "audit.html",
        base_context(Some(person.caller())),
        context! {
            title => "Audit log", nav => "audit", entries => entries, next => next,
            f_actor => f("actor"), f_object => f("object"), f_action => f("action"),
        },
    ))
}

/// A changed value as text, cut to a length a table cell can hold.
fn short(v: &Value) -> String {
    let text = match v {
        Value::Null => return "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 200 {
        text.chars().take(200).collect::<String>() + "…"
    } else {
        text
    }
}
