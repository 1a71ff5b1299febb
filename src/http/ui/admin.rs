//! `/tokens`, `/users`, `/audit`: API tokens (created and shown once, revoked), people
//! (invited with a setup link, roles changed, disabled) and the audit log. Everything goes
//! through the same code as the JSON API; what a role may not do is not offered, and
//! refused if tried.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use minijinja::{context, Value as Ctx};
use serde_json::Value;

use super::{base_context, error_page, flash, render, FormBody, Person};
use crate::{
    accounts::{self, AccountError, NewUser, UserChange},
    domain::{
        audit::token_created,
        token::{Ability, NewToken},
        user::Role,
        Timestamp,
    },
    http::{
        api::{audit::parse_query, paging, tokens::parse_new_token, users::manager},
        error::ApiError,
        AppState,
    },
};

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_rfc3339()[..16].replace('T', " "))
}

async fn tokens_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    created: Option<(String, String)>,
    errors: Vec<String>,
    typed_name: &str,
    query: Option<&str>,
) -> Response {
    let now = Timestamp::now();
    let tokens = match state
        .store
        .list_tokens(Some(person.caller().organization_id()))
        .await
    {
        Ok(t) => t,
        Err(e) => return error_page(person.caller(), e.into()),
    };
    let rows: Vec<Ctx> = tokens
        .iter()
        .rev()
        .map(|t| {
            context! {
                id => &t.id, name => &t.name,
                abilities => t.abilities.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                status => t.status(now), created_at => ts(Some(t.created_at)),
                expires_at => ts(t.expires_at), last_used_at => ts(t.last_used_at),
            }
        })
        .collect();
    render(
        status,
        "tokens.html",
        base_context(Some(person.caller())),
        context! {
            title => "API tokens", nav => "tokens", flash => flash(query),
            rows => rows,
            abilities => Ability::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            created => created.map(|(name, value)| context! { name => name, value => value }),
            errors => errors,
            typed_name => typed_name,
        },
    )
}

pub async fn tokens(
    State(state): State<AppState>,
    person: Person,
    RawQuery(query): RawQuery,
) -> Response {
    if !person.caller().allows(Ability::Admin) {
        return person.refuse("managing API tokens");
    }
    tokens_page(
        &state,
        &person,
        StatusCode::OK,
        None,
        Vec::new(),
        "",
        query.as_deref(),
    )
    .await
}

