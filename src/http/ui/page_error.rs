//! Why a page handler stopped early, as the page that says so. Page handlers return
//! [`PageResult`] and use `?`: the person's checks (`Person::verify`, `permit`, `webhook`)
//! give a [`PageError`] already, and anything that fails with an API error becomes the error
//! page shown to the person with [`OrPage::or_page`].

use axum::response::{IntoResponse, Response};

use super::error_page;
use crate::http::{auth::Caller, error::ApiError};

/// The page to answer with instead (an error, a refusal, a stale form). Boxed: a response is
/// large, and most handlers never build one of these.
pub struct PageError(Box<Response>);

pub type PageResult = Result<Response, PageError>;

impl From<Response> for PageError {
    fn from(page: Response) -> Self {
        PageError(Box::new(page))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

pub trait OrPage<T> {
    /// The error as the page `caller` sees (with their navigation).
    fn or_page(self, caller: &Caller) -> Result<T, PageError>;
}

impl<T, E: Into<ApiError>> OrPage<T> for Result<T, E> {
    fn or_page(self, caller: &Caller) -> Result<T, PageError> {
        self.map_err(|e| error_page(caller, e.into()).into())
    }
}
