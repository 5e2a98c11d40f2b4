//! What the widget costs the customer's page, measured in a real browser
//! with its Performance API: the bytes each widget file took, long tasks,
//! layout shifts and (through the DevTools protocol) main-thread time. A
//! visitor who never opens the chat loads only the loader and its words;
//! the panel comes on the first opening and, its URL naming its content,
//! from the browser's cache on the next page. Bytes are asserted; times are
//! printed, never asserted.

use crate::harness::TestServer;
use crate::harness::browser::{Browser, ROOT, chat_only, click_in_widget, shown};
use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

/// Observers set before the widget's tag: every layout shift and long task
/// of the page, kept for the test to read.
const OBSERVE: &str = r#"<script>
  window.__shifts = []; window.__long = [];
  new PerformanceObserver((l) => __shifts.push(...l.getEntries().map((e) => ({ value: e.value, input: e.hadRecentInput }))))
    .observe({ type: 'layout-shift', buffered: true });
  new PerformanceObserver((l) => __long.push(...l.getEntries().map((e) => e.duration)))
    .observe({ type: 'longtask', buffered: true });
</script>"#;

/// Script: the widget server's files as the page loaded them, by path:
/// [bytes over the wire (0 from the cache), encoded body bytes].
fn loaded(base: &str) -> String {
    format!(
        "const out = {{}}; for (const e of performance.getEntriesByType('resource')) \
         if (e.name.startsWith({base:?})) out[new URL(e.name).pathname] = [e.transferSize, e.encodedBodySize]; \
         return out;"
    )
}

/// One DevTools command through chromedriver.
#[derive(Debug)]
struct Cdp(&'static str);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({"cmd": self.0, "params": {}}).to_string();
        (Method::POST, Some(body))
    }
}

/// The tab's main-thread figures so far, in milliseconds: script
/// evaluation and all tasks.
async fn main_thread(browser: &Browser) -> (f64, f64) {
    let v = browser
        .client
        .issue_cmd(Cdp("Performance.getMetrics"))
        .await
        .expect("DevTools metrics");
    let metric = |name: &str| {
        v["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == name))
            .and_then(|m| m["value"].as_f64())
            .unwrap_or(0.0)
            * 1000.0
    };
    (metric("ScriptDuration"), metric("TaskDuration"))
}

fn size(files: &Value, path: &str) -> (u64, u64) {
    let f = &files[path];
    (f[0].as_u64().unwrap_or(0), f[1].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn the_first_load_is_the_small_loader_and_the_panel_comes_on_opening() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = super::widget::site(&server, &owner, chat_only(), OBSERVE).await;
    let base = server.base.clone();

    // The same page without the widget, for comparison.
    let bare = crate::harness::browser::host_site(format!(
        "<!doctype html><html><head><title>Host shop</title>{OBSERVE}</head><body><p>Our products</p></body></html>"
    ))
    .await;
    let browser = Browser::start().await;
    browser
        .client
        .issue_cmd(Cdp("Performance.enable"))
        .await
        .expect("DevTools performance domain");
    // The counters run for the tab's life: a page's share is a difference.
    let start = main_thread(&browser).await;
    browser.goto(&bare).await;
    let after_bare = main_thread(&browser).await;
    let (bare_script, bare_tasks) = (after_bare.0 - start.0, after_bare.1 - start.1);

    // A new visitor who does not open the chat.
    browser.goto(&site).await;
    browser.wait_for("the launcher", &shown(".launcher")).await;
    browser
        .wait_for(
            "an idle moment after the launcher",
            "if (!window.__idle) requestIdleCallback(() => (window.__idle = true)); return window.__idle",
        )
        .await;
    let files = browser.js(&loaded(&base)).await;
    let now = main_thread(&browser).await;
    let (script, tasks) = (now.0 - after_bare.0, now.1 - after_bare.1);
    let long: Vec<f64> = serde_json::from_value(browser.js("return __long").await).unwrap();
    let (loader_wire, loader) = size(&files, "/widget.js");
    let words_path = files
        .as_object()
        .unwrap()
        .keys()
        .find(|p| p.starts_with("/widget/words/"))
        .cloned()
        .expect("the words of the visitor's language");
    let (_, words) = size(&files, &words_path);
    println!("first load, chat not opened: {files}");
    println!(
        "loader {loader} B + words {words} B (on the wire {loader_wire} B); \
         main thread: script {script:.1} ms, tasks {tasks:.1} ms (without the widget: {bare_script:.1} / {bare_tasks:.1} ms); \
         long tasks {long:?}"
    );
    assert!(
        loader > 0 && loader <= 6 * 1024,
        "the loader took {loader} bytes"
    );
    assert!(
        files.get("/widget/panel.js").is_none(),
        "the panel is not fetched for a visitor who did not open the chat: {files}"
    );
    assert_eq!(
        browser
            .js(&format!("return !!{ROOT}.querySelector('.panel')"))
            .await,
        json!(false)
    );

    // Opening the chat brings the panel.
    click_in_widget(&browser, ".launcher").await;
    browser.wait_for("the open panel", &shown(".panel")).await;
    let files = browser.js(&loaded(&base)).await;
    let (_, panel) = size(&files, "/widget/panel.js");
    let total = loader + words + panel;
    println!("after opening: panel {panel} B; loader + words + panel = {total} B");
    assert!(panel > 0, "the panel came with the opening: {files}");
    assert!(
        total <= 20 * 1024,
        "a visitor who chats loads {total} bytes"
    );

    // Nothing on the page moved without the visitor doing it.
    let shifts = browser.js("return __shifts.filter((s) => !s.input)").await;
    assert_eq!(shifts, json!([]), "layout shifts without input");

    // The next page: the panel (open on the last page) comes from the cache.
    browser.goto(&site).await;
    browser.wait_for("the panel again", &shown(".panel")).await;
    let files = browser.js(&loaded(&base)).await;
    println!("next page: {files}");
    let (wire, body) = size(&files, "/widget/panel.js");
    assert!(
        body > 0 && wire == 0,
        "the panel came from the browser's cache: {files}"
    );
    let (wire, _) = size(&files, &words_path);
    assert_eq!(wire, 0, "the words came from the browser's cache: {files}");
    browser.close().await;
}
