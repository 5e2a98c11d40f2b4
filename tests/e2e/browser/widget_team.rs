//! The team in the widget's header: up to three agents with their
//! initials and names, chosen by the space or its agents, those online
//! first; an agent's messages carry their initials and name.

use super::widget::{agent_online, site, the_thread, wait_message};
use crate::harness::browser::{Browser, ROOT, chat_only, open_widget, type_in_widget};
use crate::harness::fixtures;
use crate::harness::{Owner, TestServer};
use mychat::accounts::model::Role;
use serde_json::json;

/// Script: the header's faces as [initials, name, online].
fn faces() -> String {
    format!(
        "return [...{ROOT}.querySelectorAll('header .team .face')].map(f => \
         [f.querySelector('.av').dataset.i, f.querySelector('small').textContent, f.classList.contains('live')])"
    )
}

/// An agent with a display name of two words.
async fn agent(server: &TestServer, owner: &Owner, login: &str, name: &str) -> fixtures::Agent {
    let agent = fixtures::agent(server, owner, login, Role::Agent).await;
    let path = format!("/api/v1/agents/{}", agent.id);
    server
        .patch(&path, &owner.token, json!({"displayName": name}))
        .await
        .ok();
    agent
}

async fn the_team_in_the_header(width: u32, height: u32) {
    let (server, owner) = TestServer::with_owner().await;
    let ann = agent(&server, &owner, "ann", "Ann Lee").await;
    let bob = agent(&server, &owner, "bob", "Bob").await;
    agent(&server, &owner, "cy", "Cy Young").await;
    agent(&server, &owner, "dee", "Dee").await;
    let (space, site) = site(&server, &owner, chat_only(), "").await;
    // Ann is online: she comes first; then the others by name, three in all.
    let _ann_online = agent_online(&server, &ann.token, &space).await;
    let browser = Browser::start_sized(width, height).await;
    open_widget(&browser, &site).await;
    let shown = browser.wait_for("the team", &faces()).await;
    assert_eq!(shown[0], json!(["AL", "Ann Lee", true]));
    assert_eq!(shown.as_array().unwrap().len(), 3, "{shown}");
    // The faces fit the header beside the title.
    let fits = browser
        .js(&format!(
            "const h = {ROOT}.querySelector('header').getBoundingClientRect(); \
             return [...{ROOT}.querySelectorAll('header .face, header h2, header .x')].every(e => {{ \
             const r = e.getBoundingClientRect(); return r.left >= h.left && r.right <= h.right && r.width > 0; }})"
        ))
        .await;
    assert_eq!(fits, json!(true));

    // The space names its own: Bob, then Ann.
    let path = format!("/api/v1/chat-spaces/{}", space.id);
    server
        .patch(
            &path,
            &owner.token,
            json!({"settings": {"headerAgents": [bob.id, ann.id]}}),
        )
        .await
        .ok();
    browser.goto(&site).await;
    browser
        .wait_for(
            "Bob and Ann",
            &format!(
                "return JSON.stringify((() => {{ {} }})()) === {:?}",
                faces(),
                json!([["B", "Bob", false], ["AL", "Ann Lee", true]]).to_string()
            ),
        )
        .await;

    // A reply carries its agent's initials and name.
    type_in_widget(&browser, ".compose textarea", "Hello?\u{E007}").await;
    wait_message(&browser, "Hello?", "sent").await;
    let thread = the_thread(&server, &owner).await;
    let id = thread["id"].as_str().unwrap();
    let reply = fixtures::agent_message(&server, &ann.token, id, "Hi, Ann here", false).await;
    assert!(!reply.is_empty());
    wait_message(&browser, "Hi, Ann here", "").await;
    let who = browser
        .js(&format!(
            "const m = [...{ROOT}.querySelectorAll('.log .msg.in')].find(m => m.querySelector('.bubble').textContent === 'Hi, Ann here'); \
             return [m.querySelector('.who .av').dataset.i, m.querySelector('.who').textContent]"
        ))
        .await;
    assert_eq!(who, json!(["AL", "Ann Lee"]));
    browser.close().await;
}

