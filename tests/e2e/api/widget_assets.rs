//! The widget's budget (everything it loads ≤ 20 KB gzipped) and how
//! `/widget.js` is served: ETag, revalidation, compression, cross-origin.

use crate::harness::TestServer;
use mychat::web::Assets;
use mychat::web::assets;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH,
};

const BUDGET: usize = 20 * 1024;

#[test]
fn everything_the_widget_loads_fits_in_20_kb_gzipped() {
    let files: Vec<String> = Assets::iter()
        .filter(|p| p.starts_with("widget/"))
        .map(|p| p.into_owned())
        .collect();
    assert!(
        files.iter().any(|p| p == "widget/widget.js"),
        "the widget is embedded: {files:?}"
    );
    let mut total = 0;
    for path in &files {
        let asset = assets::get(path).expect("embedded");
        // Files that are not compressed are sent as they are.
        let size = if asset.gzip.is_empty() {
            asset.raw.len()
        } else {
            asset.gzip.len()
        };
        println!("{path}: {} bytes, {size} gzipped", asset.raw.len());
        total += size;
    }
    println!("widget total: {total} bytes gzipped (budget {BUDGET})");
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
    let asset = assets::get("widget/widget.js").unwrap();

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
    let asset = assets::get("widget/widget.js").unwrap();

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
    let asset = assets::get("widget/widget.js").unwrap();

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
