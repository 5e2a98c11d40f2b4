use crate::harness::fixtures;
use crate::harness::{TestServer, pluck};
use mychat::accounts::model::Role;
use reqwest::Method;
use serde_json::{Value, json};

const TEMPLATES: &str = "/api/v1/templates";

async fn new_space(server: &TestServer, token: &str, name: &str) -> String {
    let r = server
        .post("/api/v1/chat-spaces", token, json!({"name": name}))
        .await;
    r.ok()["id"].as_str().unwrap().to_owned()
}

async fn new_template(server: &TestServer, token: &str, body: Value) -> Value {
    server.post(TEMPLATES, token, body).await.created().clone()
}

fn path_of(template: &Value) -> String {
    format!("{TEMPLATES}/{}", template["id"].as_str().unwrap())
}

fn shortcuts(list: &Value) -> Vec<&str> {
    pluck(list, "shortcut")
}

#[tokio::test]
async fn templates_can_be_created_listed_read_changed_and_deleted() {
    let (server, owner) = TestServer::with_owner().await;

    let t = new_template(
        &server,
        &owner.token,
        json!({"shortcut": "Hello", "title": "Greeting", "body": "Hi!\nHow can we help?"}),
    )
    .await;
    assert_eq!(t["shortcut"], "/hello");
    assert_eq!(t["title"], "Greeting");
    assert_eq!(t["body"], "Hi!\nHow can we help?");
    assert_eq!(t["chatSpaceId"], Value::Null);
    assert_eq!(t["organizationId"], owner.org_id.as_str());
    let path = path_of(&t);

    assert_eq!(server.get(&path, &owner.token).await.ok(), &t);
    let list = server.get(TEMPLATES, &owner.token).await;
    assert_eq!(list.ok()["items"], json!([t.clone()]));
    assert_eq!(list.body["nextCursor"], Value::Null);

    let changed = server
        .patch(
            &path,
            &owner.token,
            json!({"shortcut": "/hi", "title": "Short greeting"}),
        )
        .await;
    assert_eq!(changed.ok()["shortcut"], "/hi");
    assert_eq!(changed.body["title"], "Short greeting");
    assert_eq!(changed.body["body"], t["body"]);
    assert_eq!(server.get(&path, &owner.token).await.ok(), &changed.body);

    assert_eq!(server.delete(&path, &owner.token).await.status, 204);
    assert_eq!(server.get(&path, &owner.token).await.err(404), "not_found");
    let list = server.get(TEMPLATES, &owner.token).await;
    assert_eq!(list.ok()["items"], json!([]));
}

#[tokio::test]
async fn a_shortcut_is_unique_within_an_organization() {
    let server = TestServer::start().await;
    let a = server.register("Acme", "ann@acme.test").await;
    let b = server.register("Bolt", "bea@bolt.test").await;
    let space = new_space(&server, &a.token, "Shop").await;
    new_template(
        &server,
        &a.token,
        json!({"shortcut": "/hello", "title": "Hello", "body": "Hi"}),
    )
    .await;

    // The same shortcut in any spelling, in any space of the organization.
    for shortcut in ["/hello", "HELLO", "hello"] {
        let r = server
            .post(
                TEMPLATES,
                &a.token,
                json!({"shortcut": shortcut, "title": "Again", "body": "Hi", "chatSpaceId": space}),
            )
            .await;
        assert_eq!(r.err(409), "shortcut_taken", "{shortcut}");
    }

    // Renaming another template onto it is refused; keeping one's own is fine.
    let bye = new_template(
        &server,
        &a.token,
        json!({"shortcut": "/bye", "title": "Bye", "body": "Bye"}),
    )
    .await;
    let r = server
        .patch(&path_of(&bye), &a.token, json!({"shortcut": "/Hello"}))
        .await;
    assert_eq!(r.err(409), "shortcut_taken");
    assert_eq!(server.get(&path_of(&bye), &a.token).await.ok(), &bye);
    let r = server
        .patch(
            &path_of(&bye),
            &a.token,
            json!({"shortcut": "/bye", "title": "Goodbye"}),
        )
        .await;
    assert_eq!(r.ok()["title"], "Goodbye");

    // Another organization has its own shortcuts.
    new_template(
        &server,
        &b.token,
        json!({"shortcut": "/hello", "title": "Hello", "body": "Hi"}),
    )
    .await;
    let list = server.get(TEMPLATES, &a.token).await;
    assert_eq!(shortcuts(list.ok()), ["/bye", "/hello"]);
}

