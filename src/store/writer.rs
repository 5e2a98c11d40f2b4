//! The group-commit writer: one thread, one transaction per batch of waiting
//! writes, one fsync per batch.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::engine::Decision;
use super::{Backend, CommitListener, Error, Memory, OutboxHook, Result, WriteError, WriteTx};
use crate::events::Event;
use crate::threads::model::ThreadStatus;

const STATUSES: usize = ThreadStatus::ALL.len();

/// Threads gained (or lost) per status by the writes of one closure or
/// one commit.
#[derive(Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct ThreadDelta([i64; STATUSES]);

impl ThreadDelta {
    pub fn add(&mut self, status: ThreadStatus, n: i64) {
        self.0[status.as_u8() as usize] += n;
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }

    fn merge(&mut self, other: ThreadDelta) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// What a commit tells the other nodes of a cluster: its events, and how
/// it moved the thread counts (so every node's `mychat_threads` is the
/// cluster's).
#[derive(serde::Deserialize)]
pub struct Broadcast {
    pub events: Vec<Event>,
    pub threads: ThreadDelta,
}

/// A [`Broadcast`] as written, borrowing the commit's events.
#[derive(serde::Serialize)]
struct Outgoing<'a> {
    events: &'a [Event],
    threads: ThreadDelta,
}

pub type ListenerSlot = std::sync::OnceLock<CommitListener>;
/// The outbox hooks, in the order they were added.
pub type OutboxSlot = std::sync::RwLock<Vec<OutboxHook>>;

type Boxed = Box<dyn Any + Send>;

/// A write closure's failure, with its error type erased.
struct Failure {
    error: Boxed,
    /// Storage itself failed: the transaction cannot be trusted.
    storage: bool,
}

type Op = Box<dyn FnMut(&mut WriteTx<'_>) -> std::result::Result<Boxed, Failure> + Send>;

/// What a write's caller hears back.
pub enum Outcome {
    /// The closure's value, after the commit.
    Done(Boxed),
    /// The closure's own error (of the caller's type); nothing was written.
    Refused(Boxed),
    /// The commit (or the transaction) failed.
    Store(Error),
}

pub struct Job {
    op: Op,
    reply: oneshot::Sender<Outcome>,
}

impl Job {
    pub fn new<T, E, F>(mut op: F, reply: oneshot::Sender<Outcome>) -> Job
    where
        T: Send + 'static,
        E: WriteError,
        F: FnMut(&mut WriteTx<'_>) -> std::result::Result<T, E> + Send + 'static,
    {
        Job {
            op: Box::new(move |tx| match op(tx) {
                Ok(v) => Ok(Box::new(v) as Boxed),
                Err(e) => Err(Failure {
                    storage: e.is_storage(),
                    error: Box::new(e),
                }),
            }),
            reply,
        }
    }
}

pub enum Msg {
    Job(Job),
    Shutdown(oneshot::Sender<()>),
}

/// Upper bounds of the batch-size histogram buckets.
pub const BATCH_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];

/// Upper bounds, in microseconds, of the commit latency histogram buckets.
pub const COMMIT_BUCKETS_MICROS: [u64; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

#[derive(Default)]
pub struct Stats {
    commits: AtomicU64,
    writes: AtomicU64,
    failed_commits: AtomicU64,
    /// Writes refused because the disk was full.
    disk_full_writes: AtomicU64,
    /// Whether the last batch found the disk full (for the log's
    /// "full" and "freed" lines, once each).
    disk_full: AtomicBool,
    commit_micros: AtomicU64,
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
    commit_buckets: [AtomicU64; COMMIT_BUCKETS_MICROS.len() + 1],
    largest_batch: AtomicU64,
    /// Threads by status, as of the last commit: counted once at open, then
    /// moved by every committed write.
    threads: [AtomicI64; STATUSES],
    pub stopped: AtomicBool,
}

/// Counters of the writer, for `/metrics` and the benchmark.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub commits: u64,
    pub writes: u64,
    pub failed_commits: u64,
    /// Writes refused because the disk was full.
    pub disk_full_writes: u64,
    pub commit_seconds: f64,
    /// Cumulative counts of batches of at most `BATCH_BUCKETS[i]` writes; the
    /// last entry counts every batch.
    pub batch_buckets: Vec<(u64, u64)>,
    /// Cumulative counts of commits that took at most the bound, in
    /// seconds; the last entry (infinity) counts every commit.
    pub commit_latency_buckets: Vec<(f64, u64)>,
    pub largest_batch: u64,
    /// Threads by status.
    pub threads: Vec<(ThreadStatus, u64)>,
    /// CPU time of the embedded store's checkpoints, in seconds.
    pub checkpoint_cpu_seconds: f64,
}

impl StoreStats {
    pub fn mean_batch(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.writes as f64 / self.commits as f64
        }
    }
}

