//! `soak`: months of a small server's churn, compressed into minutes.
//!
//! Visitors open widget sockets, send, drop their sockets at random
//! (sometimes before the ack arrives), reconnect, `resume` and send the
//! unanswered message again with its clientMsgId; now and then one uploads
//! a file and sends it. Agents log in, open their socket, join the space,
//! answer visitors, claim and close conversations, and drop their sockets
//! too. Every acknowledgement is written down.
//!
//! At the end it checks what the server promises:
//! - every acknowledged message is stored exactly once (read back over
//!   REST), and no clientMsgId of a sender is stored twice;
//! - every resume was exact: each acknowledged message the visitor had not
//!   seen was replayed, none twice, and nothing replayed is foreign to the
//!   visitor's conversations;
//! - the server's open file descriptors and memory came back to where they
//!   were once the sockets were closed: measured after a warm-up with every
//!   socket closed, and again at the end. Memory may grow by what the
//!   database's page cache holds of the pages written meanwhile (the file's
//!   growth) plus a small slack; file descriptors may not grow at all
//!   beyond a slack of two.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::client::{PASSWORD, Rest, connect};
use super::procfs;
use super::server::{Server, ServerArgs};
use super::{Fallible, Socket};

#[derive(Args)]
pub struct SoakArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How long the churn runs, in minutes (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Visitors churning at once.
    #[arg(long, default_value_t = 12)]
    visitors: usize,
    /// Agents churning at once.
    #[arg(long, default_value_t = 3)]
    agents: usize,
}

/// Memory the server may hold beyond its baseline and the database's
/// growth without it counting as a leak.
const RSS_SLACK_KIB: u64 = 32 * 1024;
/// Descriptors beyond the baseline that do not count as a leak.
const FD_SLACK: u64 = 2;
/// How long any one answer may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Counters {
    visitor_messages: AtomicU64,
    agent_messages: AtomicU64,
    connects: AtomicU64,
    abrupt_drops: AtomicU64,
    resumes_checked: AtomicU64,
    resyncs: AtomicU64,
    uploads: AtomicU64,
    claims: AtomicU64,
    closes: AtomicU64,
    refused_replies: AtomicU64,
}

/// What the clients were told: the ground truth the checks hold the
/// server to.
#[derive(Default)]
struct Ledger {
    /// Acknowledged message id → its thread.
    acked: HashMap<String, String>,
    /// Thread → its acknowledged messages (UUIDv7 text sorts by time).
    by_thread: HashMap<String, BTreeSet<String>>,
    /// Each visitor's threads, as its acknowledgements tell.
    visitor_threads: HashMap<usize, HashSet<String>>,
    /// Replays to check at the end: (the visitor, ids replayed).
    replays: Vec<(usize, Vec<String>)>,
    problems: Vec<String>,
    errors: Vec<String>,
}

impl Ledger {
    fn ack(&mut self, id: &str, thread: &str) {
        self.acked.insert(id.to_owned(), thread.to_owned());
        self.by_thread
            .entry(thread.to_owned())
            .or_default()
            .insert(id.to_owned());
    }

    /// Acknowledged messages of `threads` after `after`.
    fn after(&self, threads: &HashSet<String>, after: Option<&str>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for t in threads {
            if let Some(ids) = self.by_thread.get(t) {
                out.extend(
                    ids.iter()
                        .filter(|id| after.is_none_or(|a| id.as_str() > a))
                        .cloned(),
                );
            }
        }
        out
    }
}

struct Ctx {
    server_addr: std::net::SocketAddr,
    base: String,
    widget_url: String,
    agent_url: String,
    space_id: String,
    rest: reqwest::Client,
    ledger: Mutex<Ledger>,
    counters: Counters,
}

impl Ctx {
    fn problem(&self, p: String) {
        eprintln!("soak: PROBLEM: {p}");
        self.ledger.lock().unwrap().problems.push(p);
    }

