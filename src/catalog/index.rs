//! Which of an organization's webhooks an event could fire, found by looking its values up
//! instead of evaluating every webhook (pure). Webhooks are grouped by trigger; within a
//! trigger, each webhook is filed under its filter's guard (`filter::guard`: the values a
//! field must have or begin with), or among those evaluated for every event when it has
//! none. For an event, each field some guard names is resolved once and looked up; the
//! candidates are then checked in full by [`super::fires_for`], so the index only ever
//! leaves out webhooks that could not match.

use std::collections::HashMap;

use crate::{
    domain::{event::Event, webhook::TriggerType},
    filter::{
        guard::{guard, Key},
        resolve, Field, Subject,
    },
};

use super::CompiledWebhook;

#[derive(Debug, Default, Clone)]
pub struct MatchIndex {
    triggers: Vec<TriggerBucket>,
}

/// The webhooks one trigger (`event_class`, `event_type`) may fire.
#[derive(Debug, Clone)]
struct TriggerBucket {
    class: String,
    action: String,
    /// Evaluated for every event of the trigger: a filter without a guard (`proves`: no
    /// filter at all).
    always: Vec<Candidate>,
    fields: Vec<FieldIndex>,
}

/// The webhooks filed under values of one field.
#[derive(Debug, Clone)]
struct FieldIndex {
    field: Field,
    is: HashMap<String, Vec<Candidate>>,
    /// By prefix length in bytes, then prefix.
    starts_with: Vec<(usize, HashMap<String, Vec<Candidate>>)>,
}

/// A webhook an event may fire: its position, and whether how it was found proves its
/// filter matches (only its team scope is left to check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    pub webhook: u32,
    pub proven: bool,
}

impl MatchIndex {
    pub fn new(webhooks: &[impl std::ops::Deref<Target = CompiledWebhook>]) -> Self {
        let mut index = MatchIndex::default();
        for (i, compiled) in webhooks.iter().enumerate() {
            index.add(i as u32, compiled);
        }
        index
    }

    /// Files the webhook at `position` under its triggers and guard.
    pub fn add(&mut self, position: u32, compiled: &CompiledWebhook) {
        self.each_list(compiled, |list, proven| {
            list.push(Candidate {
                webhook: position,
                proven,
            })
        });
    }

    /// Takes the webhook at `position` out, as [`add`](Self::add) filed `compiled` (the
    /// webhook as it was then): before it is replaced by its changed self. A value no
    /// webhook is filed under any more is forgotten, and a field with none left (a node
    /// running for months would otherwise keep every value ever used, and look each up).
    pub fn remove(&mut self, position: u32, compiled: &CompiledWebhook) {
        if !filed(compiled) {
            return;
        }
        let keys = compiled.filter.as_ref().map(guard);
        for trigger in &compiled.webhook.spec.triggers {
            let Some(bucket) = self
                .triggers
                .iter_mut()
                .find(|b| b.class == trigger.event_class && b.action == trigger.event_type)
            else {
                continue;
            };
            match &keys {
                None | Some(None) => bucket.always.retain(|c| c.webhook != position),
                Some(Some(keys)) => {
                    for guarded in keys {
                        bucket.forget(&guarded.key, position);
                    }
                }
            }
        }
    }

    /// Gives every webhook filed its new position (`to(old)`), after some were removed.
    pub fn renumber(&mut self, to: impl Fn(u32) -> u32) {
        for bucket in &mut self.triggers {
            let lists = bucket.fields.iter_mut().flat_map(|f| {
                f.is.values_mut()
                    .chain(f.starts_with.iter_mut().flat_map(|(_, m)| m.values_mut()))
            });
            for list in std::iter::once(&mut bucket.always).chain(lists) {
                for c in list {
                    c.webhook = to(c.webhook);
                }
            }
        }
    }

