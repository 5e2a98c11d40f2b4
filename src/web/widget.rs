//! `/widget.js` (the visitor widget's loader), the widget's panel and
//! words, and `/embed.js` (the member embed): hand-written scripts from
//! `assets/` that customers' sites load cross-origin.
//!
//! The loader is what every page of a customer's site pays for, so it is
//! small: the launcher, its badge and the `MyChat` queue. The panel (the
//! conversation) and the words of the visitor's language come when the
//! chat is opened, or when the browser is idle for a visitor who has a
//! conversation. Their URLs carry their content's hash, written into the
//! loader as it is served, so they are cached for a year.

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

use super::assets::{self, Asset, Caching};
use crate::error::AppError;
use crate::state::AppState;

/// The loader's source inside `assets/`: it names the panel and the words
/// by `{{PANEL}}` and `{{WORDS}}` (and the languages by `{{LANGS}}`),
/// filled in by [`loader`].
pub const SCRIPT: &str = "widget/widget.js";
/// The panel: everything the open chat needs.
pub const PANEL: &str = "widget/panel.js";
/// The widget's words, every language: `{"en": {key: text}, …}`.
pub const WORDS: &str = "widget/words.json";
/// The member embed's path inside `assets/`.
pub const EMBED: &str = "embed/embed.js";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/widget.js", get(|q, h| plain(loader(), q, h)))
        .route("/widget/panel.js", get(|q, h| plain(panel(), q, h)))
        .route("/widget/words/{file}", get(words_file))
        .route("/embed.js", get(|q, h| plain(assets::get(EMBED), q, h)))
}

/// The loader as it is served: compacted, with the panel's and the words'
/// versioned paths written in.
pub fn loader() -> Option<Arc<Asset>> {
    assets::derived(
        "widget/widget.js#served",
        assets::content_type(SCRIPT),
        || {
            let source = String::from_utf8(assets::get(SCRIPT)?.raw.clone()).ok()?;
            let panel = panel()?;
            let words = assets::get(WORDS)?;
            Some(
                compact(&source)
                    .replace(
                        "{{PANEL}}",
                        &format!("/widget/panel.js?v={}", panel.version),
                    )
                    .replace(
                        "{{WORDS}}",
                        &format!("/widget/words/{{}}.json?v={}", words.version),
                    )
                    .replace("{{LANGS}}", &languages().join(" "))
                    .into_bytes(),
            )
        },
    )
}

/// The panel as it is served: compacted.
pub fn panel() -> Option<Arc<Asset>> {
    assets::derived(
        "widget/panel.js#served",
        assets::content_type(PANEL),
        || {
            let source = String::from_utf8(assets::get(PANEL)?.raw.clone()).ok()?;
            Some(compact(&source).into_bytes())
        },
    )
}

/// The widget's scripts without what only their readers need: indentation,
/// blank lines, and lines that are comments (`// …`, or a `/* … */` block
/// that starts a line). Every line break stays, so the code means the same.
/// It holds for the widget's own files, in which no line of a string or a
/// template starts with `//` or `/*`.
pub fn compact(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut in_block = false;
    for line in source.lines() {
        let line = line.trim();
        if in_block {
            in_block = !line.contains("*/");
            continue;
        }
        if line.starts_with("/*") {
            in_block = !line.contains("*/");
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The languages the widget speaks.
pub fn languages() -> Vec<String> {
    assets::get(WORDS)
        .and_then(|a| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&a.raw).ok()
        })
        .map(|all| all.keys().cloned().collect())
        .unwrap_or_default()
}

/// One language's words, as the panel fetches them. Their `?v=` is the
/// version of the file all languages come from, so the loader needs one.
pub fn words(lang: &str) -> Option<Arc<Asset>> {
    let all = assets::get(WORDS)?;
    assets::derived(
        &format!("widget/words/{lang}.json"),
        "application/json",
        || {
            let all: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&all.raw).ok()?;
            serde_json::to_vec(all.get(lang)?).ok()
        },
    )
}

async fn words_file(Path(file): Path<String>, query: RawQuery, headers: HeaderMap) -> Response {
    let lang = file.strip_suffix(".json").unwrap_or("");
    let known = lang.len() == 2 && lang.bytes().all(|b| b.is_ascii_lowercase());
    let version = assets::get(WORDS).map(|a| a.version.clone());
    send(
        known.then(|| words(lang)).flatten(),
        version,
        query,
        headers,
    )
}

async fn plain(asset: Option<Arc<Asset>>, query: RawQuery, headers: HeaderMap) -> Response {
    let version = asset.as_ref().map(|a| a.version.clone());
    send(asset, version, query, headers)
}

/// The bare URL is revalidated by ETag; a URL with the current `?v=` names
/// exactly this content and is kept for a year. Any site may load these,
/// including ones that isolate themselves with COEP (hence CORS and CORP),
/// and may measure them (Timing-Allow-Origin).
fn send(
    asset: Option<Arc<Asset>>,
    version: Option<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (Some(asset), Some(version)) = (asset, version) else {
        return AppError::NotFound("file").into_response();
    };
    let versioned = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == format!("v={version}")));
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
        (
            HeaderName::from_static("timing-allow-origin"),
            HeaderValue::from_static("*"),
        ),
    ];
    assets::respond(&asset, &headers, caching, &extra)
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn compacting_drops_comment_lines_and_indentation_and_keeps_every_statement() {
        let source = "/* A header\n * of two lines */\n(() => {\n  // why\n  const a = 'http://x'; // kept: after code\n\n  /* one line */\n  const b = `\n.x{color:red}`;\n})();\n";
        assert_eq!(
            compact(source),
            "(() => {\nconst a = 'http://x'; // kept: after code\nconst b = `\n.x{color:red}`;\n})();\n"
        );
    }
}