pub async fn create_token(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> Response {
    if let Err(r) = person.permit(&headers, &form, Ability::Admin, "managing API tokens") {
        return r;
    }
    let abilities: Vec<Value> = form
        .0
        .iter()
        .filter(|(k, _)| k == "abilities")
        .map(|(_, v)| Value::String(v.clone()))
        .collect();
    // A date picker gives a day: the token works until the end of it (UTC).
    let expires = Some(form.get("expires_at").trim())
        .filter(|d| !d.is_empty())
        .map(|d| {
            if d.len() == 10 {
                format!("{d}T23:59:59Z")
            } else {
                d.to_owned()
            }
        });
    let now = Timestamp::now();
    match parse_new_token(
        Some(form.get("name").to_owned()),
        Some(&Value::Array(abilities)),
        expires,
        now,
    ) {
        Ok((name, abilities, expires_at)) => {
            let mut token = NewToken::generate(person.caller().organization_id(), &name, abilities);
            token.token.expires_at = expires_at;
            let audit = token_created(&token.token, &person.caller().actor());
            if let Err(e) = state.store.create_token(&token, &audit).await {
                return error_page(person.caller(), e.into());
            }
            tokens_page(
                &state,
                &person,
                StatusCode::CREATED,
                Some((name, token.plaintext)),
                Vec::new(),
                "",
                None,
            )
            .await
        }
        Err(errors) => {
            let errors = errors.iter().map(ToString::to_string).collect();
            tokens_page(
                &state,
                &person,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                errors,
                form.get("name"),
                None,
            )
            .await
        }
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> Response {
    if let Err(r) = person.permit(&headers, &form, Ability::Admin, "managing API tokens") {
        return r;
    }
    let caller = person.caller();
    match state
        .store
        .revoke_token(
            Some(caller.organization_id()),
            &id,
            Timestamp::now(),
            &caller.actor(),
        )
        .await
    {
        Ok(Some(_)) => Redirect::to("/tokens?done=revoked").into_response(),
        Ok(None) => error_page(caller, ApiError::NotFound(format!("active token {id}"))),
        Err(e) => error_page(caller, e.into()),
    }
}

async fn users_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    invited: Option<(String, String)>,
    errors: Vec<String>,
    form: (&str, &str, &str),
    query: Option<&str>,
) -> Response {
    let users = match state
        .store
        .list_users(person.caller().organization_id())
        .await
    {
        Ok(u) => u,
        Err(e) => return error_page(person.caller(), e.into()),
    };
    let me = person
        .caller()
        .user()
        .map(|u| u.id.clone())
        .unwrap_or_default();
    let rows: Vec<Ctx> = users
        .iter()
        .map(|u| {
            context! {
                id => &u.id, email => &u.email, name => &u.name, role => u.role.as_str(),
                status => u.status(), last_login_at => ts(u.last_login_at), me => u.id == me,
            }
        })
        .collect();
    render(
        status,
        "users.html",
        base_context(Some(person.caller())),
        context! {
            title => "Users", nav => "users", flash => flash(query),
            rows => rows,
            roles => Role::ALL.iter().map(|r| context! { slug => r.as_str(), name => r.title(), description => r.description() }).collect::<Vec<_>>(),
            can_manage => person.caller().allows(Ability::Admin),
            invited => invited.map(|(email, link)| context! { email => email, link => link }),
            errors => errors,
            f => context! { email => form.0, name => form.1, role => form.2 },
        },
    )
}

pub async fn users(
    State(state): State<AppState>,
    person: Person,
    RawQuery(query): RawQuery,
) -> Response {
    users_page(
        &state,
        &person,
        StatusCode::OK,
        None,
        Vec::new(),
        ("", "", "member"),
        query.as_deref(),
    )
    .await
}

// The error is the page to answer with (see `Person::verify`).
#[allow(clippy::result_large_err)]
fn account_error(person: &Person, e: AccountError) -> Result<Vec<String>, Response> {
    match e {
        AccountError::Invalid(list) => Ok(list.iter().map(ToString::to_string).collect()),
        e @ (AccountError::DuplicateEmail(_)
        | AccountError::LastOwner
        | AccountError::Forbidden(_)) => Ok(vec![e.to_string()]),
        other => Err(error_page(person.caller(), other.into())),
    }
}

pub async fn invite(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> Response {
    if let Err(r) = person.permit(&headers, &form, Ability::Admin, "inviting people") {
        return r;
    }
    let input = NewUser {
        email: form.get("email").to_owned(),
        name: form.get("name").to_owned(),
        role: form.get("role").to_owned(),
        password: None,
    };
    let caller = person.caller();
    match accounts::create_user(
        state.store.as_ref(),
        caller.organization_id(),
        input,
        manager(caller),
        &caller.actor(),
    )
    .await
    {
        Ok((user, Some(code))) => {
            let link = accounts::setup_url(&state.config.public_url(), &code);
            users_page(
                &state,
                &person,
                StatusCode::CREATED,
                Some((user.email, link)),
                Vec::new(),
                ("", "", "member"),
                None,
            )
            .await
        }
        Ok((_, None)) => Redirect::to("/users?done=updated").into_response(),
        Err(e) => match account_error(&person, e) {
            Ok(errors) => {
                users_page(
                    &state,
                    &person,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    errors,
                    (form.get("email"), form.get("name"), form.get("role")),
                    None,
                )
                .await
            }
            Err(page) => page,
        },
    }
}

async fn change_user(
    state: AppState,
    person: Person,
    headers: HeaderMap,
    id: String,
    form: FormBody,
    change: UserChange,
) -> Response {
    if let Err(r) = person.permit(&headers, &form, Ability::Admin, "changing people") {
        return r;
    }
    let caller = person.caller();
    match accounts::update_user(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        change,
        manager(caller),
        &caller.actor(),
    )
    .await
    {
        Ok(_) => Redirect::to("/users?done=updated").into_response(),
        Err(e) => refused(&state, &person, e).await,
    }
}

/// A change that was refused (duplicate, last owner, owners rule, bad input): the users
/// page with the reason; anything else is an error page.
async fn refused(state: &AppState, person: &Person, e: AccountError) -> Response {
    match account_error(person, e) {
        Ok(errors) => {
            users_page(
                state,
                person,
                StatusCode::CONFLICT,
                None,
                errors,
                ("", "", "member"),
                None,
            )
            .await
        }
        Err(page) => page,
    }
}

pub async fn set_role(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> Response {
    let change = UserChange {
        role: Some(form.get("role").to_owned()),
        ..UserChange::default()
    };
    change_user(state, person, headers, id, form, change).await
}

pub async fn set_disabled(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> Response {
    let change = UserChange {
        disabled: Some(form.get("disabled") == "true"),
        ..UserChange::default()
    };
    change_user(state, person, headers, id, form, change).await
}

pub async fn reset_password(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> Response {
    if let Err(r) = person.permit(&headers, &form, Ability::Admin, "resetting passwords") {
        return r;
    }
    let caller = person.caller();
    match accounts::reset_password(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        manager(caller),
        &caller.actor(),
    )
    .await
    {
        Ok((user, code)) => {
            let link = accounts::setup_url(&state.config.public_url(), &code);
            users_page(
                &state,
                &person,
                StatusCode::OK,
                Some((user.email, link)),
                Vec::new(),
                ("", "", "member"),
                None,
            )
            .await
        }
        Err(e) => refused(&state, &person, e).await,
    }
}

pub async fn audit(
    State(state): State<AppState>,
    person: Person,
    RawQuery(query): RawQuery,
) -> Response {
    // Empty filter fields from the form mean "any".
    let cleaned: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            crate::http::extract::query_pairs(query.as_deref())
                .into_iter()
                .filter(|(_, v)| !v.trim().is_empty()),
        )
        .finish();
    let mut q = match parse_query(Some(&cleaned)) {
        Ok(q) => q,
        Err(e) => return error_page(person.caller(), e),
    };
    let limit = q.limit as usize;
    q.limit += 1;
    let mut rows = match state
        .store
        .list_audit(person.caller().organization_id(), &q)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(person.caller(), e.into()),
    };
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
    render(
        StatusCode::OK,
        "audit.html",
        base_context(Some(person.caller())),
        context! {
            title => "Audit log", nav => "audit", entries => entries, next => next,
            f_actor => f("actor"), f_object => f("object"), f_action => f("action"),
        },
    )
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
