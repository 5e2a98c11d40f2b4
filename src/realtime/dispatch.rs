//! Turns committed events into frames on topics. Events arrive from the
//! store's writer in commit order and are published by one task in that same
//! order, so every socket sees messages in server order.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::events::{Event, ReaderKind};
use crate::ids::AgentId;
use crate::integrations::views::{self, Participant};
use crate::messages::model::{Message, SenderType};
use crate::realtime::hub::{Delivery, Hub, Topic};
use crate::realtime::protocol::frame;
use crate::state::AppState;
use crate::store::{ReadTx, Reader};
use crate::threads::model::Thread;
use crate::threads::rules::Access;
use crate::threads::service::view_of;

/// Starts the dispatcher and connects it to the store's commits.
pub fn start(state: &AppState) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Event>>();
    let search = state.search.clone();
    state.store.set_listener(std::sync::Arc::new(move |events| {
        search.feed(&events);
        let _ = tx.send(events);
    }));
    let state = state.clone();
    tokio::spawn(async move {
        while let Some(events) = rx.recv().await {
            let Ok(read) = state.store.read() else {
                continue;
            };
            for event in events {
                publish(&state, &read, event);
            }
            // The commit may have written webhook deliveries and pushes.
            state.webhooks_due.notify_one();
            state.push.due.notify_one();
        }
    })
}

/// A thread as agents' lists show it. Unread counts are per agent, so
/// clients work them out from `visitorMessageCount` and `agentReads`.
pub fn thread_json(read: &ReadTx, thread: &Thread) -> Value {
    match view_of(read, thread.clone(), AgentId(uuid::Uuid::nil())) {
        Ok(view) => {
            let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                map.remove("unreadCount");
            }
            v
        }
        Err(_) => serde_json::to_value(thread).unwrap_or(Value::Null),
    }
}

/// What the widget is told about its thread.
pub fn widget_thread(read: &ReadTx, thread: &Thread) -> Value {
    let agent_name = thread
        .assigned_agent_id
        .and_then(|a| read.agent(a).ok().flatten())
        .map(|a| a.display_name);
    json!({ "threadId": thread.id, "id": thread.id, "status": thread.status, "agentName": agent_name })
}

/// A message frame; on agents' topics only for those who see its thread.
fn message_delivery(text: String, message: &Message, thread: Option<&Arc<Thread>>) -> Delivery {
    Delivery::Frame {
        text: text.into(),
        message: Some(message.id),
        thread: thread.cloned(),
        otherwise: None,
    }
}

/// The frame kind a message travels under.
pub fn message_kind(message: &Message) -> &'static str {
    match message.sender_type {
        SenderType::Visitor => "visitor:message",
        _ => "agent:message",
    }
}

/// The author kind of a committed message, as `/metrics` labels it.
fn author_label(sender: crate::messages::model::SenderType) -> &'static str {
    use crate::messages::model::SenderType;
    match sender {
        SenderType::Visitor => "visitor",
        SenderType::Agent => "agent",
        SenderType::System => "system",
        SenderType::Integration => "integration",
        SenderType::Member => "member",
    }
}