    fn error(&self, e: String) {
        eprintln!("soak: error: {e}");
        self.ledger.lock().unwrap().errors.push(e);
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Fallible<(u16, Value)> {
        let mut request = self
            .rest
            .post(format!("{}/api/v1{path}", self.base))
            .json(&body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

/// One visitor, kept across phases.
struct Visitor {
    n: usize,
    token: String,
    threads: HashSet<String>,
    /// The newest message this visitor has seen on any socket.
    last_seen: Option<String>,
    /// Sent, then the socket dropped before the answer came.
    pending: Option<(String, String)>,
    sent: u64,
}

struct Agent {
    email: String,
    sent: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    minutes: f64,
    visitors: usize,
    agents: usize,
    acknowledged: usize,
    visitor_messages: u64,
    agent_messages: u64,
    stored_messages: usize,
    threads: usize,
    connects: u64,
    abrupt_drops: u64,
    resumes_checked: u64,
    resyncs: u64,
    uploads: u64,
    claims: u64,
    closes: u64,
    refused_replies: u64,
    rss_base_kib: u64,
    rss_end_kib: u64,
    rss_peak_kib: u64,
    fds_base: u64,
    fds_end: u64,
    db_base_kib: u64,
    db_end_kib: u64,
    errors: usize,
    problems: Vec<String>,
}

pub async fn soak(args: &SoakArgs, json: bool) -> Fallible<()> {
    if args.minutes.is_nan() || args.minutes <= 0.0 || args.visitors == 0 || args.agents == 0 {
        return Err("--minutes, --visitors and --agents must be positive".into());
    }
    let server = Server::start(&args.server, true).await?;
    let result = run(&server, args).await;
    server.stop().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        print(&report);
    }
    if report.problems.is_empty() && report.errors == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} problems, {} errors",
            report.problems.len(),
            report.errors
        ))
    }
}

async fn run(server: &Server, args: &SoakArgs) -> Fallible<Report> {
    let pid = server
        .pid
        .ok_or("soak needs the server's process id (--pid with --url)")?;
    let setup = Rest::new(&server.base, 8)?;
    let space = setup.space().await?;
    // Idle keep-alive connections go soon, so the descriptors the server
    // holds for them are gone when the leak check counts.
    let rest = reqwest::Client::builder()
        .no_proxy()
        .timeout(ANSWER_WITHIN)
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let ctx = Arc::new(Ctx {
        server_addr: server.addr,
        base: server.base.clone(),
        widget_url: server.ws_url(&format!("/ws/widget?key={}&token=", space.key)),
        agent_url: server.ws_url("/ws/agent"),
        space_id: space.id.clone(),
        rest,
        ledger: Mutex::new(Ledger::default()),
        counters: Counters::default(),
    });
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let email = format!("soak-agent-{i}-{}@load.test", uuid::Uuid::new_v4().simple());
        let body = json!({
            "email": email, "displayName": format!("Soak agent {i}"),
            "role": "agent", "password": PASSWORD,
        });
        let (status, body) = ctx.post("/agents", Some(&space.owner_token), body).await?;
        if status != 201 {
            return Err(format!("creating an agent: {status} {body}"));
        }
        agents.push(Agent { email, sent: 0 });
    }
    let mut visitors = Vec::new();
    for n in 0..args.visitors {
        visitors.push(Visitor {
            n,
            token: new_session(&ctx, &space.key).await?,
            threads: HashSet::new(),
            last_seen: None,
            pending: None,
            sent: 0,
        });
    }

    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(m) = procfs::memory(pid) {
                    peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = total
        .mul_f64(0.2)
        .clamp(Duration::from_secs(10), Duration::from_secs(300));
    let started = Instant::now();
    eprintln!("soak: warming up for {warmup:?}");
    (visitors, agents) = phase(&ctx, visitors, agents, warmup).await;
    let base = settle(&ctx, pid, server).await?;
    eprintln!(
        "soak: baseline rss {} KiB, {} fds; churning for {:?}",
        base.rss_kib,
        base.fds,
        total.saturating_sub(started.elapsed())
    );
    let rest_of_it = total.saturating_sub(started.elapsed());
    let _ = phase(&ctx, visitors, agents, rest_of_it).await;
    let end = settle(&ctx, pid, server).await?;
    sampler.abort();

    // Access tokens last 15 minutes: the owner logs in again to read back.
    let (status, login) = ctx
        .post(
            "/auth/login",
            None,
            json!({ "email": space.owner_email, "password": PASSWORD }),
        )
        .await?;
    if status != 200 {
        return Err(format!("owner login: {status} {login}"));
    }
    let owner = str_at(&login, "/accessToken")?;
    let (stored, threads) = check_storage(&ctx, &owner).await?;
    let c = &ctx.counters;
    let ledger = ctx.ledger.lock().unwrap();
    let mut problems = ledger.problems.clone();
    if end.fds > base.fds + FD_SLACK {
        problems.push(format!(
            "file descriptors leak: {} at the end, {} at the baseline; open now: {}",
            end.fds,
            base.fds,
            open_files(pid)
        ));
    }
    let allowed = base.rss_kib + end.db_kib.saturating_sub(base.db_kib) + RSS_SLACK_KIB;
    if end.rss_kib > allowed {
        problems.push(format!(
            "memory did not come back: {} KiB at the end, {} KiB allowed",
            end.rss_kib, allowed
        ));
    }
    Ok(Report {
        minutes: started.elapsed().as_secs_f64() / 60.0,
        visitors: args.visitors,
        agents: args.agents,
        acknowledged: ledger.acked.len(),
        visitor_messages: c.visitor_messages.load(Ordering::Relaxed),
        agent_messages: c.agent_messages.load(Ordering::Relaxed),
        stored_messages: stored,
        threads,
        connects: c.connects.load(Ordering::Relaxed),
        abrupt_drops: c.abrupt_drops.load(Ordering::Relaxed),
        resumes_checked: c.resumes_checked.load(Ordering::Relaxed),
        resyncs: c.resyncs.load(Ordering::Relaxed),
        uploads: c.uploads.load(Ordering::Relaxed),
        claims: c.claims.load(Ordering::Relaxed),
        closes: c.closes.load(Ordering::Relaxed),
        refused_replies: c.refused_replies.load(Ordering::Relaxed),
        rss_base_kib: base.rss_kib,
        rss_end_kib: end.rss_kib,
        rss_peak_kib: peak.load(Ordering::Relaxed).max(end.rss_kib),
        fds_base: base.fds,
        fds_end: end.fds,
        db_base_kib: base.db_kib,
        db_end_kib: end.db_kib,
        errors: ledger.errors.len(),
        problems,
    })
}

