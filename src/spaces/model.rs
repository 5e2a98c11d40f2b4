//! Chat spaces: one widget on one site, with its settings.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, OrgId, SpaceId};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatSpace {
    pub id: SpaceId,
    pub organization_id: OrgId,
    pub name: String,
    /// Public key the embed snippet carries; unique, rotatable.
    pub widget_key: String,
    /// `example.com`, `*.example.com`, `localhost:8080`.
    pub allowed_domains: Vec<String>,
    pub settings: SpaceSettings,
    #[serde(with = "crate::store::stamp")]
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    Light,
    Dark,
    Auto,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Position {
    BottomRight,
    BottomLeft,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RequireVisitorData {
    None,
    BeforeFirstMessage,
    AfterFirstMessage,
}

/// Whether visitors prove who they are with an identity token signed by one
/// of the organization's signing keys (`POST /widget/identify`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IdentityVerification {
    /// Identity tokens are refused.
    #[default]
    Off,
    /// Visitors may verify; unverified ones chat as before.
    Optional,
    /// Only verified visitors may send; others read the welcome.
    Required,
}

/// How a new thread of the space finds its agent when no default
/// assignee takes it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// Threads wait unassigned until an agent claims one.
    #[default]
    Manual,
    /// Threads go in turn to the agents online in the space (and its team,
    /// when routed) who are below their `maxConcurrent`.
    RoundRobin,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpaceSettings {
    pub title: String,
    pub welcome_message: String,
    /// `#rrggbb`.
    pub accent_color: String,
    pub position: Position,
    pub theme: Theme,
    /// `en`, `pl`, `ru`, or empty for the visitor's browser language.
    pub locale: String,
    /// None: always open.
    pub opening_hours: Option<OpeningHours>,
    pub offline_messages: bool,
    pub require_visitor_data: RequireVisitorData,
    pub attachments: AttachmentPolicy,
    /// Minutes of inactivity after which an open thread expires; 0 = never.
    pub expire_after_minutes: u32,
    pub retention_days: u32,
    /// Ask the visitor to rate the conversation (1–5) once it has ended.
    #[serde(default = "yes")]
    pub csat: bool,
    #[serde(default)]
    pub identity_verification: IdentityVerification,
    /// A line under the title in the widget ("We usually answer within
    /// minutes").
    #[serde(default)]
    pub description: String,
    /// The space's responsible agent: new threads go straight to them
    /// while they are an enabled agent working in the space; otherwise
    /// `assignment` applies.
    #[serde(default)]
    pub default_assignee: Option<AgentId>,
    #[serde(default)]
    pub assignment: Assignment,
    /// The title and welcome message in other languages, by locale (`pl`):
    /// the widget shows the visitor's, else `title` and `welcomeMessage`.
    #[serde(default)]
    pub translations: BTreeMap<String, SpaceWords>,
    /// Who the widget's header shows (at most 3): None for the space's
    /// agents ("auto"), else these agents, in this order.
    #[serde(default)]
    pub header_agents: Option<Vec<AgentId>>,
}

/// The most agents the widget's header shows.
pub const MAX_HEADER_AGENTS: usize = 3;

/// A space's own words in one language; an empty one falls back to the
/// space's default.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpaceWords {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub welcome_message: String,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentPolicy {
    pub allowed: bool,
    pub max_size_bytes: u64,
    pub max_count: u32,
}

/// Weekly opening hours in one IANA time zone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpeningHours {
    pub timezone: String,
    pub ranges: Vec<OpeningRange>,
}

/// One open stretch on one weekday (0 = Monday … 6 = Sunday), `HH:MM`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpeningRange {
    pub day: u8,
    pub from: String,
    pub to: String,
}

impl Default for SpaceSettings {
    fn default() -> Self {
        SpaceSettings {
            title: "Chat with us".into(),
            welcome_message: "Hi! How can we help?".into(),
            accent_color: "#2563eb".into(),
            position: Position::BottomRight,
            theme: Theme::Auto,
            locale: String::new(),
            opening_hours: None,
            offline_messages: true,
            require_visitor_data: RequireVisitorData::None,
            attachments: AttachmentPolicy {
                allowed: true,
                max_size_bytes: 10 * 1024 * 1024,
                max_count: 3,
            },
            expire_after_minutes: 24 * 60,
            retention_days: 90,
            csat: true,
            identity_verification: IdentityVerification::Off,
            description: String::new(),
            default_assignee: None,
            assignment: Assignment::Manual,
            translations: BTreeMap::new(),
            header_agents: None,
        }
    }
}

pub fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    if s == "24:00" {
        return NaiveTime::from_hms_opt(23, 59, 59);
    }
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

impl OpeningHours {
    /// Whether `now` falls inside one of the ranges, in the space's zone.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let Ok(tz) = self.timezone.parse::<chrono_tz::Tz>() else {
            return true;
        };
        let local = now.with_timezone(&tz);
        let day = local.weekday().num_days_from_monday() as u8;
        let time = local.time();
        self.ranges.iter().any(|r| {
            r.day == day
                && matches!((parse_hhmm(&r.from), parse_hhmm(&r.to)),
                    (Some(from), Some(to)) if from <= time && time < to)
        })
    }
}

impl SpaceSettings {
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.opening_hours.as_ref().is_none_or(|h| h.is_open(now))
    }
}

/// Whether `origin` (scheme://host[:port]) is allowed by one of the entries:
/// an exact `host[:port]`, or `*.suffix` for any subdomain of `suffix`.
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    let Some((_, host_port)) = origin.split_once("://") else {
        return false;
    };
    let host_port = host_port.trim_end_matches('/').to_ascii_lowercase();
    let host = host_port
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host_port.as_str(), |(h, _)| h);
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if let Some(suffix) = entry.strip_prefix("*.") {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        } else if entry.contains(':') {
            entry == host_port
        } else {
            entry == host
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_matching_is_exact_or_explicit_suffix() {
        let allowed = vec![
            "example.com".to_string(),
            "*.shop.io".to_string(),
            "localhost:8080".to_string(),
        ];
        assert!(origin_allowed(&allowed, "https://example.com"));
        assert!(origin_allowed(&allowed, "http://example.com:3000"));
        assert!(!origin_allowed(&allowed, "https://www.example.com"));
        assert!(!origin_allowed(&allowed, "https://evilexample.com"));
        assert!(origin_allowed(&allowed, "https://a.shop.io"));
        assert!(!origin_allowed(&allowed, "https://shop.io"));
        assert!(!origin_allowed(&allowed, "https://evilshop.io"));
        assert!(origin_allowed(&allowed, "http://localhost:8080"));
        assert!(!origin_allowed(&allowed, "http://localhost:8081"));
        assert!(!origin_allowed(&allowed, "null"));
    }

    #[test]
    fn opening_hours_use_the_space_time_zone() {
        let hours = OpeningHours {
            timezone: "Europe/Warsaw".into(),
            ranges: vec![OpeningRange {
                day: 0,
                from: "09:00".into(),
                to: "17:00".into(),
            }],
        };
        // Monday 2026-11-23 08:30 UTC is 09:30 in Warsaw.
        let monday = "2026-11-23T08:30:00Z".parse().unwrap();
        assert!(hours.is_open(monday));
        let evening = "2026-11-23T16:30:00Z".parse().unwrap();
        assert!(!hours.is_open(evening));
    }
}
