//! Organizations, tokens and webhooks.

use async_trait::async_trait;
use sqlx::{any::AnyRow, Row};

use super::audit::insert_audit;
use super::SqlStore;
use crate::domain::ids::{OrganizationId, WebhookId};
use crate::domain::{
    audit::{token_created, token_object, Actor, AuditEntry},
    organization::Organization,
    session::SetupLink,
    token::{Ability, ApiToken, NewToken},
    webhook::{PreviousSecret, Webhook, WebhookSpec},
    Timestamp,
};
use crate::store::{AuditQuery, ConfigStore, Page, StoreError, StoreResult, WebhookChanges};

pub(super) const WEBHOOK_COLUMNS: &str =
    "id, organization_id, slug, author_id, spec, secret, previous_secret, previous_secret_until, disabled_reason, created_at, updated_at";

use super::token_rows::{select_tokens, token_from_row, token_with_person, TOKEN_COLUMNS};

fn organization_from_row(row: &AnyRow) -> StoreResult<Organization> {
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
    })
}

/// A webhook row as stored, its secrets still sealed (see [`SqlStore::webhook_from_row`]).
pub(super) fn sealed_webhook_from_row(row: &AnyRow) -> StoreResult<Webhook> {
    let spec: String = row.try_get("spec")?;
    let id: String = row.try_get("id")?;
    Ok(Webhook {
        spec: super::stored_webhook::from_text(&spec)
            .map_err(|e| StoreError::Corrupt(format!("webhook {id}: {e}")))?,
        id: id.into(),
        organization_id: row.try_get("organization_id")?,
        slug: row.try_get("slug")?,
        author_id: row.try_get("author_id")?,
        secret: row.try_get("secret")?,
        previous_secret: match (
            row.try_get::<Option<String>, _>("previous_secret")?,
            row.try_get::<Option<i64>, _>("previous_secret_until")?,
        ) {
            (Some(secret), Some(until)) => Some(PreviousSecret {
                secret,
                until: Timestamp::from_micros(until),
            }),
            _ => None,
        },
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
    })
}

pub(super) fn spec_json(spec: &WebhookSpec) -> String {
    super::stored_webhook::to_text(spec)
}

impl SqlStore {
    /// The webhooks of `rows` that can be read. One that cannot (a secret sealed under
    /// another key, a damaged row) is left out and logged: it costs itself, not every other
    /// webhook's intake and the lists.
    fn readable_webhooks(&self, rows: &[AnyRow]) -> Vec<Webhook> {
        self.opened_webhooks(rows).0
    }

    /// The webhooks of `rows` that can be read, and the ids of those that cannot (logged).
    fn opened_webhooks(&self, rows: &[AnyRow]) -> (Vec<Webhook>, Vec<WebhookId>) {
        let mut readable = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            match self.webhook_from_row(row) {
                Ok(webhook) => readable.push(webhook),
                Err(e) => {
                    tracing::error!(error = %e, "a webhook cannot be read and is left out until it is fixed or deleted");
                    if let Ok(id) = row.try_get::<String, _>("id") {
                        unreadable.push(WebhookId::from(id));
                    }
                }
            }
        }
        (readable, unreadable)
    }

    /// A webhook row with its secrets opened.
    fn webhook_from_row(&self, row: &AnyRow) -> StoreResult<Webhook> {
        let webhook = sealed_webhook_from_row(row)?;
        let id = webhook.id.clone();
        self.sealer
            .open_webhook(webhook)
            .map_err(|e| StoreError::Corrupt(format!("webhook {id}: {e}")))
    }
}

const INSERT_ORGANIZATION: &str =
    "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)";
const INSERT_TOKEN: &str = "INSERT INTO api_tokens (id, organization_id, name, token_hash, abilities, created_at, expires_at, created_by, created_by_email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

fn insert_organization(
    org: &Organization,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(INSERT_ORGANIZATION)
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.created_at.as_micros())
}

