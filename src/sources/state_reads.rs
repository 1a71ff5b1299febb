//! The incident states payloads need, read together: whatever look-ups are waiting when the
//! reader is free share one statement per source. Nothing waits for company — under light
//! load each payload reads alone, as before; under load the look-ups queue while one read
//! runs and go together in the next. One statement per payload cost a source's ingest about
//! a fifth of `/v3/events`' CPU per event on SQLite (BENCHMARKS.md).

use std::{collections::HashMap, sync::Arc};

use tokio::sync::{mpsc, oneshot};

use crate::{
    domain::{ids::SourceId, source::IncidentState},
    store::Store,
};

/// Look-ups served by one round at most.
const MAX_ROUND: usize = 256;

type States = HashMap<String, IncidentState>;

struct Wanted {
    source_id: SourceId,
    keys: Vec<String>,
    /// The states found, or why none could be read.
    reply: oneshot::Sender<Result<States, String>>,
}

#[derive(Clone)]
pub struct StateReads {
    wanted: mpsc::Sender<Wanted>,
}

impl StateReads {
    pub fn start(store: Arc<dyn Store>) -> StateReads {
        let (wanted, mut incoming) = mpsc::channel::<Wanted>(4 * MAX_ROUND);
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut round = vec![first];
                while round.len() < MAX_ROUND {
                    match incoming.try_recv() {
                        Ok(next) => round.push(next),
                        Err(_) => break,
                    }
                }
                serve(&store, round).await;
            }
        });
        StateReads { wanted }
    }

    /// The kept states of `keys` of a source (those it has none for are absent).
    pub async fn read(&self, source_id: &SourceId, keys: Vec<String>) -> Result<States, String> {
        let (reply, answer) = oneshot::channel();
        let asked = Wanted {
            source_id: source_id.clone(),
            keys,
            reply,
        };
        let shut = || "tocsin is shutting down".to_owned();
        self.wanted.send(asked).await.map_err(|_| shut())?;
        answer.await.map_err(|_| shut())?
    }
}

/// Reads a round's states, one statement per source (the sources' at once), and answers
/// each look-up with its own. Should a source's statement fail, its look-ups are read again
/// one by one, so that one payload's unreadable row fails that payload alone.
async fn serve(store: &Arc<dyn Store>, round: Vec<Wanted>) {
    let mut by_source: HashMap<SourceId, Vec<String>> = HashMap::new();
    for w in &round {
        by_source
            .entry(w.source_id.clone())
            .or_default()
            .extend(w.keys.iter().cloned());
    }
    let mut reads = tokio::task::JoinSet::new();
    for (source_id, mut keys) in by_source {
        keys.sort_unstable();
        keys.dedup();
        let store = store.clone();
        reads.spawn(async move {
            let read = store.source_incidents(&source_id, &keys).await;
            (source_id, read)
        });
    }
    let mut found: HashMap<SourceId, States> = HashMap::new();
    while let Some(done) = reads.join_next().await {
        match done {
            Ok((source_id, Ok(states))) => {
                found.insert(source_id, states);
            }
            Ok((source_id, Err(e))) => {
                tracing::warn!(source = %source_id, error = %e, "a round of incident states could not be read; reading each payload's alone");
            }
            Err(e) => tracing::warn!(error = %e, "a round of incident states failed"),
        }
    }
    for w in round {
        let answer = match found.get(&w.source_id) {
            Some(states) => Ok(w
                .keys
                .iter()
                .filter_map(|k| states.get(k).map(|s| (k.clone(), s.clone())))
                .collect()),
            None => store
                .source_incidents(&w.source_id, &w.keys)
                .await
                .map_err(|e| e.to_string()),
        };
        let _ = w.reply.send(answer);
    }
}
