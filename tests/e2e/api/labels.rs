//! Labels (the organization's, with colours) and priority on threads, the
//! label and date filters of thread lists, and agents' contact notes and
//! custom attributes on visitors.

use crate::harness::fixtures::{agent, label, space, visitor, visitor_says};
use crate::harness::{TestServer, pluck};
use mychat::accounts::model::Role;
use serde_json::{Value, json};

#[tokio::test]
async fn labels_are_the_organizations_and_admins_manage_them() {
    let (server, owner) = TestServer::with_owner().await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let billing = label(&server, &owner.token, "Billing", "#FF0000").await;
    let list = server.get("/api/v1/labels", &bob.token).await;
    assert_eq!(list.ok()["items"][0]["name"], "Billing");
    assert_eq!(list.body["items"][0]["color"], "#ff0000");

    // Agents read; only admins write.
    let r = server
        .post(
            "/api/v1/labels",
            &bob.token,
            json!({ "name": "Mine", "color": "#00ff00" }),
        )
        .await;
    assert_eq!(r.status, 403);
    // Bad shapes, a taken name: envelopes, nothing stored.
    for (body, status, code) in [
        (
            json!({ "name": "x", "color": "red" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "", "color": "#000000" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "billing", "color": "#000000" }),
            409,
            "label_exists",
        ),
        (
            json!({ "name": "x", "color": "#000000", "icon": 1 }),
            400,
            "invalid_json",
        ),
    ] {
        let r = server.post("/api/v1/labels", &owner.token, body).await;
        assert_eq!(r.err(status), code, "{}", r.body);
    }
    assert_eq!(
        server.get("/api/v1/labels", &owner.token).await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = server
        .patch(
            &format!("/api/v1/labels/{billing}"),
            &owner.token,
            json!({ "color": "#123abc" }),
        )
        .await;
    assert_eq!(r.ok()["color"], "#123abc");

    // Another organization sees none of them and cannot touch them.
    let other = server.register("Other", "olga@other.test").await;
    assert_eq!(
        server.get("/api/v1/labels", &other.token).await.ok()["items"],
        json!([])
    );
    let r = server
        .delete(&format!("/api/v1/labels/{billing}"), &other.token)
        .await;
    assert_eq!(r.err(404), "not_found");
}

#[tokio::test]
async fn any_agent_who_sees_a_thread_labels_it_and_lists_filter_by_label() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let billing = label(&server, &owner.token, "Billing", "#ff0000").await;
    let bug = label(&server, &owner.token, "Bug", "#0000ff").await;
    let a = visitor(&server, &space).await;
    let b = visitor(&server, &space).await;
    let ta = visitor_says(&server, &a, "invoice wrong")
        .await
        .thread
        .id
        .to_string();
    let tb = visitor_says(&server, &b, "button broken")
        .await
        .thread
        .id
        .to_string();

    // Bob does not hold the thread, yet may label it and set its priority.
    let r = server
        .patch(
            &format!("/api/v1/threads/{ta}"),
            &bob.token,
            json!({ "labels": [billing, bug, billing], "priority": "high" }),
        )
        .await;
    assert_eq!(r.ok()["labels"], json!([billing, bug]));
    assert_eq!(r.body["priority"], "high");
    assert_eq!(r.body["status"], "unassigned");
    // The same labels again change nothing, and so add no second history line.
    server
        .patch(
            &format!("/api/v1/threads/{ta}"),
            &bob.token,
            json!({ "labels": [bug, billing] }),
        )
        .await
        .ok();
    let history = server
        .get(&format!("/api/v1/threads/{ta}/messages"), &owner.token)
        .await;
    let changes: Vec<&serde_json::Value> = history.ok()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| m["event"]["kind"] == "labelsChanged")
        .collect();
    assert_eq!(changes.len(), 1, "{}", history.body);
    assert_eq!(changes[0]["event"]["by"]["name"], "Bob");
    assert_eq!(changes[0]["internal"], true);
    // The subject stays the holder's (or an admin's).
    let r = server
        .patch(
            &format!("/api/v1/threads/{ta}"),
            &bob.token,
            json!({ "subject": "mine now" }),
        )
        .await;
    assert_eq!(r.status, 403);
    server
        .patch(
            &format!("/api/v1/threads/{tb}"),
            &bob.token,
            json!({ "labels": [bug] }),
        )
        .await
        .ok();

    let list = |query: String| {
        let (server, token) = (&server, bob.token.clone());
        async move {
            let r = server.get(&format!("/api/v1/threads{query}"), &token).await;
            let ids: Vec<String> = pluck(r.ok(), "id").into_iter().map(str::to_owned).collect();
            ids
        }
    };
    assert_eq!(
        list(format!("?view=all&label={billing}")).await,
        vec![ta.clone()]
    );
    let mut both = list(format!("?view=all&label={bug}")).await;
    both.sort();
    let mut want = vec![ta.clone(), tb.clone()];
    want.sort();
    assert_eq!(both, want);
    let in_space = server
        .get(
            &format!("/api/v1/chat-spaces/{}/threads?label={billing}", space.id),
            &bob.token,
        )
        .await;
    assert_eq!(pluck(in_space.ok(), "id"), vec![ta.as_str()]);

    // Unknown labels: in a filter, in a change (which then changes nothing).
    let other = server.register("Other", "olga@other.test").await;
    let foreign = label(&server, &other.token, "Theirs", "#00ff00").await;
    for q in [foreign.as_str(), "not-a-label"] {
        let r = server
            .get(&format!("/api/v1/threads?view=all&label={q}"), &bob.token)
            .await;
        assert_eq!(r.err(400), "validation_failed", "{q}");
    }
    let r = server
        .patch(
            &format!("/api/v1/threads/{ta}"),
            &bob.token,
            json!({ "labels": [bug, foreign], "priority": "low" }),
        )
        .await;
    assert_eq!(r.err(400), "validation_failed");
    let r = server
        .patch(
            &format!("/api/v1/threads/{ta}"),
            &bob.token,
            json!({ "priority": "whenever" }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let t = server
        .get(&format!("/api/v1/threads/{ta}"), &bob.token)
        .await;
    assert_eq!(t.ok()["labels"], json!([billing, bug]));
    assert_eq!(t.body["priority"], "high");

    // Deleting a label takes it off every thread.
    let r = server
        .delete(&format!("/api/v1/labels/{bug}"), &owner.token)
        .await;
    assert_eq!(r.status, 204);
    let t = server
        .get(&format!("/api/v1/threads/{ta}"), &bob.token)
        .await;
    assert_eq!(t.ok()["labels"], json!([billing]));
    let r = server
        .get(&format!("/api/v1/threads?view=all&label={bug}"), &bob.token)
        .await;
    assert_eq!(r.err(400), "validation_failed");
}

#[tokio::test]
async fn date_filters_bound_last_activity_and_bad_dates_are_refused() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let v = visitor(&server, &space).await;
    let sent = visitor_says(&server, &v, "today").await;
    let id = sent.thread.id.to_string();
    let at = sent.thread.last_activity_at;
    let day = at.format("%Y-%m-%d").to_string();
    let next_day = (at + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let get = |q: String| {
        let (server, token) = (&server, owner.token.clone());
        async move {
            server
                .get(&format!("/api/v1/threads?view=all{q}"), &token)
                .await
        }
    };
    let ids = |r: &crate::harness::Reply| -> Vec<String> {
        pluck(r.ok(), "id").into_iter().map(str::to_owned).collect()
    };
    assert_eq!(
        ids(&get(format!("&from={day}&to={day}")).await),
        vec![id.clone()]
    );
    assert_eq!(
        ids(&get(format!("&from={next_day}")).await),
        Vec::<String>::new()
    );
    assert_eq!(ids(&get(format!("&to={day}")).await), vec![id.clone()]);
    let just_before = (at - chrono::Duration::seconds(1)).to_rfc3339();
    let r = server
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/threads?view=all&to={}", urlencode(&just_before)),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(ids(&r), Vec::<String>::new());
    for bad in [
        "&from=yesterday",
        "&to=2026-13-01",
        &format!("&from={next_day}&to={day}"),
    ] {
        let r = get(bad.to_owned()).await;
        assert_eq!(r.err(400), "validation_failed", "{bad}");
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn agents_keep_contact_notes_and_attributes_on_a_visitor() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let v = visitor(&server, &space).await;
    let path = format!("/api/v1/visitors/{}", v.id);
    let r = server
        .patch(
            &path,
            &bob.token,
            json!({ "notes": "Prefers email. VIP since 2024.", "attributes": { "plan": "pro", "seats": 5 } }),
        )
        .await;
    assert_eq!(r.ok()["notes"], "Prefers email. VIP since 2024.");
    assert_eq!(r.body["attributes"], json!({ "plan": "pro", "seats": 5 }));
    // A null attribute removes it; the notes stay as they were.
    let r = server
        .patch(
            &path,
            &bob.token,
            json!({ "attributes": { "seats": null } }),
        )
        .await;
    assert_eq!(r.ok()["attributes"], json!({ "plan": "pro" }));
    assert_eq!(r.body["notes"], "Prefers email. VIP since 2024.");

    // Bad input changes nothing.
    for body in [
        json!({ "notes": "x".repeat(5001) }),
        json!({ "attributes": { "bad key": 1 } }),
        json!({ "attributes": { "nested": { "a": 1 } } }),
        json!({ "notes": "fine", "attributes": { "list": [1] } }),
    ] {
        let r = server.patch(&path, &bob.token, body).await;
        assert_eq!(r.err(400), "validation_failed");
    }
    let r = server.get(&path, &bob.token).await;
    assert_eq!(r.ok()["notes"], "Prefers email. VIP since 2024.");
    assert_eq!(r.body["attributes"], json!({ "plan": "pro" }));
    // Another organization cannot read or write them.
    let other = server.register("Other", "olga@other.test").await;
    let r = server
        .patch(&path, &other.token, json!({ "notes": "mine" }))
        .await;
    assert_eq!(r.err(404), "not_found");
    // An empty note clears it.
    let r = server
        .patch(&path, &bob.token, json!({ "notes": "" }))
        .await;
    assert_eq!(r.ok()["notes"], Value::Null);
}

#[tokio::test]
async fn agent_sockets_hear_of_new_labels_and_of_labels_put_on_a_thread() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let v = visitor(&server, &space).await;
    let thread = visitor_says(&server, &v, "hello")
        .await
        .thread
        .id
        .to_string();
    let mut ws = crate::harness::ws::connect_agent(server.addr, &bob.token, &[])
        .await
        .expect("agent socket opens");
    ws.expect("ready").await;
    ws.send(json!({ "type": "agent:join_space", "chatSpaceId": space.id }))
        .await;
    ws.wait_for("joined").await;

    let vip = label(&server, &owner.token, "VIP", "#aa00aa").await;
    ws.wait_for("labels:changed").await;
    server
        .patch(
            &format!("/api/v1/threads/{thread}"),
            &owner.token,
            json!({ "labels": [vip], "priority": "urgent" }),
        )
        .await
        .ok();
    let (frame, _) = ws
        .until(|f| f["type"] == "thread:updated" && f["thread"]["id"] == thread.as_str())
        .await;
    assert_eq!(frame["thread"]["labels"], json!([vip]));
    assert_eq!(frame["thread"]["priority"], "urgent");
    // Another organization's sockets hear nothing of it.
    let other = server.register("Other", "olga@other.test").await;
    let mut theirs = crate::harness::ws::connect_agent(server.addr, &other.token, &[])
        .await
        .expect("agent socket opens");
    theirs.expect("ready").await;
    label(&server, &owner.token, "Later", "#00aa00").await;
    ws.wait_for("labels:changed").await;
    label(&server, &other.token, "Theirs", "#00aa00").await;
    let (_, before) = theirs.wait_for("labels:changed").await;
    assert!(
        before.iter().all(|f| f["type"] != "labels:changed"),
        "{before:?}"
    );
}
