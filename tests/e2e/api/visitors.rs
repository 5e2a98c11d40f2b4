use std::collections::BTreeMap;

use crate::harness::fixtures;
use crate::harness::{Owner, TestServer, pluck};
use chrono::{Duration, Utc};
use mychat::accounts::model::Role;
use mychat::ids::{SpaceId, ThreadId, VisitorId};
use mychat::spaces::model::SpaceSettings;
use mychat::store::tables;
use mychat::threads::model::{Thread, ThreadStatus};
use mychat::visitors::model::{Visitor, VisitorMetadata};
use reqwest::Method;
use serde_json::{Value, json};

const SESSION_TOKEN: &str = "visitor-session-token-that-must-never-show";

async fn new_space(server: &TestServer, owner: &Owner) -> SpaceId {
    fixtures::space_with(server, owner, "Shop", &[], SpaceSettings::default())
        .await
        .id
}

/// Stores a visitor the way the widget would, session token index included,
/// since the widget API is not what these tests are about.
async fn new_visitor(server: &TestServer, space: SpaceId, number: u64) -> VisitorId {
    let now = Utc::now();
    let visitor = Visitor {
        id: VisitorId::new(),
        chat_space_id: space,
        number,
        display_name: None,
        email: None,
        phone: None,
        external_id: None,
        verified: false,
        attributes: Default::default(),
        metadata: VisitorMetadata {
            current_url: Some("https://shop.test/cart".into()),
            user_agent: Some("Firefox".into()),
            first_seen_at: Some(now),
            last_seen_at: Some(now),
            ..VisitorMetadata::default()
        },
        created_at: now,
        email_opt_out: false,
        notes: None,
    };
    let id = visitor.id;
    let hash = mychat::auth::tokens::hash(&format!("{SESSION_TOKEN}-{number}"));
    server
        .app_state
        .write(move |tx| {
            tx.put(&visitor)?;
            tx.put_raw(
                tables::IDX_VISITOR_TOKEN,
                &hash,
                &mychat::store::id_key(visitor.id.as_u128()),
            )?;
            Ok(())
        })
        .await
        .unwrap();
    id
}

async fn new_thread(
    server: &TestServer,
    space: SpaceId,
    visitor: VisitorId,
    status: ThreadStatus,
) -> ThreadId {
    let now = Utc::now() - Duration::minutes(5);
    let thread = Thread {
        id: ThreadId::new(),
        chat_space_id: space,
        visitor_id: visitor,
        assigned_agent_id: None,
        team_id: None,
        participants: vec![],
        external_ref: None,
        subject: None,
        status,
        last_message: None,
        visitor_message_count: 0,
        agent_message_count: 0,
        visitor_read: None,
        agent_reads: BTreeMap::new(),
        last_activity_at: now,
        created_at: now,
        updated_at: now,
        closed_at: None,
        membership: None,
        rating: None,
        labels: Vec::new(),
        priority: Default::default(),
    };
    server.put(&thread).await;
    thread.id
}

fn path(visitor: VisitorId) -> String {
    format!("/api/v1/visitors/{visitor}")
}

/// Every key anywhere in a JSON value, lower-cased.
fn keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.to_lowercase());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn an_agent_sees_the_visitor_with_a_label_and_nothing_about_its_token() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner).await;
    let visitor = new_visitor(&server, space, 7).await;

    let r = server.get(&path(visitor), &owner.token).await;
    let body = r.ok();
    assert_eq!(body["id"], visitor.to_string());
    assert_eq!(body["chatSpaceId"], space.to_string());
    assert_eq!(body["label"], "Visitor #7");
    assert_eq!(body["displayName"], Value::Null);
    assert_eq!(body["metadata"]["currentUrl"], "https://shop.test/cart");

    let mut all = vec![];
    keys(body, &mut all);
    assert!(
        all.iter()
            .all(|k| !k.contains("token") && !k.contains("hash")),
        "token-related field in {body}"
    );
    let text = body.to_string();
    let hash = hex::encode(mychat::auth::tokens::hash(&format!("{SESSION_TOKEN}-7")));
    assert!(!text.contains(SESSION_TOKEN) && !text.contains(&hash));
}

#[tokio::test]
async fn an_agent_records_and_clears_who_the_visitor_is() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner).await;
    let visitor = new_visitor(&server, space, 3).await;
    let p = path(visitor);

    let r = server
        .patch(
            &p,
            &owner.token,
            json!({
                "displayName": " Jan Kowalski ",
                "email": "Jan@Example.COM",
                "phone": "+48 (22) 123-45-67",
                "externalId": "crm-42",
            }),
        )
        .await;
    let body = r.ok();
    assert_eq!(body["displayName"], "Jan Kowalski");
    assert_eq!(body["label"], "Jan Kowalski");
    assert_eq!(body["email"], "jan@example.com");
    assert_eq!(body["phone"], "+48 (22) 123-45-67");
    assert_eq!(body["externalId"], "crm-42");
    assert_eq!(body["metadata"]["currentUrl"], "https://shop.test/cart");
    assert_eq!(server.get(&p, &owner.token).await.ok(), body);

    // Absent fields stay; null and "" both clear.
    let r = server
        .patch(&p, &owner.token, json!({"displayName": null, "phone": ""}))
        .await;
    let body = r.ok();
    assert_eq!(body["displayName"], Value::Null);
    assert_eq!(body["label"], "Visitor #3");
    assert_eq!(body["phone"], Value::Null);
    assert_eq!(body["email"], "jan@example.com");
    assert_eq!(body["externalId"], "crm-42");

    let r = server
        .patch(&p, &owner.token, json!({"email": "", "externalId": null}))
        .await;
    assert_eq!(r.ok()["email"], Value::Null);
    assert_eq!(r.body["externalId"], Value::Null);
    assert_eq!(server.get(&p, &owner.token).await.ok(), &r.body);
}