    /// Calls `f` with every list the webhook belongs in, and whether being found through it
    /// proves the filter.
    fn each_list(
        &mut self,
        compiled: &CompiledWebhook,
        mut f: impl FnMut(&mut Vec<Candidate>, bool),
    ) {
        if !filed(compiled) {
            return;
        }
        // Worked out when needed rather than kept: kept, guards took a quarter of the
        // catalog's memory.
        let keys = compiled.filter.as_ref().map(guard);
        for trigger in &compiled.webhook.spec.triggers {
            let bucket = self.bucket(&trigger.event_class, &trigger.event_type);
            match &keys {
                None => f(&mut bucket.always, true),
                Some(None) => f(&mut bucket.always, false),
                Some(Some(keys)) => {
                    for guarded in keys {
                        f(bucket.list(&guarded.key), guarded.proves);
                    }
                }
            }
        }
    }

    fn bucket(&mut self, class: &str, action: &str) -> &mut TriggerBucket {
        let at = match self
            .triggers
            .iter()
            .position(|b| b.class == class && b.action == action)
        {
            Some(at) => at,
            None => {
                self.triggers.push(TriggerBucket {
                    class: class.to_owned(),
                    action: action.to_owned(),
                    always: Vec::new(),
                    fields: Vec::new(),
                });
                self.triggers.len() - 1
            }
        };
        &mut self.triggers[at]
    }

    /// The webhooks `event` could fire, in order, each once (proven if any way it was
    /// found proves it).
    pub fn candidates(&self, event: &Event) -> Vec<Candidate> {
        let Some(bucket) = self
            .triggers
            .iter()
            .find(|b| b.class == event.event_type.class && b.action == event.event_type.action)
        else {
            return Vec::new();
        };
        let subject = Subject {
            incident: &event.incident,
            team_id: event.team_id(),
            resource: event.resource.as_ref().map(|r| &r.value),
        };
        let mut found = bucket.always.clone();
        for field in &bucket.fields {
            let Some(value) = resolve(&field.field, subject) else {
                continue;
            };
            if let Some(hooks) = field.is.get(value.as_ref()) {
                found.extend_from_slice(hooks);
            }
            for (len, by_prefix) in &field.starts_with {
                if let Some(start) = value.get(..*len) {
                    if let Some(hooks) = by_prefix.get(start) {
                        found.extend_from_slice(hooks);
                    }
                }
            }
        }
        // By position, a proven finding first, so that it is the one kept.
        found.sort_unstable_by(|a, b| a.webhook.cmp(&b.webhook).then(b.proven.cmp(&a.proven)));
        found.dedup_by_key(|c| c.webhook);
        found
    }
}

/// Whether the index holds the webhook at all: one never fired by an event (disabled, or
/// sent only by hand) is left out.
fn filed(compiled: &CompiledWebhook) -> bool {
    let spec = &compiled.webhook.spec;
    spec.enabled && spec.trigger_type == TriggerType::Automatic
}

impl TriggerBucket {
    /// Takes the webhook at `position` off the list under `key`, and drops what that empties.
    fn forget(&mut self, key: &Key, position: u32) {
        let (Key::Is(field, value) | Key::StartsWith(field, value)) = key;
        let Some(at) = self.fields.iter().position(|f| &f.field == field) else {
            return;
        };
        let index = &mut self.fields[at];
        let by_value = match key {
            Key::Is(..) => Some(&mut index.is),
            Key::StartsWith(..) => index
                .starts_with
                .iter_mut()
                .find(|(len, _)| *len == value.len())
                .map(|(_, by_prefix)| by_prefix),
        };
        if let Some(by_value) = by_value {
            if let Some(list) = by_value.get_mut(value) {
                list.retain(|c| c.webhook != position);
                if list.is_empty() {
                    by_value.remove(value);
                }
            }
        }
        index
            .starts_with
            .retain(|(_, by_prefix)| !by_prefix.is_empty());
        if index.is.is_empty() && index.starts_with.is_empty() {
            self.fields.remove(at);
        }
    }

