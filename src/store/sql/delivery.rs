//! Events, deliveries and attempts.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{any::AnyRow, Row};

use super::{
    args::Arg,
    chain::{Args, Chain},
    open_url, optional_time, Conditions, Dialect, SqlStore,
};
use crate::{
    domain::{
        delivery::{
            Attempt, AttemptResult, Delivery, DeliveryState, NewDelivery, Origin, RetryJob,
            RetryJobState, RETRY_JOB_SILENCE,
        },
        event::{member_texts, Event, Resource},
        event_type::EventType,
        ids::{DeliveryId, OrganizationId, WebhookId},
        json_text::{self, JsonText},
        sealing::Sealer,
        webhook::Method,
        Timestamp,
    },
    store::{
        Accepted, Admission, DeliveryStore, Lease, LogQuery, RetryStep, StoreError, StoreResult,
    },
};

/// A delivery's columns, with its payload from `payloads` (or inline, from before).
const DELIVERY_COLUMNS: &str = "seq, id, organization_id, webhook_id, event_id, event_type, incident_id, url, method, \
    COALESCE((SELECT body FROM payloads WHERE payloads.id = deliveries.payload_id), deliveries.payload) AS payload, \
    state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at, completed_at, origin, resent_from, payload_id";

fn method_from(text: &str) -> StoreResult<Method> {
    match text {
        "POST" => Ok(Method::Post),
        "PUT" => Ok(Method::Put),
        "PATCH" => Ok(Method::Patch),
        other => Err(StoreError::Corrupt(format!("unknown method {other}"))),
    }
}

/// An event as stored (columns `id, producer_id, event_type, payload_event_id, timestamp,
/// body, received_at`).
pub(crate) fn event_from_row(organization_id: &OrganizationId, row: &AnyRow) -> StoreResult<Event> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("event {id}: {what}"));
    let type_name: String = row.try_get("event_type")?;
    let text: String = row.try_get("body")?;
    let mut body: Value =
        json_text::parse_with_huge_numbers(text.as_bytes(), |t| serde_json::from_slice(t))
            .map_err(|_| corrupt("body is not JSON"))?;
    let incident = match body["incident"].take() {
        Value::Object(map) => map,
        _ => return Err(corrupt("no incident")),
    };
    let texts = member_texts(text.as_bytes());
    let incident_text = texts
        .incident
        .map(JsonText::exact)
        .ok_or_else(|| corrupt("no incident"))?;
    let resource = match (body["resource"].take(), texts.resource) {
        (Value::Object(value), Some(raw)) => Some(Resource {
            value,
            text: JsonText::exact(raw),
        }),
        _ => None,
    };
    Ok(Event {
        organization_id: organization_id.clone(),
        producer_id: row.try_get("producer_id")?,
        event_type: EventType::from_name(&type_name).ok_or_else(|| corrupt("unknown type"))?,
        payload_event_id: row.try_get("payload_event_id")?,
        timestamp: row.try_get("timestamp")?,
        organization: body["organization"].take(),
        team: body["team"].take(),
        incident,
        incident_text,
        source_state: None,
        resource,
        received_at: Timestamp::from_micros(row.try_get("received_at")?),
        id,
    })
}

pub(crate) fn delivery_from_row(row: &AnyRow, sealer: &Sealer) -> StoreResult<(i64, Delivery)> {
    let state: String = row.try_get("state")?;
    let method: String = row.try_get("method")?;
    let delivery = Delivery {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        incident_id: row.try_get("incident_id")?,
        url: open_url(sealer, row.try_get("url")?)?,
        method: method_from(&method)?,
        payload: row.try_get("payload")?,
        payload_id: row.try_get("payload_id")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state {state}")))?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: optional_time(row, "next_attempt_at")?,
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .map(|s| s as u16),
        last_error: row.try_get("last_error")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
        completed_at: optional_time(row, "completed_at")?,
        origin: {
            let kind: String = row.try_get("origin")?;
            Origin::parse(&kind, row.try_get("resent_from")?)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery origin {kind}")))?
        },
    };
    Ok((row.try_get("seq")?, delivery))
}

fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map).to_string()
}

fn headers_from(text: Option<String>) -> Vec<(String, String)> {
    let Some(text) = text else { return Vec::new() };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

fn attempt_from_row(row: &AnyRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        number: row.try_get::<i64, _>("number")? as u32,
        started_at: Timestamp::from_micros(row.try_get("started_at")?),
        duration_ms: row.try_get::<i64, _>("duration_ms")? as u64,
        request_headers: headers_from(row.try_get("request_headers")?),
        response_status: row
            .try_get::<Option<i64>, _>("response_status")?
            .map(|s| s as u16),
        response_headers: headers_from(row.try_get("response_headers")?),
        response_body: row.try_get("response_body")?,
        error: row.try_get("error")?,
    })
}

enum ClaimArg<'a> {
    Time(Timestamp),
    Url(&'a str),
}

