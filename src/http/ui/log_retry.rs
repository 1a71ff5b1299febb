//! "Retry these" on the Logs tab: every finished delivery the tab's filters match is set
//! pending again by a background job (the API's bulk retry), oldest first, in order.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use serde_json::{Map, Value};

use super::{
    logs::{query_of, query_string, url_choices},
    message, FormBody, OrPage, PageResult, Person,
};
use crate::{
    domain::{delivery::DeliveryState, ids::WebhookId, token::Ability},
    http::AppState,
};

pub async fn retry(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    form: FormBody,
) -> PageResult {
    person.permit(
        &headers,
        &form,
        Ability::ManageWebhooks,
        "retrying deliveries",
    )?;
    let hook = person.webhook(&state, &id).await?;
    let logs = format!("/webhooks/{id}/logs");
    // Re-queued deliveries go whatever the switch says: an off webhook is turned on first.
    if !hook.spec.enabled {
        return Ok(message(
            StatusCode::CONFLICT,
            Some(person.caller()),
            "Turn it on first",
            "This webhook is off, so nothing was retried: turn it on in Settings (or with the switch in the list), then retry its deliveries.",
            Some((&logs, "Back to Logs")),
        ));
    }
    let pairs: Vec<(String, String)> = form
        .0
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    let urls = url_choices(&state, &hook);
    let (q, kept) = query_of(Some(&query_string(&pairs, &[])), &urls);
    // A write in bulk takes exactly the filters it was shown: one that no longer reads (a
    // URL removed since, a time mistyped) must not widen it to every delivery.
    if kept.len() != pairs.len() {
        return Ok(message(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(person.caller()),
            "Nothing was retried",
            "These filters no longer match this webhook (a URL may have been removed or changed): open its Logs tab again and choose them anew.",
            Some((&logs, "Back to Logs")),
        ));
    }
    if !matches!(
        q.state,
        Some(DeliveryState::Failed | DeliveryState::Cancelled | DeliveryState::Succeeded)
    ) {
        return Ok(message(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(person.caller()),
            "Nothing was retried",
            "Choose which finished deliveries to send again with the State filter: failed, cancelled or succeeded (pending ones are still being tried).",
            Some((&logs, "Back to Logs")),
        ));
    }
    // What the job is shown to have been asked (the URL by its place, never its password).
    let filters: Map<String, Value> = kept
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let org = person.caller().organization_id().to_owned();
    crate::sends::start_bulk_retry(&state.store, &org, &id, Value::Object(filters), q)
        .await
        .or_page(person.caller())?;
    let done = query_string(&kept, &[("done", "retrying".to_owned())]);
    Ok(super::redirect(&format!("{logs}?{done}")).into_response())
}
