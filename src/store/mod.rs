//! Storage in domain terms. One SQL implementation ([`sql::SqlStore`]) serves SQLite and
//! PostgreSQL through sqlx's `Any` driver; `sqlite.rs` and `postgres.rs` hold what differs
//! (connecting, pragmas, migrations). All SQL lives in this module.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    organization::Organization,
    token::{ApiToken, NewToken},
    webhook::{Webhook, WebhookSpec},
    Timestamp,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a list, with the total across all pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// On an empty installation, creates `org` and `owner` together and returns true;
    /// once an installation exists, changes nothing and returns false.
    async fn bootstrap(&self, org: &Organization, owner: &NewToken) -> StoreResult<bool>;
    /// The organization the first start created.
    async fn installation_organization(&self) -> StoreResult<Option<Organization>>;
    async fn create_organization(&self, org: &Organization) -> StoreResult<()>;

    async fn create_token(&self, token: &NewToken) -> StoreResult<()>;
    /// The token with this hash, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>>;
    /// Every token of every organization, oldest first.
    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    /// Marks a token revoked; false when no unrevoked token has this id.
    async fn revoke_token(&self, id: &str, at: Timestamp) -> StoreResult<bool>;

    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    async fn webhook(&self, organization_id: &str, id: &str) -> StoreResult<Option<Webhook>>;
    /// Oldest first.
    async fn list_webhooks(
        &self,
        organization_id: &str,
        limit: u64,
        offset: u64,
    ) -> StoreResult<Page<Webhook>>;
    /// Replaces the configuration; `None` when the webhook does not exist in the organization.
    async fn update_webhook(
        &self,
        organization_id: &str,
        id: &str,
        spec: &WebhookSpec,
        at: Timestamp,
    ) -> StoreResult<Option<Webhook>>;
    async fn delete_webhook(&self, organization_id: &str, id: &str) -> StoreResult<bool>;
    async fn set_webhook_secret(
        &self,
        organization_id: &str,
        id: &str,
        secret: &str,
        at: Timestamp,
    ) -> StoreResult<Option<Webhook>>;
}

/// Opens the database the URL names (`sqlite://…` or `postgres://…`), creating an SQLite
/// file if missing, and applies migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    sqlx::any::install_default_drivers();
    let store = if url.starts_with("sqlite:") {
        sqlite::open(url).await?
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::open(url).await?
    } else {
        return Err(StoreError::Config(format!(
            "database_url must start with sqlite:// or postgres://, got \"{url}\""
        )));
    };
    Ok(Arc::new(store))
}
