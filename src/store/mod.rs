//! Storage in domain terms. One SQL implementation ([`sql::SqlStore`]) serves SQLite and
//! PostgreSQL through sqlx's `Any` driver; `sqlite.rs` and `postgres.rs` hold what differs
//! (connecting, pragmas, migrations). All SQL lives in this module.

mod changes;
mod postgres;
mod sql;

pub use changes::Change;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    audit::{Actor, AuditEntry},
    delivery::{Attempt, AttemptResult, Delivery, DeliveryState, NewDelivery, RetryJob},
    event::Event,
    ids::{DeliveryId, OrganizationId, SourceId, WebhookId},
    notification::{FailureReport, Notice, NoticeRecord, Notification, NotificationOutcome},
    organization::Organization,
    sealing::{Sealer, SecretKey},
    session::{LinkProblem, Session, SetupLink},
    source::{DayCounts, IncidentState, Receipt, Source},
    token::{ApiToken, NewToken},
    user::User,
    webhook::{PreviousSecret, Webhook, WebhookSpec},
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
    /// The configured secret key is not the one the database's secrets were sealed with.
    #[error("{0}")]
    WrongKey(String),
    /// The same read, made a moment ago for another request, failed: not tried again at
    /// once (a database that is down would make each waiting request wait out its own
    /// timeout in turn).
    #[error("{0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the database could not be reached (no connection within the pool's wait, a
    /// connection lost, the server shutting down or starting): the caller should hear
    /// "try again shortly" (503), not "tocsin failed" (500).
    pub fn is_unreachable(&self) -> bool {
        if let StoreError::Unavailable(_) = self {
            return true;
        }
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE class 08 (connection exception), and 57P01–57P03: the server is
            // shutting down, crashed, or cannot take connections yet.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether a lock was waited for past `lock_timeout` (SQLSTATE 55P03): another session
    /// holds it, perhaps a node frozen inside its transaction.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03"))
    }

    /// Whether nothing was sent to the database: no connection could be had. A write that
    /// failed so certainly did not happen, and trying it again at once would wait as long.
    pub fn before_any_statement(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        )
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How often a serving node records that it is alive (`ConfigStore::node_beat`), and how
/// long after its last beat a node counts as gone (one that was killed leaves its row).
pub const NODE_BEAT: std::time::Duration = std::time::Duration::from_secs(5);
pub const NODE_GONE_AFTER: std::time::Duration = std::time::Duration::from_secs(15);

/// One page of a list, with the total across all pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// An organization's webhooks written since a version (`ConfigStore::webhooks_changed`).
#[derive(Debug, Clone)]
pub struct WebhookChanges {
    /// Oldest first, as `all_webhooks` lists them.
    pub written: Vec<crate::domain::webhook::Webhook>,
    /// Written since but unreadable (a sealed value that does not open): left out, as a
    /// full read leaves them out, not kept as they were before.
    pub unreadable: Vec<WebhookId>,
    /// Deleted since (as far as the store remembers: see `count`).
    pub deleted: Vec<WebhookId>,
    /// How many webhooks the organization has now.
    pub count: usize,
}

/// Everything tocsin stores.
pub trait Store:
    NodeStore
    + ConfigStore
    + AccountStore
    + QueueStore
    + LogStore
    + RetryJobStore
    + RetentionStore
    + NotificationStore
    + ActivityStore
    + CircuitStore
    + SourceStore
{
}
impl<
        T: NodeStore
            + ConfigStore
            + AccountStore
            + QueueStore
            + LogStore
            + RetryJobStore
            + RetentionStore
            + NotificationStore
            + ActivityStore
            + CircuitStore
            + SourceStore,
    > Store for T
{
}

/// What the sources list shows of each source's traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceActivity {
    pub last_received_at: Option<Timestamp>,
    pub today: DayCounts,
    /// The newest refusal among the kept receipts: when, and its first line.
    pub last_error: Option<(Timestamp, String)>,
}

