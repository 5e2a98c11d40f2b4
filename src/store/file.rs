//! The database file: opened once, reopened in place after an I/O failure,
//! and the free-space floor of the file system it lives on.
//!
//! Writes reach the disk through the write-ahead log (`wal.rs`): a batch
//! is appended to the log and synced, and its writes then go into an
//! overlay in memory (`overlay.rs`) that every reader reads over the file.
//! The file takes the overlay at a checkpoint: on a thread of its own,
//! in one durable commit, while the writer goes on with a fresh overlay
//! and the other of the two log files. Opening the file applies whatever
//! the logs hold beyond the file's last checkpoint.
//!
//! redb stops trusting its file after a failed write or fsync: every later
//! operation fails until the database is opened again, which rolls it back
//! to its last durable commit (and the logs are applied again on top). The
//! writer therefore reopens the file after a failed checkpoint; reads wait
//! on the lock only while that happens.
//!
//! A full disk never gets that far: before each commit the writer asks the
//! file system for its free space and refuses the batch while it is below
//! `store.min_free_mb`, so the database is never written on a disk without
//! room for the commit, and reads go on as usual.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction,
};

use super::engine::{Body, Decision, Kv, KvWrite, Snapshot};
use super::overlay::{self, Entry, Overlay};
use super::tables::{self, Table};
use super::wal::{self, Ops, Wal};
use super::{Error, Result, Scan};

/// A checkpoint is due once the log being written holds this many bytes…
const CHECKPOINT_BYTES: u64 = 16 << 20;
/// …or the overlay holds this many bytes of keys and values (what the
/// batches since the last checkpoint cost in memory)…
const CHECKPOINT_OVERLAY_BYTES: usize = 8 << 20;
/// …or the log's oldest batch is this old. The log a checkpoint leaves
/// behind is what a restart after a crash applies.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

/// Where the file records the last batch of the log it holds durably.
const CHECKPOINT_KEY: &[u8] = b"wal:checkpoint";

/// The redb table a [`Table`] names.
pub fn def(table: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(table.name())
}

type Handle = Arc<RwLock<Option<Database>>>;

pub struct DbFile {
    path: PathBuf,
    db: Handle,
    /// Counts reopens: a checkpoint started before one must not write to
    /// the database opened by it.
    opened: Arc<AtomicU64>,
    /// CPU time the checkpoints' threads took, in nanoseconds.
    checkpoint_cpu: Arc<AtomicU64>,
    /// Held by a test to keep a checkpoint from writing until it lets go.
    #[cfg(test)]
    checkpoint_gate: Arc<Mutex<()>>,
    /// What readers and the next batch start from; `None` while the
    /// database is closed. Locked after `db` and `log` when they are.
    view: RwLock<Option<View>>,
    /// Locked after `db` when both are. Only the writer's thread takes it.
    log: Mutex<Log>,
    /// Set at shutdown: nothing opens the file again.
    closed: AtomicBool,
    min_free: u64,
    #[cfg(feature = "fault-injection")]
    pub(super) faults: std::sync::Arc<wal::faults::Faults>,
}

/// The file as of its last checkpoint, and the batches after it.
#[derive(Clone)]
struct View {
    file: Arc<ReadTransaction>,
    /// The batches a running checkpoint is writing to the file.
    frozen: Overlay,
    /// The batches since.
    active: Overlay,
}

struct Log {
    /// Two files: one is written; the other holds the batches of the
    /// running checkpoint (or ones the file already holds).
    wals: [Wal; 2],
    /// The one written.
    active: usize,
    /// The last batch the file holds durably.
    checkpointed: u64,
    /// When the log written started empty.
    since: Instant,
    running: Option<Running>,
}

/// A checkpoint on its thread.
struct Running {
    /// The last batch it writes to the file.
    upto: u64,
    thread: JoinHandle<Result<()>>,
}

