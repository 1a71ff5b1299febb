//! The audit log: who changed what, when, and which fields — with credentials masked and
//! passwords and secrets never recorded.

use crate::domain::ids::OrganizationId;
use serde_json::{Map, Value};

use super::{
    token::{Ability, ApiToken},
    user::User,
    Timestamp,
};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user's or token's id; empty for the command line and the system.
    pub id: String,
    /// What people read: the user's email, the token's name.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Token,
    /// `tocsin …` on the server's machine.
    Cli,
    /// tocsin itself (the first start, a setup link used by its owner).
    System,
    /// Someone not signed in (a failed login): `id` is their address.
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Token => "token",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::User,
            Self::Token,
            Self::Cli,
            Self::System,
            Self::Anonymous,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl Actor {
    pub fn cli() -> Self {
        Self {
            kind: ActorKind::Cli,
            id: String::new(),
            name: "command line".to_owned(),
        }
    }

    /// Someone not signed in, from `address`.
    pub fn anonymous(address: std::net::IpAddr) -> Self {
        Self {
            kind: ActorKind::Anonymous,
            id: address.to_string(),
            name: "not signed in".to_owned(),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: String::new(),
            name: "tocsin".to_owned(),
        }
    }
}

/// What was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditObject {
    /// `webhook`, `user`, `token`, `source`, or `request` (what a refused call asked for).
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

/// One field's value before and after (`Null` where it did not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub organization_id: OrganizationId,
    pub at: Timestamp,
    pub actor: Actor,
    /// `webhook.created`, `user.role_changed`, `token.revoked`, …
    pub action: String,
    pub object: AuditObject,
    pub changes: Vec<Change>,
}

impl AuditEntry {
    pub fn new(
        organization_id: &OrganizationId,
        actor: &Actor,
        action: &str,
        object: AuditObject,
        changes: Vec<Change>,
    ) -> Self {
        Self {
            id: super::ids::new_id("aud"),
            organization_id: organization_id.clone(),
            at: Timestamp::now(),
            actor: actor.clone(),
            action: action.to_owned(),
            object,
            changes,
        }
    }

    /// The changes as stored and shown: `{"field": {"before": …, "after": …}}`.
    pub fn changes_json(&self) -> Value {
        let map: Map<String, Value> = self
            .changes
            .iter()
            .map(|c| {
                (
                    c.field.clone(),
                    serde_json::json!({"before": c.before, "after": c.after}),
                )
            })
            .collect();
        Value::Object(map)
    }

