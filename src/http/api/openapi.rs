//! `GET /v3/openapi.json`: the JSON API described as OpenAPI 3.1. Written here beside the
//! handlers rather than derived from types, because the handlers build their answers as JSON
//! values; the suite holds it to the code instead: every route [`super::routes`] serves must
//! be described and every described one served, real answers are validated against these
//! schemas, and Squadcast's paths are compared with Squadcast's own document.

use axum::Json;
use serde_json::{json, Value};

use super::openapi_parts::{
    answer, array_of, closed, cursor_param, data, name, nullable, nullable_timestamp, path_param,
    query_param, schema, timestamp, Op,
};
use crate::domain::{
    event::MAX_PRODUCER_ID,
    event_type::EVENT_TYPES,
    webhook::{FIELDS, READ_ONLY_FIELDS},
};

pub async fn serve() -> Json<Value> {
    Json(document())
}

fn webhook_id() -> Value {
    path_param("id", "The webhook's id.")
}

fn paths() -> Value {
    let limit = json!({"type": "integer", "minimum": 1, "maximum": 200});
    let webhook = data(schema("Webhook"));
    // A saved webhook's answer may carry warnings: URLs deliveries would be refused.
    let with_warnings = |mut answer: Value| {
        answer["properties"]["warnings"] = json!({
            "type": "array",
            "description": "What was saved although it will not work now: URLs deliveries to would be refused (a literal private, loopback, … address outside delivery.allowed_networks), and mail_ids while no SMTP server is set; absent when there is nothing to say.",
            "items": {"type": "object", "required": ["field", "message"], "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}
        });
        answer
    };
    let log_filters = |op: Op| {
        op.param(query_param(
            "state",
            "pending, succeeded, failed or cancelled",
            json!({"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]}),
        ))
        .param(query_param(
            "event_type",
            "An event type (a v1 name of the four incident events too).",
            json!({"type": "string", "enum": event_input_names()}),
        ))
        .param(query_param("incident_id", "", json!({"type": "string"})))
        .param(query_param("since", "RFC 3339.", timestamp()))
        .param(query_param("until", "RFC 3339.", timestamp()))
    };
    let directory = |kind: &'static str| {
        (
            Op::new(kind, Some("read"))
                .describe("What accepted events named, and what was declared, for the filter builder.")
                .ok("200", answer("The entries.", data(array_of(schema("DirectoryEntry")))))
                .build(),
            Op::new("Declare an entry (its name)", Some("manage-webhooks"))
                .param(path_param("id", "The entry's id as events name it."))
                .body(json!({"type": "object", "required": ["name"], "additionalProperties": false,
                             "properties": {"name": name(crate::domain::directory::MAX_NAME), "id": {}, "last_seen": {}}}))
                .ok("200", answer("The entry.", data(schema("DirectoryEntry"))))
                .build(),
        )
    };
    let (services, service) = directory("Services");
    let (sources, source) = directory("Alert sources");
    let (teams, team) = directory("Teams");
    json!({
        "/healthz": {"get": Op::new("Liveness", None)
            .describe("The process is up.")
            .ok("200", answer("Up.", json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}})))
            .build()},
        "/readyz": {"get": Op::new("Readiness", None)
            .describe("The database answers.")
            .ok("200", answer("Ready.", schema("Readiness")))
            .ok("503", answer("The database cannot be reached.", schema("Readiness")))
            .build()},
        "/metrics": {"get": Op::new("Prometheus metrics", Some("read"))
            .describe("The OpenMetrics text format; also served without authentication on `metrics_listen` when set.")
            .ok("200", json!({"description": "Metrics.", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}))
            .build()},
        "/v3/openapi.json": {"get": Op::new("This document", None)
            .ok("200", answer("OpenAPI 3.1.", json!({"type": "object"})))
            .build()},
        "/v3/extensions/event-webhooks": {
            "get": Op::new("List webhooks", Some("read"))
                .describe("Oldest first.")
                .param(query_param("page-limit", "1–1000, default 100.", json!({"type": "integer", "minimum": 1, "maximum": 1000})))
                .param(query_param("offset", "Default 0.", json!({"type": "integer", "minimum": 0, "maximum": i64::MAX})))
                .ok("200", answer("A page of webhooks.", data(json!({
                    "type": "object", "required": ["result", "meta"],
                    "properties": {
                        "result": array_of(schema("WebhookListItem")),
                        "meta": {"type": "object", "required": ["total_count"], "properties": {"total_count": {"type": "integer"}}}
                    }
                }))))
                .build(),
            "post": Op::new("Create a webhook", Some("manage-webhooks"))
                .describe("The answer carries the signing `secret`, shown only here and at rotation.")
                .body(schema("WebhookInput"))
                .ok("201", answer("Created.", with_warnings(data(schema("WebhookWithSecret")))))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}": {
            "get": Op::new("Get a webhook", Some("read")).param(webhook_id())
                .ok("200", answer("The webhook.", webhook.clone())).build(),
            "put": Op::new("Replace a webhook's configuration", Some("manage-webhooks"))
                .describe("Read-only fields sent back are ignored; masked credentials sent back keep the stored value unless a URL now points elsewhere.")
                .param(webhook_id()).body(schema("WebhookInput"))
                .ok("200", answer("The webhook.", with_warnings(webhook.clone()))).build(),
            "delete": Op::new("Delete a webhook", Some("manage-webhooks")).param(webhook_id())
                .ok("204", json!({"description": "Deleted, with its pending deliveries."})).build(),
        },
        "/v3/extensions/event-webhooks/{id}/rotate-secret": {
            "post": Op::new("Rotate the signing secret", Some("manage-webhooks"))
                .describe("The body is optional. Until `previous_secret_expires_at` every delivery is signed with both secrets.")
                .param(webhook_id())
                .body(json!({"type": ["object", "null"], "properties": {"grace_period_seconds": {"type": ["integer", "null"], "minimum": 0, "maximum": 604800}}}))
                .ok("200", answer("The webhook with its new secret.", data(json!({
                    "allOf": [schema("WebhookWithSecret")],
                    "required": ["previous_secret_expires_at"],
                    "properties": {"previous_secret_expires_at": nullable_timestamp()}
                }))))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}/test": {
            "post": Op::new("Send a test", Some("manage-webhooks"))
                .describe("Sends Squadcast's sample of the webhook's first trigger (or of `event_type`) to every URL now, one attempt each; logged with `origin: test`.")
                .param(webhook_id())
                .body(json!({"type": ["object", "null"], "properties": {"event_type": {
                    "type": ["string", "null"], "enum": with_null(event_type_names()),
                    "description": "One of the webhook's triggers (422 otherwise); null or absent: its first."
                }}}))
                .ok("200", answer("Each URL's answer.", data(json!({
                    "type": "object", "required": ["event_type", "results"],
                    "properties": {"event_type": {"type": "string"}, "results": array_of(schema("TestResult"))}
                }))))
                .build(),
        },
        "/v3/extensions/event-webhooks/filters/test": {
            "post": Op::new("Test a filter", Some("read"))
                .describe("Whether `filters` match the incident (and team, and resource), and which conditions did.")
                .body(json!({"type": "object", "required": ["incident"], "properties": {
                    "filters": filters_schema(), "incident": {"type": "object"},
                    "team": {"type": ["object", "null"], "properties": {"id": nullable("string")}},
                    "resource": nullable("object")
                }}))
                .ok("200", answer("The verdict.", data(json!({
                    "type": "object", "required": ["matches", "explanation"],
                    "properties": {"matches": {"type": "boolean"}, "explanation": nullable("object")}
                }))))
                .build(),
        },
        "/v3/extensions/event-webhooks/templates": {
            "get": Op::new("Chat presets", Some("read"))
                .describe("The presets for `custom_payload_template_slug`, each with what it sends for a sample incident.")
                .ok("200", answer("The presets.", data(array_of(json!({
                    "type": "object", "required": ["slug", "name", "description", "example"],
                    "properties": {"slug": {"type": "string"}, "name": {"type": "string"},
                                   "description": {"type": "string"}, "example": {}}
                })))))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}/logs": {
            "get": log_filters(Op::new("Delivery log", Some("read")).describe("Deliveries, newest first.").param(webhook_id()))
                .param(query_param("limit", "1–200, default 50.", limit.clone()))
                .param(cursor_param())
                .ok("200", answer("A page of deliveries.", data(json!({
                    "type": "object", "required": ["result", "meta"],
                    "properties": {
                        "result": array_of(schema("Delivery")),
                        "meta": {"type": "object", "required": ["next_cursor"], "properties": {"next_cursor": nullable("string")}}
                    }
                }))))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}/logs/{delivery_id}": {
            "get": Op::new("One delivery", Some("read"))
                .describe("With the exact payload sent, the request headers and every attempt.")
                .param(webhook_id()).param(path_param("delivery_id", "The delivery's id (its `webhook-id`)."))
                .ok("200", answer("The delivery.", data(schema("DeliveryDetail"))))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}/logs/{delivery_id}/resend": {
            "post": Op::new("Resend a delivery", Some("manage-webhooks"))
                .describe("A new delivery (new `webhook-id`) of the same URL, method and payload bytes.")
                .param(webhook_id()).param(path_param("delivery_id", "The delivery to send again."))
                .ok("201", answer("The new delivery.", data(json!({
                    "type": "object", "required": ["id", "resent_from"],
                    "properties": {"id": {"type": "string"}, "resent_from": {"type": "string"}}
                }))))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}/logs/retry": {
            "post": Op::new("Retry finished deliveries in bulk", Some("manage-webhooks"))
                .describe("Every matching finished delivery is set pending again, oldest first, by a background job.")
                .param(webhook_id())
                .body(closed(json!({"type": "object", "properties": {
                    "state": {"type": "string", "enum": ["failed", "cancelled", "succeeded"]},
                    "event_type": {"type": "string", "enum": event_input_names()}, "incident_id": {"type": "string"},
                    "since": timestamp(), "until": timestamp()
                }}), &[]))
                .ok("202", answer("The job, started.", data(schema("RetryJob"))))
                .ok("409", answer("The webhook is disabled: enable it first.", schema("Error")))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}/logs/retry/{job_id}": {
            "get": Op::new("A bulk retry's progress", Some("read"))
                .param(webhook_id()).param(path_param("job_id", "The job's id."))
                .ok("200", answer("The job.", data(schema("RetryJob"))))
                .build(),
        },
        "/v3/extensions/event-webhooks/{id}/notifications": {
            "get": Op::new("Failure notifications", Some("read"))
                .describe("Newest first.")
                .param(webhook_id())
                .ok("200", answer("The notifications.", data(json!({
                    "type": "object", "required": ["result"],
                    "properties": {"result": array_of(schema("Notification"))}
                }))))
                .build(),
        },
        "/v3/events": {
            "post": Op::new("Send an event", Some("ingest"))
                .describe("Answers once the event and all its deliveries are committed. Posting the same `id` again answers the same without sending anything.")
                .body(schema("EventInput"))
                .ok("202", answer("Accepted.", data(json!({
                    "type": "object", "required": ["id", "deliveries"],
                    "properties": {"id": {"type": "string"}, "deliveries": {"type": "integer", "minimum": 0}}
                }))))
                .build(),
        },
        "/v3/incidents/{incident_id}/actions/webhook/{webhook_id}": {
            "post": Op::new("Trigger a webhook manually", Some("manage-webhooks"))
                .describe("Sends the incident's latest snapshot to the webhook now.")
                .param(path_param("incident_id", "The incident's id."))
                .param(path_param("webhook_id", "The webhook's id."))
                .ok("200", answer("The webhook.", webhook.clone()))
                .build(),
        },
        "/v3/users": {
            "get": Op::new("List people", Some("read"))
                .ok("200", answer("The organization's people.", data(array_of(schema("User"))))).build(),
            "post": Op::new("Invite a person", Some("admin"))
                .body(closed(json!({"type": "object", "required": ["email", "name"], "properties": {
                    "email": email(), "name": name(crate::domain::user::MAX_NAME),
                    "role": {"type": ["string", "null"], "enum": ["owner", "admin", "member", "viewer", null]}
                }}), &[]))
                .ok("201", answer("The person, with their setup link.", data(schema("UserWithSetupUrl"))))
                .ok("409", answer("The e-mail address is taken (in any case).", schema("Error")))
                .build(),
        },
        "/v3/users/roles": {
            "get": Op::new("Roles", Some("read"))
                .ok("200", answer("The four roles.", data(array_of(json!({
                    "type": "object", "required": ["slug", "name", "description", "abilities"],
                    "properties": {"slug": {"type": "string"}, "name": {"type": "string"},
                                   "description": {"type": "string"}, "abilities": array_of(schema("Ability"))}
                })))))
                .build(),
        },
        "/v3/users/{id}": {
            "get": Op::new("Get a person", Some("read")).param(path_param("id", "The person's id."))
                .ok("200", answer("The person.", data(schema("User")))).build(),
            "put": Op::new("Change a person", Some("admin")).param(path_param("id", "The person's id."))
                .describe("`name`, `role`, `disabled`; read-only fields sent back are ignored.")
                .body(closed(json!({"type": "object", "properties": {
                    "name": {"anyOf": [name(crate::domain::user::MAX_NAME), {"type": "null"}]},
                    "role": {"type": ["string", "null"], "enum": ["owner", "admin", "member", "viewer", null]},
                    "disabled": {"type": ["boolean", "null"]},
                    "email": {"type": ["string", "null"], "description": "Read-only: sent back, it is ignored."}
                }}), super::users::READ_ONLY))
                .ok("200", answer("The person.", data(schema("User"))))
                .ok("409", answer("The change would leave no enabled owner, or changes the e-mail address (the login: invite the new address instead).", schema("Error")))
                .build(),
            "delete": Op::new("Delete a person", Some("admin")).param(path_param("id", "The person's id."))
                .ok("204", json!({"description": "Deleted."}))
                .ok("409", answer("The last enabled owner.", schema("Error")))
                .build(),
        },
        "/v3/users/{id}/reset-password": {
            "post": Op::new("Reset a password", Some("admin"))
                .describe("Ends the password and every session; the answer carries a new setup link.")
                .param(path_param("id", "The person's id."))
                .ok("200", answer("The person.", data(schema("UserWithSetupUrl"))))
                .build(),
        },
        "/v3/users/{id}/unlock": {
            "post": Op::new("Unlock a login", Some("admin"))
                .describe("Takes back the failed logins made with the person's e-mail address, on every node (under the address and the client addresses they came from), so they may log in at once. Only owners unlock owners.")
                .param(path_param("id", "The person's id."))
                .ok("200", answer("The person.", data(schema("User"))))
                .build(),
        },
        "/v3/api-tokens": {
            "get": Op::new("List tokens", Some("admin"))
                .describe("Never their values.")
                .ok("200", answer("The organization's tokens.", data(array_of(schema("Token"))))).build(),
            "post": Op::new("Create a token", Some("admin"))
                .body(closed(json!({"type": "object", "required": ["name", "abilities"], "properties": {
                    "name": name(super::tokens::MAX_NAME),
                    "abilities": {"type": "array", "minItems": 1, "items": schema("Ability")},
                    "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "In the future; null or absent: never expires."}
                }}), &[]))
                .ok("201", answer("The token; its value in `token`, shown only this once.", data(json!({
                    "allOf": [schema("Token")], "required": ["token"],
                    "properties": {"token": {"type": "string"}}
                }))))
                .build(),
        },
        "/v3/api-tokens/{id}": {
            "delete": Op::new("Revoke a token", Some("admin")).param(path_param("id", "The token's id."))
                .ok("204", json!({"description": "Revoked on every node within 100 ms."})).build(),
        },
        "/v3/audit-logs": {
            "get": Op::new("Audit log", Some("read"))
                .describe("Newest first.")
                .param(query_param("actor", "An id, e-mail address or token name.", json!({"type": "string"})))
                .param(query_param("object", "An object's id.", json!({"type": "string"})))
                .param(query_param("action", "E.g. `webhook.updated`.", json!({"type": "string"})))
                .param(query_param("since", "RFC 3339.", timestamp()))
                .param(query_param("until", "RFC 3339.", timestamp()))
                .param(query_param("limit", "1–200, default 50.", limit))
                .param(cursor_param())
                .ok("200", answer("A page of entries.", data(json!({
                    "type": "object", "required": ["result", "meta"],
                    "properties": {
                        "result": array_of(schema("AuditEntry")),
                        "meta": {"type": "object", "required": ["next_cursor"], "properties": {"next_cursor": nullable("string")}}
                    }
                }))))
                .build(),
        },
        "/v3/audit-logs/{id}": {
            "get": Op::new("One audit entry", Some("read")).param(path_param("id", "The entry's id."))
                .ok("200", answer("The entry.", data(schema("AuditEntry")))).build(),
        },
        "/v3/services": {"get": services},
        "/v3/services/{id}": {"put": service},
        "/v3/alert-sources": {"get": sources},
        "/v3/alert-sources/{id}": {"put": source},
        "/v3/teams": {"get": teams},
        "/v3/teams/{id}": {"put": team},
    })
}

