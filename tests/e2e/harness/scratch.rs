//! Where the tests keep their temporary dirs: data dirs, browser
//! profiles, certificates.
//!
//! Each test process has one folder of its own under
//! `$TMPDIR/mychat-tests/`, beside a lock file it holds while it runs. A
//! test's dirs are removed when the test drops them, but not always
//! whole: a server whose test ended may still be writing into its data
//! dir while it goes, and a browser's profile outlives its driver. So the
//! first test of every process removes the folders of the processes that
//! have ended (their lock files are free): what one run leaves behind,
//! the next run takes away, and a machine that runs the tests every day
//! does not fill its disk.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};

/// A lock file younger than this may belong to a process that has made
/// it and not yet locked it: it is left alone.
const NEWBORN: Duration = Duration::from_secs(60);

struct Scratch {
    dir: PathBuf,
    /// Locked for the life of the process; the lock ends with it.
    _lock: File,
}

/// A new temporary dir in this process's folder, removed on drop.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(folder()).expect("a temp dir in the tests' folder")
}

/// This process's folder, made (and the ended processes' folders
/// removed) on first use.
pub fn folder() -> &'static Path {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    &SCRATCH
        .get_or_init(|| {
            let root = std::env::temp_dir().join("mychat-tests");
            std::fs::create_dir_all(&root).expect("the tests' temp root");
            sweep(&root);
            let (lock, lock_path) = tempfile::Builder::new()
                .prefix("run-")
                .suffix(".lock")
                .tempfile_in(&root)
                .expect("a lock file")
                .keep()
                .expect("the lock file stays");
            flock(&lock, FlockOperation::NonBlockingLockExclusive).expect("lock our own file");
            let dir = lock_path.with_extension("");
            std::fs::create_dir(&dir).expect("this process's temp folder");
            Scratch { dir, _lock: lock }
        })
        .dir
}

/// Removes the folders whose process has ended: their lock file can be
/// locked, and is not brand new.
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "lock") {
            continue;
        }
        let newborn = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|at| at.elapsed().unwrap_or_default() < NEWBORN)
            .unwrap_or(true);
        if newborn {
            continue;
        }
        let Ok(lock) = File::open(&path) else {
            continue;
        };
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
            let _ = std::fs::remove_dir_all(path.with_extension(""));
            let _ = std::fs::remove_file(&path);
        }
    }
}
