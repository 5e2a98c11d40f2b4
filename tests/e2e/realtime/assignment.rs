//! Automatic assignment: round-robin among the agents online in a space,
//! their capacity, the space's default assignee, and how it races claims.
//! "Online" is a live agent socket, so these tests hold real sockets.

use std::collections::HashMap;

use super::{agent_in, world};
use crate::harness::fixtures::{self, agent, visitor, visitor_says};
use crate::harness::ws::{Ws, kind};
use futures_util::future::join_all;
use mychat::accounts::model::Role;
use serde_json::{Value, json};

async fn set_space(w: &super::World, settings: Value) {
    w.server
        .patch(
            &format!("/api/v1/chat-spaces/{}", w.space.id),
            &w.owner.token,
            json!({ "settings": settings }),
        )
        .await
        .ok();
}

async fn thread(w: &super::World, id: &str) -> Value {
    w.server
        .get(&format!("/api/v1/threads/{id}"), &w.owner.token)
        .await
        .ok()
        .clone()
}

/// A new visitor's first message; returns the thread id.
async fn new_thread(w: &super::World, text: &str) -> String {
    let v = visitor(&w.server, &w.space).await;
    visitor_says(&w.server, &v, text)
        .await
        .thread
        .id
        .to_string()
}

/// Reads until a thread frame about `id` shows it held by `holder`.
async fn sees_held(ws: &mut Ws, id: &str, holder: &str) -> Value {
    let (frame, _) = ws
        .until(|f| {
            matches!(kind(f), "thread:new" | "thread:updated")
                && f["thread"]["id"] == id
                && f["thread"]["assignedAgentId"] == holder
        })
        .await;
    frame
}

#[tokio::test]
async fn round_robin_spreads_new_threads_evenly_and_every_socket_sees_it() {
    let w = world().await;
    set_space(&w, json!({ "assignment": "round-robin" })).await;
    let bob = agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let cat = agent(&w.server, &w.owner, "Cat", Role::Agent).await;
    let mut bob_ws = agent_in(&w.server, &bob.token, &w.space).await;
    let mut cat_ws = agent_in(&w.server, &cat.token, &w.space).await;

    // Four visitors write at once: their threads share commits.
    let visitors = join_all((0..4).map(|_| visitor(&w.server, &w.space))).await;
    let sent = join_all(
        visitors
            .iter()
            .enumerate()
            .map(|(i, v)| visitor_says(&w.server, v, if i % 2 == 0 { "hi" } else { "hello" })),
    )
    .await;

    let mut per_agent: HashMap<String, usize> = HashMap::new();
    for s in &sent {
        let id = s.thread.id.to_string();
        let t = thread(&w, &id).await;
        assert_eq!(t["status"], "active", "{t}");
        let holder = t["assignedAgentId"].as_str().expect("held").to_owned();
        assert!(holder == bob.id || holder == cat.id, "{t}");
        // Both sockets are told, with the holder, as it happens.
        sees_held(&mut bob_ws, &id, &holder).await;
        sees_held(&mut cat_ws, &id, &holder).await;
        *per_agent.entry(holder).or_default() += 1;
    }
    assert_eq!(per_agent.get(&bob.id), Some(&2), "{per_agent:?}");
    assert_eq!(per_agent.get(&cat.id), Some(&2), "{per_agent:?}");
    // The owner, offline, got none.
    let mine = w
        .server
        .get("/api/v1/threads?view=mine", &w.owner.token)
        .await;
    assert_eq!(mine.ok()["items"], json!([]));
}

