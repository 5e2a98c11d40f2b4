//! The widget's JavaScript API on a host page of another origin: calls
//! queued before the script loaded, opening and closing, the launcher,
//! languages, events, `reset()`, page changes of single-page apps, and
//! links in messages.

use super::widget::{agent_online, agent_says, site, the_thread, wait_message};
use crate::harness::browser::{
    Browser, ROOT, chat_only, click_in_widget, hidden, open_widget, shown, type_in_widget,
};
use crate::harness::{TestServer, WAIT, eventually};
use serde_json::{Value, json};

/// The stub of the README's embed section, then the page's own calls.
fn stub(calls: &str) -> String {
    format!(
        "<script>window.MyChat = window.MyChat || function () {{ (MyChat.q = MyChat.q || []).push(arguments); }};\n{calls}</script>"
    )
}

/// Script: what the widget keeps in the page's localStorage.
fn stored(key: &str) -> String {
    format!("return JSON.parse(localStorage.getItem('mychat:{key}') || '{{}}')")
}

#[tokio::test]
async fn calls_made_before_the_script_loads_run_once_it_is_ready() {
    let (server, owner) = TestServer::with_owner().await;
    let head = stub(
        "window.__events = [];
         for (const e of ['ready', 'open', 'close']) MyChat('on', e, () => __events.push(e));
         MyChat('open');
         MyChat('prefill', 'About my order');
         MyChat.mount = () => 'the member embed';",
    );
    let (_, site) = site(&server, &owner, chat_only(), &head).await;
    let browser = Browser::start().await;
    browser.goto(&site).await;
    browser
        .wait_for(
            "the ready event",
            "return window.__events?.includes('ready')",
        )
        .await;
    browser.wait_for("the open panel", &shown(".panel")).await;
    let state = browser
        .js(&format!(
            "return [__events, MyChat.isOpen(), {ROOT}.querySelector('.compose textarea').value, typeof MyChat.open, MyChat.mount()]"
        ))
        .await;
    // What the member embed put on the global stays there.
    assert_eq!(
        state,
        json!([
            ["open", "ready"],
            true,
            "About my order",
            "function",
            "the member embed"
        ])
    );

    // After the load, both forms work.
    browser.js("MyChat.close(); return true").await;
    browser
        .wait_for("the closed panel", &hidden(".panel"))
        .await;
    assert_eq!(browser.js("return MyChat.isOpen()").await, json!(false));
    browser.js("MyChat('toggle'); return true").await;
    browser.wait_for("the panel again", &shown(".panel")).await;
    browser.js("MyChat.toggle(); return true").await;
    browser
        .wait_for("the panel closed", &hidden(".panel"))
        .await;

    // A site with its own button hides the launcher.
    browser.js("MyChat.hide(); return true").await;
    browser
        .wait_for("the launcher hidden", &hidden(".launcher"))
        .await;
    browser.js("MyChat.show(); return true").await;
    browser
        .wait_for("the launcher back", &shown(".launcher"))
        .await;

    // A listener taken off hears nothing.
    browser
        .js("window.__off = () => __events.push('removed'); MyChat.on('open', __off).off('open', __off); MyChat.open(); return true")
        .await;
    browser.wait_for("the open panel", &shown(".panel")).await;
    assert_eq!(
        browser.js("return __events").await,
        json!(["open", "ready", "close", "open", "close", "open"])
    );

    // Another language: the words change, the draft and the open panel stay.
    browser.js("MyChat.setLocale('pl'); return true").await;
    browser
        .wait_for(
            "Polish words",
            &format!(
                "return {ROOT}?.querySelector('.compose textarea')?.placeholder === 'Napisz wiadomość…'"
            ),
        )
        .await;
    let words = browser
        .js(&format!(
            "const r = {ROOT}; return [document.querySelectorAll('mychat-widget').length, \
             r.querySelector('.launcher').getAttribute('aria-label'), r.querySelector('.compose textarea').value, \
             r.querySelector('.root').lang]"
        ))
        .await;
    assert_eq!(words, json!([1, "Zamknij czat", "About my order", "pl"]));
    assert_eq!(browser.js(&shown(".panel")).await, json!(true));
    browser.js("MyChat('setLocale', 'ru'); return true").await;
    browser
        .wait_for(
            "Russian words",
            &format!("return {ROOT}.querySelector('.status').textContent === 'Ответим по e-mail'"),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn unread_and_message_events_follow_agent_replies_while_closed() {
    let (server, owner) = TestServer::with_owner().await;
    let head = stub(
        "window.__unread = []; window.__messages = [];
         MyChat('on', 'unread', n => __unread.push(n));
         MyChat('on', 'message', m => __messages.push(m.content));",
    );
    let (_, site) = site(&server, &owner, chat_only(), &head).await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    type_in_widget(&browser, ".compose textarea", "Is it in stock?\u{E007}").await;
    wait_message(&browser, "Is it in stock?", "sent").await;
    browser.js("MyChat.close(); return true").await;
    browser
        .wait_for("the closed panel", &hidden(".panel"))
        .await;

    let thread = the_thread(&server, &owner).await;
    agent_says(
        &server,
        &owner,
        thread["id"].as_str().unwrap(),
        "Yes, two left",
    )
    .await;
    browser
        .wait_for("one unread", "return __unread.includes(1)")
        .await;
    assert_eq!(
        browser.js("return __messages").await,
        json!(["Yes, two left"])
    );
    browser.js("MyChat.open(); return true").await;
    browser
        .wait_for("read on opening", "return __unread.at(-1) === 0")
        .await;
    assert_eq!(browser.js("return __unread").await, json!([1, 0]));
    browser.close().await;
}

#[tokio::test]
async fn reset_forgets_the_visitor_and_the_next_message_starts_a_new_one() {
    let (server, owner) = TestServer::with_owner().await;
    let (space, site) = site(&server, &owner, chat_only(), "").await;
    let key = &space.widget_key;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    type_in_widget(
        &browser,
        ".compose textarea",
        "My account number is 42\u{E007}",
    )
    .await;
    wait_message(&browser, "My account number is 42", "sent").await;
    let first = the_thread(&server, &owner).await;
    agent_says(
        &server,
        &owner,
        first["id"].as_str().unwrap(),
        "Thanks, found it",
    )
    .await;
    wait_message(&browser, "Thanks, found it", "").await;
    let before = browser.js(&stored(key)).await;
    assert!(before["token"].is_string(), "{before}");

    browser.js("MyChat.reset(); return true").await;
    browser
        .wait_for(
            "an empty conversation",
            &format!("return {ROOT}.querySelectorAll('.log .msg:not(.welcome)').length === 0"),
        )
        .await;
    let after = browser.js(&stored(key)).await;
    assert!(after["token"].is_null(), "{after}");

    type_in_widget(&browser, ".compose textarea", "A new question\u{E007}").await;
    wait_message(&browser, "A new question", "sent").await;
    let shown_now = browser
        .js(&format!(
            "return [...{ROOT}.querySelectorAll('.log .msg:not(.welcome) .bubble')].map(b => b.textContent)"
        ))
        .await;
    assert_eq!(shown_now, json!(["A new question"]));
    let now = browser.js(&stored(key)).await;
    assert!(now["token"].is_string() && now["token"] != before["token"]);

    // Two visitors now, each with its own conversation.
    let threads = eventually(WAIT, "the second visitor's thread", || async {
        let list = server.get("/api/v1/threads?view=all", &owner.token).await;
        let items = list.ok()["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2).then_some(items)
    })
    .await;
    let visitors: Vec<&Value> = threads.iter().map(|t| &t["visitorId"]).collect();
    assert_ne!(visitors[0], visitors[1]);
    browser.close().await;
}

#[tokio::test]
async fn page_changes_of_a_single_page_app_reach_the_agents() {
    let (server, owner) = TestServer::with_owner().await;
    let (space, site) = site(&server, &owner, chat_only(), "").await;
    let agent = agent_online(&server, &owner.token, &space).await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    let home = format!("{site}/");
    agent
        .wait_for("the visitor on the home page", |f| {
            f["type"] == "visitor:presence" && f["url"] == home.as_str()
        })
        .await;

    browser
        .js("history.pushState({}, '', '/pricing?plan=pro'); document.title = 'Pricing'; return true")
        .await;
    let pricing = format!("{site}/pricing?plan=pro");
    agent
        .wait_for("the pricing page", |f| {
            f["type"] == "visitor:presence"
                && f["url"] == pricing.as_str()
                && f["title"] == "Pricing"
        })
        .await;

    browser.js("location.hash = 'faq'; return true").await;
    let faq = format!("{pricing}#faq");
    agent
        .wait_for("the hash change", |f| {
            f["type"] == "visitor:presence" && f["url"] == faq.as_str()
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn links_in_widget_messages_open_safely_and_other_schemes_stay_text() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = site(&server, &owner, chat_only(), "").await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    let mine = format!("Here: {site}/?from=chat.\njavascript:alert(1)");
    browser
        .js(&format!(
            "MyChat.prefill({}); return true",
            serde_json::to_string(&mine).unwrap()
        ))
        .await;
    click_in_widget(&browser, ".compose button[type=submit]").await;
    wait_message(&browser, &mine, "sent").await;

    let thread = the_thread(&server, &owner).await;
    let theirs = "Guide: https://docs.example.test/guide, or mailto:help@example.test\n\
                  not javascript:alert(document.domain) nor data:text/html,<b>x</b>";
    agent_says(&server, &owner, thread["id"].as_str().unwrap(), theirs).await;
    wait_message(&browser, theirs, "").await;

    let links = browser
        .js(&format!(
            "return [...{ROOT}.querySelectorAll('.log .bubble a')].map(a => \
             [a.getAttribute('href'), a.textContent, a.target, a.rel])"
        ))
        .await;
    let rel = "noopener noreferrer nofollow";
    assert_eq!(
        links,
        json!([
            [
                format!("{site}/?from=chat"),
                format!("{site}/?from=chat"),
                "_blank",
                rel
            ],
            [
                "https://docs.example.test/guide",
                "https://docs.example.test/guide",
                "_blank",
                rel
            ],
            [
                "mailto:help@example.test",
                "mailto:help@example.test",
                "_blank",
                rel
            ],
        ])
    );
    // Line breaks kept, the text whole, nothing else became an element.
    let look = browser
        .js(&format!(
            "const b = [...{ROOT}.querySelectorAll('.log .msg.in .bubble')].at(-1); \
             return [getComputedStyle(b).whiteSpace, [...b.querySelectorAll('*')].map(e => e.tagName)]"
        ))
        .await;
    assert_eq!(look, json!(["pre-wrap", ["A", "A"]]));

    // The link opens the page in a new tab; this one stays.
    let before = browser.client.windows().await.unwrap().len();
    click_in_widget(&browser, ".log .msg.out .bubble a").await;
    eventually(WAIT, "a new tab", || async {
        let n = browser.client.windows().await.unwrap().len();
        (n == before + 1).then_some(())
    })
    .await;
    assert_eq!(
        browser.js("return location.href").await,
        json!(format!("{site}/"))
    );
    browser.close().await;
}

/// A visitor identity token for `sub`, signed with a signing key of the
/// owner's organization (`secret` may be wrong on purpose).
fn identity_token(kid: &str, secret: &str, sub: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &json!({"sub": sub, "name": format!("User {sub}"), "iat": now, "exp": now + 600}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn identify_with_a_token_verifies_the_visitor_and_a_forged_one_is_refused() {
    use mychat::spaces::model::{IdentityVerification, SpaceSettings};
    let (server, owner) = TestServer::with_owner().await;
    let settings = SpaceSettings {
        identity_verification: IdentityVerification::Required,
        ..chat_only()
    };
    let (_, site) = site(&server, &owner, settings, "").await;
    let key = server
        .post(
            "/api/v1/signing-keys",
            &owner.token,
            json!({"name": "site"}),
        )
        .await;
    let key = key.created().clone();
    let (kid, secret) = (
        key["id"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    );
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    browser
        .js("window.__errors = []; MyChat.on('error', (e) => __errors.push(e.code)); return true")
        .await;

    // Not verified yet: the widget says why the message does not go.
    type_in_widget(&browser, ".compose textarea", "Hello?\u{E007}").await;
    browser
        .wait_for(
            "the sign-in note",
            &format!(
                "return [...{ROOT}.querySelectorAll('.sys')].some(n => n.textContent === 'Please sign in on this site to chat.')"
            ),
        )
        .await;

    // A forged token is refused and leaves the visitor as it was.
    let forged = identity_token(&kid, "not the secret", "CRM-1");
    browser
        .js(&format!(
            "MyChat.identify({{ token: {forged:?} }}); return true"
        ))
        .await;
    browser
        .wait_for(
            "the refusal",
            "return window.__errors.includes('identity_invalid')",
        )
        .await;

    // The real one verifies; the visitor may write now.
    let real = identity_token(&kid, &secret, "CRM-1");
    browser
        .js(&format!(
            "Promise.resolve(MyChat.identify({{ token: {real:?} }})).then(() => (window.__verified = true)); return true"
        ))
        .await;
    // Written once the server has verified the visitor.
    browser
        .wait_for("the verification", "return window.__verified === true")
        .await;
    type_in_widget(&browser, ".compose textarea", "Verified hello\u{E007}").await;
    wait_message(&browser, "Verified hello", "sent").await;
    let thread = the_thread(&server, &owner).await;
    let visitor = server
        .get(
            &format!("/api/v1/visitors/{}", thread["visitorId"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    assert_eq!(visitor.ok()["verified"], true);
    assert_eq!(visitor.ok()["externalId"], "CRM-1");
    browser.close().await;
}
