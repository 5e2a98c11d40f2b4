//! Thread routes: lists, one thread, the lifecycle, read markers, unread
//! counts, and starting a conversation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::auth::{AdminAuth, AgentAuth};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::{AgentId, AttachmentId, LabelId, MessageId, SpaceId, TeamId, ThreadId, VisitorId};
use crate::messages::send::{self, NewMessage};
use crate::state::AppState;
use crate::store::{Page, ThreadCursor};
use crate::threads::model::{Priority, ThreadStatus};
use crate::threads::service::{
    self, ListFilter, ReadBy, ThreadPatch, ThreadView, UnreadCount, View,
};
use crate::validate;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/chat-spaces/{id}/threads", get(space_threads))
        .route("/threads", get(threads).post(start))
        .route("/threads/{id}", get(one).patch(update).delete(remove))
        .route("/threads/{id}/claim", patch(claim).post(claim))
        .route("/threads/{id}/release", patch(release).post(release))
        .route("/threads/{id}/close", patch(close).post(close))
        .route("/threads/{id}/reopen", patch(reopen).post(reopen))
        .route("/threads/{id}/transfer", post(transfer))
        .route("/threads/{id}/read", post(read))
        .route("/unread-count", get(unread))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    view: Option<String>,
    /// Comma-separated statuses.
    status: Option<String>,
    assigned: Option<String>,
    q: Option<String>,
    chat_space_id: Option<SpaceId>,
    label: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// A bound of the date filter: an RFC 3339 instant, or a day
/// (`2026-11-23`, UTC) taken from its first moment (`from`) or to its
/// last (`to`).
fn parse_bound(
    field: &str,
    value: Option<&str>,
    end_of_day: bool,
) -> AppResult<Option<DateTime<Utc>>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        AppError::validation(format!(
            "{field} must be a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })?;
    let time = if end_of_day {
        day.and_hms_nano_opt(23, 59, 59, 999_999_999)
    } else {
        day.and_hms_opt(0, 0, 0)
    };
    Ok(time.map(|t| t.and_utc()))
}

fn filter(caller_id: AgentId, q: ListQuery, space: Option<SpaceId>) -> AppResult<ListFilter> {
    let statuses = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(list) => Some(
            list.split(',')
                .map(|s| {
                    ThreadStatus::parse(s.trim())
                        .ok_or_else(|| AppError::validation(format!("unknown status {s:?}")))
                })
                .collect::<AppResult<Vec<_>>>()?,
        ),
        None => None,
    };
    let assigned = match q.assigned.as_deref() {
        None | Some("any") => None,
        Some("me") => Some(Some(caller_id)),
        Some("none") => Some(None),
        Some(_) => return Err(AppError::validation("assigned must be me, none or any")),
    };
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(
            ThreadCursor::parse(c).ok_or_else(|| AppError::validation("cursor is not valid"))?,
        ),
        None => None,
    };
    let label = match q.label.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<LabelId>()
                .map_err(|_| AppError::validation(format!("unknown label {l:?}")))?,
        ),
        None => None,
    };
    let from = parse_bound("from", q.from.as_deref(), false)?;
    let to = parse_bound("to", q.to.as_deref(), true)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(AppError::validation("from must not be after to"));
    }
    let query = q.q.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(s) = &query {
        validate::bounded("q", s, 200)?;
    }
    Ok(ListFilter {
        statuses,
        assigned,
        q: query,
        space: space.or(q.chat_space_id),
        label,
        from,
        to,
        cursor,
        limit: validate::limit(q.limit)?,
    })
}

