//! The typed store over a key-value engine ([`engine`]): the embedded redb
//! file by default.
//!
//! Reads run anywhere on a snapshot ([`Store::read`]). Writes are closures
//! sent to one writer thread ([`Store::write`]), which folds every write that
//! is waiting into one transaction and one durable commit (group commit). A
//! write's caller hears back only after that commit is on disk.
//!
//! A write closure sees the batch's earlier writes, so two claims of one
//! thread in one batch still have exactly one winner. A closure that fails
//! before it wrote anything is simply left out; one that fails after writing
//! makes the writer abort the transaction and run the rest of the batch again
//! without it, so a failed write never leaves half of itself behind.

pub mod backup;
mod codec;
pub mod engine;
pub mod error;
mod file;
mod migrate;
mod overlay;
pub mod postgres;
mod queries;
mod records;
pub mod tables;
mod wal;
mod writer;

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

pub use codec::{KeyBuf, decode, id_at, id_key, prefix_end, stamp};
pub use error::{Error, Result, WriteError};
pub use file::is_disk_full;
pub use queries::{OutboxQueue, Page, Reader, ThreadCursor};
pub use records::{IndexEntry, Record};
pub use writer::StoreStats;

use crate::events::Event;
use tables::Table;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Backend>,
    jobs: mpsc::Sender<writer::Msg>,
    stats: Arc<writer::Stats>,
    listener: Arc<writer::ListenerSlot>,
    outbox: Arc<writer::OutboxSlot>,
}

/// Receives the events of every commit, in commit order, on the writer
/// thread: it must not block.
pub type CommitListener = Arc<dyn Fn(Vec<Event>) + Send + Sync>;

/// Runs inside the transaction after each write that emitted events, before
/// the commit: what it writes (an outbox row) commits with the write or not
/// at all. It must not block.
pub type OutboxHook = Arc<dyn Fn(&mut WriteTx<'_>, &[Event]) -> Result<()> + Send + Sync>;

/// How the store is opened.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Most writes folded into one durable commit.
    pub max_batch: usize,
    /// Writes are refused (`Error::DiskFull`) while the file system has
    /// less free space than this, in bytes.
    pub min_free_bytes: u64,
    /// PostgreSQL: how long a node's presence rows live unless renewed.
    pub presence_ttl: std::time::Duration,
}

impl Store {
    /// Opens (or creates) the database file, migrates it, and starts the
    /// writer, with no free-space floor.
    pub fn open(path: &Path, max_batch: usize) -> Result<Store> {
        Store::open_with(
            path,
            Options {
                max_batch,
                min_free_bytes: 0,
                presence_ttl: postgres::PRESENCE_TTL,
            },
        )
    }

    /// Opens (or creates) the database file, migrates it, and starts the writer.
    pub fn open_with(path: &Path, options: Options) -> Result<Store> {
        let db = file::DbFile::open(path, options.min_free_bytes, migrate::run)?;
        Store::start(Backend::Embedded(Box::new(db)), options)
    }

    /// Connects to PostgreSQL (`url`, libpq's URL or key=value form),
    /// creates or migrates its tables, and starts the writer.
    pub fn open_postgres(url: &str, options: Options) -> Result<Store> {
        let pg = postgres::Pg::open(url, options.presence_ttl)?;
        Store::start(Backend::Postgres(Box::new(pg)), options)
    }

    /// Copies an embedded database file into PostgreSQL (`mychat migrate
    /// --from-redb`), with `secrets` (name, value) and `files` (blob key,
    /// path); see [`postgres::import`].
    pub fn import_into_postgres(
        source: &Path,
        url: &str,
        secrets: &[(&str, Vec<u8>)],
        files: &[(String, std::path::PathBuf)],
    ) -> Result<postgres::Imported> {
        postgres::import(source, url, secrets, files)
    }

    /// Creates or migrates the tables of a PostgreSQL database (`mychat
    /// migrate`); returns the layout version it is at.
    pub fn migrate_postgres(url: &str) -> Result<i32> {
        postgres::Pg::open(url, postgres::PRESENCE_TTL)?.close();
        Ok(postgres::LAYOUT)
    }

