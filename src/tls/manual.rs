//! `tls.mode = "manual"`: the certificate chain and key come from
//! `tls.cert_file` and `tls.key_file`, and are read again on SIGHUP and when
//! either file's modification time changes. A reload that fails keeps the
//! certificate that is being served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::certs::{certified_key, key_info, unix_to_rfc3339};
use super::{Certs, TlsError, TlsStatus};
use crate::config::TlsConfig;
use crate::tasks::{Stop, Tasks};

/// How often the files' modification times are looked at.
const POLL: Duration = Duration::from_secs(2);

/// Loads the files (an error stops the start) and starts the reloader.
pub fn start(
    settings: &TlsConfig,
    status: &Arc<TlsStatus>,
    certs: &Arc<Certs>,
    tasks: &mut Tasks,
) -> Result<(), TlsError> {
    let files = Files {
        cert: PathBuf::from(&settings.cert_file),
        key: PathBuf::from(&settings.key_file),
        domains: settings.domains.clone(),
    };
    let seen = files.modified();
    install(status, certs, &files)?;
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| TlsError::Invalid(format!("cannot listen for SIGHUP: {e}")))?;
    let (status, certs) = (status.clone(), certs.clone());
    tasks.spawn("tls-reload", move |stop| async move {
        #[cfg(unix)]
        reload_loop(status, certs, files, seen, stop, hangup).await;
        #[cfg(not(unix))]
        reload_loop(status, certs, files, seen, stop).await;
    });
    Ok(())
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
    /// The configured names, for a certificate that names none.
    domains: Vec<String>,
}

impl Files {
    fn modified(&self) -> [Option<SystemTime>; 2] {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        [mtime(&self.cert), mtime(&self.key)]
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn install(status: &TlsStatus, certs: &Certs, files: &Files) -> Result<(), TlsError> {
    let key = certified_key(&read(&files.cert)?, &read(&files.key)?)?;
    let info = key_info(&key)?;
    let names = if info.names.is_empty() {
        files.domains.clone()
    } else {
        info.names.clone()
    };
    status.set_expiry(&names, info.not_after);
    certs.set_current(key);
    tracing::info!(
        cert = %files.cert.display(),
        names = ?names,
        serial = %info.serial,
        not_after = %unix_to_rfc3339(info.not_after),
        "serving certificate from files"
    );
    Ok(())
}

async fn reload_loop(
    status: Arc<TlsStatus>,
    certs: Arc<Certs>,
    files: Files,
    mut seen: [Option<SystemTime>; 2],
    mut stop: Stop,
    #[cfg(unix)] mut hangup: tokio::signal::unix::Signal,
) {
    loop {
        #[cfg(unix)]
        let signalled = async { hangup.recv().await };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<Option<()>>();
        let reason = tokio::select! {
            _ = stop.requested() => return,
            _ = signalled => "SIGHUP",
            _ = tokio::time::sleep(POLL) => {
                let now = files.modified();
                if now == seen {
                    continue;
                }
                "files changed"
            }
        };
        seen = files.modified();
        if let Err(e) = install(&status, &certs, &files) {
            tracing::error!(reason, error = %e, "certificate reload failed; still serving the previous certificate");
        }
    }
}