/// The two log files of a database.
fn log_paths(db: &Path) -> [PathBuf; 2] {
    let first = wal::path_of(db);
    let mut second = first.clone().into_os_string();
    second.push(".1");
    [first, second.into()]
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
        let (wals, checkpointed) = recover(&db, &log_paths(path))?;
        ready(&db)?;
        let view = View::over(&db)?;
        #[cfg(feature = "fault-injection")]
        let faults = std::sync::Arc::new(wal::faults::Faults::default());
        #[cfg(feature = "fault-injection")]
        let mut wals = wals;
        #[cfg(feature = "fault-injection")]
        for wal in &mut wals {
            wal.faults = faults.clone();
        }
        Ok(DbFile {
            path: path.to_path_buf(),
            db: Arc::new(RwLock::new(Some(db))),
            opened: Arc::default(),
            checkpoint_cpu: Arc::default(),
            #[cfg(test)]
            checkpoint_gate: Arc::default(),
            view: RwLock::new(Some(view)),
            log: Mutex::new(Log {
                wals,
                active: 0,
                checkpointed,
                since: Instant::now(),
                running: None,
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

    /// The state reads start from.
    fn current(&self) -> Result<View> {
        // Held while a reopen runs: readers wait for it, not fail.
        let _db = self.db.read().unwrap_or_else(|e| e.into_inner());
        match &*self.view.read().unwrap_or_else(|e| e.into_inner()) {
            Some(view) => Ok(view.clone()),
            None if self.closed.load(Ordering::Relaxed) => Err(Error::ShuttingDown),
            None => Err(Error::CommitFailed(
                "the database could not be reopened".into(),
            )),
        }
    }

    fn change_view(&self, change: impl FnOnce(&mut View)) {
        if let Some(view) = &mut *self.view.write().unwrap_or_else(|e| e.into_inner()) {
            change(view);
        }
    }

    /// A consistent snapshot.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Box::new(self.current()?))
    }

    /// Runs `body` over the current state and, when it says so, makes its
    /// writes durable in the log and visible. Ok(false): the body aborted.
    pub fn write(&self, body: Body<'_>) -> Result<bool> {
        let view = match self.current() {
            Ok(view) => view,
            Err(Error::ShuttingDown) => return Err(Error::ShuttingDown),
            // An earlier reopen failed: try again.
            Err(_) => {
                self.reopen().map_err(|e| {
                    Error::CommitFailed(format!("write transaction could not start: {e}"))
                })?;
                self.current()?
            }
        };
        let writing = Writing::new(&view);
        if let Decision::Abort = body(&writing) {
            return Ok(false);
        }
        let Writing { active, ops, .. } = writing;
        let ops = ops.into_inner();
        if ops.is_empty() {
            return Ok(true);
        }
        let mut log = self.log();
        let at = log.active;
        log.wals[at].append(&ops).map_err(|e| io_failure(&e))?;
        // Visible only once durable.
        let active = active.into_inner();
        self.change_view(|view| view.active = active);
        Ok(true)
    }

    /// Whether the log written (or the overlay) has grown, or aged,
    /// enough for a checkpoint.
    fn checkpoint_due(&self, log: &Log) -> bool {
        let wal = &log.wals[log.active];
        let overlay = self
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |view| view.active.bytes());
        wal.len() >= CHECKPOINT_BYTES
            || overlay >= CHECKPOINT_OVERLAY_BYTES
            || (wal.last_seq() > log.checkpointed && log.since.elapsed() >= CHECKPOINT_EVERY)
    }

    /// Called by the writer between batches. Takes in a checkpoint that
    /// finished, and starts one when one is due (`due_only`) or whenever
    /// there is anything to checkpoint (at shutdown, when it also waits
    /// for it: the file then holds every batch). On failure the logs still
    /// hold every batch; the caller reopens the file.
    pub fn checkpoint(&self, due_only: bool) -> Result<()> {
        self.finish_checkpoint(!due_only)?;
        if self.start_checkpoint(due_only)? && !due_only {
            self.finish_checkpoint(true)?;
        }
        Ok(())
    }

    /// Starts a checkpoint of every batch so far, unless one is running,
    /// there is nothing to checkpoint, or (`due_only`) none is due yet.
    /// Whether it started.
    fn start_checkpoint(&self, due_only: bool) -> Result<bool> {
        let mut log = self.log();
        let last = log.wals[log.active].last_seq();
        if log.running.is_some()
            || last == log.checkpointed
            || (due_only && !self.checkpoint_due(&log))
        {
            return Ok(false);
        }
        // A checkpoint that failed left its batches frozen, and only in
        // the other file: that file is not started over before a reopen
        // has brought them into the database.
        let failed = self
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|view| view.frozen.bytes() > 0);
        if failed {
            return Err(Error::CommitFailed(
                "the last checkpoint failed: the database must be reopened first".into(),
            ));
        }
        // The next batches go to the other file; this one's batches are
        // the checkpoint's, and stay until the file holds them.
        let next = 1 - log.active;
        log.wals[next].restart(last)?;
        log.active = next;
        log.since = Instant::now();
        let mut frozen = Overlay::default();
        self.change_view(|view| {
            view.frozen = std::mem::take(&mut view.active);
            frozen = view.frozen.clone();
        });
        let db = self.db.clone();
        let opened = self.opened.clone();
        let generation = opened.load(Ordering::SeqCst);
        let cpu = self.checkpoint_cpu.clone();
        #[cfg(test)]
        let gate = self.checkpoint_gate.clone();
        let thread = std::thread::Builder::new()
            .name("mychat-checkpoint".into())
            .spawn(move || {
                #[cfg(test)]
                drop(gate.lock());
                let written = write_checkpoint(&db, &opened, generation, &frozen, last);
                cpu.fetch_add(thread_cpu_nanos(), Ordering::Relaxed);
                written
            })?;
        log.running = Some(Running { upto: last, thread });
        Ok(true)
    }

    /// Takes in the running checkpoint once it finished (or, with `wait`,
    /// when it does): readers then read the file it wrote, without the
    /// batches it took.
    fn finish_checkpoint(&self, wait: bool) -> Result<()> {
        let running = self
            .log()
            .running
            .take_if(|running| wait || running.thread.is_finished());
        let Some(running) = running else {
            return Ok(());
        };
        running.thread.join().unwrap_or_else(|_| {
            Err(Error::CommitFailed(
                "the checkpoint's thread panicked".into(),
            ))
        })?;
        let file = {
            let db = self.db.read().unwrap_or_else(|e| e.into_inner());
            Arc::new(db.as_ref().ok_or(Error::ShuttingDown)?.begin_read()?)
        };
        self.log().checkpointed = running.upto;
        self.change_view(|view| {
            view.file = file;
            view.frozen = Overlay::default();
        });
        Ok(())
    }

    /// Closes the database and opens it again, which brings it back to
    /// its last durable commit, and applies the logs on top. On failure the
    /// store stays closed (reads and writes answer 503) and the next write
    /// tries again.
    pub fn reopen(&self) -> Result<()> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::ShuttingDown);
        }
        // A checkpoint that has not begun its commit gives up.
        self.opened.fetch_add(1, Ordering::SeqCst);
        // The old handle (and every view of it) must be gone, and its file
        // lock released, before the file can be opened again.
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = None;
        *db = None;
        let mut log = self.log();
        // It holds no lock on the file past this point; nothing waits for it.
        log.running = None;
        let reopened = Database::create(&self.path)
            .map_err(Error::from)
            .and_then(|fresh| {
                let (wals, checkpointed) = recover(&fresh, &log_paths(&self.path))?;
                let view = View::over(&fresh)?;
                Ok((wals, checkpointed, view, fresh))
            });
        match reopened {
            Ok((wals, checkpointed, view, fresh)) => {
                tracing::warn!(path = %self.path.display(), "database reopened after a failed write");
                #[cfg(feature = "fault-injection")]
                let mut wals = wals;
                #[cfg(feature = "fault-injection")]
                for wal in &mut wals {
                    wal.faults = self.faults.clone();
                }
                log.wals = wals;
                log.active = 0;
                log.checkpointed = checkpointed;
                log.since = Instant::now();
                *self.view.write().unwrap_or_else(|e| e.into_inner()) = Some(view);
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
    /// file does not hold durably yet is in the logs, which the next open
    /// applies.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        self.opened.fetch_add(1, Ordering::SeqCst);
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = None;
        *db = None;
    }

    /// CPU time the checkpoints took so far (each counted once it ended).
    pub fn checkpoint_cpu(&self) -> Duration {
        Duration::from_nanos(self.checkpoint_cpu.load(Ordering::Relaxed))
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

/// The CPU time the calling thread took so far, from the scheduler's
/// counters (Linux; 0 elsewhere).
fn thread_cpu_nanos() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Writes a checkpoint's batches to the file in one durable commit, with
/// the number of the last of them. Runs on its own thread.
fn write_checkpoint(
    db: &Handle,
    opened: &AtomicU64,
    generation: u64,
    frozen: &Overlay,
    upto: u64,
) -> Result<()> {
    let started = Instant::now();
    let db = db.read().unwrap_or_else(|e| e.into_inner());
    // The database was reopened (or closed) since it started: the logs
    // hold its batches, and the reopened file has them.
    if opened.load(Ordering::SeqCst) != generation {
        return Err(Error::ShuttingDown);
    }
    let db = db.as_ref().ok_or(Error::ShuttingDown)?;
    let txn = db.begin_write()?;
    apply(&txn, frozen.writes(), upto)?;
    txn.commit().map_err(|e| match e {
        redb::CommitError::Storage(redb::StorageError::Io(io)) => io_failure(&io),
        e => Error::CommitFailed(e.to_string()),
    })?;
    tracing::debug!(
        batch = upto,
        bytes = frozen.bytes(),
        micros = started.elapsed().as_micros() as u64,
        "checkpoint"
    );
    Ok(())
}

/// The failure of a commit's I/O.
fn io_failure(e: &std::io::Error) -> Error {
    if is_disk_full(e) {
        Error::DiskFull
    } else {
        Error::CommitFailed(e.to_string())
    }
}

/// Brings a database just opened up to date with its logs: applies, in one
/// durable commit, every batch they hold beyond the file's last
/// checkpoint. Returns the logs, ready for appends to the first, and the
/// last batch the file holds.
fn recover(db: &Database, paths: &[PathBuf; 2]) -> Result<([Wal; 2], u64)> {
    let (first, mut records) = Wal::open(&paths[0])?;
    let (second, more) = Wal::open(&paths[1])?;
    // A log file just made is durable once its name is: a batch synced
    // into it must not vanish with its directory entry at a power cut.
    if let Some(dir) = paths[0].parent() {
        crate::fsutil::sync_dir(dir);
    }
    let mut wals = [first, second];
    records.extend(more);
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
    let mut pending: Vec<&wal::Record> = records.iter().filter(|r| r.seq > held).collect();
    pending.sort_by_key(|r| r.seq);
    // Batches follow one another across the two files: one ends where the
    // other starts.
    for (expected, record) in (held + 1..).zip(&pending) {
        if record.seq != expected {
            return Err(Error::Storage(format!(
                "the write-ahead log ({} and {}) holds batch {} where batch {expected} should \
                 follow the database's batches up to {held}: it is not this database's log",
                paths[0].display(),
                paths[1].display(),
                record.seq
            )));
        }
    }
    let last = pending.last().map_or(held, |r| r.seq);
    if !pending.is_empty() {
        let txn = db.begin_write()?;
        let mut writes = Vec::new();
        for record in &pending {
            writes.extend(wal::ops(&record.body)?.into_iter().map(|op| match op {
                wal::Op::Insert { table, key, value } => (table, key, Some(value)),
                wal::Op::Remove { table, key } => (table, key, None),
            }));
        }
        apply(&txn, writes, last)?;
        txn.commit()?;
        tracing::warn!(
            log = %paths[0].display(),
            also = %paths[1].display(),
            batches = pending.len(),
            "database brought up to date from its write-ahead log"
        );
    }
    for wal in &mut wals {
        wal.restart(last)?;
    }
    Ok((wals, last))
}

/// Writes (table, key, value or removal) to the file, in order, and
/// records `upto` as the last batch it holds.
fn apply<'w>(
    txn: &WriteTransaction,
    writes: impl IntoIterator<Item = (&'w str, &'w [u8], Option<&'w [u8]>)>,
    upto: u64,
) -> Result<()> {
    let mut opened: HashMap<&str, RedbTable<'_>> = HashMap::new();
    let mut write = |name: &'w str, key: &[u8], value: Option<&[u8]>| -> Result<()> {
        let table = match opened.entry(name) {
            std::collections::hash_map::Entry::Occupied(table) => table.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(txn.open_table(TableDefinition::new(name))?)
            }
        };
        match value {
            Some(value) => table.insert(key, value).map(drop)?,
            None => table.remove(key).map(drop)?,
        }
        Ok(())
    };
    for (name, key, value) in writes {
        write(name, key, value)?;
    }
    write(
        tables::META.name(),
        CHECKPOINT_KEY,
        Some(upto.to_be_bytes().as_slice()),
    )
}

