//! Commits whose fsync fails, through the store's fault-injection point
//! (compiled only with the `fault-injection` feature, which the tests turn
//! on): the fsync of the write-ahead log, which every acknowledged batch
//! waits for. The server recovers on the next commit: the database is
//! reopened and the log applied again; nothing failed is acknowledged. The
//! failed batch is cut off the log again, but a commit whose fsync failed
//! may still reach the disk (when that cut fails too): the client was told
//! to retry, and its retry finds the message by its clientMsgId, so it is
//! stored exactly once.

use super::{World, agent_sends, exactly_once, metric, metrics, visitor_sends, world};
use crate::harness::ws::kind;

fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_failed_commit_answers_503_acknowledges_nothing_and_the_next_commit_succeeds() {
    let w = world(|_| {}).await;
    let faults = w.server.app_state.store.faults();
    let mut widget = w.widget().await;
    let mut acked = Vec::new();

    let first = visitor_sends(&mut widget, "v-1", "first").await;
    assert_eq!(kind(&first), "message:ack", "{first}");
    acked.push(id(&first["message"]));
    let thread = first["message"]["threadId"].as_str().unwrap().to_owned();

    // REST: the failed batch is a 503 with the envelope.
    faults.fail_syncs(1, false);
    let (status, body) = agent_sends(&w, &thread, "a-failed", "agent failed").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    // Recovered on the next commit: a new write, and the retry of the
    // failed one, are stored.
    let (status, body) = agent_sends(&w, &thread, "a-next", "agent next").await;
    assert_eq!(status, 201, "{body}");
    acked.push(id(&body));
    let (status, body) = agent_sends(&w, &thread, "a-failed", "agent failed").await;
    assert!(status == 201 || status == 200, "{status} {body}");
    acked.push(id(&body));

    // Socket: an error frame, no ack; the retry is acknowledged once.
    faults.fail_syncs(1, false);
    let failed = visitor_sends(&mut widget, "v-failed", "visitor failed").await;
    assert_eq!(kind(&failed), "error", "{failed}");
    assert_eq!(failed["code"], "unavailable", "{failed}");
    let retried = visitor_sends(&mut widget, "v-failed", "visitor failed").await;
    assert_eq!(kind(&retried), "message:ack", "{retried}");
    acked.push(id(&retried["message"]));

    // ENOSPC from the commit itself is a 507, like a disk below the floor.
    faults.fail_syncs(1, true);
    let (status, body) = agent_sends(&w, &thread, "a-nospace", "agent no space").await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");

    let m = metrics(&w.server).await;
    assert!(metric(&m, "mychat_store_failed_commits_total") >= 3.0);
    // The refused write's retry after the disk emptied: stored once.
    let (status, body) = agent_sends(&w, &thread, "a-nospace", "agent no space").await;
    assert!(status == 201 || status == 200, "{status} {body}");
    acked.push(id(&body));
    let listed = w.server.all_messages(&w.owner.token, &thread).await;
    assert_eq!(listed.len(), acked.len());

    // What was acknowledged is on disk exactly once after a restart.
    widget.close().await;
    let World {
        server,
        owner,
        space,
        session,
    } = w;
    let w = World {
        server: server.restart().await,
        owner,
        space,
        session,
    };
    exactly_once(&w, &thread, &acked, &[]).await;
    assert_eq!(
        w.server.all_messages(&w.owner.token, &thread).await.len(),
        acked.len()
    );
}
