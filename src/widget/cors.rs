//! CORS for the widget routes. The widget runs on customers' sites, so its
//! calls are cross-origin. The middleware only tells browsers what they may
//! send; the Origin check in the handlers is what keeps foreign sites out,
//! which is why echoing any Origin here is safe.

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOW_METHODS: &str = "GET, POST, PATCH, OPTIONS";
const ALLOW_HEADERS: &str = "authorization, content-type";
const MAX_AGE_SECS: &str = "600";

/// Answers preflights itself (the routes define no OPTIONS handlers, so
/// this runs before method routing could answer 405) and marks every other
/// response as readable by the calling origin.
pub async fn cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(ORIGIN).cloned();
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_SECS),
        );
        allow_origin(headers, origin);
        return response;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if origin.is_some() {
        // The widget backs off on 429 and needs to read how long.
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
    allow_origin(headers, origin);
    response
}

/// The answer depends on the Origin, so caches must key on it too.
fn allow_origin(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    if let Some(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}
