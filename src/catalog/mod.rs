//! Webhooks as matching and sending need them: parsed filters, kept in memory per
//! organization (whether a webhook is valid is `webhook_check`'s to say; this only caches
//! and matches), marked stale by this node's writes and by other nodes' as they are heard
//! (PostgreSQL notifications, see `store/changes.rs`), and brought up to date with what
//! was written and deleted since when the organization's `webhooks_version` moves (checked
//! at most every 100 ms: the fallback should a notification be missed).

mod index;
mod positions;
mod snapshot;
#[cfg(test)]
mod testing;
mod turns;

pub use snapshot::Snapshot;

use crate::domain::ids::{OrganizationId, WebhookId};
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    domain::{
        event::Event,
        webhook::{TriggerType, Webhook},
    },
    filter::{self, Filter, Subject},
    store::{Store, StoreError},
};

/// A webhook with its filter parsed: a snapshot made after one webhook changed shares the
/// others without parsing them again.
#[derive(Debug, Clone)]
pub struct CompiledWebhook {
    /// Without its filter's stored form, when the catalog read it (see [`compile`]).
    pub webhook: Webhook,
    pub filter: Option<Filter>,
}

impl CompiledWebhook {
    pub fn new(webhook: Webhook, filter: Option<Filter>) -> Self {
        Self { webhook, filter }
    }
}

/// A webhook fires for an event when it is enabled and automatic, one of its triggers is
/// the event's type, its team scope covers the event's team, and its filter matches.
pub fn fires_for(compiled: &CompiledWebhook, event: &Event) -> bool {
    let spec = &compiled.webhook.spec;
    spec.enabled
        && spec.trigger_type == TriggerType::Automatic
        && spec.triggers.iter().any(|t| {
            t.event_class == event.event_type.class && t.event_type == event.event_type.action
        })
        && in_scope(spec, event)
        && compiled.filter.as_ref().is_none_or(|f| {
            filter::matches(
                f,
                Subject {
                    incident: &event.incident,
                    team_id: event.team_id(),
                    resource: event.resource.as_ref().map(|r| &r.value),
                },
            )
        })
}

/// Whether a webhook's team scope covers the event's team.
fn in_scope(spec: &crate::domain::webhook::WebhookSpec, event: &Event) -> bool {
    spec.is_all_teams_configured || spec.teams.iter().any(|t| t == event.team_id())
}

/// Stored filters were validated when saved; one that no longer parses (a rule tightened
/// since) matches nothing rather than everything. The filter's stored form is not kept
/// (`spec.filters` is `None` in the catalog): parsed, it is all matching needs, and as JSON
/// it took half of a cached webhook's memory. Whoever shows or edits a webhook reads it
/// from the store.
fn compile(mut webhook: Webhook) -> CompiledWebhook {
    let filter = match &webhook.spec.filters.take() {
        Some(value) => filter::parse_stored(value).unwrap_or_else(|_| {
            tracing::warn!(webhook = %webhook.id, "stored filter no longer parses; the webhook matches nothing until it is saved again");
            Some(Filter::Group { all: false, conditions: Vec::new() })
        }),
        None => None,
    };
    CompiledWebhook::new(webhook, filter)
}

/// How long a cached organization is trusted without asking for its version again. Writes
/// through this node invalidate at once; other nodes' writes are seen within this time.
const FRESH: Duration = Duration::from_millis(100);

/// What a blocking task gave back: its panic goes on as the caller's.
fn off_the_workers(done: Result<Snapshot, tokio::task::JoinError>) -> Result<Snapshot, StoreError> {
    match done {
        Ok(snapshot) => Ok(snapshot),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime is shutting down.
        Err(_) => Err(StoreError::Unavailable(
            "tocsin is shutting down".to_owned(),
        )),
    }
}

struct Cached {
    version: i64,
    /// When the version was last confirmed; `None` once a write may have moved it.
    checked: Option<Instant>,
    snapshot: Arc<Snapshot>,
}

