//! Intake's writes in bulk: many events with all their deliveries in one transaction and a
//! handful of multi-row statements. On SQLite every statement is a round trip to the
//! database thread, so their number, not their size, is what limits intake.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::{
    args::bound,
    chain::{Args, Chain},
    Dialect,
};
use crate::{
    domain::{
        delivery::NewDelivery,
        event::Event,
        ids::{DeliveryId, OrganizationId},
        sealing::Sealer,
        source::SourceState,
    },
    store::{Accepted, Admission, StoreResult},
};

/// Rows per multi-row statement, well under SQLite's and PostgreSQL's parameter limits.
const CHUNK: usize = 400;

/// Several nodes on one PostgreSQL may take events of one incident at the same moment:
/// each transaction would see no pending delivery in the lane (the other's is not committed)
/// and both would start theirs. A transaction-scoped advisory lock per lane makes the
/// second wait for the first's commit and then see its delivery. Locks are taken in key
/// order, so two batches sharing lanes cannot deadlock. (SQLite's one writer serialises
/// these transactions already.)
async fn lock_lanes(chain: &mut Chain<'_>, lanes: &[&String]) -> StoreResult<()> {
    // A lane is hex of a hash: its first 16 digits make a well-spread 64-bit key.
    let mut keys: Vec<i64> = lanes
        .iter()
        .map(|lane| u64::from_str_radix(&lane[..16.min(lane.len())], 16).unwrap_or(0) as i64)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for chunk in keys.chunks(CHUNK) {
        let values: Vec<String> = (1..=chunk.len())
            .map(|i| format!("(${i}::bigint)"))
            .collect();
        let sql = format!(
            "SELECT pg_advisory_xact_lock(k) FROM (VALUES {}) AS v(k)",
            values.join(", ")
        );
        let (sql, conn) = chain.read(&sql);
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query.bind(*key);
        }
        query.execute(conn).await?;
    }
    Ok(())
}

/// Which of `lanes` have a pending delivery, read as one call per chunk (on PostgreSQL
/// after locking them, see [`lock_lanes`]).
pub(super) async fn busy_lanes(
    chain: &mut Chain<'_>,
    lanes: &[String],
) -> StoreResult<HashSet<String>> {
    let lanes: Vec<&String> = lanes.iter().collect();
    Ok(look_up(chain, &[], &lanes).await?.1)
}