impl SqlStore {
    /// Leases up to `limit` deliveries `d` matching `filter` (whose one parameter, `$3`, is
    /// `filter_arg`) that are first in their lane, in `order`, unparking them.
    async fn claim(
        &self,
        lease: &Lease,
        filter: &str,
        filter_arg: ClaimArg<'_>,
        order: &str,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        // PostgreSQL nodes share the queue: rows another node is claiming are skipped, not
        // waited for. SQLite has one writer, so there is nothing to skip.
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        // A claimed delivery is due now (see `due_now`).
        let sql = format!(
            "UPDATE deliveries SET lease_owner = $1, leased_until = $2, parked = 0, {} \
             WHERE seq IN ( \
               SELECT d.seq FROM deliveries d \
               WHERE {filter} \
                 AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.lane = d.lane AND e.state = 'pending' AND e.seq < d.seq) \
               ORDER BY {order} LIMIT $4 {lock}) \
             RETURNING {DELIVERY_COLUMNS}",
            due_now("$5", "$5")
        );
        let query = sqlx::query(&sql)
            .bind(&lease.owner)
            .bind(lease.until.as_micros());
        let query = match filter_arg {
            ClaimArg::Time(t) => query.bind(t.as_micros()),
            ClaimArg::Url(url) => query.bind(self.sealer.seal_url(url)),
        };
        let rows = query
            .bind(limit as i64)
            .bind(Timestamp::now().as_micros())
            .fetch_all(&mut *self.writer.acquire().await?)
            .await?;
        let mut claimed = rows
            .iter()
            .map(|row| delivery_from_row(row, &self.sealer))
            .collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, d)| d).collect())
    }
}

/// The assignment that makes a delivery due by now (`now` given twice: SQLite's anonymous
/// parameters are bound once per place). Set when a delivery is claimed (it is being sent
/// now) and when its lease is given back (it was taken to be sent now): one taken from the
/// parked ones still bore its park's far time, and given back unsent it was then neither
/// parked nor due for that hour.
fn due_now(now: &str, again: &str) -> String {
    format!(
        "next_attempt_at = CASE WHEN next_attempt_at > {now} THEN {again} ELSE next_attempt_at END"
    )
}

#[async_trait]
impl DeliveryStore for SqlStore {
    async fn accept_events(
        &self,
        batch: &[(Event, Vec<NewDelivery>)],
        admission: &Admission,
    ) -> StoreResult<Vec<Accepted>> {
        let mut chain = Chain::begin(&self.writer, self.dialect).await?;
        let answers =
            super::intake::accept_events(&mut chain, &self.sealer, batch, admission).await?;
        chain.commit().await?;
        Ok(answers)
    }

    async fn stored_anyway(
        &self,
        owner: &str,
        event_ids: &[&str],
    ) -> StoreResult<HashMap<String, u64>> {
        if event_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        give_back_leases(self.dialect, &mut tx, owner, "event_id", event_ids).await?;
        let sql = format!(
            "SELECT id, delivery_count FROM events WHERE id IN ({})",
            self.dialect.params(1, event_ids.len())
        );
        let mut find = sqlx::query_as::<_, (String, i64)>(&sql);
        for id in event_ids {
            find = find.bind(*id);
        }
        let stored = find.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(stored
            .into_iter()
            .map(|(id, count)| (id, count as u64))
            .collect())
    }

    async fn deliveries_stored_anyway(
        &self,
        owner: &str,
        delivery_ids: &[&str],
    ) -> StoreResult<Vec<String>> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        give_back_leases(self.dialect, &mut tx, owner, "id", delivery_ids).await?;
        let sql = format!(
            "SELECT id FROM deliveries WHERE id IN ({})",
            self.dialect.params(1, delivery_ids.len())
        );
        let mut find = sqlx::query_scalar::<_, String>(&sql);
        for id in delivery_ids {
            find = find.bind(*id);
        }
        let stored = find.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn add_deliveries(
        &self,
        deliveries: &[NewDelivery],
        admission: &Admission,
    ) -> StoreResult<Vec<DeliveryId>> {
        let all: Vec<&NewDelivery> = deliveries.iter().collect();
        let lanes: Vec<String> = deliveries.iter().map(NewDelivery::lane).collect();
        let mut chain = Chain::begin(&self.writer, self.dialect).await?;
        let busy = super::intake::busy_lanes(&mut chain, &lanes).await?;
        let leased = super::intake::insert_deliveries(
            &mut chain,
            &self.sealer,
            &all,
            lanes,
            admission,
            busy,
        )
        .await?;
        chain.commit().await?;
        Ok(leased)
    }

    async fn latest_incident_event(
        &self,
        organization_id: &OrganizationId,
        incident_id: &str,
    ) -> StoreResult<Option<Event>> {
        let row = sqlx::query(
            "SELECT e.id, e.producer_id, e.event_type, e.payload_event_id, e.timestamp, e.body, e.received_at \
             FROM incidents i JOIN events e ON e.id = i.event_id WHERE i.organization_id = $1 AND i.incident_id = $2",
        )
        .bind(organization_id)
        .bind(incident_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| event_from_row(organization_id, &row))
            .transpose()
    }

