//! The integrator's half over the real server (PRODUCT.md §4a): API
//! tokens, signing keys and member tokens, object-bound threads through
//! the management API, the scope rule, the member chat API and socket,
//! bad input and isolation between organizations.

use crate::harness::WAIT;
use crate::harness::ws::{self, Ws};
use crate::harness::{Owner, TestServer};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

/// An organization with a space, an admin token, and the integrator's
/// credentials: a management token and a signing key.
pub(crate) struct Org {
    pub(crate) owner: Owner,
    pub(crate) space_id: String,
    pub(crate) management: String,
    key_id: String,
    key_secret: String,
}

pub(crate) async fn org(server: &TestServer, name: &str) -> Org {
    let owner = server
        .register(name, &format!("owner@{}.test", name.to_lowercase()))
        .await;
    let created = |path: &'static str, body: Value| {
        let token = owner.token.clone();
        async move { server.post(path, &token, body).await.ok().clone() }
    };
    let space = created(
        "/api/v1/chat-spaces",
        json!({"name": "Platform", "allowedDomains": ["platform.test"]}),
    )
    .await;
    let token = created(
        "/api/v1/api-tokens",
        json!({"name": "backend", "scopes": ["management"]}),
    )
    .await;
    let key = created("/api/v1/signing-keys", json!({"name": "main"})).await;
    let text = |v: &Value, f: &str| v[f].as_str().unwrap().to_owned();
    Org {
        space_id: text(&space, "id"),
        management: text(&token, "token"),
        key_id: text(&key, "id"),
        key_secret: text(&key, "secret"),
        owner,
    }
}

/// Claims of a member token; tests change what they need.
fn claims(sub: &str, tenant: &str, scope1: &[&str], scope2: &[&str]) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "sub": sub,
        "name": format!("User {sub}"),
        "tenant": tenant,
        "scope1": scope1,
        "scope2": scope2,
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

impl Org {
    /// A new API token of the organization with these scopes.
    pub(crate) async fn token(&self, server: &TestServer, name: &str, scopes: &[&str]) -> String {
        server
            .post(
                "/api/v1/api-tokens",
                &self.owner.token,
                json!({"name": name, "scopes": scopes}),
            )
            .await
            .ok()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The organization's chat space, as stored.
    fn space(&self, server: &TestServer) -> mychat::spaces::model::ChatSpace {
        let read = server.app_state.store.read().unwrap();
        mychat::store::Reader::space(&read, self.space_id.parse().unwrap())
            .unwrap()
            .unwrap()
    }

    pub(crate) fn member_token(
        &self,
        sub: &str,
        tenant: &str,
        scope1: &[&str],
        scope2: &[&str],
    ) -> String {
        sign(
            Some(&self.key_id),
            Algorithm::HS256,
            &self.key_secret,
            &claims(sub, tenant, scope1, scope2),
        )
    }

    /// A member of tenant "acme" in logistics/region-1.
    fn carrier(&self, sub: &str) -> String {
        self.member_token(sub, "acme", &["logistics"], &["region-1"])
    }

    async fn object_thread(&self, server: &TestServer, id: &str, participants: &[&str]) -> Value {
        let r = server
            .post(
                "/api/v1/management/threads",
                &self.management,
                json!({
                    "chatSpaceId": self.space_id,
                    "externalRef": {"type": "tender", "id": id},
                    "subject": format!("Tender {id}"),
                    "participants": participants,
                    "accessScopes": [{"tenant": "acme", "scope1": ["logistics"], "scope2": ["region-1"]}],
                }),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
        r.body
    }
}

fn id_of(v: &Value) -> &str {
    v["id"].as_str().expect("an id")
}

async fn send_as(
    server: &TestServer,
    token: &str,
    dialog: &str,
    cid: &str,
    text: &str,
) -> crate::harness::Reply {
    server
        .post(
            &format!("/api/v1/dialogs/{dialog}/messages"),
            token,
            json!({"content": text, "clientMsgId": cid}),
        )
        .await
}

#[tokio::test]
async fn api_tokens_are_shown_once_listed_without_secret_and_refused_after_revoke() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let created = server
        .post(
            "/api/v1/api-tokens",
            &o.owner.token,
            json!({"name": "crm", "scopes": ["agent", "management"]}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("mct_") && secret.len() >= 4 + 22,
        "{secret}"
    );
    let id = created.body["id"].as_str().unwrap().to_owned();

    // Used once, through the header and through the query string.
    server.get("/api/v1/members", &secret).await.ok();
    let by_query = server
        .call(
            Method::GET,
            &format!("/api/v1/members?api_token={secret}"),
            None,
            None,
        )
        .await;
    by_query.ok();

    let list = server.get("/api/v1/api-tokens", &o.owner.token).await;
    let items = list.ok()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert!(
        !list.body.to_string().contains(&secret)
            && items
                .iter()
                .all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "the secret never comes back: {}",
        list.body
    );
    let mine = items.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(mine["scopes"], json!(["management", "agent"]));

    // lastUsedAt is noted without holding up the request.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = server.get("/api/v1/api-tokens", &o.owner.token).await;
        let noted = list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str() && t["lastUsedAt"].is_string());
        if noted {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lastUsedAt never noted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    server
        .delete(&format!("/api/v1/api-tokens/{id}"), &o.owner.token)
        .await;
    assert_eq!(
        server.get("/api/v1/members", &secret).await.err(401),
        "unauthorized"
    );
    assert_eq!(
        server
            .call(
                Method::GET,
                &format!("/api/v1/members?api_token={secret}"),
                None,
                None
            )
            .await
            .err(401),
        "unauthorized"
    );

    // Only admins manage tokens; bad shapes are refused.
    let agent = crate::harness::fixtures::agent(
        &server,
        &o.owner,
        "Ann",
        mychat::accounts::model::Role::Agent,
    )
    .await;
    server
        .post(
            "/api/v1/api-tokens",
            &agent.token,
            json!({"name": "x", "scopes": ["agent"]}),
        )
        .await
        .err(403);
    for bad in [
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "", "scopes": ["agent"]}),
        json!({"name": "x", "scopes": ["agent"], "extra": 1}),
    ] {
        server
            .post("/api/v1/api-tokens", &o.owner.token, bad)
            .await
            .err(400);
    }
    let after = server.get("/api/v1/api-tokens", &o.owner.token).await;
    assert_eq!(after.ok()["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let agent_token = o.token(&server, "bot", &["agent"]).await;
    let body = json!({
        "chatSpaceId": o.space_id,
        "externalRef": {"type": "order", "id": "1"},
    });
    server
        .post("/api/v1/management/threads", &agent_token, body.clone())
        .await
        .err(403);
    server.get("/api/v1/threads", &o.management).await.err(403);
    server
        .post("/api/v1/management/threads", "mct_not-a-token", body)
        .await
        .err(401);
    // API tokens never pass as admins.
    server
        .post(
            "/api/v1/api-tokens",
            &agent_token,
            json!({"name": "x", "scopes": ["agent"]}),
        )
        .await
        .err(403);
}

#[tokio::test]
async fn an_agent_scope_token_writes_as_the_integration_and_never_holds_threads() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let bot = o.token(&server, "CRM bot", &["agent"]).await;
    let space = o.space(&server);
    let visitor = crate::harness::fixtures::visitor(&server, &space).await;
    let thread = crate::harness::fixtures::visitor_says(&server, &visitor, "hello")
        .await
        .thread;
    let path = format!("/api/v1/threads/{}/messages", thread.id);
    let sent = server
        .post(
            &path,
            &bot,
            json!({"content": "We got your order", "clientMsgId": "c1"}),
        )
        .await;
    assert_eq!(sent.status.as_u16(), 201, "{}", sent.body);
    assert_eq!(sent.body["senderType"], "integration");
    assert_eq!(sent.body["senderName"], "CRM bot");
    let again = server
        .call(
            Method::POST,
            &format!("{path}?api_token={bot}"),
            None,
            Some(json!({"content": "We got your order", "clientMsgId": "c1"})),
        )
        .await;
    assert_eq!(again.status.as_u16(), 200, "a retry returns the original");
    assert_eq!(again.body["id"], sent.body["id"]);

    let view = server
        .get(&format!("/api/v1/threads/{}", thread.id), &bot)
        .await;
    assert!(view.ok()["assignedAgentId"].is_null(), "{}", view.body);
    server
        .post(
            &format!("/api/v1/threads/{}/claim", thread.id),
            &bot,
            json!({}),
        )
        .await
        .err(403);
}

#[tokio::test]
async fn member_tokens_are_verified_strictly() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let good = o.carrier("u1");
    server.get("/api/v1/dialogs", &good).await.ok();

