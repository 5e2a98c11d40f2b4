//! Verified visitors over the real server: identity tokens signed with a
//! signing key link the widget's visitor to the site's user, the same user
//! continues on another device, another user never sees the previous one's
//! history, bad tokens change nothing, the space's `identityVerification`
//! gates sends, and agents see it all with the custom attributes.

use crate::harness::fixtures::{self, space_with};
use crate::harness::ws::{self, kind};
use crate::harness::{FROM_SITE, Owner, Reply, TestServer};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mychat::spaces::model::{ChatSpace, IdentityVerification, SpaceSettings};
use reqwest::Method;
use serde_json::{Value, json};

/// An organization's space in one verification mode, and a signing key.
struct Site {
    owner: Owner,
    space: ChatSpace,
    key_id: String,
    secret: String,
}

async fn site(server: &TestServer, org: &str, mode: IdentityVerification) -> Site {
    let owner = server
        .register(org, &format!("owner@{}.test", org.to_lowercase()))
        .await;
    let settings = SpaceSettings {
        identity_verification: mode,
        ..SpaceSettings::default()
    };
    let space = space_with(server, &owner, "Site", &["site.test"], settings).await;
    let key = server
        .post(
            "/api/v1/signing-keys",
            &owner.token,
            json!({"name": "site backend"}),
        )
        .await;
    let key = key.created();
    Site {
        key_id: key["id"].as_str().unwrap().to_owned(),
        secret: key["secret"].as_str().unwrap().to_owned(),
        owner,
        space,
    }
}

fn claims(sub: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "sub": sub,
        "name": format!("User {sub}"),
        "email": format!("{sub}@customer.test"),
        "iat": now,
        "exp": now + 3600,
    })
}

fn sign(kid: Option<&str>, alg: Algorithm, secret: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

impl Site {
    fn token(&self, sub: &str) -> String {
        self.signed(&claims(sub))
    }

    fn signed(&self, claims: &Value) -> String {
        sign(Some(&self.key_id), Algorithm::HS256, &self.secret, claims)
    }

    async fn session(&self, server: &TestServer) -> (String, String) {
        fixtures::visitor_session(server, FROM_SITE, json!({"key": self.space.widget_key})).await
    }

    async fn agent_view(&self, server: &TestServer, visitor: &str) -> Value {
        let path = format!("/api/v1/visitors/{visitor}");
        server.get(&path, &self.owner.token).await.ok().clone()
    }
}

/// A widget call from the allowed site with a visitor's session token.
async fn widget(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    let path = format!("/api/v1/widget{path}");
    server
        .call_with(method, &path, Some(token), body, FROM_SITE)
        .await
}

async fn identify(server: &TestServer, session: &str, token: &str) -> Reply {
    let body = json!({ "token": token });
    widget(server, Method::POST, "/identify", session, Some(body)).await
}

async fn say(server: &TestServer, session: &str, content: &str) -> Reply {
    let body = json!({"content": content, "clientMsgId": uuid::Uuid::new_v4().to_string()});
    fixtures::visitor_posts(server, session, body).await
}

async fn history(server: &TestServer, session: &str) -> Vec<String> {
    let page = widget(server, Method::GET, "/messages", session, None).await;
    page.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_valid_token_links_and_verifies_the_visitor() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Optional).await;
    let (session, visitor) = s.session(&server).await;

    let r = identify(&server, &session, &s.token("user-42")).await;
    let body = r.ok();
    assert_eq!(body["sessionToken"], Value::Null, "{body}");
    assert_eq!(body["visitor"]["visitorId"], visitor.as_str());
    assert_eq!(body["visitor"]["verified"], true);
    assert_eq!(body["visitor"]["externalId"], "user-42");
    assert_eq!(body["visitor"]["displayName"], "User user-42");
    assert_eq!(body["visitor"]["email"], "user-42@customer.test");

    // Identifying again as the same user is a no-op that answers the same.
    let again = identify(&server, &session, &s.token("user-42")).await;
    assert_eq!(again.ok()["sessionToken"], Value::Null);

    let seen = s.agent_view(&server, &visitor).await;
    assert_eq!(seen["verified"], true);
    assert_eq!(seen["externalId"], "user-42");
}

#[tokio::test]
async fn the_same_user_on_another_device_continues_their_history() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Optional).await;
    let (laptop, first) = s.session(&server).await;
    identify(&server, &laptop, &s.token("user-42")).await.ok();
    say(&server, &laptop, "hello from the laptop")
        .await
        .created();

    let (phone, second) = s.session(&server).await;
    assert_ne!(first, second);
    let r = identify(&server, &phone, &s.token("user-42")).await;
    let body = r.ok();
    assert_eq!(body["visitor"]["visitorId"], first.as_str(), "{body}");
    let switched = body["sessionToken"]
        .as_str()
        .expect("a session to switch to");
    assert_eq!(history(&server, switched).await, ["hello from the laptop"]);
    // Both devices go on as the one visitor.
    say(&server, switched, "and from the phone").await.created();
    assert_eq!(
        history(&server, &laptop).await,
        ["hello from the laptop", "and from the phone"]
    );
}

