//! Agents' pictures: an agent (or an admin of its organization) sends an
//! image; it is sniffed by its bytes (PNG, JPEG, WebP or GIF), decoded
//! within limits, cut to a square and stored as a small PNG under the data
//! dir's `avatars/` — re-encoding drops whatever else the file carried.
//! The agent's record keeps the picture's version (a hash of the PNG),
//! and the widget shows it from a public, versioned URL.

use std::io::Cursor;
use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use crate::accounts::model::AgentView;
use crate::auth::AgentAuth;
use crate::error::{AppError, AppResult};
use crate::extract::ApiPath;
use crate::ids::AgentId;
use crate::state::AppState;
use crate::store::Reader;

/// The largest picture taken, before it is made small.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
/// The side of the stored square, in pixels (sharp at 3× a 30 px circle).
pub const SIDE: u32 = 96;
/// The largest picture decoded, per side.
const MAX_DECODED_SIDE: u32 = 6000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/agents/{id}/avatar",
            put(set)
                .delete(remove)
                .layer(DefaultBodyLimit::max(MAX_BYTES)),
        )
        .route("/widget/avatars/{id}", get(show))
}

fn dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("avatars")
}

/// Where a database shared by several nodes keeps an agent's picture.
fn blob_key(agent: AgentId) -> String {
    format!("avatar:{agent}")
}

fn file(state: &AppState, agent: AgentId) -> PathBuf {
    dir(state).join(format!("{agent}.png"))
}

/// The agent itself, or an admin of its organization.
fn may_change(
    caller: &crate::auth::extract::Caller,
    agent: &crate::accounts::model::Agent,
) -> bool {
    agent.organization_id == caller.org()
        && !caller.is_integration()
        && (agent.id == caller.id() || caller.is_admin())
}

/// The picture as stored: a `SIDE`-pixel square PNG.
pub fn square_png(bytes: &[u8]) -> AppResult<Vec<u8>> {
    if bytes.len() > MAX_BYTES {
        return Err(AppError::TooLarge(format!(
            "a picture may have at most {MAX_BYTES} bytes"
        )));
    }
    use image::ImageFormat as F;
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| matches!(f, F::Png | F::Jpeg | F::WebP | F::Gif))
        .ok_or_else(|| {
            AppError::UnsupportedMediaType(
                "a picture must be a PNG, JPEG, WebP or GIF image".into(),
            )
        })?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let picture = reader
        .decode()
        .map_err(|_| AppError::Unprocessable("the picture cannot be read".into()))?;
    let square = picture.resize_to_fill(SIDE, SIDE, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    square
        .to_rgba8()
        .write_to(&mut Cursor::new(&mut out), F::Png)
        .map_err(|e| AppError::Internal(format!("avatar encoding: {e}")))?;
    Ok(out)
}

