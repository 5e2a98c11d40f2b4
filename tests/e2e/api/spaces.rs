use crate::harness::TestServer;
use crate::harness::fixtures;
use mychat::accounts::model::Role;
use mychat::store::Reader;
use reqwest::Method;
use serde_json::{Value, json};

const SPACES: &str = "/api/v1/chat-spaces";

async fn new_space(server: &TestServer, token: &str, body: Value) -> Value {
    server.post(SPACES, token, body).await.created().clone()
}

fn space_path(space: &Value) -> String {
    format!("{SPACES}/{}", space["id"].as_str().unwrap())
}

#[tokio::test]
async fn spaces_can_be_created_listed_read_changed_and_deleted() {
    let (server, owner) = TestServer::with_owner().await;

    let space = new_space(
        &server,
        &owner.token,
        json!({"name": "  Shop ", "allowedDomains": ["Shop.Example.com", "*.example.org", "localhost:8080"]}),
    )
    .await;
    assert_eq!(space["name"], "Shop");
    assert_eq!(space["organizationId"], owner.org_id.as_str());
    assert_eq!(
        space["allowedDomains"],
        json!(["shop.example.com", "*.example.org", "localhost:8080"])
    );
    assert_eq!(space["settings"]["title"], "Chat with us");
    assert!(space["widgetKey"].as_str().unwrap().len() >= 20);
    let path = space_path(&space);

    let list = server.get(SPACES, &owner.token).await;
    assert_eq!(list.ok()["items"], json!([space.clone()]));
    assert_eq!(list.body["nextCursor"], Value::Null);
    assert_eq!(server.get(&path, &owner.token).await.ok(), &space);

    let changed = server
        .patch(
            &path,
            &owner.token,
            json!({"name": "Web shop", "allowedDomains": ["shop.test"]}),
        )
        .await;
    assert_eq!(changed.ok()["name"], "Web shop");
    assert_eq!(changed.body["allowedDomains"], json!(["shop.test"]));
    assert_eq!(changed.body["settings"], space["settings"]);
    assert_eq!(changed.body["widgetKey"], space["widgetKey"]);
    assert_eq!(server.get(&path, &owner.token).await.ok(), &changed.body);

    let gone = server.delete(&path, &owner.token).await;
    assert_eq!(gone.status, 204);
    assert_eq!(server.get(&path, &owner.token).await.err(404), "not_found");
    assert_eq!(
        server.delete(&path, &owner.token).await.err(404),
        "not_found"
    );
    let list = server.get(SPACES, &owner.token).await;
    assert_eq!(list.ok()["items"], json!([]));
    let key = space["widgetKey"].as_str().unwrap();
    let read = server.app_state.store.read().unwrap();
    assert!(read.space_by_key(key).unwrap().is_none());
}

#[tokio::test]
async fn creating_takes_partial_settings_over_the_defaults() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(
        &server,
        &owner.token,
        json!({"name": "Shop", "settings": {"title": "Ask us", "theme": "dark"}}),
    )
    .await;
    assert_eq!(space["settings"]["title"], "Ask us");
    assert_eq!(space["settings"]["theme"], "dark");
    assert_eq!(space["settings"]["accentColor"], "#2563eb");
    assert_eq!(space["settings"]["retentionDays"], 90);
}

#[tokio::test]
async fn settings_patch_changes_only_the_named_settings() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner.token, json!({"name": "Shop"})).await;
    let path = space_path(&space);

    let r = server
        .patch(&path, &owner.token, json!({"settings": {"title": "x"}}))
        .await;
    let mut expected = space["settings"].clone();
    expected["title"] = json!("x");
    assert_eq!(r.ok()["settings"], expected);
    assert_eq!(r.body["name"], "Shop");

    // Nested objects merge too: the attachment size stays as it was.
    let r = server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"attachments": {"maxCount": 5}, "locale": "pl"}}),
        )
        .await;
    expected["attachments"]["maxCount"] = json!(5);
    expected["locale"] = json!("pl");
    assert_eq!(r.ok()["settings"], expected);

    let hours = json!({"timezone": "Europe/Warsaw", "ranges": [
        {"day": 0, "from": "09:00", "to": "17:00"},
        {"day": 6, "from": "10:00", "to": "24:00"}
    ]});
    let r = server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"openingHours": hours}}),
        )
        .await;
    expected["openingHours"] = hours;
    assert_eq!(r.ok()["settings"], expected);

    // Null means "always open" again.
    let r = server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"openingHours": null}}),
        )
        .await;
    expected["openingHours"] = Value::Null;
    assert_eq!(r.ok()["settings"], expected);
    assert_eq!(
        server.get(&path, &owner.token).await.ok()["settings"],
        expected
    );
}

