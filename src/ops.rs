//! What operators poll: `/healthz` (alive), `/readyz` (the store takes
//! reads and writes; 503 `disk_full` while the disk is below the store's
//! floor), `/metrics` (Prometheus text, for loopback peers or
//! with `metrics.token`), and the middleware that counts every request.

use std::net::IpAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::extract::ClientIp;
use crate::metrics;
use crate::state::AppState;
use crate::store::Reader;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.store.is_running() && state.store.read().is_ok();
    if ready && state.store.disk_full() {
        let body = crate::error::envelope(
            "disk_full",
            "disk full: writes are refused until space is freed; reads go on",
        );
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if ready {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))).into_response()
    } else {
        AppError::Unavailable("store is not available".into()).into_response()
    }
}

/// Middleware recording every request's status and latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe(response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// The metrics, from counters kept as things happen: a scrape reads no
/// storage.
pub async fn metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = may_scrape(&state, ip, &headers) {
        return e.into_response();
    }
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let store = state.store.stats();
    metrics::render_store(&store, &mut out);
    metrics::render_disk(state.store.disk_full(), store.disk_full_writes, &mut out);
    metrics::render_threads(&store.threads, &mut out);
    metrics::render_sockets(state.sockets.open(), &mut out);
    {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &state.sockets;
        metrics::render_overload(
            crate::memory::rss_bytes().unwrap_or(0),
            s.memory_high(),
            s.refused_memory.load(Relaxed),
            s.refused_full.load(Relaxed),
            &mut out,
        );
    }
    if state.config.email.enabled() {
        use std::sync::atomic::Ordering::Relaxed;
        let pending = state
            .store
            .read()
            .and_then(|r| r.pending_mail_count())
            .unwrap_or(0);
        let m = &state.mailer;
        metrics::render_email(
            pending,
            m.sent.load(Relaxed),
            m.failed.load(Relaxed),
            &mut out,
        );
    }
    if let Ok(pending) = state.store.read().and_then(|r| r.pushes_pending()) {
        state.push.render(pending, &mut out);
    }
    state.tls.render(&mut out);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
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
