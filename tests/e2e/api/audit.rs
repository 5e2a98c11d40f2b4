//! The audit log over the real server: each administrative action leaves an
//! entry with who, what, which object and from where; admins only; filters
//! and pages; organizations see only their own.

use crate::harness::TestServer;
use mychat::accounts::model::Role;
use serde_json::{Value, json};

async fn log(server: &TestServer, token: &str, query: &str) -> Vec<Value> {
    server
        .get(&format!("/api/v1/audit-events?limit=200{query}"), token)
        .await
        .ok()["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn administrative_actions_leave_entries_with_who_what_and_where() {
    let server = TestServer::start_with(|c| c.webhooks.allow_private_targets = true).await;
    let owner = server.register("Acme", "owner@acme.test").await;
    let t = &owner.token;
    server
        .login("owner@acme.test", "wrong password")
        .await
        .err(401);
    server
        .login("owner@acme.test", "correct horse battery")
        .await
        .ok();
    server.login("nobody@acme.test", "x").await.err(401);

    let ann_token = crate::harness::fixtures::agent(&server, &owner, "Ann", Role::Agent)
        .await
        .token;
    let created = server
        .post(
            "/api/v1/agents",
            t,
            json!({"email": "bob@acme.test", "displayName": "Bob", "role": "agent", "password": "correct horse battery"}),
        )
        .await;
    let bob = created.ok()["agent"]["id"].as_str().unwrap().to_owned();
    let team = server
        .post("/api/v1/teams", t, json!({"name": "Sales"}))
        .await;
    let team_id = team.ok()["id"].as_str().unwrap().to_owned();
    server
        .patch(
            &format!("/api/v1/agents/{bob}"),
            t,
            json!({"role": "admin", "teamIds": [team_id]}),
        )
        .await
        .ok();
    server.delete(&format!("/api/v1/agents/{bob}"), t).await;
    server.delete(&format!("/api/v1/teams/{team_id}"), t).await;
    server
        .patch("/api/v1/organization", t, json!({"name": "Acme Inc"}))
        .await
        .ok();

    let space = server
        .post(
            "/api/v1/chat-spaces",
            t,
            json!({"name": "Site", "allowedDomains": ["site.test"]}),
        )
        .await;
    let space_id = space.ok()["id"].as_str().unwrap().to_owned();
    server
        .patch(
            &format!("/api/v1/chat-spaces/{space_id}"),
            t,
            json!({"name": "Main site"}),
        )
        .await
        .ok();
    server
        .post(
            &format!("/api/v1/chat-spaces/{space_id}/rotate-key"),
            t,
            json!({}),
        )
        .await
        .ok();

    let token = server
        .post(
            "/api/v1/api-tokens",
            t,
            json!({"name": "crm", "scopes": ["management"]}),
        )
        .await;
    let token_id = token.ok()["id"].as_str().unwrap().to_owned();
    let mct = token.body["token"].as_str().unwrap().to_owned();
    let key = server
        .post("/api/v1/signing-keys", t, json!({"name": "k"}))
        .await;
    let key_id = key.ok()["id"].as_str().unwrap().to_owned();
    server
        .delete(&format!("/api/v1/signing-keys/{key_id}"), t)
        .await;
    let thread = server
        .post(
            "/api/v1/management/threads",
            &mct,
            json!({"chatSpaceId": space_id, "externalRef": {"type": "order", "id": "1"}}),
        )
        .await;
    let thread_id = thread.ok()["id"].as_str().unwrap().to_owned();
    server
        .delete(&format!("/api/v1/management/threads/{thread_id}"), &mct)
        .await;
    server
        .delete(&format!("/api/v1/api-tokens/{token_id}"), t)
        .await;

    let hook = server
        .post(
            "/api/v1/webhooks",
            t,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["message.new"]}),
        )
        .await;
    let hook_id = hook.ok()["id"].as_str().unwrap().to_owned();
    server
        .patch(
            &format!("/api/v1/webhooks/{hook_id}"),
            t,
            json!({"enabled": false}),
        )
        .await
        .ok();
    server
        .post(
            &format!("/api/v1/webhooks/{hook_id}/rotate-secret"),
            t,
            json!({}),
        )
        .await
        .ok();
    server
        .delete(&format!("/api/v1/webhooks/{hook_id}"), t)
        .await;
    server
        .delete(&format!("/api/v1/chat-spaces/{space_id}"), t)
        .await;

    let entries = log(&server, t, "").await;
    let got = actions(&entries);
    for expected in [
        "auth.login_failed",
        "auth.login",
        "agent.create",
        "agent.role_change",
        "agent.teams_change",
        "agent.disable",
        "team.create",
        "team.delete",
        "organization.update",
        "space.update",
        "space.rotate_key",
        "space.delete",
        "api_token.create",
        "api_token.delete",
        "signing_key.create",
        "signing_key.delete",
        "thread.delete",
        "webhook.create",
        "webhook.update",
        "webhook.rotate_secret",
        "webhook.delete",
    ] {
        assert!(got.contains(&expected), "no {expected} in {got:?}");
    }
    // Newest first.
    assert_eq!(got[0], "space.delete");
    let failed = entries
        .iter()
        .find(|e| e["action"] == "auth.login_failed")
        .unwrap();
    assert_eq!(failed["actor"]["kind"], "anonymous");
    assert_eq!(failed["ip"], "127.0.0.1");
    assert_eq!(
        failed["target"],
        json!({"type": "agent", "id": owner.agent_id})
    );
    let role = entries
        .iter()
        .find(|e| e["action"] == "agent.role_change")
        .unwrap();
    assert_eq!(role["actor"]["kind"], "agent");
    assert_eq!(role["actor"]["id"], owner.agent_id.as_str());
    assert_eq!(role["target"]["id"], bob.as_str());
    let by_token = entries
        .iter()
        .find(|e| e["action"] == "thread.delete")
        .unwrap();
    assert_eq!(by_token["actor"]["kind"], "api_token");
    assert_eq!(by_token["actor"]["name"], "crm");
    // An unknown email belongs to no organization: nothing logged for it.
    assert_eq!(got.iter().filter(|a| **a == "auth.login_failed").count(), 1);

    // Filters and pages.
    let webhook_only = log(&server, t, "&action=webhook.").await;
    assert_eq!(webhook_only.len(), 4);
    let creates = log(&server, t, "&action=agent.create").await;
    assert_eq!(creates.len(), 1, "{creates:?}");
    let by_owner = log(&server, t, &format!("&actor={}", owner.agent_id)).await;
    assert!(
        by_owner
            .iter()
            .all(|e| e["actor"]["id"] == owner.agent_id.as_str())
    );
    let future = log(&server, t, "&from=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let page = server.get("/api/v1/audit-events?limit=5", t).await;
    assert_eq!(page.ok()["items"].as_array().unwrap().len(), 5);
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let next = server
        .get(&format!("/api/v1/audit-events?limit=5&cursor={cursor}"), t)
        .await;
    assert_eq!(next.ok()["items"][0]["id"], entries[5]["id"]);
    server
        .get("/api/v1/audit-events?cursor=nope", t)
        .await
        .err(400);
    server.get("/api/v1/audit-events?what=1", t).await.err(400);

    // Admins only; another organization sees none of it.
    server
        .get("/api/v1/audit-events", &ann_token)
        .await
        .err(403);
    let other = server.register("Globex", "owner@globex.test").await;
    let theirs = log(&server, &other.token, "").await;
    assert!(
        theirs
            .iter()
            .all(|e| e["organizationId"] == other.org_id.as_str())
    );
    assert!(theirs.iter().all(|e| e["action"] != "space.delete"));
}