pub struct Catalog {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<OrganizationId, Cached>>,
    /// One read of an organization at a time: requests that find it stale while another
    /// reads it wait for that snapshot instead of reading it too (a first read of 100,000
    /// webhooks takes seconds of CPU; a burst of events at start-up would pay it per event).
    reading: turns::Turns<OrganizationId>,
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
            reading: turns::Turns::default(),
        }
    }

    /// The cache, whole even if a thread panicked holding it (each change to it is one map
    /// operation, never left half done), as the engine's own locks are taken.
    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<OrganizationId, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a write through this node: the next read asks for the organization's version
    /// and reads what changed.
    pub fn invalidate(&self, organization_id: &OrganizationId) {
        if let Some(c) = self.cached().get_mut(organization_id) {
            c.checked = None;
        }
    }

    /// The snapshot held, while it is fresh.
    fn fresh(&self, organization_id: &OrganizationId) -> Option<Arc<Snapshot>> {
        self.cached()
            .get(organization_id)
            .filter(|c| c.checked.is_some_and(|at| at.elapsed() < FRESH))
            .map(|c| c.snapshot.clone())
    }

    /// Every organization is asked for its version again (changes by other nodes may have
    /// been missed).
    pub fn invalidate_all(&self) {
        for c in self.cached().values_mut() {
            c.checked = None;
        }
    }

    /// The organization's webhooks, parsed: from memory while fresh, then after one version
    /// read while nothing changed; else the snapshot held brought up to date with the
    /// webhooks written since (only those are read and parsed), or read whole the first
    /// time.
    pub async fn webhooks(
        &self,
        organization_id: &OrganizationId,
    ) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(fresh) = self.fresh(organization_id) {
            return Ok(fresh);
        }
        self.reading
            .take(
                organization_id,
                || self.fresh(organization_id),
                self.read(organization_id),
                || {
                    StoreError::Unavailable(
                        "the organization's webhooks could not be read just now".to_owned(),
                    )
                },
            )
            .await
    }

    /// Reads the organization's webhooks (its turn held): the snapshot held brought up to
    /// date, or read whole.
    async fn read(&self, organization_id: &OrganizationId) -> Result<Arc<Snapshot>, StoreError> {
        let held = self
            .cached()
            .get(organization_id)
            .map(|c| (c.version, c.snapshot.clone()));
        // Read the version before the rows: a change in between makes the next check read
        // again from this version (reading a row twice is harmless).
        let version = self.store.webhooks_version(organization_id).await?;
        let snapshot = match held {
            Some((held, snapshot)) if held == version => snapshot,
            // Behind, never ahead: a version that went back (a database restored) is read
            // whole, as is a snapshot taken before its organization existed.
            Some((held, snapshot)) if held < version && snapshot.organization.is_some() => {
                Arc::new(
                    self.brought_up_to_date(organization_id, snapshot, held)
                        .await?,
                )
            }
            _ => {
                let organization = self.store.organization(organization_id).await?;
                let rows = self.store.all_webhooks(organization_id).await?;
                // Parsing and filing thousands of webhooks is seconds of CPU: off the async
                // workers, which serve every other request meanwhile.
                let built = tokio::task::spawn_blocking(move || {
                    Snapshot::new(organization, rows.into_iter().map(compile).collect())
                })
                .await;
                Arc::new(off_the_workers(built)?)
            }
        };
        let cached = Cached {
            version,
            checked: Some(Instant::now()),
            snapshot: snapshot.clone(),
        };
        self.cached().insert(organization_id.clone(), cached);
        Ok(snapshot)
    }

    /// `snapshot` (as of version `since`) with the webhooks written since, and without
    /// those deleted: the store's record of deletions, checked against the count of
    /// webhooks; when they disagree (a deletion older than the store remembers, or a write
    /// meanwhile), the ids are read.
    async fn brought_up_to_date(
        &self,
        organization_id: &OrganizationId,
        snapshot: Arc<Snapshot>,
        since: i64,
    ) -> Result<Snapshot, StoreError> {
        let changes = self.store.webhooks_changed(organization_id, since).await?;
        let held = |id: &WebhookId| snapshot.get(id.as_str()).is_some();
        let mut gone: HashSet<WebhookId> = changes.deleted.into_iter().filter(held).collect();
        // Every row written since is present, readable or not.
        let added = changes
            .written
            .iter()
            .map(|w| &w.id)
            .chain(&changes.unreadable)
            .filter(|id| !held(id))
            .count();
        if snapshot.webhooks.len() + added != changes.count + gone.len() {
            let present: HashSet<WebhookId> = self
                .store
                .webhook_ids(organization_id)
                .await?
                .into_iter()
                .collect();
            gone = snapshot
                .webhooks
                .iter()
                .map(|w| &w.webhook.id)
                .chain(changes.written.iter().map(|w| &w.id))
                .filter(|id| !present.contains(*id))
                .cloned()
                .collect();
        }
        // An unreadable row is left out, as a full read would leave it out.
        gone.extend(changes.unreadable);
        let written = changes.written;
        // At 100,000 webhooks patching takes tens of milliseconds (a rebuild, when a new
        // webhook sorts before one held, half a second): off the async workers.
        let updated = tokio::task::spawn_blocking(move || {
            snapshot.updated(written.into_iter().map(compile).collect(), &gone)
        })
        .await;
        off_the_workers(updated)
    }

    /// One webhook, as sending needs it. A webhook the cached snapshot lacks may be one
    /// another node created a moment ago (its delivery claimed here before this node heard
    /// of it): the organization's version is checked again (and what changed read) before
    /// the answer is `None`.
    pub async fn webhook(
        &self,
        organization_id: &OrganizationId,
        id: &str,
    ) -> Result<Option<Webhook>, StoreError> {
        if let Some(found) = self.webhooks(organization_id).await?.get(id) {
            return Ok(Some(found.webhook.clone()));
        }
        self.invalidate(organization_id);
        Ok(self
            .webhooks(organization_id)
            .await?
            .get(id)
            .map(|c| c.webhook.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{hook, incident_event as event};
    use super::*;
    use serde_json::json;

    #[test]
    fn fires_only_when_every_condition_holds() {
        let triggered = event("incident.triggered", "t1");
        assert!(fires_for(&hook(json!({})), &triggered));
        assert!(!fires_for(
            &hook(json!({})),
            &event("incident.resolved", "t1")
        ));
        assert!(!fires_for(&hook(json!({"enabled": false})), &triggered));
        assert!(!fires_for(
            &hook(json!({"trigger_type": "manual"})),
            &triggered
        ));
        let scoped = hook(json!({"is_all_teams_configured": false, "teams": ["t2", "t1"]}));
        assert!(fires_for(&scoped, &triggered));
        assert!(!fires_for(&scoped, &event("incident.triggered", "t3")));
        let filtered = |svc: &str| {
            hook(
                json!({"filters": {"op": "and", "conditions": [{"op": "is", "lhs": "service", "rhs": svc}]}}),
            )
        };
        assert!(fires_for(&filtered("s"), &triggered));
        assert!(!fires_for(&filtered("other"), &triggered));
    }
}
