//! The screenshots in `docs/screenshots/`: the widget and the agent app at
//! desktop and phone sizes, taken from a real server and browser. Run by
//! hand when the screens change:
//! `cargo test --test e2e screenshots -- --ignored`.

use crate::harness::browser::{
    Browser, ROOT, chat_only, open_app, open_widget, shown, widget_site,
};
use crate::harness::{TestServer, fixtures};
use mychat::accounts::model::Role;
use serde_json::json;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Northwind Bikes</title>
<style>
  body { margin: 0; font: 16px/1.6 system-ui, sans-serif; color: #1f2937; background: #f8fafc; }
  header { padding: 18px 24px; background: #0f172a; color: #fff; font-weight: 700; }
  main { max-width: 40rem; padding: 24px; }
</style></head>
<body><header>Northwind Bikes</header>
<main><h1>City bikes, delivered</h1>
<p>Every bike is assembled, tuned and delivered to your door. Questions about
sizes, delivery or service? Ask us in the chat.</p></main>
<script src="BASE/widget.js" data-widget-key="KEY" async></script>
</body></html>"#;

fn save(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test]
#[ignore = "writes docs/screenshots; run by hand"]
async fn screenshots_of_the_main_screens() {
    let (server, owner) = TestServer::with_owner().await;
    let settings = mychat::spaces::model::SpaceSettings {
        title: "Northwind Bikes".into(),
        welcome_message: "Hi! Ask us anything about our bikes.".into(),
        ..chat_only()
    };
    let (space, site) = widget_site(&server, &owner, settings, |space| {
        PAGE.replace("BASE", &server.base)
            .replace("KEY", &space.widget_key)
    })
    .await;
    let bea = fixtures::agent(&server, &owner, "Bea", Role::Admin).await;

    // A conversation: the visitor asks, Bea answers, with a note between.
    let (visitor, _) = fixtures::visitor_session(
        &server,
        &[],
        json!({"key": space.widget_key, "url": format!("{site}/")}),
    )
    .await;
    let say = |text: &'static str| {
        let server = &server;
        let visitor = visitor.clone();
        async move {
            server
                .post(
                    "/api/v1/widget/messages",
                    &visitor,
                    json!({"content": text, "clientMsgId": uuid::Uuid::new_v4().to_string()}),
                )
                .await
                .ok()["message"]["threadId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let thread = say("Hello! Is the Oslo 3 available in size M?").await;
    fixtures::agent_message(
        &server,
        &bea.token,
        &thread,
        "Hi! Yes, we have two in stock. Would you like one delivered?",
        false,
    )
    .await;
    fixtures::agent_message(
        &server,
        &bea.token,
        &thread,
        "Returning customer: offer the service plan.",
        true,
    )
    .await;
    say("Yes please, to Oslo centre. How long does it take?").await;
    fixtures::agent_message(
        &server,
        &bea.token,
        &thread,
        "Two working days, see https://example.com/delivery for the details.",
        false,
    )
    .await;
    for text in ["Do you repair e-bikes?", "Can I change my order?"] {
        let (other, _) =
            fixtures::visitor_session(&server, &[], json!({"key": space.widget_key})).await;
        server
            .post(
                "/api/v1/widget/messages",
                &other,
                json!({"content": text, "clientMsgId": uuid::Uuid::new_v4().to_string()}),
            )
            .await
            .ok();
    }

    for (size, width, height) in [("desktop", 1280, 800), ("phone", 390, 844)] {
        let browser = Browser::start_sized(width, height).await;
        // The widget: the visitor's side of the conversation.
        browser.goto(&site).await;
        browser
            .js(&format!(
                "localStorage.setItem('mychat:{}', JSON.stringify({{token: {}, queue: []}})); return true;",
                space.widget_key,
                serde_json::to_string(&visitor).unwrap()
            ))
            .await;
        open_widget(&browser, &site).await;
        browser
            .wait_for(
                "the conversation in the widget",
                &format!("return {ROOT}.querySelectorAll('.msg.in').length >= 2"),
            )
            .await;
        browser.wait_for("the panel", &shown(".panel")).await;
        save(
            &format!("widget-{size}.png"),
            &browser.client.screenshot().await.unwrap(),
        );

        // The agent app: Bea's inbox with the conversation open.
        open_app(&server, &browser, &bea.token, &bea.refresh).await;
        browser
            .goto(&server.url(&format!("/app/#/inbox/mine/{thread}")))
            .await;
        browser
            .wait_for(
                "the conversation in the app",
                "return document.querySelectorAll('.conv .msg').length >= 5",
            )
            .await;
        save(
            &format!("app-{size}.png"),
            &browser.client.screenshot().await.unwrap(),
        );
        browser.close().await;
    }
}
