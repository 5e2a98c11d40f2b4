//! `GET /reports/summary` on a fixed scenario: every number checked, with
//! the filters, by day, as CSV; bad dates and other organizations' objects
//! are refused with the envelope.

use chrono::{DateTime, Days, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::fixtures;
use crate::harness::{FROM_SITE, TestServer};
use mychat::accounts::model::Role;
use mychat::spaces::model::SpaceSettings;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn secs(from: &Value, to: &Value) -> u64 {
    (at(to) - at(from)).num_seconds() as u64
}

/// Widget session in `key`'s space; its first message: (token, thread, message).
async fn visitor_asks(server: &TestServer, key: &str, text: &str) -> (String, Value) {
    let (token, _) = fixtures::visitor_session(server, FROM_SITE, json!({ "key": key })).await;
    let sent = fixtures::visitor_posts(
        server,
        &token,
        json!({ "content": text, "clientMsgId": uuid::Uuid::new_v4().to_string() }),
    )
    .await;
    (token, sent.created().clone())
}

#[tokio::test]
async fn the_summary_counts_a_fixed_scenario() {
    let (server, owner) = TestServer::with_owner().await;
    let shop = fixtures::space(&server, &owner).await;
    let blog = fixtures::space_with(
        &server,
        &owner,
        "Blog",
        &["site.test"],
        SpaceSettings::default(),
    )
    .await;
    let bob = fixtures::agent(&server, &owner, "Bob", Role::Agent).await;
    let team = server
        .post("/api/v1/teams", &owner.token, json!({ "name": "Returns" }))
        .await
        .created()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 1: answered by the owner (and a note), closed, rated 4.
    let (token1, sent1) = visitor_asks(&server, &shop.widget_key, "broken lamp").await;
    let t1 = sent1["thread"]["id"].as_str().unwrap().to_owned();
    let reply1 = server
        .post(
            &format!("/api/v1/threads/{t1}/messages"),
            &owner.token,
            json!({ "content": "Sorry!", "clientMsgId": "r1" }),
        )
        .await;
    let reply1 = reply1.created().clone();
    fixtures::agent_message(&server, &owner.token, &t1, "refund it", true).await;
    let closed = server
        .patch(
            &format!("/api/v1/threads/{t1}/close"),
            &owner.token,
            json!({}),
        )
        .await;
    let closed = closed.ok().clone();
    server
        .call_with(
            Method::POST,
            "/api/v1/widget/rating",
            Some(&token1),
            Some(json!({ "threadId": t1, "score": 4 })),
            FROM_SITE,
        )
        .await
        .ok();
    // 2: Bob answers; routed to Returns.
    let (_, sent2) = visitor_asks(&server, &shop.widget_key, "return please").await;
    let t2 = sent2["thread"]["id"].as_str().unwrap().to_owned();
    let reply2 = server
        .post(
            &format!("/api/v1/threads/{t2}/messages"),
            &bob.token,
            json!({ "content": "Sure", "clientMsgId": "r2" }),
        )
        .await;
    let reply2 = reply2.created().clone();
    server
        .patch(
            &format!("/api/v1/threads/{t2}"),
            &owner.token,
            json!({ "teamId": team }),
        )
        .await
        .ok();
    // 3: in the blog, unanswered.
    visitor_asks(&server, &blog.widget_key, "hello?").await;

    let day: NaiveDate = at(&closed["createdAt"]).date_naive();
    let range = format!("from={}&to={day}", day - Days::new(2));
    let r = server
        .get(&format!("/api/v1/reports/summary?{range}"), &owner.token)
        .await;
    let s = r.ok();
    assert_eq!(s["conversations"], 3, "{s}");
    assert_eq!(s["messages"], 5, "notes are not counted: {s}");
    let mut first = [
        secs(&sent1["message"]["createdAt"], &reply1["createdAt"]),
        secs(&sent2["message"]["createdAt"], &reply2["createdAt"]),
    ];
    first.sort();
    assert_eq!(
        s["firstResponseSeconds"],
        json!({ "median": first[0], "p90": first[1], "count": 2 })
    );
    let resolution = secs(&closed["createdAt"], &closed["closedAt"]);
    assert_eq!(
        s["resolutionSeconds"],
        json!({ "median": resolution, "p90": resolution, "count": 1 })
    );
    assert_eq!(s["csat"], json!({ "average": 4.0, "count": 1 }));
    let days: Vec<(&str, i64)> = s["byDay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap(),
                d["conversations"].as_i64().unwrap(),
            )
        })
        .collect();
    let (d0, d1, d2) = (
        (day - Days::new(2)).to_string(),
        (day - Days::new(1)).to_string(),
        day.to_string(),
    );
    assert_eq!(
        days,
        vec![(d0.as_str(), 0), (d1.as_str(), 0), (d2.as_str(), 3)]
    );

    // Filters: a space, an agent, a team.
    let numbers = |filter: String| {
        let (server, token, range) = (&server, owner.token.clone(), range.clone());
        async move {
            let r = server
                .get(&format!("/api/v1/reports/summary?{range}&{filter}"), &token)
                .await;
            let s = r.ok();
            (
                s["conversations"].as_i64().unwrap(),
                s["messages"].as_i64().unwrap(),
            )
        }
    };
    assert_eq!(numbers(format!("chatSpaceId={}", blog.id)).await, (1, 1));
    assert_eq!(numbers(format!("chatSpaceId={}", shop.id)).await, (2, 4));
    assert_eq!(numbers(format!("agentId={}", bob.id)).await, (1, 2));
    assert_eq!(numbers(format!("teamId={team}")).await, (1, 2));
    assert_eq!(numbers(format!("agentId={}", owner.agent_id)).await, (1, 2));

    // CSV: a header and a line a day.
    let csv = server
        .client
        .get(server.url(&format!("/api/v1/reports/summary?{range}&format=csv")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("date,conversations,messages,"));
    assert!(lines[1].starts_with(&format!("{d0},0,0,")), "{text}");
    assert!(lines[3].starts_with(&format!("{d2},3,5,")), "{text}");
    assert!(lines[3].ends_with(",4,1"), "{text}");
}

