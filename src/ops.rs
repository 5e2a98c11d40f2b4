//! What operators poll: `/healthz` (alive), `/readyz` (the store takes
//! reads and writes; 503 `disk_full` while the disk is below the store's
//! floor), `/metrics` (Prometheus text, for loopback peers or
//! with `metrics.token`), and the middleware that counts every request.

use std::net::IpAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::extract::ClientIp;
use crate::metrics;
use crate::state::AppState;
use crate::store::Reader;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain", example = "ok"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "system",
    responses(
        (status = 200, description = "Ready to serve", body = Ready, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready, or the disk is full (`disk_full`)", body = crate::openapi::ErrorBody)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    // A real read: a node whose database is unreachable is not ready.
    let ready = state.store.is_running()
        && state
            .store
            .read()
            .and_then(|r| r.get_raw(crate::store::tables::META, b"schema_version"))
            .is_ok();
    if ready && state.store.disk_full() {
        let body = crate::error::envelope(
            "disk_full",
            "disk full: writes are refused until space is freed; reads go on",
        );
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if ready {
        (StatusCode::OK, Json(Ready { status: "ready" })).into_response()
    } else {
        AppError::Unavailable("store is not available".into()).into_response()
    }
}

/// The answer of a ready server.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(pattern = "^ready$")]
    status: &'static str,
}

/// Middleware recording every request's method, route template, status
/// and latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.observe_request(
        &method,
        route.as_deref(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The metrics, from counters kept as things happen and a few cheap reads:
/// Prometheus text, or OpenMetrics for a scraper that asks for it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses(
        (status = 200, description = "Prometheus text (or OpenMetrics when asked for in `Accept`)", body = String, content_type = "text/plain"),
        (status = 403, description = "The caller may not scrape (`metrics.allow` / `metrics.token`)", body = crate::openapi::ErrorBody),
        (status = 401, description = "A wrong scrape token", body = crate::openapi::ErrorBody)
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = may_scrape(&state, ip, &headers) {
        return e.into_response();
    }
    let scrape = scrape(&state);
    let openmetrics = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let body = state.metrics.encode(scrape, openmetrics);
    let content_type = if openmetrics {
        metrics::OPENMETRICS_CONTENT_TYPE
    } else {
        metrics::TEXT_CONTENT_TYPE
    };
    ([(CONTENT_TYPE, content_type)], body).into_response()
}

/// What is read at scrape time.
fn scrape(state: &AppState) -> metrics::Scrape {
    let now = state.clock.now();
    let backlogs = state
        .store
        .read()
        .and_then(|r| r.outbox_backlogs())
        .unwrap_or_default()
        .into_iter()
        .map(|q| metrics::Backlog {
            outbox: q.outbox,
            pending: q.pending as u64,
            oldest_due_secs: q
                .soonest
                .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3),
        })
        .collect();
    let email = state.config.email.enabled().then(|| {
        use std::sync::atomic::Ordering::Relaxed;
        (
            state.mailer.sent.load(Relaxed),
            state.mailer.failed.load(Relaxed),
        )
    });
    metrics::Scrape {
        store: state.store.stats(),
        sockets: state.sockets.open(),
        backlogs,
        email,
        push: state.push.counts(),
        certificates: state.tls.expiry(),
        open_fds: metrics::open_fds(),
        max_fds: metrics::max_fds(),
        disk_full: state.store.disk_full(),
        leads: state.store.leads(),
        memory: {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &state.sockets;
            metrics::Memory {
                anon_bytes: crate::memory::rss_bytes().unwrap_or(0),
                kernel_bytes: crate::memory::cgroup_kernel_bytes(),
                high_bytes: s.memory_high(),
                refused_memory: s.refused_memory.load(Relaxed),
                refused_full: s.refused_full.load(Relaxed),
            }
        },
    }
}

/// With `metrics.token` set, every scraper must send it; without, only a
/// client on this machine may read (behind a local proxy that is the
/// forwarded client's address, when the proxy is trusted).
fn may_scrape(state: &AppState, ip: IpAddr, headers: &HeaderMap) -> AppResult<()> {
    let token = &state.config.metrics.token;
    if token.is_empty() {
        return if ip.to_canonical().is_loopback() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "metrics are for this machine only, or set metrics.token".into(),
            ))
        };
    }
    let sent = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Digests compared, so the time taken tells nothing about the token.
    if Sha256::digest(sent.as_bytes()) == Sha256::digest(token.as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Unauthorized(
            "metrics need the metrics token".into(),
        ))
    }
}
