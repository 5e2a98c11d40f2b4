//! The PostgreSQL backend: every table of [`super::tables`] as rows of one
//! ordered table `mychat_kv (t, k, v)`, so the typed store above the
//! [`super::engine`] seam stays the same for both backends.
//!
//! - Reads: a snapshot is a `REPEATABLE READ READ ONLY` transaction on a
//!   pooled connection, begun with its first read.
//! - Writes: the group-commit writer runs each batch in one `SERIALIZABLE`
//!   transaction on its own connection; a batch that loses a serialization
//!   race with another node (SQLSTATE 40001, or a deadlock) runs again on a
//!   fresh transaction, so first-wins claims and idempotency keys hold
//!   across nodes.
//! - Fan-out: a commit with events for other nodes takes a transaction
//!   advisory lock, then the next number of the sequence
//!   `mychat_event_numbers` (the lock is held until the commit, so commits
//!   that publish are numbered in commit order, and no row is contended:
//!   batches of different nodes never fail on it), writes the events to
//!   `mychat_events` and `NOTIFY`s in the same transaction. Every node `LISTEN`s, reads what is newer than
//!   the last number it saw (also after a reconnect, and every few seconds
//!   should a notification be lost) and hands other nodes' events to its
//!   own hub.
//!
//! Queries run on a small runtime of their own ("mychat-pg") that drives
//! the connections; callers block on the answer, as they do on redb's
//! disk reads.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

use super::engine::{Body, Decision, Kv, KvWrite, Snapshot};
use super::tables::{META, Table};
use super::{Error, Result, Scan, migrate, prefix_end};

/// The layout of the PostgreSQL tables (not of the records in them).
/// 2: events numbered by a sequence under an advisory lock (1 kept the
/// number in a row, `mychat_event_seq`).
pub const LAYOUT: i32 = 2;

/// Most idle reading connections kept for reuse.
const IDLE_READERS: usize = 8;

/// How long a batch keeps being run again after losing serialization
/// races; then the writer splits it (a smaller batch conflicts less and
/// commits sooner), and a single write that still loses is refused.
const RETRY_FOR: Duration = Duration::from_secs(2);

/// Key of the advisory lock held while the schema is created or migrated.
const MIGRATE_LOCK: i64 = 0x6d79_6368_6174_0001;

/// Key of the advisory lock the node running the background jobs holds.
const JOBS_LOCK: i64 = 0x6d79_6368_6174_0002;

/// Key of the transaction advisory lock a commit holds from numbering its
/// events until it ends.
const EVENTS_LOCK: i64 = 0x6d79_6368_6174_0003;

/// How long stored events are kept for nodes that fall behind; a node
/// further behind than this has lost its connection for long enough that
/// its clients resume from storage anyway.
const EVENTS_KEPT: &str = "1 hour";

/// The newest event a snapshot (or a fresh transaction) sees. Numbers are
/// given in commit order, so every smaller one is visible too.
const NEWEST_EVENT: &str = "SELECT coalesce(max(seq), 0) FROM mychat_events";

/// The notification channel of committed events.
const CHANNEL: &str = "mychat_events";

/// Called with what another node's commit broadcast, in commit order.
pub type Remote = Arc<dyn Fn(&[u8]) + Send + Sync>;

pub struct Pg {
    url: String,
    /// Drives the connections; shut down (every connection dropped) on close.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    writer: Mutex<Option<Conn>>,
    idle: Arc<Mutex<Vec<Conn>>>,
    /// This node, so its own broadcasts are not handed back to it.
    node: String,
    remote: Arc<OnceLock<Remote>>,
    /// The last event number this node has read.
    seen: Arc<AtomicI64>,
    /// Whether this node holds the jobs lock (runs the background jobs).
    leads: Arc<AtomicBool>,
    /// Who hears that presence changed on another node (an organization).
    presence_changed: Arc<OnceLock<PresenceChanged>>,
    /// This node's agents coming online or going, for the presence task.
    presence: tokio::sync::mpsc::UnboundedSender<Presence>,
    closed: Arc<AtomicBool>,
}

/// Called with an organization whose agents' presence changed on another
/// node (or expired with a node that died).
pub type PresenceChanged = Arc<dyn Fn(uuid::Uuid) + Send + Sync>;

/// An agent's first socket on this node opened (true) or its last closed.
struct Presence {
    org: uuid::Uuid,
    agent: uuid::Uuid,
    online: bool,
}

/// The notification channel of presence changes (payload: organization).
const PRESENCE_CHANNEL: &str = "mychat_presence";

/// How long a node's presence rows live unless renewed, by default.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    get: Statement,
    put: Statement,
    /// By `scan_variant`.
    scans: Vec<Statement>,
}