/// 200 with the agent, its `avatar` the new picture's version.
#[utoipa::path(
    put,
    path = "/agents/{id}/avatar",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    request_body(content_type = "image/png", description = "A PNG, JPEG, WebP or GIF picture of at most 2 MiB", content = crate::openapi::Binary),
    responses((status = 200, description = "The agent, its `avatar` the new picture's version", body = AgentView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn set(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<AgentId>,
    body: Bytes,
) -> AppResult<Json<AgentView>> {
    let agent = state
        .store
        .read()?
        .agent(id)?
        .filter(|a| may_change(&caller, a))
        .ok_or(AppError::NotFound("agent"))?;
    let png = tokio::task::spawn_blocking(move || square_png(&body))
        .await
        .map_err(|e| AppError::Internal(format!("avatar task: {e}")))??;
    let version = hex::encode(Sha256::digest(&png))[..12].to_owned();
    // The file first, durably; the record then names it.
    let (folder, path) = (dir(&state), file(&state, agent.id));
    let (store, key) = (state.store.clone(), blob_key(agent.id));
    tokio::task::spawn_blocking(move || {
        // Nodes sharing a database serve the picture from it.
        store
            .put_blob(&key, &png)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        crate::fsutil::create_private_dir(&folder)?;
        crate::fsutil::write_private(&path, &png)
    })
    .await
    .map_err(|e| AppError::Internal(format!("avatar task: {e}")))?
    .map_err(|e| AppError::Internal(format!("avatar not stored: {e}")))?;
    save(&state, id, Some(version)).await
}

/// 200 with the agent, without a picture.
#[utoipa::path(
    delete,
    path = "/agents/{id}/avatar",
    tag = "organization",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "The agent, without a picture", body = AgentView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn remove(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<AgentId>,
) -> AppResult<Json<AgentView>> {
    state
        .store
        .read()?
        .agent(id)?
        .filter(|a| may_change(&caller, a))
        .ok_or(AppError::NotFound("agent"))?;
    let view = save(&state, id, None).await?;
    let _ = tokio::fs::remove_file(file(&state, id)).await;
    let (store, key) = (state.store.clone(), blob_key(id));
    let _ = tokio::task::spawn_blocking(move || store.delete_blobs(&[key])).await;
    Ok(view)
}

async fn save(
    state: &AppState,
    id: AgentId,
    version: Option<String>,
) -> AppResult<Json<AgentView>> {
    let agent = state
        .write(move |tx| {
            let mut agent = tx.agent(id)?.ok_or(AppError::NotFound("agent"))?;
            agent.avatar = version.clone();
            tx.put(&agent)?;
            Ok(agent)
        })
        .await?;
    let online = state.hub.is_online(agent.organization_id, agent.id);
    Ok(Json(agent.view(online)))
}

/// An agent's picture, for any site's widget: kept a year under its
/// current `?v=`, revalidated otherwise; 404 for an agent without one.
#[utoipa::path(
    get,
    path = "/widget/avatars/{id}",
    tag = "widget",
    params(("id" = uuid::Uuid, Path), ("v" = Option<String>, Query, description = "The picture's version: with the current one it is kept a year")),
    responses((status = 200, description = "The picture, a 96 px PNG", content_type = "image/png", body = crate::openapi::Binary), crate::openapi::Errors)
)]
async fn show(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<AgentId>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let agent = state.store.read()?.agent(id)?;
    let Some(version) = agent.filter(|a| !a.disabled).and_then(|a| a.avatar) else {
        return Err(AppError::NotFound("avatar"));
    };
    let png = if state.store.is_shared() {
        // Set through any node: the database holds the current one.
        let (store, key) = (state.store.clone(), blob_key(id));
        tokio::task::spawn_blocking(move || store.get_blob(&key))
            .await
            .map_err(|e| AppError::Internal(format!("avatar task: {e}")))??
            .ok_or(AppError::NotFound("avatar"))?
    } else {
        tokio::fs::read(file(&state, id))
            .await
            .map_err(|_| AppError::NotFound("avatar"))?
    };
    let current = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == format!("v={version}")));
    let caching = if current {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (CACHE_CONTROL, HeaderValue::from_static(caching)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("cross-origin"),
            ),
        ],
        png,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30]))
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_picture_becomes_a_small_square_png() {
        let out = square_png(&png(300, 120)).unwrap();
        let back = image::load_from_memory(&out).unwrap();
        assert_eq!((back.width(), back.height()), (SIDE, SIDE));
        assert_eq!(image::guess_format(&out).unwrap(), image::ImageFormat::Png);
    }

    #[test]
    fn only_images_are_taken() {
        for bad in [
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            b"<html><script>alert(1)</script></html>".to_vec(),
            b"%PDF-1.4".to_vec(),
        ] {
            assert!(matches!(
                square_png(&bad),
                Err(AppError::UnsupportedMediaType(_))
            ));
        }
        // PNG's signature, then nothing of an image.
        let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
        fake.extend_from_slice(b"not really");
        assert!(matches!(square_png(&fake), Err(AppError::Unprocessable(_))));
        assert!(matches!(
            square_png(&vec![0u8; MAX_BYTES + 1]),
            Err(AppError::TooLarge(_))
        ));
    }
}
