//! Sockets follow access live: an agent removed from a team or a space
//! stops getting its frames at once, a thread routed away leaves the list,
//! and sockets close (4001) when their access ends — token expiry, a
//! deleted space, a rotated widget key.

use super::{agent_in, carries, join, session, str_of, visitor_says, widget, world, world_with};
use crate::harness::fixtures;
use crate::harness::ws::kind;
use mychat::accounts::model::Role;
use mychat::spaces::model::SpaceSettings;
use serde_json::{Value, json};

fn mentions(frames: &[Value], text: &str) -> bool {
    frames.iter().any(|f| f.to_string().contains(text))
}

#[tokio::test]
async fn an_agent_removed_from_a_team_or_space_stops_receiving_at_once() {
    let w = world().await;
    let s = &w.server;
    let team = s
        .post(
            "/api/v1/teams",
            &w.owner.token,
            json!({ "name": "Support" }),
        )
        .await;
    let support = str_of(&team.created()["id"]);
    let sue = fixtures::agent(s, &w.owner, "Sue", Role::Agent).await;
    let sue_path = format!("/api/v1/agents/{}", sue.id);
    let set = |body: Value| {
        let (path, token) = (sue_path.clone(), w.owner.token.clone());
        async move { s.patch(&path, &token, body).await.ok().clone() }
    };
    set(json!({ "teamIds": [support] })).await;
    let mut ws = agent_in(s, &sue.token, &w.space).await;

    // Two visitors: one whose thread is routed to Support, one unrouted.
    let (routed_token, _) = session(s, &w.space).await;
    let (mut routed, _) = widget(s, &w.space, &routed_token).await;
    let first = visitor_says(&mut routed, "r-1", "team one").await;
    let routed_thread = str_of(&first["threadId"]);
    s.patch(
        &format!("/api/v1/threads/{routed_thread}"),
        &w.owner.token,
        json!({ "teamId": support }),
    )
    .await
    .ok();
    let (open_token, _) = session(s, &w.space).await;
    let (mut open, _) = widget(s, &w.space, &open_token).await;
    let first_open = visitor_says(&mut open, "o-1", "open one").await;
    let open_thread = str_of(&first_open["threadId"]);
    visitor_says(&mut routed, "r-2", "team two").await;
    ws.until(carries("visitor:message", "team two")).await;

    // Out of the team: the next routed message never arrives; the unrouted
    // one sent after it does, which proves it (frames come in commit order).
    set(json!({ "teamIds": [] })).await;
    let (changed, _) = ws.wait_for("access:changed").await;
    assert_eq!(changed["agent"]["teamIds"], json!([]));
    visitor_says(&mut routed, "r-3", "team three").await;
    visitor_says(&mut open, "o-2", "open two").await;
    let (_, before) = ws.until(carries("visitor:message", "open two")).await;
    assert!(!mentions(&before, "team three"), "{before:?}");
    // Its typing, reads and updates stay away too.
    routed
        .send(json!({ "type": "visitor:typing", "isTyping": true }))
        .await;
    visitor_says(&mut open, "o-3", "open three").await;
    let (_, before) = ws.until(carries("visitor:message", "open three")).await;
    assert!(!mentions(&before, &routed_thread), "{before:?}");
    // A REST read or a socket action on it is a 404 now.
    let r = s
        .get(&format!("/api/v1/threads/{routed_thread}"), &sue.token)
        .await;
    assert_eq!(r.err(404), "not_found");
    ws.send(json!({ "type": "agent:typing", "threadId": routed_thread, "isTyping": true }))
        .await;
    let (err, _) = ws.wait_for("error").await;
    assert_eq!(err["code"], "not_found", "{err}");

    // A thread routed away from the agent's view leaves its list.
    s.patch(
        &format!("/api/v1/threads/{open_thread}"),
        &w.owner.token,
        json!({ "teamId": support }),
    )
    .await
    .ok();
    let (removed, _) = ws.wait_for("thread:removed").await;
    assert_eq!(removed["threadId"], open_thread.as_str());

    // Back in the team: frames flow again from the next one on.
    set(json!({ "teamIds": [support] })).await;
    ws.wait_for("access:changed").await;
    visitor_says(&mut routed, "r-4", "team four").await;
    ws.until(carries("visitor:message", "team four")).await;

    // Out of the space: nothing of it arrives; a frame of the space the
    // agent still works in proves it.
    let shop = fixtures::space_with(
        s,
        &w.owner,
        "Shop",
        &["site.test"],
        SpaceSettings::default(),
    )
    .await;
    join(&mut ws, &shop).await;
    set(json!({ "spaceIds": [shop.id] })).await;
    ws.wait_for("access:changed").await;
    visitor_says(&mut open, "o-4", "open four").await;
    let (shop_token, _) = session(s, &shop).await;
    let (mut shopper, _) = widget(s, &shop, &shop_token).await;
    visitor_says(&mut shopper, "s-1", "shop one").await;
    let (_, before) = ws.until(carries("visitor:message", "shop one")).await;
    assert!(!mentions(&before, "open four"), "{before:?}");
    // And joining it again is refused.
    ws.send(json!({ "type": "agent:join_space", "chatSpaceId": w.space.id }))
        .await;
    let (err, _) = ws.until(|f| kind(f) == "error").await;
    assert_eq!(err["code"], "not_found", "{err}");
}

