//! Hostile input: malformed and oversized frames, floods, too many
//! connection attempts.

use super::{
    agent, agent_in, agent_sync, agent_url, carries, join, message_ids, session, str_of,
    try_widget, visitor_says, widget, widget_sync, world, world_with,
};
use crate::harness::SITE;
use crate::harness::ws::{self, Refused, kind};
use serde_json::json;

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
    let stored = w
        .server
        .all_messages(&w.owner.token, &str_of(&sent["threadId"]))
        .await;
    assert_eq!(stored.len(), 1);
}

/// Sockets read client frames through a small buffer (idle sockets are
/// many); a frame larger than it, arriving after small ones, grows it and
/// arrives whole, and small frames after it are read as before.
#[tokio::test]
async fn a_large_frame_after_small_ones_arrives_whole_and_the_socket_goes_on() {
    let w = world().await;
    let mut agent_ws = agent_in(&w.server, &w.owner.token, &w.space).await;
    let (token, _) = session(&w.server, &w.space).await;
    let (mut widget_ws, _) = widget(&w.server, &w.space, &token).await;
    widget_ws.send(json!({ "type": "ping" })).await;
    widget_ws.expect("pong").await;
    visitor_says(&mut widget_ws, "small-1", "hi").await;

    // 5,000 characters of two and three bytes each, so the frame is
    // ~12 KB and UTF-8 sequences straddle the reads it takes.
    let large: String = "żółw 🐢 ".chars().cycle().take(5000).collect();
    let sent = visitor_says(&mut widget_ws, "large", &large).await;
    agent_ws.until(carries("visitor:message", &large)).await;
    let small = visitor_says(&mut widget_ws, "small-2", "still here").await;
    agent_ws
        .until(carries("visitor:message", "still here"))
        .await;
    let stored = w
        .server
        .all_messages(&w.owner.token, &str_of(&sent["threadId"]))
        .await;
    let kept = stored
        .iter()
        .find(|m| m["id"] == sent["id"])
        .expect("stored");
    assert_eq!(kept["content"], large.as_str());
    assert_eq!(small["threadId"], sent["threadId"]);
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
