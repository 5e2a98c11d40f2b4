//! What ACME keeps in `data_dir/acme/` (0700): the account (`account.json`)
//! and the certificate with its key (`certificate.pem`: the private key, then
//! the chain). Each file is written whole, atomically (temp file, fsync,
//! rename) with mode 0600, so a crash leaves the old file or the new one,
//! and a key never sits beside a certificate it does not belong to.
//! `certificate.json` names the directory that issued it, so that moving
//! from a staging CA to a production one orders a new certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_private;
use crate::tls::TlsError;
use crate::tls::certs::{CertInfo, certified_key, key_info};

pub const ACCOUNT_FILE: &str = "account.json";
pub const CERTIFICATE_FILE: &str = "certificate.pem";
pub const ISSUER_FILE: &str = "certificate.json";

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

pub struct Storage {
    dir: PathBuf,
}

/// The stored certificate, ready to serve.
pub struct Stored {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    /// The ACME directory it came from, when known.
    pub directory: Option<String>,
}

impl Storage {
    /// Opens (creating, 0700) the directory.
    pub fn open(dir: PathBuf) -> Result<Storage, TlsError> {
        crate::fsutil::create_private_dir(&dir).map_err(|source| TlsError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Storage { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, TlsError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TlsError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), TlsError> {
        let path = self.path(name);
        write_private(&path, bytes).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn load_account(&self) -> Result<Option<StoredAccount>, TlsError> {
        let Some(bytes) = self.read(ACCOUNT_FILE)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", self.path(ACCOUNT_FILE).display())))
    }

    pub fn save_account(&self, account: &StoredAccount) -> Result<(), TlsError> {
        let bytes = serde_json::to_vec_pretty(account)
            .map_err(|e| TlsError::Invalid(format!("account: {e}")))?;
        self.write(ACCOUNT_FILE, &bytes)
    }

    /// The stored certificate, if there is one that can be served.
    pub fn load_certificate(&self) -> Result<Option<Stored>, TlsError> {
        let Some(pem) = self.read(CERTIFICATE_FILE)? else {
            return Ok(None);
        };
        // One file holds both: each parser takes the sections of its kind.
        let key = certified_key(&pem, &pem)?;
        let info = key_info(&key)?;
        let directory = self
            .read(ISSUER_FILE)?
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
    pub fn save_certificate(
        &self,
        key_pem: &str,
        chain_pem: &str,
        directory: &str,
    ) -> Result<(), TlsError> {
        let mut pem = String::with_capacity(key_pem.len() + chain_pem.len() + 1);
        pem.push_str(key_pem.trim_end());
        pem.push('\n');
        pem.push_str(chain_pem);
        self.write(CERTIFICATE_FILE, pem.as_bytes())?;
        let issuer = serde_json::to_vec(&Issuer {
            directory: directory.to_owned(),
        })
        .map_err(|e| TlsError::Invalid(format!("certificate issuer: {e}")))?;
        self.write(ISSUER_FILE, &issuer)
    }
}

/// `data_dir/acme`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("acme")
}
