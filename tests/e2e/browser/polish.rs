//! What makes the widget and the agent app feel finished, in a real
//! browser: a focus ring that can be seen on every widget control in both
//! themes (an automated contrast check), the demo page on a phone, and an
//! inbox that never goes back to an older state of a conversation.

use crate::harness::browser::{
    Browser, ROOT, chat_only, hidden, js_str, open_app, open_thread, open_widget, press, shown,
    type_in_widget, wait_row,
};
use crate::harness::fixtures;
use crate::harness::{TestServer, WAIT, eventually};
use mychat::spaces::model::{RequireVisitorData, SpaceSettings, Theme};
use serde_json::{Value, json};

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

/// A visitor who wrote `text` in the space with this widget key; returns
/// the thread.
async fn visitor_writes(server: &TestServer, key: &str, text: &str) -> String {
    let (token, _) = fixtures::visitor_session(
        server,
        &[],
        json!({"key": key, "url": "https://site.test/"}),
    )
    .await;
    let r = server
        .post(
            "/api/v1/widget/messages",
            &token,
            json!({"content": text, "clientMsgId": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    r.ok()["message"]["threadId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_older_answer_arriving_after_a_claim_never_undoes_it() {
    let (server, owner) = TestServer::with_owner().await;
    let space = server
        .post(
            "/api/v1/chat-spaces",
            &owner.token,
            json!({"name": "Shop", "allowedDomains": ["site.test"]}),
        )
        .await
        .ok()
        .clone();
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    let thread = visitor_writes(&server, space["widgetKey"].as_str().unwrap(), "Hi").await;
    wait_row(&browser, "Hi").await;
    // What a read-marker answer made before the claim says.
    let before: Value = server
        .get(&format!("/api/v1/threads/{thread}"), &owner.token)
        .await
        .ok()
        .clone();
    assert_eq!(before["status"], "unassigned");
    open_thread(&browser, &thread).await;
    browser
        .wait_for(
            "the claim button",
            "const b = document.querySelector('[data-action=claim]'); if (!b) return false; b.click(); return true;",
        )
        .await;
    let held = "return document.querySelector('.conv__holder').textContent === 'Held by you'";
    browser.wait_for("the claim", held).await;
    eventually(WAIT, "the claim stored", || async {
        let now = server
            .get(&format!("/api/v1/threads/{thread}"), &owner.token)
            .await;
        (now.ok()["status"] == "active").then_some(())
    })
    .await;

    // That older answer arrives late, after the socket's frame of the claim:
    // the app keeps the newer state.
    let applied = browser
        .js(&format!(
            "return import('/app/store.js').then(s => {{ s.upsertThread(JSON.parse({})); return s.state.threads.get({}).status; }})",
            js_str(&before.to_string()),
            js_str(&thread)
        ))
        .await;
    assert_eq!(applied, "active");
    assert_eq!(browser.js(held).await, true);
    assert_eq!(
        browser
            .js("return document.querySelector('.conv .status').textContent")
            .await,
        "Active"
    );
    browser.close().await;
}

/// Types into an element of the app the way a person does.
async fn type_into(browser: &Browser, selector: &str, text: &str) {
    browser
        .client
        .find(fantoccini::Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .send_keys(text)
        .await
        .expect("typing");
}

/// Clicks an element of the app once it is there.
async fn click(browser: &Browser, selector: &str) {
    browser
        .wait_for(
            &format!("{selector} to click"),
            &format!(
                "const el = document.querySelector({}); if (!el || el.disabled) return false; el.click(); return true;",
                js_str(selector)
            ),
        )
        .await;
}

async fn text(browser: &Browser, selector: &str) -> String {
    browser
        .js(&format!(
            "return document.querySelector({})?.textContent ?? null",
            js_str(selector)
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn canned_responses_fill_their_placeholders_and_empty_states_say_what_to_do() {
    let (server, owner) = TestServer::with_owner().await;
    let space = server
        .post(
            "/api/v1/chat-spaces",
            &owner.token,
            json!({"name": "Shop", "allowedDomains": ["site.test"]}),
        )
        .await
        .ok()
        .clone();
    let key = space["widgetKey"].as_str().unwrap();
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    let me = browser
        .js("return document.querySelector('.me').textContent")
        .await;
    let me = me.as_str().unwrap().to_owned();

    // An unnamed visitor is numbered in the app's words.
    let anonymous = visitor_writes(&server, key, "Anyone there?").await;
    wait_row(&browser, "Anyone there?").await;
    open_thread(&browser, &anonymous).await;
    let name = text(&browser, ".conv__name").await;
    assert!(name.starts_with("Visitor #"), "{name}");
    // Alone in the organization: nobody to transfer to, and it says so.
    click(&browser, "[data-action=claim]").await;
    browser
        .wait_for(
            "the transfer hint",
            "return document.querySelector('.conv__hint[data-action=transfer]')?.textContent === 'No one to transfer to'",
        )
        .await;

    // No canned responses yet: "/" says so and links to where one is made.
    type_into(&browser, ".composer__input", "/").await;
    browser
        .wait_for(
            "the empty list",
            "return document.querySelector('.templates:not([hidden]) .templates__empty')?.textContent.includes('No canned responses yet.')",
        )
        .await;
    click(&browser, ".templates__create").await;
    browser
        .wait_for(
            "the canned responses page",
            "return location.hash === '#/admin/templates'",
        )
        .await;
    assert!(
        text(&browser, ".templates__hint")
            .await
            .contains("{visitor.name}")
    );
    type_into(
        &browser,
        "form[data-form=template] input[name=shortcut]",
        "/hi",
    )
    .await;
    type_into(
        &browser,
        "form[data-form=template] input[name=title]",
        "Greeting",
    )
    .await;
    type_into(
        &browser,
        "form[data-form=template] textarea[name=body]",
        "Hello {visitor.name}! I am {agent.name} from {space.name}.",
    )
    .await;
    click(&browser, "form[data-form=template] button[type=submit]").await;
    eventually(WAIT, "the canned response stored", || async {
        let r = server.get("/api/v1/templates", &owner.token).await;
        (r.ok()["items"].as_array().map_or(0, Vec::len) == 1).then_some(())
    })
    .await;

    // A named visitor's conversation: every placeholder filled.
    let named = visitor_writes(&server, key, "Where is my parcel?").await;
    let visitor = server
        .get(&format!("/api/v1/threads/{named}"), &owner.token)
        .await
        .ok()["visitorId"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .patch(
            &format!("/api/v1/visitors/{visitor}"),
            &owner.token,
            json!({"displayName": "Ola"}),
        )
        .await
        .ok();
    browser
        .goto(&server.url(&format!("/app/#/inbox/all/{named}")))
        .await;
    browser
        .wait_for(
            "the named conversation",
            "return document.querySelector('.conv__name')?.textContent === 'Ola'",
        )
        .await;
    type_into(&browser, ".composer__input", "/hi").await;
    browser
        .wait_for(
            "the canned response offered",
            "return document.querySelector('.templates:not([hidden]) .templates__item')?.dataset.shortcut === '/hi'",
        )
        .await;
    type_into(&browser, ".composer__input", "\u{E007}").await;
    assert_eq!(
        browser
            .js("return document.querySelector('.composer__input').value")
            .await,
        format!("Hello Ola! I am {me} from Shop.")
    );

    // The unnamed visitor has no name to fill in: the placeholder goes.
    browser
        .goto(&server.url(&format!("/app/#/inbox/all/{anonymous}")))
        .await;
    browser
        .wait_for(
            "the unnamed conversation",
            "return document.querySelector('.conv__name')?.textContent.startsWith('Visitor #')",
        )
        .await;
    type_into(&browser, ".composer__input", "/hi\u{E007}").await;
    browser
        .wait_for(
            "the filled text",
            &format!(
                "return document.querySelector('.composer__input').value === {}",
                js_str(&format!("Hello! I am {me} from Shop."))
            ),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn history_lines_tell_every_agent_the_same_story_and_visitors_none_of_it() {
    let (server, owner) = TestServer::with_owner().await;
    let bea = fixtures::agent(&server, &owner, "Bea", mychat::accounts::model::Role::Admin).await;
    let me = server.get("/api/v1/auth/me", &owner.token).await;
    let owner_name = me.ok()["agent"]["displayName"].as_str().unwrap().to_owned();
    let space = server
        .post(
            "/api/v1/chat-spaces",
            &owner.token,
            json!({"name": "Shop", "allowedDomains": ["site.test"]}),
        )
        .await
        .ok()
        .clone();
    let (visitor, _) = fixtures::visitor_session(
        &server,
        &[],
        json!({"key": space["widgetKey"], "url": "https://site.test/"}),
    )
    .await;
    let r = server
        .post(
            "/api/v1/widget/messages",
            &visitor,
            json!({"content": "My order is late", "clientMsgId": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    let thread = r.ok()["message"]["threadId"].as_str().unwrap().to_owned();
    let path = |action: &str| format!("/api/v1/threads/{thread}/{action}");
    server
        .patch(&path("claim"), &owner.token, json!({}))
        .await
        .ok();

    // Bea watches the conversation while the rest happens.
    let browser = Browser::start().await;
    open_app(&server, &browser, &bea.token, &bea.refresh).await;
    browser
        .goto(&server.url(&format!("/app/#/inbox/all/{thread}")))
        .await;
    browser
        .wait_for(
            "the first history line",
            "return document.querySelectorAll('.msg--history').length === 1",
        )
        .await;
    server
        .post(&path("transfer"), &owner.token, json!({"agentId": bea.id}))
        .await
        .ok();
    server
        .patch(&path("close"), &bea.token, json!({}))
        .await
        .ok();
    server
        .patch(&path("reopen"), &owner.token, json!({}))
        .await
        .ok();
    server
        .post("/api/v1/widget/close", &visitor, json!({}))
        .await
        .ok();

    let story = [
        format!("Claimed by {owner_name}"),
        format!("Transferred from {owner_name} to Bea"),
        "Closed by Bea".to_owned(),
        format!("Reopened by {owner_name}"),
        "Closed by the visitor".to_owned(),
    ];
    let lines =
        "return [...document.querySelectorAll('.msg--history')].map(e => e.firstChild.textContent)";
    browser
        .wait_for(
            "the whole story, live",
            &format!("const l = (() => {{ {lines} }})(); return l.length === 5 ? l : null"),
        )
        .await;
    assert_eq!(browser.js(lines).await, json!(story));
    // The header says when it ended.
    browser
        .wait_for(
            "when it was closed",
            "return document.querySelector('.conv__closed')?.textContent.startsWith('Closed ')",
        )
        .await;

    // Stored: the owner reads the same story from the API, after a reload too.
    let page = server
        .get(
            &format!("/api/v1/threads/{thread}/messages?limit=50"),
            &owner.token,
        )
        .await;
    let kinds: Vec<Value> = page.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("event").map(|e| e["kind"].clone()))
        .collect();
    assert_eq!(
        kinds,
        json!([
            "claimed",
            "transferred",
            "closed",
            "reopened",
            "closedByVisitor"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    browser.goto(&server.url("/healthz")).await;
    browser
        .goto(&server.url(&format!("/app/#/inbox/closed/{thread}")))
        .await;
    browser
        .wait_for(
            "the story after a reload",
            &format!("const l = (() => {{ {lines} }})(); return l.length === 5"),
        )
        .await;
    assert_eq!(browser.js(lines).await, json!(story));

    // The visitor sees none of it.
    let theirs = server.get("/api/v1/widget/messages", &visitor).await;
    let contents: Vec<&str> = theirs.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["My order is late"]);
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

#[tokio::test]
async fn the_inbox_follows_a_claim_an_edit_and_a_close_without_going_stale() {
    let (server, owner) = TestServer::with_owner().await;
    let space = server
        .post(
            "/api/v1/chat-spaces",
            &owner.token,
            json!({"name": "Shop", "allowedDomains": ["site.test"]}),
        )
        .await
        .ok()
        .clone();
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    let thread = visitor_writes(
        &server,
        space["widgetKey"].as_str().unwrap(),
        "Do you ship to Oslo?",
    )
    .await;
    wait_row(&browser, "Do you ship to Oslo?").await;
    open_thread(&browser, &thread).await;
    let panel_status =
        "return document.querySelector('.history__item--current .status')?.textContent";
    browser.wait_for("the visitor panel", panel_status).await;
    assert_eq!(browser.js(panel_status).await, "Unassigned");

    // Claimed from Available: the app shows Mine (counted), the thread
    // still open, and the visitor panel says Active.
    click(&browser, "[data-action=claim]").await;
    browser
        .wait_for(
            "the Mine list",
            &format!("return location.hash === '#/inbox/mine/{thread}' && document.querySelector('.tab--active')?.dataset.view === 'mine'"),
        )
        .await;
    browser
        .wait_for(
            "the Mine count",
            "return document.querySelector('.tab[data-view=mine] .count')?.textContent === '1'",
        )
        .await;
    browser
        .wait_for(
            "the panel's status",
            &format!("{panel_status} === 'Active'"),
        )
        .await;

    // The newest message edited: the list's preview follows.
    let id = fixtures::agent_message(&server, &owner.token, &thread, "Yes, in 3 days", false).await;
    let preview = format!(
        "return document.querySelector('.thread-list .row[data-id=\"{thread}\"] .row__preview')?.textContent"
    );
    browser
        .wait_for(
            "the reply's preview",
            &format!("{preview} === '↩ Yes, in 3 days'"),
        )
        .await;
    server
        .patch(
            &format!("/api/v1/messages/{id}"),
            &owner.token,
            json!({"content": "Yes, in 2 days"}),
        )
        .await
        .ok();
    browser
        .wait_for(
            "the edited preview",
            &format!("{preview} === '↩ Yes, in 2 days'"),
        )
        .await;

    // Closed elsewhere: the app shows Closed, and so does the panel.
    server
        .patch(
            &format!("/api/v1/threads/{thread}/close"),
            &owner.token,
            json!({}),
        )
        .await
        .ok();
    browser
        .wait_for(
            "the Closed list",
            &format!("return location.hash === '#/inbox/closed/{thread}'"),
        )
        .await;
    browser
        .wait_for(
            "the panel's status",
            &format!("{panel_status} === 'Closed'"),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn an_agent_renames_itself_and_changes_its_password_on_its_profile_page() {
    let (server, owner) = TestServer::with_owner().await;
    let bea = fixtures::agent(&server, &owner, "Bea", mychat::accounts::model::Role::Agent).await;
    let browser = Browser::start_sized(390, 844).await;
    open_app(&server, &browser, &bea.token, &bea.refresh).await;
    click(&browser, "a.me").await;
    browser
        .wait_for(
            "the profile page",
            "return document.body.dataset.screen === 'profile'",
        )
        .await;

    // The new name is the one the app, colleagues and visitors see.
    browser
        .js("document.querySelector('form[data-form=profile-name] input[name=displayName]').value = ''; return true;")
        .await;
    type_into(
        &browser,
        "form[data-form=profile-name] input[name=displayName]",
        "Beatrice",
    )
    .await;
    click(&browser, "form[data-form=profile-name] button[type=submit]").await;
    browser
        .wait_for(
            "the new name in the top bar",
            "return document.querySelector('.topbar .me').textContent === 'Beatrice'",
        )
        .await;
    let me = server.get("/api/v1/auth/me", &bea.token).await;
    assert_eq!(me.ok()["agent"]["displayName"], "Beatrice");

    // A wrong current password is refused; the right one changes it.
    let form = "form[data-form=profile-password]";
    type_into(
        &browser,
        &format!("{form} input[name=currentPassword]"),
        "not my password",
    )
    .await;
    type_into(
        &browser,
        &format!("{form} input[name=newPassword]"),
        "a new password 2",
    )
    .await;
    click(&browser, &format!("{form} button[type=submit]")).await;
    browser
        .wait_for(
            "the refusal",
            &format!("return document.querySelector('{form} .form-status--error') !== null"),
        )
        .await;
    browser
        .js(&format!(
            "document.querySelector('{form} input[name=currentPassword]').value = ''; return true;"
        ))
        .await;
    type_into(
        &browser,
        &format!("{form} input[name=currentPassword]"),
        "agent password 1",
    )
    .await;
    click(&browser, &format!("{form} button[type=submit]")).await;
    browser
        .wait_for(
            "the change",
            &format!("return document.querySelector('{form} .form-status--ok')?.textContent === 'Password changed.'"),
        )
        .await;
    let email = me.ok()["agent"]["email"].as_str().unwrap().to_owned();
    assert_eq!(server.login(&email, "a new password 2").await.status, 200);
    // This browser stays signed in with its fresh tokens.
    browser.goto(&server.url("/app/#/inbox/available")).await;
    crate::harness::browser::wait_live(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn an_agent_switching_away_on_its_profile_is_offline_for_the_widget() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = super::widget::site(&server, &owner, SpaceSettings::default(), "").await;
    // The agent's app, connected.
    let app = Browser::start().await;
    open_app(&server, &app, &owner.token, &owner.refresh).await;
    // The visitor sees someone online.
    let widget = Browser::start_sized(390, 844).await;
    open_widget(&widget, &site).await;
    let status = format!("return {ROOT}.querySelector('.status').textContent");
    widget
        .wait_for("online", &format!("{status} === 'We are online'"))
        .await;

    // Away: still connected, but the widget says so and offers the form.
    app.goto(&server.url("/app/#/profile")).await;
    click(&app, "[data-form=profile-away] input[name=away]").await;
    widget
        .wait_for("away", &format!("{status} === 'We reply by email'"))
        .await;
    widget
        .wait_for("the offline form", &shown("form.offline"))
        .await;
    app.wait_for(
        "the away mark in the app",
        "return document.querySelector('[data-form=profile-away] .form-status--ok')?.textContent === 'You are away.'",
    )
    .await;
    let me = server.get("/api/v1/auth/me", &owner.token).await;
    assert_eq!(me.ok()["agent"]["away"], true);

    // Back: online again, live.
    click(&app, "[data-form=profile-away] input[name=away]").await;
    widget
        .wait_for("online again", &format!("{status} === 'We are online'"))
        .await;
    app.close().await;
    widget.close().await;
}

#[tokio::test]
async fn with_notifications_blocked_the_app_says_so_instead_of_offering_them() {
    let (server, owner) = TestServer::with_owner().await;
    let browser = Browser::start_blocking_notifications().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    assert_eq!(browser.js("return Notification.permission").await, "denied");
    let said = browser
        .wait_for(
            "the blocked note",
            "return document.querySelector('.alerts__blocked')?.textContent",
        )
        .await;
    assert_eq!(said, "Notifications blocked");
    let offered = browser
        .js("return [...document.querySelectorAll('.alerts button')].some(b => b.textContent.includes('Enable notifications'))")
        .await;
    assert_eq!(offered, false);
    // The sound toggle is a pressed/unpressed speaker.
    let sound = browser
        .js("const b = document.querySelector('[data-action=sound]'); return [b.getAttribute('aria-pressed'), b.getAttribute('aria-label')]")
        .await;
    assert_eq!(sound, json!(["true", "Sound on new threads and messages"]));
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

#[tokio::test]
async fn the_profile_page_holds_the_notification_settings_too() {
    let (server, owner) = TestServer::with_owner().await;
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser.goto(&server.url("/app/#/profile")).await;
    browser
        .wait_for(
            "the settings on the page",
            "return document.querySelector('.profile .prefs--card select[name=scope]') !== null",
        )
        .await;
    browser
        .js("const s = document.querySelector('.profile .prefs--card select[name=scope]'); s.value = 'assigned'; return true;")
        .await;
    click(&browser, ".profile .prefs--card button[type=submit]").await;
    eventually(WAIT, "the settings stored", || async {
        let me = server.get("/api/v1/auth/me", &owner.token).await;
        (me.ok()["agent"]["notify"]["scope"] == "assigned").then_some(())
    })
    .await;
    browser.close().await;
}