    /// The list of webhooks filed under `key`, made empty if there is none yet.
    fn list(&mut self, key: &Key) -> &mut Vec<Candidate> {
        let (field, value) = match key {
            Key::Is(field, value) | Key::StartsWith(field, value) => (field, value),
        };
        let at = match self.fields.iter().position(|f| &f.field == field) {
            Some(at) => at,
            None => {
                self.fields.push(FieldIndex {
                    field: field.clone(),
                    is: HashMap::new(),
                    starts_with: Vec::new(),
                });
                self.fields.len() - 1
            }
        };
        let index = &mut self.fields[at];
        let by_value = match key {
            Key::Is(..) => &mut index.is,
            Key::StartsWith(..) => {
                let len = value.len();
                let at = match index.starts_with.iter().position(|(l, _)| *l == len) {
                    Some(at) => at,
                    None => {
                        index.starts_with.push((len, HashMap::new()));
                        index.starts_with.len() - 1
                    }
                };
                &mut index.starts_with[at].1
            }
        };
        // Looked up before it is copied: most keys are already there.
        if !by_value.contains_key(value) {
            by_value.insert(value.clone(), Vec::new());
        }
        by_value.get_mut(value).expect("just made")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::testing::{event, webhook};
    use crate::domain::{
        event::{parse_event, Tenant},
        webhook::Webhook,
    };
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The index never leaves out a webhook that fires: indexed matching and
        /// evaluating every webhook agree.
        #[test]
        fn the_index_agrees_with_evaluating_every_webhook(
            webhooks in proptest::collection::vec(webhook(), 1..40),
            events in proptest::collection::vec(event(), 1..8),
        ) {
            let snapshot = crate::catalog::Snapshot::new(None, webhooks);
            for event in &events {
                let plain: Vec<&str> = snapshot
                    .webhooks
                    .iter()
                    .filter(|w| crate::catalog::fires_for(w, event))
                    .map(|w| w.webhook.id.as_str())
                    .collect();
                let indexed: Vec<&str> = snapshot
                    .matching(event)
                    .map(|w| w.webhook.id.as_str())
                    .collect();
                prop_assert_eq!(plain, indexed);
            }
        }
    }

    #[test]
    fn only_webhooks_whose_values_the_event_has_are_candidates() {
        let hook = |service: &str| {
            let checked = crate::webhook_check::check(&json!({
                "name": "hook",
                "triggers": [{"event_class": "incident", "event_type": "triggered"}],
                "urls": [{"url": "https://example.com/hook"}],
                "is_all_teams_configured": true,
                "filters": {"op": "and", "conditions": [
                    {"op": "is", "lhs": "service", "rhs": service}]},
            }))
            .unwrap();
            CompiledWebhook::new(
                Webhook::new(&"org".into(), "tok", checked.spec),
                checked.filter,
            )
        };
        let index = MatchIndex::new(&[hook("a"), hook("b"), hook("a")].map(std::sync::Arc::new));
        let event = parse_event(
            &json!({"type": "incident.triggered", "team": {"id": "t"},
                "incident": {"id": "i", "message": "m", "status": "triggered",
                    "service": {"id": "a"}, "alert_source": {"id": "s"}}}),
            Tenant {
                id: "org",
                name: "Org",
            },
        )
        .unwrap();
        let found: Vec<u32> = index.candidates(&event).iter().map(|c| c.webhook).collect();
        assert_eq!(found, [0, 2]);
        assert!(index.candidates(&event).iter().all(|c| c.proven));
        // Taken out, the two under `a` leave no trace of the value; `b` stays.
        let hooks = [hook("a"), hook("b"), hook("a")];
        let mut index = index;
        index.remove(0, &hooks[0]);
        index.remove(2, &hooks[2]);
        assert!(index.candidates(&event).is_empty());
        let fields = &index.triggers[0].fields;
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].is.keys().collect::<Vec<_>>(), ["b"]);
        index.remove(1, &hooks[1]);
        assert!(
            index.triggers[0].fields.is_empty(),
            "a field with no value left goes"
        );
    }
}
