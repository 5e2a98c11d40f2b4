use crate::harness::TestServer;
use mychat::config::Registration;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn register_login_me_refresh_logout() {
    let (server, owner) = TestServer::with_owner().await;

    let me = server.get("/api/v1/auth/me", &owner.token).await;
    assert_eq!(me.ok()["agent"]["email"], "ann@acme.test");
    assert_eq!(me.body["agent"]["role"], "owner");
    assert!(me.body["agent"].get("passwordHash").is_none());

    let login = server.login("ANN@acme.test", "correct horse battery").await;
    let refresh = login.ok()["refreshToken"].as_str().unwrap().to_owned();

    // A refresh token works once.
    let r1 = server
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    let new_access = r1.ok()["accessToken"].as_str().unwrap().to_owned();
    let again = server
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    again.err(401);

    // Logout revokes access tokens at once.
    let out = server
        .call(Method::POST, "/api/v1/auth/logout", Some(&new_access), None)
        .await;
    assert_eq!(out.status, 204);
    server.get("/api/v1/auth/me", &new_access).await.err(401);
    server.get("/api/v1/auth/me", &owner.token).await.err(401);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let server = TestServer::start().await;
    server.register("Acme", "ann@acme.test").await;
    let a = server.login("ann@acme.test", "not the password").await;
    let b = server.login("nobody@acme.test", "not the password").await;
    assert_eq!(a.err(401), b.err(401));
    assert_eq!(a.body, b.body);
}

#[tokio::test]
async fn first_run_registration_closes_after_the_first_organization() {
    let server = TestServer::start_with(|c| c.registration = Registration::FirstRun).await;
    server.register("First", "first@one.test").await;
    let second = server
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"organizationName": "Second", "displayName": "S", "email": "s@two.test", "password": "long enough pw"})),
        )
        .await;
    second.err(403);
}

#[tokio::test]
async fn closed_registration_refuses_everyone() {
    let server = TestServer::start_with(|c| c.registration = Registration::Closed).await;
    let r = server
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"organizationName": "X", "displayName": "S", "email": "s@two.test", "password": "long enough pw"})),
        )
        .await;
    r.err(403);
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_and_changes_nothing() {
    let server = TestServer::start().await;
    server.register("Acme", "ann@acme.test").await;
    let r = server
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"organizationName": "Other", "displayName": "S", "email": "Ann@acme.test", "password": "long enough pw"})),
        )
        .await;
    assert_eq!(r.err(409), "email_taken");
}

#[tokio::test]
async fn login_is_rate_limited_per_account_with_retry_after() {
    let server = TestServer::start_with(|c| c.limits.login_per_account_per_minute = 3).await;
    server.register("Acme", "ann@acme.test").await;
    for _ in 0..3 {
        server
            .login("ann@acme.test", "wrong password")
            .await
            .err(401);
    }
    let limited = server.login("ann@acme.test", "correct horse battery").await;
    assert_eq!(limited.err(429), "rate_limited");
    let retry = limited.retry_after();
    assert!(retry >= 1);
}

#[tokio::test]
async fn malformed_json_is_a_400_envelope() {
    let server = TestServer::start().await;
    let resp = server
        .client
        .post(server.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
}

#[tokio::test]
async fn unknown_fields_are_refused() {
    let server = TestServer::start().await;
    let r = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "a@b.cd", "password": "x", "admin": true})),
        )
        .await;
    r.err(400);
}

#[tokio::test]
async fn restart_keeps_accounts() {
    let server = TestServer::start().await;
    server.register("Acme", "ann@acme.test").await;
    let server = server.restart().await;
    server
        .login("ann@acme.test", "correct horse battery")
        .await
        .ok();
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_json_envelope_on_every_route() {
    let server = TestServer::start_with(|c| c.http.body_limit = 1024).await;
    let owner = server.register("Acme", "owner@acme.test").await;
    let big = "x".repeat(4096);
    let resp = server
        .client
        .post(server.url("/api/v1/auth/logout"))
        .bearer_auth(&owner.token)
        .header("content-type", "application/json")
        .body(format!("{{\"refreshToken\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    let reply = crate::harness::Reply::read(resp).await;
    assert_eq!(reply.err(413), "too_large");
}

/// With several nodes, login attempts count for all of them together: a
/// guesser gets one allowance, not one per node.
#[tokio::test]
async fn login_limits_hold_across_nodes() {
    let mut nodes = crate::harness::TestServer::cluster(2, |c| {
        c.limits.login_per_account_per_minute = 3;
    })
    .await;
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    a.register("Acme", "ann@acme.test").await;
    for node in [&a, &b, &a] {
        let r = node.login("ann@acme.test", "wrong password").await;
        assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    }
    // The fourth attempt in the minute, on the node that saw only one.
    let r = b.login("ann@acme.test", "wrong password").await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    assert!(r.retry_after() >= 1);
    let r = b.login("ann@acme.test", "correct horse battery").await;
    assert_eq!(
        r.status.as_u16(),
        429,
        "the limit holds for the right password too"
    );
}
