//! The Logs tab: a webhook's deliveries newest first, new ones appearing as they come (htmx
//! polling), each expandable to the exact payload, the request headers (masked) and every
//! attempt; "Send again" makes a new delivery of the same payload.

use crate::domain::ids::{DeliveryId, OrganizationId, WebhookId};
use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use minijinja::{context, Value as Ctx};
use serde_json::Value;

use super::{base_context, flash, render, FormBody, OrPage, PageResult, Person};
use crate::{
    domain::{
        delivery::{Delivery, DeliveryState},
        event_type::{EventType, EVENT_TYPES},
        token::Ability,
    },
    http::{error::ApiError, extract::query_pairs, AppState},
    store::LogQuery,
};

const PAGE: u32 = 50;

/// A time typed in the page's filter (`2026-12-07T14:30`, UTC, as a datetime-local field
/// sends it; or RFC 3339).
fn typed_time(text: &str) -> Option<crate::domain::Timestamp> {
    let text = text.trim();
    crate::domain::Timestamp::parse_rfc3339(text)
        .or_else(|| crate::domain::Timestamp::parse_rfc3339(&format!("{text}:00Z")))
        .or_else(|| crate::domain::Timestamp::parse_rfc3339(&format!("{text}Z")))
}

/// The webhook's URLs as the URL filter names them: a key that stays the same when the
/// list is reordered and shows nothing of a password (a hash of the URL as stored, its
/// password sealed), with the URL.
pub(super) fn url_choices(
    state: &AppState,
    hook: &crate::domain::webhook::Webhook,
) -> Vec<(String, String)> {
    hook.spec
        .urls
        .iter()
        .map(|u| {
            let key = crate::domain::delivery::url_key(&state.sealer.seal_url(&u.url));
            (key[..16].to_owned(), u.url.clone())
        })
        .collect()
}

/// The filters of the page, from its query string; unknown values are ignored. `urls` are
/// the webhook's, by the key the URL filter names them with ([`url_choices`]).
pub(super) fn query_of(
    raw: Option<&str>,
    urls: &[(String, String)],
) -> (LogQuery, Vec<(String, String)>) {
    let mut q = LogQuery {
        limit: PAGE,
        ..LogQuery::default()
    };
    let mut kept = Vec::new();
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "state" => {
                if let Some(s) = DeliveryState::parse(&v) {
                    q.state = Some(s);
                    kept.push((k, v));
                }
            }
            "event_type" => {
                if let Some(t) = EVENT_TYPES.iter().find(|t| t.name == v) {
                    q.event_type = Some(t.name.to_owned());
                    kept.push((k, v));
                }
            }
            "incident_id" if !v.trim().is_empty() => {
                q.incident_id = Some(v.trim().to_owned());
                kept.push((k, v.trim().to_owned()));
            }
            "delivery_id" if !v.trim().is_empty() => {
                q.delivery_id = Some(v.trim().to_owned());
                kept.push((k, v.trim().to_owned()));
            }
            "url" => {
                if let Some((_, url)) = urls.iter().find(|(key, _)| *key == v) {
                    q.url = Some(url.clone());
                    kept.push((k, v));
                }
            }
            "since" | "until" => {
                if let Some(t) = typed_time(&v) {
                    if k == "since" {
                        q.since = Some(t);
                    } else {
                        q.until = Some(t);
                    }
                    kept.push((k, v));
                }
            }
            "cursor" => q.before_seq = v.parse().ok().filter(|n: &i64| *n > 0),
            "after" => q.after_seq = v.parse().ok().filter(|n: &i64| *n >= 0),
            _ => {}
        }
    }
    (q, kept)
}

