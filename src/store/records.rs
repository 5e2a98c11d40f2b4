//! How each record is keyed and indexed. A record declares its index entries;
//! [`super::WriteTx::put`] keeps them in step with the record, so no caller
//! maintains an index by hand.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{KeyBuf, id_key};
use super::tables::{self, Table};
use crate::accounts::model::{Agent, Organization, Team};
use crate::attachments::model::{Attachment, Uploader, UploaderKind};
use crate::audit::model::AuditEvent;
use crate::integrations::model::{ApiToken, Member, SigningKey};
use crate::labels::model::Label;
use crate::messages::model::Message;
use crate::push::model::{Push, PushSubscription};
use crate::spaces::model::ChatSpace;
use crate::templates::model::Template;
use crate::threads::model::{Thread, ThreadStatus};
use crate::visitors::model::Visitor;
use crate::webhooks::model::{Delivery, DeliveryStatus, Webhook};

/// One entry a record contributes to an index table.
#[derive(Clone)]
pub struct IndexEntry {
    pub table: Table,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// A unique entry refuses a key another record already holds.
    pub unique: bool,
}

impl PartialEq for IndexEntry {
    fn eq(&self, other: &Self) -> bool {
        self.table.name() == other.table.name()
            && self.key == other.key
            && self.value == other.value
            && self.unique == other.unique
    }
}

impl std::fmt::Debug for IndexEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexEntry")
            .field("table", &self.table.name())
            .field("key", &self.key)
            .finish()
    }
}

impl IndexEntry {
    fn plain(table: Table, key: Vec<u8>) -> Self {
        IndexEntry {
            table,
            key,
            value: Vec::new(),
            unique: false,
        }
    }

    fn pointer(table: Table, key: Vec<u8>, to: u128) -> Self {
        IndexEntry {
            table,
            key,
            value: id_key(to).to_vec(),
            unique: false,
        }
    }

    fn unique(table: Table, key: Vec<u8>, to: u128) -> Self {
        IndexEntry {
            unique: true,
            ..IndexEntry::pointer(table, key, to)
        }
    }
}

pub trait Record: Serialize + DeserializeOwned + Clone + 'static {
    const TABLE: Table;
    /// A name for error messages.
    const NAME: &'static str;
    fn key(&self) -> Vec<u8>;
    fn indexes(&self) -> Vec<IndexEntry> {
        Vec::new()
    }
    /// The status a thread is counted under in the live thread counts
    /// ([`super::StoreStats::threads`]); other records are not counted.
    fn thread_status(&self) -> Option<ThreadStatus> {
        None
    }
}

impl Record for Organization {
    const TABLE: Table = tables::ORGS;
    const NAME: &'static str = "organization";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
}

impl Record for Agent {
    const TABLE: Table = tables::AGENTS;
    const NAME: &'static str = "agent";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let id = self.id.as_u128();
        vec![
            IndexEntry::unique(tables::IDX_AGENT_EMAIL, self.email.as_bytes().to_vec(), id),
            IndexEntry::plain(
                tables::IDX_AGENTS_BY_ORG,
                KeyBuf::new()
                    .id(self.organization_id.as_u128())
                    .id(id)
                    .done(),
            ),
        ]
    }
}

impl Record for Team {
    const TABLE: Table = tables::TEAMS;
    const NAME: &'static str = "team";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_TEAMS_BY_ORG,
            KeyBuf::new()
                .id(self.organization_id.as_u128())
                .id(self.id.as_u128())
                .done(),
        )]
    }
}

impl Record for ChatSpace {
    const TABLE: Table = tables::SPACES;
    const NAME: &'static str = "chat space";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let id = self.id.as_u128();
        vec![
            IndexEntry::unique(
                tables::IDX_SPACE_KEY,
                self.widget_key.as_bytes().to_vec(),
                id,
            ),
            IndexEntry::plain(
                tables::IDX_SPACES_BY_ORG,
                KeyBuf::new()
                    .id(self.organization_id.as_u128())
                    .id(id)
                    .done(),
            ),
        ]
    }
}

impl Record for Visitor {
    const TABLE: Table = tables::VISITORS;
    const NAME: &'static str = "visitor";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let mut entries = vec![IndexEntry::plain(
            tables::IDX_VISITORS_BY_SPACE,
            KeyBuf::new()
                .id(self.chat_space_id.as_u128())
                .id(self.id.as_u128())
                .done(),
        )];
        if let (true, Some(external)) = (self.verified, &self.external_id) {
            entries.push(IndexEntry::unique(
                tables::IDX_VISITOR_VERIFIED,
                visitor_verified_key(self.chat_space_id.as_u128(), external),
                self.id.as_u128(),
            ));
        }
        entries
    }
}

/// Key of a verified visitor in its space's by-external-id index.
pub fn visitor_verified_key(space: u128, external_id: &str) -> Vec<u8> {
    KeyBuf::new().id(space).str(external_id).done()
}

