//! An organization's webhooks as matching sees them (pure): parsed, positioned by id and
//! filed in the match index; and the same brought up to date by what was written and
//! deleted since, sharing every webhook that did not change.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use crate::{
    domain::{event::Event, ids::WebhookId, organization::Organization},
    filter::Filter,
};

use super::{fires_for, in_scope, index, positions, CompiledWebhook};

/// An organization's parsed webhooks, indexed by id, and the organization itself (its name
/// goes into every payload; organizations are never renamed).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub organization: Option<Organization>,
    /// Oldest first. Shared with the snapshots before and after it: a change to one
    /// webhook makes a new snapshot without copying or parsing the others.
    pub webhooks: Vec<Arc<CompiledWebhook>>,
    /// Some filter uses a regular expression: matching may take real CPU time, so intake
    /// runs it off the async workers.
    pub has_regex: bool,
    positions: positions::Positions,
    index: index::MatchIndex,
}

impl Snapshot {
    pub fn new(organization: Option<Organization>, webhooks: Vec<CompiledWebhook>) -> Self {
        Self::of(organization, webhooks.into_iter().map(Arc::new).collect())
    }

    fn of(organization: Option<Organization>, webhooks: Vec<Arc<CompiledWebhook>>) -> Self {
        let positions = positions::Positions::new(webhooks.iter().map(|w| w.webhook.id.as_str()));
        let has_regex = has_regex(&webhooks);
        Self {
            organization,
            index: index::MatchIndex::new(&webhooks),
            webhooks,
            has_regex,
            positions,
        }
    }

    /// The webhooks `event` fires, in order: those the index could not rule out, checked
    /// in full.
    pub fn matching<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a CompiledWebhook> {
        self.index
            .candidates(event)
            .into_iter()
            .filter_map(move |c| {
                let w = &*self.webhooks[c.webhook as usize];
                let fires = if c.proven {
                    in_scope(&w.webhook.spec, event)
                } else {
                    fires_for(w, event)
                };
                fires.then_some(w)
            })
    }

    pub fn get(&self, id: &str) -> Option<&CompiledWebhook> {
        position(&self.positions, &self.webhooks, id).map(|at| &*self.webhooks[at])
    }

    /// This snapshot with `written` (webhooks created or changed since) in place and
    /// without the webhooks `gone` (deleted since). The others are shared, not parsed
    /// again; the order stays the store's (oldest first).
    pub fn updated(&self, written: Vec<CompiledWebhook>, gone: &HashSet<WebhookId>) -> Snapshot {
        let mut written: Vec<Arc<CompiledWebhook>> = written
            .into_iter()
            // Read, then deleted before the deletions were: gone.
            .filter(|w| !gone.contains(&w.webhook.id))
            .map(Arc::new)
            .collect();
        written.sort_by(|a, b| store_order(a, b));
        // The usual changes (webhooks edited, deleted, or created after every other) keep
        // the order: the index is patched, not built again (at 100,000 webhooks a build
        // takes longer than a change may take to reach matching).
        let appended_in_order = written
            .iter()
            .filter(|w| self.get(w.webhook.id.as_str()).is_none())
            .all(|w| {
                self.webhooks
                    .last()
                    .is_none_or(|last| store_order(last, w).is_lt())
            });
        if !appended_in_order {
            return self.rebuilt(written, gone);
        }
        let mut webhooks = self.webhooks.clone();
        let mut index = self.index.clone();
        let mut positions = self.positions.clone();
        let mut gone_at: Vec<usize> = gone
            .iter()
            .filter_map(|id| position(&self.positions, &self.webhooks, id))
            .collect();
        gone_at.sort_unstable();
        if !gone_at.is_empty() {
            for &at in &gone_at {
                index.remove(at as u32, &webhooks[at]);
            }
            // Every position after a deleted one moves down.
            let mut moved = Vec::with_capacity(webhooks.len());
            let mut before = 0;
            for at in 0..webhooks.len() {
                moved.push((at - before) as u32);
                if gone_at.get(before) == Some(&at) {
                    before += 1;
                }
            }
            index.renumber(|at| moved[at as usize]);
            positions.renumber(&gone_at, &moved);
            let mut at = 0;
            webhooks.retain(|_| {
                at += 1;
                gone_at.binary_search(&(at - 1)).is_err()
            });
        }
        for compiled in written {
            match position(&positions, &webhooks, compiled.webhook.id.as_str()) {
                Some(at) => {
                    index.remove(at as u32, &webhooks[at]);
                    index.add(at as u32, &compiled);
                    webhooks[at] = compiled;
                }
                None => {
                    let at = webhooks.len();
                    positions.insert(compiled.webhook.id.as_str(), at);
                    index.add(at as u32, &compiled);
                    webhooks.push(compiled);
                }
            }
        }
        Snapshot {
            organization: self.organization.clone(),
            has_regex: has_regex(&webhooks),
            webhooks,
            positions,
            index,
        }
    }