    /// Counts what the writer keeps counted and starts it.
    fn start(backend: Backend, options: Options) -> Result<Store> {
        let db = Arc::new(backend);
        let stats = Arc::new(writer::Stats::default());
        let following = match &*db {
            Backend::Embedded(_) => {
                stats.count_threads(count_threads(&*db.snapshot()?)?);
                None
            }
            Backend::Postgres(pg) => {
                // Counted as of an event number; other nodes' commits after
                // it move the counts as they are followed.
                let (snapshot, seq) = pg.snapshot_at_event()?;
                stats.count_threads(count_threads(&*snapshot)?);
                Some(seq)
            }
        };
        let listener = Arc::new(writer::ListenerSlot::default());
        let outbox = Arc::new(writer::OutboxSlot::default());
        let jobs = writer::spawn(
            db.clone(),
            stats.clone(),
            listener.clone(),
            outbox.clone(),
            options.max_batch,
        )?;
        if let (Backend::Postgres(pg), Some(seq)) = (&*db, following) {
            // Other nodes' events reach this node's listener as its own
            // do, and their thread counts move this node's.
            let listener = listener.clone();
            let stats = stats.clone();
            let remote: postgres::Remote =
                Arc::new(
                    move |payload| match codec::decode::<writer::Broadcast>(payload) {
                        Ok(writer::Broadcast { events, threads }) => {
                            stats.count_threads(threads);
                            if !events.is_empty()
                                && let Some(listener) = listener.get()
                            {
                                listener(events);
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "another node's events could not be read")
                        }
                    },
                );
            pg.follow_from(seq, remote);
        }
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                jobs,
                stats,
                listener,
                outbox,
            }),
        })
    }

    /// Adds a hook that writes outbox rows for events, in their own commit
    /// (webhook deliveries, pushes). Hooks run in the order they were added.
    pub fn add_outbox(&self, hook: OutboxHook) {
        self.inner
            .outbox
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// Sets who hears about committed events (the realtime hub).
    pub fn set_listener(&self, listener: CommitListener) {
        let _ = self.inner.listener.set(listener);
    }

    /// A consistent snapshot for reading.
    pub fn read(&self) -> Result<ReadTx> {
        Ok(ReadTx {
            kv: self.inner.db.snapshot()?,
        })
    }

    /// Whether the file system is below the store's free-space floor:
    /// writes are refused until space is freed.
    pub fn disk_full(&self) -> bool {
        self.inner.db.below_floor()
    }

    /// The test suite's fault-injection point (failing fsyncs).
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> &wal::faults::Faults {
        match &*self.inner.db {
            Backend::Embedded(db) => &db.faults,
            Backend::Postgres(_) => panic!("fault injection is for the embedded file"),
        }
    }

    /// Runs `op` in the next group commit and returns its result once the
    /// commit is durable. `op` may run more than once (see the module docs),
    /// so it must not have effects outside the transaction.
    ///
    /// The closure fails with the caller's error type `E`; store errors
    /// inside it convert with `?`.
    pub async fn write<T, E, F>(&self, op: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: WriteError,
        F: FnMut(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = writer::Job::new(op, reply);
        self.inner
            .jobs
            .send(writer::Msg::Job(job))
            .await
            .map_err(|_| E::from(Error::ShuttingDown))?;
        match answer.await.map_err(|_| E::from(Error::ShuttingDown))? {
            writer::Outcome::Done(value) => {
                Ok(*value.downcast::<T>().expect("a write returns its own type"))
            }
            writer::Outcome::Refused(error) => Err(*error
                .downcast::<E>()
                .expect("a write fails with its own type")),
            writer::Outcome::Store(error) => Err(E::from(error)),
        }
    }

    /// Commits everything already queued, then stops the writer. Later
    /// writes fail with [`Error::ShuttingDown`].
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self
            .inner
            .jobs
            .send(writer::Msg::Shutdown(done))
            .await
            .is_ok()
        {
            let _ = finished.await;
        }
    }

    pub fn stats(&self) -> StoreStats {
        let mut stats = self.inner.stats.snapshot();
        if let Backend::Embedded(db) = &*self.inner.db {
            stats.checkpoint_cpu_seconds = db.checkpoint_cpu().as_secs_f64();
        }
        stats
    }

    /// Writes currently waiting for the writer.
    pub fn queued(&self) -> usize {
        self.inner.jobs.max_capacity() - self.inner.jobs.capacity()
    }

    /// Lets go of the database at once, without committing what is
    /// queued: for a process (or a test's server) that is going away.
    /// Later reads and writes fail.
    pub fn abandon(&self) {
        self.inner.db.close();
    }

    /// Whether this node runs the background jobs that must run on one
    /// node at a time (deliveries, expiry, retention): always with the
    /// embedded database; with a shared one, the node holding the jobs
    /// lock.
    pub fn leads(&self) -> bool {
        match &*self.inner.db {
            Backend::Embedded(_) => true,
            Backend::Postgres(pg) => pg.leads(),
        }
    }

    /// Keeps a file's bytes where every node can read them (the shared
    /// database); nothing to do for the embedded one, whose node serves
    /// its files from its data dir. Blocks: call it off the async threads.
    pub fn put_blob(&self, key: &str, data: &[u8]) -> Result<()> {
        match &*self.inner.db {
            Backend::Embedded(_) => Ok(()),
            Backend::Postgres(pg) => pg.put_blob(key, data),
        }
    }

    /// A file's bytes as [`Store::put_blob`] kept them (None with the
    /// embedded database). Blocks.
    pub fn get_blob(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match &*self.inner.db {
            Backend::Embedded(_) => Ok(None),
            Backend::Postgres(pg) => pg.get_blob(key),
        }
    }

    /// Forgets files kept with [`Store::put_blob`]. Blocks.
    pub fn delete_blobs(&self, keys: &[String]) -> Result<()> {
        match &*self.inner.db {
            Backend::Embedded(_) => Ok(()),
            Backend::Postgres(pg) => pg.delete_blobs(keys),
        }
    }

    /// Tells other nodes that an agent's first socket here opened (true)
    /// or its last closed; nothing to tell with the embedded database.
    pub fn share_presence(&self, org: uuid::Uuid, agent: uuid::Uuid, online: bool) {
        if let Backend::Postgres(pg) = &*self.inner.db {
            pg.share_presence(org, agent, online);
        }
    }

    /// Agents online on other nodes (organization, agent). Blocks.
    pub fn presence_elsewhere(&self) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>> {
        match &*self.inner.db {
            Backend::Embedded(_) => Ok(Vec::new()),
            Backend::Postgres(pg) => pg.presence_elsewhere(),
        }
    }

    /// Who hears that agents' presence changed on another node (with the
    /// organization). It runs on the database's own thread: it must not
    /// block.
    pub fn on_presence(&self, changed: postgres::PresenceChanged) {
        if let Backend::Postgres(pg) = &*self.inner.db {
            pg.on_presence(changed);
        }
    }

    /// With a shared database: counts one more under `key` in the current
    /// window of `window_secs`, for every node together; returns the count
    /// and the seconds left in the window. None with the embedded one
    /// (its node counts alone, in memory). Blocks.
    pub fn count_shared(&self, key: &str, window_secs: u32) -> Result<Option<(u32, u64)>> {
        match &*self.inner.db {
            Backend::Embedded(_) => Ok(None),
            Backend::Postgres(pg) => pg.count(key, window_secs).map(Some),
        }
    }

    /// Forgets shared counters whose window ended long ago. Blocks.
    pub fn forget_shared_counts(&self) -> Result<()> {
        match &*self.inner.db {
            Backend::Embedded(_) => Ok(()),
            Backend::Postgres(pg) => pg.forget_counters(),
        }
    }

    /// Whether other nodes share this store's database.
    pub fn is_shared(&self) -> bool {
        self.inner.db.is_shared()
    }

    /// A secret every node sharing the database uses (signing keys): the
    /// one stored, or a new one stored by whichever node asks first.
    pub async fn shared_secret(&self, name: &str) -> Result<String> {
        let key = format!("secret:{name}");
        let fresh = crate::auth::tokens::generate();
        self.write(move |tx| {
            if let Some(stored) = tx.get_raw(tables::META, key.as_bytes())? {
                return String::from_utf8(stored).map_err(|e| Error::Codec(e.to_string()));
            }
            tx.put_raw(tables::META, key.as_bytes(), fresh.as_bytes())?;
            Ok(fresh.clone())
        })
        .await
    }

    /// Whether the writer is still taking writes.
    pub fn is_running(&self) -> bool {
        !self.inner.jobs.is_closed() && !self.inner.stats.stopped.load(Ordering::Relaxed)
    }
}

