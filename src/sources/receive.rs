//! A payload posted to a source, from its bytes to stored events and a receipt. The pure
//! steps (reading, deciding) are `kinds` and `translate`; this carries them out: the
//! incidents' states from the store, then each event through intake with the state it
//! leaves (one transaction), then the receipt. An answer 2xx means the events and their
//! states are stored.

use serde_json::{json, Value};

use super::{
    change::Refusal,
    kinds,
    recorder::ReceiptQueue,
    state_reads::StateReads,
    translate::{self, Outcome},
};
use crate::{
    catalog::Catalog,
    domain::{
        directory,
        event_type::EventType,
        source::{Receipt, ReceiptOutcome, Source, SourceKind, SourceState},
        FieldError, Timestamp,
    },
    intake::{self, IntakeError, IntakeQueue},
    store::Accepted,
};

/// One event a payload became.
#[derive(Debug, Clone)]
pub struct Stored {
    pub event_type: &'static EventType,
    pub incident_id: String,
    /// The service, alert source and team it names, for the directory.
    pub seen: Vec<directory::Entry>,
    pub accepted: Accepted,
}

/// What a payload became.
#[derive(Debug)]
pub enum Reply {
    /// Read, and stored or ignored (202): the events stored and the lines of what was not.
    Done {
        stored: Vec<Stored>,
        ignored: Vec<String>,
    },
    /// Not taken (the refusal's status), recorded as a refused receipt.
    Refused(Refusal),
    /// The events' fields as intake checks them (422): nothing was stored.
    Invalid(Vec<FieldError>),
    /// Nothing, or not all, could be stored now (503): the sender should send it again; what
    /// was stored is not stored twice (every event has a stable id).
    Unavailable(String),
}

impl Reply {
    pub fn status(&self) -> u16 {
        match self {
            Reply::Done { .. } => 202,
            Reply::Refused(r) => r.status,
            Reply::Invalid(_) => 422,
            Reply::Unavailable(_) => 503,
        }
    }

    /// The answer's JSON body (the error shape for refusals is the API's, made by `http`).
    pub fn data(&self) -> Value {
        match self {
            Reply::Done { stored, ignored } => json!({
                "events": stored.iter().map(|s| json!({
                    "id": s.accepted.event_id,
                    "type": s.event_type.name,
                    "incident_id": s.incident_id,
                    "deliveries": s.accepted.deliveries,
                    "duplicate": s.accepted.duplicate,
                })).collect::<Vec<_>>(),
                "ignored": ignored,
            }),
            _ => Value::Null,
        }
    }
}

/// Takes a payload `source` received (credential already checked): `payload` parsed from
/// `text`, `signature` the `X-PagerDuty-Signature` header.
#[allow(clippy::too_many_arguments)]
pub async fn receive(
    catalog: &Catalog,
    queue: &IntakeQueue,
    receipts: &ReceiptQueue,
    states: &StateReads,
    source: &Source,
    payload: &Value,
    text: &[u8],
    signature: Option<&str>,
) -> Reply {
    let reply = decide_and_store(catalog, queue, states, source, payload, text, signature)
        .await
        .unwrap_or_else(|refused| refused);
    receipts.record(receipt_for(source, &reply, text));
    reply
}

async fn decide_and_store(
    catalog: &Catalog,
    queue: &IntakeQueue,
    states: &StateReads,
    source: &Source,
    payload: &Value,
    text: &[u8],
    signature: Option<&str>,
) -> Result<Reply, Reply> {
    if source.spec.kind == SourceKind::PagerDuty {
        if let Some(secret) = source.spec.settings.signing_secret() {
            kinds::pagerduty::verify(signature, text, secret).map_err(Reply::Refused)?;
        }
    }
    let items = kinds::read(source.spec.kind, &source.spec.settings, payload, text)
        .map_err(Reply::Refused)?;
    let keys = translate::keys(&items);
    // Two payloads about one incident take turns on this node, from reading its state to
    // storing what they decided: a resolve read beside its trigger's unstored state would
    // be ignored as "never triggered". (Across nodes the stored state never moves
    // backwards; see `write_source_states`.)
    let _turns = incident_turns(&source.id, &keys).await;
    let states = if keys.is_empty() {
        Default::default()
    } else {
        states.read(&source.id, keys).await.map_err(unavailable)?
    };
    let outcomes = translate::decide_all(source, items, &states, Timestamp::now());
    // Every event is checked before any is stored, so a payload is taken whole or not.
    let mut events = Vec::new();
    let mut ignored = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Ignored(why) => ignored.push(why),
            Outcome::Event(made) => {
                let mut event =
                    intake::from_members(catalog, &source.organization_id, made.members)
                        .await
                        .map_err(intake_reply)?;
                // Stored with the event, in its transaction: the next payload's decisions
                // rest on it, so an answer 2xx never comes before it is kept.
                event.source_state = made.next.map(|state| SourceState {
                    source_id: source.id.clone(),
                    state,
                });
                events.push(event);
            }
        }
    }
    let mut stored = Vec::with_capacity(events.len());
    // One after another: two changes of one incident keep their order.
    for event in events {
        let (event_type, incident_id) = (event.event_type, event.incident_id().to_owned());
        let seen = directory::from_parts(
            event.incident.get("service"),
            event.incident.get("alert_source"),
            Some(&event.team),
            Timestamp::now(),
        );
        let accepted = intake::accept_event(catalog, queue, event)
            .await
            .map_err(intake_reply)?;
        stored.push(Stored {
            event_type,
            incident_id,
            seen,
            accepted,
        });
    }
    Ok(Reply::Done { stored, ignored })
}

