//! A small tmpfs of the test's own, for a data dir or a backup target on a
//! file system that can be filled to the brim. Mounting needs root (CI
//! runs as root); without it the test fails and says why, unless
//! `MYCHAT_SKIP_PRIVILEGED_TESTS=1` asks to skip such tests (which is then
//! said just as loudly).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

/// Whether a test that needs root may be skipped here; panics otherwise.
pub fn privileged_missing(what: &str) -> bool {
    if std::env::var_os("MYCHAT_SKIP_PRIVILEGED_TESTS").is_some() {
        eprintln!(
            "\n!!! SKIPPED: {what}; this test needs root (MYCHAT_SKIP_PRIVILEGED_TESTS is set) !!!\n"
        );
        return true;
    }
    panic!(
        "{what}: this test needs root (CI runs as root); set MYCHAT_SKIP_PRIVILEGED_TESTS=1 to skip it knowingly"
    );
}

impl Tmpfs {
    /// A fresh tmpfs of `mib` MiB, or None when the test may be skipped.
    pub fn mount(mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            privileged_missing("mounting a tmpfs failed");
            return None;
        }
        let filler = dir.path().join("filler");
        Some(Tmpfs { dir, filler })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn free_bytes(&self) -> u64 {
        let stat = rustix::fs::statvfs(self.path()).expect("statvfs");
        stat.f_bavail * stat.f_frsize
    }

    /// Grows the filler file until no byte is left.
    pub fn fill(&self) {
        self.fill_leaving(0);
    }

    /// Grows the filler file until about `bytes` are left free.
    pub fn fill_leaving(&self, bytes: u64) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("filler");
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            let free = self.free_bytes();
            if free <= bytes {
                break;
            }
            let n = ((free - bytes) as usize).min(chunk.len());
            if file.write_all(&chunk[..n]).is_err() {
                // ENOSPC: full to the brim; a page-sized write ends any rest.
                if file.write_all(&chunk[..4096]).is_err() {
                    break;
                }
            }
        }
    }

    /// Removes the filler: the space is back.
    pub fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