/// Where the data lives.
pub(crate) enum Backend {
    /// The embedded redb file (the default).
    Embedded(Box<file::DbFile>),
    /// One PostgreSQL database shared by every node.
    Postgres(Box<postgres::Pg>),
}

impl Backend {
    fn snapshot(&self) -> Result<engine::Snapshot> {
        match self {
            Backend::Embedded(db) => db.snapshot(),
            Backend::Postgres(pg) => pg.snapshot(),
        }
    }

    /// Runs `body` in one write transaction; Ok(false) when it aborted.
    fn write(&self, body: engine::Body<'_>) -> Result<bool> {
        match self {
            Backend::Embedded(db) => db.write(body),
            Backend::Postgres(pg) => pg.write(body),
        }
    }

    /// Whether other nodes share the database (and must hear of events).
    fn is_shared(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    fn below_floor(&self) -> bool {
        self.disk_room().0
    }

    /// Whether the file system is below the floor writes need, and its
    /// free bytes: one `statvfs` for both.
    fn disk_room(&self) -> (bool, Option<u64>) {
        match self {
            Backend::Embedded(db) => db.disk_room(),
            Backend::Postgres(_) => (false, None),
        }
    }

    fn free_bytes(&self) -> Option<u64> {
        match self {
            Backend::Embedded(db) => db.free_bytes(),
            Backend::Postgres(_) => None,
        }
    }

    /// Back to the last durable commit after a failed one.
    fn reopen(&self) {
        match self {
            Backend::Embedded(db) => {
                let _ = db.reopen();
            }
            Backend::Postgres(pg) => pg.reopen(),
        }
    }

    /// Makes the embedded file catch up with its write-ahead log, now
    /// (`due_only`: only when the log has grown or aged enough). A failed
    /// checkpoint leaves the log whole; the file is reopened from it.
    fn checkpoint(&self, due_only: bool) {
        let Backend::Embedded(db) = self else {
            return;
        };
        if let Err(e) = db.checkpoint(due_only) {
            tracing::error!(error = %e, "checkpoint failed: the write-ahead log keeps every batch; reopening the database");
            let _ = db.reopen();
        }
    }

    fn close(&self) {
        match self {
            Backend::Embedded(db) => db.close(),
            Backend::Postgres(pg) => pg.close(),
        }
    }
}

/// Threads by status, counted once from the by-space index (one entry per
/// thread); commits keep the count from then on.
fn count_threads(kv: &dyn engine::Kv) -> Result<writer::ThreadDelta> {
    let mut counts = writer::ThreadDelta::default();
    let mut scan = Scan {
        limit: 4096,
        ..Scan::default()
    };
    loop {
        let chunk = kv.scan(tables::IDX_THREADS_BY_SPACE, &scan)?;
        for (key, _) in &chunk {
            if let Some(status) = records::status_of_space_key(key) {
                counts.add(status, 1);
            }
        }
        match chunk.last() {
            Some((last, _)) if chunk.len() == scan.limit => scan.after = Some(last.clone()),
            _ => return Ok(counts),
        }
    }
}

/// A read snapshot.
pub struct ReadTx {
    kv: engine::Snapshot,
}

/// A scan over keys that start with `prefix`.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub prefix: Vec<u8>,
    /// Start after this key (exclusive), in the scan's direction.
    pub after: Option<Vec<u8>>,
    /// Newest/largest first.
    pub reverse: bool,
    pub limit: usize,
}

