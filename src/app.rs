//! Builds and runs everything: the only place that wires concrete pieces together.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    background::{self, Background},
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
    store::Store,
};

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    /// `metrics_listen`, when set.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    first_start: Option<FirstStart>,
    key_origin: KeyOrigin,
    /// The jobs that run beside serving (see `background.rs`), stopped together.
    background: Background,
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
        let rate_limits = Arc::new(http::RateLimits::new(&config.http));
        let tokens: Arc<http::auth::TokenCache> = Arc::default();
        let background = background::start(background::Parts {
            store: store.clone(),
            catalog: catalog.clone(),
            tokens: tokens.clone(),
            engine: engine.clone(),
            notifier,
            config: &config,
            clock,
        });
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
            background,
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
        let receipts = self.state.receipts.clone();
        let router = http::router(self.state);
        http::serve::serve(self.listener, router, limits, shutdown).await;
        // Requests are answered: the receipts still waiting for company are written now.
        if tokio::time::timeout(std::time::Duration::from_secs(5), receipts.flush())
            .await
            .is_err()
        {
            tracing::warn!("sources' last receipts were not written within 5 s of stopping");
        }
        if let Some(task) = metrics {
            task.abort();
        }
        engine.shutdown(grace).await;
        self.background.stop();
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
