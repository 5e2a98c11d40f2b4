use crate::harness::fixtures::{space_with, visitor, visitor_says};
use crate::harness::{Owner, TestServer, spoken, text};
use futures_util::future::join_all;
use mychat::spaces::model::SpaceSettings;
use reqwest::Method;
use serde_json::{Value, json};

/// The contents of a page's messages, without the history lines.
fn contents(page: &Value) -> Vec<String> {
    spoken(page)
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn thread_with_messages(server: &TestServer, owner: &Owner, n: usize) -> String {
    let space = space_with(server, owner, "S", &[], SpaceSettings::default()).await;
    let v = visitor(server, &space).await;
    let thread = visitor_says(server, &v, "m0").await.thread.id.to_string();
    for i in 1..n {
        let r = server
            .post(
                &format!("/api/v1/threads/{thread}/messages"),
                &owner.token,
                json!({"content": format!("m{i}"), "clientMsgId": format!("c{i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    thread
}

#[tokio::test]
async fn pagination_walks_every_message_exactly_once_both_ways() {
    let (server, owner) = TestServer::with_owner().await;
    let thread = thread_with_messages(&server, &owner, 23).await;
    let expected: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();

    // Backwards from the newest page.
    let mut pages = vec![];
    let mut path = format!("/api/v1/threads/{thread}/messages?limit=5");
    loop {
        let page = server.get(&path, &owner.token).await;
        pages.push(contents(page.ok()));
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/api/v1/threads/{thread}/messages?limit=5&before={c}"),
            None => break,
        }
    }
    let backwards: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(backwards, expected);

    // `nextCursor` goes back in as `cursor`, like every list's.
    let mut pages = vec![];
    let mut path = format!("/api/v1/threads/{thread}/messages?limit=7");
    loop {
        let page = server.get(&path, &owner.token).await;
        pages.push(contents(page.ok()));
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/api/v1/threads/{thread}/messages?limit=7&cursor={c}"),
            None => break,
        }
    }
    let by_cursor: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(by_cursor, expected);
    let some_id = uuid::Uuid::max();
    let both = server
        .get(
            &format!("/api/v1/threads/{thread}/messages?cursor={some_id}&before={some_id}"),
            &owner.token,
        )
        .await;
    assert_eq!(both.err(400), "validation_failed");
    let bad = server
        .get(
            &format!("/api/v1/threads/{thread}/messages?cursor=nope"),
            &owner.token,
        )
        .await;
    bad.err(400);

    // Forwards from the start (after= nothing: use the first id).
    let first = server
        .get(
            &format!(
                "/api/v1/threads/{thread}/messages?limit=1&before={}",
                uuid::Uuid::max()
            ),
            &owner.token,
        )
        .await;
    assert_eq!(contents(first.ok()), vec!["m22"]);
    let all = server
        .get(
            &format!("/api/v1/threads/{thread}/messages?limit=200"),
            &owner.token,
        )
        .await;
    let first_id = all.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    let mut forwards = vec!["m0".to_owned()];
    let mut path = format!("/api/v1/threads/{thread}/messages?limit=4&after={first_id}");
    loop {
        let page = server.get(&path, &owner.token).await;
        forwards.extend(contents(page.ok()));
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/api/v1/threads/{thread}/messages?limit=4&after={c}"),
            None => break,
        }
    }
    assert_eq!(forwards, expected);
    server
        .get(
            &format!("/api/v1/threads/{thread}/messages?after={first_id}&before={first_id}"),
            &owner.token,
        )
        .await
        .err(400);
}

#[tokio::test]
async fn idempotent_send_stores_one_message() {
    let (server, owner) = TestServer::with_owner().await;
    let thread = thread_with_messages(&server, &owner, 1).await;
    let path = format!("/api/v1/threads/{thread}/messages");
    let body = json!({"content": "only once", "clientMsgId": "retry-1"});
    let sends = (0..8).map(|_| server.post(&path, &owner.token, body.clone()));
    let replies = join_all(sends).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1);
    let ids: std::collections::HashSet<_> = replies
        .iter()
        .map(|r| r.ok()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    let page = server.get(&path, &owner.token).await;
    assert_eq!(contents(page.ok()), vec!["m0", "only once"]);
}

#[tokio::test]
async fn edit_delete_notes_and_replies() {
    let server = TestServer::start_with(|c| c.limits.edit_window_secs = 3600).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let thread = thread_with_messages(&server, &owner, 1).await;
    let path = format!("/api/v1/threads/{thread}/messages");
    let first = server.get(&path, &owner.token).await.ok()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let reply = server
        .post(
            &path,
            &owner.token,
            json!({"content": "re", "clientMsgId": "a", "replyToId": first}),
        )
        .await;
    assert_eq!(reply.ok()["replyToId"], first.as_str());
    let id = reply.body["id"].as_str().unwrap().to_owned();

    let edited = server
        .patch(
            &format!("/api/v1/messages/{id}"),
            &owner.token,
            json!({"content": "re: edited"}),
        )
        .await;
    assert_eq!(edited.ok()["content"], "re: edited");
    assert!(edited.body["editedAt"].is_string());
    // The visitor's message is not the agent's to edit.
    server
        .patch(
            &format!("/api/v1/messages/{first}"),
            &owner.token,
            json!({"content": "x"}),
        )
        .await
        .err(403);

    let note = server
        .post(
            &path,
            &owner.token,
            json!({"content": "private", "clientMsgId": "n", "internal": true}),
        )
        .await;
    assert_eq!(note.ok()["internal"], true);

    let deleted = server
        .delete(&format!("/api/v1/messages/{id}"), &owner.token)
        .await;
    assert!(deleted.ok()["deletedAt"].is_string());
    assert_eq!(deleted.body["content"], "");
    let page = server.get(&path, &owner.token).await;
    let items = spoken(page.ok());
    assert_eq!(items.len(), 3);
    assert_eq!(items[1]["content"], "");
    assert!(items[1]["deletedAt"].is_string());

    // replyTo must be a message of the same thread.
    let other = thread_with_messages(&server, &owner, 1).await;
    server
        .post(
            &format!("/api/v1/threads/{other}/messages"),
            &owner.token,
            json!({"content": "x", "replyToId": first}),
        )
        .await
        .err(400);
}

#[tokio::test]
async fn editing_after_the_window_is_refused() {
    let server = TestServer::start_with(|c| c.limits.edit_window_secs = 0).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let thread = thread_with_messages(&server, &owner, 2).await;
    let page = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await;
    let mine = spoken(page.ok())[1]["id"].as_str().unwrap().to_owned();
    let r = server
        .patch(
            &format!("/api/v1/messages/{mine}"),
            &owner.token,
            json!({"content": "late"}),
        )
        .await;
    assert_eq!(r.err(409), "edit_window_passed");
}

#[tokio::test]
async fn invalid_messages_are_refused_and_leave_nothing_behind() {
    let (server, owner) = TestServer::with_owner().await;
    let thread = thread_with_messages(&server, &owner, 1).await;
    let path = format!("/api/v1/threads/{thread}/messages");
    let cases = [
        json!({"content": ""}),
        json!({"content": "   \n "}),
        json!({"content": "x".repeat(5001)}),
        json!({"content": "x", "clientMsgId": ""}),
        json!({"content": "x", "clientMsgId": "y".repeat(101)}),
        json!({"content": 5}),
        json!({"content": "x", "bogus": 1}),
        json!({"content": "x", "replyToId": "not-a-uuid"}),
    ];
    for body in cases {
        let r = server.post(&path, &owner.token, body.clone()).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.body);
        assert!(r.body["error"]["code"].is_string());
    }
    assert!(
        server
            .post(&path, &owner.token, json!({"content": "x".repeat(5000)}))
            .await
            .status
            .is_success()
    );
    let page = server.get(&path, &owner.token).await;
    assert_eq!(spoken(page.ok()).len(), 2);
    // A body over the 1 MiB limit is a 413.
    let huge = json!({"content": "x".repeat(1_100_000)});
    let r = server.post(&path, &owner.token, huge).await;
    assert_eq!(r.err(413), "too_large");
}

#[tokio::test]
async fn other_organizations_objects_are_404_on_every_id_route() {
    let server = TestServer::start().await;
    let a = server.register("A", "a@a.test").await;
    let b = server.register("B", "b@b.test").await;
    let thread = thread_with_messages(&server, &a, 2).await;
    let page = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &a.token)
        .await;
    let message = page.ok()["items"][1]["id"].as_str().unwrap().to_owned();
    let space = server
        .get(&format!("/api/v1/threads/{thread}"), &a.token)
        .await
        .ok()["chatSpaceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let visitor = server
        .get(&format!("/api/v1/threads/{thread}"), &a.token)
        .await
        .ok()["visitorId"]
        .as_str()
        .unwrap()
        .to_owned();
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/threads/{thread}"), None),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}"),
            Some(json!({"subject": "x"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/claim"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/release"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/close"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/threads/{thread}/reopen"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/threads/{thread}/transfer"),
            Some(json!({"agentId": b.agent_id})),
        ),
        (
            Method::POST,
            format!("/api/v1/threads/{thread}/read"),
            Some(json!({"upTo": message})),
        ),
        (
            Method::GET,
            format!("/api/v1/threads/{thread}/messages"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/threads/{thread}/messages"),
            Some(json!({"content": "x"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/messages/{message}"),
            Some(json!({"content": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/messages/{message}"), None),
        (
            Method::GET,
            format!("/api/v1/chat-spaces/{space}/threads"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/threads".to_owned(),
            Some(json!({"visitorId": visitor})),
        ),
    ];
    for (method, path, body) in routes {
        let r = server
            .call(method.clone(), &path, Some(&b.token), body)
            .await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "not_found");
    }
    // And nothing changed for A.
    let t = server
        .get(&format!("/api/v1/threads/{thread}"), &a.token)
        .await;
    assert_eq!(t.ok()["status"], "active");
    assert!(t.body["subject"].is_null());
    let page = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &a.token)
        .await;
    assert_eq!(spoken(page.ok()).len(), 2);
    assert!(spoken(&page.body)[1]["deletedAt"].is_null());
}

#[tokio::test]
async fn restart_keeps_everything() {
    let (server, owner) = TestServer::with_owner().await;
    let thread = thread_with_messages(&server, &owner, 10).await;
    let before = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &owner.token)
        .await
        .ok()
        .clone();
    let server = server.restart().await;
    let login = server.login("ann@acme.test", "correct horse battery").await;
    let token = login.ok()["accessToken"].as_str().unwrap().to_owned();
    let after = server
        .get(&format!("/api/v1/threads/{thread}/messages"), &token)
        .await;
    assert_eq!(after.ok(), &before);
}

/// Writes waiting while the writer commits join its next commit. The
/// writer is held inside a write until all 100 sends wait behind it, so
/// the batch they share does not depend on how fast they arrive.
#[tokio::test]
async fn concurrent_writers_share_commits() {
    let (server, owner) = TestServer::with_owner().await;
    let thread = thread_with_messages(&server, &owner, 1).await;
    let store = server.app_state.store.clone();
    let before = store.stats();
    let (entered, inside) = tokio::sync::oneshot::channel();
    let mut entered = Some(entered);
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let held = store.write(move |_| -> Result<(), mychat::store::Error> {
        if let Some(entered) = entered.take() {
            let _ = entered.send(());
        }
        // Returns once `release` is dropped.
        let _ = gate.recv();
        Ok(())
    });
    let path = format!("/api/v1/threads/{thread}/messages");
    let sends = join_all((0..100).map(|i| {
        server.post(
            &path,
            &owner.token,
            json!({"content": format!("x{i}"), "clientMsgId": format!("g{i}")}),
        )
    }));
    let opened = async {
        inside.await.expect("the writer runs the held write");
        while store.queued() < 100 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        drop(release);
    };
    let (held, sent, ()) = tokio::join!(held, sends, opened);
    held.expect("the held write commits");
    for r in sent {
        assert_eq!(r.status, 201);
    }
    let after = store.stats();
    let writes = after.writes - before.writes;
    let commits = after.commits - before.commits;
    assert!(writes >= 101);
    assert!(
        commits < writes / 2,
        "{commits} commits for {writes} writes"
    );
    assert!(after.largest_batch >= 100, "{after:?}");
    let metrics = text(server.client.get(server.url("/metrics"))).await;
    assert!(metrics.contains("mychat_store_commit_batch_size_bucket"));
    let threads: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mychat_threads{"))
        .collect();
    assert!(
        threads.contains(&"mychat_threads{status=\"active\"} 1"),
        "{threads:?}"
    );
}
