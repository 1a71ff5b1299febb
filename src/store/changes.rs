//! What other nodes changed, heard at once: on PostgreSQL, triggers (migration
//! `0020_notify.sql`) send a notification on the channel `tocsin` when a transaction that
//! changed webhooks, tokens or claimable work commits, and each node listens. A listener
//! connection is opened on the first subscription only, so commands that merely open the
//! store (`rotate-key`, `token create`) do not hold one. Notifications are a shortcut: every
//! cache still checks the store on its own schedule, which is what covers a notification
//! missed while the listener reconnected ([`Change::Missed`] says when that may have been).

use std::{sync::OnceLock, time::Duration};

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

/// The channel the triggers notify on.
const CHANNEL: &str = "tocsin";
/// Waiting subscribers fall behind past this many changes; they are told (`Lagged`) and
/// should drop everything, as for [`Change::Missed`].
const BUFFER: usize = 1024;
/// Between attempts to reconnect a lost listener.
const RECONNECT: Duration = Duration::from_secs(1);

/// A change made by some node, as the store heard of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The organization's webhooks changed (its `webhooks_version` moved).
    Webhooks(crate::domain::ids::OrganizationId),
    /// A token was revoked or changed.
    Tokens,
    /// Deliveries any node may claim now.
    Work,
    /// The listener (re)connected: changes made meanwhile were not heard.
    Missed,
}

impl Change {
    /// A notification's payload as the triggers write it.
    pub fn parse(payload: &str) -> Option<Change> {
        match payload {
            "tokens" => Some(Change::Tokens),
            "work" => Some(Change::Work),
            _ => payload
                .strip_prefix("webhooks:")
                .filter(|id| !id.is_empty())
                .map(|id| Change::Webhooks(id.into())),
        }
    }
}

/// The store's feed of changes; listens from the first [`ChangeFeed::subscribe`] on.
pub(crate) struct ChangeFeed {
    url: String,
    sender: OnceLock<broadcast::Sender<Change>>,
}

impl ChangeFeed {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            sender: OnceLock::new(),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender
            .get_or_init(|| {
                let (sender, _) = broadcast::channel(BUFFER);
                tokio::spawn(listen(self.url.clone(), sender.clone()));
                sender
            })
            .subscribe()
    }
}

/// Listens for as long as the process runs, reconnecting after a loss. Sending fails only
/// while nobody subscribes, which is no reason to stop.
async fn listen(url: String, sender: broadcast::Sender<Change>) {
    loop {
        match connect(&url).await {
            Ok(mut listener) => {
                let _ = sender.send(Change::Missed);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => {
                            if let Some(change) = Change::parse(notification.payload()) {
                                let _ = sender.send(change);
                            }
                        }
                        // The connection dropped; the next call reconnects.
                        Ok(None) => {
                            let _ = sender.send(Change::Missed);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the PostgreSQL listener for changes by other nodes; reconnecting (until then they are seen within 100 ms)");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for changes by other nodes; retrying (until then they are seen within 100 ms)");
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_as_the_triggers_write_them() {
        assert_eq!(
            Change::parse("webhooks:org_1"),
            Some(Change::Webhooks("org_1".into()))
        );
        assert_eq!(Change::parse("tokens"), Some(Change::Tokens));
        assert_eq!(Change::parse("work"), Some(Change::Work));
        assert_eq!(Change::parse("webhooks:"), None);
        assert_eq!(Change::parse("something else"), None);
    }
}
