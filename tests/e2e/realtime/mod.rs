//! Real time over a real server and real WebSocket clients: the widget and
//! agent sockets, every event of the protocol in both directions, the
//! delivery guarantees (ack after commit, idempotent retries, exact resume,
//! resync after lag), hostile input, resources and shutdown.
//!
//! Nothing here sleeps to let an event happen: each test waits for the frame
//! it expects (with a timeout). "Nothing arrived" is proven by ordering: the
//! hub delivers in commit order and a socket answers its frames in order, so
//! a later event (or the answer to a later frame) arriving first is proof.

use std::time::Duration;

use crate::harness::ws::{self, Refused, Ws, kind};
use crate::harness::{Owner, Reply, TestServer, fixtures};
use mychat::accounts::model::Role;
use mychat::events::Event;
use mychat::ids::{AgentId, OrgId, ThreadId};
use mychat::messages::service::{self as messages, Author, NewMessage};
use mychat::spaces::model::{ChatSpace, OpeningHours, SpaceSettings};
use mychat::store::Reader;
use reqwest::Method;
use serde_json::{Value, json};

const SITE: &str = "https://site.test";

struct World {
    server: TestServer,
    owner: Owner,
    space: ChatSpace,
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(adjust: impl FnOnce(&mut mychat::Config)) -> World {
    let server = TestServer::start_with(adjust).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&server, &owner).await;
    World {
        server,
        owner,
        space,
    }
}

/// A visitor session as the widget opens it: (session token, visitor id).
async fn session(server: &TestServer, space: &ChatSpace) -> (String, String) {
    session_from(server, space, SITE).await
}

async fn session_from(server: &TestServer, space: &ChatSpace, origin: &str) -> (String, String) {
    let resp = server
        .client
        .post(server.url("/api/v1/widget/session"))
        .header("origin", origin)
        .json(&json!({ "key": space.widget_key }))
        .send()
        .await
        .expect("session call");
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("session body");
    (
        body["sessionToken"].as_str().expect("token").to_owned(),
        body["visitorId"].as_str().expect("visitor id").to_owned(),
    )
}

fn widget_url(server: &TestServer, key: &str, token: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("ws://{}/ws/widget", server.addr)).unwrap();
    url.query_pairs_mut()
        .append_pair("key", key)
        .append_pair("token", token);
    url.to_string()
}

fn agent_url(server: &TestServer) -> String {
    format!("ws://{}/ws/agent", server.addr)
}

async fn try_widget(
    server: &TestServer,
    key: &str,
    token: &str,
    origin: Option<&str>,
) -> Result<Ws, Refused> {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    ws::connect(&widget_url(server, key, token), &headers).await
}

/// A widget socket from the allowed site, and its `hello`.
async fn widget(server: &TestServer, space: &ChatSpace, token: &str) -> (Ws, Value) {
    let mut ws = try_widget(server, &space.widget_key, token, Some(SITE))
        .await
        .expect("widget socket opens");
    let hello = ws.expect("hello").await;
    (ws, hello)
}

/// An agent socket authenticated through `Sec-WebSocket-Protocol`, and its `ready`.
async fn agent(server: &TestServer, token: &str) -> (Ws, Value) {
    let protocol = format!("bearer, {token}");
    let mut ws = ws::connect(
        &agent_url(server),
        &[("sec-websocket-protocol", protocol.as_str())],
    )
    .await
    .expect("agent socket opens");
    assert_eq!(ws.protocol.as_deref(), Some("bearer"));
    let ready = ws.expect("ready").await;
    (ws, ready)
}

/// An agent socket that joined `space`.
async fn agent_in(server: &TestServer, token: &str, space: &ChatSpace) -> Ws {
    let (mut ws, _) = agent(server, token).await;
    join(&mut ws, space).await;
    ws
}

async fn join(ws: &mut Ws, space: &ChatSpace) {
    ws.send(json!({ "type": "agent:join_space", "chatSpaceId": space.id }))
        .await;
    let (joined, _) = ws
        .until(|f| kind(f) == "joined" || kind(f) == "error")
        .await;
    assert_eq!(kind(&joined), "joined", "{joined}");
    assert_eq!(joined["chatSpaceId"], json!(space.id));
}

fn is_ack(cmid: &str) -> impl Fn(&Value) -> bool + '_ {
    move |f| kind(f) == "message:ack" && f["clientMsgId"] == cmid
}

/// A frame of this kind carrying the message with this content.
fn carries<'a>(frame_kind: &'a str, content: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |f| kind(f) == frame_kind && f["message"]["content"] == content
}

/// Sends over the widget socket; returns the acknowledged message.
async fn visitor_says(ws: &mut Ws, cmid: &str, content: &str) -> Value {
    ws.send(json!({ "type": "visitor:send_message", "clientMsgId": cmid, "content": content }))
        .await;
    let (ack, before) = ws
        .until(|f| is_ack(cmid)(f) || (kind(f) == "error" && f["clientMsgId"] == cmid))
        .await;
    assert_eq!(kind(&ack), "message:ack", "{ack} after {before:?}");
    assert_eq!(ack["message"]["content"], content);
    ack["message"].clone()
}

/// Sends over an agent socket; returns the acknowledged message.
async fn agent_says(ws: &mut Ws, thread: &str, cmid: &str, content: &str, internal: bool) -> Value {
    ws.send(json!({
        "type": "agent:send_message",
        "threadId": thread,
        "clientMsgId": cmid,
        "content": content,
        "internal": internal,
    }))
    .await;
    let (ack, before) = ws
        .until(|f| is_ack(cmid)(f) || (kind(f) == "error" && f["clientMsgId"] == cmid))
        .await;
    assert_eq!(kind(&ack), "message:ack", "{ack} after {before:?}");
    ack["message"].clone()
}

/// `POST /widget/messages` as the widget on the allowed site sends it.
async fn visitor_rest(server: &TestServer, token: &str, cmid: &str, content: &str) -> Reply {
    let resp = server
        .client
        .post(server.url("/api/v1/widget/messages"))
        .header("origin", SITE)
        .bearer_auth(token)
        .json(&json!({ "content": content, "clientMsgId": cmid }))
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        body,
        headers,
    }
}

async fn agent_rest(
    server: &TestServer,
    token: &str,
    thread: &str,
    cmid: &str,
    content: &str,
    internal: bool,
) -> Reply {
    server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            token,
            json!({ "content": content, "clientMsgId": cmid, "internal": internal }),
        )
        .await
}

/// Every message of a thread as agents see it, oldest first.
async fn all_messages(server: &TestServer, token: &str, thread: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/threads/{thread}/messages?limit=200&before={c}"),
            None => format!("/api/v1/threads/{thread}/messages?limit=200"),
        };
        let page = server.get(&path, token).await;
        let body = page.ok();
        let mut items = body["items"].as_array().expect("items").clone();
        items.append(&mut out);
        out = items;
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Waits for the widget's `pong`; returns what came before it.
async fn widget_sync(ws: &mut Ws) -> Vec<Value> {
    ws.send(json!({ "type": "ping" })).await;
    ws.wait_for("pong").await.1
}

/// Waits for the agent socket's `heartbeat` answer; returns what came before it.
async fn agent_sync(ws: &mut Ws) -> Vec<Value> {
    ws.send(json!({ "type": "heartbeat" })).await;
    ws.wait_for("heartbeat").await.1
}

/// Polls until `check` holds, or fails after a while.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + ws::WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

// ---------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hello_tells_the_widget_its_thread_agents_and_hours() {
    let w = world().await;
    let (token, visitor) = session(&w.server, &w.space).await;
    let (mut ws, hello) = widget(&w.server, &w.space, &token).await;
    assert_eq!(hello["visitorId"], visitor);
    assert!(hello["thread"].is_null(), "{hello}");
    assert_eq!(hello["agentsOnline"], false);
    assert_eq!(hello["open"], true);

    let sent = visitor_says(&mut ws, "c-1", "Hello?").await;
    let thread = str_of(&sent["threadId"]);
    ws.close().await;

    let (_agent, _) = agent(&w.server, &w.owner.token).await;
    let (_ws, hello) = widget(&w.server, &w.space, &token).await;
    assert_eq!(hello["visitorId"], visitor);
    assert_eq!(hello["thread"]["id"], thread);
    assert_eq!(hello["thread"]["status"], "unassigned");
    assert!(hello["thread"]["agentName"].is_null());
    assert_eq!(hello["agentsOnline"], true);

    // Outside opening hours (a schedule with no hours at all) it says so.
    let org: OrgId = w.owner.org_id.parse().unwrap();
    let closed = SpaceSettings {
        opening_hours: Some(OpeningHours {
            timezone: "UTC".into(),
            ranges: Vec::new(),
        }),
        ..SpaceSettings::default()
    };
    let night = mychat::spaces::service::create_with(
        &w.server.app_state,
        org,
        "Night",
        vec!["site.test".into()],
        closed,
    )
    .await
    .expect("space created");
    let (night_token, _) = session(&w.server, &night).await;
    let (_night_ws, hello) = widget(&w.server, &night, &night_token).await;
    assert_eq!(hello["open"], false);
    assert!(hello["thread"].is_null());
}

