//! Faults a small server's machine really has, put on purpose: a data dir
//! on a tmpfs filled to the brim, and commits whose fsync fails (the
//! store's test-only fault-injection point). Nothing acknowledged may be
//! lost, nothing refused may be half stored, and the server carries on by
//! itself once the fault is gone.

mod clock;
mod commit_errors;
mod disk_full;

use crate::harness::fixtures;
use crate::harness::ws::{self, Ws, kind};
use crate::harness::{Owner, TestServer};
use mychat::spaces::model::ChatSpace;
use serde_json::{Value, json};

struct World {
    server: TestServer,
    owner: Owner,
    space: ChatSpace,
    /// The visitor's session token.
    session: String,
}

async fn world(adjust: impl FnOnce(&mut mychat::Config)) -> World {
    let server = TestServer::start_with(adjust).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&server, &owner).await;
    let body = json!({ "key": space.widget_key });
    let (session, _) =
        fixtures::visitor_session(&server, &[("origin", crate::harness::SITE)], body).await;
    World {
        server,
        owner,
        space,
        session,
    }
}

impl World {
    async fn widget(&self) -> Ws {
        ws::widget(self.server.addr, &self.space.widget_key, &self.session)
            .await
            .0
    }
}

/// Sends over the widget socket; the `message:ack` or the `error` frame
/// answering it.
async fn visitor_sends(ws: &mut Ws, cmid: &str, content: &str) -> Value {
    ws.send(json!({ "type": "visitor:send_message", "clientMsgId": cmid, "content": content }))
        .await;
    let (answer, _) = ws
        .until(|f| (kind(f) == "message:ack" || kind(f) == "error") && f["clientMsgId"] == cmid)
        .await;
    answer
}

/// An agent's message over REST: (status, body).
async fn agent_sends(w: &World, thread: &str, cmid: &str, content: &str) -> (u16, Value) {
    let r = w
        .server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &w.owner.token,
            json!({ "content": content, "clientMsgId": cmid }),
        )
        .await;
    (r.status.as_u16(), r.body)
}

/// `/metrics` as text.
async fn metrics(server: &TestServer) -> String {
    crate::harness::text(server.client.get(server.url("/metrics"))).await
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

/// Every acknowledged message id is stored exactly once, and nothing else
/// carries one of the refused contents.
async fn exactly_once(w: &World, thread: &str, acked: &[String], refused: &[&str]) {
    let all = w.server.all_messages(&w.owner.token, thread).await;
    for id in acked {
        let n = all.iter().filter(|m| m["id"] == id.as_str()).count();
        assert_eq!(n, 1, "acknowledged message {id} stored {n} times");
    }
    for content in refused {
        assert!(
            all.iter().all(|m| m["content"] != *content),
            "a refused message was stored: {content}"
        );
    }
    let mut ids: Vec<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a message is listed twice");
}
