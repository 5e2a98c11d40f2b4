//! The widget's public REST side, over a real server: config and sessions
//! by widget key, visitor calls by session token, Origin checks, CORS, and
//! what agents see of it all.

use crate::harness::fixtures::{self, agent_message, space_with};
use crate::harness::{Owner, Reply, SITE, TestServer, pluck};
use mychat::spaces::model::{ChatSpace, RequireVisitorData, SpaceSettings};
use mychat::store::Reader;
use mychat::visitors::model::Visitor;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DEV_SITE: &str = "http://localhost:3000";
const EVIL: &str = "https://evil.test";
/// The user agent of the widget's calls here.
const BROWSER: &str = "WidgetTest/1.0";

async fn owner_and_space(server: &TestServer) -> (Owner, ChatSpace) {
    owner_and_space_with(server, SpaceSettings::default()).await
}

async fn owner_and_space_with(server: &TestServer, settings: SpaceSettings) -> (Owner, ChatSpace) {
    let owner = server.register("Acme", "ann@acme.test").await;
    let domains = ["site.test", "localhost:3000"];
    let space = space_with(server, &owner, "Site", &domains, settings).await;
    (owner, space)
}

/// A widget call as a browser on `origin` makes it.
async fn widget(
    server: &TestServer,
    method: Method,
    path: &str,
    origin: Option<&str>,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut headers = vec![("user-agent", BROWSER)];
    headers.extend(origin.map(|o| ("origin", o)));
    server
        .call_with(
            method,
            &format!("/api/v1/widget{path}"),
            token,
            body,
            &headers,
        )
        .await
}

/// A new visitor session from the allowed site: (token, visitor id).
async fn new_session(server: &TestServer, space: &ChatSpace) -> (String, String) {
    fixtures::visitor_session(
        server,
        &[("origin", SITE), ("user-agent", BROWSER)],
        json!({"key": space.widget_key, "locale": "pl", "referrer": "https://search.test/?q=x", "url": "https://site.test/pricing"}),
    )
    .await
}

/// A visitor's call from the allowed site, with its session token.
async fn as_visitor(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    widget(server, method, path, Some(SITE), Some(token), body).await
}

async fn say(server: &TestServer, token: &str, content: &str, client_msg_id: &str) -> Reply {
    let body = json!({"content": content, "clientMsgId": client_msg_id});
    as_visitor(server, Method::POST, "/messages", token, Some(body)).await
}

async fn poll(server: &TestServer, token: &str, query: &str) -> Value {
    let path = format!("/messages{query}");
    let r = as_visitor(server, Method::GET, &path, token, None).await;
    r.ok().clone()
}

fn contents(page: &Value) -> Vec<&str> {
    pluck(page, "content")
}

fn thread_ids(list: &Reply) -> Vec<&str> {
    pluck(list.ok(), "id")
}

async fn mark_read(server: &TestServer, token: &str, up_to: &str) -> Reply {
    let body = json!({"upTo": up_to});
    as_visitor(server, Method::POST, "/read", token, Some(body)).await
}

/// The visitor's read marker, as agents see it on the thread.
async fn visitor_read(server: &TestServer, owner: &Owner, thread: &str) -> Value {
    let r = server
        .get(&format!("/api/v1/threads/{thread}"), &owner.token)
        .await;
    r.ok()["visitorRead"].clone()
}

async fn patch_visitor(server: &TestServer, token: &str, body: Value) -> Reply {
    as_visitor(server, Method::PATCH, "/visitor", token, Some(body)).await
}

fn stored_visitor(server: &TestServer, id: &str) -> Visitor {
    let id = id.parse().expect("visitor id");
    let read = server.app_state.store.read().expect("read");
    read.visitor(id)
        .expect("visitor read")
        .expect("visitor stored")
}