pub(super) fn query_string(pairs: &[(String, String)], extra: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    for (k, v) in extra {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The log positions a page's poller watches (`watch=12,15`): rows shown whose delivery
/// may still change. Bounded: a page shows at most [`PAGE`] rows, and a poll adds at most
/// as many.
fn watched(raw: Option<&str>) -> Vec<i64> {
    crate::http::extract::query_pairs(raw)
        .into_iter()
        .filter(|(k, _)| k == "watch")
        .flat_map(|(_, v)| {
            v.split(',')
                .filter_map(|s| s.trim().parse::<i64>().ok().filter(|n| *n > 0))
                .collect::<Vec<_>>()
        })
        .take(2 * PAGE as usize)
        .collect()
}

/// The positions of the rows in `rows` still pending, to watch.
fn pending_seqs<'a>(rows: impl Iterator<Item = &'a (i64, Delivery)>) -> Vec<i64> {
    rows.filter(|(_, d)| d.state == DeliveryState::Pending)
        .map(|(seq, _)| *seq)
        .collect()
}

/// The poller's address: what came after `newest`, and how the watched rows are now.
fn poll_url(id: &WebhookId, kept: &[(String, String)], newest: i64, watch: &[i64]) -> String {
    let mut extra = vec![("after", newest.to_string())];
    if !watch.is_empty() {
        let list: Vec<String> = watch.iter().map(ToString::to_string).collect();
        extra.push(("watch", list.join(",")));
    }
    format!("/webhooks/{id}/logs/rows?{}", query_string(kept, &extra))
}

/// What tells a URL from its webhook's others: its path and query (the host is the same
/// more often than not), or the host for a URL without a path.
pub(super) fn url_end(masked: &str) -> String {
    let rest = masked.split_once("://").map_or(masked, |(_, rest)| rest);
    match rest.find('/') {
        Some(i) if rest.len() > i + 1 => rest[i..].to_owned(),
        _ => rest.trim_end_matches('/').to_owned(),
    }
}

async fn rows_context(
    state: &AppState,
    org: &OrganizationId,
    rows: &[(i64, Delivery)],
) -> Result<Vec<Ctx>, ApiError> {
    let event_ids: Vec<String> = rows.iter().map(|(_, d)| d.event_id.clone()).collect();
    let messages = state.store.event_messages(org, &event_ids).await?;
    Ok(rows
        .iter()
        .map(|(seq, d)| {
            let masked = crate::domain::webhook::mask_url(&d.url);
            context! {
                seq => seq,
                id => d.id.as_str(),
                state => d.state.as_str(),
                event_type => &d.event_type,
                incident_id => &d.incident_id,
                message => messages.get(&d.event_id).map(|m| m.chars().take(120).collect::<String>()),
                url_end => url_end(&masked),
                url => masked,
                method => d.method.as_str(),
                attempts => d.attempts,
                last_status => d.last_status,
                last_error => &d.last_error,
                next_attempt_at => d.next_attempt().map(|t| t.to_rfc3339()),
                created_at => d.created_at.to_rfc3339(),
                origin => d.origin.as_str(),
            }
        })
        .collect())
}

pub async fn show(
    State(state): State<AppState>,
    person: Person,
    Path(id): Path<WebhookId>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let hook = person.webhook(&state, &id).await?;
    let org = person.caller().organization_id().to_owned();
    let urls = url_choices(&state, &hook);
    let (mut q, kept) = query_of(raw.as_deref(), &urls);
    q.after_seq = None;
    q.limit = PAGE + 1;
    let caller = person.caller();
    let mut rows = state
        .store
        .list_deliveries(&org, &id, &q)
        .await
        .or_page(caller)?;
    let older = crate::http::api::paging::next_cursor(&mut rows, PAGE as usize).map(|c| {
        format!(
            "/webhooks/{id}/logs?{}",
            query_string(&kept, &[("cursor", c)])
        )
    });
    // The newest row shown: polling asks for what came after it (only on the first page),
    // and for the rows shown that may still change.
    let newest = rows.first().map_or(0, |(seq, _)| *seq);
    let poll = q
        .before_seq
        .is_none()
        .then(|| poll_url(&id, &kept, newest, &pending_seqs(rows.iter())));
    let items = rows_context(&state, &org, &rows).await.or_page(caller)?;
    // What "Retry these" would send again, said in its confirmation.
    let retry_count = match q.state {
        Some(DeliveryState::Failed | DeliveryState::Cancelled | DeliveryState::Succeeded)
            if person.caller().allows(Ability::ManageWebhooks) =>
        {
            state
                .store
                .count_finished_matching(&org, &id, &q)
                .await
                .ok()
        }
        _ => None,
    };
    let filter = |k: &str| {
        kept.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(render(
        StatusCode::OK,
        "logs.html",
        base_context(Some(person.caller())),
        context! {
            title => format!("{} · Logs", hook.spec.name),
            nav => "webhooks",
            tab => "logs",
            flash => flash(raw.as_deref()),
            hook => context! { id => hook.id.as_str(), name => &hook.spec.name, enabled => hook.spec.enabled },
            rows => items,
            older => older,
            poll => poll,
            states => DeliveryState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            // Grouped by resource and named as the form names them: 23 raw type names
            // made the filter wider than the page.
            event_types => type_groups(),
            f_state => filter("state"),
            f_event_type => filter("event_type"),
            f_incident => filter("incident_id"),
            f_delivery => filter("delivery_id"),
            f_url => filter("url"),
            f_since => filter("since"),
            f_until => filter("until"),
            urls => urls.iter().map(|(key, url)| context! { key => key, end => url_end(&crate::domain::webhook::mask_url(url)) }).collect::<Vec<_>>(),
            retry_count => retry_count,
            filtered => !kept.is_empty(),
            kept => &kept,
            can_edit => person.caller().allows(Ability::ManageWebhooks),
            test_types => hook
                .spec
                .triggers
                .iter()
                .filter_map(|t| crate::domain::event_type::EventType::from_trigger(&t.event_class, &t.event_type))
                .map(|t| context! { name => t.name, label => format!("{}: {}", t.resource_title(), t.label) })
                .collect::<Vec<_>>(),
        },
    ))
}

/// New rows since `after` (htmx polling), the watched rows as they are now (their state
/// and attempts swapped in place, so an expanded row stays open), and the poller that asks
/// again from the newest.
pub async fn rows(
    State(state): State<AppState>,
    person: Person,
    Path(id): Path<WebhookId>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let org = person.caller().organization_id().to_owned();
    let hook = person.webhook(&state, &id).await?;
    let caller = person.caller();
    let urls = url_choices(&state, &hook);
    let (mut q, kept) = query_of(raw.as_deref(), &urls);
    let after = q.after_seq.unwrap_or(0);
    q.before_seq = None;
    q.limit = PAGE;
    let rows = state
        .store
        .list_deliveries(&org, &id, &q)
        .await
        .or_page(caller)?;
    let newest = rows.first().map_or(after, |(seq, _)| *seq);
    let watch = watched(raw.as_deref());
    let updated = state
        .store
        .deliveries_at(&org, &id, &watch)
        .await
        .or_page(caller)?;
    // The newest first: past the bound, the oldest pending rows stop following.
    let next_watch = pending_seqs(rows.iter().chain(updated.iter()));
    let items = rows_context(&state, &org, &rows).await.or_page(caller)?;
    let updates = rows_context(&state, &org, &updated).await.or_page(caller)?;
    Ok(render(
        StatusCode::OK,
        "log_rows.html",
        base_context(Some(person.caller())),
        context! {
            hook => context! { id => id.as_str() },
            rows => items,
            updates => updates,
            oob => true,
            poll => poll_url(&id, &kept, newest, &next_watch),
            can_edit => person.caller().allows(Ability::ManageWebhooks),
        },
    ))
}

fn pretty(payload: &str) -> String {
    serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned())
}

/// One delivery in full (htmx, into the expanded row).
pub async fn detail(
    State(state): State<AppState>,
    person: Person,
    Path((id, delivery_id)): Path<(WebhookId, DeliveryId)>,
) -> PageResult {
    let caller = person.caller();
    let (d, attempts) = state
        .store
        .delivery(caller.organization_id(), &id, &delivery_id)
        .await
        .map_err(ApiError::from)
        .and_then(|found| {
            found.ok_or_else(|| ApiError::NotFound(format!("delivery {delivery_id}")))
        })
        .or_page(caller)?;
    let headers = |list: &[(String, String)]| -> Vec<Ctx> {
        list.iter()
            .map(|(k, v)| context! { name => k, value => v })
            .collect()
    };
    let attempts_ctx: Vec<Ctx> = attempts
        .iter()
        .rev()
        .map(|a| {
            context! {
                number => a.number,
                started_at => a.started_at.to_rfc3339(),
                duration_ms => a.duration_ms,
                status => a.response_status,
                response_headers => headers(&a.response_headers),
                body => &a.response_body,
                error => &a.error,
            }
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        "log_detail.html",
        base_context(Some(person.caller())),
        context! {
            hook => context! { id => id.as_str() },
            d => context! {
                id => d.id.as_str(), state => d.state.as_str(), url => crate::domain::webhook::mask_url(&d.url), method => d.method.as_str(),
                event_id => &d.event_id, next_attempt_at => d.next_attempt_at.map(|t| t.to_rfc3339()),
            },
            payload => pretty(&d.payload),
            request_headers => attempts.last().map(|a| headers(&a.request_headers)).unwrap_or_default(),
            attempts => attempts_ctx,
            can_edit => person.caller().allows(Ability::ManageWebhooks),
        },
    ))
}

pub async fn resend(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path((id, delivery_id)): Path<(WebhookId, DeliveryId)>,
    form: FormBody,
) -> PageResult {
    person.permit(
        &headers,
        &form,
        Ability::ManageWebhooks,
        "sending deliveries again",
    )?;
    let org = person.caller().organization_id().to_owned();
    crate::sends::resend(&state.store, &state.engine, &org, &id, &delivery_id)
        .await
        .or_page(person.caller())?;
    Ok(super::redirect(&format!("/webhooks/{id}/logs?done=resent")).into_response())
}

/// "Send a test" from the Logs tab: with htmx the outcome of each URL in place, else back to
/// the log, where the test deliveries are on top.
pub async fn send_test(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(id): Path<WebhookId>,
    form: FormBody,
) -> PageResult {
    person.permit(&headers, &form, Ability::ManageWebhooks, "sending tests")?;
    let outcome: Result<_, ApiError> = async {
        let editor = state.webhook_editor(person.caller())?;
        let requested = Some(form.get("event_type"));
        Ok(editor.test(&state.engine, &id, requested).await?)
    }
    .await;
    if !headers.contains_key("hx-request") {
        outcome.or_page(person.caller())?;
        return Ok(super::redirect(&format!("/webhooks/{id}/logs?done=tested")).into_response());
    }
    let (event_type, results, problem) = match outcome {
        Ok((event_type, outcomes)) => (
            event_type.name.to_owned(),
            outcomes
                .iter()
                .map(crate::sends::TestOutcome::to_json)
                .collect::<Vec<_>>(),
            None,
        ),
        Err(ApiError::Invalid(_, errors)) => (
            String::new(),
            Vec::new(),
            Some(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ),
        Err(e) => (String::new(), Vec::new(), Some(e.to_string())),
    };
    Ok(render(
        StatusCode::OK,
        "test_result.html",
        context! {},
        context! {
            event_type => event_type,
            results => minijinja::Value::from(minijinja::value::Serde(&results)),
            problem => problem,
        },
    ))
}

/// The event types for the filter, grouped by resource.
fn type_groups() -> Vec<Ctx> {
    EventType::by_resource()
        .into_iter()
        .map(|(group, types)| {
            let types: Vec<Ctx> = types
                .iter()
                .map(|t| context! { name => t.name, label => t.label })
                .collect();
            context! { group => group, types => types }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_told_apart_by_its_end() {
        assert_eq!(url_end("https://hooks.example.com/a/ok"), "/a/ok");
        assert_eq!(url_end("https://hooks.example.com/fail?x=1"), "/fail?x=1");
        assert_eq!(url_end("https://hooks.example.com/"), "hooks.example.com");
        assert_eq!(url_end("http://127.0.0.1:9000"), "127.0.0.1:9000");
    }

    #[test]
    fn filter_times_are_read_as_a_date_field_sends_them() {
        let at = typed_time("2026-12-07T14:30").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-07T14:30:00Z");
        assert!(typed_time("2026-12-07T14:30:05").is_some());
        assert!(typed_time("2026-12-07T14:30:05+01:00").is_some());
        assert!(typed_time("yesterday").is_none());
    }

    #[test]
    fn the_url_filter_names_a_url_by_its_key() {
        let urls = vec![
            ("k0".to_owned(), "https://a.example/1".to_owned()),
            ("k1".to_owned(), "https://u:pw@b.example/2".to_owned()),
        ];
        let (q, kept) = query_of(
            Some("url=k1&delivery_id=msg_1&since=2026-12-07T14:30"),
            &urls,
        );
        assert_eq!(q.url.as_deref(), Some("https://u:pw@b.example/2"));
        assert_eq!(q.delivery_id.as_deref(), Some("msg_1"));
        assert!(q.since.is_some());
        assert!(kept.iter().all(|(_, v)| !v.contains("pw")), "{kept:?}");
        let (q, _) = query_of(Some("url=k7"), &urls);
        assert_eq!(q.url, None, "no such URL: no filter");
    }
}
