//! The database file: opened once, reopened in place after an I/O failure,
//! and the free-space floor of the file system it lives on.
//!
//! redb stops trusting its file after a failed write or fsync: every later
//! operation fails until the database is opened again, which rolls it back
//! to its last durable commit. The writer therefore reopens the file after
//! a failed commit; reads wait on the lock only while that happens.
//!
//! A full disk never gets that far: before each commit the writer asks the
//! file system for its free space and refuses the batch while it is below
//! `store.min_free_mb`, so the database is never written on a disk without
//! room for the commit, and reads go on as usual.

use std::cell::RefCell;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::engine::{Body, Decision, Kv, KvWrite, Snapshot};
use super::tables::Table;
use super::{Error, Result, Scan, prefix_end};

/// The redb table a [`Table`] names.
pub fn def(table: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(table.name())
}

pub struct DbFile {
    path: PathBuf,
    db: RwLock<Option<Database>>,
    /// Set at shutdown: nothing opens the file again.
    closed: AtomicBool,
    min_free: u64,
    #[cfg(feature = "fault-injection")]
    pub(super) faults: std::sync::Arc<faults::Faults>,
}

impl DbFile {
    /// Opens (or creates) the database; `ready` runs on it before anyone
    /// else may use it (migrations, counts).
    pub fn open(
        path: &Path,
        min_free: u64,
        ready: impl FnOnce(&Database) -> Result<()>,
    ) -> Result<DbFile> {
        let file = DbFile {
            path: path.to_path_buf(),
            db: RwLock::new(None),
            closed: AtomicBool::new(false),
            min_free,
            #[cfg(feature = "fault-injection")]
            faults: Default::default(),
        };
        let db = file.open_db()?;
        ready(&db)?;
        *file.db.write().unwrap_or_else(|e| e.into_inner()) = Some(db);
        Ok(file)
    }

    #[cfg(not(feature = "fault-injection"))]
    fn open_db(&self) -> Result<Database> {
        Ok(Database::create(&self.path)?)
    }

    #[cfg(feature = "fault-injection")]
    fn open_db(&self) -> Result<Database> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        let backend = faults::Backend {
            inner: redb::backends::FileBackend::new(file)?,
            faults: self.faults.clone(),
        };
        Ok(Database::builder().create_with_backend(backend)?)
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

    /// Runs `body` in one write transaction and commits it durably when it
    /// says so. Ok(false): the body aborted it.
    pub fn write(&self, body: Body<'_>) -> Result<bool> {
        let txn = self
            .begin_write()
            .map_err(|e| Error::CommitFailed(format!("write transaction could not start: {e}")))?;
        let decision = body(&Writing::new(&txn));
        match decision {
            Decision::Abort => {
                let _ = txn.abort();
                Ok(false)
            }
            Decision::Commit { .. } => match txn.commit() {
                Ok(()) => Ok(true),
                Err(redb::CommitError::Storage(redb::StorageError::Io(io)))
                    if is_disk_full(&io) =>
                {
                    Err(Error::DiskFull)
                }
                Err(e) => Err(Error::CommitFailed(e.to_string())),
            },
        }
    }

    /// Closes the database and opens it again, which brings it back to
    /// its last durable commit. On failure the store stays closed (reads
    /// and writes answer 503) and the next write tries again.
    pub fn reopen(&self) -> Result<()> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::ShuttingDown);
        }
        // The old handle must be gone (and its file lock released) before
        // the file can be opened again.
        *db = None;
        match self.open_db() {
            Ok(fresh) => {
                tracing::warn!(path = %self.path.display(), "database reopened after a failed write");
                *db = Some(fresh);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "database could not be reopened");
                Err(e)
            }
        }
    }

    /// Closes the database (at shutdown), releasing the file.
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

    /// Whether the file system is below the floor writes need.
    pub fn below_floor(&self) -> bool {
        self.free_bytes().is_some_and(|free| free < self.min_free)
    }
}

/// A snapshot of a database no store has open (backups of a file).
pub fn snapshot_of(db: &Database) -> Result<Snapshot> {
    Ok(Box::new(Reading(db.begin_read()?)))
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
}

impl<'a> Writing<'a> {
    fn new(txn: &'a WriteTransaction) -> Writing<'a> {
        Writing {
            txn,
            tables: RefCell::new(Vec::with_capacity(16)),
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
        })
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<bool> {
        self.with_table(table, |t| Ok(t.remove(key)?.is_some()))
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

/// The test suite's fault-injection point: a file backend whose fsyncs
/// fail on request, so a test can fail the commit of a batch.
#[cfg(feature = "fault-injection")]
pub mod faults {
    use std::io;
    use std::ops::Bound;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use redb::backends::FileBackend;
    use redb::{BackendError, StorageBackend};

    #[derive(Debug, Default)]
    pub struct Faults {
        syncs_to_fail: AtomicU32,
        disk_full: AtomicBool,
    }

    impl Faults {
        /// The next `n` fsyncs of the database file fail: with ENOSPC when
        /// `disk_full`, else with EIO.
        pub fn fail_syncs(&self, n: u32, disk_full: bool) {
            self.disk_full.store(disk_full, Ordering::SeqCst);
            self.syncs_to_fail.store(n, Ordering::SeqCst);
        }

        fn take(&self) -> Option<io::Error> {
            self.syncs_to_fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .ok()?;
            let errno = if self.disk_full.load(Ordering::SeqCst) {
                rustix::io::Errno::NOSPC
            } else {
                rustix::io::Errno::IO
            };
            Some(io::Error::from_raw_os_error(errno.raw_os_error()))
        }
    }

    #[derive(Debug)]
    pub(super) struct Backend {
        pub(super) inner: FileBackend,
        pub(super) faults: std::sync::Arc<Faults>,
    }

    impl StorageBackend for Backend {
        fn len(&self) -> Result<u64, io::Error> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), io::Error> {
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> Result<(), io::Error> {
            match self.faults.take() {
                Some(e) => Err(e),
                None => self.inner.sync_data(),
            }
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
            self.inner.write(offset, data)
        }
        fn close(&self) -> Result<(), io::Error> {
            self.inner.close()
        }
        fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.try_lock_range(s, e)
        }
        fn try_lock_shared_range(
            &self,
            s: Bound<u64>,
            e: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.try_lock_shared_range(s, e)
        }
        fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_range(s, e)
        }
        fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_shared_range(s, e)
        }
        fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.unlock_range(s, e)
        }
        fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.query_lock_range(s, e)
        }
    }
}
