//! Consistent copies of the database while it is in use, and their checks.
//!
//! A backup is one read transaction: every table in [`tables::ALL`] is
//! copied from that snapshot into a fresh database file, which is committed
//! durably and then opened again and checked. The writer keeps committing
//! meanwhile; what the copy holds is exactly what was committed when the
//! snapshot began.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::engine::Kv;
use super::file::def;
use super::tables::{self, ALL};
use super::{Error, Result, Scan, Store, migrate};

/// Entries per commit while copying, to bound the copy's memory.
const CHUNK: u64 = 50_000;

/// What a database file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u64,
    pub tables: usize,
    pub entries: u64,
    /// Messages, the count operators recognise.
    pub messages: u64,
}

impl Store {
    /// Copies a snapshot of the database into a new file at `dest` (which
    /// must not exist), makes it durable, and verifies it by opening it.
    pub fn backup_to(&self, dest: &Path) -> Result<Summary> {
        let snapshot = self.inner.db.snapshot()?;
        copy_snapshot(&*snapshot, dest)
    }
}

/// The same copy from a database file no server has open (its
/// write-ahead log applied first, as a server's start would).
pub fn backup_file(source: &Path, dest: &Path) -> Result<Summary> {
    let db = super::file::DbFile::open(source, 0, |_| Ok(()))?;
    let snapshot = db.snapshot()?;
    copy_snapshot(&*snapshot, dest)
}

fn copy_snapshot(snapshot: &dyn Kv, dest: &Path) -> Result<Summary> {
    if dest.exists() {
        return Err(Error::Storage(format!("{} already exists", dest.display())));
    }
    let copied = {
        let copy = Database::create(dest)?;
        let mut copied = 0u64;
        let mut txn = copy.begin_write()?;
        let mut in_txn = 0u64;
        for table in ALL {
            txn.open_table(def(*table))?;
            let mut scan = Scan {
                limit: 4096,
                ..Scan::default()
            };
            loop {
                let chunk = snapshot.scan(*table, &scan)?;
                {
                    let mut target = txn.open_table(def(*table))?;
                    for (k, v) in &chunk {
                        target.insert(k.as_slice(), v.as_slice())?;
                    }
                }
                copied += chunk.len() as u64;
                in_txn += chunk.len() as u64;
                if in_txn >= CHUNK {
                    // Intermediate commits need not reach the disk: only
                    // the last one, below, is made durable.
                    txn.set_durability(Durability::None)?;
                    txn.commit()?;
                    txn = copy.begin_write()?;
                    in_txn = 0;
                }
                match chunk.last() {
                    Some((last, _)) if chunk.len() == scan.limit => scan.after = Some(last.clone()),
                    _ => break,
                }
            }
        }
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        copied
    };
    std::fs::File::open(dest)?.sync_all()?;
    if let Some(dir) = dest.parent() {
        crate::fsutil::sync_dir(dir);
    }
    let summary = verify(dest)?;
    if summary.entries != copied {
        return Err(Error::Storage(format!(
            "the copy holds {} entries, {copied} were copied",
            summary.entries
        )));
    }
    Ok(summary)
}

/// Opens a database file, checks its pages, its schema version and that
/// every table is there, and counts what it holds.
pub fn verify(path: &Path) -> Result<Summary> {
    let mut db = Database::open(path)?;
    if !db.check_integrity()? {
        return Err(Error::Storage(format!(
            "{} failed its integrity check",
            path.display()
        )));
    }
    let txn = db.begin_read()?;
    let schema_version = migrate::version(&txn)?
        .ok_or_else(|| Error::Storage(format!("{} has no schema version", path.display())))?;
    if schema_version > migrate::CURRENT {
        return Err(Error::SchemaTooNew {
            found: schema_version,
            supported: migrate::CURRENT,
        });
    }
    let mut entries = 0;
    let mut messages = 0;
    for table in ALL {
        let len = txn.open_table(def(*table))?.len()?;
        entries += len;
        if *table == tables::MESSAGES {
            messages = len;
        }
    }
    Ok(Summary {
        schema_version,
        tables: ALL.len(),
        entries,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::META;

    #[tokio::test]
    async fn a_backup_holds_what_was_committed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb"), 64).unwrap();
        for i in 0u64..10 {
            store
                .write(move |tx| tx.put_raw(META, format!("k{i}").as_bytes(), b"v"))
                .await
                .unwrap();
        }
        let copy = dir.path().join("copy.redb");
        let summary = store.backup_to(&copy).unwrap();
        assert_eq!(summary.schema_version, migrate::CURRENT);
        // The ten keys and the schema version.
        assert_eq!(summary.entries, 11);
        assert_eq!(verify(&copy).unwrap(), summary);
        assert!(
            store.backup_to(&copy).is_err(),
            "an existing file is never overwritten"
        );
        store.shutdown().await;
        std::fs::write(dir.path().join("junk.redb"), b"not a database").unwrap();
        assert!(verify(&dir.path().join("junk.redb")).is_err());
    }
}