#[tokio::test]
async fn settings_at_the_limits_are_accepted() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner.token, json!({"name": "Shop"})).await;
    let ranges: Vec<Value> = (0..50)
        .map(|i| json!({"day": i % 7, "from": "00:00", "to": "24:00"}))
        .collect();
    let settings = json!({
        "title": "t".repeat(100),
        "welcomeMessage": "w".repeat(1000),
        "accentColor": "#A0b1C2",
        "locale": "",
        "openingHours": {"timezone": "America/New_York", "ranges": ranges},
        "attachments": {"maxSizeBytes": 10_485_760, "maxCount": 10},
        "expireAfterMinutes": 525_600,
        "retentionDays": 3650,
    });
    let r = server
        .patch(
            &space_path(&space),
            &owner.token,
            json!({"settings": settings}),
        )
        .await;
    r.ok();
    let low = json!({
        "attachments": {"maxSizeBytes": 1, "maxCount": 1},
        "expireAfterMinutes": 0,
        "retentionDays": 1,
    });
    let r = server
        .patch(&space_path(&space), &owner.token, json!({"settings": low}))
        .await;
    assert_eq!(r.ok()["settings"]["retentionDays"], 1);
}

#[tokio::test]
async fn every_invalid_setting_is_refused_and_changes_nothing() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(
        &server,
        &owner.token,
        json!({"name": "Shop", "allowedDomains": ["shop.test"]}),
    )
    .await;
    let path = space_path(&space);
    let hours =
        |ranges: Value| json!({"openingHours": {"timezone": "Europe/Warsaw", "ranges": ranges}});
    let range = |day: u8, from: &str, to: &str| json!([{"day": day, "from": from, "to": to}]);
    let too_many: Vec<Value> = (0..51)
        .map(|_| json!({"day": 1, "from": "09:00", "to": "10:00"}))
        .collect();

    let cases: Vec<(&str, Value)> = vec![
        ("title too long", json!({"title": "t".repeat(101)})),
        (
            "welcome too long",
            json!({"welcomeMessage": "w".repeat(1001)}),
        ),
        ("colour name", json!({"accentColor": "red"})),
        ("short colour", json!({"accentColor": "#12345"})),
        ("colour without #", json!({"accentColor": "1234567"})),
        ("non-hex colour", json!({"accentColor": "#12345g"})),
        ("unknown locale", json!({"locale": "de"})),
        (
            "bad time zone",
            json!({"openingHours": {"timezone": "Mars/Olympus", "ranges": []}}),
        ),
        ("too many ranges", hours(json!(too_many))),
        ("day 7", hours(range(7, "09:00", "17:00"))),
        ("from not HH:MM", hours(range(1, "9am", "17:00"))),
        ("to not HH:MM", hours(range(1, "09:00", "25:00"))),
        ("from after to", hours(range(1, "17:00", "09:00"))),
        ("from equals to", hours(range(1, "09:00", "09:00"))),
        (
            "zero attachment size",
            json!({"attachments": {"maxSizeBytes": 0}}),
        ),
        (
            "attachment over 10 MiB",
            json!({"attachments": {"maxSizeBytes": 10_485_761}}),
        ),
        ("zero attachments", json!({"attachments": {"maxCount": 0}})),
        (
            "eleven attachments",
            json!({"attachments": {"maxCount": 11}}),
        ),
        ("expiry over a year", json!({"expireAfterMinutes": 525_601})),
        ("zero retention", json!({"retentionDays": 0})),
        ("retention over ten years", json!({"retentionDays": 3651})),
        ("unknown setting", json!({"colour": "#000000"})),
        (
            "unknown nested setting",
            json!({"attachments": {"maxFiles": 2}}),
        ),
        ("wrong type", json!({"title": 5})),
        ("unknown theme", json!({"theme": "neon"})),
        ("negative retention", json!({"retentionDays": -1})),
        // One bad value spoils the whole patch, good ones included.
        (
            "good and bad together",
            json!({"title": "Fine", "locale": "de"}),
        ),
    ];
    for (label, settings) in cases {
        let r = server
            .patch(&path, &owner.token, json!({"settings": settings}))
            .await;
        assert_eq!(r.status, 400, "{label}: {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "{label}: {}", r.body);
        let now = server.get(&path, &owner.token).await;
        assert_eq!(now.ok(), &space, "{label} changed the space");

        // Creating with the same settings is refused as well.
        let r = server
            .post(
                SPACES,
                &owner.token,
                json!({"name": "New", "settings": settings}),
            )
            .await;
        assert_eq!(r.status, 400, "create {label}: {}", r.body);
    }

    let other: Vec<(&str, Value)> = vec![
        ("empty name", json!({"name": "  "})),
        ("long name", json!({"name": "n".repeat(101)})),
        ("bad domain", json!({"allowedDomains": ["not a domain"]})),
        ("bad port", json!({"allowedDomains": ["shop.test:99999"]})),
        ("unknown field", json!({"colour": "#000000"})),
        ("settings not an object", json!({"settings": "dark"})),
    ];
    for (label, body) in other {
        let r = server.patch(&path, &owner.token, body).await;
        assert_eq!(r.status, 400, "{label}: {}", r.body);
        assert_eq!(
            server.get(&path, &owner.token).await.ok(),
            &space,
            "{label}"
        );
    }
    let list = server.get(SPACES, &owner.token).await;
    assert_eq!(list.ok()["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn rotating_the_key_retires_the_old_one() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner.token, json!({"name": "Shop"})).await;
    let old = space["widgetKey"].as_str().unwrap().to_owned();

    let r = server
        .post(
            &format!("{}/rotate-key", space_path(&space)),
            &owner.token,
            json!({}),
        )
        .await;
    let new = r.ok()["widgetKey"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(r.body["snippet"].as_str().unwrap().contains(&new));

    let read = server.app_state.store.read().unwrap();
    assert!(read.space_by_key(&old).unwrap().is_none());
    let found = read.space_by_key(&new).unwrap().expect("new key resolves");
    assert_eq!(found.id.to_string(), space["id"].as_str().unwrap());
    let now = server.get(&space_path(&space), &owner.token).await;
    assert_eq!(now.ok()["widgetKey"], new.as_str());
}

#[tokio::test]
async fn embed_snippet_carries_the_widget_key() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner.token, json!({"name": "Shop"})).await;
    let key = space["widgetKey"].as_str().unwrap();

    let r = server
        .get(&format!("{}/embed", space_path(&space)), &owner.token)
        .await;
    assert_eq!(r.ok()["widgetKey"], key);
    let expected = format!(
        r#"<script src="{}/widget.js" data-widget-key="{key}" async></script>"#,
        server.base
    );
    assert_eq!(r.body["snippet"], expected.as_str());
}

#[tokio::test]
async fn plain_agents_read_spaces_but_cannot_change_them() {
    let (server, owner) = TestServer::with_owner().await;
    let space = new_space(&server, &owner.token, json!({"name": "Shop"})).await;
    let agent = fixtures::agent(&server, &owner, "Bob", Role::Agent)
        .await
        .token;
    let path = space_path(&space);

    server.get(SPACES, &agent).await.ok();
    server.get(&path, &agent).await.ok();
    server.get(&format!("{path}/embed"), &agent).await.ok();

    let writes = [
        (
            Method::POST,
            SPACES.to_owned(),
            Some(json!({"name": "Mine"})),
        ),
        (Method::PATCH, path.clone(), Some(json!({"name": "Mine"}))),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate-key"), Some(json!({}))),
    ];
    for (method, p, body) in writes {
        let r = server.call(method.clone(), &p, Some(&agent), body).await;
        assert_eq!(r.err(403), "forbidden", "{method} {p}");
    }
    assert_eq!(server.get(&path, &owner.token).await.ok(), &space);
    let list = server.get(SPACES, &owner.token).await;
    assert_eq!(list.ok()["items"].as_array().unwrap().len(), 1);
    server.get(SPACES, "not-a-token").await.err(401);
}

#[tokio::test]
async fn another_organizations_space_is_not_found() {
    let server = TestServer::start().await;
    let a = server.register("Acme", "ann@acme.test").await;
    let b = server.register("Bolt", "bea@bolt.test").await;
    let space = new_space(&server, &a.token, json!({"name": "Shop"})).await;
    let path = space_path(&space);

    let cases = [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "Stolen"}))),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"settings": {"title": "Stolen"}})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate-key"), Some(json!({}))),
        (Method::GET, format!("{path}/embed"), None),
    ];
    for (method, p, body) in cases {
        let r = server.call(method.clone(), &p, Some(&b.token), body).await;
        assert_eq!(r.err(404), "not_found", "{method} {p}");
    }
    let list = server.get(SPACES, &b.token).await;
    assert_eq!(list.ok()["items"], json!([]));
    assert_eq!(server.get(&path, &a.token).await.ok(), &space);

    // Ids that are not ids name nothing either.
    server
        .get(&format!("{SPACES}/not-a-uuid"), &a.token)
        .await
        .err(404);
}
