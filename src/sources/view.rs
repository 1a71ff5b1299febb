//! What the API and the pages show of sources: a source, a receipt, where a tool posts,
//! and what a pasted payload would become (pure, shared so neither reaches into the other).

use serde_json::{json, Value};

use super::{kinds, translate};
use crate::{
    domain::{
        ids::SourceId,
        source::{Receipt, Source, SourceKind, SourceSettings},
        FieldError, Timestamp,
    },
    store::SourceActivity,
};

/// The address a tool posts to.
pub fn ingest_url(public_url: &str, id: &SourceId) -> String {
    format!(
        "{}/v3/sources/{id}/events",
        public_url.trim_end_matches('/')
    )
}

pub fn source_json(source: &Source, public_url: &str, activity: Option<&SourceActivity>) -> Value {
    let s = &source.spec;
    let activity = activity.cloned().unwrap_or_default();
    json!({
        "id": source.id,
        "name": s.name,
        "kind": s.kind.as_str(),
        "kind_label": s.kind.label(),
        "description": s.description,
        "enabled": s.enabled,
        "team": s.team,
        "settings": s.settings.to_json(),
        "url": ingest_url(public_url, &source.id),
        "organization_id": source.organization_id,
        "created_at": source.created_at.to_rfc3339(),
        "updated_at": source.updated_at.to_rfc3339(),
        "last_received_at": activity.last_received_at.map(|t| t.to_rfc3339()),
        "counts_today": {
            "accepted": activity.today.accepted,
            "ignored": activity.today.ignored,
            "refused": activity.today.refused,
        },
        "last_error": activity.last_error.map(|(at, text)| json!({"at": at.to_rfc3339(), "message": text})),
    })
}

pub fn receipt_json(r: &Receipt) -> Value {
    json!({
        "id": r.id,
        "received_at": r.received_at.to_rfc3339(),
        "outcome": r.outcome.as_str(),
        "status": r.status,
        "results": r.results,
        "event_ids": r.event_ids,
        "body": r.body,
        "truncated": r.truncated,
    })
}

/// The preview of `{"kind", "settings", "payload"}`, shared with the pages.
pub fn preview_json(body: &Value) -> Result<Value, Vec<FieldError>> {
    let invalid = |field: &str, message: String| vec![FieldError::new(field, message)];
    let kind_text = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    let kind = SourceKind::parse(kind_text).ok_or_else(|| {
        invalid(
            "kind",
            format!(
                "must be one of {}",
                SourceKind::ALL.map(|k| k.as_str()).join(", ")
            ),
        )
    })?;
    let settings = SourceSettings::parse(kind, body.get("settings"), None)?;
    let Some(payload) = body.get("payload") else {
        return Err(invalid(
            "payload",
            "is required: the JSON the tool posts".to_owned(),
        ));
    };
    let text = serde_json::to_vec(payload).expect("JSON values always serialize");
    let mut out = json!({});
    if let SourceSettings::Generic(mapping) = &settings {
        out["fields"] = kinds::generic::preview(payload, mapping)["fields"].clone();
    }
    match kinds::read(kind, &settings, payload, &text) {
        Err(refusal) => {
            out["refused"] = json!({"field": refusal.field, "message": refusal.message});
        }
        Ok(items) => {
            let source = Source {
                id: SourceId::from("src_preview"),
                organization_id: crate::domain::ids::OrganizationId::from("org_preview"),
                spec: crate::domain::source::SourceSpec {
                    name: "preview".into(),
                    kind,
                    description: String::new(),
                    enabled: true,
                    team: None,
                    settings,
                },
                token_hash: String::new(),
                created_at: Timestamp::now(),
                updated_at: Timestamp::now(),
            };
            let outcomes =
                translate::decide_all(&source, items, &Default::default(), Timestamp::now());
            let mut events = Vec::new();
            let mut ignored = Vec::new();
            for o in outcomes {
                match o {
                    translate::Outcome::Event(made) => events.push(made.members.body()),
                    translate::Outcome::Ignored(why) => ignored.push(why),
                }
            }
            out["events"] = Value::Array(events);
            out["ignored"] = json!(ignored);
        }
    }
    Ok(out)
}
