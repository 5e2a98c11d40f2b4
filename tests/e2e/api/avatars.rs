//! Agents' pictures: sniffed, size-limited, made a small square PNG, set
//! by the agent or an admin of its organization, and shown to any site's
//! widget from a versioned URL.

use crate::harness::fixtures;
use crate::harness::{Reply, TestServer};
use mychat::accounts::model::Role;
use reqwest::StatusCode;
use serde_json::json;

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x % 256) as u8, 120, 200]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn put(server: &TestServer, agent: &str, token: &str, bytes: Vec<u8>, kind: &str) -> Reply {
    let r = server
        .client
        .put(server.url(&format!("/api/v1/agents/{agent}/avatar")))
        .bearer_auth(token)
        .header("content-type", kind)
        .body(bytes)
        .send()
        .await
        .unwrap();
    Reply::read(r).await
}

#[tokio::test]
async fn an_agent_sets_a_picture_that_any_widget_can_show() {
    let (server, owner) = TestServer::with_owner().await;
    let pia = fixtures::agent(&server, &owner, "Pia", Role::Agent).await;
    let space = fixtures::space(&server, &owner).await;

    let r = put(&server, &pia.id, &pia.token, png(400, 300), "image/png").await;
    let version = r.ok()["avatar"].as_str().expect("a version").to_owned();

    // Public, typed, never sniffed by the browser, kept a year under its version.
    let url = server.url(&format!("/api/v1/widget/avatars/{}?v={version}", pia.id));
    let got = server.client.get(&url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    let h = got.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["access-control-allow-origin"], "*");
    let bytes = got.bytes().await.unwrap();
    let picture = image::load_from_memory(&bytes).unwrap();
    assert_eq!((picture.width(), picture.height()), (96, 96));

    // The widget's header names it.
    server
        .patch(
            &format!("/api/v1/chat-spaces/{}", space.id),
            &owner.token,
            json!({"settings": {"headerAgents": [pia.id]}}),
        )
        .await
        .ok();
    let config = server
        .call_with(
            reqwest::Method::GET,
            &format!("/api/v1/widget/config?key={}", space.widget_key),
            None,
            None,
            &[("origin", "https://site.test")],
        )
        .await;
    assert_eq!(config.ok()["agents"][0]["avatar"], version.as_str());

    // Not an image, an image in disguise, too large: refused, nothing changes.
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let r = put(&server, &pia.id, &pia.token, svg, "image/svg+xml").await;
    assert_eq!(r.err(415), "unsupported_media_type");
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let r = put(&server, &pia.id, &pia.token, html, "image/png").await;
    assert_eq!(r.err(415), "unsupported_media_type");
    let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
    fake.extend_from_slice(&[7u8; 64]);
    let r = put(&server, &pia.id, &pia.token, fake, "image/png").await;
    assert_eq!(r.err(422), "unprocessable");
    let r = put(
        &server,
        &pia.id,
        &pia.token,
        vec![0u8; 2 * 1024 * 1024 + 1],
        "image/png",
    )
    .await;
    assert_eq!(r.status, 413);
    let me = server
        .get(&format!("/api/v1/agents/{}", pia.id), &pia.token)
        .await;
    assert_eq!(me.ok()["avatar"], version.as_str());

    // Another agent may not change it; another organization does not see it.
    let tom = fixtures::agent(&server, &owner, "Tom", Role::Agent).await;
    let r = put(&server, &pia.id, &tom.token, png(10, 10), "image/png").await;
    assert_eq!(r.err(404), "not_found");
    let other = server.register("Other", "olga@other.test").await;
    let r = put(&server, &pia.id, &other.token, png(10, 10), "image/png").await;
    assert_eq!(r.err(404), "not_found");
    // An admin of the organization may.
    let r = put(&server, &pia.id, &owner.token, png(50, 50), "image/png").await;
    assert_ne!(r.ok()["avatar"], version.as_str());

    // Removed: gone for the widget too.
    let r = server
        .delete(&format!("/api/v1/agents/{}/avatar", pia.id), &pia.token)
        .await;
    assert_eq!(r.ok()["avatar"], serde_json::Value::Null);
    let gone = server
        .client
        .get(server.url(&format!("/api/v1/widget/avatars/{}", pia.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

/// With several nodes, a picture set through one is shown by every other,
/// and removed from all.
#[tokio::test]
async fn a_picture_set_on_one_node_is_shown_by_another() {
    let mut nodes = TestServer::cluster(2, |_| {}).await;
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    let owner = a.register("Acme", "ann@acme.test").await;
    let picture = png(200, 200);
    let r = put(&a, &owner.agent_id, &owner.token, picture, "image/png").await;
    let version = r.ok()["avatar"].as_str().expect("a version").to_owned();
    let url = b.url(&format!(
        "/api/v1/widget/avatars/{}?v={version}",
        owner.agent_id
    ));
    let got = b.client.get(&url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    let png_bytes = got.bytes().await.unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    a.delete(
        &format!("/api/v1/agents/{}/avatar", owner.agent_id),
        &owner.token,
    )
    .await
    .ok();
    let gone = b.client.get(&url).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}