/// Inserts deliveries: parked when their URL is among `admission.park_urls`, else leased
/// when they may start now (not failed, first in their lane: no earlier pending delivery, in
/// the table or earlier in `deliveries`), else waiting, due now.
/// The writes go into `chain` (they are sent as it commits). `lanes`: each delivery's
/// lane, in order; `busy`: those that have a pending delivery (see [`busy_lanes`]).
pub(super) async fn insert_deliveries<'q>(
    chain: &mut Chain<'q>,
    sealer: &Sealer,
    deliveries: &[&'q NewDelivery],
    lanes: Vec<String>,
    admission: &Admission,
    mut busy: HashSet<String>,
) -> StoreResult<Vec<DeliveryId>> {
    let dialect = chain.dialect();
    let mut leased = Vec::new();
    let mut leases = Vec::with_capacity(deliveries.len());
    let mut parks = Vec::with_capacity(deliveries.len());
    for (d, lane) in deliveries.iter().zip(&lanes) {
        let failed = d.failure.is_some();
        let park = !failed && admission.park_urls.contains(&d.url);
        let take = admission
            .lease
            .as_ref()
            .filter(|_| !failed && !park && !busy.contains(lane));
        if !failed {
            busy.insert(lane.clone());
        }
        if take.is_some() {
            leased.push(d.id.clone());
        }
        leases.push(take);
        parks.push(park);
    }

    // Each distinct payload once; deliveries refer to it.
    let mut seen_payloads = HashSet::new();
    let payloads: Vec<(&'q str, &'q str)> = deliveries
        .iter()
        .filter_map(|d| d.payload_id.as_deref().map(|id| (id, &*d.payload)))
        .filter(|(id, _)| seen_payloads.insert(*id))
        .collect();
    for chunk in payloads.chunks(CHUNK) {
        // A resend refers to the payload row its original already has.
        let sql = format!(
            "{} ON CONFLICT (id) DO NOTHING",
            dialect.insert("payloads", &["id", "body"], chunk.len())
        );
        let mut args = Args::default();
        for (id, body) in chunk {
            args = args.bind(*id).bind(*body);
        }
        chain.push(&sql, args).await?;
    }

    const COLUMNS: &[&str] = &[
        "id",
        "organization_id",
        "webhook_id",
        "event_id",
        "event_type",
        "incident_id",
        "url",
        "method",
        "payload",
        "lane",
        "state",
        "attempts",
        "next_attempt_at",
        "leased_until",
        "lease_owner",
        "last_error",
        "created_at",
        "updated_at",
        "completed_at",
        "parked",
        "payload_id",
        "origin",
        "resent_from",
    ];
    let rows: Vec<(usize, &&NewDelivery)> = deliveries.iter().enumerate().collect();
    for chunk in rows.chunks(CHUNK) {
        let sql = dialect.insert("deliveries", COLUMNS, chunk.len());
        let mut args = Args::default();
        for (i, d) in chunk {
            let failed = d.failure.is_some();
            let created = d.created_at.as_micros();
            let lease = leases[*i];
            let park = parks[*i];
            let due = if park {
                admission.park_until.as_micros()
            } else {
                created
            };
            args = args
                .bind(&d.id)
                .bind(&d.organization_id)
                .bind(&d.webhook_id)
                .bind(&d.event_id)
                .bind(d.event_type)
                .bind(&d.incident_id)
                .bind(sealer.seal_url(&d.url))
                .bind(d.method.as_str())
                .bind("")
                .bind(lanes[*i].clone())
                .bind(if failed { "failed" } else { "pending" })
                .bind(0i64)
                .bind((!failed).then_some(due))
                .bind(lease.map(|l| l.until.as_micros()))
                .bind(lease.map(|l| l.owner.clone()))
                .bind(d.failure.as_deref())
                .bind(created)
                .bind(created)
                .bind(failed.then_some(created))
                .bind(i64::from(park))
                .bind(d.payload_id.as_deref())
                .bind(d.origin.as_str())
                .bind(d.origin.resent_from().map(DeliveryId::as_str));
        }
        chain.push(&sql, args).await?;
    }
    let owe_mail: Vec<&&NewDelivery> = deliveries
        .iter()
        .filter(|d| d.failure.is_some() && d.notify)
        .collect();
    if !owe_mail.is_empty() {
        // The notifications read the deliveries written above.
        chain.send_writes().await?;
    }
    for d in owe_mail {
        super::notification::insert_notification(chain, &d.id, d.created_at.as_micros()).await?;
    }
    // Failed at intake (the payload could not be rendered): finished now.
    let mut counts = HashMap::new();
    for d in deliveries.iter().filter(|d| d.failure.is_some()) {
        let key = (
            d.organization_id.clone(),
            d.webhook_id.clone(),
            super::hour_of(d.created_at.as_micros()),
        );
        counts.entry(key).or_insert((0, 0)).1 += 1;
    }
    super::count_finished(chain, &counts).await?;
    Ok(leased)
}

/// A batch's reads, together: the events already accepted under its producer ids
/// ((organization, producer id) → answer), and which of `lanes` have a pending delivery.
/// Each statement joins a chunk of each with `UNION ALL`, so a batch of ordinary size is
/// one call instead of two (a round trip fewer per batch on either backend). On
/// PostgreSQL the lanes are locked first (see [`lock_lanes`]).
async fn look_up(
    chain: &mut Chain<'_>,
    batch: &[(Event, Vec<NewDelivery>)],
    lanes: &[&String],
) -> StoreResult<(HashMap<(OrganizationId, String), Accepted>, HashSet<String>)> {
    let dialect = chain.dialect();
    let mut distinct: Vec<&String> = lanes
        .iter()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    distinct.sort();
    if dialect == Dialect::Postgres {
        lock_lanes(chain, &distinct).await?;
    }
    // By organization, so the lookup uses the (organization_id, producer_id) index: on
    // producer_id alone it would scan every event ever received, once per batch.
    let mut by_org: HashMap<&OrganizationId, Vec<&str>> = HashMap::new();
    for (e, _) in batch {
        if let Some(producer_id) = e.producer_id.as_deref() {
            by_org
                .entry(&e.organization_id)
                .or_default()
                .push(producer_id);
        }
    }
    let mut seen_parts = Vec::new();
    for (org, producer_ids) in &by_org {
        seen_parts.extend(producer_ids.chunks(CHUNK).map(|chunk| (*org, chunk)));
    }
    let mut seen_parts = seen_parts.into_iter();
    let mut lane_parts = distinct.chunks(CHUNK);
    let mut seen = HashMap::new();
    let mut busy = HashSet::new();
    loop {
        let (seen_part, lane_part) = (seen_parts.next(), lane_parts.next());
        if seen_part.is_none() && lane_part.is_none() {
            break;
        }
        // Columns: what the row is, the producer id or lane, the event id, its count.
        let mut parts = Vec::new();
        let mut args = Args::default();
        if let Some((org, producer_ids)) = seen_part {
            parts.push(format!(
                "SELECT 'seen' AS kind, producer_id AS found, id, delivery_count FROM events \
                 WHERE organization_id = {} AND producer_id IN ({})",
                dialect.params(1, 1),
                dialect.params(2, producer_ids.len())
            ));
            args = args.bind(org);
            for producer_id in producer_ids {
                args = args.bind(*producer_id);
            }
        }
        if let Some(chunk) = lane_part {
            let first = args.len() + 1;
            parts.push(format!(
                "SELECT DISTINCT 'busy', lane, CAST(NULL AS TEXT), CAST(NULL AS BIGINT) \
                 FROM deliveries WHERE state = 'pending' AND lane IN ({})",
                dialect.params(first, chunk.len())
            ));
            for lane in chunk {
                args = args.bind(lane.as_str());
            }
        }
        let (sql, conn) = chain.read(&parts.join(" UNION ALL "));
        for row in bound(sqlx::query(&sql), args.0).fetch_all(conn).await? {
            let kind: String = row.try_get(0)?;
            let key: String = row.try_get(1)?;
            match seen_part {
                Some((org, _)) if kind == "seen" => {
                    let answer = Accepted {
                        event_id: row.try_get(2)?,
                        deliveries: row.try_get::<i64, _>(3)? as u64,
                        duplicate: true,
                        leased: Vec::new(),
                    };
                    seen.insert((org.clone(), key), answer);
                }
                _ => {
                    busy.insert(key);
                }
            }
        }
    }
    Ok((seen, busy))
}

