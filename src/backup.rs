//! `mychat backup FILE` and `mychat restore FILE`.
//!
//! A backup is one tar file (mode 0600): `mychat.redb`, a consistent copy
//! made by `store::backup` from one read transaction; then every other file
//! of the data dir (signing key, ACME account and certificate, and
//! `attachments/` when there is one), copied after the database snapshot so
//! that every file the snapshot refers to is there; and last a manifest
//! listing the files and what the database holds. A backup missing its
//! manifest, or whose files differ from it, is refused.
//!
//! While a server runs it holds the database, so the server makes the copy
//! and streams the archive over the control socket (`control`); with no
//! server the command opens the database itself. Either way the file is
//! written beside its destination, synced, verified (the database is opened
//! and checked) and only then renamed into place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DB_FILE;
use crate::control::client as control;
use crate::fsutil::{create_private_dir, sync_dir};
use crate::store::backup::Summary;

/// The last entry of every backup.
pub const MANIFEST: &str = "mychat-backup.json";
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("database: {0}")]
    Store(#[from] crate::store::Error),
    #[error("not a usable backup: {0}")]
    Invalid(String),
    #[error("the server refused: {0}")]
    Server(String),
    #[error("{} is not empty; restore only into an empty data dir", .0.display())]
    NotEmpty(PathBuf),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub program_version: String,
    pub created_at: String,
    pub database: Summary,
    /// Every entry before the manifest, in order, with its size.
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of the contents.
    pub sha256: String,
}

