//! One read at a time per key (pure of the store: the read is given): requests that find
//! a key stale while another request reads it wait for that read and take its result from
//! the cache; when it failed, they hear so at once instead of each waiting out a timeout
//! of its own in turn.

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex},
    time::Instant,
};

/// Per key, when the last read under it failed.
type Turn = Arc<tokio::sync::Mutex<Option<Instant>>>;

pub struct Turns<K> {
    by_key: Mutex<HashMap<K, Turn>>,
}

impl<K> Default for Turns<K> {
    fn default() -> Self {
        Self {
            by_key: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Turns<K> {
    /// `fresh()` if another read made it so while this one waited; else `read`, unless the
    /// read this one waited for failed (then `failed()`).
    pub async fn take<T, E>(
        &self,
        key: &K,
        fresh: impl Fn() -> Option<T>,
        read: impl Future<Output = Result<T, E>>,
        failed: impl FnOnce() -> E,
    ) -> Result<T, E> {
        let turn = self
            .by_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let asked = Instant::now();
        let mut turn = turn.lock().await;
        if let Some(done) = fresh() {
            return Ok(done);
        }
        if turn.is_some_and(|at| at >= asked) {
            return Err(failed());
        }
        let result = read.await;
        *turn = result.is_err().then(Instant::now);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Eight takes at once, the read held open until all have asked: one read.
    async fn eight_at_once(succeed: bool) -> (usize, Vec<Result<u32, &'static str>>) {
        let turns = Arc::new(Turns::<&str>::default());
        let cache = Arc::new(Mutex::new(None::<u32>));
        let reads = Arc::new(AtomicUsize::new(0));
        let (open, gate) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (turns, cache, reads, mut gate) =
                    (turns.clone(), cache.clone(), reads.clone(), gate.clone());
                tokio::spawn(async move {
                    let fresh = || *cache.lock().unwrap();
                    let read = async {
                        reads.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        if succeed {
                            *cache.lock().unwrap() = Some(7);
                            Ok(7)
                        } else {
                            Err("the database is down")
                        }
                    };
                    turns.take(&"org", fresh, read, || "told at once").await
                })
            })
            .collect();
        // Every task is waiting (on the gate or the turn) before the read ends.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        open.send(true).unwrap();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        (reads.load(Ordering::SeqCst), results)
    }

    #[tokio::test]
    async fn requests_at_once_share_one_read() {
        let (reads, results) = eight_at_once(true).await;
        assert_eq!(reads, 1);
        assert!(results.iter().all(|r| *r == Ok(7)));
    }

    #[tokio::test]
    async fn a_failed_read_is_told_to_those_who_waited_for_it() {
        let (reads, results) = eight_at_once(false).await;
        assert_eq!(reads, 1, "not read again by each waiting request in turn");
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == Err("the database is down"))
                .count(),
            1
        );
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == Err("told at once"))
                .count(),
            7
        );
    }

    #[tokio::test]
    async fn a_request_after_a_failure_reads_again() {
        let turns = Turns::<&str>::default();
        let first: Result<u32, &str> = turns
            .take(&"org", || None, async { Err("down") }, || "told")
            .await;
        assert_eq!(first, Err("down"));
        let later: Result<u32, &str> = turns
            .take(&"org", || None, async { Ok(1) }, || "told")
            .await;
        assert_eq!(later, Ok(1));
    }
}
