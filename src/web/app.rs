//! The agent app at `/app`: hand-written ES modules and CSS from
//! `assets/agent/`, served with a strict Content-Security-Policy.
//!
//! The app routes with the URL hash (`/app/#/inbox/mine`), so the server
//! only ever serves files; a path without a file extension still gets the
//! shell so that a mistyped or old link lands in the app. Every file is
//! served with `Caching::Revalidate`: the modules import each other by
//! plain relative URLs, so none of them can carry a version in its URL, and
//! an ETag revalidation keeps one deploy's files together.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::AppError;
use crate::state::AppState;
use crate::web::assets::{self, Caching};

/// Where the app's files live inside `assets/`.
const ROOT: &str = "agent";

/// Nothing but the app's own files may run or style the page; user content
/// is only ever inserted as text, so nothing inline is needed either.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn routes() -> Router<AppState> {
    Router::new()
        // The shell's relative module URLs and the service worker's scope
        // both need the trailing slash.
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(index))
        .route("/app/{*path}", get(file))
}

fn security_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if !safe(&path) {
        return not_found();
    }
    let path = if path.is_empty() || path.ends_with('/') {
        "index.html".to_owned()
    } else {
        path
    };
    if assets::get(&format!("{ROOT}/{path}")).is_some() {
        return serve(&path, &headers);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        not_found()
    } else {
        serve("index.html", &headers)
    }
}

/// Only plain relative paths below the app's folder.
fn safe(path: &str) -> bool {
    !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|seg| seg != ".." && seg != ".")
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = assets::get(&format!("{ROOT}/{path}")) else {
        return not_found();
    };
    let mut extra = security_headers();
    if path == "sw.js" {
        extra.push((
            HeaderName::from_static("service-worker-allowed"),
            HeaderValue::from_static("/app/"),
        ));
    }
    assets::respond(&asset, request, Caching::Revalidate, &extra)
}

fn not_found() -> Response {
    let mut response = AppError::NotFound("file").into_response();
    for (k, v) in security_headers() {
        response.headers_mut().insert(k, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert!(safe("main.js"));
        assert!(safe("views/inbox.js"));
        assert!(!safe("../widget/widget.js"));
        assert!(!safe("views/../../Cargo.toml"));
        assert!(!safe("/etc/passwd"));
        assert!(!safe("a\\b"));
    }

    #[test]
    fn the_shell_and_its_modules_are_embedded() {
        for path in [
            "index.html",
            "main.js",
            "app.css",
            "sw.js",
            "manifest.webmanifest",
        ] {
            assert!(
                assets::get(&format!("{ROOT}/{path}")).is_some(),
                "{path} is embedded"
            );
        }
    }
}
