//! The objects schemathesis works on: a world of real, related objects
//! (threads with messages and a file, visitors, agents, teams, labels,
//! templates, webhooks with a delivery, API tokens, a signing key, an
//! object-bound thread and a member with a valid member token), and the
//! schemathesis config file that hands their ids to the operations that
//! take them, so that requests reach the handlers' success paths and
//! their bodies are checked against the documented schemas.
//!
//! Its webhooks point at a closed local port (the server allows private
//! targets). Operations that destroy or rotate something get an object of their
//! own, so that the others keep finding theirs.

use std::fmt::Write;

use mychat::accounts::model::Role;
use serde_json::{Value, json};

use super::integrations::{Org, org};
use crate::harness::{FROM_SITE, Reply, TestServer, fixtures};

/// The credentials of the runs and the objects of the world.
pub struct World {
    pub org: Org,
    /// An API token with the `agent` and `management` scopes.
    pub api_token: String,
    /// A widget session on the site's space; it wrote `thread`.
    pub visitor_token: String,
    /// A member token of `user-17`, a participant of `dialog`.
    pub member_token: String,
    /// Path, query and body values per operation.
    pub bindings: Vec<Binding>,
}

/// The values one group of operations takes.
pub struct Binding {
    pub operations: Vec<&'static str>,
    pub values: Vec<(&'static str, String)>,
}

fn bind(operations: &[&'static str], values: &[(&'static str, &str)]) -> Binding {
    Binding {
        operations: operations.to_vec(),
        values: values.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    }
}

fn id(reply: &Reply) -> String {
    reply.created()["id"].as_str().expect("an id").to_owned()
}

/// A small PNG, big enough to get a thumbnail.
pub(super) fn png() -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 90]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png encoded");
    out
}

/// A multipart upload of `bytes` as `name` to `path`.
pub(super) async fn upload(
    server: &TestServer,
    path: &str,
    token: &str,
    name: &str,
    bytes: &[u8],
) -> Reply {
    let boundary = "----mychat-world";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = server
        .client
        .post(server.url(path))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("upload sent");
    Reply::read(resp).await
}

