//! How object-bound threads look to integrators and members: participants
//! by the integrator's own ids, never internal details of other tenants.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{MemberId, SpaceId, ThreadId};
use crate::integrations::model::{AccessScope, Member};
use crate::store::Reader;
use crate::threads::model::{ExternalRef, LastMessage, Thread, ThreadStatus};

/// A participant, as the integrator knows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub external_id: String,
    pub name: String,
}

impl From<&Member> for Participant {
    fn from(m: &Member) -> Self {
        Participant {
            external_id: m.external_id.clone(),
            name: m.name.clone(),
        }
    }
}

/// An object-bound thread as the management API returns it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectThread {
    pub id: ThreadId,
    pub chat_space_id: SpaceId,
    pub external_ref: Option<ExternalRef>,
    pub subject: Option<String>,
    pub status: ThreadStatus,
    pub participants: Vec<Participant>,
    pub access_scopes: Vec<AccessScope>,
    pub last_message: Option<LastMessage>,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// An object-bound thread as one member sees it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dialog {
    pub id: ThreadId,
    pub external_ref: Option<ExternalRef>,
    pub subject: Option<String>,
    pub status: ThreadStatus,
    pub participants: Vec<Participant>,
    /// Whether the member takes part (else it may join).
    pub participating: bool,
    pub unread_count: u64,
    pub last_message: Option<LastMessage>,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

pub fn participants<R: Reader + ?Sized>(read: &R, thread: &Thread) -> Vec<Participant> {
    let ids: &[MemberId] = thread
        .membership
        .as_ref()
        .map_or(&[], |m| m.members.as_slice());
    ids.iter()
        .filter_map(|id| read.member(*id).ok().flatten())
        .map(|m| Participant::from(&m))
        .collect()
}

pub fn object_thread<R: Reader + ?Sized>(read: &R, thread: &Thread) -> ObjectThread {
    ObjectThread {
        id: thread.id,
        chat_space_id: thread.chat_space_id,
        external_ref: thread.external_ref.clone(),
        subject: thread.subject.clone(),
        status: thread.status,
        participants: participants(read, thread),
        access_scopes: thread
            .membership
            .as_ref()
            .map(|m| m.access_scopes.clone())
            .unwrap_or_default(),
        last_message: thread.last_message.clone(),
        last_activity_at: thread.last_activity_at,
        created_at: thread.created_at,
    }
}

pub fn dialog<R: Reader + ?Sized>(read: &R, thread: &Thread, member: MemberId) -> Dialog {
    let participating = thread.has_member(member);
    Dialog {
        id: thread.id,
        external_ref: thread.external_ref.clone(),
        subject: thread.subject.clone(),
        status: thread.status,
        participants: participants(read, thread),
        participating,
        unread_count: if participating {
            thread.unread_for_member(member)
        } else {
            0
        },
        // A potential member sees no content until it joins.
        last_message: if participating {
            thread.last_message.clone()
        } else {
            None
        },
        last_activity_at: thread.last_activity_at,
        created_at: thread.created_at,
    }
}
