//! The database file: opened once, reopened in place after an I/O failure,
//! and the free-space floor of the file system it lives on.
//!
//! Writes reach the disk through the write-ahead log (`wal.rs`): a batch
//! is appended to the log and synced, then committed to the redb file
//! without waiting for the disk; a checkpoint now and then makes the file
//! durable up to the log's last batch and empties the log. Opening the
//! file applies whatever the log holds beyond the file's last checkpoint.
//!
//! redb stops trusting its file after a failed write or fsync: every later
//! operation fails until the database is opened again, which rolls it back
//! to its last durable commit (and the log is applied again on top). The
//! writer therefore reopens the file after a failed commit; reads wait on
//! the lock only while that happens.
//!
//! A full disk never gets that far: before each commit the writer asks the
//! file system for its free space and refuses the batch while it is below
//! `store.min_free_mb`, so the database is never written on a disk without
//! room for the commit, and reads go on as usual.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

use super::engine::{Body, Decision, Kv, KvWrite, Snapshot};
use super::tables::{self, Table};
use super::wal::{self, Ops, Wal};
use super::{Error, Result, Scan, prefix_end};

/// A checkpoint is due once the log holds this many bytes…
const CHECKPOINT_BYTES: u64 = 64 << 20;
/// …or its oldest batch is this old. Each checkpoint holds the writer for
/// one durable commit of every page changed since the last one, so they
/// are rare; the log they empty is what a restart after a crash applies.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

/// Where the file records the last batch of the log it holds durably.
const CHECKPOINT_KEY: &[u8] = b"wal:checkpoint";

/// The redb table a [`Table`] names.
pub fn def(table: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(table.name())
}

pub struct DbFile {
    path: PathBuf,
    db: RwLock<Option<Database>>,
    /// Locked after `db` when both are.
    log: Mutex<Log>,
    /// Set at shutdown: nothing opens the file again.
    closed: AtomicBool,
    min_free: u64,
    #[cfg(feature = "fault-injection")]
    pub(super) faults: std::sync::Arc<wal::faults::Faults>,
}

struct Log {
    wal: Wal,
    /// The last batch the file holds durably.
    checkpointed: u64,
    /// When the log last started empty.
    since: Instant,
}

