//! The access rule for threads over a real server: a plain agent sees a
//! thread of its spaces that has no team, or one of its teams, or that it
//! holds or took part in; admins see everything. Every thread route is
//! tried by agents on each side of the rule, like the organization table.

use crate::harness::fixtures::{self, Agent};
use crate::harness::{Owner, Reply, TestServer, pluck};
use mychat::accounts::model::Role;
use mychat::spaces::model::{ChatSpace, SpaceSettings};
use serde_json::{Value, json};

struct Org {
    server: TestServer,
    owner: Owner,
    site: ChatSpace,
    shop: ChatSpace,
    support: String,
    sales: String,
}

async fn org() -> Org {
    let (server, owner) = TestServer::with_owner().await;
    let site = fixtures::space(&server, &owner).await;
    let shop = fixtures::space_with(
        &server,
        &owner,
        "Shop",
        &["shop.test"],
        SpaceSettings::default(),
    )
    .await;
    let team = |name: &'static str| {
        let (server, owner) = (&server, &owner);
        async move {
            let r = server
                .post("/api/v1/teams", &owner.token, json!({ "name": name }))
                .await;
            r.created()["id"].as_str().unwrap().to_owned()
        }
    };
    let support = team("Support").await;
    let sales = team("Sales").await;
    Org {
        server,
        owner,
        site,
        shop,
        support,
        sales,
    }
}

impl Org {
    /// A plain agent in these teams, working in these spaces (None: all).
    async fn agent(&self, name: &str, teams: &[&str], spaces: Option<&[&ChatSpace]>) -> Agent {
        let a = fixtures::agent(&self.server, &self.owner, name, Role::Agent).await;
        let spaces = spaces.map(|s| s.iter().map(|s| s.id.to_string()).collect::<Vec<_>>());
        self.server
            .patch(
                &format!("/api/v1/agents/{}", a.id),
                &self.owner.token,
                json!({ "teamIds": teams, "spaceIds": spaces }),
            )
            .await
            .ok();
        a
    }

    async fn as_owner(&self, path: &str) -> Value {
        self.server.get(path, &self.owner.token).await.ok().clone()
    }
}

/// Everything about a thread that a refused request must leave as it was.
async fn snapshot(o: &Org, thread: &str) -> Value {
    let t = o.as_owner(&format!("/api/v1/threads/{thread}")).await;
    let messages = o.server.all_messages(&o.owner.token, thread).await;
    json!({
        "status": t["status"], "holder": t["assignedAgentId"], "team": t["teamId"],
        "subject": t["subject"], "participants": t["participants"],
        "reads": t["agentReads"], "messages": messages,
    })
}