fn event_type_names() -> Vec<&'static str> {
    EVENT_TYPES.iter().map(|t| t.name).collect()
}

/// The `event_type` of the triggers a version 1 webhook may have.
fn v1_trigger_actions() -> Vec<&'static str> {
    EVENT_TYPES
        .iter()
        .filter(|t| t.v1_name.is_some())
        .map(|t| t.action)
        .collect()
}

/// `names` and `null`, for an enum that may be null.
fn with_null(names: Vec<&'static str>) -> Vec<Value> {
    names
        .into_iter()
        .map(|n| Value::String(n.to_owned()))
        .chain([Value::Null])
        .collect()
}

/// The event types whose events are about a resource (a note, a task, …).
fn resource_event_names() -> Vec<&'static str> {
    EVENT_TYPES
        .iter()
        .filter(|t| t.has_resource())
        .map(|t| t.name)
        .collect()
}

/// What intake takes as `type`: every v2 type, and the v1 names of the incident events.
fn event_input_names() -> Vec<&'static str> {
    let mut names = event_type_names();
    names.extend(EVENT_TYPES.iter().filter_map(|t| t.v1_name));
    names
}

/// A filter tree as `filter::parse` takes it.
fn filters_schema() -> Value {
    let mut schema = crate::filter::json_schema();
    schema["description"] = json!("A filter tree: {\"op\": \"and\"|\"or\", \"conditions\": [{\"op\", \"lhs\", \"rhs\"} or a nested group]}; null or {} match everything.");
    schema
}

