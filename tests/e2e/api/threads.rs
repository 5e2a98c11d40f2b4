use std::time::Duration;

use crate::harness::fixtures::{agent, space, visitor, visitor_says};
use crate::harness::{TestServer, eventually, pluck};
use futures_util::future::join_all;
use mychat::accounts::model::Role;
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<String> {
    pluck(list, "id").into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn claim_race_has_exactly_one_winner() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let mut tokens = vec![];
    for name in ["Bob", "Cat", "Dan", "Eve"] {
        tokens.push(agent(&server, &owner, name, Role::Agent).await.token);
    }
    let v = visitor(&server, &space).await;
    let thread = visitor_says(&server, &v, "hello?")
        .await
        .thread
        .id
        .to_string();

    let path = format!("/api/v1/threads/{thread}/claim");
    let claims = tokens
        .iter()
        .map(|t| server.call(reqwest::Method::PATCH, &path, Some(t), None));
    let replies = join_all(claims).await;
    let winners: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    let holder = winners[0].body["assignedAgentName"]
        .as_str()
        .unwrap()
        .to_owned();
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.err(409), "already_claimed");
        assert_eq!(r.body["error"]["holder"]["displayName"], holder.as_str());
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&holder)
        );
    }
    let t = server
        .get(&format!("/api/v1/threads/{thread}"), &owner.token)
        .await;
    assert_eq!(t.ok()["status"], "active");
    assert_eq!(t.body["assignedAgentName"], holder.as_str());
}

#[tokio::test]
async fn lifecycle_moves_threads_between_views() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let (bob_id, bob) = (bob.id, bob.token);
    let cat = agent(&server, &owner, "Cat", Role::Agent).await.token;
    let v = visitor(&server, &space).await;
    let thread = visitor_says(&server, &v, "hi").await.thread.id.to_string();
    let t = |action: &str| format!("/api/v1/threads/{thread}/{action}");

    let available = server.get("/api/v1/threads?view=available", &bob).await;
    assert_eq!(ids(available.ok()), vec![thread.clone()]);
    assert!(ids(server.get("/api/v1/threads?view=mine", &bob).await.ok()).is_empty());

    server
        .call(reqwest::Method::PATCH, &t("claim"), Some(&bob), None)
        .await
        .ok();
    assert_eq!(
        ids(server.get("/api/v1/threads?view=mine", &bob).await.ok()),
        vec![thread.clone()]
    );
    assert!(
        ids(server
            .get("/api/v1/threads?view=available", &cat)
            .await
            .ok())
        .is_empty()
    );
    // Cat cannot release or close Bob's thread.
    server
        .call(reqwest::Method::PATCH, &t("release"), Some(&cat), None)
        .await
        .err(409);
    server
        .call(reqwest::Method::PATCH, &t("close"), Some(&cat), None)
        .await
        .err(409);

    let pending = server
        .patch(
            &format!("/api/v1/threads/{thread}"),
            &bob,
            json!({"status": "pending"}),
        )
        .await;
    assert_eq!(pending.ok()["status"], "pending");
    assert_eq!(
        ids(server.get("/api/v1/threads?view=mine", &bob).await.ok()),
        vec![thread.clone()]
    );

    server
        .call(reqwest::Method::PATCH, &t("release"), Some(&bob), None)
        .await
        .ok();
    assert_eq!(
        ids(server
            .get("/api/v1/threads?view=available", &cat)
            .await
            .ok()),
        vec![thread.clone()]
    );

    server
        .call(reqwest::Method::PATCH, &t("claim"), Some(&cat), None)
        .await
        .ok();
    let moved = server
        .post(&t("transfer"), &cat, json!({"agentId": bob_id}))
        .await;
    assert_eq!(moved.ok()["assignedAgentId"], bob_id.as_str());
    assert_eq!(moved.body["status"], "active");

    let closed = server
        .call(reqwest::Method::PATCH, &t("close"), Some(&bob), None)
        .await;
    assert_eq!(closed.ok()["status"], "closed");
    assert!(closed.body["closedAt"].is_string());
    assert!(ids(server.get("/api/v1/threads?view=all", &bob).await.ok()).is_empty());
    assert_eq!(
        ids(server.get("/api/v1/threads?view=closed", &bob).await.ok()),
        vec![thread.clone()]
    );
    // Claiming a closed thread is refused; reopening gives it to the reopener.
    server
        .call(reqwest::Method::PATCH, &t("claim"), Some(&cat), None)
        .await
        .err(409);
    let reopened = server
        .call(reqwest::Method::PATCH, &t("reopen"), Some(&cat), None)
        .await;
    assert_eq!(reopened.ok()["status"], "active");
    assert_eq!(reopened.body["assignedAgentName"], "Cat");
}

