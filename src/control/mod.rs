//! The control socket: `data_dir/mychat.sock` (mode 0600 inside the 0700
//! data dir, so only the service's user and root reach it). A running
//! server holds the database exclusively; commands that need it while the
//! server runs ask the server through this socket.
//!
//! The protocol is one request line (`backup`), answered by `ok` and the
//! payload until the connection closes, or by `error: <reason>`. This is
//! the server's side; `client` is the commands' side.

pub mod client;

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::backup;
use crate::state::AppState;
use crate::tasks::Tasks;

pub use client::SOCKET;

/// Listens on the socket until shutdown. Without it the server still runs;
/// only online backups are unavailable.
pub fn start(state: &AppState, tasks: &mut Tasks) {
    let path = state.config.data_dir.join(SOCKET);
    // This process holds the database, so a socket file left here belongs
    // to a server that is gone.
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no control socket; `mychat backup` needs the server stopped");
            return;
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    let state = state.clone();
    tasks.spawn("control-socket", move |mut stop| async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.requested() => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = answer(&state, stream) {
                    tracing::warn!(error = %e, "control request failed");
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    });
}

fn answer(state: &AppState, stream: UnixStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(256)).read_line(&mut line)?;
    let mut out = &stream;
    match line.trim() {
        "backup" => {
            let dir = &state.config.data_dir;
            let copy = dir.join(format!(".backup-{}.redb", uuid::Uuid::new_v4()));
            let result = state.store.backup_to(&copy);
            let written = match result {
                Ok(summary) => {
                    out.write_all(b"ok\n")?;
                    backup::write_archive(&copy, summary, dir, BufWriter::new(out))
                        .map(|manifest| {
                            tracing::info!(
                                entries = manifest.database.entries,
                                messages = manifest.database.messages,
                                files = manifest.files.len(),
                                "backup sent"
                            );
                        })
                        .map_err(std::io::Error::other)
                }
                Err(e) => writeln!(out, "error: {e}"),
            };
            let _ = std::fs::remove_file(&copy);
            written
        }
        other => writeln!(out, "error: unknown command {other:?}"),
    }
}
