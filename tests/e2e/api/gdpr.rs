//! A visitor's data on request: the export holds everything stored about
//! the visitor, and erasure leaves nothing in the store, the files or the
//! search index; another organization's visitor is a 404 and stays.

use crate::harness::fixtures;
use crate::harness::ws;
use crate::harness::{FROM_SITE, Owner, Reply, SITE, TestServer};
use mychat::accounts::model::Role;
use mychat::spaces::model::ChatSpace;
use mychat::store::Reader;
use reqwest::Method;
use serde_json::{Value, json};

struct Talk {
    token: String,
    visitor: String,
    thread: String,
    file: String,
    pending: String,
}

async fn upload(server: &TestServer, token: &str, name: &str, bytes: &[u8]) -> String {
    let boundary = "----mychat-gdpr-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = server
        .client
        .post(server.url("/api/v1/widget/attachments"))
        .header("origin", SITE)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    let r = Reply::read(resp).await;
    r.created()["id"].as_str().unwrap().to_owned()
}

/// A visitor who left a name and email, wrote twice (once with a file),
/// got an answer and a note, and has an upload it never sent.
async fn talk(server: &TestServer, owner: &Owner, space: &ChatSpace) -> Talk {
    let (token, visitor) =
        fixtures::visitor_session(server, FROM_SITE, json!({ "key": space.widget_key })).await;
    server
        .call_with(
            Method::PATCH,
            "/api/v1/widget/visitor",
            Some(&token),
            Some(json!({ "displayName": "Jan Nowak", "email": "jan@nowak.test" })),
            FROM_SITE,
        )
        .await
        .ok();
    let file = upload(server, &token, "invoice.txt", b"invoice 2024/117").await;
    let sent = fixtures::visitor_posts(
        server,
        &token,
        json!({ "content": "my flamingo order", "clientMsgId": "g-1", "attachmentIds": [file] }),
    )
    .await;
    let thread = sent.created()["thread"]["id"].as_str().unwrap().to_owned();
    fixtures::agent_message(server, &owner.token, &thread, "Checking it", false).await;
    fixtures::agent_message(server, &owner.token, &thread, "flamingo VIP", true).await;
    let pending = upload(server, &token, "draft.txt", b"not sent").await;
    Talk {
        token,
        visitor,
        thread,
        file,
        pending,
    }
}

