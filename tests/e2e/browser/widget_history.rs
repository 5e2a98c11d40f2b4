//! The visitor's earlier conversations in the widget: after a chat ended
//! and a new one started, a reload still shows the earlier replies and
//! files, in a collapsed list to open and read.

use super::widget::{agent_says, site, wait_message};
use crate::harness::browser::{
    Browser, ROOT, chat_only, click_in_widget, open_widget, shown, widget_el,
};
use crate::harness::{TestServer, WAIT, eventually};
use serde_json::json;

/// A small valid PNG for the browser to pick.
fn png(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("receipt.png");
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 200]))
        .save(&path)
        .expect("png written");
    path
}

/// Script: whether a message with this text is shown inside `scope` (a
/// selector in the widget).
fn shows(scope: &str, text: &str) -> String {
    format!(
        "return [...({ROOT}?.querySelectorAll({scope:?} + ' .msg .bubble') || [])].some(b => b.textContent === {text:?})"
    )
}

async fn earlier_conversations_survive_a_reload(width: u32, height: u32) {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let dir = crate::harness::scratch::temp_dir();
    let browser = Browser::start_sized(width, height).await;
    open_widget(&browser, &site).await;

    // The first conversation: a photo, an answer, and the visitor ends it.
    widget_el(&browser, "input[type=file]")
        .await
        .send_keys(png(dir.path()).to_str().unwrap())
        .await
        .unwrap();
    widget_el(&browser, ".compose textarea")
        .await
        .send_keys("Where is my order?\u{E007}")
        .await
        .unwrap();
    wait_message(&browser, "Where is my order?", "sent").await;
    let first: String = eventually(WAIT, "the first thread", || async {
        let list = server.get("/api/v1/threads?view=all", &owner.token).await;
        list.ok()["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    agent_says(&server, &owner, &first, "It ships tomorrow").await;
    wait_message(&browser, "It ships tomorrow", "").await;
    click_in_widget(&browser, ".end").await;
    click_in_widget(&browser, ".end").await;
    click_in_widget(&browser, ".sys button.again").await;

    // A new conversation, then the page is loaded again.
    widget_el(&browser, ".compose textarea")
        .await
        .send_keys("One more thing\u{E007}")
        .await
        .unwrap();
    wait_message(&browser, "One more thing", "sent").await;
    browser.goto(&site).await;
    wait_message(&browser, "One more thing", "sent").await;
    assert_eq!(
        browser.js(&shows(".log", "It ships tomorrow")).await,
        json!(false),
        "the earlier conversation is not mixed into the current one"
    );

    // The earlier conversation: collapsed, named by its first words.
    browser
        .wait_for("the earlier conversations", &shown(".past > summary"))
        .await;
    let list = browser
        .js(&format!(
            "const p = {ROOT}.querySelector('.past'); return [p.open, p.querySelector('summary').textContent, \
             [...p.querySelectorAll('.pastone summary')].map(s => s.textContent.split(' · ')[1])]"
        ))
        .await;
    assert_eq!(
        list,
        json!([false, "Earlier conversations (1)", ["Where is my order?"]])
    );
    click_in_widget(&browser, ".past > summary").await;
    click_in_widget(&browser, ".pastone > summary").await;
    browser
        .wait_for("the earlier reply", &shows(".pastone", "It ships tomorrow"))
        .await;
    assert_eq!(
        browser.js(&shows(".pastone", "Where is my order?")).await,
        json!(true)
    );
    // Its photo too, fetched with the visitor's session.
    browser
        .wait_for(
            "the earlier photo",
            &format!(
                "const img = {ROOT}.querySelector('.pastone .thumb img'); \
                 return !!img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0"
            ),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn after_a_reload_the_visitor_reads_earlier_conversations_with_their_files() {
    earlier_conversations_survive_a_reload(1280, 900).await;
}

#[tokio::test]
async fn a_phone_shows_earlier_conversations_in_the_full_screen_panel() {
    earlier_conversations_survive_a_reload(390, 844).await;
}
