//! `/v3/users`: the people of an organization, as Squadcast's API names them. Reading
//! needs `read`; every change needs `admin`, and only owners change owners.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use serde_json::{json, Value};
use std::time::Duration;

use super::ApiRoutes;

use crate::{
    accounts::{self, AccountError, NewUser, UserChange},
    domain::{
        token::Ability,
        user::{Manager, Role, User},
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
        .get("/v3/users", list)
        .post("/v3/users", create)
        .get("/v3/users/roles", roles)
        .get("/v3/users/{id}", show)
        .put("/v3/users/{id}", update)
        .delete("/v3/users/{id}", remove)
        .post("/v3/users/{id}/reset-password", reset_password)
        .post("/v3/users/{id}/unlock", unlock)
}

/// A user as the API shows them; `locked` is how long failed logins still lock them out.
pub fn user_json(u: &User, locked: Option<Duration>) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role.as_str(),
        "status": u.status(),
        "disabled": u.disabled,
        "organization_id": u.organization_id,
        "created_at": u.created_at.to_rfc3339(),
        "updated_at": u.updated_at.to_rfc3339(),
        "last_login_at": u.last_login_at.map(|t| t.to_rfc3339()),
        "login_locked_until": locked.map(|wait| Timestamp::now().plus(wait).to_rfc3339()),
    })
}

/// One user's JSON, with whether failed logins lock them out now.
async fn one_user_json(state: &AppState, user: &User) -> Result<Value, ApiError> {
    let locked = accounts::lockouts(state.store.as_ref(), std::slice::from_ref(user)).await?;
    Ok(user_json(user, locked.get(&user.id).copied()))
}

/// Who is managing, for the owners rule.
pub fn manager(caller: &Caller) -> Manager {
    match caller.user() {
        Some(user) => Manager::Person(user.role),
        None => Manager::Token,
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(errors) => ApiError::Invalid("invalid_user", errors),
            AccountError::Forbidden(m) => ApiError::Forbidden(m),
            AccountError::NotFound(id) => ApiError::NotFound(format!("user {id}")),
            e @ AccountError::DuplicateEmail(_) => ApiError::Conflict(e.to_string()),
            e @ AccountError::LastOwner => ApiError::Conflict(e.to_string()),
            e @ AccountError::Link(_) => ApiError::BadRequest(e.to_string()),
            AccountError::Store(e) => ApiError::Internal(e.into()),
        }
    }
}

pub(super) const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "organization_id",
    "created_at",
    "updated_at",
    "last_login_at",
    "login_locked_until",
];

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let users = state.store.list_users(caller.organization_id()).await?;
    let locked = accounts::lockouts(state.store.as_ref(), &users).await?;
    let data: Vec<Value> = users
        .iter()
        .map(|u| user_json(u, locked.get(&u.id).copied()))
        .collect();
    Ok(Json(json!({"data": data})))
}

async fn roles(caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let roles: Vec<Value> = Role::ALL
        .iter()
        .map(|r| {
            json!({
                "slug": r.as_str(),
                "name": r.title(),
                "description": r.description(),
                "abilities": r.abilities().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"data": roles})))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Ability::Admin)?;
    let map = object_members(&body, &["email", "name", "role"], &[], "invalid_user")?;
    let mut errors = Vec::new();
    let email = optional_string(map, "email", &mut errors).unwrap_or_default();
    let name = optional_string(map, "name", &mut errors).unwrap_or_default();
    let role = optional_string(map, "role", &mut errors).unwrap_or_else(|| "member".to_owned());
    if !errors.is_empty() {
        return Err(ApiError::Invalid("invalid_user", errors));
    }
    let input = NewUser {
        email,
        name,
        role,
        password: None,
    };
    let (user, code) = accounts::create_user(
        state.store.as_ref(),
        caller.organization_id(),
        input,
        manager(&caller),
        &caller.actor(),
    )
    .await?;
    // Failures may predate the account: someone tried the address before it existed.
    let mut body = one_user_json(&state, &user).await?;
    body["setup_url"] = code.map_or(Value::Null, |c| {
        Value::String(accounts::setup_url(&state.config.public_url(), &c))
    });
    Ok((StatusCode::CREATED, Json(json!({"data": body}))))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let user = state
        .store
        .user(caller.organization_id(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {id}")))?;
    Ok(Json(json!({"data": one_user_json(&state, &user).await?})))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Admin)?;
    let map = object_members(
        &body,
        &["name", "role", "disabled", "email"],
        READ_ONLY,
        "invalid_user",
    )?;
    let mut errors = Vec::new();
    let change = UserChange {
        name: optional_string(map, "name", &mut errors),
        role: optional_string(map, "role", &mut errors),
        disabled: match map.get("disabled") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push(FieldError::new("disabled", "must be true or false"));
                None
            }
        },
    };
    // The email is the login: it is sent back on GET → edit → PUT, but not changed here.
    if let Some(email) = optional_string(map, "email", &mut errors) {
        let current = state.store.user(caller.organization_id(), &id).await?;
        if current.is_some_and(|u| !u.email.eq_ignore_ascii_case(email.trim())) {
            // Not a mistake in the body but a clash with the stored person.
            return Err(ApiError::Conflict(
                "email: cannot be changed: create a user with the new address and delete this one"
                    .into(),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid("invalid_user", errors));
    }
    let user = accounts::update_user(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        change,
        manager(&caller),
        &caller.actor(),
    )
    .await?;
    Ok(Json(json!({"data": one_user_json(&state, &user).await?})))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Ability::Admin)?;
    accounts::delete_user(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        manager(&caller),
        &caller.actor(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the user's password and sessions; the answer carries their new setup link.
async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Admin)?;
    let (user, code) = accounts::reset_password(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        manager(&caller),
        &caller.actor(),
    )
    .await?;
    let mut body = one_user_json(&state, &user).await?;
    body["setup_url"] = Value::String(accounts::setup_url(&state.config.public_url(), &code));
    Ok(Json(json!({"data": body})))
}

/// Lets a person whom failed logins locked out try again at once.
async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Admin)?;
    let user = accounts::unlock_login(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        manager(&caller),
        &caller.actor(),
    )
    .await?;
    // Still locked if an address they tried from is, by a guesser's tries at other emails.
    Ok(Json(json!({"data": one_user_json(&state, &user).await?})))
}