#[tokio::test]
async fn export_holds_everything_stored_about_the_visitor() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let t = talk(&server, &owner, &space).await;

    let r = server
        .get(
            &format!("/api/v1/visitors/{}/export", t.visitor),
            &owner.token,
        )
        .await;
    let export = r.ok();
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("visitor-{}.json", t.visitor))
    );
    assert_eq!(export["visitor"]["id"], t.visitor.as_str());
    assert_eq!(export["visitor"]["displayName"], "Jan Nowak");
    assert_eq!(export["visitor"]["email"], "jan@nowak.test");
    let threads: Vec<&str> = export["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(threads, vec![t.thread.as_str()]);
    let contents: Vec<&str> = export["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    // The thread's history line (the reply claimed it) is stored too.
    assert_eq!(
        contents,
        vec![
            "my flamingo order",
            "Claimed by Acme owner",
            "Checking it",
            "flamingo VIP"
        ]
    );
    let files: Vec<(&str, &str)> = export["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        files,
        vec![
            (t.file.as_str(), "invoice.txt"),
            (t.pending.as_str(), "draft.txt")
        ]
    );
    assert!(export["files"][0]["sha256"].as_str().unwrap().len() == 64);
}

fn gone_from_store(server: &TestServer, t: &Talk) {
    let read = server.app_state.store.read().unwrap();
    assert!(read.visitor(t.visitor.parse().unwrap()).unwrap().is_none());
    assert!(read.thread(t.thread.parse().unwrap()).unwrap().is_none());
    assert!(
        read.messages(t.thread.parse().unwrap(), None, false, usize::MAX)
            .unwrap()
            .is_empty()
    );
    for id in [&t.file, &t.pending] {
        assert!(read.attachment(id.parse().unwrap()).unwrap().is_none());
    }
    assert!(
        read.threads_of_visitor(t.visitor.parse().unwrap())
            .unwrap()
            .is_empty()
    );
}

/// Every stored file under the data dir's attachments folder.
fn stored_files(server: &TestServer) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![server.data_dir().join("attachments")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if !path.ends_with("tmp") {
                    dirs.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn erasure_leaves_nothing_in_store_files_or_search_index() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let t = talk(&server, &owner, &space).await;
    // Someone else's conversation stays.
    let other = fixtures::visitor(&server, &space).await;
    let kept = fixtures::visitor_says(&server, &other, "flamingo too").await;
    let (mut socket, _) = ws::widget(server.addr, &space.widget_key, &t.token).await;
    server.searchable().await;
    let visitor_id = t.visitor.parse().unwrap();
    assert!(server.app_state.search.documents_of_visitor(visitor_id) >= 3);
    assert_eq!(stored_files(&server).len(), 2);

    let r = server
        .delete(&format!("/api/v1/visitors/{}", t.visitor), &owner.token)
        .await;
    assert_eq!(r.ok()["threads"], 1);
    // Three said and one history line (the reply claimed the thread).
    assert_eq!(r.body["messages"], 4);

    gone_from_store(&server, &t);
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
    assert_eq!(server.app_state.search.documents_of_visitor(visitor_id), 0);
    let found = server
        .get("/api/v1/threads?view=all&q=flamingo", &owner.token)
        .await;
    let ids: Vec<&str> = found.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![kept.thread.id.to_string()]);
    // Its widget socket is closed and its session no longer works.
    let (code, _, _) = socket.closed().await;
    assert_eq!(code, 4001);
    let again = server
        .call_with(
            Method::GET,
            "/api/v1/widget/messages",
            Some(&t.token),
            None,
            FROM_SITE,
        )
        .await;
    assert_eq!(again.status, 401, "{}", again.body);
    // Audit-logged, naming the visitor and who erased it.
    let log = server.get("/api/v1/audit-events", &owner.token).await;
    let entry = log.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "visitor.erase")
        .cloned()
        .expect("an audit entry");
    assert_eq!(entry["target"]["id"], t.visitor.as_str());
    assert_eq!(entry["actor"]["id"], owner.agent_id.as_str());
    // Gone: a second erasure and the export are 404s.
    let r = server
        .delete(&format!("/api/v1/visitors/{}", t.visitor), &owner.token)
        .await;
    assert_eq!(r.err(404), "not_found");
    let r = server
        .get(
            &format!("/api/v1/visitors/{}/export", t.visitor),
            &owner.token,
        )
        .await;
    assert_eq!(r.err(404), "not_found");
}

#[tokio::test]
async fn another_organizations_visitor_is_a_404_and_stays() {
    let (server, owner) = TestServer::with_owner().await;
    let space = fixtures::space(&server, &owner).await;
    let t = talk(&server, &owner, &space).await;
    let other = server.register("Other", "other@other.test").await;
    let agent = fixtures::agent(&server, &owner, "Pia", Role::Agent).await;
    let before = server
        .get(
            &format!("/api/v1/visitors/{}/export", t.visitor),
            &owner.token,
        )
        .await
        .ok()["messages"]
        .clone();

    for (token, status, code) in [
        (other.token.as_str(), 404, "not_found"),
        (agent.token.as_str(), 403, "forbidden"),
    ] {
        let r = server
            .delete(&format!("/api/v1/visitors/{}", t.visitor), token)
            .await;
        assert_eq!(r.err(status), code);
        let r = server
            .get(&format!("/api/v1/visitors/{}/export", t.visitor), token)
            .await;
        assert_eq!(r.err(status), code);
    }
    let r = server
        .delete("/api/v1/visitors/not-an-id", &owner.token)
        .await;
    assert_eq!(r.err(404), "not_found");

    let after: Value = server
        .get(
            &format!("/api/v1/visitors/{}/export", t.visitor),
            &owner.token,
        )
        .await
        .ok()["messages"]
        .clone();
    assert_eq!(before, after);
    assert_eq!(stored_files(&server).len(), 2);
}
