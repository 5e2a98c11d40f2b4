//! A real PostgreSQL for the `postgres` store backend: one server per test
//! process, `initdb` into a temp dir, on a free port; a fresh database for
//! every test server (or cluster of them).
//!
//! The server is stopped when the test process exits: it runs under a
//! small shell that waits on a pipe from this process and stops it when
//! the pipe closes.

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

struct Server {
    port: u16,
    _dir: tempfile::TempDir,
    /// Closing it (at exit) stops the server.
    _stop: Mutex<ChildStdin>,
    _watch: Mutex<Child>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// Whether the whole suite runs against PostgreSQL
/// (`MYCHAT_TEST_BACKEND=postgres`).
pub fn suite_on_postgres() -> bool {
    std::env::var("MYCHAT_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

/// Where Debian keeps the server's programs (not on PATH), else PATH.
fn bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// initdb and postgres refuse to run as root: as root, they run as the
/// `postgres` user the Debian package creates.
fn as_postgres() -> bool {
    rustix::process::getuid().is_root()
}

fn start() -> Server {
    let dir = tempfile::Builder::new()
        .prefix("mychat-pg-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let data = dir.path().join("data");
    let root = as_postgres();
    if root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success(), "chown of the PostgreSQL dir");
    }
    let initdb = format!(
        "{} -D {} -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8",
        bin("initdb").display(),
        data.display()
    );
    let out = shell(&initdb, root).output().expect("initdb runs");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = super::free_port();
    let postgres = format!(
        "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB",
        bin("postgres").display(),
        data.display(),
        dir.path().display()
    );
    // The shell starts the server and stops it once stdin closes (this
    // process exited, however it exited).
    let watch = format!(
        "{} > {dir}/log 2>&1 & pid=$!; read _ignored; kill -INT $pid; wait $pid; rm -rf {dir}",
        if root {
            format!("setpriv --reuid=postgres --regid=postgres --clear-groups {postgres}")
        } else {
            postgres
        },
        dir = dir.path().display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(watch)
        .stdin(Stdio::piped())
        .spawn()
        .expect("postgres starts");
    let stop = child.stdin.take().expect("stdin");
    // Ready once it accepts a connection and answers.
    let ready = (0..600).any(|_| {
        let ok = shell(
            &format!(
                "{} -h 127.0.0.1 -p {port} -U postgres -q",
                bin("pg_isready").display()
            ),
            false,
        )
        .status()
        .is_ok_and(|s| s.success());
        if !ok {
            std::thread::sleep(Duration::from_millis(50));
        }
        ok
    });
    assert!(
        ready,
        "PostgreSQL did not start: {}",
        std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
    );
    Server {
        port,
        _dir: dir,
        _stop: Mutex::new(stop),
        _watch: Mutex::new(child),
    }
}

fn shell(script: &str, root: bool) -> Command {
    let mut c = Command::new("sh");
    if root {
        c.arg("-c").arg(format!(
            "setpriv --reuid=postgres --regid=postgres --clear-groups sh -c '{script}'"
        ));
    } else {
        c.arg("-c").arg(script);
    }
    c
}

/// The URL of a new, empty database on the test process's server.
pub async fn fresh_database() -> String {
    let port = tokio::task::spawn_blocking(|| SERVER.get_or_init(start).port)
        .await
        .expect("server start");
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let base = format!("postgres://postgres@127.0.0.1:{port}");
    admin(&base, &format!("CREATE DATABASE {name}")).await;
    format!("{base}/{name}")
}

/// Drops a database made by [`fresh_database`] at once, ending the
/// connections to it: a node that loses its database.
pub async fn drop_database(url: &str) {
    let (base, name) = url.rsplit_once('/').expect("a database URL");
    admin(base, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// Runs one statement as the server's superuser.
async fn admin(base: &str, statement: &str) {
    sql(&format!("{base}/postgres"), statement).await;
}

/// Runs a script on the database at `url` as the superuser; returns the
/// first value of the last row it answered with, as text.
pub async fn sql(url: &str, script: &str) -> Option<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    let driver = tokio::spawn(connection);
    let answer = client.simple_query(script).await.expect(script);
    drop(client);
    let _ = driver.await;
    answer.iter().rev().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    })
}
