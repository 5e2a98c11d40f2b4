//! Files added to an existing message (`POST /messages/:id/attachments`),
//! the widget config's description and recent messages, and an agent
//! starting a conversation with a known visitor.

use crate::harness::fixtures::{self, agent, agent_message, space};
use crate::harness::{FROM_SITE, Reply, SITE, TestServer};
use mychat::accounts::model::Role;
use reqwest::Method;
use serde_json::{Value, json};

const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1F, 0x15, 0xC4, 0x89, 0, 0, 0, 0x0A, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9C, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0D, 0x0A, 0x2D, 0xB4, 0, 0, 0, 0, 0x49, 0x45, 0x4E,
    0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// An agent's upload for a thread: its attachment id.
async fn upload(
    server: &TestServer,
    token: &str,
    thread: &str,
    name: &str,
    bytes: &[u8],
) -> String {
    let boundary = "----mychat-attach-later";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = server
        .client
        .post(server.url(&format!("/api/v1/attachments?threadId={thread}")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("upload sent");
    let r = Reply::read(resp).await;
    r.created()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn files_go_onto_an_existing_own_message_and_nowhere_else() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let cat = agent(&server, &owner, "Cat", Role::Admin).await;
    let v = fixtures::visitor(&server, &space).await;
    let thread = fixtures::visitor_says(&server, &v, "send me the invoice")
        .await
        .thread
        .id
        .to_string();
    let message = agent_message(&server, &bob.token, &thread, "Here it is", false).await;
    let path = format!("/api/v1/messages/{message}/attachments");

    let file = upload(&server, &bob.token, &thread, "invoice.txt", b"total: 42").await;
    let r = server
        .post(&path, &bob.token, json!({ "attachmentIds": [file] }))
        .await;
    let body = r.ok();
    assert_eq!(body["content"], "Here it is");
    assert_eq!(body["attachments"][0]["id"], file.as_str());
    assert_eq!(body["attachments"][0]["name"], "invoice.txt");
    // The history shows it; the file is bound to the message.
    let all = server.all_messages(&bob.token, &thread).await;
    let stored = all.iter().find(|m| m["id"] == message.as_str()).unwrap();
    assert_eq!(stored["attachments"].as_array().unwrap().len(), 1);
    let record = fixtures::attachment(&server, &file);
    assert_eq!(
        record.message_id.map(|m| m.to_string()),
        Some(message.clone())
    );
    // A second file joins the first.
    let image = upload(&server, &bob.token, &thread, "photo.png", PNG).await;
    let r = server
        .post(&path, &bob.token, json!({ "attachmentIds": [image] }))
        .await;
    assert_eq!(r.ok()["attachments"].as_array().unwrap().len(), 2);

    // Refused, with nothing changed: someone else's message (even an
    // admin's upload on Bob's message), a file already on a message, an
    // unknown file, an empty list, another organization.
    let cats = upload(&server, &cat.token, &thread, "cat.txt", b"meow").await;
    let r = server
        .post(&path, &cat.token, json!({ "attachmentIds": [cats] }))
        .await;
    assert_eq!(r.err(403), "forbidden");
    let r = server
        .post(&path, &bob.token, json!({ "attachmentIds": [file] }))
        .await;
    assert_eq!(r.err(409), "attachment_already_attached");
    let r = server
        .post(
            &path,
            &bob.token,
            json!({ "attachmentIds": [uuid::Uuid::now_v7()] }),
        )
        .await;
    assert_eq!(r.err(404), "not_found");
    let r = server
        .post(&path, &bob.token, json!({ "attachmentIds": [] }))
        .await;
    assert_eq!(r.err(400), "validation_failed");
    let other = server.register("Other", "olga@other.test").await;
    let r = server
        .post(&path, &other.token, json!({ "attachmentIds": [cats] }))
        .await;
    assert_eq!(r.err(404), "not_found");
    let all = server.all_messages(&bob.token, &thread).await;
    let stored = all.iter().find(|m| m["id"] == message.as_str()).unwrap();
    assert_eq!(stored["attachments"].as_array().unwrap().len(), 2);
    assert!(fixtures::attachment(&server, &cats).message_id.is_none());
}

#[tokio::test]
async fn widget_config_carries_the_description_and_the_visitors_recent_messages() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let r = server
        .patch(
            &format!("/api/v1/chat-spaces/{}", space.id),
            &owner.token,
            json!({ "settings": { "description": "We answer within minutes" } }),
        )
        .await;
    assert_eq!(
        r.ok()["settings"]["description"],
        "We answer within minutes"
    );
    let r = server
        .patch(
            &format!("/api/v1/chat-spaces/{}", space.id),
            &owner.token,
            json!({ "settings": { "description": "x".repeat(301) } }),
        )
        .await;
    assert_eq!(r.err(400), "validation_failed");

    let (token, _) =
        fixtures::visitor_session(&server, FROM_SITE, json!({ "key": space.widget_key })).await;
    let said = fixtures::visitor_posts(
        &server,
        &token,
        json!({ "content": "Is my order shipped?", "clientMsgId": "c-1" }),
    )
    .await;
    let thread = said.created()["thread"]["id"].as_str().unwrap().to_owned();
    agent_message(&server, &bob.token, &thread, "Yes, today", false).await;
    agent_message(&server, &bob.token, &thread, "internal: check stock", true).await;

    let config = |token: Option<String>| {
        let server = &server;
        let key = space.widget_key.clone();
        async move {
            let mut req = server
                .client
                .get(server.url(&format!("/api/v1/widget/config?key={key}")))
                .header("origin", SITE);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            Reply::read(req.send().await.unwrap()).await
        }
    };
    let r = config(None).await;
    assert_eq!(r.ok()["description"], "We answer within minutes");
    assert_eq!(r.body["messages"], json!([]));
    let r = config(Some(token.clone())).await;
    let contents: Vec<&Value> = r.ok()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["content"])
        .collect();
    assert_eq!(contents, vec!["Is my order shipped?", "Yes, today"]);
    // A token that is not a session of this space shows no one's messages.
    let r = config(Some("not-a-session".into())).await;
    assert_eq!(r.ok()["messages"], json!([]));
}

#[tokio::test]
async fn an_agent_starts_a_conversation_with_a_known_visitor() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let bob = agent(&server, &owner, "Bob", Role::Agent).await;
    let v = fixtures::visitor(&server, &space).await;
    let r = server
        .post(
            "/api/v1/threads",
            &bob.token,
            json!({ "visitorId": v.id, "subject": "Your order", "content": "Hello again!", "clientMsgId": "s-1" }),
        )
        .await;
    let t = r.created();
    assert_eq!(t["assignedAgentId"], bob.id.as_str());
    assert_eq!(t["subject"], "Your order");
    assert_eq!(t["lastMessage"]["preview"], "Hello again!");
    // A second one while that is open is refused; nothing new is stored.
    let r = server
        .call(
            Method::POST,
            "/api/v1/threads",
            Some(&bob.token),
            Some(json!({ "visitorId": v.id, "content": "again" })),
        )
        .await;
    assert_eq!(r.err(409), "thread_open");
}
