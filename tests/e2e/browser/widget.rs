//! The visitor widget in a real browser: headless Chromium driven through
//! chromedriver (WebDriver). A host page on another origin (another port)
//! embeds `/widget.js`; agents answer through the REST API and an agent
//! socket, as the agent app would.

use std::sync::{Arc, Mutex};

use crate::harness::browser::{
    Browser, ROOT, chat_only, click_in_widget, hidden, host_site, open_widget, press, shown,
    type_in_widget, widget_el, widget_site,
};
use crate::harness::fixtures::{self, agent_message};
use crate::harness::ws;
use crate::harness::{Owner, TestServer, WAIT, eventually};
use fantoccini::key::Key;
use futures_util::{SinkExt, StreamExt};
use mychat::spaces::model::{
    ChatSpace, OpeningHours, Position, RequireVisitorData, SpaceSettings, Theme,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// A page of the customer's site: hostile CSS, a marker of the globals that
/// existed before the widget, and the snippet.
pub(super) fn host_page(server: &TestServer, key: &str, head: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Host shop</title>
<style>
  * {{ font-size: 40px !important; color: red !important; line-height: 3 !important; }}
  div, button, textarea, form {{ display: block; margin: 25px !important; border: 6px solid lime !important; }}
  html {{ font-size: 5px; }}
</style>
{head}
</head><body>
<p id="probe">Our products</p>
<script>
  window.__before = Object.getOwnPropertyNames(window);
  window.__probe = JSON.stringify(document.getElementById('probe').getBoundingClientRect());
  window.__sheets = document.styleSheets.length;
</script>
<script src="{base}/widget.js" data-widget-key="{key}" async></script>
</body></html>"#,
        base = server.base,
    )
}

/// A space whose allowed domains hold a host site's origin, and that site,
/// serving the page with the snippet. Returns the space and the site's URL.
pub(super) async fn site(
    server: &TestServer,
    owner: &Owner,
    settings: SpaceSettings,
    head: &str,
) -> (ChatSpace, String) {
    widget_site(server, owner, settings, |space| {
        host_page(server, &space.widget_key, head)
    })
    .await
}

/// An agent's live socket: makes the organization's agents "online",
/// keeps what it hears and can send frames (typing) while it lives.
pub(super) struct AgentSocket {
    out: mpsc::UnboundedSender<String>,
    heard: Arc<Mutex<Vec<Value>>>,
}

