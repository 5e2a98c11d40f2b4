//! The widget as visitors expect it, in a real browser: a focus ring that
//! can be seen on every control in both themes (an automated contrast
//! check), refusals in the visitor's language, the demo page on a phone,
//! a reply peeking out beside the closed launcher, "edited" marks, and how
//! soon the team usually replies.

use super::inbox::visitor_writes;
use crate::harness::TestServer;
use crate::harness::browser::{
    Browser, ROOT, chat_only, hidden, open_app, open_widget, press, shown, type_in_widget,
};
use crate::harness::fixtures;
use mychat::spaces::model::{RequireVisitorData, SpaceSettings, Theme};
use serde_json::json;

/// Script: the focused widget control and how its focus ring looks — the
/// outline's width, and the contrast of its colour against what is behind
/// it (WCAG's ratio; 3 is the least for a control's focus indicator).
const FOCUS_RING: &str = r#"
const root = document.querySelector('mychat-widget').shadowRoot;
const el = root.activeElement;
if (!el) return null;
const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
// The first opaque background at or above `node`.
const behind = (node) => {
  for (let n = node; n && n.nodeType === 1; n = n.parentNode instanceof ShadowRoot ? n.parentNode.host : n.parentNode) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const s = getComputedStyle(el);
const inside = parseFloat(s.outlineOffset) < 0;
const ring = rgb(s.outlineColor).slice(0, 3);
const back = behind(inside ? el : el.parentNode);
const [a, b] = [lum(ring), lum(back)].sort((x, y) => y - x);
return {
  what: el.tagName.toLowerCase() + '.' + (el.className || '') + '[' + (el.getAttribute('aria-label') || el.textContent.trim().slice(0, 20)) + ']',
  style: s.outlineStyle,
  width: parseFloat(s.outlineWidth),
  contrast: (a + 0.05) / (b + 0.05),
};
"#;

#[tokio::test]
async fn every_widget_control_shows_a_focus_ring_that_stands_out_in_both_themes() {
    let (server, owner) = TestServer::with_owner().await;
    for theme in [Theme::Light, Theme::Dark] {
        let settings = SpaceSettings {
            theme,
            ..chat_only()
        };
        let (_, site) = super::widget::site(&server, &owner, settings, "").await;
        let browser = Browser::start().await;
        open_widget(&browser, &site).await;
        // A conversation, so "End chat" is there too.
        type_in_widget(&browser, ".compose textarea", "Hello\u{E007}").await;
        browser.wait_for("the end button", &shown(".end")).await;

        // Tab through the panel (keyboard focus shows the ring) until it
        // comes round again.
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..12 {
            press(&browser, '\u{E004}').await;
            let ring = browser.js(FOCUS_RING).await;
            let what = ring["what"].as_str().unwrap_or_default().to_owned();
            if seen.contains(&what) {
                break;
            }
            assert_eq!(ring["style"], "solid", "{theme:?}: no focus ring on {ring}");
            assert!(ring["width"].as_f64().unwrap() >= 2.0, "{theme:?}: {ring}");
            assert!(
                ring["contrast"].as_f64().unwrap() >= 3.0,
                "{theme:?}: the focus ring of {what} has too little contrast: {ring}"
            );
            seen.push(what);
        }
        for control in ["end", "Close chat", "Send"] {
            assert!(
                seen.iter().any(|w| w.contains(control)),
                "{theme:?}: {control} was never focused: {seen:?}"
            );
        }
        browser.close().await;
    }
}

#[tokio::test]
async fn a_polish_visitor_reads_the_servers_refusal_in_polish() {
    let (server, owner) = TestServer::with_owner().await;
    let settings = SpaceSettings {
        locale: "pl".into(),
        require_visitor_data: RequireVisitorData::BeforeFirstMessage,
        ..chat_only()
    };
    let (_, site) = super::widget::site(&server, &owner, settings, "").await;
    let browser = Browser::start_sized(390, 844).await;
    open_widget(&browser, &site).await;
    browser
        .wait_for("the contact form", &shown("form.contact"))
        .await;
    // The browser takes it as an address; the server does not.
    type_in_widget(&browser, "form.contact input[name=email]", "ola@localhost").await;
    crate::harness::browser::click_in_widget(&browser, "form.contact button[type=submit]").await;
    let said = browser
        .wait_for(
            "the refusal",
            &format!("return {ROOT}.querySelector('form.contact .err').textContent"),
        )
        .await;
    assert_eq!(said, "Podaj poprawny adres e-mail.");
    browser.close().await;
}

#[tokio::test]
async fn the_demo_page_fits_a_phone_with_the_chat_open() {
    // The demo space allows the address the server listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::start_with(|c| {
        c.demo = true;
        c.http.listen = addr;
    })
    .await;
    let browser = Browser::start_sized(390, 844).await;
    open_widget(&browser, &server.url("/demo")).await;
    // A page wider than the phone makes the browser zoom out (the layout
    // viewport grows with it), so the width is checked against the phone's.
    let wide = browser
        .js("return Math.max(document.documentElement.scrollWidth, window.innerWidth)")
        .await;
    assert_eq!(wide, 390, "the page is wider than the phone");
    // The full-screen panel's buttons are all on the screen.
    let off = browser
        .js(&format!(
            "return [...{ROOT}.querySelectorAll('.panel button')].filter(b => b.getClientRects().length).map(b => b.getBoundingClientRect()).filter(r => r.left < 0 || r.right > 390).length"
        ))
        .await;
    assert_eq!(off, 0);
    browser.close().await;
}

