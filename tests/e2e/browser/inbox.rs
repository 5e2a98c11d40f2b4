//! The agent app's inbox that never goes stale, in a real browser: an
//! older answer never undoes a claim, the open conversation follows its
//! thread to its new list, previews and the visitor panel follow live
//! events, history lines tell every agent the same story, canned responses
//! fill their placeholders, and empty states say what to do.

use crate::harness::browser::{Browser, js_str, open_app, open_thread, wait_row};
use crate::harness::fixtures;
use crate::harness::{TestServer, WAIT, eventually};
use serde_json::{Value, json};

/// A visitor who wrote `text` in the space with this widget key; returns
/// the thread.
pub(super) async fn visitor_writes(server: &TestServer, key: &str, text: &str) -> String {
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

/// Types into an element of the app the way a person does.
pub(super) async fn type_into(browser: &Browser, selector: &str, text: &str) {
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
pub(super) async fn click(browser: &Browser, selector: &str) {
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

pub(super) async fn text(browser: &Browser, selector: &str) -> String {
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