/// Key of a thread in the by-space index.
pub fn thread_space_key(t: &Thread) -> Vec<u8> {
    KeyBuf::new()
        .id(t.chat_space_id.as_u128())
        .byte(t.status.as_u8())
        .time(t.last_activity_at)
        .id(t.id.as_u128())
        .done()
}

/// The status a by-space index key was made with.
pub fn status_of_space_key(key: &[u8]) -> Option<ThreadStatus> {
    let byte = *key.get(16)?;
    ThreadStatus::ALL.into_iter().find(|s| s.as_u8() == byte)
}

/// Prefix of the by-space index for one space and status.
pub fn thread_space_prefix(space: u128, status: ThreadStatus) -> Vec<u8> {
    KeyBuf::new().id(space).byte(status.as_u8()).done()
}

pub fn thread_agent_prefix(agent: u128, status: ThreadStatus) -> Vec<u8> {
    KeyBuf::new().id(agent).byte(status.as_u8()).done()
}

pub fn thread_ref_key(space: u128, kind: &str, id: &str) -> Vec<u8> {
    KeyBuf::new().id(space).str(kind).str(id).done()
}

impl Record for Thread {
    const TABLE: Table = tables::THREADS;
    const NAME: &'static str = "thread";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn thread_status(&self) -> Option<ThreadStatus> {
        Some(self.status)
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let id = self.id.as_u128();
        let mut entries = vec![
            IndexEntry::plain(tables::IDX_THREADS_BY_SPACE, thread_space_key(self)),
            IndexEntry::plain(
                tables::IDX_THREADS_BY_VISITOR,
                KeyBuf::new().id(self.visitor_id.as_u128()).id(id).done(),
            ),
        ];
        if let Some(agent) = self.assigned_agent_id {
            entries.push(IndexEntry::plain(
                tables::IDX_THREADS_BY_AGENT,
                KeyBuf::new()
                    .id(agent.as_u128())
                    .byte(self.status.as_u8())
                    .time(self.last_activity_at)
                    .id(id)
                    .done(),
            ));
        }
        if let Some(r) = &self.external_ref {
            entries.push(IndexEntry::unique(
                tables::IDX_THREADS_BY_REF,
                thread_ref_key(self.chat_space_id.as_u128(), &r.kind, &r.id),
                id,
            ));
        }
        entries
    }
}

/// Primary key of a message: thread ‖ message.
pub fn message_key(thread: u128, message: u128) -> Vec<u8> {
    KeyBuf::new().id(thread).id(message).done()
}

pub fn client_msg_key(sender: u128, client_msg_id: &str) -> Vec<u8> {
    KeyBuf::new().id(sender).str(client_msg_id).done()
}

impl Record for Message {
    const TABLE: Table = tables::MESSAGES;
    const NAME: &'static str = "message";
    fn key(&self) -> Vec<u8> {
        message_key(self.thread_id.as_u128(), self.id.as_u128())
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let id = self.id.as_u128();
        let mut entries = vec![IndexEntry::pointer(
            tables::IDX_MESSAGE_THREAD,
            id_key(id).to_vec(),
            self.thread_id.as_u128(),
        )];
        if let Some(cid) = &self.client_msg_id {
            entries.push(IndexEntry::unique(
                tables::IDX_CLIENT_MSG,
                client_msg_key(self.sender_id.as_u128(), cid),
                id,
            ));
        }
        entries
    }
}

impl Record for Template {
    const TABLE: Table = tables::TEMPLATES;
    const NAME: &'static str = "template";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_TEMPLATES_BY_ORG,
            KeyBuf::new()
                .id(self.organization_id.as_u128())
                .id(self.id.as_u128())
                .done(),
        )]
    }
}

impl Record for Label {
    const TABLE: Table = tables::LABELS;
    const NAME: &'static str = "label";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_LABELS_BY_ORG,
            KeyBuf::new()
                .id(self.organization_id.as_u128())
                .id(self.id.as_u128())
                .done(),
        )]
    }
}

/// Key of a kept, bound attachment in the retention index.
pub fn attachment_time_key(space: u128, at: chrono::DateTime<chrono::Utc>, id: u128) -> Vec<u8> {
    KeyBuf::new().id(space).time(at).id(id).done()
}

/// Prefix of one uploader's entries in the pending-by-uploader index.
pub fn uploader_prefix(uploader: &Uploader) -> Vec<u8> {
    let kind = match uploader.kind {
        UploaderKind::Visitor => 0,
        UploaderKind::Agent => 1,
        UploaderKind::Member => 2,
    };
    KeyBuf::new().byte(kind).id(uploader.id.as_u128()).done()
}

impl Record for Attachment {
    const TABLE: Table = tables::ATTACHMENTS;
    const NAME: &'static str = "attachment";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    /// Only attachments whose file is still kept are indexed: bound ones in
    /// the retention queue, unbound uploads in the pending queue.
    fn indexes(&self) -> Vec<IndexEntry> {
        if !self.is_live() {
            return Vec::new();
        }
        let id = self.id.as_u128();
        match self.message_id {
            Some(_) => vec![IndexEntry::plain(
                tables::IDX_ATTACHMENTS_BY_TIME,
                attachment_time_key(self.chat_space_id.as_u128(), self.created_at, id),
            )],
            None => vec![
                IndexEntry::plain(
                    tables::IDX_ATTACHMENTS_PENDING,
                    KeyBuf::new().time(self.created_at).id(id).done(),
                ),
                IndexEntry::plain(
                    tables::IDX_PENDING_BY_UPLOADER,
                    KeyBuf::new()
                        .bytes(&uploader_prefix(&self.uploader))
                        .id(id)
                        .done(),
                ),
            ],
        }
    }
}

