//! The widget's built-in emoji picker, used with the keyboard alone, at
//! desktop and phone sizes.

use super::widget::{site, wait_message};
use crate::harness::TestServer;
use crate::harness::browser::{
    Browser, ROOT, chat_only, click_in_widget, hidden, open_widget, press, shown, type_in_widget,
};
use fantoccini::key::Key;
use serde_json::json;

/// Script: the focused control of the widget, by its text or label.
const FOCUSED: &str = "const a = document.querySelector('mychat-widget').shadowRoot.activeElement; \
                       return a ? (a.getAttribute('aria-label') || a.textContent) : null";

async fn emoji_from_the_keyboard(width: u32, height: u32) {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start_sized(width, height).await;
    open_widget(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "Thanks ").await;

    // The button opens the grid and puts the focus on its first emoji.
    click_in_widget(&browser, ".emb").await;
    browser.wait_for("the emoji grid", &shown(".emo")).await;
    assert_eq!(browser.js(FOCUSED).await, json!("😀"));
    assert_eq!(
        browser
            .js(&format!(
                "return {ROOT}.querySelector('.emb').getAttribute('aria-expanded')"
            ))
            .await,
        json!("true")
    );
    // Every emoji is inside the panel, none cut off at this size.
    let fits = browser
        .js(&format!(
            "const p = {ROOT}.querySelector('.panel').getBoundingClientRect(); \
             return [...{ROOT}.querySelectorAll('.emo button')].slice(0, 8).every(b => {{ const r = b.getBoundingClientRect(); \
             return r.left >= p.left && r.right <= p.right && r.width >= 24; }})"
        ))
        .await;
    assert_eq!(fits, json!(true), "the first row fits the panel");

    // Arrows move through the grid: right, right, down a row, left.
    press(&browser, Key::Right).await;
    press(&browser, Key::Right).await;
    press(&browser, Key::Down).await;
    press(&browser, Key::Left).await;
    let picked = browser.js(FOCUSED).await;
    let expected = browser
        .js(&format!(
            "return {ROOT}.querySelectorAll('.emo button')[9].textContent"
        ))
        .await;
    assert_eq!(picked, expected);
    // Enter puts it where the caret is and goes back to writing.
    press(&browser, Key::Enter).await;
    browser.wait_for("the grid closed", &hidden(".emo")).await;
    let written = browser
        .js(&format!(
            "const i = {ROOT}.querySelector('.compose textarea'); return [i.value, {ROOT}.activeElement === i]"
        ))
        .await;
    let text = format!("Thanks {}", expected.as_str().unwrap());
    assert_eq!(written, json!([text, true]));

    // Escape closes the grid, not the chat.
    click_in_widget(&browser, ".emb").await;
    browser.wait_for("the emoji grid", &shown(".emo")).await;
    press(&browser, Key::Escape).await;
    browser.wait_for("the grid closed", &hidden(".emo")).await;
    assert_eq!(browser.js(&shown(".panel")).await, json!(true));
    assert_eq!(browser.js(FOCUSED).await, json!("Emoji"));

    // And it is sent like any text.
    type_in_widget(&browser, ".compose textarea", "\u{E007}").await;
    wait_message(&browser, &text, "sent").await;
    browser.close().await;
}

#[tokio::test]
async fn an_emoji_is_picked_and_sent_with_the_keyboard_alone() {
    emoji_from_the_keyboard(1280, 900).await;
}

#[tokio::test]
async fn the_emoji_picker_fits_a_phone() {
    emoji_from_the_keyboard(390, 844).await;
}
