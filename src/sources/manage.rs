//! Creating, changing, deleting sources and rotating their credential, each with its audit
//! entry in the same transaction; shared by the API and the pages.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{
    domain::{
        audit::{self, Actor, AuditEntry, AuditObject},
        ids::{OrganizationId, SourceId},
        source::{hash_token, new_token, Source, SourceSpec},
        FieldError, Timestamp,
    },
    store::{Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid source")]
    Invalid(Vec<FieldError>),
    #[error("source {0} not found")]
    NotFound(String),
    /// The change conflicts with the stored source (a new kind).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A source with its credential, which is shown this once.
#[derive(Debug, Clone)]
pub struct WithToken {
    pub source: Source,
    pub token: String,
}

fn object(source: &Source) -> AuditObject {
    AuditObject {
        kind: "source",
        id: source.id.to_string(),
        name: source.spec.name.clone(),
    }
}

/// A source's fields as the audit log compares them (the signing secret masked, the
/// credential never).
fn view(spec: &SourceSpec) -> Map<String, Value> {
    let mut view = Map::new();
    view.insert("name".into(), Value::String(spec.name.clone()));
    view.insert("kind".into(), Value::String(spec.kind.as_str().into()));
    view.insert(
        "description".into(),
        Value::String(spec.description.clone()),
    );
    view.insert("enabled".into(), Value::Bool(spec.enabled));
    view.insert("team".into(), spec.team.clone().unwrap_or(Value::Null));
    view.insert("settings".into(), spec.settings.to_json());
    view
}

pub async fn create(
    store: &Arc<dyn Store>,
    organization_id: &OrganizationId,
    actor: &Actor,
    body: &Value,
) -> Result<WithToken, SourceError> {
    let spec = SourceSpec::parse(body, None).map_err(SourceError::Invalid)?;
    let token = new_token();
    let now = Timestamp::now();
    let source = Source {
        id: SourceId::generate(),
        organization_id: organization_id.clone(),
        spec,
        token_hash: hash_token(&token),
        created_at: now,
        updated_at: now,
    };
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "source.created",
        object(&source),
        audit::created(&view(&source.spec), audit::unmasked),
    );
    store.insert_source(&source, &entry).await?;
    super::cache::changed();
    Ok(WithToken { source, token })
}

pub async fn find(
    store: &Arc<dyn Store>,
    organization_id: &OrganizationId,
    id: &SourceId,
) -> Result<Source, SourceError> {
    store
        .source(organization_id, id)
        .await?
        .ok_or_else(|| SourceError::NotFound(id.to_string()))
}

pub async fn update(
    store: &Arc<dyn Store>,
    organization_id: &OrganizationId,
    actor: &Actor,
    id: &SourceId,
    body: &Value,
) -> Result<Source, SourceError> {
    let before = find(store, organization_id, id).await?;
    let spec = SourceSpec::parse(body, Some(&before.spec)).map_err(|errors| {
        // A new kind is no mistake in the body but a clash with what is stored.
        match errors.as_slice() {
            [only] if only.field == "kind" && only.message.starts_with("cannot change") => {
                SourceError::Conflict(format!("kind: {}", only.message))
            }
            _ => SourceError::Invalid(errors),
        }
    })?;
    let after = Source {
        spec,
        updated_at: Timestamp::now(),
        ..before.clone()
    };
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "source.updated",
        object(&after),
        audit::diff(&view(&before.spec), &view(&after.spec), audit::unmasked),
    );
    let updated = store.update_source(&after, &entry).await;
    super::cache::changed();
    if !updated? {
        return Err(SourceError::NotFound(id.to_string()));
    }
    Ok(after)
}

pub async fn delete(
    store: &Arc<dyn Store>,
    organization_id: &OrganizationId,
    actor: &Actor,
    id: &SourceId,
) -> Result<Source, SourceError> {
    let source = find(store, organization_id, id).await?;
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "source.deleted",
        object(&source),
        audit::diff(&view(&source.spec), &Map::new(), audit::unmasked),
    );
    let deleted = store.delete_source(organization_id, id, &entry).await;
    super::cache::changed();
    if !deleted? {
        return Err(SourceError::NotFound(id.to_string()));
    }
    Ok(source)
}

/// A new credential; the old one stops working at once (a tool still using it is refused,
/// and its refusals show in the receipts).
pub async fn rotate_token(
    store: &Arc<dyn Store>,
    organization_id: &OrganizationId,
    actor: &Actor,
    id: &SourceId,
) -> Result<WithToken, SourceError> {
    let before = find(store, organization_id, id).await?;
    let token = new_token();
    let source = Source {
        token_hash: hash_token(&token),
        updated_at: Timestamp::now(),
        ..before
    };
    let entry = AuditEntry::new(
        organization_id,
        actor,
        "source.token_rotated",
        object(&source),
        Vec::new(),
    );
    let rotated = store.update_source(&source, &entry).await;
    super::cache::changed();
    if !rotated? {
        return Err(SourceError::NotFound(id.to_string()));
    }
    Ok(WithToken { source, token })
}