/// A visitor of the site that says something: (session token, visitor
/// id, thread id).
pub(super) async fn talking_visitor(
    server: &TestServer,
    key: &str,
    text: &str,
) -> (String, String, String) {
    let (token, visitor) =
        fixtures::visitor_session(server, FROM_SITE, json!({ "key": key })).await;
    let sent = fixtures::visitor_posts(
        server,
        &token,
        json!({"content": text, "clientMsgId": uuid::Uuid::new_v4().to_string()}),
    )
    .await;
    let thread = sent.created()["thread"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a thread: {}", sent.body))
        .to_owned();
    (token, visitor, thread)
}

/// Makes the world on `server`, which must allow private webhook targets.
pub async fn seed(server: &TestServer) -> World {
    let o = org(server, "Acme").await;
    let owner = o.owner.token.clone();
    let post = |path: &'static str, body: Value| {
        let owner = owner.clone();
        async move { server.post(path, &owner, body).await }
    };

    let api_token = o.token(server, "CRM", &["agent", "management"]).await;
    let spare_token = id(&post(
        "/api/v1/api-tokens",
        json!({"name": "spare", "scopes": ["agent"]}),
    )
    .await);
    let spare_key = id(&post("/api/v1/signing-keys", json!({"name": "spare"})).await);

    // The site's space (its settings stay as they are, so the widget
    // run's origin stays allowed), one to change and one to remove.
    let site = fixtures::space(server, &o.owner).await;
    let spare_space = fixtures::space_with(
        server,
        &o.owner,
        "Spare",
        &["spare.test"],
        Default::default(),
    )
    .await;
    let other_space = fixtures::space_with(
        server,
        &o.owner,
        "Other",
        &["other.test"],
        Default::default(),
    )
    .await;
    let key = site.widget_key.clone();

    // A conversation with the visitor's message, an answer and a file.
    let (visitor_token, visitor, thread) =
        talking_visitor(server, &key, "Where is my order?").await;
    let message = fixtures::agent_message(server, &owner, &thread, "Let me check.", false).await;
    let file = upload(
        server,
        &format!("/api/v1/attachments?threadId={thread}"),
        &owner,
        "photo.png",
        &png(),
    )
    .await;
    let attachment = id(&file);
    // Another to delete, and a visitor (with a conversation) to erase.
    let (_, _, spare_thread) = talking_visitor(server, &key, "Hello?").await;
    let (_, erased_visitor, _) = talking_visitor(server, &key, "Forget me").await;

    let agent = fixtures::agent(server, &o.owner, "Pia", Role::Agent).await;
    let spare_agent = fixtures::agent(server, &o.owner, "Max", Role::Agent).await;
    // An agent whose picture the widget shows (and no one changes).
    let pictured = fixtures::agent(server, &o.owner, "Ola", Role::Agent).await;
    let picture = server
        .client
        .put(server.url(&format!("/api/v1/agents/{}/avatar", pictured.id)))
        .bearer_auth(&owner)
        .header("content-type", "image/png")
        .body(png())
        .send()
        .await
        .expect("picture sent");
    assert!(picture.status().is_success(), "{}", picture.status());

    let team = id(&post("/api/v1/teams", json!({"name": "Support"})).await);
    let spare_team = id(&post("/api/v1/teams", json!({"name": "Spare"})).await);
    let label = fixtures::label(server, &owner, "vip", "#cc3300").await;
    let spare_label = fixtures::label(server, &owner, "spare", "#336699").await;
    let template = id(&post(
        "/api/v1/templates",
        json!({"shortcut": "hello", "title": "Hello", "body": "Hello! How can I help?"}),
    )
    .await);
    let spare_template = id(&post(
        "/api/v1/templates",
        json!({"shortcut": "bye", "title": "Bye", "body": "Goodbye!"}),
    )
    .await);
    let webhook_body = json!({"url": "http://127.0.0.1:9/hooks/mychat", "events": ["message.new"]});
    let webhook = id(&post("/api/v1/webhooks", webhook_body.clone()).await);
    let spare_webhook = id(&post("/api/v1/webhooks", webhook_body).await);
    let test = server
        .post(
            &format!("/api/v1/webhooks/{webhook}/test"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(test.status, 202, "{}", test.body);
    let delivery = test.body["id"].as_str().expect("a delivery").to_owned();

    // An object-bound conversation; its participant user-17 is a member.
    let object = |reference: &str| {
        json!({
            "chatSpaceId": o.space_id,
            "externalRef": {"type": "deal", "id": reference},
            "subject": format!("Deal {reference}"),
            "participants": ["user-17", "user-18"],
            "accessScopes": [{"tenant": "acme", "scope1": ["logistics"], "scope2": ["region-1"]}],
        })
    };
    let dialog = server
        .post(
            "/api/v1/management/threads",
            &o.management,
            object("D-1042"),
        )
        .await;
    let dialog = id(&dialog);
    let spare_dialog = server
        .post("/api/v1/management/threads", &o.management, object("D-7"))
        .await;
    let spare_dialog = id(&spare_dialog);
    let removed_dialog = server
        .post("/api/v1/management/threads", &o.management, object("D-9"))
        .await;
    let removed_dialog = id(&removed_dialog);
    let said = server
        .post(
            &format!("/api/v1/dialogs/{dialog}/messages"),
            &o.member_token("user-17", "acme", &["logistics"], &["region-1"]),
            json!({"content": "Loading at 9", "clientMsgId": "m-1"}),
        )
        .await;
    assert_eq!(said.status, 201, "{}", said.body);
    let said = said.body["id"].as_str().expect("a message").to_owned();
    let member_token = o.member_token("user-17", "acme", &["logistics"], &["region-1"]);

    let bindings = vec![
        bind(
            &[
                "GET /api/v1/threads/{id}",
                "PATCH /api/v1/threads/{id}",
                "PATCH /api/v1/threads/{id}/claim",
                "POST /api/v1/threads/{id}/claim",
                "PATCH /api/v1/threads/{id}/close",
                "POST /api/v1/threads/{id}/close",
                "PATCH /api/v1/threads/{id}/release",
                "POST /api/v1/threads/{id}/release",
                "PATCH /api/v1/threads/{id}/reopen",
                "POST /api/v1/threads/{id}/reopen",
                "GET /api/v1/threads/{id}/messages",
                "POST /api/v1/threads/{id}/messages",
                "POST /api/v1/threads/{id}/transcript",
            ],
            &[("path.id", &thread)],
        ),
        bind(
            &["POST /api/v1/threads/{id}/transfer"],
            &[("path.id", &thread), ("body.agentId", &agent.id)],
        ),
        bind(
            &["POST /api/v1/threads/{id}/read"],
            &[("path.id", &thread), ("body.upTo", &message)],
        ),
        bind(&["POST /api/v1/threads"], &[("body.visitorId", &visitor)]),
        bind(
            &["DELETE /api/v1/threads/{id}"],
            &[("path.id", &spare_thread)],
        ),
        bind(
            &[
                "PATCH /api/v1/messages/{id}",
                "DELETE /api/v1/messages/{id}",
                "POST /api/v1/messages/{id}/attachments",
            ],
            &[("path.id", &message)],
        ),
        bind(
            &[
                "GET /api/v1/attachments/{id}",
                "GET /api/v1/attachments/{id}/thumbnail",
            ],
            &[("path.id", &attachment)],
        ),
        bind(
            &["POST /api/v1/attachments"],
            &[("query.threadId", &thread)],
        ),
        bind(
            &[
                "GET /api/v1/visitors/{id}",
                "PATCH /api/v1/visitors/{id}",
                "GET /api/v1/visitors/{id}/export",
                "GET /api/v1/visitors/{id}/threads",
            ],
            &[("path.id", &visitor)],
        ),
        bind(
            &["DELETE /api/v1/visitors/{id}"],
            &[("path.id", &erased_visitor)],
        ),
        bind(
            &[
                "GET /api/v1/chat-spaces/{id}",
                "GET /api/v1/chat-spaces/{id}/embed",
                "GET /api/v1/chat-spaces/{id}/threads",
            ],
            &[("path.id", &site.id.to_string())],
        ),
        bind(
            &["PATCH /api/v1/chat-spaces/{id}"],
            &[("path.id", &other_space.id.to_string())],
        ),
        bind(
            &[
                "DELETE /api/v1/chat-spaces/{id}",
                "POST /api/v1/chat-spaces/{id}/rotate-key",
            ],
            &[("path.id", &spare_space.id.to_string())],
        ),
        bind(
            &[
                "GET /api/v1/agents/{id}",
                "PATCH /api/v1/agents/{id}",
                "PUT /api/v1/agents/{id}/avatar",
                "DELETE /api/v1/agents/{id}/avatar",
                "POST /api/v1/agents/{id}/invite",
            ],
            &[("path.id", &agent.id)],
        ),
        bind(
            &["GET /api/v1/widget/avatars/{id}"],
            &[("path.id", &pictured.id)],
        ),
        bind(
            &["DELETE /api/v1/agents/{id}"],
            &[("path.id", &spare_agent.id)],
        ),
        bind(
            &["GET /api/v1/teams/{id}", "PATCH /api/v1/teams/{id}"],
            &[("path.id", &team)],
        ),
        bind(&["DELETE /api/v1/teams/{id}"], &[("path.id", &spare_team)]),
        bind(&["PATCH /api/v1/labels/{id}"], &[("path.id", &label)]),
        bind(
            &["DELETE /api/v1/labels/{id}"],
            &[("path.id", &spare_label)],
        ),
        bind(
            &["GET /api/v1/templates/{id}", "PATCH /api/v1/templates/{id}"],
            &[("path.id", &template)],
        ),
        bind(
            &["DELETE /api/v1/templates/{id}"],
            &[("path.id", &spare_template)],
        ),
        bind(
            &[
                "GET /api/v1/webhooks/{id}",
                "PATCH /api/v1/webhooks/{id}",
                "GET /api/v1/webhooks/{id}/deliveries",
                "POST /api/v1/webhooks/{id}/test",
            ],
            &[("path.id", &webhook)],
        ),
        bind(
            &["POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"],
            &[("path.id", &webhook), ("path.delivery_id", &delivery)],
        ),
        bind(
            &[
                "DELETE /api/v1/webhooks/{id}",
                "POST /api/v1/webhooks/{id}/rotate-secret",
            ],
            &[("path.id", &spare_webhook)],
        ),
        bind(
            &["DELETE /api/v1/api-tokens/{id}"],
            &[("path.id", &spare_token)],
        ),
        bind(
            &["DELETE /api/v1/signing-keys/{id}"],
            &[("path.id", &spare_key)],
        ),
        bind(
            &[
                "GET /api/v1/management/threads/{id}",
                "PATCH /api/v1/management/threads/{id}",
                "POST /api/v1/management/threads/{id}/messages",
                "POST /api/v1/management/threads/{id}/participants",
                "GET /api/v1/dialogs/{id}",
                "POST /api/v1/dialogs/{id}/attachments",
                "POST /api/v1/dialogs/{id}/join",
                "GET /api/v1/dialogs/{id}/messages",
                "POST /api/v1/dialogs/{id}/messages",
            ],
            &[("path.id", &dialog)],
        ),
        bind(
            &["POST /api/v1/dialogs/{id}/read"],
            &[("path.id", &dialog), ("body.upTo", &said)],
        ),
        bind(
            &["DELETE /api/v1/management/threads/{id}/participants/{external_id}"],
            &[("path.id", &dialog), ("path.external_id", "user-18")],
        ),
        bind(
            &["POST /api/v1/dialogs/{id}/leave"],
            &[("path.id", &spare_dialog)],
        ),
        bind(
            &["DELETE /api/v1/management/threads/{id}"],
            &[("path.id", &removed_dialog)],
        ),
        bind(
            &[
                "GET /api/v1/management/threads/by-ref/{kind}/{id}",
                "GET /api/v1/dialogs/by-object/{kind}/{id}",
            ],
            &[("path.kind", "deal"), ("path.id", "D-1042")],
        ),
        bind(
            &["GET /api/v1/members/{external_id}"],
            &[("path.external_id", "user-17")],
        ),
        bind(
            &["POST /api/v1/management/threads"],
            &[("body.chatSpaceId", &o.space_id)],
        ),
        bind(&["GET /api/v1/widget/config"], &[("query.key", &key)]),
        bind(&["POST /api/v1/widget/session"], &[("body.key", &key)]),
        bind(&["POST /api/v1/widget/read"], &[("body.upTo", &message)]),
    ];
    World {
        org: o,
        api_token,
        visitor_token,
        member_token,
        bindings,
    }
}

impl World {
    /// The schemathesis config file (TOML) that binds the values.
    pub fn config(&self) -> String {
        let mut out = String::new();
        for binding in &self.bindings {
            let names: Vec<String> = binding.operations.iter().map(|n| toml_str(n)).collect();
            let values: Vec<String> = binding
                .values
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
                .collect();
            writeln!(
                out,
                "[[operations]]\ninclude-name = [{}]\nparameters = {{ {} }}\n",
                names.join(", "),
                values.join(", ")
            )
            .expect("written");
        }
        out
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string")
}