/// Event sources: their settings, the state of the incidents they spoke of, what they
/// received.
#[async_trait]
pub trait SourceStore: Send + Sync + 'static {
    async fn insert_source(&self, source: &Source, audit: &AuditEntry) -> StoreResult<()>;
    async fn source(
        &self,
        organization_id: &OrganizationId,
        id: &SourceId,
    ) -> StoreResult<Option<Source>>;
    /// The source an ingest request names, whatever its organization (the credential then
    /// decides).
    async fn source_by_id(&self, id: &SourceId) -> StoreResult<Option<Source>>;
    async fn list_sources(&self, organization_id: &OrganizationId) -> StoreResult<Vec<Source>>;
    /// Saves the spec and, when given, a new credential hash; false when no such source.
    async fn update_source(&self, source: &Source, audit: &AuditEntry) -> StoreResult<bool>;
    async fn delete_source(
        &self,
        organization_id: &OrganizationId,
        id: &SourceId,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// The kept states of these incident keys of a source.
    async fn source_incidents(
        &self,
        source_id: &SourceId,
        keys: &[String],
    ) -> StoreResult<std::collections::HashMap<String, IncidentState>>;
    /// Records received payloads' receipts in one transaction (each source's oldest beyond
    /// [`crate::domain::source::RECEIPTS_KEPT`] forgotten) with the day's counts. The
    /// incident states are written with the events (`accept_events`).
    async fn record_receipts(&self, receipts: &[Receipt]) -> StoreResult<()>;
    /// A source's kept receipts, newest first.
    async fn receipts(&self, source_id: &SourceId, limit: u32) -> StoreResult<Vec<Receipt>>;
    /// Every source's activity, for the organization's list.
    async fn source_activity(
        &self,
        organization_id: &OrganizationId,
        day: Timestamp,
    ) -> StoreResult<std::collections::HashMap<SourceId, SourceActivity>>;
}

/// A webhook's newest delivery: its state, last change and last error.
pub type LastDelivery = (DeliveryState, Timestamp, Option<String>);

/// Read models for the pages: hourly counts kept as deliveries finish, and bounded queries.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    /// Deliveries finished since `since` (by hour) per webhook: `(succeeded, failed)`.
    async fn webhook_counts(
        &self,
        organization_id: &OrganizationId,
        since: Timestamp,
    ) -> StoreResult<std::collections::HashMap<WebhookId, (u64, u64)>>;
    /// The newest delivery of each of these webhooks (those that have one).
    async fn last_deliveries(
        &self,
        organization_id: &OrganizationId,
        webhook_ids: &[WebhookId],
    ) -> StoreResult<std::collections::HashMap<WebhookId, LastDelivery>>;
    /// The organization's deliveries finished since `since`, per hour (start, micros):
    /// `(hour, succeeded, failed)`.
    async fn hourly_deliveries(
        &self,
        organization_id: &OrganizationId,
        since: Timestamp,
    ) -> StoreResult<Vec<(i64, u64, u64)>>;
    /// Forgets hourly counts older than `before`.
    async fn prune_hourly(&self, before: Timestamp) -> StoreResult<u64>;
    /// The latest event of each of the most recently updated incidents.
    async fn recent_incidents(
        &self,
        organization_id: &OrganizationId,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;
    /// The incident message of each event (for log rows), by event id.
    async fn event_messages(
        &self,
        organization_id: &OrganizationId,
        event_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, String>>;
}

/// The database itself and the nodes sharing it: whether it answers, the changes other nodes
/// make, the sealing key, the nodes' heartbeats, SQLite's checkpoints.
#[async_trait]
pub trait NodeStore: Send + Sync + 'static {
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Changes made by any node, heard as they commit, where the database can tell
    /// (PostgreSQL); `None` on SQLite, whose one process makes every change itself.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Change>>;
    /// Seals every sealed value again under `new`, and makes `new` the key the database
    /// expects, in one transaction (`tocsin rotate-key`). Returns how many values it
    /// sealed. This store keeps the old key: open the database again to use it.
    async fn rotate_key(&self, new: &SecretKey) -> StoreResult<u64>;
    /// Records that node `id` (started at `started_at`) is serving at `at`.
    async fn node_beat(&self, id: &str, started_at: Timestamp, at: Timestamp) -> StoreResult<()>;
    /// Node `id` has stopped.
    async fn node_stopped(&self, id: &str) -> StoreResult<()>;
    /// The nodes that beat since `since`, with their last beat.
    async fn live_nodes(&self, since: Timestamp) -> StoreResult<Vec<(String, Timestamp)>>;
    /// SQLite: copies the write-ahead log into the database file without blocking the
    /// writer (a passive checkpoint), so commits never pay for one. Elsewhere nothing.
    async fn checkpoint(&self) -> StoreResult<()>;
}

