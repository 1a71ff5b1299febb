//! People: users, their sessions and setup links.

use async_trait::async_trait;
use sqlx::{any::AnyRow, Row, Transaction};

use super::{audit::insert_audit, optional_time, SqlStore};
use crate::domain::ids::OrganizationId;
use crate::domain::{
    audit::{token_object, AuditEntry, Change},
    session::{LinkProblem, Session, SetupLink},
    user::{email_key, Role, User},
    Timestamp,
};
use crate::store::{AccountStore, LinkUse, StoreError, StoreResult, UserWrite};

const USER_COLUMNS: &str = "id, organization_id, email, name, role, disabled, created_at, updated_at, last_login_at, password_hash";
const LINK_COLUMNS: &str =
    "code_hash, organization_id, user_id, role, created_at, expires_at, used_at";

type Tx<'c> = Transaction<'c, sqlx::Any>;

fn role(text: &str) -> StoreResult<Role> {
    Role::parse(text).map_err(StoreError::Corrupt)
}

fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    let role_text: String = row.try_get("role")?;
    let hash: Option<String> = row.try_get("password_hash")?;
    Ok(User {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: role(&role_text)?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        has_password: hash.is_some(),
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
        last_login_at: optional_time(row, "last_login_at")?,
    })
}

fn link_from_row(row: &AnyRow) -> StoreResult<SetupLink> {
    let role_text: String = row.try_get("role")?;
    Ok(SetupLink {
        code_hash: row.try_get("code_hash")?,
        organization_id: row.try_get("organization_id")?,
        user_id: row.try_get("user_id")?,
        role: role(&role_text)?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        expires_at: Timestamp::from_micros(row.try_get("expires_at")?),
        used_at: optional_time(row, "used_at")?,
    })
}

pub(crate) async fn insert_setup_link(tx: &mut Tx<'_>, link: &SetupLink) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO setup_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&link.code_hash)
    .bind(&link.organization_id)
    .bind(link.user_id.as_deref())
    .bind(link.role.as_str())
    .bind(link.created_at.as_micros())
    .bind(link.expires_at.as_micros())
    .bind(link.used_at.map(Timestamp::as_micros))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_user(tx: &mut Tx<'_>, user: &User, password_hash: Option<&str>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, organization_id, email, email_key, name, role, password_hash, disabled, created_at, updated_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&user.id)
    .bind(&user.organization_id)
    .bind(&user.email)
    .bind(email_key(&user.email))
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(password_hash)
    .bind(i64::from(user.disabled))
    .bind(user.created_at.as_micros())
    .bind(user.updated_at.as_micros())
    .bind(user.last_login_at.map(Timestamp::as_micros))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn email_taken(
    tx: &mut Tx<'_>,
    organization_id: &OrganizationId,
    email: &str,
) -> StoreResult<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE organization_id = $1 AND email_key = $2")
            .bind(organization_id)
            .bind(email_key(email))
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

async fn user_in(
    tx: &mut Tx<'_>,
    organization_id: &OrganizationId,
    id: &str,
) -> StoreResult<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE organization_id = $1 AND id = $2"
    ))
    .bind(organization_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Serialises changes to an organization's users (a row lock on PostgreSQL; SQLite has one
/// writer anyway), so two admins demoting the last two owners at once cannot both succeed.
async fn lock_organization(tx: &mut Tx<'_>, organization_id: &OrganizationId) -> StoreResult<()> {
    sqlx::query("UPDATE organizations SET name = name WHERE id = $1")
        .bind(organization_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether an enabled owner other than `except` remains.
async fn other_owner_exists(
    tx: &mut Tx<'_>,
    organization_id: &OrganizationId,
    except: &str,
) -> StoreResult<bool> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE organization_id = $1 AND role = 'owner' AND disabled = 0 AND id <> $2",
    )
    .bind(organization_id)
    .bind(except)
    .fetch_one(&mut **tx)
    .await?;
    Ok(count > 0)
}

async fn end_sessions_of(tx: &mut Tx<'_>, user_id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revokes every token `user_id` is behind, each with a `token.revoked` entry by the actor
/// of `cause` (the person's disabling or deletion) saying why.
async fn revoke_tokens_of(tx: &mut Tx<'_>, user_id: &str, cause: &AuditEntry) -> StoreResult<()> {
    let rows = sqlx::query(&format!(
        "UPDATE api_tokens SET revoked_at = $1 WHERE created_by = $2 AND revoked_at IS NULL RETURNING {}",
        super::token_rows::TOKEN_COLUMNS
    ))
    .bind(cause.at.as_micros())
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        let token = super::token_rows::token_from_row(row)?;
        let entry = AuditEntry::new(
            &token.organization_id,
            &cause.actor,
            "token.revoked",
            token_object(&token),
            vec![Change {
                field: "reason".into(),
                before: serde_json::Value::Null,
                after: serde_json::Value::String(format!(
                    "{} ({})",
                    cause.action, cause.object.name
                )),
            }],
        );
        insert_audit(tx, &entry).await?;
    }
    Ok(())
}

async fn store_password(
    tx: &mut Tx<'_>,
    user_id: &str,
    hash: Option<&str>,
    at: Timestamp,
) -> StoreResult<()> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(at.as_micros())
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    end_sessions_of(tx, user_id).await
}

fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation())
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
        link: Option<&SetupLink>,
        audit: &AuditEntry,
    ) -> StoreResult<UserWrite> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        lock_organization(&mut tx, &user.organization_id).await?;
        if email_taken(&mut tx, &user.organization_id, &user.email).await? {
            tx.rollback().await?;
            return Ok(UserWrite::DuplicateEmail);
        }
        match insert_user(&mut tx, user, password_hash).await {
            Err(e) if is_unique_violation(&e) => return Ok(UserWrite::DuplicateEmail),
            other => other?,
        }
        if let Some(link) = link {
            insert_setup_link(&mut tx, link).await?;
        }
        insert_audit(&mut tx, audit).await?;
        let stored = user_in(&mut tx, &user.organization_id, &user.id).await?;
        tx.commit().await?;
        Ok(stored.map_or(UserWrite::NotFound, UserWrite::Done))
    }

    async fn user(&self, organization_id: &OrganizationId, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(
        &self,
        organization_id: &OrganizationId,
        email: &str,
    ) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE organization_id = $1 AND email_key = $2"
        ))
        .bind(organization_id)
        .bind(email_key(email))
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn login_candidates(&self, email: &str) -> StoreResult<Vec<(User, Option<String>)>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email_key = $1 ORDER BY created_at LIMIT 10"
        ))
        .bind(email_key(email))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((user_from_row(row)?, row.try_get("password_hash")?)))
            .collect()
    }

    async fn list_users(&self, organization_id: &OrganizationId) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE organization_id = $1 ORDER BY created_at, id"
        ))
        .bind(organization_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<UserWrite> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        lock_organization(&mut tx, &user.organization_id).await?;
        let Some(current) = user_in(&mut tx, &user.organization_id, &user.id).await? else {
            tx.rollback().await?;
            return Ok(UserWrite::NotFound);
        };
        let stays_owner = user.role == Role::Owner && !user.disabled;
        let was_owner = current.role == Role::Owner && !current.disabled;
        if was_owner
            && !stays_owner
            && !other_owner_exists(&mut tx, &user.organization_id, &user.id).await?
        {
            tx.rollback().await?;
            return Ok(UserWrite::LastOwner);
        }
        sqlx::query(
            "UPDATE users SET name = $1, role = $2, disabled = $3, updated_at = $4 WHERE organization_id = $5 AND id = $6",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(i64::from(user.disabled))
        .bind(user.updated_at.as_micros())
        .bind(&user.organization_id)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
        if user.disabled {
            end_sessions_of(&mut tx, &user.id).await?;
            revoke_tokens_of(&mut tx, &user.id, audit).await?;
        }
        insert_audit(&mut tx, audit).await?;
        let stored = user_in(&mut tx, &user.organization_id, &user.id).await?;
        tx.commit().await?;
        Ok(stored.map_or(UserWrite::NotFound, UserWrite::Done))
    }

    async fn delete_user(
        &self,
        organization_id: &OrganizationId,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<UserWrite> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        lock_organization(&mut tx, organization_id).await?;
        let Some(current) = user_in(&mut tx, organization_id, id).await? else {
            tx.rollback().await?;
            return Ok(UserWrite::NotFound);
        };
        if current.role == Role::Owner
            && !current.disabled
            && !other_owner_exists(&mut tx, organization_id, id).await?
        {
            tx.rollback().await?;
            return Ok(UserWrite::LastOwner);
        }
        end_sessions_of(&mut tx, id).await?;
        revoke_tokens_of(&mut tx, id, audit).await?;
        for table in ["setup_links", "users"] {
            let column = if table == "users" { "id" } else { "user_id" };
            sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(UserWrite::Done(current))
    }

    async fn reset_password(&self, link: &SetupLink, audit: &AuditEntry) -> StoreResult<UserWrite> {
        let Some(user_id) = link.user_id.as_deref() else {
            return Ok(UserWrite::NotFound);
        };
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let Some(user) = user_in(&mut tx, &link.organization_id, user_id).await? else {
            tx.rollback().await?;
            return Ok(UserWrite::NotFound);
        };
        sqlx::query("DELETE FROM setup_links WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        store_password(&mut tx, user_id, None, link.created_at).await?;
        insert_setup_link(&mut tx, link).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(UserWrite::Done(User {
            has_password: false,
            ..user
        }))
    }

    async fn setup_link(&self, code_hash: &str) -> StoreResult<Option<(SetupLink, Option<User>)>> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM setup_links WHERE code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(&self.reader)
        .await?;
        let Some(link) = row.as_ref().map(link_from_row).transpose()? else {
            return Ok(None);
        };
        let user = match &link.user_id {
            Some(id) => self.user(&link.organization_id, id).await?,
            None => None,
        };
        Ok(Some((link, user)))
    }

    async fn use_setup_link(
        &self,
        code_hash: &str,
        now: Timestamp,
        password_hash: &str,
        new_user: Option<&User>,
        audit: &AuditEntry,
    ) -> StoreResult<LinkUse> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // Claiming the link is the first write: of two uses at once, one finds it taken.
        let claimed = sqlx::query(&format!(
            "UPDATE setup_links SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING {LINK_COLUMNS}"
        ))
        .bind(now.as_micros())
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(link) = claimed.as_ref().map(link_from_row).transpose()? else {
            tx.rollback().await?;
            let problem = match self.setup_link(code_hash).await? {
                Some((link, _)) => link.check(now).err().unwrap_or(LinkProblem::Used),
                None => LinkProblem::Unknown,
            };
            return Ok(LinkUse::Refused(problem));
        };
        let user_id = match (&link.user_id, new_user) {
            (Some(id), _) => {
                store_password(&mut tx, id, Some(password_hash), now).await?;
                id.clone()
            }
            (None, Some(user)) => {
                lock_organization(&mut tx, &link.organization_id).await?;
                if email_taken(&mut tx, &link.organization_id, &user.email).await? {
                    tx.rollback().await?;
                    return Ok(LinkUse::DuplicateEmail);
                }
                insert_user(&mut tx, user, Some(password_hash)).await?;
                user.id.clone()
            }
            (None, None) => {
                tx.rollback().await?;
                return Ok(LinkUse::Refused(LinkProblem::Unknown));
            }
        };
        insert_audit(&mut tx, audit).await?;
        let user = user_in(&mut tx, &link.organization_id, &user_id).await?;
        tx.commit().await?;
        Ok(user.map_or(LinkUse::Refused(LinkProblem::Unknown), LinkUse::Done))
    }

    async fn start_session(&self, session: &Session) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        let idle_cutoff = session.created_at.as_micros()
            - crate::domain::session::IDLE_TIMEOUT.as_micros() as i64;
        let absolute_cutoff = session.created_at.as_micros()
            - crate::domain::session::ABSOLUTE_TIMEOUT.as_micros() as i64;
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND (last_seen_at <= $2 OR created_at <= $3)",
        )
        .bind(&session.user_id)
        .bind(idle_cutoff)
        .bind(absolute_cutoff)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.id_hash)
        .bind(&session.user_id)
        .bind(session.created_at.as_micros())
        .bind(session.last_seen_at.as_micros())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(session.created_at.as_micros())
            .bind(&session.user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> StoreResult<Option<(Session, User)>> {
        let row = sqlx::query(
            "SELECT s.id_hash, s.user_id AS session_user, s.created_at AS session_created, s.last_seen_at, \
             u.id, u.organization_id, u.email, u.name, u.role, u.disabled, u.created_at, u.updated_at, u.last_login_at, u.password_hash \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let session = Session {
            id_hash: row.try_get("id_hash")?,
            user_id: row.try_get("session_user")?,
            created_at: Timestamp::from_micros(row.try_get("session_created")?),
            last_seen_at: Timestamp::from_micros(row.try_get("last_seen_at")?),
        };
        Ok(Some((session, user_from_row(&row)?)))
    }

    async fn touch_session(&self, id_hash: &str, at: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(at.as_micros())
            .bind(id_hash)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(())
    }

    async fn end_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(())
    }

    async fn login_attempt(
        &self,
        keys: &[&str],
        at: Timestamp,
        since: Timestamp,
    ) -> StoreResult<Vec<(String, Timestamp)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        if self.dialect == super::Dialect::Postgres {
            // Attempts at once on several connections would each count before the others
            // committed, and all pass: each key's attempts take turns (SQLite's one writer
            // serialises them already). Keys in order, so two attempts cannot deadlock; the
            // two-number form of the lock, a key space apart from the lanes' (one number).
            let mut sorted = keys.to_vec();
            sorted.sort_unstable();
            let sql = format!(
                "SELECT pg_advisory_xact_lock(1, hashtext(k)) FROM (VALUES {}) AS v(k)",
                self.dialect.rows(1, sorted.len(), 1)
            );
            let mut lock = sqlx::query(&sql);
            for key in sorted {
                lock = lock.bind(key);
            }
            lock.execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM login_failures WHERE at <= $1")
            .bind(since.as_micros())
            .execute(&mut *tx)
            .await?;
        let sql = self
            .dialect
            .insert("login_failures", &["subject", "at"], keys.len());
        let mut insert = sqlx::query(&sql);
        for key in keys {
            insert = insert.bind(*key).bind(at.as_micros());
        }
        insert.execute(&mut *tx).await?;
        let sql = format!(
            "SELECT subject, at FROM login_failures WHERE at > {} AND subject IN ({})",
            self.dialect.params(1, 1),
            self.dialect.params(2, keys.len())
        );
        let mut select = sqlx::query_as::<_, (String, i64)>(&sql).bind(since.as_micros());
        for key in keys {
            select = select.bind(*key);
        }
        let failures = select.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(failures
            .into_iter()
            .map(|(key, at)| (key, Timestamp::from_micros(at)))
            .collect())
    }

    async fn forget_login_attempt(&self, keys: &[&str], at: Timestamp) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM login_failures WHERE at = {} AND subject IN ({})",
            self.dialect.params(1, 1),
            self.dialect.params(2, keys.len())
        );
        let mut delete = sqlx::query(&sql).bind(at.as_micros());
        for key in keys {
            delete = delete.bind(*key);
        }
        delete.execute(&mut *self.writer.acquire().await?).await?;
        Ok(())
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE subject = $1")
            .bind(key)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(())
    }

    async fn login_failures(
        &self,
        keys: &[&str],
        since: Timestamp,
    ) -> StoreResult<Vec<(String, Timestamp)>> {
        let mut conn = self.reader.acquire().await?;
        let mut failures = Vec::new();
        // A users page asks for every person's email at once: a statement's parameters
        // are bounded (SQLite's 32,766).
        let chunks = keys.chunks(1_000);
        let several = chunks.len() > 1;
        for keys in chunks {
            // An attempt's rows share its time: the other keys at those times are the
            // addresses the attempts came from.
            let n = keys.len();
            let sql = format!(
                "SELECT subject, at FROM login_failures WHERE at > {} AND (subject IN ({}) \
                 OR subject IN (SELECT o.subject FROM login_failures k \
                   JOIN login_failures o ON o.at = k.at AND o.subject LIKE 'ip:%' \
                   WHERE k.at > {} AND k.subject IN ({})))",
                self.dialect.params(1, 1),
                self.dialect.params(2, n),
                self.dialect.params(n + 2, 1),
                self.dialect.params(n + 3, n)
            );
            let mut select = sqlx::query_as::<_, (String, i64)>(&sql).bind(since.as_micros());
            for key in keys {
                select = select.bind(*key);
            }
            select = select.bind(since.as_micros());
            for key in keys {
                select = select.bind(*key);
            }
            failures.extend(
                select
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(|(key, at)| (key, Timestamp::from_micros(at))),
            );
        }
        if several {
            // An address paired with two chunks' emails came with each.
            failures.sort_unstable();
            failures.dedup();
        }
        Ok(failures)
    }

    async fn unlock_login(&self, key: &str, audit: &AuditEntry) -> StoreResult<()> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin().await?;
        // An attempt's rows share its time: the address rows at this key's times are the
        // addresses its attempts came from (the person's own, most often, locked by the
        // same ten tries).
        sqlx::query(
            "DELETE FROM login_failures \
             WHERE at IN (SELECT at FROM login_failures WHERE subject = $1) \
               AND (subject = $1 OR subject LIKE 'ip:%')",
        )
        .bind(key)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
