//! Search (`q`) over the whole history through the full-text index: any
//! message, not only the last one, the visitor's fields; the access rule
//! on every result; notes for agents; the index rebuilt when it is gone.

use crate::harness::fixtures;
use crate::harness::{FROM_SITE, TestServer, pluck};
use mychat::accounts::model::Role;
use reqwest::Method;
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<String> {
    pluck(page, "id").into_iter().map(str::to_owned).collect()
}

/// The marked words of an item's match.
fn marked(item: &Value) -> Vec<String> {
    item["matched"]["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("no match in {item}"))
        .iter()
        .filter(|p| p["hit"] == true)
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_finds_a_word_from_an_old_message_and_marks_it() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let visitor = fixtures::visitor(&server, &space).await;
    let first =
        fixtures::visitor_says(&server, &visitor, "Moje zamówienie XK-4471 nie dotarło").await;
    let thread = first.thread.id.to_string();
    for text in ["Hello?", "Anyone there?", "Thanks, bye"] {
        fixtures::visitor_says(&server, &visitor, text).await;
    }
    let other = fixtures::visitor(&server, &space).await;
    fixtures::visitor_says(&server, &other, "A question about invoices").await;
    server.searchable().await;

    let list = format!("/api/v1/chat-spaces/{}/threads", space.id);
    // The word is in the first of four messages; the preview is the last.
    let page = server.get(&format!("{list}?q=xk"), &owner.token).await;
    assert_eq!(ids(page.ok()), vec![thread.clone()]);
    let item = &page.body["items"][0];
    assert_eq!(item["matched"]["messageId"], first.message.id.to_string());
    assert_eq!(marked(item), vec!["XK"]);
    // Without accents and by a word's beginning, across lists too.
    let page = server
        .get("/api/v1/threads?view=all&q=zamowie", &owner.token)
        .await;
    assert_eq!(ids(page.ok()), vec![thread.clone()]);
    assert_eq!(marked(&page.body["items"][0]), vec!["zamówienie"]);
    // Every word must match.
    let page = server
        .get(&format!("{list}?q=zamowienie%20invoices"), &owner.token)
        .await;
    assert!(ids(page.ok()).is_empty());
    // The visitor's fields are searched too.
    server
        .patch(
            &format!("/api/v1/visitors/{}", visitor.id),
            &owner.token,
            json!({ "email": "anna.kowalska@example.pl" }),
        )
        .await
        .ok();
    server.searchable().await;
    let page = server
        .get(&format!("{list}?q=kowalska"), &owner.token)
        .await;
    assert_eq!(ids(page.ok()), vec![thread]);
    assert_eq!(marked(&page.body["items"][0]), vec!["kowalska"]);
}

#[tokio::test]
async fn search_never_shows_another_organizations_or_teams_text() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let team = server
        .post("/api/v1/teams", &owner.token, json!({ "name": "Billing" }))
        .await
        .created()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let billing = fixtures::agent(&server, &owner, "Bea", Role::Agent).await;
    server
        .patch(
            &format!("/api/v1/agents/{}", billing.id),
            &owner.token,
            json!({ "teamIds": [team] }),
        )
        .await
        .ok();
    let outsider = fixtures::agent(&server, &owner, "Oli", Role::Agent).await;
    let v = fixtures::visitor(&server, &space).await;
    let routed = fixtures::visitor_says(&server, &v, "my refund for order walrus")
        .await
        .thread
        .id
        .to_string();
    server
        .patch(
            &format!("/api/v1/threads/{routed}"),
            &owner.token,
            json!({ "teamId": team }),
        )
        .await
        .ok();
    let v2 = fixtures::visitor(&server, &space).await;
    let open = fixtures::visitor_says(&server, &v2, "a walrus in the shop")
        .await
        .thread
        .id
        .to_string();

    // Another organization on the same appliance writes the same word.
    let other = server.register("Other Org", "other@other.test").await;
    let other_space = fixtures::space(&server, &other).await;
    let ov = fixtures::visitor(&server, &other_space).await;
    let theirs = fixtures::visitor_says(&server, &ov, "walrus walrus walrus")
        .await
        .thread
        .id
        .to_string();
    server.searchable().await;

    let found = |token: String| {
        let server = &server;
        async move {
            let page = server
                .get("/api/v1/threads?view=all&q=walrus", &token)
                .await;
            let mut ids = ids(page.ok());
            ids.sort();
            ids
        }
    };
    let mut both = vec![routed.clone(), open.clone()];
    both.sort();
    assert_eq!(found(owner.token.clone()).await, both);
    assert_eq!(found(billing.token.clone()).await, both);
    // Not in Billing: the routed thread is not found.
    assert_eq!(found(outsider.token.clone()).await, vec![open.clone()]);
    assert_eq!(found(other.token.clone()).await, vec![theirs]);
    // Nor through a space list.
    let page = server
        .get(
            &format!("/api/v1/chat-spaces/{}/threads?q=refund", space.id),
            &outsider.token,
        )
        .await;
    assert!(ids(page.ok()).is_empty());
    // Another organization's space is a 404, searched or not.
    let r = server
        .get(
            &format!("/api/v1/chat-spaces/{}/threads?q=walrus", other_space.id),
            &owner.token,
        )
        .await;
    assert_eq!(r.err(404), "not_found");
}

#[tokio::test]
async fn internal_notes_are_found_by_agents_only() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let agent = fixtures::agent(&server, &owner, "Ann", Role::Agent).await;
    let (token, _) =
        fixtures::visitor_session(&server, FROM_SITE, json!({ "key": space.widget_key })).await;
    let sent = fixtures::visitor_posts(
        &server,
        &token,
        json!({ "content": "hello", "clientMsgId": "v-1" }),
    )
    .await;
    let thread = sent.created()["thread"]["id"].as_str().unwrap().to_owned();
    fixtures::agent_message(
        &server,
        &owner.token,
        &thread,
        "suspected chargeback fraud",
        true,
    )
    .await;
    server.searchable().await;

    let page = server
        .get("/api/v1/threads?view=all&q=chargeback", &agent.token)
        .await;
    assert_eq!(ids(page.ok()), vec![thread.clone()]);
    assert_eq!(page.body["items"][0]["matched"]["internal"], true);
    // The visitor's own history never carries it, and it has no search.
    let history = server
        .call_with(
            Method::GET,
            "/api/v1/widget/messages",
            Some(&token),
            None,
            FROM_SITE,
        )
        .await;
    assert!(!history.ok().to_string().contains("chargeback"));
    let search = server
        .call_with(
            Method::GET,
            "/api/v1/widget/messages?q=chargeback",
            Some(&token),
            None,
            FROM_SITE,
        )
        .await;
    assert_eq!(search.err(400), "invalid_query");
}

#[tokio::test]
async fn a_missing_index_is_rebuilt_from_the_store() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let visitor = fixtures::visitor(&server, &space).await;
    let thread = fixtures::visitor_says(&server, &visitor, "the pelican arrived broken")
        .await
        .thread
        .id
        .to_string();
    fixtures::visitor_says(&server, &visitor, "please help").await;
    let dir = server.data_dir();
    let mut server = server;
    server.stop().await;
    std::fs::remove_dir_all(dir.join(mychat::search::DIR)).unwrap();
    let server = server.restart().await;
    // The rebuild runs before anything queued after it.
    server.searchable().await;
    let page = server
        .get("/api/v1/threads?view=all&q=pelican", &owner.token)
        .await;
    assert_eq!(ids(page.ok()), vec![thread]);
}
