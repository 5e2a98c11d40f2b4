//! Connecting: what `hello` and `ready` say, the Origin and session checks
//! before the upgrade, agent authentication, and which spaces and threads
//! an agent may join and see.

use super::{
    agent, agent_in, agent_sync, agent_url, carries, join, message_ids, session, session_from,
    str_of, try_widget, visitor_says, widget, world,
};
use crate::harness::SITE;
use crate::harness::fixtures;
use crate::harness::ws::{self, Refused};
use mychat::accounts::model::Role;
use mychat::ids::OrgId;
use mychat::spaces::model::{OpeningHours, SpaceSettings};
use serde_json::{Value, json};

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
    let sam = fixtures::agent(&w.server, &w.owner, "Sam", Role::Agent).await;
    let (sam, sam_token) = (sam.id, sam.token);
    let lee = fixtures::agent(&w.server, &w.owner, "Lee", Role::Agent).await;
    let (lee, lee_token) = (lee.id, lee.token);
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
