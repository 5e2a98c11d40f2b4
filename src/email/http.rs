//! Email routes: transcripts on request (the widget's "Email me this
//! conversation", an agent's "Send transcript"), the admins' view of the
//! outbox, and the one-click unsubscribe every visitor mail links to.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{AdminAuth, AgentAuth, VisitorAuth};
use crate::email::model::{Mail, MailKind};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::{MailId, ThreadId, VisitorId};
use crate::state::AppState;
use crate::store::{Page, Reader};
use crate::threads::rules::visible_thread;

/// Routes under `/api/v1` for agents and admins.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/threads/{id}/transcript", post(agent_transcript))
        .route("/email/outbox", get(outbox))
}

/// Routes outside the API: what the links in mails open.
pub fn public_routes() -> Router<AppState> {
    Router::new().route(
        "/email/unsubscribe",
        get(unsubscribe_page).post(unsubscribe),
    )
}

fn email_on(state: &AppState) -> AppResult<()> {
    if !state.config.email.enabled() {
        return Err(AppError::conflict(
            "email_off",
            "this appliance sends no email (email.smtp_url is not set)",
        ));
    }
    Ok(())
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    mail_id: MailId,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = email::WidgetTranscriptBody)]
#[serde(deny_unknown_fields)]
pub struct WidgetTranscriptBody {
    /// The address to send to; it becomes the visitor's email.
    email: Option<String>,
}

/// `POST /widget/transcript`: the visitor's latest conversation, to the
/// visitor's email (given here, or earlier).
#[utoipa::path(
    post,
    path = "/widget/transcript",
    tag = "widget",
    request_body = WidgetTranscriptBody,
    responses((status = 202, description = "Queued for sending", body = Queued), crate::openapi::Errors),
    security(("visitor" = []))
)]
pub async fn widget_transcript(
    State(state): State<AppState>,
    auth: VisitorAuth,
    ApiJson(body): ApiJson<WidgetTranscriptBody>,
) -> AppResult<(StatusCode, Json<Queued>)> {
    email_on(&state)?;
    let email = body
        .email
        .as_deref()
        .map(crate::validate::email)
        .transpose()?;
    if let Some(e) = &email
        && crate::email::recipient(None, e).is_none()
    {
        return Err(AppError::validation("email is not a valid address"));
    }
    let visitor = auth.visitor.id;
    let org = auth.space.organization_id;
    let mail = state
        .write(move |tx| {
            let mut v = tx.visitor(visitor)?.ok_or(AppError::NotFound("visitor"))?;
            let thread = tx
                .threads_of_visitor(visitor)?
                .into_iter()
                .next()
                .ok_or(AppError::NotFound("thread"))?;
            if let Some(e) = &email {
                v.email = Some(e.clone());
                tx.put(&v)?;
            }
            if v.email.is_none() {
                return Err(AppError::validation("give the email to send it to"));
            }
            queue_transcript(tx, org, visitor, thread.id)
        })
        .await?;
    queued(&state, mail)
}

/// A transcript mail, written in the caller's write.
fn queue_transcript(
    tx: &mut crate::store::WriteTx<'_>,
    org: crate::ids::OrgId,
    visitor: VisitorId,
    thread: ThreadId,
) -> AppResult<MailId> {
    let mail = Mail::new(
        Some(org),
        MailKind::Transcript { visitor, thread },
        chrono::Utc::now(),
    );
    tx.put(&mail)?;
    Ok(mail.id)
}

/// 202 with the mail's id, the worker woken.
fn queued(state: &AppState, mail: MailId) -> AppResult<(StatusCode, Json<Queued>)> {
    state.mailer.due.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Queued { mail_id: mail })))
}

/// `POST /threads/:id/transcript`: the conversation, to its visitor.
#[utoipa::path(
    post,
    path = "/threads/{id}/transcript",
    tag = "email",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 202, description = "Queued for sending", body = Queued), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn agent_transcript(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    ApiPath(id): ApiPath<ThreadId>,
) -> AppResult<(StatusCode, Json<Queued>)> {
    email_on(&state)?;
    let access = caller.access();
    let org = caller.org();
    let mail = state
        .write(move |tx| {
            let thread = visible_thread(tx, org, &access, id)?;
            if thread.is_object_bound() {
                return Err(AppError::conflict(
                    "object_bound",
                    "a conversation bound to an object has no visitor to send it to",
                ));
            }
            let visitor = tx
                .visitor(thread.visitor_id)?
                .ok_or(AppError::NotFound("visitor"))?;
            if visitor.email.is_none() {
                return Err(AppError::conflict(
                    "no_email",
                    "the visitor has not given an email",
                ));
            }
            queue_transcript(tx, org, visitor.id, thread.id)
        })
        .await?;
    queued(&state, mail)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct OutboxQuery {
    cursor: Option<MailId>,
    limit: Option<usize>,
}

/// `GET /email/outbox` (admins): the organization's mails, newest first,
/// with their state and last error.
#[utoipa::path(
    get,
    path = "/email/outbox",
    tag = "email",
    params(OutboxQuery),
    responses((status = 200, description = "OK", body = Page<Mail>), crate::openapi::Errors),
    security(("agent" = []))
)]
async fn outbox(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> AppResult<Json<Page<Mail>>> {
    let limit = crate::validate::limit(q.limit)?;
    let read = state.store.read()?;
    let items = read.mails_of_org(caller.org(), q.cursor, limit)?;
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

#[derive(Deserialize)]
struct UnsubscribeQuery {
    v: VisitorId,
    t: String,
}

fn html(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!doctype html><html><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width\"><title>My-Chat</title></head>\
<body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto\">{body}</body></html>"
        ),
    )
        .into_response()
}

/// The link in a mail: a page with one button (mail scanners that follow
/// links unsubscribe nobody).
async fn unsubscribe_page(
    State(state): State<AppState>,
    query: Result<Query<UnsubscribeQuery>, QueryRejection>,
) -> Response {
    let Some(Query(q)) = query
        .ok()
        .filter(|q| state.mailer.unsubscribe_ok(q.v, &q.t))
    else {
        return html(StatusCode::NOT_FOUND, "<p>This link is not valid.</p>");
    };
    let action = format!(
        "/email/unsubscribe?v={}&amp;t={}",
        q.v,
        crate::email::render::escape(&q.t)
    );
    html(
        StatusCode::OK,
        &format!(
            "<p>Stop emails about this chat?</p><form method=post action=\"{action}\">\
<button type=submit>Unsubscribe</button></form>"
        ),
    )
}

/// One-click unsubscribe (RFC 8058) and the page's button.
async fn unsubscribe(
    State(state): State<AppState>,
    query: Result<Query<UnsubscribeQuery>, QueryRejection>,
) -> Response {
    let Some(Query(q)) = query
        .ok()
        .filter(|q| state.mailer.unsubscribe_ok(q.v, &q.t))
    else {
        return html(StatusCode::NOT_FOUND, "<p>This link is not valid.</p>");
    };
    let visitor = q.v;
    let done = state
        .write(move |tx| {
            let Some(mut v) = tx.visitor(visitor)? else {
                return Ok(false);
            };
            if !v.email_opt_out {
                v.email_opt_out = true;
                tx.put(&v)?;
            }
            Ok(true)
        })
        .await;
    match done {
        Ok(true) => html(
            StatusCode::OK,
            "<p>Done: you will get no more emails about this chat.</p>",
        ),
        Ok(false) => html(StatusCode::NOT_FOUND, "<p>This link is not valid.</p>"),
        Err(e) => e.into_response(),
    }
}
