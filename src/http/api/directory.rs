//! `/v3/services`, `/v3/alert-sources`, `/v3/teams`: what tocsin has learnt from events, for
//! the filter builder's drop-downs. `PUT …/{id}` declares one before any event names it.

use axum::{
    extract::{Path, State},
    Json,
};
use serde_json::{json, Value};

use super::ApiRoutes;

use crate::{
    domain::{
        directory::{Entry, Kind},
        token::Ability,
        Timestamp,
    },
    http::{
        auth::Caller,
        error::ApiError,
        extract::{object_members, optional_string, JsonBody},
        AppState,
    },
};

const PATHS: [(&str, Kind); 3] = [
    ("/v3/services", Kind::Service),
    ("/v3/alert-sources", Kind::AlertSource),
    ("/v3/teams", Kind::Team),
];

pub fn routes() -> ApiRoutes {
    let mut router = ApiRoutes::new();
    for (path, kind) in PATHS {
        router = router
            .get(path, move |state: State<AppState>, caller: Caller| {
                list(state, caller, kind)
            })
            .put(
                &format!("{path}/{{id}}"),
                move |state: State<AppState>, caller: Caller, id: Path<String>, body: JsonBody| {
                    declare(state, caller, id, body, kind)
                },
            );
    }
    router
}

pub fn entry_json(e: &Entry) -> Value {
    json!({"id": e.id, "name": e.name, "last_seen": e.last_seen.map(|t| t.to_rfc3339())})
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    kind: Kind,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let entries = state
        .store
        .directory(caller.organization_id(), kind)
        .await?;
    Ok(Json(
        json!({"data": entries.iter().map(entry_json).collect::<Vec<_>>()}),
    ))
}

async fn declare(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
    kind: Kind,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::ManageWebhooks)?;
    let map = object_members(&body, &["name"], &["id", "last_seen"], "invalid_directory")?;
    let mut errors = Vec::new();
    let name = optional_string(map, "name", &mut errors).unwrap_or_default();
    if !errors.is_empty() {
        return Err(ApiError::Invalid("invalid_directory", errors));
    }
    let entry = crate::domain::directory::declared(kind, &id, &name)
        .map_err(|errors| ApiError::Invalid("invalid_directory", errors))?;
    state
        .store
        .declare_directory(caller.organization_id(), &entry, Timestamp::now())
        .await?;
    Ok(Json(json!({"data": entry_json(&entry)})))
}