    async fn claim_due(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        // Two partial indexes, one per kind of due work. The same conditions hold on `d`
        // itself too: on PostgreSQL a row another node claimed and committed while this
        // statement ran is locked in its new version and checked again, but only against
        // conditions on `d`; the subquery's answer is from before that claim, and alone it
        // let two nodes take one expired lease (store test
        // `store_expired_leases_are_claimed_once`). Unqualified, the columns are `d`'s.
        const UNLEASED_DUE: &str =
            "state = 'pending' AND lease_owner IS NULL AND next_attempt_at <= $3";
        const LEASE_EXPIRED: &str =
            "state = 'pending' AND lease_owner IS NOT NULL AND leased_until < $3";
        let due = format!(
            "d.seq IN (SELECT seq FROM deliveries WHERE {UNLEASED_DUE} \
               UNION ALL SELECT seq FROM deliveries WHERE {LEASE_EXPIRED}) \
             AND (({UNLEASED_DUE}) OR ({LEASE_EXPIRED}))"
        );
        self.claim(
            lease,
            &due,
            ClaimArg::Time(now),
            "d.next_attempt_at, d.seq",
            limit,
        )
        .await
    }

    async fn claim_parked(
        &self,
        lease: &Lease,
        url: &str,
        limit: u32,
        fresh_first: bool,
    ) -> StoreResult<Vec<Delivery>> {
        // Walks the parked index in `seq` order and stops at the limit: a backlog of a
        // million costs the rows taken, not all of them.
        let parked = "d.state = 'pending' AND d.parked = 1 AND d.url = $3";
        if fresh_first {
            let fresh = format!("{parked} AND d.attempts = 0");
            let claimed = self
                .claim(lease, &fresh, ClaimArg::Url(url), "d.seq", limit)
                .await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        self.claim(lease, parked, ClaimArg::Url(url), "d.seq", limit)
            .await
    }

    async fn park(
        &self,
        owner: &str,
        delivery_ids: &[DeliveryId],
        until: Timestamp,
    ) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        for chunk in delivery_ids.chunks(400) {
            // Holding implies pending (see `record_attempts`).
            let sql = format!(
                "UPDATE deliveries SET parked = 1, next_attempt_at = {}, lease_owner = NULL, leased_until = NULL \
                 WHERE lease_owner = {} AND id IN ({})",
                self.dialect.params(1, 1),
                self.dialect.params(2, 1),
                self.dialect.params(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(until.as_micros()).bind(owner);
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn parked_urls(&self) -> StoreResult<Vec<String>> {
        // One index probe per distinct URL (a loose index scan), not one step per parked
        // delivery: with a million parked, DISTINCT would read them all every time.
        let urls: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE u(url) AS ( \
               SELECT MIN(url) FROM deliveries WHERE state = 'pending' AND parked = 1 \
               UNION ALL \
               SELECT (SELECT MIN(d.url) FROM deliveries d WHERE d.state = 'pending' AND d.parked = 1 AND d.url > u.url) \
               FROM u WHERE u.url IS NOT NULL) \
             SELECT url FROM u WHERE url IS NOT NULL",
        )
        .fetch_all(&self.reader)
        .await?;
        urls.into_iter()
            .map(|url| open_url(&self.sealer, url))
            .collect()
    }

    async fn expire_pending(
        &self,
        before: Timestamp,
        now: Timestamp,
        reason: &str,
        limit: u32,
    ) -> StoreResult<u64> {
        let mut chain = Chain::begin(&self.writer, self.dialect).await?;
        let (sql, conn) = chain.read(
            "UPDATE deliveries SET state = 'failed', last_error = $1, updated_at = $2, completed_at = $2, \
               next_attempt_at = NULL, leased_until = NULL, lease_owner = NULL, parked = 0 \
             WHERE seq IN (SELECT seq FROM deliveries \
               WHERE state = 'pending' AND created_at < $3 AND updated_at < $3 \
                 AND (lease_owner IS NULL OR leased_until < $2) \
               ORDER BY created_at LIMIT $4) \
             RETURNING id, organization_id, webhook_id",
        );
        let expired: Vec<(DeliveryId, OrganizationId, WebhookId)> = sqlx::query_as(&sql)
            .bind(reason)
            .bind(now.as_micros())
            .bind(before.as_micros())
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await?;
        let mut wants_mail: HashMap<WebhookId, bool> = HashMap::new();
        let mut finished = HashMap::new();
        for (id, org, webhook) in &expired {
            if !wants_mail.contains_key(webhook) {
                let (sql, conn) = chain.read("SELECT spec FROM webhooks WHERE id = $1");
                let spec: Option<String> = sqlx::query_scalar(&sql)
                    .bind(webhook)
                    .fetch_optional(conn)
                    .await?;
                let mails = spec
                    .and_then(|s| super::stored_webhook::from_text(&s).ok())
                    .is_some_and(|s| !s.mail_ids.is_empty());
                wants_mail.insert(webhook.clone(), mails);
            }
            if wants_mail[webhook] {
                super::notification::insert_notification(&mut chain, id, now.as_micros()).await?;
            }
            finished
                .entry((
                    org.clone(),
                    webhook.clone(),
                    super::hour_of(now.as_micros()),
                ))
                .or_insert((0, 0))
                .1 += 1;
        }
        super::count_finished(&mut chain, &finished).await?;
        chain.commit().await?;
        Ok(expired.len() as u64)
    }

    async fn take_rate_slot(
        &self,
        key: &str,
        per_second: f64,
        burst: f64,
        now: Timestamp,
    ) -> StoreResult<Result<(), std::time::Duration>> {
        let least = self.dialect.least();
        // One statement: refill by the time passed, take one if there is one. (Calls racing
        // each other see a slot written a moment "later": no time passed, as ever.) A slot
        // written more than a minute in the future was written under a wall clock since
        // stepped back: it is full again (one burst too many) rather than empty for the
        // step's length.
        let refilled = format!(
            "CASE WHEN rate_slots.at > $3 + {STEPPED_BACK_MICROS} THEN $4 \
             ELSE {least}($4, rate_slots.tokens + ($3 - rate_slots.at) * $5 / 1000000.0) END"
        );
        let taken: Option<f64> = sqlx::query_scalar(&format!(
            "INSERT INTO rate_slots (key, tokens, at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET tokens = {refilled} - 1, at = $3 \
             WHERE {refilled} >= 1 \
             RETURNING tokens"
        ))
        .bind(key)
        .bind(burst - 1.0)
        .bind(now.as_micros())
        .bind(burst)
        .bind(per_second)
        .fetch_optional(&mut *self.writer.acquire().await?)
        .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let (tokens, at): (f64, i64) =
            sqlx::query_as("SELECT tokens, at FROM rate_slots WHERE key = $1")
                .bind(key)
                .fetch_one(&self.reader)
                .await?;
        let now_tokens = (tokens + (now.as_micros() - at) as f64 * per_second / 1e6).min(burst);
        let wait = ((1.0 - now_tokens) / per_second).max(0.001);
        Ok(Err(std::time::Duration::from_secs_f64(wait)))
    }

    async fn count_finished_matching(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        q: &LogQuery,
    ) -> StoreResult<u64> {
        let conditions = finished_conditions(q, &self.sealer);
        let sql = format!(
            "SELECT COUNT(*) FROM deliveries WHERE organization_id = $1 AND webhook_id = $2{}",
            conditions.sql(3)
        );
        let n: i64 = conditions
            .bind(sqlx::query(&sql).bind(organization_id).bind(webhook_id))
            .fetch_one(&self.reader)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    async fn requeue_finished(
        &self,
        job: &RetryJob,
        runner: &str,
        q: &LogQuery,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Option<RetryStep>> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // First the job's row: on PostgreSQL this locks it, so a node adopting the job
        // meanwhile waits for this step and then finds it heard of.
        let Some(row) = sqlx::query(
            "UPDATE retry_jobs SET updated_at = $1 WHERE id = $2 AND runner = $3 AND state = 'running' \
             RETURNING done, after_seq",
        )
        .bind(now.as_micros())
        .bind(&job.id)
        .bind(runner)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let (done, after_seq): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let mut conditions = finished_conditions(q, &self.sealer);
        // From the position the row holds, not the runner's copy: a step whose commit
        // went through but whose answer was lost must not be taken again.
        conditions.push("seq > ?", Arg::from(after_seq));
        let sql = format!(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = {now}, completed_at = NULL, \
               updated_at = {now}, leased_until = NULL, lease_owner = NULL, parked = 0 \
             WHERE seq IN (SELECT seq FROM deliveries WHERE organization_id = $1 AND webhook_id = $2{} \
               ORDER BY webhook_id, seq LIMIT {limit}) \
             RETURNING seq",
            conditions.sql(3),
            now = now.as_micros(),
        );
        let seqs = conditions
            .bind(
                sqlx::query(&sql)
                    .bind(&job.organization_id)
                    .bind(&job.webhook_id),
            )
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let mut step = RetryStep {
            requeued: seqs.len() as u64,
            done: done as u64,
            after_seq,
        };
        if let Some(last) = seqs.iter().copied().max() {
            step.done += step.requeued;
            step.after_seq = last;
            sqlx::query("UPDATE retry_jobs SET done = $1, after_seq = $2 WHERE id = $3")
                .bind(step.done as i64)
                .bind(last)
                .bind(&job.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(step))
    }

    async fn create_retry_job(
        &self,
        job: &RetryJob,
        q: &LogQuery,
        runner: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO retry_jobs (id, organization_id, webhook_id, filters, state, total, done, error, created_at, finished_at, updated_at, query, after_seq, runner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&job.id)
        .bind(&job.organization_id)
        .bind(&job.webhook_id)
        .bind(job.filters.to_string())
        .bind(job.state.as_str())
        .bind(job.total as i64)
        .bind(job.done as i64)
        .bind(job.error.as_deref())
        .bind(job.created_at.as_micros())
        .bind(job.finished_at.map(Timestamp::as_micros))
        .bind(job.created_at.as_micros())
        .bind(query_text(q, &self.sealer))
        .bind(job.after_seq)
        .bind(runner)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(())
    }

    async fn save_retry_job(&self, job: &RetryJob, runner: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE retry_jobs SET state = $1, done = $2, after_seq = $3, error = $4, finished_at = $5, updated_at = $6 \
             WHERE id = $7 AND runner = $8",
        )
        .bind(job.state.as_str())
        .bind(job.done as i64)
        .bind(job.after_seq)
        .bind(job.error.as_deref())
        .bind(job.finished_at.map(Timestamp::as_micros))
        .bind(Timestamp::now().as_micros())
        .bind(&job.id)
        .bind(runner)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn adopt_retry_job(
        &self,
        runner: &str,
        silent_since: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Option<(RetryJob, LogQuery)>> {
        // The silence is checked again by the update itself: of two nodes that picked the
        // same job, the second finds it heard of and takes nothing.
        let row = sqlx::query(&format!(
            "UPDATE retry_jobs SET runner = $1, updated_at = $2 \
             WHERE id = (SELECT id FROM retry_jobs WHERE state = 'running' AND updated_at < $3 AND query IS NOT NULL \
                         ORDER BY created_at LIMIT 1) \
               AND state = 'running' AND updated_at < $3 \
             RETURNING {RETRY_JOB_COLUMNS}"
        ))
        .bind(runner)
        .bind(now.as_micros())
        .bind(silent_since.as_micros())
        .fetch_optional(&mut *self.writer.acquire().await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut job = retry_job_from_row(&row, now)?;
        let text: String = row.try_get("query")?;
        match query_from_text(&text, &self.sealer) {
            Ok(query) => Ok(Some((job, query))),
            Err(e) => {
                // Taken up again every minute it would fail the same way: it ends, saying why.
                job.state = crate::domain::delivery::RetryJobState::Failed;
                job.error = Some(format!("its filters could not be read again: {e}"));
                job.finished_at = Some(now);
                self.save_retry_job(&job, runner).await?;
                Ok(None)
            }
        }
    }

    async fn retry_job(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        id: &str,
    ) -> StoreResult<Option<RetryJob>> {
        let row = sqlx::query(&format!(
            "SELECT {RETRY_JOB_COLUMNS} FROM retry_jobs WHERE organization_id = $1 AND webhook_id = $2 AND id = $3"
        ))
        .bind(organization_id)
        .bind(webhook_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| retry_job_from_row(&row, Timestamp::now()))
            .transpose()
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // Oldest first by position: old finished rows lead the table, so the scan stops
        // after about `limit` rows.
        let gone: Vec<(String, Option<String>)> = sqlx::query_as(
            "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries \
               WHERE state <> 'pending' AND completed_at < $1 ORDER BY seq LIMIT $2) \
             RETURNING event_id, payload_id",
        )
        .bind(before.as_micros())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut events: Vec<&str> = gone.iter().map(|(e, _)| e.as_str()).collect();
        events.sort_unstable();
        events.dedup();
        let mut payloads: Vec<&str> = gone.iter().filter_map(|(_, p)| p.as_deref()).collect();
        payloads.sort_unstable();
        payloads.dedup();
        // A payload is shared only by deliveries of its own event.
        for chunk in payloads.chunks(400) {
            let sql = format!(
                "DELETE FROM payloads WHERE id IN ({}) AND NOT EXISTS \
                   (SELECT 1 FROM deliveries d WHERE d.payload_id = payloads.id AND d.event_id IN ({}))",
                self.dialect.params(1, chunk.len()),
                self.dialect.params(chunk.len() + 1, events.len()),
            );
            let mut query = sqlx::query(&sql);
            for id in chunk.iter().chain(events.iter()) {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in events.chunks(400) {
            let sql = format!(
                "DELETE FROM events WHERE id IN ({}) \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id) \
                 AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.organization_id = events.organization_id \
                   AND i.incident_id = events.incident_id AND i.event_id = events.id)",
                self.dialect.params(1, chunk.len()),
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        // Events that never had a delivery (no webhook matched them).
        let lonely = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.received_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) \
               AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.organization_id = e.organization_id \
                 AND i.incident_id = e.incident_id AND i.event_id = e.id) \
               LIMIT $2)",
        )
        .bind(before.as_micros())
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone.len() as u64 + lonely.rows_affected())
    }

    async fn prune_records(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let mut pruned = 0;
        for (table, key, condition) in [
            (
                "notifications",
                "id",
                "state <> 'pending' AND created_at < $1",
            ),
            ("notices", "id", "state <> 'pending' AND created_at < $1"),
            ("audit_log", "id", "at < $1"),
            ("retry_jobs", "id", "state <> 'running' AND created_at < $1"),
            // A circuit nobody has probed for that long has no work waiting behind it.
            (
                "circuits",
                "url_key",
                "probe_at < $1 AND probe_owner IS NULL",
            ),
        ] {
            let done = sqlx::query(&format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT $2)"
            ))
            .bind(before.as_micros())
            .bind(i64::from(limit))
            .execute(&mut *self.writer.acquire().await?)
            .await?;
            pruned += done.rows_affected();
        }
        // What sources knew of incidents resolved that long ago, but for the counters: a row
        // forgotten would start its key's generations again, and a new incident would take
        // the ids of the first one's events, some still kept (its latest, for one). And
        // sources' old daily counts.
        for statement in [
            "UPDATE source_incidents SET incident = '{}', team = NULL WHERE status = 'resolved' AND updated_at < $1 AND incident <> '{}'",
            "DELETE FROM source_days WHERE day < $1",
        ] {
            let done = sqlx::query(statement)
                .bind(before.as_micros())
                .execute(&mut *self.writer.acquire().await?)
                .await?;
            pruned += done.rows_affected();
        }
        Ok(pruned)
    }

    async fn queue_counts(&self) -> StoreResult<(u64, u64)> {
        // Both counts read partial indexes of pending rows only.
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'")
                .fetch_one(&self.reader)
                .await?;
        let parked: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND parked = 1",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok((pending as u64, parked as u64))
    }

    async fn renew_lease(
        &self,
        delivery_id: &DeliveryId,
        held: &Lease,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE deliveries SET leased_until = $1 \
             WHERE id = $2 AND lease_owner = $3 AND leased_until = $4 AND state = 'pending'",
        )
        .bind(until.as_micros())
        .bind(delivery_id)
        .bind(&held.owner)
        .bind(held.until.as_micros())
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_attempts(&self, owner: &str, results: &[AttemptResult]) -> StoreResult<()> {
        let now = Timestamp::now().as_micros();
        // The writes after each update go as one chain (see `chain.rs`).
        let mut chain = Chain::begin(&self.writer, self.dialect).await?;
        // Counts and URL health of the whole batch, written once after every chunk: an
        // upsert per chunk would touch one row twice, and on PostgreSQL a chain's writes
        // are one statement, where that is an error ("ON CONFLICT DO UPDATE command cannot
        // affect row a second time"), so a batch of more than one chunk never recorded.
        let mut finished = HashMap::new();
        // Per (organization, webhook, stored URL): whether any attempt succeeded.
        let mut health: HashMap<(String, String, String), bool> = HashMap::new();
        for chunk in results.chunks(200) {
            // Only deliveries this node still holds change state (not cancelled, not reclaimed).
            // Holding implies pending (every change away from pending clears the lease), so
            // no `state` condition: with one, PostgreSQL may drive the join from the
            // partial index of held work, whose statistics lag on a fast-growing table, and
            // compare every held delivery with every row of VALUES (seconds per batch).
            let sql = format!(
                "UPDATE deliveries SET state = v.column2, attempts = v.column3, next_attempt_at = v.column4, \
                 last_status = v.column5, last_error = v.column6, updated_at = v.column7, completed_at = v.column8, \
                 leased_until = NULL, lease_owner = NULL, parked = 0 \
                 FROM (VALUES {}) AS v \
                 WHERE deliveries.id = v.column1 AND deliveries.lease_owner = {} \
                 RETURNING deliveries.id, deliveries.organization_id, deliveries.webhook_id, deliveries.url",
                self.dialect.rows(1, chunk.len(), 8),
                self.dialect.params(chunk.len() * 8 + 1, 1)
            );
            let (sql, conn) = chain.read(&sql);
            let mut update =
                sqlx::query_as::<_, (DeliveryId, OrganizationId, WebhookId, String)>(&sql);
            for r in chunk {
                let a = &r.attempt;
                let terminal = r.state != DeliveryState::Pending;
                update = update
                    .bind(&r.delivery_id)
                    .bind(r.state.as_str())
                    .bind(a.number as i64)
                    .bind(r.next_attempt_at.map(Timestamp::as_micros))
                    .bind(a.response_status.map(i64::from))
                    .bind(a.error.as_deref())
                    .bind(now)
                    .bind(terminal.then_some(now));
            }
            let update = update.bind(owner);
            // The deliveries whose state this changed, with their webhook and URL.
            let updated: HashMap<DeliveryId, (OrganizationId, WebhookId, String)> = update
                .fetch_all(conn)
                .await?
                .into_iter()
                .map(|(id, org, webhook, url)| (id, (org, webhook, url)))
                .collect();
            for r in chunk {
                let Some((org, webhook, url)) = updated.get(&r.delivery_id) else {
                    continue;
                };
                *health
                    .entry((org.to_string(), webhook.to_string(), url.clone()))
                    .or_insert(false) |= r.state == DeliveryState::Succeeded;
                if r.state == DeliveryState::Failed && r.notify {
                    super::notification::insert_notification(&mut chain, &r.delivery_id, now)
                        .await?;
                }
                let (ok, failed) = match r.state {
                    DeliveryState::Succeeded => (1, 0),
                    DeliveryState::Failed => (0, 1),
                    _ => continue,
                };
                let counts = finished
                    .entry((org.clone(), webhook.clone(), super::hour_of(now)))
                    .or_insert((0, 0));
                counts.0 += ok;
                counts.1 += failed;
            }
            // ON CONFLICT: an attempt recorded before a crash is not recorded twice.
            let sql = format!(
                "{} ON CONFLICT (delivery_id, number) DO NOTHING",
                self.dialect.insert(
                    "attempts",
                    &[
                        "delivery_id",
                        "number",
                        "started_at",
                        "duration_ms",
                        "request_headers",
                        "response_status",
                        "response_headers",
                        "response_body",
                        "error",
                    ],
                    chunk.len()
                )
            );
            let mut args = Args::default();
            for r in chunk {
                let a = &r.attempt;
                args = args
                    .bind(&r.delivery_id)
                    .bind(a.number as i64)
                    .bind(a.started_at.as_micros())
                    .bind(a.duration_ms as i64)
                    .bind(headers_json(&a.request_headers))
                    .bind(a.response_status.map(i64::from))
                    .bind(a.response_status.map(|_| headers_json(&a.response_headers)))
                    .bind(a.response_body.as_deref())
                    .bind(a.error.as_deref());
            }
            chain.push(&sql, args).await?;
        }
        super::count_finished(&mut chain, &finished).await?;
        record_url_health(&mut chain, &health, now).await?;
        // On SQLite the chained writes run after every chunk's update: they read only
        // `deliveries` rows' ids, organization and webhook, which no update changes.
        chain.commit().await?;
        Ok(())
    }

    async fn release_stale_leases(&self) -> StoreResult<u64> {
        if self.dialect == Dialect::Postgres {
            return Ok(0);
        }
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE deliveries SET lease_owner = NULL, leased_until = NULL, {} \
             WHERE lease_owner IS NOT NULL AND state = 'pending'",
            due_now("$1", "$1")
        ))
        .bind(Timestamp::now().as_micros())
        .execute(&mut *tx)
        .await?;
        super::circuit::release_probe_claims(&mut tx, None).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE deliveries SET lease_owner = NULL, leased_until = NULL, {} \
             WHERE lease_owner = $2 AND state = 'pending'",
            due_now("$1", "$1")
        ))
        .bind(Timestamp::now().as_micros())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        super::circuit::release_probe_claims(&mut tx, Some(owner)).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn cancel_pending(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, leased_until = NULL, lease_owner = NULL, updated_at = $1, completed_at = $1 \
             WHERE organization_id = $2 AND webhook_id = $3 AND state = 'pending'",
        )
        .bind(at.as_micros())
        .bind(organization_id)
        .bind(webhook_id)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(done.rows_affected())
    }

