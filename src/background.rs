//! The jobs a node runs beside serving: each a round every so often (`periodic`), a failed
//! round logged and the next trying again, all stopped together when the node stops.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use crate::{
    catalog::Catalog,
    config::Config,
    dispatch::Engine,
    domain::{clock::Clock, Timestamp},
    http,
    notify::Notifier,
    store::{Change, Store},
};

/// What the jobs work with.
pub struct Parts<'a> {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub tokens: Arc<http::auth::TokenCache>,
    pub engine: Engine,
    pub notifier: Notifier,
    pub config: &'a Config,
    pub clock: Clock,
}

/// The running jobs.
pub struct Background(Vec<JoinHandle<()>>);

impl Background {
    pub fn stop(self) {
        for job in self.0 {
            job.abort();
        }
    }
}

/// Starts every job this configuration asks for.
pub fn start(parts: Parts<'_>) -> Background {
    let Parts {
        store,
        catalog,
        tokens,
        engine,
        notifier,
        config,
        clock,
    } = parts;
    let mut jobs = vec![
        start_heartbeat(store.clone(), engine.node().to_owned()),
        notifier.start(),
        start_checkpointer(store.clone()),
        start_housekeeping(store.clone()),
        start_retry_adopter(store.clone()),
        start_expiry(store.clone(), config.delivery.max_age, clock),
    ];
    jobs.extend(start_retention(store.clone(), config.retention.clone()));
    jobs.extend(start_auto_disable(
        store.clone(),
        catalog.clone(),
        config.delivery.disable_after,
    ));
    jobs.extend(start_change_listener(
        store.as_ref(),
        catalog,
        tokens,
        engine,
    ));
    Background(jobs)
}

/// Runs `round` every `period` until stopped; a round that overruns delays the next rather
/// than bunching them.
fn periodic<F, R>(period: Duration, mut round: F) -> JoinHandle<()>
where
    F: FnMut() -> R + Send + 'static,
    R: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            round().await;
        }
    })
}

/// A tenth of `of`, within `least` and `most`: how often a job looks for work that becomes
/// due after `of`.
fn a_tenth(of: Duration, least: Duration, most: Duration) -> Duration {
    (of / 10).clamp(least, most)
}

/// How often the write-ahead log is moved into the database file (SQLite).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Checkpoints off the writer's path (the writer's own checkpoint is the backstop).
fn start_checkpointer(store: Arc<dyn Store>) -> JoinHandle<()> {
    periodic(CHECKPOINT_EVERY, move || {
        let store = store.clone();
        async move {
            if let Err(e) = store.checkpoint().await {
                tracing::warn!(error = %e, "checkpoint failed; trying again");
            }
        }
    })
}

/// Hourly delivery counts are kept this long (the pages show the last 24 hours).
const KEEP_HOURLY: Duration = Duration::from_secs(8 * 24 * 3600);

/// Forgets old hourly counts once an hour.
fn start_housekeeping(store: Arc<dyn Store>) -> JoinHandle<()> {
    periodic(Duration::from_secs(3600), move || {
        let store = store.clone();
        async move {
            let before = Timestamp::now().minus(KEEP_HOURLY);
            if let Err(e) = store.prune_hourly(before).await {
                tracing::warn!(error = %e, "could not prune hourly delivery counts");
            }
        }
    })
}

/// Records that this node is alive (`nodes`).
fn start_heartbeat(store: Arc<dyn Store>, node: String) -> JoinHandle<()> {
    let started = Timestamp::now();
    periodic(crate::store::NODE_BEAT, move || {
        let (store, node) = (store.clone(), node.clone());
        async move {
            if let Err(e) = store.node_beat(&node, started, Timestamp::now()).await {
                tracing::warn!(error = %e, "could not record that this node is alive");
            }
        }
    })
}

/// How often a node looks for bulk retries whose runner stopped.
const ADOPT_RETRIES_EVERY: Duration = Duration::from_secs(5);

/// Takes up bulk retries left by a node that died or restarted (`sends::adopt_bulk_retries`).
fn start_retry_adopter(store: Arc<dyn Store>) -> JoinHandle<()> {
    periodic(ADOPT_RETRIES_EVERY, move || {
        let store = store.clone();
        async move {
            if let Err(e) = crate::sends::adopt_bulk_retries(&store).await {
                tracing::warn!(error = %e, "could not look for interrupted bulk retries");
            }
        }
    })
}