fn insert_token(t: &NewToken) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(INSERT_TOKEN)
        .bind(&t.token.id)
        .bind(&t.token.organization_id)
        .bind(&t.token.name)
        .bind(&t.hash)
        .bind(Ability::join(&t.token.abilities))
        .bind(t.token.created_at.as_micros())
        .bind(t.token.expires_at.map(Timestamp::as_micros))
        .bind(t.token.created_by.as_ref().map(|c| c.user_id.clone()))
        .bind(t.token.created_by.as_ref().map(|c| c.email.clone()))
}

#[async_trait]
impl ConfigStore for SqlStore {
    async fn bootstrap(
        &self,
        org: &Organization,
        owner: &NewToken,
        owner_link: Option<&SetupLink>,
    ) -> StoreResult<bool> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // The first statement writes, so SQLite takes its write lock at once.
        insert_organization(org).execute(&mut *tx).await?;
        let claimed = sqlx::query(
            "INSERT INTO installation (singleton, organization_id, created_at) VALUES (1, $1, $2) ON CONFLICT (singleton) DO NOTHING",
        )
        .bind(&org.id)
        .bind(org.created_at.as_micros())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_token(owner).execute(&mut *tx).await?;
        insert_audit(&mut tx, &token_created(&owner.token, &Actor::system())).await?;
        if let Some(link) = owner_link {
            super::accounts::insert_setup_link(&mut tx, link).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn installation_organization(&self) -> StoreResult<Option<Organization>> {
        let row = sqlx::query(
            "SELECT o.id, o.name, o.created_at FROM installation i JOIN organizations o ON o.id = i.organization_id",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(organization_from_row).transpose()
    }

    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        insert_organization(org)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(())
    }

    async fn create_token(&self, token: &NewToken, audit: &AuditEntry) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        insert_token(token).execute(&mut *tx).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(&select_tokens("t.token_hash = $1"))
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(token_with_person).transpose()
    }

    async fn list_tokens(
        &self,
        organization_id: Option<&OrganizationId>,
    ) -> StoreResult<Vec<ApiToken>> {
        let rows = match organization_id {
            Some(org) => {
                sqlx::query(&format!(
                    "{} ORDER BY t.created_at, t.id",
                    select_tokens("t.organization_id = $1")
                ))
                .bind(org)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{} ORDER BY t.created_at, t.id",
                    select_tokens("1 = 1")
                ))
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter().map(token_with_person).collect()
    }

    async fn revoke_token(
        &self,
        organization_id: Option<&OrganizationId>,
        id: &str,
        at: Timestamp,
        actor: &Actor,
    ) -> StoreResult<Option<ApiToken>> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND ($3 = '' OR organization_id = $3) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(at.as_micros())
        .bind(id)
        .bind(organization_id.map_or("", |o| o.as_str()))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(token) = row.as_ref().map(token_from_row).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let entry = AuditEntry::new(
            &token.organization_id,
            actor,
            "token.revoked",
            token_object(&token),
            Vec::new(),
        );
        insert_audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    async fn touch_token(&self, id: &str, at: Timestamp) -> StoreResult<()> {
        let stale_before =
            at.as_micros() - crate::domain::token::LAST_USED_EVERY.as_micros() as i64;
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(at.as_micros())
        .bind(id)
        .bind(stale_before)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(())
    }