impl Scan {
    /// The key range the scan covers, its keys made by `key` (the table's
    /// own, or qualified by its name): from the prefix, or after the
    /// cursor in the scan's direction, to the prefix's end (none when no
    /// key lies past the prefix).
    pub fn bounds(&self, key: impl Fn(&[u8]) -> Vec<u8>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let start = key(&self.prefix);
        let mut upper = prefix_end(&start).map_or(Bound::Unbounded, Bound::Excluded);
        let mut lower = Bound::Included(start);
        if let Some(after) = &self.after {
            if self.reverse {
                upper = Bound::Excluded(key(after));
            } else {
                lower = Bound::Excluded(key(after));
            }
        }
        (lower, upper)
    }
}

/// A borrowed bound.
pub fn bound_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Reader for ReadTx {
    fn get_raw(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.kv.get(table, key)
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.kv.scan(table, scan)
    }
}

/// The transaction a write closure runs in. Only typed operations are
/// offered; every one of them keeps the record's indexes in step.
///
/// Each table is opened once per transaction and kept open for the whole
/// batch; a record read or written inside the transaction is remembered
/// ([`Memory`]), so reading it again or a `put` of it does not read and
/// decode it again.
pub struct WriteTx<'a> {
    kv: &'a dyn engine::KvWrite,
    /// The records and kept values read or written, from this transaction
    /// and the committed batches before it.
    memory: RefCell<Memory>,
    /// The kept values the batch changed (by the memory's keys), to write
    /// before it commits.
    changed: RefCell<std::collections::BTreeSet<Vec<u8>>>,
    /// Set by the first write, so the writer knows whether a failed closure
    /// left anything behind.
    dirty: bool,
    /// What the current closure wants live clients to hear once committed.
    events: Vec<Event>,
    /// How the current closure changed the thread counts.
    threads: writer::ThreadDelta,
}

