//! Every table of the database, in one list. All tables map bytes to bytes:
//! record tables hold encoded records under a primary key; index tables hold composite
//! keys whose byte order is the order the API lists things in.

/// A table: a name, under which every backend keeps an ordered map of
/// byte keys to byte values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Table(&'static str);

impl Table {
    pub const fn new(name: &'static str) -> Table {
        Table(name)
    }

    pub const fn name(self) -> &'static str {
        self.0
    }

    /// The table's name, a zero byte, then `key`: one key space for
    /// every table, where a table's keys are one range, in their order
    /// (names hold no zero byte).
    pub fn qualify(self, key: &[u8]) -> Vec<u8> {
        self.qualified(key).concat()
    }

    /// The parts of [`Table::qualify`]'s key, not yet put together.
    pub fn qualified(self, key: &[u8]) -> [&[u8]; 3] {
        [self.0.as_bytes(), &[0], key]
    }
}

/// Schema version, and other small values (`schema_version`, counters).
pub const META: Table = Table::new("meta");

// Records: primary key -> JSON.
pub const ORGS: Table = Table::new("orgs");
pub const AGENTS: Table = Table::new("agents");
pub const TEAMS: Table = Table::new("teams");
pub const SPACES: Table = Table::new("spaces");
pub const VISITORS: Table = Table::new("visitors");
pub const THREADS: Table = Table::new("threads");
/// Key: thread ‖ message, so one thread's messages are one ordered range.
pub const MESSAGES: Table = Table::new("messages");
pub const TEMPLATES: Table = Table::new("templates");
/// Key: sha256 of the refresh token.
pub const REFRESH_TOKENS: Table = Table::new("refresh_tokens");
/// Key: sha256 of the invite token.
pub const INVITES: Table = Table::new("invites");

// Indexes: composite key -> value (an id, or empty).
/// lower-cased email -> agent (unique)
pub const IDX_AGENT_EMAIL: Table = Table::new("idx_agent_email");
/// org ‖ agent
pub const IDX_AGENTS_BY_ORG: Table = Table::new("idx_agents_by_org");
/// org ‖ team
pub const IDX_TEAMS_BY_ORG: Table = Table::new("idx_teams_by_org");
/// widget key -> space (unique)
pub const IDX_SPACE_KEY: Table = Table::new("idx_space_key");
/// org ‖ space
pub const IDX_SPACES_BY_ORG: Table = Table::new("idx_spaces_by_org");
/// sha256 of the visitor session token -> visitor (unique)
pub const IDX_VISITOR_TOKEN: Table = Table::new("idx_visitor_token");
/// space ‖ external id -> visitor, for verified visitors only (unique)
pub const IDX_VISITOR_VERIFIED: Table = Table::new("idx_visitor_verified");
/// space ‖ visitor
pub const IDX_VISITORS_BY_SPACE: Table = Table::new("idx_visitors_by_space");
/// space ‖ status ‖ last activity ‖ thread
pub const IDX_THREADS_BY_SPACE: Table = Table::new("idx_threads_by_space");
/// visitor ‖ thread
pub const IDX_THREADS_BY_VISITOR: Table = Table::new("idx_threads_by_visitor");
/// assigned agent ‖ status ‖ last activity ‖ thread
pub const IDX_THREADS_BY_AGENT: Table = Table::new("idx_threads_by_agent");
/// space ‖ ref type ‖ 0 ‖ ref id -> thread
pub const IDX_THREADS_BY_REF: Table = Table::new("idx_threads_by_ref");
/// message -> thread
pub const IDX_MESSAGE_THREAD: Table = Table::new("idx_message_thread");
/// sender ‖ clientMsgId -> message (unique): the idempotency index
pub const IDX_CLIENT_MSG: Table = Table::new("idx_client_msg");
/// org ‖ template
pub const IDX_TEMPLATES_BY_ORG: Table = Table::new("idx_templates_by_org");

/// Attachment metadata: id -> JSON (the bytes live under `data_dir/attachments/`).
pub const ATTACHMENTS: Table = Table::new("attachments");
/// space ‖ created ‖ attachment, for attachments on a message whose file
/// is still kept: the retention job's queue.
pub const IDX_ATTACHMENTS_BY_TIME: Table = Table::new("idx_attachments_by_time");
/// created ‖ attachment, for uploads no message carries yet.
pub const IDX_ATTACHMENTS_PENDING: Table = Table::new("idx_attachments_pending");
/// uploader kind ‖ uploader ‖ attachment, for uploads no message carries
/// yet: how many each uploader holds.
pub const IDX_PENDING_BY_UPLOADER: Table = Table::new("idx_pending_by_uploader");

// Integrations.
pub const API_TOKENS: Table = Table::new("api_tokens");
/// sha256 of the token (hex) -> API token (unique)
pub const IDX_API_TOKEN_HASH: Table = Table::new("idx_api_token_hash");
/// org ‖ API token
pub const IDX_API_TOKENS_BY_ORG: Table = Table::new("idx_api_tokens_by_org");
pub const SIGNING_KEYS: Table = Table::new("signing_keys");
/// org ‖ signing key
pub const IDX_SIGNING_KEYS_BY_ORG: Table = Table::new("idx_signing_keys_by_org");
pub const MEMBERS: Table = Table::new("members");
/// org ‖ external id -> member (unique)
pub const IDX_MEMBER_EXTERNAL: Table = Table::new("idx_member_external");
/// org ‖ member
pub const IDX_MEMBERS_BY_ORG: Table = Table::new("idx_members_by_org");

