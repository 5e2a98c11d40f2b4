//! `mychat-load`: how many acknowledged, durable messages My-Chat takes per
//! second, and how long each one waits.
//!
//! `store` drives the use case (`messages::send::from_agent`) against the
//! real store, without HTTP; `http` drives `POST /threads/{id}/messages`
//! over real connections, against an in-process server or one given by
//! `--url`; `matrix` runs both with 1, 16 and 128 senders and prints a
//! Markdown table. Each sender writes into its own thread and waits for
//! every answer before sending the next message, so a message counts only
//! once its commit is on disk.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Barrier, oneshot};

use mychat::accounts::model::Role;
use mychat::accounts::service::{NewAgent, create_organization};
use mychat::auth::Caller;
use mychat::config::{LimitsConfig, Registration};
use mychat::ids::{OrgId, ThreadId, VisitorId};
use mychat::messages::send::{self, NewMessage};
use mychat::spaces::model::ChatSpace;
use mychat::store::StoreStats;
use mychat::visitors::model::{Visitor, VisitorMetadata};
use mychat::{App, AppState, Config};

/// The server's allocator (see `src/main.rs`): in-process runs (`store`,
/// and `http`, `deliver`, `fanout` without `--url`) measure the server as
/// it ships, not under glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "load/history.rs"]
mod history;
#[path = "load/wire.rs"]
mod wire;
#[path = "load/ws/mod.rs"]
mod ws;

type Fallible<T> = Result<T, String>;

#[derive(Parser)]
#[command(
    name = "mychat-load",
    about = "Load generator for My-Chat's message path"
)]
struct Cli {
    /// Print one JSON line of results per run instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The store alone: the send use case called in-process, no HTTP.
    Store(Load),
    /// The HTTP API, in-process on 127.0.0.1:0 or at --url.
    Http(HttpArgs),
    /// Both modes with 1, 16 and 128 senders; prints a Markdown table.
    Matrix(MatrixArgs),
    /// WebSockets: N idle widget sockets and the server's memory per socket
    /// (the server runs as a separate process).
    Idle(ws::IdleArgs),
    /// WebSockets: visitor → agent delivery latency at a paced rate.
    Deliver(ws::DeliverArgs),
    /// WebSockets: one space watched by many agent sockets.
    Fanout(ws::FanoutArgs),
    /// A long history: reports and search over many seeded conversations.
    History(history::HistoryArgs),
    /// Hours of churn compressed: widget and agent sockets connect, send,
    /// drop, resume, claim, upload and close at random; then checks that
    /// every acknowledged message is stored exactly once, every resume was
    /// exact, and the server's memory and file descriptors came back.
    Soak(ws::SoakArgs),
}

#[derive(Args, Clone)]
struct Load {
    /// Concurrent senders, each with its own thread.
    #[arg(long, default_value_t = 16, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    senders: usize,
    /// Messages each sender sends, one after the other.
    #[arg(long, default_value_t = 200, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    messages: usize,
    /// Where the temporary data dir is created (default: the system temp
    /// dir); pick the disk to measure. It is removed afterwards.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct HttpArgs {
    #[command(flatten)]
    load: Load,
    /// An existing server (registration open, session limits raised)
    /// instead of an in-process one; several, comma-separated, for the
    /// nodes of a cluster (the senders take turns among them).
    #[arg(long)]
    url: Option<String>,
    /// Send through a general HTTP client (reqwest: a connection pool,
    /// redirects, retries) instead of each sender's own lean connection.
    /// `https://` servers, and addresses with a path, always get the
    /// general client.
    #[arg(long)]
    reqwest: bool,
}

