//! `GET /audit-events` (admins): cursor-paginated, newest first, filtered
//! by actor, action and date.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::audit::{self, AuditEvent, Filter};
use crate::auth::AdminAuth;
use crate::error::{AppError, AppResult};
use crate::extract::ApiQuery;
use crate::ids::AuditId;
use crate::state::AppState;
use crate::store::Page;

pub fn routes() -> axum::Router<AppState> {
    Router::new().route("/audit-events", get(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
    actor: Option<uuid::Uuid>,
    action: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

#[utoipa::path(
    get,
    path = "/audit-events",
    tag = "audit",
    params(ListQuery),
    responses((status = 200, description = "OK", body = Page<AuditEvent>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn list(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<Page<AuditEvent>>> {
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<AuditId>()
                .map_err(|_| AppError::validation("cursor is not one this server gave out"))
        })
        .transpose()?;
    if let Some(a) = &q.action {
        crate::validate::bounded("action", a, 100)?;
    }
    let limit = crate::validate::limit(q.limit)?;
    let filter = Filter {
        actor: q.actor,
        action: q.action,
        from: q.from,
        to: q.to,
    };
    let (items, next) = audit::list(&state, caller.org(), &filter, cursor, limit)?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|n| n.to_string()),
    }))
}
