//! Fixtures: agents, spaces, visitors and their sessions and messages.
//! Some go through the library's own use cases where the public route for
//! them is what another test is about.

use mychat::accounts::model::Role;
use mychat::accounts::service::{NewAgent, create_agent};
use mychat::attachments::model::Attachment;
use mychat::ids::{AttachmentId, OrgId};
use mychat::messages::send::NewMessage;
use mychat::messages::send::{self, Sent};
use mychat::spaces::model::{ChatSpace, SpaceSettings};
use mychat::store::Reader;
use mychat::visitors::model::{Visitor, VisitorMetadata};
use reqwest::Method;
use serde_json::{Value, json};

use super::{FROM_SITE, Owner, Reply, TestServer};

/// A space of the owner's organization named "Site" that allows site.test.
pub async fn space(server: &TestServer, owner: &Owner) -> ChatSpace {
    space_with(
        server,
        owner,
        "Site",
        &["site.test"],
        SpaceSettings::default(),
    )
    .await
}

/// A space of the owner's organization with these allowed domains and settings.
pub async fn space_with(
    server: &TestServer,
    owner: &Owner,
    name: &str,
    domains: &[&str],
    settings: SpaceSettings,
) -> ChatSpace {
    let org: OrgId = owner.org_id.parse().expect("org id");
    let domains = domains.iter().map(|d| d.to_string()).collect();
    mychat::spaces::service::create_with(&server.app_state, org, name, domains, settings)
        .await
        .expect("space created")
}

/// An agent of the owner's organization, logged in.
pub struct Agent {
    pub id: String,
    pub token: String,
    pub refresh: String,
}

/// Adds an agent (`<name>@<org id>.test`, password "agent password 1")
/// and logs it in.
pub async fn agent(server: &TestServer, owner: &Owner, name: &str, role: Role) -> Agent {
    let org: OrgId = owner.org_id.parse().unwrap();
    let email = format!("{}@{}.test", name.to_lowercase(), owner.org_id);
    let new = NewAgent::parse(&email, name, role, Some("agent password 1")).unwrap();
    let agent = create_agent(&server.app_state, org, new).await.unwrap();
    let login = server.login(&email, "agent password 1").await;
    let body = login.ok();
    Agent {
        id: agent.id.to_string(),
        token: body["accessToken"].as_str().unwrap().to_owned(),
        refresh: body["refreshToken"].as_str().unwrap().to_owned(),
    }
}

/// An attachment's stored record.
pub fn attachment(server: &TestServer, id: &str) -> Attachment {
    let id: AttachmentId = id.parse().expect("attachment id");
    let read = server.app_state.store.read().expect("read");
    read.attachment(id)
        .expect("attachment read")
        .expect("attachment record")
}

/// A visitor of `space`, stored directly (no session token).
pub async fn visitor(server: &TestServer, space: &ChatSpace) -> Visitor {
    let visitor = Visitor {
        id: mychat::ids::VisitorId::new(),
        chat_space_id: space.id,
        number: 1,
        display_name: None,
        email: None,
        phone: None,
        external_id: None,
        verified: false,
        attributes: Default::default(),
        metadata: VisitorMetadata::default(),
        created_at: chrono::Utc::now(),
        email_opt_out: false,
        notes: None,
    };
    let v = visitor.clone();
    server
        .app_state
        .write(move |tx| Ok(tx.put(&v)?))
        .await
        .unwrap();
    visitor
}

/// The visitor sends a message through the use case.
pub async fn visitor_says(server: &TestServer, visitor: &Visitor, text: &str) -> Sent {
    let new = NewMessage::parse(
        text,
        Some(&uuid::Uuid::new_v4().to_string()),
        None,
        false,
        Vec::new(),
    )
    .unwrap();
    let space = mychat::store::Reader::space(
        &server.app_state.store.read().unwrap(),
        visitor.chat_space_id,
    )
    .unwrap()
    .expect("space");
    send::from_visitor(&server.app_state, visitor.id, &space, new)
        .await
        .expect("visitor message")
}

/// A new visitor session as the widget starts it (`POST /widget/session`
/// with `body`, which holds the widget key, and request `headers` such as
/// the Origin): (session token, visitor id).
pub async fn visitor_session(
    server: &TestServer,
    headers: &[(&str, &str)],
    body: Value,
) -> (String, String) {
    let r = server
        .call_with(
            Method::POST,
            "/api/v1/widget/session",
            None,
            Some(body),
            headers,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["resumed"], false, "{}", r.body);
    (
        r.body["sessionToken"].as_str().expect("token").to_owned(),
        r.body["visitorId"].as_str().expect("visitor id").to_owned(),
    )
}

/// `POST /widget/messages` as the widget on the allowed site sends it.
pub async fn visitor_posts(server: &TestServer, token: &str, body: Value) -> Reply {
    server
        .call_with(
            Method::POST,
            "/api/v1/widget/messages",
            Some(token),
            Some(body),
            FROM_SITE,
        )
        .await
}

/// An agent's message (`internal`: a note) over REST; returns its id.
pub async fn agent_message(
    server: &TestServer,
    token: &str,
    thread: &str,
    content: &str,
    internal: bool,
) -> String {
    let r = server
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            token,
            json!({"content": content, "clientMsgId": uuid::Uuid::new_v4().to_string(), "internal": internal}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().expect("message id").to_owned()
}

/// A label of the organization (`POST /labels`); its id.
pub async fn label(server: &TestServer, token: &str, name: &str, color: &str) -> String {
    let r = server
        .post(
            "/api/v1/labels",
            token,
            json!({ "name": name, "color": color }),
        )
        .await;
    r.created()["id"].as_str().unwrap().to_owned()
}
