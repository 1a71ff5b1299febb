//! Deliveries (one event to one URL of one webhook) and their attempts.

use crate::domain::ids::{DeliveryId, OrganizationId, WebhookId};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{webhook::Method, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A delivery as intake creates it. URL and method are fixed here, so that editing a
/// webhook's URLs affects only deliveries created afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Also the `webhook-id` header: stable across attempts.
    pub id: DeliveryId,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub event_id: String,
    pub event_type: &'static str,
    pub incident_id: String,
    pub url: String,
    pub method: Method,
    /// The rendered payload, shared with every delivery of the event that sends the same bytes.
    pub payload: Arc<str>,
    /// Its row in `payloads`, shared the same way; `None` for a delivery that failed to render.
    pub payload_id: Option<String>,
    /// Set when the payload could not be rendered: the delivery is stored as failed, with
    /// this reason, and never attempted.
    pub failure: Option<String>,
    /// The webhook has `mail_ids`: a failure records a notification.
    pub notify: bool,
    pub origin: Origin,
    pub created_at: Timestamp,
}

/// Why a delivery exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// An event matched the webhook.
    #[default]
    Event,
    /// Sent by hand to try the webhook (`POST …/test`): one attempt, now, in no lane.
    Test,
    /// Sending the logged delivery with this id again.
    Resend(DeliveryId),
}

impl Origin {
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Event => "event",
            Origin::Test => "test",
            Origin::Resend(_) => "resend",
        }
    }

    pub fn resent_from(&self) -> Option<&DeliveryId> {
        match self {
            Origin::Resend(id) => Some(id),
            _ => None,
        }
    }

    /// From the stored `origin` and `resent_from` columns.
    pub fn parse(kind: &str, resent_from: Option<DeliveryId>) -> Option<Self> {
        match (kind, resent_from) {
            ("event", _) => Some(Origin::Event),
            ("test", _) => Some(Origin::Test),
            ("resend", Some(id)) => Some(Origin::Resend(id)),
            _ => None,
        }
    }
}

impl NewDelivery {
    /// Deliveries sharing a lane are attempted in event order: same webhook, same URL and
    /// method, same incident.
    pub fn lane(&self) -> String {
        if self.origin == Origin::Test {
            // A test waits for nothing and holds nothing up.
            return lane(&self.webhook_id, self.method, &self.url, &self.id);
        }
        lane(&self.webhook_id, self.method, &self.url, &self.incident_id)
    }
}

pub fn lane(webhook_id: &WebhookId, method: Method, url: &str, incident_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [webhook_id, method.as_str(), url, incident_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The key of a URL's shared circuit: the SHA-256 of the URL as sent (hex), so the row
/// never holds the URL, which may carry a password.
pub fn url_key(url: &str) -> String {
    hex::encode(Sha256::digest(url.as_bytes()))
}

/// A stored delivery with its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub event_id: String,
    pub event_type: String,
    pub incident_id: String,
    pub url: String,
    pub method: Method,
    pub payload: String,
    /// Its row in `payloads`; `None` for one stored before payloads had rows, or never
    /// rendered.
    pub payload_id: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub origin: Origin,
}

impl Delivery {
    /// When it is tried next: only while it is pending (a finished row keeps the time it
    /// last had, which means nothing any more).
    pub fn next_attempt(&self) -> Option<Timestamp> {
        (self.state == DeliveryState::Pending)
            .then_some(self.next_attempt_at)
            .flatten()
    }
}

/// One HTTP call of a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attempt {
    pub number: u32,
    pub started_at: Timestamp,
    pub duration_ms: u64,
    /// Credential values already masked.
    pub request_headers: Vec<(String, String)>,
    pub response_status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    /// The first 4 KiB of the response body, lossily decoded.
    pub response_body: Option<String>,
    /// The transport error in words, when there was no response.
    pub error: Option<String>,
}

/// What to write after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub delivery_id: DeliveryId,
    pub attempt: Attempt,
    pub state: DeliveryState,
    /// When pending: the time of the next attempt.
    pub next_attempt_at: Option<Timestamp>,
    /// The webhook has `mail_ids`: a final failure records a notification.
    pub notify: bool,
}

/// A bulk retry that saves no progress for this long has lost its runner: it is reported
/// interrupted, and a running node takes it up again from where it stopped.
pub const RETRY_JOB_SILENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a bulk retry's runner waits before trying a step again after `failures` failed
/// steps in a row (a store that hiccups: a PostgreSQL failover, a lock held past the busy
/// timeout); `None` once it gives up and reports the job failed, with the error. The waits
/// add up to 15 s, well inside [`RETRY_JOB_SILENCE`], so no other node takes the job over
/// while its runner waits.
pub fn bulk_retry_backoff(failures: u32) -> Option<std::time::Duration> {
    match failures {
        1..=4 => Some(std::time::Duration::from_secs(1 << (failures - 1))),
        _ => None,
    }
}

/// A bulk retry: a webhook's finished deliveries matching filters, set pending again in
/// order, batch by batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryJob {
    pub id: String,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    /// The filters as given (`state`, `event_type`, `incident_id`, `since`, `until`).
    pub filters: serde_json::Value,
    pub state: RetryJobState,
    /// Matching deliveries when it started.
    pub total: u64,
    /// Re-queued so far.
    pub done: u64,
    /// The position (`seq`) of the last delivery re-queued: a runner taking the job up
    /// again goes on after it.
    pub after_seq: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryJobState {
    Running,
    Done,
    /// Its runner stopped (no progress for [`RETRY_JOB_SILENCE`]); a running node takes it
    /// up again from where it stopped, and it is `running` once more.
    Interrupted,
    Failed,
}

impl RetryJobState {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryJobState::Running => "running",
            RetryJobState::Done => "done",
            RetryJobState::Interrupted => "interrupted",
            RetryJobState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Done, Self::Interrupted, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_retry_waits_longer_after_each_failed_step_then_gives_up() {
        let waits: Vec<u64> = (1..=4)
            .map(|n| bulk_retry_backoff(n).expect("tries again").as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(bulk_retry_backoff(5), None);
        assert_eq!(bulk_retry_backoff(0), None, "no failure, no wait");
        let total: u64 = waits.iter().sum();
        assert!(
            std::time::Duration::from_secs(total) < RETRY_JOB_SILENCE,
            "the runner tries again before other nodes think it gone"
        );
    }
}
