//! Typed reads, shared by read snapshots and write transactions: a write
//! closure reads with the same methods, and sees its batch's earlier writes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{self, KeyBuf, id_at, id_key, time_key};
use super::records::{self, Record};
use super::tables::{self, Table};
use super::{Result, Scan};
use crate::accounts::model::{Agent, Invite, Organization, RefreshToken, Team};
use crate::attachments::model::Attachment;
use crate::audit::model::AuditEvent;
use crate::ids::*;
use crate::integrations::model::{ApiToken, Member, SigningKey};
use crate::labels::model::Label;
use crate::messages::model::Message;
use crate::push::model::{Push, PushSubscription};
use crate::spaces::model::ChatSpace;
use crate::templates::model::Template;
use crate::threads::model::{Thread, ThreadStatus};
use crate::visitors::model::Visitor;
use crate::webhooks::model::{Delivery, Webhook};

/// One outbox's queue, for `/metrics`.
#[derive(Clone, Debug)]
pub struct OutboxQueue {
    /// `email`, `webhooks` or `push`.
    pub outbox: &'static str,
    pub pending: usize,
    /// The next attempt time of the soonest entry.
    pub soonest: Option<chrono::DateTime<chrono::Utc>>,
}

/// One page of a cursor-paginated list.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Position in a list of threads ordered by last activity, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadCursor {
    pub micros: i64,
    pub id: ThreadId,
}

impl ThreadCursor {
    pub fn of(t: &Thread) -> Self {
        ThreadCursor {
            micros: t.last_activity_at.timestamp_micros(),
            id: t.id,
        }
    }

    pub fn encode(&self) -> String {
        format!("{}_{}", self.micros, self.id)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (m, id) = s.split_once('_')?;
        Some(ThreadCursor {
            micros: m.parse().ok()?,
            id: id.parse().ok()?,
        })
    }

    fn index_key(&self, prefix: &[u8]) -> Vec<u8> {
        let t = chrono::DateTime::from_timestamp_micros(self.micros).unwrap_or_default();
        KeyBuf::new()
            .bytes(prefix)
            .bytes(&time_key(t))
            .id(self.id.as_u128())
            .done()
    }

    fn from_index_key(key: &[u8], prefix_len: usize) -> Option<Self> {
        let t = key.get(prefix_len..prefix_len + 8)?;
        let micros = (u64::from_be_bytes(t.try_into().ok()?) ^ (1 << 63)) as i64;
        Some(ThreadCursor {
            micros,
            id: ThreadId::from_u128(id_at(key, prefix_len + 8)?),
        })
    }
}

const CHUNK: usize = 64;