fn ids(page: &Value) -> Vec<String> {
    pluck(page, "id").into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn every_thread_route_follows_the_access_rule() {
    let o = org().await;
    let (support, sales) = (o.support.as_str(), o.sales.as_str());
    let sue = o.agent("Sue", &[support], None).await;
    let sal = o.agent("Sal", &[sales], None).await;
    let nia = o.agent("Nia", &[], None).await;
    let hal = o.agent("Hal", &[sales], None).await;
    let oz = o.agent("Oz", &[support], Some(&[&o.shop])).await;
    let ada = fixtures::agent(&o.server, &o.owner, "Ada", Role::Admin).await;

    // A conversation of the Site routed to Support and held by Hal, who is
    // in Sales: Support and Hal see it; Sales, no team and the agent of
    // another space do not.
    let visitor = fixtures::visitor(&o.server, &o.site).await;
    let sent = fixtures::visitor_says(&o.server, &visitor, "Where is my parcel?").await;
    let thread = sent.thread.id.to_string();
    let first = sent.message.id.to_string();
    let path = format!("/api/v1/threads/{thread}");
    o.server
        .patch(&path, &ada.token, json!({ "teamId": support }))
        .await
        .ok();
    o.server
        .post(
            &format!("{path}/transfer"),
            &ada.token,
            json!({ "agentId": hal.id }),
        )
        .await
        .ok();
    let note = o
        .server
        .post(
            &format!("{path}/messages"),
            &hal.token,
            json!({ "content": "On its way", "clientMsgId": "hal-1" }),
        )
        .await;
    let hal_message = note.created()["id"].as_str().unwrap().to_owned();

    o.server.searchable().await;
    let callers: [(&str, &str, bool); 7] = [
        ("same team", &sue.token, true),
        ("other team", &sal.token, false),
        ("no team", &nia.token, false),
        ("holder", &hal.token, true),
        ("admin", &ada.token, true),
        ("owner", &o.owner.token, true),
        ("team, other space", &oz.token, false),
    ];
    let site_threads = format!("/api/v1/chat-spaces/{}/threads", o.site.id);
    let visitor_threads = format!("/api/v1/visitors/{}/threads", visitor.id);
    for (who, token, sees) in callers {
        let s = &o.server;
        let expect = if sees { 200 } else { 404 };
        let reads = [
            ("GET thread", s.get(&path, token).await),
            (
                "GET messages",
                s.get(&format!("{path}/messages"), token).await,
            ),
            (
                "POST read",
                s.post(&format!("{path}/read"), token, json!({ "upTo": first }))
                    .await,
            ),
        ];
        for (route, r) in reads {
            assert_eq!(r.status.as_u16(), expect, "{who}: {route}: {}", r.body);
            if !sees {
                assert_eq!(r.err(404), "not_found", "{who}: {route}");
            }
        }
        for view in ["all", "mine", "available"] {
            let page = s.get(&format!("/api/v1/threads?view={view}"), token).await;
            let listed = ids(page.ok()).contains(&thread);
            let want = sees && (view == "all" || (view == "mine" && who == "holder"));
            assert_eq!(listed, want, "{who}: view={view}");
        }
        // The preview is the holder's "On its way".
        let search = s.get("/api/v1/threads?q=its%20way", token).await;
        assert_eq!(ids(search.ok()).contains(&thread), sees, "{who}: search");
        let in_space = s.get(&site_threads, token).await;
        let of_visitor = s.get(&visitor_threads, token).await;
        if who == "team, other space" {
            // The space and its visitors are not this agent's at all.
            assert_eq!(in_space.err(404), "not_found");
            assert_eq!(of_visitor.err(404), "not_found");
            let spaces = s.get("/api/v1/chat-spaces", token).await;
            assert_eq!(ids(spaces.ok()), vec![o.shop.id.to_string()]);
        } else {
            assert_eq!(
                ids(in_space.ok()).contains(&thread),
                sees,
                "{who}: space list"
            );
            assert_eq!(
                ids(of_visitor.ok()).contains(&thread),
                sees,
                "{who}: visitor's threads"
            );
        }
        let unread = s.get("/api/v1/unread-count", token).await;
        if !sees {
            assert_eq!(unread.ok()["total"], 0, "{who}: unread");
        }
    }

    // Every write by someone who does not see the thread is a 404 and
    // changes nothing.
    let before = snapshot(&o, &thread).await;
    for (who, agent) in [
        ("other team", &sal),
        ("no team", &nia),
        ("other space", &oz),
    ] {
        let t = agent.token.as_str();
        let s = &o.server;
        let message = format!("/api/v1/messages/{hal_message}");
        let writes: Vec<(&str, Reply)> = vec![
            ("claim", s.post(&format!("{path}/claim"), t, json!({})).await),
            ("release", s.post(&format!("{path}/release"), t, json!({})).await),
            ("close", s.post(&format!("{path}/close"), t, json!({})).await),
            ("reopen", s.post(&format!("{path}/reopen"), t, json!({})).await),
            (
                "transfer",
                s.post(&format!("{path}/transfer"), t, json!({ "agentId": agent.id }))
                    .await,
            ),
            ("patch", s.patch(&path, t, json!({ "subject": "mine now" })).await),
            (
                "patch team",
                s.patch(&path, t, json!({ "teamId": null })).await,
            ),
            (
                "send",
                s.post(
                    &format!("{path}/messages"),
                    t,
                    json!({ "content": "hi", "clientMsgId": format!("{who}-send") }),
                )
                .await,
            ),
            (
                "note",
                s.post(
                    &format!("{path}/messages"),
                    t,
                    json!({ "content": "psst", "internal": true, "clientMsgId": format!("{who}-note") }),
                )
                .await,
            ),
            ("edit", s.patch(&message, t, json!({ "content": "x" })).await),
            ("delete message", s.delete(&message, t).await),
        ];
        for (route, r) in writes {
            assert_eq!(r.err(404), "not_found", "{who}: {route}");
        }
    }
    assert_eq!(
        snapshot(&o, &thread).await,
        before,
        "refused writes changed nothing"
    );

    // Seeing is not holding: only the holder or an admin changes a held
    // thread, and a reply by someone else is refused.
    let r = o
        .server
        .patch(&path, &sue.token, json!({ "subject": "Parcel" }))
        .await;
    assert_eq!(r.err(403), "forbidden");
    let r = o
        .server
        .post(
            &format!("{path}/messages"),
            &sue.token,
            json!({ "content": "I'll take it", "clientMsgId": "sue-1" }),
        )
        .await;
    assert_eq!(r.err(409), "already_claimed");
    assert_eq!(snapshot(&o, &thread).await, before);
    o.server
        .patch(&path, &hal.token, json!({ "subject": "Parcel" }))
        .await
        .ok();
    // An internal note from a teammate is fine and claims nothing.
    o.server
        .post(
            &format!("{path}/messages"),
            &sue.token,
            json!({ "content": "FYI", "internal": true, "clientMsgId": "sue-2" }),
        )
        .await
        .created();
    // Transfer goes only to an agent who works in the thread's space.
    let r = o
        .server
        .post(
            &format!("{path}/transfer"),
            &hal.token,
            json!({ "agentId": oz.id }),
        )
        .await;
    assert_eq!(r.err(409), "agent_not_in_space");
    assert_eq!(o.as_owner(&path).await["assignedAgentId"], hal.id.as_str());
}

#[tokio::test]
async fn a_team_thread_is_claimed_sent_to_and_reopened_only_by_its_team() {
    let o = org().await;
    let sue = o.agent("Sue", &[&o.support], None).await;
    let sal = o.agent("Sal", &[&o.sales], None).await;
    let visitor = fixtures::visitor(&o.server, &o.site).await;
    let sent = fixtures::visitor_says(&o.server, &visitor, "Hello").await;
    let path = format!("/api/v1/threads/{}", sent.thread.id);
    o.server
        .patch(&path, &o.owner.token, json!({ "teamId": o.support }))
        .await
        .ok();

    // Sales does not see it, so cannot take it by claiming or replying.
    let r = o
        .server
        .post(&format!("{path}/claim"), &sal.token, json!({}))
        .await;
    assert_eq!(r.err(404), "not_found");
    let reply = json!({ "content": "Mine", "clientMsgId": "sal-1" });
    let r = o
        .server
        .post(&format!("{path}/messages"), &sal.token, reply)
        .await;
    assert_eq!(r.err(404), "not_found");
    let unread = o.server.get("/api/v1/unread-count", &sal.token).await;
    assert_eq!(unread.ok()["total"], 0);
    let unread = o.server.get("/api/v1/unread-count", &sue.token).await;
    assert_eq!(unread.ok()["total"], 1);

    // Support replies, which claims it.
    let reply = json!({ "content": "Hi!", "clientMsgId": "sue-1" });
    o.server
        .post(&format!("{path}/messages"), &sue.token, reply)
        .await
        .created();
    assert_eq!(o.as_owner(&path).await["assignedAgentId"], sue.id.as_str());
    o.server
        .post(&format!("{path}/close"), &sue.token, json!({}))
        .await
        .ok();
    let r = o
        .server
        .post(&format!("{path}/reopen"), &sal.token, json!({}))
        .await;
    assert_eq!(r.err(404), "not_found");
    let reopened = o
        .server
        .post(&format!("{path}/reopen"), &sue.token, json!({}))
        .await;
    assert_eq!(reopened.ok()["assignedAgentId"], sue.id.as_str());
}

#[tokio::test]
async fn agents_work_only_in_their_spaces() {
    let o = org().await;
    let shopkeeper = o.agent("Kim", &[], Some(&[&o.shop])).await;
    let site_visitor = fixtures::visitor(&o.server, &o.site).await;
    let sent = fixtures::visitor_says(&o.server, &site_visitor, "Site question").await;
    let site_thread = sent.thread.id.to_string();
    let shop_visitor = fixtures::visitor(&o.server, &o.shop).await;
    let sent = fixtures::visitor_says(&o.server, &shop_visitor, "Shop question").await;
    let shop_thread = sent.thread.id.to_string();

    let listed = o
        .server
        .get("/api/v1/threads?view=available", &shopkeeper.token)
        .await;
    assert_eq!(ids(listed.ok()), vec![shop_thread.clone()]);
    let r = o
        .server
        .get(
            &format!("/api/v1/visitors/{}", site_visitor.id),
            &shopkeeper.token,
        )
        .await;
    assert_eq!(r.err(404), "not_found");
    o.server
        .get(
            &format!("/api/v1/visitors/{}", shop_visitor.id),
            &shopkeeper.token,
        )
        .await
        .ok();
    // Starting a conversation with a visitor of another space: 404.
    let r = o
        .server
        .post(
            "/api/v1/threads",
            &shopkeeper.token,
            json!({ "visitorId": site_visitor.id }),
        )
        .await;
    assert_eq!(r.err(404), "not_found");
    let r = o
        .server
        .get(
            &format!("/api/v1/chat-spaces/{}", o.site.id),
            &shopkeeper.token,
        )
        .await;
    assert_eq!(r.err(404), "not_found");

    // The admin gives Kim every space (`null`), and the Site's thread shows.
    let me = format!("/api/v1/agents/{}", shopkeeper.id);
    let r = o
        .server
        .patch(&me, &o.owner.token, json!({ "spaceIds": null }))
        .await;
    assert!(r.ok()["spaceIds"].is_null(), "{}", r.body);
    let listed = o
        .server
        .get("/api/v1/threads?view=available", &shopkeeper.token)
        .await;
    let mut got = ids(listed.ok());
    got.sort();
    let mut want = vec![site_thread, shop_thread];
    want.sort();
    assert_eq!(got, want);

    // Bad input changes nothing: another organization's space, a repeated
    // field shape, and an agent editing its own spaces.
    let rival = o.server.register("Rival", "rob@rival.test").await;
    let rival_space = fixtures::space(&o.server, &rival).await;
    let r = o
        .server
        .patch(&me, &o.owner.token, json!({ "spaceIds": [rival_space.id] }))
        .await;
    assert_eq!(r.err(400), "validation_failed");
    let r = o
        .server
        .patch(&me, &o.owner.token, json!({ "spaceIds": "all" }))
        .await;
    assert_eq!(r.err(400), "invalid_json");
    let r = o
        .server
        .patch(&me, &shopkeeper.token, json!({ "spaceIds": [o.shop.id] }))
        .await;
    assert_eq!(r.err(403), "forbidden");
    let now = o.as_owner(&me).await;
    assert!(now["spaceIds"].is_null(), "{now}");
}
