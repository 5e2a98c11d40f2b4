//! The in-process hub: topics, and one bounded queue per connection.
//!
//! Publishing never waits: a delivery that does not fit a connection's queue
//! marks the connection as lagging, and the connection then tells its client
//! to resync and replays what it missed from storage. A slow or dead socket
//! therefore never slows the writer or any other socket.
//!
//! A connection's queue, lag flag, close slot and wake-up live in one
//! [`Inbox`], and the queue holds memory only while deliveries wait in it:
//! most sockets are idle most of the time, and an idle one should cost
//! little more than its kernel socket.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::Notify;

use crate::ids::{AgentId, MemberId, MessageId, OrgId, SigningKeyId, SpaceId, VisitorId};
use crate::integrations::model::AccessScope;
use crate::threads::model::Thread;
use crate::threads::rules::Access;

/// Deliveries a connection may have waiting before it counts as lagging,
/// at the least. A queue takes memory only for what waits in it (and gives
/// it back once drained), so a generous bound costs an idle socket
/// nothing.
pub const QUEUE: usize = 256;

/// The bound of each connection's queue for a store that commits up to
/// `max_batch` writes at once. One commit's events are published
/// together, in one go, and most writes publish one frame to each
/// socket that follows them; a socket whose task did not get a CPU for a
/// moment (another process competing for it) must still hold what a few
/// such commits publish, or it lags and has to resync. Four of the
/// largest commits: at 2,000 messages/s a socket may stall for whole
/// seconds before it lags, however the commits are cut.
pub fn queue_for(max_batch: usize) -> usize {
    max_batch.saturating_mul(4).max(QUEUE)
}

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
    /// One member's sockets: its threads' events.
    Member(MemberId),
    /// The member sockets opened with tokens of one signing key.
    SigningKey(SigningKeyId),
    /// Every member socket of an organization: threads that became
    /// available, filtered by each member's scopes ([`Delivery::Scoped`]).
    Members(OrgId),
}

/// What a connection is sent.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// A JSON text frame, serialized once for every receiver.
    Frame {
        text: Arc<str>,
        /// The message it carries, so replays and live frames never repeat.
        message: Option<MessageId>,
        /// The thread it is about: an agent's socket gets it only when the
        /// agent sees that thread ([`Access::sees`]), checked per frame.
        thread: Option<Arc<Thread>>,
        /// What an agent that does not see the thread gets instead, if
        /// anything (a thread that left its view).
        otherwise: Option<Arc<str>>,
    },
    /// A frame only members that may join one of these threads' scopes get,
    /// and not those in `except` (they hear through their own topic).
    Scoped {
        text: Arc<str>,
        scopes: Arc<[AccessScope]>,
        except: Arc<[MemberId]>,
    },
    /// Close the socket with this code and reason. Never queued: it goes to
    /// the connection's close slot, so a full queue cannot lose it.
    Close(u16, &'static str),
}

/// One connection's end of every topic it subscribed to.
struct Inbox {
    /// Deliveries waiting for the socket, at most `bound`. Empty, it
    /// holds no memory: it is given back whenever the socket drains it.
    queue: Mutex<VecDeque<Delivery>>,
    bound: usize,
    /// Set when a delivery did not fit: the socket resyncs from storage.
    lagged: AtomicBool,
    /// A close waiting for the socket: set once, read on every turn.
    close: OnceLock<(u16, &'static str)>,
    /// Wakes the socket: a delivery in an empty queue, a lag, a close.
    wake: Notify,
}

impl Inbox {
    fn new(bound: usize) -> Inbox {
        Inbox {
            queue: Mutex::default(),
            bound,
            lagged: AtomicBool::new(false),
            close: OnceLock::new(),
            wake: Notify::new(),
        }
    }

    /// Queues without waiting; false when the queue was full.
    fn push(&self, delivery: Delivery) -> bool {
        let mut queue = self.queue.lock().expect("inbox lock");
        if queue.len() >= self.bound {
            return false;
        }
        let was_empty = queue.is_empty();
        queue.push_back(delivery);
        drop(queue);
        // A socket that is not waiting finds the rest when it comes back
        // for the next one; only an empty queue can have it asleep.
        if was_empty {
            self.wake.notify_one();
        }
        true
    }

