//! The event sources' part of the OpenAPI document (`openapi.rs` merges it in).

use serde_json::{json, Value};

use super::openapi_parts::{
    answer, array_of, closed, data, name, nullable, nullable_timestamp, path_param, schema,
    timestamp, Op,
};
use crate::domain::{
    source::{SourceKind, MASK, MAX_DESCRIPTION, MAX_LABEL, MAX_NAME, MAX_SECRET},
    text::{NO_CONTROLS_PATTERN, PLAIN_PATTERN},
};

fn source_id() -> Value {
    path_param("id", "The source's id.")
}

fn kinds() -> Vec<&'static str> {
    SourceKind::ALL.iter().map(|k| k.as_str()).collect()
}

pub(super) fn paths() -> Value {
    json!({
        "/v3/sources": {
            "get": Op::new("List sources", Some("read"))
                .describe("Each source with its ingest URL, when it last received a payload, today's counts and its newest refusal.")
                .ok("200", answer("The organization's sources.", data(array_of(schema("Source"))))).build(),
            "post": Op::new("Create a source", Some("manage-webhooks"))
                .describe("A place an alerting or incident tool posts to. The answer holds the source's credential in `token`, shown only this once.")
                .body(schema("SourceInput"))
                .ok("201", answer("The source and its credential.", data(schema("SourceWithToken")))).build(),
        },
        "/v3/sources/preview": {
            "post": Op::new("Preview a payload", Some("manage-webhooks"))
                .describe("What a payload would become for a source of this kind and these settings, for an incident the source has not seen. Nothing is stored.")
                .body(with_settings_rules(json!({"type": "object", "required": ["kind", "payload"], "properties": {
                    "kind": {"type": "string", "enum": kinds()},
                    "settings": {"type": ["object", "null"]},
                    "payload": {"description": "Any JSON: what the tool would post."}
                }})))
                .ok("200", answer("The events it would make, what it would ignore, or why it would be refused; for a generic source each expression's value.", data(schema("SourcePreview")))).build(),
        },
        "/v3/sources/{id}": {
            "get": Op::new("One source", Some("read")).param(source_id())
                .ok("200", answer("The source.", data(schema("Source")))).build(),
            "put": Op::new("Replace a source", Some("manage-webhooks")).param(source_id())
                .describe("Its kind cannot change (its URL is set up in one tool). A masked signing secret sent back keeps the stored one.")
                .body(schema("SourceInput"))
                .ok("200", answer("The source.", data(schema("Source"))))
                .ok("409", answer("The body names another kind: a source's kind cannot change.", schema("Error"))).build(),
            "delete": Op::new("Delete a source", Some("manage-webhooks")).param(source_id())
                .describe("With its incidents' states and its receipts; events it made stay.")
                .ok("204", json!({"description": "Deleted."})).build(),
        },
        "/v3/sources/{id}/rotate-token": {
            "post": Op::new("Rotate a source's credential", Some("manage-webhooks")).param(source_id())
                .describe("The old credential stops working at once.")
                .ok("200", answer("The source and its new credential, shown only this once.", data(schema("SourceWithToken")))).build(),
        },
        "/v3/sources/{id}/receipts": {
            "get": Op::new("What a source received", Some("read")).param(source_id())
                .describe("Its newest 100 payloads (each cut at 16 KiB) with what each became, newest first.")
                .ok("200", answer("The receipts.", data(array_of(schema("Receipt"))))).build(),
        },
        "/v3/sources/{id}/events": {
            "post": ingest(),
        },
    })
}

/// The ingest operation: called by a tool with the source's own credential, not a token.
fn ingest() -> Value {
    let error = |text: &str| answer(text, schema("Error"));
    json!({
        "summary": "Receive a tool's payload",
        "description": "What Alertmanager, Grafana, PagerDuty, Opsgenie, Squadcast or any JSON sender posts. The source's credential goes in `Authorization: Bearer <token>` or as the password of HTTP basic auth. An answer 202 means every event it made is stored.",
        "security": [{"source": []}],
        "parameters": [source_id()],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {}}}},
        "responses": {
            "202": answer("The events stored and what was ignored.", data(schema("IngestResult"))),
            "400": error("Not JSON."),
            "401": error("An unknown or disabled source, a wrong or missing credential (all answered alike), or a PagerDuty signature that does not hold."),
            "413": error("The body is over 1 MiB."),
            "422": error("A body this source cannot read: the message names what it expects, and which tool's body it looks like."),
            "429": error("Over the source's rate limit; `Retry-After` says when to come back."),
            "503": error("Nothing, or not all, could be stored now; send the same payload again (nothing is stored twice)."),
        }
    })
}

