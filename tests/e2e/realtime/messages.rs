//! Messages end to end: both ways over sockets and REST, every thread
//! state change, the claim race, typing, read markers, internal notes.

use super::{
    agent, agent_in, agent_rest, agent_says, carries, session, str_of, visitor_rest, visitor_says,
    widget, world,
};
use crate::harness::fixtures;
use crate::harness::ws::kind;
use crate::harness::{FROM_SITE, SITE, text};
use mychat::accounts::model::Role;
use mychat::ids::ThreadId;
use mychat::store::Reader;
use reqwest::Method;
use serde_json::{Value, json};

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
    let bob = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (bob, bob_token) = (bob.id, bob.token);
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
        .write(move |tx| {
            let mut t = tx.thread(id)?.expect("thread");
            t.last_activity_at = chrono::Utc::now() - chrono::Duration::days(3);
            Ok(tx.put(&t)?)
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
        .call_with(
            Method::POST,
            "/api/v1/widget/close",
            Some(&token),
            None,
            FROM_SITE,
        )
        .await;
    assert!(r.status.is_success());
    let (u, _) = ann_ws.wait_for("thread:updated").await;
    assert_eq!(u["thread"]["id"], next["threadId"]);
    assert_eq!(u["thread"]["status"], "closed");
    let (u, _) = widget_ws.wait_for("thread:updated").await;
    assert_eq!(u["status"], "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_agents_racing_to_claim_both_see_the_same_winner() {
    let w = world().await;
    let bob_token = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent)
        .await
        .token;
    let cy_token = fixtures::agent(&w.server, &w.owner, "Cy", Role::Agent)
        .await
        .token;
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
    let bob = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (bob, bob_token) = (bob.id, bob.token);
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
    let body = json!({ "upTo": answer["id"] });
    let rest = w
        .server
        .call_with(
            Method::POST,
            "/api/v1/widget/read",
            Some(&token),
            Some(body),
            FROM_SITE,
        )
        .await;
    assert!(rest.status.is_success());
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
    let bob_token = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent)
        .await
        .token;
    let cy_token = fixtures::agent(&w.server, &w.owner, "Cy", Role::Agent)
        .await
        .token;
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
    let poll = text(
        w.server
            .client
            .get(w.server.url("/api/v1/widget/messages"))
            .header("origin", SITE)
            .bearer_auth(&token),
    )
    .await;
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