#[tokio::test]
async fn the_header_shows_the_team_and_replies_carry_their_agent() {
    the_team_in_the_header(1280, 900).await;
}

#[tokio::test]
async fn the_team_fits_a_phones_header() {
    the_team_in_the_header(390, 844).await;
}

#[tokio::test]
async fn admins_choose_the_team_the_header_shows() {
    use crate::harness::browser::{click, js_str, open_app};
    use crate::harness::{WAIT, eventually};
    let (server, owner) = TestServer::with_owner().await;
    let bob = agent(&server, &owner, "bob", "Bob").await;
    let space = fixtures::space(&server, &owner).await;
    let browser = Browser::start().await;
    open_app(&server, &browser, &owner.token, &owner.refresh).await;
    browser
        .goto(&server.url(&format!("/app/#/admin/spaces/{}", space.id)))
        .await;
    // "Auto" is on until the admin picks the agents.
    click(&browser, "input[name=teamAuto]").await;
    browser
        .wait_for(
            "Bob offered and chosen",
            &format!(
                "const s = document.querySelector('select[name=team1]'); if (!s || s.disabled || ![...s.options].some(o => o.value === {v})) return false; \
                 s.value = {v}; s.dispatchEvent(new Event('change', {{ bubbles: true }})); return true;",
                v = js_str(&bob.id)
            ),
        )
        .await;
    click(&browser, "[data-action=save-space]").await;
    let path = format!("/api/v1/chat-spaces/{}", space.id);
    eventually(WAIT, "the chosen team stored", || async {
        let r = server.get(&path, &owner.token).await;
        (r.ok()["settings"]["headerAgents"] == json!([bob.id])).then_some(())
    })
    .await;
    browser.close().await;
}

#[tokio::test]
async fn an_agent_sets_a_picture_on_its_profile_and_visitors_see_it() {
    use crate::harness::browser::{click, open_app};
    use fantoccini::Locator;
    let (server, owner) = TestServer::with_owner().await;
    let pia = agent(&server, &owner, "pia", "Pia Nowak").await;
    let (space, site) = site(&server, &owner, chat_only(), "").await;
    server
        .patch(
            &format!("/api/v1/chat-spaces/{}", space.id),
            &owner.token,
            json!({"settings": {"headerAgents": [pia.id]}}),
        )
        .await
        .ok();
    let dir = crate::harness::scratch::temp_dir();
    let photo = dir.path().join("me.jpg");
    image::RgbImage::from_fn(120, 80, |x, y| image::Rgb([x as u8, y as u8, 90]))
        .save(&photo)
        .unwrap();

    let app = Browser::start().await;
    open_app(&server, &app, &pia.token, &pia.refresh).await;
    click(&app, "a.me").await;
    app.client
        .wait()
        .for_element(Locator::Css("form[data-form=profile-avatar] input[name=avatar], [data-form=profile-avatar] input[name=avatar]"))
        .await
        .unwrap()
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    app.wait_for(
        "the picture shown on the profile",
        "const i = document.querySelector('.avatar-preview'); return !!i && !i.hidden && i.complete && i.naturalWidth === 96",
    )
    .await;

    let browser = Browser::start().await;
    open_widget(&browser, &site).await;
    browser
        .wait_for(
            "Pia's picture in the header",
            &format!(
                "const i = {ROOT}.querySelector('header .face .av img'); return !!i && i.complete && i.naturalWidth === 96"
            ),
        )
        .await;
    // Removed on the profile: the widget shows initials again.
    click(&app, "[data-action=remove-avatar]").await;
    app.wait_for(
        "the picture gone",
        "return document.querySelector('.avatar-preview').hidden",
    )
    .await;
    browser.goto(&site).await;
    let initials = browser
        .wait_for(
            "initials",
            &format!(
                "const f = {ROOT}?.querySelector('header .face .av'); return f && !f.querySelector('img') && f.dataset.i"
            ),
        )
        .await;
    assert_eq!(initials, json!("PN"));
    app.close().await;
    browser.close().await;
}