#[tokio::test]
async fn config_is_found_by_key_and_origin_checked() {
    let server = TestServer::start().await;
    let (_, space) = owner_and_space(&server).await;
    let path = format!("/config?key={}", space.widget_key);

    let r = widget(&server, Method::GET, &path, Some(SITE), None, None).await;
    let c = r.ok();
    assert_eq!(c["chatSpaceId"], space.id.to_string());
    assert_eq!(c["title"], space.settings.title);
    assert_eq!(c["welcomeMessage"], space.settings.welcome_message);
    assert_eq!(c["accentColor"], space.settings.accent_color);
    assert_eq!(c["position"], "bottomRight");
    assert_eq!(c["theme"], "auto");
    assert_eq!(c["open"], true);
    assert_eq!(c["agentsOnline"], false);
    assert_eq!(c["offlineMessages"], true);
    assert_eq!(c["requireVisitorData"], "none");
    assert_eq!(c["attachments"]["allowed"], true);
    assert_eq!(c["attachments"]["maxCount"], 3);
    assert_eq!(c["attachments"]["maxSizeBytes"], 10 * 1024 * 1024);
    assert_eq!(r.headers["access-control-allow-origin"], SITE);
    // Settings an agent needs but a visitor does not stay private.
    assert!(c.get("retentionDays").is_none() && c.get("allowedDomains").is_none());

    let dev = widget(&server, Method::GET, &path, Some(DEV_SITE), None, None).await;
    dev.ok();
    let unknown = widget(
        &server,
        Method::GET,
        "/config?key=nope",
        Some(SITE),
        None,
        None,
    )
    .await;
    assert_eq!(unknown.err(404), "not_found");
    let foreign = widget(&server, Method::GET, &path, Some(EVIL), None, None).await;
    assert_eq!(foreign.err(403), "forbidden");
    let other_port = widget(
        &server,
        Method::GET,
        &path,
        Some("http://localhost:3001"),
        None,
        None,
    )
    .await;
    other_port.err(403);
}