#[tokio::test]
async fn visitor_message_after_close_starts_a_new_thread() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let v = visitor(&server, &space).await;
    let first = visitor_says(&server, &v, "one").await.thread.id;
    assert_eq!(visitor_says(&server, &v, "two").await.thread.id, first);
    server
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/threads/{first}/close"),
            Some(&owner.token),
            None,
        )
        .await
        .ok();
    let second = visitor_says(&server, &v, "three").await;
    assert_ne!(second.thread.id, first);
    assert!(second.new_thread);
    let history = server
        .get(&format!("/api/v1/visitors/{}/threads", v.id), &owner.token)
        .await;
    // The visitors route belongs to its own module; when present it lists both.
    if history.status == 200 {
        assert_eq!(history.body["items"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn inactive_threads_expire() {
    let (server, owner) = TestServer::with_owner().await;
    let mut space = space(&server, &owner).await;
    space.settings.expire_after_minutes = 30;
    server.put(&space).await;
    let v = visitor(&server, &space).await;
    let v2 = visitor(&server, &space).await;
    let old = visitor_says(&server, &v, "anyone?").await.thread;
    let fresh = visitor_says(&server, &v2, "hello").await.thread;
    let mut aged = old.clone();
    aged.last_activity_at = chrono::Utc::now() - chrono::Duration::minutes(31);
    server.put(&aged).await;

    let expired = mychat::threads::service::expire_inactive(&server.app_state)
        .await
        .unwrap();
    assert_eq!(
        expired.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![old.id]
    );
    let t = server
        .get(&format!("/api/v1/threads/{}", old.id), &owner.token)
        .await;
    assert_eq!(t.ok()["status"], "expired");
    let f = server
        .get(&format!("/api/v1/threads/{}", fresh.id), &owner.token)
        .await;
    assert_eq!(f.ok()["status"], "unassigned");
    // The visitor's next message starts a new thread.
    assert_ne!(
        visitor_says(&server, &v, "still there?").await.thread.id,
        old.id
    );
}

#[tokio::test]
async fn the_expiry_job_runs_in_the_background() {
    let server = TestServer::start_with(|c| c.store.expiry_interval_secs = 1).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let mut space = space(&server, &owner).await;
    space.settings.expire_after_minutes = 1;
    server.put(&space).await;
    let v = visitor(&server, &space).await;
    let mut thread = visitor_says(&server, &v, "hi").await.thread;
    thread.last_activity_at = chrono::Utc::now() - chrono::Duration::minutes(5);
    server.put(&thread).await;
    eventually(Duration::from_secs(20), "the thread to expire", || async {
        let r = server
            .get(&format!("/api/v1/threads/{}", thread.id), &owner.token)
            .await;
        (r.ok()["status"] == "expired").then_some(())
    })
    .await;
}

#[tokio::test]
async fn read_markers_drive_unread_counts() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let v = visitor(&server, &space).await;
    let m1 = visitor_says(&server, &v, "one").await;
    visitor_says(&server, &v, "two").await;
    let m3 = visitor_says(&server, &v, "three").await;
    let thread = m1.thread.id;

    let unread = server.get("/api/v1/unread-count", &owner.token).await;
    assert_eq!(unread.ok()["total"], 3);
    assert_eq!(unread.body["threads"], 1);
    let read = server
        .post(
            &format!("/api/v1/threads/{thread}/read"),
            &owner.token,
            json!({"upTo": m1.message.id}),
        )
        .await;
    assert_eq!(read.ok()["unreadCount"], 2);
    // Markers never move back.
    server
        .post(
            &format!("/api/v1/threads/{thread}/read"),
            &owner.token,
            json!({"upTo": m1.message.id}),
        )
        .await
        .ok();
    server
        .post(
            &format!("/api/v1/threads/{thread}/read"),
            &owner.token,
            json!({"upTo": m3.message.id}),
        )
        .await
        .ok();
    assert_eq!(
        server.get("/api/v1/unread-count", &owner.token).await.ok()["total"],
        0
    );
    // A reply counts as having read everything before it.
    visitor_says(&server, &v, "four").await;
    assert_eq!(
        server.get("/api/v1/unread-count", &owner.token).await.ok()["total"],
        1
    );
    server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &owner.token,
            json!({"content": "hello", "clientMsgId": "r1"}),
        )
        .await
        .ok();
    assert_eq!(
        server.get("/api/v1/unread-count", &owner.token).await.ok()["total"],
        0
    );
    // upTo must be a message of this thread.
    let other = visitor(&server, &space).await;
    let foreign = visitor_says(&server, &other, "x").await.message.id;
    server
        .post(
            &format!("/api/v1/threads/{thread}/read"),
            &owner.token,
            json!({"upTo": foreign}),
        )
        .await
        .err(400);
}

#[tokio::test]
async fn lists_filter_and_paginate() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let mut all = vec![];
    for i in 0..7 {
        let v = visitor(&server, &space).await;
        let text = if i == 3 {
            "where is my parcel"
        } else {
            "hello"
        };
        all.push(visitor_says(&server, &v, text).await.thread.id.to_string());
    }
    all.reverse(); // newest activity first
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/api/v1/chat-spaces/{}/threads?limit=3&cursor={c}",
                space.id
            ),
            None => format!("/api/v1/chat-spaces/{}/threads?limit=3", space.id),
        };
        let page = server.get(&path, &owner.token).await;
        seen.extend(ids(page.ok()));
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, all);
    server.searchable().await;
    let found = server
        .get(
            &format!("/api/v1/chat-spaces/{}/threads?q=PARCEL", space.id),
            &owner.token,
        )
        .await;
    assert_eq!(ids(found.ok()).len(), 1);
    let none = server
        .get(
            &format!("/api/v1/chat-spaces/{}/threads?assigned=me", space.id),
            &owner.token,
        )
        .await;
    assert!(ids(none.ok()).is_empty());
    let status = server
        .get(
            &format!("/api/v1/chat-spaces/{}/threads?status=unassigned", space.id),
            &owner.token,
        )
        .await;
    assert_eq!(ids(status.ok()).len(), 7);
    server
        .get(
            &format!("/api/v1/chat-spaces/{}/threads?status=bogus", space.id),
            &owner.token,
        )
        .await
        .err(400);
    server
        .get("/api/v1/threads?view=everything", &owner.token)
        .await
        .err(400);
    server
        .get("/api/v1/threads?limit=1000", &owner.token)
        .await
        .err(400);
}

#[tokio::test]
async fn an_agent_starts_a_thread_with_a_known_visitor() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let v = visitor(&server, &space).await;
    let started = server
        .post(
            "/api/v1/threads",
            &owner.token,
            json!({"visitorId": v.id, "subject": "Your order", "content": "Hi, about your order…"}),
        )
        .await;
    assert_eq!(started.status, 201, "{}", started.body);
    assert_eq!(started.body["status"], "active");
    assert_eq!(started.body["assignedAgentId"], owner.agent_id.as_str());
    assert_eq!(started.body["subject"], "Your order");
    // The visitor already has an open thread now.
    server
        .post("/api/v1/threads", &owner.token, json!({"visitorId": v.id}))
        .await
        .err(409);
    // The visitor's reply lands in that thread.
    let reply = visitor_says(&server, &v, "thanks").await;
    assert_eq!(
        reply.thread.id.to_string(),
        started.body["id"].as_str().unwrap()
    );
}