    let now = Utc::now().timestamp();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("u1", "acme", &["logistics"], &["region-1"]);
        f(&mut c);
        sign(Some(&o.key_id), Algorithm::HS256, &o.key_secret, &c)
    };
    let base = claims("u1", "acme", &["logistics"], &["region-1"]);
    let without = |claim: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(claim);
        sign(Some(&o.key_id), Algorithm::HS256, &o.key_secret, &c)
    };
    let none_alg = {
        use base64::Engine;
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = enc.encode(json!({"alg": "none", "kid": o.key_id}).to_string());
        let body = enc.encode(base.to_string());
        format!("{header}.{body}.")
    };
    let forged_rs256 = {
        let good = o.carrier("u1");
        use base64::Engine;
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = enc.encode(json!({"alg": "RS256", "typ": "JWT", "kid": o.key_id}).to_string());
        let mut parts = good.splitn(2, '.');
        parts.next();
        format!("{header}.{}", parts.next().unwrap())
    };
    let bad: Vec<(&str, String)> = vec![
        ("no kid", sign(None, Algorithm::HS256, &o.key_secret, &base)),
        (
            "unknown kid",
            sign(
                Some(&uuid::Uuid::now_v7().to_string()),
                Algorithm::HS256,
                &o.key_secret,
                &base,
            ),
        ),
        (
            "kid not a key id",
            sign(Some("main"), Algorithm::HS256, &o.key_secret, &base),
        ),
        (
            "HS384",
            sign(Some(&o.key_id), Algorithm::HS384, &o.key_secret, &base),
        ),
        (
            "HS512",
            sign(Some(&o.key_id), Algorithm::HS512, &o.key_secret, &base),
        ),
        ("alg none", none_alg),
        ("RS256 header", forged_rs256),
        (
            "bad signature",
            sign(Some(&o.key_id), Algorithm::HS256, "another secret", &base),
        ),
        (
            "expired",
            with(&|c| {
                c["iat"] = json!(now - 7200);
                c["exp"] = json!(now - 3600);
            }),
        ),
        (
            "exp too far",
            with(&|c| {
                c["exp"] = json!(now + 25 * 3600);
            }),
        ),
        ("no exp", without("exp")),
        ("no iat", without("iat")),
        (
            "iat in the future",
            with(&|c| {
                c["iat"] = json!(now + 3600);
                c["exp"] = json!(now + 7200);
            }),
        ),
        ("no sub", without("sub")),
        ("no name", without("name")),
        ("no tenant", without("tenant")),
        ("no scope1", without("scope1")),
        (
            "sub too long",
            with(&|c| {
                c["sub"] = json!("x".repeat(129));
            }),
        ),
        (
            "empty sub",
            with(&|c| {
                c["sub"] = json!("");
            }),
        ),
        (
            "too many scope values",
            with(&|c| {
                c["scope1"] = json!((0..51).map(|i| i.to_string()).collect::<Vec<_>>());
            }),
        ),
        (
            "scope value too long",
            with(&|c| {
                c["scope2"] = json!(["y".repeat(129)]);
            }),
        ),
        (
            "bad email",
            with(&|c| {
                c["email"] = json!("not an email");
            }),
        ),
        (
            "sub of wrong type",
            with(&|c| {
                c["sub"] = json!(42);
            }),
        ),
        ("not a JWT", "hello".to_owned()),
    ];
    for (why, token) in &bad {
        let r = server.get("/api/v1/dialogs", token).await;
        assert_eq!(r.status.as_u16(), 401, "{why}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "unauthorized", "{why}");
    }
    // Nothing of the refused tokens became a member.
    let members = server.get("/api/v1/members", &o.management).await;
    assert_eq!(
        members.ok()["items"].as_array().unwrap().len(),
        1,
        "{}",
        members.body
    );

    // Two keys live at once: rotation without downtime.
    let second = server
        .post(
            "/api/v1/signing-keys",
            &o.owner.token,
            json!({"name": "next"}),
        )
        .await;
    let (k2, s2) = (
        second.ok()["id"].as_str().unwrap().to_owned(),
        second.body["secret"].as_str().unwrap().to_owned(),
    );
    let listed = server.get("/api/v1/signing-keys", &o.owner.token).await;
    assert!(
        !listed.body.to_string().contains(&s2),
        "secrets are shown once"
    );
    let new_token = sign(Some(&k2), Algorithm::HS256, &s2, &base);
    server.get("/api/v1/dialogs", &new_token).await.ok();
    server.get("/api/v1/dialogs", &good).await.ok();
    server
        .delete(
            &format!("/api/v1/signing-keys/{}", o.key_id),
            &o.owner.token,
        )
        .await;
    server.get("/api/v1/dialogs", &good).await.err(401);
    server.get("/api/v1/dialogs", &new_token).await.ok();
}

