//! `mychat backup` and `mychat restore` through the real binary: a backup
//! taken while messages are being written holds every message acknowledged
//! before it started; attachments and the data dir's other state come
//! along; a damaged backup or a used data dir is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{TestServer, fixtures};
use mychat::ids::MessageId;
use mychat::store::Reader;

fn mychat(args: &[&str], data_dir: &Path) -> Output {
    crate::mychat()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Opens a restored data dir's database and looks the messages up by id.
async fn missing_messages(data_dir: &Path, ids: &[MessageId]) -> Vec<MessageId> {
    let store = mychat::store::Store::open(&data_dir.join(mychat::DB_FILE), 64).unwrap();
    let read = store.read().unwrap();
    let missing = ids
        .iter()
        .copied()
        .filter(|id| read.message(*id).unwrap().is_none())
        .collect();
    drop(read);
    store.shutdown().await;
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_every_acknowledged_message() {
    let server = Arc::new(TestServer::start().await);
    let owner = server.register("Backup Co", "owner@backup.test").await;
    let space = fixtures::space(&server, &owner).await;
    // Files beside the database: a stand-in attachment.
    let attachment = server.data_dir().join("attachments/2f/2f00.bin");
    std::fs::create_dir_all(attachment.parent().unwrap()).unwrap();
    std::fs::write(&attachment, b"attachment bytes").unwrap();

    // Writers: each sends messages one after another, noting each once it
    // is acknowledged (durable).
    let acked: Arc<Mutex<Vec<MessageId>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for w in 0..8 {
        let visitor = fixtures::visitor(&server, &space).await;
        let (server, acked, stopped) = (server.clone(), acked.clone(), stopped.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !*stopped.borrow() {
                let sent = fixtures::visitor_says(&server, &visitor, &format!("w{w} m{n}")).await;
                acked.lock().unwrap().push(sent.message.id);
                n += 1;
            }
        }));
    }
    while acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Everything acknowledged before the backup starts must be in it.
    let before: Vec<MessageId> = acked.lock().unwrap().clone();
    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("mychat.backup");
    let data = server.data_dir();
    let (f, d) = (file.clone(), data.clone());
    let out = tokio::task::spawn_blocking(move || mychat(&["backup", f.to_str().unwrap()], &d))
        .await
        .unwrap();
    let printed = ok(&out);
    assert!(printed.contains("verified"), "{printed}");
    // The server kept taking writes while the backup ran.
    let after = acked.lock().unwrap().len();
    assert!(
        after > before.len(),
        "writes were acknowledged during the backup"
    );
    stop.send(true).unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let restored = dir.path().join("restored");
    let out = mychat(&["restore", file.to_str().unwrap()], &restored);
    ok(&out);
    assert_eq!(
        std::fs::read(restored.join("attachments/2f/2f00.bin")).unwrap(),
        b"attachment bytes"
    );
    assert!(
        restored.join("jwt.key").exists(),
        "the signing key comes along"
    );
    assert!(!restored.join(mychat::control::SOCKET).exists());
    assert_eq!(
        missing_messages(&restored, &before).await,
        Vec::<MessageId>::new()
    );

    // The restored data dir serves: the owner logs in.
    let mut server = Arc::into_inner(server).expect("writers are done");
    server.stop().await;
    let restored_server = TestServer::start_with(|c| c.data_dir = restored.clone()).await;
    restored_server
        .login("owner@backup.test", "correct horse battery")
        .await
        .ok();
}

#[tokio::test]
async fn a_backup_with_the_server_stopped_reads_the_database_itself() {
    let mut server = TestServer::start().await;
    let owner = server.register("Offline Co", "owner@offline.test").await;
    let space = fixtures::space(&server, &owner).await;
    let visitor = fixtures::visitor(&server, &space).await;
    let sent = fixtures::visitor_says(&server, &visitor, "hello").await;
    server.stop().await;
    let (data, _kept) = (server.data_dir(), server.dir.clone());
    drop(server);

    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("offline.backup");
    ok(&mychat(&["backup", file.to_str().unwrap()], &data));
    let restored = dir.path().join("restored");
    ok(&mychat(&["restore", file.to_str().unwrap()], &restored));
    assert!(
        missing_messages(&restored, &[sent.message.id])
            .await
            .is_empty()
    );
    // Nothing but the backup is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn restore_refuses_a_used_data_dir_and_a_damaged_backup() {
    let server = TestServer::start().await;
    server.register("Damage Co", "owner@damage.test").await;
    let dir = crate::harness::scratch::temp_dir();
    let file = dir.path().join("good.backup");
    let (f, d) = (file.clone(), server.data_dir());
    ok(
        &tokio::task::spawn_blocking(move || mychat(&["backup", f.to_str().unwrap()], &d))
            .await
            .unwrap(),
    );

    // Not over an existing installation.
    let out = mychat(&["restore", file.to_str().unwrap()], &server.data_dir());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    // Nor over an existing backup file.
    let (f, d) = (file.clone(), server.data_dir());
    let out = tokio::task::spawn_blocking(move || mychat(&["backup", f.to_str().unwrap()], &d))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // A backup cut short is refused, and the data dir stays empty.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let out = mychat(&["restore", cut.to_str().unwrap()], &target);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

    // A flipped byte inside the database is caught too.
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 3;
    flipped[middle] ^= 0xff;
    let bad = dir.path().join("flipped.backup");
    std::fs::write(&bad, &flipped).unwrap();
    let out = mychat(&["restore", bad.to_str().unwrap()], &target);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}