    fn pop(&self) -> Option<Delivery> {
        let mut queue = self.queue.lock().expect("inbox lock");
        let next = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 0 {
            *queue = VecDeque::new();
        }
        next
    }

    fn lag(&self) {
        self.lagged.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Asks the socket to close; the first close wins.
    fn close(&self, code: u16, reason: &'static str) {
        let _ = self.close.set((code, reason));
        self.wake.notify_one();
    }
}

impl Delivery {
    pub fn frame(text: String) -> Delivery {
        Delivery::Frame {
            text: text.into(),
            message: None,
            thread: None,
            otherwise: None,
        }
    }

    /// A frame about `thread`, for those who see it.
    pub fn about(text: String, thread: &Arc<Thread>) -> Delivery {
        Delivery::Frame {
            text: text.into(),
            message: None,
            thread: Some(thread.clone()),
            otherwise: None,
        }
    }
}

struct Subscriber {
    inbox: Arc<Inbox>,
    /// An agent socket's access, shared by all its subscriptions and
    /// changed in place when the agent's spaces or teams change.
    access: Option<SharedAccess>,
}

/// What an agent's socket may see, as it is now.
pub type SharedAccess = Arc<RwLock<Access>>;

impl Subscriber {
    /// Whether a frame about `thread` is for this subscriber.
    fn sees(&self, thread: &Thread) -> bool {
        self.access
            .as_ref()
            .is_none_or(|a| a.read().expect("access lock").sees(thread))
    }