/// Passes bytes through and hashes them.
struct Hashing<T> {
    inner: T,
    hash: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    fn entry(self, path: String) -> FileEntry {
        FileEntry {
            path,
            size: self.bytes,
            sha256: hex::encode(self.hash.finalize()),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the archive: the database copy at `db_copy`, the data dir's other
/// files, the manifest.
pub fn write_archive(
    db_copy: &Path,
    database: Summary,
    data_dir: &Path,
    out: impl Write,
) -> Result<Manifest, BackupError> {
    let mut tar = tar::Builder::new(BufWriter::new(out));
    let mut files = Vec::new();
    let mut db = File::open(db_copy)?;
    files.push(append(&mut tar, DB_FILE, &mut db)?);
    for (path, name) in data_files(data_dir)? {
        match File::open(&path) {
            Ok(mut file) => files.push(append(&mut tar, &name, &mut file)?),
            // Removed since the directory was listed: not part of the backup.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        program_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now().to_rfc3339(),
        database,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, json.as_slice())?;
    tar.into_inner()?.flush()?;
    Ok(manifest)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    file: &mut File,
) -> Result<FileEntry, BackupError> {
    let size = file.metadata()?.len();
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    // A file that grows meanwhile is cut at the size read above.
    let mut data = Hashing::new(file.take(size));
    tar.append_data(&mut header, name, &mut data)?;
    if data.bytes != size {
        return Err(BackupError::Invalid(format!(
            "{name} shrank while it was copied"
        )));
    }
    Ok(data.entry(name.to_owned()))
}

/// The data dir's files besides the database: relative names with `/`.
/// Left out: the live database, sockets, temporary files, and what backups
/// and restores leave while they run.
fn data_files(data_dir: &Path) -> io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let mut entries: Vec<_> = fs::read_dir(data_dir.join(&rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `.part`: uploads in progress (`attachments/tmp/`).
            let skip = name.starts_with('.')
                || name.ends_with(".tmp")
                || name.ends_with(".part")
                || name == control::SOCKET;
            // The search index is rebuilt from the database after a restore;
            // the database's copy already holds what its log held.
            let top = rel.as_os_str().is_empty();
            if skip
                || (top
                    && (name == DB_FILE
                        || crate::WAL_FILES.contains(&name.as_str())
                        || name == crate::search::DIR))
            {
                continue;
            }
            let kind = entry.file_type()?;
            let child = rel.join(&name);
            if kind.is_dir() {
                pending.push(child);
            } else if kind.is_file() {
                let text = child
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((data_dir.join(&child), text));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// `mychat backup DEST`: from the running server when there is one, else
/// from the database file; verified before it is renamed into place.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<Manifest, BackupError> {
    if dest.exists() {
        return Err(BackupError::Invalid(format!(
            "{} already exists; a backup never overwrites",
            dest.display()
        )));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = dest
        .file_name()
        .ok_or_else(|| BackupError::Invalid(format!("{} is not a file name", dest.display())))?
        .to_string_lossy()
        .into_owned();
    let partial = dir.join(format!(".{stem}.{}.partial", uuid::Uuid::new_v4()));
    let result = write_and_verify(data_dir, &dir, &partial);
    match result {
        Ok(manifest) => {
            // Not over a file that appeared meanwhile.
            fs::hard_link(&partial, dest)?;
            fs::remove_file(&partial)?;
            sync_dir(&dir);
            Ok(manifest)
        }
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn write_and_verify(data_dir: &Path, dir: &Path, partial: &Path) -> Result<Manifest, BackupError> {
    let mut file = private_file(partial)?;
    let answer = control::request(data_dir, "backup", &mut file)?;
    if let control::Answer::Refused(reason) = answer {
        return Err(BackupError::Server(reason));
    }
    if answer == control::Answer::NoServer {
        // No server: this process may open the database itself.
        let copy = dir.join(format!(".mychat-copy-{}.redb", uuid::Uuid::new_v4()));
        let written = crate::store::backup::backup_file(&data_dir.join(DB_FILE), &copy)
            .map_err(|e| match e {
                crate::store::Error::Storage(m) if m.contains("already open") => {
                    BackupError::Server(format!(
                        "the database is in use, but the server's control socket {} does not answer",
                        data_dir.join(control::SOCKET).display()
                    ))
                }
                e => e.into(),
            })
            .and_then(|summary| write_archive(&copy, summary, data_dir, &mut file));
        let _ = fs::remove_file(&copy);
        written?;
    }
    file.sync_all()?;
    drop(file);
    verify_archive(partial)
}

fn private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Reads a backup through, checks every file against the manifest, and
/// opens and checks its database (in a scratch dir beside the file).
pub fn verify_archive(archive: &Path) -> Result<Manifest, BackupError> {
    let dir = match archive.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let scratch = dir.join(format!(".mychat-verify-{}", uuid::Uuid::new_v4()));
    create_private_dir(&scratch)?;
    let result = unpack(archive, &scratch, false);
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// Reads the archive into `dest` (only the database unless `everything`),
/// checks it against its manifest and verifies the database.
fn unpack(archive: &Path, dest: &Path, everything: bool) -> Result<Manifest, BackupError> {
    let invalid = |m: String| BackupError::Invalid(m);
    let mut tar = tar::Archive::new(io::BufReader::new(File::open(archive)?));
    let mut seen = Vec::new();
    let mut manifest: Option<Manifest> = None;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let name =
            safe_name(&path).ok_or_else(|| invalid(format!("unsafe path {}", path.display())))?;
        if manifest.is_some() {
            return Err(invalid(format!("{name} follows the manifest")));
        }
        if !entry.header().entry_type().is_file() {
            return Err(invalid(format!("{name} is not a regular file")));
        }
        if name == MANIFEST {
            let mut json = Vec::new();
            entry.read_to_end(&mut json)?;
            manifest =
                Some(serde_json::from_slice(&json).map_err(|e| invalid(format!("manifest: {e}")))?);
            continue;
        }
        let copied = if everything || name == DB_FILE {
            let target = dest.join(&path);
            if let Some(parent) = target.parent() {
                create_private_dir(parent)?;
            }
            let mut out = Hashing::new(private_file(&target)?);
            io::copy(&mut entry, &mut out)?;
            out.inner.sync_all()?;
            out.entry(name)
        } else {
            let mut out = Hashing::new(io::sink());
            io::copy(&mut entry, &mut out)?;
            out.entry(name)
        };
        seen.push(copied);
    }
    let manifest = manifest.ok_or_else(|| invalid("no manifest: the file is cut short".into()))?;
    if manifest.format != FORMAT {
        return Err(invalid(format!(
            "format {} is not {FORMAT}",
            manifest.format
        )));
    }
    if manifest.files != seen {
        return Err(invalid("its files differ from its manifest".into()));
    }
    let database = crate::store::backup::verify(&dest.join(DB_FILE))?;
    if database != manifest.database {
        return Err(invalid(format!(
            "the database holds {database:?}, the manifest says {:?}",
            manifest.database
        )));
    }
    Ok(manifest)
}

/// A relative path of normal components, as `a/b`.
fn safe_name(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// `mychat restore FILE`: verifies the backup and puts its files into an
/// empty (or missing) data dir.
pub fn restore(archive: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    if data_dir.exists() && fs::read_dir(data_dir)?.next().is_some() {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    create_private_dir(data_dir)?;
    let staging = data_dir.join(format!(".restore-{}", uuid::Uuid::new_v4()));
    create_private_dir(&staging)?;
    let result = unpack(archive, &staging, true).and_then(|manifest| {
        for entry in fs::read_dir(&staging)? {
            let entry = entry?;
            fs::rename(entry.path(), data_dir.join(entry.file_name()))?;
        }
        Ok(manifest)
    });
    let _ = fs::remove_dir_all(&staging);
    sync_dir(data_dir);
    if result.is_ok() {
        adopt_owner(data_dir);
    } else if let Ok(entries) = fs::read_dir(data_dir) {
        // Leave the data dir as empty as it was found.
        for entry in entries.flatten() {
            let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
        }
    }
    result
}

/// Gives restored files to the data dir's owner (a restore run as root into
/// the service's directory), when allowed.
fn adopt_owner(data_dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = fs::metadata(data_dir) else {
            return;
        };
        let (uid, gid) = (meta.uid(), meta.gid());
        let mut pending = vec![data_dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if let Ok(m) = fs::symlink_metadata(&path) {
                    if m.uid() != uid || m.gid() != gid {
                        let _ = std::os::unix::fs::chown(&path, Some(uid), Some(gid));
                    }
                    if m.is_dir() {
                        pending.push(path);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_database_its_logs_and_the_search_index_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        for name in [DB_FILE, crate::WAL_FILES[0], crate::WAL_FILES[1], "jwt.key"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::create_dir(dir.path().join(crate::search::DIR)).unwrap();
        fs::write(dir.path().join(crate::search::DIR).join("meta.json"), b"x").unwrap();
        let names: Vec<String> = data_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        assert_eq!(names, vec!["jwt.key".to_owned()]);
    }

    #[test]
    fn only_plain_relative_paths_are_accepted() {
        assert_eq!(
            safe_name(Path::new("attachments/a/b.png")).unwrap(),
            "attachments/a/b.png"
        );
        assert!(safe_name(Path::new("../etc/passwd")).is_none());
        assert!(safe_name(Path::new("/etc/passwd")).is_none());
        assert!(safe_name(Path::new("a/../../b")).is_none());
    }
}
