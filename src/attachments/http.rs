//! Attachment routes: `POST /attachments` (agents), `POST
//! /widget/attachments` (visitors, with the widget's CORS), and the guarded
//! `GET /attachments/:id` and `GET /attachments/:id/thumbnail`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, IF_RANGE, RANGE,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::attachments::model::{Attachment, AttachmentView};
use crate::attachments::policy;
use crate::attachments::service::{self, Scope, Viewer};
use crate::auth::extract::{agent_from_token, bearer, check_origin, origin, visitor_from_token};
use crate::auth::{AgentAuth, VisitorAuth};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery, ClientIp};
use crate::ids::{AttachmentId, SpaceId, ThreadId};
use crate::integrations::auth::MemberAuth;
use crate::spaces::service::MAX_ATTACHMENT_BYTES;
use crate::state::AppState;
use crate::store::Reader;
use crate::widget::cors;

/// Room for the multipart framing around the largest file a space takes.
const MULTIPART_SLACK: usize = 64 * 1024;
/// After refusing an upload, how long the rest of the body is read (and
/// dropped) so the client gets to read the answer instead of a reset
/// connection — as long as it keeps sending, and at most [`DRAIN_MAX`].
const DRAIN_IDLE: Duration = Duration::from_secs(2);
const DRAIN_MAX: Duration = Duration::from_secs(30);
/// Bytes read from disk per body chunk.
const READ_CHUNK: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    // Uploads stream, so their limit is the largest file any space takes,
    // not the 1 MiB JSON limit.
    let upload_limit = DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES as usize + MULTIPART_SLACK);
    let agents = Router::new()
        .route("/attachments", post(agent_upload))
        .layer(upload_limit);
    let visitors = Router::new()
        .route("/widget/attachments", post(visitor_upload))
        .route("/dialogs/{id}/attachments", post(member_upload))
        .layer(upload_limit)
        .layer(cors::layer());
    // The widget downloads cross-origin with its session token, so the
    // download routes answer preflights too; a bearer token, not a cookie,
    // is what they trust.
    let downloads = Router::new()
        .route("/attachments/{id}", get(download))
        .route("/attachments/{id}/thumbnail", get(thumbnail))
        .layer(cors::layer());
    agents.merge(visitors).merge(downloads)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UploadQuery {
    thread_id: Option<ThreadId>,
    chat_space_id: Option<SpaceId>,
}

/// `multipart/form-data` with one file in the field `file`; 201 with the
/// stored attachment.
#[utoipa::path(
    post,
    path = "/attachments",
    tag = "attachments",
    params(UploadQuery),
    request_body(content_type = "multipart/form-data", content = crate::openapi::UploadForm),
    responses((status = 201, description = "Created", body = AttachmentView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn agent_upload(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiQuery(q): ApiQuery<UploadQuery>,
    multipart: Upload,
) -> AppResult<(StatusCode, Json<AttachmentView>)> {
    let scope = service::agent_scope(&state, &caller, q.thread_id, q.chat_space_id)?;
    receive(&state, scope, multipart).await
}

#[utoipa::path(
    post,
    path = "/widget/attachments",
    tag = "attachments",
    request_body(content_type = "multipart/form-data", content = crate::openapi::UploadForm),
    responses((status = 201, description = "Created", body = AttachmentView), crate::openapi::Errors),
    security(("visitor" = []))
)]
async fn visitor_upload(
    State(state): State<AppState>,
    auth: VisitorAuth,
    multipart: Upload,
) -> AppResult<(StatusCode, Json<AttachmentView>)> {
    let scope = service::visitor_scope(&auth.space, auth.visitor.id)?;
    receive(&state, scope, multipart).await
}

