//! Pages and files embedded in the binary (rust-embed): the demo page, the
//! widget and the agent app. Nothing is read from disk at runtime.

pub mod app;
pub mod assets;
pub mod widget;
#[cfg(test)]
mod words;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::Embed;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Reader, tables};

#[derive(Embed)]
#[folder = "assets/"]
pub struct Assets;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/demo") }))
        .route("/demo", get(demo))
        .merge(widget::routes())
        .merge(app::routes())
}

/// The demo page: a plain site with the demo space's widget on it.
async fn demo(State(state): State<AppState>) -> Result<Response, AppError> {
    let read = state.store.read()?;
    let demo_org = read
        .get_raw(tables::META, b"demo_org")?
        .and_then(|k| crate::store::id_at(&k, 0));
    let space = match demo_org {
        Some(org) => read
            .spaces_of_org(crate::ids::OrgId::from_u128(org))?
            .into_iter()
            .next(),
        None => None,
    };
    let Some(space) = space else {
        return Err(AppError::NotFound("demo"));
    };
    let page = Assets::get("demo/index.html").ok_or(AppError::NotFound("demo"))?;
    let html = String::from_utf8_lossy(&page.data)
        .replace("{{WIDGET_KEY}}", &space.widget_key)
        .replace("{{BASE_URL}}", state.base_url());
    Ok((
        [
            (CACHE_CONTROL, "no-store"),
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, "default-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data: blob:"),
        ],
        Html(html),
    )
        .into_response())
}
