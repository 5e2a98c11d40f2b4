//! The in-process hub: topics, and one bounded queue per connection.
//!
//! Publishing never waits: a delivery that does not fit a connection's queue
//! marks the connection as lagging, and the connection then tells its client
//! to resync and replays what it missed from storage. A slow or dead socket
//! therefore never slows the writer or any other socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use crate::ids::{AgentId, MessageId, OrgId, SpaceId, TeamId, VisitorId};

/// Deliveries a connection may have waiting before it counts as lagging.
pub const QUEUE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Agents that joined a space: thread and message events.
    Space(SpaceId),
    /// Widgets of a space: agents' online status.
    SpaceWidgets(SpaceId),
    /// One visitor's widgets (all tabs).
    Visitor(VisitorId),
    /// An organization's agents: presence.
    Org(OrgId),
    /// One agent's sockets: control (revocation).
    Agent(AgentId),
}

/// What a connection is sent.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// A JSON text frame, serialized once for every receiver.
    Frame {
        text: Arc<str>,
        /// The message it carries, so replays and live frames never repeat.
        message: Option<MessageId>,
        /// Routed to a team: only that team's agents (and admins) get it.
        team: Option<TeamId>,
    },
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

impl Delivery {
    pub fn frame(text: String) -> Delivery {
        Delivery::Frame {
            text: text.into(),
            message: None,
            team: None,
        }
    }
}

struct Subscriber {
    queue: mpsc::Sender<Delivery>,
    lagged: Arc<AtomicBool>,
    wake: Arc<Notify>,
    /// None: every delivery; Some: only unrouted ones and these teams'.
    teams: Option<Arc<[TeamId]>>,
}

#[derive(Default)]
struct Topics {
    map: HashMap<Topic, HashMap<u64, Subscriber>>,
}

#[derive(Default)]
pub struct Hub {
    topics: Mutex<Topics>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    /// Online agents per organization, with their socket counts.
    presence: Mutex<HashMap<OrgId, HashMap<AgentId, usize>>>,
    closing: AtomicBool,
    drained: Notify,
}