async fn new_session(ctx: &Ctx, key: &str) -> Fallible<String> {
    let (status, body) = ctx
        .post("/widget/session", None, json!({ "key": key }))
        .await?;
    if status != 201 {
        return Err(format!("widget session: {status} {body}"));
    }
    str_at(&body, "/sessionToken")
}

fn str_at(v: &Value, pointer: &str) -> Fallible<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no {pointer} in {v}"))
}

/// Every visitor and agent churns until `span` has passed; each closes
/// its socket at the end.
async fn phase(
    ctx: &Arc<Ctx>,
    visitors: Vec<Visitor>,
    agents: Vec<Agent>,
    span: Duration,
) -> (Vec<Visitor>, Vec<Agent>) {
    let until = Instant::now() + span;
    let v: Vec<_> = visitors
        .into_iter()
        .map(|v| {
            let ctx = ctx.clone();
            tokio::spawn(async move { visitor_churn(ctx, v, until).await })
        })
        .collect();
    let a: Vec<_> = agents
        .into_iter()
        .map(|a| {
            let ctx = ctx.clone();
            tokio::spawn(async move { agent_churn(ctx, a, until).await })
        })
        .collect();
    let mut visitors = Vec::new();
    for h in v {
        visitors.push(h.await.expect("visitor task"));
    }
    let mut agents = Vec::new();
    for h in a {
        agents.push(h.await.expect("agent task"));
    }
    (visitors, agents)
}

fn message_of(frame: &Value) -> Option<(&str, &str)> {
    let m = frame.get("message")?;
    Some((m.get("id")?.as_str()?, m.get("threadId")?.as_str()?))
}

async fn next_frame(ws: &mut Socket) -> Fallible<Value> {
    let wait = async {
        while let Some(frame) = ws.next().await {
            match frame.map_err(|e| format!("socket: {e}"))? {
                Message::Text(text) => {
                    return serde_json::from_str(&text).map_err(|e| format!("frame: {e}"));
                }
                Message::Close(close) => return Err(format!("closed: {close:?}")),
                _ => {}
            }
        }
        Err("the socket ended".to_owned())
    };
    tokio::time::timeout(ANSWER_WITHIN, wait)
        .await
        .map_err(|_| format!("no frame within {ANSWER_WITHIN:?}"))?
}

