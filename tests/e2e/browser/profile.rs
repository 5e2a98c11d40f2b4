//! The agent's own page in a real browser: name, password, the away
//! switch (which the widget's presence follows) and notifications.

use super::inbox::click;
use super::inbox::type_into;
use crate::harness::browser::{Browser, ROOT, open_app, open_widget, shown};
use crate::harness::fixtures;
use crate::harness::{TestServer, WAIT, eventually};
use mychat::spaces::model::SpaceSettings;

#[tokio::test]
async fn an_agent_renames_itself_and_changes_its_password_on_its_profile_page() {
    let (server, owner) = TestServer::with_owner().await;
    let bea = fixtures::agent(&server, &owner, "Bea", mychat::accounts::model::Role::Agent).await;
    let browser = Browser::start_sized(390, 844).await;
    open_app(&server, &browser, &bea.token, &bea.refresh).await;
    click(&browser, "a.me").await;
    browser
        .wait_for(
            "the profile page",
            "return document.body.dataset.screen === 'profile'",
        )
        .await;

    // The new name is the one the app, colleagues and visitors see.
    browser
        .js("document.querySelector('form[data-form=profile-name] input[name=displayName]').value = ''; return true;")
        .await;
    type_into(
        &browser,
        "form[data-form=profile-name] input[name=displayName]",
        "Beatrice",
    )
    .await;
    click(&browser, "form[data-form=profile-name] button[type=submit]").await;
    browser
        .wait_for(
            "the new name in the top bar",
            "return document.querySelector('.topbar .me').textContent === 'Beatrice'",
        )
        .await;
    let me = server.get("/api/v1/auth/me", &bea.token).await;
    assert_eq!(me.ok()["agent"]["displayName"], "Beatrice");

    // A wrong current password is refused; the right one changes it.
    let form = "form[data-form=profile-password]";
    type_into(
        &browser,
        &format!("{form} input[name=currentPassword]"),
        "not my password",
    )
    .await;
    type_into(
        &browser,
        &format!("{form} input[name=newPassword]"),
        "a new password 2",
    )
    .await;
    click(&browser, &format!("{form} button[type=submit]")).await;
    browser
        .wait_for(
            "the refusal",
            &format!("return document.querySelector('{form} .form-status--error') !== null"),
        )
        .await;
    browser
        .js(&format!(
            "document.querySelector('{form} input[name=currentPassword]').value = ''; return true;"
        ))
        .await;
    type_into(
        &browser,
        &format!("{form} input[name=currentPassword]"),
        "agent password 1",
    )
    .await;
    click(&browser, &format!("{form} button[type=submit]")).await;
    browser
        .wait_for(
            "the change",
            &format!("return document.querySelector('{form} .form-status--ok')?.textContent === 'Password changed.'"),
        )
        .await;
    let email = me.ok()["agent"]["email"].as_str().unwrap().to_owned();
    assert_eq!(server.login(&email, "a new password 2").await.status, 200);
    // This browser stays signed in with its fresh tokens.
    browser.goto(&server.url("/app/#/inbox/available")).await;
    crate::harness::browser::wait_live(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn an_agent_switching_away_on_its_profile_is_offline_for_the_widget() {
    let (server, owner) = TestServer::with_owner().await;
    let (_, site) = super::widget::site(&server, &owner, SpaceSettings::default(), "").await;
    // The agent's app, connected.
    let app = Browser::start().await;
    open_app(&server, &app, &owner.token, &owner.refresh).await;
    // The visitor sees someone online.
    let widget = Browser::start_sized(390, 844).await;
    open_widget(&widget, &site).await;
    let status = format!("return {ROOT}.querySelector('.status').textContent");
    widget
        .wait_for("online", &format!("{status} === 'We are online'"))
        .await;

    // Away: still connected, but the widget says so and offers the form.
    app.goto(&server.url("/app/#/profile")).await;
    click(&app, "[data-form=profile-away] input[name=away]").await;
    widget
        .wait_for("away", &format!("{status} === 'We reply by email'"))
        .await;
    widget
        .wait_for("the offline form", &shown("form.offline"))
        .await;
    app.wait_for(
        "the away mark in the app",
        "return document.querySelector('[data-form=profile-away] .form-status--ok')?.textContent === 'You are away.'",
    )
    .await;
    let me = server.get("/api/v1/auth/me", &owner.token).await;
    assert_eq!(me.ok()["agent"]["away"], true);

    // Back: online again, live.
    click(&app, "[data-form=profile-away] input[name=away]").await;
    widget
        .wait_for("online again", &format!("{status} === 'We are online'"))
        .await;
    app.close().await;
    widget.close().await;
}

#[tokio::test]
async fn the_profile_page_holds_the_notification_settings_too() {
    let (server, owner) = TestServer::with_owner().await;
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser.goto(&server.url("/app/#/profile")).await;
    browser
        .wait_for(
            "the settings on the page",
            "return document.querySelector('.profile .prefs--card select[name=scope]') !== null",
        )
        .await;
    browser
        .js("const s = document.querySelector('.profile .prefs--card select[name=scope]'); s.value = 'assigned'; return true;")
        .await;
    click(&browser, ".profile .prefs--card button[type=submit]").await;
    eventually(WAIT, "the settings stored", || async {
        let me = server.get("/api/v1/auth/me", &owner.token).await;
        (me.ok()["agent"]["notify"]["scope"] == "assigned").then_some(())
    })
    .await;
    browser.close().await;
}