#[tokio::test]
async fn threads_wait_until_an_agent_comes_online_and_manual_spaces_never_assign() {
    let w = world().await;
    set_space(&w, json!({ "assignment": "round-robin" })).await;
    let bob = agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    // Nobody online: the thread waits in the pool.
    let waiting = new_thread(&w, "anyone there?").await;
    let t = thread(&w, &waiting).await;
    assert_eq!(t["status"], "unassigned", "{t}");
    assert_eq!(t["assignedAgentId"], Value::Null);

    // Bob comes online in the space: the waiting thread is his, live.
    let mut bob_ws = agent_in(&w.server, &bob.token, &w.space).await;
    sees_held(&mut bob_ws, &waiting, &bob.id).await;
    assert_eq!(thread(&w, &waiting).await["status"], "active");

    // A manual space (the default) gives nothing by itself, Bob online or not.
    let manual = fixtures::space_with(
        &w.server,
        &w.owner,
        "Manual",
        &["site.test"],
        Default::default(),
    )
    .await;
    super::join(&mut bob_ws, &manual).await;
    let v = visitor(&w.server, &manual).await;
    let id = visitor_says(&w.server, &v, "by hand please")
        .await
        .thread
        .id
        .to_string();
    let (frame, _) = bob_ws
        .until(|f| kind(f) == "thread:new" && f["thread"]["id"] == id.as_str())
        .await;
    assert_eq!(frame["thread"]["status"], "unassigned");
    assert_eq!(thread(&w, &id).await["assignedAgentId"], Value::Null);
}

#[tokio::test]
async fn capacity_limits_round_robin_and_a_closed_thread_frees_a_place() {
    let w = world().await;
    set_space(&w, json!({ "assignment": "round-robin" })).await;
    let bob = agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let bob_path = format!("/api/v1/agents/{}", bob.id);
    // Out of range, and an agent raising its own limit: refused, unchanged.
    let r = w
        .server
        .patch(&bob_path, &w.owner.token, json!({ "maxConcurrent": 5000 }))
        .await;
    assert_eq!(r.err(400), "validation_failed");
    let r = w
        .server
        .patch(&bob_path, &bob.token, json!({ "maxConcurrent": 9 }))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        w.server.get(&bob_path, &w.owner.token).await.ok()["maxConcurrent"],
        0
    );
    let r = w
        .server
        .patch(&bob_path, &w.owner.token, json!({ "maxConcurrent": 1 }))
        .await;
    assert_eq!(r.ok()["maxConcurrent"], 1);

    let mut bob_ws = agent_in(&w.server, &bob.token, &w.space).await;
    let first = new_thread(&w, "first").await;
    sees_held(&mut bob_ws, &first, &bob.id).await;
    let second = new_thread(&w, "second").await;
    let (frame, _) = bob_ws
        .until(|f| kind(f) == "thread:new" && f["thread"]["id"] == second.as_str())
        .await;
    assert_eq!(frame["thread"]["status"], "unassigned", "Bob is full");

    // Closing the first makes room: the second comes to Bob at once.
    w.server
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/threads/{first}/close"),
            Some(&bob.token),
            None,
        )
        .await
        .ok();
    sees_held(&mut bob_ws, &second, &bob.id).await;
}

#[tokio::test]
async fn the_default_assignee_takes_new_threads_until_disabled() {
    let w = world().await;
    let cat = agent(&w.server, &w.owner, "Cat", Role::Agent).await;
    let space_path = format!("/api/v1/chat-spaces/{}", w.space.id);
    // Unknown agents and other organizations' agents are refused.
    let other = w.server.register("Other", "olga@other.test").await;
    let stranger = fixtures::agent(&w.server, &other, "Sam", Role::Agent).await;
    for bad in [uuid::Uuid::now_v7().to_string(), stranger.id.clone()] {
        let r = w
            .server
            .patch(
                &space_path,
                &w.owner.token,
                json!({ "settings": { "defaultAssignee": bad } }),
            )
            .await;
        assert_eq!(r.err(400), "validation_failed");
    }
    let space = w.server.get(&space_path, &w.owner.token).await;
    assert_eq!(space.ok()["settings"]["defaultAssignee"], Value::Null);

    set_space(&w, json!({ "defaultAssignee": cat.id })).await;
    // Cat is offline: the responsible agent gets the thread all the same.
    let first = new_thread(&w, "for the responsible one").await;
    let t = thread(&w, &first).await;
    assert_eq!(t["status"], "active");
    assert_eq!(t["assignedAgentId"], cat.id.as_str());
    let mine = w.server.get("/api/v1/threads?view=mine", &cat.token).await;
    assert_eq!(mine.ok()["items"][0]["id"], first.as_str());

    // Disabled: new threads fall back to the pool (manual here).
    w.server
        .delete(&format!("/api/v1/agents/{}", cat.id), &w.owner.token)
        .await;
    let second = new_thread(&w, "and now?").await;
    let t = thread(&w, &second).await;
    assert_eq!(t["status"], "unassigned", "{t}");
    assert_eq!(t["assignedAgentId"], Value::Null);
}

