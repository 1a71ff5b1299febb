//! Builds and runs everything: the only place that wires concrete pieces together.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    catalog::Catalog,
    config::Config,
    dispatch::Engine,
    domain::{
        clock::Clock,
        organization::Organization,
        session::new_setup_link,
        token::{Ability, NewToken},
        user::Role,
        Timestamp,
    },
    http::{self, AppState},
    intake::IntakeQueue,
    notify::{self, Notifier},
    secret_key::KeyOrigin,
    store::{Change, Store},
};

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    /// `metrics_listen`, when set.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    first_start: Option<FirstStart>,
    key_origin: KeyOrigin,
    notifier: tokio::task::JoinHandle<()>,
    checkpointer: tokio::task::JoinHandle<()>,
    housekeeping: tokio::task::JoinHandle<()>,
    retry_adopter: tokio::task::JoinHandle<()>,
    expiry: tokio::task::JoinHandle<()>,
    retention: tokio::task::JoinHandle<()>,
    auto_disable: Option<tokio::task::JoinHandle<()>>,
    /// Hears other nodes' changes (PostgreSQL only).
    changes: Option<tokio::task::JoinHandle<()>>,
    /// Records that this node is alive (`nodes`).
    heartbeat: tokio::task::JoinHandle<()>,
}

/// How often the write-ahead log is moved into the database file (SQLite).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Checkpoints off the writer's path; a failure is logged and the next round tries again
/// (the writer's own checkpoint is the backstop).
fn start_checkpointer(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = store.checkpoint().await {
                tracing::warn!(error = %e, "checkpoint failed; trying again");
            }
        }
    })
}

/// Hourly delivery counts are kept this long (the pages show the last 24 hours).
const KEEP_HOURLY: std::time::Duration = std::time::Duration::from_secs(8 * 24 * 3600);

/// Forgets old hourly counts once an hour; a failure is logged and tried next time.
fn start_housekeeping(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let before = Timestamp::now().minus(KEEP_HOURLY);
            if let Err(e) = store.prune_hourly(before).await {
                tracing::warn!(error = %e, "could not prune hourly delivery counts");
            }
        }
    })
}

/// Beats for this node until aborted; a failure is logged and the next beat tries again.
fn start_heartbeat(store: Arc<dyn Store>, node: String) -> tokio::task::JoinHandle<()> {
    let started = Timestamp::now();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::store::NODE_BEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = store.node_beat(&node, started, Timestamp::now()).await {
                tracing::warn!(error = %e, "could not record that this node is alive");
            }
        }
    })
}

/// How often a node looks for bulk retries whose runner stopped.
const ADOPT_RETRIES_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes up bulk retries left by a node that died or restarted (`intake::adopt_bulk_retries`);
/// a failure is logged and tried next time.
fn start_retry_adopter(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ADOPT_RETRIES_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = crate::intake::adopt_bulk_retries(&store).await {
                tracing::warn!(error = %e, "could not look for interrupted bulk retries");
            }
        }
    })
}

/// Fails deliveries pending longer than `delivery.max_age`, checking a tenth as often (at
/// most every minute), in batches so one sweep never holds the writer long.
fn start_expiry(
    store: Arc<dyn Store>,
    max_age: std::time::Duration,
    clock: Clock,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = (max_age / 10).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(60),
        );
        let reason = format!(
            "expired: still pending {} after it was made (delivery.max_age)",
            crate::config::format_duration(max_age)
        );
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
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
) -> Option<tokio::task::JoinHandle<()>> {
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
    after: std::time::Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if after.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let period = (after / 10).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(60),
        );
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let now = Timestamp::now();
            let cutoff = now.minus(after);
            let failing = match store.failing_webhooks(cutoff).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for failing webhooks; trying again");
                    continue;
                }
            };
            for (webhook, since) in failing {
                let reason = format!(
                    "every URL has failed without a success since {} (delivery.disable_after = {}).",
                    since.to_rfc3339(),
                    crate::config::format_duration(after)
                );
                let disabled = crate::disabling::disable_webhook(
                    store.as_ref(),
                    &catalog,
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
    }))
}

