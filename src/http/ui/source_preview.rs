//! "Try a payload" on a source's form: what a pasted payload becomes with the settings as
//! typed, through `sources::view::preview_json` (as the API) — what each expression of a generic mapping
//! gave, the events, what is ignored, or the refusal. Nothing is stored.

use axum::http::{HeaderMap, StatusCode};
use minijinja::{context, value::Serde, Value as Ctx};
use serde_json::{json, Value};

use super::{
    render, source_form::body_from_form, source_setup::EXPRESSIONS, FormBody, PageResult, Person,
};
use crate::{domain::token::Ability, http::extract::parse_strict, sources::view::preview_json};

/// "Try a payload" (htmx): what the pasted payload becomes with the settings as typed —
/// what each expression gave (generic), the events, what is ignored, or the refusal.
/// Nothing is stored.
pub async fn preview(person: Person, headers: HeaderMap, form: FormBody) -> PageResult {
    person.permit(
        &headers,
        &form,
        Ability::ManageWebhooks,
        "previewing sources",
    )?;
    let mut settings = body_from_form(&form, false)["settings"].take();
    // The form holds only the stored signing secret's mask, and a preview checks no
    // signature: the secret plays no part.
    if let Some(s) = settings.as_object_mut() {
        s.remove("signing_secret");
    }
    let text = form.get("preview_payload");
    let ctx = if text.trim().is_empty() {
        context! { errors => vec!["Paste a payload first: the JSON the tool posts."] }
    } else {
        match parse_strict(text.as_bytes()) {
            Err(why) => context! { errors => vec![format!("The payload is not JSON: {why}")] },
            Ok(payload) => {
                let asked =
                    json!({"kind": form.get("kind"), "settings": settings, "payload": payload});
                match preview_json(&asked) {
                    Ok(out) => preview_context(&out),
                    Err(errors) => context! {
                        errors => errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    },
                }
            }
        }
    };
    Ok(render(
        StatusCode::OK,
        "source_preview.html",
        context! {},
        ctx,
    ))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `preview_json`'s answer for `source_preview.html`.
fn preview_context(out: &Value) -> Ctx {
    let fields: Vec<Ctx> = EXPRESSIONS
        .iter()
        .filter_map(|(name, label, ..)| {
            let f = out["fields"].get(*name)?;
            let expression = f["expression"].as_str()?;
            Some(context! {
                label => *label,
                expression => expression,
                value => f.get("value").map(|v| serde_json::to_string(v).unwrap_or_default()),
                error => f["error"].as_str(),
            })
        })
        .collect();
    let events: Vec<Ctx> = out["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            context! {
                event_type => e["type"].as_str(),
                incident_id => e["incident"]["id"].as_str(),
                message => e["incident"]["message"].as_str(),
                json => pretty(e),
            }
        })
        .collect();
    context! {
        fields => fields,
        events => events,
        ignored => Ctx::from(Serde(&out["ignored"])),
        refused => out.get("refused").map(|r| Ctx::from(Serde(r))),
    }
}