#[tokio::test]
async fn claims_racing_round_robin_never_give_a_thread_two_holders() {
    let w = world().await;
    set_space(&w, json!({ "assignment": "round-robin" })).await;
    let bob = agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let cat = agent(&w.server, &w.owner, "Cat", Role::Agent).await;
    let mut threads = Vec::new();
    for i in 0..6 {
        threads.push(new_thread(&w, &format!("waiting {i}")).await);
    }
    // Bob comes online (round-robin hands him the waiting threads) while
    // Cat claims every one of them by hand.
    let paths: Vec<String> = threads
        .iter()
        .map(|t| format!("/api/v1/threads/{t}/claim"))
        .collect();
    let claims = paths.iter().map(|p| {
        w.server
            .call(reqwest::Method::PATCH, p, Some(&cat.token), None)
    });
    let (mut bob_ws, replies) =
        tokio::join!(agent_in(&w.server, &bob.token, &w.space), join_all(claims));
    let mut bobs = 0;
    for (id, reply) in threads.iter().zip(&replies) {
        let t = thread(&w, id).await;
        assert_eq!(t["status"], "active", "{t}");
        assert_eq!(t["participants"].as_array().unwrap().len(), 1, "{t}");
        match reply.status.as_u16() {
            200 => assert_eq!(t["assignedAgentId"], cat.id.as_str(), "{t}"),
            409 => {
                assert_eq!(reply.body["error"]["code"], "already_claimed");
                assert_eq!(t["assignedAgentId"], bob.id.as_str(), "{t}");
                assert_eq!(reply.body["error"]["holder"]["id"], bob.id.as_str());
                sees_held(&mut bob_ws, id, &bob.id).await;
                bobs += 1;
            }
            other => panic!("claim answered {other}: {}", reply.body),
        }
    }
    // Whoever won each thread, its one holder is the one the others see.
    let held = w
        .server
        .get("/api/v1/threads?view=mine", &bob.token)
        .await
        .ok()["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(held, bobs);
}

#[tokio::test]
async fn an_away_agent_takes_no_new_threads_until_it_is_back() {
    let w = world().await;
    set_space(&w, json!({ "assignment": "round-robin" })).await;
    let bob = agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let bob_path = format!("/api/v1/agents/{}", bob.id);
    let mut bob_ws = agent_in(&w.server, &bob.token, &w.space).await;
    w.server
        .patch(&bob_path, &bob.token, json!({ "away": true }))
        .await
        .ok();

    // Connected but away: the thread waits in the pool.
    let waiting = new_thread(&w, "anyone there?").await;
    let (frame, _) = bob_ws
        .until(|f| kind(f) == "thread:new" && f["thread"]["id"] == waiting.as_str())
        .await;
    assert_eq!(frame["thread"]["status"], "unassigned", "{frame}");
    assert_eq!(thread(&w, &waiting).await["assignedAgentId"], Value::Null);

    // Back: the waiting thread is Bob's, live.
    w.server
        .patch(&bob_path, &bob.token, json!({ "away": false }))
        .await
        .ok();
    sees_held(&mut bob_ws, &waiting, &bob.id).await;
    assert_eq!(thread(&w, &waiting).await["status"], "active");
}
