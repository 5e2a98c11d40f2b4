//! `mychat backup` to a disk that fills up on the way: it fails with a
//! clear message and leaves nothing behind that `restore` would take.

use std::path::Path;
use std::process::Output;

use crate::harness::tmpfs::Tmpfs;
use crate::harness::{TestServer, fixtures};

fn mychat(args: &[&str], data_dir: &Path) -> Output {
    crate::mychat()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// A data dir larger than the target disk: a few messages and a 3 MiB
/// file beside the database.
async fn server_with_data() -> TestServer {
    let server = TestServer::start().await;
    let owner = server.register("Full Co", "owner@full.test").await;
    let space = fixtures::space(&server, &owner).await;
    let visitor = fixtures::visitor(&server, &space).await;
    for i in 0..20 {
        fixtures::visitor_says(&server, &visitor, &format!("message {i}")).await;
    }
    let attachment = server.data_dir().join("attachments/3a/3a00.bin");
    std::fs::create_dir_all(attachment.parent().unwrap()).unwrap();
    let noise: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&attachment, noise).unwrap();
    server
}

fn assert_clean_failure(out: &Output, disk: &Tmpfs, dest: &Path, data: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the backup should fail: {stderr}");
    assert!(
        stderr.contains("backup failed") && stderr.contains("No space left on device"),
        "a clear message: {stderr}"
    );
    // Nothing is left on the full disk: no backup, no partial file, no
    // scratch copy; the space is back.
    assert_eq!(names(disk.path()), Vec::<String>::new());
    assert!(disk.free_bytes() > 1024 * 1024);
    // And restore has nothing to take.
    let target = crate::harness::scratch::temp_dir();
    let restored = target.path().join("restored");
    let out = mychat(&["restore", dest.to_str().unwrap()], &restored);
    assert!(!out.status.success());
    assert!(!restored.join(mychat::DB_FILE).exists());
    assert!(data.join(mychat::DB_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_to_a_full_disk_fails_cleanly_and_leaves_nothing_restore_would_take() {
    let Some(disk) = Tmpfs::mount(2) else { return };
    let mut server = server_with_data().await;
    let data = server.data_dir();
    let dest = disk.path().join("mychat.backup");

    // From the running server (through its control socket).
    let (d, f) = (data.clone(), dest.clone());
    let out = tokio::task::spawn_blocking(move || mychat(&["backup", f.to_str().unwrap()], &d))
        .await
        .unwrap();
    assert_clean_failure(&out, &disk, &dest, &data);

    // With the server stopped (the command copies the database itself).
    server.stop().await;
    let out = mychat(&["backup", dest.to_str().unwrap()], &data);
    assert_clean_failure(&out, &disk, &dest, &data);
}