#[tokio::test]
async fn invalid_visitor_fields_are_refused_and_change_nothing() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner).await;
    let visitor = new_visitor(&server, space, 1).await;
    let p = path(visitor);
    let before = server
        .patch(
            &p,
            &owner.token,
            json!({"displayName": "Jan", "email": "jan@example.com"}),
        )
        .await
        .ok()
        .clone();

    let cases: Vec<(&str, Value)> = vec![
        ("long name", json!({"displayName": "n".repeat(101)})),
        ("two-line name", json!({"displayName": "Jan\nKowalski"})),
        ("bad email", json!({"email": "jan"})),
        (
            "email without domain dot",
            json!({"email": "jan@localhost"}),
        ),
        ("phone with letters", json!({"phone": "call me"})),
        ("phone without digits", json!({"phone": "+()"})),
        ("long phone", json!({"phone": "1".repeat(41)})),
        ("long external id", json!({"externalId": "x".repeat(201)})),
        ("unknown field", json!({"nickname": "vip"})),
        ("wrong type", json!({"displayName": 5})),
        (
            "good and bad together",
            json!({"displayName": "Other", "email": "nope"}),
        ),
    ];
    for (label, body) in cases {
        let r = server.patch(&p, &owner.token, body).await;
        assert_eq!(r.status, 400, "{label}: {}", r.body);
        r.err(400);
        assert_eq!(server.get(&p, &owner.token).await.ok(), &before, "{label}");
    }

    // The limits themselves are allowed.
    let r = server
        .patch(
            &p,
            &owner.token,
            json!({"displayName": "n".repeat(100), "phone": "1".repeat(40), "externalId": "x".repeat(200)}),
        )
        .await;
    r.ok();
}

#[tokio::test]
async fn a_visitors_threads_come_newest_first() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner).await;
    let visitor = new_visitor(&server, space, 1).await;
    let other = new_visitor(&server, space, 2).await;
    let first = new_thread(&server, space, visitor, ThreadStatus::Closed).await;
    new_thread(&server, space, other, ThreadStatus::Unassigned).await;
    let second = new_thread(&server, space, visitor, ThreadStatus::Unassigned).await;

    let r = server
        .get(&format!("{}/threads", path(visitor)), &owner.token)
        .await;
    let ids = pluck(r.ok(), "id");
    assert_eq!(ids, [second.to_string(), first.to_string()]);
    assert_eq!(r.body["items"][1]["status"], "closed");
    assert_eq!(r.body["nextCursor"], Value::Null);

    let none = new_visitor(&server, space, 3).await;
    let r = server
        .get(&format!("{}/threads", path(none)), &owner.token)
        .await;
    assert_eq!(r.ok()["items"], json!([]));
}

#[tokio::test]
async fn plain_agents_may_read_and_edit_visitors() {
    let (server, owner) = TestServer::with_owner().await;
    let agent = fixtures::agent(&server, &owner, "Bob", Role::Agent)
        .await
        .token;
    let space = new_space(&server, &owner).await;
    let visitor = new_visitor(&server, space, 1).await;

    server.get(&path(visitor), &agent).await.ok();
    let r = server
        .patch(&path(visitor), &agent, json!({"displayName": "Eve"}))
        .await;
    assert_eq!(r.ok()["label"], "Eve");
    server
        .get(&format!("{}/threads", path(visitor)), &agent)
        .await
        .ok();
    server.get(&path(visitor), "not-a-token").await.err(401);
}

#[tokio::test]
async fn another_organizations_visitor_is_not_found() {
    let server = TestServer::start().await;
    let a = server.register("Acme", "ann@acme.test").await;
    let b = server.register("Bolt", "bea@bolt.test").await;
    let space = new_space(&server, &a).await;
    let visitor = new_visitor(&server, space, 1).await;
    new_thread(&server, space, visitor, ThreadStatus::Unassigned).await;
    let p = path(visitor);
    let before = server.get(&p, &a.token).await.ok().clone();

    let cases = [
        (Method::GET, p.clone(), None),
        (
            Method::PATCH,
            p.clone(),
            Some(json!({"displayName": "Stolen"})),
        ),
        (Method::PATCH, p.clone(), Some(json!({"email": null}))),
        (Method::GET, format!("{p}/threads"), None),
        (Method::GET, path(VisitorId::new()), None),
        (Method::GET, "/api/v1/visitors/not-a-uuid".to_owned(), None),
    ];
    for (method, path, body) in cases {
        let r = server
            .call(method.clone(), &path, Some(&b.token), body)
            .await;
        assert_eq!(r.err(404), "not_found", "{method} {path}");
    }
    assert_eq!(server.get(&p, &a.token).await.ok(), &before);
}
