//! One HTTP attempt of a delivery: build the request, sign it, send it, read a bounded part
//! of the answer, and say what happened. No database access here.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::guard::{Blocked, NetworkPolicy};
use crate::{
    domain::{
        delivery::Attempt,
        retry::parse_retry_after,
        webhook::{is_credential_header, mask_url, mask_value, Header, Method},
        Timestamp,
    },
    payload,
};

/// At most this much of a response body is read; the rest is not waited for.
pub const MAX_RESPONSE_READ: usize = 64 * 1024;
/// At most this much of it is kept in the log.
pub const MAX_RESPONSE_KEPT: usize = 4 * 1024;

pub const USER_AGENT: &str = concat!("tocsin/", env!("CARGO_PKG_VERSION"));

pub struct Call<'a> {
    pub delivery_id: &'a str,
    pub url: &'a str,
    pub method: Method,
    pub payload: &'a str,
    pub headers: &'a [Header],
    /// The current secret first, then one in its grace period.
    pub secrets: &'a [&'a str],
    pub timeout: Duration,
    pub number: u32,
}

#[derive(Debug)]
pub struct Outcome {
    pub attempt: Attempt,
    pub succeeded: bool,
    /// False when trying again cannot help (a refused address).
    pub retryable: bool,
    pub retry_after: Option<Duration>,
    /// The call's timeout ran out (no answer, or an answer that stalled after its status).
    pub timed_out: bool,
}

pub async fn send(client: &reqwest::Client, policy: &NetworkPolicy, call: Call<'_>) -> Outcome {
    let started_at = Timestamp::now();
    let clock = Instant::now();
    let timestamp = started_at.as_micros() / 1_000_000;
    let headers = request_headers(&call, timestamp);
    let mut attempt = Attempt {
        number: call.number,
        started_at,
        request_headers: recorded(&headers),
        ..Attempt::default()
    };

    // A literal IP address never passes through the resolver, so it is checked here.
    if let Some(blocked) = literal_address_blocked(policy, call.url) {
        attempt.error = Some(blocked.to_string());
        return Outcome {
            attempt,
            succeeded: false,
            retryable: false,
            retry_after: None,
            timed_out: false,
        };
    }

    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in &headers {
        // Names and values were validated when the webhook was saved.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(n, v);
        }
    }
    let method = match call.method {
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
    };
    let request = client
        .request(method, call.url)
        .headers(map)
        .timeout(call.timeout)
        .body(call.payload.to_owned());

    match request.send().await {
        Ok(response) => answered(response, attempt, &call, timestamp, clock).await,
        Err(error) => not_answered(&error, attempt, &call, clock),
    }
}

/// The request's headers: ours, the webhook's, and the Standard Webhooks signature.
fn request_headers(call: &Call<'_>, timestamp: i64) -> Vec<(String, String)> {
    let signature = payload::sign_all(
        call.secrets,
        call.delivery_id,
        timestamp,
        call.payload.as_bytes(),
    );
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), USER_AGENT.into()),
    ];
    headers.extend(
        call.headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone())),
    );
    headers.push(("webhook-id".into(), call.delivery_id.into()));
    headers.push(("webhook-timestamp".into(), timestamp.to_string()));
    headers.push(("webhook-signature".into(), signature));
    headers
}

