//! Request extractors whose rejections are [`ApiError`]s, so every failure has our shape.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
};
use serde_json::Value;

use super::error::ApiError;

/// A JSON body of at most the router's body limit. Malformed JSON is a 400 naming the line
/// and column; typing is left to the domain parsers, which name the field.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
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
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
    }
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
