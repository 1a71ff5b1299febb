//! Failure notifications over SMTP: at most one e-mail per webhook per `notify.window` —
//! the first failure promptly, later ones gathered into a digest — retried with backoff when
//! SMTP fails, recorded as skipped (with the reason) when no SMTP is configured.

pub mod email;
pub mod smtp;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::{
    config::Config,
    domain::{
        ids::{OrganizationId, WebhookId},
        notification::{FailureReport, NotificationOutcome},
        webhook::Webhook,
        Timestamp,
    },
    store::Store,
};

pub use smtp::Mailer;

/// How often the notifier looks for due notifications.
const TICK: Duration = Duration::from_millis(500);
/// A claimed notification is not taken again for this long (another node, a crash).
const CLAIM: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub const NO_SMTP: &str =
    "SMTP is not configured: set [smtp] host (see `tocsin config`) to have failure e-mails sent";

pub struct Notifier {
    store: Arc<dyn Store>,
    mailer: Option<Arc<Mailer>>,
    window: Duration,
    public_url: String,
    /// Names this notifier's mail reservations (one per process).
    owner: String,
}

impl Notifier {
    /// `mailer`: `None` without SMTP (notifications are then recorded as skipped). Shared
    /// with what pages e-mail at once (invitations).
    pub fn new(
        store: Arc<dyn Store>,
        config: &Config,
        mailer: Option<Arc<Mailer>>,
    ) -> anyhow::Result<Notifier> {
        Ok(Notifier {
            store,
            mailer,
            window: config.notify.window,
            public_url: config.public_url(),
            owner: crate::domain::ids::new_id("ntf"),
        })
    }