// Webhooks.
pub const WEBHOOKS: Table = Table::new("webhooks");
/// org ‖ webhook
pub const IDX_WEBHOOKS_BY_ORG: Table = Table::new("idx_webhooks_by_org");
pub const DELIVERIES: Table = Table::new("deliveries");
/// webhook ‖ delivery
pub const IDX_DELIVERIES_BY_WEBHOOK: Table = Table::new("idx_deliveries_by_webhook");
/// next attempt ‖ delivery, for pending deliveries: the worker's queue
pub const IDX_DELIVERIES_DUE: Table = Table::new("idx_deliveries_due");

// Web Push.
/// sha256 of the push endpoint -> subscription
pub const PUSH_SUBSCRIPTIONS: Table = Table::new("push_subscriptions");
/// agent ‖ sha256 of the endpoint
pub const IDX_PUSH_SUBS_BY_AGENT: Table = Table::new("idx_push_subs_by_agent");
/// Pushes waiting to be sent: push -> JSON.
pub const PUSHES: Table = Table::new("pushes");
/// due ‖ push: the push worker's queue
pub const IDX_PUSHES_DUE: Table = Table::new("idx_pushes_due");

// The audit log.
pub const AUDIT: Table = Table::new("audit");
/// org ‖ entry (entries are UUIDv7: in time order)
pub const IDX_AUDIT_BY_ORG: Table = Table::new("idx_audit_by_org");

// Email: mails waiting to be sent, sent and failed.
pub const MAILS: Table = Table::new("mails");
/// next attempt ‖ mail, for pending mails: the email worker's queue
pub const IDX_MAILS_DUE: Table = Table::new("idx_mails_due");
/// what a pending mail is about (thread ‖ kind ‖ recipient) → mail, so one
/// reason waits in one mail
pub const IDX_MAILS_PENDING: Table = Table::new("idx_mails_pending");
/// org ‖ mail (UUIDv7: in time order), for the admins' outbox view
pub const IDX_MAILS_BY_ORG: Table = Table::new("idx_mails_by_org");

// Labels.
pub const LABELS: Table = Table::new("labels");
/// org ‖ label
pub const IDX_LABELS_BY_ORG: Table = Table::new("idx_labels_by_org");
// Reports, counted in the write path (`reports::outbox`).
/// thread -> what the thread adds to the report (its cell and numbers)
pub const REPORT_THREADS: Table = Table::new("report_threads");
/// org ‖ day ‖ space ‖ team ‖ agent -> counters and time histograms
pub const REPORT_CELLS: Table = Table::new("report_cells");

/// Every table, so a new database creates them all and backups copy them all.
pub const ALL: &[Table] = &[
    META,
    ORGS,
    AGENTS,
    TEAMS,
    SPACES,
    VISITORS,
    THREADS,
    MESSAGES,
    TEMPLATES,
    REFRESH_TOKENS,
    INVITES,
    IDX_AGENT_EMAIL,
    IDX_AGENTS_BY_ORG,
    IDX_TEAMS_BY_ORG,
    IDX_SPACE_KEY,
    IDX_SPACES_BY_ORG,
    IDX_VISITOR_TOKEN,
    IDX_VISITOR_VERIFIED,
    IDX_VISITORS_BY_SPACE,
    IDX_THREADS_BY_SPACE,
    IDX_THREADS_BY_VISITOR,
    IDX_THREADS_BY_AGENT,
    IDX_THREADS_BY_REF,
    IDX_MESSAGE_THREAD,
    IDX_CLIENT_MSG,
    IDX_TEMPLATES_BY_ORG,
    ATTACHMENTS,
    IDX_ATTACHMENTS_BY_TIME,
    IDX_ATTACHMENTS_PENDING,
    IDX_PENDING_BY_UPLOADER,
    API_TOKENS,
    IDX_API_TOKEN_HASH,
    IDX_API_TOKENS_BY_ORG,
    SIGNING_KEYS,
    IDX_SIGNING_KEYS_BY_ORG,
    MEMBERS,
    IDX_MEMBER_EXTERNAL,
    IDX_MEMBERS_BY_ORG,
    WEBHOOKS,
    IDX_WEBHOOKS_BY_ORG,
    DELIVERIES,
    IDX_DELIVERIES_BY_WEBHOOK,
    IDX_DELIVERIES_DUE,
    PUSH_SUBSCRIPTIONS,
    IDX_PUSH_SUBS_BY_AGENT,
    PUSHES,
    IDX_PUSHES_DUE,
    AUDIT,
    IDX_AUDIT_BY_ORG,
    MAILS,
    IDX_MAILS_DUE,
    IDX_MAILS_PENDING,
    IDX_MAILS_BY_ORG,
    LABELS,
    IDX_LABELS_BY_ORG,
    REPORT_THREADS,
    REPORT_CELLS,
];
