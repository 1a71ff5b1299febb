//! The audit log: written inside the transaction of the change it records.

use sqlx::{any::AnyRow, AnyPool, Row};

use super::{args::Arg, Conditions};
use crate::domain::ids::OrganizationId;
use crate::domain::{
    audit::{Actor, ActorKind, AuditEntry, AuditObject},
    Timestamp,
};
use crate::store::{AuditQuery, StoreError, StoreResult};

const COLUMNS: &str = "seq, id, organization_id, at, actor_kind, actor_id, actor_name, action, object_kind, object_id, object_name, changes";

pub(crate) async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry: &AuditEntry,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, organization_id, at, actor_kind, actor_id, actor_name, action, object_kind, object_id, object_name, changes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&entry.id)
    .bind(&entry.organization_id)
    .bind(entry.at.as_micros())
    .bind(entry.actor.kind.as_str())
    .bind(&entry.actor.id)
    .bind(&entry.actor.name)
    .bind(&entry.action)
    .bind(entry.object.kind)
    .bind(&entry.object.id)
    .bind(&entry.object.name)
    .bind(entry.changes_json().to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Object kinds are ours; an unknown one in a row means the row is not.
fn object_kind(text: &str) -> StoreResult<&'static str> {
    ["webhook", "user", "token", "source", "request"]
        .into_iter()
        .find(|k| *k == text)
        .ok_or_else(|| StoreError::Corrupt(format!("audit entry of unknown kind {text}")))
}

fn entry_from_row(row: &AnyRow) -> StoreResult<(i64, AuditEntry)> {
    let actor_kind: String = row.try_get("actor_kind")?;
    let kind: String = row.try_get("object_kind")?;
    let changes: String = row.try_get("changes")?;
    let changes: serde_json::Value = serde_json::from_str(&changes)
        .map_err(|e| StoreError::Corrupt(format!("audit changes: {e}")))?;
    Ok((
        row.try_get("seq")?,
        AuditEntry {
            id: row.try_get("id")?,
            organization_id: row.try_get("organization_id")?,
            at: Timestamp::from_micros(row.try_get("at")?),
            actor: Actor {
                kind: ActorKind::parse(&actor_kind).ok_or_else(|| {
                    StoreError::Corrupt(format!("audit actor of unknown kind {actor_kind}"))
                })?,
                id: row.try_get("actor_id")?,
                name: row.try_get("actor_name")?,
            },
            action: row.try_get("action")?,
            object: AuditObject {
                kind: object_kind(&kind)?,
                id: row.try_get("object_id")?,
                name: row.try_get("object_name")?,
            },
            changes: AuditEntry::changes_from_json(&changes),
        },
    ))
}

pub(crate) async fn list(
    reader: &AnyPool,
    organization_id: &OrganizationId,
    q: &AuditQuery,
) -> StoreResult<Vec<(i64, AuditEntry)>> {
    let mut conditions = Conditions::default();
    if let Some(actor) = &q.actor {
        conditions.push("(actor_id = ? OR actor_name = ?)", Arg::from(actor.clone()));
    }
    if let Some(object) = &q.object {
        conditions.push("object_id = ?", Arg::from(object.clone()));
    }
    if let Some(action) = &q.action {
        conditions.push("action = ?", Arg::from(action.clone()));
    }
    if let Some(t) = q.since {
        conditions.push("at >= ?", Arg::from(t.as_micros()));
    }
    if let Some(t) = q.until {
        conditions.push("at < ?", Arg::from(t.as_micros()));
    }
    if let Some(seq) = q.before_seq {
        conditions.push("seq < ?", Arg::from(seq));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE organization_id = $1{} ORDER BY seq DESC LIMIT {}",
        conditions.sql(2),
        q.limit
    );
    let rows = conditions
        .bind(sqlx::query(&sql).bind(organization_id))
        .fetch_all(reader)
        .await?;
    rows.iter().map(entry_from_row).collect()
}

pub(crate) async fn one(
    reader: &AnyPool,
    organization_id: &OrganizationId,
    id: &str,
) -> StoreResult<Option<AuditEntry>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE organization_id = $1 AND id = $2"
    ))
    .bind(organization_id)
    .bind(id)
    .fetch_optional(reader)
    .await?;
    Ok(row
        .as_ref()
        .map(entry_from_row)
        .transpose()?
        .map(|(_, e)| e))
}