    /// Runs until the returned task is aborted (at shutdown).
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "notifier: trying again");
                }
                tokio::time::sleep(TICK).await;
            }
        })
    }

    async fn tick(&self) -> anyhow::Result<()> {
        let now = Timestamp::now();
        // Notices first: news about the webhook as a whole matters most, and delivery
        // failures of the same moment follow in the window's digest.
        let notices = self.store.claim_notices(now, now.plus(CLAIM), 500).await?;
        for ((org, webhook_id), items) in
            by_webhook(notices, |n| (&n.organization_id, &n.webhook_id))
        {
            let ids: Vec<String> = items.iter().map(|n| n.id.clone()).collect();
            let tries = items.iter().map(|n| n.attempts).max().unwrap_or(0);
            let recipients = self.recipients(&org, &webhook_id, now).await?;
            let reserved = recipients.is_ok();
            let outcome = match recipients {
                Err(outcome) => outcome,
                Ok(webhook) => {
                    let waiting = self.store.pending_count(&webhook_id).await?;
                    let email = email::compose_notices(
                        &webhook.spec.name,
                        &webhook_id,
                        &self.public_url,
                        &items,
                        waiting,
                    );
                    self.send(&webhook, &email, tries).await
                }
            };
            count(&outcome, ids.len());
            self.store.finish_notices(&ids, &outcome).await?;
            if reserved {
                self.store.release_mail(&webhook_id, &self.owner).await?;
            }
        }
        let claimed = self
            .store
            .claim_notifications(now, now.plus(CLAIM), 500)
            .await?;
        for ((org, webhook_id), items) in
            by_webhook(claimed, |(n, _)| (&n.organization_id, &n.webhook_id))
        {
            let ids: Vec<String> = items.iter().map(|(n, _)| n.id.clone()).collect();
            let tries = items.iter().map(|(n, _)| n.attempts).max().unwrap_or(0);
            let recipients = self.recipients(&org, &webhook_id, now).await?;
            let reserved = recipients.is_ok();
            let outcome = match recipients {
                Err(outcome) => outcome,
                Ok(webhook) => {
                    let failures: Vec<FailureReport> =
                        items.iter().map(|(_, f)| f.clone()).collect();
                    let email = email::compose(
                        &webhook.spec.name,
                        &webhook_id,
                        &self.public_url,
                        &failures,
                    );
                    self.send(&webhook, &email, tries).await
                }
            };
            count(&outcome, ids.len());
            self.store.finish_notifications(&ids, &outcome).await?;
            if reserved {
                self.store.release_mail(&webhook_id, &self.owner).await?;
            }
        }

        Ok(())
    }

    /// The webhook to e-mail about now, or why not: no SMTP, no webhook or no addresses
    /// (skipped), another node is e-mailing about it (deferred until its reservation ends),
    /// or an e-mail to it went out within the window (deferred to its end). `Ok` leaves this
    /// notifier's reservation, which the caller gives back after recording the outcome.
    async fn recipients(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        now: Timestamp,
    ) -> anyhow::Result<Result<Webhook, NotificationOutcome>> {
        if self.mailer.is_none() {
            return Ok(Err(NotificationOutcome::Skipped(NO_SMTP.to_owned())));
        }
        let Some(webhook) = self.store.webhook(organization_id, webhook_id).await? else {
            return Ok(Err(NotificationOutcome::Skipped(
                "the webhook was deleted".to_owned(),
            )));
        };
        if webhook.spec.mail_ids.is_empty() {
            return Ok(Err(NotificationOutcome::Skipped(
                "the webhook has no mail_ids any more".to_owned(),
            )));
        }
        // One e-mail per window across nodes: reserve first, then look at the last one
        // sent (a node that sent one records it before giving its reservation back).
        if let Err(until) = self
            .store
            .reserve_mail(webhook_id, &self.owner, now, now.plus(CLAIM))
            .await?
        {
            return Ok(Err(NotificationOutcome::Deferred(until)));
        }
        if let Some(last) = self.store.last_email_at(webhook_id).await? {
            let window_ends = last.plus(self.window);
            if window_ends > now {
                self.store.release_mail(webhook_id, &self.owner).await?;
                return Ok(Err(NotificationOutcome::Deferred(window_ends)));
            }
        }
        Ok(Ok(webhook))
    }

    /// Sends, and says how it went; a failure is tried again with a growing wait.
    async fn send(
        &self,
        webhook: &Webhook,
        email: &email::Email,
        tries: u32,
    ) -> NotificationOutcome {
        let Some(mailer) = &self.mailer else {
            return NotificationOutcome::Skipped(NO_SMTP.to_owned());
        };
        match mailer.send(&webhook.spec.mail_ids, email).await {
            Ok(()) => {
                tracing::info!(webhook = %webhook.id, subject = ?email.subject, "e-mail sent");
                NotificationOutcome::Sent(Timestamp::now())
            }
            Err(error) => {
                let wait = Duration::from_secs(1u64 << tries.min(16)).min(MAX_BACKOFF);
                tracing::warn!(webhook = %webhook.id, %error, retry_in = ?wait, "e-mail not sent");
                NotificationOutcome::Failed {
                    error,
                    retry_at: Timestamp::now().plus(wait),
                }
            }
        }
    }
}

/// Counts how a batch of notifications or notices ended (deferred ones are not done).
fn count(outcome: &NotificationOutcome, n: usize) {
    let state = match outcome {
        NotificationOutcome::Sent(_) => "sent",
        NotificationOutcome::Skipped(_) => "skipped",
        NotificationOutcome::Failed { .. } => "failed",
        NotificationOutcome::Deferred(_) => return,
    };
    crate::metrics::metrics().notifications_finished(state, n as u64);
}

/// Claimed items grouped by (organization, webhook): one e-mail per webhook.
fn by_webhook<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> (&OrganizationId, &WebhookId),
) -> BTreeMap<(OrganizationId, WebhookId), Vec<T>> {
    let mut groups: BTreeMap<(OrganizationId, WebhookId), Vec<T>> = BTreeMap::new();
    for item in items {
        let (org, webhook) = key(&item);
        let key = (org.clone(), webhook.clone());
        groups.entry(key).or_default().push(item);
    }
    groups
}
