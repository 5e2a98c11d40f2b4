//! CSAT ratings over a real server: a visitor rates its own ended
//! conversation once (`POST /widget/rating`); bad scores, other visitors'
//! threads, open threads and spaces that do not ask are refused and change
//! nothing; agents see the rating on the thread, live.

use crate::harness::fixtures::{self, space_with};
use crate::harness::ws::{self, kind};
use crate::harness::{FROM_SITE, Owner, Reply, TestServer};
use mychat::spaces::model::{ChatSpace, SpaceSettings};
use reqwest::Method;
use serde_json::{Value, json};

struct Chat {
    server: TestServer,
    owner: Owner,
    space: ChatSpace,
    /// The visitor's session token.
    token: String,
    thread: String,
}

/// A visitor who wrote once and whose conversation is still open.
async fn open_chat(settings: SpaceSettings) -> Chat {
    let server = TestServer::start().await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = space_with(&server, &owner, "Site", &["site.test"], settings).await;
    let (token, _) =
        fixtures::visitor_session(&server, FROM_SITE, json!({ "key": space.widget_key })).await;
    let sent = fixtures::visitor_posts(
        &server,
        &token,
        json!({ "content": "Hello", "clientMsgId": "c1" }),
    )
    .await;
    let thread = sent.created()["thread"]["id"].as_str().unwrap().to_owned();
    Chat {
        server,
        owner,
        space,
        token,
        thread,
    }
}

/// The same, after the visitor ended the chat.
async fn ended_chat() -> Chat {
    let chat = open_chat(SpaceSettings::default()).await;
    chat.visitor(Method::POST, "/close", None).await.ok();
    chat
}

impl Chat {
    async fn visitor(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let path = format!("/api/v1/widget{path}");
        self.server
            .call_with(method, &path, Some(&self.token), body, FROM_SITE)
            .await
    }

    async fn rate(&self, body: Value) -> Reply {
        self.visitor(Method::POST, "/rating", Some(body)).await
    }

    /// The thread as agents read it.
    async fn thread(&self) -> Value {
        let path = format!("/api/v1/threads/{}", self.thread);
        self.server.get(&path, &self.owner.token).await.ok().clone()
    }
}

#[tokio::test]
async fn a_visitor_rates_its_ended_chat_once_and_agents_see_it() {
    let chat = ended_chat().await;
    let r = chat
        .rate(json!({ "threadId": chat.thread, "score": 4, "comment": "  Quick and kind.  " }))
        .await;
    let body = r.created();
    assert_eq!(body["threadId"], chat.thread.as_str());
    assert_eq!(body["rating"]["score"], 4);
    assert_eq!(body["rating"]["comment"], "Quick and kind.");

    let thread = chat.thread().await;
    assert_eq!(thread["rating"]["score"], 4);
    assert_eq!(thread["rating"]["comment"], "Quick and kind.");
    assert!(thread["rating"]["at"].is_string(), "{thread}");

    // Once: a second rating is refused and the first one stays.
    let again = chat
        .rate(json!({ "threadId": chat.thread, "score": 1 }))
        .await;
    assert_eq!(again.err(409), "already_rated");
    assert_eq!(chat.thread().await["rating"]["score"], 4);

    // And the visitor panel's earlier threads carry it too.
    let visitor = thread["visitorId"].as_str().unwrap();
    let list = chat
        .server
        .get(
            &format!("/api/v1/visitors/{visitor}/threads"),
            &chat.owner.token,
        )
        .await;
    assert_eq!(list.ok()["items"][0]["rating"]["score"], 4);
}

#[tokio::test]
async fn rating_is_also_accepted_under_the_name_rating_without_a_comment() {
    let chat = ended_chat().await;
    let r = chat
        .rate(json!({ "threadId": chat.thread, "rating": 5 }))
        .await;
    assert_eq!(r.created()["rating"]["score"], 5);
    assert_eq!(chat.thread().await["rating"]["comment"], Value::Null);
}

#[tokio::test]
async fn bad_ratings_are_refused_and_change_nothing() {
    let chat = ended_chat().await;
    let long = "x".repeat(1001);
    for bad in [
        json!({ "threadId": chat.thread, "score": 0 }),
        json!({ "threadId": chat.thread, "score": 6 }),
        json!({ "threadId": chat.thread, "score": -1 }),
        json!({ "threadId": chat.thread, "score": 2.5 }),
        json!({ "threadId": chat.thread, "score": "5" }),
        json!({ "threadId": chat.thread }),
        json!({ "threadId": chat.thread, "score": 3, "comment": long }),
        json!({ "threadId": chat.thread, "score": 3, "stars": 3 }),
        json!({ "threadId": "not-a-thread", "score": 3 }),
    ] {
        let r = chat.rate(bad.clone()).await;
        assert!(
            r.status == 400 || r.status == 404 || r.status == 422,
            "{bad} gave {} {}",
            r.status,
            r.body
        );
        assert!(r.body["error"]["code"].is_string(), "{bad}: {}", r.body);
    }
    let r = chat
        .rate(json!({ "threadId": chat.thread, "score": 9 }))
        .await;
    assert_eq!(r.err(400), "validation_failed");
    // A comment of exactly 1000 characters is fine, and nothing before it stuck.
    assert_eq!(chat.thread().await["rating"], Value::Null);
    let ok = chat
        .rate(json!({ "threadId": chat.thread, "score": 3, "comment": "y".repeat(1000) }))
        .await;
    assert_eq!(ok.created()["rating"]["score"], 3);
}