#[tokio::test]
async fn members_are_created_on_first_sight_and_kept_in_step() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let mut c = claims("driver-7", "acme", &["logistics"], &["region-1"]);
    c["name"] = json!("Jan Kowalski");
    c["email"] = json!("Jan@Example.test");
    let t = sign(Some(&o.key_id), Algorithm::HS256, &o.key_secret, &c);
    server.get("/api/v1/dialogs", &t).await.ok();
    let m = server.get("/api/v1/members/driver-7", &o.management).await;
    assert_eq!(m.ok()["name"], "Jan Kowalski");
    assert_eq!(m.body["email"], "jan@example.test");
    c["name"] = json!("Jan K.");
    let t2 = sign(Some(&o.key_id), Algorithm::HS256, &o.key_secret, &c);
    server.get("/api/v1/dialogs", &t2).await.ok();
    let m = server.get("/api/v1/members/driver-7", &o.owner.token).await;
    assert_eq!(m.ok()["name"], "Jan K.");
    server
        .get("/api/v1/members/nobody", &o.management)
        .await
        .err(404);
    // Participants named by the management API become members too.
    o.object_thread(&server, "T-1", &["shipper-1"]).await;
    let all = server.get("/api/v1/members", &o.management).await;
    let ids: Vec<&str> = all.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["externalId"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"shipper-1") && ids.contains(&"driver-7"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn concurrent_creates_of_one_object_make_exactly_one_thread() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let body = json!({
        "chatSpaceId": o.space_id,
        "externalRef": {"type": "order", "id": "42"},
        "subject": "Order 42",
        "participants": ["a", "b"],
    });
    let replies = futures_util::future::join_all(
        (0..8).map(|_| server.post("/api/v1/management/threads", &o.management, body.clone())),
    )
    .await;
    let created = replies.iter().filter(|r| r.status.as_u16() == 201).count();
    let existing = replies.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(
        (created, existing),
        (1, 7),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let ids: std::collections::HashSet<&str> = replies.iter().map(|r| id_of(&r.body)).collect();
    assert_eq!(ids.len(), 1);
    let id = *ids.iter().next().unwrap();

    let by_ref = server
        .get("/api/v1/management/threads/by-ref/order/42", &o.management)
        .await;
    assert_eq!(id_of(by_ref.ok()), id);
    assert_eq!(by_ref.body["status"], "active");
    assert_eq!(
        by_ref.body["externalRef"],
        json!({"type": "order", "id": "42"})
    );
    let names: Vec<&str> = by_ref.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["externalId"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);

    // Agents see it in the app, and it has no claim.
    let view = server
        .get(&format!("/api/v1/threads/{id}"), &o.owner.token)
        .await;
    assert_eq!(view.ok()["status"], "active");
    server
        .post(
            &format!("/api/v1/threads/{id}/claim"),
            &o.owner.token,
            json!({}),
        )
        .await
        .err(409);
    // Staff may post; it claims nothing.
    let staff = server
        .post(
            &format!("/api/v1/threads/{id}/messages"),
            &o.owner.token,
            json!({"content": "Staff here", "clientMsgId": "s1"}),
        )
        .await;
    assert_eq!(staff.status.as_u16(), 201, "{}", staff.body);
    let view = server
        .get(&format!("/api/v1/threads/{id}"), &o.owner.token)
        .await;
    assert!(view.ok()["assignedAgentId"].is_null());
}

#[tokio::test]
async fn management_patches_posts_and_deletes_an_object_thread() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = o.object_thread(&server, "T-9", &["a"]).await;
    let id = id_of(&t).to_owned();
    let base = format!("/api/v1/management/threads/{id}");
    let patched = server
        .patch(
            &base,
            &o.management,
            json!({"subject": "Renamed", "accessScopes": []}),
        )
        .await;
    assert_eq!(patched.ok()["subject"], "Renamed");
    assert_eq!(patched.body["accessScopes"], json!([]));
    let m = server
        .post(
            &format!("{base}/messages"),
            &o.management,
            json!({"content": "Tender opened", "clientMsgId": "sys-1"}),
        )
        .await;
    assert_eq!(m.status.as_u16(), 201, "{}", m.body);
    assert_eq!(m.body["senderType"], "system");
    let again = server
        .post(
            &format!("{base}/messages"),
            &o.management,
            json!({"content": "Tender opened", "clientMsgId": "sys-1"}),
        )
        .await;
    assert_eq!(again.status.as_u16(), 200);
    assert_eq!(again.body["id"], m.body["id"]);
    let member = o.carrier("a");
    let page = server
        .get(&format!("/api/v1/dialogs/{id}/messages"), &member)
        .await;
    assert_eq!(page.ok()["items"].as_array().unwrap().len(), 1);

    server.delete(&base, &o.management).await;
    server.get(&base, &o.management).await.err(404);
    server
        .get(&format!("/api/v1/threads/{id}"), &o.owner.token)
        .await
        .err(404);
    server
        .get(&format!("/api/v1/dialogs/{id}"), &member)
        .await
        .err(404);
    // Visitor threads are not the management API's to delete.
    let space = o.space(&server);
    let visitor = crate::harness::fixtures::visitor(&server, &space).await;
    let vt = crate::harness::fixtures::visitor_says(&server, &visitor, "hi")
        .await
        .thread;
    server
        .delete(
            &format!("/api/v1/management/threads/{}", vt.id),
            &o.management,
        )
        .await
        .err(404);
}