/// Keeps a connection for reuse, up to [`IDLE_READERS`] of them.
fn give_back(pool: &Mutex<Vec<Conn>>, conn: Conn) {
    let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
    if idle.len() < IDLE_READERS {
        idle.push(conn);
    }
}

fn block<F: Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

fn storage(e: tokio_postgres::Error) -> Error {
    Error::Storage(format!("postgres: {e}"))
}

/// Whether a failure means "run the transaction again".
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The statement of a scan: lower bound inclusive or not, an upper bound or
/// none, reversed or not.
fn scan_variant(inclusive: bool, upper: bool, reverse: bool) -> usize {
    (inclusive as usize) | ((upper as usize) << 1) | ((reverse as usize) << 2)
}

fn scan_sql(variant: usize) -> String {
    let inclusive = variant & 1 != 0;
    let upper = variant & 2 != 0;
    let reverse = variant & 4 != 0;
    format!(
        "SELECT k, v FROM mychat_kv WHERE t = $1 AND k {} $2{} ORDER BY k {} LIMIT ${}",
        if inclusive { ">=" } else { ">" },
        if upper { " AND k < $3" } else { "" },
        if reverse { "DESC" } else { "ASC" },
        if upper { 4 } else { 3 },
    )
}

impl Conn {
    async fn open(url: &str, handle: &tokio::runtime::Handle) -> Result<Conn> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(storage)?;
        handle.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        Conn::prepare(client).await
    }

    async fn prepare(client: Client) -> Result<Conn> {
        let get = client
            .prepare("SELECT v FROM mychat_kv WHERE t = $1 AND k = $2")
            .await
            .map_err(storage)?;
        let put = client
            .prepare(
                "INSERT INTO mychat_kv (t, k, v) VALUES ($1, $2, $3) \
                 ON CONFLICT (t, k) DO UPDATE SET v = EXCLUDED.v",
            )
            .await
            .map_err(storage)?;
        let mut scans = Vec::with_capacity(8);
        for variant in 0..8 {
            scans.push(client.prepare(&scan_sql(variant)).await.map_err(storage)?);
        }
        Ok(Conn {
            client,
            get,
            put,
            scans,
        })
    }

    async fn get(
        &self,
        table: Table,
        key: &[u8],
    ) -> std::result::Result<Option<Vec<u8>>, tokio_postgres::Error> {
        let row = self
            .client
            .query_opt(&self.get, &[&table.name(), &key])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn scan(
        &self,
        table: Table,
        scan: &Scan,
    ) -> std::result::Result<Vec<(Vec<u8>, Vec<u8>)>, tokio_postgres::Error> {
        let end = prefix_end(&scan.prefix);
        let mut lower: (&[u8], bool) = (scan.prefix.as_slice(), true);
        let mut upper: Option<&[u8]> = end.as_deref();
        if let Some(after) = &scan.after {
            if scan.reverse {
                upper = Some(after.as_slice());
            } else {
                lower = (after.as_slice(), false);
            }
        }
        let limit = scan.limit.clamp(1, i64::MAX as usize) as i64;
        let statement = &self.scans[scan_variant(lower.1, upper.is_some(), scan.reverse)];
        let name = table.name();
        let rows = match upper {
            Some(upper) => {
                self.client
                    .query(statement, &[&name, &lower.0, &upper, &limit])
                    .await?
            }
            None => {
                self.client
                    .query(statement, &[&name, &lower.0, &limit])
                    .await?
            }
        };
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl Pg {
    /// Connects, creates or migrates the schema, and starts listening for
    /// other nodes' events.
    /// A node's presence rows live `presence_ttl` unless renewed: the
    /// agents of a node that died stop counting as online after it.
    pub fn open(url: &str, presence_ttl: Duration) -> Result<Pg> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mychat-pg")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (presence_tx, presence_rx) = tokio::sync::mpsc::unbounded_channel();
        let pg = Pg {
            url: url.to_owned(),
            handle,
            runtime: Mutex::new(Some(runtime)),
            writer: Mutex::new(None),
            idle: Arc::new(Mutex::new(Vec::new())),
            node: uuid::Uuid::new_v4().to_string(),
            remote: Arc::new(OnceLock::new()),
            seen: Arc::new(AtomicI64::new(0)),
            leads: Arc::new(AtomicBool::new(false)),
            presence_changed: Arc::new(OnceLock::new()),
            presence: presence_tx,
            closed: Arc::new(AtomicBool::new(false)),
        };
        let url = pg.url.clone();
        let seen = pg.on_runtime(async move { migrate_schema(&url).await })??;
        pg.seen.store(seen, Ordering::SeqCst);
        pg.contend();
        pg.keep_presence(presence_rx, presence_ttl);
        Ok(pg)
    }

    /// Runs `f` on the backend's runtime and waits for it (connecting
    /// needs the runtime's reactor; queries on a connection do not).
    fn on_runtime<F>(&self, f: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| Error::ShuttingDown)
    }

    fn connect(&self) -> Result<Conn> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::ShuttingDown);
        }
        let url = self.url.clone();
        let handle = self.handle.clone();
        self.on_runtime(async move { Conn::open(&url, &handle).await })?
    }

    /// An idle connection of the pool, or a new one.
    fn pooled(&self) -> Result<Conn> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Box::new(self.reading()?))
    }

    /// A snapshot on a pooled connection, begun with its first read.
    fn reading(&self) -> Result<Reading> {
        Ok(Reading {
            conn: Mutex::new(Some(self.pooled()?)),
            began: AtomicBool::new(false),
            idle: self.idle.clone(),
        })
    }

    /// A snapshot, and the number of the newest event it holds: what a
    /// node counts from it is exact once it follows events after that.
    pub fn snapshot_at_event(&self) -> Result<(Snapshot, i64)> {
        let reading = self.reading()?;
        let seq = reading.with(async |c| {
            let row = c.client.query_one(NEWEST_EVENT, &[]).await?;
            Ok(row.get::<_, i64>(0))
        })?;
        Ok((Box::new(reading), seq))
    }

    /// Starts following the other nodes' events after `seq`, handing each
    /// commit's broadcast to `remote`.
    pub fn follow_from(&self, seq: i64, remote: Remote) {
        let _ = self.remote.set(remote);
        self.seen.store(seq, Ordering::SeqCst);
        self.listen();
    }

    /// Runs `f` on a pooled connection outside any transaction (each
    /// statement commits by itself).
    fn on_pooled<T>(
        &self,
        f: impl AsyncFnOnce(&Client) -> std::result::Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        let conn = self.pooled()?;
        let result = block(f(&conn.client)).map_err(storage)?;
        give_back(&self.idle, conn);
        Ok(result)
    }

    /// Counts one more under `key` in the current window of `window_secs`
    /// (a new window begins once the last is over); returns the count and
    /// the seconds left in the window.
    pub fn count(&self, key: &str, window_secs: u32) -> Result<(u32, u64)> {
        let secs = f64::from(window_secs);
        self.on_pooled(async |c| {
            let row = c
                .query_one(
                    "INSERT INTO mychat_counters AS c (key, window_start, n) VALUES ($1, now(), 1)
                     ON CONFLICT (key) DO UPDATE SET
                       n = CASE WHEN c.window_start <= now() - make_interval(secs => $2) THEN 1 ELSE c.n + 1 END,
                       window_start = CASE WHEN c.window_start <= now() - make_interval(secs => $2)
                                      THEN now() ELSE c.window_start END
                     RETURNING n, extract(epoch FROM (window_start + make_interval(secs => $2) - now()))::float8",
                    &[&key, &secs],
                )
                .await?;
            let n: i32 = row.get(0);
            let left: f64 = row.get(1);
            Ok((n.max(0) as u32, left.max(0.0).ceil() as u64))
        })
    }

    /// Forgets counters whose window ended long ago.
    pub fn forget_counters(&self) -> Result<()> {
        self.on_pooled(async |c| {
            c.execute(
                "DELETE FROM mychat_counters WHERE window_start < now() - interval '1 hour'",
                &[],
            )
            .await
        })
        .map(|_| ())
    }

    /// Stores a file's bytes under `key` (durably, before whatever names
    /// it commits).
    pub fn put_blob(&self, key: &str, data: &[u8]) -> Result<()> {
        self.on_pooled(async |c| {
            c.execute(
                "INSERT INTO mychat_blobs (key, data) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data",
                &[&key, &data],
            )
            .await
        })
        .map(|_| ())
    }

    pub fn get_blob(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.on_pooled(async |c| {
            let row = c
                .query_opt("SELECT data FROM mychat_blobs WHERE key = $1", &[&key])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    pub fn delete_blobs(&self, keys: &[String]) -> Result<()> {
        self.on_pooled(async |c| {
            c.execute("DELETE FROM mychat_blobs WHERE key = ANY($1)", &[&keys])
                .await
        })
        .map(|_| ())
    }

    /// Runs `body` in one serializable transaction and commits it; runs it
    /// again when it lost a race with another node.
    pub fn write(&self, body: Body<'_>) -> Result<bool> {
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        while attempt == 0 || started.elapsed() < RETRY_FOR {
            attempt += 1;
            if slot.is_none() {
                *slot = Some(
                    self.connect()
                        .map_err(|e| Error::CommitFailed(e.to_string()))?,
                );
            }
            let conn = slot.as_ref().expect("connected");
            if let Err(e) = block(
                conn.client
                    .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE"),
            ) {
                *slot = None;
                return Err(Error::CommitFailed(e.to_string()));
            }
            let writing = Writing {
                conn,
                pending: RefCell::new(BTreeMap::new()),
                conflict: Cell::new(false),
                broken: Cell::new(false),
            };
            let decision = body(&writing);
            let (conflict, broken) = (writing.conflict.get(), writing.broken.get());
            let outcome = if conflict || broken {
                None
            } else {
                match decision {
                    Decision::Abort => Some(Ok(false)),
                    Decision::Commit { broadcast } => {
                        let committed = async {
                            writing.flush().await?;
                            if let Some(payload) = broadcast {
                                publish(&conn.client, &self.node, &payload).await?;
                            }
                            conn.client.batch_execute("COMMIT").await
                        };
                        match block(committed) {
                            Ok(()) => return Ok(true),
                            Err(e) if is_conflict(&e) => None,
                            Err(e) => {
                                // The connection (or the commit) failed: whether
                                // it committed is unknown to us, so the writes are
                                // refused; their clients retry with the same keys.
                                *slot = None;
                                return Err(Error::CommitFailed(e.to_string()));
                            }
                        }
                    }
                }
            };
            if block(conn.client.batch_execute("ROLLBACK")).is_err() || broken {
                *slot = None;
                if broken {
                    return Err(Error::CommitFailed(
                        "the database connection was lost".into(),
                    ));
                }
            }
            if let Some(result) = outcome {
                return result;
            }
            // Lost a race: a pause of random length, up to twice as long
            // each time (at most 50 ms), so nodes that collided do not
            // collide again in step.
            let ceiling = 200u64 << attempt.min(8);
            std::thread::sleep(Duration::from_micros(rand::random_range(0..=ceiling)));
        }
        Err(Error::Contended)
    }

    /// Drops the writer's connection, so the next batch connects again.
    pub fn reopen(&self) {
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Lets go of the database: every connection (and the event listener)
    /// ends; later reads and writes fail.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            runtime.shutdown_background();
        }
    }

    /// Who hears of presence changes on other nodes.
    pub fn on_presence(&self, changed: PresenceChanged) {
        let _ = self.presence_changed.set(changed);
    }

    /// Tells the other nodes that an agent's first socket on this node
    /// opened, or its last closed.
    pub fn share_presence(&self, org: uuid::Uuid, agent: uuid::Uuid, online: bool) {
        let _ = self.presence.send(Presence { org, agent, online });
    }

    /// Agents online on other nodes: (organization, agent).
    pub fn presence_elsewhere(&self) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>> {
        let node = self.node.clone();
        self.on_pooled(async |c| {
            let rows = c
                .query(
                    "SELECT DISTINCT org::text, agent::text FROM mychat_presence \
                     WHERE node <> $1 AND until > now()",
                    &[&node],
                )
                .await?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let org: &str = r.get(0);
                    let agent: &str = r.get(1);
                    Some((org.parse().ok()?, agent.parse().ok()?))
                })
                .collect())
        })
    }

    /// Keeps this node's presence rows: written as agents come and go,
    /// renewed every few seconds, written again after a reconnect; rows
    /// of nodes that stopped renewing are removed (and said so).
    fn keep_presence(
        &self,
        mut changes: tokio::sync::mpsc::UnboundedReceiver<Presence>,
        ttl: Duration,
    ) {
        let url = self.url.clone();
        let node = self.node.clone();
        let closed = self.closed.clone();
        self.handle.spawn(async move {
            // This node's agents online: agent -> organization.
            let mut here: std::collections::HashMap<uuid::Uuid, uuid::Uuid> = Default::default();
            while !closed.load(Ordering::Relaxed) {
                let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                let mut session = tokio::spawn(connection);
                let put = "INSERT INTO mychat_presence (node, org, agent, until) \
                           VALUES ($1, $2::text::uuid, $3::text::uuid, now() + make_interval(secs => $4)) \
                           ON CONFLICT (node, agent) DO UPDATE SET until = EXCLUDED.until";
                let renewal = (ttl / 6).max(Duration::from_millis(200));
                let ttl = ttl.as_secs_f64();
                let mut healthy = true;
                for (agent, org) in &here {
                    let (o, a) = (org.to_string(), agent.to_string());
                    healthy &= client.execute(put, &[&node, &o, &a, &ttl]).await.is_ok();
                }
                let mut renew = tokio::time::interval(renewal);
                while healthy && !closed.load(Ordering::Relaxed) {
                    tokio::select! {
                        change = changes.recv() => {
                            let Some(c) = change else { return };
                            let (o, a) = (c.org.to_string(), c.agent.to_string());
                            let done = if c.online {
                                here.insert(c.agent, c.org);
                                client.execute(put, &[&node, &o, &a, &ttl]).await
                            } else {
                                here.remove(&c.agent);
                                client
                                    .execute(
                                        "DELETE FROM mychat_presence WHERE node = $1 AND agent = $2::text::uuid",
                                        &[&node, &a],
                                    )
                                    .await
                            };
                            let said = client
                                .execute("SELECT pg_notify($1, $2)", &[&PRESENCE_CHANNEL, &o])
                                .await;
                            healthy = done.is_ok() && said.is_ok();
                        }
                        _ = renew.tick() => {
                            let renewed = client
                                .execute(
                                    "UPDATE mychat_presence SET until = now() + make_interval(secs => $2) WHERE node = $1",
                                    &[&node, &ttl],
                                )
                                .await;
                            let expired = client
                                .query(
                                    "DELETE FROM mychat_presence WHERE until < now() RETURNING org::text",
                                    &[],
                                )
                                .await;
                            healthy = renewed.is_ok();
                            if let Ok(rows) = expired {
                                let mut orgs: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                                orgs.dedup();
                                for org in orgs {
                                    let _ = client
                                        .execute("SELECT pg_notify($1, $2)", &[&PRESENCE_CHANNEL, &org])
                                        .await;
                                }
                            }
                        }
                        _ = &mut session => healthy = false,
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Whether this node runs the background jobs now.
    pub fn leads(&self) -> bool {
        self.leads.load(Ordering::SeqCst)
    }

    /// Tries for the jobs lock (a session advisory lock) and holds it while
    /// its connection lives: one node of the cluster runs the background
    /// jobs, and when it dies (its session ends) another takes over within
    /// a few seconds.
    fn contend(&self) {
        let url = self.url.clone();
        let leads = self.leads.clone();
        let closed = self.closed.clone();
        self.handle.spawn(async move {
            while !closed.load(Ordering::Relaxed) {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                    let mut session = tokio::spawn(connection);
                    loop {
                        let won = client
                            .query_one("SELECT pg_try_advisory_lock($1)", &[&JOBS_LOCK])
                            .await
                            .map(|row| row.get::<_, bool>(0));
                        match won {
                            Ok(true) => {
                                tracing::info!("this node runs the background jobs");
                                leads.store(true, Ordering::SeqCst);
                                // One of its jobs: events every node has read.
                                // By number (walks the old rows only).
                                let prune = format!(
                                    "DELETE FROM mychat_events WHERE seq < coalesce(
                                         (SELECT seq FROM mychat_events
                                           WHERE at >= now() - interval '{EVENTS_KEPT}'
                                           ORDER BY seq LIMIT 1),
                                         (SELECT max(seq) + 1 FROM mychat_events))"
                                );
                                let mut every = tokio::time::interval(Duration::from_secs(60));
                                loop {
                                    tokio::select! {
                                        _ = &mut session => break,
                                        _ = every.tick() => {
                                            if let Err(e) = client.execute(&prune, &[]).await {
                                                tracing::warn!(error = %e, "old events could not be removed");
                                            }
                                        }
                                    }
                                }
                                leads.store(false, Ordering::SeqCst);
                                tracing::warn!("this node no longer runs the background jobs");
                                break;
                            }
                            Ok(false) => {
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                    _ = &mut session => break,
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Follows other nodes' commits: LISTEN, and read what is new on every
    /// notification, after every reconnect and every few seconds.
    fn listen(&self) {
        let url = self.url.clone();
        let node = self.node.clone();
        let remote = self.remote.clone();
        let seen = self.seen.clone();
        let closed = self.closed.clone();
        let presence = self.presence_changed.clone();
        self.handle.spawn(async move {
            while !closed.load(Ordering::Relaxed) {
                if let Err(e) = follow(&url, &node, &remote, &presence, &seen, &closed).await {
                    tracing::warn!(error = %e, "lost the database's event notifications; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.close();
    }
}

/// Numbers the commit's broadcast (in commit order: the lock taken first is
/// held until this transaction ends, so the next commit to publish draws
/// its number after this one is visible), stores it and notifies.
async fn publish(
    client: &Client,
    node: &str,
    payload: &[u8],
) -> std::result::Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])
        .await?;
    client
        .execute(
            "INSERT INTO mychat_events (seq, node, payload) \
             VALUES (nextval('mychat_event_numbers'), $1, $2)",
            &[&node, &payload],
        )
        .await?;
    client.batch_execute(&format!("NOTIFY {CHANNEL}")).await
}

async fn follow(
    url: &str,
    node: &str,
    remote: &OnceLock<Remote>,
    presence: &Arc<OnceLock<PresenceChanged>>,
    seen: &AtomicI64,
    closed: &AtomicBool,
) -> std::result::Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let (wake, mut woken) = tokio::sync::mpsc::unbounded_channel::<()>();
    let presence = presence.clone();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.channel() == PRESENCE_CHANNEL => {
                    if let (Some(changed), Ok(org)) = (presence.get(), n.payload().parse()) {
                        changed(org);
                    }
                }
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = wake.send(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "event connection ended");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {PRESENCE_CHANNEL}"))
        .await?;
    let read = client
        .prepare(
            "SELECT seq, node, payload FROM mychat_events WHERE seq > $1 ORDER BY seq LIMIT 512",
        )
        .await?;
    loop {
        // Everything newer than what was seen, in order.
        loop {
            let after = seen.load(Ordering::SeqCst);
            let rows = client.query(&read, &[&after]).await?;
            let full = rows.len() == 512;
            for row in rows {
                let seq: i64 = row.get(0);
                let from: &str = row.get(1);
                let payload: &[u8] = row.get(2);
                if from != node
                    && let Some(remote) = remote.get()
                {
                    remote(payload);
                }
                seen.store(seq, Ordering::SeqCst);
            }
            if !full {
                break;
            }
        }
        if closed.load(Ordering::Relaxed) {
            driver.abort();
            return Ok(());
        }
        tokio::select! {
            w = woken.recv() => if w.is_none() {
                // The connection ended: reconnect.
                return Ok(());
            },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        while woken.try_recv().is_ok() {}
    }
}

/// Creates the tables on a new database, under an advisory lock so nodes
/// starting together do it once; refuses a database of a newer program.
/// Returns the newest event number, where this node starts following.
async fn migrate_schema(url: &str) -> Result<i64> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(storage)?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(storage)?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS mychat_layout (version integer NOT NULL)")
            .await
            .map_err(storage)?;
        let found: Option<i32> = client
            .query_opt("SELECT version FROM mychat_layout", &[])
            .await
            .map_err(storage)?
            .map(|r| r.get(0));
        match found {
            Some(v) if v > LAYOUT => {
                return Err(Error::SchemaTooNew {
                    found: v as u64,
                    supported: LAYOUT as u64,
                });
            }
            Some(1) => {
                // The event counter's row becomes a sequence that goes on
                // from where the row was.
                let txn = client.transaction().await.map_err(storage)?;
                txn.batch_execute(
                    "CREATE SEQUENCE mychat_event_numbers;
                     SELECT setval('mychat_event_numbers', seq + 1, false) FROM mychat_event_seq;
                     DROP TABLE mychat_event_seq;
                     UPDATE mychat_layout SET version = 2;",
                )
                .await
                .map_err(storage)?;
                txn.commit().await.map_err(storage)?;
                tracing::info!("database tables migrated to layout 2");
            }
            Some(_) => {}
            None => {
                let txn = client.transaction().await.map_err(storage)?;
                txn.batch_execute(
                    "CREATE TABLE mychat_kv (
                         t text NOT NULL,
                         k bytea NOT NULL,
                         v bytea NOT NULL,
                         PRIMARY KEY (t, k)
                     );
                     CREATE SEQUENCE mychat_event_numbers;
                     CREATE TABLE mychat_events (
                         seq bigint PRIMARY KEY,
                         node text NOT NULL,
                         payload bytea NOT NULL,
                         at timestamptz NOT NULL DEFAULT now()
                     );
                     INSERT INTO mychat_layout VALUES (2);",
                )
                .await
                .map_err(storage)?;
                txn.execute(
                    "INSERT INTO mychat_kv (t, k, v) VALUES ($1, $2, $3)",
                    &[
                        &META.name(),
                        &migrate::VERSION_KEY,
                        &migrate::CURRENT.to_be_bytes().as_slice(),
                    ],
                )
                .await
                .map_err(storage)?;
                txn.commit().await.map_err(storage)?;
                tracing::info!("database tables created");
            }
        }
        // Agents online, per node, until the node stops renewing them.
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS mychat_presence (
                     node text NOT NULL,
                     org uuid NOT NULL,
                     agent uuid NOT NULL,
                     until timestamptz NOT NULL,
                     PRIMARY KEY (node, agent)
                 )",
            )
            .await
            .map_err(storage)?;
        // Rate limits every node counts against (login attempts).
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS mychat_counters (
                     key text PRIMARY KEY,
                     window_start timestamptz NOT NULL,
                     n integer NOT NULL
                 )",
            )
            .await
            .map_err(storage)?;
        // Files (attachments, pictures) every node serves.
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS mychat_blobs (key text PRIMARY KEY, data bytea NOT NULL);
                 ALTER TABLE mychat_blobs ALTER COLUMN data SET STORAGE EXTERNAL;",
            )
            .await
            .map_err(storage)?;
        let records: Option<Vec<u8>> = client
            .query_opt(
                "SELECT v FROM mychat_kv WHERE t = $1 AND k = $2",
                &[&META.name(), &migrate::VERSION_KEY],
            )
            .await
            .map_err(storage)?
            .map(|r| r.get(0));
        let records = records
            .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(migrate::CURRENT);
        if records > migrate::CURRENT {
            return Err(Error::SchemaTooNew {
                found: records,
                supported: migrate::CURRENT,
            });
        }
        if records < migrate::CURRENT {
            // Records of schema 2 read on as they are (times as strings);
            // the version moves so that a server of schema 2, which would
            // misread the integer times written from now on, refuses to
            // start on this database.
            client
                .execute(
                    "UPDATE mychat_kv SET v = $3 WHERE t = $1 AND k = $2",
                    &[
                        &META.name(),
                        &migrate::VERSION_KEY,
                        &migrate::CURRENT.to_be_bytes().as_slice(),
                    ],
                )
                .await
                .map_err(storage)?;
        }
        let seen: i64 = client
            .query_one(NEWEST_EVENT, &[])
            .await
            .map_err(storage)?
            .get(0);
        Ok(seen)
    }
    .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await;
    drop(client);
    let _ = driver.await;
    result
}

/// A read snapshot on a pooled connection.
struct Reading {
    conn: Mutex<Option<Conn>>,
    began: AtomicBool,
    idle: Arc<Mutex<Vec<Conn>>>,
}

impl Reading {
    fn with<T>(
        &self,
        f: impl AsyncFnOnce(&Conn) -> std::result::Result<T, tokio_postgres::Error>,
    ) -> Result<T> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = slot.as_ref().ok_or(Error::ShuttingDown)?;
        let began = self.began.swap(true, Ordering::Relaxed);
        let result = block(async {
            if !began {
                conn.client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?;
            }
            f(conn).await
        });
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                // Not reused: the transaction (or the connection) is broken.
                *slot = None;
                Err(storage(e))
            }
        }
    }
}

impl Kv for Reading {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(async |c| c.get(table, key).await)
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with(async |c| c.scan(table, scan).await)
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let Some(conn) = self
            .conn
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        if self.began.load(Ordering::Relaxed)
            && block(conn.client.batch_execute("ROLLBACK")).is_err()
        {
            return;
        }
        give_back(&self.idle, conn);
    }
}

/// Writes waiting for the commit: (table, key) -> the value written, or
/// None: removed.
type Pending = BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>;

/// The writer's transaction. Inserts and removals wait in `pending` and
/// reach the database at commit, in two statements for the whole batch;
/// reads see them first, so the batch reads its own writes.
struct Writing<'a> {
    conn: &'a Conn,
    pending: RefCell<Pending>,
    /// A statement lost a serialization race: the batch runs again.
    conflict: Cell<bool>,
    /// The connection failed.
    broken: Cell<bool>,
}

impl Writing<'_> {
    fn check<T>(&self, result: std::result::Result<T, tokio_postgres::Error>) -> Result<T> {
        result.map_err(|e| {
            if is_conflict(&e) {
                self.conflict.set(true);
            } else if e.is_closed() {
                self.broken.set(true);
            }
            storage(e)
        })
    }

    /// Writes what waits in `pending`: one upsert of every inserted entry,
    /// one delete of every removed one.
    async fn flush(&self) -> std::result::Result<(), tokio_postgres::Error> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let (mut put_t, mut put_k, mut put_v) = (Vec::new(), Vec::new(), Vec::new());
        let (mut del_t, mut del_k) = (Vec::new(), Vec::new());
        for ((t, k), v) in pending.iter() {
            match v {
                Some(v) => {
                    put_t.push(*t);
                    put_k.push(k.as_slice());
                    put_v.push(v.as_slice());
                }
                None => {
                    del_t.push(*t);
                    del_k.push(k.as_slice());
                }
            }
        }
        let client = &self.conn.client;
        if !del_t.is_empty() {
            client
                .execute(
                    "DELETE FROM mychat_kv WHERE (t, k) IN \
                     (SELECT * FROM unnest($1::text[], $2::bytea[]))",
                    &[&del_t, &del_k],
                )
                .await?;
        }
        if !put_t.is_empty() {
            client
                .execute(
                    "INSERT INTO mychat_kv (t, k, v) \
                     SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
                     ON CONFLICT (t, k) DO UPDATE SET v = EXCLUDED.v",
                    &[&put_t, &put_k, &put_v],
                )
                .await?;
        }
        Ok(())
    }
}