/// Fails deliveries pending longer than `delivery.max_age`, checking a tenth as often (at
/// most every minute), in batches so one sweep never holds the writer long.
fn start_expiry(store: Arc<dyn Store>, max_age: Duration, clock: Clock) -> JoinHandle<()> {
    let period = a_tenth(max_age, Duration::from_millis(100), Duration::from_secs(60));
    let reason: Arc<str> = format!(
        "expired: still pending {} after it was made (delivery.max_age)",
        crate::config::format_duration(max_age)
    )
    .into();
    periodic(period, move || {
        let (store, clock, reason) = (store.clone(), clock.clone(), reason.clone());
        async move {
            loop {
                let before = clock.made_before_max_age(max_age);
                match store
                    .expire_pending(before, clock.wall(), &reason, 500)
                    .await
                {
                    Ok(0) => break,
                    Ok(n) => {
                        crate::metrics::metrics().deliveries_finished("expired", n);
                        tracing::warn!(
                            expired = n,
                            "deliveries failed as expired (delivery.max_age)"
                        );
                        if n < 500 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not expire old deliveries; trying again");
                        break;
                    }
                }
            }
        }
    })
}

/// Acts on changes other nodes made as they are heard (PostgreSQL only): drops the cached
/// webhooks of the organization concerned, or every trusted token, or wakes the poller.
/// A missed stretch drops every cache; their own freshness checks remain the fallback.
fn start_change_listener(
    store: &dyn Store,
    catalog: Arc<Catalog>,
    tokens: Arc<http::auth::TokenCache>,
    engine: Engine,
) -> Option<JoinHandle<()>> {
    use tokio::sync::broadcast::error::RecvError;
    let mut changes = store.subscribe()?;
    Some(tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(Change::Webhooks(organization_id)) => catalog.invalidate(&organization_id),
                Ok(Change::Tokens) => tokens.clear(),
                Ok(Change::Work) => engine.wake(),
                Ok(Change::Missed) | Err(RecvError::Lagged(_)) => {
                    catalog.invalidate_all();
                    tokens.clear();
                    engine.wake();
                }
                Err(RecvError::Closed) => return,
            }
        }
    }))
}

/// Disables webhooks whose every URL has failed without a success for
/// `delivery.disable_after`, telling their failure addresses; checks a tenth as often (at
/// most every minute). Off when the setting is 0.
fn start_auto_disable(
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    after: Duration,
) -> Option<JoinHandle<()>> {
    if after.is_zero() {
        return None;
    }
    let period = a_tenth(after, Duration::from_millis(100), Duration::from_secs(60));
    Some(periodic(period, move || {
        let (store, catalog) = (store.clone(), catalog.clone());
        async move { disable_failing(store.as_ref(), &catalog, after).await }
    }))
}

async fn disable_failing(store: &dyn Store, catalog: &Catalog, after: Duration) {
    let now = Timestamp::now();
    let failing = match store.failing_webhooks(now.minus(after)).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for failing webhooks; trying again");
            return;
        }
    };
    for (webhook, since) in failing {
        let reason = format!(
            "every URL has failed without a success since {} (delivery.disable_after = {}).",
            since.to_rfc3339(),
            crate::config::format_duration(after)
        );
        let disabled = crate::disabling::disable_webhook(
            store,
            catalog,
            &webhook,
            webhook.spec.urls.first().map_or("", |u| u.url.as_str()),
            reason,
            now,
            "",
        )
        .await;
        match disabled {
            Ok(()) => {
                tracing::warn!(webhook = %webhook.id, "webhook disabled: every URL has failed for delivery.disable_after");
            }
            Err(e) => {
                tracing::warn!(error = %e, webhook = %webhook.id, "could not disable a failing webhook")
            }
        }
    }
}

/// Deletes finished work past `[retention]`, in small batches (each its own transaction,
/// a pause between them) so the hot path never waits long for the writer. None when
/// everything is kept.
fn start_retention(
    store: Arc<dyn Store>,
    retention: crate::config::RetentionConfig,
) -> Option<JoinHandle<()>> {
    let shortest = [retention.deliveries, retention.notifications_and_audit]
        .into_iter()
        .filter(|d| !d.is_zero())
        .min()?;
    let period = a_tenth(
        shortest,
        Duration::from_millis(100),
        Duration::from_secs(600),
    );
    Some(periodic(period, move || {
        let (store, retention) = (store.clone(), retention.clone());
        async move {
            for (keep, deliveries) in [
                (retention.deliveries, true),
                (retention.notifications_and_audit, false),
            ] {
                if !keep.is_zero() {
                    prune(store.as_ref(), keep, deliveries).await;
                }
            }
        }
    }))
}

/// Deletes deliveries and events (or notifications, notices, audit entries and retry jobs)
/// older than `keep`, 500 at a time.
async fn prune(store: &dyn Store, keep: Duration, deliveries: bool) {
    let mut total = 0;
    loop {
        let before = Timestamp::now().minus(keep);
        let pruned = if deliveries {
            store.prune_deliveries(before, 500).await
        } else {
            store.prune_records(before, 500).await
        };
        match pruned {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: could not delete old records; trying again later");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(
            deleted = total,
            what = if deliveries {
                "deliveries and events"
            } else {
                "notifications, notices, audit entries, retry jobs"
            },
            "retention"
        );
    }
}