/// The settings each kind takes (`domain::source::SourceSettings::parse`), as `if kind is
/// …, then settings are …` rules added to `body`.
fn with_settings_rules(mut body: Value) -> Value {
    let label =
        json!({"type": ["string", "null"], "maxLength": MAX_LABEL, "pattern": NO_CONTROLS_PATTERN});
    // Expressions are a small language (`domain::source::expression`); the document states
    // the plainest of them, a path into the payload.
    let path = json!({"type": "string", "pattern": "^payload(\\.[a-z_][a-z0-9_]{0,20}){0,5}$"});
    let optional_path = json!({"type": ["string", "null"], "pattern": "^(payload(\\.[a-z_][a-z0-9_]{0,20}){0,5})?$"});
    let object = |properties: Value| json!({"type": ["object", "null"], "additionalProperties": false, "properties": properties});
    let rule = |kinds: &[&str], settings: Value| {
        json!({
            "if": {"required": ["kind"], "properties": {"kind": {"enum": kinds}}},
            "then": {"properties": {"settings": settings}}
        })
    };
    let generic = json!({"type": "object", "additionalProperties": false,
    "required": ["incident_id", "status", "message"],
    "properties": {
        "incident_id": path, "status": path, "message": path,
        "description": optional_path, "service": optional_path, "alert_source": optional_path,
        "team": optional_path, "dedupe_key": optional_path
    }});
    body["allOf"] = json!([
        rule(&["squadcast", "opsgenie"], object(json!({}))),
        rule(&["alertmanager", "grafana"], object(json!({
            "incident_per": {"type": ["string", "null"], "enum": ["group", "alert", null]},
            "service_label": label, "team_label": label
        }))),
        rule(&["pagerduty"], object(json!({
            "signing_secret": {"type": ["string", "null"], "maxLength": MAX_SECRET, "pattern": NO_CONTROLS_PATTERN, "not": {"const": MASK}}
        }))),
        {
            "if": {"required": ["kind"], "properties": {"kind": {"const": "generic"}}},
            "then": {"required": ["settings"], "properties": {"settings": generic}}
        }
    ]);
    body
}

pub(super) fn schemas() -> Value {
    let string = json!({"type": "string"});
    let team = json!({"type": ["object", "null"], "required": ["id"], "additionalProperties": false, "properties": {
        "id": name(255),
        "name": {"type": ["string", "null"], "maxLength": 255, "pattern": PLAIN_PATTERN}
    }});
    let counts = json!({"type": "object", "required": ["accepted", "ignored", "refused"], "properties": {
        "accepted": {"type": "integer"}, "ignored": {"type": "integer"}, "refused": {"type": "integer"}
    }});
    json!({
        "SourceInput": with_settings_rules(closed(json!({
            "type": "object", "required": ["name", "kind"],
            "properties": {
                "name": name(MAX_NAME),
                "kind": {"type": "string", "enum": kinds()},
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION},
                "enabled": {"type": ["boolean", "null"]},
                "team": team,
                "settings": {"type": ["object", "null"], "description": "alertmanager, grafana: `incident_per` (`group` | `alert`), `service_label`, `team_label`. pagerduty: `signing_secret`. generic: the expressions `incident_id`, `status`, `message` (required), `description`, `service`, `alert_source`, `team`, `dedupe_key`. squadcast, opsgenie: none."}
            }
        }), &[])),
        "Source": {
            "type": "object",
            "required": ["id", "name", "kind", "kind_label", "description", "enabled", "team", "settings", "url", "organization_id", "created_at", "updated_at", "last_received_at", "counts_today", "last_error"],
            "properties": {
                "id": string, "name": string,
                "kind": {"type": "string", "enum": kinds()}, "kind_label": string,
                "description": string, "enabled": {"type": "boolean"}, "team": team,
                "settings": {"type": "object"},
                "url": {"type": "string", "description": "Where the tool posts (`public_url` + `/v3/sources/{id}/events`)."},
                "organization_id": string, "created_at": timestamp(), "updated_at": timestamp(),
                "last_received_at": nullable_timestamp(),
                "counts_today": counts,
                "last_error": {"type": ["object", "null"], "required": ["at", "message"], "properties": {"at": timestamp(), "message": string}}
            }
        },
        "SourceWithToken": {
            "allOf": [schema("Source")], "required": ["token"],
            "properties": {"token": {"type": "string", "description": "The credential, shown only this once."}}
        },
        "Receipt": {
            "type": "object", "required": ["id", "received_at", "outcome", "status", "results", "event_ids", "body", "truncated"],
            "properties": {
                "id": string, "received_at": timestamp(),
                "outcome": {"type": "string", "enum": ["accepted", "ignored", "refused"]},
                "status": {"type": "integer"},
                "results": array_of(string.clone()), "event_ids": array_of(string.clone()),
                "body": string, "truncated": {"type": "boolean"}
            }
        },
        "IngestResult": {
            "type": "object", "required": ["events", "ignored"],
            "properties": {
                "events": array_of(json!({"type": "object", "required": ["id", "type", "incident_id", "deliveries", "duplicate"], "properties": {
                    "id": string, "type": string, "incident_id": string,
                    "deliveries": {"type": "integer"}, "duplicate": {"type": "boolean"}
                }})),
                "ignored": array_of(string.clone())
            }
        },
        "SourcePreview": {
            "type": "object",
            "properties": {
                "events": array_of(json!({"type": "object"})),
                "ignored": array_of(string.clone()),
                "refused": {"type": "object", "required": ["field", "message"], "properties": {"field": string, "message": string}},
                "fields": {"type": "object"},
                "note": nullable("string")
            }
        },
    })
}
