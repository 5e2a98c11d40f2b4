//! A space's title and welcome message in the visitor's language, falling
//! back to the space's own when a language has none.

use super::widget::site;
use crate::harness::TestServer;
use crate::harness::browser::{Browser, ROOT, chat_only, open_widget, shown};
use mychat::spaces::model::{SpaceSettings, SpaceWords};
use serde_json::json;

/// Script: the panel's title and welcome message.
fn words() -> String {
    format!(
        "const r = {ROOT}; return [r.querySelector('h2').textContent, r.querySelector('.welcome .bubble')?.textContent]"
    )
}

async fn shows(browser: &Browser, title: &str, welcome: &str) {
    browser
        .wait_for(
            &format!("{title:?} and {welcome:?}"),
            &format!(
                "const r = {ROOT}; return r.querySelector('h2')?.textContent === {title:?} && \
                 r.querySelector('.welcome .bubble')?.textContent === {welcome:?}"
            ),
        )
        .await;
}

#[tokio::test]
async fn title_and_welcome_follow_the_visitors_language() {
    let (server, owner) = TestServer::with_owner().await;
    let mut settings = SpaceSettings {
        title: "Help".into(),
        welcome_message: "Hi! How can we help?".into(),
        ..chat_only()
    };
    settings.translations.insert(
        "pl".into(),
        SpaceWords {
            title: "Pomoc".into(),
            welcome_message: "Cześć! W czym pomóc?".into(),
        },
    );
    // Only a title: the welcome falls back to the space's own.
    settings.translations.insert(
        "ru".into(),
        SpaceWords {
            title: "Помощь".into(),
            welcome_message: String::new(),
        },
    );
    // The page asks for Polish before the widget is there.
    let head = "<script>window.MyChat = function () { (MyChat.q = MyChat.q || []).push(arguments); }; MyChat('setLocale', 'pl');</script>";
    let (_, site) = site(&server, &owner, settings, head).await;
    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    browser.wait_for("the panel", &shown(".panel")).await;
    assert_eq!(
        browser.js(&words()).await,
        json!(["Pomoc", "Cześć! W czym pomóc?"])
    );

    browser.js("MyChat.setLocale('ru'); return true").await;
    shows(&browser, "Помощь", "Hi! How can we help?").await;
    // English has no translation: the space's own words.
    browser.js("MyChat.setLocale('en'); return true").await;
    shows(&browser, "Help", "Hi! How can we help?").await;
    assert_eq!(
        browser
            .js(&format!(
                "return {ROOT}.querySelectorAll('.welcome').length"
            ))
            .await,
        json!(1),
        "one welcome, in the language of the moment"
    );
    browser.close().await;
}

#[tokio::test]
async fn admins_give_a_title_and_welcome_per_language_in_the_space_settings() {
    use crate::harness::browser::{click, open_app, type_into};
    use crate::harness::{WAIT, eventually};
    let (server, owner) = TestServer::with_owner().await;
    let space = crate::harness::fixtures::space(&server, &owner).await;
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser
        .goto(&server.url(&format!("/app/#/admin/spaces/{}", space.id)))
        .await;
    type_into(&browser, "input[name=tr-title-pl]", "Pomoc").await;
    type_into(&browser, "textarea[name=tr-welcome-pl]", "Cześć!").await;
    click(&browser, "[data-action=save-space]").await;
    let path = format!("/api/v1/chat-spaces/{}", space.id);
    eventually(WAIT, "the Polish words stored", || async {
        let r = server.get(&path, &owner.token).await;
        (r.ok()["settings"]["translations"]
            == json!({"pl": {"title": "Pomoc", "welcomeMessage": "Cześć!"}}))
        .then_some(())
    })
    .await;
    browser.close().await;
}