type RedbTable<'a> = redb::Table<'a, &'static [u8], &'static [u8]>;
type FileTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A table of the file, or `None` where the file has no such table yet.
fn open_file_table(txn: &ReadTransaction, table: Table) -> Result<Option<FileTable>> {
    match txn.open_table(def(table)) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn file_get(table: Option<&FileTable>, key: &[u8]) -> Result<Option<Vec<u8>>> {
    match table {
        Some(table) => Ok(table.get(key)?.map(|v| v.value().to_vec())),
        None => Ok(None),
    }
}

impl View {
    /// The database as it is, with nothing above it.
    fn over(db: &Database) -> Result<View> {
        Ok(View {
            file: Arc::new(db.begin_read()?),
            frozen: Overlay::default(),
            active: Overlay::default(),
        })
    }

    fn scan_with(
        &self,
        active: &Overlay,
        table: Table,
        scan: &Scan,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let file = open_file_table(&self.file, table)?;
        layered_scan(file.as_ref(), &[active, &self.frozen], table, scan)
    }
}

impl Kv for View {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(decided) = overlay::get(&[&self.active, &self.frozen], table, key) {
            return Ok(decided.map(<[u8]>::to_vec));
        }
        file_get(open_file_table(&self.file, table)?.as_ref(), key)
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_with(&self.active, table, scan)
    }
}