#[tokio::test]
async fn session_token_works_resumes_and_is_stored_only_hashed() {
    let server = TestServer::start().await;
    let (_, space) = owner_and_space(&server).await;
    let (token, visitor_id) = new_session(&server, &space).await;

    // The token authenticates visitor calls.
    let page = poll(&server, &token, "").await;
    assert_eq!(page["thread"], Value::Null);
    assert_eq!(page["items"], json!([]));
    widget(
        &server,
        Method::GET,
        "/messages",
        Some(SITE),
        Some("not-a-token"),
        None,
    )
    .await
    .err(401);
    widget(&server, Method::GET, "/messages", Some(SITE), None, None)
        .await
        .err(401);

    // Stored under sha256(token), never under the token itself.
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    assert_eq!(mychat::auth::tokens::hash(&token), digest);
    let read = server.app_state.store.read().unwrap();
    let stored = read
        .visitor_by_token_hash(&digest)
        .unwrap()
        .expect("visitor under the hash");
    assert_eq!(stored.id.to_string(), visitor_id);
    assert!(
        read.visitor_by_token_hash(token.as_bytes())
            .unwrap()
            .is_none()
    );
    assert_eq!(stored.number, 1);
    assert_eq!(
        stored.metadata.user_agent.as_deref(),
        Some("WidgetTest/1.0")
    );
    assert_eq!(stored.metadata.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(stored.metadata.locale.as_deref(), Some("pl"));
    assert_eq!(
        stored.metadata.referrer.as_deref(),
        Some("https://search.test/?q=x")
    );
    assert_eq!(
        stored.metadata.current_url.as_deref(),
        Some("https://site.test/pricing")
    );
    let first_seen = stored.metadata.first_seen_at.expect("first seen");
    drop(read);

    // Resuming gives the same visitor and token back, and records the visit.
    let again = widget(
        &server,
        Method::POST,
        "/session",
        Some(SITE),
        None,
        Some(json!({"key": space.widget_key, "sessionToken": token, "url": "https://site.test/contact"})),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["resumed"], true);
    assert_eq!(again.body["visitorId"], visitor_id.as_str());
    assert_eq!(again.body["sessionToken"], token.as_str());
    let v = stored_visitor(&server, &visitor_id);
    assert_eq!(
        v.metadata.current_url.as_deref(),
        Some("https://site.test/contact")
    );
    assert!(v.metadata.last_seen_at.expect("last seen") > first_seen);
    assert_eq!(v.metadata.first_seen_at, Some(first_seen));

    // A second visitor gets the next number and a different token.
    let (token2, visitor2) = new_session(&server, &space).await;
    assert_ne!(token2, token);
    assert_ne!(visitor2, visitor_id);
    let v2 = stored_visitor(&server, &visitor2);
    assert_eq!(v2.number, 2);

    // An unknown token is no session: a new visitor.
    let stale = widget(
        &server,
        Method::POST,
        "/session",
        Some(SITE),
        None,
        Some(json!({"key": space.widget_key, "sessionToken": "forgotten"})),
    )
    .await;
    assert_eq!(stale.status, 201);
    assert_ne!(stale.body["visitorId"], visitor_id.as_str());
}

#[tokio::test]
async fn a_token_of_another_space_starts_a_new_visitor() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let other = space_with(
        &server,
        &owner,
        "Other",
        &["site.test"],
        SpaceSettings::default(),
    )
    .await;
    let (token, visitor_id) = new_session(&server, &space).await;
    let r = widget(
        &server,
        Method::POST,
        "/session",
        Some(SITE),
        None,
        Some(json!({"key": other.widget_key, "sessionToken": token})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["resumed"], false);
    assert_ne!(r.body["visitorId"], visitor_id.as_str());
    assert_ne!(r.body["sessionToken"], token.as_str());
}

#[tokio::test]
async fn session_needs_a_known_key_and_an_allowed_origin() {
    let server = TestServer::start().await;
    let (_, space) = owner_and_space(&server).await;
    let body = json!({"key": space.widget_key});
    let foreign = widget(
        &server,
        Method::POST,
        "/session",
        Some(EVIL),
        None,
        Some(body.clone()),
    )
    .await;
    foreign.err(403);
    let unknown = widget(
        &server,
        Method::POST,
        "/session",
        Some(SITE),
        None,
        Some(json!({"key": "nope"})),
    )
    .await;
    unknown.err(404);
    // Nothing was created by the refused calls: the first real visitor is #1.
    let (_, id) = new_session(&server, &space).await;
    let v = stored_visitor(&server, &id);
    assert_eq!(v.number, 1);
}

#[tokio::test]
async fn visitor_message_reaches_agents_and_their_reply_comes_back_by_polling() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;

    let sent = say(&server, &token, "Hello, is anyone there?", "m-1").await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let thread = sent.body["thread"]["id"]
        .as_str()
        .expect("thread id")
        .to_owned();
    assert_eq!(sent.body["thread"]["status"], "unassigned");
    assert_eq!(sent.body["message"]["senderType"], "visitor");
    let first_id = sent.body["message"]["id"].as_str().unwrap().to_owned();

    let available = server
        .get("/api/v1/threads?view=available", &owner.token)
        .await;
    assert_eq!(thread_ids(&available), vec![thread.as_str()]);

    let reply_id = agent_message(
        &server,
        &owner.token,
        &thread,
        "Yes, how can I help?",
        false,
    )
    .await;
    let note_id = agent_message(
        &server,
        &owner.token,
        &thread,
        "Looks like a returning customer",
        true,
    )
    .await;

    let news = poll(&server, &token, &format!("?after={first_id}")).await;
    assert_eq!(contents(&news), vec!["Yes, how can I help?"]);
    assert_eq!(news["items"][0]["id"], reply_id.as_str());
    assert_eq!(news["thread"]["id"], thread.as_str());
    assert_eq!(news["thread"]["status"], "active");
    // Nothing after the reply: the internal note is not there to find.
    let nothing = poll(&server, &token, &format!("?after={reply_id}")).await;
    assert_eq!(nothing["items"], json!([]));

    // The newest page holds everything the visitor may see, and no note.
    let all = poll(&server, &token, "").await;
    assert_eq!(
        contents(&all),
        vec!["Hello, is anyone there?", "Yes, how can I help?"]
    );
    assert!(!all.to_string().contains(&note_id));
    assert!(!all.to_string().contains("returning customer"));

    // Agents do see the note.
    let agent_view = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await;
    assert_eq!(crate::harness::spoken(agent_view.ok()).len(), 3);
}