    async fn list_deliveries(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        q: &LogQuery,
    ) -> StoreResult<Vec<(i64, Delivery)>> {
        let mut conditions = log_conditions(q, &self.sealer);
        if let Some(seq) = q.before_seq {
            conditions.push("seq < ?", Arg::from(seq));
        }
        if let Some(seq) = q.after_seq {
            conditions.push("seq > ?", Arg::from(seq));
        }
        let sql = format!(
            // `webhook_id DESC, seq DESC` is the (webhook_id, seq) index read backwards. With
            // `seq DESC` alone SQLite walked the whole table newest first, filtering on the
            // webhook: 86 ms for a page of one webhook among 1,000 (benches/pages.rs).
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = $1 AND webhook_id = $2{} ORDER BY webhook_id DESC, seq DESC LIMIT {}",
            conditions.sql(3),
            q.limit
        );
        let query = conditions.bind(sqlx::query(&sql).bind(organization_id).bind(webhook_id));
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| delivery_from_row(row, &self.sealer))
            .collect()
    }

    async fn incident_deliveries(
        &self,
        organization_id: &OrganizationId,
        incident_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = $1 AND event_id IN \
             (SELECT id FROM events WHERE organization_id = $1 AND incident_id = $2) \
             ORDER BY seq LIMIT {limit}"
        ))
        .bind(organization_id)
        .bind(incident_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| delivery_from_row(row, &self.sealer).map(|(_, d)| d))
            .collect()
    }

    async fn deliveries_at(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        seqs: &[i64],
    ) -> StoreResult<Vec<(i64, Delivery)>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = {} AND webhook_id = {} AND seq IN ({})",
            self.dialect.params(1, 1),
            self.dialect.params(2, 1),
            self.dialect.params(3, seqs.len())
        );
        let mut query = sqlx::query(&sql).bind(organization_id).bind(webhook_id);
        for seq in seqs {
            query = query.bind(*seq);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| delivery_from_row(row, &self.sealer))
            .collect()
    }

    async fn delivery(
        &self,
        organization_id: &OrganizationId,
        webhook_id: &WebhookId,
        delivery_id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE organization_id = $1 AND webhook_id = $2 AND id = $3"
        ))
        .bind(organization_id)
        .bind(webhook_id)
        .bind(delivery_id)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (_, delivery) = delivery_from_row(&row, &self.sealer)?;
        let attempts = sqlx::query(
            "SELECT number, started_at, duration_ms, request_headers, response_status, response_headers, response_body, error \
             FROM attempts WHERE delivery_id = $1 ORDER BY number",
        )
        .bind(delivery_id)
        .fetch_all(&self.reader)
        .await?;
        let attempts = attempts
            .iter()
            .map(attempt_from_row)
            .collect::<StoreResult<_>>()?;
        Ok(Some((delivery, attempts)))
    }
}

