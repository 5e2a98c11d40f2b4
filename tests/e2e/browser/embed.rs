//! The member embed (`/embed.js`) in a real browser, on the platform's own
//! page served from another origin: inline mode for one object (history,
//! sending, live replies, joining as a potential member, the empty state
//! for outsiders), full mode's lists, and a member token renewed through
//! `MyChat.onTokenExpired` without a reload.

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::harness::browser::{Browser, host_site_on, js_str};
use crate::harness::{Owner, TestServer};

const SHADOW: &str = "document.getElementById('chat').shadowRoot";

struct Platform {
    server: TestServer,
    owner: Owner,
    site: String,
    space_id: String,
    management: String,
    key_id: String,
    key_secret: String,
}

/// A platform whose page mounts the embed as its URL's fragment says:
/// `#token=…&mode=inline|full&fresh=…` (a fresh token for renewals).
async fn platform() -> Platform {
    let (server, owner) = TestServer::with_owner().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let created = |path: &'static str, body: Value| {
        let (server, token) = (&server, owner.token.clone());
        async move { server.post(path, &token, body).await.ok().clone() }
    };
    let space = created(
        "/api/v1/chat-spaces",
        json!({"name": "Platform", "allowedDomains": [format!("127.0.0.1:{}", addr.port())]}),
    )
    .await;
    let token = created(
        "/api/v1/api-tokens",
        json!({"name": "backend", "scopes": ["management"]}),
    )
    .await;
    let key = created("/api/v1/signing-keys", json!({"name": "main"})).await;
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Platform</title>
<style>* {{ font-size: 30px !important; color: red !important; }}</style></head>
<body><h1>Order 42</h1><div id="chat" style="height:480px"></div>
<script src="{base}/embed.js"></script>
<script>
  const p = new URLSearchParams(location.hash.slice(1));
  window.__renewed = 0;
  MyChat.onTokenExpired(() => {{ window.__renewed++; return Promise.resolve(p.get('fresh')); }});
  MyChat.mount(document.getElementById('chat'), {{ token: p.get('token'), mode: p.get('mode'), object: {{ type: 'order', id: '42' }}, locale: 'en' }});
</script></body></html>"#,
        base = server.base
    );
    host_site_on(listener, page).await;
    let text = |v: &Value, f: &str| v[f].as_str().unwrap().to_owned();
    Platform {
        site: format!("http://{addr}/"),
        space_id: text(&space, "id"),
        management: text(&token, "token"),
        key_id: text(&key, "id"),
        key_secret: text(&key, "secret"),
        server,
        owner,
    }
}

impl Platform {
    fn token(&self, sub: &str, tenant: &str, lifetime: i64) -> String {
        let now = Utc::now().timestamp();
        let claims = json!({
            "sub": sub, "name": format!("User {sub}"), "tenant": tenant,
            "scope1": ["ops"], "scope2": ["eu"], "iat": now, "exp": now + lifetime,
        });
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(self.key_secret.as_bytes()),
        )
        .unwrap()
    }

    /// The conversation of order `id`, with these participants.
    async fn order(&self, id: &str, participants: &[&str]) -> String {
        let r = self
            .server
            .post(
                "/api/v1/management/threads",
                &self.management,
                json!({
                    "chatSpaceId": self.space_id,
                    "externalRef": {"type": "order", "id": id},
                    "subject": format!("Order {id}"),
                    "participants": participants,
                    "accessScopes": [{"tenant": "acme", "scope1": ["ops"], "scope2": ["eu"]}],
                }),
            )
            .await;
        r.created()["id"].as_str().unwrap().to_owned()
    }

    async fn system_says(&self, thread: &str, text: &str) {
        self.server
            .post(
                &format!("/api/v1/management/threads/{thread}/messages"),
                &self.management,
                json!({"content": text, "clientMsgId": uuid::Uuid::new_v4().to_string()}),
            )
            .await
            .created();
    }

    async fn contents(&self, thread: &str) -> Vec<String> {
        self.server
            .all_messages(&self.owner.token, thread)
            .await
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn open(&self, browser: &Browser, fragment: &str) {
        browser.goto("about:blank").await;
        browser.goto(&format!("{}#{fragment}", self.site)).await;
    }
}

