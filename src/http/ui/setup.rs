//! `/setup/{code}`: a one-time link through which a person chooses their password (or, for
//! the first start's link, creates the owner account), then is logged in.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use minijinja::{context, Value};

use super::{base_context, form_token, message, render, FormBody};
use crate::{
    accounts::{self, AccountError, SetupInput},
    domain::{
        session::{self, LinkProblem},
        Timestamp,
    },
    http::AppState,
};

fn link_problem(problem: LinkProblem) -> Response {
    let status = match problem {
        LinkProblem::Unknown => StatusCode::NOT_FOUND,
        LinkProblem::Used | LinkProblem::Expired => StatusCode::GONE,
    };
    message(
        status,
        None,
        "This link does not work",
        problem.message(),
        Some(("/login", "Go to the login page")),
    )
}

/// The form, with a fresh token-and-cookie pair: a setup form posted by another site
/// (signing the visitor in as someone else, with an unused link of theirs) has no pair.
#[allow(clippy::too_many_arguments)]
fn form_page(
    state: &AppState,
    status: StatusCode,
    code: &str,
    new_account: bool,
    email: &str,
    name: &str,
    role: &str,
    errors: Value,
) -> Response {
    let token = form_token::new_token();
    let mut response = render(
        status,
        "setup.html",
        base_context(None),
        context! {
            title => if new_account { "Create your account" } else { "Choose your password" },
            code => code,
            new_account => new_account,
            email => email,
            name => name,
            role => role,
            errors => errors,
            login_token => &token,
        },
    );
    form_token::attach(state, &mut response, &form_token::SETUP, &token);
    response
}

/// The link behind `code` and its person, or the page that says why it does not work.
async fn usable_link(
    state: &AppState,
    code: &str,
) -> Result<(session::SetupLink, Option<crate::domain::user::User>), Response> {
    let found = if session::looks_like_secret(code) {
        state.store.setup_link(&session::hash_secret(code)).await
    } else {
        Ok(None)
    };
    let (link, user) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return Err(link_problem(LinkProblem::Unknown)),
        Err(e) => {
            tracing::error!(error = %e, "setup link lookup failed");
            return Err(message(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "Try again",
                "tocsin cannot reach its database right now.",
                None,
            ));
        }
    };
    link.check(Timestamp::now()).map_err(link_problem)?;
    Ok((link, user))
}

pub async fn show(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let (link, user) = match usable_link(&state, &code).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let email = user.as_ref().map_or("", |u| u.email.as_str());
    let name = user.as_ref().map_or("", |u| u.name.as_str());
    form_page(
        &state,
        StatusCode::OK,
        &code,
        user.is_none(),
        email,
        name,
        link.role.as_str(),
        context! {},
    )
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    form: FormBody,
) -> Response {
    let (link, user) = match usable_link(&state, &code).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if !form_token::matches(&headers, &form, &form_token::SETUP) {
        return form_page(
            &state,
            StatusCode::FORBIDDEN,
            &code,
            user.is_none(),
            user.as_ref()
                .map_or(form.get("email"), |u| u.email.as_str()),
            user.as_ref().map_or(form.get("name"), |u| u.name.as_str()),
            link.role.as_str(),
            context! { form => "This form was stale or came from another site. Nothing was saved: fill it in again here." },
        );
    }
    let input = SetupInput {
        email: Some(form.get("email").to_owned()),
        name: Some(form.get("name").to_owned()),
        password: form.get("password").to_owned(),
        confirm: form.get("confirm").to_owned(),
    };
    match accounts::complete_setup(state.store.as_ref(), &code, input).await {
        Ok(user) => {
            let secret = match accounts::start_session(state.store.as_ref(), &user).await {
                Ok(secret) => secret,
                Err(e) => {
                    tracing::error!(error = %e, "could not start a session after setup");
                    return message(
                        StatusCode::OK,
                        None,
                        "Password saved",
                        "Your password is saved. Log in with it.",
                        Some(("/login", "Log in")),
                    );
                }
            };
            tracing::info!(user = %user.id, "setup link used");
            super::login::signed_in(&state, &secret, "/")
        }
        Err(AccountError::Link(problem)) => link_problem(problem),
        Err(AccountError::Invalid(errors)) => {
            let errors: std::collections::BTreeMap<String, String> = errors
                .into_iter()
                .map(|e| (e.field.clone(), format!("This {}", e.message)))
                .collect();
            form_page(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                &code,
                user.is_none(),
                form.get("email"),
                form.get("name"),
                link.role.as_str(),
                Value::from(errors),
            )
        }
        Err(e @ AccountError::DuplicateEmail(_)) => form_page(
            &state,
            StatusCode::CONFLICT,
            &code,
            true,
            form.get("email"),
            form.get("name"),
            "owner",
            context! { email => e.to_string() },
        ),
        Err(e) => {
            tracing::error!(error = %e, "setup failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Something went wrong",
                "The password was not saved. Try again in a moment.",
                None,
            )
        }
    }
}
