//! HTTPS by itself: certificates from Pebble over real HTTP-01 and
//! TLS-ALPN-01 validation, reuse after a restart, renewal, retries with
//! backoff against a failing CA, certificates from files reloaded on change
//! (on SIGHUP: `exe/tls.rs`), redirects from HTTP, HSTS; and ACME shared
//! by several nodes over PostgreSQL (`cluster`).

mod cluster;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::tls::{
    FlakyCa, Pebble, TestCa, TlsServer, client_for, init_logging, presented,
};
use crate::harness::{eventually, free_port, text};
use mychat::config::{AcmeChallenge, TlsMode};
use rustls::pki_types::pem::PemObject;

const MINUTE: Duration = Duration::from_secs(60);

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_certificate_is_served_with_redirects_and_reused_after_a_restart() {
    init_logging();
    let pebble = Pebble::start(None).await;
    let dir = Arc::new(crate::harness::scratch::temp_dir());
    let domain = "chat.mychat.test";
    let mut config = pebble.server_config(dir.path(), &[domain]);
    config.tls.acme_challenges = vec![AcmeChallenge::Http01];
    let server = TlsServer::start(dir.clone(), config).await;
    let root = pebble.issuing_root().await;
    let https = server.https_addr();
    let first = eventually(MINUTE, "a certificate from Pebble", || {
        let root = root.clone();
        async move { presented(https, domain, &root).await.ok() }
    })
    .await;
    assert_eq!(first.names, [domain]);
    assert_eq!(pebble.orders(), 1, "{}", pebble.log());

    // The appliance itself, over HTTPS, with HSTS.
    let client = client_for(&[domain], &root);
    let base = format!("https://{domain}:{}", https.port());
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    // HTTP redirects to HTTPS, except for the challenge path.
    let http = format!("http://{domain}:{}", server.http_addr().port());
    let r = client.get(format!("{http}/app?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], format!("{base}/app?x=1").as_str());
    assert!(!r.headers().contains_key("strict-transport-security"));
    let r = client
        .get(format!("{http}/.well-known/acme-challenge/unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The expiry gauge.
    let metrics = text(client.get(format!("{base}/metrics"))).await;
    let gauge = format!(
        "mychat_tls_certificate_expiry_seconds{{domain=\"{domain}\"}} {}",
        first.not_after
    );
    assert!(metrics.contains(&gauge), "{metrics}");
    // Account and certificate are stored privately.
    let acme = dir.path().join("acme");
    assert_eq!(mode(&acme), 0o700);
    assert_eq!(mode(&acme.join("account.json")), 0o600);
    assert_eq!(mode(&acme.join("certificate.pem")), 0o600);

    // A restart serves the stored certificate at once, without an order.
    let server = server.restart().await;
    let again = presented(https, domain, &root)
        .await
        .expect("served at once");
    assert_eq!(again.serial, first.serial);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pebble.orders(), 1, "no new order after the restart");

    // A name added to the configuration: the old certificate serves until
    // one naming both is there.
    let mut server = server;
    server.stop().await;
    let (dir, mut config) = (server.dir.clone(), server.config.clone());
    drop(server);
    let added = "help.mychat.test";
    config.tls.domains.push(added.into());
    let server = TlsServer::start(dir, config).await;
    let both = eventually(MINUTE, "a certificate naming both", || {
        let root = root.clone();
        async move { presented(https, added, &root).await.ok() }
    })
    .await;
    let mut names = both.names.clone();
    names.sort();
    assert_eq!(names, [domain, added]);
    assert_eq!(pebble.orders(), 2);

    // Another ACME directory (as from staging to production): a new
    // account there and a new certificate from it.
    let mut config = server.config.clone();
    let other = config.tls.acme_directory.replace("localhost", "127.0.0.1");
    assert_ne!(other, config.tls.acme_directory);
    config.tls.acme_directory = other;
    let mut server = server;
    server.stop().await;
    let dir = server.dir.clone();
    drop(server);
    let server = TlsServer::start(dir.clone(), config).await;
    let moved = eventually(MINUTE, "a certificate from the new directory", || {
        let (root, serial) = (root.clone(), both.serial.clone());
        async move {
            let now = presented(https, domain, &root).await.ok()?;
            (now.serial != serial).then_some(now)
        }
    })
    .await;
    assert_eq!(moved.names.len(), 2);
    assert_eq!(pebble.orders(), 3);
    let issuer = std::fs::read_to_string(dir.path().join("acme/certificate.json")).unwrap();
    assert!(issuer.contains("127.0.0.1"), "{issuer}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_certificate_names_every_configured_domain() {
    init_logging();
    let pebble = Pebble::start(None).await;
    let dir = Arc::new(crate::harness::scratch::temp_dir());
    let domains = ["alpn.mychat.test", "www.alpn.mychat.test"];
    let mut config = pebble.server_config(dir.path(), &domains);
    config.tls.acme_challenges = vec![AcmeChallenge::TlsAlpn01];
    let server = TlsServer::start(dir.clone(), config).await;
    let root = pebble.issuing_root().await;
    let https = server.https_addr();
    let cert = eventually(MINUTE, "a certificate from Pebble", || {
        let root = root.clone();
        async move { presented(https, domains[1], &root).await.ok() }
    })
    .await;
    let mut names = cert.names.clone();
    names.sort();
    assert_eq!(names, domains);
    let other = presented(https, domains[0], &root).await.unwrap();
    assert_eq!(other.serial, cert.serial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_before_it_expires() {
    init_logging();
    // Renewal is due with a third of the 21 s left: 14 s after issuance.
    let pebble = Pebble::start(Some(21)).await;
    let dir = Arc::new(crate::harness::scratch::temp_dir());
    let domain = "renew.mychat.test";
    let config = pebble.server_config(dir.path(), &[domain]);
    let server = TlsServer::start(dir.clone(), config).await;
    let root = pebble.issuing_root().await;
    let https = server.https_addr();
    let first = eventually(MINUTE, "a first certificate", || {
        let root = root.clone();
        async move { presented(https, domain, &root).await.ok() }
    })
    .await;
    let renewed = eventually(MINUTE, "a renewed certificate", || {
        let (root, serial) = (root.clone(), first.serial.clone());
        async move {
            let now = presented(https, domain, &root).await.ok()?;
            (now.serial != serial).then_some(now)
        }
    })
    .await;
    assert!(renewed.not_after > first.not_after);
    assert!(
        chrono::Utc::now().timestamp() < first.not_after,
        "renewed before the first one expired"
    );
    assert_eq!(pebble.orders(), 2, "{}", pebble.log());
    // The renewed certificate replaced the stored one.
    let stored = std::fs::read(dir.path().join("acme/certificate.pem")).unwrap();
    let stored = rustls::pki_types::CertificateDer::pem_slice_iter(&stored)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        mychat::tls::cert_info(&stored).unwrap().serial,
        renewed.serial
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ca_is_retried_with_backoff_while_the_old_certificate_serves() {
    init_logging();
    // Renewal is due 30 s after issuance; the backoff runs 1, 2, 4, 4 s.
    let pebble = Pebble::start(Some(45)).await;
    let ca = FlakyCa::start(&pebble).await;
    let dir = Arc::new(crate::harness::scratch::temp_dir());
    let domain = "flaky.mychat.test";
    let mut config = pebble.server_config(dir.path(), &[domain]);
    config.tls.acme_directory = ca.directory.clone();
    let server = TlsServer::start(dir.clone(), config).await;
    let root = pebble.issuing_root().await;
    let https = server.https_addr();
    let first = eventually(MINUTE, "a first certificate", || {
        let root = root.clone();
        async move { presented(https, domain, &root).await.ok() }
    })
    .await;
    ca.fail(true);

    // Failed attempts come farther and farther apart; the old certificate
    // is served all along.
    let attempts = eventually(MINUTE, "four failed renewals", || {
        let attempts = attempts(&ca.failures());
        async move { (attempts.len() >= 4).then_some(attempts) }
    })
    .await;
    let served = presented(https, domain, &root).await.unwrap();
    assert_eq!(
        served.serial, first.serial,
        "the old certificate still serves"
    );
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(gaps[0] >= 0.8, "waited before retrying: {gaps:?}");
    assert!(
        gaps[2] >= 1.8 * gaps[0] && gaps[1] >= 1.5 * gaps[0],
        "the waits grow: {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g <= 5.0),
        "capped at the max: {gaps:?}"
    );

    // The CA recovers; the next retry renews.
    ca.fail(false);
    let renewed = eventually(MINUTE, "a renewed certificate", || {
        let (root, serial) = (root.clone(), first.serial.clone());
        async move {
            let now = presented(https, domain, &root).await.ok()?;
            (now.serial != serial).then_some(now)
        }
    })
    .await;
    assert!(renewed.not_after > first.not_after);
    drop(server);
}

/// Failed requests grouped into attempts (one attempt's requests come
/// within half a second).
fn attempts(failures: &[Instant]) -> Vec<Instant> {
    let mut out: Vec<Instant> = Vec::new();
    for t in failures {
        match out.last() {
            Some(last) if *t - *last < Duration::from_millis(500) => {}
            _ => out.push(*t),
        }
    }
    out
}

pub(crate) fn manual_config(
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> mychat::Config {
    let mut config = crate::harness::test_config(dir);
    config.http.listen = ([127, 0, 0, 1], free_port()).into();
    config.tls.listen = ([127, 0, 0, 1], free_port()).into();
    config.tls.mode = TlsMode::Manual;
    config.tls.cert_file = cert.display().to_string();
    config.tls.key_file = key.display().to_string();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_certificates_are_served_and_reloaded_when_the_files_change() {
    init_logging();
    let ca = TestCa::new("manual test root");
    let dir = Arc::new(crate::harness::scratch::temp_dir());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let domain = "files.mychat.test";
    let (chain, private) = ca.issue(&[domain]);
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, private).unwrap();
    let config = manual_config(&dir.path().join("data"), &cert, &key);
    let server = TlsServer::start(dir.clone(), config).await;
    let root = ca.root_der();
    let https = server.https_addr();
    let first = presented(https, domain, &root).await.unwrap();
    let client = client_for(&[domain], &root);
    let r = client
        .get(format!("https://{domain}:{}/healthz", https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));
    let r = client
        .get(format!("http://{domain}:{}/", server.http_addr().port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);

    // A half-written pair is refused; the old certificate keeps serving.
    std::fs::write(&cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        presented(https, domain, &root).await.unwrap().serial,
        first.serial
    );

    let (chain, private) = ca.issue(&[domain]);
    std::fs::write(&key, private).unwrap();
    std::fs::write(&cert, chain).unwrap();
    let reloaded = eventually(Duration::from_secs(15), "the new certificate", || {
        let root = root.clone();
        let serial = first.serial.clone();
        async move {
            let now = presented(https, domain, &root).await.ok()?;
            (now.serial != serial).then_some(now)
        }
    })
    .await;
    assert_eq!(reloaded.names, [domain]);
}