#[tokio::test]
async fn another_user_after_a_verified_one_starts_a_fresh_session() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Optional).await;
    let (session, first) = s.session(&server).await;
    identify(&server, &session, &s.token("alice")).await.ok();
    say(&server, &session, "alice's secret").await.created();

    let r = identify(&server, &session, &s.token("bob")).await;
    let body = r.ok();
    let fresh = body["sessionToken"].as_str().expect("a fresh session");
    assert_ne!(body["visitor"]["visitorId"], first.as_str());
    assert_eq!(body["visitor"]["externalId"], "bob");
    assert_eq!(body["visitor"]["email"], "bob@customer.test");
    assert!(history(&server, fresh).await.is_empty());

    // Alice signing in again on that browser finds her own visitor back.
    let back = identify(&server, fresh, &s.token("alice")).await;
    let back = back.ok();
    assert_eq!(back["visitor"]["visitorId"], first.as_str());
    let token = back["sessionToken"].as_str().unwrap();
    assert_eq!(history(&server, token).await, ["alice's secret"]);
}

#[tokio::test]
async fn bad_tokens_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Optional).await;
    let other = site(&server, "Other", IdentityVerification::Optional).await;
    let (session, visitor) = s.session(&server).await;
    let before = s.agent_view(&server, &visitor).await;

    let now = Utc::now().timestamp();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("user-42");
        f(&mut c);
        s.signed(&c)
    };
    let none_alg = {
        use base64::Engine;
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = enc.encode(json!({"alg": "none", "kid": s.key_id}).to_string());
        format!("{header}.{}.", enc.encode(claims("user-42").to_string()))
    };
    let bad: Vec<(&str, String)> = vec![
        (
            "forged signature",
            sign(
                Some(&s.key_id),
                Algorithm::HS256,
                "not the secret",
                &claims("user-42"),
            ),
        ),
        (
            "unknown kid",
            sign(
                Some(&uuid::Uuid::now_v7().to_string()),
                Algorithm::HS256,
                &s.secret,
                &claims("user-42"),
            ),
        ),
        (
            "no kid",
            sign(None, Algorithm::HS256, &s.secret, &claims("user-42")),
        ),
        (
            "expired",
            with(&|c| {
                c["iat"] = json!(now - 7200);
                c["exp"] = json!(now - 3600);
            }),
        ),
        (
            "exp over 24 h after iat",
            with(&|c| c["exp"] = json!(now + 25 * 3600)),
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("alg none", none_alg),
        (
            "HS512",
            sign(
                Some(&s.key_id),
                Algorithm::HS512,
                &s.secret,
                &claims("user-42"),
            ),
        ),
        ("another organization's key", other.token("user-42")),
        ("sub too long", with(&|c| c["sub"] = json!("x".repeat(129)))),
        ("blank sub", with(&|c| c["sub"] = json!("  "))),
        ("bad email", with(&|c| c["email"] = json!("not an email"))),
        ("not a JWT", "hello".to_owned()),
    ];
    for (what, token) in bad {
        let r = identify(&server, &session, &token).await;
        assert_eq!(r.err(401), "identity_invalid", "{what}");
    }
    assert_eq!(s.agent_view(&server, &visitor).await, before);
    assert_eq!(before["verified"], false);
}

#[tokio::test]
async fn required_mode_lets_only_verified_visitors_send() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Required).await;
    let config = server
        .call_with(
            Method::GET,
            &format!("/api/v1/widget/config?key={}", s.space.widget_key),
            None,
            None,
            FROM_SITE,
        )
        .await;
    assert_eq!(config.ok()["identityVerification"], "required");
    let (session, _) = s.session(&server).await;

    assert_eq!(
        say(&server, &session, "hi").await.err(403),
        "identity_required"
    );
    let offline = json!({"email": "x@customer.test", "content": "call me"});
    let r = widget(&server, Method::POST, "/offline", &session, Some(offline)).await;
    assert_eq!(r.err(403), "identity_required");
    let (mut socket, _) = ws::widget(server.addr, &s.space.widget_key, &session).await;
    socket
        .send(json!({"type": "visitor:send_message", "clientMsgId": "c1", "content": "hi"}))
        .await;
    let refused = socket.expect("error").await;
    assert_eq!(refused["code"], "identity_required", "{refused}");
    assert_eq!(refused["clientMsgId"], "c1");

    identify(&server, &session, &s.token("user-42")).await.ok();
    say(&server, &session, "hi, verified").await.created();
    socket
        .send(json!({"type": "visitor:send_message", "clientMsgId": "c2", "content": "and live"}))
        .await;
    let (ack, _) = socket.until(|f| kind(f) == "message:ack").await;
    assert_eq!(ack["message"]["content"], "and live");
}

