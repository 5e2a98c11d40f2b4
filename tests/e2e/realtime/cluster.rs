//! Several nodes over one PostgreSQL database (`store.backend =
//! "postgres"`), each with its own data dir, hub and sockets, as behind a
//! load balancer: what one node commits, every node knows and delivers.

use super::{agent_in, agent_says, carries, session, str_of, visitor_says, widget};
use crate::harness::ws::kind;
use crate::harness::{Owner, TestServer, text};
use crate::harness::{fixtures, postgres};
use mychat::accounts::model::Role;
use mychat::spaces::model::ChatSpace;
use serde_json::json;

struct Cluster {
    a: TestServer,
    b: TestServer,
    owner: Owner,
    space: ChatSpace,
}

/// Two nodes; the owner registered and the space made on node A.
async fn cluster() -> Cluster {
    let mut nodes = TestServer::cluster(2, |_| {}).await;
    let b = nodes.pop().expect("node B");
    let a = nodes.pop().expect("node A");
    let owner = a.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&a, &owner).await;
    Cluster { a, b, owner, space }
}

#[tokio::test]
async fn an_account_made_on_one_node_signs_in_and_works_on_the_other() {
    let c = cluster().await;
    // The access token node A signed is good on node B.
    let me = c.b.get("/api/v1/auth/me", &c.owner.token).await;
    assert!(me.body.to_string().contains("ann@acme.test"), "{}", me.body);
    let spaces = c.b.get("/api/v1/chat-spaces", &c.owner.token).await;
    assert!(
        spaces.body.to_string().contains(&c.space.id.to_string()),
        "{}",
        spaces.body
    );
    // A password login on node B, then a change seen on node A.
    let login = c.b.login("ann@acme.test", "correct horse battery").await;
    let token = login.ok()["accessToken"].as_str().unwrap().to_owned();
    let renamed =
        c.b.patch(
            &format!("/api/v1/chat-spaces/{}", c.space.id),
            &token,
            json!({ "name": "Renamed on B" }),
        )
        .await;
    renamed.ok();
    let seen =
        c.a.get(&format!("/api/v1/chat-spaces/{}", c.space.id), &token)
            .await;
    assert_eq!(seen.ok()["name"], "Renamed on B");
}

#[tokio::test]
async fn a_visitor_on_one_node_and_an_agent_on_the_other_talk_live() {
    let c = cluster().await;
    let mut agent_ws = agent_in(&c.b, &c.owner.token, &c.space).await;
    let (token, _) = session(&c.a, &c.space).await;
    let (mut widget_ws, _) = widget(&c.a, &c.space, &token).await;

    let sent = visitor_says(&mut widget_ws, "v-1", "Hello from node A").await;
    let thread = str_of(&sent["threadId"]);
    let (new, _) = agent_ws.wait_for("thread:new").await;
    assert_eq!(new["thread"]["id"], thread);
    let got = agent_ws.expect("visitor:message").await;
    assert_eq!(got["message"]["id"], sent["id"]);
    assert_eq!(got["message"]["content"], "Hello from node A");

    let reply = agent_says(&mut agent_ws, &thread, "a-1", "Hello from node B", false).await;
    let (got, _) = widget_ws
        .until(carries("agent:message", "Hello from node B"))
        .await;
    assert_eq!(got["message"]["id"], reply["id"]);
}

/// `mychat_threads` on every node counts the whole cluster's threads, not
/// only those its own commits touched.
#[tokio::test]
async fn every_node_counts_the_threads_of_the_whole_cluster() {
    let c = cluster().await;
    let unassigned = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("mychat_threads{status=\"unassigned\"} "))
            .map(str::to_owned)
    };
    let metrics_b = || text(c.b.client.get(c.b.url("/metrics")));
    assert_eq!(unassigned(&metrics_b().await).as_deref(), Some("0"));

    let mut agent_ws = agent_in(&c.b, &c.owner.token, &c.space).await;
    let (token, _) = session(&c.a, &c.space).await;
    let (mut widget_ws, _) = widget(&c.a, &c.space, &token).await;
    let sent = visitor_says(&mut widget_ws, "v-1", "Hello from node A").await;
    let thread = str_of(&sent["threadId"]);
    // Node B counts a commit of node A's before it delivers its events.
    agent_ws.wait_for("thread:new").await;
    assert_eq!(unassigned(&metrics_b().await).as_deref(), Some("1"));

    let close = format!("/api/v1/threads/{thread}/close");
    c.a.patch(&close, &c.owner.token, json!({})).await.ok();
    agent_ws
        .until(|f| kind(f) == "thread:updated" && f["thread"]["status"] == "closed")
        .await;
    assert_eq!(unassigned(&metrics_b().await).as_deref(), Some("0"));
}

