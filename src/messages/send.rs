//! The one home of sending. Every way a message enters My-Chat — the
//! widget's REST and socket, the agent app's REST and socket, the offline
//! form, the appliance's own notes — calls one function here per author
//! kind. Each validates, writes the message and its thread in one write
//! closure, emits the commit-ordered events, and returns the
//! acknowledgement once the commit is durable. Transports only parse,
//! authorize and render.

use chrono::Utc;

use crate::accounts::model::Role;
use crate::attachments::binding as attachments;
use crate::attachments::model::Attachment;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::ids::{ApiTokenId, AttachmentId, MessageId, OrgId, ThreadId, VisitorId};
use crate::integrations::model::{Member, MemberScopes, may_join};
use crate::messages::history::{Happened, HistoryEvent};
use crate::messages::model::{Author, MAX_CLIENT_MSG_ID, MAX_CONTENT_CHARS, Message};
use crate::spaces::model::{ChatSpace, RequireVisitorData};
use crate::state::AppState;
use crate::store::{Reader, WriteTx};
use crate::threads::model::{LastMessage, ReadMarker, Thread};
use crate::threads::rules::{
    assign, ensure_open, holder_error, new_thread, open_thread_of, thread_of_org, visible_thread,
};

/// The subject of a thread the offline form started.
pub const OFFLINE_SUBJECT: &str = "Offline message";

/// A message to send, validated.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub content: String,
    pub client_msg_id: Option<String>,
    pub reply_to_id: Option<MessageId>,
    pub internal: bool,
    pub attachments: Vec<AttachmentId>,
}

impl NewMessage {
    pub fn parse(
        content: &str,
        client_msg_id: Option<&str>,
        reply_to_id: Option<MessageId>,
        internal: bool,
        attachments: Vec<AttachmentId>,
    ) -> AppResult<NewMessage> {
        let content = content.trim_end();
        let content = content.trim_start_matches(['\n', '\r']);
        if content.chars().count() > MAX_CONTENT_CHARS {
            return Err(AppError::validation(format!(
                "content must have at most {MAX_CONTENT_CHARS} characters"
            )));
        }
        if content.trim().is_empty() && attachments.is_empty() {
            return Err(AppError::validation("content must not be empty"));
        }
        let client_msg_id = match client_msg_id {
            Some(c)
                if c.is_empty()
                    || c.len() > MAX_CLIENT_MSG_ID
                    || c.chars().any(|ch| ch.is_control()) =>
            {
                return Err(AppError::validation(format!(
                    "clientMsgId must have 1 to {MAX_CLIENT_MSG_ID} printable characters"
                )));
            }
            other => other.map(str::to_owned),
        };
        crate::validate::list_len("attachmentIds", &attachments, 10)?;
        Ok(NewMessage {
            content: content.to_owned(),
            client_msg_id,
            reply_to_id,
            internal,
            attachments,
        })
    }
}

/// What a send did: the acknowledgement.
#[derive(Clone, Debug)]
pub struct Sent {
    pub thread: Thread,
    pub message: Message,
    /// False when the clientMsgId was seen before and the original came back.
    pub created: bool,
    /// True when this message started a new thread.
    pub new_thread: bool,
}

impl Sent {
    fn original(thread: Thread, message: Message) -> Sent {
        Sent {
            thread,
            message,
            created: false,
            new_thread: false,
        }
    }
}

fn session_gone() -> AppError {
    AppError::Unauthorized("visitor session ended".into())
}

