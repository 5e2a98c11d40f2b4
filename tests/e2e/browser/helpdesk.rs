//! The help-desk pages of the agent app in a real browser: search results
//! with their matching words marked, the reports page with charts the app
//! draws itself, and a visitor erased from the visitor panel after an
//! explicit confirmation.

use crate::harness::browser::{Browser, click, open_app, open_thread, wait_row, wait_text};
use crate::harness::fixtures;
use crate::harness::{Owner, TestServer};
use fantoccini::Locator;
use serde_json::json;

/// A widget visitor in a new space who writes `texts`: (visitor, thread).
async fn conversation(server: &TestServer, owner: &Owner, texts: &[&str]) -> (String, String) {
    let space = fixtures::space(server, owner).await;
    let (token, visitor) =
        fixtures::visitor_session(server, &[], json!({ "key": space.widget_key })).await;
    let mut thread = String::new();
    for text in texts {
        let r = server
            .post(
                "/api/v1/widget/messages",
                &token,
                json!({ "content": text, "clientMsgId": uuid::Uuid::new_v4().to_string() }),
            )
            .await;
        thread = r.created()["thread"]["id"].as_str().unwrap().to_owned();
    }
    (visitor, thread)
}

#[tokio::test]
async fn search_marks_the_words_and_an_admin_erases_a_visitor_after_confirming() {
    let (server, owner) = TestServer::with_owner().await;
    let (visitor, thread) = conversation(
        &server,
        &owner,
        &["Where is my parcel <b>17</b>?", "Hello?", "Thanks"],
    )
    .await;
    server.searchable().await;

    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    wait_row(&browser, "Thanks").await;
    let search = browser
        .client
        .find(Locator::Css("input[name=q]"))
        .await
        .unwrap();
    search.send_keys("parc").await.unwrap();
    // The first message matched; its word is marked, the markup stays text.
    wait_text(&browser, ".thread-list mark.hit", "parcel").await;
    wait_text(&browser, ".thread-list .row__preview", "<b>17</b>").await;
    assert_eq!(
        browser
            .js("return document.querySelectorAll('.thread-list b').length")
            .await,
        0
    );

    open_thread(&browser, &thread).await;
    click(&browser, "[data-action=erase-visitor]").await;
    wait_text(&browser, ".privacy__warning", "1").await;
    // Cancelling changes nothing.
    click(&browser, "[data-action=cancel-erase]").await;
    click(&browser, "[data-action=erase-visitor]").await;
    click(&browser, "[data-action=confirm-erase]").await;
    browser
        .wait_for(
            "the erased visitor's row to go",
            &format!(
                "return document.querySelector('.thread-list .row[data-id=\"{thread}\"]') === null"
            ),
        )
        .await;
    let r = server
        .get(&format!("/api/v1/visitors/{visitor}"), &owner.token)
        .await;
    assert_eq!(r.err(404), "not_found");
    browser.close().await;
}

#[tokio::test]
async fn the_reports_page_shows_totals_and_draws_its_charts() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, thread) = conversation(&server, &owner, &["A question"]).await;
    fixtures::agent_message(&server, &owner.token, &thread, "An answer", false).await;

    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser.goto(&server.url("/app/#/admin/reports")).await;
    wait_text(&browser, "[data-metric=conversations] .tile__value", "1").await;
    wait_text(&browser, "[data-metric=messages] .tile__value", "2").await;
    wait_text(&browser, "[data-metric=firstResponse] .tile__value", " s").await;
    // One conversation today: one bar in the conversations chart, with its
    // numbers in its tooltip.
    let bars = browser
        .js("return [...document.querySelectorAll('figure.chart')[0].querySelectorAll('rect.chart__bar')].map(b => b.textContent)")
        .await;
    let bars = bars.as_array().unwrap();
    assert_eq!(bars.len(), 1, "{bars:?}");
    assert!(bars[0].as_str().unwrap().ends_with(": 1"), "{bars:?}");
    let charts = browser
        .js("return document.querySelectorAll('figure.chart svg').length")
        .await;
    assert_eq!(charts, 3);
    browser.close().await;
}