#[utoipa::path(
    get,
    path = "/chat-spaces/{id}/threads",
    tag = "threads",
    params(("id" = uuid::Uuid, Path), ListQuery),
    responses((status = 200, description = "OK", body = Page<ThreadView>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn space_threads(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(space): ApiPath<SpaceId>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<Page<ThreadView>>> {
    if q.view.is_some() {
        return Err(AppError::validation("view is for /threads"));
    }
    let f = filter(caller.id(), q, Some(space))?;
    Ok(Json(service::list(&state, &caller, None, &f)?))
}

#[utoipa::path(
    get,
    path = "/threads",
    tag = "threads",
    params(ListQuery),
    responses((status = 200, description = "OK", body = Page<ThreadView>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn threads(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<Page<ThreadView>>> {
    let view = View::parse(q.view.as_deref().unwrap_or("all"))?;
    let f = filter(caller.id(), q, None)?;
    Ok(Json(service::list(&state, &caller, Some(view), &f)?))
}

#[utoipa::path(
    get,
    path = "/threads/{id}",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn one(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<ThreadView>> {
    Ok(Json(service::get(&state, &caller, id)?))
}

#[utoipa::path(
    method(patch, post),
    path = "/threads/{id}/claim",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn claim(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<ThreadView>> {
    Ok(Json(service::claim(&state, &caller, id).await?))
}

#[utoipa::path(
    method(patch, post),
    path = "/threads/{id}/release",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn release(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<ThreadView>> {
    Ok(Json(service::release(&state, &caller, id).await?))
}

#[utoipa::path(
    method(patch, post),
    path = "/threads/{id}/close",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn close(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<ThreadView>> {
    Ok(Json(service::close(&state, &caller, id).await?))
}

#[utoipa::path(
    method(patch, post),
    path = "/threads/{id}/reopen",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn reopen(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<Json<ThreadView>> {
    Ok(Json(service::reopen(&state, &caller, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = threads::TransferBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TransferBody {
    agent_id: AgentId,
}

#[utoipa::path(
    post,
    path = "/threads/{id}/transfer",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    request_body = TransferBody,
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn transfer(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<TransferBody>,
) -> AppResult<Json<ThreadView>> {
    Ok(Json(
        service::transfer(&state, &caller, id, body.agent_id).await?,
    ))
}

/// `null` and absent differ: `{"subject": null}` clears the subject.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = threads::PatchBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchBody {
    status: Option<ThreadStatus>,
    #[serde(default, deserialize_with = "double_option")]
    subject: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    team_id: Option<Option<TeamId>>,
    /// The whole new list of label ids.
    labels: Option<Vec<LabelId>>,
    priority: Option<Priority>,
}

#[utoipa::path(
    patch,
    path = "/threads/{id}",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    request_body = PatchBody,
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn update(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<PatchBody>,
) -> AppResult<Json<ThreadView>> {
    let subject = match body.subject {
        Some(Some(s)) => Some(validate::optional_name("subject", Some(&s), 200)?),
        Some(None) => Some(None),
        None => None,
    };
    let p = ThreadPatch {
        status: body.status,
        subject,
        team_id: body.team_id,
        labels: body.labels,
        priority: body.priority,
    };
    Ok(Json(service::patch(&state, &caller, id, p).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = threads::ReadBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadBody {
    up_to: MessageId,
}

#[utoipa::path(
    post,
    path = "/threads/{id}/read",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    request_body = ReadBody,
    responses((status = 200, description = "OK", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn read(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
    ApiJson(body): ApiJson<ReadBody>,
) -> AppResult<Json<ThreadView>> {
    // Scope first: the marker write itself does not know the organization.
    service::get(&state, &caller, id)?;
    service::mark_read(&state, id, ReadBy::Agent(caller.id()), body.up_to).await?;
    Ok(Json(service::get(&state, &caller, id)?))
}

#[utoipa::path(
    get,
    path = "/unread-count",
    tag = "threads",
    responses((status = 200, description = "OK", body = UnreadCount), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn unread(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
) -> AppResult<Json<UnreadCount>> {
    Ok(Json(service::unread_count(&state, &caller)?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = threads::StartBody)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartBody {
    visitor_id: VisitorId,
    subject: Option<String>,
    content: Option<String>,
    client_msg_id: Option<String>,
    /// Files uploaded with `POST /attachments?chatSpaceId=` for this start.
    #[serde(default)]
    attachment_ids: Vec<AttachmentId>,
}

#[utoipa::path(
    post,
    path = "/threads",
    tag = "threads",
    request_body = StartBody,
    responses((status = 201, description = "Created", body = ThreadView), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn start(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiJson(body): ApiJson<StartBody>,
) -> AppResult<(StatusCode, Json<ThreadView>)> {
    let subject = validate::optional_name("subject", body.subject.as_deref(), 200)?;
    let first = if body.content.is_some() || !body.attachment_ids.is_empty() {
        Some(NewMessage::parse(
            body.content.as_deref().unwrap_or_default(),
            body.client_msg_id.as_deref(),
            None,
            false,
            body.attachment_ids,
        )?)
    } else {
        None
    };
    let sent = send::agent_starts(&state, &caller, body.visitor_id, subject, first).await?;
    Ok((
        StatusCode::CREATED,
        Json(service::get(&state, &caller, sent.thread.id)?),
    ))
}

/// Deletes the thread, its messages and their files (admins only).
#[utoipa::path(
    delete,
    path = "/threads/{id}",
    tag = "threads",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Done"), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn remove(
    State(state): State<AppState>,
    crate::extract::ClientIp(ip): crate::extract::ClientIp,
    AdminAuth(caller): AdminAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<StatusCode> {
    service::delete(&state, &caller, id, &crate::audit::Who::caller(&caller, ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_bounds_take_days_or_instants() {
        let from = parse_bound("from", Some("2026-11-23"), false)
            .unwrap()
            .unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-23T00:00:00+00:00");
        let to = parse_bound("to", Some("2026-11-23"), true)
            .unwrap()
            .unwrap();
        assert!(to > from && to.date_naive() == from.date_naive());
        let at = parse_bound("from", Some("2026-11-23T10:00:00+01:00"), false)
            .unwrap()
            .unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-23T09:00:00+00:00");
        assert_eq!(parse_bound("from", Some(" "), false).unwrap(), None);
        for bad in [
            "yesterday",
            "2026-13-01",
            "23.11.2026",
            "2026-11-23T25:00:00Z",
        ] {
            assert!(parse_bound("from", Some(bad), false).is_err(), "{bad}");
        }
    }
}