impl DbFile {
    /// Opens (or creates) the database; `ready` runs on it before anyone
    /// else may use it (migrations, counts).
    pub fn open(
        path: &Path,
        min_free: u64,
        ready: impl FnOnce(&Database) -> Result<()>,
    ) -> Result<DbFile> {
        let db = Database::create(path)?;
        let wal = recover(&db, &wal::path_of(path))?;
        ready(&db)?;
        #[cfg(feature = "fault-injection")]
        let faults = std::sync::Arc::new(wal::faults::Faults::default());
        #[cfg(feature = "fault-injection")]
        let mut wal = wal;
        #[cfg(feature = "fault-injection")]
        {
            wal.faults = faults.clone();
        }
        Ok(DbFile {
            path: path.to_path_buf(),
            db: RwLock::new(Some(db)),
            log: Mutex::new(Log {
                checkpointed: wal.last_seq(),
                wal,
                since: Instant::now(),
            }),
            closed: AtomicBool::new(false),
            min_free,
            #[cfg(feature = "fault-injection")]
            faults,
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn begin_read(&self) -> Result<ReadTransaction> {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        match &*db {
            Some(db) => Ok(db.begin_read()?),
            None if self.closed.load(Ordering::Relaxed) => Err(Error::ShuttingDown),
            None => Err(Error::CommitFailed(
                "the database could not be reopened".into(),
            )),
        }
    }

    /// A write transaction; reopens the database first when an earlier
    /// reopen failed.
    pub fn begin_write(&self) -> Result<WriteTransaction> {
        {
            let db = self.db.read().unwrap_or_else(|e| e.into_inner());
            if let Some(db) = &*db {
                return Ok(db.begin_write()?);
            }
        }
        self.reopen()?;
        self.begin_write()
    }

    /// A consistent snapshot.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Box::new(Reading(self.begin_read()?)))
    }

    /// Runs `body` in one write transaction and, when it says so, makes
    /// its writes durable in the log and commits them. Ok(false): the body
    /// aborted it.
    pub fn write(&self, body: Body<'_>) -> Result<bool> {
        let mut txn = self
            .begin_write()
            .map_err(|e| Error::CommitFailed(format!("write transaction could not start: {e}")))?;
        let (decision, ops) = {
            let writing = Writing::new(&txn);
            let decision = body(&writing);
            (decision, writing.ops.into_inner())
        };
        if let Decision::Abort = decision {
            let _ = txn.abort();
            return Ok(false);
        }
        // Durable through the log: the file catches up at a checkpoint.
        txn.set_durability(Durability::None)
            .map_err(|e| Error::CommitFailed(e.to_string()))?;
        if !ops.is_empty() {
            let appended = self.log().wal.append(&ops);
            if let Err(e) = appended {
                let _ = txn.abort();
                return Err(io_failure(&e));
            }
        }
        match txn.commit() {
            Ok(()) => Ok(true),
            Err(e) => {
                // The batch is in the log: reopening applies it again, and
                // then it is committed after all.
                tracing::error!(error = %e, "commit failed after the log took the batch");
                self.reopen()
                    .map(|()| true)
                    .map_err(|_| Error::CommitFailed(e.to_string()))
            }
        }
    }

    /// Whether the log has grown (or aged) enough for a checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        let log = self.log();
        log.wal.len() >= CHECKPOINT_BYTES
            || (log.wal.last_seq() > log.checkpointed && log.since.elapsed() >= CHECKPOINT_EVERY)
    }

    /// Makes the file hold every batch of the log durably, then empties
    /// the log. On failure the log stays as it is (and still holds every
    /// batch); the caller reopens the file.
    pub fn checkpoint(&self) -> Result<()> {
        let txn = self.begin_write()?;
        let mut log = self.log();
        let last = log.wal.last_seq();
        if last == log.checkpointed {
            let _ = txn.abort();
            return Ok(());
        }
        let started = Instant::now();
        txn.open_table(def(tables::META))?
            .insert(CHECKPOINT_KEY, last.to_be_bytes().as_slice())?;
        txn.commit().map_err(|e| match e {
            redb::CommitError::Storage(redb::StorageError::Io(io)) => io_failure(&io),
            e => Error::CommitFailed(e.to_string()),
        })?;
        log.checkpointed = last;
        log.since = Instant::now();
        let bytes = log.wal.len();
        log.wal.restart(last)?;
        tracing::debug!(
            batch = last,
            log_bytes = bytes,
            micros = started.elapsed().as_micros() as u64,
            "checkpoint"
        );
        Ok(())
    }

    /// Closes the database and opens it again, which brings it back to
    /// its last durable commit, and applies the log on top. On failure the
    /// store stays closed (reads and writes answer 503) and the next write
    /// tries again.
    pub fn reopen(&self) -> Result<()> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::ShuttingDown);
        }
        // The old handle must be gone (and its file lock released) before
        // the file can be opened again.
        *db = None;
        let mut log = self.log();
        let reopened = Database::create(&self.path)
            .map_err(Error::from)
            .and_then(|fresh| Ok((recover(&fresh, &wal::path_of(&self.path))?, fresh)));
        match reopened {
            Ok((wal, fresh)) => {
                tracing::warn!(path = %self.path.display(), "database reopened after a failed write");
                #[cfg(feature = "fault-injection")]
                let mut wal = wal;
                #[cfg(feature = "fault-injection")]
                {
                    wal.faults = self.faults.clone();
                }
                log.checkpointed = wal.last_seq();
                log.since = Instant::now();
                log.wal = wal;
                *db = Some(fresh);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "database could not be reopened");
                Err(e)
            }
        }
    }

    /// Closes the database (at shutdown), releasing the file. What the
    /// file does not hold durably yet is in the log, which the next open
    /// applies.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Free bytes on the file system, for this process's user.
    pub fn free_bytes(&self) -> Option<u64> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Whether the file system is below the floor writes need, and its
    /// free bytes, from one look.
    pub fn disk_room(&self) -> (bool, Option<u64>) {
        let free = self.free_bytes();
        (free.is_some_and(|free| free < self.min_free), free)
    }
}

/// The failure of a commit's I/O.
fn io_failure(e: &std::io::Error) -> Error {
    if is_disk_full(e) {
        Error::DiskFull
    } else {
        Error::CommitFailed(e.to_string())
    }
}