/// What a stored record contributes to indexes and thread counts.
#[derive(Clone)]
struct Stored {
    entries: Vec<IndexEntry>,
    status: Option<crate::threads::model::ThreadStatus>,
}

impl Stored {
    fn of<R: Record>(record: &R) -> Stored {
        Stored {
            entries: record.indexes(),
            status: record.thread_status(),
        }
    }
}

/// What a write transaction remembers of the records it read and wrote.
///
/// The embedded store's writer is the only writer of its file, so what a
/// committed batch remembers is still what the file holds when the next
/// batch starts: the writer hands it on from one committed batch to the
/// next, and a thread written to again and again (its counts, preview and
/// read markers change with every message) is read and decoded once rather
/// than once per batch. Whatever does not end in a commit (an aborted
/// batch, a failed commit, a reopened file) starts the next batch with an
/// empty memory, and so does any node of a cluster, whose database other
/// nodes write too.
#[derive(Default)]
pub(crate) struct Memory {
    /// Records, by table name ‖ key: what the stored record contributes to
    /// indexes (None: no record).
    known: HashMap<Vec<u8>, Option<Stored>>,
    /// The same records, decoded (an `Option<R>`), by the same keys: a
    /// batch that reads one record for many writes (their chat space, an
    /// agent) decodes it once.
    decoded: HashMap<Vec<u8>, Box<dyn Any>>,
    /// Kept values ([`WriteTx::kept`]), decoded, by the same keys.
    kept: HashMap<Vec<u8>, Kept>,
}

/// A value that is not a record, kept decoded and written once per batch
/// however often the batch changes it ([`WriteTx::keep`]).
struct Kept {
    table: Table,
    key: Vec<u8>,
    value: Box<dyn KeptValue>,
}

