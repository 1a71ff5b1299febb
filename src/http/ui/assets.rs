//! The stylesheet, compiled into the binary and served under a name that carries a hash of
//! its content, so browsers may keep it for ever and still see every new version.

use std::sync::OnceLock;

use axum::{
    extract::Path,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/tocsin.css");
pub const CSS_ROUTE: &str = "/assets/{file}";

fn css_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let hash = hex::encode(Sha256::digest(CSS.as_bytes()));
        format!("tocsin.{}.css", &hash[..16])
    })
}

pub fn css_url() -> String {
    format!("/assets/{}", css_name())
}

pub async fn css(Path(file): Path<String>) -> Response {
    if file != css_name() {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        CSS,
    )
        .into_response()
}
