//! `GET /reports/summary`: the cells of a date range merged, filtered by
//! space, team and agent. Its cost grows with days × the cells of a day
//! (spaces × teams × agents that had conversations), not with messages.

use chrono::{Days, NaiveDate, Utc};
use serde::Serialize;

use super::model::{Cell, Times, date_of, times};
use crate::error::{AppError, AppResult};
use crate::ids::{AgentId, OrgId, SpaceId, TeamId};
use crate::state::AppState;
use crate::store::tables::REPORT_CELLS;
use crate::store::{KeyBuf, Reader, id_at};

/// The longest range one report covers.
pub const MAX_DAYS: u64 = 366;

#[derive(Clone, Debug)]
pub struct Query {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub space: Option<SpaceId>,
    pub team: Option<TeamId>,
    pub agent: Option<AgentId>,
}

impl Query {
    /// Dates are `YYYY-MM-DD` (UTC days, both included); without them the
    /// last 30 days up to today.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> AppResult<(NaiveDate, NaiveDate)> {
        let date = |name: &str, s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| AppError::validation(format!("{name} must be a date (YYYY-MM-DD)")))
        };
        let to = match to {
            Some(s) => date("to", s)?,
            None => Utc::now().date_naive(),
        };
        let from = match from {
            Some(s) => date("from", s)?,
            None => to - Days::new(29),
        };
        if from > to {
            return Err(AppError::validation("from must not be after to"));
        }
        if (to - from).num_days() as u64 >= MAX_DAYS {
            return Err(AppError::validation(format!(
                "a report covers at most {MAX_DAYS} days"
            )));
        }
        if from < NaiveDate::default() {
            return Err(AppError::validation("from must not be before 1970-01-01"));
        }
        Ok((from, to))
    }
}

#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Csat {
    pub average: Option<f64>,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Numbers {
    pub conversations: i64,
    pub messages: i64,
    pub first_response_seconds: Times,
    pub resolution_seconds: Times,
    pub csat: Csat,
}

impl From<&Cell> for Numbers {
    fn from(c: &Cell) -> Self {
        Numbers {
            conversations: c.conversations,
            messages: c.messages,
            first_response_seconds: times(&c.first_response),
            resolution_seconds: times(&c.resolution),
            csat: Csat {
                average: (c.csat_count > 0)
                    .then(|| (c.csat_sum as f64 / c.csat_count as f64 * 100.0).round() / 100.0),
                count: c.csat_count,
            },
        }
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Day {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub numbers: Numbers,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(flatten)]
    pub numbers: Numbers,
    pub by_day: Vec<Day>,
}

pub fn summary(state: &AppState, org: OrgId, q: &Query) -> AppResult<Summary> {
    let read = state.store.read()?;
    // Filters name objects of the organization; anything else is a 404.
    if let Some(id) = q.space
        && read.space(id)?.is_none_or(|s| s.organization_id != org)
    {
        return Err(AppError::NotFound("chat space"));
    }
    if let Some(id) = q.team
        && read.team(id)?.is_none_or(|t| t.organization_id != org)
    {
        return Err(AppError::NotFound("team"));
    }
    if let Some(id) = q.agent
        && read.agent(id)?.is_none_or(|a| a.organization_id != org)
    {
        return Err(AppError::NotFound("agent"));
    }
    let first = super::model::day_of(q.from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    let last = super::model::day_of(q.to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    let mut total = Cell::default();
    let mut by_day = Vec::new();
    for day in first..=last {
        let prefix = KeyBuf::new()
            .id(org.as_u128())
            .bytes(&day.to_be_bytes())
            .done();
        let rows = read.scan(
            REPORT_CELLS,
            &crate::store::Scan {
                prefix: prefix.clone(),
                limit: usize::MAX,
                ..Default::default()
            },
        )?;
        let mut cell = Cell::default();
        for (key, value) in rows {
            let at = prefix.len();
            let (space, team, agent) =
                (id_at(&key, at), id_at(&key, at + 16), id_at(&key, at + 32));
            let wanted = q.space.is_none_or(|s| space == Some(s.as_u128()))
                && q.team.is_none_or(|t| team == Some(t.as_u128()))
                && q.agent.is_none_or(|a| agent == Some(a.as_u128()));
            if !wanted {
                continue;
            }
            let c: Cell = crate::store::decode(&value)
                .map_err(|e| AppError::Internal(format!("report cell: {e}")))?;
            cell.merge(&c);
        }
        total.merge(&cell);
        by_day.push(Day {
            date: date_of(day),
            numbers: Numbers::from(&cell),
        });
    }
    Ok(Summary {
        from: q.from,
        to: q.to,
        numbers: Numbers::from(&total),
        by_day,
    })
}

/// The report's days as CSV (one line a day, a header first).
pub fn csv(s: &Summary) -> String {
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::from(
        "date,conversations,messages,first_response_median_s,first_response_p90_s,resolution_median_s,resolution_p90_s,csat_average,csat_count\r\n",
    );
    for d in &s.by_day {
        let n = &d.numbers;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\r\n",
            d.date,
            n.conversations,
            n.messages,
            opt(n.first_response_seconds.median),
            opt(n.first_response_seconds.p90),
            opt(n.resolution_seconds.median),
            opt(n.resolution_seconds.p90),
            n.csat.average.map(|a| a.to_string()).unwrap_or_default(),
            n.csat.count,
        ));
    }
    out
}