/// An `Option<T>` of a kept value, with its type erased.
trait KeptValue: Any {
    /// The bytes to store, or None to remove the value.
    fn encode(&self) -> Result<Option<Vec<u8>>>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: serde::Serialize + 'static> KeptValue for Option<T> {
    fn encode(&self) -> Result<Option<Vec<u8>>> {
        self.as_ref().map(codec::encode).transpose()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Memory {
    /// Records remembered at most between batches; a memory that holds
    /// more starts the next batch empty.
    pub(crate) const MAX_RECORDS: usize = 8192;

    /// Itself, or an empty memory when it grew past [`Self::MAX_RECORDS`].
    pub(crate) fn bounded(self) -> Memory {
        let held = self.known.len().max(self.decoded.len()) + self.kept.len();
        if held > Self::MAX_RECORDS {
            Memory::default()
        } else {
            self
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.known.len() + self.kept.len()
    }
}

impl<'a> WriteTx<'a> {
    /// A transaction that starts out knowing what `memory` holds, which
    /// must be what the engine holds: see [`Memory`].
    pub(crate) fn remembering(kv: &'a dyn engine::KvWrite, memory: Memory) -> WriteTx<'a> {
        WriteTx {
            kv,
            memory: RefCell::new(memory),
            changed: RefCell::default(),
            dirty: false,
            events: Vec::new(),
            threads: writer::ThreadDelta::default(),
        }
    }

    /// What the transaction remembers, for the next one once this one is
    /// committed.
    pub(crate) fn into_memory(self) -> Memory {
        debug_assert!(self.changed.borrow().is_empty(), "kept values written");
        self.memory.into_inner()
    }

    /// Forgets what is remembered of a record or value written without
    /// `put` or `keep`.
    fn forget(&self, table: Table, key: &[u8]) {
        let known = table.qualify(key);
        let mut memory = self.memory.borrow_mut();
        memory.known.remove(&known);
        memory.decoded.remove(&known);
        memory.kept.remove(&known);
        self.changed.borrow_mut().remove(&known);
    }

    /// A value that is not a record, read once per batch (or remembered
    /// from an earlier one, see [`Memory`]) and seen as the batch's
    /// [`WriteTx::keep`] left it. A table holds either kept values only
    /// or none: reading a kept value's table any other way inside a write
    /// would miss what the batch has not written yet.
    pub fn kept<T>(&self, table: Table, key: &[u8]) -> Result<Option<T>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + 'static,
    {
        let known = table.qualify(key);
        if let Some(kept) = self.memory.borrow().kept.get(&known)
            && let Some(value) = kept.value.as_any().downcast_ref::<Option<T>>()
        {
            return Ok(value.clone());
        }
        let value: Option<T> = self.value(table, key)?;
        self.memory.borrow_mut().kept.insert(
            known,
            Kept {
                table,
                key: key.to_vec(),
                value: Box::new(value.clone()),
            },
        );
        Ok(value)
    }

    /// Sets (or, with None, removes) a kept value. It is written when the
    /// batch commits, once however many writes of the batch changed it:
    /// counters many messages of one batch move (a report cell) cost one
    /// write.
    pub fn keep<T>(&mut self, table: Table, key: &[u8], value: Option<T>) -> Result<()>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + 'static,
    {
        self.dirty = true;
        let known = table.qualify(key);
        self.memory.borrow_mut().kept.insert(
            known.clone(),
            Kept {
                table,
                key: key.to_vec(),
                value: Box::new(value),
            },
        );
        self.changed.borrow_mut().insert(known);
        Ok(())
    }

    /// Writes the kept values the batch changed. The writer calls it
    /// once, after the batch's last write and before its commit.
    pub(crate) fn write_kept(&mut self) -> Result<()> {
        let changed = std::mem::take(&mut *self.changed.borrow_mut());
        let memory = self.memory.borrow();
        for known in changed {
            let Some(k) = memory.kept.get(&known) else {
                continue;
            };
            match k.value.encode()? {
                Some(bytes) => self.insert(k.table, &k.key, &bytes)?,
                None => {
                    self.remove(k.table, &k.key)?;
                }
            }
        }
        Ok(())
    }

    fn insert(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.kv.insert(table, key, value)
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<bool> {
        self.kv.remove(table, key)
    }
}

impl Reader for WriteTx<'_> {
    fn get_raw(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.kv.get(table, key)
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.kv.scan(table, scan)
    }

    /// A read inside the write also remembers what the record contributes
    /// to its indexes, for a later `put` of the same record.
    fn get<R: Record>(&self, key: &[u8]) -> Result<Option<R>> {
        let known = R::TABLE.qualify(key);
        if let Some(record) = self
            .memory
            .borrow()
            .decoded
            .get(&known)
            .and_then(|r| r.downcast_ref::<Option<R>>())
        {
            return Ok(record.clone());
        }
        let record: Option<R> = self
            .get_raw(R::TABLE, key)?
            .map(|b| codec::decode(&b))
            .transpose()?;
        let mut memory = self.memory.borrow_mut();
        memory
            .known
            .insert(known.clone(), record.as_ref().map(Stored::of));
        memory.decoded.insert(known, Box::new(record.clone()));
        Ok(record)
    }
}

impl WriteTx<'_> {
    /// Queues an event for live clients. It is published only if this
    /// closure's changes are committed, right after that commit.
    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Inserts or replaces a record and moves its index entries. Unique
    /// entries are checked before anything is written.
    pub fn put<R: Record>(&mut self, record: &R) -> Result<()> {
        let key = record.key();
        let known = R::TABLE.qualify(&key);
        let remembered = self.memory.borrow().known.get(&known).cloned();
        let old = match remembered {
            Some(stored) => stored,
            None => self
                .get_raw(R::TABLE, &key)?
                .map(|b| codec::decode::<R>(&b))
                .transpose()?
                .as_ref()
                .map(Stored::of),
        };
        let new = Stored::of(record);
        let old_entries = old
            .as_ref()
            .map(|o| o.entries.as_slice())
            .unwrap_or_default();
        for entry in new.entries.iter().filter(|e| e.unique) {
            if old_entries.contains(entry) {
                continue;
            }
            if let Some(holder) = self.get_raw(entry.table, &entry.key)?
                && holder != entry.value
            {
                return Err(Error::Unique(unique_name(entry.table)));
            }
        }
        let bytes = codec::encode(record)?;
        self.dirty = true;
        if let Some(status) = old.as_ref().and_then(|o| o.status) {
            self.threads.add(status, -1);
        }
        if let Some(status) = new.status {
            self.threads.add(status, 1);
        }
        for entry in old_entries.iter().filter(|e| !new.entries.contains(e)) {
            self.remove(entry.table, &entry.key)?;
        }
        for entry in new.entries.iter().filter(|e| !old_entries.contains(e)) {
            self.insert(entry.table, &entry.key, &entry.value)?;
        }
        self.insert(R::TABLE, &key, &bytes)?;
        let mut memory = self.memory.borrow_mut();
        if old.is_some() {
            // A record written again (a thread, with every message) is
            // likely to be written again soon: remembered.
            memory
                .decoded
                .insert(known.clone(), Box::new(Some(record.clone())));
            memory.known.insert(known, Some(new));
        } else {
            // A new one (a message) seldom is: not remembered, so the
            // memory holds what is read and written over and over.
            memory.decoded.remove(&known);
            memory.known.remove(&known);
        }
        Ok(())
    }

    /// Removes a record and its index entries; returns what was there.
    pub fn delete<R: Record>(&mut self, key: &[u8]) -> Result<Option<R>> {
        let Some(old) = self.get::<R>(key)? else {
            return Ok(None);
        };
        self.dirty = true;
        self.count(Some(&old), -1);
        for entry in old.indexes() {
            self.remove(entry.table, &entry.key)?;
        }
        self.remove(R::TABLE, key)?;
        let known = R::TABLE.qualify(key);
        let mut memory = self.memory.borrow_mut();
        memory.decoded.insert(known.clone(), Box::new(None::<R>));
        memory.known.insert(known, None);
        Ok(Some(old))
    }

    fn count<R: Record>(&mut self, record: Option<&R>, n: i64) {
        if let Some(status) = record.and_then(Record::thread_status) {
            self.threads.add(status, n);
        }
    }

    /// Writes a value that is not a [`Record`] (tokens, meta values, the
    /// visitor token index).
    pub fn put_raw(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.dirty = true;
        self.forget(table, key);
        self.insert(table, key, value)
    }

    pub fn delete_raw(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        self.dirty = true;
        self.forget(table, key);
        self.remove(table, key)
    }

    /// Encodes and writes a serializable value under a raw key.
    pub fn put_value<T: serde::Serialize>(
        &mut self,
        table: Table,
        key: &[u8],
        value: &T,
    ) -> Result<()> {
        let bytes = codec::encode(value)?;
        self.put_raw(table, key, &bytes)
    }

    /// Adds one to a counter in the meta table and returns the new value.
    pub fn next_counter(&mut self, name: &str) -> Result<u64> {
        let key = format!("counter:{name}");
        let current = self
            .get_raw(tables::META, key.as_bytes())?
            .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let next = current + 1;
        self.put_raw(tables::META, key.as_bytes(), &next.to_be_bytes())?;
        Ok(next)
    }
}

fn unique_name(table: Table) -> &'static str {
    match table.name() {
        "idx_agent_email" => "email",
        "idx_space_key" => "widget key",
        "idx_client_msg" => "clientMsgId",
        "idx_threads_by_ref" => "external reference",
        _ => "key",
    }
}
