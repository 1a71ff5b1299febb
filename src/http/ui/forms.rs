//! HTML form bodies (`application/x-www-form-urlencoded`).

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
};

use crate::http::error::ApiError;

/// The fields of a submitted form, in order. Field names are the API's (`urls[0].url`),
/// so a repeated or indexed name is kept as sent.
pub struct FormBody(pub Vec<(String, String)>);

impl FormBody {
    /// The first value of a field; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        Ok(FormBody(
            url::form_urlencoded::parse(&bytes).into_owned().collect(),
        ))
    }
}