const RETRY_JOB_COLUMNS: &str = "id, organization_id, webhook_id, filters, state, total, done, after_seq, error, created_at, finished_at, updated_at, query";

/// A retry job as stored; one `running` but silent for [`RETRY_JOB_SILENCE`] at `now` is
/// reported interrupted.
fn retry_job_from_row(row: &AnyRow, now: Timestamp) -> StoreResult<RetryJob> {
    let state: String = row.try_get("state")?;
    let filters: String = row.try_get("filters")?;
    let mut state = RetryJobState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown retry job state {state}")))?;
    let heard: i64 = row.try_get("updated_at")?;
    if state == RetryJobState::Running && heard < now.minus(RETRY_JOB_SILENCE).as_micros() {
        state = RetryJobState::Interrupted;
    }
    Ok(RetryJob {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        webhook_id: row.try_get("webhook_id")?,
        filters: serde_json::from_str(&filters).unwrap_or(Value::Null),
        state,
        total: row.try_get::<i64, _>("total")? as u64,
        done: row.try_get::<i64, _>("done")? as u64,
        after_seq: row.try_get("after_seq")?,
        error: row.try_get("error")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        finished_at: optional_time(row, "finished_at")?,
    })
}

/// A bulk retry's filters in the store's own form (the log query's filter fields; a URL
/// with its password sealed, as deliveries hold it).
/// A stored time this far ahead of the clock reading it was written before that clock
/// stepped back (racing calls differ by far less).
const STEPPED_BACK_MICROS: i64 = 60_000_000;