#[tokio::test]
async fn the_scope_rule_decides_who_may_join() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = o.object_thread(&server, "T-1", &[]).await;
    let id = id_of(&t).to_owned();
    // (tenant, scope1, scope2, may join)
    let cases: [(&str, &[&str], &[&str], bool); 7] = [
        ("acme", &["logistics"], &["region-1"], true),
        (
            "acme",
            &["sales", "logistics"],
            &["region-9", "region-1"],
            true,
        ),
        ("globex", &["logistics"], &["region-1"], false),
        ("acme", &["sales"], &["region-1"], false),
        ("acme", &["logistics"], &["region-2"], false),
        ("acme", &[], &["region-1"], false),
        ("acme", &["logistics"], &[], false),
    ];
    for (i, (tenant, s1, s2, may)) in cases.iter().enumerate() {
        let token = o.member_token(&format!("m{i}"), tenant, s1, s2);
        let available = server.get("/api/v1/dialogs?type=available", &token).await;
        let listed = available.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == id.as_str());
        assert_eq!(listed, *may, "case {i}: {}", available.body);
        let by_object = server
            .get("/api/v1/dialogs/by-object/tender/T-1", &token)
            .await;
        assert_eq!(by_object.status.is_success(), *may, "case {i}");
        if !may {
            by_object.err(404);
            server
                .post(&format!("/api/v1/dialogs/{id}/join"), &token, json!({}))
                .await
                .err(404);
        } else {
            assert_eq!(by_object.body["participating"], false);
            assert!(by_object.body["lastMessage"].is_null());
        }
    }
    // A scope with an empty list admits nobody.
    server
        .patch(
            &format!("/api/v1/management/threads/{id}"),
            &o.management,
            json!({"accessScopes": [{"tenant": "acme", "scope1": [], "scope2": ["region-1"]}]}),
        )
        .await
        .ok();
    let token = o.carrier("m0");
    server
        .get("/api/v1/dialogs/by-object/tender/T-1", &token)
        .await
        .err(404);
}

