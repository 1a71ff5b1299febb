//! Failure notifications: one per finally failed delivery of a webhook with `mail_ids`; and
//! notices about a webhook as a whole (a URL down or back, the webhook disabled).

use crate::domain::ids::{DeliveryId, OrganizationId, WebhookId};
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
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub delivery_id: DeliveryId,
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
    pub delivery_id: DeliveryId,
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

/// What a notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A URL stopped answering: its circuit opened, its deliveries wait.
    Outage,
    /// The URL answers again: what waited is being delivered.
    Recovered,
    /// tocsin disabled the webhook (the URL answered 410 Gone).
    Disabled,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Outage => "outage",
            NoticeKind::Recovered => "recovered",
            NoticeKind::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Outage, Self::Recovered, Self::Disabled]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A notice about a webhook as a whole, for its failure addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub id: String,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub kind: NoticeKind,
    /// The URL concerned, its password masked (a notice never holds a secret).
    pub url: String,
    /// What happened, in words: since when, the last error.
    pub detail: String,
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// A notice as listed: what it said, and what became of its e-mail.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeRecord {
    pub notice: Notice,
    pub state: NotificationState,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

impl Notice {
    pub fn new(
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        kind: NoticeKind,
        url: &str,
        detail: String,
    ) -> Self {
        Self {
            id: super::ids::new_id("ntc"),
            organization_id: organization_id.clone(),
            webhook_id: webhook_id.clone(),
            kind,
            url: super::webhook::mask_url(url),
            detail,
            attempts: 0,
            created_at: Timestamp::now(),
        }
    }
}