#[tokio::test]
async fn polling_pages_forward_from_the_cursor() {
    let server = TestServer::start().await;
    let (_, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;
    for i in 0..5 {
        say(&server, &token, &format!("m{i}"), &format!("c{i}"))
            .await
            .ok();
    }
    let newest = poll(&server, &token, "?limit=2").await;
    assert_eq!(contents(&newest), vec!["m3", "m4"]);
    let first = poll(&server, &token, "?limit=50").await;
    let m0 = first["items"][0]["id"].as_str().unwrap().to_owned();
    let page = poll(&server, &token, &format!("?after={m0}&limit=2")).await;
    assert_eq!(contents(&page), vec!["m1", "m2"]);
    let cursor = page["nextCursor"]
        .as_str()
        .expect("more to come")
        .to_owned();
    let rest = poll(&server, &token, &format!("?after={cursor}&limit=2")).await;
    assert_eq!(contents(&rest), vec!["m3", "m4"]);
    widget(
        &server,
        Method::GET,
        "/messages?limit=0",
        Some(SITE),
        Some(&token),
        None,
    )
    .await
    .err(400);
}

#[tokio::test]
async fn sending_twice_with_one_client_msg_id_stores_one_message() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;

    let first = say(&server, &token, "Only once", "retry-me").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = say(&server, &token, "Only once", "retry-me").await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["message"]["id"], first.body["message"]["id"]);
    assert_eq!(second.body["thread"]["id"], first.body["thread"]["id"]);

    let thread = first.body["thread"]["id"].as_str().unwrap();
    let list = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await;
    assert_eq!(list.ok()["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        contents(&poll(&server, &token, "").await),
        vec!["Only once"]
    );
}