/// A visitor writes (widget REST and socket): into their open thread, or a
/// new one when the last one ended. The space's attachment policy, its
/// "email before the first message" rule and the visitor's message rate
/// apply. Idempotent by clientMsgId.
pub async fn from_visitor(
    state: &AppState,
    visitor: VisitorId,
    space: &ChatSpace,
    new: NewMessage,
) -> AppResult<Sent> {
    let policy = &space.settings.attachments;
    if !new.attachments.is_empty() && !policy.allowed {
        return Err(AppError::validation("attachments are not allowed here"));
    }
    crate::validate::list_len("attachmentIds", &new.attachments, policy.max_count as usize)?;
    // Read now: the visitor may have left an email since their session began.
    let current = state
        .store
        .read()?
        .visitor(visitor)?
        .ok_or_else(session_gone)?;
    crate::widget::identity::check_may_send(space, &current)?;
    if space.settings.require_visitor_data == RequireVisitorData::BeforeFirstMessage
        && current.email.is_none()
    {
        return Err(AppError::Unprocessable(
            "this chat needs your email before the first message".into(),
        ));
    }
    state.limits.visitor_messages.check(&visitor.to_string())?;
    visitor_write(state, visitor, space.id, new, None).await
}

/// A message left through the offline form.
#[derive(Clone, Debug)]
pub struct OfflineMessage {
    pub name: Option<String>,
    pub email: String,
    pub message: NewMessage,
}

/// The offline form: the visitor's contact and the message in one write,
/// so agents never see an offline thread without the address to answer it
/// at. It goes into the visitor's open thread when there is one, else
/// starts a thread with the offline subject.
pub async fn offline_from_visitor(
    state: &AppState,
    visitor: VisitorId,
    space: &ChatSpace,
    form: OfflineMessage,
) -> AppResult<Sent> {
    if !space.settings.offline_messages {
        return Err(AppError::conflict(
            "offline_messages_disabled",
            "this chat does not take offline messages",
        ));
    }
    let current = state
        .store
        .read()?
        .visitor(visitor)?
        .ok_or_else(session_gone)?;
    crate::widget::identity::check_may_send(space, &current)?;
    state.limits.visitor_messages.check(&visitor.to_string())?;
    let contact = Contact {
        name: form.name,
        email: form.email,
    };
    visitor_write(state, visitor, space.id, form.message, Some(contact)).await
}

/// Contact details the offline form leaves with its message.
#[derive(Clone, Debug)]
struct Contact {
    name: Option<String>,
    email: String,
}

/// The visitor's write, shared by the chat and the offline form.
async fn visitor_write(
    state: &AppState,
    visitor_id: VisitorId,
    space_id: crate::ids::SpaceId,
    new: NewMessage,
    contact: Option<Contact>,
) -> AppResult<Sent> {
    let hub = state.hub.clone();
    state
        .write(move |tx| {
            // Read inside the write, so concurrent profile updates survive.
            let mut visitor = tx.visitor(visitor_id)?.ok_or_else(session_gone)?;
            if let Some(c) = &contact {
                if c.name.is_some() {
                    visitor.display_name = c.name.clone();
                }
                visitor.email = Some(c.email.clone());
                tx.put(&visitor)?;
            }
            let author = Author::Visitor(visitor);
            if let Some(original) = existing(tx, &author, &new)? {
                let thread = tx
                    .thread(original.thread_id)?
                    .ok_or(AppError::NotFound("thread"))?;
                return Ok(Sent::original(thread, original));
            }
            let (mut thread, new_thread) = match open_thread_of(tx, visitor_id)? {
                Some(t) => (t, false),
                None => (new_thread(space_id, visitor_id), true),
            };
            if contact.is_some() && thread.subject.is_none() {
                thread.subject = Some(OFFLINE_SUBJECT.to_owned());
            }
            let message = append(tx, &mut thread, &author, &new)?;
            if new_thread {
                let space = tx.space(space_id)?.ok_or_else(session_gone)?;
                crate::threads::assignment::on_new_thread(tx, &hub, &space, &mut thread)?;
            }
            tx.put(&thread)?;
            if new_thread {
                tx.emit(Event::ThreadNew {
                    thread: thread.clone(),
                });
            }
            tx.emit(Event::MessageNew {
                message: message.clone(),
                thread: thread.clone(),
            });
            if contact.is_some() {
                tx.emit(Event::OfflineMessage {
                    thread: thread.clone(),
                    message: message.clone(),
                });
            }
            Ok(Sent {
                thread,
                message,
                created: true,
                new_thread,
            })
        })
        .await
}

