//! Verified visitors in the agent app (headless Chromium): the list row,
//! the conversation and the visitor panel mark a visitor the site verified,
//! and the panel lists the site's custom attributes as text.

use crate::harness::TestServer;
use crate::harness::browser::{Browser, js_str, open_app, open_thread, wait_row, wait_text};
use crate::harness::fixtures::{self, space_with};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mychat::spaces::model::{IdentityVerification, SpaceSettings};
use serde_json::json;

#[tokio::test]
async fn the_visitor_panel_shows_the_verified_badge_and_the_attributes() {
    let (server, owner) = TestServer::with_owner().await;
    let settings = SpaceSettings {
        identity_verification: IdentityVerification::Optional,
        ..SpaceSettings::default()
    };
    let space = space_with(&server, &owner, "Shop", &["site.test"], settings).await;
    let key = server
        .post(
            "/api/v1/signing-keys",
            &owner.token,
            json!({"name": "shop"}),
        )
        .await;
    let key = key.created();
    let now = Utc::now().timestamp();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = key["id"].as_str().map(str::to_owned);
    let identity = jsonwebtoken::encode(
        &header,
        &json!({"sub": "CRM-7", "name": "Ewa Nowak", "iat": now, "exp": now + 600}),
        &EncodingKey::from_secret(key["secret"].as_str().unwrap().as_bytes()),
    )
    .unwrap();

    let (token, _) =
        fixtures::visitor_session(&server, &[], json!({"key": space.widget_key})).await;
    server
        .post(
            "/api/v1/widget/identify",
            &token,
            json!({"token": identity}),
        )
        .await
        .ok();
    server
        .patch(
            "/api/v1/widget/visitor",
            &token,
            json!({"attributes": {"plan": "<b>enterprise</b>", "seats": 40}}),
        )
        .await
        .ok();
    let r = fixtures::visitor_posts(
        &server,
        &token,
        json!({"content": "Where is my order?", "clientMsgId": "c1"}),
    )
    .await;
    let thread = r.created()["message"]["threadId"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    wait_row(&browser, "Where is my order?").await;
    let row = format!(".row[data-id=\"{thread}\"] .row__verified");
    let marked = browser
        .js(&format!(
            "return document.querySelector({}) !== null",
            js_str(&row)
        ))
        .await;
    assert_eq!(marked, true, "the list row marks the verified visitor");
    open_thread(&browser, &thread).await;
    wait_text(&browser, ".conv__name .badge--verified", "Verified").await;
    wait_text(&browser, ".visitor__head .badge--verified", "Verified").await;
    let title = browser
        .js("return document.querySelector('.visitor__head .badge--verified').title")
        .await;
    assert!(title.as_str().unwrap().contains("CRM-7"), "{title}");
    wait_text(&browser, ".facts", "CRM-7").await;
    wait_text(&browser, ".visitor__attributes", "<b>enterprise</b>").await;
    wait_text(&browser, ".visitor__attributes", "seats").await;
    wait_text(&browser, ".visitor__attributes", "40").await;
    // The value is text: no element came from it.
    let bold = browser
        .js("return document.querySelectorAll('.visitor__attributes b').length")
        .await;
    assert_eq!(bold, 0);
    browser.close().await;
}
