//! Who is online, told to those who care: the organization's agents get
//! the list (with each one's away switch), the widgets of its spaces
//! whether anyone is there for visitors. Sent when an agent's first socket
//! opens or its last closes, and when an agent switches away or back.

use serde_json::json;

use crate::ids::OrgId;
use crate::realtime::hub::{Delivery, Topic};
use crate::realtime::protocol::frame;
use crate::state::AppState;
use crate::store::Reader;

/// The organization's online agents: `[{id, displayName, away}]`.
pub fn list(state: &AppState, org: OrgId) -> serde_json::Value {
    let online = state.hub.online_agents(org);
    let read = state.store.read();
    let list: Vec<_> = online
        .into_iter()
        .map(|id| {
            let name = read
                .as_ref()
                .ok()
                .and_then(|r| r.agent(id).ok().flatten())
                .map(|a| a.display_name);
            json!({ "id": id, "displayName": name, "away": state.hub.is_away(id) })
        })
        .collect();
    json!(list)
}

/// Tells the organization's agents who is online, and the widgets of its
/// spaces whether anyone is.
pub fn announce(state: &AppState, org: OrgId) {
    let text = frame("agents:presence", json!({ "online": list(state, org) }));
    state.hub.publish(Topic::Org(org), Delivery::frame(text));
    let any = state.hub.any_agent_online(org);
    let status = frame("agents:status", json!({ "online": any }));
    if let Ok(read) = state.store.read()
        && let Ok(spaces) = read.spaces_of_org(org)
    {
        for s in spaces {
            state
                .hub
                .publish(Topic::SpaceWidgets(s.id), Delivery::frame(status.clone()));
        }
    }
}

/// In a cluster: keeps the hub's view of agents online on other nodes —
/// read when a node says its presence changed (or a dead node's expired),
/// and every ten seconds — and tells this node's sockets when it changed.
pub fn follow(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    if !state.store.is_shared() {
        return None;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<uuid::Uuid>();
    state.store.on_presence(std::sync::Arc::new(move |org| {
        let _ = tx.send(org);
    }));
    let state = state.clone();
    Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tokio::select! {
                org = rx.recv() => if org.is_none() { return },
                _ = every.tick() => {}
            }
            while rx.try_recv().is_ok() {}
            let store = state.store.clone();
            let Ok(Ok(rows)) =
                tokio::task::spawn_blocking(move || store.presence_elsewhere()).await
            else {
                continue;
            };
            let mut now: std::collections::HashMap<OrgId, std::collections::HashSet<_>> =
                Default::default();
            for (org, agent) in rows {
                now.entry(OrgId(org))
                    .or_default()
                    .insert(crate::ids::AgentId(agent));
            }
            for org in state.hub.set_elsewhere(now) {
                announce(&state, org);
            }
        }
    }))
}
