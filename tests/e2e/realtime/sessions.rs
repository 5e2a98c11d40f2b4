//! Sessions, presence, resources: revoked sessions close sockets,
//! presence both ways, nothing left behind, pings, shutdown.

use std::future::ready;
use std::time::Duration;

use super::{agent, agent_in, agent_sync, agent_url, session, str_of, visitor_says, widget, world};
use crate::harness::fixtures;
use crate::harness::ws::{self, kind};
use crate::harness::{FROM_SITE, WAIT, eventually};
use mychat::accounts::model::Role;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn logout_password_change_and_disabling_close_the_agents_sockets() {
    let w = world().await;
    let bob = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (bob, bob_token) = (bob.id, bob.token);
    let cy_token = fixtures::agent(&w.server, &w.owner, "Cy", Role::Agent)
        .await
        .token;
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
    eventually(WAIT, "only the owner's socket to be left", || {
        ready((w.server.app_state.hub.connection_count() == 1).then_some(()))
    })
    .await;
}

#[tokio::test]
async fn agent_presence_reaches_widgets_and_other_agents() {
    let w = world().await;
    let bob = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent).await;
    let (bob, bob_token) = (bob.id, bob.token);
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
    let path = format!("/api/v1/widget/config?key={}", w.space.widget_key);
    let config = w
        .server
        .call_with(Method::GET, &path, None, None, FROM_SITE)
        .await;
    assert_eq!(config.body["agentsOnline"], false);
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
    let bob_token = fixtures::agent(&w.server, &w.owner, "Bob", Role::Agent)
        .await
        .token;
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
    eventually(WAIT, "every subscription to be gone", || {
        ready((hub.subscriber_count() == 0 && hub.connection_count() == 0).then_some(()))
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

/// How long a graceful shutdown may take, closing the sockets included.
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(10);

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
    tokio::time::timeout(SHUTDOWN_WITHIN, async { tokio::join!(stop, read) })
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