/// The headers as the log keeps them: credentials masked.
fn recorded(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let shown = if is_credential_header(k) {
                mask_value(v)
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// The receiver answered: its status, headers and a bounded part of its body, read within
/// the call's timeout.
async fn answered(
    mut response: reqwest::Response,
    mut attempt: Attempt,
    call: &Call<'_>,
    timestamp: i64,
    clock: Instant,
) -> Outcome {
    let status = response.status();
    attempt.response_status = Some(status.as_u16());
    attempt.response_headers = kept_headers(response.headers());
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, timestamp));
    // The whole answer must come within the timeout (reqwest's covers the body):
    // a receiver that sends its status line and then stalls has not answered.
    let mut body = Vec::new();
    let mut stalled = false;
    while body.len() < MAX_RESPONSE_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                stalled = e.is_timeout();
                break;
            }
        }
    }
    body.truncate(MAX_RESPONSE_KEPT);
    // Kept as text, with U+FFFD for what is not: invalid UTF-8 and NUL, which
    // PostgreSQL's text cannot store (it failed the whole recording batch).
    attempt.response_body = Some(String::from_utf8_lossy(&body).replace('\0', "\u{fffd}"));
    attempt.duration_ms = clock.elapsed().as_millis() as u64;
    let succeeded = status.is_success() && !stalled;
    if stalled {
        attempt.error = Some(format!(
            "answered {status} but the rest of the answer did not come within {} s (timeout)",
            call.timeout.as_secs()
        ));
    } else if status.is_redirection() {
        let location = attempt
            .response_headers
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.as_str())
            .unwrap_or("an unknown location");
        attempt.error = Some(format!(
            "redirects are not followed: answer {status} to {location}"
        ));
    }
    Outcome {
        attempt,
        succeeded,
        retryable: !succeeded,
        retry_after,
        timed_out: stalled,
    }
}

/// No answer: refused, blocked by the network policy (not worth retrying), or timed out.
fn not_answered(
    error: &reqwest::Error,
    mut attempt: Attempt,
    call: &Call<'_>,
    clock: Instant,
) -> Outcome {
    attempt.duration_ms = clock.elapsed().as_millis() as u64;
    let blocked = chain(error).any(|e| e.downcast_ref::<Blocked>().is_some());
    attempt.error = Some(if error.is_timeout() {
        format!("no answer within {} s (timeout)", call.timeout.as_secs())
    } else {
        // The client names the URL in its errors; its password must not be kept.
        describe(error).replace(call.url, &mask_url(call.url))
    });
    Outcome {
        attempt,
        succeeded: false,
        retryable: !blocked,
        retry_after: None,
        timed_out: error.is_timeout(),
    }
}

fn literal_address_blocked(policy: &NetworkPolicy, url: &str) -> Option<Blocked> {
    let parsed = url::Url::parse(url).ok()?;
    let address = match parsed.host()? {
        url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
        url::Host::Ipv6(v6) => std::net::IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    policy.check(address).err()
}

fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

/// The error and its causes in words, without repeating what an outer layer already said.
fn describe(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(error) {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// At most this much of an answer's headers is kept per attempt.
const MAX_HEADERS_KEPT: usize = 8 * 1024;

/// The answer's headers as recorded: in order, until [`MAX_HEADERS_KEPT`] bytes, then one
/// entry saying how many more there were.
fn kept_headers(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut size = 0;
    let mut dropped = 0;
    for (name, value) in headers {
        let mut value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if is_credential_header(name.as_str()) {
            value = mask_value(&value); // Set-Cookie
        }
        size += name.as_str().len() + value.len();
        if size > MAX_HEADERS_KEPT {
            dropped += 1;
        } else {
            kept.push((name.to_string(), value));
        }
    }
    if dropped > 0 {
        kept.push((
            "tocsin-note".to_owned(),
            format!(
                "{dropped} more headers not kept (over {} KiB)",
                MAX_HEADERS_KEPT / 1024
            ),
        ));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_8_kib_of_answer_headers_is_kept() {
        let mut headers = reqwest::header::HeaderMap::new();
        for i in 0..100 {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_str(&"v".repeat(200)).unwrap(),
            );
        }
        let kept = kept_headers(&headers);
        let size: usize = kept[..kept.len() - 1]
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        assert!(size <= MAX_HEADERS_KEPT, "{size}");
        let note = kept.last().unwrap();
        assert_eq!(note.0, "tocsin-note");
        assert!(
            note.1
                .starts_with(&format!("{} more headers", 100 - (kept.len() - 1))),
            "{}",
            note.1
        );
        let small = reqwest::header::HeaderMap::from_iter([(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("text/plain"),
        )]);
        assert_eq!(
            kept_headers(&small),
            [("content-type".to_owned(), "text/plain".to_owned())]
        );
    }
}