/// Deletes finished work past `[retention]`, in small batches (each its own transaction,
/// a pause between them) so the hot path never waits long for the writer.
fn start_retention(
    store: Arc<dyn Store>,
    retention: crate::config::RetentionConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shortest = [retention.deliveries, retention.notifications_and_audit]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min();
        let Some(shortest) = shortest else {
            return; // keep everything
        };
        let period = (shortest / 10).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(600),
        );
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            for (keep, deliveries) in [
                (retention.deliveries, true),
                (retention.notifications_and_audit, false),
            ] {
                if keep.is_zero() {
                    continue;
                }
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
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
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
        }
    })
}

impl Application {
    /// Opens the store (migrating it), bootstraps an empty installation, and binds the
    /// listener, so the real address is known before serving (port 0 works).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// The same, on the given clock (tests step its wall time).
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let address = listener.local_addr()?;
        let metrics_listener = if config.metrics_listen.is_empty() {
            None
        } else {
            let l = TcpListener::bind(&config.metrics_listen)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot listen on metrics_listen {}: {e}",
                        config.metrics_listen
                    )
                })?;
            let a = l.local_addr()?;
            Some((l, a))
        };
        // Links (setup, e-mails) need an address people can open: until a public_url is
        // set, the one actually bound (port 0 becomes the real port).
        let mut config = config;
        if config.public_url.is_empty() {
            config.public_url = format!("http://{address}");
        }
        let unlocked = crate::secret_key::open_store(&config).await?;
        let store = unlocked.store;
        let first_start = bootstrap(store.as_ref()).await?;
        let released = store.release_stale_leases().await?;
        if released > 0 {
            tracing::info!(released, "took back deliveries leased before the last stop");
        }
        let catalog = Arc::new(Catalog::new(store.clone()));
        let engine = Engine::start(
            store.clone(),
            catalog.clone(),
            &config.delivery,
            clock.clone(),
        )?;
        let mailer = crate::notify::smtp::Mailer::new(&config.smtp)?.map(Arc::new);
        let notifier = Notifier::new(store.clone(), &config, mailer.clone())?;
        if config.smtp.host.is_empty() && store.any_webhook_with_mail_ids().await? {
            tracing::warn!(
                "{}; failure notifications are recorded as skipped",
                notify::NO_SMTP
            );
        }
        // Before anything is served: `rotate-key` must see this node from its first moment.
        store
            .node_beat(engine.node(), Timestamp::now(), Timestamp::now())
            .await?;
        let heartbeat = start_heartbeat(store.clone(), engine.node().to_owned());
        let notifier = notifier.start();
        let checkpointer = start_checkpointer(store.clone());
        let housekeeping = start_housekeeping(store.clone());
        let retry_adopter = start_retry_adopter(store.clone());
        let expiry = start_expiry(store.clone(), config.delivery.max_age, clock);
        let retention = start_retention(store.clone(), config.retention.clone());
        let auto_disable = start_auto_disable(
            store.clone(),
            catalog.clone(),
            config.delivery.disable_after,
        );
        let rate_limits = Arc::new(http::RateLimits::new(&config.http));
        let tokens: Arc<http::auth::TokenCache> = Arc::default();
        let changes = start_change_listener(
            store.as_ref(),
            catalog.clone(),
            tokens.clone(),
            engine.clone(),
        );
        let intake =
            IntakeQueue::start(store.clone(), engine.clone(), config.delivery.intake_linger);
        Ok(Self {
            listener,
            address,
            metrics_listener,
            state: AppState {
                store: store.clone(),
                config: Arc::new(config),
                intake,
                engine,
                catalog,
                tokens,
                rate_limits,
                directory: crate::directory::Directory::start(store.clone()),
                receipts: crate::sources::recorder::ReceiptQueue::start(store.clone()),
                source_states: crate::sources::state_reads::StateReads::start(store.clone()),
                sources: Arc::default(),
                sealer: Arc::new(crate::domain::sealing::Sealer::new(&unlocked.key)),
                mailer,
            },
            first_start,
            key_origin: unlocked.origin,
            notifier,
            checkpointer,
            housekeeping,
            retry_adopter,
            expiry,
            retention,
            auto_disable,
            changes,
            heartbeat,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where `/metrics` is served without authentication, if configured.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, a)| *a)
    }

    /// The owner token when this start created the installation; `None` ever after.
    pub fn first_start_token(&self) -> Option<&NewToken> {
        self.first_start.as_ref().map(|f| &f.token)
    }

    /// The owner account's setup link when this start created the installation.
    pub fn first_start_setup_url(&self) -> Option<String> {
        self.first_start
            .as_ref()
            .map(|f| crate::accounts::setup_url(&self.state.config.public_url(), &f.setup_code))
    }

    /// Where the secret key came from (a key file this start created, say).
    pub fn key_origin(&self) -> &KeyOrigin {
        &self.key_origin
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// The name this start's deliveries are leased under (see [`Engine::node`]).
    pub fn node(&self) -> &str {
        self.state.engine.node()
    }

    /// Serves until `shutdown` completes: then stops taking requests, lets attempts in
    /// flight finish for up to `delivery.shutdown_grace`, and releases the leases of the rest.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let engine = self.state.engine.clone();
        let store = self.state.store.clone();
        let grace = self.state.config.delivery.shutdown_grace;
        let limits = http::serve::Limits {
            max_connections: self.state.config.http.max_connections as usize,
            header_read_timeout: self.state.config.http.header_read_timeout,
            idle_timeout: self.state.config.http.idle_timeout,
            drain: grace,
        };
        let metrics = self.metrics_listener.map(|(listener, _)| {
            let router = http::metrics_router(self.state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::warn!(error = %e, "the metrics address stopped serving");
                }
            })
        });
        let router = http::router(self.state);
        http::serve::serve(self.listener, router, limits, shutdown).await;
        if let Some(task) = metrics {
            task.abort();
        }
        engine.shutdown(grace).await;
        self.notifier.abort();
        self.checkpointer.abort();
        self.housekeeping.abort();
        self.retry_adopter.abort();
        self.expiry.abort();
        self.retention.abort();
        if let Some(task) = &self.auto_disable {
            task.abort();
        }
        if let Some(task) = &self.changes {
            task.abort();
        }
        self.heartbeat.abort();
        if let Err(e) = store.node_stopped(engine.node()).await {
            tracing::warn!(error = %e, "could not record that this node stopped; rotate-key waits for its last beat to age");
        }
        Ok(())
    }
}

/// What the first start on an empty database made, shown once.
pub struct FirstStart {
    /// The owner API token (every ability).
    pub token: NewToken,
    /// The code of the setup link through which the first person becomes owner.
    pub setup_code: String,
}

/// On an empty database: creates the organization, its owner token (every ability) and a
/// setup link for the owner's account. Returns them only to the start that created them.
pub async fn bootstrap(store: &dyn Store) -> anyhow::Result<Option<FirstStart>> {
    if store.installation_organization().await?.is_some() {
        return Ok(None);
    }
    let org = Organization::new("Default");
    let owner = NewToken::generate(&org.id, "owner", Ability::ALL.to_vec());
    let (setup_code, link) = new_setup_link(&org.id, None, Role::Owner, Timestamp::now());
    Ok(store
        .bootstrap(&org, &owner, Some(&link))
        .await?
        .then_some(FirstStart {
            token: owner,
            setup_code,
        }))
}

/// Completes on ctrl-c or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that arrives while the server is still starting
/// is not lost to the default action (which would end the process at once).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).ok();
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(terminate.take()) => {},
                _ = wait(interrupt.take()) => {},
            }
            tracing::info!("shutdown requested");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    }
}