#[tokio::test]
async fn the_widget_socket_checks_origin_and_session_before_upgrading() {
    let w = world().await;
    let (token, _) = session(&w.server, &w.space).await;
    let key = w.space.widget_key.clone();

    for foreign in [
        "https://evil.test",
        "https://www.site.test",
        "https://site.test.evil.test",
    ] {
        let refused = try_widget(&w.server, &key, &token, Some(foreign))
            .await
            .err()
            .unwrap_or_else(|| panic!("{foreign} was let in"));
        assert_eq!(refused.status(), 403, "{foreign}: {refused:?}");
        if let Refused::Status(_, body) = &refused {
            assert_eq!(body["error"]["code"], "forbidden");
        }
    }
    assert_eq!(w.server.app_state.hub.connection_count(), 0);

    // The session token must be valid, and of this space.
    let refused = try_widget(&w.server, &key, "not-a-token", Some(SITE))
        .await
        .err()
        .expect("a bad token is refused");
    assert_eq!(refused.status(), 401);
    let refused = try_widget(&w.server, "no-such-key", &token, Some(SITE))
        .await
        .err()
        .expect("an unknown key is refused");
    assert_eq!(refused.status(), 404);
    let org: OrgId = w.owner.org_id.parse().unwrap();
    let other = mychat::spaces::service::create(
        &w.server.app_state,
        org,
        "Shop",
        vec!["*.shop.test".into(), "localhost:3000".into()],
    )
    .await
    .unwrap();
    let refused = try_widget(
        &w.server,
        &other.widget_key,
        &token,
        Some("https://a.shop.test"),
    )
    .await
    .err()
    .expect("a token of another space is refused");
    assert_eq!(refused.status(), 401);

    // Explicit suffix entries and exact host:port entries.
    let (shop_token, _) = session_from(&w.server, &other, "https://a.shop.test").await;
    for allowed in [
        "https://a.shop.test",
        "https://b.a.shop.test",
        "http://localhost:3000",
    ] {
        let mut ws = try_widget(&w.server, &other.widget_key, &shop_token, Some(allowed))
            .await
            .unwrap_or_else(|e| panic!("{allowed} refused: {e:?}"));
        ws.expect("hello").await;
        ws.close().await;
    }
    for refused in [
        "https://shop.test",
        "http://localhost:3001",
        "http://localhost",
    ] {
        let r = try_widget(&w.server, &other.widget_key, &shop_token, Some(refused))
            .await
            .err()
            .unwrap_or_else(|| panic!("{refused} was let in"));
        assert_eq!(r.status(), 403, "{refused}");
    }
}

#[tokio::test]
async fn the_agent_socket_accepts_only_its_own_origin() {
    let w = world().await;
    let protocol = format!("bearer, {}", w.owner.token);
    let refused = ws::connect(
        &agent_url(&w.server),
        &[
            ("origin", "https://evil.test"),
            ("sec-websocket-protocol", protocol.as_str()),
        ],
    )
    .await
    .err()
    .expect("a foreign origin is refused");
    assert_eq!(refused.status(), 403);
    // Not even an allowed widget site may open an agent socket.
    let refused = ws::connect(
        &agent_url(&w.server),
        &[
            ("origin", SITE),
            ("sec-websocket-protocol", protocol.as_str()),
        ],
    )
    .await
    .err()
    .expect("a widget site is refused");
    assert_eq!(refused.status(), 403);
    assert_eq!(w.server.app_state.hub.connection_count(), 0);

    // The appliance's own pages, and clients that send no Origin, are fine.
    let own = format!("http://{}", w.server.addr);
    let mut ws = ws::connect(
        &agent_url(&w.server),
        &[
            ("origin", own.as_str()),
            ("sec-websocket-protocol", protocol.as_str()),
        ],
    )
    .await
    .expect("own origin accepted");
    ws.expect("ready").await;
    let (_ws, ready) = agent(&w.server, &w.owner.token).await;
    assert_eq!(ready["agent"]["id"], w.owner.agent_id);
}