/// One live socket's end of the hub. Dropping it unsubscribes everything.
pub struct Connection {
    pub id: u64,
    hub: Arc<Hub>,
    queue: mpsc::Sender<Delivery>,
    pub deliveries: mpsc::Receiver<Delivery>,
    pub lagged: Arc<AtomicBool>,
    pub wake: Arc<Notify>,
    topics: Vec<Topic>,
    teams: Option<Arc<[TeamId]>>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// A new connection with an empty subscription list.
    pub fn connect(self: &Arc<Hub>) -> Connection {
        let (queue, deliveries) = mpsc::channel(QUEUE);
        self.connections.fetch_add(1, Ordering::SeqCst);
        Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            hub: self.clone(),
            queue,
            deliveries,
            lagged: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
            topics: Vec::new(),
            teams: None,
        }
    }

    /// Sends to every subscriber of `topic`; never waits.
    pub fn publish(&self, topic: Topic, delivery: Delivery) {
        let topics = self.topics.lock().expect("hub lock");
        let Some(subs) = topics.map.get(&topic) else {
            return;
        };
        for sub in subs.values() {
            if let Delivery::Frame {
                team: Some(team), ..
            } = &delivery
                && sub.teams.as_ref().is_some_and(|t| !t.contains(team))
            {
                continue;
            }
            match sub.queue.try_send(delivery.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.store(true, Ordering::Release);
                    sub.wake.notify_one();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Subscriptions across all topics (each connection counts once per topic).
    pub fn subscriber_count(&self) -> usize {
        let topics = self.topics.lock().expect("hub lock");
        topics.map.values().map(HashMap::len).sum()
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Marks an agent socket online; true when it is the agent's first.
    pub fn agent_online(&self, org: OrgId, agent: AgentId) -> bool {
        let mut p = self.presence.lock().expect("presence lock");
        let count = p.entry(org).or_default().entry(agent).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Marks an agent socket gone; true when it was the agent's last.
    pub fn agent_offline(&self, org: OrgId, agent: AgentId) -> bool {
        let mut p = self.presence.lock().expect("presence lock");
        let Some(agents) = p.get_mut(&org) else {
            return false;
        };
        let Some(count) = agents.get_mut(&agent) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            agents.remove(&agent);
            if agents.is_empty() {
                p.remove(&org);
            }
            return true;
        }
        false
    }

    /// Agents of an organization with at least one live socket.
    pub fn online_agents(&self, org: OrgId) -> Vec<AgentId> {
        let p = self.presence.lock().expect("presence lock");
        p.get(&org)
            .map(|a| a.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn is_online(&self, org: OrgId, agent: AgentId) -> bool {
        let p = self.presence.lock().expect("presence lock");
        p.get(&org).is_some_and(|a| a.contains_key(&agent))
    }

    pub fn any_agent_online(&self, org: OrgId) -> bool {
        let p = self.presence.lock().expect("presence lock");
        p.get(&org).is_some_and(|a| !a.is_empty())
    }

    /// Tells every socket to close with `code` and waits until they have,
    /// or until `grace` passes.
    pub async fn close_all(&self, code: u16, reason: &'static str, grace: std::time::Duration) {
        self.closing.store(true, Ordering::SeqCst);
        {
            let topics = self.topics.lock().expect("hub lock");
            let mut seen = std::collections::HashSet::new();
            for subs in topics.map.values() {
                for (id, sub) in subs {
                    if seen.insert(*id) {
                        // A full queue must not keep the close from arriving.
                        sub.lagged.store(false, Ordering::Release);
                        let _ = sub.queue.try_send(Delivery::Close(code, reason));
                        sub.wake.notify_one();
                    }
                }
            }
        }
        let wait = async {
            while self.connection_count() > 0 {
                let drained = self.drained.notified();
                if self.connection_count() == 0 {
                    break;
                }
                drained.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
    }

    /// Whether the hub is closing (new sockets are refused).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

impl Connection {
    /// Restricts team-routed deliveries to these teams (None: all).
    pub fn set_teams(&mut self, teams: Option<Vec<TeamId>>) {
        self.teams = teams.map(Into::into);
    }

    pub fn subscribe(&mut self, topic: Topic) {
        if self.topics.contains(&topic) {
            return;
        }
        let sub = Subscriber {
            queue: self.queue.clone(),
            lagged: self.lagged.clone(),
            wake: self.wake.clone(),
            teams: self.teams.clone(),
        };
        self.hub
            .topics
            .lock()
            .expect("hub lock")
            .map
            .entry(topic)
            .or_default()
            .insert(self.id, sub);
        self.topics.push(topic);
    }

    pub fn unsubscribe(&mut self, topic: Topic) {
        self.topics.retain(|t| *t != topic);
        let mut topics = self.hub.topics.lock().expect("hub lock");
        if let Some(subs) = topics.map.get_mut(&topic) {
            subs.remove(&self.id);
            if subs.is_empty() {
                topics.map.remove(&topic);
            }
        }
    }

    pub fn is_subscribed(&self, topic: Topic) -> bool {
        self.topics.contains(&topic)
    }

    /// Takes the lag flag: true once after deliveries were dropped.
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::AcqRel)
    }

    /// Throws away everything queued (after a lag, storage is replayed).
    pub fn discard_queued(&mut self) -> Option<Delivery> {
        let mut close = None;
        while let Ok(d) = self.deliveries.try_recv() {
            if matches!(d, Delivery::Close(..)) {
                close = Some(d);
            }
        }
        close
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for topic in std::mem::take(&mut self.topics) {
            let mut topics = self.hub.topics.lock().expect("hub lock");
            if let Some(subs) = topics.map.get_mut(&topic) {
                subs.remove(&self.id);
                if subs.is_empty() {
                    topics.map.remove(&topic);
                }
            }
        }
        self.hub.connections.fetch_sub(1, Ordering::SeqCst);
        self.hub.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_marks_the_connection_lagged_without_blocking() {
        let hub = Hub::new();
        let mut slow = hub.connect();
        let mut fast = hub.connect();
        let topic = Topic::Visitor(VisitorId::new());
        slow.subscribe(topic);
        fast.subscribe(topic);
        for i in 0..QUEUE + 10 {
            hub.publish(topic, Delivery::frame(format!("{i}")));
            // The fast one keeps up.
            assert!(fast.deliveries.try_recv().is_ok());
        }
        assert!(slow.take_lagged());
        assert!(!fast.take_lagged());
        assert!(!slow.take_lagged(), "the flag is taken once");
    }

    #[tokio::test]
    async fn dropping_a_connection_leaves_nothing_behind() {
        let hub = Hub::new();
        let mut a = hub.connect();
        a.subscribe(Topic::Org(OrgId::new()));
        a.subscribe(Topic::Agent(AgentId::new()));
        assert_eq!(hub.subscriber_count(), 2);
        assert_eq!(hub.connection_count(), 1);
        drop(a);
        assert_eq!(hub.subscriber_count(), 0);
        assert_eq!(hub.connection_count(), 0);
        assert!(hub.topics.lock().unwrap().map.is_empty());
    }

    #[tokio::test]
    async fn team_routed_frames_reach_only_that_team() {
        let hub = Hub::new();
        let space = Topic::Space(SpaceId::new());
        let (sales, support) = (TeamId::new(), TeamId::new());
        let mut seller = hub.connect();
        seller.set_teams(Some(vec![sales]));
        seller.subscribe(space);
        let mut admin = hub.connect();
        admin.subscribe(space);
        hub.publish(
            space,
            Delivery::Frame {
                text: "x".into(),
                message: None,
                team: Some(support),
            },
        );
        assert!(seller.deliveries.try_recv().is_err());
        assert!(admin.deliveries.try_recv().is_ok());
    }

    #[test]
    fn presence_counts_sockets_per_agent() {
        let hub = Hub::default();
        let (org, agent) = (OrgId::new(), AgentId::new());
        assert!(hub.agent_online(org, agent));
        assert!(!hub.agent_online(org, agent));
        assert!(!hub.agent_offline(org, agent));
        assert!(hub.any_agent_online(org));
        assert!(hub.agent_offline(org, agent));
        assert!(!hub.any_agent_online(org));
    }
}