/// Brings a database just opened up to date with its log: applies, in one
/// durable commit, every batch the log holds beyond the file's last
/// checkpoint, then empties the log. Returns the log, ready for appends.
fn recover(db: &Database, log: &Path) -> Result<Wal> {
    let (mut wal, records) = Wal::open(log)?;
    let held = {
        let txn = db.begin_read()?;
        match txn.open_table(def(tables::META)) {
            Ok(meta) => meta
                .get(CHECKPOINT_KEY)?
                .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
                .unwrap_or(0),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(e.into()),
        }
    };
    let pending: Vec<&wal::Record> = records.iter().filter(|r| r.seq > held).collect();
    if let Some(first) = pending.first()
        && first.seq != held + 1
    {
        return Err(Error::Storage(format!(
            "the write-ahead log {} starts at batch {} but the database holds batches up to {held}: \
             it is not this database's log",
            log.display(),
            first.seq
        )));
    }
    let last = pending.last().map_or(held, |r| r.seq);
    if !pending.is_empty() {
        let txn = db.begin_write()?;
        {
            let mut opened: HashMap<String, RedbTable<'_>> = HashMap::new();
            for record in &pending {
                for op in wal::ops(&record.body)? {
                    let (name, key) = match op {
                        wal::Op::Insert { table, key, .. } | wal::Op::Remove { table, key } => {
                            (table, key)
                        }
                    };
                    if !opened.contains_key(name) {
                        let def = TableDefinition::<&[u8], &[u8]>::new(name);
                        opened.insert(name.to_owned(), txn.open_table(def)?);
                    }
                    let table = opened.get_mut(name).expect("opened above");
                    match op {
                        wal::Op::Insert { value, .. } => {
                            table.insert(key, value)?;
                        }
                        wal::Op::Remove { .. } => {
                            table.remove(key)?;
                        }
                    }
                }
            }
            let mut meta = match opened.remove(tables::META.name()) {
                Some(meta) => meta,
                None => txn.open_table(def(tables::META))?,
            };
            meta.insert(CHECKPOINT_KEY, last.to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        tracing::warn!(
            log = %log.display(),
            batches = pending.len(),
            "database brought up to date from its write-ahead log"
        );
    }
    wal.restart(last)?;
    Ok(wal)
}

/// A read transaction.
struct Reading(ReadTransaction);

impl Kv for Reading {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = self.0.open_table(def(table))?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_table(&self.0.open_table(def(table))?, scan)
    }
}

type RedbTable<'a> = redb::Table<'a, &'static [u8], &'static [u8]>;

/// A write transaction. Each table is opened once and kept open for the
/// whole transaction.
struct Writing<'a> {
    txn: &'a WriteTransaction,
    tables: RefCell<Vec<(&'static str, RedbTable<'a>)>>,
    /// Every write, for the log.
    ops: RefCell<Ops>,
}

impl<'a> Writing<'a> {
    fn new(txn: &'a WriteTransaction) -> Writing<'a> {
        Writing {
            txn,
            tables: RefCell::new(Vec::with_capacity(16)),
            ops: RefCell::default(),
        }
    }

    fn with_table<T>(
        &self,
        table: Table,
        f: impl FnOnce(&mut RedbTable<'a>) -> Result<T>,
    ) -> Result<T> {
        let name = table.name();
        let mut tables = self.tables.borrow_mut();
        let i = match tables.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                let opened = self.txn.open_table(def(table))?;
                tables.push((name, opened));
                tables.len() - 1
            }
        };
        f(&mut tables[i].1)
    }
}

impl Kv for Writing<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_table(table, |t| Ok(t.get(key)?.map(|v| v.value().to_vec())))
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with_table(table, |t| scan_table(&*t, scan))
    }
}

impl KvWrite for Writing<'_> {
    fn insert(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.with_table(table, |t| {
            t.insert(key, value)?;
            Ok(())
        })?;
        self.ops.borrow_mut().insert(table.name(), key, value);
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<bool> {
        let removed = self.with_table(table, |t| Ok(t.remove(key)?.is_some()))?;
        if removed {
            self.ops.borrow_mut().remove(table.name(), key);
        }
        Ok(removed)
    }
}

