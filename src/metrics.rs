//! `/metrics` through `prometheus-client`: what is counted as it happens
//! (requests, socket frames, messages) lives in [`Metrics`]; what is read at
//! scrape time (store statistics, outbox backlogs, certificates, open files)
//! comes in a [`Scrape`]. One scrape is encoded as Prometheus text 0.0.4 or,
//! when the scraper asks for it, OpenMetrics.
//!
//! To add a series: a field on [`Metrics`] (registered in
//! [`Metrics::registry`]) for something counted as it happens, or a field on
//! [`Scrape`] (registered in [`Scrape::register`]) for a value read when
//! Prometheus asks.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::StoreStats;
use crate::threads::model::ThreadStatus;

/// Upper bounds, in seconds, of the request latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// `Content-Type` of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The version and the commit this executable was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("BUILD_COMMIT");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    /// The route template (`/api/v1/threads/{id}`), never the path itself.
    pub route: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SocketLabels {
    /// `widget`, `agent` or `member`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabels {
    pub kind: &'static str,
    /// `in` (from the client) or `out` (to the client).
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthorLabels {
    /// `visitor`, `agent`, `member`, `integration` or `system`.
    pub author: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What is counted as it happens. Families are cheap handles: every scrape
/// registers clones of them.
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: HistogramFamily<RequestLabels>,
    pub sockets_open: Family<SocketLabels, Gauge>,
    pub socket_frames: Family<FrameLabels, Counter>,
    pub socket_resyncs: Family<SocketLabels, Counter>,
    pub messages: Family<AuthorLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            sockets_open: Family::default(),
            socket_frames: Family::default(),
            socket_resyncs: Family::default(),
            messages: Family::default(),
        }
    }
}

/// The method as a label: the standard ones by name, anything else (a
/// client may send any token) as `other`, so labels stay few.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl Metrics {
    /// Records one answered request. `route` is the matched route template
    /// (`None` for a path no route matched).
    pub fn observe_request(
        &self,
        method: &axum::http::Method,
        route: Option<&str>,
        status: u16,
        seconds: f64,
    ) {
        let labels = RequestLabels {
            method: method_label(method),
            route: route.unwrap_or("unmatched").to_owned(),
            code: status,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds.get_or_create(&labels).observe(seconds);
    }

    /// A socket of `kind` opened; the gauge goes down when the guard drops.
    pub fn socket_opened(&self, kind: &'static str) -> OpenSocket {
        let gauge = self
            .sockets_open
            .get_or_create(&SocketLabels { kind })
            .clone();
        gauge.inc();
        OpenSocket(gauge)
    }

    pub fn frame(&self, kind: &'static str, direction: &'static str) {
        self.socket_frames
            .get_or_create(&FrameLabels { kind, direction })
            .inc();
    }

    pub fn resync(&self, kind: &'static str) {
        self.socket_resyncs
            .get_or_create(&SocketLabels { kind })
            .inc();
    }

    pub fn message(&self, author: &'static str) {
        self.messages.get_or_create(&AuthorLabels { author }).inc();
    }

    /// A registry with every live series and the scrape's values.
    fn registry(&self, scrape: Scrape) -> Registry {
        let mut r = Registry::default();
        let build = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        build
            .get_or_create(&vec![("version", VERSION), ("commit", COMMIT)])
            .set(1);
        r.register(
            "mychat_build_info",
            "The version and commit of this executable (always 1)",
            build,
        );
        r.register(
            "mychat_http_requests",
            "HTTP requests by method, route template and status code",
            self.requests.clone(),
        );
        r.register(
            "mychat_http_request_duration_seconds",
            "HTTP request latency by method, route template and status code",
            self.request_seconds.clone(),
        );
        r.register(
            "mychat_sockets_open",
            "Open WebSockets by kind",
            self.sockets_open.clone(),
        );
        r.register(
            "mychat_socket_frames",
            "WebSocket text frames by socket kind and direction",
            self.socket_frames.clone(),
        );
        r.register(
            "mychat_socket_lag_resyncs",
            "Times a socket fell behind its queue and resynced from storage",
            self.socket_resyncs.clone(),
        );
        r.register(
            "mychat_messages",
            "Messages committed, by author kind",
            self.messages.clone(),
        );
        scrape.register(&mut r);
        r
    }

    /// The scrape as text: OpenMetrics when `openmetrics`, else Prometheus
    /// text 0.0.4.
    pub fn encode(&self, scrape: Scrape, openmetrics: bool) -> String {
        let registry = self.registry(scrape);
        let mut out = String::with_capacity(8192);
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        // Writing into a String cannot fail.
        encoded.expect("metrics encode into a string");
        out
    }
}

