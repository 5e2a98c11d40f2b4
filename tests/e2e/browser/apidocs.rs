//! The API reference page `/api/docs`: drawn in a real browser from the
//! served OpenAPI document, and linked from the admin's Integrations page.

use crate::harness::TestServer;
use crate::harness::browser::{Browser, click, open_app, type_into, wait_text};

#[tokio::test]
async fn the_reference_page_shows_an_operation_with_its_auth_and_a_curl_example() {
    let (server, _owner) = TestServer::with_owner().await;
    let browser = Browser::start().await;
    browser.goto(&server.url("/api/docs")).await;
    browser
        .wait_for(
            "the document drawn",
            "return document.body.dataset.ready === 'true'",
        )
        .await;
    // Grouped by tag: the threads section holds the list of threads.
    let op = "[data-tag='threads'] [data-op='GET /api/v1/threads']";
    click(&browser, &format!("{op} > summary")).await;
    wait_text(&browser, &format!("{op} .chip"), "agentJwt").await;
    wait_text(&browser, &format!("{op} .chip"), "apiTokenQuery").await;
    wait_text(&browser, &format!("{op} [data-status='401']"), "ErrorBody").await;
    wait_text(&browser, &format!("{op} code"), "view").await;
    wait_text(
        &browser,
        &format!("{op} [data-curl]"),
        &format!("curl -X GET '{}/api/v1/threads'", server.base),
    )
    .await;
    // A request body's fields, from the struct the handler parses.
    let login = "[data-op='POST /api/v1/auth/login']";
    click(&browser, &format!("{login} > summary")).await;
    wait_text(&browser, &format!("{login} td code"), "password").await;
    wait_text(&browser, &format!("{login} [data-curl]"), "\"email\":").await;
    // The filter leaves the matching operations only.
    type_into(&browser, "#filter", "widget session").await;
    let shown = browser
        .wait_for(
            "only the widget session left",
            "const ops = [...document.querySelectorAll('.op')].filter(o => !o.hidden); \
             return ops.length === 1 && ops[0].dataset.op",
        )
        .await;
    assert_eq!(shown, "POST /api/v1/widget/session");
    browser.close().await;
}

#[tokio::test]
async fn the_integrations_page_links_to_the_reference() {
    let (server, owner) = TestServer::with_owner().await;
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser.goto(&server.url("/app/#/admin/integrations")).await;
    let href = browser
        .wait_for(
            "the API reference link",
            "return document.querySelector('a[data-link=\"api-docs\"]')?.getAttribute('href')",
        )
        .await;
    assert_eq!(href, "/api/docs");
    browser.close().await;
}