#[tokio::test]
async fn after_closing_the_next_message_starts_a_new_thread() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;

    let first = say(&server, &token, "First chat", "a").await;
    let old = first.body["thread"]["id"].as_str().unwrap().to_owned();
    let closed = widget(
        &server,
        Method::POST,
        "/close",
        Some(SITE),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(closed.ok()["thread"]["id"], old.as_str());
    assert_eq!(closed.body["thread"]["status"], "closed");
    // The ended thread is still what the widget shows until a new one starts.
    let shown = poll(&server, &token, "").await;
    assert_eq!(shown["thread"]["status"], "closed");

    let next = say(&server, &token, "Second chat", "b").await;
    assert_eq!(next.status, 201);
    let new = next.body["thread"]["id"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(next.body["thread"]["status"], "unassigned");
    let available = server
        .get("/api/v1/threads?view=available", &owner.token)
        .await;
    assert_eq!(thread_ids(&available), vec![new]);
    assert_eq!(
        contents(&poll(&server, &token, "").await),
        vec!["Second chat"]
    );

    // Closing twice: the second has nothing open to close.
    widget(
        &server,
        Method::POST,
        "/close",
        Some(SITE),
        Some(&token),
        None,
    )
    .await
    .ok();
    let none = widget(
        &server,
        Method::POST,
        "/close",
        Some(SITE),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(none.ok()["thread"], Value::Null);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;

    let r = widget(
        &server,
        Method::POST,
        "/messages",
        Some(EVIL),
        Some(&token),
        Some(json!({"content": "from a stolen token", "clientMsgId": "x"})),
    )
    .await;
    assert_eq!(r.err(403), "forbidden");
    widget(
        &server,
        Method::GET,
        "/messages",
        Some(EVIL),
        Some(&token),
        None,
    )
    .await
    .err(403);
    widget(
        &server,
        Method::POST,
        "/close",
        Some(EVIL),
        Some(&token),
        None,
    )
    .await
    .err(403);

    let page = poll(&server, &token, "").await;
    assert_eq!(page["thread"], Value::Null);
    assert_eq!(page["items"], json!([]));
    let available = server
        .get("/api/v1/threads?view=available", &owner.token)
        .await;
    assert!(thread_ids(&available).is_empty());
}

#[tokio::test]
async fn the_offline_form_leaves_a_thread_agents_see() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let (token, visitor_id) = new_session(&server, &space).await;

    let r = widget(
        &server,
        Method::POST,
        "/offline",
        Some(SITE),
        Some(&token),
        Some(json!({"name": "Bob", "email": "Bob@Example.com", "content": "Call me back please"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let thread = r.body["thread"]["id"].as_str().expect("thread").to_owned();
    assert_eq!(r.body["thread"]["status"], "unassigned");

    let available = server
        .get("/api/v1/threads?view=available", &owner.token)
        .await;
    assert_eq!(thread_ids(&available), vec![thread.as_str()]);
    let t = &available.body["items"][0];
    assert_eq!(t["subject"], "Offline message");
    assert_eq!(t["visitorName"], "Bob");
    let msgs = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await;
    assert_eq!(contents(msgs.ok()), vec!["Call me back please"]);
    assert_eq!(msgs.body["items"][0]["senderType"], "visitor");

    let v = stored_visitor(&server, &visitor_id);
    assert_eq!(v.display_name.as_deref(), Some("Bob"));
    assert_eq!(v.email.as_deref(), Some("bob@example.com"));

    let bad = widget(
        &server,
        Method::POST,
        "/offline",
        Some(SITE),
        Some(&token),
        Some(json!({"email": "not an address", "content": "x"})),
    )
    .await;
    bad.err(400);
}

#[tokio::test]
async fn the_offline_form_is_refused_when_the_space_takes_none() {
    let server = TestServer::start().await;
    let settings = SpaceSettings {
        offline_messages: false,
        ..SpaceSettings::default()
    };
    let (owner, space) = owner_and_space_with(&server, settings).await;
    let (token, _) = new_session(&server, &space).await;
    let r = widget(
        &server,
        Method::POST,
        "/offline",
        Some(SITE),
        Some(&token),
        Some(json!({"email": "bob@example.com", "content": "hello"})),
    )
    .await;
    assert_eq!(r.err(409), "offline_messages_disabled");
    let available = server
        .get("/api/v1/threads?view=available", &owner.token)
        .await;
    assert!(thread_ids(&available).is_empty());
}

#[tokio::test]
async fn session_creation_is_rate_limited_per_ip_but_resuming_is_not() {
    let server = TestServer::start_with(|c| c.limits.sessions_per_ip_per_minute = 2).await;
    let (_, space) = owner_and_space(&server).await;
    let (token, visitor_id) = new_session(&server, &space).await;
    new_session(&server, &space).await;

    let body = json!({"key": space.widget_key});
    let third = widget(
        &server,
        Method::POST,
        "/session",
        Some(SITE),
        None,
        Some(body),
    )
    .await;
    assert_eq!(third.err(429), "rate_limited");
    let retry = third.retry_after();
    assert!(retry >= 1);
    assert_eq!(
        third.headers["access-control-expose-headers"],
        "retry-after"
    );

    let resumed = widget(
        &server,
        Method::POST,
        "/session",
        Some(SITE),
        None,
        Some(json!({"key": space.widget_key, "sessionToken": token})),
    )
    .await;
    assert_eq!(resumed.ok()["visitorId"], visitor_id.as_str());
}

#[tokio::test]
async fn visitor_messages_are_rate_limited_per_visitor() {
    let server = TestServer::start_with(|c| c.limits.visitor_messages_per_minute = 2).await;
    let (_, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;
    let (other, _) = new_session(&server, &space).await;
    say(&server, &token, "one", "1").await.ok();
    say(&server, &token, "two", "2").await.ok();
    let third = say(&server, &token, "three", "3").await;
    third.err(429);
    assert!(third.headers.contains_key("retry-after"));
    say(&server, &other, "someone else", "1").await.ok();
}

#[tokio::test]
async fn cors_preflight_and_responses_echo_the_origin() {
    let server = TestServer::start().await;
    let (_, space) = owner_and_space(&server).await;
    for path in [
        "/api/v1/widget/messages",
        "/api/v1/widget/session",
        "/api/v1/widget/visitor",
    ] {
        let r = server
            .client
            .request(Method::OPTIONS, server.url(path))
            .header("origin", SITE)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}");
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], SITE);
        let list = |name: &str| -> Vec<String> {
            h[name]
                .to_str()
                .unwrap()
                .split(',')
                .map(|v| v.trim().to_ascii_lowercase())
                .collect()
        };
        assert_eq!(
            list("access-control-allow-methods"),
            ["get", "post", "patch", "options"]
        );
        assert_eq!(
            list("access-control-allow-headers"),
            ["authorization", "content-type"]
        );
        assert_eq!(h["access-control-max-age"], "600");
    }

    let (token, _) = new_session(&server, &space).await;
    let r = widget(
        &server,
        Method::GET,
        "/messages",
        Some(DEV_SITE),
        Some(&token),
        None,
    )
    .await;
    r.ok();
    assert_eq!(r.headers["access-control-allow-origin"], DEV_SITE);
    assert!(
        r.headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().eq_ignore_ascii_case("origin"))
    );
    // Errors are readable by the widget too.
    let e = widget(
        &server,
        Method::GET,
        "/messages",
        Some(SITE),
        Some("bad"),
        None,
    )
    .await;
    e.err(401);
    assert_eq!(e.headers["access-control-allow-origin"], SITE);
    // Without an Origin (server to server) there is nothing to allow.
    let plain = widget(&server, Method::GET, "/messages", None, Some(&token), None).await;
    plain.ok();
    assert!(plain.headers.get("access-control-allow-origin").is_none());
    // Agent routes get no CORS headers: the agent app is same-origin.
    let agent = server
        .client
        .request(Method::OPTIONS, server.url("/api/v1/threads"))
        .header("origin", SITE)
        .send()
        .await
        .unwrap();
    assert!(agent.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn reading_moves_the_visitor_marker_agents_see() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;
    let sent = say(&server, &token, "Question", "q").await;
    let thread = sent.body["thread"]["id"].as_str().unwrap().to_owned();
    let reply1 = agent_message(&server, &owner.token, &thread, "Answer one", false).await;
    let note = agent_message(&server, &owner.token, &thread, "private", true).await;
    let reply2 = agent_message(&server, &owner.token, &thread, "Answer two", false).await;

    let r = mark_read(&server, &token, &reply1).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let m = visitor_read(&server, &owner, &thread).await;
    assert_eq!(m["upTo"], reply1.as_str());
    assert_eq!(m["seen"], 1);

    // An internal note, an unknown id or another visitor's message: 404,
    // and the marker stays.
    assert_eq!(
        mark_read(&server, &token, &note).await.err(404),
        "not_found"
    );
    assert_eq!(
        mark_read(&server, &token, &uuid::Uuid::now_v7().to_string())
            .await
            .err(404),
        "not_found"
    );
    let (other, _) = new_session(&server, &space).await;
    let theirs = say(&server, &other, "mine", "o").await;
    let theirs = theirs.body["message"]["id"].as_str().unwrap().to_owned();
    mark_read(&server, &token, &theirs).await.err(404);
    mark_read(&server, &token, "not-an-id").await.err(400);
    assert_eq!(
        visitor_read(&server, &owner, &thread).await["upTo"],
        reply1.as_str()
    );

    mark_read(&server, &token, &reply2).await;
    let m = visitor_read(&server, &owner, &thread).await;
    assert_eq!(m["upTo"], reply2.as_str());
    assert_eq!(m["seen"], 2);
}

#[tokio::test]
async fn visitor_names_themselves_and_data_can_be_required_first() {
    let server = TestServer::start().await;
    let settings = SpaceSettings {
        require_visitor_data: RequireVisitorData::BeforeFirstMessage,
        ..SpaceSettings::default()
    };
    let (owner, space) = owner_and_space_with(&server, settings).await;
    let (token, visitor_id) = new_session(&server, &space).await;

    let refused = say(&server, &token, "hi", "1").await;
    refused.err(422);
    let available = server
        .get("/api/v1/threads?view=available", &owner.token)
        .await;
    assert!(thread_ids(&available).is_empty());

    let r = patch_visitor(
        &server,
        &token,
        json!({"displayName": " Carol ", "email": "Carol@Example.com", "phone": "+48 22 123"}),
    )
    .await;
    assert_eq!(
        r.ok(),
        &json!({"visitorId": visitor_id, "displayName": "Carol", "email": "carol@example.com", "phone": "+48 22 123"})
    );
    let invalid = [
        json!({"email": "nope"}),
        json!({"displayName": "x".repeat(101)}),
        json!({"phone": "1".repeat(41)}),
        json!({"externalId": "crm-1"}),
    ];
    for body in invalid {
        patch_visitor(&server, &token, body).await.err(400);
    }
    // Absent leaves a field; null clears it.
    let r = patch_visitor(&server, &token, json!({"phone": null})).await;
    assert_eq!(r.ok()["phone"], Value::Null);
    assert_eq!(r.body["email"], "carol@example.com");

    let sent = say(&server, &token, "hi", "1").await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let available = server
        .get("/api/v1/threads?view=available", &owner.token)
        .await;
    assert_eq!(available.ok()["items"][0]["visitorName"], "Carol");
}

#[tokio::test]
async fn messages_are_bounded_and_validated() {
    let server = TestServer::start().await;
    let (_, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;
    say(&server, &token, &"x".repeat(5001), "long")
        .await
        .err(400);
    say(&server, &token, "   ", "blank").await.err(400);
    let missing_id = widget(
        &server,
        Method::POST,
        "/messages",
        Some(SITE),
        Some(&token),
        Some(json!({"content": "hi"})),
    )
    .await;
    missing_id.err(400);
    let internal = widget(
        &server,
        Method::POST,
        "/messages",
        Some(SITE),
        Some(&token),
        Some(json!({"content": "hi", "clientMsgId": "i", "internal": true})),
    )
    .await;
    internal.err(400);
    let page = poll(&server, &token, "").await;
    assert_eq!(page["thread"], Value::Null);
    say(&server, &token, &"x".repeat(5000), "max").await.ok();
}

#[tokio::test]
async fn a_visitor_lists_and_reads_only_their_own_earlier_conversations() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let (token, _) = new_session(&server, &space).await;

    let first = say(&server, &token, "First chat", "a").await;
    let old = first.body["thread"]["id"].as_str().unwrap().to_owned();
    agent_message(&server, &owner.token, &old, "First answer", false).await;
    agent_message(&server, &owner.token, &old, "A note for agents", true).await;
    as_visitor(&server, Method::POST, "/close", &token, None)
        .await
        .ok();
    let next = say(&server, &token, "Second chat", "b").await;
    let new = next.body["thread"]["id"].as_str().unwrap().to_owned();

    // Newest first, each with the start of its first message.
    let list = as_visitor(&server, Method::GET, "/threads", &token, None).await;
    let items = list.ok()["items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![new.as_str(), old.as_str()]);
    assert_eq!(items[1]["status"], "closed");
    assert_eq!(items[1]["preview"], "First chat");
    assert!(items[1]["closedAt"].is_string());

    // The earlier conversation reads like the current one: no notes.
    let page = poll(&server, &token, &format!("?threadId={old}")).await;
    assert_eq!(contents(&page), vec!["First chat", "First answer"]);
    assert_eq!(page["thread"]["id"], old.as_str());
    // Without threadId, the current conversation as before.
    assert_eq!(
        contents(&poll(&server, &token, "").await),
        vec!["Second chat"]
    );

    // Another visitor of the same space sees none of it.
    let (other, _) = new_session(&server, &space).await;
    let list = as_visitor(&server, Method::GET, "/threads", &other, None).await;
    assert_eq!(list.ok()["items"], json!([]));
    let foreign = as_visitor(
        &server,
        Method::GET,
        &format!("/messages?threadId={old}"),
        &other,
        None,
    )
    .await;
    assert_eq!(foreign.err(404), "not_found");
    // Without a session, or with a thread id that is not one: refused.
    let r = widget(&server, Method::GET, "/threads", Some(SITE), None, None).await;
    assert_eq!(r.status, 401);
    let r = as_visitor(
        &server,
        Method::GET,
        "/messages?threadId=nope",
        &token,
        None,
    )
    .await;
    assert_eq!(r.err(400), "invalid_query");
}

#[tokio::test]
async fn title_and_welcome_per_locale_are_validated_and_reach_the_config() {
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let path = format!("/api/v1/chat-spaces/{}", space.id);
    let words =
        json!({"pl": {"title": "Pomoc", "welcomeMessage": "Cześć!"}, "ru": {"title": "Помощь"}});
    let r = server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"translations": words}}),
        )
        .await;
    assert_eq!(
        r.ok()["settings"]["translations"]["ru"]["welcomeMessage"],
        ""
    );
    let config = widget(
        &server,
        Method::GET,
        &format!("/config?key={}", space.widget_key),
        Some(SITE),
        None,
        None,
    )
    .await;
    assert_eq!(config.ok()["translations"]["pl"]["title"], "Pomoc");
    assert_eq!(
        config.ok()["translations"]["pl"]["welcomeMessage"],
        "Cześć!"
    );

    // The map is replaced whole: a language left out is gone.
    let r = server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"translations": {"pl": {"title": "Pomoc!"}}}}),
        )
        .await;
    assert_eq!(
        r.ok()["settings"]["translations"],
        json!({"pl": {"title": "Pomoc!", "welcomeMessage": ""}})
    );

    // Unknown languages, unknown fields and overlong words are refused,
    // and nothing changes.
    for bad in [
        json!({"xx": {"title": "?"}}),
        json!({"": {"title": "?"}}),
        json!({"pl": {"title": "x".repeat(101)}}),
        json!({"pl": {"welcomeMessage": "x".repeat(1001)}}),
        json!({"pl": {"title": "ok", "color": "red"}}),
        json!({"pl": "Pomoc"}),
    ] {
        let r = server
            .patch(
                &path,
                &owner.token,
                json!({"settings": {"translations": bad}}),
            )
            .await;
        assert_eq!(r.err(400), "validation_failed", "{bad}");
    }
    let now = server.get(&path, &owner.token).await;
    assert_eq!(
        now.ok()["settings"]["translations"],
        json!({"pl": {"title": "Pomoc!", "welcomeMessage": ""}})
    );
}