/// One batch: its writes go into its own copy of the overlay, which
/// becomes the state everyone reads once the log holds them.
struct Writing<'a> {
    view: &'a View,
    active: RefCell<Overlay>,
    /// The file's tables, each opened once.
    tables: RefCell<Vec<(&'static str, Option<FileTable>)>>,
    /// Every write, for the log.
    ops: RefCell<Ops>,
}

impl<'a> Writing<'a> {
    fn new(view: &'a View) -> Writing<'a> {
        Writing {
            view,
            active: RefCell::new(view.active.clone()),
            tables: RefCell::new(Vec::with_capacity(16)),
            ops: RefCell::default(),
        }
    }

    fn file_get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let name = table.name();
        let mut tables = self.tables.borrow_mut();
        let i = match tables.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                tables.push((name, open_file_table(&self.view.file, table)?));
                tables.len() - 1
            }
        };
        file_get(tables[i].1.as_ref(), key)
    }
}

impl Kv for Writing<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let active = self.active.borrow();
        if let Some(decided) = overlay::get(&[&active, &self.view.frozen], table, key) {
            return Ok(decided.map(<[u8]>::to_vec));
        }
        drop(active);
        self.file_get(table, key)
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.view.scan_with(&self.active.borrow(), table, scan)
    }
}

