//! Sources recently read, by id: without it every payload would pay a database read
//! before any work (on SQLite a reader whose page cache every write has made stale). An
//! entry is trusted for 100 ms, like a token, and not at all once this process changed any
//! source (`changed`, called by every write in `manage.rs`); other nodes' changes take
//! effect within the 100 ms.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use crate::domain::{ids::SourceId, source::Source};

const FRESH: Duration = Duration::from_millis(100);
const MAX: usize = 10_000;

/// Bumped by every change to a source made in this process.
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// A source was created, changed or deleted here: every cached source is read again.
pub fn changed() {
    CHANGES.fetch_add(1, Ordering::SeqCst);
}

#[derive(Default)]
pub struct SourceCache {
    entries: Mutex<HashMap<SourceId, (Source, Instant, u64)>>,
}

impl SourceCache {
    pub fn get(&self, id: &SourceId) -> Option<Source> {
        let changes = CHANGES.load(Ordering::SeqCst);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|(_, read, seen)| read.elapsed() < FRESH && *seen == changes)
            .map(|(source, _, _)| source.clone())
    }

    /// Remembers `source` as read now; `changes` is [`generation`] taken before the read,
    /// so a change made during the read leaves the entry stale.
    pub fn put(&self, source: Source, changes: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX {
            entries.clear();
        }
        entries.insert(source.id.clone(), (source, Instant::now(), changes));
    }
}

/// The count of changes so far, taken before a read.
pub fn generation() -> u64 {
    CHANGES.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::source::SourceSettings;

    #[test]
    fn a_change_here_makes_every_entry_stale() {
        let cache = SourceCache::default();
        let source = crate::sources::testing::source(
            crate::domain::source::SourceKind::Squadcast,
            SourceSettings::Squadcast,
            None,
        );
        cache.put(source.clone(), generation());
        assert_eq!(cache.get(&source.id), Some(source.clone()));
        changed();
        assert_eq!(cache.get(&source.id), None, "read again after a change");
        let before = generation();
        changed();
        cache.put(source.clone(), before);
        assert_eq!(cache.get(&source.id), None, "a change during the read");
    }
}
