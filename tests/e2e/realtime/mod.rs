//! Real time over a real server and real WebSocket clients: the widget and
//! agent sockets, every event of the protocol in both directions, the
//! delivery guarantees (ack after commit, idempotent retries, exact resume,
//! resync after lag), hostile input, resources and shutdown.
//!
//! Nothing here sleeps to let an event happen: each test waits for the frame
//! it expects (with a timeout). "Nothing arrived" is proven by ordering: the
//! hub delivers in commit order and a socket answers its frames in order, so
//! a later event (or the answer to a later frame) arriving first is proof.

mod access;
mod assignment;
mod cluster;
mod connecting;
mod delivery;
mod hostile_input;
mod messages;
mod sessions;

use crate::harness::fixtures;
use crate::harness::ws::{self, Refused, Ws, kind};
use crate::harness::{Owner, Reply, SITE, TestServer};
use mychat::spaces::model::ChatSpace;
use serde_json::{Value, json};

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
    let body = json!({ "key": space.widget_key });
    fixtures::visitor_session(server, &[("origin", origin)], body).await
}

fn agent_url(server: &TestServer) -> String {
    ws::agent_url(server.addr)
}

async fn try_widget(
    server: &TestServer,
    key: &str,
    token: &str,
    origin: Option<&str>,
) -> Result<Ws, Refused> {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    ws::connect(&ws::widget_url(server.addr, key, token), &headers).await
}

/// A widget socket from the allowed site, and its `hello`.
async fn widget(server: &TestServer, space: &ChatSpace, token: &str) -> (Ws, Value) {
    ws::widget(server.addr, &space.widget_key, token).await
}

/// An agent socket authenticated through `Sec-WebSocket-Protocol`, and its `ready`.
async fn agent(server: &TestServer, token: &str) -> (Ws, Value) {
    let mut ws = ws::connect_agent(server.addr, token, &[])
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
    let body = json!({ "content": content, "clientMsgId": cmid });
    fixtures::visitor_posts(server, token, body).await
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

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// Ids of the message frames (not acks) among `frames`.
fn message_ids(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| matches!(kind(f), "agent:message" | "visitor:message"))
        .map(|f| str_of(&f["message"]["id"]))
        .collect()
}
