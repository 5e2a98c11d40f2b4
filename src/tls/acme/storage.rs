//! Where ACME keeps its state: the account (`account.json`), the
//! certificate with its key (`certificate.pem`: the private key, then the
//! chain) and the directory that issued it (`certificate.json`, so that
//! moving from a staging CA to a production one orders a new certificate).
//!
//! - With the embedded database: files in `data_dir/acme/` (0700), each
//!   written whole, atomically (temp file, fsync, rename) with mode 0600,
//!   so a crash leaves the old file or the new one, and a key never sits
//!   beside a certificate it does not belong to.
//! - With a shared database: the same three documents as blobs of the
//!   store (`acme:<file name>`), each replaced whole in one statement, so
//!   every node serves the certificate the ordering node stored. The
//!   challenge answers of an order in flight are kept there too
//!   (`acme:challenges.json`), so that whichever node the CA reaches can
//!   answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_private;
use crate::store::Store;
use crate::tls::TlsError;
use crate::tls::certs::{CertInfo, certified_key, key_info};

pub const ACCOUNT_FILE: &str = "account.json";
pub const CERTIFICATE_FILE: &str = "certificate.pem";
pub const ISSUER_FILE: &str = "certificate.json";
/// Only ever in a shared database: the answers of the order in flight.
const CHALLENGES: &str = "challenges.json";

#[derive(Serialize, Deserialize)]
struct Issuer {
    directory: String,
}

/// An account at one ACME directory.
#[derive(Serialize, Deserialize)]
pub struct StoredAccount {
    pub directory: String,
    pub email: String,
    /// instant-acme's `AccountCredentials`: the account URL and its key.
    pub credentials: serde_json::Value,
}

/// The challenge answers of the order in flight, for every node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// HTTP-01: token -> key authorization.
    #[serde(default)]
    pub http01: BTreeMap<String, String>,
    /// TLS-ALPN-01: domain -> SHA-256 of the key authorization, hex.
    #[serde(default)]
    pub tls_alpn01: BTreeMap<String, String>,
}

#[derive(Clone)]
pub enum Storage {
    /// `data_dir/acme`, this node's own.
    Files(PathBuf),
    /// Blobs of the database every node shares.
    Shared(Store),
}

/// The stored certificate, ready to serve.
pub struct Stored {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    /// The ACME directory it came from, when known.
    pub directory: Option<String>,
}

/// The blob key of an ACME document in a shared database.
pub fn blob_key(name: &str) -> String {
    format!("acme:{name}")
}

impl Storage {
    /// The store's database when it is shared, else `data_dir/acme`
    /// (created, 0700).
    pub fn open(data_dir: &Path, store: &Store) -> Result<Storage, TlsError> {
        let dir = dir(data_dir);
        if store.is_shared() {
            if dir.join(CERTIFICATE_FILE).exists() {
                tracing::warn!(
                    dir = %dir.display(),
                    "ACME files in the data dir are not used with a shared database (mychat migrate --from-redb copies them)"
                );
            }
            return Ok(Storage::Shared(store.clone()));
        }
        crate::fsutil::create_private_dir(&dir).map_err(|source| TlsError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Storage::Files(dir))
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Storage::Shared(_))
    }

    /// Where a document lives, for messages.
    fn place(&self, name: &str) -> String {
        match self {
            Storage::Files(dir) => dir.join(name).display().to_string(),
            Storage::Shared(_) => format!("the database's {}", blob_key(name)),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, TlsError> {
        match self {
            Storage::Files(dir) => {
                let path = dir.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(TlsError::Read {
                        path: path.display().to_string(),
                        source,
                    }),
                }
            }
            Storage::Shared(store) => {
                let (store, key) = (store.clone(), blob_key(name));
                blocking(move || store.get_blob(&key)).await
            }
        }
    }

    async fn write(&self, name: &str, bytes: Vec<u8>) -> Result<(), TlsError> {
        match self {
            Storage::Files(dir) => {
                let path = dir.join(name);
                write_private(&path, &bytes).map_err(|source| TlsError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
            Storage::Shared(store) => {
                let (store, key) = (store.clone(), blob_key(name));
                blocking(move || store.put_blob(&key, &bytes)).await
            }
        }
    }

    pub async fn load_account(&self) -> Result<Option<StoredAccount>, TlsError> {
        let Some(bytes) = self.read(ACCOUNT_FILE).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", self.place(ACCOUNT_FILE))))
    }

    pub async fn save_account(&self, account: &StoredAccount) -> Result<(), TlsError> {
        let bytes = serde_json::to_vec_pretty(account)
            .map_err(|e| TlsError::Invalid(format!("account: {e}")))?;
        self.write(ACCOUNT_FILE, bytes).await
    }

    /// The stored certificate, if there is one that can be served.
    pub async fn load_certificate(&self) -> Result<Option<Stored>, TlsError> {
        let Some(pem) = self.read(CERTIFICATE_FILE).await? else {
            return Ok(None);
        };
        // One document holds both: each parser takes the sections of its kind.
        let key = certified_key(&pem, &pem)?;
        let info = key_info(&key)?;
        let directory = self
            .read(ISSUER_FILE)
            .await?
            .and_then(|bytes| serde_json::from_slice::<Issuer>(&bytes).ok())
            .map(|issuer| issuer.directory);
        Ok(Some(Stored {
            key,
            info,
            directory,
        }))
    }

    /// Stores a certificate and its key, then which directory issued it (a
    /// crash in between makes the next start order once more, no worse).
    pub async fn save_certificate(
        &self,
        key_pem: &str,
        chain_pem: &str,
        directory: &str,
    ) -> Result<(), TlsError> {
        let mut pem = String::with_capacity(key_pem.len() + chain_pem.len() + 1);
        pem.push_str(key_pem.trim_end());
        pem.push('\n');
        pem.push_str(chain_pem);
        self.write(CERTIFICATE_FILE, pem.into_bytes()).await?;
        let issuer = serde_json::to_vec(&Issuer {
            directory: directory.to_owned(),
        })
        .map_err(|e| TlsError::Invalid(format!("certificate issuer: {e}")))?;
        self.write(ISSUER_FILE, issuer).await
    }

    /// Publishes the answers of the order in flight to every node; nothing
    /// to do with files (this node answers alone).
    pub async fn save_pending(&self, pending: &Pending) -> Result<(), TlsError> {
        if !self.is_shared() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(pending)
            .map_err(|e| TlsError::Invalid(format!("challenges: {e}")))?;
        self.write(CHALLENGES, bytes).await
    }

    /// The answers of the order in flight on whichever node orders (empty
    /// with files).
    pub async fn load_pending(&self) -> Result<Pending, TlsError> {
        if !self.is_shared() {
            return Ok(Pending::default());
        }
        let Some(bytes) = self.read(CHALLENGES).await? else {
            return Ok(Pending::default());
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", self.place(CHALLENGES))))
    }

    /// Forgets the answers once the order ended.
    pub async fn clear_pending(&self) -> Result<(), TlsError> {
        match self {
            Storage::Files(_) => Ok(()),
            Storage::Shared(store) => {
                let store = store.clone();
                blocking(move || store.delete_blobs(&[blob_key(CHALLENGES)])).await
            }
        }
    }
}

/// Runs a blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::store::Result<T> + Send + 'static,
) -> Result<T, TlsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TlsError::Invalid(format!("ACME storage: {e}")))?
        .map_err(|e| TlsError::Invalid(format!("ACME storage: {e}")))
}

/// `data_dir/acme`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("acme")
}