fn publish(state: &AppState, read: &ReadTx, event: Event) {
    let hub = &state.hub;
    match event {
        Event::ThreadNew { thread } => {
            if thread.is_object_bound() {
                announce_dialog(read, hub, &thread, "dialog:new");
            }
            let text = frame(
                "thread:new",
                json!({ "thread": thread_json(read, &thread) }),
            );
            hub.publish(
                Topic::Space(thread.chat_space_id),
                Delivery::about(text, &Arc::new(thread)),
            );
        }
        Event::ThreadUpdated { thread } => {
            if thread.is_object_bound() {
                announce_dialog(read, hub, &thread, "dialog:updated");
            }
            let text = frame(
                "thread:updated",
                json!({ "thread": thread_json(read, &thread) }),
            );
            // Agents who no longer see it (another team now) drop it.
            let removed = frame("thread:removed", json!({ "threadId": thread.id }));
            hub.publish(
                Topic::Space(thread.chat_space_id),
                Delivery::Frame {
                    text: text.into(),
                    message: None,
                    thread: Some(Arc::new(thread.clone())),
                    otherwise: Some(removed.into()),
                },
            );
            let widget = frame("thread:updated", widget_thread(read, &thread));
            hub.publish(Topic::Visitor(thread.visitor_id), Delivery::frame(widget));
        }
        Event::MessageNew { message, thread } => {
            state.metrics.message(author_label(message.sender_type));
            let kind = message_kind(&message);
            // Frames are built only for topics someone follows: with no
            // agent or widget online a message costs the dispatcher nothing.
            let space = Topic::Space(thread.chat_space_id);
            if hub.has_subscribers(space) {
                let text = frame(
                    kind,
                    json!({ "message": message, "thread": thread_json(read, &thread) }),
                );
                let shared = Arc::new(thread.clone());
                hub.publish(space, message_delivery(text, &message, Some(&shared)));
            }
            if thread.is_object_bound() && message.visible_to_visitor() {
                let text = frame(
                    "message:new",
                    json!({ "dialogId": thread.id, "message": message }),
                );
                to_members_message(hub, &thread, &message, text);
            }
            let visitor = Topic::Visitor(thread.visitor_id);
            if message.visible_to_visitor() && hub.has_subscribers(visitor) {
                let text = frame(kind, json!({ "message": message }));
                hub.publish(visitor, message_delivery(text, &message, None));
            }
        }
        Event::MessageChanged { message, thread } => {
            // Agents get the thread too: its list preview may have changed.
            let for_agents = frame(
                "message:updated",
                json!({ "message": message, "thread": thread_json(read, &thread) }),
            );
            hub.publish(
                Topic::Space(thread.chat_space_id),
                Delivery::about(for_agents, &Arc::new(thread.clone())),
            );
            let text = frame("message:updated", json!({ "message": message }));
            if message.visible_to_visitor() {
                if thread.is_object_bound() {
                    let text = frame(
                        "message:updated",
                        json!({ "dialogId": thread.id, "message": message }),
                    );
                    to_members(hub, &thread, &text);
                }
                hub.publish(Topic::Visitor(thread.visitor_id), Delivery::frame(text));
            }
        }
        Event::Read {
            thread,
            reader,
            up_to,
        } => {
            let who = match reader {
                ReaderKind::Visitor => json!("visitor"),
                ReaderKind::Agent(a) => json!(a),
                ReaderKind::Member(m) => {
                    json!(read.member(m).ok().flatten().map(|m| m.external_id))
                }
            };
            let text = frame(
                "messages:read",
                json!({ "threadId": thread.id, "reader": who, "upTo": up_to }),
            );
            hub.publish(
                Topic::Space(thread.chat_space_id),
                Delivery::about(text, &Arc::new(thread.clone())),
            );
            if thread.is_object_bound() {
                let text = frame(
                    "messages:read",
                    json!({ "dialogId": thread.id, "reader": who, "upTo": up_to }),
                );
                to_members(hub, &thread, &text);
            }
            if let ReaderKind::Agent(_) = reader {
                let text = frame(
                    "messages:read",
                    json!({ "threadId": thread.id, "upTo": up_to }),
                );
                hub.publish(Topic::Visitor(thread.visitor_id), Delivery::frame(text));
            }
        }
        Event::ParticipantJoined { thread, member } => {
            let who = Participant::from(&member);
            let added = frame(
                "dialog:new",
                json!({ "dialog": views::dialog(read, &thread, member.id) }),
            );
            hub.publish(Topic::Member(member.id), Delivery::frame(added));
            let text = frame(
                "participant:joined",
                json!({ "dialogId": thread.id, "participant": who }),
            );
            to_members(hub, &thread, &text);
            hub.publish(
                Topic::Space(thread.chat_space_id),
                Delivery::about(text, &Arc::new(thread.clone())),
            );
        }
        Event::ParticipantLeft { thread, member } => {
            let text = frame(
                "participant:left",
                json!({ "dialogId": thread.id, "participant": Participant::from(&member) }),
            );
            // The one who left hears it too, as the end of that dialog.
            hub.publish(Topic::Member(member.id), Delivery::frame(text.clone()));
            to_members(hub, &thread, &text);
            hub.publish(
                Topic::Space(thread.chat_space_id),
                Delivery::about(text, &Arc::new(thread.clone())),
            );
        }
        // For webhooks only: live clients got the `MessageNew`.
        Event::OfflineMessage { .. } | Event::ThreadTransferred { .. } => {}
        Event::SigningKeyRevoked { key } => {
            hub.publish(
                Topic::SigningKey(key),
                Delivery::Close(crate::realtime::CLOSE_REVOKED, "signing key deleted"),
            );
        }
        Event::VisitorErased { visitor, .. } => {
            hub.publish(
                Topic::Visitor(visitor),
                Delivery::Close(crate::realtime::CLOSE_REVOKED, "visitor erased"),
            );
        }
        Event::WidgetsEnded { space } => {
            hub.publish(
                Topic::SpaceWidgets(space),
                Delivery::Close(crate::realtime::CLOSE_REVOKED, "chat space closed"),
            );
        }
        Event::AgentAway { agent } => {
            state.hub.set_away(agent.id, agent.away);
            crate::realtime::presence::announce(state, agent.organization_id);
        }
        Event::AgentAccessChanged { agent } => {
            hub.update_access(agent.id, &Access::of(&agent));
            // The app reloads its lists: threads may have come or gone.
            let text = frame("access:changed", json!({ "agent": agent.view(true) }));
            hub.publish(Topic::Agent(agent.id), Delivery::frame(text));
        }
        Event::LabelsChanged { org } => {
            let text = frame("labels:changed", json!({}));
            hub.publish(Topic::Org(org), Delivery::frame(text));
        }
        Event::AgentRevoked { agent } => {
            hub.publish(
                Topic::Agent(agent),
                Delivery::Close(4001, "session revoked"),
            );
        }
    }
}

