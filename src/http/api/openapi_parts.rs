//! The pieces the OpenAPI document is written with (`openapi.rs`, `openapi_sources.rs`):
//! schema references, common shapes, and one operation with the errors every
//! authenticated call can meet.

use serde_json::{json, Map, Value};

/// `{"$ref": "#/components/schemas/<name>"}`.
pub(super) fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A `type` that may also be `null`.
pub(super) fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

pub(super) fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

pub(super) fn nullable_timestamp() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

/// `{"data": <inner>}`, the envelope of every answer.
pub(super) fn data(inner: Value) -> Value {
    json!({"type": "object", "required": ["data"], "properties": {"data": inner}})
}

pub(super) fn array_of(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// A name as the parsers take it: 1 to `max` characters, something besides white space,
/// no control or text-direction characters.
pub(super) fn name(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max,
           "pattern": crate::domain::text::NAME_PATTERN})
}

/// `schema` (an object) closed to other members, as the parsers refuse unknown fields;
/// `ignored` are the read-only fields of an answer, taken back and ignored (GET → edit →
/// PUT works).
pub(super) fn closed(mut schema: Value, ignored: &[&str]) -> Value {
    schema["additionalProperties"] = Value::Bool(false);
    if let Some(properties) = schema["properties"].as_object_mut() {
        for field in ignored {
            properties.entry(*field).or_insert(json!({}));
        }
    }
    schema
}

/// A page's `cursor`: the `next_cursor` of the page before (a positive whole number).
pub(super) fn cursor_param() -> Value {
    query_param(
        "cursor",
        "`next_cursor` of the previous page.",
        json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),
    )
}

/// A JSON answer.
pub(super) fn answer(description: &str, body: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": body}}})
}

pub(super) fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string"}})
}

pub(super) fn query_param(name: &str, description: &str, kind: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": kind})
}

/// One operation. `ability` is what the caller's token or role must allow (`None`: open);
/// the errors every authenticated call can meet are added.
pub(super) struct Op {
    summary: &'static str,
    description: &'static str,
    ability: Option<&'static str>,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&'static str, Value)>,
}

impl Op {
    pub(super) fn new(summary: &'static str, ability: Option<&'static str>) -> Self {
        Self {
            summary,
            description: "",
            ability,
            parameters: Vec::new(),
            body: None,
            responses: Vec::new(),
        }
    }

    pub(super) fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    pub(super) fn param(mut self, parameter: Value) -> Self {
        self.parameters.push(parameter);
        self
    }

    pub(super) fn body(mut self, schema: Value) -> Self {
        self.body = Some(schema);
        self
    }

    pub(super) fn ok(mut self, status: &'static str, response: Value) -> Self {
        self.responses.push((status, response));
        self
    }

    pub(super) fn build(self) -> Value {
        let mut responses = Map::new();
        for (status, response) in self.responses {
            responses.insert(status.to_owned(), response);
        }
        let mut op = json!({"summary": self.summary});
        if let Some(ability) = self.ability {
            let text = if self.description.is_empty() {
                format!("Needs the `{ability}` ability.")
            } else {
                format!("{}\n\nNeeds the `{ability}` ability.", self.description)
            };
            op["description"] = Value::String(text);
            op["security"] = json!([{"bearer": []}, {"session": []}]);
            for (status, text) in [
                ("400", "Malformed JSON, an unknown query parameter or a bad value in one."),
                ("401", "No, malformed, expired or revoked token, or an ended session."),
                ("403", "The caller lacks the ability, or a cookie-authenticated write lacks its CSRF token."),
                ("404", "No such object in the caller's organization."),
                ("413", "The body is over 1 MiB."),
                ("422", "The body breaks a rule; `error_message` and `errors` name each field."),
                ("429", "Over the caller's rate limit; `Retry-After` says when to come back."),
                ("500", "An error of tocsin's own (logged)."),
                ("503", "The database cannot be reached."),
            ] {
                responses
                    .entry(status)
                    .or_insert_with(|| answer(text, schema("Error")));
            }
        } else {
            op["description"] = Value::String(self.description.to_owned());
            op["security"] = json!([]);
        }
        op["responses"] = Value::Object(responses);
        if !self.parameters.is_empty() {
            op["parameters"] = Value::Array(self.parameters);
        }
        if let Some(body) = self.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        op
    }
}
