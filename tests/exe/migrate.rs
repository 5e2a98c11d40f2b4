//! `mychat migrate --from-redb`: an appliance's embedded database moves
//! into PostgreSQL with its signing keys and its ACME account and
//! certificate; the copy is verified table by
//! table, running it again finishes (or repeats) it harmlessly, and a
//! database that holds something else is refused.

use std::path::Path;
use std::process::Output;

use crate::harness::{FROM_SITE, Owner, Reply, SITE, TestServer, fixtures, postgres};
use mychat::config::StoreBackend;
use serde_json::json;

fn migrate(url: &str, from: &Path) -> Output {
    let scratch = crate::harness::scratch::temp_dir();
    crate::mychat()
        .args(["migrate", "--data-dir"])
        .arg(scratch.path())
        .arg("--from-redb")
        .arg(from)
        .env("MYCHAT_STORE__BACKEND", "postgres")
        .env("MYCHAT_STORE__URL", url)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A small PNG.
fn png() -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_fn(120, 90, |x, y| image::Rgb([x as u8, y as u8, 40]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

struct Appliance {
    server: TestServer,
    owner: Owner,
    /// A visitor's message, with a picture attached.
    message: String,
    attachment: String,
}

/// An embedded appliance with an owner (with a picture), a space and a
/// visitor's message with an attachment; stopped (its data dir stays).
async fn appliance() -> Appliance {
    let mut server = TestServer::start_with(|c| c.store.backend = StoreBackend::Embedded).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&server, &owner).await;
    let avatar = server
        .client
        .put(server.url(&format!("/api/v1/agents/{}/avatar", owner.agent_id)))
        .bearer_auth(&owner.token)
        .header("content-type", "image/png")
        .body(png())
        .send()
        .await
        .unwrap();
    assert_eq!(avatar.status(), 200);
    let (token, _) =
        fixtures::visitor_session(&server, FROM_SITE, json!({ "key": space.widget_key })).await;
    let boundary = "----mychat-migrate-test";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let up = server
        .client
        .post(server.url("/api/v1/widget/attachments"))
        .header("origin", SITE)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .unwrap();
    let up = Reply::read(up).await;
    let attachment = up.created()["id"].as_str().unwrap().to_owned();
    let sent = fixtures::visitor_posts(
        &server,
        &token,
        json!({ "content": "Is my order on its way?", "clientMsgId": "c1", "attachmentIds": [attachment] }),
    )
    .await;
    let message = sent.created()["message"]["id"].as_str().unwrap().to_owned();
    server.stop().await;
    Appliance {
        server,
        owner,
        message,
        attachment,
    }
}

#[tokio::test]
async fn an_appliance_moves_into_postgres_and_its_sessions_stay_good() {
    let old = appliance().await;
    let url = postgres::fresh_database().await;
    // What ACME kept for the appliance; every node will serve it.
    let acme = mychat::tls::acme::storage::dir(&old.server.data_dir());
    std::fs::create_dir_all(&acme).unwrap();
    let documents = [
        ("account.json", "{\"directory\":\"https://ca.test/dir\"}"),
        ("certificate.pem", "-----BEGIN PRIVATE KEY-----\n"),
        (
            "certificate.json",
            "{\"directory\":\"https://ca.test/dir\"}",
        ),
    ];
    for (name, text) in documents {
        std::fs::write(acme.join(name), text).unwrap();
    }

    let out = migrate(&url, &old.server.data_dir());
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("every table's count verified"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("messages: 1"), "{}", text(&out));
    // The attachment, its thumbnail, the picture and ACME's three.
    assert!(text(&out).contains("and 6 files"), "{}", text(&out));
    // Again: the same entries written again, the counts still match.
    let again = migrate(&url, &old.server.data_dir());
    assert!(again.status.success(), "{}", text(&again));

    // A node on PostgreSQL, with a data dir of its own, serves what the
    // appliance held, and the token the appliance signed is good there.
    let node = TestServer::start_with(|c| {
        c.store.backend = StoreBackend::Postgres;
        c.store.url = url.clone();
    })
    .await;
    let token = &old.owner.token;
    let me = node.get("/api/v1/auth/me", token).await;
    assert!(me.body.to_string().contains("ann@acme.test"), "{}", me.body);
    let threads = node.get("/api/v1/threads", token).await;
    let thread = threads.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    let messages = node.all_messages(token, &thread).await;
    assert!(
        messages.iter().any(|m| m["id"] == old.message.as_str()),
        "{messages:?}"
    );
    let file = node
        .client
        .get(node.url(&format!("/api/v1/attachments/{}", old.attachment)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.bytes().await.unwrap().to_vec(), png());
    let picture = node
        .client
        .get(node.url(&format!("/api/v1/widget/avatars/{}", old.owner.agent_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(picture.status(), 200);
    for (name, text) in documents {
        let store = node.app_state.store.clone();
        let key = mychat::tls::acme::storage::blob_key(name);
        let kept = tokio::task::spawn_blocking(move || store.get_blob(&key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.as_deref(), Some(text.as_bytes()), "{name}");
    }
}

#[tokio::test]
async fn a_database_that_holds_another_appliance_is_refused() {
    let first = appliance().await;
    let second = appliance().await;
    let url = postgres::fresh_database().await;
    let out = migrate(&url, &first.server.data_dir());
    assert!(out.status.success(), "{}", text(&out));
    let out = migrate(&url, &second.server.data_dir());
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("migrate into an empty database"),
        "{}",
        text(&out)
    );
}