    async fn observe_directory(
        &self,
        organization_id: &OrganizationId,
        entries: &[crate::domain::directory::Entry],
    ) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO directory (organization_id, kind, id, name, last_seen) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (organization_id, kind, id) DO UPDATE SET \
                 name = CASE WHEN $6 = 1 THEN excluded.name ELSE directory.name END, last_seen = excluded.last_seen",
            )
            .bind(organization_id)
            .bind(e.kind.as_str())
            .bind(&e.id)
            .bind(&e.name)
            .bind(e.last_seen.map(Timestamp::as_micros))
            // A nameless mention keeps the name known (it named the entry by its id).
            .bind(i64::from(e.named))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn declare_directory(
        &self,
        organization_id: &OrganizationId,
        e: &crate::domain::directory::Entry,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO directory (organization_id, kind, id, name, declared_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (organization_id, kind, id) DO UPDATE SET name = excluded.name, declared_at = excluded.declared_at",
        )
        .bind(organization_id)
        .bind(e.kind.as_str())
        .bind(&e.id)
        .bind(&e.name)
        .bind(at.as_micros())
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(())
    }

    async fn directory(
        &self,
        organization_id: &OrganizationId,
        kind: crate::domain::directory::Kind,
    ) -> StoreResult<Vec<crate::domain::directory::Entry>> {
        let rows = sqlx::query(
            "SELECT id, name, last_seen FROM directory WHERE organization_id = $1 AND kind = $2 ORDER BY name, id LIMIT 1000",
        )
        .bind(organization_id)
        .bind(kind.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(crate::domain::directory::Entry {
                    kind,
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    named: true,
                    last_seen: super::optional_time(row, "last_seen")?,
                })
            })
            .collect()
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        super::audit::insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        organization_id: &OrganizationId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<(i64, AuditEntry)>> {
        super::audit::list(&self.reader, organization_id, query).await
    }

    async fn audit_entry(
        &self,
        organization_id: &OrganizationId,
        id: &str,
    ) -> StoreResult<Option<AuditEntry>> {
        super::audit::one(&self.reader, organization_id, id).await
    }

    async fn insert_webhook(&self, w: &Webhook, audit: &AuditEntry) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&w.id)
        .bind(&w.organization_id)
        .bind(&w.slug)
        .bind(&w.author_id)
        .bind(spec_json(&self.sealer.seal_spec(&w.id, &w.spec)))
        .bind(self.sealer.seal_secret(&w.id, &w.secret))
        .bind(
            w.previous_secret
                .as_ref()
                .map(|p| self.sealer.seal_previous_secret(&w.id, &p.secret)),
        )
        .bind(w.previous_secret.as_ref().map(|p| p.until.as_micros()))
        .bind(w.disabled_reason.as_deref())
        .bind(w.created_at.as_micros())
        .bind(w.updated_at.as_micros())
        .execute(&mut *tx)
        .await?;
        bump_webhooks_version(&mut tx, &w.organization_id).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn webhooks_version(&self, organization_id: &OrganizationId) -> StoreResult<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT webhooks_version FROM organizations WHERE id = $1")
                .bind(organization_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(version.unwrap_or(0))
    }

    async fn webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
    ) -> StoreResult<Option<Webhook>> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref()
            .map(|row| self.webhook_from_row(row))
            .transpose()
    }

    async fn webhooks_changed(
        &self,
        organization_id: &OrganizationId,
        since: i64,
    ) -> StoreResult<WebhookChanges> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 AND changed_version > $2 ORDER BY created_at, id"
        ))
        .bind(organization_id)
        .bind(since)
        .fetch_all(&self.reader)
        .await?;
        let deleted: Vec<String> = sqlx::query_scalar(
            "SELECT webhook_id FROM webhook_deletions WHERE organization_id = $1 AND version > $2",
        )
        .bind(organization_id)
        .bind(since)
        .fetch_all(&self.reader)
        .await?;
        // Read last: a webhook created or deleted after the reads above makes the count
        // differ from what the catalog can account for, and so the ids are read — unless a
        // creation and a deletion then cancel out while a deletion older than the store
        // remembers is missing too; each moved the version, so the catalog's next check
        // (within 100 ms) reads again from the version it holds and finds it.
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_one(&self.reader)
                .await?;
        let (written, unreadable) = self.opened_webhooks(&rows);
        Ok(WebhookChanges {
            written,
            unreadable,
            deleted: deleted.into_iter().map(WebhookId::from).collect(),
            count: count as usize,
        })
    }

    async fn webhook_ids(&self, organization_id: &OrganizationId) -> StoreResult<Vec<WebhookId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_all(&self.reader)
                .await?;
        Ok(ids.into_iter().map(WebhookId::from).collect())
    }

    async fn all_webhooks(&self, organization_id: &OrganizationId) -> StoreResult<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 ORDER BY created_at, id"
        ))
        .bind(organization_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(self.readable_webhooks(&rows))
    }

    async fn organization(&self, id: &OrganizationId) -> StoreResult<Option<Organization>> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(organization_from_row).transpose()
    }

    async fn list_webhooks(
        &self,
        organization_id: &OrganizationId,
        limit: u64,
        offset: u64,
    ) -> StoreResult<Page<Webhook>> {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_one(&self.reader)
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(organization_id)
        .bind(limit.min(i64::MAX as u64) as i64)
        .bind(offset.min(i64::MAX as u64) as i64)
        .fetch_all(&self.reader)
        .await?;
        Ok(Page {
            items: self.readable_webhooks(&rows),
            total: total as u64,
        })
    }

    async fn update_webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        spec: &WebhookSpec,
        at: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Webhook>> {
        let sealed = spec_json(&self.sealer.seal_spec(id, spec));
        let was_enabled = sqlx::query_scalar::<_, String>(
            "SELECT spec FROM webhooks WHERE organization_id = $1 AND id = $2",
        )
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .and_then(|text| super::stored_webhook::from_text(&text).ok())
        .is_some_and(|s| s.enabled);
        // Enabled again by someone: tocsin's reason for disabling it no longer holds, and
        // its URLs' failing stretches start over.
        let column = if spec.enabled {
            "disabled_reason = NULL, spec"
        } else {
            "spec"
        };
        let updated = self
            .update_column(organization_id, id, column, sealed, at, audit)
            .await?;
        if spec.enabled && !was_enabled && updated.is_some() {
            sqlx::query("UPDATE url_health SET failing_since = NULL WHERE webhook_id = $1")
                .bind(id)
                .execute(&mut *self.writer.acquire().await?)
                .await?;
        }
        Ok(updated)
    }

    async fn delete_webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE organization_id = $1 AND id = $2")
            .bind(organization_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        bump_webhooks_version(&mut tx, organization_id).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn failing_webhooks(&self, cutoff: Timestamp) -> StoreResult<Vec<(Webhook, Timestamp)>> {
        // Candidates: every URL row of the webhook failing since before the cutoff.
        let candidates: Vec<(OrganizationId, WebhookId)> = sqlx::query_as(
            "SELECT organization_id, webhook_id FROM url_health GROUP BY organization_id, webhook_id \
             HAVING COUNT(*) = COUNT(CASE WHEN failing_since IS NOT NULL AND failing_since < $1 THEN 1 END)",
        )
        .bind(cutoff.as_micros())
        .fetch_all(&self.reader)
        .await?;
        let mut failing = Vec::new();
        for (org, id) in candidates {
            let Some(webhook) = self.webhook(&org, &id).await? else {
                continue;
            };
            if !webhook.spec.enabled {
                continue;
            }
            // Every URL it has now (rows of URLs it no longer has do not count).
            let rows: Vec<(String, Option<i64>)> =
                sqlx::query_as("SELECT url, failing_since FROM url_health WHERE webhook_id = $1")
                    .bind(&id)
                    .fetch_all(&self.reader)
                    .await?;
            let since: Option<Vec<i64>> = webhook
                .spec
                .urls
                .iter()
                .map(|u| {
                    let stored = self.sealer.seal_url(&u.url);
                    rows.iter()
                        .find(|(url, _)| *url == stored)
                        .and_then(|(_, since)| *since)
                        .filter(|since| *since < cutoff.as_micros())
                })
                .collect();
            if let Some(earliest) = since.and_then(|s| s.into_iter().min()) {
                failing.push((webhook, Timestamp::from_micros(earliest)));
            }
        }
        Ok(failing)
    }

    #[allow(clippy::too_many_arguments)]
    async fn disable_webhook(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        reason: &str,
        at: Timestamp,
        audit: &AuditEntry,
        notice: Option<&crate::domain::notification::Notice>,
        answered: &str,
    ) -> StoreResult<Option<Webhook>> {
        self.disable(organization_id, id, reason, at, audit, notice, answered)
            .await
    }

    async fn set_webhook_secret(
        &self,
        organization_id: &OrganizationId,
        id: &WebhookId,
        secret: &str,
        previous: Option<&PreviousSecret>,
        at: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Webhook>> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET secret = $1, previous_secret = $2, previous_secret_until = $3, updated_at = $4 \
             WHERE organization_id = $5 AND id = $6 RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(self.sealer.seal_secret(id, secret))
        .bind(previous.map(|p| self.sealer.seal_previous_secret(id, &p.secret)))
        .bind(previous.map(|p| p.until.as_micros()))
        .bind(at.as_micros())
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        self.finish_webhook_write(tx, organization_id, row, audit)
            .await
    }
}

