//! The email worker: renders each due mail from what is stored now and
//! sends it through the relay. Whether it is still needed is decided here:
//! an agent mail about a message someone has answered (or the agent read)
//! is skipped, a visitor on the site gets no mail about replies it can see,
//! an unsubscribed visitor none at all. A failed send waits and retries
//! (5 s, 10 s, 20 s… up to an hour) until `email.max_attempts`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};

use crate::email::model::{Mail, MailKind, MailStatus};
use crate::email::outbox::is_reply;
use crate::email::render::{self, Brand, Lang, Line, Rendered};
use crate::email::{one_line, recipient};
use crate::ids::{MessageId, ThreadId};
use crate::messages::model::{Message, SenderType};
use crate::realtime::hub::Topic;
use crate::state::AppState;
use crate::store::{KeyBuf, ReadTx, Reader, tables};
use crate::tasks::Tasks;
use crate::threads::rules::Access;

/// How often due mails are looked for without being woken.
const POLL: Duration = Duration::from_secs(1);
/// Mails one pass takes on.
const BATCH: usize = 50;

pub fn start(state: &AppState, tasks: &mut Tasks) {
    if !state.config.email.enabled() {
        return;
    }
    let (Ok(transport), Ok(from)) = (
        crate::email::transport(&state.config.email.smtp_url),
        crate::email::sender(&state.config.email.from),
    ) else {
        tracing::error!(
            "email is configured but its smtp_url or from is not valid; no mail is sent"
        );
        return;
    };
    let state = state.clone();
    tasks.spawn("email", move |mut stop| async move {
        loop {
            // With several nodes, the one that runs the jobs sends.
            let due = if state.store.leads() {
                state
                    .store
                    .read()
                    .and_then(|r| r.mails_due(state.clock.now(), BATCH))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let full = due.len() == BATCH;
            for mail in due {
                handle(&state, &transport, &from, mail).await;
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = stop.requested() => break,
                _ = state.mailer.due.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

/// What to do with a due mail.
enum Plan {
    Send(Box<Outgoing>),
    /// Not needed any more.
    Skip(&'static str),
    /// Not yet: look again later (a visitor still on the site).
    Later,
}

struct Outgoing {
    to: Mailbox,
    content: Rendered,
    /// Visitor mails: the unsubscribe link and the thread's reply address.
    unsubscribe: Option<String>,
    reply_to: Option<Mailbox>,
    covers: Option<(ThreadId, MessageId)>,
}

async fn handle(
    state: &AppState,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    mail: Mail,
) {
    let plan = match state.store.read() {
        Ok(read) => plan(state, &read, &mail).unwrap_or(Plan::Skip("gone")),
        Err(_) => return,
    };
    let id = mail.id;
    let outcome = match plan {
        Plan::Skip(why) => Outcome::Skipped(why),
        Plan::Later => Outcome::Later,
        Plan::Send(out) => {
            let Outgoing {
                to,
                content,
                unsubscribe,
                reply_to,
                covers,
            } = *out;
            let to_text = to.email.to_string();
            match build(from, to, &content, unsubscribe.as_deref(), reply_to) {
                Err(e) => Outcome::Failed(to_text, e, true),
                Ok(email) => match transport.send(email).await {
                    Ok(_) => Outcome::Sent(to_text, covers),
                    Err(e) => Outcome::Failed(to_text, e.to_string(), e.is_permanent()),
                },
            }
        }
    };
    record(state, id, outcome).await;
}

enum Outcome {
    Sent(String, Option<(ThreadId, MessageId)>),
    /// Address, error, and whether retrying cannot help.
    Failed(String, String, bool),
    Skipped(&'static str),
    Later,
}

async fn record(state: &AppState, id: crate::ids::MailId, outcome: Outcome) {
    let max = state.config.email.max_attempts;
    let delay = state.config.email.visitor_delay_minutes.max(1);
    let now = state.clock.now();
    let result = state
        .write(move |tx| {
            let Some(mut mail) = tx.mail(id)? else {
                return Ok(None);
            };
            if mail.status != MailStatus::Pending {
                return Ok(None);
            }
            match &outcome {
                Outcome::Sent(to, covers) => {
                    mail.status = MailStatus::Sent;
                    mail.to = Some(to.clone());
                    mail.sent_at = Some(Utc::now());
                    mail.attempts += 1;
                    if let Some((thread, up_to)) = covers {
                        tx.put_raw(tables::META, &replies_key(*thread), up_to.0.as_bytes())?;
                    }
                }
                Outcome::Failed(to, error, permanent) => {
                    mail.attempts += 1;
                    mail.to = Some(to.clone());
                    mail.last_error = Some(error.chars().take(500).collect());
                    if *permanent || mail.attempts >= max {
                        mail.status = MailStatus::Failed;
                    } else {
                        let wait = 5i64 << (mail.attempts - 1).min(10);
                        mail.next_attempt_at = now + chrono::Duration::seconds(wait.min(3600));
                    }
                }
                Outcome::Skipped(why) => {
                    mail.status = MailStatus::Skipped;
                    mail.last_error = Some((*why).to_owned());
                }
                Outcome::Later => {
                    mail.next_attempt_at = now + chrono::Duration::minutes(delay.into());
                }
            }
            tx.put(&mail)?;
            Ok(Some(mail.status))
        })
        .await;
    match result {
        Ok(Some(MailStatus::Sent)) => {
            state.mailer.sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(MailStatus::Failed)) => {
            state.mailer.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(mail = %id, "mail failed for good");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(mail = %id, error = %e, "could not record a mail's outcome"),
    }
}

/// Where the replies already emailed for a thread end.
fn replies_key(thread: ThreadId) -> Vec<u8> {
    KeyBuf::new()
        .bytes(b"mail.replies.")
        .id(thread.as_u128())
        .done()
}

fn replies_emailed(read: &ReadTx, thread: ThreadId) -> Option<MessageId> {
    let raw = read.get_raw(tables::META, &replies_key(thread)).ok()??;
    uuid::Uuid::from_slice(&raw).ok().map(MessageId)
}

fn lang_of(space: &crate::spaces::model::ChatSpace, visitor_locale: Option<&str>) -> Lang {
    match visitor_locale.map(Lang::of) {
        Some(l) if l != Lang::En => l,
        _ => Lang::of(&space.settings.locale),
    }
}

fn who(read: &ReadTx, m: &Message, visitor_label: &str) -> String {
    match m.sender_type {
        SenderType::Visitor => visitor_label.to_owned(),
        SenderType::Agent => read
            .agent(crate::ids::AgentId(m.sender_id))
            .ok()
            .flatten()
            .map_or_else(|| "Agent".to_owned(), |a| a.display_name),
        _ => m.sender_name.clone().unwrap_or_default(),
    }
}

fn line(read: &ReadTx, m: &Message, visitor_label: &str) -> Line {
    let mut text = m.content.clone();
    for a in &m.attachments {
        text.push_str(&format!("\n[{}]", a.name));
    }
    Line {
        who: who(read, m, visitor_label),
        text,
        at: m.created_at,
    }
}

/// Messages of the thread after `after` (all with None), oldest first.
fn messages_after(read: &ReadTx, thread: ThreadId, after: Option<MessageId>) -> Vec<Message> {
    read.messages(thread, after, false, 1000)
        .unwrap_or_default()
}

fn plan(state: &AppState, read: &ReadTx, mail: &Mail) -> crate::store::Result<Plan> {
    let base = state.base_url();
    match &mail.kind {
        MailKind::Test { to } => Ok(match recipient(None, to) {
            Some(to) => Plan::Send(Box::new(Outgoing {
                to,
                content: render::test_mail(),
                unsubscribe: None,
                reply_to: None,
                covers: None,
            })),
            None => Plan::Skip("not an address"),
        }),
        MailKind::Offline {
            agent,
            thread,
            message,
        }
        | MailKind::Unanswered {
            agent,
            thread,
            message,
        } => {
            let offline = matches!(mail.kind, MailKind::Offline { .. });
            let (Some(t), Some(a)) = (read.thread(*thread)?, read.agent(*agent)?) else {
                return Ok(Plan::Skip("gone"));
            };
            let mine = t.assigned_agent_id == Some(a.id);
            if a.disabled || !a.notify.wants(mine) || !Access::of(&a).sees(&t) {
                return Ok(Plan::Skip("not for this agent now"));
            }
            let later = messages_after(read, t.id, Some(*message));
            if later.iter().any(is_reply) {
                return Ok(Plan::Skip("answered"));
            }
            if t.agent_reads
                .get(&a.id)
                .is_some_and(|r| r.up_to >= *message)
            {
                return Ok(Plan::Skip("read"));
            }
            let Some(space) = read.space(t.chat_space_id)? else {
                return Ok(Plan::Skip("gone"));
            };
            let visitor = read.visitor(t.visitor_id)?;
            let label = visitor
                .as_ref()
                .map_or_else(|| "Visitor".to_owned(), |v| v.label());
            let mut lines: Vec<Line> = read
                .message(*message)?
                .filter(|m| m.deleted_at.is_none())
                .map(|m| line(read, &m, &label))
                .into_iter()
                .collect();
            lines.extend(
                later
                    .iter()
                    .filter(|m| m.sender_type == SenderType::Visitor && m.deleted_at.is_none())
                    .map(|m| line(read, m, &label)),
            );
            let Some(to) = recipient(Some(&a.display_name), &a.email) else {
                return Ok(Plan::Skip("no address"));
            };
            let brand = Brand {
                space: &space.name,
                accent: &space.settings.accent_color,
                lang: Lang::of(&space.settings.locale),
            };
            let view = if mine { "mine" } else { "available" };
            let url = format!("{base}/app/#/inbox/{view}/{}", t.id);
            Ok(Plan::Send(Box::new(Outgoing {
                to,
                content: render::to_agent(
                    &brand,
                    offline,
                    &one_line(&label),
                    visitor.as_ref().and_then(|v| v.email.as_deref()),
                    &lines,
                    &url,
                ),
                unsubscribe: None,
                reply_to: None,
                covers: None,
            })))
        }
        MailKind::Replies { visitor, thread } | MailKind::Transcript { visitor, thread } => {
            let transcript = matches!(mail.kind, MailKind::Transcript { .. });
            let (Some(t), Some(v)) = (read.thread(*thread)?, read.visitor(*visitor)?) else {
                return Ok(Plan::Skip("gone"));
            };
            if v.email_opt_out && !transcript {
                return Ok(Plan::Skip("unsubscribed"));
            }
            let Some(email) = v.email.as_deref() else {
                return Ok(Plan::Skip("no address"));
            };
            let Some(space) = read.space(t.chat_space_id)? else {
                return Ok(Plan::Skip("gone"));
            };
            let label = v.label();
            let lines: Vec<Line>;
            let mut covers = None;
            if transcript {
                lines = messages_after(read, t.id, None)
                    .iter()
                    .filter(|m| m.visible_to_visitor() && m.deleted_at.is_none())
                    .map(|m| line(read, m, &label))
                    .collect();
            } else {
                if state.hub.has_subscribers(Topic::Visitor(v.id)) {
                    return Ok(Plan::Later);
                }
                let seen = [
                    t.visitor_read.as_ref().map(|r| r.up_to),
                    replies_emailed(read, t.id),
                ]
                .into_iter()
                .flatten()
                .max();
                let unseen: Vec<Message> = messages_after(read, t.id, seen)
                    .into_iter()
                    .filter(is_reply)
                    .collect();
                let Some(last) = unseen.last() else {
                    return Ok(Plan::Skip("seen"));
                };
                covers = Some((t.id, last.id));
                lines = unseen.iter().map(|m| line(read, m, &label)).collect();
            }
            let Some(to) = recipient(v.display_name.as_deref(), email) else {
                return Ok(Plan::Skip("not an address"));
            };
            let brand = Brand {
                space: &space.name,
                accent: &space.settings.accent_color,
                lang: lang_of(&space, v.metadata.locale.as_deref()),
            };
            let unsubscribe = format!(
                "{base}/email/unsubscribe?v={}&t={}",
                v.id,
                state.mailer.unsubscribe_token(v.id)
            );
            let reply_to = state
                .config
                .email
                .takes_replies()
                .then(|| {
                    let local = state.mailer.reply_local_part(t.id);
                    recipient(
                        Some(&space.name),
                        &format!("{local}@{}", state.config.email.reply_domain),
                    )
                })
                .flatten();
            Ok(Plan::Send(Box::new(Outgoing {
                to,
                content: render::to_visitor(&brand, transcript, &lines, &unsubscribe),
                unsubscribe: Some(unsubscribe),
                reply_to,
                covers,
            })))
        }
    }
}

/// The MIME message: plain text and HTML alternatives; visitor mails carry
/// one-click unsubscribe headers (RFC 8058).
pub fn build(
    from: &Mailbox,
    to: Mailbox,
    content: &Rendered,
    unsubscribe: Option<&str>,
    reply_to: Option<Mailbox>,
) -> Result<Email, String> {
    let mut builder = Email::builder()
        .from(from.clone())
        .to(to)
        .subject(one_line(&content.subject));
    if let Some(r) = reply_to {
        builder = builder.reply_to(r);
    }
    if let Some(url) = unsubscribe {
        builder = builder
            .header(ListUnsubscribe(format!("<{url}>")))
            .header(ListUnsubscribePost);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            content.text.clone(),
            content.html.clone(),
        ))
        .map_err(|e| e.to_string())
}

#[derive(Clone)]
struct ListUnsubscribe(String);

impl header::Header for ListUnsubscribe {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_owned()))
    }
    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), one_line(&self.0))
    }
}

#[derive(Clone)]
struct ListUnsubscribePost;

impl header::Header for ListUnsubscribePost {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }
    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// Sends one mail at once, outside the outbox (`mychat email test`).
pub async fn send_now(config: &crate::config::EmailConfig, to: &str) -> Result<(), String> {
    let transport = crate::email::transport(&config.smtp_url)?;
    let from = crate::email::sender(&config.from)?;
    let to = recipient(None, to).ok_or("not an email address")?;
    let email = build(&from, to, &render::test_mail(), None, None)?;
    transport
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
