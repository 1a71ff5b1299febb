//! Static files compiled into the binary, each served under a name that carries a hash of
//! its content, so browsers may keep them for ever and still see every new version.

use std::sync::OnceLock;

use axum::{
    extract::Path,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

pub const ROUTE: &str = "/assets/{file}";

struct Asset {
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        stem: "tocsin",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/tocsin.css"),
    },
    Asset {
        stem: "tocsin",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/tocsin.js"),
    },
    Asset {
        stem: "icon",
        ext: "svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("assets/icon.svg"),
    },
    // htmx 2.0.11 from the npm registry (htmx.org), Zero-Clause BSD: vendor/htmx-LICENSE.txt.
    Asset {
        stem: "htmx",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/vendor/htmx-2.0.11.min.js"),
    },
];

/// `/favicon.ico`, which browsers ask for before reading any page: the icon (an SVG, which
/// they take whatever the name says), so the first visit has no 404.
pub async fn favicon() -> Response {
    let icon = ASSETS
        .iter()
        .find(|a| a.stem == "icon")
        .expect("the icon is an asset");
    (
        [
            (header::CONTENT_TYPE, icon.content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        icon.bytes,
    )
        .into_response()
}

/// `tocsin.3f2a…9c.css` for each asset, computed once.
fn names() -> &'static Vec<String> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let hash = hex::encode(Sha256::digest(a.bytes));
                format!("{}.{}.{}", a.stem, &hash[..16], a.ext)
            })
            .collect()
    })
}

/// The URL of an asset by its stem and extension (`url("htmx", "js")`).
pub fn url(stem: &str, ext: &str) -> String {
    let i = ASSETS
        .iter()
        .position(|a| a.stem == stem && a.ext == ext)
        .expect("a known asset");
    format!("/assets/{}", names()[i])
}

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(i) = names().iter().position(|n| *n == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, ASSETS[i].content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        ASSETS[i].bytes,
    )
        .into_response()
}