/// Whether `key` falls within a scan's range (its prefix, and past its
/// `after` in its direction).
fn in_scan(key: &[u8], scan: &Scan) -> bool {
    key.starts_with(&scan.prefix)
        && scan.after.as_deref().is_none_or(|after| {
            if scan.reverse {
                key < after
            } else {
                key > after
            }
        })
}

impl Kv for Writing<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.pending.borrow().get(&(table.name(), key.to_vec())) {
            return Ok(v.clone());
        }
        self.check(block(self.conn.get(table, key)))
    }

    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let pending = self.pending.borrow();
        let name = table.name();
        let mine: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = pending
            .range((name, Vec::new())..)
            .take_while(|((t, _), _)| *t == name)
            .filter(|((_, k), _)| in_scan(k, scan))
            .map(|((_, k), v)| (k, v))
            .collect();
        if mine.is_empty() {
            drop(pending);
            return self.check(block(self.conn.scan(table, scan)));
        }
        // Enough stored entries that those removed here cannot leave the
        // page short, then this batch's own entries over them.
        let removed = mine.iter().filter(|(_, v)| v.is_none()).count();
        let wider = Scan {
            limit: scan.limit.max(1).saturating_add(removed),
            ..scan.clone()
        };
        let stored = self.check(block(self.conn.scan(table, &wider)))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for (k, v) in mine {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        let limit = scan.limit.max(1);
        let out: Vec<(Vec<u8>, Vec<u8>)> = if scan.reverse {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        };
        Ok(out)
    }
}

