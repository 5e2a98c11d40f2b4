//! Organizations, agents, teams and the credentials that belong to them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, OrgId, SpaceId, TeamId};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What an agent may do. Ordered: an owner can do everything an admin can.
#[derive(
    Clone,
    Copy,
    Debug,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Admin,
    Owner,
}

/// An agent as stored. Never serialized to clients: see [`AgentView`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: AgentId,
    pub organization_id: OrgId,
    /// Lower-cased; unique across the appliance.
    pub email: String,
    /// argon2id PHC string; empty while an invite is not yet accepted.
    pub password_hash: String,
    pub display_name: String,
    pub role: Role,
    #[serde(default)]
    pub team_ids: Vec<TeamId>,
    /// The chat spaces this agent works in; None: every space, including
    /// spaces created later. Owners and admins work in all of them.
    #[serde(default)]
    pub space_ids: Option<Vec<SpaceId>>,
    #[serde(default, with = "crate::store::stamp::option")]
    pub last_seen_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::store::stamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub disabled: bool,
    /// Which notifications (email, Web Push) the agent wants.
    #[serde(default)]
    pub notify: NotifyPrefs,
    /// Bumped on logout-everywhere, password change and disabling: every
    /// access token carries it, and a token with an older one is refused.
    #[serde(default)]
    pub token_version: u64,
    /// The agent's own "away" switch: connected, but not counted as online
    /// for visitors (the widget's presence, its offline form).
    #[serde(default)]
    pub away: bool,
    /// Most open threads automatic assignment gives the agent at once;
    /// 0: no limit. Claims by hand are not limited.
    #[serde(default)]
    pub max_concurrent: u32,
    /// The version of the agent's picture (`accounts::avatar`), if any.
    #[serde(default)]
    pub avatar: Option<String>,
}

/// An agent as clients see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: AgentId,
    pub organization_id: OrgId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub team_ids: Vec<TeamId>,
    /// `null`: every space.
    pub space_ids: Option<Vec<SpaceId>>,
    pub is_online: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    /// True until the agent has set a password through an invite link.
    pub invite_pending: bool,
    pub notify: NotifyPrefs,
    /// Switched away by the agent: not online for visitors.
    #[serde(default)]
    pub away: bool,
    pub max_concurrent: u32,
    /// The picture's version: `/api/v1/widget/avatars/{id}?v=…`.
    #[serde(default)]
    pub avatar: Option<String>,
}

/// Which threads an agent is told about when it is not looking.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyScope {
    /// Everything of its spaces and teams it may take, and its own threads.
    #[default]
    All,
    /// Only the threads it holds (and transfers to it).
    Assigned,
    None,
}

/// An agent's notification preferences (email and Web Push alike).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NotifyPrefs {
    pub scope: NotifyScope,
    /// Minutes to wait before telling: a thread answered meanwhile (or
    /// read in the app) needs no notification. 0: at once.
    pub quiet_minutes: u32,
}

impl NotifyPrefs {
    /// The longest quiet delay an agent may choose (a day).
    pub const MAX_QUIET_MINUTES: u32 = 24 * 60;

    /// Whether an agent with these preferences hears about a thread that
    /// it holds (`mine`) or may take.
    pub fn wants(&self, mine: bool) -> bool {
        match self.scope {
            NotifyScope::All => true,
            NotifyScope::Assigned => mine,
            NotifyScope::None => false,
        }
    }
}

impl Agent {
    /// Whether the agent works in `space`.
    pub fn works_in(&self, space: SpaceId) -> bool {
        self.role >= Role::Admin || self.space_ids.as_ref().is_none_or(|s| s.contains(&space))
    }

    pub fn view(&self, is_online: bool) -> AgentView {
        AgentView {
            id: self.id,
            organization_id: self.organization_id,
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            team_ids: self.team_ids.clone(),
            space_ids: self.space_ids.clone(),
            is_online,
            last_seen_at: self.last_seen_at,
            created_at: self.created_at,
            disabled: self.disabled,
            invite_pending: self.password_hash.is_empty(),
            notify: self.notify,
            away: self.away,
            max_concurrent: self.max_concurrent,
            avatar: self.avatar.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: TeamId,
    pub organization_id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A refresh token, stored under the sha256 of the token itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RefreshToken {
    pub agent_id: AgentId,
    pub expires_at: DateTime<Utc>,
    /// The agent's token version when it was issued.
    pub token_version: u64,
}

/// A one-time invite link, stored under the sha256 of its token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub agent_id: AgentId,
    pub expires_at: DateTime<Utc>,
}