/// Organizations, tokens and webhook configuration.
#[async_trait]
pub trait ConfigStore: Send + Sync + 'static {
    /// On an empty installation, creates `org`, the `owner` token and, if given, the owner's
    /// setup link together and returns true; once an installation exists, changes nothing
    /// and returns false.
    async fn bootstrap(
        &self,
        org: &Organization,
        owner: &NewToken,
        owner_link: Option<&SetupLink>,
    ) -> StoreResult<bool>;
    /// The organization the first start created.
    async fn installation_organization(&self) -> StoreResult<Option<Organization>>;
    async fn create_organization(&self, org: &Organization) -> StoreResult<()>;
    async fn create_token(&self, token: &NewToken, audit: &AuditEntry) -> StoreResult<()>;
    /// The token with this hash, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>>;
    /// Every token of one organization (or of all), oldest first.
    async fn list_tokens(
        &self,
        organization_id: Option<&OrganizationId>,
    ) -> StoreResult<Vec<ApiToken>>;
    /// Marks a token revoked, with its audit entry by `actor`; `None` when no unrevoked token
    /// has this id (in `organization_id`, when given).
    async fn revoke_token(
        &self,
        organization_id: Option<&OrganizationId>,
        id: &str,
        at: Timestamp,
        actor: &Actor,
    ) -> StoreResult<Option<ApiToken>>;
    /// Records that the token was used, unless that was recorded less than a minute ago.
    async fn touch_token(&self, id: &str, at: Timestamp) -> StoreResult<()>;
    async fn insert_webhook(&self, webhook: &Webhook, audit: &AuditEntry) -> StoreResult<()>;
    async fn webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
    ) -> StoreResult<Option<Webhook>>;
    /// Changes with every write to the organization's webhooks (for caches).
    async fn webhooks_version(&self, organization_id: &OrganizationId) -> StoreResult<i64>;
    /// The organization's webhooks written and deleted after its `webhooks_version` was
    /// `since`, and how many it has now: a catalog that held them as of `since` brought up
    /// to date (when the count says a deletion is missing, it reads `webhook_ids`).
    async fn webhooks_changed(
        &self,
        organization_id: &OrganizationId,
        since: i64,
    ) -> StoreResult<WebhookChanges>;
    /// The ids of the organization's webhooks (a catalog learning which were deleted).
    async fn webhook_ids(&self, organization_id: &OrganizationId) -> StoreResult<Vec<WebhookId>>;
    /// Every webhook of the organization, for matching.
    async fn all_webhooks(&self, organization_id: &OrganizationId) -> StoreResult<Vec<Webhook>>;
    async fn organization(&self, id: &OrganizationId) -> StoreResult<Option<Organization>>;
    /// Oldest first.
    async fn list_webhooks(
        &self,
        organization_id: &OrganizationId,
        limit: u64,
        offset: u64,
    ) -> StoreResult<Page<Webhook>>;
    /// Replaces the configuration; `None` when the webhook does not exist in the organization.
    async fn update_webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        spec: &WebhookSpec,
        at: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Webhook>>;
    async fn delete_webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Enabled webhooks whose every URL has failed, without a success, since before
    /// `cutoff`: each with the earliest time one of them began failing.
    async fn failing_webhooks(&self, cutoff: Timestamp) -> StoreResult<Vec<(Webhook, Timestamp)>>;
    /// tocsin disables a webhook on its own (a URL answered 410 Gone): `enabled` false with
    /// `reason`, its pending deliveries but `answered` (whose result is being recorded)
    /// cancelled, the audit entry and, when given, the notice for its failure addresses,
    /// in one transaction. `None` if it is gone.
    #[allow(clippy::too_many_arguments)]
    async fn disable_webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        reason: &str,
        at: Timestamp,
        audit: &AuditEntry,
        notice: Option<&Notice>,
        answered: &str,
    ) -> StoreResult<Option<Webhook>>;
    /// A new signing secret; `previous` keeps the old one signing until its time.
    async fn set_webhook_secret(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        secret: &str,
        previous: Option<&PreviousSecret>,
        at: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Webhook>>;
    /// Records services, alert sources and teams seen in events (names updated).
    async fn observe_directory(
        &self,
        organization_id: &OrganizationId,
        entries: &[crate::domain::directory::Entry],
    ) -> StoreResult<()>;
    /// Declares one by an operator (before any event names it).
    async fn declare_directory(
        &self,
        organization_id: &OrganizationId,
        entry: &crate::domain::directory::Entry,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Everything known of one kind, by name.
    async fn directory(
        &self,
        organization_id: &OrganizationId,
        kind: crate::domain::directory::Kind,
    ) -> StoreResult<Vec<crate::domain::directory::Entry>>;
    /// Records an entry that goes with no change of its own (a secret seen).
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Audit entries, newest first, with each one's position for paging.
    async fn list_audit(
        &self,
        organization_id: &OrganizationId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<(i64, AuditEntry)>>;
    async fn audit_entry(
        &self,
        organization_id: &OrganizationId,
        id: &str,
    ) -> StoreResult<Option<AuditEntry>>;
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// An actor's id or name (a user's email, a token's name).
    pub actor: Option<String>,
    /// An object's id.
    pub object: Option<String>,
    pub action: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// How a write to a user went.
#[derive(Debug, Clone, PartialEq)]
pub enum UserWrite {
    Done(User),
    NotFound,
    /// It would leave the organization without an enabled owner.
    LastOwner,
    /// Another user of the organization has this email.
    DuplicateEmail,
}

/// How using a setup link went.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkUse {
    /// The password is set (the account created, for a link without a user).
    Done(User),
    Refused(LinkProblem),
    DuplicateEmail,
}

/// People, their sessions and setup links.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// A new user, with a password hash (`--password-stdin`) or a setup link to choose one.
    async fn create_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
        link: Option<&SetupLink>,
        audit: &AuditEntry,
    ) -> StoreResult<UserWrite>;
    async fn user(&self, organization_id: &OrganizationId, id: &str) -> StoreResult<Option<User>>;
    /// By email, in any case.
    async fn user_by_email(
        &self,
        organization_id: &OrganizationId,
        email: &str,
    ) -> StoreResult<Option<User>>;
    /// The users of every organization with this email, with their password hashes.
    async fn login_candidates(&self, email: &str) -> StoreResult<Vec<(User, Option<String>)>>;
    /// Oldest first.
    async fn list_users(&self, organization_id: &OrganizationId) -> StoreResult<Vec<User>>;
    /// Stores `user`'s name, role and disabled flag. Disabling ends the user's sessions.
    /// Refused when it would leave the organization without an enabled owner.
    async fn update_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<UserWrite>;
    /// Deletes a user and their sessions; refused for the last enabled owner.
    async fn delete_user(
        &self,
        organization_id: &OrganizationId,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<UserWrite>;
    /// A password reset: the user's password, sessions and earlier links end, and `link`
    /// (which names the user) is the way to choose a new password.
    async fn reset_password(&self, link: &SetupLink, audit: &AuditEntry) -> StoreResult<UserWrite>;

    /// The link with this code hash, used or not, with its user if it names one.
    async fn setup_link(&self, code_hash: &str) -> StoreResult<Option<(SetupLink, Option<User>)>>;
    /// Uses a link once: sets its user's password (ending their sessions), or creates
    /// `new_user` with it for a link without a user. `audit` is recorded with it.
    async fn use_setup_link(
        &self,
        code_hash: &str,
        now: Timestamp,
        password_hash: &str,
        new_user: Option<&User>,
        audit: &AuditEntry,
    ) -> StoreResult<LinkUse>;

    /// Stores a session and the user's login time; clears the user's expired sessions.
    async fn start_session(&self, session: &Session) -> StoreResult<()>;
    /// The session and its user.
    async fn session(&self, id_hash: &str) -> StoreResult<Option<(Session, User)>>;
    async fn touch_session(&self, id_hash: &str, at: Timestamp) -> StoreResult<()>;
    async fn end_session(&self, id_hash: &str) -> StoreResult<()>;

    /// A login attempt, counted as a failure under each of `keys` (`email:…`, `ip:…`) before
    /// its password is checked, so that concurrent guesses see each other: records it at
    /// `at`, forgets every failure (of any key) from before `since` (the table holds one
    /// window's worth), and returns the failures of `keys` since then, this one's too, as
    /// every node recorded them.
    async fn login_attempt(
        &self,
        keys: &[&str],
        at: Timestamp,
        since: Timestamp,
    ) -> StoreResult<Vec<(String, Timestamp)>>;
    /// Takes back an attempt's failure under `keys` (it was refused, or it succeeded).
    async fn forget_login_attempt(&self, keys: &[&str], at: Timestamp) -> StoreResult<()>;
    /// Forgets every failure of `key` (an email's, after a good password).
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;
    /// The failures of `keys` after `since`, and of the other keys their attempts were
    /// counted under (the client addresses they came from), as every node recorded them;
    /// counts nothing.
    async fn login_failures(
        &self,
        keys: &[&str],
        since: Timestamp,
    ) -> StoreResult<Vec<(String, Timestamp)>>;
    /// Takes back every attempt counted under `key` (an email an owner unlocked): its
    /// failures, and the ones the same attempts counted under other keys (the addresses
    /// they came from); writes `audit` in the same transaction.
    async fn unlock_login(&self, key: &str, audit: &AuditEntry) -> StoreResult<()>;
}

/// A claim on deliveries: who holds them and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub owner: String,
    pub until: Timestamp,
}