/// Writes the batch into `chain`'s transaction; the writes are sent as it commits, after
/// the reads (see `chain.rs`).
pub(super) async fn accept_events<'q>(
    chain: &mut Chain<'q>,
    sealer: &Sealer,
    batch: &'q [(Event, Vec<NewDelivery>)],
    admission: &Admission,
) -> StoreResult<Vec<Accepted>> {
    let dialect = chain.dialect();
    // Every delivery's lane, a repeated event's too: reading more lanes than the fresh
    // deliveries need changes nothing, and the reads go together (see `look_up`).
    // Each lane is a hash, made once per delivery.
    let lanes: Vec<Vec<String>> = batch
        .iter()
        .map(|(_, deliveries)| deliveries.iter().map(NewDelivery::lane).collect())
        .collect();
    let all: Vec<&String> = lanes.iter().flatten().collect();
    let (mut seen, busy) = look_up(chain, batch, &all).await?;
    let mut answers = Vec::with_capacity(batch.len());
    let mut fresh: Vec<&(Event, Vec<NewDelivery>)> = Vec::new();
    let mut fresh_lanes: Vec<String> = Vec::new();
    for (item, item_lanes) in batch.iter().zip(lanes) {
        let (event, deliveries) = item;
        let key = event
            .producer_id
            .as_ref()
            .map(|p| (event.organization_id.clone(), p.clone()));
        if let Some(previous) = key.as_ref().and_then(|k| seen.get(k)) {
            answers.push(previous.clone());
            continue;
        }
        let accepted = Accepted {
            event_id: event.id.clone(),
            deliveries: deliveries.len() as u64,
            duplicate: false,
            leased: Vec::new(),
        };
        if let Some(key) = key {
            // The same producer id twice in one batch: the second is a repeat.
            seen.insert(
                key,
                Accepted {
                    duplicate: true,
                    ..accepted.clone()
                },
            );
        }
        answers.push(accepted);
        fresh.push(item);
        fresh_lanes.extend(item_lanes);
    }
    if fresh.is_empty() {
        return Ok(answers);
    }

    for chunk in fresh.chunks(CHUNK) {
        let sql = dialect.insert(
            "events",
            &[
                "id",
                "organization_id",
                "producer_id",
                "event_type",
                "incident_id",
                "payload_event_id",
                "timestamp",
                "body",
                "delivery_count",
                "received_at",
            ],
            chunk.len(),
        );
        let mut args = Args::default();
        for (event, deliveries) in chunk {
            args = args
                .bind(&event.id)
                .bind(&event.organization_id)
                .bind(event.producer_id.as_deref())
                .bind(event.event_type.name)
                .bind(event.incident_id())
                .bind(&event.payload_event_id)
                .bind(&event.timestamp)
                .bind(event.body_json())
                .bind(deliveries.len() as i64)
                .bind(event.received_at.as_micros());
        }
        chain.push(&sql, args).await?;
    }

    // Each incident's latest lifecycle event (triggered, acknowledged, resolved, reassigned:
    // what the manual trigger sends again); an event about a note, task, … is kept only
    // for an incident known by nothing else yet. A statement may touch a row only once.
    let mut lifecycle: HashMap<(&str, &str), &Event> = HashMap::new();
    let mut other: HashMap<(&str, &str), &Event> = HashMap::new();
    for (event, deliveries) in &fresh {
        // "Send a test"'s sample incident did not happen: it stays out of incident lists
        // (its deliveries are in the logs, marked test).
        let only_tests = !deliveries.is_empty()
            && deliveries
                .iter()
                .all(|d| d.origin == crate::domain::delivery::Origin::Test);
        if only_tests {
            continue;
        }
        let key = (event.organization_id.as_str(), event.incident_id());
        if event.event_type.v1_name.is_some() {
            lifecycle.insert(key, event);
        } else {
            other.insert(key, event);
        }
    }
    other.retain(|key, _| !lifecycle.contains_key(key));
    let lifecycle: Vec<&Event> = lifecycle.into_values().collect();
    let other: Vec<&Event> = other.into_values().collect();
    let replace = "DO UPDATE SET event_id = excluded.event_id, updated_at = excluded.updated_at";
    let chunks = lifecycle
        .chunks(CHUNK)
        .map(|c| (c, replace))
        .chain(other.chunks(CHUNK).map(|c| (c, "DO NOTHING")));
    for (chunk, on_conflict) in chunks {
        let sql = format!(
            "{} ON CONFLICT (organization_id, incident_id) {on_conflict}",
            dialect.insert(
                "incidents",
                &["organization_id", "incident_id", "event_id", "updated_at"],
                chunk.len()
            )
        );
        let mut args = Args::default();
        for event in chunk {
            args = args
                .bind(&event.organization_id)
                .bind(event.incident_id())
                .bind(&event.id)
                .bind(event.received_at.as_micros());
        }
        chain.push(&sql, args).await?;
    }

    write_source_states(chain, &fresh).await?;

    let deliveries: Vec<&NewDelivery> = fresh.iter().flat_map(|(_, d)| d.iter()).collect();
    let leased: HashSet<DeliveryId> =
        insert_deliveries(chain, sealer, &deliveries, fresh_lanes, admission, busy)
            .await?
            .into_iter()
            .collect();
    for (answer, (_, deliveries)) in answers
        .iter_mut()
        .filter(|a| !a.duplicate)
        .zip(fresh.iter())
    {
        answer.leased = deliveries
            .iter()
            .filter(|d| leased.contains(&d.id))
            .map(|d| d.id.clone())
            .collect();
    }
    Ok(answers)
}

