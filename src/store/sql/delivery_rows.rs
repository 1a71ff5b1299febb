//! Rows of the delivery tables, to and from their columns: events, deliveries, attempts,
//! retry jobs and the log queries they keep.

use serde_json::Value;
use sqlx::{any::AnyRow, Row};

use super::{open_url, optional_time};
use crate::{
    domain::{
        delivery::{
            Attempt, Delivery, DeliveryState, Origin, RetryJob, RetryJobState, RETRY_JOB_SILENCE,
        },
        event::{member_texts, Event, Resource},
        event_type::EventType,
        ids::OrganizationId,
        json_text::{self, JsonText},
        sealing::Sealer,
        webhook::Method,
        Timestamp,
    },
    store::{LogQuery, StoreError, StoreResult},
};

/// A delivery's columns, with its payload from `payloads` (or inline, from before).
pub(super) const DELIVERY_COLUMNS: &str = "seq, id, organization_id, webhook_id, event_id, event_type, incident_id, url, method, \
    COALESCE((SELECT body FROM payloads WHERE payloads.id = deliveries.payload_id), deliveries.payload) AS payload, \
    state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at, completed_at, origin, resent_from, payload_id";

fn method_from(text: &str) -> StoreResult<Method> {
    match text {
        "POST" => Ok(Method::Post),
        "PUT" => Ok(Method::Put),
        "PATCH" => Ok(Method::Patch),
        other => Err(StoreError::Corrupt(format!("unknown method {other}"))),
    }
}

/// An event as stored (columns `id, producer_id, event_type, payload_event_id, timestamp,
/// body, received_at`).
pub(super) fn event_from_row(organization_id: &OrganizationId, row: &AnyRow) -> StoreResult<Event> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("event {id}: {what}"));
    let type_name: String = row.try_get("event_type")?;
    let text: String = row.try_get("body")?;
    let mut body: Value =
        json_text::parse_with_huge_numbers(text.as_bytes(), |t| serde_json::from_slice(t))
            .map_err(|_| corrupt("body is not JSON"))?;
    let incident = match body["incident"].take() {
        Value::Object(map) => map,
        _ => return Err(corrupt("no incident")),
    };
    let texts = member_texts(text.as_bytes());
    let incident_text = texts
        .incident
        .map(JsonText::exact)
        .ok_or_else(|| corrupt("no incident"))?;
    let resource = match (body["resource"].take(), texts.resource) {
        (Value::Object(value), Some(raw)) => Some(Resource {
            value,
            text: JsonText::exact(raw),
        }),
        _ => None,
    };
    Ok(Event {
        organization_id: organization_id.clone(),
        producer_id: row.try_get("producer_id")?,
        event_type: EventType::from_name(&type_name).ok_or_else(|| corrupt("unknown type"))?,
        payload_event_id: row.try_get("payload_event_id")?,
        timestamp: row.try_get("timestamp")?,
        organization: body["organization"].take(),
        team: body["team"].take(),
        incident,
        incident_text,
        source_state: None,
        resource,
        received_at: Timestamp::from_micros(row.try_get("received_at")?),
        id,
    })
}

pub(super) fn delivery_from_row(row: &AnyRow, sealer: &Sealer) -> StoreResult<(i64, Delivery)> {
    let state: String = row.try_get("state")?;
    let method: String = row.try_get("method")?;
    let delivery = Delivery {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        incident_id: row.try_get("incident_id")?,
        url: open_url(sealer, row.try_get("url")?)?,
        method: method_from(&method)?,
        payload: row.try_get("payload")?,
        payload_id: row.try_get("payload_id")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state {state}")))?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: optional_time(row, "next_attempt_at")?,
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .map(|s| s as u16),
        last_error: row.try_get("last_error")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
        completed_at: optional_time(row, "completed_at")?,
        origin: {
            let kind: String = row.try_get("origin")?;
            Origin::parse(&kind, row.try_get("resent_from")?)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery origin {kind}")))?
        },
    };
    Ok((row.try_get("seq")?, delivery))
}

pub(super) fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map).to_string()
}

fn headers_from(text: Option<String>) -> Vec<(String, String)> {
    let Some(text) = text else { return Vec::new() };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn attempt_from_row(row: &AnyRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        number: row.try_get::<i64, _>("number")? as u32,
        started_at: Timestamp::from_micros(row.try_get("started_at")?),
        duration_ms: row.try_get::<i64, _>("duration_ms")? as u64,
        request_headers: headers_from(row.try_get("request_headers")?),
        response_status: row
            .try_get::<Option<i64>, _>("response_status")?
            .map(|s| s as u16),
        response_headers: headers_from(row.try_get("response_headers")?),
        response_body: row.try_get("response_body")?,
        error: row.try_get("error")?,
    })
}

pub(super) const RETRY_JOB_COLUMNS: &str = "id, organization_id, webhook_id, filters, state, total, done, after_seq, error, created_at, finished_at, updated_at, query";

/// A retry job as stored; one `running` but silent for [`RETRY_JOB_SILENCE`] at `now` is
/// reported interrupted.
pub(super) fn retry_job_from_row(row: &AnyRow, now: Timestamp) -> StoreResult<RetryJob> {
    let state: String = row.try_get("state")?;
    let filters: String = row.try_get("filters")?;
    let mut state = RetryJobState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown retry job state {state}")))?;
    let heard: i64 = row.try_get("updated_at")?;
    if state == RetryJobState::Running && heard < now.minus(RETRY_JOB_SILENCE).as_micros() {
        state = RetryJobState::Interrupted;
    }
    Ok(RetryJob {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        webhook_id: row.try_get("webhook_id")?,
        filters: serde_json::from_str(&filters).unwrap_or(Value::Null),
        state,
        total: row.try_get::<i64, _>("total")? as u64,
        done: row.try_get::<i64, _>("done")? as u64,
        after_seq: row.try_get("after_seq")?,
        error: row.try_get("error")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        finished_at: optional_time(row, "finished_at")?,
    })
}

pub(super) fn query_text(q: &LogQuery, sealer: &Sealer) -> String {
    serde_json::json!({
        "state": q.state.map(DeliveryState::as_str),
        "event_type": q.event_type,
        "incident_id": q.incident_id,
        "url": q.url.as_deref().map(|u| sealer.seal_url(u)),
        "delivery_id": q.delivery_id,
        "since": q.since.map(Timestamp::as_micros),
        "until": q.until.map(Timestamp::as_micros),
    })
    .to_string()
}

pub(super) fn query_from_text(text: &str, sealer: &Sealer) -> StoreResult<LogQuery> {
    let corrupt = || StoreError::Corrupt(format!("unreadable retry job query {text}"));
    let v: Value = serde_json::from_str(text).map_err(|_| corrupt())?;
    let text_of = |key: &str| v[key].as_str().map(str::to_owned);
    let time_of = |key: &str| v[key].as_i64().map(Timestamp::from_micros);
    Ok(LogQuery {
        state: match v["state"].as_str() {
            Some(s) => Some(DeliveryState::parse(s).ok_or_else(corrupt)?),
            None => None,
        },
        event_type: text_of("event_type"),
        incident_id: text_of("incident_id"),
        url: match text_of("url") {
            Some(stored) => Some(open_url(sealer, stored)?),
            None => None,
        },
        delivery_id: text_of("delivery_id"),
        since: time_of("since"),
        until: time_of("until"),
        ..LogQuery::default()
    })
}
