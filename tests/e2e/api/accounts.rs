use crate::harness::{Owner, TestServer, pluck};
use reqwest::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

/// Creates an agent with a password through the API; returns its id.
async fn create_agent(server: &TestServer, token: &str, email: &str, role: &str) -> String {
    let r = server
        .post(
            "/api/v1/agents",
            token,
            json!({"email": email, "displayName": email, "role": role, "password": PW}),
        )
        .await;
    assert_eq!(r.status, 201, "create agent: {}", r.body);
    assert!(r.body.get("inviteUrl").is_none(), "{}", r.body);
    r.body["agent"]["id"].as_str().unwrap().to_owned()
}

async fn login_token(server: &TestServer, email: &str) -> String {
    let r = server.login(email, PW).await;
    r.ok()["accessToken"].as_str().unwrap().to_owned()
}

/// An owner plus an admin and a plain agent of the same organization.
struct Org {
    owner: Owner,
    admin_id: String,
    admin: String,
    agent_id: String,
    agent: String,
}

async fn org(server: &TestServer, name: &str) -> Org {
    let lower = name.to_lowercase();
    let owner = server.register(name, &format!("owner@{lower}.test")).await;
    let admin_email = format!("admin@{lower}.test");
    let agent_email = format!("agent@{lower}.test");
    let admin_id = create_agent(server, &owner.token, &admin_email, "admin").await;
    let agent_id = create_agent(server, &owner.token, &agent_email, "agent").await;
    Org {
        admin: login_token(server, &admin_email).await,
        agent: login_token(server, &agent_email).await,
        owner,
        admin_id,
        agent_id,
    }
}

async fn agent_list(server: &TestServer, token: &str) -> Value {
    server.get("/api/v1/agents", token).await.ok().clone()
}

fn invite_token(invite_url: &Value) -> String {
    let url = invite_url.as_str().expect("inviteUrl is a string");
    assert!(url.contains("/app/#/invite/"), "{url}");
    url.rsplit('/').next().unwrap().to_owned()
}

async fn accept_invite(server: &TestServer, token: &str, password: &str) -> crate::harness::Reply {
    server
        .call(
            Method::POST,
            "/api/v1/auth/accept-invite",
            None,
            Some(json!({"token": token, "password": password})),
        )
        .await
}