impl KvWrite for Writing<'_> {
    fn insert(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.active.borrow_mut().insert(table, key, Some(value));
        self.ops.borrow_mut().insert(table.name(), key, value);
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<bool> {
        let removed = self.get(table, key)?.is_some();
        if removed {
            self.active.borrow_mut().insert(table, key, None);
            self.ops.borrow_mut().remove(table.name(), key);
        }
        Ok(removed)
    }
}

/// The live entries of `table` that `scan` covers, at most its limit:
/// the overlays' (the newest first) over the file's.
fn layered_scan(
    file: Option<&FileTable>,
    layers: &[&Overlay],
    table: Table,
    scan: &Scan,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let Some(file) = file else {
        return overlay::scan(layers, table, scan, Box::new(std::iter::empty()));
    };
    let (lower, upper) = scan.bounds(<[u8]>::to_vec);
    let range = file.range::<&[u8]>((super::bound_ref(&lower), super::bound_ref(&upper)))?;
    type Item<'a> = std::result::Result<
        (
            redb::AccessGuard<'a, &'static [u8]>,
            redb::AccessGuard<'a, &'static [u8]>,
        ),
        redb::StorageError,
    >;
    fn entry(item: Item<'_>) -> Result<Entry> {
        let (k, v) = item?;
        Ok((k.value().to_vec(), Some(v.value().to_vec())))
    }
    if scan.reverse {
        overlay::scan(layers, table, scan, Box::new(range.rev().map(entry)))
    } else {
        overlay::scan(layers, table, scan, Box::new(range.map(entry)))
    }
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
        for (log, copied) in log_paths(path).iter().zip(log_paths(&copy)) {
            std::fs::copy(log, copied).unwrap();
        }
        copy
    }

    /// What the file alone holds, without the logs.
    fn file_only(path: &Path) -> usize {
        let db = Database::open(path).unwrap();
        count(&View::over(&db).unwrap())
    }

    fn write_key(db: &DbFile, i: u32) {
        let committed = db.write(&mut |kv| {
            kv.insert(tables::MESSAGES, &key(i), b"v").unwrap();
            Decision::Commit { broadcast: None }
        });
        assert!(committed.unwrap());
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
                db.checkpoint(false).unwrap();
            }
        }
        // Written: 0..50 less the 5 removed (4, 14, 24, 34, 44).
        assert_eq!(count(&*db.snapshot().unwrap()), 45);
        let raw = crash_image(&path, "raw.redb");
        let crashed = crash_image(&path, "crashed.redb");

        // The file alone holds what the checkpoint made durable: batches
        // 0..=20 (less 4 and 14), not the 29 after it.
        assert_eq!(file_only(&raw), 19);

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
        for log in log_paths(&crashed) {
            let (_, records) = Wal::open(&log).unwrap();
            assert!(records.iter().all(|r| r.seq <= 50));
        }
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
        db.checkpoint(false).unwrap();
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

    #[test]
    fn batches_written_while_a_checkpoint_runs_are_read_and_come_back_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let db = DbFile::open(&path, 0, |_| Ok(())).unwrap();
        for i in 0..10 {
            write_key(&db, i);
        }
        // The checkpoint's thread waits until this goes.
        let hold = db.checkpoint_gate.lock().unwrap();
        assert!(db.start_checkpoint(false).unwrap());
        for i in 10..20 {
            write_key(&db, i);
        }
        // Removed from what the checkpoint writes, in the batches after it.
        db.write(&mut |kv| {
            assert!(kv.remove(tables::MESSAGES, &key(3)).unwrap());
            assert!(!kv.remove(tables::MESSAGES, &key(99)).unwrap());
            Decision::Commit { broadcast: None }
        })
        .unwrap();
        // Readers see both overlays over a file that holds none of it.
        assert_eq!(count(&*db.snapshot().unwrap()), 19);
        assert!(
            db.snapshot()
                .unwrap()
                .get(tables::MESSAGES, &key(3))
                .unwrap()
                .is_none()
        );
        assert_eq!(file_only(&crash_image(&path, "before.redb")), 0);
        // A crash now: the first log holds the checkpoint's batches, the
        // second the ones after; both come back, in order.
        let crashed = crash_image(&path, "crashed.redb");
        let reopened = DbFile::open(&crashed, 0, |_| Ok(())).unwrap();
        assert_eq!(count(&*reopened.snapshot().unwrap()), 19);
        drop(reopened);

        drop(hold);
        db.finish_checkpoint(true).unwrap();
        assert_eq!(count(&*db.snapshot().unwrap()), 19);
        // The file holds the checkpoint's ten batches; the rest is in the
        // second log, and a crash brings it back on top.
        let raw = crash_image(&path, "raw.redb");
        assert_eq!(file_only(&raw), 10);
        let crashed = crash_image(&path, "crashed-after.redb");
        let reopened = DbFile::open(&crashed, 0, |_| Ok(())).unwrap();
        let snapshot = reopened.snapshot().unwrap();
        assert_eq!(count(&*snapshot), 19);
        assert!(snapshot.get(tables::MESSAGES, &key(3)).unwrap().is_none());
        assert!(snapshot.get(tables::MESSAGES, &key(19)).unwrap().is_some());
        drop(snapshot);
        drop(reopened);

        // A second checkpoint goes back to the first log, over its old
        // batches, which the file holds.
        db.checkpoint(false).unwrap();
        for i in 20..25 {
            write_key(&db, i);
        }
        let crashed = crash_image(&path, "second.redb");
        assert_eq!(file_only(&crashed), 19);
        let reopened = DbFile::open(&crashed, 0, |_| Ok(())).unwrap();
        assert_eq!(count(&*reopened.snapshot().unwrap()), 24);
    }

    #[test]
    fn a_checkpoint_started_before_a_reopen_does_not_write_to_the_reopened_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let db = DbFile::open(&path, 0, |_| Ok(())).unwrap();
        for i in 0..5 {
            write_key(&db, i);
        }
        let hold = db.checkpoint_gate.lock().unwrap();
        assert!(db.start_checkpoint(false).unwrap());
        // What a reopen does first, while the checkpoint still waits.
        db.opened.fetch_add(1, Ordering::SeqCst);
        drop(hold);
        let refused = db.finish_checkpoint(true);
        assert!(matches!(refused, Err(Error::ShuttingDown)), "{refused:?}");
        // Its batches are still read, and no checkpoint starts over the
        // log that holds them before the reopen.
        write_key(&db, 10);
        assert_eq!(count(&*db.snapshot().unwrap()), 6);
        assert!(db.start_checkpoint(false).is_err());
        db.reopen().unwrap();
        // The logs brought every batch back.
        assert_eq!(count(&*db.snapshot().unwrap()), 6);
        write_key(&db, 5);
        db.checkpoint(false).unwrap();
        assert_eq!(count(&*db.snapshot().unwrap()), 7);
        drop(db);
        assert_eq!(file_only(&path), 7);
    }
}