fn query_text(q: &LogQuery, sealer: &Sealer) -> String {
    serde_json::json!({
        "state": q.state.map(DeliveryState::as_str),
        "event_type": q.event_type,
        "incident_id": q.incident_id,
        "url": q.url.as_deref().map(|u| sealer.seal_url(u)),
        "delivery_id": q.delivery_id,
        "since": q.since.map(Timestamp::as_micros),
        "until": q.until.map(Timestamp::as_micros),
    })
    .to_string()
}

fn query_from_text(text: &str, sealer: &Sealer) -> StoreResult<LogQuery> {
    let corrupt = || StoreError::Corrupt(format!("unreadable retry job query {text}"));
    let v: Value = serde_json::from_str(text).map_err(|_| corrupt())?;
    let text_of = |key: &str| v[key].as_str().map(str::to_owned);
    let time_of = |key: &str| v[key].as_i64().map(Timestamp::from_micros);
    Ok(LogQuery {
        state: match v["state"].as_str() {
            Some(s) => Some(DeliveryState::parse(s).ok_or_else(corrupt)?),
            None => None,
        },
        event_type: text_of("event_type"),
        incident_id: text_of("incident_id"),
        url: match text_of("url") {
            Some(stored) => Some(open_url(sealer, stored)?),
            None => None,
        },
        delivery_id: text_of("delivery_id"),
        since: time_of("since"),
        until: time_of("until"),
        ..LogQuery::default()
    })
}

