//! What operators poll: `/healthz` (alive), `/readyz` (the store takes
//! reads and writes), `/metrics` (Prometheus text), and the middleware that
//! counts every request.

use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::metrics;
use crate::state::AppState;
use crate::store::Reader;
use crate::threads::model::ThreadStatus;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.store.is_running() && state.store.read().is_ok();
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

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    metrics::render_store(&state.store.stats(), &mut out);
    if let Ok(counts) = open_thread_counts(&state) {
        metrics::render_threads(&counts, &mut out);
    }
    if let Ok(pending) = state.store.read().and_then(|r| r.pushes_pending()) {
        state.push.render(pending, &mut out);
    }
    state.tls.render(&mut out);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn open_thread_counts(state: &AppState) -> crate::store::Result<Vec<(ThreadStatus, usize)>> {
    let read = state.store.read()?;
    let open = [
        ThreadStatus::Unassigned,
        ThreadStatus::Active,
        ThreadStatus::Pending,
    ];
    let mut counts: Vec<(ThreadStatus, usize)> = open.iter().map(|s| (*s, 0)).collect();
    for org_space in read.all_spaces()? {
        for (status, n) in counts.iter_mut() {
            *n += read.count_threads(org_space.id, *status)?;
        }
    }
    Ok(counts)
}