#[tokio::test]
async fn an_open_chat_cannot_be_rated() {
    let chat = open_chat(SpaceSettings::default()).await;
    let r = chat
        .rate(json!({ "threadId": chat.thread, "score": 5 }))
        .await;
    assert_eq!(r.err(409), "thread_open");
    assert_eq!(chat.thread().await["rating"], Value::Null);
}

#[tokio::test]
async fn another_visitors_thread_or_a_missing_one_is_not_found() {
    let chat = ended_chat().await;
    let (other, _) = fixtures::visitor_session(
        &chat.server,
        FROM_SITE,
        json!({ "key": chat.space.widget_key }),
    )
    .await;
    let body = json!({ "threadId": chat.thread, "score": 1 });
    let r = chat
        .server
        .call_with(
            Method::POST,
            "/api/v1/widget/rating",
            Some(&other),
            Some(body),
            FROM_SITE,
        )
        .await;
    assert_eq!(r.err(404), "not_found");
    let missing = json!({ "threadId": uuid::Uuid::now_v7(), "score": 1 });
    assert_eq!(chat.rate(missing).await.err(404), "not_found");
    // Without a session at all.
    let anonymous = chat
        .server
        .call_with(
            Method::POST,
            "/api/v1/widget/rating",
            None,
            Some(json!({ "threadId": chat.thread, "score": 1 })),
            FROM_SITE,
        )
        .await;
    assert_eq!(anonymous.err(401), "unauthorized");
    assert_eq!(chat.thread().await["rating"], Value::Null);
}

#[tokio::test]
async fn a_space_that_does_not_ask_for_ratings_refuses_them() {
    let settings = SpaceSettings {
        csat: false,
        ..SpaceSettings::default()
    };
    let chat = open_chat(settings).await;
    let config = chat
        .server
        .call_with(
            Method::GET,
            &format!("/api/v1/widget/config?key={}", chat.space.widget_key),
            None,
            None,
            FROM_SITE,
        )
        .await;
    assert_eq!(config.ok()["csat"], false);
    chat.visitor(Method::POST, "/close", None).await.ok();
    let r = chat
        .rate(json!({ "threadId": chat.thread, "score": 5 }))
        .await;
    assert_eq!(r.err(409), "ratings_disabled");
    assert_eq!(chat.thread().await["rating"], Value::Null);

    // Admins turn it on and off in the space settings.
    let path = format!("/api/v1/chat-spaces/{}", chat.space.id);
    let on = chat
        .server
        .patch(
            &path,
            &chat.owner.token,
            json!({ "settings": { "csat": true } }),
        )
        .await;
    assert_eq!(on.ok()["settings"]["csat"], true);
    let bad = chat
        .server
        .patch(
            &path,
            &chat.owner.token,
            json!({ "settings": { "csat": "yes" } }),
        )
        .await;
    assert_eq!(bad.err(400), "validation_failed");
    let r = chat
        .rate(json!({ "threadId": chat.thread, "score": 5 }))
        .await;
    assert_eq!(r.created()["rating"]["score"], 5);
}

#[tokio::test]
async fn agents_see_a_new_rating_live() {
    let chat = ended_chat().await;
    let mut agent = ws::connect_agent(chat.server.addr, &chat.owner.token, &[])
        .await
        .expect("agent socket opens");
    agent.expect("ready").await;
    agent
        .send(json!({ "type": "agent:join_space", "chatSpaceId": chat.space.id }))
        .await;
    agent.wait_for("joined").await;

    chat.rate(json!({ "threadId": chat.thread, "score": 2, "comment": "Slow" }))
        .await
        .created();
    let (frame, _) = agent
        .until(|f| kind(f) == "thread:updated" && !f["thread"]["rating"].is_null())
        .await;
    assert_eq!(frame["thread"]["id"], chat.thread.as_str());
    assert_eq!(frame["thread"]["rating"]["score"], 2);
    assert_eq!(frame["thread"]["rating"]["comment"], "Slow");
}
