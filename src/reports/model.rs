//! What reports count, and how: each conversation's numbers (`Facts`), and
//! cells that add them up per organization, day, space, team and agent.
//! Times are kept as histograms with exact seconds below a minute and 5 %
//! steps above, so a median or p90 over any range is a merge of a few
//! small maps, never a pass over messages.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, OrgId, SpaceId, TeamId};
use crate::threads::model::Thread;

/// What one conversation adds to the report. A conversation counts on
/// the day it started, under its current space, team and holder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    pub org: OrgId,
    pub space: SpaceId,
    pub team: Option<TeamId>,
    pub agent: Option<AgentId>,
    /// Days since 1970-01-01 (UTC) of the conversation's start.
    pub day: u32,
    /// Visitor and agent messages (not notes, not the appliance's own).
    pub messages: u64,
    #[serde(default, with = "crate::store::stamp::option")]
    pub first_visitor_at: Option<DateTime<Utc>>,
    /// From the visitor's first message to the first agent answer.
    pub first_response: Option<u32>,
    /// From the start to the close, while it is closed.
    pub resolution: Option<u32>,
    pub csat: Option<u8>,
}

pub fn day_of(t: DateTime<Utc>) -> u32 {
    (t.date_naive() - NaiveDate::default()).num_days().max(0) as u32
}

pub fn date_of(day: u32) -> NaiveDate {
    NaiveDate::default() + chrono::Days::new(day as u64)
}

impl Facts {
    pub fn start(org: OrgId, thread: &Thread) -> Facts {
        Facts {
            org,
            space: thread.chat_space_id,
            team: thread.team_id,
            agent: thread.assigned_agent_id,
            day: day_of(thread.created_at),
            messages: 0,
            first_visitor_at: None,
            first_response: None,
            resolution: None,
            csat: None,
        }
    }
}

/// The histogram bucket of a duration in seconds.
pub fn bucket(secs: u32) -> u16 {
    if secs < 60 {
        return secs as u16;
    }
    let steps = ((secs as f64 / 60.0).ln() / 1.05f64.ln()).floor() as u32;
    (60 + steps).min(u16::MAX as u32) as u16
}

/// The seconds a bucket stands for (its lower bound).
pub fn bucket_value(b: u16) -> u32 {
    if b < 60 {
        return b as u32;
    }
    (60.0 * 1.05f64.powi(b as i32 - 60)).round() as u32
}

/// Counters of one organization, day, space, team and agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    pub conversations: i64,
    pub messages: i64,
    pub first_response: BTreeMap<u16, i64>,
    pub resolution: BTreeMap<u16, i64>,
    pub csat_sum: i64,
    pub csat_count: i64,
}

fn add(map: &mut BTreeMap<u16, i64>, key: u16, n: i64) {
    let v = map.entry(key).or_insert(0);
    *v += n;
    if *v == 0 {
        map.remove(&key);
    }
}

impl Cell {
    /// Adds (`n` = 1) or takes back (`n` = -1) one conversation's numbers.
    pub fn apply(&mut self, f: &Facts, n: i64) {
        self.conversations += n;
        self.messages += n * f.messages as i64;
        if let Some(s) = f.first_response {
            add(&mut self.first_response, bucket(s), n);
        }
        if let Some(s) = f.resolution {
            add(&mut self.resolution, bucket(s), n);
        }
        if let Some(score) = f.csat {
            self.csat_sum += n * score as i64;
            self.csat_count += n;
        }
    }

    pub fn merge(&mut self, other: &Cell) {
        self.conversations += other.conversations;
        self.messages += other.messages;
        for (k, v) in &other.first_response {
            add(&mut self.first_response, *k, *v);
        }
        for (k, v) in &other.resolution {
            add(&mut self.resolution, *k, *v);
        }
        self.csat_sum += other.csat_sum;
        self.csat_count += other.csat_count;
    }

    pub fn is_empty(&self) -> bool {
        *self == Cell::default()
    }
}

/// Median and 90th percentile (nearest rank) of a histogram.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Times {
    pub median: Option<u32>,
    pub p90: Option<u32>,
    pub count: i64,
}

pub fn times(h: &BTreeMap<u16, i64>) -> Times {
    let count: i64 = h.values().sum();
    let rank = |q: f64| {
        if count <= 0 {
            return None;
        }
        let want = ((q * count as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (b, n) in h {
            seen += n;
            if seen >= want {
                return Some(bucket_value(*b));
            }
        }
        None
    };
    Times {
        median: rank(0.5),
        p90: rank(0.9),
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_times_are_exact_and_long_ones_within_five_percent() {
        for s in 0..60 {
            assert_eq!(bucket_value(bucket(s)), s);
        }
        for s in [60, 61, 95, 3600, 86_400, 2_000_000] {
            let v = bucket_value(bucket(s)) as f64;
            assert!(
                v <= s as f64 + 1.0 && v >= s as f64 / 1.05 - 1.0,
                "{s} -> {v}"
            );
        }
    }

    #[test]
    fn median_and_p90_are_nearest_ranks() {
        let mut h = BTreeMap::new();
        for s in [5u32, 1, 3, 2, 4, 10, 9, 8, 7, 6] {
            add(&mut h, bucket(s), 1);
        }
        assert_eq!(
            times(&h),
            Times {
                median: Some(5),
                p90: Some(9),
                count: 10
            }
        );
        assert_eq!(times(&BTreeMap::new()).median, None);
    }
}