/// A member's upload, for a dialog it takes part in (403 for a potential
/// member, 404 otherwise).
#[utoipa::path(
    post,
    path = "/dialogs/{id}/attachments",
    tag = "attachments",
    params(("id" = uuid::Uuid, Path)),
    request_body(content_type = "multipart/form-data", content = crate::openapi::UploadForm),
    responses((status = 201, description = "Created", body = AttachmentView), crate::openapi::Errors),
    security(("member" = []))
)]
async fn member_upload(
    State(state): State<AppState>,
    MemberAuth(who): MemberAuth,
    ApiPath(id): ApiPath<ThreadId>,
    multipart: Upload,
) -> AppResult<(StatusCode, Json<AttachmentView>)> {
    let scope = {
        let read = state.store.read()?;
        let thread = crate::integrations::dialogs::participant_thread(&read, &who, id)?;
        let space = read
            .space(thread.chat_space_id)?
            .ok_or(AppError::NotFound("dialog"))?;
        service::member_scope(&space, who.member.id, thread.id)?
    };
    receive(&state, scope, multipart).await
}

/// An upload's body and the address it comes from.
struct Upload {
    multipart: Result<Multipart, MultipartRejection>,
    ip: std::net::IpAddr,
}

impl FromRequest<AppState> for Upload {
    type Rejection = std::convert::Infallible;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(&mut parts, state).await;
        let req = axum::extract::Request::from_parts(parts, body);
        let multipart = Multipart::from_request(req, state).await;
        Ok(Upload { multipart, ip })
    }
}

async fn receive(
    state: &AppState,
    scope: Scope,
    upload: Upload,
) -> AppResult<(StatusCode, Json<AttachmentView>)> {
    let mut multipart = upload.multipart.map_err(|_| {
        AppError::UnsupportedMediaType("expected a multipart/form-data upload".into())
    })?;
    let result = match multipart.next_field().await {
        Ok(Some(field)) => receive_field(state, scope, upload.ip, field).await,
        Ok(None) => Err(AppError::validation("the upload has no file field")),
        Err(e) => Err(multipart_error(e)),
    };
    match result {
        Ok(a) => Ok((StatusCode::CREATED, Json(a.view()))),
        Err(e) => {
            drain(multipart).await;
            Err(e)
        }
    }
}

async fn receive_field(
    state: &AppState,
    scope: Scope,
    ip: std::net::IpAddr,
    field: Field<'_>,
) -> AppResult<Attachment> {
    if field.name() != Some("file") {
        return Err(AppError::validation(
            "send the file in a form field named \"file\"",
        ));
    }
    let raw_name = field
        .file_name()
        .ok_or_else(|| AppError::validation("the file field needs a file name"))?
        .to_owned();
    let (name, kind) = service::admit(state, &scope, &raw_name)?;
    service::upload(state, scope, ip, name, kind, chunks(field)).await
}

fn chunks(field: Field<'_>) -> impl Stream<Item = AppResult<Bytes>> + '_ {
    futures_util::stream::unfold(Some(field), |field| async move {
        let mut field = field?;
        match field.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(field))),
            Ok(None) => None,
            Err(e) => Some((Err(multipart_error(e)), None)),
        }
    })
}

fn multipart_error(e: MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge(format!(
            "uploads may be at most {MAX_ATTACHMENT_BYTES} bytes"
        ))
    } else {
        AppError::validation("the upload is malformed or was cut off")
    }
}

/// Reads and drops what the client still sends of a refused upload.
async fn drain(mut multipart: Multipart) {
    let _ = tokio::time::timeout(DRAIN_MAX, async move {
        use tokio::time::timeout;
        while let Ok(Ok(Some(mut field))) = timeout(DRAIN_IDLE, multipart.next_field()).await {
            while let Ok(Ok(Some(_))) = timeout(DRAIN_IDLE, field.chunk()).await {}
        }
    })
    .await;
}

/// Who downloads: an agent by access token, or a visitor by session token
/// (from an allowed origin). No token at all is a 404 like any other
/// refusal; a token that is no longer valid is a 401, so clients refresh.
struct Downloader(Viewer);