/// A frame for every participant of an object-bound thread.
fn to_members(hub: &Hub, thread: &Thread, text: &str) {
    for m in thread.membership.iter().flat_map(|ms| &ms.members) {
        hub.publish(Topic::Member(*m), Delivery::frame(text.to_owned()));
    }
}

/// A message frame for every participant, counted as sent by its id.
fn to_members_message(hub: &Hub, thread: &Thread, message: &Message, text: String) {
    let text: std::sync::Arc<str> = text.into();
    for m in thread.membership.iter().flat_map(|ms| &ms.members) {
        hub.publish(
            Topic::Member(*m),
            Delivery::Frame {
                text: text.clone(),
                message: Some(message.id),
                thread: None,
                otherwise: None,
            },
        );
    }
}

/// Tells participants about the thread (each sees its own view), and the
/// members who may join it that it is there.
fn announce_dialog(read: &ReadTx, hub: &Hub, thread: &Thread, kind: &str) {
    let Some(membership) = &thread.membership else {
        return;
    };
    for m in &membership.members {
        let text = frame(kind, json!({ "dialog": views::dialog(read, thread, *m) }));
        hub.publish(Topic::Member(*m), Delivery::frame(text));
    }
    let Ok(Some(space)) = read.space(thread.chat_space_id) else {
        return;
    };
    // A potential member's view: no content, not participating.
    let outsider = crate::ids::MemberId(uuid::Uuid::nil());
    let text = frame(
        kind,
        json!({ "dialog": views::dialog(read, thread, outsider) }),
    );
    hub.publish(
        Topic::Members(space.organization_id),
        Delivery::Scoped {
            text: text.into(),
            scopes: membership.access_scopes.clone().into(),
            except: membership.members.clone().into(),
        },
    );
}
