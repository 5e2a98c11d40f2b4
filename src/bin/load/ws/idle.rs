//! `idle`: N widget sockets held open, and what each costs the server in
//! memory.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::RangedU64ValueParser;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::client::{Rest, connect, expect};
use super::procfs::{Memory, memory, open_file_limit};
use super::server::{Server, ServerArgs};
use super::{Fallible, Socket};

#[derive(Args)]
pub struct IdleArgs {
    /// Widget sockets to open and hold.
    #[arg(long, default_value_t = 10_000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    sockets: usize,
    /// Loopback source addresses 127.0.0.1..127.0.0.K the client sockets
    /// are spread over, each with its own ~28k ephemeral ports (default:
    /// one per 10,000 sockets, leaving room for ports still in TIME_WAIT
    /// from an earlier run).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=254))]
    source_ips: Option<usize>,
    /// Session requests and socket handshakes in flight at once.
    #[arg(long, default_value_t = 256, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
    /// Seconds every socket is held open while the server's memory is
    /// sampled; past 25 s the server pings each socket once.
    #[arg(long, default_value_t = 30)]
    hold: u64,
    /// Give up opening sockets after this many failures.
    #[arg(long, default_value_t = 100)]
    max_failures: usize,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdleReport {
    server: &'static str,
    requested: usize,
    opened: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    source_ips: usize,
    open_file_limit: Option<(u64, u64)>,
    sessions_per_sec: f64,
    open_seconds: f64,
    /// Server memory with the sessions made and no socket open.
    before: Option<Memory>,
    /// With every socket open, right away and at the end of the hold.
    open: Option<Memory>,
    held: Option<Memory>,
    /// Highest resident memory seen while holding.
    held_max_kib: Option<u64>,
    /// (held − before) / opened.
    kib_per_socket: Option<f64>,
    anon_kib_per_socket: Option<f64>,
    /// What the second half of the sockets added, per socket (both sampled
    /// right after opening).
    second_half_kib_per_socket: Option<f64>,
    /// Sockets the server closed or lost while held.
    dropped: u64,
    hold_seconds: u64,
    /// Server memory a few seconds after every socket closed.
    after_close: Option<Memory>,
    client_kib_per_socket: Option<f64>,
}

pub async fn idle(args: &IdleArgs, json: bool) -> Fallible<()> {
    let limit = open_file_limit();
    if let Some((soft, hard)) = limit {
        let need = args.sockets as u64 + 200;
        if soft < need {
            eprintln!(
                "warning: open files limit {soft} (hard {hard}) < {need} for {} sockets; \
                 this process and the server each hold one descriptor per socket. \
                 Raise it first: ulimit -n {need} (above the hard limit needs root with CAP_SYS_RESOURCE)",
                args.sockets
            );
        }
    }
    let server = Server::start(&args.server, true).await?;
    let result = idle_run(args, &server, limit).await;
    server.stop().await;
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        print_idle(&report);
    }
    Ok(())
}

