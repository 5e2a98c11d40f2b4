//! Mails: why each is sent, to whom, and how far it got. The recipient's
//! address and the content are read when the mail is sent, so a mail
//! never carries a stale address or a message deleted meanwhile.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, MailId, MessageId, OrgId, ThreadId, VisitorId};

/// Why a mail is sent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum MailKind {
    /// To an agent: a visitor left a message through the offline form.
    Offline {
        agent: AgentId,
        thread: ThreadId,
        message: MessageId,
    },
    /// To an agent: a visitor message waits for an answer.
    Unanswered {
        agent: AgentId,
        thread: ThreadId,
        message: MessageId,
    },
    /// To a visitor who is away: the agents' replies it has not seen.
    Replies {
        visitor: VisitorId,
        thread: ThreadId,
    },
    /// The whole conversation, asked for by the visitor or sent by an agent.
    Transcript {
        visitor: VisitorId,
        thread: ThreadId,
    },
    /// A test mail from `mychat email test`.
    Test { to: String },
}

impl MailKind {
    /// What one waiting mail stands for: a second reason of the same kind
    /// joins the waiting mail instead of making another.
    pub fn pending_key(&self) -> Option<Vec<u8>> {
        match self {
            MailKind::Unanswered { agent, thread, .. } => Some(
                [
                    thread.0.as_bytes().as_slice(),
                    b"unanswered\0",
                    agent.0.as_bytes().as_slice(),
                ]
                .concat(),
            ),
            MailKind::Replies { thread, .. } => {
                Some([thread.0.as_bytes().as_slice(), b"replies\0"].concat())
            }
            _ => None,
        }
    }

    pub fn thread(&self) -> Option<ThreadId> {
        match self {
            MailKind::Offline { thread, .. }
            | MailKind::Unanswered { thread, .. }
            | MailKind::Replies { thread, .. }
            | MailKind::Transcript { thread, .. } => Some(*thread),
            MailKind::Test { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MailStatus {
    Pending,
    Sent,
    /// Gave up after `email.max_attempts`.
    Failed,
    /// Not needed any more when its time came (answered, read, unsubscribed).
    Skipped,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mail {
    pub id: MailId,
    /// None for test mails.
    pub organization_id: Option<OrgId>,
    pub kind: MailKind,
    pub status: MailStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Where it went (or would have), filled in when it is sent.
    pub to: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl Mail {
    pub fn new(org: Option<OrgId>, kind: MailKind, due: DateTime<Utc>) -> Mail {
        Mail {
            id: MailId::new(),
            organization_id: org,
            kind,
            status: MailStatus::Pending,
            attempts: 0,
            next_attempt_at: due,
            last_error: None,
            to: None,
            created_at: Utc::now(),
            sent_at: None,
        }
    }
}
