//! The HTTPS test kit: a throwaway CA, Pebble (the ACME test CA) with
//! pebble-challtestsrv as its DNS so every name resolves to 127.0.0.1, a
//! proxy that can make the CA answer errors, an in-process server serving
//! HTTPS, and a look at the certificate a server presents.
//!
//! Pebble validates for real: HTTP-01 on its `httpPort`, TLS-ALPN-01 on its
//! `tlsPort`, so the server under test listens on exactly those ports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mychat::config::{AcmeChallenge, TlsMode};
use mychat::tls::CertInfo;
use mychat::{App, Config, TlsListeners};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::{eventually, free_port, test_config, text};

/// Logs of the library go to the test's output (shown when it fails).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MYCHAT_LOG")
                .unwrap_or_else(|_| "mychat=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A certificate authority made up for one test.
pub struct TestCa {
    pub root_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let root_pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            root_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses): (chain PEM, key PEM).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn root_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.root_pem.as_bytes()).unwrap()
    }
}

/// Pebble and its DNS, on free ports, killed on drop.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// Pebble's own HTTPS address.
    pub addr: SocketAddr,
    /// Where Pebble validates HTTP-01 and TLS-ALPN-01: the server must listen here.
    pub http_port: u16,
    pub tls_port: u16,
    /// Root of Pebble's HTTPS certificate: `tls.acme_ca_file`.
    pub ca_file: PathBuf,
    /// Pebble's HTTPS certificate and key, for a proxy that stands in for it.
    pub cert_pem: String,
    pub key_pem: String,
    management: String,
    log: PathBuf,
    children: Vec<Child>,
    /// Pebble's configuration, certificate and log, kept while it runs.
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts Pebble; `validity_secs` shortens the certificates it issues.
    pub async fn start(validity_secs: Option<u64>) -> Pebble {
        let dir = super::scratch::temp_dir();
        let ca = TestCa::new("Pebble HTTPS test root");
        let (cert_pem, key_pem) = ca.issue(&["localhost", "127.0.0.1"]);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.root_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
        let (dns, dns_management) = (free_port(), free_port());
        let (listen, management) = (free_port(), free_port());
        let (http_port, tls_port) = (free_port(), free_port());
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(secs) = validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log = dir.path().join("pebble.log");
        let mut children = Vec::new();
        // Every name is 127.0.0.1; its own challenge servers stay off.
        children.push(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pebble-challtestsrv runs (Debian package pebble)"),
        );
        let log_file = std::fs::File::create(&log).unwrap();
        children.push(
            Command::new("pebble")
                .arg("-config")
                .arg(&config_file)
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                // Pebble refuses 5% of nonces by default, to exercise
                // clients' retries; instant-acme retries a refused nonce
                // twice, and a third refusal fails the order, which the
                // appliance then orders again. The tests count orders
                // exactly, so every nonce is accepted here.
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("pebble runs (Debian package pebble)"),
        );
        let pebble = Pebble {
            directory: format!("https://localhost:{listen}/dir"),
            addr: SocketAddr::from(([127, 0, 0, 1], listen)),
            http_port,
            tls_port,
            ca_file,
            cert_pem,
            key_pem,
            management: format!("https://127.0.0.1:{management}"),
            log,
            children,
            _dir: dir,
        };
        let client = pebble.client();
        let directory = pebble.directory.clone();
        eventually(Duration::from_secs(20), "pebble to start", || {
            let (client, directory) = (client.clone(), directory.clone());
            async move {
                let r = client.get(&directory).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
        pebble
    }

    /// A client that trusts Pebble's HTTPS certificate.
    pub fn client(&self) -> reqwest::Client {
        let root = std::fs::read(&self.ca_file).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .build()
            .unwrap()
    }

    /// The root Pebble issues under (new at every start).
    pub async fn issuing_root(&self) -> CertificateDer<'static> {
        let pem = text(self.client().get(format!("{}/roots/0", self.management))).await;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// Orders Pebble has created so far (from its log).
    pub fn orders(&self) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| l.contains("Added order")).count()
    }

    /// Accounts Pebble has created so far (from its log).
    pub fn accounts(&self) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("accounts in memory"))
            .count()
    }

    /// Pebble's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A server config for ACME against this Pebble, listening where
    /// Pebble validates.
    pub fn server_config(&self, data_dir: &std::path::Path, domains: &[&str]) -> Config {
        let mut config = test_config(data_dir);
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], self.http_port));
        config.tls.listen = SocketAddr::from(([127, 0, 0, 1], self.tls_port));
        config.tls.mode = TlsMode::Acme;
        config.tls.domains = domains.iter().map(|d| d.to_string()).collect();
        config.tls.email = "ops@mychat.test".into();
        config.tls.acme_directory = self.directory.clone();
        config.tls.acme_ca_file = self.ca_file.display().to_string();
        config.tls.acme_challenges = vec![AcmeChallenge::Http01, AcmeChallenge::TlsAlpn01];
        config.tls.acme_retry_min_secs = 1;
        config.tls.acme_retry_max_secs = 4;
        config
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Stands in front of Pebble: passes connections through, or, when told
/// to fail, answers every request itself with a 500 problem document (on
/// Pebble's own certificate) and notes when.
pub struct FlakyCa {
    /// The ACME directory through the proxy.
    pub directory: String,
    failing: watch::Sender<bool>,
    failures: Arc<Mutex<Vec<Instant>>>,
    task: JoinHandle<()>,
}

