//! Request extractors whose rejections are [`ApiError`]s, so every failure has our shape.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
};
use serde_json::Value;

use super::error::ApiError;
use crate::domain::json_text;

/// A JSON body of at most the router's body limit. Malformed JSON is a 400 naming the line
/// and column; typing is left to the domain parsers, which name the field.
pub struct JsonBody(pub Value);

/// A [`JsonBody`] with the text it was parsed from, for what must pass through exactly.
pub struct JsonBodyText(pub Value, pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        JsonBodyText::from_request(req, state)
            .await
            .map(|body| JsonBody(body.0))
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBodyText {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("could not read the request body: {rejection}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest(
                "request body is empty: send a JSON object".to_owned(),
            ));
        }
        let value = parse_strict(&bytes).map_err(ApiError::BadRequest)?;
        Ok(JsonBodyText(value, bytes))
    }
}

/// An optional JSON body (calls that work without one): `Null` when empty.
pub fn optional_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    match parse_strict(body).map_err(ApiError::BadRequest)? {
        value @ (Value::Object(_) | Value::Null) => Ok(value),
        other => Err(ApiError::BadRequest(format!(
            "the body must be a JSON object, or left empty; got {}",
            crate::domain::field_error::json_kind(&other)
        ))),
    }
}

/// JSON text as a value, refusing an object that names a key twice (JSON parsers disagree
/// on which one wins, so the body would not mean one thing): the error names the key and
/// where it is.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    json_text::parse_with_huge_numbers(bytes, |t| serde_json::from_slice::<Strict>(t))
        .map(|s| s.0)
        .map_err(|e| {
            let said = e.to_string();
            if said.starts_with("duplicate key") {
                format!("{said}: give each key once")
            } else if said.contains(HOLDS_NUL) {
                said
            } else {
                format!("malformed JSON: {said}")
            }
        })
}

/// A JSON value whose objects have distinct keys.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        storable(v)?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        storable(&v)?;
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            storable(&key)?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key \"{key}\""
                )));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Said of a text that holds a NUL character.
pub const HOLDS_NUL: &str =
    "holds a NUL character (\\u0000), which tocsin cannot store (PostgreSQL's text has no room for it): remove it";

/// Text tocsin can store: PostgreSQL refuses NUL in text, and a value written with others
/// (an event in an intake batch) would fail them all first. Refused at the door with a
/// 400 instead, on every backend alike.
fn storable<E: serde::de::Error>(v: &str) -> Result<(), E> {
    if v.contains('\0') {
        return Err(E::custom(format_args!("a string {HOLDS_NUL}")));
    }
    Ok(())
}

/// The query string as name/value pairs, for parameters whose errors we word ourselves.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The members of a JSON object body. A member not in `known` is a 422 naming it, unless it
/// is one of `ignored` (read-only fields of a response, sent back on GET → edit → PUT).
pub fn object_members<'a>(
    body: &'a Value,
    known: &[&str],
    ignored: &[&str],
    code: &'static str,
) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    use crate::domain::FieldError;
    let map = body
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the request body must be a JSON object".to_owned()))?;
    let unknown: Vec<FieldError> = map
        .keys()
        .filter(|k| !known.contains(&k.as_str()) && !ignored.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.clone(),
                format!("is not a known field: use {}", known.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(map)
    } else {
        Err(ApiError::Invalid(code, unknown))
    }
}

/// An optional string member (`null` counts as absent); another type is a field error.
pub fn optional_string(
    map: &serde_json::Map<String, Value>,
    field: &str,
    errors: &mut Vec<crate::domain::FieldError>,
) -> Option<String> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(crate::domain::FieldError::new(
                field,
                format!(
                    "must be a string, got {}",
                    crate::domain::field_error::json_kind(other)
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let err = parse_strict(br#"{"a": 1, "b": {"c": 1, "c": 2}}"#).unwrap_err();
        assert!(
            err.contains("duplicate key \"c\"") && err.contains("line 1"),
            "{err}"
        );
        let ok = parse_strict(br#"{"a": [1, 2.5, "x", null, true], "b": {"a": {}}}"#).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"a": {}}})
        );
        assert!(parse_strict(b"{")
            .unwrap_err()
            .starts_with("malformed JSON"));
    }
}