/// An agent writes into a thread (agent REST and socket). Replying to an
/// unassigned thread claims it; a thread another agent holds takes only
/// internal notes (admins may always write). Idempotent by clientMsgId.
pub async fn from_agent(
    state: &AppState,
    caller: &Caller,
    id: ThreadId,
    new: NewMessage,
) -> AppResult<Sent> {
    let agent = caller.agent.clone();
    // The organization's backend writes under its token's name, may write
    // into any thread, and never claims one.
    let (author, integration) = match &caller.token {
        Some(t) => (
            Author::Integration {
                token: t.id,
                name: t.name.clone(),
            },
            true,
        ),
        None => (Author::Agent(agent.clone()), false),
    };
    let access = caller.access();
    state
        .write(move |tx| {
            let mut thread = visible_thread(tx, agent.organization_id, &access, id)?;
            if let Some(original) = existing_in(tx, &author, &new, thread.id)? {
                return Ok(Sent::original(thread, original));
            }
            let mut claimed = false;
            if integration || thread.is_object_bound() {
                // Staff posts into object-bound threads claim nothing.
                ensure_open(&thread)?;
            } else if !new.internal {
                ensure_open(&thread)?;
                match thread.assigned_agent_id {
                    None if !access.may_claim(&thread) => {
                        return Err(AppError::Forbidden(
                            "this thread is for another team".into(),
                        ));
                    }
                    None => {
                        assign(&mut thread, agent.id);
                        history(tx, &mut thread, HistoryEvent::by(Happened::Claimed, &agent))?;
                        claimed = true;
                    }
                    Some(holder) if holder != agent.id && agent.role < Role::Admin => {
                        return Err(holder_error(tx, holder));
                    }
                    Some(_) => {}
                }
            }
            let message = append(tx, &mut thread, &author, &new)?;
            tx.put(&thread)?;
            if claimed {
                tx.emit(Event::ThreadUpdated {
                    thread: thread.clone(),
                });
            }
            tx.emit(Event::MessageNew {
                message: message.clone(),
                thread: thread.clone(),
            });
            Ok(Sent {
                thread,
                message,
                created: true,
                new_thread: false,
            })
        })
        .await
}

/// An agent starts a conversation with a known visitor of its
/// organization: a new thread it holds, with its first message (or a
/// system line saying the conversation started).
pub async fn agent_starts(
    state: &AppState,
    caller: &Caller,
    visitor: VisitorId,
    subject: Option<String>,
    first: Option<NewMessage>,
) -> AppResult<Sent> {
    if caller.is_integration() {
        return Err(AppError::Forbidden(
            "an API token cannot hold threads".into(),
        ));
    }
    let agent = caller.agent.clone();
    let author = Author::Agent(agent.clone());
    state
        .write(move |tx| {
            let v = tx.visitor(visitor)?.ok_or(AppError::NotFound("visitor"))?;
            let space = tx
                .space(v.chat_space_id)?
                .ok_or(AppError::NotFound("visitor"))?;
            if space.organization_id != agent.organization_id || !agent.works_in(space.id) {
                return Err(AppError::NotFound("visitor"));
            }
            if let Some(open) = open_thread_of(tx, visitor)? {
                return Err(AppError::conflict(
                    "thread_open",
                    format!("the visitor already has an open thread {}", open.id),
                ));
            }
            let mut thread = new_thread(space.id, visitor);
            thread.subject = subject.clone();
            assign(&mut thread, agent.id);
            let message = match &first {
                Some(m) => append(tx, &mut thread, &author, m)?,
                None => {
                    let system =
                        NewMessage::parse("Conversation started", None, None, false, Vec::new())?;
                    append(tx, &mut thread, &Author::System, &system)?
                }
            };
            tx.put(&thread)?;
            tx.emit(Event::ThreadNew {
                thread: thread.clone(),
            });
            tx.emit(Event::MessageNew {
                message: message.clone(),
                thread: thread.clone(),
            });
            Ok(Sent {
                thread,
                message,
                created: true,
                new_thread: true,
            })
        })
        .await
}