/// Keeps a socket counted in `mychat_sockets_open` while it lives.
pub struct OpenSocket(Gauge);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A histogram whose buckets were counted elsewhere (the store's writer).
#[derive(Debug)]
struct CountedHistogram {
    sum: f64,
    count: u64,
    /// Upper bound and the count of that bucket alone (not cumulative).
    buckets: Vec<(f64, u64)>,
}

impl CountedHistogram {
    /// From cumulative `(upper bound, count)` pairs.
    fn from_cumulative(sum: f64, cumulative: impl IntoIterator<Item = (f64, u64)>) -> Self {
        let mut buckets = Vec::new();
        let mut previous = 0;
        for (bound, total) in cumulative {
            buckets.push((bound, total.saturating_sub(previous)));
            previous = total;
        }
        CountedHistogram {
            sum,
            count: previous,
            buckets,
        }
    }
}

impl EncodeMetric for CountedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One outbox's queue.
#[derive(Clone, Debug, Default)]
pub struct Backlog {
    /// `email`, `webhooks` or `push`.
    pub outbox: &'static str,
    pub pending: u64,
    /// How long the most overdue entry has waited since it was due.
    pub oldest_due_secs: f64,
}

/// Values read when Prometheus scrapes.
#[derive(Default)]
pub struct Scrape {
    pub store: StoreStats,
    /// Sockets holding a slot, of every kind (opening ones too).
    pub sockets: usize,
    pub backlogs: Vec<Backlog>,
    /// Mails the relay accepted and gave up on since start (with email on).
    pub email: Option<(u64, u64)>,
    /// Web Push notifications sent, failed and skipped since start.
    pub push: (u64, u64, u64),
    /// Domain and the certificate's notAfter in Unix seconds.
    pub certificates: Vec<(String, i64)>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// Writes are refused: the disk is below the store's free-space floor.
    pub disk_full: bool,
    /// This node runs the background jobs (always, with the embedded
    /// database; in a cluster, the one node holding the jobs lock).
    pub leads: bool,
    pub memory: Memory,
}

/// The process's memory and the socket upgrades refused to protect it.
#[derive(Default)]
pub struct Memory {
    /// Anonymous resident memory (heap, stacks).
    pub anon_bytes: u64,
    /// The kernel memory the process's cgroup is charged (0: unknown).
    pub kernel_bytes: u64,
    /// The mark above which new sockets are refused (0: none).
    pub high_bytes: u64,
    pub refused_memory: u64,
    pub refused_full: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabels {
    outbox: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabels {
    domain: String,
}

impl Scrape {
    fn register(self, r: &mut Registry) {
        let s = &self.store;
        r.register(
            "mychat_store_commits",
            "Durable commits of the group-commit writer",
            ConstCounter::new(s.commits),
        );
        r.register(
            "mychat_store_failed_commits",
            "Commits that failed",
            ConstCounter::new(s.failed_commits),
        );
        r.register(
            "mychat_store_commit_batch_size",
            "Writes folded into one commit",
            CountedHistogram::from_cumulative(
                s.writes as f64,
                s.batch_buckets.iter().map(|&(bound, n)| {
                    let bound = if bound == u64::MAX {
                        f64::INFINITY
                    } else {
                        bound as f64
                    };
                    (bound, n)
                }),
            ),
        );
        r.register(
            "mychat_store_commit_duration_seconds",
            "Time one durable commit takes (the write and its fsync)",
            CountedHistogram::from_cumulative(s.commit_seconds, s.commit_latency_buckets.clone()),
        );
        r.register(
            "mychat_store_disk_full",
            "1 while writes are refused for lack of disk space",
            ConstGauge::new(i64::from(self.disk_full)),
        );
        r.register(
            "mychat_jobs_leader",
            "1 while this node runs the background jobs (in a cluster, one node at a time)",
            ConstGauge::new(i64::from(self.leads)),
        );
        r.register(
            "mychat_store_disk_full_writes",
            "Writes refused (507) because the disk was full",
            ConstCounter::new(s.disk_full_writes),
        );
        let m = &self.memory;
        r.register(
            "mychat_memory_anon_bytes",
            "Anonymous resident memory of the process (heap, stacks)",
            ConstGauge::new(m.anon_bytes as i64),
        );
        r.register(
            "mychat_memory_kernel_bytes",
            "Kernel memory charged to the process's cgroup (socket buffers, slabs)",
            ConstGauge::new(m.kernel_bytes as i64),
        );
        r.register(
            "mychat_memory_high_bytes",
            "Anonymous plus kernel memory above which new sockets are refused (0: none)",
            ConstGauge::new(m.high_bytes as i64),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        for (reason, n) in [
            ("memory", m.refused_memory),
            ("max_sockets", m.refused_full),
        ] {
            refused.get_or_create(&ReasonLabels { reason }).inc_by(n);
        }
        r.register(
            "mychat_sockets_refused",
            "Socket upgrades refused (503) for lack of memory or at limits.max_sockets",
            refused,
        );
        r.register(
            "mychat_store_commit_seconds",
            "Time spent committing, in all",
            ConstCounter::new(s.commit_seconds),
        );
        let threads = Family::<StatusLabels, Gauge>::default();
        for (status, n) in s.threads.iter().filter(|(s, _)| s.is_open()) {
            threads
                .get_or_create(&StatusLabels {
                    status: ThreadStatus::as_str(*status),
                })
                .set(*n as i64);
        }
        r.register(
            "mychat_threads",
            "Threads by status (the open ones)",
            threads,
        );
        r.register(
            "mychat_sockets",
            "Sockets holding a place under limits.max_sockets, of every kind",
            ConstGauge::new(self.sockets as i64),
        );
        let pending = Family::<OutboxLabels, Gauge>::default();
        let oldest = Family::<OutboxLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for b in &self.backlogs {
            let labels = OutboxLabels { outbox: b.outbox };
            pending.get_or_create(&labels).set(b.pending as i64);
            oldest.get_or_create(&labels).set(b.oldest_due_secs);
        }
        r.register(
            "mychat_outbox_pending",
            "Entries waiting in each outbox (email, webhooks, push)",
            pending,
        );
        r.register(
            "mychat_outbox_oldest_pending_seconds",
            "How long each outbox's most overdue entry has waited since it was due (0: none due)",
            oldest,
        );
        if let Some((sent, failed)) = self.email {
            let pending = self
                .backlogs
                .iter()
                .find(|b| b.outbox == "email")
                .map_or(0, |b| b.pending);
            r.register(
                "mychat_email_pending",
                "Mails waiting to be sent",
                ConstGauge::new(pending as i64),
            );
            r.register(
                "mychat_email_sent",
                "Mails the relay accepted",
                ConstCounter::new(sent),
            );
            r.register(
                "mychat_email_failed",
                "Mails given up on",
                ConstCounter::new(failed),
            );
        }
        let push = Family::<ResultLabels, Counter>::default();
        let (sent, failed, skipped) = self.push;
        for (result, n) in [("sent", sent), ("failed", failed), ("skipped", skipped)] {
            push.get_or_create(&ResultLabels { result }).inc_by(n);
        }
        r.register("mychat_push", "Web Push notifications by outcome.", push);
        let push_pending = self
            .backlogs
            .iter()
            .find(|b| b.outbox == "push")
            .map_or(0, |b| b.pending);
        r.register(
            "mychat_push_pending",
            "Web Push notifications waiting to be sent",
            ConstGauge::new(push_pending as i64),
        );
        if !self.certificates.is_empty() {
            let expiry = Family::<DomainLabels, Gauge>::default();
            for (domain, not_after) in &self.certificates {
                expiry
                    .get_or_create(&DomainLabels {
                        domain: domain.clone(),
                    })
                    .set(*not_after);
            }
            r.register(
                "mychat_tls_certificate_expiry_timestamp_seconds",
                "Unix time at which the certificate served for a domain expires",
                expiry.clone(),
            );
            r.register(
                "mychat_tls_certificate_expiry_seconds",
                "Deprecated, removed in the next release: the same value as mychat_tls_certificate_expiry_timestamp_seconds",
                expiry,
            );
        }
        if let Some(n) = self.open_fds {
            r.register(
                "process_open_fds",
                "Open file descriptors (every socket is one)",
                ConstGauge::new(n as i64),
            );
        }
        if let Some(n) = self.max_fds {
            r.register(
                "process_max_fds",
                "The open-file limit",
                ConstGauge::new(n as i64),
            );
        }
    }
}

/// Open file descriptors of this process (Linux: `/proc/self/fd`).
pub fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as u64)
}

/// The soft open-file limit.
pub fn max_fds() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_by_route_template_method_and_code() {
        let m = Metrics::default();
        m.observe_request(
            &axum::http::Method::GET,
            Some("/api/v1/threads/{id}"),
            200,
            0.003,
        );
        m.observe_request(&"BREW".parse().unwrap(), None, 404, 0.001);
        let text = m.encode(Scrape::default(), false);
        assert!(text.contains(
            "mychat_http_requests_total{method=\"GET\",route=\"/api/v1/threads/{id}\",code=\"200\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "mychat_http_requests_total{method=\"other\",route=\"unmatched\",code=\"404\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE mychat_http_request_duration_seconds histogram"));
        assert!(text.contains("mychat_build_info{version=\""));
    }

    #[test]
    fn counted_histograms_take_cumulative_buckets() {
        let h = CountedHistogram::from_cumulative(10.0, [(1.0, 2), (2.0, 5), (f64::INFINITY, 6)]);
        assert_eq!(h.count, 6);
        assert_eq!(h.buckets, vec![(1.0, 2), (2.0, 3), (f64::INFINITY, 1)]);
    }

    #[test]
    fn an_open_socket_counts_until_dropped() {
        let m = Metrics::default();
        let a = m.socket_opened("widget");
        let _b = m.socket_opened("widget");
        drop(a);
        let text = m.encode(Scrape::default(), true);
        assert!(
            text.contains("mychat_sockets_open{kind=\"widget\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