#[tokio::test]
async fn potential_members_join_participants_leave_and_removal_ends_access() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = o.object_thread(&server, "T-2", &["shipper"]).await;
    let id = id_of(&t).to_owned();
    let shipper = o.carrier("shipper");
    let carrier = o.carrier("carrier");

    send_as(&server, &shipper, &id, "s-1", "Who can take it?")
        .await
        .ok();
    // Potential: sees the dialog, not its messages; may not write.
    server
        .get(&format!("/api/v1/dialogs/{id}/messages"), &carrier)
        .await
        .err(403);
    send_as(&server, &carrier, &id, "c-0", "me!").await.err(403);
    server
        .post(&format!("/api/v1/dialogs/{id}/leave"), &carrier, json!({}))
        .await
        .err(404);

    let joined = server
        .post(&format!("/api/v1/dialogs/{id}/join"), &carrier, json!({}))
        .await;
    assert_eq!(joined.ok()["participating"], true);
    server
        .post(&format!("/api/v1/dialogs/{id}/join"), &carrier, json!({}))
        .await
        .err(404);
    let part = server
        .get("/api/v1/dialogs?type=participating", &carrier)
        .await;
    assert_eq!(part.ok()["items"].as_array().unwrap().len(), 1);
    assert_eq!(part.body["items"][0]["unreadCount"], 1);
    let sent = send_as(&server, &carrier, &id, "c-1", "I can").await;
    assert_eq!(sent.status.as_u16(), 201, "{}", sent.body);
    assert_eq!(sent.body["senderType"], "member");

    // Leaving makes it available again.
    server
        .post(&format!("/api/v1/dialogs/{id}/leave"), &carrier, json!({}))
        .await;
    let avail = server.get("/api/v1/dialogs?type=available", &carrier).await;
    assert_eq!(avail.ok()["items"].as_array().unwrap().len(), 1);
    send_as(&server, &carrier, &id, "c-2", "again")
        .await
        .err(403);

    // The integrator removes the shipper: its access ends with its scopes' reach.
    server
        .delete(
            &format!("/api/v1/management/threads/{id}/participants/shipper"),
            &o.management,
        )
        .await
        .ok();
    send_as(&server, &shipper, &id, "s-2", "still here?")
        .await
        .err(403);
    server
        .delete(
            &format!("/api/v1/management/threads/{id}/participants/shipper"),
            &o.management,
        )
        .await
        .err(404);
    // A member whose scopes do not reach the thread, once removed, sees nothing.
    let outsider = o.member_token("outsider", "globex", &["x"], &["y"]);
    server
        .post(
            &format!("/api/v1/management/threads/{id}/participants"),
            &o.management,
            json!({"externalId": "outsider", "name": "Out Sider"}),
        )
        .await
        .ok();
    server
        .get(&format!("/api/v1/dialogs/{id}"), &outsider)
        .await
        .ok();
    server
        .delete(
            &format!("/api/v1/management/threads/{id}/participants/outsider"),
            &o.management,
        )
        .await
        .ok();
    server
        .get(&format!("/api/v1/dialogs/{id}"), &outsider)
        .await
        .err(404);
}

#[tokio::test]
async fn member_messages_are_idempotent_paged_both_ways_and_read() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = o.object_thread(&server, "T-3", &["a", "b"]).await;
    let id = id_of(&t).to_owned();
    let (a, b) = (o.carrier("a"), o.carrier("b"));
    let first = send_as(&server, &a, &id, "a-1", "one").await;
    assert_eq!(first.status.as_u16(), 201);
    let retry = send_as(&server, &a, &id, "a-1", "one").await;
    assert_eq!(retry.status.as_u16(), 200);
    assert_eq!(retry.body["id"], first.body["id"]);
    // clientMsgIds are each sender's own.
    assert_eq!(
        send_as(&server, &b, &id, "a-1", "b's own")
            .await
            .status
            .as_u16(),
        201
    );
    let reply = server
        .post(
            &format!("/api/v1/dialogs/{id}/messages"),
            &b,
            json!({"content": "re", "clientMsgId": "b-2", "replyToId": first.body["id"]}),
        )
        .await;
    assert_eq!(reply.ok()["replyToId"], first.body["id"]);
    for i in 2..=5 {
        send_as(&server, &a, &id, &format!("a-{i}"), &format!("msg {i}"))
            .await
            .ok();
    }

    let all = server
        .get(&format!("/api/v1/dialogs/{id}/messages?limit=200"), &b)
        .await;
    let items = all.ok()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 7);
    let page = server
        .get(&format!("/api/v1/dialogs/{id}/messages?limit=3"), &b)
        .await;
    assert_eq!(page.ok()["items"].as_array().unwrap().len(), 3);
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let older = server
        .get(
            &format!("/api/v1/dialogs/{id}/messages?limit=10&before={cursor}"),
            &b,
        )
        .await;
    assert_eq!(older.ok()["items"].as_array().unwrap().len(), 4);
    let after = server
        .get(
            &format!(
                "/api/v1/dialogs/{id}/messages?after={}",
                items[4]["id"].as_str().unwrap()
            ),
            &b,
        )
        .await;
    assert_eq!(after.ok()["items"].as_array().unwrap().len(), 2);

    let list = server.get("/api/v1/dialogs", &b).await;
    assert_eq!(list.ok()["items"][0]["unreadCount"], 4, "{}", list.body);
    server
        .post(
            &format!("/api/v1/dialogs/{id}/read"),
            &b,
            json!({"upTo": items[6]["id"]}),
        )
        .await;
    let list = server.get("/api/v1/dialogs", &b).await;
    assert_eq!(list.ok()["items"][0]["unreadCount"], 0);
    server
        .post(
            &format!("/api/v1/dialogs/{id}/read"),
            &b,
            json!({"upTo": uuid::Uuid::now_v7()}),
        )
        .await
        .err(400);
}

async fn member_socket(server: &TestServer, token: &str) -> Ws {
    let url = format!("ws://{}/ws/member", server.addr);
    let mut s = ws::connect(
        &url,
        &[
            ("Origin", "https://platform.test"),
            ("Sec-WebSocket-Protocol", &format!("bearer, {token}")),
        ],
    )
    .await
    .expect("member socket opens");
    s.expect("ready").await;
    s
}

