//! Serving the embedded files: an ETag from the content, gzip and brotli
//! versions made once on first use, long-lived caching for versioned URLs
//! (`?v=<hash>`), and revalidation for the rest.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::Assets;

/// One embedded file, ready to serve.
pub struct Asset {
    pub raw: Vec<u8>,
    pub gzip: Vec<u8>,
    pub brotli: Vec<u8>,
    /// Quoted strong ETag.
    pub etag: String,
    /// Short content hash for versioned URLs.
    pub version: String,
    pub content_type: &'static str,
}

fn cache() -> &'static Mutex<HashMap<String, Arc<Asset>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Asset>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/manifest")
        || content_type.starts_with("image/svg")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        w.write_all(data).expect("in-memory write");
    }
    out
}

/// The embedded file at `path` (relative to `assets/`), prepared once.
pub fn get(path: &str) -> Option<Arc<Asset>> {
    if let Some(a) = cache().lock().expect("asset cache").get(path) {
        return Some(a.clone());
    }
    let file = Assets::get(path)?;
    Some(remember(path, file.data.into_owned(), content_type(path)))
}

/// A file made from embedded ones (e.g. the widget's loader with its
/// panel's version written in), prepared once under `name`; `make` returns
/// None when what it is made from is missing.
pub fn derived(
    name: &str,
    content_type: &'static str,
    make: impl FnOnce() -> Option<Vec<u8>>,
) -> Option<Arc<Asset>> {
    if let Some(a) = cache().lock().expect("asset cache").get(name) {
        return Some(a.clone());
    }
    Some(remember(name, make()?, content_type))
}

fn remember(name: &str, raw: Vec<u8>, content_type: &'static str) -> Arc<Asset> {
    let digest = Sha256::digest(&raw);
    let hex = hex::encode(digest);
    let (gz, br) = if compressible(content_type) {
        (gzip(&raw), brotli(&raw))
    } else {
        (Vec::new(), Vec::new())
    };
    let asset = Arc::new(Asset {
        etag: format!("\"{}\"", &hex[..32]),
        version: hex[..12].to_owned(),
        gzip: gz,
        brotli: br,
        raw,
        content_type,
    });
    cache()
        .lock()
        .expect("asset cache")
        .insert(name.to_owned(), asset.clone());
    asset
}

/// How the response may be cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// The URL names the content (`?v=hash`): cache for a year.
    Immutable,
    /// Revalidate with the ETag every time.
    Revalidate,
}

/// Serves an embedded file with ETag, compression and caching headers.
pub fn serve(path: &str, request: &HeaderMap, caching: Caching) -> Response {
    let Some(asset) = get(path) else {
        return crate::error::AppError::NotFound("file").into_response();
    };
    respond(&asset, request, caching, &[])
}

/// Like [`serve`], with extra response headers (e.g. a CSP for HTML).
pub fn respond(
    asset: &Asset,
    request: &HeaderMap,
    caching: Caching,
    extra: &[(axum::http::HeaderName, HeaderValue)],
) -> Response {
    let cache_control = match caching {
        Caching::Immutable => "public, max-age=31536000, immutable",
        Caching::Revalidate => "public, no-cache",
    };
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, HeaderValue::from_str(&asset.etag).expect("hex etag"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    for (k, v) in extra {
        headers.insert(k.clone(), v.clone());
    }
    let matches = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    let accepts = request
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepts = |enc: &str| {
        accepts
            .split(',')
            .any(|e| e.trim().split(';').next() == Some(enc))
    };
    let body = if !asset.brotli.is_empty() && accepts("br") {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        asset.brotli.clone()
    } else if !asset.gzip.is_empty() && accepts("gzip") {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        asset.gzip.clone()
    } else {
        asset.raw.clone()
    };
    (StatusCode::OK, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_get_an_etag_and_both_compressions() {
        let a = get("demo/index.html").expect("demo page is embedded");
        assert!(a.etag.starts_with('"'));
        assert!(!a.gzip.is_empty() && a.gzip.len() < a.raw.len());
        assert!(!a.brotli.is_empty() && a.brotli.len() < a.raw.len());
    }

    #[test]
    fn etag_match_is_a_304() {
        let a = get("demo/index.html").unwrap();
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(&a.etag).unwrap());
        assert_eq!(
            respond(&a, &h, Caching::Revalidate, &[]).status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
