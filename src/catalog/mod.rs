//! Webhooks as matching and sending need them: parsed filters, kept in memory per
//! organization (whether a webhook is valid is `webhook_check`'s to say; this only caches
//! and matches), invalidated by this node's writes and by other nodes' as they are heard
//! (PostgreSQL notifications, see `store/changes.rs`), and reloaded when the organization's
//! `webhooks_version` moves (checked at most every 100 ms: the fallback should a
//! notification be missed).

mod index;

use crate::domain::ids::{OrganizationId, WebhookId};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    domain::{
        event::Event,
        organization::Organization,
        webhook::{TriggerType, Webhook},
    },
    filter::{self, Filter, Subject},
    store::{Store, StoreError},
};

/// A webhook with its filter parsed.
#[derive(Debug, Clone)]
pub struct CompiledWebhook {
    pub webhook: Webhook,
    pub filter: Option<Filter>,
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
/// since) matches nothing rather than everything.
fn compile(webhook: Webhook) -> CompiledWebhook {
    let filter = match &webhook.spec.filters {
        Some(value) => filter::parse_stored(value).unwrap_or_else(|_| {
            tracing::warn!(webhook = %webhook.id, "stored filter no longer parses; the webhook matches nothing until it is saved again");
            Some(Filter::Group { all: false, conditions: Vec::new() })
        }),
        None => None,
    };
    CompiledWebhook { webhook, filter }
}

/// How long a cached organization is trusted without asking for its version again. Writes
/// through this node invalidate at once; other nodes' writes are seen within this time.
const FRESH: Duration = Duration::from_millis(100);

/// An organization's parsed webhooks, indexed by id, and the organization itself (its name
/// goes into every payload; organizations are never renamed).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub organization: Option<Organization>,
    pub webhooks: Vec<CompiledWebhook>,
    /// Some filter uses a regular expression: matching may take real CPU time, so intake
    /// runs it off the async workers.
    pub has_regex: bool,
    by_id: HashMap<WebhookId, usize>,
    index: index::MatchIndex,
}

impl Snapshot {
    pub fn new(organization: Option<Organization>, webhooks: Vec<CompiledWebhook>) -> Self {
        let by_id = webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| (w.webhook.id.clone(), i))
            .collect();
        let has_regex = webhooks
            .iter()
            .any(|w| w.filter.as_ref().is_some_and(Filter::has_regex));
        Self {
            organization,
            index: index::MatchIndex::new(&webhooks),
            webhooks,
            has_regex,
            by_id,
        }
    }

    /// The webhooks `event` fires, in order: those the index could not rule out, checked
    /// in full.
    pub fn matching<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a CompiledWebhook> {
        self.index
            .candidates(event)
            .into_iter()
            .filter_map(move |c| {
                let w = &self.webhooks[c.webhook as usize];
                let fires = if c.proven {
                    in_scope(&w.webhook.spec, event)
                } else {
                    fires_for(w, event)
                };
                fires.then_some(w)
            })
    }

    pub fn get(&self, id: &str) -> Option<&CompiledWebhook> {
        self.by_id.get(id).map(|&i| &self.webhooks[i])
    }
}

struct Cached {
    version: i64,
    checked: Instant,
    snapshot: Arc<Snapshot>,
}

pub struct Catalog {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<OrganizationId, Cached>>,
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The cache, whole even if a thread panicked holding it (each change to it is one map
    /// operation, never left half done), as the engine's own locks are taken.
    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<OrganizationId, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets an organization after a write through this node, so the next read reloads.
    pub fn invalidate(&self, organization_id: &OrganizationId) {
        self.cached().remove(organization_id);
    }

    /// Forgets every organization (changes by other nodes may have been missed).
    pub fn invalidate_all(&self) {
        self.cached().clear();
    }

    /// The organization's webhooks, parsed: from memory while fresh, then after one version
    /// read while nothing changed, else reloaded.
    pub async fn webhooks(
        &self,
        organization_id: &OrganizationId,
    ) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(c) = self.cached().get(organization_id) {
            if c.checked.elapsed() < FRESH {
                return Ok(c.snapshot.clone());
            }
        }
        let version = self.store.webhooks_version(organization_id).await?;
        if let Some(c) = self.cached().get_mut(organization_id) {
            if c.version == version {
                c.checked = Instant::now();
                return Ok(c.snapshot.clone());
            }
        }
        // Read the version before the rows: a change in between makes the next check reload.
        let snapshot = Arc::new(Snapshot::new(
            self.store.organization(organization_id).await?,
            self.store
                .all_webhooks(organization_id)
                .await?
                .into_iter()
                .map(compile)
                .collect(),
        ));
        let cached = Cached {
            version,
            checked: Instant::now(),
            snapshot: snapshot.clone(),
        };
        self.cached().insert(organization_id.clone(), cached);
        Ok(snapshot)
    }

    /// One webhook, as sending needs it. A webhook the cached snapshot lacks may be one
    /// another node created a moment ago (its delivery claimed here before this node heard
    /// of it): the organization is read again before the answer is `None`.
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
    use super::*;
    use crate::domain::event::{parse_event, Tenant};
    use serde_json::{json, Value};

    fn event(kind: &str, team: &str) -> Event {
        let body = json!({
            "type": kind, "team": {"id": team},
            "incident": {"id": "i", "message": "m", "status": "triggered",
                         "service": {"id": "s"}, "alert_source": {"id": "a"}}
        });
        parse_event(&body, Tenant { id: "o", name: "O" }).unwrap()
    }

    fn hook(patch: Value) -> CompiledWebhook {
        let mut body = json!({
            "name": "w",
            "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://e.example/h"}],
            "is_all_teams_configured": true
        });
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let checked = crate::webhook_check::check(&body).unwrap();
        CompiledWebhook {
            webhook: Webhook::new(&"o".into(), "t", checked.spec),
            filter: checked.filter,
        }
    }

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
