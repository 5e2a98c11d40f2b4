//! HTTPS by itself: rustls with the ring provider, certificates from files
//! (`manual`) or from an ACME CA (`acme`), an HTTP listener that redirects to
//! HTTPS and answers HTTP-01 challenges, and HSTS.
//!
//! One [`Certs`] is shared by everything: the rustls resolver reads the
//! current certificate from it; the TLS listener asks it for the TLS-ALPN-01
//! challenge certificate of a handshake offering ALPN `acme-tls/1`; the HTTP
//! listener asks it for HTTP-01 key authorizations; the loaders in `manual`
//! and `acme` write to it. With a shared database, a challenge this node
//! does not answer itself is looked up in the answers the ordering node
//! published there. Swapping the certificate affects new handshakes only.

pub mod acme;
mod certs;
mod listener;
pub mod manual;
mod redirect;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

pub use certs::{CertInfo, cert_info};
pub use listener::TlsListener;
pub use redirect::{hsts, redirect_router};

use crate::config::{Config, TlsMode};
use crate::store::Store;
use crate::tasks::Tasks;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The one crypto provider of the program.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide default, for libraries that ask for it.
/// Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Certificates being served and challenges being answered.
#[derive(Default)]
pub struct Certs {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// TLS-ALPN-01 certificates by domain, while an order is pending.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 token -> key authorization, while an order is pending.
    tokens: Mutex<HashMap<String, String>>,
    /// With a shared database: where the answers of another node's order
    /// are found, and the names they may be asked for.
    shared: OnceLock<(acme::storage::Storage, Vec<String>)>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs").finish_non_exhaustive()
    }
}

impl Certs {
    pub fn set_current(&self, key: Arc<CertifiedKey>) {
        *self.current.write().expect("certs lock") = Some(key);
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().expect("certs lock").clone()
    }

    pub fn add_alpn_challenge(&self, domain: &str, key: Arc<CertifiedKey>) {
        self.alpn
            .lock()
            .expect("certs lock")
            .insert(domain.to_owned(), key);
    }

    pub fn add_http_challenge(&self, token: &str, key_authorization: &str) {
        self.tokens
            .lock()
            .expect("certs lock")
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Answers challenges of orders other nodes make for `domains`, from
    /// `storage`.
    pub fn share_challenges(&self, storage: acme::storage::Storage, domains: &[String]) {
        let domains = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        let _ = self.shared.set((storage, domains));
    }

    /// The key authorization for an HTTP-01 `token`: this node's own, or
    /// the one the ordering node published.
    pub async fn http_challenge(&self, token: &str) -> Option<String> {
        let own = self.tokens.lock().expect("certs lock").get(token).cloned();
        match (own, self.shared.get()) {
            (Some(own), _) => Some(own),
            (None, Some((shared, _))) => acme::answers::http01(shared, token).await,
            (None, None) => None,
        }
    }

    /// The TLS-ALPN-01 certificate for `domain`: this node's own, or one
    /// made from the answer the ordering node published.
    pub async fn alpn_challenge(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let domain = domain.to_ascii_lowercase();
        let own = self.alpn.lock().expect("certs lock").get(&domain).cloned();
        match (own, self.shared.get()) {
            (Some(own), _) => Some(own),
            // Only names this cluster orders for are worth a query: any
            // client can offer `acme-tls/1`.
            (None, Some((shared, domains))) if domains.contains(&domain) => {
                acme::answers::tls_alpn01(shared, &domain).await
            }
            (None, _) => None,
        }
    }

    /// Forgets every challenge answer (an order has ended).
    pub fn clear_challenges(&self) {
        self.alpn.lock().expect("certs lock").clear();
        self.tokens.lock().expect("certs lock").clear();
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only a pending challenge answers; never the real certificate.
            // (The TLS listener answers these itself; this is the guard.)
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.alpn.lock().expect("certs lock").get(&name).cloned();
        }
        self.current()
    }
}

/// What `/metrics` reports about certificates.
#[derive(Default)]
pub struct TlsStatus {
    /// Domain -> notAfter of the certificate serving it, in Unix seconds.
    expiry: Mutex<BTreeMap<String, i64>>,
}

impl TlsStatus {
    pub fn set_expiry(&self, domains: &[String], not_after: i64) {
        let mut expiry = self.expiry.lock().expect("status lock");
        expiry.clear();
        for domain in domains {
            expiry.insert(domain.clone(), not_after);
        }
    }

    /// Each domain and its certificate's notAfter (empty without TLS).
    pub fn expiry(&self) -> Vec<(String, i64)> {
        let expiry = self.expiry.lock().expect("status lock");
        expiry.iter().map(|(d, t)| (d.clone(), *t)).collect()
    }
}

/// HTTPS as configured: the rustls config and the shared certificates.
pub struct Tls {
    pub certs: Arc<Certs>,
    pub server_config: Arc<ServerConfig>,
}

impl Tls {
    /// Loads what is needed before serving and starts the background work
    /// (file reloads, or ACME orders and renewals) on `tasks`.
    ///
    /// Manual mode fails when the files cannot be loaded. ACME mode starts
    /// with the stored certificate when there is one; without it, handshakes
    /// fail until the first order succeeds.
    pub async fn start(
        config: &Config,
        store: &Store,
        status: &Arc<TlsStatus>,
        tasks: &mut Tasks,
    ) -> Result<Tls, TlsError> {
        install_crypto_provider();
        let certs = Arc::new(Certs::default());
        // HTTP/2 first, HTTP/1.1 for older clients and WebSocket upgrades
        // made over HTTP/1.1; the server speaks whichever was chosen.
        let mut alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        match config.tls.mode {
            TlsMode::Off => return Err(TlsError::Invalid("tls.mode is off".into())),
            TlsMode::Manual => manual::start(&config.tls, status, &certs, tasks)?,
            TlsMode::Acme => {
                acme::start(config, store, status, &certs, tasks).await?;
                alpn.push(ACME_TLS_ALPN.to_vec());
            }
        }
        let mut server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        server_config.alpn_protocols = alpn;
        Ok(Tls {
            certs,
            server_config: Arc::new(server_config),
        })
    }
}