#[tokio::test]
async fn the_member_socket_carries_messages_typing_reads_and_membership_live() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let (a_token, c_token) = (o.carrier("a"), o.carrier("c"));
    let mut a = member_socket(&server, &a_token).await;
    let mut c = member_socket(&server, &c_token).await;

    // A new thread with `a` in it: `a` is told it was added; `c` that it may join.
    let t = o.object_thread(&server, "T-4", &["a"]).await;
    let id = id_of(&t).to_owned();
    let (added, _) = a.wait_for("dialog:new").await;
    assert_eq!(added["dialog"]["participating"], true);
    let (avail, _) = c.wait_for("dialog:new").await;
    assert_eq!(avail["dialog"]["id"], id.as_str());
    assert_eq!(avail["dialog"]["participating"], false);

    // `a` writes over the socket; the potential member gets no content.
    a.send(json!({"type": "member:send_message", "dialogId": id, "clientMsgId": "x1", "content": "first"})).await;
    let (ack, _) = a.wait_for("message:ack").await;
    let first_id = ack["message"]["id"].as_str().unwrap().to_owned();
    a.send(json!({"type": "member:typing", "dialogId": id, "isTyping": true}))
        .await;

    // `c` joins over REST: `a` hears it, then `c` gets what follows.
    server
        .post(&format!("/api/v1/dialogs/{id}/join"), &c_token, json!({}))
        .await
        .ok();
    let (joined, _) = a.wait_for("participant:joined").await;
    assert_eq!(joined["participant"]["externalId"], "c");
    let (_, before_join) = c.wait_for("participant:joined").await;
    assert!(
        before_join
            .iter()
            .all(|f| f["type"] != "message:new" && f["type"] != "typing"),
        "a potential member got content: {before_join:?}"
    );
    a.send(json!({"type": "member:send_message", "dialogId": id, "clientMsgId": "x2", "content": "second"})).await;
    let (new, _) = c.wait_for("message:new").await;
    assert_eq!(new["message"]["content"], "second");
    assert_eq!(new["dialogId"], id.as_str());
    c.send(json!({"type": "member:typing", "dialogId": id, "isTyping": true}))
        .await;
    let (typing, _) = a.wait_for("typing").await;
    assert_eq!(typing["participant"]["externalId"], "c");
    c.send(json!({"type": "member:read", "dialogId": id, "upTo": new["message"]["id"]}))
        .await;
    let (read, _) = a.wait_for("messages:read").await;
    assert_eq!(read["reader"], "c");

    // Removed by the integrator: told so, and nothing more arrives.
    server
        .delete(
            &format!("/api/v1/management/threads/{id}/participants/c"),
            &o.management,
        )
        .await
        .ok();
    c.wait_for("participant:left").await;
    a.send(json!({"type": "member:send_message", "dialogId": id, "clientMsgId": "x3", "content": "third"})).await;
    a.wait_for("message:ack").await;
    c.send(json!({"type": "ping"})).await;
    let (_, between) = c.wait_for("pong").await;
    assert!(
        between.iter().all(|f| f["type"] != "message:new"),
        "{between:?}"
    );
    // Writing after removal is refused with the clientMsgId.
    c.send(json!({"type": "member:send_message", "dialogId": id, "clientMsgId": "c9", "content": "hi"})).await;
    let (err, _) = c.wait_for("error").await;
    assert_eq!(err["clientMsgId"], "c9");
    let _ = first_id;
}

#[tokio::test]
async fn a_member_resume_replays_exactly_what_was_missed() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = o.object_thread(&server, "T-5", &["a", "b"]).await;
    let id = id_of(&t).to_owned();
    let (a_token, b_token) = (o.carrier("a"), o.carrier("b"));
    let seen = send_as(&server, &a_token, &id, "m0", "seen").await.ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(
            send_as(
                &server,
                &a_token,
                &id,
                &format!("m{i}"),
                &format!("missed {i}"),
            )
            .await
            .ok()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Another dialog b is not in: never replayed to b.
    let other = o.object_thread(&server, "T-6", &["a"]).await;
    send_as(&server, &a_token, id_of(&other), "o1", "not for b")
        .await
        .ok();

    let mut b = member_socket(&server, &b_token).await;
    b.send(json!({"type": "resume", "after": seen})).await;
    let (resumed, frames) = b.wait_for("resumed").await;
    let got: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "message:new")
        .map(|f| f["message"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, missed.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(resumed["count"], 3);
}

#[tokio::test]
async fn the_member_socket_checks_origin_token_and_closes_when_the_token_expires() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let url = format!("ws://{}/ws/member", server.addr);
    let token = o.carrier("a");
    let refused = ws::connect(
        &url,
        &[
            ("Origin", "https://evil.test"),
            ("Sec-WebSocket-Protocol", &format!("bearer, {token}")),
        ],
    )
    .await;
    assert_eq!(refused.err().unwrap().status(), 403);
    let refused = ws::connect(&url, &[("Sec-WebSocket-Protocol", "bearer, not-a-token")]).await;
    assert_eq!(refused.err().unwrap().status(), 401);
    // First-frame auth works too.
    let mut s = ws::connect(&url, &[("Origin", "https://platform.test")])
        .await
        .unwrap();
    s.send(json!({"type": "auth", "token": token})).await;
    s.expect("ready").await;

    let now = Utc::now().timestamp();
    let mut c = claims("short", "acme", &["logistics"], &["region-1"]);
    c["exp"] = json!(now + 1);
    let short = sign(Some(&o.key_id), Algorithm::HS256, &o.key_secret, &c);
    let mut s = member_socket(&server, &short).await;
    let (code, _, _) = s.closed().await;
    assert_eq!(code, 4001);
}

