//! Prometheus text metrics: requests, latencies, open threads, commits and
//! commit batch sizes.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::StoreStats;
use crate::threads::model::ThreadStatus;

/// Upper bounds, in seconds, of the latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    /// By status class: 1xx..5xx.
    requests: [AtomicU64; 5],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_micros_sum: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_micros_sum
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Appends the request counters and the latency histogram.
    pub fn render(&self, out: &mut String) {
        let m = self;
        out.push_str("# HELP mychat_http_requests_total HTTP requests by status class.\n");
        out.push_str("# TYPE mychat_http_requests_total counter\n");
        for (i, c) in m.requests.iter().enumerate() {
            let _ = writeln!(
                out,
                "mychat_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP mychat_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE mychat_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, c) in m.latency_buckets.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "mychat_http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "mychat_http_request_duration_seconds_sum {}",
            m.latency_micros_sum.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "mychat_http_request_duration_seconds_count {cumulative}"
        );
    }
}

/// Appends the group-commit writer's counters and batch-size histogram.
pub fn render_store(s: &StoreStats, out: &mut String) {
    out.push_str("# HELP mychat_store_commits_total Durable commits of the group-commit writer.\n");
    out.push_str("# TYPE mychat_store_commits_total counter\n");
    let _ = writeln!(out, "mychat_store_commits_total {}", s.commits);
    out.push_str("# HELP mychat_store_failed_commits_total Commits that failed.\n");
    out.push_str("# TYPE mychat_store_failed_commits_total counter\n");
    let _ = writeln!(
        out,
        "mychat_store_failed_commits_total {}",
        s.failed_commits
    );
    out.push_str("# HELP mychat_store_commit_batch_size Writes folded into one commit.\n");
    out.push_str("# TYPE mychat_store_commit_batch_size histogram\n");
    for (bound, count) in &s.batch_buckets {
        let le = if *bound == u64::MAX {
            "+Inf".to_owned()
        } else {
            bound.to_string()
        };
        let _ = writeln!(
            out,
            "mychat_store_commit_batch_size_bucket{{le=\"{le}\"}} {count}"
        );
    }
    let _ = writeln!(out, "mychat_store_commit_batch_size_sum {}", s.writes);
    let _ = writeln!(out, "mychat_store_commit_batch_size_count {}", s.commits);
    out.push_str("# HELP mychat_store_commit_seconds_total Time spent committing.\n");
    out.push_str("# TYPE mychat_store_commit_seconds_total counter\n");
    let _ = writeln!(
        out,
        "mychat_store_commit_seconds_total {}",
        s.commit_seconds
    );
}

/// Appends the thread gauge, for the open statuses (the work at hand).
pub fn render_threads(counts: &[(ThreadStatus, u64)], out: &mut String) {
    out.push_str("# HELP mychat_threads Threads by status.\n");
    out.push_str("# TYPE mychat_threads gauge\n");
    for (status, n) in counts.iter().filter(|(s, _)| s.is_open()) {
        let _ = writeln!(out, "mychat_threads{{status=\"{}\"}} {n}", status.as_str());
    }
}

/// Appends the open-socket gauge.
pub fn render_sockets(open: usize, out: &mut String) {
    out.push_str("# HELP mychat_sockets Open WebSockets, of every kind.\n");
    out.push_str("# TYPE mychat_sockets gauge\n");
    let _ = writeln!(out, "mychat_sockets {open}");
}

/// Mails waiting in the outbox, and sent or given up since start.
pub fn render_email(pending: usize, sent: u64, failed: u64, out: &mut String) {
    out.push_str("# HELP mychat_email_pending Mails waiting to be sent.\n");
    out.push_str("# TYPE mychat_email_pending gauge\n");
    let _ = writeln!(out, "mychat_email_pending {pending}");
    out.push_str("# HELP mychat_email_sent_total Mails the relay accepted.\n");
    out.push_str("# TYPE mychat_email_sent_total counter\n");
    let _ = writeln!(out, "mychat_email_sent_total {sent}");
    out.push_str("# HELP mychat_email_failed_total Mails given up on.\n");
    out.push_str("# TYPE mychat_email_failed_total counter\n");
    let _ = writeln!(out, "mychat_email_failed_total {failed}");
}

/// Appends whether the disk is below the store's free-space floor, and
/// the writes refused for it.
pub fn render_disk(full: bool, refused: u64, out: &mut String) {
    out.push_str(
        "# HELP mychat_store_disk_full 1 while writes are refused for lack of disk space.\n",
    );
    out.push_str("# TYPE mychat_store_disk_full gauge\n");
    let _ = writeln!(out, "mychat_store_disk_full {}", u8::from(full));
    out.push_str("# HELP mychat_store_disk_full_writes_total Writes refused (507) because the disk was full.\n");
    out.push_str("# TYPE mychat_store_disk_full_writes_total counter\n");
    let _ = writeln!(out, "mychat_store_disk_full_writes_total {refused}");
}

/// Appends the process's memory, its high-water mark for new sockets, and
/// the upgrades refused at the mark and at `limits.max_sockets`.
pub fn render_overload(
    rss: u64,
    high: u64,
    refused_memory: u64,
    refused_full: u64,
    out: &mut String,
) {
    out.push_str("# HELP mychat_memory_anon_bytes Anonymous resident memory of the process (heap, stacks).\n");
    out.push_str("# TYPE mychat_memory_anon_bytes gauge\n");
    let _ = writeln!(out, "mychat_memory_anon_bytes {rss}");
    out.push_str("# HELP mychat_memory_high_bytes Resident memory above which new sockets are refused (0: none).\n");
    out.push_str("# TYPE mychat_memory_high_bytes gauge\n");
    let _ = writeln!(out, "mychat_memory_high_bytes {high}");
    out.push_str("# HELP mychat_sockets_refused_total Socket upgrades refused (503) for lack of memory or at max_sockets.\n");
    out.push_str("# TYPE mychat_sockets_refused_total counter\n");
    let _ = writeln!(
        out,
        "mychat_sockets_refused_total{{reason=\"memory\"}} {refused_memory}"
    );
    let _ = writeln!(
        out,
        "mychat_sockets_refused_total{{reason=\"max_sockets\"}} {refused_full}"
    );
}