/// A database of layout 1 (events numbered from a counter row) moves to
/// layout 2 (a sequence under an advisory lock) when a node starts on it:
/// numbering goes on after the row's number, and nodes talk as before.
/// Its records' schema moves from 2 to 3 at the same start.
#[tokio::test]
async fn a_layout_1_database_moves_to_the_event_sequence() {
    let url = postgres::fresh_database().await;
    let on_it = |c: &mut mychat::config::Config| c.store.url = url.clone();
    let first = TestServer::cluster(1, on_it).await.pop().expect("a node");
    let owner = first.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&first, &owner).await;
    let (token, _) = session(&first, &space).await;
    let (mut widget_ws, _) = widget(&first, &space, &token).await;
    visitor_says(&mut widget_ws, "v-1", "before").await;
    drop(widget_ws);
    drop(first);
    // Back to layout 1, as an earlier version left it.
    let before = postgres::sql(
        &url,
        "CREATE TABLE mychat_event_seq (one boolean PRIMARY KEY CHECK (one), seq bigint NOT NULL);
         INSERT INTO mychat_event_seq SELECT true, max(seq) FROM mychat_events;
         DROP SEQUENCE mychat_event_numbers;
         UPDATE mychat_layout SET version = 1;
         UPDATE mychat_kv SET v = '\\x0000000000000002'::bytea
             WHERE t = 'meta' AND k = 'schema_version'::bytea;
         SELECT max(seq) FROM mychat_events;",
    )
    .await
    .expect("events were numbered")
    .parse::<i64>()
    .unwrap();
    assert!(before > 0);

    let mut nodes = TestServer::cluster(2, on_it).await;
    let (b, a) = (nodes.pop().unwrap(), nodes.pop().unwrap());
    let layout = postgres::sql(&url, "SELECT version FROM mychat_layout").await;
    assert_eq!(layout.as_deref(), Some("2"));
    // The records' schema moved on too (2 → 3: integer times), so a node
    // of schema 2 would refuse this database rather than misread it.
    let records = postgres::sql(
        &url,
        "SELECT encode(v, 'hex') FROM mychat_kv WHERE t = 'meta' AND k = 'schema_version'::bytea",
    )
    .await;
    assert_eq!(records.as_deref(), Some("0000000000000003"));
    let mut agent_ws = agent_in(&b, &owner.token, &space).await;
    let (mut widget_ws, _) = widget(&a, &space, &token).await;
    let sent = visitor_says(&mut widget_ws, "v-2", "after").await;
    let (got, _) = agent_ws
        .until(|f| kind(f) == "visitor:message" && f["message"]["id"] == sent["id"])
        .await;
    assert_eq!(got["message"]["content"], "after");
    let newest = postgres::sql(&url, "SELECT max(seq) FROM mychat_events")
        .await
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert!(newest > before, "{newest} after {before}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_race_across_nodes_has_exactly_one_winner() {
    let c = cluster().await;
    let bob = fixtures::agent(&c.a, &c.owner, "Bob", Role::Agent)
        .await
        .token;
    let cy = fixtures::agent(&c.a, &c.owner, "Cy", Role::Agent)
        .await
        .token;
    let (token, _) = session(&c.a, &c.space).await;
    let (mut widget_ws, _) = widget(&c.a, &c.space, &token).await;
    let mut watcher = agent_in(&c.b, &c.owner.token, &c.space).await;
    for round in 0..20 {
        let sent = visitor_says(&mut widget_ws, &format!("v-{round}"), "who takes me?").await;
        let thread = str_of(&sent["threadId"]);
        let path = format!("/api/v1/threads/{thread}/claim");
        let (x, y) = tokio::join!(
            c.a.patch(&path, &bob, json!({})),
            c.b.patch(&path, &cy, json!({})),
        );
        let holder = match (x.status.as_u16(), y.status.as_u16()) {
            (200, 409) => x.body["assignedAgentId"].clone(),
            (409, 200) => y.body["assignedAgentId"].clone(),
            other => panic!(
                "round {round}: exactly one claim wins: {other:?} {} {}",
                x.body, y.body
            ),
        };
        // Both nodes read the same holder back.
        for node in [&c.a, &c.b] {
            let t = node
                .get(&format!("/api/v1/threads/{thread}"), &c.owner.token)
                .await;
            assert_eq!(t.ok()["assignedAgentId"], holder, "round {round}");
        }
        // A socket on node B saw the one claim that won.
        let (u, _) = watcher
            .until(|f| kind(f) == "thread:updated" && f["thread"]["id"] == thread)
            .await;
        assert_eq!(u["thread"]["assignedAgentId"], holder, "round {round}");
        let close = format!("/api/v1/threads/{thread}/close");
        c.a.patch(&close, &c.owner.token, json!({})).await.ok();
    }
}