fn scan_table<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    scan: &Scan,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let end = prefix_end(&scan.prefix);
    let mut lower: Bound<&[u8]> = Bound::Included(scan.prefix.as_slice());
    let mut upper: Bound<&[u8]> = match &end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    };
    if let Some(after) = &scan.after {
        if scan.reverse {
            upper = Bound::Excluded(after.as_slice());
        } else {
            lower = Bound::Excluded(after.as_slice());
        }
    }
    let range = table.range::<&[u8]>((lower, upper))?;
    let mut out = Vec::new();
    type Item<'a> = std::result::Result<
        (
            redb::AccessGuard<'a, &'static [u8]>,
            redb::AccessGuard<'a, &'static [u8]>,
        ),
        redb::StorageError,
    >;
    let mut push = |item: Item<'_>| -> Result<bool> {
        let (k, v) = item?;
        out.push((k.value().to_vec(), v.value().to_vec()));
        Ok(out.len() < scan.limit)
    };
    if scan.reverse {
        for item in range.rev() {
            if !push(item)? {
                break;
            }
        }
    } else {
        for item in range {
            if !push(item)? {
                break;
            }
        }
    }
    Ok(out)
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> [u8; 4] {
        i.to_be_bytes()
    }

    fn count(snapshot: &dyn Kv) -> usize {
        let scan = Scan {
            limit: usize::MAX,
            ..Scan::default()
        };
        snapshot.scan(tables::MESSAGES, &scan).unwrap().len()
    }

    /// The files as a crash would leave them: copied while the store is
    /// open, with batches committed after its last checkpoint.
    fn crash_image(path: &Path, name: &str) -> PathBuf {
        let copy = path.with_file_name(name);
        std::fs::copy(path, &copy).unwrap();
        std::fs::copy(wal::path_of(path), wal::path_of(&copy)).unwrap();
        copy
    }

    #[test]
    fn a_crash_image_comes_back_with_every_logged_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let db = DbFile::open(&path, 0, |_| Ok(())).unwrap();
        for i in 0..50 {
            let committed = db.write(&mut |kv| {
                kv.insert(tables::MESSAGES, &key(i), b"v").unwrap();
                if i % 10 == 9 {
                    assert!(kv.remove(tables::MESSAGES, &key(i - 5)).unwrap());
                }
                Decision::Commit { broadcast: None }
            });
            assert!(committed.unwrap());
            if i == 20 {
                db.checkpoint().unwrap();
            }
        }
        // Written: 0..50 less the 5 removed (4, 14, 24, 34, 44).
        assert_eq!(count(&*db.snapshot().unwrap()), 45);
        let raw = crash_image(&path, "raw.redb");
        let crashed = crash_image(&path, "crashed.redb");

        // The file alone holds what the checkpoint made durable: batches
        // 0..=20 (less 4 and 14), not the 29 after it.
        let file_only = Database::open(&raw).unwrap();
        let txn = file_only.begin_read().unwrap();
        assert_eq!(count(&Reading(txn)), 19);

        // Opened as the store opens it, the log brings back the rest.
        let reopened = DbFile::open(&crashed, 0, |_| Ok(())).unwrap();
        let snapshot = reopened.snapshot().unwrap();
        assert_eq!(count(&*snapshot), 45);
        assert!(snapshot.get(tables::MESSAGES, &key(49)).unwrap().is_some());
        assert!(snapshot.get(tables::MESSAGES, &key(44)).unwrap().is_none());
        // …and made it durable: the file's checkpoint is the last batch, so
        // nothing the log still holds is applied again.
        let held = snapshot.get(tables::META, CHECKPOINT_KEY).unwrap().unwrap();
        assert_eq!(held, 50u64.to_be_bytes());
        let (_, records) = Wal::open(&wal::path_of(&crashed)).unwrap();
        assert!(records.iter().all(|r| r.seq <= 50));
        drop(snapshot);
        drop(reopened);
        let again = DbFile::open(&crashed, 0, |_| Ok(())).unwrap();
        assert_eq!(count(&*again.snapshot().unwrap()), 45);
    }

    #[test]
    fn a_log_that_does_not_follow_the_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let db = DbFile::open(&path, 0, |_| Ok(())).unwrap();
        for i in 0..3 {
            db.write(&mut |kv| {
                kv.insert(tables::MESSAGES, &key(i), b"v").unwrap();
                Decision::Commit { broadcast: None }
            })
            .unwrap();
        }
        db.checkpoint().unwrap();
        drop(db);
        // The file holds batches up to 3; a log whose first batch is 5
        // (another database's, or one with batches missing) is not applied.
        let (mut wal, _) = Wal::open(&wal::path_of(&path)).unwrap();
        wal.restart(4).unwrap();
        let mut ops = Ops::default();
        ops.insert(tables::MESSAGES.name(), &key(99), b"v");
        assert_eq!(wal.append(&ops).unwrap(), 5);
        drop(wal);
        let refused = DbFile::open(&path, 0, |_| Ok(()));
        assert!(
            matches!(&refused, Err(Error::Storage(m)) if m.contains("not this database's log")),
            "{:?}",
            refused.err()
        );
    }
}