/// A member writes into an object-bound thread it takes part in (member
/// REST and socket). A potential member gets 403 until it joins; any
/// other thread is a 404. Idempotent by clientMsgId.
pub async fn from_member(
    state: &AppState,
    member: &Member,
    id: ThreadId,
    scopes: &MemberScopes,
    new: NewMessage,
) -> AppResult<Sent> {
    if new.internal {
        return Err(AppError::validation("members cannot write internal notes"));
    }
    let (author, member, scopes) = (
        Author::Member(member.clone()),
        member.clone(),
        scopes.clone(),
    );
    state
        .write(move |tx| {
            let thread = member_thread(tx, &member, &scopes, id)?;
            if !thread.has_member(member.id) {
                return Err(AppError::Forbidden(
                    "join the conversation before writing".into(),
                ));
            }
            if let Some(original) = existing_in(tx, &author, &new, thread.id)? {
                return Ok(Sent::original(thread, original));
            }
            ensure_open(&thread)?;
            post(tx, thread, &author, &new)
        })
        .await
}

/// An object-bound thread a member takes part in or may join; else 404,
/// so a member learns nothing of threads outside its reach.
pub fn member_thread<R: Reader + ?Sized>(
    read: &R,
    member: &Member,
    scopes: &MemberScopes,
    id: ThreadId,
) -> AppResult<Thread> {
    let not_found = || AppError::NotFound("dialog");
    let thread = thread_of_org(read, member.organization_id, id).map_err(|_| not_found())?;
    let reachable = thread
        .membership
        .as_ref()
        .is_some_and(|m| m.members.contains(&member.id) || may_join(&m.access_scopes, scopes));
    if !reachable {
        return Err(not_found());
    }
    Ok(thread)
}

/// The integrator's backend posts into an object-bound thread of its
/// organization (management API): a system message, idempotent per token.
pub async fn from_backend(
    state: &AppState,
    org: OrgId,
    token: ApiTokenId,
    id: ThreadId,
    new: NewMessage,
) -> AppResult<Sent> {
    let author = Author::Backend { token };
    state
        .write(move |tx| {
            let thread = thread_of_org(tx, org, id)?;
            if !thread.is_object_bound() {
                return Err(AppError::NotFound("thread"));
            }
            if let Some(original) = existing_in(tx, &author, &new, thread.id)? {
                return Ok(Sent::original(thread, original));
            }
            post(tx, thread, &author, &new)
        })
        .await
}

/// Appends to an existing thread, stores it and tells live clients.
fn post(
    tx: &mut WriteTx<'_>,
    mut thread: Thread,
    author: &Author,
    new: &NewMessage,
) -> AppResult<Sent> {
    let message = append(tx, &mut thread, author, new)?;
    tx.put(&thread)?;
    tx.emit(Event::MessageNew {
        message: message.clone(),
        thread: thread.clone(),
    });
    Ok(Sent {
        thread,
        message,
        created: true,
        new_thread: false,
    })
}

/// The appliance's own internal note (e.g. "File expired"), inside a write
/// the caller runs; the caller puts the thread.
pub fn system_note(tx: &mut WriteTx<'_>, thread: &mut Thread, content: &str) -> AppResult<Message> {
    let note = NewMessage::parse(content, None, None, true, Vec::new())?;
    let message = append(tx, thread, &Author::System, &note)?;
    tx.emit(Event::MessageNew {
        message: message.clone(),
        thread: thread.clone(),
    });
    Ok(message)
}