#[tokio::test]
async fn a_resume_replays_only_what_the_agent_sees_now() {
    let w = world().await;
    let s = &w.server;
    let team = s
        .post(
            "/api/v1/teams",
            &w.owner.token,
            json!({ "name": "Support" }),
        )
        .await;
    let support = str_of(&team.created()["id"]);
    let sal = fixtures::agent(s, &w.owner, "Sal", Role::Agent).await;
    let mut ws = agent_in(s, &sal.token, &w.space).await;
    let (routed_token, _) = session(s, &w.space).await;
    let (mut routed, _) = widget(s, &w.space, &routed_token).await;
    let first = visitor_says(&mut routed, "r-1", "before routing").await;
    ws.until(carries("visitor:message", "before routing")).await;
    s.patch(
        &format!("/api/v1/threads/{}", str_of(&first["threadId"])),
        &w.owner.token,
        json!({ "teamId": support }),
    )
    .await
    .ok();
    visitor_says(&mut routed, "r-2", "routed secret").await;
    let (open_token, _) = session(s, &w.space).await;
    let (mut open, _) = widget(s, &w.space, &open_token).await;
    visitor_says(&mut open, "o-1", "open line").await;
    ws.until(carries("visitor:message", "open line")).await;
    ws.close().await;

    let mut again = agent_in(s, &sal.token, &w.space).await;
    again
        .send(json!({ "type": "resume", "after": first["id"] }))
        .await;
    let (_, before) = again.until(carries("visitor:message", "open line")).await;
    assert!(!mentions(&before, "routed secret"), "{before:?}");
}

#[tokio::test]
async fn an_agent_socket_closes_when_its_access_token_expires() {
    let w = world_with(|c| c.auth.access_token_ttl_secs = 2).await;
    let login = w
        .server
        .login("ann@acme.test", "correct horse battery")
        .await;
    let token = str_of(&login.ok()["accessToken"]);
    let mut ws = agent_in(&w.server, &token, &w.space).await;
    let (code, reason, _) = ws.closed().await;
    assert_eq!((code, reason.as_str()), (4001, "access token expired"));
}

#[tokio::test]
async fn rotating_the_key_or_deleting_the_space_closes_its_widgets() {
    let w = world().await;
    let s = &w.server;
    let (token, _) = session(s, &w.space).await;
    let (mut ws, _) = widget(s, &w.space, &token).await;
    let rotated = s
        .post(
            &format!("/api/v1/chat-spaces/{}/rotate-key", w.space.id),
            &w.owner.token,
            json!({}),
        )
        .await;
    let new_key = str_of(&rotated.ok()["widgetKey"]);
    let (code, _, _) = ws.closed().await;
    assert_eq!(code, 4001);

    let mut space = w.space.clone();
    space.widget_key = new_key;
    let (token, visitor) = session(s, &space).await;
    let (mut ws, _) = widget(s, &space, &token).await;
    visitor_says(&mut ws, "v-1", "about to vanish").await;
    s.delete(&format!("/api/v1/chat-spaces/{}", space.id), &w.owner.token)
        .await;
    let (code, _, _) = ws.closed().await;
    assert_eq!(code, 4001);
    // Nothing of it is left to reach.
    let r = s
        .get(&format!("/api/v1/visitors/{visitor}"), &w.owner.token)
        .await;
    assert_eq!(r.err(404), "not_found");
    let listed = s.get("/api/v1/threads?view=all", &w.owner.token).await;
    assert_eq!(listed.ok()["items"], json!([]));
}
