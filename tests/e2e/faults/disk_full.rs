//! The data dir on a tmpfs filled to the brim.

use super::{World, agent_sends, exactly_once, metric, metrics, visitor_sends, world};
use crate::harness::SITE;
use crate::harness::tmpfs::Tmpfs;
use crate::harness::ws::kind;

const MIB: u64 = 1024 * 1024;

async fn upload(w: &World) -> (u16, String) {
    let boundary = "----mychat-disk-full-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nsome notes\r\n--{boundary}--\r\n"
    );
    let resp = w
        .server
        .client
        .post(w.server.url("/api/v1/widget/attachments"))
        .header("origin", SITE)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(&w.session)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_keeps_reads_and_resumes_by_itself() {
    let Some(fs) = Tmpfs::mount(48) else { return };
    let data = fs.path().join("data");
    let w = world(|c| {
        c.data_dir = data.clone();
        c.store.min_free_mb = 2;
        c.limits.min_free_disk_mb = 8;
    })
    .await;
    let mut widget = w.widget().await;
    let mut acked = Vec::new();

    let before = visitor_sends(&mut widget, "v-before", "before the disk filled").await;
    assert_eq!(kind(&before), "message:ack", "{before}");
    acked.push(before["message"]["id"].as_str().unwrap().to_owned());
    let thread = before["message"]["threadId"].as_str().unwrap().to_owned();
    let (status, body) = agent_sends(&w, &thread, "a-before", "agent before").await;
    assert_eq!(status, 201, "{body}");
    acked.push(body["id"].as_str().unwrap().to_owned());

    // Uploads stop first, while messages still have their margin.
    fs.fill_leaving(5 * MIB);
    assert_eq!(upload(&w).await, (507, "insufficient_storage".to_owned()));
    let margin = visitor_sends(&mut widget, "v-margin", "in the margin").await;
    assert_eq!(kind(&margin), "message:ack", "{margin}");
    acked.push(margin["message"]["id"].as_str().unwrap().to_owned());

    // To the brim: every write is refused, over REST and over the socket.
    fs.fill();
    assert_eq!(fs.free_bytes(), 0);
    let refused = visitor_sends(&mut widget, "v-during", "while the disk was full").await;
    assert_eq!(kind(&refused), "error", "{refused}");
    assert_eq!(refused["code"], "insufficient_storage", "{refused}");
    let (status, body) = agent_sends(&w, &thread, "a-during", "agent while full").await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");

    // Reads, health and the sockets go on; readiness and metrics say why.
    let listed = w.server.all_messages(&w.owner.token, &thread).await;
    assert_eq!(listed.len(), 3);
    let health = w
        .server
        .client
        .get(w.server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = w
        .server
        .client
        .get(w.server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["error"]["code"], "disk_full", "{ready}");
    let m = metrics(&w.server).await;
    assert_eq!(metric(&m, "mychat_store_disk_full"), 1.0);
    assert!(metric(&m, "mychat_store_disk_full_writes_total") >= 2.0);
    let other = w.widget().await;
    other.close().await;

    // Space freed: the same socket's retry goes through, nothing restarted.
    fs.free();
    let retried = visitor_sends(&mut widget, "v-during", "while the disk was full").await;
    assert_eq!(kind(&retried), "message:ack", "{retried}");
    acked.push(retried["message"]["id"].as_str().unwrap().to_owned());
    let (status, body) = agent_sends(&w, &thread, "a-after", "agent after").await;
    assert_eq!(status, 201, "{body}");
    acked.push(body["id"].as_str().unwrap().to_owned());
    let ready = w
        .server
        .client
        .get(w.server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        metric(&metrics(&w.server).await, "mychat_store_disk_full"),
        0.0
    );
    assert_eq!(upload(&w).await.0, 201);

    // After a restart every acknowledged message is there exactly once.
    widget.close().await;
    let World {
        server,
        owner,
        space,
        session,
    } = w;
    let server = server.restart().await;
    let w = World {
        server,
        owner,
        space,
        session,
    };
    exactly_once(&w, &thread, &acked, &["agent while full"]).await;
    assert_eq!(
        w.server.all_messages(&w.owner.token, &thread).await.len(),
        acked.len()
    );
}
