//! Threads: one conversation between a visitor and the agents of a space.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, LabelId, MemberId, MessageId, SpaceId, TeamId, ThreadId, VisitorId};
use crate::integrations::model::AccessScope;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    Unassigned,
    Active,
    Pending,
    Closed,
    Expired,
}

impl ThreadStatus {
    pub const ALL: [ThreadStatus; 5] = [
        ThreadStatus::Unassigned,
        ThreadStatus::Active,
        ThreadStatus::Pending,
        ThreadStatus::Closed,
        ThreadStatus::Expired,
    ];

    /// Open threads take new visitor messages; ended ones never do.
    pub fn is_open(self) -> bool {
        !matches!(self, ThreadStatus::Closed | ThreadStatus::Expired)
    }

    pub fn as_u8(self) -> u8 {
        match self {
            ThreadStatus::Unassigned => 0,
            ThreadStatus::Active => 1,
            ThreadStatus::Pending => 2,
            ThreadStatus::Closed => 3,
            ThreadStatus::Expired => 4,
        }
    }

    pub fn parse(s: &str) -> Option<ThreadStatus> {
        ThreadStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ThreadStatus::Unassigned => "unassigned",
            ThreadStatus::Active => "active",
            ThreadStatus::Pending => "pending",
            ThreadStatus::Closed => "closed",
            ThreadStatus::Expired => "expired",
        }
    }
}

/// The integrator's object a thread is bound to (an order, a tender).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ExternalRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// Up to which message a reader has read, and how many of the other side's
/// messages that covered (so unread counts are a subtraction).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadMarker {
    pub up_to: MessageId,
    pub seen: u64,
    #[serde(with = "crate::store::stamp")]
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastMessage {
    pub id: MessageId,
    pub sender_type: crate::messages::model::SenderType,
    /// The first characters of the content.
    pub preview: String,
    #[serde(with = "crate::store::stamp")]
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    pub id: ThreadId,
    pub chat_space_id: SpaceId,
    pub visitor_id: VisitorId,
    pub assigned_agent_id: Option<AgentId>,
    pub team_id: Option<TeamId>,
    #[serde(default)]
    pub participants: Vec<AgentId>,
    pub external_ref: Option<ExternalRef>,
    pub subject: Option<String>,
    pub status: ThreadStatus,
    pub last_message: Option<LastMessage>,
    /// Visitor messages in the thread (not deleted ones' count is kept too).
    pub visitor_message_count: u64,
    /// Messages the visitor can see that agents or the system sent.
    pub agent_message_count: u64,
    pub visitor_read: Option<ReadMarker>,
    #[serde(default)]
    pub agent_reads: BTreeMap<AgentId, ReadMarker>,
    #[serde(with = "crate::store::stamp")]
    pub last_activity_at: DateTime<Utc>,
    #[serde(with = "crate::store::stamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::store::stamp")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, with = "crate::store::stamp::option")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Set on object-bound threads (§4a): their members and who may join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Membership>,
    /// The visitor's rating of the conversation, given once after it ended.
    #[serde(default)]
    pub rating: Option<Rating>,
    /// The organization's labels on the thread, in the order they were put.
    #[serde(default)]
    pub labels: Vec<LabelId>,
    #[serde(default)]
    pub priority: Priority,
}

/// How urgent agents find a conversation.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    None,
    Low,
    Medium,
    High,
    Urgent,
}

/// A visitor's satisfaction rating (CSAT) of an ended conversation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rating {
    /// 1 (bad) to 5 (great).
    pub score: u8,
    pub comment: Option<String>,
    #[serde(with = "crate::store::stamp")]
    pub at: DateTime<Utc>,
}

impl Rating {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 5;
    /// Longest comment, in characters.
    pub const MAX_COMMENT: usize = 1000;
}

/// What makes a thread object-bound: the integrator's users in it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// Direct participants.
    pub members: Vec<MemberId>,
    /// Who else may join.
    pub access_scopes: Vec<AccessScope>,
    /// Each member's read marker.
    #[serde(default)]
    pub reads: BTreeMap<MemberId, ReadMarker>,
}

impl Thread {
    /// Whether the thread is bound to an integrator's object.
    pub fn is_object_bound(&self) -> bool {
        self.membership.is_some()
    }

    pub fn has_member(&self, member: MemberId) -> bool {
        self.membership
            .as_ref()
            .is_some_and(|m| m.members.contains(&member))
    }

    /// Messages a member has not read yet.
    pub fn unread_for_member(&self, member: MemberId) -> u64 {
        let seen = self
            .membership
            .as_ref()
            .and_then(|m| m.reads.get(&member))
            .map_or(0, |m| m.seen);
        (self.visitor_message_count + self.agent_message_count).saturating_sub(seen)
    }

    /// Visitor messages this agent has not read yet.
    pub fn unread_for_agent(&self, agent: AgentId) -> u64 {
        let seen = self.agent_reads.get(&agent).map_or(0, |m| m.seen);
        self.visitor_message_count.saturating_sub(seen)
    }

    /// Agent messages the visitor has not read yet.
    pub fn unread_for_visitor(&self) -> u64 {
        let seen = self.visitor_read.as_ref().map_or(0, |m| m.seen);
        self.agent_message_count.saturating_sub(seen)
    }
}