#[tokio::test]
async fn a_resume_on_the_other_node_replays_exactly_what_was_missed() {
    let c = cluster().await;
    let (token, _) = session(&c.a, &c.space).await;
    let (mut widget_ws, _) = widget(&c.a, &c.space, &token).await;
    let first = visitor_says(&mut widget_ws, "v-1", "first").await;
    let thread = str_of(&first["threadId"]);
    let mut agent_ws = agent_in(&c.a, &c.owner.token, &c.space).await;
    let reply = agent_says(&mut agent_ws, &thread, "a-1", "seen", false).await;
    widget_ws.until(carries("agent:message", "seen")).await;
    // The visitor drops; more is said while it is away.
    widget_ws.abort();
    let mut missed = Vec::new();
    for i in 0..3 {
        let m = agent_says(
            &mut agent_ws,
            &thread,
            &format!("a-m{i}"),
            &format!("missed {i}"),
            false,
        )
        .await;
        missed.push(str_of(&m["id"]));
    }
    // It comes back through the other node and resumes after what it had.
    let (mut back, _) = widget(&c.b, &c.space, &token).await;
    back.send(json!({ "type": "resume", "after": reply["id"] }))
        .await;
    let (resumed, replayed) = back.wait_for("resumed").await;
    // Each missed message exactly once. The other node may still be
    // handing node A's last events to its hub when the socket subscribes:
    // a message can then arrive live just before the older ones replayed.
    let mut ids: Vec<String> = replayed
        .iter()
        .filter(|f| kind(f) == "agent:message")
        .map(|f| str_of(&f["message"]["id"]))
        .collect();
    let live = ids
        .len()
        .saturating_sub(resumed["count"].as_u64().unwrap() as usize);
    ids.sort();
    assert_eq!(ids, missed, "live before the replay: {live}");
}

#[tokio::test]
async fn agents_online_on_one_node_count_for_widgets_and_agents_on_the_other() {
    let c = cluster().await;
    let bob = fixtures::agent(&c.a, &c.owner, "Bob", Role::Agent).await;
    let (token, _) = session(&c.a, &c.space).await;
    let (mut widget_ws, hello) = widget(&c.a, &c.space, &token).await;
    assert_eq!(hello["agentsOnline"], false);
    let (mut owner_ws, _) = super::agent(&c.a, &c.owner.token).await;
    widget_ws
        .until(|f| kind(f) == "agents:status" && f["online"] == true)
        .await;

    // Bob comes online on node B: the owner's socket on node A hears it.
    // Bob on node B learns the owner is online on node A: at once, or as
    // soon as node B hears of it.
    let (mut bob_ws, ready) = super::agent(&c.b, &bob.token).await;
    if !ready["agentsOnline"]
        .to_string()
        .contains(&c.owner.agent_id)
    {
        bob_ws
            .until(|f| kind(f) == "agents:presence" && f.to_string().contains(&c.owner.agent_id))
            .await;
    }
    owner_ws
        .until(|f| kind(f) == "agents:presence" && f.to_string().contains(&bob.id))
        .await;

    // The owner leaves node A: Bob on node B still counts for the widget.
    owner_ws.close().await;
    // Bob leaves too: now nobody is online, and the widget hears it once.
    bob_ws.close().await;
    let (_, before) = widget_ws
        .until(|f| kind(f) == "agents:status" && f["online"] == false)
        .await;
    assert!(
        before
            .iter()
            .filter(|f| kind(f) == "agents:status")
            .all(|f| f["online"] == true),
        "the widget heard 'offline' while Bob was online on node B: {before:?}"
    );
}

#[tokio::test]
async fn a_node_that_lost_its_database_is_not_ready() {
    let url = crate::harness::postgres::fresh_database().await;
    let node = TestServer::start_with(|c| {
        c.store.backend = mychat::config::StoreBackend::Postgres;
        c.store.url = url.clone();
    })
    .await;
    let ready = node.client.get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    crate::harness::postgres::drop_database(&url).await;
    let ready = node.client.get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // Alive all the same: the process is fine, its database is not.
    let alive = node.client.get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);
}