    fn close(&self, code: u16, reason: &'static str) {
        self.inbox.close(code, reason);
    }
}

#[derive(Default)]
struct Topics {
    map: HashMap<Topic, Subscribers>,
}

/// The subscribers of one topic, by connection id. Most topics have one
/// (a visitor's own topic, one tab open): it is kept in place, without a
/// table of its own, since every idle socket pays for it.
enum Subscribers {
    One(u64, Subscriber),
    Many(HashMap<u64, Subscriber>),
}

impl Subscribers {
    fn values(&self) -> impl Iterator<Item = &Subscriber> {
        let (one, many) = match self {
            Subscribers::One(_, sub) => (Some(sub), None),
            Subscribers::Many(subs) => (None, Some(subs.values())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn len(&self) -> usize {
        match self {
            Subscribers::One(..) => 1,
            Subscribers::Many(subs) => subs.len(),
        }
    }

    fn insert(&mut self, id: u64, sub: Subscriber) {
        match self {
            Subscribers::Many(subs) => {
                subs.insert(id, sub);
            }
            Subscribers::One(first, _) if *first == id => *self = Subscribers::One(id, sub),
            Subscribers::One(..) => {
                let Subscribers::One(first, first_sub) =
                    std::mem::replace(self, Subscribers::Many(HashMap::new()))
                else {
                    unreachable!("matched above");
                };
                *self = Subscribers::Many(HashMap::from([(first, first_sub), (id, sub)]));
            }
        }
    }

    /// Removes connection `id`; true when the topic has no subscriber left.
    fn remove(&mut self, id: u64) -> bool {
        match self {
            Subscribers::One(first, _) => *first == id,
            Subscribers::Many(subs) => {
                subs.remove(&id);
                subs.is_empty()
            }
        }
    }
}

pub struct Hub {
    /// Each connection's queue bound.
    queue: usize,
    topics: Mutex<Topics>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    /// Online agents per organization, with their socket counts.
    presence: Mutex<HashMap<OrgId, HashMap<AgentId, usize>>>,
    /// Agents online on other nodes of a cluster (see `presence::follow`).
    elsewhere: Mutex<HashMap<OrgId, std::collections::HashSet<AgentId>>>,
    /// Agents that switched themselves away: connected, not online for
    /// visitors. Locked after `presence` when both are needed.
    away: Mutex<std::collections::HashSet<AgentId>>,
    closing: AtomicBool,
    /// The close every socket gets once the hub is closing, including
    /// sockets that subscribe after [`Hub::close_all`] went through them.
    closing_with: OnceLock<(u16, &'static str)>,
    drained: Notify,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            queue: QUEUE,
            topics: Default::default(),
            next_id: Default::default(),
            connections: Default::default(),
            presence: Default::default(),
            elsewhere: Default::default(),
            away: Default::default(),
            closing: Default::default(),
            closing_with: Default::default(),
            drained: Default::default(),
        }
    }
}

/// Asks one connection to close; the first close wins.
#[derive(Clone)]
pub struct Closer {
    inbox: Arc<Inbox>,
}

impl Closer {
    pub fn close(&self, code: u16, reason: &'static str) {
        self.inbox.close(code, reason);
    }
}

/// One live socket's end of the hub. Dropping it unsubscribes everything.
pub struct Connection {
    pub id: u64,
    hub: Arc<Hub>,
    inbox: Arc<Inbox>,
    topics: Vec<Topic>,
    access: Option<SharedAccess>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// A hub whose connections each queue up to `queue` deliveries.
    pub fn with_queue(queue: usize) -> Arc<Hub> {
        Arc::new(Hub {
            queue: queue.max(1),
            ..Hub::default()
        })
    }

    /// Each connection's queue bound.
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// A new connection with an empty subscription list.
    pub fn connect(self: &Arc<Hub>) -> Connection {
        self.connections.fetch_add(1, Ordering::SeqCst);
        Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            hub: self.clone(),
            inbox: Arc::new(Inbox::new(self.queue)),
            topics: Vec::new(),
            access: None,
        }
    }

    /// Sends to every subscriber of `topic`; never waits.
    pub fn publish(&self, topic: Topic, delivery: Delivery) {
        let topics = self.topics.lock().expect("hub lock");
        let Some(subs) = topics.map.get(&topic) else {
            return;
        };
        if let Delivery::Close(code, reason) = delivery {
            for sub in subs.values() {
                sub.close(code, reason);
            }
            return;
        }
        for sub in subs.values() {
            let mut delivery = delivery.clone();
            if let Delivery::Frame {
                thread: Some(thread),
                otherwise,
                text,
                ..
            } = &mut delivery
                && !sub.sees(thread)
            {
                match otherwise.take() {
                    Some(other) => *text = other,
                    None => continue,
                }
            }
            if !sub.inbox.push(delivery) {
                sub.inbox.lag();
            }
        }
    }

    /// Subscriptions across all topics (each connection counts once per topic).
    pub fn subscriber_count(&self) -> usize {
        let topics = self.topics.lock().expect("hub lock");
        topics.map.values().map(Subscribers::len).sum()
    }

    /// Whether anyone listens on `topic` now (a visitor on the site).
    pub fn has_subscribers(&self, topic: Topic) -> bool {
        let topics = self.topics.lock().expect("hub lock");
        topics.map.contains_key(&topic)
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

    /// Agents of an organization with at least one live socket (here or,
    /// in a cluster, on another node).
    pub fn online_agents(&self, org: OrgId) -> Vec<AgentId> {
        let mut agents: Vec<AgentId> = {
            let p = self.presence.lock().expect("presence lock");
            p.get(&org)
                .map(|a| a.keys().copied().collect())
                .unwrap_or_default()
        };
        let elsewhere = self.elsewhere.lock().expect("presence lock");
        if let Some(more) = elsewhere.get(&org) {
            agents.extend(
                more.iter()
                    .filter(|a| !agents.contains(a))
                    .copied()
                    .collect::<Vec<_>>(),
            );
        }
        agents
    }

    pub fn is_online(&self, org: OrgId, agent: AgentId) -> bool {
        let here = {
            let p = self.presence.lock().expect("presence lock");
            p.get(&org).is_some_and(|a| a.contains_key(&agent))
        };
        here || {
            let elsewhere = self.elsewhere.lock().expect("presence lock");
            elsewhere.get(&org).is_some_and(|a| a.contains(&agent))
        }
    }

    /// Whether visitors of the organization find someone online: an agent
    /// with a live socket who is not away.
    pub fn any_agent_online(&self, org: OrgId) -> bool {
        let away = self.away.lock().expect("away lock");
        let here = {
            let p = self.presence.lock().expect("presence lock");
            p.get(&org)
                .is_some_and(|a| a.keys().any(|agent| !away.contains(agent)))
        };
        here || {
            let elsewhere = self.elsewhere.lock().expect("presence lock");
            elsewhere
                .get(&org)
                .is_some_and(|a| a.iter().any(|agent| !away.contains(agent)))
        }
    }

    /// Replaces who is online on other nodes; returns the organizations
    /// whose set changed.
    pub fn set_elsewhere(
        &self,
        now: HashMap<OrgId, std::collections::HashSet<AgentId>>,
    ) -> Vec<OrgId> {
        let mut elsewhere = self.elsewhere.lock().expect("presence lock");
        let mut changed: Vec<OrgId> = now
            .iter()
            .filter(|(org, agents)| elsewhere.get(org) != Some(agents))
            .map(|(org, _)| *org)
            .collect();
        changed.extend(
            elsewhere
                .keys()
                .filter(|org| !now.contains_key(org))
                .copied(),
        );
        *elsewhere = now;
        changed
    }

    /// Records an agent's away switch (as stored, at connect and on change).
    pub fn set_away(&self, agent: AgentId, away: bool) {
        let mut set = self.away.lock().expect("away lock");
        if away {
            set.insert(agent);
        } else {
            set.remove(&agent);
        }
    }

    pub fn is_away(&self, agent: AgentId) -> bool {
        self.away.lock().expect("away lock").contains(&agent)
    }

    /// Tells every socket to close with `code` and waits until they have,
    /// or until `grace` passes.
    pub async fn close_all(&self, code: u16, reason: &'static str, grace: std::time::Duration) {
        // Set before going through the topics: a socket subscribing later
        // finds it in `subscribe`.
        let _ = self.closing_with.set((code, reason));
        self.closing.store(true, Ordering::SeqCst);
        {
            let topics = self.topics.lock().expect("hub lock");
            for subs in topics.map.values() {
                for sub in subs.values() {
                    // Through the close slot: a full queue cannot lose it.
                    sub.close(code, reason);
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

    /// Gives every socket of `agent` its new access at once: the next frame
    /// published is already checked against it.
    pub fn update_access(&self, agent: AgentId, access: &Access) {
        let topics = self.topics.lock().expect("hub lock");
        for sub in topics
            .map
            .get(&Topic::Agent(agent))
            .into_iter()
            .flat_map(Subscribers::values)
        {
            if let Some(shared) = &sub.access {
                *shared.write().expect("access lock") = access.clone();
            }
        }
    }

    /// Whether the hub is closing (new sockets are refused).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

impl Connection {
    /// Restricts frames about threads to those `access` sees. Set before
    /// subscribing; [`Hub::update_access`] changes it while the socket lives.
    pub fn set_access(&mut self, access: Access) -> SharedAccess {
        let shared = Arc::new(RwLock::new(access));
        self.access = Some(shared.clone());
        shared
    }

    pub fn subscribe(&mut self, topic: Topic) {
        if self.topics.contains(&topic) {
            return;
        }
        let sub = Subscriber {
            inbox: self.inbox.clone(),
            access: self.access.clone(),
        };
        let mut topics = self.hub.topics.lock().expect("hub lock");
        // Under the lock, so either close_all sees this subscriber or this
        // sees close_all's code.
        if let Some(&(code, reason)) = self.hub.closing_with.get() {
            sub.close(code, reason);
        }
        match topics.map.entry(topic) {
            Entry::Occupied(mut subs) => subs.get_mut().insert(self.id, sub),
            Entry::Vacant(place) => {
                place.insert(Subscribers::One(self.id, sub));
            }
        }
        drop(topics);
        self.topics.push(topic);
    }

    /// The close this socket was asked for (revocation, shutdown), if any.
    /// A handle that asks this connection (only) to close, from elsewhere.
    pub fn closer(&self) -> Closer {
        Closer {
            inbox: self.inbox.clone(),
        }
    }

    pub fn close_requested(&self) -> Option<(u16, &'static str)> {
        self.inbox.close.get().copied()
    }

    /// The next delivery, waiting for one; `None` when the socket was woken
    /// for something else (a close, a lag), which the caller then checks.
    pub async fn next(&self) -> Option<Delivery> {
        if let Some(delivery) = self.inbox.pop() {
            return Some(delivery);
        }
        // A delivery queued after the pop above leaves a permit, so this
        // returns at once: nothing queued is ever slept on.
        self.inbox.wake.notified().await;
        self.inbox.pop()
    }

    /// The next delivery if one is queued.
    pub fn try_next(&self) -> Option<Delivery> {
        self.inbox.pop()
    }

    pub fn unsubscribe(&mut self, topic: Topic) {
        self.topics.retain(|t| *t != topic);
        let mut topics = self.hub.topics.lock().expect("hub lock");
        if let Some(subs) = topics.map.get_mut(&topic)
            && subs.remove(self.id)
        {
            topics.map.remove(&topic);
        }
    }

    pub fn is_subscribed(&self, topic: Topic) -> bool {
        self.topics.contains(&topic)
    }

    /// Takes the lag flag: true once after deliveries were dropped.
    pub fn take_lagged(&self) -> bool {
        self.inbox.lagged.swap(false, Ordering::AcqRel)
    }

    /// Throws away everything queued (after a lag, storage is replayed).
    pub fn discard_queued(&mut self) {
        *self.inbox.queue.lock().expect("inbox lock") = VecDeque::new();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for topic in std::mem::take(&mut self.topics) {
            let mut topics = self.hub.topics.lock().expect("hub lock");
            if let Some(subs) = topics.map.get_mut(&topic)
                && subs.remove(self.id)
            {
                topics.map.remove(&topic);
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
            assert!(fast.try_next().is_some());
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
    async fn frames_about_threads_reach_only_agents_who_see_them() {
        let hub = Hub::new();
        let space_id = SpaceId::new();
        let space = Topic::Space(space_id);
        let (sales, support) = (crate::ids::TeamId::new(), crate::ids::TeamId::new());
        let seller_id = AgentId::new();
        let mut seller = hub.connect();
        let access = |teams| Access {
            agent: seller_id,
            all: false,
            spaces: None,
            teams,
        };
        seller.set_access(access(vec![sales]));
        seller.subscribe(Topic::Agent(seller_id));
        seller.subscribe(space);
        let mut admin = hub.connect();
        admin.subscribe(space);
        let mut thread = crate::threads::rules::new_thread(space_id, VisitorId::new());
        thread.team_id = Some(support);
        let about = |t: &Thread| Delivery::about("x".into(), &Arc::new(t.clone()));
        hub.publish(space, about(&thread));
        assert!(seller.try_next().is_none());
        assert!(admin.try_next().is_some());
        // A thread the seller holds reaches the seller, whatever its team.
        thread.assigned_agent_id = Some(seller_id);
        hub.publish(space, about(&thread));
        assert!(seller.try_next().is_some());
        thread.assigned_agent_id = Some(AgentId::new());
        hub.publish(space, about(&thread));
        assert!(seller.try_next().is_none());
        // Joining the team counts from the next frame on.
        hub.update_access(seller_id, &access(vec![sales, support]));
        hub.publish(space, about(&thread));
        assert!(seller.try_next().is_some());
    }

    #[test]
    fn a_topic_goes_from_one_subscriber_to_many_and_back() {
        let hub = Hub::new();
        let topic = Topic::Visitor(VisitorId::new());
        let mut first = hub.connect();
        first.subscribe(topic);
        first.subscribe(topic);
        hub.publish(topic, Delivery::frame("one".into()));
        assert!(first.try_next().is_some());
        assert!(first.try_next().is_none(), "subscribed once");
        let mut second = hub.connect();
        second.subscribe(topic);
        let mut third = hub.connect();
        third.subscribe(topic);
        assert_eq!(hub.subscriber_count(), 3);
        hub.publish(topic, Delivery::frame("all".into()));
        for conn in [&first, &second, &third] {
            assert!(conn.try_next().is_some());
        }
        first.unsubscribe(topic);
        drop(third);
        hub.publish(topic, Delivery::frame("second".into()));
        assert!(first.try_next().is_none());
        assert!(second.try_next().is_some());
        assert!(hub.has_subscribers(topic));
        second.unsubscribe(topic);
        assert!(!hub.has_subscribers(topic));
        assert!(hub.topics.lock().unwrap().map.is_empty());
        // A lone subscriber again, after the topic emptied.
        first.subscribe(topic);
        hub.publish(topic, Delivery::frame("again".into()));
        assert!(first.try_next().is_some());
        assert!(second.try_next().is_none());
    }

    #[tokio::test]
    async fn a_close_reaches_a_connection_whose_queue_is_full() {
        let hub = Hub::new();
        let topic = Topic::Agent(AgentId::new());
        let mut conn = hub.connect();
        conn.subscribe(topic);
        for i in 0..QUEUE + 5 {
            hub.publish(topic, Delivery::frame(format!("{i}")));
        }
        hub.publish(topic, Delivery::Close(4001, "session revoked"));
        assert!(conn.take_lagged());
        // Discarding the queue after the lag keeps the close.
        conn.discard_queued();
        assert_eq!(conn.close_requested(), Some((4001, "session revoked")));
        // The first close wins.
        hub.publish(topic, Delivery::Close(1012, "restarting"));
        assert_eq!(conn.close_requested(), Some((4001, "session revoked")));
    }

    #[tokio::test]
    async fn close_all_reaches_full_queues_and_late_subscribers() {
        let hub = Hub::new();
        let topic = Topic::Visitor(VisitorId::new());
        let mut full = hub.connect();
        full.subscribe(topic);
        for i in 0..QUEUE + 5 {
            hub.publish(topic, Delivery::frame(format!("{i}")));
        }
        let mut late = hub.connect();
        let closing = {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.close_all(1012, "restarting", std::time::Duration::from_secs(30))
                    .await;
            })
        };
        while !hub.is_closing() {
            tokio::task::yield_now().await;
        }
        assert_eq!(full.close_requested(), Some((1012, "restarting")));
        // Subscribed after close_all went through the topics: closed all the same.
        assert_eq!(late.close_requested(), None);
        late.subscribe(Topic::Org(OrgId::new()));
        assert_eq!(late.close_requested(), Some((1012, "restarting")));
        drop(full);
        drop(late);
        tokio::time::timeout(std::time::Duration::from_secs(5), closing)
            .await
            .expect("close_all returns once every connection is gone")
            .unwrap();
    }

    #[tokio::test]
    async fn a_queue_holds_memory_only_while_deliveries_wait() {
        let hub = Hub::new();
        let topic = Topic::Visitor(VisitorId::new());
        let mut conn = hub.connect();
        conn.subscribe(topic);
        let capacity = |c: &Connection| c.inbox.queue.lock().unwrap().capacity();
        assert_eq!(capacity(&conn), 0, "nothing is allocated up front");
        for i in 0..100 {
            hub.publish(topic, Delivery::frame(format!("{i}")));
        }
        assert!(capacity(&conn) >= 100);
        // In order, and given back once drained.
        for i in 0..100 {
            let Some(Delivery::Frame { text, .. }) = conn.next().await else {
                panic!("delivery {i} is queued");
            };
            assert_eq!(&*text, i.to_string());
        }
        assert_eq!(capacity(&conn), 0);
        hub.publish(topic, Delivery::frame("x".into()));
        conn.discard_queued();
        assert_eq!(capacity(&conn), 0);
        assert!(conn.try_next().is_none());
    }

    #[tokio::test]
    async fn a_waiting_connection_wakes_for_a_delivery_and_for_a_close() {
        use futures_util::poll;
        let hub = Hub::new();
        let topic = Topic::Visitor(VisitorId::new());
        let mut conn = hub.connect();
        conn.subscribe(topic);
        let mut next = std::pin::pin!(conn.next());
        assert!(poll!(&mut next).is_pending(), "nothing queued: it waits");
        hub.publish(topic, Delivery::frame("hello".into()));
        assert!(next.await.is_some(), "woken with the delivery");

        let mut other = hub.connect();
        other.subscribe(topic);
        let mut next = std::pin::pin!(other.next());
        assert!(poll!(&mut next).is_pending());
        hub.publish(topic, Delivery::Close(1012, "restarting"));
        assert!(next.await.is_none(), "woken without a delivery");
        assert_eq!(other.close_requested(), Some((1012, "restarting")));
    }

    #[tokio::test]
    async fn a_connection_holds_four_of_the_largest_commits_before_it_lags() {
        let max_batch = 2048;
        let hub = Hub::with_queue(queue_for(max_batch));
        let topic = Topic::Space(SpaceId::new());
        let mut agent = hub.connect();
        agent.subscribe(topic);
        // Four whole commits arrive while the socket's task is off the CPU.
        for i in 0..4 * max_batch {
            hub.publish(topic, Delivery::frame(format!("{i}")));
        }
        assert!(!agent.take_lagged(), "four commits fit");
        hub.publish(topic, Delivery::frame("one more".into()));
        assert!(agent.take_lagged(), "the bound still holds");
        let mut n = 0;
        while agent.try_next().is_some() {
            n += 1;
        }
        assert_eq!(n, 4 * max_batch, "in order, none lost before the bound");
        assert_eq!(queue_for(1), QUEUE, "never below the floor");
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
