//! `/tokens`: API tokens, created (shown once) and revoked, through the same code as the
//! JSON API. Admins only.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use minijinja::{context, Value as Ctx};
use serde_json::Value;

use super::{base_context, flash, render, short_time as ts, FormBody, Person};
use super::{OrPage, PageResult};
use crate::{
    domain::{
        audit::token_created,
        token::{Ability, NewToken},
        Timestamp,
    },
    http::{api::tokens::parse_new_token, error::ApiError, AppState},
};

async fn tokens_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    created: Option<(String, String)>,
    errors: Vec<String>,
    typed_name: &str,
    query: Option<&str>,
) -> PageResult {
    let now = Timestamp::now();
    let tokens = state
        .store
        .list_tokens(Some(person.caller().organization_id()))
        .await
        .or_page(person.caller())?;
    let rows: Vec<Ctx> = tokens
        .iter()
        .rev()
        .map(|t| {
            context! {
                id => &t.id, name => &t.name,
                abilities => t.abilities.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                status => t.status(now), created_at => ts(Some(t.created_at)),
                expires_at => ts(t.expires_at), last_used_at => ts(t.last_used_at),
                created_by => t.created_by.as_ref().map(|c| c.email.clone()),
            }
        })
        .collect();
    Ok(render(
        status,
        "tokens.html",
        base_context(Some(person.caller())),
        context! {
            title => "API tokens", nav => "tokens", flash => flash(query),
            rows => rows,
            abilities => Ability::ALL.iter().map(|a| context! { name => a.as_str(), description => a.description() }).collect::<Vec<_>>(),
            created => created.map(|(name, value)| context! { name => name, value => value }),
            errors => errors,
            typed_name => typed_name,
        },
    ))
}

pub async fn list(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> PageResult {
    if !person.caller().allows(Ability::Admin) {
        return Err(person.refuse("managing API tokens").into());
    }
    // A token just made: shown this once (see `once.rs`).
    let created = super::once::take(&state, &headers, person.caller(), "token").map(|v| {
        (
            v["name"].as_str().unwrap_or_default().to_owned(),
            v["value"].as_str().unwrap_or_default().to_owned(),
        )
    });
    let shown = created.is_some();
    let page = tokens_page(
        &state,
        &person,
        StatusCode::OK,
        created,
        Vec::new(),
        "",
        query.as_deref(),
    )
    .await
    // The value shown once is gone with this answer, an error page too.
    .unwrap_or_else(IntoResponse::into_response);
    Ok(super::once::finish(&state, page, shown))
}

pub async fn create(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::Admin, "managing API tokens")?;
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
            token.token.created_by = person.caller().token_creator();
            let audit = token_created(&token.token, &person.caller().actor());
            state
                .store
                .create_token(&token, &audit)
                .await
                .or_page(person.caller())?;
            Ok(super::once::redirect(
                &state,
                person.caller(),
                "/tokens",
                "token",
                serde_json::json!({"name": name, "value": token.plaintext}),
            ))
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

pub async fn revoke(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::Admin, "managing API tokens")?;
    let caller = person.caller();
    let revoked = state
        .store
        .revoke_token(
            Some(caller.organization_id()),
            &id,
            Timestamp::now(),
            &caller.actor(),
        )
        .await
        .or_page(caller)?;
    if revoked.is_none() {
        return Err(ApiError::NotFound(format!("active token {id}"))).or_page(caller);
    }
    Ok(super::redirect("/tokens?done=revoked").into_response())
}