#[derive(Args)]
struct MatrixArgs {
    /// Roughly how long each measured run should last.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Where the runs' temporary data dirs are created (default: the
    /// system temp dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Store,
    Http,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Store => "store",
            Mode::Http => "http",
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::Store(load) => run(Mode::Store, &load, None, false)
            .await
            .map(|r| r.print(cli.json)),
        Command::Http(args) => run(Mode::Http, &args.load, args.url.as_deref(), args.reqwest)
            .await
            .map(|r| r.print(cli.json)),
        Command::Matrix(args) => matrix(&args, cli.json).await,
        Command::Idle(args) => ws::idle(&args, cli.json).await,
        Command::Deliver(args) => ws::deliver(&args, cli.json).await,
        Command::Fanout(args) => ws::fanout(&args, cli.json).await,
        Command::History(args) => history::history(&args, cli.json).await,
        Command::Soak(args) => ws::soak(&args, cli.json).await,
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mychat-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mode: Mode, load: &Load, url: Option<&str>, reqwest: bool) -> Fallible<Report> {
    match (mode, url) {
        (Mode::Store, _) => store_run(load).await,
        (Mode::Http, None) => http_local_run(load, reqwest).await,
        (Mode::Http, Some(url)) => http_remote_run(load, url, reqwest).await,
    }
}

// ---------------------------------------------------------------- results

/// What one run measured.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    mode: Mode,
    senders: usize,
    messages_per_sender: usize,
    acknowledged: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    seconds: f64,
    messages_per_sec: f64,
    latency_ms: Latency,
    /// The writer's counters over the measured part; absent against --url.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<StoreDelta>,
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreDelta {
    commits: u64,
    writes: u64,
    mean_batch: f64,
    largest_batch: u64,
    /// Share of the wall time the writer spent inside transactions
    /// (running the write closures, committing, fsync).
    writer_busy: f64,
    /// Batches of at most `le` writes (per bucket, not cumulative).
    batch_buckets: Vec<Bucket>,
    /// Absent where the kernel does not say (not Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuUse>,
}

/// Where the writer's time went, and what a message costs in CPU.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CpuUse {
    /// Share of the wall time the writer thread ran on a CPU.
    writer_on_cpu: f64,
    /// Share of the wall time the writer was ready but waited for a CPU.
    writer_run_queue: f64,
    writer_micros_per_message: f64,
    /// The embedded store's checkpoints (each counted once it ended).
    checkpoint_micros_per_message: f64,
    /// The whole process: the writer, the checkpoints, the senders and,
    /// in-process, the HTTP server and client.
    process_micros_per_message: f64,
}

#[derive(Serialize)]
struct Bucket {
    le: u64,
    count: u64,
}

/// The app's counters at one moment.
struct Snapshot {
    stats: StoreStats,
    sched: Option<Sched>,
}

impl Snapshot {
    fn take(state: &AppState) -> Snapshot {
        Snapshot {
            stats: state.store.stats(),
            sched: Sched::now(),
        }
    }
}

impl StoreDelta {
    /// Setup writes one at a time, so the lifetime `largest_batch` is the
    /// measured part's whenever that part batched at all.
    fn between(before: &Snapshot, after: &Snapshot, tally: &Tally) -> StoreDelta {
        let wall = tally.elapsed.as_secs_f64();
        let checkpoint_ns = ((after.stats.checkpoint_cpu_seconds
            - before.stats.checkpoint_cpu_seconds)
            * 1e9) as u64;
        let cpu = match (&before.sched, &after.sched) {
            (Some(b), Some(a)) => Some(a.since(b).usage(wall, tally.acknowledged, checkpoint_ns)),
            _ => None,
        };
        let (before, after) = (&before.stats, &after.stats);
        let commits = after.commits - before.commits;
        let writes = after.writes - before.writes;
        let mut previous = 0;
        let batch_buckets = after
            .batch_buckets
            .iter()
            .zip(&before.batch_buckets)
            .filter_map(|(&(le, a), &(_, b))| {
                let count = (a - b) - previous;
                previous = a - b;
                (count > 0).then_some(Bucket { le, count })
            })
            .collect();
        StoreDelta {
            commits,
            writes,
            mean_batch: if commits == 0 {
                0.0
            } else {
                writes as f64 / commits as f64
            },
            largest_batch: after.largest_batch,
            writer_busy: (after.commit_seconds - before.commit_seconds) / wall,
            batch_buckets,
            cpu,
        }
    }
}