/// Locks striped by (source, incident key), taken in stripe order so that two payloads
/// naming the same incidents never wait for each other in a circle.
async fn incident_turns(
    source: &crate::domain::ids::SourceId,
    keys: &[String],
) -> Vec<tokio::sync::MutexGuard<'static, ()>> {
    const STRIPES: usize = 64;
    static LOCKS: std::sync::OnceLock<Vec<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let locks = LOCKS.get_or_init(|| (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect());
    let mut stripes: Vec<usize> = keys
        .iter()
        .map(|key| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (source.as_str(), key.as_str()).hash(&mut h);
            (h.finish() % STRIPES as u64) as usize
        })
        .collect();
    stripes.sort_unstable();
    stripes.dedup();
    let mut turns = Vec::with_capacity(stripes.len());
    for stripe in stripes {
        turns.push(locks[stripe].lock().await);
    }
    turns
}

fn unavailable(e: impl std::fmt::Display) -> Reply {
    tracing::warn!(error = %e, "a source's incident states could not be read");
    Reply::Unavailable(
        "tocsin could not read its database just now and kept nothing of this payload: send it again".to_owned(),
    )
}

fn intake_reply(e: IntakeError) -> Reply {
    match e {
        IntakeError::Invalid(errors) => Reply::Invalid(errors),
        IntakeError::NotStored(reason) | IntakeError::Internal(reason) => {
            tracing::warn!(
                reason,
                "a source's event was not stored; its sender was told to send again"
            );
            Reply::Unavailable(
                "the payload's events were not all stored (tocsin could not write to its database just now): send it again; what was stored is not stored twice".to_owned(),
            )
        }
        IntakeError::Store(e) => unavailable(e),
        IntakeError::NotFound(what) => Reply::Unavailable(format!("{what} not found")),
        IntakeError::ShuttingDown => Reply::Unavailable(
            "tocsin is shutting down and did not take the payload: send it again".to_owned(),
        ),
    }
}

/// The receipt of a reply: what the payload became, line by line.
pub fn receipt_for(source: &Source, reply: &Reply, text: &[u8]) -> Receipt {
    let (outcome, results, event_ids) = match reply {
        Reply::Done { stored, ignored } => {
            let mut lines: Vec<String> = stored
                .iter()
                .map(|s| {
                    format!(
                        "{} {} (incident {}, {} deliveries{})",
                        s.event_type.name,
                        s.accepted.event_id,
                        s.incident_id,
                        s.accepted.deliveries,
                        if s.accepted.duplicate {
                            ", a repeat of an event already stored"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            lines.extend(ignored.iter().cloned());
            let outcome = if stored.is_empty() {
                ReceiptOutcome::Ignored
            } else {
                ReceiptOutcome::Accepted
            };
            let ids = stored.iter().map(|s| s.accepted.event_id.clone()).collect();
            (outcome, lines, ids)
        }
        Reply::Refused(r) => (
            ReceiptOutcome::Refused,
            vec![format!("refused: {}: {}", r.field, r.message)],
            Vec::new(),
        ),
        Reply::Invalid(errors) => (
            ReceiptOutcome::Refused,
            errors
                .iter()
                .map(|e| format!("refused: event {e}"))
                .collect(),
            Vec::new(),
        ),
        Reply::Unavailable(why) => (
            ReceiptOutcome::Refused,
            vec![format!("refused for now: {why}")],
            Vec::new(),
        ),
    };
    Receipt::new(
        &source.id,
        outcome,
        reply.status(),
        results,
        event_ids,
        text,
    )
}

/// Records a payload refused before it was read (a body that is not JSON, too large).
pub fn record_refusal(receipts: &ReceiptQueue, source: &Source, refusal: Refusal, text: &[u8]) {
    receipts.record(receipt_for(source, &Reply::Refused(refusal), text));
}
