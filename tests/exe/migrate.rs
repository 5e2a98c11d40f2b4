//! `mychat migrate --from-redb`: an appliance's embedded database moves
//! into PostgreSQL with its signing keys; the copy is verified table by
//! table, running it again finishes (or repeats) it harmlessly, and a
//! database that holds something else is refused.

use std::path::Path;
use std::process::Output;

use crate::harness::{TestServer, fixtures, postgres};
use mychat::config::StoreBackend;

fn migrate(url: &str, from: &Path) -> Output {
    let scratch = tempfile::tempdir().unwrap();
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

/// An embedded appliance with an owner, a space and a visitor's message;
/// stopped. Returns it (its data dir stays) and the owner's token.
async fn appliance() -> (TestServer, String, String) {
    let mut server = TestServer::start_with(|c| c.store.backend = StoreBackend::Embedded).await;
    let owner = server.register("Acme", "ann@acme.test").await;
    let space = fixtures::space(&server, &owner).await;
    let visitor = fixtures::visitor(&server, &space).await;
    let sent = fixtures::visitor_says(&server, &visitor, "Is my order on its way?").await;
    server.stop().await;
    (server, owner.token, sent.message.id.to_string())
}

#[tokio::test]
async fn an_appliance_moves_into_postgres_and_its_sessions_stay_good() {
    let (old, token, message) = appliance().await;
    let url = postgres::fresh_database().await;

    let out = migrate(&url, &old.data_dir());
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("every table's count verified"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("messages: 1"), "{}", text(&out));
    // Again: the same entries written again, the counts still match.
    let again = migrate(&url, &old.data_dir());
    assert!(again.status.success(), "{}", text(&again));

    // A node on PostgreSQL serves what the appliance held, and the token
    // the appliance signed is good there.
    let node = TestServer::start_with(|c| {
        c.store.backend = StoreBackend::Postgres;
        c.store.url = url.clone();
    })
    .await;
    let me = node.get("/api/v1/auth/me", &token).await;
    assert!(me.body.to_string().contains("ann@acme.test"), "{}", me.body);
    let threads = node.get("/api/v1/threads", &token).await;
    let thread = threads.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    let messages = node.all_messages(&token, &thread).await;
    assert!(
        messages.iter().any(|m| m["id"] == message.as_str()),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_database_that_holds_another_appliance_is_refused() {
    let (first, _, _) = appliance().await;
    let (second, _, _) = appliance().await;
    let url = postgres::fresh_database().await;
    let out = migrate(&url, &first.data_dir());
    assert!(out.status.success(), "{}", text(&out));
    let out = migrate(&url, &second.data_dir());
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("migrate into an empty database"),
        "{}",
        text(&out)
    );
}