impl Report {
    fn new(mode: Mode, load: &Load, tally: Tally, store: Option<StoreDelta>) -> Report {
        let ms = |q: f64| tally.latency.value_at_quantile(q) as f64 / 1000.0;
        let seconds = tally.elapsed.as_secs_f64();
        Report {
            mode,
            senders: load.senders,
            messages_per_sender: load.messages,
            acknowledged: tally.acknowledged,
            errors: tally.errors,
            first_error: tally.first_error,
            seconds,
            messages_per_sec: tally.acknowledged as f64 / seconds,
            latency_ms: Latency {
                p50: ms(0.50),
                p90: ms(0.90),
                p99: ms(0.99),
                max: tally.latency.max() as f64 / 1000.0,
            },
            store,
        }
    }

    fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a report serializes")
            );
            return;
        }
        let l = &self.latency_ms;
        println!(
            "{}: {} senders x {} messages: {} acknowledged, {} errors in {:.2} s",
            self.mode.name(),
            self.senders,
            self.messages_per_sender,
            self.acknowledged,
            self.errors,
            self.seconds
        );
        println!("  throughput  {:.0} messages/s", self.messages_per_sec);
        println!(
            "  latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.max
        );
        if let Some(e) = &self.first_error {
            println!("  first error {e}");
        }
        if let Some(s) = &self.store {
            println!(
                "  store       {} commits, mean batch {:.1}, largest {}, writer busy {:.0}%",
                s.commits,
                s.mean_batch,
                s.largest_batch,
                s.writer_busy * 100.0
            );
            let buckets: Vec<String> = s
                .batch_buckets
                .iter()
                .map(|b| format!("<={}: {}", b.le, b.count))
                .collect();
            println!("  batches     {}", buckets.join(", "));
            if let Some(c) = &s.cpu {
                println!(
                    "  cpu         writer {:.0} us/message, on CPU {:.0}%, waiting for a CPU {:.0}%; checkpoints {:.0} us/message; process {:.0} us/message",
                    c.writer_micros_per_message,
                    c.writer_on_cpu * 100.0,
                    c.writer_run_queue * 100.0,
                    c.checkpoint_micros_per_message,
                    c.process_micros_per_message
                );
            }
        }
    }
}

// ---------------------------------------------------------------- CPU accounting

/// Nanoseconds the threads of this process spent on a CPU, and the
/// writer's on a CPU and waiting for one, from the scheduler's per-thread
/// counters (`/proc/self/task/*/schedstat`, Linux only).
#[derive(Clone, Copy, Default)]
struct Sched {
    process_cpu: u64,
    writer_cpu: u64,
    writer_wait: u64,
}

/// The store's writer thread names itself so.
const WRITER_THREAD: &str = "mychat-writer";
/// A checkpoint's thread, counted from the store's own figure (it ends
/// when its checkpoint does, and its counters with it).
const CHECKPOINT_THREAD: &str = "mychat-checkpoint";

impl Sched {
    fn now() -> Option<Sched> {
        let mut total = Sched::default();
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let Ok(task) = task else { continue };
            let path = task.path();
            // A thread may end between listing and reading; skip it.
            let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else {
                continue;
            };
            let mut fields = stat.split_whitespace().map(str::parse::<u64>);
            let (Some(Ok(cpu)), Some(Ok(wait))) = (fields.next(), fields.next()) else {
                return None;
            };
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.trim_end() == CHECKPOINT_THREAD {
                continue;
            }
            total.process_cpu += cpu;
            if comm.trim_end() == WRITER_THREAD {
                total.writer_cpu += cpu;
                total.writer_wait += wait;
            }
        }
        (total.process_cpu > 0).then_some(total)
    }

    /// Threads that ended in between make a counter go back; count none.
    fn since(&self, before: &Sched) -> Sched {
        Sched {
            process_cpu: self.process_cpu.saturating_sub(before.process_cpu),
            writer_cpu: self.writer_cpu.saturating_sub(before.writer_cpu),
            writer_wait: self.writer_wait.saturating_sub(before.writer_wait),
        }
    }

    /// `checkpoint_ns`: what the store's checkpoints took meanwhile.
    fn usage(&self, wall_secs: f64, messages: u64, checkpoint_ns: u64) -> CpuUse {
        let per_message = |ns: u64| ns as f64 / 1000.0 / messages.max(1) as f64;
        CpuUse {
            writer_on_cpu: self.writer_cpu as f64 / 1e9 / wall_secs,
            writer_run_queue: self.writer_wait as f64 / 1e9 / wall_secs,
            writer_micros_per_message: per_message(self.writer_cpu),
            checkpoint_micros_per_message: per_message(checkpoint_ns),
            process_micros_per_message: per_message(self.process_cpu + checkpoint_ns),
        }
    }
}

