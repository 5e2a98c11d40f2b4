//! Where attachment bytes live: `data_dir/attachments/<2 hex>/<32 hex>`,
//! with thumbnails beside them as `<key>.thumb`, and uploads in progress in
//! `data_dir/attachments/tmp/`. Nothing here is ever served as a folder;
//! every byte goes out through the guarded download route.
//!
//! Files and metadata change in a fixed order so a crash never leaves
//! metadata pointing at nothing: a new file is moved into place (and
//! synced) before the commit that records it; a file is deleted only after
//! the commit that removed its metadata.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rand::RngCore;
use tokio::io::AsyncWriteExt;

/// The folder inside the data dir; backups copy it whole.
pub const DIR: &str = "attachments";
const TMP: &str = "tmp";
const THUMB_SUFFIX: &str = ".thumb";

pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// Bytes an unprivileged process may still write on the file system that
/// holds `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// A new random storage key (128 bits, hex).
pub fn new_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn thumbnail_key(key: &str) -> String {
    format!("{key}{THUMB_SUFFIX}")
}

/// The path of a storage key; None for anything that is not a key this
/// module made, so a damaged record can never name a path outside the folder.
pub fn path_of(root: &Path, key: &str) -> Option<PathBuf> {
    let id = key.strip_suffix(THUMB_SUFFIX).unwrap_or(key);
    let valid = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| root.join(&id[..2]).join(key))
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// A file being received. Dropped before [`TempFile::place`] — a refused,
/// failed or abandoned upload — it deletes itself.
pub struct TempFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl TempFile {
    pub async fn create(root: &Path) -> std::io::Result<TempFile> {
        let dir = root.join(TMP);
        let path = dir.join(format!("{}.part", new_key()));
        let file = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                private_dir(&dir)?;
                private_file(&path)
            })
            .await
            .map_err(std::io::Error::other)??
        };
        Ok(TempFile {
            path,
            file: Some(tokio::fs::File::from_std(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(bytes).await,
            None => Err(std::io::Error::other("temp file already closed")),
        }
    }

    /// Flushes and syncs the content; the file stays a temp file.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
            f.sync_all().await?;
        }
        Ok(())
    }

    /// Moves the finished file to `key`'s place and hands its removal to
    /// `placed`, so it is deleted again unless the metadata commit succeeds.
    pub fn place(mut self, root: &Path, key: &str, placed: &mut Placed) -> std::io::Result<()> {
        let dest = path_of(root, key).ok_or_else(|| std::io::Error::other("bad storage key"))?;
        let dir = dest.parent().expect("a key has a folder").to_path_buf();
        private_dir(&dir)?;
        std::fs::rename(&self.path, &dest)?;
        placed.paths.push(dest);
        sync_dir(&dir);
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes a small finished file (a thumbnail) straight to `key`'s place.
pub fn place_bytes(
    root: &Path,
    key: &str,
    bytes: &[u8],
    placed: &mut Placed,
) -> std::io::Result<()> {
    use std::io::Write;
    let dest = path_of(root, key).ok_or_else(|| std::io::Error::other("bad storage key"))?;
    let dir = dest.parent().expect("a key has a folder").to_path_buf();
    private_dir(&dir)?;
    let tmp = root.join(TMP).join(format!("{}.part", new_key()));
    private_dir(&root.join(TMP))?;
    let written = (|| {
        let mut f = private_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    placed.paths.push(dest);
    sync_dir(&dir);
    Ok(())
}

/// Files moved into place for metadata not committed yet. Dropped without
/// [`Placed::keep`], it deletes them.
#[derive(Default)]
pub struct Placed {
    paths: Vec<PathBuf>,
}

impl Placed {
    pub fn keep(mut self) {
        self.paths.clear();
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Deletes stored files; a missing one is already what we want.
pub async fn remove(root: PathBuf, keys: Vec<String>) {
    if keys.is_empty() {
        return;
    }
    let result = tokio::task::spawn_blocking(move || {
        for key in &keys {
            let Some(path) = path_of(&root, key) else {
                continue;
            };
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(error = %e, "could not delete an attachment file"),
            }
        }
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "attachment file removal failed");
    }
}

/// Deletes uploads in progress older than `age`: leftovers of a crash.
pub async fn sweep_tmp(root: PathBuf, age: Duration) -> usize {
    tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(root.join(TMP)) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d > age);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    })
    .await
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generated_keys_name_paths() {
        let root = Path::new("/data/attachments");
        let key = new_key();
        assert_eq!(
            path_of(root, &key).unwrap(),
            root.join(&key[..2]).join(&key)
        );
        assert!(path_of(root, &thumbnail_key(&key)).is_some());
        assert!(path_of(root, "../../etc/passwd").is_none());
        assert!(path_of(root, &key.to_uppercase()).is_none());
        assert!(path_of(root, "").is_none());
    }

    #[tokio::test]
    async fn an_unplaced_temp_file_deletes_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut tmp = TempFile::create(dir.path()).await.unwrap();
        tmp.write(b"abc").await.unwrap();
        let path = tmp.path().to_path_buf();
        assert!(path.exists());
        drop(tmp);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn placed_files_go_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = new_key();
        let mut placed = Placed::default();
        let mut tmp = TempFile::create(dir.path()).await.unwrap();
        tmp.write(b"abc").await.unwrap();
        tmp.finish().await.unwrap();
        tmp.place(dir.path(), &key, &mut placed).unwrap();
        let path = path_of(dir.path(), &key).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        drop(placed);
        assert!(!path.exists());
    }
}
