//! The help-desk parts of the agent app in a real browser: labels put on
//! with the keyboard and the inbox filtered by them, contact notes and a
//! new conversation from the visitor panel, and a space's assignment
//! settings and an agent's capacity on the admin pages.

use crate::harness::browser::{
    Browser, click, js_str, open_app, open_thread, press, type_into, wait_row, wait_text,
};
use crate::harness::fixtures::{self, label, space, visitor, visitor_says};
use crate::harness::{TestServer, WAIT, eventually};
use fantoccini::Locator;
use fantoccini::key::Key;
use mychat::accounts::model::Role;
use serde_json::{Value, json};

/// Sets a `<select>` the way a person's choice does.
async fn choose(browser: &Browser, selector: &str, value: &str) {
    browser
        .wait_for(
            &format!("{selector} to offer {value}"),
            &format!(
                "const s = document.querySelector({}); if (!s || ![...s.options].some(o => o.value === {v})) return false; s.value = {v}; s.dispatchEvent(new Event('change', {{ bubbles: true }})); return true;",
                js_str(selector),
                v = js_str(value)
            ),
        )
        .await;
}

#[tokio::test]
async fn labels_go_on_with_the_keyboard_and_filter_the_inbox() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let billing = label(&server, &owner.token, "Billing", "#dc2626").await;
    label(&server, &owner.token, "Bug", "#2563eb").await;
    let a = visitor(&server, &space).await;
    let b = visitor(&server, &space).await;
    let invoice = visitor_says(&server, &a, "invoice wrong")
        .await
        .thread
        .id
        .to_string();
    visitor_says(&server, &b, "button broken").await;
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    wait_row(&browser, "invoice wrong").await;
    wait_row(&browser, "button broken").await;
    open_thread(&browser, &invoice).await;

    // l opens the picker; typing narrows it; Enter puts the label on.
    press(&browser, 'l').await;
    browser
        .wait_for(
            "the label picker",
            "const p = document.querySelector('.label-picker__panel'); return !!p && !p.hidden && document.activeElement === p.querySelector('input');",
        )
        .await;
    type_into(&browser, ".label-picker__panel input", "bil").await;
    type_into(
        &browser,
        ".label-picker__panel input",
        &Key::Enter.to_string(),
    )
    .await;
    let path = format!("/api/v1/threads/{invoice}");
    eventually(WAIT, "the label on the thread", || async {
        let r = server.get(&path, &owner.token).await;
        (r.ok()["labels"] == json!([billing])).then_some(())
    })
    .await;
    wait_text(&browser, ".thread-tags__chips .label-chip", "Billing").await;
    wait_text(&browser, ".thread-list .row .label-chip", "Billing").await;
    // Escape closes it and leaves the label on.
    type_into(
        &browser,
        ".label-picker__panel input",
        &Key::Escape.to_string(),
    )
    .await;
    browser
        .wait_for(
            "the picker to close",
            "return document.querySelector('.label-picker__panel').hidden",
        )
        .await;

    // The priority menu.
    choose(&browser, "select[data-action=priority]", "urgent").await;
    eventually(WAIT, "the priority", || async {
        let r = server.get(&path, &owner.token).await;
        (r.ok()["priority"] == "urgent").then_some(())
    })
    .await;

    // Filtering the list by the label leaves only the labelled thread.
    choose(&browser, "select[name=label]", &billing).await;
    browser
        .wait_for(
            "only the labelled thread",
            "const rows = [...document.querySelectorAll('.thread-list .row')]; return rows.length === 1 && rows[0].textContent.includes('invoice wrong');",
        )
        .await;
    choose(&browser, "select[name=label]", "").await;
    wait_row(&browser, "button broken").await;
    browser.close().await;
}