/// Notes, per webhook and URL, a success (which ends any failing stretch) or that it has
/// been failing since now if it was not already.
async fn record_url_health(
    chain: &mut Chain<'_>,
    health: &HashMap<(String, String, String), bool>,
    now: i64,
) -> StoreResult<()> {
    let dialect = chain.dialect();
    let rows: Vec<_> = health.iter().collect();
    for chunk in rows.chunks(200) {
        let sql = format!(
            "{} ON CONFLICT (webhook_id, url) DO UPDATE SET \
               last_success_at = COALESCE(excluded.last_success_at, url_health.last_success_at), \
               failing_since = CASE WHEN excluded.last_success_at IS NOT NULL THEN NULL \
                                    ELSE COALESCE(url_health.failing_since, excluded.failing_since) END",
            dialect.insert(
                "url_health",
                &["webhook_id", "url", "organization_id", "last_success_at", "failing_since"],
                chunk.len()
            )
        );
        let mut args = Args::default();
        for ((org, webhook, url), ok) in chunk {
            args = args
                .bind(webhook.to_string())
                .bind(url.to_string())
                .bind(org.to_string())
                .bind(ok.then_some(now))
                .bind((!**ok).then_some(now));
        }
        chain.push(&sql, args).await?;
    }
    Ok(())
}