impl Stats {
    pub fn count_threads(&self, delta: ThreadDelta) {
        for (counter, n) in self.threads.iter().zip(delta.0) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn record(&self, batch: usize, micros: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(batch as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
        let bucket = BATCH_BUCKETS
            .iter()
            .position(|&b| batch as u64 <= b)
            .unwrap_or(BATCH_BUCKETS.len());
        self.batch_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let bucket = COMMIT_BUCKETS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(COMMIT_BUCKETS_MICROS.len());
        self.commit_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.largest_batch
            .fetch_max(batch as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StoreStats {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BATCH_BUCKETS.len() + 1);
        for (i, counter) in self.batch_buckets.iter().enumerate() {
            cumulative += counter.load(Ordering::Relaxed);
            let bound = BATCH_BUCKETS.get(i).copied().unwrap_or(u64::MAX);
            buckets.push((bound, cumulative));
        }
        let mut cumulative = 0;
        let mut latency = Vec::with_capacity(COMMIT_BUCKETS_MICROS.len() + 1);
        for (i, counter) in self.commit_buckets.iter().enumerate() {
            cumulative += counter.load(Ordering::Relaxed);
            let bound = COMMIT_BUCKETS_MICROS
                .get(i)
                .map_or(f64::INFINITY, |&b| b as f64 / 1e6);
            latency.push((bound, cumulative));
        }
        StoreStats {
            commit_latency_buckets: latency,
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            disk_full_writes: self.disk_full_writes.load(Ordering::Relaxed),
            commit_seconds: self.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
            batch_buckets: buckets,
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            threads: ThreadStatus::ALL
                .into_iter()
                .map(|s| {
                    let n = self.threads[s.as_u8() as usize].load(Ordering::Relaxed);
                    (s, n.max(0) as u64)
                })
                .collect(),
            checkpoint_cpu_seconds: 0.0,
        }
    }
}

pub fn spawn(
    db: Arc<Backend>,
    stats: Arc<Stats>,
    listener: Arc<ListenerSlot>,
    outbox: Arc<OutboxSlot>,
    max_batch: usize,
) -> Result<mpsc::Sender<Msg>> {
    let (tx, rx) = mpsc::channel(16 * 1024);
    std::thread::Builder::new()
        .name("mychat-writer".into())
        .spawn(move || {
            raise_priority();
            run(db, stats, listener, outbox, rx, max_batch)
        })?;
    Ok(tx)
}

/// The nice value the writer asks for.
pub const WRITER_NICE: i32 = -10;

/// Every write waits for this one thread, so where the system allows it
/// (root, or an `RLIMIT_NICE` such as the systemd unit's `LimitNICE=-10`)
/// it runs at [`WRITER_NICE`]: a busy neighbour then delays commits less.
/// With a CPU hog beside it, the writer waited for a CPU 28–35% of a run
/// at nice 0 and 10–12% at -10 (see BENCHMARKS.md). Where it is not allowed,
/// the writer runs at the process's priority.
fn raise_priority() {
    // On Linux a nice value belongs to a thread: "the calling process"
    // is the calling thread here.
    if let Err(e) = rustix::process::setpriority_process(None, WRITER_NICE) {
        tracing::debug!(error = %e, "the store's writer keeps the process's priority");
    }
}

fn run(
    db: Arc<Backend>,
    stats: Arc<Stats>,
    listener: Arc<ListenerSlot>,
    outbox: Arc<OutboxSlot>,
    mut rx: mpsc::Receiver<Msg>,
    max_batch: usize,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    // What the last committed batch knew of the records it touched.
    let mut memory = Memory::default();
    while let Some(first) = rx.blocking_recv() {
        let mut shutdown = None;
        match first {
            Msg::Job(job) => batch.push(job),
            Msg::Shutdown(done) => shutdown = Some(done),
        }
        // Everything already waiting joins this commit.
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => batch.push(job),
                Ok(Msg::Shutdown(done)) => shutdown = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let jobs = std::mem::take(&mut batch);
            commit_batch(&db, &stats, &listener, &outbox, &mut memory, jobs);
            db.checkpoint(true);
        }
        if let Some(done) = shutdown {
            // Writes queued behind the shutdown still get committed.
            rx.close();
            while let Some(msg) = rx.blocking_recv() {
                if let Msg::Job(job) = msg {
                    batch.push(job);
                }
            }
            if !batch.is_empty() {
                let jobs = std::mem::take(&mut batch);
                commit_batch(&db, &stats, &listener, &outbox, &mut memory, jobs);
            }
            db.checkpoint(false);
            stats.stopped.store(true, Ordering::Relaxed);
            // Release the file before saying so, so it can be reopened at once.
            db.close();
            let _ = done.send(());
            return;
        }
    }
    stats.stopped.store(true, Ordering::Relaxed);
}

/// Says once when the disk fills up and once when there is room again.
fn note_disk(stats: &Stats, full: bool, free: Option<u64>) {
    if stats.disk_full.swap(full, Ordering::Relaxed) == full {
        return;
    }
    if full {
        tracing::error!(
            free_bytes = free,
            "disk full: writes are refused (507) until space is freed; reads go on"
        );
    } else {
        tracing::warn!(free_bytes = free, "disk space freed: writes resume");
    }
}

/// Commits `jobs` in one transaction. `memory` is what the last committed
/// batch knew of its records; it is handed on only from commit to commit
/// of the embedded store (see [`Memory`]) and is empty after anything else.
fn commit_batch(
    db: &Backend,
    stats: &Stats,
    listener: &ListenerSlot,
    outbox: &OutboxSlot,
    memory: &mut Memory,
    mut jobs: Vec<Job>,
) {
    // The embedded store's writer is the only writer of its file; a
    // cluster's database has other writers.
    let remember = !db.is_shared();
    // Below the floor the database is not touched at all, so it stays
    // whole and readable; the writes are refused and nothing is stored.
    let (full, free) = db.disk_room();
    note_disk(stats, full, free);
    if full {
        stats
            .disk_full_writes
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        return fail_all(jobs, &Error::DiskFull);
    }
    loop {
        let started = Instant::now();
        let mut results: Vec<Outcome> = Vec::with_capacity(jobs.len());
        let mut events: Vec<Event> = Vec::new();
        let mut threads = ThreadDelta::default();
        let mut poisoned = None;
        let mut unwritten = None;
        let mut remembered = None;
        let committed = db.write(&mut |kv| {
            // The body may run again on a fresh transaction: from scratch.
            results.clear();
            events.clear();
            threads = ThreadDelta::default();
            poisoned = None;
            unwritten = None;
            remembered = None;
            // Taken: whatever does not end in a commit starts the next
            // batch with nothing remembered.
            let mut tx = WriteTx::remembering(kv, std::mem::take(memory).bounded());
            for (i, job) in jobs.iter_mut().enumerate() {
                tx.dirty = false;
                let result = (job.op)(&mut tx);
                let emitted = std::mem::take(&mut tx.events);
                if result.is_ok()
                    && !emitted.is_empty()
                    && let Err(e) = run_hooks(outbox, &mut tx, &emitted)
                {
                    // The write's outbox rows are part of it: no rows, no write.
                    poisoned = Some((i, Outcome::Store(e)));
                    break;
                }
                // Taken after the hook: what it writes is part of this write.
                let counted = std::mem::take(&mut tx.threads);
                match result {
                    Ok(value) => {
                        events.extend(emitted);
                        threads.merge(counted);
                        results.push(Outcome::Done(value));
                    }
                    Err(e) if !tx.dirty && !e.storage => results.push(Outcome::Refused(e.error)),
                    Err(e) => {
                        poisoned = Some((i, Outcome::Refused(e.error)));
                        break;
                    }
                }
            }
            if poisoned.is_none()
                && let Err(e) = tx.write_kept()
            {
                unwritten = Some(e);
            }
            if poisoned.is_some() || unwritten.is_some() {
                Decision::Abort
            } else {
                // Other nodes hear of the events (and the thread counts)
                // through the database.
                let broadcast = (db.is_shared() && !(events.is_empty() && threads.is_zero()))
                    .then(|| {
                        super::codec::encode(&Outgoing {
                            events: &events,
                            threads,
                        })
                        .ok()
                    })
                    .flatten();
                if remember {
                    remembered = Some(tx.into_memory());
                }
                Decision::Commit { broadcast }
            }
        });
        match committed {
            Ok(true) => {
                if let Some(remembered) = remembered.take() {
                    *memory = remembered;
                }
                stats.record(jobs.len(), started.elapsed().as_micros() as u64);
                stats.count_threads(threads);
                // Published before anyone is answered, so a client that gets
                // its ack can rely on the event being on its way to others.
                if !events.is_empty()
                    && let Some(listener) = listener.get()
                {
                    listener(events);
                }
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Ok(false) if unwritten.is_some() => {
                // The batch's kept values could not be written: storage
                // failed, and none of its writes is acknowledged.
                let error = unwritten.take().expect("checked");
                stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %error, writes = jobs.len(), "a batch could not be written; reopening the database");
                fail_all(jobs, &error);
                db.reopen();
            }
            Ok(false) => {
                // Undone; run the others again without the write that failed.
                if let Some((i, outcome)) = poisoned.take() {
                    let job = jobs.remove(i);
                    let _ = job.reply.send(outcome);
                }
                if jobs.is_empty() {
                    return;
                }
                continue;
            }
            Err(Error::Contended) if jobs.len() > 1 => {
                // Other nodes kept winning: each half on its own.
                tracing::debug!(writes = jobs.len(), "a contended batch is split");
                let second = jobs.split_off(jobs.len() / 2);
                commit_batch(db, stats, listener, outbox, memory, jobs);
                commit_batch(db, stats, listener, outbox, memory, second);
            }
            Err(error) => {
                stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                if matches!(error, Error::DiskFull) {
                    stats
                        .disk_full_writes
                        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                    note_disk(stats, true, db.free_bytes());
                }
                tracing::error!(
                    error = %error,
                    writes = jobs.len(),
                    "commit failed: its writes are refused, not acknowledged; reopening the database"
                );
                fail_all(jobs, &error);
                // redb trusts its file again only once reopened, which
                // rolls it back to the last durable commit.
                db.reopen();
            }
        }
        return;
    }
}

/// Every outbox hook, in order; the first failure stops the rest.
fn run_hooks(outbox: &OutboxSlot, tx: &mut WriteTx<'_>, events: &[Event]) -> Result<()> {
    let hooks = outbox.read().unwrap_or_else(|e| e.into_inner());
    for hook in hooks.iter() {
        hook(tx, events)?;
    }
    Ok(())
}

fn fail_all(jobs: Vec<Job>, error: &Error) {
    for job in jobs {
        let copy = match error {
            Error::DiskFull => Error::DiskFull,
            Error::CommitFailed(m) => Error::CommitFailed(m.clone()),
            Error::Contended => Error::Contended,
            other => Error::Storage(other.to_string()),
        };
        let _ = job.reply.send(Outcome::Store(copy));
    }
}

#[cfg(test)]
mod tests {
    use super::WRITER_NICE;
    use crate::ids::{OrgId, SpaceId};
    use crate::spaces::model::{ChatSpace, SpaceSettings};
    use crate::store::{Error, Reader, Store};

    fn space(key: &str) -> ChatSpace {
        ChatSpace {
            id: SpaceId::new(),
            organization_id: OrgId::new(),
            name: "Shop".into(),
            widget_key: key.into(),
            allowed_domains: vec![],
            settings: SpaceSettings::default(),
            created_at: chrono::Utc::now(),
        }
    }

    /// The writer remembers records from one committed batch to the next;
    /// a batch undone by a write that failed after writing must leave
    /// nothing of that write remembered: neither the record nor its index
    /// entries, which the next `put` of the record replaces.
    #[tokio::test]
    async fn an_undone_write_leaves_nothing_remembered_for_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb"), 16).unwrap();
        let first = space("wk_first");
        let id = first.id;
        store.write(move |tx| tx.put(&first)).await.unwrap();
        // Read, changed, written and then refused: undone.
        let undone = store
            .write(move |tx| {
                let mut s = tx.space(id)?.expect("committed");
                s.name = "Undone".into();
                s.widget_key = "wk_undone".into();
                tx.put(&s)?;
                Err::<(), _>(Error::Codec("refused after writing".into()))
            })
            .await;
        assert!(matches!(undone, Err(Error::Codec(_))), "{undone:?}");
        // The next batch reads what was committed, and its put replaces the
        // committed index entry, not the undone one.
        let seen = store
            .write(move |tx| {
                let mut s = tx.space(id)?.expect("committed");
                let seen = s.name.clone();
                s.widget_key = "wk_third".into();
                tx.put(&s)?;
                Ok::<_, Error>(seen)
            })
            .await
            .unwrap();
        assert_eq!(seen, "Shop");
        let read = store.read().unwrap();
        assert_eq!(
            read.space_by_key("wk_third").unwrap().map(|s| s.id),
            Some(id)
        );
        assert!(read.space_by_key("wk_first").unwrap().is_none());
        assert!(read.space_by_key("wk_undone").unwrap().is_none());
        // A record written in one batch and read in the next (from what
        // the writer remembers) is what the file holds.
        let renamed = store
            .write(move |tx| {
                let mut s = tx.space(id)?.expect("committed");
                s.name = "Renamed".into();
                tx.put(&s)
            })
            .await;
        assert!(renamed.is_ok());
        let in_write = store
            .write(move |tx| tx.space(id).map(|s| s.map(|s| s.name)))
            .await
            .unwrap();
        let in_file = store.read().unwrap().space(id).unwrap().map(|s| s.name);
        assert_eq!(in_write.as_deref(), Some("Renamed"));
        assert_eq!(in_write, in_file);
    }

    /// A kept value reads back as the batch left it, reaches the file
    /// with the commit, is remembered for the next batch and is undone
    /// with its batch.
    #[tokio::test]
    async fn kept_values_read_back_as_written_and_are_undone_with_their_batch() {
        use crate::store::tables::META;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb"), 16).unwrap();
        let bump = |tx: &mut crate::store::WriteTx<'_>| -> Result<u32, Error> {
            let n = tx.kept::<u32>(META, b"kept")?.unwrap_or(0) + 1;
            tx.keep(META, b"kept", Some(n))?;
            Ok(n)
        };
        let n = store
            .write(move |tx| {
                bump(tx)?;
                bump(tx)?;
                bump(tx)
            })
            .await
            .unwrap();
        assert_eq!(n, 3);
        let read = |store: &Store| store.read().unwrap().value::<u32>(META, b"kept").unwrap();
        assert_eq!(read(&store), Some(3));
        let undone = store
            .write(move |tx| {
                bump(tx)?;
                Err::<(), _>(Error::Codec("refused after writing".into()))
            })
            .await;
        assert!(undone.is_err());
        assert_eq!(read(&store), Some(3));
        assert_eq!(store.write(move |tx| bump(tx)).await.unwrap(), 4);
        assert_eq!(read(&store), Some(4));
        store
            .write(move |tx| tx.keep::<u32>(META, b"kept", None))
            .await
            .unwrap();
        assert_eq!(read(&store), None);
        let again = store.write(move |tx| bump(tx)).await.unwrap();
        assert_eq!(again, 1);
    }