    pub fn changes_from_json(value: &Value) -> Vec<Change> {
        value
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(field, v)| Change {
                        field: field.clone(),
                        before: v.get("before").cloned().unwrap_or(Value::Null),
                        after: v.get("after").cloned().unwrap_or(Value::Null),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The fields that differ between two flat views of an object, in the order of `after`
/// (then fields only `before` had). `mask` is applied to both sides of a field whose
/// value must not be shown (it is still listed as changed).
pub fn diff(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    mask: impl Fn(&str, &Value) -> Value,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (field, new) in after {
        let old = before.get(field).unwrap_or(&Value::Null);
        if old != new {
            changes.push(Change {
                field: field.clone(),
                before: mask(field, old),
                after: mask(field, new),
            });
        }
    }
    for (field, old) in before {
        if !after.contains_key(field) {
            changes.push(Change {
                field: field.clone(),
                before: mask(field, old),
                after: Value::Null,
            });
        }
    }
    changes
}

/// The changes of a created object: each field from nothing to its value.
pub fn created(view: &Map<String, Value>, mask: impl Fn(&str, &Value) -> Value) -> Vec<Change> {
    diff(&Map::new(), view, mask)
}

/// Values shown as they are.
pub fn unmasked(_field: &str, value: &Value) -> Value {
    value.clone()
}

/// How the audit log names a user.
pub fn user_object(user: &User) -> AuditObject {
    AuditObject {
        kind: "user",
        id: user.id.clone(),
        name: user.email.clone(),
    }
}

/// A user's fields as the audit log compares them (never the password).
pub fn user_view(user: &User) -> Map<String, Value> {
    let mut view = Map::new();
    view.insert("email".into(), Value::String(user.email.clone()));
    view.insert("name".into(), Value::String(user.name.clone()));
    view.insert("role".into(), Value::String(user.role.as_str().into()));
    view.insert("disabled".into(), Value::Bool(user.disabled));
    view
}

pub fn webhook_object(id: &str, name: &str) -> AuditObject {
    AuditObject {
        kind: "webhook",
        id: id.to_owned(),
        name: name.to_owned(),
    }
}

/// How the audit log names a token.
pub fn token_object(token: &ApiToken) -> AuditObject {
    AuditObject {
        kind: "token",
        id: token.id.clone(),
        name: token.name.clone(),
    }
}

/// The audit entry of a token's creation: its name, abilities and expiry, never its value.
pub fn token_created(t: &ApiToken, actor: &Actor) -> AuditEntry {
    let mut changes = vec![
        Change {
            field: "name".into(),
            before: Value::Null,
            after: Value::String(t.name.clone()),
        },
        Change {
            field: "abilities".into(),
            before: Value::Null,
            after: Value::String(Ability::join(&t.abilities)),
        },
    ];
    if let Some(at) = t.expires_at {
        changes.push(Change {
            field: "expires_at".into(),
            before: Value::Null,
            after: Value::String(at.to_rfc3339()),
        });
    }
    AuditEntry::new(
        &t.organization_id,
        actor,
        "token.created",
        token_object(t),
        changes,
    )
}

/// The most of a refused request's path kept in its entry.
const MAX_REQUEST_PATH: usize = 200;

/// A refused request's object: the method and path it asked for (no query: it may hold
/// what a person typed).
pub fn request_object(method: &str, path: &str) -> AuditObject {
    let path: String = path.chars().take(MAX_REQUEST_PATH).collect();
    AuditObject {
        kind: "request",
        id: format!("{method} {path}"),
        name: String::new(),
    }
}

/// An entry for something refused (`login.failed`, `access.refused`, `csrf.refused`,
/// `token.refused`): who tried, on what, and why, in words — never what they submitted.
pub fn refused(
    organization_id: &OrganizationId,
    actor: &Actor,
    action: &str,
    object: AuditObject,
    reason: &str,
) -> AuditEntry {
    AuditEntry::new(
        organization_id,
        actor,
        action,
        object,
        vec![Change {
            field: "reason".into(),
            before: Value::Null,
            after: Value::String(reason.to_owned()),
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn diff_lists_changed_added_and_removed_fields_with_masking() {
        let before = map(json!({"name": "a", "same": 1, "secret": "old", "gone": true}));
        let after = map(json!({"name": "b", "same": 1, "secret": "new", "added": [1]}));
        let changes = diff(&before, &after, |field, v| {
            if field == "secret" && !v.is_null() {
                json!("****")
            } else {
                v.clone()
            }
        });
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["name", "secret", "added", "gone"]);
        assert_eq!(changes[1].before, json!("****"));
        assert_eq!(changes[1].after, json!("****"));
        assert_eq!(changes[2].before, Value::Null);
        assert_eq!(changes[3].after, Value::Null);
    }

    #[test]
    fn changes_round_trip_through_json() {
        let entry = AuditEntry::new(
            &"org".into(),
            &Actor::cli(),
            "user.created",
            AuditObject {
                kind: "user",
                id: "usr_1".into(),
                name: "a@b.c".into(),
            },
            vec![Change {
                field: "role".into(),
                before: Value::Null,
                after: json!("admin"),
            }],
        );
        assert_eq!(
            AuditEntry::changes_from_json(&entry.changes_json()),
            entry.changes
        );
    }
}