async fn wait_text(browser: &Browser, selector: &str, text: &str) {
    browser
        .wait_for(
            &format!("{selector} with {text:?}"),
            &format!(
                "const r = {SHADOW}; return !!r && [...r.querySelectorAll({})].some(e => e.textContent.includes({}))",
                js_str(selector),
                js_str(text)
            ),
        )
        .await;
}

async fn click(browser: &Browser, selector: &str) {
    browser
        .wait_for(
            &format!("{selector} to click"),
            &format!(
                "const el = {SHADOW}?.querySelector({}); if (!el) return false; el.click(); return true;",
                js_str(selector)
            ),
        )
        .await;
}

async fn type_and_send(browser: &Browser, text: &str) {
    browser
        .wait_for(
            "the compose box",
            &format!(
                "const t = {SHADOW}?.querySelector('textarea'); if (!t) return false; t.value = {}; \
                 t.closest('form').requestSubmit(); return true;",
                js_str(text)
            ),
        )
        .await;
}

#[tokio::test]
async fn inline_mode_shows_the_objects_conversation_sends_and_gets_live_replies() {
    let p = platform().await;
    let thread = p.order("42", &["u1", "u2"]).await;
    p.system_says(&thread, "Order confirmed").await;
    let browser = Browser::start().await;
    p.open(
        &browser,
        &format!("mode=inline&token={}", p.token("u1", "acme", 3600)),
    )
    .await;
    wait_text(&browser, ".log .bubble", "Order confirmed").await;
    wait_text(&browser, ".bar h2", "Order 42").await;
    // The host page's CSS does not reach inside.
    let size = browser
        .js(&format!(
            "return getComputedStyle({SHADOW}.querySelector('.bar h2')).fontSize"
        ))
        .await;
    assert_eq!(size, "15px");

    type_and_send(&browser, "Truck arrives at 10").await;
    wait_text(
        &browser,
        ".msg.mine[data-id] .bubble",
        "Truck arrives at 10",
    )
    .await;
    assert_eq!(
        p.contents(&thread).await,
        vec!["Order confirmed", "Truck arrives at 10"]
    );

    // Another member reads it: the sender sees "Read".
    let sent = p.server.all_messages(&p.owner.token, &thread).await;
    let mine = sent.last().unwrap()["id"].as_str().unwrap().to_owned();
    let r = p
        .server
        .post(
            &format!("/api/v1/dialogs/{thread}/read"),
            &p.token("u2", "acme", 3600),
            json!({"upTo": mine}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    wait_text(&browser, ".msg.mine .seen", "Read").await;

    // A reply quotes what it answers.
    click(&browser, ".msg.mine[data-id] .rep").await;
    wait_text(&browser, ".replying span", "Truck arrives at 10").await;
    type_and_send(&browser, "At gate 3").await;
    wait_text(&browser, ".msg.mine[data-id] .quote", "Truck arrives at 10").await;
    let all = p.server.all_messages(&p.owner.token, &thread).await;
    assert_eq!(all.last().unwrap()["replyToId"], mine.as_str());

    p.system_says(&thread, "Customs <b>cleared</b>").await;
    wait_text(&browser, ".log .bubble", "Customs <b>cleared</b>").await;
    let bold = browser
        .js(&format!("return {SHADOW}.querySelectorAll('b').length"))
        .await;
    assert_eq!(bold, 0, "text stays text");

    // Links open safely; other schemes stay text.
    p.system_says(
        &thread,
        "Track it at https://track.test/42. Not javascript:alert(1)",
    )
    .await;
    wait_text(&browser, ".log .bubble a", "https://track.test/42").await;
    let links = browser
        .js(&format!(
            "return [...{SHADOW}.querySelectorAll('.bubble a')].map(a => [a.href, a.target, a.rel])"
        ))
        .await;
    assert_eq!(
        links,
        json!([[
            "https://track.test/42",
            "_blank",
            "noopener noreferrer nofollow"
        ]])
    );
    browser.close().await;
}

#[tokio::test]
async fn a_potential_member_joins_and_an_outsider_sees_a_clear_empty_state() {
    let p = platform().await;
    let thread = p.order("42", &["u1"]).await;
    let browser = Browser::start().await;
    p.open(
        &browser,
        &format!("mode=inline&token={}", p.token("u2", "acme", 3600)),
    )
    .await;
    click(&browser, "button.join").await;
    type_and_send(&browser, "Joining in").await;
    wait_text(&browser, ".msg.mine[data-id] .bubble", "Joining in").await;
    assert_eq!(p.contents(&thread).await, vec!["Joining in"]);

    // A file goes through the upload and arrives as a message with it.
    browser
        .js(&format!(
            "const input = {SHADOW}.querySelector('input[type=file]'); const dt = new DataTransfer(); \
             dt.items.add(new File(['delivery note'], 'note.txt', {{ type: 'text/plain' }})); \
             input.files = dt.files; input.dispatchEvent(new Event('change')); return true;"
        ))
        .await;
    wait_text(&browser, ".msg.mine[data-id] .file", "note.txt").await;
    let messages = p.server.all_messages(&p.owner.token, &thread).await;
    assert_eq!(
        messages.last().unwrap()["attachments"][0]["name"],
        "note.txt"
    );

    p.open(
        &browser,
        &format!("mode=inline&token={}", p.token("u3", "other", 3600)),
    )
    .await;
    wait_text(&browser, ".note", "You cannot see this conversation.").await;
    let compose = browser
        .js(&format!("return !!{SHADOW}.querySelector('textarea')"))
        .await;
    assert_eq!(compose, false);
    browser.close().await;
}

#[tokio::test]
async fn full_mode_lists_participating_and_available_conversations() {
    let p = platform().await;
    let mine = p.order("42", &["u1"]).await;
    p.order("43", &["u9"]).await;
    p.system_says(&mine, "Loaded").await;
    let browser = Browser::start().await;
    p.open(
        &browser,
        &format!("mode=full&token={}", p.token("u1", "acme", 3600)),
    )
    .await;
    wait_text(&browser, ".list li", "Order 42").await;
    wait_text(&browser, ".list li", "Loaded").await;
    click(&browser, ".tabs button:nth-child(2)").await;
    wait_text(&browser, ".list li", "Order 43").await;
    click(&browser, ".list li button").await;
    click(&browser, "button.join").await;
    type_and_send(&browser, "Count me in").await;
    wait_text(&browser, ".msg.mine[data-id] .bubble", "Count me in").await;
    click(&browser, "button.back").await;
    click(&browser, ".tabs button:nth-child(1)").await;
    wait_text(&browser, ".list li", "Order 43").await;
    browser.close().await;
}

#[tokio::test]
async fn an_expired_member_token_is_renewed_by_the_host_page_without_a_reload() {
    let p = platform().await;
    let thread = p.order("42", &["u1"]).await;
    let browser = Browser::start().await;
    let short = p.token("u1", "acme", 3);
    let fresh = p.token("u1", "acme", 3600);
    p.open(
        &browser,
        &format!("mode=inline&token={short}&fresh={fresh}"),
    )
    .await;
    wait_text(&browser, ".bar h2", "Order 42").await;
    // The server closes the socket when the token expires; the embed asks
    // the page for a new one and carries on.
    browser
        .wait_for("a renewal", "return window.__renewed >= 1")
        .await;
    p.system_says(&thread, "After renewal").await;
    wait_text(&browser, ".log .bubble", "After renewal").await;
    type_and_send(&browser, "Still here").await;
    wait_text(&browser, ".msg.mine[data-id] .bubble", "Still here").await;
    browser.close().await;
}
