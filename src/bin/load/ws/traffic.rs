//! `deliver` and `fanout`: visitors send stamped messages at a paced rate
//! and agent sockets time each delivery; `fanout` joins many agents to the
//! one space.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::RangedU64ValueParser;
use futures_util::{SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

use mychat::AppState;
use mychat::store::StoreStats;

use super::client::{Rest, connect, expect, is_kind};
use super::procfs::{cpu_nanos, writer_sched};
use super::server::{Server, ServerArgs};
use super::{Fallible, Socket};

#[derive(Args)]
pub struct DeliverArgs {
    /// Visitor messages per second, all visitors together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long the paced sending lasts.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Visitor sockets sharing the rate.
    #[arg(long, default_value_t = 500, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    visitors: usize,
    /// Busy processes competing for the CPU while the run lasts (a
    /// disturbed machine): each is a shell spinning in a loop, ended with
    /// the run.
    #[arg(long, default_value_t = 0)]
    hog: usize,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
pub struct FanoutArgs {
    /// Agent sockets joined to the one space (distinct agents).
    #[arg(long, default_value_t = 50, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    agents: usize,
    /// Visitor messages per second, all visitors together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    visitors: usize,
    /// Busy processes competing for the CPU while the run lasts (a
    /// disturbed machine): each is a shell spinning in a loop, ended with
    /// the run.
    #[arg(long, default_value_t = 0)]
    hog: usize,
    #[command(flatten)]
    server: ServerArgs,
}

/// Where send stamps count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_micros() -> u64 {
    epoch().elapsed().as_micros() as u64
}

const MESSAGE_ID: &str = "\"clientMsgId\":\"v";

/// A measured message's `v<visitor>-<seq>` client id as one number.
fn message_key(text: &str) -> Option<u64> {
    let at = text.find(MESSAGE_ID)? + MESSAGE_ID.len();
    let rest = &text[at..];
    let (visitor, rest) = rest.split_once('-')?;
    let seq = &rest[..rest.find('"')?];
    Some((visitor.parse::<u64>().ok()? << 32) | seq.parse::<u64>().ok()?)
}

const STAMP: &str = "\"content\":\"t=";

/// The send time a frame's message content carries.
fn stamp(text: &str) -> Option<u64> {
    let at = text.find(STAMP)? + STAMP.len();
    let rest = &text[at..];
    rest[..rest.find(';')?].parse().ok()
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to ten minutes, three significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            p50: ms(0.50),
            p90: ms(0.90),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrafficReport {
    mode: &'static str,
    server: &'static str,
    agents: usize,
    visitors: usize,
    target_rate: f64,
    seconds: f64,
    /// CPU hogs that competed with the run.
    hogs: usize,
    sent: u64,
    acknowledged: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    /// Messages sent per second over the paced part.
    send_rate: f64,
    /// `visitor:message` frames the agent sockets received, together.
    delivered: u64,
    /// acknowledged × agents.
    expected: u64,
    resyncs: u64,
    /// Deliveries per second, from the first send to the last delivery.
    deliveries_per_sec: f64,
    /// Send → agent socket receive, over every delivery.
    delivery_ms: Latency,
    /// Send → the last agent socket's receive, per message that reached
    /// every agent.
    all_agents_ms: Latency,
    /// Send → `message:ack` on the visitor's socket (durable commit).
    ack_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<StoreDelta>,
    /// CPU cores busy on average: the server's, or with an in-process
    /// server the whole process's (server and clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cores: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cores: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreDelta {
    commits: u64,
    writes: u64,
    mean_batch: f64,
    /// Share of the wall time the writer spent in transactions (running
    /// the writes, committing, fsync).
    writer_busy: f64,
    /// Share of the wall time the writer thread ran on a CPU, and waited
    /// for one (a loaded machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    writer_on_cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    writer_run_queue: Option<f64>,
}

/// The store's counters and the writer's scheduling at one moment.
struct StoreMark {
    stats: StoreStats,
    sched: Option<(u64, u64)>,
}

impl StoreMark {
    fn take(state: &AppState) -> StoreMark {
        StoreMark {
            stats: state.store.stats(),
            sched: writer_sched(),
        }
    }
}

impl StoreDelta {
    fn between(before: &StoreMark, after: &StoreMark, wall: f64) -> StoreDelta {
        let (b, a) = (&before.stats, &after.stats);
        let commits = a.commits - b.commits;
        let writes = a.writes - b.writes;
        let sched = match (before.sched, after.sched) {
            (Some(b), Some(a)) => Some((
                a.0.saturating_sub(b.0) as f64 / 1e9 / wall,
                a.1.saturating_sub(b.1) as f64 / 1e9 / wall,
            )),
            _ => None,
        };
        StoreDelta {
            commits,
            writes,
            mean_batch: writes as f64 / commits.max(1) as f64,
            writer_busy: (a.commit_seconds - b.commit_seconds) / wall,
            writer_on_cpu: sched.map(|s| s.0),
            writer_run_queue: sched.map(|s| s.1),
        }
    }
}

pub async fn deliver(args: &DeliverArgs, json: bool) -> Fallible<()> {
    let shape = Shape {
        mode: "deliver",
        agents: 1,
        visitors: args.visitors,
        rate: args.rate,
        seconds: args.seconds,
        hog: args.hog,
    };
    traffic(&args.server, &shape, json).await
}

pub async fn fanout(args: &FanoutArgs, json: bool) -> Fallible<()> {
    let shape = Shape {
        mode: "fanout",
        agents: args.agents,
        visitors: args.visitors,
        rate: args.rate,
        seconds: args.seconds,
        hog: args.hog,
    };
    traffic(&args.server, &shape, json).await
}

struct Shape {
    mode: &'static str,
    agents: usize,
    visitors: usize,
    rate: f64,
    seconds: f64,
    hog: usize,
}

/// CPU hogs, ended (each by its own process id) when dropped.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn start(n: usize) -> Fallible<Hogs> {
        let mut hogs = Hogs(Vec::with_capacity(n));
        for _ in 0..n {
            let child = std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("starting a CPU hog: {e}"))?;
            hogs.0.push(child);
        }
        Ok(hogs)
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn traffic(args: &ServerArgs, shape: &Shape, json: bool) -> Fallible<()> {
    if !(shape.rate > 0.0 && shape.seconds > 0.0) {
        return Err("--rate and --seconds must be positive".into());
    }
    let server = Server::start(args, false).await?;
    let hogs = Hogs::start(shape.hog)?;
    let result = traffic_run(&server, shape).await;
    drop(hogs);
    server.stop().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        print_traffic(&report);
    }
    Ok(())
}