impl FromRequestParts<AppState> for Downloader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts).ok_or(AppError::NotFound("attachment"))?;
        if let Ok(caller) = agent_from_token(state, token) {
            return Ok(Downloader(Viewer::Agent(caller.org(), caller.access())));
        }
        if let Ok(who) = crate::integrations::identity::verify_member_token(state, token) {
            let member = state
                .store
                .read()?
                .member_by_external(who.org, &who.external_id)?
                .ok_or(AppError::NotFound("attachment"))?;
            return Ok(Downloader(Viewer::Member(member.id)));
        }
        let auth = visitor_from_token(state, token).map_err(|e| match e {
            AppError::Unauthorized(_) => AppError::Unauthorized("invalid or expired token".into()),
            other => other,
        })?;
        check_origin(&auth.space, origin(parts)).map_err(|_| AppError::NotFound("attachment"))?;
        Ok(Downloader(Viewer::Visitor(auth.visitor.id)))
    }
}

#[utoipa::path(
    get,
    path = "/attachments/{id}",
    tag = "attachments",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The file, as the type it was stored with", content((crate::openapi::Binary = "*/*"))),
        (status = 206, description = "The part a `Range` header asked for", content((crate::openapi::Binary = "*/*"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 416, description = "The `Range` cannot be satisfied", body = crate::openapi::ErrorBody),
        crate::openapi::Errors
    ),
    security(("agent" = []), ("visitor" = []), ("member" = []))
)]
async fn download(
    State(state): State<AppState>,
    Downloader(viewer): Downloader,
    ApiPath(id): ApiPath<AttachmentId>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let a = service::visible(&state, &viewer, id)?;
    let file = StoredFile {
        path: service::path_of(&state, &a.storage_key).await?,
        mime: a.mime_type.clone(),
        disposition: policy::content_disposition(
            &a.original_name,
            policy::is_raster_mime(&a.mime_type),
        ),
        etag: format!("\"{}\"", a.sha256),
    };
    file.serve(&headers).await
}

#[utoipa::path(
    get,
    path = "/attachments/{id}/thumbnail",
    tag = "attachments",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The thumbnail: a PNG or a JPEG", content((crate::openapi::Binary = "image/png"), (crate::openapi::Binary = "image/jpeg"))),
        (status = 206, description = "The part a `Range` header asked for", content((crate::openapi::Binary = "image/png"), (crate::openapi::Binary = "image/jpeg"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 416, description = "The `Range` cannot be satisfied", body = crate::openapi::ErrorBody),
        crate::openapi::Errors
    ),
    security(("agent" = []), ("visitor" = []), ("member" = []))
)]
async fn thumbnail(
    State(state): State<AppState>,
    Downloader(viewer): Downloader,
    ApiPath(id): ApiPath<AttachmentId>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let a = service::visible(&state, &viewer, id)?;
    let key = a
        .thumbnail_key
        .as_deref()
        .ok_or(AppError::NotFound("thumbnail"))?;
    let path = service::path_of(&state, key).await?;
    let mime = thumbnail_mime(&path).await?;
    let stem = a
        .original_name
        .rsplit_once('.')
        .map_or(a.original_name.as_str(), |(s, _)| s);
    let ext = if mime == "image/png" { "png" } else { "jpg" };
    let file = StoredFile {
        path,
        mime: mime.to_owned(),
        disposition: policy::content_disposition(&format!("{stem}-thumbnail.{ext}"), true),
        etag: format!("\"{}-thumb\"", a.sha256),
    };
    file.serve(&headers).await
}

/// Thumbnails are PNG or JPEG, told apart by their first bytes.
async fn thumbnail_mime(path: &std::path::Path) -> AppResult<&'static str> {
    let mut head = [0u8; 4];
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|_| AppError::NotFound("thumbnail"))?;
    f.read_exact(&mut head)
        .await
        .map_err(|_| AppError::NotFound("thumbnail"))?;
    Ok(if head.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    })
}

struct StoredFile {
    path: std::path::PathBuf,
    mime: String,
    disposition: String,
    etag: String,
}