#[tokio::test]
async fn agents_authenticate_by_subprotocol_or_first_frame() {
    let w = world().await;

    // Sec-WebSocket-Protocol: bearer, <token>; the server picks "bearer".
    let (_by_protocol, ready) = agent(&w.server, &w.owner.token).await;
    assert_eq!(ready["agent"]["id"], w.owner.agent_id);
    assert!(ready["agent"].get("passwordHash").is_none());
    let online: Vec<&Value> = ready["agentsOnline"].as_array().unwrap().iter().collect();
    assert!(online.iter().any(|a| a["id"] == w.owner.agent_id));

    // An `auth` first frame.
    let mut by_frame = ws::connect(&agent_url(&w.server), &[]).await.unwrap();
    assert_eq!(by_frame.protocol, None);
    by_frame
        .send(json!({ "type": "auth", "token": w.owner.token }))
        .await;
    let ready = by_frame.expect("ready").await;
    assert_eq!(ready["agent"]["id"], w.owner.agent_id);
    // Authenticating twice is an error, not a crash.
    by_frame
        .send(json!({ "type": "auth", "token": w.owner.token }))
        .await;
    let (err, _) = by_frame.wait_for("error").await;
    assert_eq!(err["code"], "already_authenticated");
    agent_sync(&mut by_frame).await;

    // A bad token in the first frame: closed with 4401.
    let mut bad = ws::connect(&agent_url(&w.server), &[]).await.unwrap();
    bad.send(json!({ "type": "auth", "token": "garbage.token.here" }))
        .await;
    let (code, _, frames) = bad.closed().await;
    assert_eq!(code, 4401);
    assert!(frames.is_empty(), "{frames:?}");

    // Anything but `auth` first: closed with 4401.
    let mut rude = ws::connect(&agent_url(&w.server), &[]).await.unwrap();
    rude.send(json!({ "type": "agent:join_space", "chatSpaceId": w.space.id }))
        .await;
    assert_eq!(rude.closed().await.0, 4401);
    let mut junk = ws::connect(&agent_url(&w.server), &[]).await.unwrap();
    junk.send_text("{not json").await;
    assert_eq!(junk.closed().await.0, 4401);

    // A bad token in the subprotocol is refused before the upgrade.
    let refused = ws::connect(
        &agent_url(&w.server),
        &[("sec-websocket-protocol", "bearer, garbage.token.here")],
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(refused.status(), 401);

    // A visitor session token is no agent token.
    let (visitor_token, _) = session(&w.server, &w.space).await;
    let mut visitor = ws::connect(&agent_url(&w.server), &[]).await.unwrap();
    visitor
        .send(json!({ "type": "auth", "token": visitor_token }))
        .await;
    assert_eq!(visitor.closed().await.0, 4401);
}

#[tokio::test]
async fn agents_join_only_their_organizations_spaces_and_see_their_teams_threads() {
    let w = world().await;
    let rival = w.server.register("Rival", "rob@rival.test").await;
    let rival_space = fixtures::space(&w.server, &rival).await;

    let (mut ws, _) = agent(&w.server, &w.owner.token).await;
    ws.send(json!({ "type": "agent:join_space", "chatSpaceId": rival_space.id }))
        .await;
    let (err, _) = ws.wait_for("error").await;
    assert_eq!(err["code"], "not_found", "{err}");
    // Another tenant's visitor writes: nothing of it reaches this socket.
    let (rival_token, _) = session(&w.server, &rival_space).await;
    let (mut rival_widget, _) = widget(&w.server, &rival_space, &rival_token).await;
    visitor_says(&mut rival_widget, "r-1", "secret of another tenant").await;
    join(&mut ws, &w.space).await;
    let (my_token, _) = session(&w.server, &w.space).await;
    let (mut my_widget, _) = widget(&w.server, &w.space, &my_token).await;
    visitor_says(&mut my_widget, "m-1", "mine").await;
    let (_, before) = ws.until(carries("visitor:message", "mine")).await;
    assert!(
        !before
            .iter()
            .any(|f| f.to_string().contains("secret of another tenant")),
        "{before:?}"
    );

    // Team routing: a thread routed to a team reaches that team's agents
    // (and admins), not the others.
    let support = w
        .server
        .post(
            "/api/v1/teams",
            &w.owner.token,
            json!({ "name": "Support" }),
        )
        .await;
    let support = str_of(&support.ok()["id"]);
    let sales = w
        .server
        .post("/api/v1/teams", &w.owner.token, json!({ "name": "Sales" }))
        .await;
    let sales = str_of(&sales.ok()["id"]);
    let (sam, sam_token) = fixtures::agent(&w.server, &w.owner, "Sam", Role::Agent).await;
    let (lee, lee_token) = fixtures::agent(&w.server, &w.owner, "Lee", Role::Agent).await;
    w.server
        .patch(
            &format!("/api/v1/agents/{sam}"),
            &w.owner.token,
            json!({ "teamIds": [support] }),
        )
        .await
        .ok();
    w.server
        .patch(
            &format!("/api/v1/agents/{lee}"),
            &w.owner.token,
            json!({ "teamIds": [sales] }),
        )
        .await
        .ok();
    let mut sam_ws = agent_in(&w.server, &sam_token, &w.space).await;
    let mut lee_ws = agent_in(&w.server, &lee_token, &w.space).await;

    let (routed_token, _) = session(&w.server, &w.space).await;
    let (mut routed, _) = widget(&w.server, &w.space, &routed_token).await;
    let first = visitor_says(&mut routed, "t-1", "routing me").await;
    let routed_thread = str_of(&first["threadId"]);
    w.server
        .patch(
            &format!("/api/v1/threads/{routed_thread}"),
            &w.owner.token,
            json!({ "teamId": support }),
        )
        .await
        .ok();
    visitor_says(&mut routed, "t-2", "for support only").await;
    // An unrouted thread afterwards reaches everyone: Lee's proof of absence.
    visitor_says(&mut my_widget, "m-2", "for everyone").await;

    let (_, before) = sam_ws
        .until(carries("visitor:message", "for everyone"))
        .await;
    assert!(
        before
            .iter()
            .any(carries("visitor:message", "for support only")),
        "{before:?}"
    );
    let (_, before) = lee_ws
        .until(carries("visitor:message", "for everyone"))
        .await;
    assert!(
        !before
            .iter()
            .any(carries("visitor:message", "for support only")),
        "{before:?}"
    );
    let (_, before) = ws.until(carries("visitor:message", "for everyone")).await;
    assert!(
        before
            .iter()
            .any(carries("visitor:message", "for support only")),
        "admins see every team's threads: {before:?}"
    );

    // Handed to Lee (of another team), the thread is Lee's: its messages
    // reach Lee, live and in a replay.
    let r = w
        .server
        .post(
            &format!("/api/v1/threads/{routed_thread}/transfer"),
            &w.owner.token,
            json!({ "agentId": lee }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let (u, _) = lee_ws.wait_for("thread:updated").await;
    assert_eq!(u["thread"]["assignedAgentId"], json!(lee));
    let held = visitor_says(&mut routed, "t-3", "for lee now").await;
    let (got, _) = lee_ws
        .until(carries("visitor:message", "for lee now"))
        .await;
    assert_eq!(got["message"]["id"], held["id"]);
    lee_ws.close().await;
    let missed = visitor_says(&mut routed, "t-4", "lee was away").await;
    let mut lee_ws = agent_in(&w.server, &lee_token, &w.space).await;
    lee_ws
        .send(json!({ "type": "resume", "after": held["id"] }))
        .await;
    let (resumed, replayed) = lee_ws.wait_for("resumed").await;
    assert_eq!(message_ids(&replayed), vec![str_of(&missed["id"])]);
    assert_eq!(resumed["count"], 1);
    // The thread's team still sees it.
    let (got, _) = sam_ws
        .until(carries("visitor:message", "lee was away"))
        .await;
    assert_eq!(got["message"]["id"], missed["id"]);
}

// ---------------------------------------------------------------------------
// Messages end to end
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_visitor_message_reaches_agents_and_a_reply_reaches_the_visitor() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, visitor) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;

    // Visitor → agent: the new thread first, then the message.
    let sent = visitor_says(&mut widget_ws, "v-1", "Do you ship to Poland?").await;
    assert_eq!(sent["senderType"], "visitor");
    let thread = str_of(&sent["threadId"]);
    let (new, _) = agent_ws.wait_for("thread:new").await;
    assert_eq!(new["thread"]["id"], thread);
    assert_eq!(new["thread"]["visitorId"], visitor);
    assert_eq!(new["thread"]["status"], "unassigned");
    let got = agent_ws.expect("visitor:message").await;
    assert_eq!(got["message"]["id"], sent["id"]);
    assert_eq!(got["message"]["content"], "Do you ship to Poland?");
    assert_eq!(got["message"]["clientMsgId"], "v-1");
    assert_eq!(got["thread"]["id"], thread);
    assert_eq!(got["thread"]["lastMessage"]["id"], sent["id"]);

    // Agent → visitor over the socket: the claim, then the reply.
    let reply = agent_says(&mut agent_ws, &thread, "a-1", "Yes, we do.", false).await;
    assert_eq!(reply["senderType"], "agent");
    assert_eq!(reply["senderName"], "Acme owner");
    let (updated, _) = widget_ws.wait_for("thread:updated").await;
    assert_eq!(updated["threadId"], thread);
    assert_eq!(updated["status"], "active");
    assert_eq!(updated["agentName"], "Acme owner");
    let got = widget_ws.expect("agent:message").await;
    assert_eq!(got["message"]["id"], reply["id"]);
    assert_eq!(got["message"]["content"], "Yes, we do.");
    assert!(
        got.get("thread").is_none(),
        "widgets get no agent view: {got}"
    );

    // Over REST both ways too.
    let r = agent_rest(
        &w.server,
        &w.owner.token,
        &thread,
        "a-2",
        "Anything else?",
        false,
    )
    .await;
    assert_eq!(r.status, 201);
    let (got, _) = widget_ws.wait_for("agent:message").await;
    assert_eq!(got["message"]["id"], r.body["id"]);
    let v = visitor_rest(&w.server, &token, "v-2", "No, thanks").await;
    assert_eq!(v.status, 201);
    let (got, before) = agent_ws
        .until(carries("visitor:message", "No, thanks"))
        .await;
    assert_eq!(got["message"]["id"], v.body["message"]["id"]);
    // The agent sees its own replies as agent:message (for its other tabs), once.
    let own: Vec<&Value> = before
        .iter()
        .filter(|f| carries("agent:message", "Anything else?")(f))
        .collect();
    assert_eq!(own.len(), 1, "{before:?}");
    assert!(
        before
            .iter()
            .filter(|f| carries("agent:message", "Yes, we do.")(f))
            .count()
            <= 1
    );
    // The visitor's other tabs (and this one) see the visitor's own message.
    let (echo, _) = widget_ws
        .until(carries("visitor:message", "No, thanks"))
        .await;
    assert_eq!(echo["message"]["id"], v.body["message"]["id"]);
}

/// A REST call (method, path, body) and the status and holder it leads to.
type Step<'a> = (Method, String, Option<Value>, &'a str, Option<&'a str>);

#[tokio::test]
async fn every_thread_state_change_reaches_agent_and_widget_sockets() {
    let w = world().await;
    let (bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let mut ann_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let mut bob_ws = agent_in(&w.server, &bob_token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let sent = visitor_says(&mut widget_ws, "v-1", "help").await;
    let thread = str_of(&sent["threadId"]);

    // (REST call, status after, holder after)
    let steps: Vec<Step> = vec![
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/claim"),
            None,
            "active",
            Some(&w.owner.agent_id),
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}"),
            Some(json!({"status": "pending"})),
            "pending",
            Some(&w.owner.agent_id),
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/release"),
            None,
            "unassigned",
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/claim"),
            None,
            "active",
            Some(&w.owner.agent_id),
        ),
        (
            Method::POST,
            format!("/api/v1/threads/{thread}/transfer"),
            Some(json!({"agentId": bob})),
            "active",
            Some(&bob),
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/close"),
            None,
            "closed",
            Some(&bob),
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/reopen"),
            None,
            "active",
            Some(&w.owner.agent_id),
        ),
    ];
    for (method, path, body, status, holder) in steps {
        let r = w
            .server
            .call(method, &path, Some(&w.owner.token), body.clone())
            .await;
        assert!(
            r.status.is_success(),
            "{path} {body:?}: {} {}",
            r.status,
            r.body
        );
        for ws in [&mut ann_ws, &mut bob_ws] {
            let (u, _) = ws.wait_for("thread:updated").await;
            assert_eq!(u["thread"]["id"], thread, "{path}");
            assert_eq!(u["thread"]["status"], status, "{path}: {u}");
            assert_eq!(
                u["thread"]["assignedAgentId"],
                holder.map_or(Value::Null, |h| json!(h)),
                "{path}: {u}"
            );
        }
        let (u, _) = widget_ws.wait_for("thread:updated").await;
        assert_eq!(u["threadId"], thread);
        assert_eq!(u["status"], status, "{path}: {u}");
        let name = match holder {
            Some(h) if h == bob => json!("Bob"),
            Some(_) => json!("Acme owner"),
            None => Value::Null,
        };
        assert_eq!(u["agentName"], name, "{path}: {u}");
    }

    // Expiry from the background job.
    let id: ThreadId = thread.parse().unwrap();
    w.server
        .app_state
        .store
        .write(move |tx| {
            let mut t = tx.thread(id)?.expect("thread");
            t.last_activity_at = chrono::Utc::now() - chrono::Duration::days(3);
            tx.put(&t)
        })
        .await
        .unwrap();
    let expired = mychat::threads::service::expire_inactive(&w.server.app_state)
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    let (u, _) = ann_ws.wait_for("thread:updated").await;
    assert_eq!(u["thread"]["status"], "expired");
    let (u, _) = widget_ws.wait_for("thread:updated").await;
    assert_eq!(u["status"], "expired");

    // The visitor's next message starts a new thread: agents get thread:new.
    let next = visitor_says(&mut widget_ws, "v-2", "me again").await;
    assert_ne!(next["threadId"], thread);
    let (new, _) = bob_ws.wait_for("thread:new").await;
    assert_eq!(new["thread"]["id"], next["threadId"]);

    // The visitor ends the chat from the widget: agents see it closed.
    let r = w
        .server
        .client
        .post(w.server.url("/api/v1/widget/close"))
        .header("origin", SITE)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (u, _) = ann_ws.wait_for("thread:updated").await;
    assert_eq!(u["thread"]["id"], next["threadId"]);
    assert_eq!(u["thread"]["status"], "closed");
    let (u, _) = widget_ws.wait_for("thread:updated").await;
    assert_eq!(u["status"], "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_agents_racing_to_claim_both_see_the_same_winner() {
    let w = world().await;
    let (_bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (_cy, cy_token) = fixtures::agent(&w.server, &w.owner, "Cy", Role::Agent).await;
    let mut bob_ws = agent_in(&w.server, &bob_token, &w.space).await;
    let mut cy_ws = agent_in(&w.server, &cy_token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;

    for round in 0..5 {
        let sent = visitor_says(&mut widget_ws, &format!("v-{round}"), "who takes me?").await;
        let thread = str_of(&sent["threadId"]);
        let path = format!("/api/v1/threads/{thread}/claim");
        let (a, b) = tokio::join!(
            w.server.patch(&path, &bob_token, json!({})),
            w.server.patch(&path, &cy_token, json!({})),
        );
        let (winner, loser) = match (a.status.as_u16(), b.status.as_u16()) {
            (200, 409) => (a, b),
            (409, 200) => (b, a),
            other => panic!("exactly one claim wins: {other:?} {} {}", a.body, b.body),
        };
        assert_eq!(loser.body["error"]["code"], "already_claimed");
        let holder = winner.body["assignedAgentId"].clone();
        let holder_name = winner.body["assignedAgentName"].clone();
        assert!(
            loser.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(holder_name.as_str().unwrap())
        );

        let mut seen = Vec::new();
        for ws in [&mut bob_ws, &mut cy_ws] {
            let (u, _) = ws
                .until(|f| kind(f) == "thread:updated" && f["thread"]["id"] == thread)
                .await;
            assert_eq!(u["thread"]["status"], "active");
            assert_eq!(u["thread"]["assignedAgentId"], holder);
            assert_eq!(u["thread"]["assignedAgentName"], holder_name);
            seen.push(u["thread"].clone());
        }
        assert_eq!(seen[0], seen[1], "both sockets see the same update");
        let (u, _) = widget_ws.wait_for("thread:updated").await;
        assert_eq!(u["agentName"], holder_name);

        // Exactly one update: the loser changed nothing. The close that
        // follows is dispatched after anything the claims produced.
        let close = format!("/api/v1/threads/{thread}/close");
        w.server.patch(&close, &w.owner.token, json!({})).await.ok();
        for ws in [&mut bob_ws, &mut cy_ws] {
            let (_, before) = ws
                .until(|f| kind(f) == "thread:updated" && f["thread"]["status"] == "closed")
                .await;
            assert!(
                !before.iter().any(|f| kind(f) == "thread:updated"),
                "a second update: {before:?}"
            );
        }
        let (_, before) = widget_ws
            .until(|f| kind(f) == "thread:updated" && f["status"] == "closed")
            .await;
        assert!(
            !before.iter().any(|f| kind(f) == "thread:updated"),
            "{before:?}"
        );
    }
}

#[tokio::test]
async fn typing_travels_both_ways_and_is_throttled() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, visitor) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let sent = visitor_says(&mut widget_ws, "v-1", "hi").await;
    let thread = str_of(&sent["threadId"]);

    // Two quick "typing" frames make one event; "stopped" always passes.
    for is_typing in [true, true, false] {
        widget_ws
            .send(json!({ "type": "visitor:typing", "isTyping": is_typing }))
            .await;
    }
    let (t, _) = agent_ws.wait_for("visitor:typing").await;
    assert_eq!(t["threadId"], thread);
    assert_eq!(t["visitorId"], visitor);
    assert_eq!(t["isTyping"], true);
    let (t, _) = agent_ws.wait_for("visitor:typing").await;
    assert_eq!(t["isTyping"], false, "the second 'typing' was throttled");

    for is_typing in [true, true, false] {
        agent_ws
            .send(json!({ "type": "agent:typing", "threadId": thread, "isTyping": is_typing }))
            .await;
    }
    let (t, _) = widget_ws.wait_for("agent:typing").await;
    assert_eq!(t["isTyping"], true);
    assert_eq!(t["agentName"], "Acme owner");
    assert!(
        t.get("agentId").is_none(),
        "the widget learns no agent ids: {t}"
    );
    let (t, _) = widget_ws.wait_for("agent:typing").await;
    assert_eq!(t["isTyping"], false, "the second 'typing' was throttled");
    // Other agents see it too (the typist's own socket as well).
    let (t, _) = agent_ws.wait_for("agent:typing").await;
    assert_eq!(t["threadId"], thread);
    assert_eq!(t["agentId"], w.owner.agent_id);

    // Typing into another tenant's thread is an error frame.
    let rival = w.server.register("Rival", "rob@rival.test").await;
    let (mut rival_ws, _) = agent(&w.server, &rival.token).await;
    rival_ws
        .send(json!({ "type": "agent:typing", "threadId": thread, "isTyping": true }))
        .await;
    let (err, _) = rival_ws.wait_for("error").await;
    assert_eq!(err["code"], "not_found");
}

#[tokio::test]
async fn read_markers_travel_both_ways() {
    let w = world().await;
    let (bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let mut bob_ws = agent_in(&w.server, &bob_token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let question = visitor_says(&mut widget_ws, "v-1", "question").await;
    let thread = str_of(&question["threadId"]);
    let answer = agent_says(&mut agent_ws, &thread, "a-1", "answer", false).await;
    let note = agent_says(&mut agent_ws, &thread, "a-2", "note", true).await;

    // The visitor reads the answer: agents see it.
    widget_ws
        .send(json!({ "type": "visitor:read", "upTo": answer["id"] }))
        .await;
    let (r, _) = bob_ws.wait_for("messages:read").await;
    assert_eq!(r["threadId"], thread);
    assert_eq!(r["reader"], "visitor");
    assert_eq!(r["upTo"], answer["id"]);

    // The visitor cannot mark an internal note (it does not exist for them).
    widget_ws
        .send(json!({ "type": "visitor:read", "upTo": note["id"] }))
        .await;
    let (err, _) = widget_ws.wait_for("error").await;
    assert_eq!(err["code"], "not_found");

    // Bob reads over the socket: the visitor and the other agents see it.
    bob_ws
        .send(json!({ "type": "agent:read", "threadId": thread, "upTo": question["id"] }))
        .await;
    let (r, _) = widget_ws.wait_for("messages:read").await;
    assert_eq!(r["threadId"], thread);
    assert_eq!(r["upTo"], question["id"]);
    assert!(r.get("reader").is_none(), "{r}");
    let (r, _) = agent_ws
        .until(|f| kind(f) == "messages:read" && f["reader"] != "visitor")
        .await;
    assert_eq!(r["reader"], json!(bob));

    // Over REST as well.
    let later = visitor_says(&mut widget_ws, "v-2", "more").await;
    let rest = w
        .server
        .post(
            &format!("/api/v1/threads/{thread}/read"),
            &w.owner.token,
            json!({ "upTo": later["id"] }),
        )
        .await;
    assert!(rest.status.is_success(), "{}", rest.body);
    let (r, _) = widget_ws.wait_for("messages:read").await;
    assert_eq!(r["upTo"], later["id"]);
    let rest = w
        .server
        .client
        .post(w.server.url("/api/v1/widget/read"))
        .header("origin", SITE)
        .bearer_auth(&token)
        .json(&json!({ "upTo": answer["id"] }))
        .send()
        .await
        .unwrap();
    assert!(rest.status().is_success());
    // Already read up to there: the marker does not move back, no event.
    // Reading a later message does.
    let fresh = agent_says(&mut agent_ws, &thread, "a-3", "fresh", false).await;
    widget_ws
        .send(json!({ "type": "visitor:read", "upTo": fresh["id"] }))
        .await;
    let (r, before) = bob_ws
        .until(|f| kind(f) == "messages:read" && f["reader"] == "visitor")
        .await;
    assert_eq!(
        r["upTo"], fresh["id"],
        "no event for a marker that did not move: {before:?}"
    );
}

#[tokio::test]
async fn internal_notes_reach_agents_and_never_the_widget() {
    let w = world().await;
    let (_bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (_cy, cy_token) = fixtures::agent(&w.server, &w.owner, "Cy", Role::Agent).await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let mut bob_ws = agent_in(&w.server, &bob_token, &w.space).await;
    // Cy only watches, so none of its frames is read by a send's wait.
    let mut cy_ws = agent_in(&w.server, &cy_token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let sent = visitor_says(&mut widget_ws, "v-1", "hello").await;
    let thread = str_of(&sent["threadId"]);

    let ws_note = agent_says(&mut agent_ws, &thread, "n-1", "SECRET over ws", true).await;
    assert_eq!(ws_note["internal"], true);
    let rest_note = agent_rest(
        &w.server,
        &w.owner.token,
        &thread,
        "n-2",
        "SECRET over rest",
        true,
    )
    .await;
    assert_eq!(rest_note.status, 201);
    // A note by another agent into a thread someone else holds is allowed, too.
    let bob_note = agent_says(&mut bob_ws, &thread, "n-3", "SECRET from bob", true).await;
    assert_eq!(bob_note["internal"], true);
    // Then a public reply: everything before it has been dispatched.
    agent_says(&mut agent_ws, &thread, "p-1", "public reply", false).await;

    let (_, before) = cy_ws.until(carries("agent:message", "public reply")).await;
    for secret in ["SECRET over ws", "SECRET over rest", "SECRET from bob"] {
        let f = before
            .iter()
            .find(|f| carries("agent:message", secret)(f))
            .unwrap_or_else(|| panic!("{secret} did not reach the other agent: {before:?}"));
        assert_eq!(f["message"]["internal"], true);
    }
    let (_, before) = widget_ws
        .until(carries("agent:message", "public reply"))
        .await;
    assert!(
        !before.iter().any(|f| f.to_string().contains("SECRET")),
        "a note reached the widget: {before:?}"
    );
    // Nor does a replay (from a new socket: a socket never replays what it
    // already sent), nor the polling fallback.
    let (mut again, _) = widget(&w.server, &w.space, &token).await;
    again.send(json!({ "type": "resume", "after": null })).await;
    let (resumed, replayed) = again.wait_for("resumed").await;
    assert_eq!(resumed["count"], 2, "{replayed:?}");
    assert!(!replayed.iter().any(|f| f.to_string().contains("SECRET")));
    let poll = w
        .server
        .client
        .get(w.server.url("/api/v1/widget/messages"))
        .header("origin", SITE)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        poll.contains("public reply") && !poll.contains("SECRET"),
        "{poll}"
    );
    // A widget that connects now sees none of it either.
    let (mut fresh, hello) = widget(&w.server, &w.space, &token).await;
    assert!(!hello.to_string().contains("SECRET"));
    fresh
        .send(json!({ "type": "resume", "after": sent["id"] }))
        .await;
    let (resumed, replayed) = fresh.wait_for("resumed").await;
    assert_eq!(resumed["count"], 1, "{replayed:?}");
    assert!(!replayed.iter().any(|f| f.to_string().contains("SECRET")));
}

// ---------------------------------------------------------------------------
// Delivery guarantees
// ---------------------------------------------------------------------------

#[tokio::test]
async fn retries_over_websocket_and_rest_store_one_message() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    // An agent that only watches, so no frame of it is consumed by a send.
    let (_bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let mut observer = agent_in(&w.server, &bob_token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;

    // Visitor: socket first, then REST, then the socket again.
    let first = visitor_says(&mut widget_ws, "same-v", "only once").await;
    let thread = str_of(&first["threadId"]);
    let rest = visitor_rest(&w.server, &token, "same-v", "only once").await;
    assert_eq!(rest.status, 200, "a retry is not a creation: {}", rest.body);
    assert_eq!(rest.body["message"]["id"], first["id"]);
    let again = visitor_says(&mut widget_ws, "same-v", "only once").await;
    assert_eq!(again["id"], first["id"]);
    // REST first, then the socket.
    let rest = visitor_rest(&w.server, &token, "rest-first", "rest then ws").await;
    assert_eq!(rest.status, 201);
    let ws_retry = visitor_says(&mut widget_ws, "rest-first", "rest then ws").await;
    assert_eq!(ws_retry["id"], rest.body["message"]["id"]);

    // Agent: the same, with both paths.
    let a = agent_says(&mut agent_ws, &thread, "same-a", "agent once", false).await;
    let r = agent_rest(
        &w.server,
        &w.owner.token,
        &thread,
        "same-a",
        "agent once",
        false,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], a["id"]);
    let a2 = agent_says(&mut agent_ws, &thread, "same-a", "agent once", false).await;
    assert_eq!(a2["id"], a["id"]);
    // Concurrent retries of one clientMsgId: still one message.
    let (x, y, z) = tokio::join!(
        agent_rest(&w.server, &w.owner.token, &thread, "burst", "burst", false),
        agent_rest(&w.server, &w.owner.token, &thread, "burst", "burst", false),
        agent_rest(&w.server, &w.owner.token, &thread, "burst", "burst", false),
    );
    let mut statuses = vec![x.status.as_u16(), y.status.as_u16(), z.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 201]);
    assert!(x.body["id"] == y.body["id"] && y.body["id"] == z.body["id"]);

    // Storage holds each once.
    let stored = all_messages(&w.server, &w.owner.token, &thread).await;
    let cmids: Vec<&str> = stored
        .iter()
        .map(|m| m["clientMsgId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(cmids, vec!["same-v", "rest-first", "same-a", "burst"]);

    // Live clients saw each once: a last message proves the rest was dispatched.
    visitor_says(&mut widget_ws, "last", "the end").await;
    let (_, before) = observer.until(carries("visitor:message", "the end")).await;
    let ids: Vec<&Value> = before
        .iter()
        .filter(|f| f.get("message").is_some() && kind(f) != "message:ack")
        .map(|f| &f["message"]["id"])
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "a retry was delivered again: {before:?}");
    assert_eq!(ids.len(), 4, "{before:?}");
}

/// Ids of the message frames (not acks) among `frames`.
fn message_ids(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| matches!(kind(f), "agent:message" | "visitor:message"))
        .map(|f| str_of(&f["message"]["id"]))
        .collect()
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_messages_in_order() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let hello = visitor_says(&mut widget_ws, "v-0", "hello").await;
    let thread = str_of(&hello["threadId"]);
    let m1 = agent_says(&mut agent_ws, &thread, "a-1", "one", false).await;
    widget_ws.until(carries("agent:message", "one")).await;
    widget_ws.close().await;
    agent_ws.close().await;

    // While both are away: agent replies (REST and socket), a note, the
    // visitor's own message from another tab.
    let m2 = agent_rest(&w.server, &w.owner.token, &thread, "a-2", "two", false).await;
    let note = agent_rest(&w.server, &w.owner.token, &thread, "n-1", "note", true).await;
    let m3 = visitor_rest(&w.server, &token, "v-3", "three").await;
    let mut other_agent = agent_in(&w.server, &w.owner.token, &w.space).await;
    let m4 = agent_says(&mut other_agent, &thread, "a-4", "four", false).await;
    other_agent.close().await;
    let missed_by_widget = vec![
        str_of(&m2.body["id"]),
        str_of(&m3.body["message"]["id"]),
        str_of(&m4["id"]),
    ];

    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    widget_ws
        .send(json!({ "type": "resume", "after": m1["id"] }))
        .await;
    let (resumed, replayed) = widget_ws.wait_for("resumed").await;
    assert_eq!(message_ids(&replayed), missed_by_widget, "{replayed:?}");
    assert_eq!(resumed["count"], 3);
    assert_eq!(
        replayed
            .iter()
            .map(kind)
            .filter(|k| k.ends_with(":message"))
            .collect::<Vec<_>>(),
        vec!["agent:message", "visitor:message", "agent:message"]
    );
    // Nothing more: resuming from the newest gives nothing.
    widget_ws
        .send(json!({ "type": "resume", "after": m4["id"] }))
        .await;
    let (resumed, replayed) = widget_ws.wait_for("resumed").await;
    assert_eq!(resumed["count"], 0, "{replayed:?}");
    // Live delivery continues exactly once after a resume.
    let m5 = agent_rest(&w.server, &w.owner.token, &thread, "a-5", "five", false).await;
    let (got, _) = widget_ws.until(carries("agent:message", "five")).await;
    assert_eq!(got["message"]["id"], m5.body["id"]);
    let extra = widget_sync(&mut widget_ws).await;
    assert!(message_ids(&extra).is_empty(), "{extra:?}");

    // The agent misses the note as well, and gets it.
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    agent_ws
        .send(json!({ "type": "resume", "after": m1["id"] }))
        .await;
    let (resumed, replayed) = agent_ws.wait_for("resumed").await;
    let expected = vec![
        str_of(&m2.body["id"]),
        str_of(&note.body["id"]),
        str_of(&m3.body["message"]["id"]),
        str_of(&m4["id"]),
        str_of(&m5.body["id"]),
    ];
    assert_eq!(message_ids(&replayed), expected, "{replayed:?}");
    assert_eq!(resumed["count"], 5);
    for f in &replayed {
        if f.get("message").is_some() {
            assert_eq!(f["thread"]["id"], thread, "agent replays carry the thread");
        }
    }
}

#[tokio::test]
async fn resume_does_not_repeat_what_arrived_live_since_connecting() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let first = visitor_says(&mut widget_ws, "v-0", "hello").await;
    let thread = str_of(&first["threadId"]);
    let m1 = agent_says(&mut agent_ws, &thread, "a-1", "one", false).await;
    widget_ws.until(carries("agent:message", "one")).await;
    widget_ws.close().await;

    let m2 = agent_rest(&w.server, &w.owner.token, &thread, "a-2", "two", false).await;
    // The widget reconnects; a reply arrives live before it asks to resume.
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let m3 = agent_rest(&w.server, &w.owner.token, &thread, "a-3", "three", false).await;
    let (live, _) = widget_ws.until(carries("agent:message", "three")).await;
    assert_eq!(live["message"]["id"], m3.body["id"]);
    widget_ws
        .send(json!({ "type": "resume", "after": m1["id"] }))
        .await;
    let (resumed, replayed) = widget_ws.wait_for("resumed").await;
    assert_eq!(
        message_ids(&replayed),
        vec![str_of(&m2.body["id"])],
        "only the missed one, not the live one again: {replayed:?}"
    );
    assert_eq!(resumed["count"], 1);

    // The same for agents.
    agent_ws.close().await;
    let m4 = agent_rest(&w.server, &w.owner.token, &thread, "a-4", "four", false).await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let m5 = visitor_rest(&w.server, &token, "v-5", "five").await;
    let (live, _) = agent_ws.until(carries("visitor:message", "five")).await;
    assert_eq!(live["message"]["id"], m5.body["message"]["id"]);
    agent_ws
        .send(json!({ "type": "resume", "after": m3.body["id"] }))
        .await;
    let (resumed, replayed) = agent_ws.wait_for("resumed").await;
    assert_eq!(
        message_ids(&replayed),
        vec![str_of(&m4.body["id"])],
        "{replayed:?}"
    );
    assert_eq!(resumed["count"], 1);
}

/// Commits `n` agent messages in one transaction, so the hub publishes them
/// in one go, faster than any socket can write them.
async fn burst(
    server: &TestServer,
    agent: &str,
    thread: &str,
    n: usize,
    then_revoke: bool,
) -> Vec<String> {
    let agent_id: AgentId = agent.parse().unwrap();
    let thread_id: ThreadId = thread.parse().unwrap();
    server
        .app_state
        .store
        .write(move |tx| {
            let mut a = tx.agent(agent_id)?.expect("agent");
            let mut t = tx.thread(thread_id)?.expect("thread");
            let author = Author::Agent(a.clone());
            let mut ids = Vec::with_capacity(n);
            for i in 0..n {
                let new = NewMessage::parse(
                    &format!("burst {i}"),
                    Some(&format!("burst-{i}")),
                    None,
                    false,
                    Vec::new(),
                )?;
                let m = messages::append(tx, &mut t, &author, &new)?;
                ids.push(m.id.to_string());
                tx.emit(Event::MessageNew {
                    message: m,
                    thread: t.clone(),
                });
            }
            tx.put(&t)?;
            if then_revoke {
                a.token_version += 1;
                tx.put(&a)?;
                tx.emit(Event::AgentRevoked { agent: a.id });
            }
            Ok(ids)
        })
        .await
        .expect("burst committed")
}

/// Reads a socket until every id in `expected` has arrived; returns the
/// message ids in arrival order and whether a `resync` came.
async fn read_through(ws: &mut Ws, expected: &[String]) -> (Vec<String>, bool) {
    let last = expected.last().unwrap().clone();
    let mut got = Vec::new();
    let mut resync = false;
    loop {
        let f = ws.json().await;
        match kind(&f) {
            "resync" => resync = true,
            "agent:message" | "visitor:message" => {
                let id = str_of(&f["message"]["id"]);
                let done = id == last;
                got.push(id);
                if done {
                    return (got, resync);
                }
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_lagging_connection_is_told_to_resync_and_replays_from_storage() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let first = visitor_says(&mut widget_ws, "v-0", "hello").await;
    let thread = str_of(&first["threadId"]);
    agent_ws.until(carries("visitor:message", "hello")).await;
    widget_ws.until(carries("visitor:message", "hello")).await;

    // Far more than a connection's queue holds, in one commit.
    let n = mychat::realtime::hub::QUEUE * 3;
    let ids = burst(&w.server, &w.owner.agent_id, &thread, n, false).await;
    for (name, ws) in [("widget", &mut widget_ws), ("agent", &mut agent_ws)] {
        let (got, resync) = read_through(ws, &ids).await;
        assert!(resync, "{name}: an overflowing queue is told to resync");
        assert_eq!(got.len(), ids.len(), "{name}: every message exactly once");
        assert_eq!(got, ids, "{name}: in server order");
        // Nothing trails behind the replay but its `resumed` marker.
        let extra = if name == "widget" {
            widget_sync(ws).await
        } else {
            agent_sync(ws).await
        };
        assert!(message_ids(&extra).is_empty(), "{name}: {extra:?}");
    }
    // And live delivery goes on.
    let after = agent_rest(
        &w.server,
        &w.owner.token,
        &thread,
        "after",
        "after the storm",
        false,
    )
    .await;
    let (got, before) = widget_ws
        .until(carries("agent:message", "after the storm"))
        .await;
    assert_eq!(got["message"]["id"], after.body["id"]);
    assert!(message_ids(&before).is_empty(), "{before:?}");
}

#[tokio::test]
async fn a_revocation_reaches_a_lagging_socket() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let first = visitor_says(&mut widget_ws, "v-0", "hello").await;
    let thread = str_of(&first["threadId"]);
    agent_ws.until(carries("visitor:message", "hello")).await;

    let n = mychat::realtime::hub::QUEUE * 2;
    burst(&w.server, &w.owner.agent_id, &thread, n, true).await;
    let (code, _, _) = agent_ws.closed().await;
    assert_eq!(code, 4001);
    eventually("the revoked socket is gone", || {
        w.server.app_state.hub.connection_count() == 1
    })
    .await;
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_frames_get_error_frames_and_the_socket_stays_usable() {
    let w = world().await;
    // The agent first, so no presence frame interleaves with the answers.
    let (mut agent_ws, _) = agent(&w.server, &w.owner.token).await;
    agent_ws.wait_for("agents:presence").await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;

    let cases: &[(&str, &str)] = &[
        ("{nope", "invalid_json"),
        ("", "invalid_json"),
        ("[1,2,3]", "invalid_frame"),
        ("42", "invalid_frame"),
        (r#"{"kind":"ping"}"#, "invalid_frame"),
        (r#"{"type":7}"#, "invalid_frame"),
        (r#"{"type":"x:y"}"#, "unknown_type"),
        (r#"{"type":"agent:send_message"}"#, "unknown_type"),
        (
            r#"{"type":"visitor:typing","isTyping":"yes"}"#,
            "invalid_frame",
        ),
        (r#"{"type":"visitor:typing"}"#, "invalid_frame"),
        (
            r#"{"type":"visitor:typing","isTyping":true,"extra":1}"#,
            "invalid_frame",
        ),
        (
            r#"{"type":"visitor:send_message","clientMsgId":5,"content":"x"}"#,
            "invalid_frame",
        ),
        (
            r#"{"type":"visitor:read","upTo":"not-an-id"}"#,
            "invalid_frame",
        ),
        (r#"{"type":"resume","after":"nope"}"#, "invalid_frame"),
    ];
    for (text, code) in cases {
        widget_ws.send_text(text).await;
        let f = widget_ws.expect("error").await;
        assert_eq!(f["code"], *code, "{text:?}: {f}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Valid frames with invalid content are refused by the rules, not the parser.
    widget_ws
        .send(json!({ "type": "visitor:send_message", "clientMsgId": "big", "content": "x".repeat(5001) }))
        .await;
    let f = widget_ws.expect("error").await;
    assert_eq!(f["clientMsgId"], "big");
    assert_eq!(f["code"], "validation_failed", "{f}");
    widget_ws
        .send(json!({ "type": "visitor:send_message", "clientMsgId": "", "content": "x" }))
        .await;
    widget_ws.expect("error").await;
    widget_ws.send_binary(vec![1, 2, 3]).await;
    assert_eq!(widget_ws.expect("error").await["code"], "unsupported");
    widget_ws.send(json!({ "type": "ping" })).await;
    widget_ws.expect("pong").await;
    visitor_says(&mut widget_ws, "ok", "still works").await;

    let cases: &[(&str, &str)] = &[
        ("{nope", "invalid_json"),
        (
            r#"{"type":"visitor:send_message","clientMsgId":"a","content":"b"}"#,
            "unknown_type",
        ),
        (
            r#"{"type":"agent:join_space","chatSpaceId":"not-an-id"}"#,
            "invalid_frame",
        ),
        (
            r#"{"type":"agent:join_space","chatSpaceId":12}"#,
            "invalid_frame",
        ),
        (
            r#"{"type":"agent:typing","threadId":null,"isTyping":true}"#,
            "invalid_frame",
        ),
        (
            r#"{"type":"agent:send_message","threadId":"0191f0b4-0000-7000-8000-000000000000","clientMsgId":"x","content":"y","internal":"no"}"#,
            "invalid_frame",
        ),
    ];
    for (text, code) in cases {
        agent_ws.send_text(text).await;
        let f = agent_ws.expect("error").await;
        assert_eq!(f["code"], *code, "{text:?}: {f}");
    }
    // A well-formed send into a thread that does not exist.
    agent_ws
        .send(json!({
            "type": "agent:send_message",
            "threadId": "0191f0b4-0000-7000-8000-000000000000",
            "clientMsgId": "x",
            "content": "y",
        }))
        .await;
    let f = agent_ws.expect("error").await;
    assert_eq!(f["code"], "not_found");
    assert_eq!(f["clientMsgId"], "x");
    agent_ws.send_binary(vec![0xff; 10]).await;
    assert_eq!(agent_ws.expect("error").await["code"], "unsupported");
    join(&mut agent_ws, &w.space).await;
    agent_sync(&mut agent_ws).await;
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_socket_with_1009() {
    let w = world().await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut big, _) = widget(&w.server, &w.space, &token).await;
    let (mut bystander, _) = widget(&w.server, &w.space, &token).await;
    let (mut big_agent, _) = agent(&w.server, &w.owner.token).await;
    let mut agent_bystander = agent_in(&w.server, &w.owner.token, &w.space).await;

    let huge = json!({
        "type": "visitor:send_message",
        "clientMsgId": "huge",
        "content": "x".repeat(70 * 1024),
    })
    .to_string();
    assert!(huge.len() > 64 * 1024);
    big.send_text(&huge).await;
    let (code, _, frames) = big.closed().await;
    assert_eq!(code, 1009, "{frames:?}");
    assert!(message_ids(&frames).is_empty());
    big_agent.send_text(&huge).await;
    assert_eq!(big_agent.closed().await.0, 1009);

    // Just under the limit is a frame like any other (refused by the rules).
    let under = json!({ "type": "visitor:send_message", "clientMsgId": "under", "content": "x".repeat(60 * 1024) }).to_string();
    assert!(under.len() < 64 * 1024);
    bystander.send_text(&under).await;
    let (err, _) = bystander.wait_for("error").await;
    assert_eq!(err["clientMsgId"], "under");

    // The others are unaffected, and nothing was stored.
    let sent = visitor_says(&mut bystander, "fine", "I am fine").await;
    agent_bystander
        .until(carries("visitor:message", "I am fine"))
        .await;
    let stored = all_messages(&w.server, &w.owner.token, &str_of(&sent["threadId"])).await;
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn a_flood_of_frames_is_refused_then_closed_with_1008() {
    let w = world().await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut flood, _) = widget(&w.server, &w.space, &token).await;
    let (mut calm, _) = widget(&w.server, &w.space, &token).await;
    let (mut agent_flood, _) = agent(&w.server, &w.owner.token).await;

    let per_second = w.server.config.limits.ws_frames_per_second as usize;
    for (ws, ping) in [
        (&mut flood, r#"{"type":"ping"}"#),
        (&mut agent_flood, r#"{"type":"heartbeat"}"#),
    ] {
        let started = std::time::Instant::now();
        // Far more than the burst (2x the rate) plus the refusals allowed.
        for _ in 0..(per_second * 2 + 300) {
            if !ws.try_send_text(ping).await {
                break;
            }
        }
        let (code, reason, frames) = ws.closed().await;
        assert_eq!(code, 1008, "{reason}");
        let limited = frames
            .iter()
            .filter(|f| kind(f) == "error" && f["code"] == "rate_limited")
            .count();
        let answered = frames
            .iter()
            .filter(|f| matches!(kind(f), "pong" | "heartbeat"))
            .count();
        assert!(limited > 0, "refusals come as error frames first");
        assert!(answered >= per_second, "the burst is served: {answered}");
        // The burst, plus what the rate refilled while the flood lasted.
        let refilled = (started.elapsed().as_secs_f64().ceil() as usize + 1) * per_second;
        assert!(
            answered <= per_second * 2 + refilled,
            "then the rate applies: {answered}"
        );
    }
    // The calm socket of the same visitor is unaffected.
    calm.send(json!({ "type": "ping" })).await;
    calm.wait_for("pong").await;
    visitor_says(&mut calm, "calm", "still here").await;
}

#[tokio::test]
async fn connection_attempts_are_limited_per_ip_before_the_upgrade() {
    let w = world_with(|c| c.limits.ws_connects_per_ip_per_minute = 3).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (a, _) = widget(&w.server, &w.space, &token).await;
    let (b, _) = agent(&w.server, &w.owner.token).await;
    // A refused attempt counts, too.
    let r = try_widget(
        &w.server,
        &w.space.widget_key,
        &token,
        Some("https://evil.test"),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(r.status(), 403);
    for attempt in [
        try_widget(&w.server, &w.space.widget_key, &token, Some(SITE)).await,
        ws::connect(&agent_url(&w.server), &[]).await,
    ] {
        let refused = attempt.err().expect("over the limit");
        assert_eq!(refused.status(), 429);
        if let Refused::Status(_, body) = &refused {
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
    // Open sockets are unaffected, and REST is not this limit.
    let mut a = a;
    widget_sync(&mut a).await;
    let mut b = b;
    agent_sync(&mut b).await;
    assert_eq!(
        w.server.get("/api/v1/auth/me", &w.owner.token).await.status,
        200
    );
}

// ---------------------------------------------------------------------------
// Sessions, presence, resources
// ---------------------------------------------------------------------------

#[tokio::test]
async fn logout_password_change_and_disabling_close_the_agents_sockets() {
    let w = world().await;
    let (bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (_cy, cy_token) = fixtures::agent(&w.server, &w.owner, "Cy", Role::Agent).await;
    let mut owner_ws = agent_in(&w.server, &w.owner.token, &w.space).await;

    // Logout: every socket of that agent closes with 4001.
    let mut bob_1 = agent_in(&w.server, &bob_token, &w.space).await;
    let mut bob_2 = ws::connect(&agent_url(&w.server), &[]).await.unwrap();
    bob_2
        .send(json!({ "type": "auth", "token": bob_token }))
        .await;
    bob_2.expect("ready").await;
    let r = w
        .server
        .call(Method::POST, "/api/v1/auth/logout", Some(&bob_token), None)
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(bob_1.closed().await.0, 4001);
    assert_eq!(bob_2.closed().await.0, 4001);
    // The old token opens nothing any more.
    let protocol = format!("bearer, {bob_token}");
    let refused = ws::connect(
        &agent_url(&w.server),
        &[("sec-websocket-protocol", protocol.as_str())],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(refused.status(), 401);

    // A password change.
    let mut cy_ws = agent_in(&w.server, &cy_token, &w.space).await;
    let r = w
        .server
        .post(
            "/api/v1/auth/password",
            &cy_token,
            json!({ "currentPassword": "agent password 1", "newPassword": "another password 2" }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(cy_ws.closed().await.0, 4001);

    // Disabling, by the owner.
    let login = w
        .server
        .login(&format!("bob@{}.test", w.owner.org_id), "agent password 1")
        .await;
    let bob_token = str_of(&login.ok()["accessToken"]);
    let mut bob_3 = agent_in(&w.server, &bob_token, &w.space).await;
    let r = w
        .server
        .patch(
            &format!("/api/v1/agents/{bob}"),
            &w.owner.token,
            json!({ "disabled": true }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(bob_3.closed().await.0, 4001);

    // The owner's socket saw the others leave and is still fine.
    let frames = agent_sync(&mut owner_ws).await;
    assert!(frames.iter().all(|f| kind(f) != "error"), "{frames:?}");
    eventually("only the owner's socket is left", || {
        w.server.app_state.hub.connection_count() == 1
    })
    .await;
}

#[tokio::test]
async fn agent_presence_reaches_widgets_and_other_agents() {
    let w = world().await;
    let (bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, hello) = widget(&w.server, &w.space, &token).await;
    assert_eq!(hello["agentsOnline"], false);

    let (mut owner_ws, ready) = agent(&w.server, &w.owner.token).await;
    assert_eq!(ready["agentsOnline"].as_array().unwrap().len(), 1);
    let (status, _) = widget_ws.wait_for("agents:status").await;
    assert_eq!(status["online"], true);

    // A second agent: the first sees the list; the widget's status stays true.
    let (bob_ws, _) = agent(&w.server, &bob_token).await;
    let (p, _) = owner_ws
        .until(|f| kind(f) == "agents:presence" && f.to_string().contains(&bob))
        .await;
    let ids: Vec<&Value> = p["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert!(
        ids.contains(&&json!(bob)) && ids.contains(&&json!(w.owner.agent_id)),
        "{p}"
    );
    assert!(
        p["online"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["displayName"] == "Bob")
    );
    // A second socket of the same agent announces nothing.
    let (second, _) = agent(&w.server, &w.owner.token).await;
    second.close().await;
    bob_ws.close().await;
    let (p, before) = owner_ws.wait_for("agents:presence").await;
    let ids: Vec<&Value> = p["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, vec![&json!(w.owner.agent_id)], "{p} after {before:?}");

    // The last agent leaves (without a goodbye): widgets hear "offline",
    // and never before.
    owner_ws.abort();
    let (_, before) = widget_ws
        .until(|f| kind(f) == "agents:status" && f["online"] == false)
        .await;
    assert!(
        before
            .iter()
            .filter(|f| kind(f) == "agents:status")
            .all(|f| f["online"] == true),
        "{before:?}"
    );
    // The REST config agrees.
    let config: Value = w
        .server
        .client
        .get(
            w.server
                .url(&format!("/api/v1/widget/config?key={}", w.space.widget_key)),
        )
        .header("origin", SITE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["agentsOnline"], false);
}

#[tokio::test]
async fn visitor_presence_and_pages_reach_agents() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, visitor) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let (p, _) = agent_ws.wait_for("visitor:presence").await;
    assert_eq!(p["visitorId"], visitor);
    assert_eq!(p["online"], true);

    widget_ws
        .send(json!({ "type": "visitor:page", "url": "https://site.test/pricing", "title": "Pricing" }))
        .await;
    let (p, _) = agent_ws.wait_for("visitor:presence").await;
    assert_eq!(p["online"], true);
    assert_eq!(p["url"], "https://site.test/pricing");
    assert_eq!(p["title"], "Pricing");
    // Stored, for the visitor panel.
    let v = w
        .server
        .get(&format!("/api/v1/visitors/{visitor}"), &w.owner.token)
        .await;
    assert_eq!(
        v.ok()["metadata"]["currentUrl"],
        "https://site.test/pricing"
    );
    // A page URL over the bounds is an error frame.
    widget_ws
        .send(json!({ "type": "visitor:page", "url": "x".repeat(3000) }))
        .await;
    assert_eq!(widget_ws.expect("error").await["code"], "validation_failed");

    widget_ws.close().await;
    let (p, _) = agent_ws.wait_for("visitor:presence").await;
    assert_eq!(p["visitorId"], visitor);
    assert_eq!(p["online"], false);
}

#[tokio::test]
async fn closed_connections_leave_nothing_behind_in_the_hub() {
    let w = world().await;
    let hub = w.server.app_state.hub.clone();
    let (_bob, bob_token) = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let (token, _) = session(&w.server, &w.space).await;
        let (mut ws, _) = widget(&w.server, &w.space, &token).await;
        visitor_says(&mut ws, "hi", "hi").await;
        sockets.push(ws);
        let (second_tab, _) = widget(&w.server, &w.space, &token).await;
        sockets.push(second_tab);
    }
    for token in [&w.owner.token, &bob_token] {
        sockets.push(agent_in(&w.server, token, &w.space).await);
        let (ws, _) = agent(&w.server, token).await;
        sockets.push(ws);
    }
    // A socket still authenticating counts as nothing yet.
    let pending = ws::connect(&agent_url(&w.server), &[]).await.unwrap();
    assert_eq!(hub.connection_count(), 10);
    assert!(hub.subscriber_count() >= 10 * 2);

    // Half leave politely, half just vanish.
    for (i, ws) in sockets.into_iter().enumerate() {
        if i % 2 == 0 {
            ws.close().await;
        } else {
            ws.abort();
        }
    }
    pending.abort();
    eventually("every subscription is gone", || {
        hub.subscriber_count() == 0 && hub.connection_count() == 0
    })
    .await;
    assert!(
        hub.online_agents(w.owner.org_id.parse().unwrap())
            .is_empty()
    );
}

#[tokio::test]
async fn idle_sockets_are_pinged_and_dead_ones_dropped() {
    let w = world().await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut alive, _) = widget(&w.server, &w.space, &token).await;
    // This one never reads again, so it never answers a ping.
    let (_dead, _) = widget(&w.server, &w.space, &token).await;
    assert_eq!(w.server.app_state.hub.connection_count(), 2);
    let started = std::time::Instant::now();
    loop {
        match alive.raw(Duration::from_secs(31)).await {
            Some(ws::Message::Ping(_)) => break,
            Some(_) => continue,
            None => panic!("the live socket was dropped"),
        }
    }
    assert!(started.elapsed() <= Duration::from_secs(30));
    // The reader answers pings (tungstenite does while reading); the other
    // is dropped once silent for too long.
    let reader = async {
        loop {
            if alive.raw(Duration::from_secs(120)).await.is_none() {
                panic!("the live socket was dropped");
            }
        }
    };
    let hub = w.server.app_state.hub.clone();
    let dropped = async {
        while hub.connection_count() != 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = reader => unreachable!(),
        r = tokio::time::timeout(Duration::from_secs(100), dropped) => {
            r.expect("the dead socket is dropped")
        }
    }
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_going_away_reconnect() {
    let mut w = world().await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    visitor_says(&mut widget_ws, "v-1", "bye soon").await;
    let hub = w.server.app_state.hub.clone();

    let stop = w.server.stop();
    let read = async {
        let (code, reason, _) = widget_ws.closed().await;
        assert_eq!(code, 1012, "{reason}");
        let (code, _, _) = agent_ws.closed().await;
        assert_eq!(code, 1012);
    };
    tokio::time::timeout(ws::WAIT, async { tokio::join!(stop, read) })
        .await
        .expect("shutdown finishes within the wait");
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.subscriber_count(), 0);

    // After a restart the client reconnects and finds its message.
    let server = w.server.restart().await;
    let (mut ws, hello) = widget(&server, &w.space, &token).await;
    assert_eq!(hello["thread"]["status"], "unassigned");
    ws.send(json!({ "type": "resume", "after": null })).await;
    let (resumed, replayed) = ws.wait_for("resumed").await;
    assert_eq!(resumed["count"], 1);
    assert_eq!(
        replayed
            .iter()
            .filter(|f| kind(f) == "visitor:message")
            .count(),
        1
    );
}