impl KvWrite for Writing<'_> {
    fn insert(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.pending
            .borrow_mut()
            .insert((table.name(), key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<bool> {
        let existed = self.get(table, key)?.is_some();
        self.pending
            .borrow_mut()
            .insert((table.name(), key.to_vec()), None);
        Ok(existed)
    }
}

/// What `mychat migrate --from-redb` copied.
#[derive(Debug, Default)]
pub struct Imported {
    /// Per table: its name and how many entries it holds in both.
    pub tables: Vec<(&'static str, u64)>,
    pub entries: u64,
    /// Files (attachments, thumbnails, pictures) copied.
    pub files: u64,
}

/// Entries per transaction while copying.
const IMPORT_CHUNK: usize = 2000;

/// Copies every table of an embedded database (`source`, a redb file no
/// server has open) into the PostgreSQL database at `url`, creating its
/// tables first, with `secrets` (name, value) stored beside them. Entries
/// are written by key, so an interrupted copy is finished by running it
/// again. Every table's count is compared afterwards: a database that
/// holds anything else is refused.
pub fn import(
    source: &std::path::Path,
    url: &str,
    secrets: &[(&str, Vec<u8>)],
    files: &[(String, std::path::PathBuf)],
) -> Result<Imported> {
    let file = super::file::DbFile::open(source, 0, migrate::run)?;
    let snapshot = file.snapshot()?;
    let pg = Pg::open(url, PRESENCE_TTL)?;
    let conn = pg.connect()?;
    let copy = block(conn.client.prepare(
        "INSERT INTO mychat_kv (t, k, v) SELECT $1, * FROM unnest($2::bytea[], $3::bytea[]) \
         ON CONFLICT (t, k) DO UPDATE SET v = EXCLUDED.v",
    ))
    .map_err(storage)?;
    let count = block(
        conn.client
            .prepare("SELECT count(*) FROM mychat_kv WHERE t = $1"),
    )
    .map_err(storage)?;
    let mut imported = Imported::default();
    for table in super::tables::ALL {
        let mut scan = Scan {
            limit: IMPORT_CHUNK,
            ..Scan::default()
        };
        let mut copied = 0u64;
        loop {
            let chunk = snapshot.scan(*table, &scan)?;
            let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| k.as_slice()).collect();
            let values: Vec<&[u8]> = chunk.iter().map(|(_, v)| v.as_slice()).collect();
            if !chunk.is_empty() {
                block(conn.client.execute(&copy, &[&table.name(), &keys, &values]))
                    .map_err(storage)?;
            }
            copied += chunk.len() as u64;
            match chunk.last() {
                Some((last, _)) if chunk.len() == scan.limit => scan.after = Some(last.clone()),
                _ => break,
            }
        }
        let mut held = copied;
        for (name, value) in secrets.iter().filter(|_| *table == META) {
            let key = format!("secret:{name}");
            block(conn.client.execute(
                &conn.put,
                &[&table.name(), &key.as_bytes(), &value.as_slice()],
            ))
            .map_err(storage)?;
            held += 1;
        }
        let there: i64 = block(conn.client.query_one(&count, &[&table.name()]))
            .map_err(storage)?
            .get(0);
        if there as u64 != held {
            return Err(Error::Storage(format!(
                "table {}: {held} entries copied but the database holds {there}: \
                 it holds something else; migrate into an empty database",
                table.name()
            )));
        }
        imported.tables.push((table.name(), held));
        imported.entries += held;
    }
    drop(conn);
    for (key, path) in files {
        pg.put_blob(key, &std::fs::read(path)?)?;
        imported.files += 1;
    }
    pg.close();
    file.close();
    Ok(imported)
}