/// A line of the conversation's history (claimed, closed, …) inside a
/// write the caller runs; the caller puts the thread.
pub fn history(
    tx: &mut WriteTx<'_>,
    thread: &mut Thread,
    event: HistoryEvent,
) -> AppResult<Message> {
    let note = NewMessage::parse(&event.text(), None, None, true, Vec::new())?;
    let mut message = append(tx, thread, &Author::System, &note)?;
    message.event = Some(event);
    tx.put(&message)?;
    tx.emit(Event::MessageNew {
        message: message.clone(),
        thread: thread.clone(),
    });
    Ok(message)
}

/// The message a sender already stored under this key, if any: a retry
/// gets the original back and nothing is written.
pub fn existing<R: Reader + ?Sized>(
    read: &R,
    author: &Author,
    new: &NewMessage,
) -> AppResult<Option<Message>> {
    match &new.client_msg_id {
        Some(cid) => Ok(read.message_by_client_id(author.sender_id(), cid)?),
        None => Ok(None),
    }
}

/// [`existing`] for a send into one thread: the key already used for a
/// message of another thread is a conflict, not that message.
fn existing_in<R: Reader + ?Sized>(
    read: &R,
    author: &Author,
    new: &NewMessage,
    thread: ThreadId,
) -> AppResult<Option<Message>> {
    match existing(read, author, new)? {
        Some(m) if m.thread_id != thread => Err(AppError::conflict(
            "client_msg_id_used",
            "this clientMsgId was already used for a message of another conversation",
        )),
        other => Ok(other),
    }
}

/// Appends a message to `thread` inside a write and updates the thread's
/// counters, preview and the sender's read marker. The caller checks
/// idempotency ([`existing`]) and permissions first, and puts the thread.
pub fn append(
    tx: &mut WriteTx<'_>,
    thread: &mut Thread,
    author: &Author,
    new: &NewMessage,
) -> AppResult<Message> {
    if let Some(reply_to) = new.reply_to_id {
        let target = tx.message(reply_to)?;
        let visible = target.is_some_and(|m| {
            m.thread_id == thread.id && (!author.is_outsider() || m.visible_to_visitor())
        });
        if !visible {
            return Err(AppError::validation(
                "replyToId is not a message of this thread",
            ));
        }
    }
    let files = attachments::check_attachable(tx, thread, author, &new.attachments)?;
    let now = Utc::now();
    let message = Message {
        id: MessageId::new(),
        thread_id: thread.id,
        sender_type: author.sender_type(),
        sender_id: author.sender_id(),
        sender_name: author.name(),
        content: new.content.clone(),
        internal: new.internal,
        reply_to_id: new.reply_to_id,
        attachments: files.iter().map(Attachment::to_ref).collect(),
        client_msg_id: new.client_msg_id.clone(),
        created_at: now,
        edited_at: None,
        deleted_at: None,
        event: None,
    };
    tx.put(&message)?;
    attachments::bind(tx, files, &message)?;
    if !message.internal {
        match author {
            Author::Visitor(_) => thread.visitor_message_count += 1,
            _ => thread.agent_message_count += 1,
        }
        thread.last_message = Some(LastMessage {
            id: message.id,
            sender_type: message.sender_type,
            preview: message.preview(),
            created_at: now,
        });
        thread.last_activity_at = now;
        // Whoever writes has read everything before it.
        match author {
            Author::Visitor(_) => {
                thread.visitor_read = Some(ReadMarker {
                    up_to: message.id,
                    seen: thread.agent_message_count,
                    at: now,
                });
            }
            Author::Agent(a) => {
                thread.agent_reads.insert(
                    a.id,
                    ReadMarker {
                        up_to: message.id,
                        seen: thread.visitor_message_count,
                        at: now,
                    },
                );
            }
            Author::Member(m) => {
                let seen = thread.visitor_message_count + thread.agent_message_count;
                if let Some(membership) = thread.membership.as_mut() {
                    membership.reads.insert(
                        m.id,
                        ReadMarker {
                            up_to: message.id,
                            seen,
                            at: now,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    thread.updated_at = now;
    Ok(message)
}
