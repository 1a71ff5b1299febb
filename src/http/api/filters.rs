//! Trying filters before saving them, and the payload presets.

use axum::Json;
use serde_json::{json, Map, Value};

use super::ApiRoutes;

use crate::{
    domain::{token::Ability, FieldError},
    filter,
    http::{auth::Caller, error::ApiError, extract::JsonBody},
    payload::{self, presets, template},
};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .post("/v3/extensions/event-webhooks/filters/test", test_filter)
        .get("/v3/extensions/event-webhooks/templates", templates)
}

/// `{"filters": …, "incident": …, "team": {"id": …}, "resource": …}` (`resource` optional:
/// the note, task, … for `resource.<path>` conditions) → whether it matches, and for each
/// condition of each group whether it did and what value the field had.
async fn test_filter(caller: Caller, JsonBody(body): JsonBody) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let invalid = |errors: Vec<FieldError>| ApiError::Invalid("invalid_filter", errors);
    let incident: Map<String, Value> = match body.get("incident") {
        Some(Value::Object(o)) => o.clone(),
        _ => {
            return Err(invalid(vec![FieldError::new(
                "incident",
                "is required: the incident object to test against",
            )]))
        }
    };
    let resource = match body.get("resource") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o.clone()),
        Some(_) => {
            return Err(invalid(vec![FieldError::new(
                "resource",
                "must be an object (the note, task, … a filter's resource.<path> looks into), or left out",
            )]))
        }
    };
    let team_id = match body.get("team") {
        None | Some(Value::Null) => "",
        Some(Value::Object(team)) => match team.get("id") {
            None | Some(Value::Null) => "",
            Some(Value::String(id)) => id.as_str(),
            Some(_) => {
                return Err(invalid(vec![FieldError::new(
                    "team.id",
                    "must be a string",
                )]))
            }
        },
        Some(_) => {
            return Err(invalid(vec![FieldError::new(
                "team",
                "must be an object like {\"id\": \"…\"} (the incident's team), or left out",
            )]))
        }
    };
    let parsed =
        filter::parse(body.get("filters").unwrap_or(&Value::Null)).map_err(|problems| {
            invalid(
                problems
                    .into_iter()
                    .map(|p| FieldError::new(p.path, p.message))
                    .collect(),
            )
        })?;
    let data = match parsed {
        None => json!({"matches": true, "explanation": null}),
        Some(f) => {
            let explanation =
                explain_off_the_workers(f, incident, resource, team_id.to_owned()).await;
            json!({"matches": explanation.matched, "explanation": explanation})
        }
    };
    Ok(Json(json!({ "data": data })))
}

/// Explains a filter against an incident on the blocking pool, within the per-event regex
/// budget, with values cut for showing: what the filter-test endpoints call, so a large
/// incident and many regexes cannot hold an async worker.
pub async fn explain_off_the_workers(
    filter: filter::Filter,
    incident: Map<String, Value>,
    resource: Option<Map<String, Value>>,
    team_id: String,
) -> filter::Explanation {
    tokio::task::spawn_blocking(move || {
        let subject = filter::Subject {
            incident: &incident,
            team_id: &team_id,
            resource: resource.as_ref(),
        };
        filter::with_regex_budget(filter::EVENT_REGEX_BUDGET, || {
            filter::explain(&filter, subject).shortened()
        })
        .0
    })
    .await
    .expect("explaining a filter does not panic")
}

/// The presets for `custom_payload_template_slug`, each with what it sends for Squadcast's
/// sample incident.
async fn templates(caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Ability::Read)?;
    let event = payload::sample_event();
    let context = template::context(&event, "wh_example", "Example");
    let result: Vec<Value> = presets::PRESETS
        .iter()
        .map(|p| {
            let example = template::render(&presets::source(p), &context)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .unwrap_or(Value::Null);
            json!({"slug": p.slug, "name": p.name, "description": p.description, "example": example})
        })
        .collect();
    Ok(Json(json!({"data": result})))
}