impl Record for ApiToken {
    const TABLE: Table = tables::API_TOKENS;
    const NAME: &'static str = "API token";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let id = self.id.as_u128();
        vec![
            IndexEntry::unique(
                tables::IDX_API_TOKEN_HASH,
                self.hash.as_bytes().to_vec(),
                id,
            ),
            IndexEntry::plain(
                tables::IDX_API_TOKENS_BY_ORG,
                KeyBuf::new()
                    .id(self.organization_id.as_u128())
                    .id(id)
                    .done(),
            ),
        ]
    }
}

impl Record for SigningKey {
    const TABLE: Table = tables::SIGNING_KEYS;
    const NAME: &'static str = "signing key";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_SIGNING_KEYS_BY_ORG,
            KeyBuf::new()
                .id(self.organization_id.as_u128())
                .id(self.id.as_u128())
                .done(),
        )]
    }
}

pub fn member_external_key(org: u128, external_id: &str) -> Vec<u8> {
    KeyBuf::new().id(org).str(external_id).done()
}

impl Record for Member {
    const TABLE: Table = tables::MEMBERS;
    const NAME: &'static str = "member";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let (org, id) = (self.organization_id.as_u128(), self.id.as_u128());
        vec![
            IndexEntry::unique(
                tables::IDX_MEMBER_EXTERNAL,
                member_external_key(org, &self.external_id),
                id,
            ),
            IndexEntry::plain(
                tables::IDX_MEMBERS_BY_ORG,
                KeyBuf::new().id(org).id(id).done(),
            ),
        ]
    }
}

impl Record for Webhook {
    const TABLE: Table = tables::WEBHOOKS;
    const NAME: &'static str = "webhook";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_WEBHOOKS_BY_ORG,
            KeyBuf::new()
                .id(self.organization_id.as_u128())
                .id(self.id.as_u128())
                .done(),
        )]
    }
}

impl Record for Delivery {
    const TABLE: Table = tables::DELIVERIES;
    const NAME: &'static str = "delivery";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        let id = self.id.as_u128();
        let mut entries = vec![IndexEntry::plain(
            tables::IDX_DELIVERIES_BY_WEBHOOK,
            KeyBuf::new().id(self.webhook_id.as_u128()).id(id).done(),
        )];
        if self.status == DeliveryStatus::Pending
            && let Some(at) = self.next_attempt_at
        {
            entries.push(IndexEntry::plain(
                tables::IDX_DELIVERIES_DUE,
                KeyBuf::new().time(at).id(id).done(),
            ));
        }
        entries
    }
}

impl Record for PushSubscription {
    const TABLE: Table = tables::PUSH_SUBSCRIPTIONS;
    const NAME: &'static str = "push subscription";
    fn key(&self) -> Vec<u8> {
        PushSubscription::key_of(&self.endpoint)
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_PUSH_SUBS_BY_AGENT,
            KeyBuf::new()
                .id(self.agent_id.as_u128())
                .bytes(&self.key())
                .done(),
        )]
    }
}

impl Record for Push {
    const TABLE: Table = tables::PUSHES;
    const NAME: &'static str = "push";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_PUSHES_DUE,
            KeyBuf::new().time(self.due_at).id(self.id.as_u128()).done(),
        )]
    }
}

impl Record for crate::email::model::Mail {
    const TABLE: Table = tables::MAILS;
    const NAME: &'static str = "mail";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        use crate::email::model::MailStatus;
        let id = self.id.as_u128();
        let mut entries = Vec::new();
        if let Some(org) = self.organization_id {
            entries.push(IndexEntry::plain(
                tables::IDX_MAILS_BY_ORG,
                KeyBuf::new().id(org.as_u128()).id(id).done(),
            ));
        }
        if self.status == MailStatus::Pending {
            entries.push(IndexEntry::plain(
                tables::IDX_MAILS_DUE,
                KeyBuf::new().time(self.next_attempt_at).id(id).done(),
            ));
            if let Some(key) = self.kind.pending_key() {
                entries.push(IndexEntry::pointer(tables::IDX_MAILS_PENDING, key, id));
            }
        }
        entries
    }
}

impl Record for AuditEvent {
    const TABLE: Table = tables::AUDIT;
    const NAME: &'static str = "audit event";
    fn key(&self) -> Vec<u8> {
        id_key(self.id.as_u128()).to_vec()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::plain(
            tables::IDX_AUDIT_BY_ORG,
            KeyBuf::new()
                .id(self.organization_id.as_u128())
                .id(self.id.as_u128())
                .done(),
        )]
    }
}