async fn send(ws: &mut Socket, frame: Value) -> Fallible<()> {
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| format!("send: {e}"))
}

async fn visitor_churn(ctx: Arc<Ctx>, mut v: Visitor, until: Instant) -> Visitor {
    while Instant::now() < until {
        if let Err(e) = visitor_round(&ctx, &mut v, until).await {
            ctx.error(format!("visitor {}: {e}", v.n));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // A message sent just before a drop is sent again now, as the widget
    // would on its next connect, so nothing stays unanswered.
    if v.pending.is_some()
        && let Err(e) = visitor_round(&ctx, &mut v, Instant::now()).await
    {
        ctx.error(format!("visitor {}: {e}", v.n));
    }
    v
}

/// One socket of a visitor, from connect to drop.
async fn visitor_round(ctx: &Ctx, v: &mut Visitor, until: Instant) -> Fallible<()> {
    let url = format!("{}{}", ctx.widget_url, v.token);
    let mut ws = connect(ctx.server_addr, None, &url, None).await?;
    ctx.counters.connects.fetch_add(1, Ordering::Relaxed);
    let mut seen = HashSet::new();
    // Messages may arrive live before the replay; they count as seen on
    // this socket.
    let expected = ctx
        .ledger
        .lock()
        .unwrap()
        .after(&v.threads, v.last_seen.as_deref());
    send(&mut ws, json!({ "type": "resume", "after": v.last_seen })).await?;
    let mut replayed = Vec::new();
    loop {
        let f = next_frame(&mut ws).await?;
        match f["type"].as_str().unwrap_or("") {
            "resumed" => break,
            "resync" => {
                ctx.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                break;
            }
            "error" => return Err(format!("resume: {f}")),
            "message:ack" | "message:updated" => {}
            _ => {
                if let Some((id, _)) = message_of(&f) {
                    if !seen.insert(id.to_owned()) {
                        ctx.problem(format!("visitor {}: message {id} replayed twice: {f}", v.n));
                    }
                    replayed.push(id.to_owned());
                    v.see(id);
                }
            }
        }
    }
    let missing: Vec<_> = expected.iter().filter(|id| !seen.contains(*id)).collect();
    if !missing.is_empty() {
        ctx.problem(format!(
            "visitor {}: resume after {:?} missed {missing:?}",
            v.n, v.last_seen
        ));
    }
    ctx.counters.resumes_checked.fetch_add(1, Ordering::Relaxed);
    ctx.ledger.lock().unwrap().replays.push((v.n, replayed));

    if let Some((cmid, content)) = v.pending.take() {
        visitor_send(ctx, &mut ws, v, &cmid, &content, Vec::new(), &mut seen).await?;
    }
    let sends = rand::rng().random_range(1..=6);
    for _ in 0..sends {
        if Instant::now() >= until {
            break;
        }
        v.sent += 1;
        let cmid = format!("soak-v{}-{}", v.n, v.sent);
        let content = format!("visitor {} message {}", v.n, v.sent);
        let mut attachments = Vec::new();
        if rand::rng().random_bool(0.03) {
            attachments.push(upload(ctx, &v.token).await?);
            ctx.counters.uploads.fetch_add(1, Ordering::Relaxed);
        }
        if rand::rng().random_bool(0.1) {
            // Gone before the answer: the widget sends it again later.
            let frame = json!({ "type": "visitor:send_message", "clientMsgId": cmid, "content": content, "attachmentIds": attachments });
            send(&mut ws, frame).await?;
            v.pending = Some((cmid, content));
            ctx.counters.abrupt_drops.fetch_add(1, Ordering::Relaxed);
            drop(ws);
            return Ok(());
        }
        visitor_send(ctx, &mut ws, v, &cmid, &content, attachments, &mut seen).await?;
        let pause = rand::rng().random_range(20..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    if rand::rng().random_bool(0.5) {
        ctx.counters.abrupt_drops.fetch_add(1, Ordering::Relaxed);
        drop(ws);
    } else {
        let _ = ws.close(None).await;
    }
    let idle = rand::rng().random_range(0..800);
    tokio::time::sleep(Duration::from_millis(idle)).await;
    Ok(())
}

impl Visitor {
    fn see(&mut self, id: &str) {
        if self.last_seen.as_deref().is_none_or(|l| id > l) {
            self.last_seen = Some(id.to_owned());
        }
    }
}

async fn visitor_send(
    ctx: &Ctx,
    ws: &mut Socket,
    v: &mut Visitor,
    cmid: &str,
    content: &str,
    attachments: Vec<String>,
    seen: &mut HashSet<String>,
) -> Fallible<()> {
    let frame = json!({ "type": "visitor:send_message", "clientMsgId": cmid, "content": content, "attachmentIds": attachments });
    send(ws, frame).await?;
    loop {
        let f = next_frame(ws).await?;
        let kind = f["type"].as_str().unwrap_or("");
        if kind == "error" && f["clientMsgId"] == cmid {
            return Err(format!("send refused: {f}"));
        }
        if kind == "message:ack" && f["clientMsgId"] == cmid {
            let (id, thread) = message_of(&f).ok_or_else(|| format!("ack without message: {f}"))?;
            let (id, thread) = (id.to_owned(), thread.to_owned());
            {
                let mut ledger = ctx.ledger.lock().unwrap();
                ledger.ack(&id, &thread);
                ledger
                    .visitor_threads
                    .entry(v.n)
                    .or_default()
                    .insert(thread.clone());
            }
            ctx.counters
                .visitor_messages
                .fetch_add(1, Ordering::Relaxed);
            v.threads.insert(thread);
            // The ack is not a message frame: the socket also gets the
            // message itself (all the visitor's tabs do), once.
            v.see(&id);
            return Ok(());
        }
        if kind != "message:updated"
            && let Some((id, _)) = message_of(&f)
        {
            if !seen.insert(id.to_owned()) {
                ctx.problem(format!("visitor {}: message {id} sent twice: {f}", v.n));
            }
            v.see(id);
        }
    }
}

async fn upload(ctx: &Ctx, token: &str) -> Fallible<String> {
    let boundary = "----mychat-soak-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\n{}\r\n--{boundary}--\r\n",
        "soak notes ".repeat(200)
    );
    let response = ctx
        .rest
        .post(format!("{}/api/v1/widget/attachments", ctx.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("upload: {e}"))?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 201 {
        return Err(format!("upload: {status} {body}"));
    }
    str_at(&body, "/id")
}

async fn agent_churn(ctx: Arc<Ctx>, mut a: Agent, until: Instant) -> Agent {
    while Instant::now() < until {
        if let Err(e) = agent_round(&ctx, &mut a, until).await {
            ctx.error(format!("agent {}: {e}", a.email));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    a
}

/// One socket of an agent: a fresh login (tokens expire), join, answer
/// visitors for a while, then drop or close.
async fn agent_round(ctx: &Ctx, a: &mut Agent, until: Instant) -> Fallible<()> {
    let (status, body) = ctx
        .post(
            "/auth/login",
            None,
            json!({ "email": a.email, "password": PASSWORD }),
        )
        .await?;
    if status != 200 {
        return Err(format!("login: {status} {body}"));
    }
    let token = str_at(&body, "/accessToken")?;
    let me = str_at(&body, "/agent/id").ok();
    let mut ws = connect(ctx.server_addr, None, &ctx.agent_url, Some(&token)).await?;
    ctx.counters.connects.fetch_add(1, Ordering::Relaxed);
    wait_for(&mut ws, "ready").await?;
    send(
        &mut ws,
        json!({ "type": "agent:join_space", "chatSpaceId": ctx.space_id }),
    )
    .await?;
    wait_for(&mut ws, "joined").await?;
    let span = Duration::from_millis(rand::rng().random_range(2_000..15_000));
    let round_ends = (Instant::now() + span).min(until);
    let mut pending: HashMap<String, String> = HashMap::new();
    loop {
        let now = Instant::now();
        if now >= round_ends {
            break;
        }
        let f = match tokio::time::timeout(round_ends - now, next_frame(&mut ws)).await {
            Ok(f) => f?,
            Err(_) => break,
        };
        match f["type"].as_str().unwrap_or("") {
            "visitor:message" => {
                let thread = &f["thread"];
                let holder = thread["assignedAgentId"].as_str();
                let free = holder.is_none() || holder == me.as_deref();
                let Some(thread_id) = thread["id"].as_str() else {
                    continue;
                };
                if !free || !rand::rng().random_bool(0.7) {
                    continue;
                }
                if holder.is_none() && rand::rng().random_bool(0.3) {
                    let path = format!("/threads/{thread_id}/claim");
                    let (status, _) = ctx.post(&path, Some(&token), json!({})).await?;
                    if status == 200 {
                        ctx.counters.claims.fetch_add(1, Ordering::Relaxed);
                    }
                }
                a.sent += 1;
                let cmid = format!("soak-{}-{}", a.email, a.sent);
                let frame = json!({
                    "type": "agent:send_message", "threadId": thread_id,
                    "clientMsgId": cmid, "content": format!("reply {}", a.sent),
                });
                send(&mut ws, frame).await?;
                pending.insert(cmid, thread_id.to_owned());
            }
            "message:ack" => {
                let Some(cmid) = f["clientMsgId"].as_str() else {
                    continue;
                };
                let Some(thread) = pending.remove(cmid) else {
                    continue;
                };
                if let Some((id, _)) = message_of(&f) {
                    ctx.ledger.lock().unwrap().ack(id, &thread);
                    ctx.counters.agent_messages.fetch_add(1, Ordering::Relaxed);
                }
                if rand::rng().random_bool(0.1) {
                    let path = format!("/threads/{thread}/close");
                    let (status, _) = ctx.post(&path, Some(&token), json!({})).await?;
                    if status == 200 {
                        ctx.counters.closes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            "error" => {
                let cmid = f["clientMsgId"].as_str().unwrap_or("");
                if pending.remove(cmid).is_some() {
                    // Another agent claimed it, or it was closed meanwhile.
                    let code = f["code"].as_str().unwrap_or("");
                    if code == "already_claimed" || code == "conflict" || code.contains("closed") {
                        ctx.counters.refused_replies.fetch_add(1, Ordering::Relaxed);
                    } else {
                        return Err(format!("reply refused: {f}"));
                    }
                } else {
                    return Err(format!("error frame: {f}"));
                }
            }
            _ => {}
        }
    }
    if rand::rng().random_bool(0.5) {
        ctx.counters.abrupt_drops.fetch_add(1, Ordering::Relaxed);
        drop(ws);
    } else {
        let _ = ws.close(None).await;
    }
    Ok(())
}

async fn wait_for(ws: &mut Socket, kind: &str) -> Fallible<Value> {
    loop {
        let f = next_frame(ws).await?;
        if f["type"] == kind {
            return Ok(f);
        }
        if f["type"] == "error" {
            return Err(format!("waiting for {kind}: {f}"));
        }
    }
}

struct Measure {
    rss_kib: u64,
    fds: u64,
    db_kib: u64,
}

/// What the server's descriptors point at, files by name and sockets
/// counted: the clue when the count did not come back.
fn open_files(pid: u32) -> String {
    let mut sockets = 0;
    let mut other = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        match std::fs::read_link(entry.path()) {
            Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
            Ok(target) => other.push(target.to_string_lossy().into_owned()),
            Err(_) => {}
        }
    }
    other.sort();
    format!("{sockets} sockets, {}", other.join(", "))
}

/// Once the server holds no socket: its memory, descriptors and database size.
async fn settle(ctx: &Ctx, pid: u32, server: &Server) -> Fallible<Measure> {
    let started = Instant::now();
    loop {
        let text = ctx
            .rest
            .get(format!("{}/metrics", ctx.base))
            .send()
            .await
            .map_err(|e| format!("metrics: {e}"))?
            .text()
            .await
            .map_err(|e| format!("metrics: {e}"))?;
        let open = text
            .lines()
            .find_map(|l| l.strip_prefix("mychat_sockets "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if open == Some(0) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "sockets still open a minute after closing: {open:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Descriptors still closing (a keep-alive connection the client lets
    // go, a search index segment being merged) settle first: counted
    // until the number holds for five seconds.
    let count = || -> Fallible<u64> {
        Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| format!("/proc/{pid}/fd: {e}"))?
            .count() as u64)
    };
    let mut fds = count()?;
    let mut same = 0;
    while same < 10 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count()?;
        same = if now == fds { same + 1 } else { 0 };
        fds = now;
    }
    let rss_kib = procfs::memory(pid).ok_or("no /proc memory")?.rss_kib;
    let db_kib = server
        .data_dir()
        .and_then(|d| std::fs::metadata(d.join(mychat::DB_FILE)).ok())
        .map_or(0, |m| m.len() / 1024);
    Ok(Measure {
        rss_kib,
        fds,
        db_kib,
    })
}

/// Reads every thread back as the owner: each acknowledged message once,
/// no sender's clientMsgId twice, every replayed id a message of the
/// visitor's own conversations. (stored messages, threads)
async fn check_storage(ctx: &Ctx, owner: &str) -> Fallible<(usize, usize)> {
    let threads: Vec<String> = ctx
        .ledger
        .lock()
        .unwrap()
        .by_thread
        .keys()
        .cloned()
        .collect();
    let mut stored_in: HashMap<String, String> = HashMap::new();
    let mut count: HashMap<String, usize> = HashMap::new();
    for thread in &threads {
        let mut cursor: Option<String> = None;
        let mut keys = HashSet::new();
        loop {
            let mut url = format!("{}/api/v1/threads/{thread}/messages?limit=200", ctx.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&before={c}"));
            }
            let page: Value = ctx
                .rest
                .get(url)
                .bearer_auth(owner)
                .send()
                .await
                .map_err(|e| format!("reading {thread}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("reading {thread}: {e}"))?;
            let items = page["items"]
                .as_array()
                .ok_or_else(|| format!("reading {thread}: {page}"))?;
            for m in items {
                let id = m["id"].as_str().unwrap_or_default().to_owned();
                *count.entry(id.clone()).or_default() += 1;
                stored_in.insert(id, thread.clone());
                if let Some(cmid) = m["clientMsgId"].as_str() {
                    let key = (m["senderId"].to_string(), cmid.to_owned());
                    if !keys.insert(key) {
                        ctx.problem(format!("clientMsgId {cmid} stored twice in {thread}"));
                    }
                }
            }
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
    }
    let ledger = ctx.ledger.lock().unwrap();
    let mut problems = Vec::new();
    for (id, thread) in &ledger.acked {
        match count.get(id) {
            Some(1) if stored_in.get(id) == Some(thread) => {}
            Some(1) => problems.push(format!("message {id} stored in another thread")),
            Some(n) => problems.push(format!("message {id} stored {n} times")),
            None => problems.push(format!("acknowledged message {id} is not stored")),
        }
    }
    let none = HashSet::new();
    for (visitor, replayed) in &ledger.replays {
        let threads = ledger.visitor_threads.get(visitor).unwrap_or(&none);
        for id in replayed {
            if !stored_in.get(id).is_some_and(|t| threads.contains(t)) {
                problems.push(format!("replayed {id} is not of the visitor's threads"));
            }
        }
    }
    drop(ledger);
    for p in problems {
        ctx.problem(p);
    }
    Ok((count.len(), threads.len()))
}

fn print(r: &Report) {
    println!(
        "soak: {:.1} minutes, {} visitors, {} agents",
        r.minutes, r.visitors, r.agents
    );
    println!(
        "  messages acknowledged: {} ({} from visitors, {} from agents); stored: {} in {} threads",
        r.acknowledged, r.visitor_messages, r.agent_messages, r.stored_messages, r.threads
    );
    println!(
        "  socket connects: {}, abrupt drops: {}, resumes checked: {}, resyncs: {}",
        r.connects, r.abrupt_drops, r.resumes_checked, r.resyncs
    );
    println!(
        "  uploads: {}, claims: {}, closes: {}, replies refused (claimed/closed meanwhile): {}",
        r.uploads, r.claims, r.closes, r.refused_replies
    );
    println!(
        "  server RSS: {} KiB at the baseline, {} KiB at the end, {} KiB at most",
        r.rss_base_kib, r.rss_end_kib, r.rss_peak_kib
    );
    println!(
        "  open file descriptors: {} at the baseline, {} at the end; database {} KiB → {} KiB",
        r.fds_base, r.fds_end, r.db_base_kib, r.db_end_kib
    );
    println!("  errors: {}, problems: {}", r.errors, r.problems.len());
    for p in r.problems.iter().take(20) {
        println!("  PROBLEM: {p}");
    }
}