#[tokio::test]
async fn the_header_team_is_chosen_from_the_spaces_agents_and_reaches_the_config() {
    use mychat::accounts::model::Role;
    let server = TestServer::start().await;
    let (owner, space) = owner_and_space(&server).await;
    let pia = fixtures::agent(&server, &owner, "Pia", Role::Agent).await;
    let config = || async {
        let path = format!("/config?key={}", space.widget_key);
        let r = widget(&server, Method::GET, &path, Some(SITE), None, None).await;
        r.ok()["agents"].clone()
    };
    // Auto: the space's agents (the owner and Pia), offline, by name.
    let names: Vec<String> = config()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["Acme owner", "Pia"]);

    let path = format!("/api/v1/chat-spaces/{}", space.id);
    server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"headerAgents": [pia.id]}}),
        )
        .await
        .ok();
    assert_eq!(
        config().await,
        json!([{"id": pia.id, "name": "Pia", "online": false, "avatar": null}])
    );

    // More than three, twice the same, another organization's or an
    // unknown agent: refused, nothing changes.
    let other = server.register("Other", "olga@other.test").await;
    let four: Vec<String> = (0..4).map(|_| pia.id.clone()).collect();
    for bad in [
        json!(four),
        json!([pia.id, pia.id]),
        json!([other.agent_id]),
        json!(["00000000-0000-0000-0000-000000000000"]),
        json!(["nope"]),
    ] {
        let r = server
            .patch(
                &path,
                &owner.token,
                json!({"settings": {"headerAgents": bad}}),
            )
            .await;
        assert_eq!(r.err(400), "validation_failed", "{bad}");
    }
    assert_eq!(config().await[0]["name"], "Pia");
    // Back to auto.
    server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"headerAgents": null}}),
        )
        .await
        .ok();
    assert_eq!(config().await.as_array().unwrap().len(), 2);
}