async fn idle_run(
    args: &IdleArgs,
    server: &Server,
    open_file_limit: Option<(u64, u64)>,
) -> Fallible<IdleReport> {
    let pid = server.pid;
    let n = args.sockets;
    let source_ips = args.source_ips.unwrap_or(n.div_ceil(10_000)).max(1);
    let loopback = server.addr.ip().is_loopback();
    if source_ips > 1 && !loopback {
        return Err("--source-ips needs a loopback server".into());
    }
    let (space, tokens, sessions_per_sec) = {
        let rest = Rest::new(&server.base, args.concurrency)?;
        let space = rest.space().await?;
        eprintln!("creating {n} widget sessions...");
        let began = Instant::now();
        let tokens = rest.sessions(&space.key, n, args.concurrency).await?;
        let rate = n as f64 / began.elapsed().as_secs_f64();
        eprintln!("  {rate:.0} sessions/s");
        (space, tokens, rate)
        // The client and its pooled connections go here.
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = pid.and_then(memory);
    let client_before = memory(std::process::id());

    eprintln!("opening {n} widget sockets from {source_ips} source address(es)...");
    let url_of =
        |token: &str| server.ws_url(&format!("/ws/widget?key={}&token={token}", space.key));
    let (stop_tx, stop_rx) = watch::channel(false);
    let dropped = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let give_up = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let mut holders = Vec::with_capacity(n);
    let mut first_error = None;
    let mut failed = 0;
    // In two halves, so the second half's cost is measured on its own: the
    // first sockets also reuse memory the allocator kept from setup.
    let mut half = None;
    for range in [0..n / 2, n / 2..n] {
        let attempts: Vec<Fallible<JoinHandle<()>>> = stream::iter(range.map(|i| (i, &tokens[i])))
            .map(|(i, token)| {
                let url = url_of(token);
                let source = loopback.then(|| Ipv4Addr::new(127, 0, 0, 1 + (i % source_ips) as u8));
                let (stop, dropped, failures, give_up) = (
                    stop_rx.clone(),
                    dropped.clone(),
                    failures.clone(),
                    give_up.clone(),
                );
                let max_failures = args.max_failures as u64;
                async move {
                    if give_up.load(Ordering::Relaxed) {
                        return Err(SKIPPED.to_owned());
                    }
                    let opened = async {
                        let mut ws = connect(server.addr, source, &url, None).await?;
                        expect(&mut ws, "hello").await?;
                        Ok(ws)
                    }
                    .await;
                    match opened {
                        Ok(ws) => Ok(tokio::spawn(hold(ws, stop, dropped))),
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) + 1 >= max_failures {
                                give_up.store(true, Ordering::Relaxed);
                            }
                            Err(e)
                        }
                    }
                }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        for attempt in attempts {
            match attempt {
                Ok(h) => holders.push(h),
                Err(e) => {
                    failed += 1;
                    if first_error.is_none() || first_error.as_deref() == Some(SKIPPED) {
                        first_error = Some(e);
                    }
                }
            }
        }
        if half.is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            half = Some((holders.len(), pid.and_then(memory)));
        }
    }
    let open_seconds = began.elapsed().as_secs_f64();
    let opened = holders.len();
    eprintln!("  {opened} open, {failed} failed in {open_seconds:.1} s");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let open = pid.and_then(memory);
    let client_open = memory(std::process::id());
    let second_half_kib_per_socket = match (half, open) {
        (Some((at, Some(h))), Some(o)) if opened > at => {
            Some((o.rss_kib as f64 - h.rss_kib as f64) / (opened - at) as f64)
        }
        _ => None,
    };
    let mut held_max = open.map(|m| m.rss_kib);
    let mut held = open;
    eprintln!("holding for {} s...", args.hold);
    for _ in 0..args.hold {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(m) = pid.and_then(memory) {
            held_max = held_max.max(Some(m.rss_kib));
            held = Some(m);
        }
    }
    let dropped_now = dropped.load(Ordering::Relaxed);

    let _ = stop_tx.send(true);
    for h in holders {
        let _ = h.await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_close = pid.and_then(memory);

    let per = |f: fn(&Memory) -> u64| match (before, held) {
        (Some(b), Some(h)) if opened > 0 => Some((f(&h) as f64 - f(&b) as f64) / opened as f64),
        _ => None,
    };
    let client_per = match (client_before, client_open) {
        (Some(b), Some(o)) if opened > 0 => {
            Some((o.rss_kib as f64 - b.rss_kib as f64) / opened as f64)
        }
        _ => None,
    };
    Ok(IdleReport {
        server: server.where_(),
        requested: n,
        opened,
        failed,
        first_error,
        source_ips,
        open_file_limit,
        sessions_per_sec,
        open_seconds,
        before,
        open,
        held,
        held_max_kib: held_max,
        kib_per_socket: per(|m| m.rss_kib),
        second_half_kib_per_socket,
        anon_kib_per_socket: per(|m| m.anon_kib),
        dropped: dropped_now,
        hold_seconds: args.hold,
        after_close,
        client_kib_per_socket: client_per,
    })
}

const SKIPPED: &str = "skipped after too many failures";

/// Keeps a socket open (reading answers the server's pings) until told
/// to stop; counts it when the server ends it first.
async fn hold(mut ws: Socket, mut stop: watch::Receiver<bool>, dropped: Arc<AtomicU64>) {
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

fn print_idle(r: &IdleReport) {
    let mib = |m: Option<Memory>| {
        m.map_or("–".to_owned(), |m| {
            format!("{:.1} MiB", m.rss_kib as f64 / 1024.0)
        })
    };
    println!(
        "idle ({}): {} of {} widget sockets open ({} failed) from {} source address(es) in {:.1} s",
        r.server, r.opened, r.requested, r.failed, r.source_ips, r.open_seconds
    );
    if let Some((soft, hard)) = r.open_file_limit {
        println!("  open files  limit {soft} (hard {hard})");
    }
    println!(
        "  sessions    {:.0}/s created over REST",
        r.sessions_per_sec
    );
    println!(
        "  server RSS  before {}  open {}  after {} s held {}  (max {})",
        mib(r.before),
        mib(r.open),
        r.hold_seconds,
        mib(r.held),
        r.held_max_kib.map_or("–".to_owned(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        ))
    );
    if let (Some(k), Some(a)) = (r.kib_per_socket, r.anon_kib_per_socket) {
        println!("  per socket  {k:.2} KiB RSS ({a:.2} KiB anonymous)");
    }
    if let Some(k) = r.second_half_kib_per_socket {
        println!("  2nd half    {k:.2} KiB RSS per socket");
    }
    println!("  dropped     {} while held", r.dropped);
    println!("  after close {}", mib(r.after_close));
    if let Some(c) = r.client_kib_per_socket {
        println!("  client      {c:.2} KiB RSS per socket");
    }
    if let Some(e) = &r.first_error {
        println!("  first error {e}");
    }
}