    /// What is remembered between batches stays bounded.
    #[test]
    fn a_memory_past_its_bound_starts_the_next_batch_empty() {
        let mut memory = crate::store::Memory::default();
        for i in 0..crate::store::Memory::MAX_RECORDS {
            memory.known.insert(i.to_be_bytes().to_vec(), None);
        }
        let mut memory = memory.bounded();
        assert_eq!(memory.len(), crate::store::Memory::MAX_RECORDS);
        memory.known.insert(b"one more".to_vec(), None);
        assert_eq!(memory.bounded().len(), 0);
    }

    /// The nice values of this process's threads called `name`.
    fn nice_of_threads(name: &str) -> Vec<i32> {
        let mut nices = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let dir = task.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // After the name in parentheses: state is field 3, nice field 19.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
            if let Some(nice) = fields.get(16).and_then(|n| n.parse().ok()) {
                nices.push(nice);
            }
        }
        nices
    }

    #[tokio::test]
    async fn the_writer_runs_at_a_raised_priority_where_that_is_allowed() {
        let allowed =
            std::thread::spawn(|| rustix::process::setpriority_process(None, WRITER_NICE).is_ok())
                .join()
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db.redb"), 16).unwrap();
        // A write answered: the writer thread runs.
        store
            .write(|_| Ok::<_, crate::store::Error>(()))
            .await
            .unwrap();
        let nices = nice_of_threads("mychat-writer");
        assert!(!nices.is_empty(), "no writer thread found");
        if allowed {
            assert!(
                nices.contains(&WRITER_NICE),
                "writers' nice values: {nices:?}"
            );
        }
    }
}
