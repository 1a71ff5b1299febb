//! `/v3/audit-logs`: who changed webhooks, users, tokens and secrets, newest first.

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use serde_json::{json, Value};

use super::ApiRoutes;

use super::paging;
use crate::{
    domain::{audit::AuditEntry, token::Ability},
    http::{auth::Caller, error::ApiError, extract::query_pairs, AppState},
    store::AuditQuery,
};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .get("/v3/audit-logs", list)
        .get("/v3/audit-logs/{id}", show)
}

pub fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "id": e.id,
        "at": e.at.to_rfc3339(),
        "actor": {"type": e.actor.kind.as_str(), "id": e.actor.id, "name": e.actor.name},
        "action": e.action,
        "object": {"type": e.object.kind, "id": e.object.id, "name": e.object.name},
        "changes": e.changes_json(),
    })
}

pub fn parse_query(query: Option<&str>) -> Result<AuditQuery, ApiError> {
    let mut q = AuditQuery {
        limit: DEFAULT_LIMIT,
        ..AuditQuery::default()
    };
    for (name, value) in query_pairs(query) {
        let text = || Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match name.as_str() {
            "actor" => q.actor = text(),
            "object" => q.object = text(),
            "action" => q.action = text(),
            "since" => q.since = Some(paging::time(&name, &value)?),
            "until" => q.until = Some(paging::time(&name, &value)?),
            "limit" => q.limit = paging::limit(&name, &value, MAX_LIMIT)?,
            "cursor" => q.before_seq = Some(paging::cursor(&name, &value)?),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {name}: use actor, object, action, since, until, limit or cursor"
                )))
            }
        }
    }
    Ok(q)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let mut q = parse_query(query.as_deref())?;
    let limit = q.limit as usize;
    q.limit += 1;
    let mut rows = state.store.list_audit(caller.organization_id(), &q).await?;
    let next_cursor = paging::next_cursor(&mut rows, limit);
    let result: Vec<Value> = rows.iter().map(|(_, e)| entry_json(e)).collect();
    Ok(Json(json!({
        "data": {"result": result, "meta": {"next_cursor": next_cursor}}
    })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let entry = state
        .store
        .audit_entry(caller.organization_id(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("audit entry {id}")))?;
    Ok(Json(json!({"data": entry_json(&entry)})))
}
