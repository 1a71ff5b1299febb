//! Webhooks as people change them: create, update (with the masked-credential rule),
//! delete, reveal and rotate the signing secret, send a test — each with its audit entry in
//! the same transaction and the catalog told. The JSON API and the pages both come here, so
//! each rule and each message exists once; whether the caller may is theirs to check (the
//! `manage-webhooks` ability).

use std::{sync::Arc, time::Duration};

use serde_json::Value;

use crate::{
    catalog::Catalog,
    dispatch::Engine,
    domain::{
        audit::{self, Actor, AuditEntry},
        event_type::EventType,
        ids::{OrganizationId, WebhookId},
        json_text::whole_number,
        webhook::{self, audit_mask, audit_view, Webhook, WebhookSpec},
        FieldError, Timestamp,
    },
    intake::IntakeError,
    sends::{self, TestOutcome},
    store::{Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The webhook's body, field by field.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// What a test was asked to send.
    #[error("{0}")]
    InvalidTest(FieldError),
    #[error("webhook {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A test's deliveries could not be stored.
    #[error(transparent)]
    Send(#[from] IntakeError),
}

/// Who changes the organization's webhooks (the audit log names them).
pub struct Editor<'a> {
    pub store: &'a Arc<dyn Store>,
    pub catalog: &'a Catalog,
    pub organization_id: &'a OrganizationId,
    pub actor: Actor,
}

/// How long the old secret keeps signing after a rotation, unless the caller says.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// `grace_period_seconds` of a rotation request (absent: 24 h), checked.
pub fn grace_period(value: Option<&Value>) -> Result<Duration, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_GRACE),
        Some(v) => match whole_number(v) {
            Some(s) if (0..=MAX_GRACE_SECONDS as i64).contains(&s) => {
                Ok(Duration::from_secs(s as u64))
            }
            _ => Err(FieldError::new(
                "grace_period_seconds",
                format!(
                    "must be a whole number of seconds from 0 (the old secret stops at once) to {MAX_GRACE_SECONDS} (7 days), got {v}"
                ),
            )),
        },
    }
}

/// The organization's webhook `id`.
pub async fn find(
    store: &dyn Store,
    organization_id: &OrganizationId,
    id: &WebhookId,
) -> Result<Webhook, WebhookError> {
    store
        .webhook(organization_id, id)
        .await?
        .ok_or_else(|| WebhookError::NotFound(id.to_string()))
}

/// A webhook body, checked: its fields, then its filter and custom payload; `stored`: the
/// filters of the webhook it replaces (kept as they are, they need not meet rules added
/// since).
fn parse(body: &Value, stored: Option<&Value>) -> Result<WebhookSpec, WebhookError> {
    let checked =
        crate::webhook_check::check_change(body, stored).map_err(WebhookError::Invalid)?;
    Ok(checked.spec)
}

