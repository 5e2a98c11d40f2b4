//! The HTTP listener when TLS is on: HTTP-01 challenge answers under
//! `/.well-known/acme-challenge/`, and a permanent redirect to HTTPS for
//! everything else. And the HSTS header for HTTPS responses.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, HOST, LOCATION, STRICT_TRANSPORT_SECURITY};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use super::Certs;

/// One year; browsers then go straight to HTTPS.
const HSTS: &str = "max-age=31536000";

/// Adds `Strict-Transport-Security` to every HTTPS response.
pub fn hsts() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    )
}

#[derive(Clone)]
struct Redirect {
    certs: Arc<Certs>,
    https_port: u16,
}

/// The router of the HTTP listener; `https_port` is the port clients reach
/// HTTPS on (omitted from the redirect when it is 443).
pub fn redirect_router(certs: Arc<Certs>, https_port: u16) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(redirect)
        .with_state(Redirect { certs, https_port })
}

async fn challenge(State(r): State<Redirect>, Path(token): Path<String>) -> Response {
    match r.certs.http_challenge(&token).await {
        Some(key_authorization) => (
            [(CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect(State(r): State<Redirect>, request: Request<axum::body::Body>) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
        .or_else(|| request.uri().authority().cloned());
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "a Host header is required").into_response();
    };
    let port = match r.https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{}{port}{path}", host.host());
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(router: Router, uri: &str, host: &str) -> Response {
        let request = Request::get(uri)
            .header(HOST, host)
            .body(axum::body::Body::empty())
            .unwrap();
        router.oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn everything_but_challenges_redirects_to_https() {
        let certs = Arc::new(Certs::default());
        certs.add_http_challenge("tok", "tok.thumb");
        let router = redirect_router(certs.clone(), 8443);
        let r = get(router.clone(), "/app?x=1", "chat.example.com:8080").await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            r.headers()[LOCATION],
            "https://chat.example.com:8443/app?x=1"
        );

        let r = get(
            router.clone(),
            "/.well-known/acme-challenge/tok",
            "chat.example.com",
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"tok.thumb");

        let r = get(
            router,
            "/.well-known/acme-challenge/other",
            "chat.example.com",
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        let r = get(redirect_router(certs, 443), "/", "chat.example.com").await;
        assert_eq!(r.headers()[LOCATION], "https://chat.example.com/");
    }
}
