//! The WebSocket protocol: text frames of JSON, `{"type": "...", ...}`, one
//! enum per direction and socket kind. Anything that does not parse into
//! these is answered with an `error` frame.
//!
//! Widget, client → server: `visitor:send_message {clientMsgId, content,
//! attachmentIds?, replyToId?}`, `visitor:typing {isTyping}`, `visitor:read
//! {upTo}`, `visitor:page {url, title}`, `resume {after}`, `ping`.
//! Widget, server → client: `hello {visitorId, thread, agentsOnline, open}`,
//! `message:ack {clientMsgId, message}`, `agent:message {message}`,
//! `visitor:message {message}` (the visitor's own, from another tab),
//! `message:updated {message}`, `agent:typing {isTyping, agentName}`,
//! `messages:read {upTo}`, `agents:status {online}`, `thread:updated
//! {threadId, status, agentName}`, `resumed {count}`, `resync`, `error
//! {code, message}`, `pong`.
//!
//! Agent, client → server: `auth {token}` (when the token is not in
//! `Sec-WebSocket-Protocol: bearer, <token>`), `agent:join_space
//! {chatSpaceId}`, `agent:leave_space {chatSpaceId}`, `agent:send_message
//! {threadId, clientMsgId, content, internal?, attachmentIds?, replyToId?}`,
//! `agent:typing {threadId, isTyping}`, `agent:read {threadId, upTo}`,
//! `heartbeat`, `resume {after}`.
//! Agent, server → client: `ready {agent, agentsOnline}`, `joined
//! {chatSpaceId}`, `left {chatSpaceId}`, `thread:new {thread}`,
//! `thread:updated {thread}`, `visitor:message {message, thread}`,
//! `agent:message {message, thread}`, `message:updated {message}`,
//! `message:ack {clientMsgId, message}`, `visitor:typing {threadId,
//! visitorId, isTyping}`, `agent:typing {threadId, agentId, agentName,
//! isTyping}`, `messages:read {threadId, reader, upTo}`, `agents:presence
//! {online: [{id, displayName}]}`, `visitor:presence {visitorId, online,
//! url, title}`, `labels:changed {}`, `heartbeat`, `resumed {count}`,
//! `resync`, `error`.
//!
//! After `resume {after}` each missed message arrives once, but a message
//! delivered live while the replay is read (on a cluster: one another node
//! committed just before the socket opened) can come before older replayed
//! ones. Clients place messages by id (UUIDv7, time-ordered) and resume
//! after the largest id they hold.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::ids::{AttachmentId, MessageId, SpaceId, ThreadId};

/// Largest frame a client may send.
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum WidgetIn {
    #[serde(rename = "visitor:send_message")]
    SendMessage {
        client_msg_id: String,
        content: String,
        #[serde(default)]
        attachment_ids: Vec<AttachmentId>,
        reply_to_id: Option<MessageId>,
    },
    #[serde(rename = "visitor:typing")]
    Typing { is_typing: bool },
    #[serde(rename = "visitor:read")]
    Read { up_to: MessageId },
    #[serde(rename = "visitor:page")]
    Page { url: String, title: Option<String> },
    #[serde(rename = "resume")]
    Resume { after: Option<MessageId> },
    #[serde(rename = "ping")]
    Ping {},
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum AgentIn {
    #[serde(rename = "auth")]
    Auth { token: String },
    #[serde(rename = "agent:join_space")]
    JoinSpace { chat_space_id: SpaceId },
    #[serde(rename = "agent:leave_space")]
    LeaveSpace { chat_space_id: SpaceId },
    #[serde(rename = "agent:send_message")]
    SendMessage {
        thread_id: ThreadId,
        client_msg_id: String,
        content: String,
        #[serde(default)]
        internal: bool,
        #[serde(default)]
        attachment_ids: Vec<AttachmentId>,
        reply_to_id: Option<MessageId>,
    },
    #[serde(rename = "agent:typing")]
    Typing {
        thread_id: ThreadId,
        is_typing: bool,
    },
    #[serde(rename = "agent:read")]
    Read {
        thread_id: ThreadId,
        up_to: MessageId,
    },
    #[serde(rename = "heartbeat")]
    Heartbeat {},
    #[serde(rename = "resume")]
    Resume { after: Option<MessageId> },
}

/// What a member's socket (`/ws/member`) may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum MemberIn {
    #[serde(rename = "auth")]
    Auth { token: String },
    #[serde(rename = "member:send_message")]
    SendMessage {
        dialog_id: ThreadId,
        client_msg_id: String,
        content: String,
        reply_to_id: Option<MessageId>,
        #[serde(default)]
        attachment_ids: Vec<AttachmentId>,
    },
    #[serde(rename = "member:typing")]
    Typing {
        dialog_id: ThreadId,
        is_typing: bool,
    },
    #[serde(rename = "member:read")]
    Read {
        dialog_id: ThreadId,
        up_to: MessageId,
    },
    #[serde(rename = "resume")]
    Resume { after: Option<MessageId> },
    #[serde(rename = "ping")]
    Ping {},
}

/// Parses a client frame, or says in one line what is wrong with it.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (&'static str, String)> {
    let value: Value = serde_json::from_str(text).map_err(|e| ("invalid_json", e.to_string()))?;
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Err(("invalid_frame", "a frame needs a string \"type\"".into()));
    };
    serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("unknown variant") {
            ("unknown_type", format!("unknown frame type {kind:?}"))
        } else {
            ("invalid_frame", msg)
        }
    })
}

/// A server frame as text.
pub fn frame(kind: &str, mut body: Value) -> String {
    if let Value::Object(map) = &mut body {
        map.insert("type".into(), Value::String(kind.into()));
        return body.to_string();
    }
    json!({ "type": kind }).to_string()
}

pub fn error(code: &str, message: &str) -> String {
    frame("error", json!({ "code": code, "message": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_or_say_why_not() {
        let ok: WidgetIn = parse(r#"{"type":"visitor:typing","isTyping":true}"#).unwrap();
        assert!(matches!(ok, WidgetIn::Typing { is_typing: true }));
        assert_eq!(parse::<WidgetIn>("{nope").unwrap_err().0, "invalid_json");
        assert_eq!(
            parse::<WidgetIn>(r#"{"type":"x:y"}"#).unwrap_err().0,
            "unknown_type"
        );
        assert_eq!(
            parse::<WidgetIn>(r#"{"kind":1}"#).unwrap_err().0,
            "invalid_frame"
        );
        assert_eq!(
            parse::<WidgetIn>(r#"{"type":"visitor:typing","isTyping":"yes"}"#)
                .unwrap_err()
                .0,
            "invalid_frame"
        );
        let ping: WidgetIn = parse(r#"{"type":"ping"}"#).unwrap();
        assert!(matches!(ping, WidgetIn::Ping {}));
    }
}