/// An e-mail address as `domain::user::parse_email` takes it.
fn email() -> Value {
    json!({"type": "string", "maxLength": 254, "pattern": "^[^@\\s\\u0000-\\u001F\\u007F-\\u009F]+@[^@.\\s\\u0000-\\u001F\\u007F-\\u009F]+(\\.[^@.\\s\\u0000-\\u001F\\u007F-\\u009F]+)+$"})
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let non_empty = json!({"type": "string", "minLength": 1});
    let trigger = json!({
        "type": "object", "required": ["event_class", "event_type"], "additionalProperties": false,
        "properties": {
            "event_class": {"type": "string", "enum": ["incident"]},
            "event_type": {"type": "string", "enum": crate::domain::event_type::EventType::trigger_actions()}
        }
    });
    let url = json!({
        "type": "object", "required": ["url"], "additionalProperties": false,
        "properties": {
            "url": {
                "type": "string", "maxLength": crate::domain::webhook::MAX_URL_LEN,
                "description": "An absolute http or https URL naming a host; no spaces, backslashes or control characters.",
                "pattern": "^https?://[a-z][a-z0-9]{0,20}(\\.[a-z][a-z0-9]{0,20})*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?$"
            },
            "method": {"type": ["string", "null"], "enum": ["POST", "PUT", "PATCH", null]}
        }
    });
    // The configuration, as sent (create, replace) and as shown (without the read-only
    // fields); `null` means absent.
    let settings = json!({
        "name": name(crate::domain::webhook::MAX_NAME),
        "description": {"type": ["string", "null"], "maxLength": crate::domain::webhook::MAX_DESCRIPTION},
        "triggers": {"type": "array", "minItems": 1, "items": schema("WebhookTrigger")},
        "urls": {"type": "array", "minItems": 1, "maxItems": 10, "items": schema("WebhookUrl")},
        "header": {
            "type": ["object", "null"], "maxProperties": 20,
            "description": "Extra request headers; not the ones tocsin sets itself or the HTTP client manages.",
            "propertyNames": {"pattern": "^[Xx]-[A-Za-z0-9-]{1,40}$"},
            "additionalProperties": {"type": "string", "maxLength": 2048, "pattern": "^[ -~]*$"}
        },
        "filters": filters_schema(),
        "teams": {"type": ["array", "null"], "maxItems": crate::domain::webhook::MAX_TEAMS, "items": {"type": "string", "pattern": "\\S"}},
        "is_all_teams_configured": {"type": ["boolean", "null"]},
        "max_retry": {"type": ["integer", "null"], "minimum": 0, "maximum": 10},
        "timeout_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": 30},
        "rate_limit_per_second": {"type": ["integer", "null"], "minimum": 0, "maximum": 10000},
        "enabled": {"type": ["boolean", "null"]},
        "mail_ids": {"type": ["array", "null"], "maxItems": 10, "items": email()},
        "trigger_type": {"type": ["string", "null"], "enum": ["automatic", "manual", null]},
        "payload_type": {"type": ["string", "null"], "enum": ["standard", "custom", null]},
        "custom_payload": {"type": ["string", "null"], "maxLength": crate::domain::webhook::MAX_CUSTOM_PAYLOAD, "description": "A template that renders to JSON (required, or a preset, when payload_type is custom)."},
        "custom_payload_template_slug": {"type": ["string", "null"], "maxLength": crate::domain::webhook::MAX_NAME},
        "language": {"type": ["string", "null"], "maxLength": crate::domain::webhook::MAX_NAME},
        "version": {"type": ["string", "null"], "enum": ["v1", "v2", null]}
    });
    let mut shown = settings.as_object().cloned().unwrap_or_default();
    // As shown: what was stored, under whatever rules held when it was saved.
    shown.insert("filters".into(), nullable("object"));
    shown.insert("name".into(), string.clone());
    shown.insert(
        "urls".into(),
        array_of(
            json!({"type": "object", "required": ["url", "method"], "properties": {
                "url": string, "method": {"type": "string", "enum": ["POST", "PUT", "PATCH"]}
            }}),
        ),
    );
    shown.insert("mail_ids".into(), array_of(string.clone()));
    shown.insert("teams".into(), array_of(string.clone()));
    shown.insert(
        "header".into(),
        json!({"type": ["object", "null"], "additionalProperties": {"type": "string"}}),
    );
    for (field, value) in [
        ("id", string.clone()),
        ("slug", string.clone()),
        ("organization_id", string.clone()),
        ("author_id", string.clone()),
        ("author", schema("Author")),
        ("created_at", timestamp()),
        ("updated_at", timestamp()),
        ("disabled_reason", nullable("string")),
    ] {
        shown.insert(field.to_owned(), value);
    }
    // As shown, the settings are never null (defaults are filled in) but for these.
    let may_be_null = ["description", "filters", "rate_limit_per_second"];
    for field in FIELDS.iter().filter(|f| !may_be_null.contains(f)) {
        if let Some(spec) = shown.get_mut(*field) {
            if let Some(kinds) = spec["type"].as_array() {
                let kept: Vec<Value> = kinds.iter().filter(|k| *k != "null").cloned().collect();
                spec["type"] = kept.into_iter().next().unwrap_or(Value::Null);
            }
            if let Some(values) = spec["enum"].as_array() {
                let kept: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
                spec["enum"] = Value::Array(kept);
            }
        }
    }
    // Every field, read-only or configured, is always in the answer (`null` when unset) —
    // except the list's and create's extras.
    let shown_required: Vec<&str> = READ_ONLY_FIELDS
        .iter()
        .chain(FIELDS)
        .copied()
        .filter(|f| !matches!(*f, "author" | "custom_payload_template_name"))
        .collect();
    let delivery = json!({
        "id": string, "event_id": string,
        "event_type": {"type": "string", "enum": event_type_names()},
        "incident_id": string, "url": string,
        "method": {"type": "string", "enum": ["POST", "PUT", "PATCH"]},
        "state": {"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]},
        "attempts": {"type": "integer", "minimum": 0},
        "last_status": nullable("integer"), "last_error": nullable("string"),
        "next_attempt_at": nullable_timestamp(),
        "created_at": timestamp(), "updated_at": timestamp(),
        "completed_at": nullable_timestamp(),
        "origin": {"type": "string", "enum": ["event", "test", "resend"]},
        "resent_from": nullable("string")
    });
    let delivery_required: Vec<String> = delivery
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut detail = delivery.as_object().cloned().unwrap_or_default();
    detail.insert(
        "payload".into(),
        json!({"type": "string", "description": "The exact bytes sent."}),
    );
    detail.insert(
        "request_headers".into(),
        json!({"type": ["object", "null"], "additionalProperties": {"type": "string"}}),
    );
    detail.insert("attempts".into(), array_of(schema("Attempt")));
    let mut detail_required = delivery_required.clone();
    detail_required.extend(["payload".to_owned(), "request_headers".to_owned()]);
    let user = json!({
        "type": "object",
        "required": ["id", "email", "name", "role", "status", "disabled", "organization_id", "created_at", "updated_at", "last_login_at", "login_locked_until"],
        "properties": {
            "id": string, "email": string, "name": string,
            "role": {"type": "string", "enum": ["owner", "admin", "member", "viewer"]},
            "status": {"type": "string", "enum": ["active", "invited", "disabled"]},
            "disabled": {"type": "boolean"}, "organization_id": string,
            "created_at": timestamp(), "updated_at": timestamp(), "last_login_at": nullable_timestamp(),
            "login_locked_until": {
                "type": ["string", "null"], "format": "date-time",
                "description": "Until when too many failed logins refuse this e-mail address (POST …/unlock ends it); null when they do not."
            }
        }
    });
    let directory_entry = json!({
        "type": "object", "required": ["id", "name", "last_seen"],
        "properties": {"id": string, "name": nullable("string"), "last_seen": nullable_timestamp()}
    });
    json!({
        "Error": {
            "type": "object", "required": ["meta"],
            "properties": {"meta": {
                "type": "object", "required": ["status", "error_message"],
                "properties": {
                    "status": {"type": "integer"},
                    "error_code": {"type": "string"},
                    "error_message": {"type": "string"},
                    "errors": array_of(json!({
                        "type": "object", "required": ["field", "message"],
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                    }))
                }
            }}
        },
        "Ability": {"type": "string", "enum": ["read", "manage-webhooks", "ingest", "admin"]},
        "Author": {
            "type": "object", "required": ["type", "id", "name"],
            "properties": {"type": {"type": "string", "enum": ["user", "token", "cli", "system", "anonymous"]}, "id": string, "name": nullable("string")}
        },
        "WebhookTrigger": trigger,
        "WebhookUrl": url,
        "WebhookInput": closed(json!({
            "type": "object", "required": ["name", "triggers", "urls"],
            "allOf": [
                // A webhook applies to every team or to the teams it lists.
                {"anyOf": [
                    {"required": ["is_all_teams_configured"], "properties": {"is_all_teams_configured": {"const": true}}},
                    {"required": ["teams"], "properties": {"teams": {"type": "array", "minItems": 1}}}
                ]},
                // Version 1 payloads exist for the four incident events only.
                {
                    "if": {"required": ["version"], "properties": {"version": {"const": "v1"}}},
                    "then": {"properties": {"triggers": {"items": {"properties": {"event_type": {"enum": v1_trigger_actions()}}}}}}
                },
                // A custom payload is a preset or a template (the document states the
                // plainest template: a JSON object of words).
                {
                    "if": {"required": ["payload_type"], "properties": {"payload_type": {"const": "custom"}}},
                    "then": {"anyOf": [
                        {"required": ["custom_payload_template_slug"], "properties": {
                            "custom_payload_template_slug": {"enum": crate::payload::presets::PRESETS.iter().map(|p| p.slug).collect::<Vec<_>>()},
                            "custom_payload": {"type": "null"}
                        }},
                        {"required": ["custom_payload"], "properties": {
                            "custom_payload": {"type": "string", "pattern": "^\\{(\"[a-z]{1,10}\": \"[a-z]{0,10}\")?\\}$"}
                        }}
                    ]}
                }
            ],
            "description": "Unknown fields are refused by name; the read-only fields of an answer are ignored, so GET → edit → PUT works.",
            "properties": settings
        }), READ_ONLY_FIELDS),
        "Webhook": {"type": "object", "required": shown_required, "properties": Value::Object(shown)},
        "WebhookWithSecret": {
            "allOf": [schema("Webhook")], "required": ["secret"],
            "properties": {"secret": {"type": "string", "description": "Standard Webhooks signing secret (whsec_…)."}}
        },
        "WebhookListItem": {
            "allOf": [schema("Webhook")], "required": ["description", "custom_payload_template_name"],
            "properties": {"custom_payload_template_name": string}
        },
        "EventInput": {
            "type": "object", "required": ["type", "team", "incident"], "additionalProperties": false,
            "properties": {
                "id": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_PRODUCER_ID, "description": "The producer's id: an idempotency key."},
                "type": {"type": "string", "description": "A v2 event type, or a v1 name of the four incident events.", "enum": event_input_names()},
                "timestamp": nullable_timestamp(),
                "organization": {"type": ["object", "null"], "required": ["id"], "properties": {"id": string}, "description": "Absent: the caller's organization."},
                "team": {"type": "object", "required": ["id"], "properties": {"id": non_empty.clone()}},
                "incident": {
                    "type": "object", "required": ["id", "message", "status", "service", "alert_source"],
                    "description": "Squadcast's incident object; unknown fields are kept.",
                    "properties": {
                        "id": non_empty.clone(), "message": string, "status": non_empty.clone(),
                        "service": {"type": "object", "required": ["id"], "properties": {"id": non_empty.clone()}},
                        "alert_source": {"type": "object", "required": ["id"], "properties": {"id": non_empty.clone()}}
                    }
                },
                "resource": {"type": ["object", "null"], "description": "The note, task, channel, SLO violation or status page an event is about: required by those events' types, refused by the incident events'."}
            },
            "if": {"properties": {"type": {"enum": resource_event_names()}}},
            "then": {"required": ["resource"], "properties": {"resource": {"type": "object"}}},
            "else": {"properties": {"resource": {"type": "null"}}}
        },
        "Delivery": {"type": "object", "required": delivery_required, "properties": delivery},
        "DeliveryDetail": {"type": "object", "required": detail_required, "properties": Value::Object(detail)},
        "Attempt": {
            "type": "object",
            "required": ["number", "started_at", "duration_ms", "request_headers", "response_status", "response_headers", "response_body", "error"],
            "properties": {
                "number": {"type": "integer", "minimum": 1}, "started_at": timestamp(),
                "duration_ms": {"type": "integer", "minimum": 0},
                "request_headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "response_status": nullable("integer"),
                "response_headers": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                "response_body": nullable("string"), "error": nullable("string")
            }
        },
        "TestResult": {
            "type": "object",
            "required": ["delivery_id", "url", "method", "succeeded", "status", "duration_ms", "body", "error"],
            "properties": {
                "delivery_id": string, "url": string, "method": string, "succeeded": {"type": "boolean"},
                "status": nullable("integer"), "duration_ms": nullable("integer"),
                "body": nullable("string"), "error": nullable("string")
            }
        },
        "RetryJob": {
            "type": "object", "required": ["id", "state", "filters", "total", "done", "error", "created_at", "finished_at"],
            "properties": {
                "id": string,
                "state": {"type": "string", "enum": ["running", "done", "failed", "interrupted"]},
                "filters": {"type": "object"}, "total": {"type": "integer"}, "done": {"type": "integer"},
                "error": nullable("string"), "created_at": timestamp(), "finished_at": nullable_timestamp()
            }
        },
        "Notification": {
            "type": "object", "required": ["id", "delivery_id", "state", "attempts", "last_error", "next_attempt_at", "created_at", "sent_at"],
            "properties": {
                "id": string, "delivery_id": string,
                "state": {"type": "string", "enum": ["pending", "sent", "skipped"]},
                "attempts": {"type": "integer"}, "last_error": nullable("string"),
                "next_attempt_at": nullable_timestamp(), "created_at": timestamp(), "sent_at": nullable_timestamp()
            }
        },
        "User": user,
        "UserWithSetupUrl": {
            "allOf": [schema("User")], "required": ["setup_url"],
            "properties": {"setup_url": {"type": ["string", "null"], "description": "Shown once: the link that sets the password."}}
        },
        "Token": {
            "type": "object", "required": ["id", "name", "abilities", "status", "created_at", "expires_at", "last_used_at", "revoked_at", "created_by"],
            "properties": {
                "id": string, "name": string, "abilities": array_of(schema("Ability")),
                "status": {"type": "string", "enum": ["active", "expired", "revoked"]},
                "created_at": timestamp(), "expires_at": nullable_timestamp(),
                "last_used_at": nullable_timestamp(), "revoked_at": nullable_timestamp(),
                "created_by": {
                    "type": ["object", "null"], "required": ["id", "email"],
                    "description": "The person behind the token (who made it, or made the token that made it); disabling or deleting them revokes it. Null for the command line's and the first start's.",
                    "properties": {"id": string, "email": string}
                }
            }
        },
        "AuditEntry": {
            "type": "object", "required": ["id", "at", "actor", "action", "object", "changes"],
            "properties": {
                "id": string, "at": timestamp(), "actor": schema("Author"), "action": string,
                "object": {"type": "object", "required": ["type", "id", "name"], "properties": {"type": string, "id": string, "name": nullable("string")}},
                "changes": {"type": "object", "additionalProperties": {"type": "object", "properties": {"before": {}, "after": {}}}}
            }
        },
        "DirectoryEntry": directory_entry,
        "Readiness": {
            "type": "object", "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ready", "unavailable"]}, "reason": string}
        },
    })
}

