//! Messages of a thread.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::accounts::model::Agent;
use crate::attachments::model::AttachmentRef;
use crate::ids::{ApiTokenId, MessageId, ThreadId};
use crate::integrations::model::Member;
use crate::visitors::model::Visitor;

/// Longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 5000;
/// A list's preview, in characters.
const PREVIEW_CHARS: usize = 140;
/// Longest client-chosen idempotency key.
pub const MAX_CLIENT_MSG_ID: usize = 100;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SenderType {
    Visitor,
    Agent,
    System,
    Integration,
    Member,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub sender_type: SenderType,
    /// The visitor's or agent's id; nil for system messages.
    pub sender_id: uuid::Uuid,
    /// Shown next to the message: the agent's display name or the visitor's label.
    pub sender_name: Option<String>,
    pub content: String,
    #[serde(default)]
    pub internal: bool,
    pub reply_to_id: Option<MessageId>,
    /// The files it carries, described enough to draw them; each is
    /// downloaded from `GET /api/v1/attachments/:id`.
    #[serde(
        default,
        deserialize_with = "crate::attachments::model::refs_or_legacy_ids"
    )]
    pub attachments: Vec<AttachmentRef>,
    pub client_msg_id: Option<String>,
    #[serde(with = "crate::store::stamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::store::stamp::option")]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::store::stamp::option")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Set on the history lines of a conversation (internal system messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<crate::messages::history::HistoryEvent>,
}

impl Message {
    /// A list's one-line preview: the text, or the file names of a message
    /// that only carries files.
    pub fn preview(&self) -> String {
        if self.content.trim().is_empty() && !self.attachments.is_empty() {
            let names: Vec<&str> = self.attachments.iter().map(|a| a.name.as_str()).collect();
            format!("📎 {}", names.join(", "))
                .chars()
                .take(PREVIEW_CHARS)
                .collect()
        } else {
            self.content.chars().take(PREVIEW_CHARS).collect()
        }
    }

    /// What visitors and lists may see of a deleted message: nothing of its content.
    pub fn redacted(mut self) -> Message {
        if self.deleted_at.is_some() {
            self.content.clear();
            self.attachments.clear();
        }
        self
    }

    /// Whether the visitor of the thread may see this message at all.
    pub fn visible_to_visitor(&self) -> bool {
        !self.internal
    }
}

/// Who is sending.
#[derive(Clone, Debug)]
pub enum Author {
    Visitor(Visitor),
    Agent(Agent),
    /// One of the integrator's users, in an object-bound thread.
    Member(Member),
    /// The appliance itself (e.g. "file expired").
    System,
    /// The integrator's backend through an `agent`-scope API token, named
    /// after the token.
    Integration {
        token: ApiTokenId,
        name: String,
    },
    /// The integrator's backend through the management API: its messages
    /// are system messages, idempotent per token.
    Backend {
        token: ApiTokenId,
    },
}

impl Author {
    pub fn sender_type(&self) -> SenderType {
        match self {
            Author::Visitor(_) => SenderType::Visitor,
            Author::Agent(_) => SenderType::Agent,
            Author::Member(_) => SenderType::Member,
            Author::System | Author::Backend { .. } => SenderType::System,
            Author::Integration { .. } => SenderType::Integration,
        }
    }

    /// Whose `clientMsgId`s these are: the idempotency key is scoped to it.
    pub fn sender_id(&self) -> uuid::Uuid {
        match self {
            Author::Visitor(v) => v.id.0,
            Author::Agent(a) => a.id.0,
            Author::Member(m) => m.id.0,
            Author::Integration { token, .. } => token.0,
            // Its own key space: the same token's agent-API sends are
            // another sender.
            Author::Backend { token } => uuid::Uuid::from_u128(token.0.as_u128() ^ 1),
            Author::System => uuid::Uuid::nil(),
        }
    }

    pub fn name(&self) -> Option<String> {
        match self {
            Author::Visitor(v) => Some(v.label()),
            Author::Agent(a) => Some(a.display_name.clone()),
            Author::Member(m) => Some(m.name.clone()),
            Author::System | Author::Backend { .. } => None,
            Author::Integration { name, .. } => Some(name.clone()),
        }
    }

    /// Whether the author reads like a visitor: sees no internal notes.
    pub fn is_outsider(&self) -> bool {
        matches!(self, Author::Visitor(_) | Author::Member(_))
    }
}