impl SqlStore {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn disable(
        &self,
        organization_id: &OrganizationId,
        id: &str,
        reason: &str,
        at: Timestamp,
        audit: &AuditEntry,
        notice: Option<&crate::domain::notification::Notice>,
        answered: &str,
    ) -> StoreResult<Option<Webhook>> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let spec: Option<String> =
            sqlx::query_scalar("SELECT spec FROM webhooks WHERE organization_id = $1 AND id = $2")
                .bind(organization_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(spec) = spec else {
            tx.rollback().await?;
            return Ok(None);
        };
        // The stored form is changed as stored: its sealed values stay sealed.
        let mut stored = super::stored_webhook::from_text(&spec)
            .map_err(|e| StoreError::Corrupt(format!("webhook {id}: {e}")))?;
        stored.enabled = false;
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET spec = $1, disabled_reason = $2, updated_at = $3 \
             WHERE organization_id = $4 AND id = $5 RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(spec_json(&stored))
        .bind(reason)
        .bind(at.as_micros())
        .bind(organization_id)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, leased_until = NULL, lease_owner = NULL, updated_at = $1, completed_at = $1 \
             WHERE organization_id = $2 AND webhook_id = $3 AND state = 'pending' AND id <> $4",
        )
        .bind(at.as_micros())
        .bind(organization_id)
        .bind(id)
        .bind(answered)
        .execute(&mut *tx)
        .await?;
        if let Some(notice) = notice {
            super::notification::insert_notice(&mut tx, notice).await?;
        }
        self.finish_webhook_write(tx, organization_id, Some(row), audit)
            .await
    }

    /// Sets one text column of a webhook (`column` is one of ours, never input; it may
    /// start with other fixed assignments).
    async fn update_column(
        &self,
        organization_id: &OrganizationId,
        id: &str,
        column: &'static str,
        value: String,
        at: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Webhook>> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET {column} = $1, updated_at = $2 WHERE organization_id = $3 AND id = $4 RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(value)
        .bind(at.as_micros())
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        self.finish_webhook_write(tx, organization_id, row, audit)
            .await
    }
}

impl SqlStore {
    /// The end of every write to one webhook, in its transaction: rolled back when the
    /// webhook was not there (`row` is `None`); else the organization's webhooks_version
    /// bumped (other nodes reload) and the audit entry written, committed, and the row
    /// read back opened.
    async fn finish_webhook_write(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        organization_id: &OrganizationId,
        row: Option<AnyRow>,
        audit: &AuditEntry,
    ) -> StoreResult<Option<Webhook>> {
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        bump_webhooks_version(&mut tx, organization_id).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        self.webhook_from_row(&row).map(Some)
    }
}

/// Moves the organization's webhooks_version on, after the write to its webhook in the same
/// transaction: the write's triggers marked the row (`changed_version`) or recorded the
/// deletion with the version this makes (`migrations/*/0029_webhook_changes.sql`), so
/// caches read only what changed (`webhooks_changed`).
async fn bump_webhooks_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organization_id: &OrganizationId,
) -> StoreResult<()> {
    sqlx::query("UPDATE organizations SET webhooks_version = webhooks_version + 1 WHERE id = $1")
        .bind(organization_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