#[tokio::test]
async fn the_visitor_panel_keeps_notes_and_starts_a_new_conversation() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let v = visitor(&server, &space).await;
    let old = visitor_says(&server, &v, "where is my parcel")
        .await
        .thread
        .id
        .to_string();
    server
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/threads/{old}/close"),
            Some(&owner.token),
            None,
        )
        .await
        .ok();
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser
        .goto(&server.url(&format!("/app/#/inbox/closed/{old}")))
        .await;
    type_into(
        &browser,
        "textarea[name=notes]",
        "Ships to Gdańsk; <b>VIP</b>",
    )
    .await;
    click(&browser, "[data-action=save-notes]").await;
    let visitor_path = format!("/api/v1/visitors/{}", v.id);
    eventually(WAIT, "the notes stored", || async {
        let r = server.get(&visitor_path, &owner.token).await;
        (r.ok()["notes"] == "Ships to Gdańsk; <b>VIP</b>").then_some(())
    })
    .await;
    // Kept as text.
    let bold = browser
        .js("return document.querySelectorAll('.contact b').length")
        .await;
    assert_eq!(bold, json!(0));

    // An attribute added by hand.
    type_into(&browser, ".contact__add input[name=attrKey]", "plan").await;
    type_into(&browser, ".contact__add input[name=attrValue]", "gold").await;
    click(&browser, "[data-action=add-attribute]").await;
    wait_text(&browser, ".contact .visitor__attributes", "gold").await;

    // The visitor has no open conversation: start one.
    click(&browser, "[data-action=new-conversation]").await;
    type_into(
        &browser,
        ".contact__start textarea[name=content]",
        "Your parcel left today",
    )
    .await;
    click(&browser, "[data-action=start-conversation]").await;
    let threads = format!("/api/v1/visitors/{}/threads", v.id);
    let fresh: Value = eventually(WAIT, "the new conversation", || async {
        let r = server.get(&threads, &owner.token).await;
        r.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["status"] == "active")
            .cloned()
    })
    .await;
    assert_eq!(fresh["assignedAgentId"], owner.agent_id.as_str());
    assert_eq!(fresh["lastMessage"]["preview"], "Your parcel left today");
    let id = fresh["id"].as_str().unwrap().to_owned();
    browser
        .wait_for(
            "the new conversation open",
            &format!("return location.hash === '#/inbox/mine/{id}'"),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn admins_set_a_spaces_assignment_and_an_agents_capacity() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let pia = fixtures::agent(&server, &owner, "Pia", Role::Agent).await;
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser
        .goto(&server.url(&format!("/app/#/admin/spaces/{}", space.id)))
        .await;
    choose(&browser, "select[name=assignment]", "round-robin").await;
    choose(&browser, "select[name=defaultAssignee]", &pia.id).await;
    type_into(&browser, "input[name=description]", "We reply fast").await;
    click(&browser, "[data-action=save-space]").await;
    let path = format!("/api/v1/chat-spaces/{}", space.id);
    eventually(WAIT, "the assignment settings", || async {
        let r = server.get(&path, &owner.token).await;
        let s = &r.ok()["settings"];
        (s["assignment"] == "round-robin"
            && s["defaultAssignee"] == pia.id.as_str()
            && s["description"] == "We reply fast")
            .then_some(())
    })
    .await;

    browser.goto(&server.url("/app/#/admin/agents")).await;
    let capacity = format!("input[data-capacity='{}']", pia.id);
    browser
        .wait_for(
            "Pia's capacity",
            &format!(
                "const i = document.querySelector({}); if (!i) return false; i.value = '3'; i.dispatchEvent(new Event('change')); return true;",
                js_str(&capacity)
            ),
        )
        .await;
    let pia_path = format!("/api/v1/agents/{}", pia.id);
    eventually(WAIT, "Pia's capacity stored", || async {
        let r = server.get(&pia_path, &owner.token).await;
        (r.ok()["maxConcurrent"] == 3).then_some(())
    })
    .await;
    browser.close().await;
}

#[tokio::test]
async fn an_agent_adds_a_file_to_its_own_message() {
    let (server, owner) = TestServer::with_owner().await;
    let space = space(&server, &owner).await;
    let v = visitor(&server, &space).await;
    let thread = visitor_says(&server, &v, "send the invoice please")
        .await
        .thread
        .id
        .to_string();
    let message =
        fixtures::agent_message(&server, &owner.token, &thread, "Here it is", false).await;
    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("invoice.txt");
    std::fs::write(&file, "total: 42").unwrap();
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser
        .goto(&server.url(&format!("/app/#/inbox/mine/{thread}")))
        .await;
    let input = format!(".msg[data-id='{message}'] [data-action=attach-later] + input[type=file]");
    browser
        .wait_for(
            "the add-files action",
            &format!("return document.querySelector({}) !== null", js_str(&input)),
        )
        .await;
    browser
        .client
        .find(Locator::Css(&input))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    wait_text(
        &browser,
        &format!(".msg[data-id='{message}']"),
        "invoice.txt",
    )
    .await;
    let all = server.all_messages(&owner.token, &thread).await;
    let stored = all.iter().find(|m| m["id"] == message.as_str()).unwrap();
    assert_eq!(stored["attachments"][0]["name"], "invoice.txt");
    browser.close().await;
}
