//! `/v3/api-tokens`: an organization's API tokens. Everything here needs `admin`; a token's
//! value is shown once, in the answer that creates it.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use serde_json::{json, Value};

use super::ApiRoutes;

use crate::{
    domain::{
        audit::token_created,
        text,
        token::{Ability, ApiToken, NewToken},
        FieldError, Timestamp,
    },
    http::{
        auth::Caller,
        error::ApiError,
        extract::{object_members, optional_string, JsonBody},
        AppState,
    },
};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .get("/v3/api-tokens", list)
        .post("/v3/api-tokens", create)
        .delete("/v3/api-tokens/{id}", revoke)
}

pub(super) const MAX_NAME: usize = 100;

pub fn token_json(t: &ApiToken, now: Timestamp) -> Value {
    let ts = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
    json!({
        "id": t.id,
        "name": t.name,
        "abilities": t.abilities.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "status": t.status(now),
        "created_at": t.created_at.to_rfc3339(),
        "expires_at": ts(t.expires_at),
        "last_used_at": ts(t.last_used_at),
        "revoked_at": ts(t.revoked_at),
        // The person behind it (disabling or deleting them revokes it); null for the
        // command line's and the first start's.
        "created_by": t.created_by.as_ref().map(|c| json!({"id": c.user_id, "email": c.email})),
    })
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Admin)?;
    let now = Timestamp::now();
    let tokens = state
        .store
        .list_tokens(Some(caller.organization_id()))
        .await?;
    Ok(Json(json!({
        "data": tokens.iter().map(|t| token_json(t, now)).collect::<Vec<_>>()
    })))
}

/// What a new token is given: a name, abilities, and an optional expiry in the future.
pub fn parse_new_token(
    name: Option<String>,
    abilities: Option<&Value>,
    expires_at: Option<String>,
    now: Timestamp,
) -> Result<(String, Vec<Ability>, Option<Timestamp>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = name.unwrap_or_default().trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        errors.push(FieldError::new(
            "name",
            "is required: 1–100 characters without line breaks, saying what the token is for",
        ));
    } else if text::has_hidden_controls(&name) {
        errors.push(FieldError::new("name", text::HIDDEN_CONTROLS));
    }
    let list = match abilities {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    };
    let abilities =
        Ability::parse_list(&list).map_err(|e| errors.push(FieldError::new("abilities", e)));
    let expires_at = match expires_at {
        None => Ok(None),
        Some(text) => match Timestamp::parse_rfc3339(&text) {
            Some(t) if t > now => Ok(Some(t)),
            Some(_) => Err(FieldError::new("expires_at", "must be in the future")),
            None => Err(FieldError::new(
                "expires_at",
                format!("must be an RFC 3339 time like 2027-01-31T00:00:00Z, got \"{text}\""),
            )),
        },
    }
    .map_err(|e| errors.push(e));
    match (abilities, expires_at, errors.is_empty()) {
        (Ok(abilities), Ok(expires_at), true) => Ok((name, abilities, expires_at)),
        _ => Err(errors),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Ability::Admin)?;
    let map = object_members(
        &body,
        &["name", "abilities", "expires_at"],
        &[],
        "invalid_token",
    )?;
    let mut errors = Vec::new();
    let name = optional_string(map, "name", &mut errors);
    let expires_at = optional_string(map, "expires_at", &mut errors);
    let now = Timestamp::now();
    let parsed = parse_new_token(name, map.get("abilities"), expires_at, now);
    let (name, abilities, expires_at) = match parsed {
        Ok(p) if errors.is_empty() => p,
        Ok(_) => return Err(ApiError::Invalid("invalid_token", errors)),
        Err(more) => {
            errors.extend(more);
            return Err(ApiError::Invalid("invalid_token", errors));
        }
    };
    let mut token = NewToken::generate(caller.organization_id(), &name, abilities);
    token.token.expires_at = expires_at;
    token.token.created_by = caller.token_creator();
    state
        .store
        .create_token(&token, &token_created(&token.token, &caller.actor()))
        .await?;
    let mut body = token_json(&token.token, now);
    body["token"] = Value::String(token.plaintext);
    Ok((StatusCode::CREATED, Json(json!({"data": body}))))
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Ability::Admin)?;
    state
        .store
        .revoke_token(
            Some(caller.organization_id()),
            &id,
            Timestamp::now(),
            &caller.actor(),
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("active token {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}
