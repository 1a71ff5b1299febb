//! The HTTP edge: routing, authentication, error mapping. Handlers parse input into domain
//! types and call the store; they never make outgoing HTTP calls.

pub mod api;
pub mod auth;
pub mod client_address;
mod conn_clock;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod refusals;
pub mod serve;
pub mod ui;

use std::sync::Arc;

use axum::{extract::DefaultBodyLimit, routing::get, Router};

use crate::{
    catalog::Catalog, config::Config, dispatch::Engine, intake::IntakeQueue, store::Store,
};

/// Request bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// Handed the deliveries intake leased; the HTTP layer never sends anything itself.
    pub engine: Engine,
    /// Parsed webhooks for matching, shared by all requests.
    pub catalog: Arc<Catalog>,
    /// Group commit of received events.
    pub intake: IntakeQueue,
    /// Tokens read in the last moments, so most requests skip the store.
    pub tokens: Arc<auth::TokenCache>,
    /// Requests per caller: the API's, and intake's apart.
    pub rate_limits: Arc<RateLimits>,
    /// Services, alert sources and teams learnt from events.
    pub directory: crate::directory::Directory,
    /// Group commit of what event sources received.
    pub receipts: crate::sources::recorder::ReceiptQueue,
    pub source_states: crate::sources::state_reads::StateReads,
    /// Sources read in the last moments, so most payloads skip the store.
    pub sources: Arc<crate::sources::cache::SourceCache>,
    /// Seals what a page shows once after a POST (`ui/once.rs`), with the installation's key.
    pub sealer: Arc<crate::domain::sealing::Sealer>,
    /// Sends what a person asks to be e-mailed now (an invitation); `None` without SMTP.
    pub mailer: Option<Arc<crate::notify::smtp::Mailer>>,
}

impl AppState {
    /// The caller's organization's webhook `id` (404 when it has none of that id).
    pub async fn webhook(
        &self,
        caller: &auth::Caller,
        id: &crate::domain::ids::WebhookId,
    ) -> Result<crate::domain::webhook::Webhook, error::ApiError> {
        let organization_id = caller.organization_id();
        Ok(crate::webhooks::find(self.store.as_ref(), organization_id, id).await?)
    }

    /// The caller's hand on its organization's webhooks, if it may manage them (the
    /// `manage-webhooks` ability): the one check for the API and the pages.
    pub fn webhook_editor<'a>(
        &'a self,
        caller: &'a auth::Caller,
    ) -> Result<crate::webhooks::Editor<'a>, error::ApiError> {
        caller.require(crate::domain::token::Ability::ManageWebhooks)?;
        Ok(crate::webhooks::Editor {
            store: &self.store,
            catalog: &self.catalog,
            organization_id: caller.organization_id(),
            actor: caller.actor(),
        })
    }
}

/// The request budgets (`[http]` settings): two per caller, API calls and pages apart from
/// events, and one per organization for API calls and pages, so that ten tokens are not ten
/// budgets.
pub struct RateLimits {
    pub api: std::sync::Mutex<crate::domain::rate_limit::RateLimiter>,
    pub intake: std::sync::Mutex<crate::domain::rate_limit::RateLimiter>,
    pub organization: std::sync::Mutex<crate::domain::rate_limit::RateLimiter>,
    /// Refused actions audited per actor (see `refusals.rs`).
    pub refusals: std::sync::Mutex<crate::domain::rate_limit::RateLimiter>,
}

impl RateLimits {
    pub fn new(config: &crate::config::HttpConfig) -> Self {
        use crate::domain::rate_limit::RateLimiter;
        Self {
            api: RateLimiter::new(config.rate_limit, config.rate_burst).into(),
            intake: RateLimiter::new(config.intake_rate_limit, config.intake_rate_burst).into(),
            organization: RateLimiter::new(
                config.organization_rate_limit,
                config.organization_rate_burst,
            )
            .into(),
            refusals: RateLimiter::new(0, 1).into(),
        }
    }

    /// Takes one request of `caller` (an event when `event`) from its budgets: `Err` with
    /// the seconds to wait when one is spent.
    pub fn take(&self, caller: &auth::Caller, event: bool) -> Result<(), u64> {
        let now = std::time::Instant::now();
        let take = |limiter: &std::sync::Mutex<crate::domain::rate_limit::RateLimiter>,
                    key: &str| {
            limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(key, now)
                .map_err(|wait| wait.as_secs().max(1))
        };
        let key = match caller {
            auth::Caller::Token(token) => &token.id,
            auth::Caller::User { user, .. } => &user.id,
        };
        if event {
            // Events are counted apart: an incident platform posts far more than people
            // click, and each producer has its own budget.
            return take(&self.intake, key);
        }
        take(&self.api, key)?;
        take(&self.organization, caller.organization_id().as_str())
    }
}

mod request_log;

/// The router of `metrics_listen`: `/metrics` only, without authentication.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(api::health::open_metrics))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    api::routes()
        .router
        .merge(ui::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refusals::audit_refusals,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ui::refuse_nul_in_address,
        ))
        .layer(axum::middleware::from_fn(ui::security_headers))
        .layer(axum::middleware::from_fn(request_log::request_log))
        .with_state(state)
}