// ---------------------------------------------------------------- driving

/// Latencies and counts of some senders.
struct Tally {
    latency: Histogram<u64>,
    acknowledged: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // Microseconds, up to ten minutes, three significant digits.
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            acknowledged: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, took: Duration, result: Fallible<()>) {
        match result {
            Ok(()) => {
                self.acknowledged += 1;
                self.latency.saturating_record(took.as_micros() as u64);
            }
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        self.acknowledged += other.acknowledged;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs every sender at once, each sending `messages` messages one after
/// the other. A sender is called with the message's number.
async fn drive<F, Fut>(senders: Vec<F>, messages: usize) -> Tally
where
    F: FnMut(usize) -> Fut + Send + 'static,
    Fut: Future<Output = Fallible<()>> + Send,
{
    // Tasks start together, so the clock does not run while they spawn.
    let start = Arc::new(Barrier::new(senders.len() + 1));
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut send| {
            let start = start.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                start.wait().await;
                for i in 0..messages {
                    let began = Instant::now();
                    let result = send(i).await;
                    tally.record(began.elapsed(), result);
                }
                tally
            })
        })
        .collect();
    start.wait().await;
    let began = Instant::now();
    let mut total = Tally::new();
    for task in tasks {
        total.merge(task.await.expect("a sender task finishes"));
    }
    total.elapsed = began.elapsed();
    total
}

/// Each visitor's first message, which opens its thread.
const VISITOR_HELLO: &str = "Hello, I have a question about my order.";

fn hello_id(visitor: usize) -> String {
    format!("hello-{visitor}")
}

fn content(sender: usize, i: usize) -> String {
    format!("Load message {i} from sender {sender}: is the order on its way?")
}

/// Unique per agent, as idempotency requires; every sender is the same agent.
fn client_msg_id(sender: usize, i: usize) -> String {
    format!("load-{sender}-{i}")
}

// ---------------------------------------------------------------- in-process app

/// A data dir of its own, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(parent: Option<&Path>) -> Fallible<ScratchDir> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = parent.join(format!("mychat-load-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_config(dir: &Path) -> Config {
    // All load comes from one address; the limits guard against abuse.
    let many = 1_000_000;
    Config {
        data_dir: dir.to_path_buf(),
        demo: false,
        registration: Registration::Open,
        limits: LimitsConfig {
            login_per_ip_per_minute: many,
            login_per_account_per_minute: many,
            sessions_per_ip_per_minute: many,
            visitor_messages_per_minute: many,
            ..LimitsConfig::default()
        },
        ..Config::default()
    }
}

async fn build_app(dir: &ScratchDir) -> Fallible<App> {
    App::build(load_config(&dir.0))
        .await
        .map_err(|e| format!("building the app: {e}"))
}

/// An organization, its owner as a caller, and a chat space.
async fn library_org(state: &AppState) -> Fallible<(Caller, ChatSpace)> {
    // No password: nobody logs in, and hashing one would only slow setup.
    let owner = NewAgent::parse("owner@load.test", "Load owner", Role::Owner, None)
        .map_err(|e| e.to_string())?;
    let (org, agent) = create_organization(state, "Load test", owner, false)
        .await
        .map_err(|e| format!("organization: {e}"))?;
    let space = library_space(state, org.id).await?;
    Ok((Caller { agent, token: None }, space))
}

async fn library_space(state: &AppState, org: OrgId) -> Fallible<ChatSpace> {
    mychat::spaces::service::create(state, org, "Load test", Vec::new())
        .await
        .map_err(|e| format!("chat space: {e}"))
}

