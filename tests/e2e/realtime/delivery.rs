//! Delivery guarantees: idempotent retries, exact resume, resync after lag.

use std::future::ready;

use super::{
    agent_in, agent_rest, agent_says, agent_sync, carries, message_ids, session, str_of,
    visitor_rest, visitor_says, widget, widget_sync, world, world_with,
};
use crate::harness::fixtures;
use crate::harness::ws::{Ws, kind};
use crate::harness::{TestServer, WAIT, eventually};
use mychat::accounts::model::Role;
use mychat::events::Event;
use mychat::ids::{AgentId, ThreadId};
use mychat::messages::model::Author;
use mychat::messages::send::{self as messages, NewMessage};
use mychat::store::Reader;
use serde_json::{Value, json};

#[tokio::test]
async fn retries_over_websocket_and_rest_store_one_message() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    // An agent that only watches, so no frame of it is consumed by a send.
    let bob_token = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent)
        .await
        .token;
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
    let stored = w.server.all_messages(&w.owner.token, &thread).await;
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
        // The claim's history line is a message of its own.
        .filter(|f| f["message"].get("event").is_none())
        .map(|f| &f["message"]["id"])
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "a retry was delivered again: {before:?}");
    assert_eq!(ids.len(), 4, "{before:?}");
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
    // Small commits, so the queues sized for them are small too.
    let w = world_with(|c| c.store.max_batch = 16).await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let first = visitor_says(&mut widget_ws, "v-0", "hello").await;
    let thread = str_of(&first["threadId"]);
    agent_ws.until(carries("visitor:message", "hello")).await;
    widget_ws.until(carries("visitor:message", "hello")).await;

    // Far more than a connection's queue holds, in one commit.
    let n = w.server.app_state.hub.queue() * 3;
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
    // Operators see each resync in /metrics.
    let metrics = crate::harness::text(w.server.client.get(w.server.url("/metrics"))).await;
    for kind in ["widget", "agent"] {
        let series = format!("mychat_socket_lag_resyncs_total{{kind=\"{kind}\"}} ");
        let count: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"));
        assert!(count >= 1, "{series}{count}");
    }
}

/// A connection's queue holds what the largest commits publish: a whole
/// commit of `store.max_batch` messages, published in one go while the
/// sockets are still writing the ones before, reaches the agent and the
/// visitor live, in order, with no resync.
#[tokio::test]
async fn the_largest_commit_reaches_every_socket_live_without_a_resync() {
    let w = world().await;
    let max_batch = w.server.config.store.max_batch;
    assert!(
        max_batch > mychat::realtime::hub::QUEUE,
        "a commit larger than the old bound"
    );
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let first = visitor_says(&mut widget_ws, "v-0", "hello").await;
    let thread = str_of(&first["threadId"]);
    agent_ws.until(carries("visitor:message", "hello")).await;
    widget_ws.until(carries("visitor:message", "hello")).await;

    // Twice what the largest commit carries, published in one go.
    let ids = burst(&w.server, &w.owner.agent_id, &thread, 2 * max_batch, false).await;
    for (name, ws) in [("widget", &mut widget_ws), ("agent", &mut agent_ws)] {
        let (got, resync) = read_through(ws, &ids).await;
        assert!(
            !resync,
            "{name}: the queue holds two of the largest commits"
        );
        assert_eq!(got, ids, "{name}: every message once, in server order");
    }
    let metrics = crate::harness::text(w.server.client.get(w.server.url("/metrics"))).await;
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("mychat_socket_lag_resyncs_total{") && !l.ends_with(" 0")),
        "no resync counted: {metrics}"
    );
}

#[tokio::test]
async fn a_revocation_reaches_a_lagging_socket() {
    let w = world_with(|c| c.store.max_batch = 16).await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    let first = visitor_says(&mut widget_ws, "v-0", "hello").await;
    let thread = str_of(&first["threadId"]);
    agent_ws.until(carries("visitor:message", "hello")).await;

    let n = w.server.app_state.hub.queue() * 2;
    burst(&w.server, &w.owner.agent_id, &thread, n, true).await;
    let (code, _, _) = agent_ws.closed().await;
    assert_eq!(code, 4001);
    eventually(WAIT, "the revoked socket to be gone", || {
        ready((w.server.app_state.hub.connection_count() == 1).then_some(()))
    })
    .await;
}
