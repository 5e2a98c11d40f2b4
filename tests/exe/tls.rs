//! HTTPS in the real binary: certificates from files reloaded on SIGHUP.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::tls::{TestCa, presented};
use crate::harness::{eventually, free_port};

#[test]
fn manual_certificates_reload_on_sighup() {
    let ca = TestCa::new("sighup test root");
    let dir = crate::harness::scratch::temp_dir();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let domain = "hup.mychat.test";
    let (chain, private) = ca.issue(&[domain]);
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, private).unwrap();
    let (http, https) = (free_port(), free_port());
    let mut child = crate::mychat()
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("MYCHAT_DEMO", "false")
        .env("MYCHAT_LOG", "warn")
        .env("MYCHAT_HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .env("MYCHAT_TLS__LISTEN", format!("127.0.0.1:{https}"))
        .env("MYCHAT_TLS__MODE", "manual")
        .env("MYCHAT_TLS__CERT_FILE", &cert)
        .env("MYCHAT_TLS__KEY_FILE", &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert_eq!(
        banner,
        format!("My-Chat is running at https://127.0.0.1:{https}")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = ca.root_der();
    let addr = ([127, 0, 0, 1], https).into();
    let first = rt.block_on(presented(addr, domain, &root)).unwrap();

    // New files with the old modification times: only the signal tells.
    let times = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (cert_time, key_time) = (times(&cert), times(&key));
    let (chain, private) = ca.issue(&[domain]);
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, private).unwrap();
    let set = |p: &std::path::Path, t| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    set(&cert, cert_time);
    set(&key, key_time);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        rt.block_on(presented(addr, domain, &root)).unwrap().serial,
        first.serial,
        "unchanged times alone do not reload"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let reloaded = rt.block_on(eventually(Duration::from_secs(10), "the reload", || {
        let root = root.clone();
        let serial = first.serial.clone();
        async move {
            let now = presented(addr, domain, &root).await.ok()?;
            (now.serial != serial).then_some(now)
        }
    }));
    assert_eq!(reloaded.names, [domain]);
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}