/// `n` visitors with one message each, so `n` open threads. One write at a
/// time, so setup does not show up in the batch sizes.
async fn library_threads(state: &AppState, space: &ChatSpace, n: usize) -> Fallible<Vec<ThreadId>> {
    let visitors: Vec<Visitor> = (0..n).map(|i| visitor(space, i as u64 + 1)).collect();
    let all = visitors.clone();
    state
        .write(move |tx| Ok(all.iter().try_for_each(|v| tx.put(v))?))
        .await
        .map_err(|e| format!("visitors: {e}"))?;
    let mut threads = Vec::with_capacity(n);
    for (i, v) in visitors.iter().enumerate() {
        let first = NewMessage::parse(VISITOR_HELLO, Some(&hello_id(i)), None, false, Vec::new())
            .map_err(|e| e.to_string())?;
        let sent = send::from_visitor(state, v.id, space, first)
            .await
            .map_err(|e| format!("first visitor message: {e}"))?;
        threads.push(sent.thread.id);
    }
    Ok(threads)
}

fn visitor(space: &ChatSpace, number: u64) -> Visitor {
    Visitor {
        id: VisitorId::new(),
        chat_space_id: space.id,
        number,
        display_name: None,
        email: None,
        phone: None,
        external_id: None,
        verified: false,
        attributes: Default::default(),
        metadata: VisitorMetadata::default(),
        created_at: chrono::Utc::now(),
        email_opt_out: false,
        notes: None,
    }
}

fn message(sender: usize, i: usize) -> Fallible<NewMessage> {
    let id = client_msg_id(sender, i);
    NewMessage::parse(&content(sender, i), Some(&id), None, false, Vec::new())
        .map_err(|e| e.to_string())
}

async fn store_run(load: &Load) -> Fallible<Report> {
    let dir = ScratchDir::new(load.data_dir.as_deref())?;
    let app = build_app(&dir).await?;
    let state = app.state().clone();
    let (caller, space) = library_org(&state).await?;
    let threads = library_threads(&state, &space, load.senders).await?;
    let caller = Arc::new(caller);
    let senders: Vec<_> = threads
        .into_iter()
        .enumerate()
        .map(|(s, thread)| {
            let (state, caller) = (state.clone(), caller.clone());
            move |i| {
                let (state, caller) = (state.clone(), caller.clone());
                async move {
                    send::from_agent(&state, &caller, thread, message(s, i)?)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            }
        })
        .collect();
    let before = Snapshot::take(&state);
    let tally = drive(senders, load.messages).await;
    let delta = StoreDelta::between(&before, &Snapshot::take(&state), &tally);
    state.store.shutdown().await;
    Ok(Report::new(Mode::Store, load, tally, Some(delta)))
}

// ---------------------------------------------------------------- HTTP

/// A client of the API, with a connection per sender.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: Arc<str>,
}

/// Setup calls refused with 429 wait and try again this many times.
const SETUP_ATTEMPTS: usize = 10;

