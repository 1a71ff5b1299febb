//! `POST /directory`: the filter builder's "Add a service, alert source or team by name",
//! for one no event has named yet (or a better name for one). Answers a line for the
//! builder, which adds the entry to its value lists.

use axum::{extract::State, http::HeaderMap, http::StatusCode};
use minijinja::context;

use super::{base_context, render, FormBody, OrPage, PageResult, Person};
use crate::{
    domain::{
        directory::{declared, Kind},
        token::Ability,
        Timestamp,
    },
    http::AppState,
};

pub async fn declare(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::ManageWebhooks, "adding names")?;
    let id = form.get("dir_id").trim();
    let checked = match Kind::parse(form.get("dir_kind")) {
        None => Err("Choose a service, an alert source or a team.".to_owned()),
        Some(_) if id.is_empty() => Err("Give its id, as events name it.".to_owned()),
        Some(kind) => declared(kind, id, form.get("dir_name")).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        }),
    };
    let page = match checked {
        Ok(entry) => {
            let org = person.caller().organization_id();
            state
                .store
                .declare_directory(org, &entry, Timestamp::now())
                .await
                .or_page(person.caller())?;
            context! {
                kind => entry.kind.as_str(),
                id => &entry.id,
                name => &entry.name,
                label => match entry.kind {
                    Kind::Service => "services",
                    Kind::AlertSource => "alert sources",
                    Kind::Team => "teams",
                },
            }
        }
        Err(error) => context! { error => error },
    };
    Ok(render(
        StatusCode::OK,
        "directory_added.html",
        base_context(Some(person.caller())),
        page,
    ))
}
