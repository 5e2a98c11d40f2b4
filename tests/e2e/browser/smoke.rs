//! The browser harness itself: chromium starts and runs script.
use crate::harness::browser::{Browser, host_site};

#[tokio::test]
async fn chromium_renders_a_page_and_runs_script() {
    let site = host_site("<!doctype html><title>t</title><p id=x>hello</p>".into()).await;
    let browser = Browser::start().await;
    browser.goto(&site).await;
    let text = browser
        .wait_for(
            "the paragraph",
            "return document.getElementById('x')?.textContent",
        )
        .await;
    assert_eq!(text, "hello");
    browser.close().await;
}
