//! Failure notifications: one per finally failed delivery of a webhook with `mail_ids`.

use serde::Serialize;

use super::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    /// Waiting for the next e-mail (or for SMTP to work again).
    Pending,
    Sent,
    /// Not sent, for a reason recorded with it (no SMTP configured, no recipients).
    Skipped,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Sent => "sent",
            NotificationState::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Sent, Self::Skipped]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: String,
    pub organization_id: String,
    pub webhook_id: String,
    pub delivery_id: String,
    pub state: NotificationState,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// What an e-mail says about one failed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureReport {
    pub notification_id: String,
    pub delivery_id: String,
    pub url: String,
    pub method: String,
    pub event_type: String,
    pub incident_id: String,
    pub incident_message: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    /// The first part of the last answer's body.
    pub last_body: Option<String>,
    /// The transport error or render failure, when there was no answer.
    pub last_error: Option<String>,
    pub failed_at: Timestamp,
}

/// How a batch of notifications ended.
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationOutcome {
    Sent(Timestamp),
    Skipped(String),
    /// Stays pending; tried again at `retry_at`.
    Failed {
        error: String,
        retry_at: Timestamp,
    },
    /// Stays pending, untouched, until the webhook's window ends.
    Deferred(Timestamp),
}