pub trait Reader {
    fn get_raw(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    fn get<R: Record>(&self, key: &[u8]) -> Result<Option<R>> {
        self.get_raw(R::TABLE, key)?
            .map(|b| codec::decode(&b))
            .transpose()
    }

    fn by_id<R: Record>(&self, id: u128) -> Result<Option<R>> {
        self.get(&id_key(id))
    }

    /// A decoded non-record value.
    fn value<T: DeserializeOwned>(&self, table: Table, key: &[u8]) -> Result<Option<T>> {
        self.get_raw(table, key)?
            .map(|b| codec::decode(&b))
            .transpose()
    }

    /// The id an index entry points at.
    fn pointer(&self, table: Table, key: &[u8]) -> Result<Option<u128>> {
        Ok(self.get_raw(table, key)?.and_then(|v| id_at(&v, 0)))
    }

    /// Every id found at `offset` of the keys under `prefix`, in key order.
    fn ids_under(&self, table: Table, prefix: &[u8], offset: usize) -> Result<Vec<u128>> {
        let rows = self.scan(
            table,
            &Scan {
                prefix: prefix.to_vec(),
                limit: usize::MAX,
                ..Scan::default()
            },
        )?;
        Ok(rows.iter().filter_map(|(k, _)| id_at(k, offset)).collect())
    }

    /// Records under `owner` in an `owner ‖ id` index with time-ordered
    /// ids: newest first, after the id `after`.
    fn newest_under<R: Record>(
        &self,
        table: Table,
        owner: u128,
        after: Option<u128>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let prefix = id_key(owner).to_vec();
        let rows = self.scan(
            table,
            &Scan {
                after: after.map(|a| KeyBuf::new().bytes(&prefix).id(a).done()),
                prefix,
                reverse: true,
                limit,
            },
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            if let Some(id) = id_at(&k, 16)
                && let Some(r) = self.by_id(id)?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn records_under<R: Record>(&self, table: Table, owner: u128) -> Result<Vec<R>> {
        let mut out = Vec::new();
        for id in self.ids_under(table, &id_key(owner), 16)? {
            if let Some(r) = self.by_id(id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn is_empty(&self, table: Table) -> Result<bool> {
        Ok(self
            .scan(
                table,
                &Scan {
                    limit: 1,
                    ..Scan::default()
                },
            )?
            .is_empty())
    }

    // Organizations and people.

    fn org(&self, id: OrgId) -> Result<Option<Organization>> {
        self.by_id(id.as_u128())
    }

    fn has_orgs(&self) -> Result<bool> {
        Ok(!self.is_empty(tables::ORGS)?)
    }

    fn agent(&self, id: AgentId) -> Result<Option<Agent>> {
        self.by_id(id.as_u128())
    }

    /// `email` must already be lower-cased.
    fn agent_by_email(&self, email: &str) -> Result<Option<Agent>> {
        match self.pointer(tables::IDX_AGENT_EMAIL, email.as_bytes())? {
            Some(id) => self.by_id(id),
            None => Ok(None),
        }
    }

    fn agents_of_org(&self, org: OrgId) -> Result<Vec<Agent>> {
        self.records_under(tables::IDX_AGENTS_BY_ORG, org.as_u128())
    }

    fn team(&self, id: TeamId) -> Result<Option<Team>> {
        self.by_id(id.as_u128())
    }

    fn teams_of_org(&self, org: OrgId) -> Result<Vec<Team>> {
        self.records_under(tables::IDX_TEAMS_BY_ORG, org.as_u128())
    }

    fn refresh_token(&self, hash: &[u8]) -> Result<Option<RefreshToken>> {
        self.value(tables::REFRESH_TOKENS, hash)
    }

    fn invite(&self, hash: &[u8]) -> Result<Option<Invite>> {
        self.value(tables::INVITES, hash)
    }

    // Integrations.

    fn api_token(&self, id: ApiTokenId) -> Result<Option<ApiToken>> {
        self.by_id(id.as_u128())
    }

    /// `hash`: hex sha256 of the token.
    fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        match self.pointer(tables::IDX_API_TOKEN_HASH, hash.as_bytes())? {
            Some(id) => self.by_id(id),
            None => Ok(None),
        }
    }

    fn api_tokens_of_org(&self, org: OrgId) -> Result<Vec<ApiToken>> {
        self.records_under(tables::IDX_API_TOKENS_BY_ORG, org.as_u128())
    }

    fn signing_key(&self, id: SigningKeyId) -> Result<Option<SigningKey>> {
        self.by_id(id.as_u128())
    }

    fn signing_keys_of_org(&self, org: OrgId) -> Result<Vec<SigningKey>> {
        self.records_under(tables::IDX_SIGNING_KEYS_BY_ORG, org.as_u128())
    }

    fn member(&self, id: MemberId) -> Result<Option<Member>> {
        self.by_id(id.as_u128())
    }

    fn member_by_external(&self, org: OrgId, external_id: &str) -> Result<Option<Member>> {
        let key = records::member_external_key(org.as_u128(), external_id);
        match self.pointer(tables::IDX_MEMBER_EXTERNAL, &key)? {
            Some(id) => self.by_id(id),
            None => Ok(None),
        }
    }

    fn members_of_org(&self, org: OrgId) -> Result<Vec<Member>> {
        self.records_under(tables::IDX_MEMBERS_BY_ORG, org.as_u128())
    }

    // Webhooks.

    fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        self.by_id(id.as_u128())
    }

    fn webhooks_of_org(&self, org: OrgId) -> Result<Vec<Webhook>> {
        self.records_under(tables::IDX_WEBHOOKS_BY_ORG, org.as_u128())
    }

    fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>> {
        self.by_id(id.as_u128())
    }

    /// A webhook's deliveries, newest first, after the cursor.
    fn deliveries_of(
        &self,
        webhook: WebhookId,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        self.newest_under(
            tables::IDX_DELIVERIES_BY_WEBHOOK,
            webhook.as_u128(),
            after.map(|a| a.as_u128()),
            limit,
        )
    }

    /// Pending deliveries whose next attempt is due by `now`, oldest first,
    /// after the index key `after`; with the key to go on from (None at the
    /// end of what is due).
    #[allow(clippy::type_complexity)]
    fn deliveries_due(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<Vec<u8>>)> {
        let end = KeyBuf::new().time(now).done();
        let rows = self.scan(
            tables::IDX_DELIVERIES_DUE,
            &Scan {
                limit,
                after,
                ..Scan::default()
            },
        )?;
        let full = rows.len() == limit;
        let mut out = Vec::new();
        let mut last = None;
        for (k, _) in rows {
            if k.as_slice() > end.as_slice() {
                return Ok((out, None));
            }
            if let Some(id) = id_at(&k, 8)
                && let Some(d) = self.by_id(id)?
            {
                out.push(d);
            }
            last = Some(k);
        }
        Ok((out, if full { last } else { None }))
    }

    /// Delivered and failed deliveries created before `cutoff`, oldest
    /// first (delivery ids are time-ordered).
    fn finished_deliveries_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self.scan(
                tables::DELIVERIES,
                &Scan {
                    limit: 512,
                    after: after.clone(),
                    ..Scan::default()
                },
            )?;
            let n = rows.len();
            for (k, v) in rows {
                let d: Delivery = codec::decode(&v)?;
                if d.created_at >= cutoff {
                    return Ok(out);
                }
                if d.status != crate::webhooks::model::DeliveryStatus::Pending {
                    out.push(d);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
                after = Some(k);
            }
            if n < 512 {
                return Ok(out);
            }
        }
    }

    // Web Push.

    fn push_subscription(&self, endpoint: &str) -> Result<Option<PushSubscription>> {
        self.get(&PushSubscription::key_of(endpoint))
    }

    /// An agent's subscriptions (one per device), in no particular order.
    fn push_subscriptions_of(&self, agent: AgentId) -> Result<Vec<PushSubscription>> {
        let rows = self.scan(
            tables::IDX_PUSH_SUBS_BY_AGENT,
            &Scan {
                prefix: id_key(agent.as_u128()).to_vec(),
                limit: usize::MAX,
                ..Scan::default()
            },
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            if let Some(s) = self.get(&k[16..])? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn push(&self, id: PushId) -> Result<Option<Push>> {
        self.by_id(id.as_u128())
    }

    /// Pushes due by `now`, soonest first, at most `limit`.
    fn pushes_due(&self, now: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<Push>> {
        self.due_under(tables::IDX_PUSHES_DUE, now, limit)
    }

    /// Pushes waiting to be sent.
    fn pushes_pending(&self) -> Result<usize> {
        Ok(self.ids_under(tables::IDX_PUSHES_DUE, &[], 8)?.len())
    }

    /// Records of a `next attempt ‖ id` queue due by `now`, soonest first,
    /// at most `limit` (the outboxes' queues).
    fn due_under<R: Record>(
        &self,
        table: Table,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<R>> {
        let end = KeyBuf::new().time(now).done();
        let rows = self.scan(
            table,
            &Scan {
                limit,
                ..Scan::default()
            },
        )?;
        let mut out = Vec::new();
        for (k, _) in rows {
            if k.as_slice() > end.as_slice() {
                break;
            }
            if let Some(id) = id_at(&k, 8)
                && let Some(r) = self.by_id(id)?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    // Email.

    fn mail(&self, id: crate::ids::MailId) -> Result<Option<crate::email::model::Mail>> {
        self.by_id(id.as_u128())
    }

    /// The pending mail waiting for this reason, if any.
    fn pending_mail(&self, key: &[u8]) -> Result<Option<crate::ids::MailId>> {
        Ok(self
            .pointer(tables::IDX_MAILS_PENDING, key)?
            .map(crate::ids::MailId::from_u128))
    }

    /// Pending mails due at `now`, soonest first, at most `limit`.
    fn mails_due(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<crate::email::model::Mail>> {
        self.due_under(tables::IDX_MAILS_DUE, now, limit)
    }

    /// Mails still waiting, in all.
    fn pending_mail_count(&self) -> Result<usize> {
        Ok(self.ids_under(tables::IDX_MAILS_DUE, &[], 8)?.len())
    }

    /// Each outbox's queue (`email`, `webhooks`, `push`): the entries
    /// waiting, and the next attempt time of the soonest.
    fn outbox_backlogs(&self) -> Result<Vec<OutboxQueue>> {
        let queues = [
            ("email", tables::IDX_MAILS_DUE),
            ("webhooks", tables::IDX_DELIVERIES_DUE),
            ("push", tables::IDX_PUSHES_DUE),
        ];
        let mut out = Vec::with_capacity(queues.len());
        for (name, table) in queues {
            let pending = self.ids_under(table, &[], 8)?.len();
            let first = self.scan(
                table,
                &Scan {
                    limit: 1,
                    ..Scan::default()
                },
            )?;
            let soonest = first.first().and_then(|(k, _)| codec::time_at(k, 0));
            out.push(OutboxQueue {
                outbox: name,
                pending,
                soonest,
            });
        }
        Ok(out)
    }

    /// An organization's mails, newest first, after the mail `after`.
    fn mails_of_org(
        &self,
        org: OrgId,
        after: Option<crate::ids::MailId>,
        limit: usize,
    ) -> Result<Vec<crate::email::model::Mail>> {
        self.newest_under(
            tables::IDX_MAILS_BY_ORG,
            org.as_u128(),
            after.map(|a| a.as_u128()),
            limit,
        )
    }

    // The audit log.

    /// An organization's entries, newest first, after the cursor.
    fn audit_events(
        &self,
        org: OrgId,
        after: Option<AuditId>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>> {
        self.newest_under(
            tables::IDX_AUDIT_BY_ORG,
            org.as_u128(),
            after.map(|a| a.as_u128()),
            limit,
        )
    }

    /// Entries of every organization older than `cutoff`, oldest first.
    fn audit_events_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>> {
        let rows = self.scan(
            tables::AUDIT,
            &Scan {
                limit: usize::MAX,
                ..Scan::default()
            },
        )?;
        let mut out = Vec::new();
        for (_, v) in rows {
            let e: AuditEvent = codec::decode(&v)?;
            if e.at < cutoff {
                out.push(e);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    // Chat spaces and visitors.

    fn space(&self, id: SpaceId) -> Result<Option<ChatSpace>> {
        self.by_id(id.as_u128())
    }

    /// The organization a space is of (which never changes), without
    /// decoding the rest of the space: the one field is all a write needs
    /// to scope a thread, and a space is one of the larger records.
    fn org_of_space(&self, id: SpaceId) -> Result<Option<OrgId>> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Owner {
            organization_id: OrgId,
        }
        let owner: Option<Owner> = self.value(ChatSpace::TABLE, &id_key(id.as_u128()))?;
        Ok(owner.map(|o| o.organization_id))
    }

    fn space_by_key(&self, widget_key: &str) -> Result<Option<ChatSpace>> {
        match self.pointer(tables::IDX_SPACE_KEY, widget_key.as_bytes())? {
            Some(id) => self.by_id(id),
            None => Ok(None),
        }
    }

    fn spaces_of_org(&self, org: OrgId) -> Result<Vec<ChatSpace>> {
        self.records_under(tables::IDX_SPACES_BY_ORG, org.as_u128())
    }

    fn all_spaces(&self) -> Result<Vec<ChatSpace>> {
        let rows = self.scan(
            tables::SPACES,
            &Scan {
                limit: usize::MAX,
                ..Scan::default()
            },
        )?;
        rows.iter().map(|(_, v)| codec::decode(v)).collect()
    }

    /// Threads of a space in one status.
    fn count_threads(&self, space: SpaceId, status: ThreadStatus) -> Result<usize> {
        let prefix = records::thread_space_prefix(space.as_u128(), status);
        Ok(self
            .ids_under(tables::IDX_THREADS_BY_SPACE, &prefix, 0)?
            .len())
    }

    fn visitor(&self, id: VisitorId) -> Result<Option<Visitor>> {
        self.by_id(id.as_u128())
    }

    fn visitors_of_space(&self, space: SpaceId) -> Result<Vec<Visitor>> {
        self.records_under(tables::IDX_VISITORS_BY_SPACE, space.as_u128())
    }

    /// The visitor of `space` verified as `external_id`, if any.
    fn verified_visitor(&self, space: SpaceId, external_id: &str) -> Result<Option<Visitor>> {
        let key = records::visitor_verified_key(space.as_u128(), external_id);
        match self.pointer(tables::IDX_VISITOR_VERIFIED, &key)? {
            Some(id) => self.by_id(id),
            None => Ok(None),
        }
    }

    fn visitor_by_token_hash(&self, hash: &[u8]) -> Result<Option<Visitor>> {
        match self.pointer(tables::IDX_VISITOR_TOKEN, hash)? {
            Some(id) => self.by_id(id),
            None => Ok(None),
        }
    }

    // Threads.

    fn thread(&self, id: ThreadId) -> Result<Option<Thread>> {
        self.by_id(id.as_u128())
    }

    /// A visitor's threads, newest first.
    fn threads_of_visitor(&self, visitor: VisitorId) -> Result<Vec<Thread>> {
        let mut threads: Vec<Thread> =
            self.records_under(tables::IDX_THREADS_BY_VISITOR, visitor.as_u128())?;
        threads.reverse();
        Ok(threads)
    }

    fn thread_by_ref(&self, space: SpaceId, kind: &str, id: &str) -> Result<Option<Thread>> {
        let key = records::thread_ref_key(space.as_u128(), kind, id);
        match self.pointer(tables::IDX_THREADS_BY_REF, &key)? {
            Some(id) => self.by_id(id),
            None => Ok(None),
        }
    }

    /// Threads of the given spaces and statuses, most recent activity first,
    /// that pass `keep`; `limit` of them after `cursor`.
    fn threads_in_spaces(
        &self,
        spaces: &[SpaceId],
        statuses: &[ThreadStatus],
        cursor: Option<ThreadCursor>,
        limit: usize,
        keep: &dyn Fn(&Thread) -> bool,
    ) -> Result<Page<Thread>> {
        let prefixes = spaces
            .iter()
            .flat_map(|s| {
                statuses
                    .iter()
                    .map(|st| records::thread_space_prefix(s.as_u128(), *st))
            })
            .collect();
        merge_by_activity(
            self,
            tables::IDX_THREADS_BY_SPACE,
            prefixes,
            cursor,
            limit,
            keep,
        )
    }

    /// Threads assigned to `agent` in the given statuses, most recent first.
    fn threads_of_agent(
        &self,
        agent: AgentId,
        statuses: &[ThreadStatus],
        cursor: Option<ThreadCursor>,
        limit: usize,
        keep: &dyn Fn(&Thread) -> bool,
    ) -> Result<Page<Thread>> {
        let prefixes = statuses
            .iter()
            .map(|st| records::thread_agent_prefix(agent.as_u128(), *st))
            .collect();
        merge_by_activity(
            self,
            tables::IDX_THREADS_BY_AGENT,
            prefixes,
            cursor,
            limit,
            keep,
        )
    }

    // Messages.

    fn message(&self, id: MessageId) -> Result<Option<Message>> {
        match self.pointer(tables::IDX_MESSAGE_THREAD, &id_key(id.as_u128()))? {
            Some(thread) => self.get(&records::message_key(thread, id.as_u128())),
            None => Ok(None),
        }
    }

    /// Up to `limit` messages of a thread, starting after `from` (exclusive),
    /// oldest first, or newest first when `reverse`.
    fn messages(
        &self,
        thread: ThreadId,
        from: Option<MessageId>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let prefix = id_key(thread.as_u128()).to_vec();
        let rows = self.scan(
            tables::MESSAGES,
            &Scan {
                after: from.map(|m| records::message_key(thread.as_u128(), m.as_u128())),
                prefix,
                reverse,
                limit,
            },
        )?;
        rows.iter().map(|(_, v)| codec::decode(v)).collect()
    }

    /// The message a sender already stored under this idempotency key.
    fn message_by_client_id(
        &self,
        sender: uuid::Uuid,
        client_msg_id: &str,
    ) -> Result<Option<Message>> {
        let key = records::client_msg_key(sender.as_u128(), client_msg_id);
        match self.pointer(tables::IDX_CLIENT_MSG, &key)? {
            Some(id) => self.message(MessageId::from_u128(id)),
            None => Ok(None),
        }
    }

    // Templates.

    fn template(&self, id: TemplateId) -> Result<Option<Template>> {
        self.by_id(id.as_u128())
    }

    fn templates_of_org(&self, org: OrgId) -> Result<Vec<Template>> {
        self.records_under(tables::IDX_TEMPLATES_BY_ORG, org.as_u128())
    }

    // Labels.

    fn label(&self, id: LabelId) -> Result<Option<Label>> {
        self.by_id(id.as_u128())
    }

    fn labels_of_org(&self, org: OrgId) -> Result<Vec<Label>> {
        self.records_under(tables::IDX_LABELS_BY_ORG, org.as_u128())
    }

    // Attachments.

    fn attachment(&self, id: AttachmentId) -> Result<Option<Attachment>> {
        self.by_id(id.as_u128())
    }

    /// Up to `limit` kept attachments on messages of `space` created before
    /// `before`, oldest first.
    fn attachments_bound_before(
        &self,
        space: SpaceId,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentId>> {
        let prefix = id_key(space.as_u128()).to_vec();
        let end = records::attachment_time_key(space.as_u128(), before, 0);
        let rows = self.scan(
            tables::IDX_ATTACHMENTS_BY_TIME,
            &Scan {
                prefix,
                limit,
                ..Scan::default()
            },
        )?;
        Ok(rows
            .iter()
            .take_while(|(k, _)| k.as_slice() < end.as_slice())
            .filter_map(|(k, _)| id_at(k, 24).map(AttachmentId::from_u128))
            .collect())
    }

    /// Up to `limit` uploads no message carries, created before `before`,
    /// oldest first.
    fn attachments_pending_before(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentId>> {
        let end = time_key(before);
        let rows = self.scan(
            tables::IDX_ATTACHMENTS_PENDING,
            &Scan {
                limit,
                ..Scan::default()
            },
        )?;
        Ok(rows
            .iter()
            .take_while(|(k, _)| k.as_slice() < end.as_slice())
            .filter_map(|(k, _)| id_at(k, 8).map(AttachmentId::from_u128))
            .collect())
    }

    /// Uploads of `space` no message carries (the pending index holds the
    /// last day's uploads only, so this reads little).
    fn attachments_pending_in(&self, space: SpaceId) -> Result<Vec<Attachment>> {
        let rows = self.scan(
            tables::IDX_ATTACHMENTS_PENDING,
            &Scan {
                limit: usize::MAX,
                ..Scan::default()
            },
        )?;
        let mut out = Vec::new();
        for id in rows.iter().filter_map(|(k, _)| id_at(k, 8)) {
            if let Some(a) = self.by_id::<Attachment>(id)?
                && a.chat_space_id == space
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The uploads no message carries yet that `uploader` holds.
    fn pending_uploads_of(
        &self,
        uploader: &crate::attachments::model::Uploader,
    ) -> Result<Vec<Attachment>> {
        let prefix = records::uploader_prefix(uploader);
        let mut out = Vec::new();
        for id in self.ids_under(tables::IDX_PENDING_BY_UPLOADER, &prefix, prefix.len())? {
            if let Some(a) = self.by_id::<Attachment>(id)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// How many uploads no message carries `uploader` holds, counting up
    /// to `limit`.
    fn pending_uploads(
        &self,
        uploader: &crate::attachments::model::Uploader,
        limit: usize,
    ) -> Result<usize> {
        let rows = self.scan(
            tables::IDX_PENDING_BY_UPLOADER,
            &Scan {
                prefix: records::uploader_prefix(uploader),
                limit,
                ..Scan::default()
            },
        )?;
        Ok(rows.len())
    }
}

/// Merges several "… ‖ last activity ‖ thread" index ranges, newest first.
fn merge_by_activity<R: Reader + ?Sized>(
    reader: &R,
    table: Table,
    prefixes: Vec<Vec<u8>>,
    cursor: Option<ThreadCursor>,
    limit: usize,
    keep: &dyn Fn(&Thread) -> bool,
) -> Result<Page<Thread>> {
    struct Lane {
        prefix: Vec<u8>,
        buffer: std::collections::VecDeque<ThreadCursor>,
        after: Option<Vec<u8>>,
        exhausted: bool,
    }
    let mut lanes: Vec<Lane> = prefixes
        .into_iter()
        .map(|prefix| Lane {
            after: cursor.map(|c| c.index_key(&prefix)),
            prefix,
            buffer: Default::default(),
            exhausted: false,
        })
        .collect();
    let mut items = Vec::new();
    let mut last = None;
    while items.len() < limit {
        for lane in lanes
            .iter_mut()
            .filter(|l| l.buffer.is_empty() && !l.exhausted)
        {
            let rows = reader.scan(
                table,
                &Scan {
                    prefix: lane.prefix.clone(),
                    after: lane.after.clone(),
                    reverse: true,
                    limit: CHUNK,
                },
            )?;
            lane.exhausted = rows.len() < CHUNK;
            if let Some((k, _)) = rows.last() {
                lane.after = Some(k.clone());
            }
            let plen = lane.prefix.len();
            lane.buffer.extend(
                rows.iter()
                    .filter_map(|(k, _)| ThreadCursor::from_index_key(k, plen)),
            );
        }
        let best = lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.buffer.front().map(|c| (i, (c.micros, c.id))))
            .max_by_key(|(_, k)| *k);
        let Some((i, _)) = best else {
            return Ok(Page {
                items,
                next_cursor: None,
            });
        };
        let position = lanes[i].buffer.pop_front().expect("front exists");
        last = Some(position);
        if let Some(thread) = reader.thread(position.id)?
            && keep(&thread)
        {
            items.push(thread);
        }
    }
    let more = lanes.iter().any(|l| !l.buffer.is_empty() || !l.exhausted);
    Ok(Page {
        items,
        next_cursor: if more { last.map(|c| c.encode()) } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spaces::model::SpaceSettings;

    /// The organization of a space read on its own, in a snapshot and in
    /// a write, as the whole space has it; an unknown space has none.
    #[tokio::test]
    async fn a_space_names_its_organization_without_the_rest_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db.redb"), 16).unwrap();
        let space = ChatSpace {
            id: SpaceId::new(),
            organization_id: OrgId::new(),
            name: "Shop".into(),
            widget_key: "wk_test".into(),
            allowed_domains: vec!["example.com".into()],
            settings: SpaceSettings::default(),
            created_at: chrono::Utc::now(),
        };
        let (id, org) = (space.id, space.organization_id);
        let in_write = store
            .write(move |tx| {
                tx.put(&space)?;
                tx.org_of_space(id)
            })
            .await
            .unwrap();
        assert_eq!(in_write, Some(org));
        let read = store.read().unwrap();
        assert_eq!(read.org_of_space(id).unwrap(), Some(org));
        assert_eq!(
            read.org_of_space(id).unwrap(),
            read.space(id).unwrap().map(|s| s.organization_id)
        );
        assert_eq!(read.org_of_space(SpaceId::new()).unwrap(), None);
    }
}
