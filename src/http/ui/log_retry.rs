//! "Retry these" on the Logs tab: every finished delivery the tab's filters match is set
//! pending again by a background job (the API's bulk retry), oldest first, in order.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value};

use super::{
    error_page,
    logs::{query_of, query_string},
    message, FormBody, Person,
};
use crate::{
    domain::{delivery::DeliveryState, ids::WebhookId, token::Ability},
    http::AppState,
    intake,
};

pub async fn retry(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    form: FormBody,
) -> Response {
    if let Err(r) = person.permit(
        &headers,
        &form,
        Ability::ManageWebhooks,
        "retrying deliveries",
    ) {
        return r;
    }
    let hook = match person.webhook(&state, &id).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let logs = format!("/webhooks/{id}/logs");
    // Re-queued deliveries go whatever the switch says: an off webhook is turned on first.
    if !hook.spec.enabled {
        return message(
            StatusCode::CONFLICT,
            Some(person.caller()),
            "Turn it on first",
            "This webhook is off, so nothing was retried: turn it on in Settings (or with the switch in the list), then retry its deliveries.",
            Some((&logs, "Back to Logs")),
        );
    }
    let pairs: Vec<(String, String)> = form
        .0
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    let urls: Vec<String> = hook.spec.urls.iter().map(|u| u.url.clone()).collect();
    let (q, kept) = query_of(Some(&query_string(&pairs, &[])), &urls);
    if q.state == Some(DeliveryState::Pending) {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(person.caller()),
            "Nothing to retry",
            "Pending deliveries are still being tried: retry finished ones (failed, cancelled or succeeded).",
            Some((&logs, "Back to Logs")),
        );
    }
    // What the job is shown to have been asked (the URL by its place, never its password).
    let filters: Map<String, Value> = kept
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let org = person.caller().organization_id().to_owned();
    match intake::start_bulk_retry(&state.store, &org, &id, Value::Object(filters), q).await {
        Ok(_) => super::redirect(&format!(
            "{logs}?{}",
            query_string(&kept, &[("done", "retrying".to_owned())])
        ))
        .into_response(),
        Err(e) => error_page(person.caller(), e.into()),
    }
}
