//! Learning services, alert sources and teams from accepted events, off the intake's path:
//! a request only checks an in-memory map; what is new (or not written for a while) goes
//! to one background task that stores it.

use crate::domain::ids::OrganizationId;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::{
    domain::directory::{Entry, Kind},
    store::Store,
};

/// `last_seen` is refreshed at most this often per entry.
const REFRESH: Duration = Duration::from_secs(600);
/// Past this many remembered entries the map starts afresh (memory stays bounded).
const MAX_REMEMBERED: usize = 100_000;
/// Observations waiting for the writer; past this, they are dropped (the next event names
/// them again).
const QUEUE: usize = 1024;
type Key = (OrganizationId, Kind, String);

#[derive(Clone)]
pub struct Directory {
    written: Arc<Mutex<HashMap<Key, (String, Instant)>>>,
    queue: mpsc::Sender<(OrganizationId, Vec<Entry>)>,
}

impl Directory {
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, mut rx) = mpsc::channel::<(OrganizationId, Vec<Entry>)>(QUEUE);
        tokio::spawn(async move {
            while let Some((org, entries)) = rx.recv().await {
                if let Err(e) = store.observe_directory(&org, &entries).await {
                    tracing::warn!(error = %e, "could not record services and teams seen");
                }
            }
        });
        Self {
            written: Arc::default(),
            queue,
        }
    }

    /// Notes what an accepted event names; cheap when nothing is new.
    pub fn observe(&self, organization_id: &OrganizationId, entries: Vec<Entry>) {
        let now = Instant::now();
        let fresh: Vec<Entry> = {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            if written.len() > MAX_REMEMBERED {
                written.clear();
            }
            entries
                .into_iter()
                .filter(|e| {
                    let key = (organization_id.clone(), e.kind, e.id.clone());
                    // A nameless mention is news only when the entry is unknown or due a
                    // refresh: it never replaces a name (the store keeps it too).
                    let known = written.get(&key).cloned();
                    let stale = known.as_ref().is_none_or(|(name, at)| {
                        (e.named && *name != e.name) || now.duration_since(*at) > REFRESH
                    });
                    if stale {
                        let name = match known {
                            Some((name, _)) if !e.named => name,
                            _ => e.name.clone(),
                        };
                        written.insert(key, (name, now));
                    }
                    stale
                })
                .collect()
        };
        if !fresh.is_empty() {
            let _ = self.queue.try_send((organization_id.clone(), fresh));
        }
    }
}