#[tokio::test]
async fn off_mode_refuses_identity_tokens() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Off).await;
    let (session, visitor) = s.session(&server).await;
    let r = identify(&server, &session, &s.token("user-42")).await;
    assert_eq!(r.err(409), "identity_off");
    assert_eq!(s.agent_view(&server, &visitor).await["verified"], false);
    // Unverified visitors chat as ever.
    say(&server, &session, "hi").await.created();
}

#[tokio::test]
async fn a_verified_visitors_name_and_email_stay_the_tokens() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Optional).await;
    let (session, _) = s.session(&server).await;
    // Without a token the widget's name stays unverified.
    let named = json!({"displayName": "Mallory", "email": "m@evil.test"});
    let r = widget(
        &server,
        Method::PATCH,
        "/visitor",
        &session,
        Some(named.clone()),
    )
    .await;
    assert_eq!(r.ok()["verified"], Value::Null, "left out while unverified");

    identify(&server, &session, &s.token("user-42")).await.ok();
    let r = widget(&server, Method::PATCH, "/visitor", &session, Some(named)).await;
    assert_eq!(r.err(409), "identity_verified");
    let same = json!({"displayName": "User user-42", "phone": "+48 600 100 200"});
    let r = widget(&server, Method::PATCH, "/visitor", &session, Some(same)).await;
    assert_eq!(r.ok()["phone"], "+48 600 100 200");
    assert_eq!(r.ok()["email"], "user-42@customer.test");
}

#[tokio::test]
async fn custom_attributes_are_bounded_and_removable() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Optional).await;
    let (session, visitor) = s.session(&server).await;
    let patch = |attributes: Value| json!({ "attributes": attributes });
    let set = patch(json!({"plan": "pro", "seats": 12, "trial": false, "account.id": "A-1"}));
    let r = widget(&server, Method::PATCH, "/visitor", &session, Some(set)).await;
    assert_eq!(
        r.ok()["attributes"],
        json!({"plan": "pro", "seats": 12, "trial": false, "account.id": "A-1"})
    );

    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!(i))).collect();
    let bad = [
        patch(json!({"bad key": 1})),
        patch(json!({"k".repeat(41): 1})),
        patch(json!({"plan": "x".repeat(201)})),
        patch(json!({"plan": ["a"]})),
        patch(json!({"plan": {"a": 1}})),
        patch(json!("plan")),
        // 4 stored + 17 new is over 20.
        patch(Value::Object(many)),
        json!({"displayName": "Ann", "attributes": {"bad key": 1}}),
    ];
    for body in bad {
        let r = widget(
            &server,
            Method::PATCH,
            "/visitor",
            &session,
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, 400, "{body} -> {}", r.body);
        assert!(r.body["error"]["code"].is_string());
    }
    let big: serde_json::Map<String, Value> = (0..12)
        .map(|i| (format!("t{i}"), json!("v".repeat(180))))
        .collect();
    let r = widget(
        &server,
        Method::PATCH,
        "/visitor",
        &session,
        Some(patch(Value::Object(big))),
    )
    .await;
    assert_eq!(r.err(400), "validation_failed");

    let remove = patch(json!({"trial": null, "seats": 13}));
    widget(&server, Method::PATCH, "/visitor", &session, Some(remove))
        .await
        .ok();
    let seen = s.agent_view(&server, &visitor).await;
    assert_eq!(
        seen["attributes"],
        json!({"plan": "pro", "seats": 13, "account.id": "A-1"})
    );
    assert_eq!(
        seen["displayName"],
        Value::Null,
        "nothing of a refused patch stays"
    );
}

#[tokio::test]
async fn agents_see_verified_visitors_with_their_attributes() {
    let server = TestServer::start().await;
    let s = site(&server, "Acme", IdentityVerification::Optional).await;
    let (session, visitor) = s.session(&server).await;
    identify(&server, &session, &s.token("crm-7")).await.ok();
    let attrs = json!({"attributes": {"plan": "enterprise"}});
    widget(&server, Method::PATCH, "/visitor", &session, Some(attrs))
        .await
        .ok();
    let seen = s.agent_view(&server, &visitor).await;
    assert_eq!(seen["verified"], true);
    assert_eq!(seen["externalId"], "crm-7");
    assert_eq!(seen["displayName"], "User crm-7");
    assert_eq!(seen["attributes"]["plan"], "enterprise");
}