#[tokio::test]
async fn admin_creates_an_agent_with_a_password_who_can_log_in_at_once() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;

    let r = server
        .post(
            "/api/v1/agents",
            &o.admin,
            json!({"email": "Bob@Acme.test", "displayName": "Bob", "role": "agent", "password": PW}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let agent = &r.body["agent"];
    assert_eq!(agent["email"], "bob@acme.test");
    assert_eq!(agent["role"], "agent");
    assert_eq!(agent["invitePending"], false);
    assert_eq!(agent["organizationId"], o.owner.org_id.as_str());
    assert!(agent.get("passwordHash").is_none());

    let login = server.login("bob@acme.test", PW).await;
    assert_eq!(login.ok()["agent"]["id"], agent["id"]);

    // The same email again is a conflict, and no second agent appears.
    let again = server
        .post(
            "/api/v1/agents",
            &o.admin,
            json!({"email": "bob@acme.test", "displayName": "Bob 2", "role": "agent", "password": PW}),
        )
        .await;
    assert_eq!(again.err(409), "email_taken");
    let list = agent_list(&server, &o.agent).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    assert!(list["nextCursor"].is_null());
}

#[tokio::test]
async fn an_invite_link_sets_the_password_once() {
    let server = TestServer::start().await;
    let owner = server.register("Acme", "owner@acme.test").await;

    let r = server
        .post(
            "/api/v1/agents",
            &owner.token,
            json!({"email": "eve@acme.test", "displayName": "Eve", "role": "agent"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["agent"]["invitePending"], true);
    let id = r.body["agent"]["id"].as_str().unwrap().to_owned();
    let token = invite_token(&r.body["inviteUrl"]);

    // Before accepting there is no password to log in with.
    server.login("eve@acme.test", PW).await.err(401);

    let accepted = accept_invite(&server, &token, PW).await;
    assert_eq!(accepted.ok()["agent"]["id"], id.as_str());
    let me = server
        .get(
            "/api/v1/auth/me",
            accepted.body["accessToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(me.ok()["agent"]["invitePending"], false);
    server.login("eve@acme.test", PW).await.ok();

    // The link is spent: it cannot set another password.
    accept_invite(&server, &token, "another long password")
        .await
        .err(401);
    server
        .login("eve@acme.test", "another long password")
        .await
        .err(401);

    // And no fresh link is handed out for an agent that has a password.
    let reissue = server
        .post(
            &format!("/api/v1/agents/{id}/invite"),
            &owner.token,
            json!({}),
        )
        .await;
    assert_eq!(reissue.err(409), "invite_accepted");
}

#[tokio::test]
async fn a_reissued_invite_replaces_the_earlier_one() {
    let server = TestServer::start().await;
    let owner = server.register("Acme", "owner@acme.test").await;
    let r = server
        .post(
            "/api/v1/agents",
            &owner.token,
            json!({"email": "eve@acme.test", "displayName": "Eve", "role": "agent"}),
        )
        .await;
    let id = r.body["agent"]["id"].as_str().unwrap().to_owned();
    let first = invite_token(&r.body["inviteUrl"]);

    let again = server
        .call(
            Method::POST,
            &format!("/api/v1/agents/{id}/invite"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    let second = invite_token(&again.body["inviteUrl"]);
    assert_ne!(first, second);

    accept_invite(&server, &first, PW).await.err(401);
    accept_invite(&server, &second, PW).await.ok();
}

#[tokio::test]
async fn plain_agents_get_403_on_admin_routes() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let team = server
        .post("/api/v1/teams", &o.owner.token, json!({"name": "Sales"}))
        .await;
    let team_id = team.ok()["id"].as_str().unwrap().to_owned();
    let admin = format!("/api/v1/agents/{}", o.admin_id);

    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PATCH,
            "/api/v1/organization".into(),
            Some(json!({"name": "Mine now"})),
        ),
        (
            Method::POST,
            "/api/v1/agents".into(),
            Some(
                json!({"email": "x@acme.test", "displayName": "X", "role": "agent", "password": PW}),
            ),
        ),
        (
            Method::PATCH,
            admin.clone(),
            Some(json!({"displayName": "Renamed"})),
        ),
        (Method::DELETE, admin.clone(), None),
        (Method::POST, format!("{admin}/invite"), None),
        (
            Method::POST,
            "/api/v1/teams".into(),
            Some(json!({"name": "Mine"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/teams/{team_id}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/api/v1/teams/{team_id}"), None),
        // An agent may rename themselves, but nothing more.
        (
            Method::PATCH,
            format!("/api/v1/agents/{}", o.agent_id),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/agents/{}", o.agent_id),
            Some(json!({"teamIds": [team_id]})),
        ),
    ];
    for (method, path, body) in cases {
        let r = server
            .call(method.clone(), &path, Some(&o.agent), body)
            .await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden");
    }

    // Nothing changed.
    let org_now = server.get("/api/v1/organization", &o.agent).await;
    assert_eq!(org_now.ok()["name"], "Acme");
    let me = server
        .get(&format!("/api/v1/agents/{}", o.agent_id), &o.agent)
        .await;
    assert_eq!(me.ok()["role"], "agent");
    assert_eq!(me.body["teamIds"], json!([]));
    assert_eq!(
        server.get("/api/v1/teams", &o.agent).await.ok()["items"][0]["name"],
        "Sales"
    );

    // Reading is open to every agent, and renaming oneself works.
    let renamed = server
        .patch(
            &format!("/api/v1/agents/{}", o.agent_id),
            &o.agent,
            json!({"displayName": "Agent Smith"}),
        )
        .await;
    assert_eq!(renamed.ok()["displayName"], "Agent Smith");
    // A rename does not end the agent's session.
    server.get("/api/v1/auth/me", &o.agent).await.ok();
}

#[tokio::test]
async fn an_admin_cannot_make_owners() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;

    let r = server
        .post(
            "/api/v1/agents",
            &o.admin,
            json!({"email": "boss@acme.test", "displayName": "Boss", "role": "owner", "password": PW}),
        )
        .await;
    r.err(403);
    server.login("boss@acme.test", PW).await.err(401);

    let promote = server
        .patch(
            &format!("/api/v1/agents/{}", o.agent_id),
            &o.admin,
            json!({"role": "owner"}),
        )
        .await;
    promote.err(403);
    let self_promote = server
        .patch(
            &format!("/api/v1/agents/{}", o.admin_id),
            &o.admin,
            json!({"role": "owner"}),
        )
        .await;
    self_promote.err(403);
    assert_eq!(
        agent_list(&server, &o.admin).await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The owner may.
    let r = server
        .post(
            "/api/v1/agents",
            &o.owner.token,
            json!({"email": "boss@acme.test", "displayName": "Boss", "role": "owner", "password": PW}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["agent"]["role"], "owner");
}

#[tokio::test]
async fn disabling_an_agent_ends_its_sessions_at_once() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let login = server.login("agent@acme.test", PW).await;
    let refresh = login.ok()["refreshToken"].as_str().unwrap().to_owned();
    server.get("/api/v1/auth/me", &o.agent).await.ok();

    let r = server
        .patch(
            &format!("/api/v1/agents/{}", o.agent_id),
            &o.admin,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.ok()["disabled"], true);

    server.get("/api/v1/auth/me", &o.agent).await.err(401);
    server.get("/api/v1/agents", &o.agent).await.err(401);
    server.login("agent@acme.test", PW).await.err(401);
    server
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await
        .err(401);

    // The record stays, so history can still name the agent.
    let kept = server
        .get(&format!("/api/v1/agents/{}", o.agent_id), &o.admin)
        .await;
    assert_eq!(kept.ok()["disabled"], true);

    // Re-enabling lets the agent log in again, but old tokens stay dead.
    server
        .patch(
            &format!("/api/v1/agents/{}", o.agent_id),
            &o.admin,
            json!({"disabled": false}),
        )
        .await
        .ok();
    server.get("/api/v1/auth/me", &o.agent).await.err(401);
    server.login("agent@acme.test", PW).await.ok();
}

#[tokio::test]
async fn deleting_an_agent_disables_it_and_keeps_the_record() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;

    let r = server
        .delete(&format!("/api/v1/agents/{}", o.agent_id), &o.admin)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    server.get("/api/v1/auth/me", &o.agent).await.err(401);
    server.login("agent@acme.test", PW).await.err(401);
    let list = agent_list(&server, &o.admin).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let gone = items
        .iter()
        .find(|a| a["id"] == o.agent_id.as_str())
        .unwrap();
    assert_eq!(gone["disabled"], true);
}

#[tokio::test]
async fn a_role_change_ends_the_agents_sessions() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let r = server
        .patch(
            &format!("/api/v1/agents/{}", o.admin_id),
            &o.owner.token,
            json!({"role": "agent"}),
        )
        .await;
    assert_eq!(r.ok()["role"], "agent");
    server.get("/api/v1/auth/me", &o.admin).await.err(401);
    let fresh = login_token(&server, "admin@acme.test").await;
    server
        .post("/api/v1/teams", &fresh, json!({"name": "Nope"}))
        .await
        .err(403);
}

#[tokio::test]
async fn the_owner_cannot_be_disabled_or_demoted() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let owner = format!("/api/v1/agents/{}", o.owner.agent_id);

    for token in [&o.admin, &o.owner.token] {
        let r = server.patch(&owner, token, json!({"disabled": true})).await;
        assert!(r.status == 409 || r.status == 403, "{}", r.body);
        server.delete(&owner, token).await.err(409);
        let demote = server.patch(&owner, token, json!({"role": "admin"})).await;
        assert_eq!(demote.err(409), "owner_protected");
    }
    // Nobody disables themselves either.
    let own = server
        .delete(&format!("/api/v1/agents/{}", o.admin_id), &o.admin)
        .await;
    assert_eq!(own.err(409), "cannot_disable_self");

    let me = server.get("/api/v1/auth/me", &o.owner.token).await;
    assert_eq!(me.ok()["agent"]["role"], "owner");
    assert_eq!(me.body["agent"]["disabled"], false);
    server.get("/api/v1/auth/me", &o.admin).await.ok();
}

#[tokio::test]
async fn teams_crud_and_deleting_a_team_removes_it_from_agents() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let t = &o.owner.token;

    let sales = server
        .post("/api/v1/teams", t, json!({"name": " Sales "}))
        .await;
    assert_eq!(sales.status, 201, "{}", sales.body);
    assert_eq!(sales.body["name"], "Sales");
    let sales_id = sales.body["id"].as_str().unwrap().to_owned();
    let support = server
        .post("/api/v1/teams", t, json!({"name": "Support"}))
        .await;
    let support_id = support.ok()["id"].as_str().unwrap().to_owned();

    // Names are unique within the organization, ignoring case.
    let dup = server
        .post("/api/v1/teams", t, json!({"name": "sales"}))
        .await;
    assert_eq!(dup.err(409), "team_name_taken");
    let dup_rename = server
        .patch(
            &format!("/api/v1/teams/{support_id}"),
            t,
            json!({"name": "SALES"}),
        )
        .await;
    assert_eq!(dup_rename.err(409), "team_name_taken");
    // Another organization may use the same name.
    let other = server.register("Other", "owner@other.test").await;
    server
        .post("/api/v1/teams", &other.token, json!({"name": "Sales"}))
        .await
        .ok();

    let renamed = server
        .patch(
            &format!("/api/v1/teams/{sales_id}"),
            &o.admin,
            json!({"name": "Sales EU"}),
        )
        .await;
    assert_eq!(renamed.ok()["name"], "Sales EU");

    let agent_path = format!("/api/v1/agents/{}", o.agent_id);
    let member = server
        .patch(
            &agent_path,
            &o.admin,
            json!({"teamIds": [sales_id, support_id, sales_id]}),
        )
        .await;
    assert_eq!(member.ok()["teamIds"], json!([sales_id, support_id]));
    // Team membership does not end sessions.
    server.get("/api/v1/auth/me", &o.agent).await.ok();

    let list = server.get("/api/v1/teams", &o.agent).await;
    let names = pluck(list.ok(), "name");
    assert_eq!(names, ["Sales EU", "Support"]);

    let del = server
        .delete(&format!("/api/v1/teams/{sales_id}"), &o.admin)
        .await;
    assert_eq!(del.status, 204, "{}", del.body);
    server
        .get(&format!("/api/v1/teams/{sales_id}"), t)
        .await
        .err(404);
    let after = server.get(&agent_path, t).await;
    assert_eq!(after.ok()["teamIds"], json!([support_id]));
    assert_eq!(
        server.get("/api/v1/teams", t).await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A deleted team cannot be joined.
    let stale = server
        .patch(&agent_path, &o.admin, json!({"teamIds": [sales_id]}))
        .await;
    stale.err(400);
    assert_eq!(
        server.get(&agent_path, t).await.ok()["teamIds"],
        json!([support_id])
    );
}

#[tokio::test]
async fn another_organizations_agents_and_teams_are_404() {
    let server = TestServer::start().await;
    let a = org(&server, "Alpha").await;
    let b = server.register("Beta", "owner@beta.test").await;
    let team = server
        .post(
            "/api/v1/teams",
            &a.owner.token,
            json!({"name": "Alpha team"}),
        )
        .await;
    let team_id = team.ok()["id"].as_str().unwrap().to_owned();
    let invited = server
        .post(
            "/api/v1/agents",
            &a.owner.token,
            json!({"email": "new@alpha.test", "displayName": "New", "role": "agent"}),
        )
        .await;
    let invited_id = invited.ok()["agent"]["id"].as_str().unwrap().to_owned();
    let agent = format!("/api/v1/agents/{}", a.agent_id);
    let owner = format!("/api/v1/agents/{}", a.owner.agent_id);
    let team = format!("/api/v1/teams/{team_id}");

    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, agent.clone(), None),
        (
            Method::PATCH,
            agent.clone(),
            Some(json!({"displayName": "Hijacked"})),
        ),
        (
            Method::PATCH,
            agent.clone(),
            Some(json!({"disabled": true})),
        ),
        (Method::PATCH, owner.clone(), Some(json!({"role": "agent"}))),
        (Method::DELETE, agent.clone(), None),
        (Method::DELETE, owner.clone(), None),
        (
            Method::POST,
            format!("/api/v1/agents/{invited_id}/invite"),
            None,
        ),
        (Method::GET, team.clone(), None),
        (
            Method::PATCH,
            team.clone(),
            Some(json!({"name": "Hijacked"})),
        ),
        (Method::DELETE, team.clone(), None),
    ];
    for (method, path, body) in cases {
        let r = server
            .call(method.clone(), &path, Some(&b.token), body)
            .await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "not_found");
    }

    // Joining another organization's team is refused as a bad request.
    server
        .patch(
            &format!("/api/v1/agents/{}", b.agent_id),
            &b.token,
            json!({"teamIds": [team_id]}),
        )
        .await
        .err(400);

    // Lists show only one's own organization.
    let b_agents = agent_list(&server, &b.token).await;
    let items = b_agents["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], b.agent_id.as_str());
    assert_eq!(
        server.get("/api/v1/teams", &b.token).await.ok()["items"],
        json!([])
    );
    assert_eq!(
        server.get("/api/v1/organization", &b.token).await.ok()["name"],
        "Beta"
    );

    // Alpha is untouched.
    let kept = server.get(&agent, &a.admin).await;
    assert_eq!(kept.ok()["displayName"], "agent@alpha.test");
    assert_eq!(kept.body["disabled"], false);
    server.get("/api/v1/auth/me", &a.agent).await.ok();
    assert_eq!(server.get(&team, &a.agent).await.ok()["name"], "Alpha team");
    let owner_now = server.get(&owner, &a.agent).await;
    assert_eq!(owner_now.ok()["role"], "owner");
}

#[tokio::test]
async fn invalid_requests_are_400_and_leave_nothing_behind() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let before = agent_list(&server, &o.admin).await;

    let bad_agents = [
        json!({"email": "a@acme.test", "displayName": "", "role": "agent", "password": PW}),
        json!({"email": "a@acme.test", "displayName": "   ", "role": "agent", "password": PW}),
        json!({"email": "a@acme.test", "displayName": "x".repeat(101), "role": "agent", "password": PW}),
        json!({"email": "not-an-email", "displayName": "A", "role": "agent", "password": PW}),
        json!({"email": "a@acme.test", "displayName": "A", "role": "agent", "password": PW, "isAdmin": true}),
        json!({"email": "a@acme.test", "displayName": "A", "role": "superuser", "password": PW}),
        json!({"email": "a@acme.test", "displayName": "A", "role": "Admin", "password": PW}),
        json!({"email": "a@acme.test", "displayName": "A", "password": PW}),
        json!({"email": "a@acme.test", "displayName": "A", "role": "agent", "password": "short"}),
    ];
    for body in bad_agents {
        let r = server.post("/api/v1/agents", &o.admin, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }
    assert_eq!(agent_list(&server, &o.admin).await, before);
    server.login("a@acme.test", PW).await.err(401);

    let agent = format!("/api/v1/agents/{}", o.agent_id);
    let too_many: Vec<String> = (0..51)
        .map(|_| "00000000-0000-7000-8000-000000000000".to_owned())
        .collect();
    let bad_patches = [
        json!({"displayName": ""}),
        json!({"displayName": "x".repeat(101)}),
        json!({"role": "root"}),
        json!({"teamIds": ["not-a-uuid"]}),
        json!({"teamIds": too_many}),
        json!({"disabled": true, "email": "new@acme.test"}),
        // A valid field alongside a bad one must not be half-applied.
        json!({"displayName": "Good name", "teamIds": ["00000000-0000-7000-8000-000000000001"]}),
    ];
    for body in bad_patches {
        let r = server.patch(&agent, &o.admin, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    assert_eq!(agent_list(&server, &o.admin).await, before);
    server.get("/api/v1/auth/me", &o.agent).await.ok();

    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "line\nbreak"}),
        json!({"name": "Ok", "color": "red"}),
        json!({}),
    ] {
        server
            .post("/api/v1/teams", &o.admin, body.clone())
            .await
            .err(400);
        server
            .patch("/api/v1/organization", &o.admin, body)
            .await
            .err(400);
    }
    assert_eq!(
        server.get("/api/v1/teams", &o.admin).await.ok()["items"],
        json!([])
    );
    assert_eq!(
        server.get("/api/v1/organization", &o.admin).await.ok()["name"],
        "Acme"
    );

    // A 100-character name is the limit, not past it.
    let long = "y".repeat(100);
    let r = server
        .patch("/api/v1/organization", &o.admin, json!({"name": long}))
        .await;
    assert_eq!(r.ok()["name"], long.as_str());
}

#[tokio::test]
async fn malformed_ids_and_missing_credentials_get_the_envelope() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    assert_eq!(
        server
            .get("/api/v1/agents/not-a-uuid", &o.admin)
            .await
            .err(404),
        "not_found"
    );
    assert_eq!(
        server
            .get(
                "/api/v1/agents/00000000-0000-7000-8000-000000000000",
                &o.admin
            )
            .await
            .err(404),
        "not_found"
    );
    let anon = server.call(Method::GET, "/api/v1/agents", None, None).await;
    assert_eq!(anon.err(401), "unauthorized");
    let anon_org = server
        .call(Method::GET, "/api/v1/organization", None, None)
        .await;
    anon_org.err(401);
}

#[tokio::test]
async fn agents_choose_their_own_notifications() {
    let server = TestServer::start().await;
    let o = org(&server, "Acme").await;
    let me = format!("/api/v1/agents/{}", o.agent_id);
    let r = server.get(&me, &o.agent).await;
    assert_eq!(r.ok()["notify"], json!({"scope": "all", "quietMinutes": 0}));
    let r = server
        .patch(
            &me,
            &o.agent,
            json!({"notify": {"scope": "assigned", "quietMinutes": 5}}),
        )
        .await;
    assert_eq!(
        r.ok()["notify"],
        json!({"scope": "assigned", "quietMinutes": 5})
    );
    // Someone else's are an admin's to change; bad values change nothing.
    let admin = format!("/api/v1/agents/{}", o.admin_id);
    let r = server
        .patch(&admin, &o.agent, json!({"notify": {"scope": "none"}}))
        .await;
    assert_eq!(r.err(403), "forbidden");
    for bad in [
        json!({"notify": {"scope": "loud"}}),
        json!({"notify": {"quietMinutes": 100000}}),
        json!({"notify": {"scope": "all", "sms": true}}),
    ] {
        server.patch(&me, &o.agent, bad).await.err(400);
    }
    let r = server.get(&me, &o.agent).await;
    assert_eq!(
        r.ok()["notify"],
        json!({"scope": "assigned", "quietMinutes": 5})
    );
}
