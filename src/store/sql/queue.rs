//! The engine's queue: intake's writes, claims, leases, parks, results and rates.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{
    chain::{Args, Chain},
    delivery_rows::{delivery_from_row, headers_json, DELIVERY_COLUMNS},
    open_url, Dialect, SqlStore,
};
use crate::{
    domain::{
        delivery::{AttemptResult, Delivery, DeliveryState, NewDelivery},
        event::Event,
        ids::{DeliveryId, OrganizationId, WebhookId},
        Timestamp,
    },
    store::{Accepted, Admission, Lease, QueueStore, StoreResult},
};

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
impl QueueStore for SqlStore {
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
}

/// A bulk retry's filters in the store's own form (the log query's filter fields; a URL
/// with its password sealed, as deliveries hold it).
/// A stored time this far ahead of the clock reading it was written before that clock
/// stepped back (racing calls differ by far less).
const STEPPED_BACK_MICROS: i64 = 60_000_000;

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