#[tokio::test]
async fn bad_report_requests_are_refused_with_the_envelope() {
    let (server, owner) = TestServer::with_owner().await;
    let agent = fixtures::agent(&server, &owner, "Ann", Role::Agent).await;
    let other = server.register("Other", "other@other.test").await;
    let other_space = fixtures::space(&server, &other).await;
    let path = "/api/v1/reports/summary";
    for (query, status, code) in [
        ("from=2026-13-01", 400, "validation_failed"),
        ("to=yesterday", 400, "validation_failed"),
        ("from=2026-05-02&to=2026-05-01", 400, "validation_failed"),
        ("from=2024-01-01&to=2026-01-01", 400, "validation_failed"),
        ("format=xml", 400, "validation_failed"),
        ("chatSpaceId=nope", 400, "invalid_query"),
        ("bogus=1", 400, "invalid_query"),
    ] {
        let r = server.get(&format!("{path}?{query}"), &owner.token).await;
        assert_eq!(r.err(status), code, "{query}");
    }
    let r = server
        .get(
            &format!("{path}?chatSpaceId={}", other_space.id),
            &owner.token,
        )
        .await;
    assert_eq!(r.err(404), "not_found");
    let r = server
        .get(&format!("{path}?agentId={}", other.agent_id), &owner.token)
        .await;
    assert_eq!(r.err(404), "not_found");
    let r = server.get(path, &agent.token).await;
    assert_eq!(r.err(403), "forbidden");
    // An empty organization's report: zeros, thirty days.
    let r = server.get(path, &owner.token).await;
    let s = r.ok();
    assert_eq!(s["conversations"], 0);
    assert_eq!(s["firstResponseSeconds"]["median"], Value::Null);
    assert_eq!(s["byDay"].as_array().unwrap().len(), 30);
}
