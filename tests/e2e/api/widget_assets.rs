//! The widget's budgets (the loader every page loads ≤ 6 KB gzipped;
//! everything a visitor who chats loads ≤ 20 KB) and how its files are
//! served: ETag, revalidation, compression, cross-origin, a year's caching
//! for the versioned panel and words.

use crate::harness::TestServer;
use mychat::web::assets::{self, Asset};
use mychat::web::widget;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH,
};

/// What every page of a customer's site pays for.
const LOADER_BUDGET: usize = 6 * 1024;
/// Loader, panel and one language's words: what a visitor who chats loads.
const BUDGET: usize = 20 * 1024;

fn gzipped(asset: &Asset) -> usize {
    assert!(!asset.gzip.is_empty(), "scripts and words are compressed");
    asset.gzip.len()
}

#[test]
fn the_loader_every_page_loads_fits_in_6_kb_gzipped() {
    let loader = widget::loader().expect("the loader is embedded");
    let size = gzipped(&loader);
    println!(
        "loader: {} bytes, {size} gzipped (budget {LOADER_BUDGET})",
        loader.raw.len()
    );
    assert!(
        size <= LOADER_BUDGET,
        "the loader is {size} bytes gzipped, over the {LOADER_BUDGET} byte budget"
    );
    // Its placeholders were all filled in.
    let text = String::from_utf8(loader.raw.clone()).unwrap();
    assert!(
        !text.contains("{{"),
        "an unfilled placeholder in the loader"
    );
}

#[test]
fn everything_a_visitor_who_chats_loads_fits_in_20_kb_gzipped() {
    let loader = gzipped(&widget::loader().unwrap());
    let panel = gzipped(&widget::panel().expect("the panel is embedded"));
    let langs = widget::languages();
    assert!(langs.len() >= 3, "{langs:?}");
    let words = langs
        .iter()
        .map(|l| gzipped(&widget::words(l).expect("words of every language")))
        .max()
        .unwrap();
    let total = loader + panel + words;
    println!(
        "loader {loader} + panel {panel} + words (largest language) {words} = {total} bytes gzipped (budget {BUDGET})"
    );
    assert!(
        total <= BUDGET,
        "the widget is {total} bytes gzipped, over the {BUDGET} byte budget"
    );
}

async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = server.client.get(server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request sent")
}

#[tokio::test]
async fn widget_js_has_an_etag_and_answers_304_when_unchanged() {
    let server = TestServer::start().await;
    let asset = widget::loader().unwrap();

    let r = get(&server, "/widget.js", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
    assert_eq!(etag, asset.etag);
    assert_eq!(r.headers()[CACHE_CONTROL], "public, no-cache");
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    // Any site may load it, also one isolated with COEP.
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(r.headers()["cross-origin-resource-policy"], "cross-origin");
    assert!(r.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(r.bytes().await.unwrap(), asset.raw);

    let r = get(&server, "/widget.js", &[(IF_NONE_MATCH.as_str(), &etag)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.bytes().await.unwrap().is_empty());

    let r = get(
        &server,
        "/widget.js",
        &[(IF_NONE_MATCH.as_str(), "\"something-older\"")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn widget_js_is_sent_compressed_when_the_browser_accepts_it() {
    let server = TestServer::start().await;
    let asset = widget::loader().unwrap();

    let r = get(
        &server,
        "/widget.js",
        &[(ACCEPT_ENCODING.as_str(), "gzip, deflate, br")],
    )
    .await;
    assert_eq!(r.headers()[CONTENT_ENCODING], "br");
    assert_eq!(r.bytes().await.unwrap(), asset.brotli);

    let r = get(&server, "/widget.js", &[(ACCEPT_ENCODING.as_str(), "gzip")]).await;
    assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
    let body = r.bytes().await.unwrap();
    assert_eq!(body, asset.gzip);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut raw).unwrap();
    assert_eq!(raw, asset.raw);
}

#[tokio::test]
async fn a_versioned_widget_url_is_cached_for_a_year() {
    let server = TestServer::start().await;
    let asset = widget::loader().unwrap();

    let r = get(&server, &format!("/widget.js?v={}", asset.version), &[]).await;
    assert_eq!(
        r.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    // Another version's URL must not pin this content for a year.
    let r = get(&server, "/widget.js?v=0123456789ab", &[]).await;
    assert_eq!(r.headers()[CACHE_CONTROL], "public, no-cache");
}

#[tokio::test]
async fn the_panel_and_words_the_loader_names_are_kept_for_a_year() {
    let server = TestServer::start().await;
    let loader = String::from_utf8(widget::loader().unwrap().raw.clone()).unwrap();
    let panel = widget::panel().unwrap();
    let panel_path = format!("/widget/panel.js?v={}", panel.version);
    assert!(
        loader.contains(&panel_path),
        "the loader names the panel's version"
    );
    let words_version = assets::get(widget::WORDS).unwrap().version.clone();
    assert!(loader.contains(&format!("/widget/words/{{}}.json?v={words_version}")));

    let r = get(&server, &panel_path, &[(ACCEPT_ENCODING.as_str(), "gzip")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(r.headers()["timing-allow-origin"], "*");
    assert_eq!(r.bytes().await.unwrap(), panel.gzip);

    let r = get(
        &server,
        &format!("/widget/words/pl.json?v={words_version}"),
        &[],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let pl: serde_json::Value = r.json().await.unwrap();
    assert_eq!(pl["send"], "Wyślij");
    // An older panel's URL is not pinned for a year.
    let r = get(&server, "/widget/panel.js?v=0123456789ab", &[]).await;
    assert_eq!(r.headers()[CACHE_CONTROL], "public, no-cache");
    // No such language, or not a language at all: not found, as JSON.
    for path in [
        "/widget/words/xx.json",
        "/widget/words/..%2Fwords.json",
        "/widget/words/en",
    ] {
        let r = get(&server, path, &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn the_member_embed_fits_in_25_kb_gzipped_and_loads_cross_origin() {
    let asset = assets::get("embed/embed.js").expect("the embed is embedded");
    println!(
        "embed: {} bytes, {} gzipped",
        asset.raw.len(),
        asset.gzip.len()
    );
    assert!(
        !asset.gzip.is_empty() && asset.gzip.len() <= 25 * 1024,
        "the embed is {} bytes gzipped, over 25 KB",
        asset.gzip.len()
    );
    let server = TestServer::start().await;
    let r = get(&server, "/embed.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}