/// How intake stores new deliveries: leased to this node to start at once, parked, or
/// waiting for their lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Present while the engine has room: deliveries first in their lane are leased to it.
    pub lease: Option<Lease>,
    /// URLs the engine takes no more work for now (its queue for them is full, or their
    /// circuit is open): their deliveries are stored parked.
    pub park_urls: Vec<String>,
    /// When a parked delivery falls due on its own if no node takes it back sooner (the
    /// node that parked it crashed).
    pub park_until: Timestamp,
}

/// What intake stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub event_id: String,
    pub deliveries: u64,
    /// The event was seen before: nothing was written and this is the first answer.
    pub duplicate: bool,
    /// Deliveries leased to the caller, to start at once; the rest wait for their lane.
    pub leased: Vec<DeliveryId>,
}

/// One step of a bulk retry, as the store saved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryStep {
    /// Deliveries this step set pending again; 0 when none is left.
    pub requeued: u64,
    /// The job's count and position after the step, from its row.
    pub done: u64,
    pub after_seq: i64,
}

/// Which log entries to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    pub state: Option<DeliveryState>,
    pub event_type: Option<String>,
    pub incident_id: Option<String>,
    /// Deliveries to this URL (as stored).
    pub url: Option<String>,
    pub delivery_id: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Entries older than this position (from the previous page).
    pub before_seq: Option<i64>,
    /// Entries newer than this position (what arrived since a page was drawn).
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// The engine's queue: intake's writes (events and their deliveries, in one transaction),
/// claims, leases, parks, results and the rate slots.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// In one transaction, for each event: the event, the incident's latest snapshot, and
    /// its deliveries. A delivery to one of `admission.park_urls` is stored parked; one
    /// first in its lane (no earlier pending delivery) is leased to `admission.lease`, if
    /// any; the rest wait, due now. A producer id seen before (or earlier in the batch)
    /// changes nothing and answers as the first time. One answer per event, in order.
    async fn accept_events(
        &self,
        batch: &[(Event, Vec<NewDelivery>)],
        admission: &Admission,
    ) -> StoreResult<Vec<Accepted>>;
    /// After a write of events failed in a way that may have come after its commit (the
    /// connection dropped while `COMMIT` was answered): which of `event_ids` are stored,
    /// each with its delivery count. The deliveries of those that `owner` leased are given
    /// back, to be claimed by the poller: the node that leased them never started them.
    async fn stored_anyway(
        &self,
        owner: &str,
        event_ids: &[&str],
    ) -> StoreResult<std::collections::HashMap<String, u64>>;
    /// The same for a write of deliveries ([`Self::add_deliveries`]): which of
    /// `delivery_ids` are stored, their leases held by `owner` given back.
    async fn deliveries_stored_anyway(
        &self,
        owner: &str,
        delivery_ids: &[&str],
    ) -> StoreResult<Vec<String>>;
    /// More deliveries of a stored event (the manual trigger), with the same rules.
    async fn add_deliveries(
        &self,
        deliveries: &[NewDelivery],
        admission: &Admission,
    ) -> StoreResult<Vec<DeliveryId>>;
    /// Leases up to `limit` pending deliveries that are due, not leased (or whose lease
    /// expired) and first in their lane, earliest due first. Taking a parked delivery that
    /// fell due unparks it.
    async fn claim_due(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Leases up to `limit` parked deliveries to `url` that are first in their lane, in the
    /// order they were created, and unparks them. With `fresh_first`, deliveries never
    /// attempted come first (a circuit's probe should not spend one delivery's retries).
    async fn claim_parked(
        &self,
        lease: &Lease,
        url: &str,
        limit: u32,
        fresh_first: bool,
    ) -> StoreResult<Vec<Delivery>>;
    /// Parks deliveries `owner` holds, releasing their leases, without counting an attempt.
    async fn park(
        &self,
        owner: &str,
        delivery_ids: &[DeliveryId],
        until: Timestamp,
    ) -> StoreResult<()>;
    /// The URLs that have parked deliveries (at start, to take them back).
    async fn parked_urls(&self) -> StoreResult<Vec<String>>;
    /// Extends to `until` the lease `held` (its owner and expiry, as claimed or last
    /// renewed); false when it was lost. The expiry must match too: a lease that ran out
    /// and was claimed again, by another node or by this one for another attempt, is not
    /// the one `held` names, and renewing it would let two attempts send.
    async fn renew_lease(
        &self,
        delivery_id: &DeliveryId,
        held: &Lease,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Records attempts and the resulting states in one transaction. A delivery whose
    /// lease `owner` no longer holds (cancelled, or reclaimed) keeps its state; the attempt
    /// is recorded all the same.
    async fn record_attempts(&self, owner: &str, results: &[AttemptResult]) -> StoreResult<()>;
    /// At start: SQLite serves a single node, so every lease left in it belongs to a process
    /// that is gone and is given back, the deliveries' (due at once) and the circuits'
    /// probes' (the next probe goes when due). On PostgreSQL other nodes may be alive;
    /// their leases are left to expire. Returns the deliveries given back.
    async fn release_stale_leases(&self) -> StoreResult<u64>;
    /// Gives back every lease `owner` holds (graceful shutdown): its deliveries, due at
    /// once, and its circuits' probes.
    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;
    /// Fails pending deliveries made, and last changed (an attempt, a bulk retry's re-queue),
    /// before `before` — none leased at `now`: an attempt in flight finishes first — with
    /// `reason`, at most `limit`, oldest first; those of webhooks with failure e-mails owe
    /// one. Returns how many expired.
    async fn expire_pending(
        &self,
        before: Timestamp,
        now: Timestamp,
        reason: &str,
        limit: u32,
    ) -> StoreResult<u64>;
    /// Takes one call from the token bucket `key` (a webhook's URL) at `per_second` with
    /// `burst` at most, shared by every node: `Ok` when allowed, else how long until one is.
    async fn take_rate_slot(
        &self,
        key: &str,
        per_second: f64,
        burst: f64,
        now: Timestamp,
    ) -> StoreResult<Result<(), std::time::Duration>>;
    /// Pending deliveries in all, and how many of them are parked (for the metrics).
    async fn queue_counts(&self) -> StoreResult<(u64, u64)>;
    /// Cancels a webhook's pending deliveries.
    async fn cancel_pending(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        at: Timestamp,
    ) -> StoreResult<u64>;
}

/// The delivery logs: what was sent where, as the pages and the API read it.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// The latest event received for an incident.
    async fn latest_incident_event(
        &self,
        organization_id: &OrganizationId,
        incident_id: &str,
    ) -> StoreResult<Option<Event>>;
    /// How many of a webhook's finished deliveries match `q` (any finished state unless `q`
    /// names one).
    async fn count_finished_matching(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        q: &LogQuery,
    ) -> StoreResult<u64>;
    /// A webhook's deliveries, newest first, with each one's position for paging.
    async fn list_deliveries(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        query: &LogQuery,
    ) -> StoreResult<Vec<(i64, Delivery)>>;
    async fn delivery(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        delivery_id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>>;
    /// Every delivery of an incident's events, across the organization's webhooks, in the
    /// order they were made (at most `limit`).
    async fn incident_deliveries(
        &self,
        organization_id: &OrganizationId,
        incident_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// The webhook's deliveries at these log positions, as they are now (what a Logs page
    /// shows follows them).
    async fn deliveries_at(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        seqs: &[i64],
    ) -> StoreResult<Vec<(i64, Delivery)>>;
}

/// Bulk retries: their jobs, and finished deliveries set pending again a batch at a time.
#[async_trait]
pub trait RetryJobStore: Send + Sync + 'static {
    /// One step of bulk retry `job`, if `runner` still holds it: sets up to `limit` of the
    /// deliveries `q` finds, oldest first after the position the job's row holds (not
    /// `job.after_seq`: a runner that lost a step's answer tries it again), pending again (due
    /// now; their attempts so far are kept, so each gets one more), and saves the job's new
    /// count and position in the same transaction, so that a runner taking the job over
    /// goes on exactly where this step ended. Returns what the step did and where the job
    /// now stands; `None` (and nothing re-queued) when another runner took the job over.
    async fn requeue_finished(
        &self,
        job: &RetryJob,
        runner: &str,
        q: &LogQuery,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Option<RetryStep>>;
    /// Records a new bulk retry held by `runner`, with its query (so that another runner
    /// can take it up).
    async fn create_retry_job(&self, job: &RetryJob, q: &LogQuery, runner: &str)
        -> StoreResult<()>;
    /// Saves a job's progress or end, if `runner` still holds it; false when another
    /// runner took it over (this one must stop).
    async fn save_retry_job(&self, job: &RetryJob, runner: &str) -> StoreResult<bool>;
    /// Takes over the oldest `running` job that saved nothing since `silent_since` (its
    /// runner stopped): it becomes `runner`'s, heard of `now`. One node gets it.
    async fn adopt_retry_job(
        &self,
        runner: &str,
        silent_since: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Option<(RetryJob, LogQuery)>>;
    /// A bulk retry; one still `running` that has not saved progress for
    /// [`RETRY_JOB_SILENCE`](crate::domain::delivery::RETRY_JOB_SILENCE) is reported
    /// `interrupted` (its runner stopped; a node will take it up).
    async fn retry_job(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        id: &str,
    ) -> StoreResult<Option<RetryJob>>;
}

/// Retention: what is older than the installation keeps goes, a bounded batch at a time.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes up to `limit` finished deliveries completed before `before`, oldest first,
    /// with their attempts and notifications, then those of their payloads and events
    /// nothing refers to any more (the event an incident's row points at stays: the
    /// manual trigger sends it), and events from before `before` that never had a delivery. Returns how
    /// many deliveries and events.
    async fn prune_deliveries(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;
    /// Deletes up to `limit` each of sent or skipped notifications and notices, audit
    /// entries and finished bulk retries from before `before`. Returns how many in all.
    async fn prune_records(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;
}

/// Whether a node may send a URL's circuit probe now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeClaim {
    /// Yes: this node's probe is the cluster's one until the claim's time runs out.
    Won,
    /// Not before this time: the next probe is not due yet, or another node's is out.
    Wait(Timestamp),
    /// The circuit is closed (another node's probe, or an attempt, was answered).
    Closed,
}

/// The circuits the nodes share: one row per URL whose circuit is open anywhere, keyed by
/// a hash of the URL (`domain::delivery::url_key`).
#[async_trait]
pub trait CircuitStore: Send + Sync + 'static {
    /// Opens the URL's circuit for the cluster with its first probe at `probe_at`; true
    /// when this call opened it, false when it was open already.
    async fn open_circuit(
        &self,
        url_key: &str,
        probe_at: Timestamp,
        cooldown: std::time::Duration,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Every open circuit, with when its next probe may go.
    async fn open_circuits(&self) -> StoreResult<Vec<(String, Timestamp)>>;
    /// Claims the URL's next probe for `owner` until `until`.
    async fn claim_probe(
        &self,
        url_key: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<ProbeClaim>;
    /// The URL answered: closes its circuit; true when this call closed it.
    async fn close_circuit(&self, url_key: &str) -> StoreResult<bool>;
    /// The probe failed: the next goes after twice the last cool-down, at most
    /// `max_cooldown`; when, or `None` when the circuit was closed meanwhile.
    async fn probe_failed(
        &self,
        url_key: &str,
        now: Timestamp,
        max_cooldown: std::time::Duration,
    ) -> StoreResult<Option<Timestamp>>;
}

/// Failure notifications: recorded with the failure, claimed and reported by the notifier.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Takes up to `limit` pending notifications that are due, pushing their next attempt
    /// to `lease_until` so no other node takes them meanwhile; with what the e-mail says.
    async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Notification, FailureReport)>>;
    /// When the webhook's last failure e-mail went out.
    async fn last_email_at(&self, webhook_id: &WebhookId) -> StoreResult<Option<Timestamp>>;
    async fn finish_notifications(
        &self,
        ids: &[String],
        outcome: &NotificationOutcome,
    ) -> StoreResult<()>;
    /// A webhook's notifications, newest first.
    async fn list_notifications(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;
    /// Records a notice, due at once.
    async fn insert_notice(&self, notice: &Notice) -> StoreResult<()>;
    /// A webhook's notices, newest first, with what became of each.
    async fn list_notices(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<NoticeRecord>>;
    /// Takes up to `limit` pending notices that are due, like `claim_notifications`.
    async fn claim_notices(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Notice>>;
    async fn finish_notices(
        &self,
        ids: &[String],
        outcome: &NotificationOutcome,
    ) -> StoreResult<()>;
    /// How many of a webhook's deliveries are pending.
    async fn pending_count(&self, webhook_id: &WebhookId) -> StoreResult<u64>;
    /// Whether any webhook anywhere has `mail_ids` (for the start-up warning).
    async fn any_webhook_with_mail_ids(&self) -> StoreResult<bool>;
    /// Reserves e-mailing about the webhook for `owner` until `until` (its e-mail is being
    /// decided and sent): `Err` with the time another owner's reservation ends.
    async fn reserve_mail(
        &self,
        webhook_id: &WebhookId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Result<(), Timestamp>>;
    /// Gives a reservation back (once the e-mail's outcome is recorded).
    async fn release_mail(&self, webhook_id: &WebhookId, owner: &str) -> StoreResult<()>;
}

/// Opens the database the URL names (`sqlite://…` or `postgres://…`), creating an SQLite
/// file if missing, applies migrations and unlocks its secrets with `key`: a key other
/// than the one they were sealed with is [`StoreError::WrongKey`]; on the first start with
/// a key, secrets stored in clear by earlier versions are sealed.
pub async fn open(url: &str, key: &SecretKey) -> StoreResult<Arc<dyn Store>> {
    sqlx::any::install_default_drivers();
    let sealer = Sealer::new(key);
    let store = if url.starts_with("sqlite:") {
        sqlite::open(url, sealer).await?
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::open(url, sealer).await?
    } else {
        return Err(StoreError::Config(format!(
            "database_url must start with sqlite:// or postgres://, got \"{url}\""
        )));
    };
    store.unlock().await?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    /// From 0025 on, a migration has the same number and name on both backends (before
    /// it, PostgreSQL's own 0020_notify shifted the numbers and SQLite has no 0024), so
    /// that "migration N" means one change to a reader of either folder.
    #[test]
    fn both_backends_number_their_migrations_alike() {
        let names = |backend: &str| -> Vec<String> {
            let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.as_str() >= "0025")
                .collect();
            names.sort();
            names
        };
        let sqlite = names("sqlite");
        assert!(sqlite.len() >= 5, "0025 to 0029 at least: {sqlite:?}");
        assert_eq!(sqlite, names("postgres"));
    }
}