#[tokio::test]
async fn bad_integration_input_gets_the_envelope_and_changes_nothing() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let path = "/api/v1/management/threads";
    let ok_ref = json!({"type": "order", "id": "1"});
    let bad = vec![
        json!({"chatSpaceId": o.space_id}),
        json!({"chatSpaceId": o.space_id, "externalRef": {"type": "x".repeat(65), "id": "1"}}),
        json!({"chatSpaceId": o.space_id, "externalRef": {"type": "order", "id": "x".repeat(129)}}),
        json!({"chatSpaceId": o.space_id, "externalRef": {"type": "", "id": "1"}}),
        json!({"chatSpaceId": o.space_id, "externalRef": ok_ref, "participants": (0..201).map(|i| i.to_string()).collect::<Vec<_>>()}),
        json!({"chatSpaceId": o.space_id, "externalRef": ok_ref, "participants": ["x".repeat(129)]}),
        json!({"chatSpaceId": o.space_id, "externalRef": ok_ref, "accessScopes": (0..21).map(|_| json!({"tenant": "t", "scope1": ["a"], "scope2": ["b"]})).collect::<Vec<_>>()}),
        json!({"chatSpaceId": o.space_id, "externalRef": ok_ref, "accessScopes": [{"tenant": "t", "scope1": (0..51).map(|i| i.to_string()).collect::<Vec<_>>(), "scope2": ["b"]}]}),
        json!({"chatSpaceId": o.space_id, "externalRef": ok_ref, "accessScopes": [{"tenant": "t", "extra": 1}]}),
        json!({"chatSpaceId": o.space_id, "externalRef": ok_ref, "unknown": true}),
        json!({"chatSpaceId": o.space_id, "externalRef": ok_ref, "subject": "s".repeat(301)}),
        json!({"chatSpaceId": "not-a-uuid", "externalRef": ok_ref}),
    ];
    for body in bad {
        let r = server.post(path, &o.management, body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.body);
        assert!(r.body["error"]["code"].is_string());
    }
    let malformed = server
        .client
        .post(server.url(path))
        .bearer_auth(&o.management)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    // An unknown space is a 404, and nothing was made.
    let r = server
        .post(
            path,
            &o.management,
            json!({"chatSpaceId": uuid::Uuid::now_v7(), "externalRef": ok_ref}),
        )
        .await;
    r.err(404);
    server
        .get("/api/v1/management/threads/by-ref/order/1", &o.management)
        .await
        .err(404);
    let members = server.get("/api/v1/members", &o.management).await;
    assert_eq!(members.ok()["items"].as_array().unwrap().len(), 0);
    // Member API input.
    let t = o.object_thread(&server, "T-7", &["a"]).await;
    let id = id_of(&t).to_owned();
    let a = o.carrier("a");
    for body in [
        json!({"content": "", "clientMsgId": "1"}),
        json!({"content": "x".repeat(5001), "clientMsgId": "1"}),
        json!({"content": "hi"}),
        json!({"content": "hi", "clientMsgId": "1", "internal": true}),
    ] {
        let r = server
            .post(&format!("/api/v1/dialogs/{id}/messages"), &a, body.clone())
            .await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.body);
    }
    server
        .get("/api/v1/dialogs?type=everything", &a)
        .await
        .err(400);
    server.get("/api/v1/dialogs?cursor=zzz", &a).await.err(400);
    server
        .get(&format!("/api/v1/dialogs/{}", uuid::Uuid::now_v7()), &a)
        .await
        .err(404);
    let page = server
        .get(&format!("/api/v1/dialogs/{id}/messages"), &a)
        .await;
    assert_eq!(page.ok()["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn another_organizations_tokens_members_and_threads_are_404() {
    let server = TestServer::start().await;
    let a = org(&server, "Acme").await;
    let b = org(&server, "Globex").await;
    let t = a.object_thread(&server, "T-8", &["u", "only-a"]).await;
    let id = id_of(&t).to_owned();
    let base = format!("/api/v1/management/threads/{id}");
    server.get(&base, &b.management).await.err(404);
    server
        .patch(&base, &b.management, json!({"subject": "x"}))
        .await
        .err(404);
    server
        .post(
            &format!("{base}/participants"),
            &b.management,
            json!({"externalId": "z"}),
        )
        .await
        .err(404);
    server
        .delete(&format!("{base}/participants/u"), &b.management)
        .await
        .err(404);
    server
        .post(
            &format!("{base}/messages"),
            &b.management,
            json!({"content": "x", "clientMsgId": "1"}),
        )
        .await
        .err(404);
    server.delete(&base, &b.management).await.err(404);
    server
        .get(
            "/api/v1/management/threads/by-ref/tender/T-8",
            &b.management,
        )
        .await
        .err(404);
    // b's create with a's space is a 404.
    server
        .post(
            "/api/v1/management/threads",
            &b.management,
            json!({"chatSpaceId": a.space_id, "externalRef": {"type": "tender", "id": "T-8"}}),
        )
        .await
        .err(404);
    // b's member with a's tenant and scopes sees nothing of a's.
    let intruder = b.carrier("u");
    server
        .get(&format!("/api/v1/dialogs/{id}"), &intruder)
        .await
        .err(404);
    server
        .get("/api/v1/dialogs/by-object/tender/T-8", &intruder)
        .await
        .err(404);
    server
        .post(&format!("/api/v1/dialogs/{id}/join"), &intruder, json!({}))
        .await
        .err(404);
    send_as(&server, &intruder, &id, "1", "x").await.err(404);
    let avail = server
        .get("/api/v1/dialogs?type=available", &intruder)
        .await;
    assert_eq!(avail.ok()["items"].as_array().unwrap().len(), 0);
    // Members, tokens and keys of a are not b's.
    server
        .get("/api/v1/members/only-a", &b.management)
        .await
        .err(404);
    server
        .get("/api/v1/members/only-a", &a.management)
        .await
        .ok();
    let tokens = server.get("/api/v1/api-tokens", &a.owner.token).await;
    let a_token_id = tokens.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    server
        .delete(&format!("/api/v1/api-tokens/{a_token_id}"), &b.owner.token)
        .await
        .err(404);
    server
        .delete(
            &format!("/api/v1/signing-keys/{}", a.key_id),
            &b.owner.token,
        )
        .await
        .err(404);
    // a's token still works.
    server.get(&base, &a.management).await.ok();
}

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

async fn member_upload(server: &TestServer, dialog: &str, token: &str) -> crate::harness::Reply {
    let boundary = "----mychat-member-upload";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"offer.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(PDF);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = server
        .client
        .post(server.url(&format!("/api/v1/dialogs/{dialog}/attachments")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    crate::harness::Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

#[tokio::test]
async fn members_attach_files_that_only_the_dialogs_participants_download() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = o.object_thread(&server, "T-10", &["a", "b"]).await;
    let id = id_of(&t).to_owned();
    let (a, b, c) = (o.carrier("a"), o.carrier("b"), o.carrier("c"));
    let up = member_upload(&server, &id, &a).await;
    assert_eq!(up.status.as_u16(), 201, "{}", up.body);
    let file = up.body["id"].as_str().unwrap().to_owned();
    // A potential member may not upload; nobody else sees an unsent file.
    member_upload(&server, &id, &c).await.err(403);
    let download = |token: String| {
        let url = server.url(&format!("/api/v1/attachments/{file}"));
        let client = server.client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(download(b.clone()).await, 404);
    let sent = server
        .post(
            &format!("/api/v1/dialogs/{id}/messages"),
            &a,
            json!({"content": "our offer", "clientMsgId": "f1", "attachmentIds": [file]}),
        )
        .await;
    assert_eq!(sent.status.as_u16(), 201, "{}", sent.body);
    assert_eq!(sent.body["attachments"][0]["name"], "offer.pdf");
    assert_eq!(download(b.clone()).await, 200);
    assert_eq!(download(a.clone()).await, 200);
    assert_eq!(
        download(c.clone()).await,
        404,
        "a potential member downloads nothing"
    );
    assert_eq!(
        download(o.owner.token.clone()).await,
        200,
        "agents of the organization"
    );
}

#[tokio::test]
async fn token_and_key_names_are_unique_in_an_organization() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    server
        .post(
            "/api/v1/api-tokens",
            &o.owner.token,
            json!({"name": "backend", "scopes": ["agent"]}),
        )
        .await
        .err(409);
    server
        .post(
            "/api/v1/signing-keys",
            &o.owner.token,
            json!({"name": "main"}),
        )
        .await
        .err(409);
    let other = org(&server, "Globex").await;
    assert_eq!(
        other.key_id.len(),
        36,
        "another organization may use the same names"
    );
}

#[tokio::test]
async fn object_bound_conversations_never_expire_with_inactivity() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = o.object_thread(&server, "T-11", &["a"]).await;
    let id: mychat::ids::ThreadId = id_of(&t).parse().unwrap();
    let mut thread = {
        let read = server.app_state.store.read().unwrap();
        mychat::store::Reader::thread(&read, id).unwrap().unwrap()
    };
    thread.last_activity_at = chrono::Utc::now() - chrono::Duration::days(30);
    server.put(&thread).await;
    let expired = mychat::threads::service::expire_inactive(&server.app_state)
        .await
        .unwrap();
    assert!(expired.is_empty(), "{expired:?}");
    send_as(&server, &o.carrier("a"), id_of(&t), "late", "still here")
        .await
        .ok();
}

#[tokio::test]
async fn a_client_msg_id_of_another_conversation_is_a_conflict_not_a_silent_drop() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let x = o.object_thread(&server, "T-12", &["a"]).await;
    let y = o.object_thread(&server, "T-13", &["a"]).await;
    let a = o.carrier("a");
    send_as(&server, &a, id_of(&x), "1", "in x").await.ok();
    let r = send_as(&server, &a, id_of(&y), "1", "in y").await;
    assert_eq!(r.err(409), "client_msg_id_used");
    // The management API's system messages are their own senders.
    let both = o.token(&server, "both", &["agent", "management"]).await;
    server
        .post(
            &format!("/api/v1/threads/{}/messages", id_of(&x)),
            &both,
            json!({"content": "agent api", "clientMsgId": "k"}),
        )
        .await
        .ok();
    let sys = server
        .post(
            &format!("/api/v1/management/threads/{}/messages", id_of(&y)),
            &both,
            json!({"content": "management api", "clientMsgId": "k"}),
        )
        .await;
    assert_eq!(sys.status.as_u16(), 201, "{}", sys.body);
    assert_eq!(sys.body["content"], "management api");
}

#[tokio::test]
async fn deleting_a_signing_key_closes_the_member_sockets_its_tokens_opened() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let mut s = member_socket(&server, &o.carrier("a")).await;
    server
        .delete(
            &format!("/api/v1/signing-keys/{}", o.key_id),
            &o.owner.token,
        )
        .await;
    let (code, _, _) = s.closed().await;
    assert_eq!(code, 4001);
}
