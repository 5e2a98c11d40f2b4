//! `tls.mode = "acme"`: certificates for `tls.domains` from an ACME CA,
//! managed the way Caddy does it.
//!
//! - The stored certificate is served from the start. No order is made
//!   while it names every configured domain, came from the configured
//!   directory and is not due for renewal.
//! - It is renewed when a third of its lifetime is left, or inside the
//!   window the CA suggests when it offers ACME Renewal Information (ARI).
//! - A failed order is retried after `tls.acme_retry_min_secs`, doubling up
//!   to `tls.acme_retry_max_secs`; the current certificate keeps serving,
//!   and each retry starts with the next challenge type.
//! - Only the configured names are ever ordered, all in one certificate.
//! - With a shared database (several nodes), account, certificate and the
//!   challenge answers of an order in flight live in the database, and
//!   only the node that runs the background jobs ([`Store::leads`]) orders
//!   and renews. Every other node serves the stored certificate and looks
//!   for the renewed one once it is due; a node that takes the lead finds
//!   the account and certificate there, and orders again what a node that
//!   died left unfinished.

pub(crate) mod answers;
mod order;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{Account, AccountCredentials, CertificateIdentifier, HttpClient, NewAccount};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::certs::{CertInfo, certified_key, key_info, unix_to_rfc3339};
use super::{Certs, TlsError, TlsStatus, provider};
use crate::config::{AcmeChallenge, Config, TlsConfig};
use crate::store::Store;
use crate::tasks::{Stop, Tasks};
use storage::{Storage, StoredAccount};

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("{0}")]
    Order(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The longest sleep before the schedule is looked at again (clock jumps,
/// suspended machines).
const RECHECK: Duration = Duration::from_secs(600);

/// How often a node that does not order looks for a certificate while it
/// has none fitting to serve (a new cluster, changed domains).
const UNSERVED: Duration = Duration::from_secs(5);

/// Serves the stored certificate when it fits, and starts the manager.
pub async fn start(
    config: &Config,
    store: &Store,
    status: &Arc<TlsStatus>,
    certs: &Arc<Certs>,
    tasks: &mut Tasks,
) -> Result<(), TlsError> {
    let settings = config.tls.clone();
    let storage = Storage::open(&config.data_dir, store)?;
    if storage.is_shared() {
        // Whichever node the CA reaches answers the challenges.
        certs.share_challenges(storage.clone(), &settings.domains);
    }
    let client = Arc::new(client_config(&settings.acme_ca_file)?);
    let mut current = None;
    match storage.load_certificate().await {
        Ok(Some(stored)) => {
            let names = &stored.info.names;
            if stored.info.covers(&settings.domains) {
                tracing::info!(
                    names = ?names,
                    serial = %stored.info.serial,
                    not_after = %unix_to_rfc3339(stored.info.not_after),
                    "serving the stored certificate"
                );
            } else {
                // Still served, for the names it has, until the new one is there.
                tracing::info!(
                    stored = ?names,
                    configured = ?settings.domains,
                    "the stored certificate does not name every configured domain; a new one will be ordered"
                );
            }
            status.set_expiry(names, stored.info.not_after);
            certs.set_current(stored.key.clone());
            current = Some(stored);
        }
        Ok(None) => tracing::info!(names = ?settings.domains, "no certificate yet"),
        Err(e) => {
            tracing::warn!(error = %e, "the stored certificate is unusable; ordering a new one")
        }
    }
    let manager = Manager {
        store: store.clone(),
        status: status.clone(),
        certs: certs.clone(),
        settings,
        storage,
        client,
        account: None,
        current,
        ari: None,
        failures: 0,
    };
    tasks.spawn("acme", move |stop| manager.run(stop));
    Ok(())
}

struct Manager {
    /// Whether this node orders: with a shared database, only the node
    /// that runs the background jobs does.
    store: Store,
    status: Arc<TlsStatus>,
    certs: Arc<Certs>,
    settings: TlsConfig,
    storage: Storage,
    client: Arc<rustls::ClientConfig>,
    /// Loaded on first need, dropped after a failure.
    account: Option<Account>,
    current: Option<storage::Stored>,
    /// The CA's suggestion for the current certificate, when it offers ARI.
    ari: Option<Ari>,
    /// Failed orders in a row.
    failures: u32,
}

#[derive(Clone, Copy)]
struct Ari {
    /// Unix seconds: the chosen moment inside the suggested window.
    renew_at: i64,
    /// Unix seconds: when to ask again.
    ask_again: i64,
}

enum Plan {
    Now(&'static str),
    At(i64),
}

impl Manager {
    async fn run(mut self, mut stop: Stop) {
        let mut logged = None;
        loop {
            if self.storage.is_shared() {
                // What another node ordered (or this one, while it led).
                self.adopt_shared().await;
                if !self.store.leads() {
                    self.failures = 0;
                    if !stop.sleep(self.follower_wait()).await {
                        return;
                    }
                    continue;
                }
            }
            let at = match self.plan().await {
                Plan::Now(reason) => {
                    tracing::info!(reason, names = ?self.settings.domains, "ordering a certificate");
                    None
                }
                Plan::At(at) => Some(at),
            };
            if let Some(at) = at {
                if logged != Some(at) {
                    tracing::info!(renew_at = %unix_to_rfc3339(at), "certificate renewal scheduled");
                    logged = Some(at);
                }
                let wait = Duration::from_secs((at - now()).max(0) as u64).min(RECHECK);
                if !stop.sleep(wait).await {
                    return;
                }
                continue;
            }
            let outcome = tokio::select! {
                outcome = self.obtain() => outcome,
                _ = stop.requested() => return,
            };
            match outcome {
                Ok(info) => {
                    self.failures = 0;
                    tracing::info!(
                        names = ?info.names,
                        serial = %info.serial,
                        not_after = %unix_to_rfc3339(info.not_after),
                        "certificate obtained"
                    );
                }
                Err(e) => {
                    self.failures += 1;
                    self.account = None;
                    let retry = self.backoff();
                    tracing::warn!(
                        error = %e,
                        failures = self.failures,
                        retry_in_secs = retry.as_secs(),
                        "certificate order failed; the current certificate keeps serving"
                    );
                    if !stop.sleep(retry).await {
                        return;
                    }
                }
            }
        }
    }

    /// Serves the certificate in the shared database when it is not the
    /// one served now.
    async fn adopt_shared(&mut self) {
        let stored = match self.storage.load_certificate().await {
            Ok(Some(stored)) => stored,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the shared certificate could not be read");
                return;
            }
        };
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.info.serial == stored.info.serial)
        {
            return;
        }
        tracing::info!(
            names = ?stored.info.names,
            serial = %stored.info.serial,
            not_after = %unix_to_rfc3339(stored.info.not_after),
            "serving the certificate from the shared database"
        );
        self.status
            .set_expiry(&stored.info.names, stored.info.not_after);
        self.certs.set_current(stored.key.clone());
        self.current = Some(stored);
        self.ari = None;
    }

    /// How long a node that does not order waits before it looks at the
    /// shared certificate again: until the certificate is due for renewal
    /// (the ordering node renews it then), and from then on every
    /// `acme_retry_min_secs` until the renewed one is there; every few
    /// seconds while it has nothing fitting to serve.
    fn follower_wait(&self) -> Duration {
        let retry = Duration::from_secs(self.settings.acme_retry_min_secs);
        let fits = self.current.as_ref().filter(|c| {
            c.info.covers(&self.settings.domains)
                && c.directory
                    .as_ref()
                    .is_none_or(|d| *d == self.settings.acme_directory)
        });
        let Some(current) = fits else {
            return retry.min(UNSERVED);
        };
        let left = current.info.renewal_due() - now();
        if left > 0 {
            Duration::from_secs(left as u64).min(RECHECK)
        } else {
            retry
        }
    }

    /// `acme_retry_min_secs` doubled per earlier failure, at most the max.
    fn backoff(&self) -> Duration {
        let min = self.settings.acme_retry_min_secs;
        let doublings = self.failures.saturating_sub(1).min(32);
        let secs = min.saturating_mul(1u64 << doublings);
        Duration::from_secs(secs.min(self.settings.acme_retry_max_secs))
    }

    async fn plan(&mut self) -> Plan {
        let Some(current) = &self.current else {
            return Plan::Now("no certificate");
        };
        if !current.info.covers(&self.settings.domains) {
            return Plan::Now("the configured domains changed");
        }
        if current
            .directory
            .as_ref()
            .is_some_and(|d| *d != self.settings.acme_directory)
        {
            // E.g. from Let's Encrypt's staging CA, whose certificates
            // browsers do not trust, to production.
            return Plan::Now("the ACME directory changed");
        }
        if self.failures > 0 {
            // A retry after a failure: the backoff has already been waited.
            return Plan::Now("retrying");
        }
        let third_left = current.info.renewal_due();
        let due = match self.renewal_info().await {
            Some(ari) => ari.renew_at,
            None => third_left,
        };
        if due <= now() {
            Plan::Now("renewal is due")
        } else {
            Plan::At(due)
        }
    }

    /// The CA's renewal window for the current certificate, when it offers
    /// ARI; asked again when the CA says to.
    async fn renewal_info(&mut self) -> Option<Ari> {
        if let Some(ari) = self.ari
            && ari.ask_again > now()
        {
            return Some(ari);
        }
        let leaf = self
            .current
            .as_ref()?
            .key
            .end_entity_cert()
            .ok()?
            .clone()
            .into_owned();
        let account = match self.account().await {
            Ok(account) => account,
            Err(e) => {
                tracing::debug!(error = %e, "no ARI: the ACME account is unavailable");
                return self.ari;
            }
        };
        let id = CertificateIdentifier::try_from(&leaf).ok()?;
        match account.renewal_info(&id).await {
            Ok((info, ask_after)) => {
                let start = info.suggested_window.start.unix_timestamp();
                let end = info.suggested_window.end.unix_timestamp().max(start);
                let renew_at = start + (rand::random::<u64>() % ((end - start) as u64 + 1)) as i64;
                let ari = Ari {
                    renew_at,
                    ask_again: now() + ask_after.as_secs().max(60) as i64,
                };
                self.ari = Some(ari);
                Some(ari)
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::debug!(error = %e, "ARI request failed");
                self.ari
            }
        }
    }

    async fn obtain(&mut self) -> Result<CertInfo, AcmeError> {
        let account = self.account().await?;
        // Rotate the preference after each failure, so a blocked port 80
        // does not stop the next try on port 443.
        let mut challenges: Vec<AcmeChallenge> = self.settings.acme_challenges.clone();
        let turn = self.failures as usize % challenges.len();
        challenges.rotate_left(turn);
        // ARI's "replaces" only on the first try: a refusal must not repeat.
        let leaf = match (&self.current, self.ari, self.failures) {
            (Some(current), Some(_), 0) => current
                .key
                .end_entity_cert()
                .ok()
                .map(|c| c.clone().into_owned()),
            _ => None,
        };
        let replaces = leaf
            .as_ref()
            .and_then(|l| CertificateIdentifier::try_from(l).ok());
        let issued = order::run(
            &account,
            &self.settings.domains,
            &challenges,
            replaces,
            &self.certs,
            &self.storage,
        )
        .await?;
        let key = certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())?;
        let info = key_info(&key)?;
        if !info.covers(&self.settings.domains) {
            return Err(AcmeError::Order(format!(
                "the issued certificate names {:?}, not every one of {:?}",
                info.names, self.settings.domains
            )));
        }
        self.storage
            .save_certificate(
                &issued.key_pem,
                &issued.chain_pem,
                &self.settings.acme_directory,
            )
            .await?;
        self.certs.set_current(key.clone());
        self.status
            .set_expiry(&self.settings.domains, info.not_after);
        self.current = Some(storage::Stored {
            key,
            info: info.clone(),
            directory: Some(self.settings.acme_directory.clone()),
        });
        self.ari = None;
        Ok(info)
    }

    /// The account at the configured directory: the stored one, or a new
    /// one (stored before use).
    async fn account(&mut self) -> Result<Account, AcmeError> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let directory = self.settings.acme_directory.clone();
        let email = self.settings.email.clone();
        let stored = self.storage.load_account().await?;
        let account = match stored {
            Some(stored) if stored.directory == directory => {
                let credentials: AccountCredentials =
                    serde_json::from_value(stored.credentials.clone())
                        .map_err(|e| AcmeError::Order(format!("stored account: {e}")))?;
                let account = Account::builder_with_http(self.http())
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| AcmeError::Order(format!("ACME directory {directory}: {e}")))?;
                if stored.email != email {
                    let contact = format!("mailto:{email}");
                    let contacts: Vec<&str> = if email.is_empty() {
                        vec![]
                    } else {
                        vec![&contact]
                    };
                    account.update_contacts(&contacts).await?;
                    self.storage
                        .save_account(&StoredAccount {
                            email: email.clone(),
                            ..stored
                        })
                        .await?;
                    tracing::info!(account = account.id(), "ACME account contact updated");
                }
                account
            }
            other => {
                if other.is_some() {
                    tracing::info!(%directory, "the ACME directory changed; creating an account there");
                }
                let contact = format!("mailto:{email}");
                let contacts: Vec<&str> = if email.is_empty() {
                    vec![]
                } else {
                    vec![&contact]
                };
                let (account, credentials) = Account::builder_with_http(self.http())
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| AcmeError::Order(format!("ACME directory {directory}: {e}")))?;
                self.storage
                    .save_account(&StoredAccount {
                        directory,
                        email,
                        credentials: serde_json::to_value(&credentials)
                            .map_err(|e| AcmeError::Order(format!("account: {e}")))?,
                    })
                    .await?;
                tracing::info!(account = account.id(), "ACME account created");
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    fn http(&self) -> Box<dyn HttpClient> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.client).clone())
            .https_only()
            .enable_http1()
            .build();
        Box::new(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, instant_acme::BodyWrapper<axum::body::Bytes>>(connector),
        )
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The HTTPS client config for the ACME directory: the system's roots plus
/// `tls.acme_ca_file`.
fn client_config(ca_file: &str) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if !ca_file.is_empty() {
        let pem = std::fs::read(ca_file).map_err(|source| TlsError::Read {
            path: ca_file.to_owned(),
            source,
        })?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| TlsError::Invalid(format!("{ca_file}: {e}")))?;
            roots.add(cert)?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Invalid(
            "no root certificates to trust the ACME directory with: install ca-certificates or set tls.acme_ca_file".into(),
        ));
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
