//! CORS for the routes the widget and the member embed call from
//! customers' sites. tower-http's `CorsLayer` answers preflights (before
//! method routing could answer 405) and marks responses as readable by the
//! calling origin. Echoing any Origin is safe: the Origin check in the
//! handlers is what keeps foreign sites out; this only tells browsers what
//! they may send.

use std::time::Duration;

use axum::http::Method;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN, RETRY_AFTER};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer of the cross-origin routes.
pub fn layer() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::OPTIONS])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        // The widget backs off on 429 and needs to read how long.
        .expose_headers([RETRY_AFTER])
        .max_age(Duration::from_secs(600))
        // The answer depends on the Origin, so caches must key on it too.
        .vary([ORIGIN])
}
