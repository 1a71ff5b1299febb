//! `/users`: the people of the organization: invited with a setup link, roles changed,
//! disabled, passwords reset — through the same code as the JSON API and the command line.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use minijinja::{context, Value as Ctx};

use super::{base_context, flash, render, short_time as ts, FormBody, PageError, Person};
use super::{OrPage, PageResult};
use crate::{
    accounts::{self, AccountError, NewUser, UserChange},
    domain::{token::Ability, user::Role},
    http::{api::users::manager, AppState},
};

async fn users_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    invited: Option<serde_json::Value>,
    errors: Vec<String>,
    form: (&str, &str, &str),
    query: Option<&str>,
) -> PageResult {
    let users = state
        .store
        .list_users(person.caller().organization_id())
        .await
        .or_page(person.caller())?;
    let locked = accounts::lockouts(state.store.as_ref(), &users)
        .await
        .or_page(person.caller())?;
    // Tokens each person is behind: disabling them revokes those, and the button says so.
    let tokens = state
        .store
        .list_tokens(Some(person.caller().organization_id()))
        .await
        .or_page(person.caller())?;
    let now = crate::domain::Timestamp::now();
    let tokens_of = |user_id: &str| {
        tokens
            .iter()
            .filter(|t| t.usable_at(now))
            .filter(|t| t.created_by.as_ref().is_some_and(|c| c.user_id == user_id))
            .count()
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
                // Whole minutes, rounded up: "locked · 1 min" until the last second.
                locked_minutes => locked.get(&u.id).map(|wait| wait.as_secs().div_ceil(60).max(1)),
                tokens => tokens_of(&u.id),
            }
        })
        .collect();
    Ok(render(
        status,
        "users.html",
        base_context(Some(person.caller())),
        context! {
            title => "Users", nav => "users", flash => flash(query),
            rows => rows,
            roles => Role::ALL.iter().map(|r| context! { slug => r.as_str(), name => r.title(), description => r.description() }).collect::<Vec<_>>(),
            can_manage => person.caller().allows(Ability::Admin),
            invited => invited.map(|v| Ctx::from(minijinja::value::Serde(v))),
            // Invitations can go by e-mail only with an SMTP server.
            mail_on => state.mailer.is_some(),
            errors => errors,
            f => context! { email => form.0, name => form.1, role => form.2 },
        },
    ))
}

pub async fn list(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> PageResult {
    // A setup link just made: shown this once (see `once.rs`).
    let invited = super::once::take(&state, &headers, person.caller(), "invite");
    let shown = invited.is_some();
    let page = users_page(
        &state,
        &person,
        StatusCode::OK,
        invited,
        Vec::new(),
        ("", "", "member"),
        query.as_deref(),
    )
    .await
    // The value shown once is gone with this answer, an error page too.
    .unwrap_or_else(IntoResponse::into_response);
    Ok(super::once::finish(&state, page, shown))
}

/// What a refused change says on the users page; anything else is an error page.
fn account_error(person: &Person, e: AccountError) -> Result<Vec<String>, PageError> {
    match e {
        AccountError::Invalid(list) => Ok(list.iter().map(ToString::to_string).collect()),
        e @ (AccountError::DuplicateEmail(_)
        | AccountError::LastOwner
        | AccountError::Forbidden(_)) => Ok(vec![e.to_string()]),
        other => Err(other).or_page(person.caller()),
    }
}

pub async fn invite(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::Admin, "inviting people")?;
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
            // E-mailed when asked and SMTP is set up; the link is shown either way.
            let emailed = match (&state.mailer, form.get("send_email") == "on") {
                (Some(mailer), true) => {
                    let by = caller
                        .user()
                        .map_or_else(|| caller.actor().name, |u| u.name.clone());
                    let mail = crate::notify::email::compose_invite(&user.name, &by, &link);
                    Some(mailer.send(std::slice::from_ref(&user.email), &mail).await)
                }
                _ => None,
            };
            if let Some(Err(e)) = &emailed {
                tracing::warn!(error = %e, "could not e-mail an invitation; its link is shown to the inviter");
            }
            Ok(super::once::redirect(
                &state,
                person.caller(),
                "/users",
                "invite",
                serde_json::json!({
                    "email": user.email, "link": link,
                    "emailed": emailed.as_ref().map(Result::is_ok),
                    "mail_error": emailed.and_then(Result::err),
                }),
            ))
        }
        Ok((_, None)) => Ok(super::redirect("/users?done=updated").into_response()),
        Err(e) => {
            let errors = account_error(&person, e)?;
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
    }
}

async fn change_user(
    state: AppState,
    person: Person,
    headers: HeaderMap,
    id: String,
    form: FormBody,
    change: UserChange,
) -> PageResult {
    person.permit(&headers, &form, Ability::Admin, "changing people")?;
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
        Ok(_) => Ok(super::redirect("/users?done=updated").into_response()),
        Err(e) => refused(&state, &person, e).await,
    }
}

/// A change that was refused (duplicate, last owner, owners rule, bad input): the users
/// page with the reason; anything else is an error page.
async fn refused(state: &AppState, person: &Person, e: AccountError) -> PageResult {
    let errors = account_error(person, e)?;
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

pub async fn set_role(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> PageResult {
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
) -> PageResult {
    let change = UserChange {
        disabled: Some(form.get("disabled") == "true"),
        ..UserChange::default()
    };
    change_user(state, person, headers, id, form, change).await
}

pub async fn unlock(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::Admin, "unlocking logins")?;
    let caller = person.caller();
    match accounts::unlock_login(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        manager(caller),
        &caller.actor(),
    )
    .await
    {
        Ok(_) => Ok(super::redirect("/users?done=unlocked").into_response()),
        Err(e) => refused(&state, &person, e).await,
    }
}

pub async fn reset_password(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::Admin, "resetting passwords")?;
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
        // Shown once on the page redirected to: a reload resets nothing again.
        Ok((user, code)) => {
            let link = accounts::setup_url(&state.config.public_url(), &code);
            Ok(super::once::redirect(
                &state,
                person.caller(),
                "/users",
                "invite",
                serde_json::json!({"email": user.email, "link": link}),
            ))
        }
        Err(e) => refused(&state, &person, e).await,
    }
}

/// Deletes a person (after the page's confirmation): their sessions end and the tokens they
/// made are revoked; the audit log keeps what they did.
pub async fn delete(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::Admin, "deleting people")?;
    let caller = person.caller();
    match accounts::delete_user(
        state.store.as_ref(),
        caller.organization_id(),
        &id,
        manager(caller),
        &caller.actor(),
    )
    .await
    {
        Ok(_) => Ok(super::redirect("/users?done=user-deleted").into_response()),
        Err(e) => refused(&state, &person, e).await,
    }
}