/// What one agent socket saw.
struct AgentTally {
    latency: Histogram<u64>,
    resyncs: u64,
    /// (message, µs from send to here) of every delivery.
    seen: Vec<(u64, u64)>,
}

/// What one visitor socket saw.
struct VisitorTally {
    ack: Histogram<u64>,
    first_error: Option<String>,
}

/// Counters the drain watches.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    delivered: AtomicU64,
    /// µs stamp of the latest delivery.
    last_delivery: AtomicU64,
}

async fn traffic_run(server: &Server, shape: &Shape) -> Fallible<TrafficReport> {
    let _ = epoch();
    let rest = Rest::new(&server.base, 64)?;
    let space = rest.space().await?;
    let tokens = rest.agent_tokens(&space, shape.agents).await?;
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop_rx) = watch::channel(false);

    // Agents first, so nothing a visitor does is missed.
    let mut agents = Vec::with_capacity(shape.agents);
    for token in &tokens {
        let mut ws = connect(server.addr, None, &server.ws_url("/ws/agent"), Some(token)).await?;
        expect(&mut ws, "ready").await?;
        let join = json!({"type": "agent:join_space", "chatSpaceId": space.id}).to_string();
        ws.send(Message::text(join))
            .await
            .map_err(|e| e.to_string())?;
        expect(&mut ws, "joined").await?;
        agents.push(tokio::spawn(agent_reader(
            ws,
            stop_rx.clone(),
            progress.clone(),
        )));
    }

    // Visitors: a session each, a socket each, and a first message that
    // opens the visitor's thread (not measured).
    eprintln!(
        "{}: {} agent socket(s) joined; opening {} visitors...",
        shape.mode, shape.agents, shape.visitors
    );
    let sessions = rest.sessions(&space.key, shape.visitors, 64).await?;
    drop(rest);
    let opened: Vec<Fallible<Socket>> = stream::iter(sessions.iter().enumerate())
        .map(|(i, token)| {
            let url = server.ws_url(&format!("/ws/widget?key={}&token={token}", space.key));
            async move {
                let mut ws = connect(server.addr, None, &url, None).await?;
                expect(&mut ws, "hello").await?;
                let first = json!({
                    "type": "visitor:send_message",
                    "clientMsgId": format!("warm-{i}"),
                    "content": "Hello, I have a question about my order.",
                });
                ws.send(Message::text(first.to_string()))
                    .await
                    .map_err(|e| e.to_string())?;
                expect(&mut ws, "message:ack").await?;
                Ok(ws)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let visitors: Vec<Socket> = opened.into_iter().collect::<Fallible<_>>()?;
    // Let the warm-up deliveries reach the agents.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stats_before = server.state.as_ref().map(StoreMark::take);
    let client_pid = std::process::id();
    let separate = server.pid.filter(|&p| p != client_pid);
    let cpu_before = (
        server.pid.and_then(cpu_nanos),
        separate.and(cpu_nanos(client_pid)),
    );

    let n = visitors.len();
    let period = Duration::from_secs_f64(n as f64 / shape.rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs_f64(shape.seconds);
    let start_micros = now_micros() + 100_000;
    eprintln!(
        "{}: sending {:.0} messages/s for {} s ({:.1} per visitor per second)...",
        shape.mode,
        shape.rate,
        shape.seconds,
        shape.rate / n as f64
    );
    let mut writers = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for (i, ws) in visitors.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        // Visitors take turns across one period, so sends are even.
        let first = start + period.mul_f64(i as f64 / n as f64);
        writers.push(tokio::spawn(visitor_writer(
            sink,
            i,
            first,
            period,
            deadline,
            progress.clone(),
        )));
        readers.push(tokio::spawn(visitor_reader(
            stream,
            stop_rx.clone(),
            progress.clone(),
        )));
    }
    // The sending halves stay until the readers are done with the sockets.
    let mut sinks = Vec::with_capacity(n);
    for w in writers {
        sinks.push(w.await.map_err(|e| e.to_string())?);
    }
    let sent = progress.sent.load(Ordering::SeqCst);
    let send_seconds = start.elapsed().as_secs_f64();

    // Drain: every message answered and delivered to every agent, or give up.
    let drain_began = Instant::now();
    loop {
        let answered =
            progress.acked.load(Ordering::SeqCst) + progress.errors.load(Ordering::SeqCst);
        let acked = progress.acked.load(Ordering::SeqCst);
        let delivered = progress.delivered.load(Ordering::SeqCst);
        if answered >= sent && delivered >= acked * shape.agents as u64 {
            break;
        }
        if drain_began.elapsed() > Duration::from_secs(15) {
            eprintln!("drain: gave up after 15 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = progress.last_delivery.load(Ordering::SeqCst);
    let window = last.saturating_sub(start_micros).max(1) as f64 / 1e6;
    let wall = start.elapsed().as_secs_f64();
    let store = match (&server.state, &stats_before) {
        (Some(state), Some(before)) => {
            Some(StoreDelta::between(before, &StoreMark::take(state), wall))
        }
        _ => None,
    };
    let cores = |before: Option<u64>, pid: Option<u32>| {
        let after = pid.and_then(cpu_nanos)?;
        Some(after.saturating_sub(before?) as f64 / 1e9 / wall)
    };
    let server_cores = cores(cpu_before.0, server.pid);
    let client_cores = cores(cpu_before.1, separate.map(|_| client_pid));

    let _ = stop_tx.send(true);
    let mut ack = histogram();
    let mut first_error = None;
    for r in readers {
        let t = r.await.map_err(|e| e.to_string())?;
        ack.add(&t.ack).expect("same bounds");
        if first_error.is_none() {
            first_error = t.first_error;
        }
    }
    let mut latency = histogram();
    let mut resyncs = 0;
    // Per message: how many agents got it, and when the last one did.
    let mut reach: std::collections::HashMap<u64, (usize, u64)> = Default::default();
    for a in agents {
        let t = a.await.map_err(|e| e.to_string())?;
        latency.add(&t.latency).expect("same bounds");
        resyncs += t.resyncs;
        for (id, took) in t.seen {
            let r = reach.entry(id).or_default();
            r.0 += 1;
            r.1 = r.1.max(took);
        }
    }
    let mut all_agents = histogram();
    for (count, slowest) in reach.into_values() {
        if count >= shape.agents {
            all_agents.saturating_record(slowest);
        }
    }
    drop(sinks);
    let acknowledged = progress.acked.load(Ordering::SeqCst);
    let delivered = progress.delivered.load(Ordering::SeqCst);
    Ok(TrafficReport {
        mode: shape.mode,
        server: server.where_(),
        agents: shape.agents,
        visitors: n,
        target_rate: shape.rate,
        seconds: shape.seconds,
        hogs: shape.hog,
        sent,
        acknowledged,
        errors: progress.errors.load(Ordering::SeqCst),
        first_error,
        send_rate: sent as f64 / send_seconds,
        delivered,
        expected: acknowledged * shape.agents as u64,
        resyncs,
        deliveries_per_sec: delivered as f64 / window,
        delivery_ms: Latency::of(&latency),
        all_agents_ms: Latency::of(&all_agents),
        ack_ms: Latency::of(&ack),
        store,
        server_cores,
        client_cores,
    })
}

type Sink = futures_util::stream::SplitSink<Socket, Message>;
type Source = futures_util::stream::SplitStream<Socket>;

/// Sends one stamped message per tick until the deadline.
async fn visitor_writer(
    mut sink: Sink,
    visitor: usize,
    first: tokio::time::Instant,
    period: Duration,
    deadline: tokio::time::Instant,
    progress: Arc<Progress>,
) -> Sink {
    let mut ticks = tokio::time::interval_at(first, period);
    // Late ticks are sent at once, so the aggregate rate holds.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut seq = 0u64;
    loop {
        if tokio::time::timeout_at(deadline, ticks.tick())
            .await
            .is_err()
        {
            break;
        }
        seq += 1;
        let frame = json!({
            "type": "visitor:send_message",
            "clientMsgId": format!("v{visitor}-{seq}"),
            "content": format!("t={}; visitor {visitor} asks question {seq}", now_micros()),
        });
        if sink.send(Message::text(frame.to_string())).await.is_err() {
            progress.errors.fetch_add(1, Ordering::SeqCst);
            break;
        }
        progress.sent.fetch_add(1, Ordering::SeqCst);
    }
    sink
}

/// Times each `message:ack` of a stamped message; counts errors.
async fn visitor_reader(
    mut stream: Source,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> VisitorTally {
    let mut tally = VisitorTally {
        ack: histogram(),
        first_error: None,
    };
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return tally,
            frame = stream.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tally.first_error.get_or_insert_with(|| e.to_string());
                return tally;
            }
            None => return tally,
        };
        if is_kind(&text, "message:ack") {
            if let Some(sent) = stamp(&text) {
                tally
                    .ack
                    .saturating_record(now_micros().saturating_sub(sent));
                progress.acked.fetch_add(1, Ordering::SeqCst);
            }
        } else if is_kind(&text, "error") {
            progress.errors.fetch_add(1, Ordering::SeqCst);
            tally.first_error.get_or_insert_with(|| text.to_string());
        }
    }
}

/// Times each `visitor:message` of a stamped message.
async fn agent_reader(
    mut ws: Socket,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> AgentTally {
    let mut tally = AgentTally {
        latency: histogram(),
        resyncs: 0,
        seen: Vec::new(),
    };
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return tally,
            frame = ws.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return tally,
        };
        if is_kind(&text, "visitor:message") {
            if let Some(sent) = stamp(&text) {
                let now = now_micros();
                let took = now.saturating_sub(sent);
                tally.latency.saturating_record(took);
                if let Some(id) = message_key(&text) {
                    tally.seen.push((id, took));
                }
                progress.delivered.fetch_add(1, Ordering::SeqCst);
                progress.last_delivery.fetch_max(now, Ordering::SeqCst);
            }
        } else if is_kind(&text, "resync") {
            tally.resyncs += 1;
        }
    }
}

fn print_traffic(r: &TrafficReport) {
    println!(
        "{} ({}): {} agent socket(s), {} visitors, target {:.0} messages/s for {} s, {} CPU hog(s)",
        r.mode, r.server, r.agents, r.visitors, r.target_rate, r.seconds, r.hogs
    );
    println!(
        "  sent        {} ({:.0}/s), {} acknowledged, {} errors",
        r.sent, r.send_rate, r.acknowledged, r.errors
    );
    println!(
        "  delivered   {} of {} to agents ({:.0} deliveries/s), {} resyncs",
        r.delivered, r.expected, r.deliveries_per_sec, r.resyncs
    );
    let l = &r.delivery_ms;
    println!(
        "  send→agent  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    if r.agents > 1 {
        let l = &r.all_agents_ms;
        println!(
            "  →all agents p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    let a = &r.ack_ms;
    println!(
        "  send→ack    p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
        a.p50, a.p90, a.p99, a.p999, a.max
    );
    if let Some(s) = &r.store {
        println!(
            "  store       {} commits for {} writes, mean batch {:.1}, writer busy {:.0}%",
            s.commits,
            s.writes,
            s.mean_batch,
            s.writer_busy * 100.0
        );
        if let (Some(on), Some(queued)) = (s.writer_on_cpu, s.writer_run_queue) {
            println!(
                "  writer      on a CPU {:.0}%, waiting for a CPU {:.0}% of the time",
                on * 100.0,
                queued * 100.0
            );
        }
    }
    match (r.server_cores, r.client_cores) {
        (Some(s), Some(c)) => println!("  cpu         server {s:.2} cores, client {c:.2} cores"),
        (Some(s), None) => println!("  cpu         {s:.2} cores (server and clients, one process)"),
        _ => {}
    }
    if let Some(e) = &r.first_error {
        println!("  first error {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_back_from_frames() {
        let frame = r#"{"message":{"clientMsgId":"v1-2","content":"t=12345; visitor 1"},"type":"visitor:message"}"#;
        assert_eq!(stamp(frame), Some(12345));
        assert_eq!(message_key(frame), Some((1 << 32) | 2));
        assert!(is_kind(frame, "visitor:message"));
        assert_eq!(stamp(r#"{"message":{"content":"hello"}}"#), None);
    }
}
