//! What happened, as far as live clients care. Write closures emit these
//! with `WriteTx::emit` (the store); the writer hands them to the hub
//! right after the commit that made them true, in commit order.

use crate::accounts::model::Agent;
use crate::ids::{AgentId, MemberId, MessageId, OrgId, SigningKeyId, SpaceId, ThreadId, VisitorId};
use crate::integrations::model::Member;
use crate::messages::model::Message;
use crate::threads::model::Thread;

/// Serializable, so a node of a cluster can hand its commits' events to
/// the others (see `store::postgres`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// A thread was created (a visitor's first message, an agent starting one).
    ThreadNew { thread: Thread },
    /// A thread's status, holder, subject or team changed.
    ThreadUpdated { thread: Thread },
    /// A message was stored. `thread` is the thread after the message.
    MessageNew { message: Message, thread: Thread },
    /// A message was edited or deleted (already redacted when deleted).
    MessageChanged { message: Message, thread: Thread },
    /// A reader's marker moved.
    Read {
        thread: Thread,
        reader: ReaderKind,
        up_to: MessageId,
    },
    /// An agent's sessions were revoked (logout, password change, disabling).
    AgentRevoked { agent: AgentId },
    /// A space was deleted or its widget key rotated: its widget sockets close.
    WidgetsEnded { space: SpaceId },
    /// A visitor and everything about it were erased (GDPR): its widget
    /// sockets close, its search entries go.
    VisitorErased {
        visitor: VisitorId,
        space: SpaceId,
        threads: Vec<ThreadId>,
    },
    /// An agent's spaces or teams changed: its open sockets follow at once.
    AgentAccessChanged { agent: Agent },
    /// An agent switched away or back: visitors' presence follows.
    AgentAway { agent: Agent },
    /// A member became a participant of an object-bound thread (added by
    /// the integrator, or joined). `thread` is the thread after it.
    ParticipantJoined { thread: Thread, member: Member },
    /// A member stopped being a participant (left, or removed).
    ParticipantLeft { thread: Thread, member: Member },
    /// A signing key was deleted: the member sockets its tokens opened end.
    SigningKeyRevoked { key: SigningKeyId },
    /// A visitor left a message through the offline form (also a
    /// `MessageNew`); for webhooks.
    OfflineMessage { thread: Thread, message: Message },
    /// An agent (`by`) handed a thread to its new holder (also a
    /// `ThreadUpdated`); for notifications to that holder.
    ThreadTransferred { thread: Thread, by: AgentId },
    /// The organization's labels were created, changed or deleted: the
    /// agent apps load them again.
    LabelsChanged { org: OrgId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReaderKind {
    Visitor,
    Agent(AgentId),
    Member(MemberId),
}

impl Event {
    pub fn thread_id(&self) -> Option<ThreadId> {
        match self {
            Event::ThreadNew { thread }
            | Event::ThreadUpdated { thread }
            | Event::MessageNew { thread, .. }
            | Event::MessageChanged { thread, .. }
            | Event::Read { thread, .. }
            | Event::ParticipantJoined { thread, .. }
            | Event::ParticipantLeft { thread, .. }
            | Event::OfflineMessage { thread, .. }
            | Event::ThreadTransferred { thread, .. } => Some(thread.id),
            Event::AgentRevoked { .. }
            | Event::AgentAccessChanged { .. }
            | Event::AgentAway { .. }
            | Event::WidgetsEnded { .. }
            | Event::VisitorErased { .. }
            | Event::SigningKeyRevoked { .. }
            | Event::LabelsChanged { .. } => None,
        }
    }
}