impl Api {
    fn new(base: &str, senders: usize, local: bool) -> Fallible<Api> {
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(senders)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60));
        if local {
            builder = builder.no_proxy();
        }
        Ok(Api {
            client: builder.build().map_err(|e| e.to_string())?,
            base: base.trim_end_matches('/').into(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// A setup call that must answer `want`; waits out rate limits.
    async fn setup(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
        want: u16,
    ) -> Fallible<Value> {
        for _ in 0..SETUP_ATTEMPTS {
            let mut request = self.client.post(self.url(path)).json(&body);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&response);
                eprintln!("{path}: rate limited, waiting {} s", wait.as_secs());
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = response.text().await.map_err(|e| format!("{path}: {e}"))?;
            if status.as_u16() != want {
                return Err(format!("{path}: expected {want}, got {status}: {text}"));
            }
            return serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"));
        }
        Err(format!(
            "{path}: still rate limited; raise the server's limits"
        ))
    }

    /// A new organization; its owner's access token and the org id.
    async fn register(&self) -> Fallible<(String, String)> {
        let email = format!("owner-{}@load.test", uuid::Uuid::new_v4().simple());
        let body = json!({
            "organizationName": "Load test",
            "displayName": "Load owner",
            "email": email,
            "password": "load test password 1",
        });
        let reply = self.setup("/auth/register", None, body, 201).await?;
        Ok((
            field(&reply, "/accessToken")?,
            field(&reply, "/organization/id")?,
        ))
    }

    async fn create_space(&self, token: &str) -> Fallible<String> {
        let body = json!({"name": "Load test", "allowedDomains": []});
        let reply = self.setup("/chat-spaces", Some(token), body, 201).await?;
        field(&reply, "/widgetKey")
    }

    /// A widget session and its first message: one open thread. One call
    /// at a time, so setup does not show up in the batch sizes.
    async fn visitor_threads(&self, widget_key: &str, n: usize) -> Fallible<Vec<String>> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let session = self
                .setup("/widget/session", None, json!({"key": widget_key}), 201)
                .await?;
            let token = field(&session, "/sessionToken")?;
            let body = json!({
                "content": VISITOR_HELLO,
                "clientMsgId": hello_id(i),
            });
            let sent = self
                .setup("/widget/messages", Some(&token), body, 201)
                .await?;
            threads.push(field(&sent, "/thread/id")?);
        }
        Ok(threads)
    }

    /// An agent's message; only 201 counts as acknowledged.
    async fn send(&self, token: &str, thread: &str, sender: usize, i: usize) -> Fallible<()> {
        let response = self
            .client
            .post(self.url(&send_path(thread)))
            .bearer_auth(token)
            .json(&send_body(sender, i))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        // Read the body to the end so the connection goes back to the pool.
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status != StatusCode::CREATED {
            return Err(format!("{status}: {text}"));
        }
        Ok(())
    }

    /// A sender's own connection, unless the general client is asked for
    /// or the server is not plain HTTP.
    fn sender(&self, general: bool) -> Sender {
        match (general, wire::Wire::new(&self.base)) {
            (false, Some(wire)) => Sender::Lean(Arc::new(tokio::sync::Mutex::new(wire))),
            _ => Sender::General(self.clone()),
        }
    }
}

/// Under `/api/v1`.
fn send_path(thread: &str) -> String {
    format!("/threads/{thread}/messages")
}

fn send_body(sender: usize, i: usize) -> Value {
    json!({"content": content(sender, i), "clientMsgId": client_msg_id(sender, i)})
}

/// How one sender talks to the server.
#[derive(Clone)]
enum Sender {
    Lean(Arc<tokio::sync::Mutex<wire::Wire>>),
    General(Api),
}