/// The conditions of a log query's filters (state, event type, incident, time range).
fn log_conditions(q: &LogQuery, sealer: &Sealer) -> Conditions {
    let mut conditions = Conditions::default();
    if let Some(state) = q.state {
        conditions.push("state = ?", Arg::from(state.as_str().to_owned()));
    }
    if let Some(t) = &q.event_type {
        conditions.push("event_type = ?", Arg::from(t.clone()));
    }
    if let Some(i) = &q.incident_id {
        conditions.push("incident_id = ?", Arg::from(i.clone()));
    }
    if let Some(url) = &q.url {
        // As stored: its password sealed (deterministically, so it compares).
        conditions.push("url = ?", Arg::from(sealer.seal_url(url)));
    }
    if let Some(id) = &q.delivery_id {
        conditions.push("id = ?", Arg::from(id.clone()));
    }
    if let Some(t) = q.since {
        conditions.push("created_at >= ?", Arg::from(t.as_micros()));
    }
    if let Some(t) = q.until {
        conditions.push("created_at < ?", Arg::from(t.as_micros()));
    }
    conditions
}

/// The same, limited to finished deliveries.
fn finished_conditions(q: &LogQuery, sealer: &Sealer) -> Conditions {
    let mut conditions = log_conditions(q, sealer);
    if q.state.is_none() {
        conditions.push_fixed("state IN ('succeeded', 'failed', 'cancelled')");
    }
    conditions
}

/// Gives back the leases `owner` holds on the pending deliveries whose `column` (`id` or
/// `event_id`) is among `ids`: a write whose answer was lost leased them, and the node never
/// started them.
async fn give_back_leases(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    owner: &str,
    column: &str,
    ids: &[&str],
) -> StoreResult<()> {
    // Every parameter from `params`: SQLite's are anonymous, and one numbered among them
    // would be bound again in the first anonymous one's place.
    let sql = format!(
        "UPDATE deliveries SET lease_owner = NULL, leased_until = NULL, {} \
         WHERE lease_owner = {} AND state = 'pending' AND {column} IN ({})",
        due_now(&dialect.params(1, 1), &dialect.params(2, 1)),
        dialect.params(3, 1),
        dialect.params(4, ids.len()),
    );
    let now = Timestamp::now().as_micros();
    let mut release = sqlx::query(&sql).bind(now).bind(now).bind(owner);
    for id in ids {
        release = release.bind(*id);
    }
    release.execute(&mut **tx).await?;
    Ok(())
}