    /// Built again from the webhooks kept and `written` (already parsed).
    fn rebuilt(&self, written: Vec<Arc<CompiledWebhook>>, gone: &HashSet<WebhookId>) -> Snapshot {
        let mut written: HashMap<WebhookId, Arc<CompiledWebhook>> = written
            .into_iter()
            .map(|c| (c.webhook.id.clone(), c))
            .collect();
        let mut webhooks: Vec<Arc<CompiledWebhook>> = self
            .webhooks
            .iter()
            .filter(|w| !gone.contains(&w.webhook.id))
            .map(|w| written.remove(&w.webhook.id).unwrap_or_else(|| w.clone()))
            .collect();
        if !written.is_empty() {
            webhooks.extend(written.into_values());
            webhooks.sort_by(|a, b| store_order(a, b));
        }
        Snapshot::of(self.organization.clone(), webhooks)
    }
}

/// Where the webhook with `id` is in `webhooks`, found through `positions`.
fn position(
    positions: &positions::Positions,
    webhooks: &[Arc<CompiledWebhook>],
    id: &str,
) -> Option<usize> {
    positions
        .candidates(id)
        .find(|&at| webhooks[at].webhook.id.as_str() == id)
}

/// The store's order of an organization's webhooks: oldest first, then by id.
fn store_order(a: &CompiledWebhook, b: &CompiledWebhook) -> std::cmp::Ordering {
    (a.webhook.created_at, &a.webhook.id).cmp(&(b.webhook.created_at, &b.webhook.id))
}