impl StoredFile {
    /// The file with its safety headers, honouring `If-None-Match` and a
    /// single `Range` (with `If-Range`).
    async fn serve(self, request: &HeaderMap) -> AppResult<Response> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            // Removed between the lookup and now (retention, a delete).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AppError::NotFound("attachment"));
            }
            Err(e) => return Err(AppError::Internal(format!("attachment file: {e}"))),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| AppError::Internal(format!("attachment file: {e}")))?
            .len();
        let mut response = Response::new(Body::empty());
        self.headers(response.headers_mut());
        if etag_matches(request.get(IF_NONE_MATCH), &self.etag) {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(response);
        }
        let range_applies = request
            .get(IF_RANGE)
            .is_none_or(|v| v.as_bytes() == self.etag.as_bytes());
        let range = match request.get(RANGE) {
            Some(r) if range_applies => parse_range(r.to_str().unwrap_or_default(), size),
            _ => ByteRange::Full,
        };
        let (start, len) = match range {
            ByteRange::Full => (0, size),
            ByteRange::Part { start, end } => {
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                response.headers_mut().insert(
                    CONTENT_RANGE,
                    header(&format!("bytes {start}-{end}/{size}")),
                );
                (start, end - start + 1)
            }
            ByteRange::Unsatisfiable => {
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                response
                    .headers_mut()
                    .insert(CONTENT_RANGE, header(&format!("bytes */{size}")));
                return Ok(response);
            }
        };
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| AppError::Internal(format!("attachment file: {e}")))?;
        }
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        *response.body_mut() = file_body(file, len);
        Ok(response)
    }

    fn headers(&self, h: &mut HeaderMap) {
        h.insert(CONTENT_TYPE, header(&self.mime));
        h.insert(CONTENT_DISPOSITION, header(&self.disposition));
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
        h.insert(ETAG, header(&self.etag));
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        // Revalidated every time (cheap with the ETag), so a deleted or
        // expired file stops being shown.
        h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
}

/// Header values here are built from ASCII the server chose.
fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn etag_matches(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(list) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// What part of a file a `Range` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    Full,
    /// Inclusive bounds.
    Part {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// One `bytes=` range: `a-b`, `a-` or `-n`. Anything else (several ranges,
/// other units, nonsense) is ignored and the whole file is sent, as RFC
/// 9110 allows.
pub fn parse_range(value: &str, size: u64) -> ByteRange {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.trim().is_empty(), number(a), number(b)) {
        // Suffix: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        (false, Some(start), end) if b.trim().is_empty() || end.is_some() => {
            if start >= size {
                return ByteRange::Unsatisfiable;
            }
            match end {
                Some(end) if end < start => ByteRange::Full,
                Some(end) => ByteRange::Part {
                    start,
                    end: end.min(size - 1),
                },
                None => ByteRange::Part {
                    start,
                    end: size - 1,
                },
            }
        }
        _ => ByteRange::Full,
    }
}

/// Streams `len` bytes of `file` from its current position.
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    let reader = file.take(len);
    let stream = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; READ_CHUNK];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_are_understood() {
        use ByteRange::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=90-", 100), Part { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-10", 100), Part { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-500", 100), Part { start: 0, end: 99 });
        assert_eq!(
            parse_range("bytes=50-500", 100),
            Part { start: 50, end: 99 }
        );
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full);
        assert_eq!(parse_range("bytes=9-3", 100), Full);
        assert_eq!(parse_range("items=0-9", 100), Full);
        assert_eq!(parse_range("bytes=x-9", 100), Full);
        assert_eq!(parse_range("bytes=-", 100), Full);
    }

    #[test]
    fn etags_match_lists_weak_forms_and_stars() {
        let tag = "\"abc\"";
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(etag_matches(Some(&v("\"abc\"")), tag));
        assert!(etag_matches(Some(&v("\"x\", W/\"abc\"")), tag));
        assert!(etag_matches(Some(&v("*")), tag));
        assert!(!etag_matches(Some(&v("\"abd\"")), tag));
        assert!(!etag_matches(None, tag));
    }
}
