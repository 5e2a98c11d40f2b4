//! `/widget.js` (the visitor widget) and `/embed.js` (the member embed):
//! hand-written scripts from `assets/` that customers' sites load
//! cross-origin.

use axum::Router;
use axum::extract::RawQuery;
use axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::assets::{self, Caching};
use crate::error::AppError;
use crate::state::AppState;

/// The widget's path inside `assets/`.
pub const SCRIPT: &str = "widget/widget.js";
/// The member embed's path inside `assets/`.
pub const EMBED: &str = "embed/embed.js";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/widget.js", get(|q, h| script(SCRIPT, q, h)))
        .route("/embed.js", get(|q, h| script(EMBED, q, h)))
}

/// The snippet's URL carries no version, so it is revalidated by ETag; a
/// URL with the current `?v=` names exactly this content and is kept for a
/// year. Any site may load it, including ones that isolate themselves with
/// COEP, hence the CORS and CORP headers.
async fn script(path: &str, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let Some(asset) = assets::get(path) else {
        return AppError::NotFound("file").into_response();
    };
    let versioned = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == format!("v={}", asset.version)));
    let caching = if versioned {
        Caching::Immutable
    } else {
        Caching::Revalidate
    };
    let extra = [
        (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ),
    ];
    assets::respond(&asset, &headers, caching, &extra)
}