pub(super) async fn agent_online(
    server: &TestServer,
    token: &str,
    space: &ChatSpace,
) -> AgentSocket {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws::agent_url(server.addr))
        .await
        .expect("agent socket");
    let auth = json!({"type": "auth", "token": token}).to_string();
    ws.send(Message::text(auth)).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"ready""#) => break,
            Some(Ok(_)) => continue,
            other => panic!("agent socket refused: {other:?}"),
        }
    }
    let join = json!({"type": "agent:join_space", "chatSpaceId": space.id}).to_string();
    ws.send(Message::text(join)).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"joined""#) => break,
            Some(Ok(_)) => continue,
            other => panic!("could not join the space: {other:?}"),
        }
    }
    let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let keep = heard.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                incoming = ws.next() => {
                    match incoming {
                        Some(Ok(Message::Text(t))) => {
                            if let Ok(frame) = serde_json::from_str(t.as_str()) {
                                keep.lock().unwrap().push(frame);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    }
                }
                frame = outgoing.recv() => {
                    let Some(frame) = frame else { break };
                    if ws.send(Message::text(frame)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    AgentSocket { out, heard }
}

impl AgentSocket {
    fn send(&self, frame: Value) {
        self.out.send(frame.to_string()).expect("agent socket open");
    }

    /// Waits until the socket has heard a frame that satisfies `pred`.
    pub(super) async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) {
        eventually(WAIT, &format!("the agent to hear {what}"), || {
            let heard = self.heard.lock().unwrap().iter().any(&pred);
            std::future::ready(heard.then_some(()))
        })
        .await;
    }
}

/// The conversation as the widget shows it: [direction, text, state].
async fn conversation(browser: &Browser) -> Vec<(String, String, String)> {
    let v = browser
        .js(&format!(
            "return [...{ROOT}.querySelectorAll('.log .msg:not(.welcome):not(.sys)')].map(m => \
             [m.classList.contains('out') ? 'out' : 'in', m.querySelector('.bubble').textContent, m.dataset.state || ''])"
        ))
        .await;
    serde_json::from_value(v).expect("rows")
}

/// Waits until the widget shows a message with this text, in this state
/// ("" for the agent's messages, which have none).
pub(super) async fn wait_message(browser: &Browser, text: &str, state: &str) {
    browser
        .wait_for(
            &format!("{text:?} shown as {state:?}"),
            &format!(
                "return [...{ROOT}.querySelectorAll('.log .msg')].some(m => \
                 m.querySelector('.bubble')?.textContent === {text:?} && (m.dataset.state || '') === {state:?})"
            ),
        )
        .await;
}

/// The one thread the visitor started, as the agents' list shows it.
pub(super) async fn the_thread(server: &TestServer, owner: &Owner) -> Value {
    eventually(WAIT, "a thread to reach the agents", || async {
        let list = server.get("/api/v1/threads?view=all", &owner.token).await;
        list.ok()["items"]
            .as_array()
            .and_then(|a| a.first())
            .cloned()
    })
    .await
}

fn contents(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect()
}

/// The owner answers over REST; returns the message id.
pub(super) async fn agent_says(
    server: &TestServer,
    owner: &Owner,
    thread: &str,
    text: &str,
) -> String {
    agent_message(server, &owner.token, thread, text, false).await
}

#[tokio::test]
async fn visitor_chats_live_with_an_agent_and_keeps_the_history_after_a_reload() {
    let (server, owner) = TestServer::with_owner().await;
    let (space, site) = site(&server, &owner, SpaceSettings::default(), "").await;
    let agent = agent_online(&server, &owner.token, &space).await;
    let browser = Browser::start().await;
    browser.goto(&site).await;
    browser.wait_for("the launcher", &shown(".launcher")).await;

    // One global, and the host page's layout and styles are as they were.
    // (`ret_nodes` is chromedriver's own, from running test scripts.)
    let new_globals = browser
        .js("return Object.getOwnPropertyNames(window)
             .filter(k => !window.__before.includes(k) && !k.startsWith('__') && k !== 'ret_nodes')")
        .await;
    assert_eq!(new_globals, json!(["MyChat"]));
    let same = browser
        .js("return JSON.stringify(document.getElementById('probe').getBoundingClientRect()) === window.__probe \
             && document.styleSheets.length === window.__sheets")
        .await;
    assert_eq!(same, json!(true));
    // Host CSS does not reach inside.
    let look = browser
        .js(&format!(
            "const l = {ROOT}.querySelector('.launcher'); const s = getComputedStyle(l); \
             return [s.width, s.height, s.marginTop, getComputedStyle(l.parentNode).fontSize]"
        ))
        .await;
    assert_eq!(look, json!(["56px", "56px", "0px", "14px"]));

    click_in_widget(&browser, ".launcher").await;
    browser.wait_for("the open panel", &shown(".panel")).await;
    browser
        .wait_for(
            "the online state",
            &format!("return {ROOT}.querySelector('.status').textContent === 'We are online'"),
        )
        .await;
    let panel = browser
        .js(&format!(
            "const p = {ROOT}.querySelector('.panel'); return [p.getAttribute('role'), \
             {ROOT}.querySelector('h2').textContent, Math.round(p.getBoundingClientRect().width), \
             {ROOT}.activeElement?.tagName]"
        ))
        .await;
    assert_eq!(panel, json!(["dialog", "Chat with us", 370, "TEXTAREA"]));

    // Enter sends; Shift+Enter is a new line.
    let input = widget_el(&browser, ".compose textarea").await;
    input.send_keys("Hello, I need help\u{E007}").await.unwrap();
    wait_message(&browser, "Hello, I need help", "sent").await;
    input.send_keys("line one").await.unwrap();
    // The agents see the visitor typing.
    agent
        .wait_for("the visitor typing", |f| {
            f["type"] == "visitor:typing" && f["isTyping"] == true
        })
        .await;
    input
        .send_keys("\u{E008}\u{E007}\u{E000}line two\u{E007}")
        .await
        .unwrap();
    wait_message(&browser, "line one\nline two", "sent").await;

    let thread = the_thread(&server, &owner).await;
    let thread_id = thread["id"].as_str().unwrap().to_owned();
    let stored = server.all_messages(&owner.token, &thread_id).await;
    assert_eq!(
        contents(&stored),
        ["Hello, I need help", "line one\nline two"]
    );

    // The agent reads: the visitor's messages say so.
    let last_visitor = stored[1]["id"].as_str().unwrap();
    server
        .post(
            &format!("/api/v1/threads/{thread_id}/read"),
            &owner.token,
            json!({"upTo": last_visitor}),
        )
        .await
        .ok();
    wait_message(&browser, "Hello, I need help", "read").await;
    wait_message(&browser, "line one\nline two", "read").await;

    // The agent types, then answers; the visitor sees both live.
    agent.send(json!({"type": "agent:typing", "threadId": thread_id, "isTyping": true}));
    browser
        .wait_for(
            "the agent typing",
            &format!(
                "const t = {ROOT}.querySelector('.typing'); return !t.hidden && t.textContent === 'Acme owner is typing…'"
            ),
        )
        .await;
    let reply = agent_says(&server, &owner, &thread_id, "Hi! Happy to help.").await;
    wait_message(&browser, "Hi! Happy to help.", "").await;
    browser.wait_for("typing to stop", &hidden(".typing")).await;

    // The open panel tells the agents the visitor read the reply.
    eventually(WAIT, "the visitor's read marker on the reply", || async {
        let t = server
            .get(&format!("/api/v1/threads/{thread_id}"), &owner.token)
            .await;
        (t.ok()["visitorRead"]["upTo"] == reply.as_str()).then_some(())
    })
    .await;
    let t = server
        .get(&format!("/api/v1/threads/{thread_id}"), &owner.token)
        .await;
    assert_eq!(t.ok()["visitorRead"]["upTo"], reply.as_str());

    // Esc closes and gives the focus back to the launcher.
    press(&browser, Key::Escape).await;
    browser
        .wait_for("the closed panel", &hidden(".panel"))
        .await;
    let focused = browser
        .js(&format!(
            "return {ROOT}.activeElement?.classList.contains('launcher')"
        ))
        .await;
    assert_eq!(focused, json!(true));

    // A reply while the panel is closed: a badge and a flashing title.
    agent_says(&server, &owner, &thread_id, "Are you still there?").await;
    browser
        .wait_for(
            "the unread badge",
            &format!("const b = {ROOT}.querySelector('.badge'); return !b.hidden && b.textContent === '1'"),
        )
        .await;
    browser
        .wait_for(
            "the title flash",
            "return document.title === '(1) New message'",
        )
        .await;

    // After a reload: the whole conversation, in order, still unread.
    browser.client.refresh().await.unwrap();
    browser
        .wait_for(
            "the badge after the reload",
            &format!("const b = {ROOT}?.querySelector('.badge'); return !!b && !b.hidden && b.textContent === '1'"),
        )
        .await;
    click_in_widget(&browser, ".launcher").await;
    wait_message(&browser, "Are you still there?", "").await;
    let rows = conversation(&browser).await;
    let rows: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(d, t, s)| (d.as_str(), t.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("out", "Hello, I need help", "read"),
            ("out", "line one\nline two", "read"),
            ("in", "Hi! Happy to help.", ""),
            ("in", "Are you still there?", ""),
        ]
    );
    browser.wait_for("the badge gone", &hidden(".badge")).await;
    assert_eq!(browser.js("return document.title").await, "Host shop");
    browser.close().await;
}

#[tokio::test]
async fn markup_from_agents_and_settings_is_shown_as_text_and_never_runs() {
    let server = TestServer::start().await;
    let owner = server.register("<i>Evil</i>", "eve@acme.test").await;
    let settings = SpaceSettings {
        title: "<u>Support</u>".into(),
        welcome_message: "<img src=x onerror=\"window.__pwned='welcome'\">Hi".into(),
        ..chat_only()
    };
    let (_, site) = site(&server, &owner, settings, "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "<b>not bold</b>\u{E007}").await;
    wait_message(&browser, "<b>not bold</b>", "sent").await;

    let thread = the_thread(&server, &owner).await;
    let thread_id = thread["id"].as_str().unwrap();
    let evil = "<img src=x onerror=\"window.__pwned='agent'\"><script>window.__pwned='script'</script><b>bold</b> &amp; more";
    agent_says(&server, &owner, thread_id, evil).await;
    wait_message(&browser, evil, "").await;

    let found = browser
        .js(&format!(
            "const r = {ROOT}; return [r.querySelectorAll('img, script, b, u, i').length, \
             r.querySelector('h2').textContent, r.querySelector('.welcome .bubble').textContent, \
             r.querySelector('.who').textContent, window.__pwned === undefined]"
        ))
        .await;
    assert_eq!(
        found,
        json!([
            0,
            "<u>Support</u>",
            "<img src=x onerror=\"window.__pwned='welcome'\">Hi",
            "<i>Evil</i> owner",
            true
        ])
    );
    browser.close().await;
}

#[tokio::test]
async fn a_site_that_is_not_allowed_gets_no_chat() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space_with(
        &server,
        &owner,
        "Shop",
        &["shop.test"],
        SpaceSettings::default(),
    )
    .await;
    let site = host_site(host_page(&server, &space.widget_key, "")).await;
    let browser = Browser::start().await;
    browser.goto(&site).await;

    // Once the config call has been answered (403), nothing is drawn.
    browser
        .wait_for(
            "the config call",
            "return performance.getEntriesByType('resource').some(e => e.name.includes('/api/v1/widget/config') && e.responseEnd > 0)",
        )
        .await;
    let widget = browser
        .js("return document.querySelector('mychat-widget') === null")
        .await;
    assert_eq!(widget, json!(true));
    let threads = server.get("/api/v1/threads?view=all", &owner.token).await;
    assert_eq!(threads.ok()["items"], json!([]));
    browser.close().await;
}

#[tokio::test]
async fn outside_opening_hours_the_offline_form_takes_a_message_to_the_agents() {
    let (server, owner) = TestServer::with_owner().await;
    let settings = SpaceSettings {
        // No range at all: never open.
        opening_hours: Some(OpeningHours {
            timezone: "UTC".into(),
            ranges: Vec::new(),
        }),
        ..SpaceSettings::default()
    };
    let (space, site) = site(&server, &owner, settings, "").await;
    let _agent = agent_online(&server, &owner.token, &space).await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;

    browser
        .wait_for("the offline form", &shown("form.offline"))
        .await;
    assert_eq!(browser.js(&hidden("form.compose")).await, json!(true));
    let status = browser
        .js(&format!(
            "return {ROOT}.querySelector('.status').textContent"
        ))
        .await;
    assert_eq!(status, "We reply by email");

    type_in_widget(&browser, "form.offline input[name=name]", "Olga").await;
    type_in_widget(
        &browser,
        "form.offline input[name=email]",
        "olga@example.test",
    )
    .await;
    type_in_widget(
        &browser,
        "form.offline textarea",
        "Please call me back tomorrow",
    )
    .await;
    click_in_widget(&browser, "form.offline button[type=submit]").await;
    browser
        .wait_for(
            "the thanks",
            &format!(
                "return [...{ROOT}.querySelectorAll('.sys')].some(n => n.textContent === 'Thank you! We will reply by email.')"
            ),
        )
        .await;
    wait_message(&browser, "Please call me back tomorrow", "sent").await;

    let thread = the_thread(&server, &owner).await;
    assert_eq!(thread["subject"], "Offline message");
    let thread_id = thread["id"].as_str().unwrap();
    let stored = server.all_messages(&owner.token, thread_id).await;
    assert_eq!(contents(&stored), ["Please call me back tomorrow"]);
    let visitor = server
        .get(
            &format!("/api/v1/visitors/{}", thread["visitorId"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    assert_eq!(visitor.ok()["email"], "olga@example.test");
    assert_eq!(visitor.ok()["displayName"], "Olga");
    browser.close().await;
}

#[tokio::test]
async fn the_offline_form_gives_way_to_the_chat_when_an_agent_comes_online() {
    let (server, owner) = TestServer::with_owner().await;
    let (space, site) = site(&server, &owner, SpaceSettings::default(), "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    browser
        .wait_for("the offline form", &shown("form.offline"))
        .await;

    // Whether the widget's socket is up yet or not, it learns of the agent
    // (in `hello` or in `agents:status`).
    let _agent = agent_online(&server, &owner.token, &space).await;
    browser.wait_for("the chat", &shown("form.compose")).await;
    assert_eq!(browser.js(&hidden("form.offline")).await, json!(true));
    let status = browser
        .js(&format!(
            "return {ROOT}.querySelector('.status').textContent"
        ))
        .await;
    assert_eq!(status, "We are online");
    browser.close().await;
}

#[tokio::test]
async fn a_phone_gets_the_full_screen_panel() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start_sized(390, 844).await;
    open_widget(&browser, &site).await;

    let fits = browser
        .js(&format!(
            "const r = {ROOT}.querySelector('.panel').getBoundingClientRect(); \
             return [r.left, r.top, r.width === innerWidth, r.height === innerHeight, innerWidth <= 480]"
        ))
        .await;
    assert_eq!(fits, json!([0, 0, true, true, true]));
    assert_eq!(browser.js(&hidden(".launcher")).await, json!(true));

    // The close button in the header gets the site back.
    click_in_widget(&browser, "header .x").await;
    browser
        .wait_for("the closed panel", &hidden(".panel"))
        .await;
    browser.wait_for("the launcher", &shown(".launcher")).await;
    browser.close().await;
}

#[tokio::test]
async fn a_server_restart_mid_conversation_loses_nothing_the_visitor_typed() {
    let mut server = TestServer::start().await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    let input = widget_el(&browser, ".compose textarea").await;
    input.send_keys("Before the restart\u{E007}").await.unwrap();
    wait_message(&browser, "Before the restart", "sent").await;

    server.stop().await;
    browser
        .wait_for("the reconnecting notice", &shown(".notice"))
        .await;
    input
        .send_keys("Typed while it was down\u{E007}")
        .await
        .unwrap();
    wait_message(&browser, "Typed while it was down", "sending").await;
    // Kept in the page's storage until the server has it.
    let queued = browser
        .js("return Object.keys(localStorage).map(k => localStorage.getItem(k)).join()")
        .await;
    assert!(
        queued.as_str().unwrap().contains("Typed while it was down"),
        "{queued}"
    );

    let server = server.restart_same_port().await;
    wait_message(&browser, "Typed while it was down", "sent").await;
    browser
        .wait_for("the notice gone", &hidden(".notice"))
        .await;
    let thread = the_thread(&server, &owner).await;
    let thread_id = thread["id"].as_str().unwrap();
    let stored = server.all_messages(&owner.token, thread_id).await;
    assert_eq!(
        contents(&stored),
        ["Before the restart", "Typed while it was down"]
    );

    // The new socket is live: a reply arrives at once.
    agent_says(&server, &owner, thread_id, "Back again").await;
    wait_message(&browser, "Back again", "").await;
    let stored = server.all_messages(&owner.token, thread_id).await;
    assert_eq!(
        contents(&stored),
        [
            "Before the restart",
            "Typed while it was down",
            "Back again"
        ]
    );
    browser.close().await;
}

#[tokio::test]
async fn refused_websockets_fall_back_to_polling() {
    let (server, owner) = TestServer::with_owner().await;
    // As behind a proxy that refuses WebSocket upgrades.
    let block = "<script>window.WebSocket = function () { throw new Error('blocked'); };</script>";
    let (_, site) = site(&server, &owner, chat_only(), block).await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "Can you hear me?\u{E007}").await;
    wait_message(&browser, "Can you hear me?", "sent").await;

    let thread = the_thread(&server, &owner).await;
    let thread_id = thread["id"].as_str().unwrap();
    agent_says(&server, &owner, thread_id, "Loud and clear").await;
    wait_message(&browser, "Loud and clear", "").await;
    assert_eq!(
        contents(&server.all_messages(&owner.token, thread_id).await),
        ["Can you hear me?", "Loud and clear"]
    );
    assert_eq!(server.app_state.hub.connection_count(), 0);
    browser.close().await;
}

#[tokio::test]
async fn appearance_and_words_come_from_the_space() {
    let (server, owner) = TestServer::with_owner().await;
    let settings = SpaceSettings {
        title: "Pomoc".into(),
        accent_color: "#ff0000".into(),
        theme: Theme::Dark,
        position: Position::BottomLeft,
        locale: "pl".into(),
        ..chat_only()
    };
    let (_, site) = site(&server, &owner, settings, "").await;
    let browser = Browser::start().await;
    browser.goto(&site).await;
    browser.wait_for("the launcher", &shown(".launcher")).await;
    let launcher = browser
        .js(&format!(
            "const l = {ROOT}.querySelector('.launcher'); const s = getComputedStyle(l); \
             return [s.backgroundColor, s.left, l.getAttribute('aria-label')]"
        ))
        .await;
    assert_eq!(launcher, json!(["rgb(255, 0, 0)", "20px", "Otwórz czat"]));

    click_in_widget(&browser, ".launcher").await;
    browser.wait_for("the open panel", &shown(".panel")).await;
    let panel = browser
        .js(&format!(
            "const r = {ROOT}; return [getComputedStyle(r.querySelector('.panel')).backgroundColor, \
             r.querySelector('h2').textContent, r.querySelector('.status').textContent, \
             r.querySelector('.compose textarea').placeholder, r.querySelector('header .x').getAttribute('aria-label')]"
        ))
        .await;
    assert_eq!(
        panel,
        json!([
            "rgb(17, 24, 39)",
            "Pomoc",
            "Odpowiemy e-mailem",
            "Napisz wiadomość…",
            "Zamknij czat"
        ])
    );

    // Tab and Shift+Tab stay inside the open panel.
    for _ in 0..6 {
        press(&browser, Key::Tab).await;
        let inside = browser
            .js(&format!(
                "const a = {ROOT}.activeElement; return !!a && {ROOT}.querySelector('.panel').contains(a)"
            ))
            .await;
        assert_eq!(inside, json!(true), "focus left the panel");
    }
    browser.close().await;
}

#[tokio::test]
async fn the_space_can_ask_for_name_and_email_before_or_after_the_first_message() {
    let (server, owner) = TestServer::with_owner().await;
    let browser = Browser::start().await;

    // Before: the form comes first and the chat after it.
    let before = SpaceSettings {
        require_visitor_data: RequireVisitorData::BeforeFirstMessage,
        ..chat_only()
    };
    let (_, site_before) = site(&server, &owner, before, "").await;
    open_widget(&browser, &site_before).await;
    browser
        .wait_for("the contact form", &shown("form.contact"))
        .await;
    assert_eq!(browser.js(&hidden("form.compose")).await, json!(true));
    type_in_widget(&browser, "form.contact input[name=name]", "Piotr").await;
    type_in_widget(
        &browser,
        "form.contact input[name=email]",
        "piotr@example.test\u{E007}",
    )
    .await;
    browser.wait_for("the chat", &shown("form.compose")).await;
    assert_eq!(browser.js(&hidden("form.contact")).await, json!(true));
    type_in_widget(
        &browser,
        ".compose textarea",
        "Hello after the form\u{E007}",
    )
    .await;
    wait_message(&browser, "Hello after the form", "sent").await;
    let thread = the_thread(&server, &owner).await;
    let visitor = server
        .get(
            &format!("/api/v1/visitors/{}", thread["visitorId"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    assert_eq!(visitor.ok()["email"], "piotr@example.test");
    assert_eq!(visitor.ok()["displayName"], "Piotr");

    // After: the first message goes at once, then the form asks.
    let after = SpaceSettings {
        require_visitor_data: RequireVisitorData::AfterFirstMessage,
        ..chat_only()
    };
    let (_, site_after) = site(&server, &owner, after, "").await;
    open_widget(&browser, &site_after).await;
    assert_eq!(browser.js(&hidden("form.contact")).await, json!(true));
    type_in_widget(&browser, ".compose textarea", "A quick question\u{E007}").await;
    wait_message(&browser, "A quick question", "sent").await;
    browser
        .wait_for("the contact form", &shown("form.contact"))
        .await;
    type_in_widget(
        &browser,
        "form.contact input[name=email]",
        "kasia@example.test\u{E007}",
    )
    .await;
    browser
        .wait_for("the form gone", &hidden("form.contact"))
        .await;
    browser.close().await;
}

#[tokio::test]
async fn ending_the_chat_closes_the_thread_and_the_next_message_starts_a_new_one() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    browser.wait_for("no end button yet", &hidden(".end")).await;
    let input = widget_el(&browser, ".compose textarea").await;
    input.send_keys("First conversation\u{E007}").await.unwrap();
    wait_message(&browser, "First conversation", "sent").await;
    let first = the_thread(&server, &owner).await;

    // "End chat" asks once more in place; only the second press ends it.
    click_in_widget(&browser, ".end").await;
    browser
        .wait_for(
            "the confirmation",
            &format!("return {ROOT}.querySelector('.end').textContent === 'Yes, end the chat'"),
        )
        .await;
    let still = server
        .get(
            &format!("/api/v1/threads/{}", first["id"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    assert_eq!(still.ok()["status"], "unassigned");
    click_in_widget(&browser, ".end").await;
    browser
        .wait_for(
            "the ended note",
            &format!(
                "return [...{ROOT}.querySelectorAll('.sys')].some(n => n.textContent === 'The chat has ended.')"
            ),
        )
        .await;
    browser
        .wait_for("the end button gone", &hidden(".end"))
        .await;
    let closed = server
        .get(
            &format!("/api/v1/threads/{}", first["id"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    assert_eq!(closed.ok()["status"], "closed");
    // The ending offers a new conversation: the reply box, focused.
    click_in_widget(&browser, ".sys button.again").await;
    browser
        .wait_for(
            "the reply box focused",
            &format!("return {ROOT}.activeElement === {ROOT}.querySelector('.compose textarea')"),
        )
        .await;

    input
        .send_keys("Second conversation\u{E007}")
        .await
        .unwrap();
    wait_message(&browser, "Second conversation", "sent").await;
    browser.wait_for("the end button", &shown(".end")).await;
    // The same visitor, two threads: the first closed, the second open.
    let visitor = first["visitorId"].as_str().unwrap();
    let threads = server
        .get(&format!("/api/v1/visitors/{visitor}/threads"), &owner.token)
        .await;
    let mut statuses: Vec<String> = threads.ok()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["closed", "unassigned"]);
    browser.close().await;
}

#[tokio::test]
async fn the_demo_page_has_a_working_chat() {
    // The demo space allows the address the server listens on, so it needs
    // a known port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::start_with(|c| {
        c.demo = true;
        c.http.listen = addr;
    })
    .await;
    let browser = Browser::start().await;
    // Under the demo page's own Content-Security-Policy. Until an agent
    // logs in, the demo chat takes offline messages.
    open_widget(&browser, &server.url("/demo")).await;
    browser
        .wait_for("the offline form", &shown("form.offline"))
        .await;
    type_in_widget(
        &browser,
        "form.offline input[name=email]",
        "visitor@example.test",
    )
    .await;
    type_in_widget(&browser, "form.offline textarea", "Hello from the demo").await;
    click_in_widget(&browser, "form.offline button[type=submit]").await;
    wait_message(&browser, "Hello from the demo", "sent").await;
    // The live socket is allowed too, not just plain requests.
    eventually(WAIT, "a widget socket", || {
        std::future::ready((server.app_state.hub.connection_count() > 0).then_some(()))
    })
    .await;
    assert!(server.app_state.hub.connection_count() > 0);
    browser.close().await;
}

#[tokio::test]
async fn a_visitor_rates_the_ended_chat_once_from_the_widget() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "Where is my order?\u{E007}").await;
    wait_message(&browser, "Where is my order?", "sent").await;
    browser
        .wait_for("no rating while open", &hidden(".rate"))
        .await;
    let thread = the_thread(&server, &owner).await;
    let id = thread["id"].as_str().unwrap().to_owned();

    // The agent ends the chat; the widget asks for a rating at once.
    let closed = server
        .post(
            &format!("/api/v1/threads/{id}/close"),
            &owner.token,
            json!({}),
        )
        .await;
    closed.ok();
    browser.wait_for("the rating form", &shown(".rate")).await;
    click_in_widget(&browser, ".stars [data-score='4']").await;
    let pressed = browser
        .js(&format!(
            "return [...{ROOT}.querySelectorAll('.stars button')].map(b => b.getAttribute('aria-pressed'))"
        ))
        .await;
    assert_eq!(pressed, json!(["true", "true", "true", "true", "false"]));
    type_in_widget(&browser, ".rate textarea", "<b>Helpful</b>, thanks").await;
    click_in_widget(&browser, ".rate button[type=submit]").await;
    browser
        .wait_for(
            "the thanks",
            &format!(
                "return [...{ROOT}.querySelectorAll('.sys')].some(n => n.textContent === 'Thank you for your rating!')"
            ),
        )
        .await;
    browser.wait_for("the form gone", &hidden(".rate")).await;
    let rated = server
        .get(&format!("/api/v1/threads/{id}"), &owner.token)
        .await;
    let rating = &rated.ok()["rating"];
    assert_eq!(rating["score"], 4);
    assert_eq!(rating["comment"], "<b>Helpful</b>, thanks");

    // Once: after a reload the widget does not ask again.
    browser.goto(&site).await;
    browser
        .wait_for(
            "the ended note again",
            &format!(
                "return [...{ROOT}.querySelectorAll('.sys')].some(n => n.textContent === 'The chat has ended.')"
            ),
        )
        .await;
    browser.wait_for("no second rating", &hidden(".rate")).await;
    browser.close().await;
}

#[tokio::test]
async fn with_nobody_online_the_widget_offers_the_reply_by_email_and_mails_the_transcript() {
    let sink = crate::harness::smtp::SmtpSink::start().await;
    let url = sink.url();
    let server = TestServer::start_with(move |c| {
        c.email.smtp_url = url;
        c.email.from = "chat@acme.test".into();
    })
    .await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "Anyone there?\u{E007}").await;
    wait_message(&browser, "Anyone there?", "sent").await;
    // Nobody is online: the conversation offers the answer by email, and
    // the chat stays usable meanwhile.
    browser
        .wait_for("the email offer", &shown("form.contact"))
        .await;
    let offer = browser
        .js(&format!(
            "return {ROOT}.querySelector('form.contact p').textContent"
        ))
        .await;
    assert!(
        offer.as_str().unwrap().contains("get the reply by email"),
        "{offer}"
    );
    assert_eq!(browser.js(&hidden("form.compose")).await, json!(false));
    type_in_widget(
        &browser,
        "form.contact input[name=email]",
        "ola@example.test\u{E007}",
    )
    .await;
    browser
        .wait_for("the offer gone", &hidden("form.contact"))
        .await;
    let thread = the_thread(&server, &owner).await;
    let visitor = server
        .get(
            &format!("/api/v1/visitors/{}", thread["visitorId"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    assert_eq!(visitor.ok()["email"], "ola@example.test");
    agent_says(
        &server,
        &owner,
        thread["id"].as_str().unwrap(),
        "We are back!",
    )
    .await;
    wait_message(&browser, "We are back!", "").await;

    // After the end (confirmed), the transcript is one click away.
    click_in_widget(&browser, ".end").await;
    click_in_widget(&browser, ".end").await;
    browser
        .wait_for("the transcript button", &shown(".sys button.transcript"))
        .await;
    click_in_widget(&browser, ".sys button.transcript").await;
    browser
        .wait_for(
            "the sent note",
            &format!(
                "return [...{ROOT}.querySelectorAll('.sys')].some(n => n.textContent === 'Sent to your email.')"
            ),
        )
        .await;
    let mails = sink.wait_for(1).await;
    let m = mails
        .iter()
        .find(|m| m.subject.starts_with("Your conversation"))
        .expect("the transcript");
    assert_eq!(m.to, "ola@example.test");
    assert!(
        m.text.contains("Anyone there?") && m.text.contains("We are back!"),
        "{}",
        m.text
    );
    browser.close().await;
}
