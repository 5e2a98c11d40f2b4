//! `/reports/summary` (admins): JSON, or CSV with `format=csv`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::service::{self, Query};
use crate::auth::AdminAuth;
use crate::error::{AppError, AppResult};
use crate::extract::ApiQuery;
use crate::ids::{AgentId, SpaceId, TeamId};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/reports/summary", get(summary))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SummaryQuery {
    from: Option<String>,
    to: Option<String>,
    chat_space_id: Option<SpaceId>,
    team_id: Option<TeamId>,
    agent_id: Option<AgentId>,
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/reports/summary",
    tag = "reports",
    params(SummaryQuery),
    responses(
        (status = 200, description = "The summary: JSON, or CSV with `format=csv`", content(
            (service::Summary = "application/json"),
            (String = "text/csv")
        )),
        crate::openapi::Errors
    ),
    security(("agent" = []))
)]
async fn summary(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> AppResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(AppError::validation("format must be json or csv")),
    };
    let (from, to) = Query::parse(q.from.as_deref(), q.to.as_deref())?;
    let query = Query {
        from,
        to,
        space: q.chat_space_id,
        team: q.team_id,
        agent: q.agent_id,
    };
    let summary = service::summary(&state, caller.org(), &query)?;
    if csv {
        let name = format!("attachment; filename=\"mychat-report-{from}-{to}.csv\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            service::csv(&summary),
        )
            .into_response());
    }
    Ok(axum::Json(summary).into_response())
}
