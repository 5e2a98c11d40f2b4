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
use axum::extract::{Path, State};
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
/// is only ever inserted as text, so nothing inline is needed either. The
/// app talks to its own origin only: `'self'`, and the configured public
/// origin's socket scheme for browsers that do not count `wss:` as self.
pub fn csp(public_url: &str) -> String {
    let origin = |rest: &str| rest.split('/').next().unwrap_or("").to_owned();
    let socket = match (
        public_url.strip_prefix("https://"),
        public_url.strip_prefix("http://"),
    ) {
        (Some(rest), _) => format!(" wss://{}", origin(rest)),
        (_, Some(rest)) => format!(" ws://{}", origin(rest)),
        _ => String::new(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'{socket}; frame-src 'self'; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

pub fn routes() -> Router<AppState> {
    Router::new()
        // The shell's relative module URLs and the service worker's scope
        // both need the trailing slash.
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(index))
        .route("/app/{*path}", get(file))
}

fn security_headers(state: &AppState) -> Vec<(HeaderName, HeaderValue)> {
    let csp = HeaderValue::from_str(&csp(&state.config.public_url))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    vec![
        (CONTENT_SECURITY_POLICY, csp),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "index.html", &headers)
}

async fn file(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !safe(&path) {
        return not_found(&state);
    }
    let path = if path.is_empty() || path.ends_with('/') {
        "index.html".to_owned()
    } else {
        path
    };
    if assets::get(&format!("{ROOT}/{path}")).is_some() {
        return serve(&state, &path, &headers);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        not_found(&state)
    } else {
        serve(&state, "index.html", &headers)
    }
}

/// Only plain relative paths below the app's folder.
fn safe(path: &str) -> bool {
    !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|seg| seg != ".." && seg != ".")
}

fn serve(state: &AppState, path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = assets::get(&format!("{ROOT}/{path}")) else {
        return not_found(state);
    };
    let mut extra = security_headers(state);
    if path == "sw.js" {
        extra.push((
            HeaderName::from_static("service-worker-allowed"),
            HeaderValue::from_static("/app/"),
        ));
    }
    assets::respond(&asset, request, Caching::Revalidate, &extra)
}

fn not_found(state: &AppState) -> Response {
    let mut response = AppError::NotFound("file").into_response();
    for (k, v) in security_headers(state) {
        response.headers_mut().insert(k, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_may_reach_only_the_apps_own_origin() {
        assert!(csp("").contains("connect-src 'self';"));
        assert!(
            csp("https://chat.example.com/").contains("connect-src 'self' wss://chat.example.com;")
        );
        assert!(csp("http://localhost:8080").contains("connect-src 'self' ws://localhost:8080;"));
    }

    /// The keys of `const <lang> = { … };` in the app's i18n module.
    fn keys(source: &str, lang: &str) -> Vec<String> {
        let start = source
            .find(&format!("const {lang} = {{"))
            .unwrap_or_else(|| panic!("no {lang} dictionary"));
        let body = &source[start..];
        let body = &body[..body.find("\n};").expect("the dictionary ends")];
        body.lines()
            .filter_map(|l| l.trim_start().strip_prefix('\''))
            .filter_map(|l| l.split_once("':").map(|(k, _)| k.to_owned()))
            .collect()
    }

    #[test]
    fn every_language_of_the_app_has_every_key() {
        let source = include_str!("../../assets/agent/i18n.js");
        let en = keys(source, "en");
        assert!(en.len() > 300, "{}", en.len());
        for lang in ["pl", "ru"] {
            let other = keys(source, lang);
            let missing: Vec<&String> = en.iter().filter(|k| !other.contains(k)).collect();
            let extra: Vec<&String> = other.iter().filter(|k| !en.contains(k)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{lang}: missing {missing:?}, extra {extra:?}"
            );
        }
    }

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