fn has_regex(webhooks: &[Arc<CompiledWebhook>]) -> bool {
    webhooks
        .iter()
        .any(|w| w.filter.as_ref().is_some_and(Filter::has_regex))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::testing::{event, hook, incident_event, webhook};
    use proptest::prelude::*;
    use serde_json::json;

    /// One change, one creation, one deletion: the updated snapshot matches as a fresh
    /// one, and shares the webhooks that did not change.
    #[test]
    fn an_updated_snapshot_shares_what_did_not_change() {
        let by_service = |svc: &str| {
            hook(json!({"filters": {"op": "and", "conditions": [
                {"op": "is", "lhs": "service", "rhs": svc}]}}))
        };
        let hooks = [
            by_service("s"),
            by_service("s"),
            hook(json!({})),
            by_service("x"),
        ];
        let old = Snapshot::new(None, hooks.to_vec());
        let mut changed = hooks[1].clone();
        changed.webhook.spec.name = "changed".into();
        changed = CompiledWebhook::new(changed.webhook, by_service("other").filter);
        let added = by_service("s");
        let gone: HashSet<WebhookId> = [hooks[2].webhook.id.clone()].into();
        let updated = old.updated(vec![changed.clone(), added.clone()], &gone);

        let mut expected = vec![hooks[0].clone(), changed, hooks[3].clone(), added];
        expected.sort_by(store_order);
        let fresh = Snapshot::new(None, expected);
        let ids = |s: &Snapshot| -> Vec<WebhookId> {
            s.webhooks.iter().map(|w| w.webhook.id.clone()).collect()
        };
        assert_eq!(ids(&updated), ids(&fresh));
        let event = incident_event("incident.triggered", "t1");
        let matched = |s: &Snapshot| -> Vec<WebhookId> {
            s.matching(&event).map(|w| w.webhook.id.clone()).collect()
        };
        assert_eq!(matched(&updated), matched(&fresh));
        assert_eq!(matched(&updated).len(), 2, "the first and the added one");
        let kept = |s: &Snapshot| {
            s.webhooks
                .iter()
                .find(|w| w.webhook.id == hooks[3].webhook.id)
                .cloned()
                .unwrap()
        };
        assert!(Arc::ptr_eq(&kept(&old), &kept(&updated)), "shared");
        assert!(updated.get(hooks[2].webhook.id.as_str()).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// A snapshot brought up to date (webhooks changed, created, deleted; the index
        /// patched or built again) matches as one built afresh from the same webhooks.
        #[test]
        fn an_updated_snapshot_matches_as_a_fresh_one(
            webhooks in proptest::collection::vec(webhook(), 1..30),
            changes in proptest::collection::vec((any::<proptest::sample::Index>(), webhook()), 0..4),
            // Some created "before" a webhook held (another node's clock): a rebuild.
            added in proptest::collection::vec((webhook(), proptest::option::of(any::<proptest::sample::Index>())), 0..3),
            deleted in proptest::collection::vec(any::<proptest::sample::Index>(), 0..3),
            events in proptest::collection::vec(event(), 1..6),
        ) {
            use std::collections::BTreeMap;
            let old = Snapshot::new(None, webhooks.clone());
            let mut now: BTreeMap<_, CompiledWebhook> = webhooks
                .iter()
                .map(|w| (w.webhook.id.clone(), w.clone()))
                .collect();
            let mut written = Vec::new();
            for (at, mut changed) in changes {
                let was = &webhooks[at.index(webhooks.len())];
                changed.webhook.id = was.webhook.id.clone();
                changed.webhook.created_at = was.webhook.created_at;
                now.insert(changed.webhook.id.clone(), changed.clone());
                written.retain(|w: &CompiledWebhook| w.webhook.id != changed.webhook.id);
                written.push(changed);
            }
            for (mut new, backdated) in added {
                if let Some(at) = backdated {
                    let held = &webhooks[at.index(webhooks.len())].webhook;
                    new.webhook.created_at =
                        crate::domain::Timestamp::from_micros(held.created_at.as_micros() - 1);
                }
                now.insert(new.webhook.id.clone(), new.clone());
                written.push(new);
            }
            // A deleted webhook may also have been written (read, then deleted): gone.
            let mut gone = HashSet::new();
            for at in &deleted {
                let id = &webhooks[at.index(webhooks.len())].webhook.id;
                now.remove(id);
                gone.insert(id.clone());
            }
            let updated = old.updated(written, &gone);

            // The store's order, written out again: oldest first, then by id.
            let mut expected: Vec<CompiledWebhook> = now.into_values().collect();
            expected.sort_by_key(|w| (w.webhook.created_at.as_micros(), w.webhook.id.to_string()));
            let fresh = Snapshot::new(None, expected);
            let ids = |s: &Snapshot| -> Vec<String> {
                s.webhooks.iter().map(|w| w.webhook.id.to_string()).collect()
            };
            prop_assert_eq!(ids(&updated), ids(&fresh));
            for w in &fresh.webhooks {
                let found = updated.get(w.webhook.id.as_str()).map(|f| f.webhook.spec.clone());
                prop_assert_eq!(found, Some(w.webhook.spec.clone()));
            }
            for id in &gone {
                prop_assert!(updated.get(id.as_str()).is_none());
            }
            for event in &events {
                let matched = |s: &Snapshot| -> Vec<String> {
                    s.matching(event).map(|w| w.webhook.id.to_string()).collect()
                };
                prop_assert_eq!(matched(&updated), matched(&fresh));
            }
        }
    }
}