impl Editor<'_> {
    fn entry(&self, action: &str, id: &str, name: &str, changes: Vec<audit::Change>) -> AuditEntry {
        AuditEntry::new(
            self.organization_id,
            &self.actor,
            action,
            audit::webhook_object(id, name),
            changes,
        )
    }

    async fn existing(&self, id: &WebhookId) -> Result<Webhook, WebhookError> {
        find(self.store.as_ref(), self.organization_id, id).await
    }

    /// Creates a webhook from its API body.
    pub async fn create(&self, body: &Value) -> Result<Webhook, WebhookError> {
        let spec = parse(body, None)?;
        let hook = Webhook::new(self.organization_id, &self.actor.id, spec);
        let changes = audit::created(&audit_view(&hook.spec), audit_mask);
        let entry = self.entry("webhook.created", &hook.id, &hook.spec.name, changes);
        self.store.insert_webhook(&hook, &entry).await?;
        self.catalog.invalidate(self.organization_id);
        tracing::info!(webhook = %hook.id, name = ?hook.spec.name, "webhook created");
        Ok(hook)
    }

    /// Replaces a webhook's configuration from its API body (masked credentials sent back
    /// keep their stored values); disabling cancels its pending deliveries.
    pub async fn update(&self, id: &WebhookId, body: &Value) -> Result<Webhook, WebhookError> {
        let current = self.existing(id).await?;
        let mut spec = parse(body, current.spec.filters.as_ref())?;
        restore_masked(&mut spec, &current.spec)?;
        let changes = audit::diff(&audit_view(&current.spec), &audit_view(&spec), audit_mask);
        let entry = self.entry("webhook.updated", id, &spec.name, changes);
        let hook = self
            .store
            .update_webhook(self.organization_id, id, &spec, entry.at, &entry)
            .await?
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        self.catalog.invalidate(self.organization_id);
        if !hook.spec.enabled {
            let cancelled = self
                .store
                .cancel_pending(self.organization_id, id, Timestamp::now())
                .await?;
            crate::metrics::metrics().deliveries_finished("cancelled", cancelled);
            tracing::info!(webhook = %hook.id, cancelled, "webhook disabled; pending deliveries cancelled");
        }
        tracing::info!(webhook = %hook.id, "webhook updated");
        Ok(hook)
    }

    /// Deletes a webhook (its deliveries go with it).
    pub async fn delete(&self, id: &WebhookId) -> Result<(), WebhookError> {
        let current = self.existing(id).await?;
        let entry = self.entry("webhook.deleted", id, &current.spec.name, Vec::new());
        let deleted = self
            .store
            .delete_webhook(self.organization_id, id, &entry)
            .await?;
        self.catalog.invalidate(self.organization_id);
        if !deleted {
            return Err(WebhookError::NotFound(id.to_string()));
        }
        tracing::info!(webhook = %id, "webhook deleted");
        Ok(())
    }

    /// The webhook with its signing secret, for those who may manage webhooks: the same
    /// people who see a secret when they create or rotate it (one rule for seeing secrets).
    /// Each reveal is audited as `webhook.secret_revealed`.
    pub async fn reveal_secret(&self, id: &WebhookId) -> Result<Webhook, WebhookError> {
        let hook = self.existing(id).await?;
        let entry = self.entry("webhook.secret_revealed", id, &hook.spec.name, vec![]);
        self.store.append_audit(&entry).await?;
        Ok(hook)
    }

    /// Gives a webhook a new signing secret; the answer is the only place it is shown.
    /// Until `grace` has passed, deliveries carry a signature with the old secret too.
    pub async fn rotate_secret(
        &self,
        id: &WebhookId,
        grace: Duration,
    ) -> Result<Webhook, WebhookError> {
        let current = self.existing(id).await?;
        // The secret is named as changed, never shown.
        let masked = audit::Change {
            field: "secret".into(),
            before: Value::String("****".into()),
            after: Value::String("****".into()),
        };
        let entry = self.entry(
            "webhook.secret_rotated",
            id,
            &current.spec.name,
            vec![masked],
        );
        let previous = (!grace.is_zero()).then(|| webhook::PreviousSecret {
            secret: current.secret.clone(),
            until: entry.at.plus(grace),
        });
        let secret = webhook::new_secret();
        let hook = self
            .store
            .set_webhook_secret(
                self.organization_id,
                id,
                &secret,
                previous.as_ref(),
                entry.at,
                &entry,
            )
            .await?
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        self.catalog.invalidate(self.organization_id);
        tracing::info!(webhook = %hook.id, "webhook secret rotated");
        Ok(hook)
    }

    /// Sends a test now: `requested` (see [`test_event_type`]) to every URL of the webhook;
    /// what was sent and each URL's outcome.
    pub async fn test(
        &self,
        engine: &Engine,
        id: &WebhookId,
        requested: Option<&str>,
    ) -> Result<(&'static EventType, Vec<TestOutcome>), WebhookError> {
        let hook = self.existing(id).await?;
        let event_type = test_event_type(&hook, requested).map_err(WebhookError::InvalidTest)?;
        let snapshot = self.catalog.webhooks(self.organization_id).await?;
        let organization = snapshot
            .organization
            .as_ref()
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        let (_, outcomes) =
            sends::send_test(self.store, engine, organization, &hook, event_type).await?;
        tracing::info!(webhook = %hook.id, event_type = event_type.name, "test sent");
        Ok((event_type, outcomes))
    }
}

/// URLs sent back with a masked password keep the stored one; then, if any URL now points
/// to another server, masked header credentials must be entered again.
fn restore_masked(spec: &mut WebhookSpec, stored: &WebhookSpec) -> Result<(), WebhookError> {
    let stored_urls: Vec<&str> = stored.urls.iter().map(|u| u.url.as_str()).collect();
    for u in &mut spec.urls {
        u.url = webhook::restore_masked_url(&u.url, &stored_urls);
    }
    let old_origins: Vec<String> = stored_urls.iter().map(|u| webhook::origin(u)).collect();
    let origins_changed = spec
        .urls
        .iter()
        .any(|u| !old_origins.contains(&webhook::origin(&u.url)));
    webhook::restore_masked(&mut spec.header, &stored.header, origins_changed)
        .map_err(WebhookError::Invalid)
}

/// The event type a test sends: `requested` (a v2 or v1 name, or a trigger's `event_type`)
/// if given, else the webhook's first trigger. A v1 webhook can only be tested with the
/// four incident events.
fn test_event_type(
    webhook: &Webhook,
    requested: Option<&str>,
) -> Result<&'static EventType, FieldError> {
    let chosen = match requested.filter(|s| !s.is_empty()) {
        Some(name) => EventType::from_name(name)
            .or_else(|| EventType::from_trigger("incident", name))
            .ok_or_else(|| {
                FieldError::new(
                    "event_type",
                    format!("unknown event type \"{name}\"; use one of the webhook's triggers, like incident.triggered"),
                )
            })?,
        None => webhook
            .spec
            .triggers
            .first()
            .and_then(|t| EventType::from_trigger(&t.event_class, &t.event_type))
            .ok_or_else(|| FieldError::new("event_type", "is required: the webhook has no trigger"))?,
    };
    if webhook.spec.version == webhook::PayloadVersion::V1
        && webhook.spec.payload_type == webhook::PayloadType::Standard
        && chosen.v1_name.is_none()
    {
        return Err(FieldError::new(
            "event_type",
            format!(
                "{} is sent only in v2 payloads and this webhook sends v1",
                chosen.name
            ),
        ));
    }
    Ok(chosen)
}