impl Sender {
    async fn send(&self, token: &str, thread: &str, sender: usize, i: usize) -> Fallible<()> {
        let wire = match self {
            Sender::General(api) => return api.send(token, thread, sender, i).await,
            Sender::Lean(wire) => wire,
        };
        let body = serde_json::to_vec(&send_body(sender, i)).map_err(|e| e.to_string())?;
        let answer = wire
            .lock()
            .await
            .post(&format!("/api/v1{}", send_path(thread)), token, &body)
            .await?;
        if answer.status != StatusCode::CREATED.as_u16() {
            return Err(format!(
                "{}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        Ok(())
    }
}

fn retry_after(response: &reqwest::Response) -> Duration {
    let secs = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(1u64);
    Duration::from_secs(secs.min(60))
}

fn field(value: &Value, pointer: &str) -> Fallible<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no {pointer} in {value}"))
}

/// Every thread's sender at once, each posting as the owner.
async fn http_drive(
    api: &[Api],
    general: bool,
    token: &str,
    threads: Vec<String>,
    messages: usize,
) -> Tally {
    let token: Arc<str> = token.into();
    let senders: Vec<_> = threads
        .into_iter()
        .enumerate()
        .map(|(s, thread)| {
            let sender = api[s % api.len()].sender(general);
            let (token, thread) = (token.clone(), Arc::<str>::from(thread));
            move |i| {
                let (sender, token, thread) = (sender.clone(), token.clone(), thread.clone());
                async move { sender.send(&token, &thread, s, i).await }
            }
        })
        .collect();
    drive(senders, messages).await
}

/// The server in-process on port 0. The chat space comes from the library;
/// visitors and their threads are made over HTTP, as the widget makes them.
async fn http_local_run(load: &Load, general: bool) -> Fallible<Report> {
    let dir = ScratchDir::new(load.data_dir.as_deref())?;
    let app = build_app(&dir).await?;
    let state = app.state().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let api = Api::new(&format!("http://{addr}"), load.senders, true)?;
    let (token, org) = api.register().await?;
    let org: OrgId = org
        .parse()
        .map_err(|_| format!("bad organization id {org}"))?;
    let space = library_space(&state, org).await?;
    let threads = api.visitor_threads(&space.widget_key, load.senders).await?;
    let before = Snapshot::take(&state);
    let tally = http_drive(
        std::slice::from_ref(&api),
        general,
        &token,
        threads,
        load.messages,
    )
    .await;
    let delta = StoreDelta::between(&before, &Snapshot::take(&state), &tally);
    let _ = stop.send(());
    server
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("server: {e}"))?;
    Ok(Report::new(Mode::Http, load, tally, Some(delta)))
}

/// A server elsewhere: everything over HTTP; its store is out of sight.
async fn http_remote_run(load: &Load, url: &str, general: bool) -> Fallible<Report> {
    // Each node of a cluster gets its share of the senders.
    let nodes = url
        .split(',')
        .map(|u| Api::new(u.trim(), load.senders, false))
        .collect::<Fallible<Vec<_>>>()?;
    let api = &nodes[0];
    let (token, _) = api.register().await?;
    let key = api.create_space(&token).await?;
    let threads = api.visitor_threads(&key, load.senders).await?;
    let tally = http_drive(&nodes, general, &token, threads, load.messages).await;
    Ok(Report::new(Mode::Http, load, tally, None))
}

// ---------------------------------------------------------------- matrix

const MATRIX_SENDERS: [usize; 3] = [1, 16, 128];

async fn matrix(args: &MatrixArgs, json: bool) -> Fallible<()> {
    let mut reports = Vec::new();
    for mode in [Mode::Store, Mode::Http] {
        for senders in MATRIX_SENDERS {
            let messages = calibrate(mode, senders, args).await?;
            let load = Load {
                senders,
                messages,
                data_dir: args.data_dir.clone(),
            };
            let report = run(mode, &load, None, false).await?;
            if json {
                report.print(true);
            } else {
                eprintln!(
                    "{} {senders} x {messages}: {:.0} messages/s",
                    mode.name(),
                    report.messages_per_sec
                );
            }
            reports.push(report);
        }
    }
    if !json {
        print_table(&reports);
    }
    Ok(())
}

/// Messages per sender that make a run last about `args.seconds`, from a
/// short probe run.
async fn calibrate(mode: Mode, senders: usize, args: &MatrixArgs) -> Fallible<usize> {
    let probe = Load {
        senders,
        messages: (500 / senders).max(5),
        data_dir: args.data_dir.clone(),
    };
    let rate = run(mode, &probe, None, false).await?.messages_per_sec;
    let total = rate * args.seconds;
    Ok(((total / senders as f64).ceil() as usize).clamp(5, 1_000_000))
}

fn print_table(reports: &[Report]) {
    println!(
        "| mode | senders | acknowledged | messages/s | p50 ms | p90 ms | p99 ms | max ms | errors | commits | mean batch | largest batch | writer busy | writer CPU µs/msg |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in reports {
        let l = &r.latency_ms;
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.mode.name(),
            r.senders,
            r.acknowledged,
            r.messages_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            r.errors,
            r.store
                .as_ref()
                .map_or_else(|| "– | – | – | – | –".to_owned(), store_cells),
        );
    }
}

fn store_cells(s: &StoreDelta) -> String {
    let writer = s.cpu.as_ref().map_or_else(
        || "–".to_owned(),
        |c| format!("{:.0}", c.writer_micros_per_message),
    );
    format!(
        "{} | {:.1} | {} | {:.0}% | {writer}",
        s.commits,
        s.mean_batch,
        s.largest_batch,
        s.writer_busy * 100.0
    )
}