/// The incident states the batch's events from event sources leave (the last of each
/// incident: a statement may touch a row only once), in the events' own transaction: a
/// stored event always has its state, and a resend of a payload whose answer was lost
/// finds both or neither.
async fn write_source_states<'q>(
    chain: &mut Chain<'q>,
    fresh: &[&'q (Event, Vec<NewDelivery>)],
) -> StoreResult<()> {
    let mut states: Vec<&'q SourceState> = Vec::new();
    for (event, _) in fresh.iter().copied() {
        if let Some(s) = &event.source_state {
            states.retain(|o| !(o.source_id == s.source_id && o.state.key == s.state.key));
            states.push(s);
        }
    }
    let dialect = chain.dialect();
    for chunk in states.chunks(CHUNK) {
        let sql = format!(
            // Never backwards: a payload decided on a state another request (or node) has
            // since moved on from does not undo that request's change.
            "{} ON CONFLICT (source_id, incident_key) DO UPDATE SET incident_id = excluded.incident_id, status = excluded.status, generation = excluded.generation, events = excluded.events, last_event_id = excluded.last_event_id, incident = excluded.incident, team = excluded.team, updated_at = excluded.updated_at \
             WHERE source_incidents.generation < excluded.generation OR (source_incidents.generation = excluded.generation AND source_incidents.events < excluded.events)",
            dialect.insert(
                "source_incidents",
                &[
                    "source_id",
                    "incident_key",
                    "incident_id",
                    "status",
                    "generation",
                    "events",
                    "last_event_id",
                    "incident",
                    "team",
                    "updated_at",
                ],
                chunk.len()
            )
        );
        let mut args = Args::default();
        for SourceState { source_id, state } in chunk.iter().copied() {
            args = args
                .bind(source_id)
                .bind(&state.key)
                .bind(&state.incident_id)
                .bind(state.status.as_str())
                .bind(i64::from(state.generation))
                .bind(i64::from(state.events))
                .bind(&state.last_event_id)
                .bind(serde_json::Value::Object(state.incident.clone()).to_string())
                .bind(state.team.as_ref().map(serde_json::Value::to_string))
                .bind(state.updated_at.as_micros());
        }
        chain.push(&sql, args).await?;
    }
    Ok(())
}
