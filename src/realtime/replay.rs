//! Replays missed messages from storage: for `resume {after}` and after a
//! connection lagged. Storage is the source of truth; the hub only speeds
//! things up.

use serde_json::json;

use crate::ids::{MemberId, MessageId, SpaceId, VisitorId};
use crate::messages::model::Message;
use crate::realtime::dispatch::{message_kind, thread_json};
use crate::realtime::protocol::frame;
use crate::store::{self, ReadTx, Reader};
use crate::threads::model::{Thread, ThreadStatus};

/// Most messages one replay sends; beyond it the client refetches instead.
pub const MAX_REPLAY: usize = 2000;

/// Milliseconds since the epoch in a UUIDv7.
fn id_millis(id: MessageId) -> i64 {
    id.0.get_timestamp()
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            secs as i64 * 1000 + (nanos / 1_000_000) as i64
        })
        .unwrap_or(0)
}

fn after_of(
    thread_messages: Vec<Message>,
    after: Option<MessageId>,
) -> impl Iterator<Item = Message> {
    thread_messages
        .into_iter()
        .filter(move |m| after.is_none_or(|a| m.id > a))
}

/// A visitor's messages after `after` (all of the current thread when
/// None), oldest first, as widget frames. None when there are too many.
pub fn for_visitor(
    read: &ReadTx,
    visitor: VisitorId,
    after: Option<MessageId>,
) -> store::Result<Option<Vec<(MessageId, String)>>> {
    let threads = read.threads_of_visitor(visitor)?;
    let threads: Vec<_> = match after {
        // Only the current thread when starting fresh.
        None => threads.into_iter().take(1).collect(),
        Some(a) => {
            let since = id_millis(a);
            threads
                .into_iter()
                .filter(|t| {
                    t.last_activity_at.timestamp_millis() >= since
                        || t.updated_at.timestamp_millis() >= since
                })
                .collect()
        }
    };
    let mut out: Vec<Message> = Vec::new();
    for t in &threads {
        let mut from = after;
        loop {
            let batch = read.messages(t.id, from, false, 512)?;
            let n = batch.len();
            from = batch.last().map(|m| m.id).or(from);
            out.extend(after_of(batch, after).filter(Message::visible_to_visitor));
            if out.len() > MAX_REPLAY {
                return Ok(None);
            }
            if n < 512 {
                break;
            }
        }
    }
    out.sort_by_key(|m| m.id);
    Ok(Some(
        out.into_iter()
            .map(|m| {
                let m = m.redacted();
                (m.id, frame(message_kind(&m), json!({ "message": m })))
            })
            .collect(),
    ))
}

/// Messages of the given spaces' threads that `wanted` lets through, after
/// `after`, oldest first, as agent frames. None when there are too many.
pub fn for_agent(
    read: &ReadTx,
    spaces: &[SpaceId],
    after: MessageId,
    wanted: &dyn Fn(&Thread) -> bool,
) -> store::Result<Option<Vec<(MessageId, String)>>> {
    let found = missed(read, spaces, after, wanted, false)?;
    Ok(found.map(|items| {
        items
            .into_iter()
            .map(|(m, t)| {
                let thread = thread_json(read, &t);
                (
                    m.id,
                    frame(message_kind(&m), json!({ "message": m, "thread": thread })),
                )
            })
            .collect()
    }))
}

/// A member's missed messages of the threads it takes part in, after
/// `after`, oldest first, as member frames (no internal notes).
pub fn for_member(
    read: &ReadTx,
    spaces: &[SpaceId],
    member: MemberId,
    after: MessageId,
) -> store::Result<Option<Vec<(MessageId, String)>>> {
    let found = missed(read, spaces, after, &|t| t.has_member(member), true)?;
    Ok(found.map(|items| {
        items
            .into_iter()
            .map(|(m, t)| {
                (
                    m.id,
                    frame("message:new", json!({ "dialogId": t.id, "message": m })),
                )
            })
            .collect()
    }))
}

/// The messages after `after` of the threads `wanted` lets through,
/// redacted, oldest first; None when there are too many.
fn missed(
    read: &ReadTx,
    spaces: &[SpaceId],
    after: MessageId,
    wanted: &dyn Fn(&Thread) -> bool,
    outsider: bool,
) -> store::Result<Option<Vec<(Message, Thread)>>> {
    let since = id_millis(after) - 1000;
    let threads = read.threads_in_spaces(spaces, &ThreadStatus::ALL, None, usize::MAX, &|t| {
        (t.last_activity_at.timestamp_millis() >= since || t.updated_at.timestamp_millis() >= since)
            && wanted(t)
    })?;
    let mut out = Vec::new();
    for t in &threads.items {
        let mut from = Some(after);
        loop {
            let batch = read.messages(t.id, from, false, 512)?;
            let n = batch.len();
            from = batch.last().map(|m| m.id).or(from);
            for m in batch
                .into_iter()
                .filter(|m| m.id > after && (!outsider || m.visible_to_visitor()))
            {
                out.push((m.redacted(), t.clone()));
            }
            if out.len() > MAX_REPLAY {
                return Ok(None);
            }
            if n < 512 {
                break;
            }
        }
    }
    out.sort_by_key(|(m, _)| m.id);
    Ok(Some(out))
}