impl FlakyCa {
    pub async fn start(pebble: &Pebble) -> FlakyCa {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (failing, watching) = watch::channel(false);
        let failures = Arc::new(Mutex::new(Vec::new()));
        let tls = rustls::ServerConfig::builder_with_provider(mychat::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                CertificateDer::pem_slice_iter(pebble.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                rustls::pki_types::PrivateKeyDer::from_pem_slice(pebble.key_pem.as_bytes())
                    .unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let upstream = pebble.addr;
        let noted = failures.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let mut watching = watching.clone();
                let acceptor = acceptor.clone();
                let noted = noted.clone();
                tokio::spawn(async move {
                    if !*watching.borrow_and_update() {
                        let Ok(mut pebble) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        // A kept-alive connection must not outlive a switch to failing.
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut stream, &mut pebble) => {}
                            _ = watching.wait_for(|f| *f) => {}
                        }
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    noted.lock().unwrap().push(Instant::now());
                    let body = r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"the test CA is failing","status":500}"#;
                    let response = format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        FlakyCa {
            directory: format!("https://localhost:{port}/dir"),
            failing,
            failures,
            task,
        }
    }

    pub fn fail(&self, on: bool) {
        self.failing.send_replace(on);
    }

    /// When the failing CA answered, in order.
    pub fn failures(&self) -> Vec<Instant> {
        self.failures.lock().unwrap().clone()
    }
}

impl Drop for FlakyCa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An in-process server serving HTTPS from `config` (TLS mode on).
pub struct TlsServer {
    pub config: Config,
    pub dir: Arc<tempfile::TempDir>,
    pub state: mychat::AppState,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TlsServer {
    pub async fn start(dir: Arc<tempfile::TempDir>, config: Config) -> TlsServer {
        let http = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .expect("bind http");
        let https = tokio::net::TcpListener::bind(config.tls.listen)
            .await
            .expect("bind https");
        let app = App::build(config.clone()).await.expect("app builds");
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.serve_tls(TlsListeners { http, https }, async {
            let _ = stopped.await;
        }));
        TlsServer {
            config,
            dir,
            state,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.config.tls.listen
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.config.http.listen
    }

    /// Stops, lets go of everything, and starts again on the same data
    /// dir and ports.
    pub async fn restart(mut self) -> TlsServer {
        self.stop().await;
        let (dir, config) = (self.dir.clone(), self.config.clone());
        drop(self);
        TlsServer::start(dir, config).await
    }

    /// Stops gracefully and waits until the data dir is let go.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task").expect("server ran");
        }
    }
}

/// Stands where Pebble validates (its HTTP-01 and TLS-ALPN-01 ports) in
/// front of several nodes, as a load balancer does, and passes each
/// connection on to a node that does not run the jobs (so does not order)
/// while there is one, else to the first node. A connection waits until
/// every node it was told of has been added.
pub struct Balancer {
    pool: watch::Sender<Pool>,
    tasks: Vec<JoinHandle<()>>,
}

struct Pool {
    /// Nodes still to come before connections are passed on.
    expected: usize,
    nodes: Vec<Backend>,
}

struct Backend {
    http: SocketAddr,
    https: SocketAddr,
    store: mychat::store::Store,
    passed: Arc<AtomicUsize>,
}

impl Balancer {
    /// A balancer for `nodes` nodes, added with [`Balancer::add`].
    pub async fn start(pebble: &Pebble, nodes: usize) -> Balancer {
        let (pool, _) = watch::channel(Pool {
            expected: nodes,
            nodes: Vec::new(),
        });
        let mut tasks = Vec::new();
        for (port, tls) in [(pebble.http_port, false), (pebble.tls_port, true)] {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind where Pebble validates");
            let mut watching = pool.subscribe();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    let Ok(pool) = watching.wait_for(|p| p.nodes.len() >= p.expected).await else {
                        return;
                    };
                    let target = pool
                        .nodes
                        .iter()
                        .find(|n| !n.store.leads())
                        .or(pool.nodes.first())
                        .map(|n| {
                            n.passed.fetch_add(1, Ordering::SeqCst);
                            if tls { n.https } else { n.http }
                        });
                    drop(pool);
                    let Some(target) = target else { continue };
                    tokio::spawn(async move {
                        if let Ok(mut node) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
                        }
                    });
                }
            }));
        }
        Balancer { pool, tasks }
    }

    pub fn add(&self, node: &TlsServer) {
        self.pool.send_modify(|p| {
            p.nodes.push(Backend {
                http: node.http_addr(),
                https: node.https_addr(),
                store: node.state.store.clone(),
                passed: Arc::default(),
            })
        });
    }

    /// Stops passing connections to `node` (and lets go of its store).
    pub fn remove(&self, node: &TlsServer) {
        let https = node.https_addr();
        self.pool.send_modify(|p| {
            p.nodes.retain(|n| n.https != https);
            p.expected = p.expected.saturating_sub(1);
        });
    }

    /// Validation connections passed to `node` so far.
    pub fn passed_to(&self, node: &TlsServer) -> usize {
        let https = node.https_addr();
        self.pool
            .borrow()
            .nodes
            .iter()
            .find(|n| n.https == https)
            .map_or(0, |n| n.passed.load(Ordering::SeqCst))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A client for which `domains` are 127.0.0.1 (the URL gives the port),
/// trusting `root`, not following redirects.
pub fn client_for(domains: &[&str], root: &CertificateDer<'_>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_der(root).unwrap());
    for domain in domains {
        builder = builder.resolve(domain, SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    builder.build().unwrap()
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The certificate `addr` presents for `sni`, verified against `root`.
pub async fn presented(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
) -> Result<CertInfo, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(mychat::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    mychat::tls::cert_info(leaf).map_err(|e| e.to_string())
}