#[tokio::test]
async fn a_reply_shows_beside_the_closed_launcher_and_an_edit_is_marked_for_the_visitor() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = super::widget::site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "Is the shop open?\u{E007}").await;
    super::widget::wait_message(&browser, "Is the shop open?", "sent").await;
    let thread = super::widget::the_thread(&server, &owner).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    crate::harness::browser::click_in_widget(&browser, "header .x").await;
    browser
        .wait_for("the panel closed", &hidden(".panel"))
        .await;

    // Closed panel: the reply peeks out next to the launcher.
    let id =
        fixtures::agent_message(&server, &owner.token, &thread, "Yes, until 6 pm.", false).await;
    browser
        .wait_for(
            "the preview bubble",
            &format!("const p = {ROOT}.querySelector('.peek'); return !!p && p.getClientRects().length > 0 && p.textContent.endsWith(': Yes, until 6 pm.')"),
        )
        .await;
    crate::harness::browser::click_in_widget(&browser, ".peek").await;
    browser.wait_for("the open panel", &shown(".panel")).await;
    browser.wait_for("the preview gone", &hidden(".peek")).await;

    // The agent corrects the reply: the visitor sees the new text, marked.
    server
        .patch(
            &format!("/api/v1/messages/{id}"),
            &owner.token,
            json!({"content": "Yes, until 7 pm."}),
        )
        .await
        .ok();
    browser
        .wait_for(
            "the edited reply",
            &format!(
                "const m = {ROOT}.querySelector('.msg[data-id=\"{id}\"]'); return !!m && m.querySelector('.bubble').textContent === 'Yes, until 7 pm.' && m.querySelector('.meta .ed')?.textContent === 'edited'"
            ),
        )
        .await;
    browser.close().await;
}

/// `n` visitors of the space each write once and get an answer.
async fn answered(server: &TestServer, token: &str, key: &str, n: usize) {
    for i in 0..n {
        let thread = visitor_writes(server, key, &format!("Question {i}")).await;
        fixtures::agent_message(server, token, &thread, "Answer", false).await;
    }
}

#[tokio::test]
async fn the_widget_says_how_soon_the_team_usually_replies() {
    let (server, owner) = TestServer::with_owner().await;
    // Two answered conversations say nothing yet.
    let few = fixtures::space_with(&server, &owner, "Few", &[], SpaceSettings::default()).await;
    answered(&server, &owner.token, &few.widget_key, 2).await;
    let config = server
        .get(&format!("/api/v1/widget/config?key={}", few.widget_key), "")
        .await;
    assert!(config.ok()["replyMinutes"].is_null(), "{}", config.body);

    // Three answered within seconds: "within 1 min", in the widget's header.
    let (space, site) = super::widget::site(&server, &owner, chat_only(), "").await;
    answered(&server, &owner.token, &space.widget_key, 3).await;
    let config = server
        .get(
            &format!("/api/v1/widget/config?key={}", space.widget_key),
            "",
        )
        .await;
    assert_eq!(config.ok()["replyMinutes"], 1);
    let app = Browser::start().await;
    open_app(&server, &app, &owner.token, &owner.refresh).await;
    let widget = Browser::start_sized(390, 844).await;
    open_widget(&widget, &site).await;
    widget
        .wait_for(
            "the reply time",
            &format!("return {ROOT}.querySelector('.status').textContent === 'We are online · we usually reply within 1 min'"),
        )
        .await;
    app.close().await;
    widget.close().await;
}
