//! One HTTP attempt of a delivery: build the request, sign it, send it, read a bounded part
//! of the answer, and say what happened. No database access here.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::guard::{Blocked, NetworkPolicy};
use crate::{
    domain::{
        delivery::Attempt,
        retry::parse_retry_after,
        webhook::{is_credential_header, mask_value, Header, Method},
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
    pub secret: &'a str,
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
}

pub async fn send(client: &reqwest::Client, policy: &NetworkPolicy, call: Call<'_>) -> Outcome {
    let started_at = Timestamp::now();
    let clock = Instant::now();
    let timestamp = started_at.as_micros() / 1_000_000;
    let signature = payload::sign(
        call.secret,
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
    let recorded: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            let shown = if is_credential_header(k) {
                mask_value(v)
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect();
    let mut attempt = Attempt {
        number: call.number,
        started_at,
        request_headers: recorded,
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
        Ok(mut response) => {
            let status = response.status();
            attempt.response_status = Some(status.as_u16());
            attempt.response_headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, timestamp));
            let mut body = Vec::new();
            while body.len() < MAX_RESPONSE_READ {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            body.truncate(MAX_RESPONSE_KEPT);
            attempt.response_body = Some(String::from_utf8_lossy(&body).into_owned());
            attempt.duration_ms = clock.elapsed().as_millis() as u64;
            let succeeded = status.is_success();
            if status.is_redirection() {
                attempt.error = Some(format!(
                    "redirects are not followed: answer {status} to {}",
                    attempt
                        .response_headers
                        .iter()
                        .find(|(k, _)| k == "location")
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("an unknown location")
                ));
            }
            Outcome {
                attempt,
                succeeded,
                retryable: !succeeded,
                retry_after,
            }
        }
        Err(error) => {
            attempt.duration_ms = clock.elapsed().as_millis() as u64;
            let blocked = chain(&error).any(|e| e.downcast_ref::<Blocked>().is_some());
            attempt.error = Some(if error.is_timeout() {
                format!("no answer within {} s (timeout)", call.timeout.as_secs())
            } else {
                describe(&error)
            });
            Outcome {
                attempt,
                succeeded: false,
                retryable: !blocked,
                retry_after: None,
            }
        }
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