#[tokio::test]
async fn invalid_templates_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let a = server.register("Acme", "ann@acme.test").await;
    let b = server.register("Bolt", "bea@bolt.test").await;
    let foreign_space = new_space(&server, &b.token, "Theirs").await;
    let t = new_template(
        &server,
        &a.token,
        json!({"shortcut": "/ok", "title": "Ok", "body": "Fine"}),
    )
    .await;
    let valid = json!({"shortcut": "/new", "title": "New", "body": "Body"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };

    let cases: Vec<(&str, Value, u16)> = vec![
        ("empty shortcut", with("shortcut", json!("/")), 400),
        ("spaces in shortcut", with("shortcut", json!("/a b")), 400),
        ("dot in shortcut", with("shortcut", json!("/a.b")), 400),
        ("non-ascii shortcut", with("shortcut", json!("/cześć")), 400),
        (
            "long shortcut",
            with("shortcut", json!("a".repeat(33))),
            400,
        ),
        ("empty title", with("title", json!(" ")), 400),
        ("long title", with("title", json!("t".repeat(101))), 400),
        ("empty body", with("body", json!("  \n ")), 400),
        ("long body", with("body", json!("b".repeat(5001))), 400),
        ("unknown field", with("tags", json!(["x"])), 400),
        (
            "another organization's space",
            with("chatSpaceId", json!(foreign_space)),
            404,
        ),
        (
            "a space that does not exist",
            with("chatSpaceId", json!("0190a0a0-0000-7000-8000-000000000000")),
            404,
        ),
    ];
    for (label, body, status) in &cases {
        let r = server.post(TEMPLATES, &a.token, body.clone()).await;
        assert_eq!(r.status, *status, "create {label}: {}", r.body);
        r.err(*status);
        // The same values are refused on PATCH, and leave the template be.
        let patch = body
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| valid.get(k.as_str()) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<serde_json::Map<_, _>>();
        let r = server
            .patch(&path_of(&t), &a.token, Value::Object(patch))
            .await;
        assert_eq!(r.status, *status, "patch {label}: {}", r.body);
        assert_eq!(server.get(&path_of(&t), &a.token).await.ok(), &t, "{label}");
    }
    let list = server.get(TEMPLATES, &a.token).await;
    assert_eq!(shortcuts(list.ok()), ["/ok"]);

    // The limits themselves are allowed.
    new_template(
        &server,
        &a.token,
        json!({"shortcut": "a".repeat(32), "title": "t".repeat(100), "body": "b".repeat(5000)}),
    )
    .await;
}

#[tokio::test]
async fn the_space_filter_shows_organization_wide_and_that_space_templates() {
    let (server, owner) = TestServer::with_owner().await;
    let shop = new_space(&server, &owner.token, "Shop").await;
    let blog = new_space(&server, &owner.token, "Blog").await;
    for (shortcut, space) in [
        ("/all", Value::Null),
        ("/shop", json!(shop)),
        ("/blog", json!(blog)),
    ] {
        new_template(
            &server,
            &owner.token,
            json!({"shortcut": shortcut, "title": "T", "body": "B", "chatSpaceId": space}),
        )
        .await;
    }

    let all = server.get(TEMPLATES, &owner.token).await;
    assert_eq!(shortcuts(all.ok()), ["/all", "/blog", "/shop"]);
    let for_shop = server
        .get(&format!("{TEMPLATES}?chatSpaceId={shop}"), &owner.token)
        .await;
    assert_eq!(shortcuts(for_shop.ok()), ["/all", "/shop"]);

    // Moving a template to another space, then making it organization-wide.
    let blog_t = all.body["items"][1].clone();
    let r = server
        .patch(
            &path_of(&blog_t),
            &owner.token,
            json!({"chatSpaceId": shop}),
        )
        .await;
    assert_eq!(r.ok()["chatSpaceId"], shop.as_str());
    let r = server
        .patch(
            &path_of(&blog_t),
            &owner.token,
            json!({"chatSpaceId": null}),
        )
        .await;
    assert_eq!(r.ok()["chatSpaceId"], Value::Null);
    let for_blog = server
        .get(&format!("{TEMPLATES}?chatSpaceId={blog}"), &owner.token)
        .await;
    assert_eq!(shortcuts(for_blog.ok()), ["/all", "/blog"]);

    let r = server
        .get(&format!("{TEMPLATES}?chatSpaceId=nope"), &owner.token)
        .await;
    r.err(400);
}

#[tokio::test]
async fn plain_agents_read_templates_but_cannot_change_them() {
    let (server, owner) = TestServer::with_owner().await;
    let agent = fixtures::agent(&server, &owner, "Bob", Role::Agent)
        .await
        .token;
    let t = new_template(
        &server,
        &owner.token,
        json!({"shortcut": "/hello", "title": "Hello", "body": "Hi"}),
    )
    .await;
    let path = path_of(&t);

    assert_eq!(
        shortcuts(server.get(TEMPLATES, &agent).await.ok()),
        ["/hello"]
    );
    assert_eq!(server.get(&path, &agent).await.ok(), &t);
    let writes = [
        (
            Method::POST,
            TEMPLATES.to_owned(),
            Some(json!({"shortcut": "/mine", "title": "M", "body": "M"})),
        ),
        (Method::PATCH, path.clone(), Some(json!({"title": "Mine"}))),
        (Method::DELETE, path.clone(), None),
    ];
    for (method, p, body) in writes {
        let r = server.call(method.clone(), &p, Some(&agent), body).await;
        assert_eq!(r.err(403), "forbidden", "{method} {p}");
    }
    assert_eq!(server.get(&path, &owner.token).await.ok(), &t);
    assert_eq!(
        shortcuts(server.get(TEMPLATES, &owner.token).await.ok()),
        ["/hello"]
    );
}

#[tokio::test]
async fn another_organizations_template_is_not_found() {
    let server = TestServer::start().await;
    let a = server.register("Acme", "ann@acme.test").await;
    let b = server.register("Bolt", "bea@bolt.test").await;
    let space = new_space(&server, &a.token, "Shop").await;
    let t = new_template(
        &server,
        &a.token,
        json!({"shortcut": "/hello", "title": "Hello", "body": "Hi", "chatSpaceId": space}),
    )
    .await;
    let path = path_of(&t);

    let cases = [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"title": "Stolen"})),
        ),
        (Method::DELETE, path.clone(), None),
        (
            Method::GET,
            format!("{TEMPLATES}?chatSpaceId={space}"),
            None,
        ),
    ];
    for (method, p, body) in cases {
        let r = server.call(method.clone(), &p, Some(&b.token), body).await;
        assert_eq!(r.err(404), "not_found", "{method} {p}");
    }
    assert_eq!(
        server.get(TEMPLATES, &b.token).await.ok()["items"],
        json!([])
    );
    assert_eq!(server.get(&path, &a.token).await.ok(), &t);
}