/// `base` with the members of `more` added.
fn with(mut base: Value, more: Value) -> Value {
    if let (Some(base), Value::Object(more)) = (base.as_object_mut(), more) {
        base.extend(more);
    }
    base
}

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tocsin",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Outgoing webhooks for incident events. The webhook configuration API is Squadcast's (`/v3/extensions/event-webhooks`, the manual trigger); the rest is tocsin's own. Answers are `{\"data\": …}`; errors are `{\"meta\": {\"status\", \"error_code\", \"error_message\", \"errors\"}}`. No string anywhere may hold a NUL character (U+0000): PostgreSQL's text cannot store it, so such a request is refused with 400."
        },
        "paths": with(paths(), super::openapi_sources::paths()),
        "components": {
            "schemas": with(schemas(), super::openapi_sources::schemas()),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (`tocsin token create`, or the API-tokens page)."},
                "source": {"type": "http", "scheme": "bearer", "description": "An event source's own credential (shown when the source is created or its token rotated); also accepted as the password of HTTP basic auth."},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::http::auth::SESSION_COOKIE, "description": "A logged-in person's session; writes also need the page's CSRF token."}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_described_field_for_field() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let keys = |name: &str| -> std::collections::BTreeSet<String> {
            schemas[name]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        // What create and replace take: the settings, and the read-only fields of an
        // answer (ignored), nothing else.
        let taken: std::collections::BTreeSet<String> = FIELDS
            .iter()
            .chain(READ_ONLY_FIELDS)
            .map(|f| f.to_string())
            .collect();
        assert_eq!(keys("WebhookInput"), taken, "what create and replace take");
        assert_eq!(schemas["WebhookInput"]["additionalProperties"], false);
        let shown: std::collections::BTreeSet<String> = FIELDS
            .iter()
            .chain(READ_ONLY_FIELDS)
            .map(|f| f.to_string())
            .filter(|f| f != "custom_payload_template_name")
            .collect();
        assert_eq!(keys("Webhook"), shown, "what an answer shows");
    }
}
