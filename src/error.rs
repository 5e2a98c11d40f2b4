//! The one place where errors become HTTP responses. Every failure a client
//! can see is `{"error": {"code": "...", "message": "..."}}` with a status
//! that fits; the `code` strings are stable so clients can switch on them.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::error as store;

/// An error a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed or a field is invalid.
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    /// 401: no or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 401 with a code clients switch on (e.g. a refused identity token).
    #[error("{message}")]
    UnauthorizedCode { code: &'static str, message: String },
    /// 403 with a code clients switch on (e.g. sending needs a verified identity).
    #[error("{message}")]
    ForbiddenCode { code: &'static str, message: String },
    /// 404: absent, or belongs to someone else — the two are never told apart.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the state of the object does not allow it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 409: another agent holds the thread; names the holder.
    #[error("already claimed by {holder_name}")]
    Claimed {
        holder_id: crate::ids::AgentId,
        holder_name: String,
    },
    /// 413
    #[error("{0}")]
    TooLarge(String),
    /// 415
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422
    #[error("{0}")]
    Unprocessable(String),
    /// 429 with `Retry-After` in whole seconds.
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// 429: the caller holds as many of something as it may (sockets,
    /// unsent uploads) until it lets one go; waiting alone does not help.
    #[error("{message}")]
    TooMany { code: &'static str, message: String },
    /// 507: the disk is too full to take more files or writes.
    #[error("{0}")]
    InsufficientStorage(String),
    /// 503: shutting down or not ready.
    #[error("{0}")]
    Unavailable(String),
    /// 500: logged, never shown in detail.
    #[error("internal error: {0}")]
    Internal(String),
    /// 500: storage itself failed (logged, never shown in detail).
    #[error("storage: {0}")]
    Storage(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn validation(message: impl Into<String>) -> Self {
        AppError::Validation {
            code: "validation_failed",
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Validation { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::ForbiddenCode { .. } => StatusCode::FORBIDDEN,
            AppError::UnauthorizedCode { .. } => StatusCode::UNAUTHORIZED,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } | AppError::Claimed { .. } => StatusCode::CONFLICT,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } | AppError::TooMany { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) | AppError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::TooMany { code, .. }
            | AppError::UnauthorizedCode { code, .. }
            | AppError::ForbiddenCode { code, .. } => code,
            AppError::Claimed { .. } => "already_claimed",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::TooLarge(_) => "too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Unprocessable(_) => "unprocessable",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::InsufficientStorage(_) => "insufficient_storage",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) | AppError::Storage(_) => "internal",
        }
    }

    /// The message clients see; internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) | AppError::Storage(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The JSON body of an error, also used for WebSocket `error` frames.
pub fn envelope(code: &str, message: &str) -> serde_json::Value {
    json!({ "error": { "code": code, "message": message } })
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) | AppError::Storage(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let status = self.status();
        let mut body = envelope(self.code(), &self.public_message());
        if let AppError::Claimed {
            holder_id,
            holder_name,
        } = &self
        {
            body["error"]["holder"] = json!({ "id": holder_id, "displayName": holder_name });
        }
        let mut response = (status, Json(body)).into_response();
        if let AppError::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}

impl From<store::Error> for AppError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Storage(detail) => AppError::Storage(detail),
            store::Error::ShuttingDown => AppError::Unavailable("shutting down".into()),
            store::Error::DiskFull => {
                AppError::InsufficientStorage("the server's disk is full; try again later".into())
            }
            // Logged by the store's writer; the client may retry (sends are
            // idempotent by clientMsgId).
            store::Error::CommitFailed(_) => AppError::Unavailable(
                "the server could not confirm this was saved; try again".into(),
            ),
            // Nothing was stored: the database was too busy with other
            // nodes' writes.
            store::Error::Contended => {
                AppError::Unavailable("the server is busy; try again".into())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl store::WriteError for AppError {
    fn is_storage(&self) -> bool {
        matches!(self, AppError::Storage(_))
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match rejection {
            J::MissingJsonContentType(_) => {
                AppError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            J::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::TooLarge("request body is too large".into())
            }
            other => AppError::Validation {
                code: "invalid_json",
                message: other.body_text(),
            },
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for AppError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        AppError::Validation {
            code: "invalid_query",
            message: rejection.body_text(),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for AppError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        // A malformed id can name nothing that exists.
        AppError::NotFound("resource")
    }
}
