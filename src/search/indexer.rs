//! The indexer thread: the index's one writer. It takes what `feed`
//! queued, applies a batch, commits, and makes it searchable; an
//! incomplete index is first rebuilt from a store snapshot. Everything
//! queued meanwhile is applied after the rebuild (each operation replaces
//! by key or removes by id, so applying one twice is harmless).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tantivy::IndexWriter;
use tokio::sync::oneshot;

use super::index::{CLEAN, DIRTY, Doc, SearchIndex, visitor_texts};
use super::{Op, ThreadRef};
use crate::ids::{OrgId, SpaceId, VisitorId};
use crate::store::{Reader, Store};
use crate::threads::model::ThreadStatus;

/// At most this many operations go into one index commit. Commits are
/// meant to come from [`COMMIT_EVERY`]: every commit writes a segment (a
/// term dictionary, a handful of files) and later merges it, and most of
/// the indexing thread's time went to that, not to the words. At 2,000 a
/// busy server (16,000 messages/s) committed eight times a second and its
/// search threads had 18% of a 128-sender run's CPU samples (10% now). tantivy still writes a
/// segment early when its writer's memory ([`super::index`]'s 15 MB)
/// fills.
const BATCH: usize = 50_000;
/// How long a change may wait for others to share its commit: each commit
/// writes a segment (and later merges it), so one per message would cost
/// the indexer's whole writer memory again and again under a steady trickle.
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// Between commits the indexer takes what is queued this often rather than
/// waiting on the queue, so feeding it wakes no thread: a wake-up costs
/// the store's writer more than the send (tens of µs in a VM). A flush or
/// a stop wakes it at once.
const TICK: Duration = Duration::from_millis(50);

pub struct Handle {
    ops: mpsc::Sender<Op>,
    thread: std::thread::JoinHandle<()>,
}

impl Handle {
    /// Has the indexer look at its queue now rather than at its next tick.
    pub fn wake(&self) {
        self.thread.thread().unpark();
    }

    /// Queued after every operation fed so far: the thread applies them,
    /// commits the index as clean, answers and ends.
    pub async fn stop(self) {
        let (done, wait) = oneshot::channel();
        if self.ops.send(Op::Stop(done)).is_ok() {
            self.wake();
            let _ = wait.await;
        }
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

pub fn start(
    index: Arc<SearchIndex>,
    store: Store,
    ops: mpsc::Sender<Op>,
    queue: mpsc::Receiver<Op>,
    rebuild: bool,
) -> tantivy::Result<Handle> {
    let writer = index.writer()?;
    let thread = std::thread::Builder::new()
        .name("search-indexer".into())
        .spawn(move || {
            let mut indexer = Indexer {
                index,
                store,
                writer,
                orgs: HashMap::new(),
                visitors: HashMap::new(),
            };
            if rebuild && let Err(e) = indexer.rebuild() {
                tracing::error!(error = %e, "search index rebuild failed");
            }
            indexer.run(&queue);
        })?;
    Ok(Handle { ops, thread })
}

struct Indexer {
    index: Arc<SearchIndex>,
    store: Store,
    writer: IndexWriter,
    /// Which organization a space is of.
    orgs: HashMap<SpaceId, OrgId>,
    /// What each visitor's document was made from (a hash of its fields).
    visitors: HashMap<VisitorId, u64>,
}

impl Indexer {
    fn run(&mut self, queue: &mpsc::Receiver<Op>) {
        while let Ok(first) = queue.recv() {
            let deadline = Instant::now() + COMMIT_EVERY;
            let mut waiting = Vec::new();
            let mut stop = None;
            let mut changed = false;
            let mut applied = 0;
            let mut next = Some(first);
            loop {
                while let Some(op) = next.take() {
                    match op {
                        Op::Flush(done) => waiting.push(done),
                        Op::Stop(done) => stop = Some(done),
                        op => {
                            changed = true;
                            applied += 1;
                            if let Err(e) = self.apply(op) {
                                tracing::warn!(error = %e, "search index update failed");
                            }
                        }
                    }
                    if stop.is_some() || applied >= BATCH {
                        break;
                    }
                    next = queue.try_recv().ok();
                }
                // With nothing queued, a flush is answered now; else what
                // comes until the deadline joins this commit.
                let now = Instant::now();
                if stop.is_some() || applied >= BATCH || !waiting.is_empty() || now >= deadline {
                    break;
                }
                std::thread::park_timeout(TICK.min(deadline - now));
                next = queue.try_recv().ok();
            }
            let payload = if stop.is_some() { CLEAN } else { DIRTY };
            if (changed || stop.is_some())
                && let Err(e) = self.commit(payload)
            {
                tracing::error!(error = %e, "search index commit failed");
            }
            for done in waiting {
                let _ = done.send(());
            }
            if let Some(done) = stop {
                let _ = done.send(());
                return;
            }
        }
    }

    fn commit(&mut self, payload: &str) -> tantivy::Result<()> {
        SearchIndex::commit(&mut self.writer, payload)?;
        self.index.reload()
    }

    fn org_of(&mut self, read: &impl Reader, space: SpaceId) -> Option<OrgId> {
        if let Some(org) = self.orgs.get(&space) {
            return Some(*org);
        }
        let org = read.space(space).ok().flatten()?.organization_id;
        self.orgs.insert(space, org);
        Some(org)
    }

    fn apply(&mut self, op: Op) -> Result<(), Box<dyn std::error::Error>> {
        let index = self.index.clone();
        match op {
            Op::Message { message, thread } => {
                if message.deleted_at.is_some() {
                    index.remove_message(&self.writer, message.id);
                    return Ok(());
                }
                let read = self.store.read()?;
                let Some(org) = self.org_of(&read, thread.space) else {
                    return Ok(());
                };
                if message.sender_type == crate::messages::model::SenderType::Visitor {
                    self.refresh_visitor(&read, thread.visitor)?;
                }
                index.put(
                    &self.writer,
                    Doc::Message {
                        org,
                        space: thread.space,
                        visitor: thread.visitor,
                        message: *message,
                    },
                )?;
            }
            Op::Thread {
                thread,
                subject,
                new,
            } => {
                let read = self.store.read()?;
                if new {
                    self.refresh_visitor(&read, thread.visitor)?;
                }
                self.subject(&read, thread, subject)?;
            }
            Op::Visitor(id) => {
                let read = self.store.read()?;
                self.refresh_visitor(&read, id)?;
            }
            Op::ForgetVisitor(id) => {
                index.remove_visitor(&self.writer, id);
                self.visitors.remove(&id);
            }
            Op::ForgetSpace(id) => {
                index.remove_space(&self.writer, id);
                self.orgs.remove(&id);
            }
            Op::Flush(done) | Op::Stop(done) => {
                let _ = done.send(());
            }
        }
        Ok(())
    }

    fn subject(
        &mut self,
        read: &impl Reader,
        thread: ThreadRef,
        subject: Option<String>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let Some(org) = self.org_of(read, thread.space) else {
            return Ok(());
        };
        match subject.filter(|s| !s.trim().is_empty()) {
            Some(subject) => {
                let Some(mut t) = read.thread(thread.id)? else {
                    return Ok(());
                };
                t.subject = Some(subject);
                self.index
                    .put(&self.writer, Doc::Subject { org, thread: t })?;
            }
            None => self.index.remove_subject(&self.writer, thread.id),
        }
        Ok(())
    }

    /// Re-indexes a visitor's fields when they differ from what is indexed.
    fn refresh_visitor(
        &mut self,
        read: &impl Reader,
        id: VisitorId,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let Some(visitor) = read.visitor(id)? else {
            return Ok(());
        };
        let mut h = DefaultHasher::new();
        visitor_texts(&visitor).hash(&mut h);
        let hash = h.finish();
        if self.visitors.get(&id) == Some(&hash) {
            return Ok(());
        }
        let Some(org) = self.org_of(read, visitor.chat_space_id) else {
            return Ok(());
        };
        self.index
            .put(&self.writer, Doc::Visitor { org, visitor })?;
        self.visitors.insert(id, hash);
        Ok(())
    }

    /// Everything from one store snapshot: visitors, subjects, messages.
    fn rebuild(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let started = std::time::Instant::now();
        self.index.remove_all(&self.writer)?;
        self.visitors.clear();
        let read = self.store.read()?;
        let mut documents = 0u64;
        for space in read.all_spaces()? {
            let org = space.organization_id;
            self.orgs.insert(space.id, org);
            for visitor in read.visitors_of_space(space.id)? {
                let mut h = DefaultHasher::new();
                visitor_texts(&visitor).hash(&mut h);
                self.visitors.insert(visitor.id, h.finish());
                self.index
                    .put(&self.writer, Doc::Visitor { org, visitor })?;
                documents += 1;
            }
            let threads =
                read.threads_in_spaces(&[space.id], &ThreadStatus::ALL, None, usize::MAX, &|_| {
                    true
                })?;
            for thread in threads.items {
                for message in read.messages(thread.id, None, false, usize::MAX)? {
                    if message.deleted_at.is_some() || message.event.is_some() {
                        continue;
                    }
                    self.index.put(
                        &self.writer,
                        Doc::Message {
                            org,
                            space: space.id,
                            visitor: thread.visitor_id,
                            message,
                        },
                    )?;
                    documents += 1;
                }
                if thread
                    .subject
                    .as_deref()
                    .is_some_and(|s| !s.trim().is_empty())
                {
                    self.index.put(&self.writer, Doc::Subject { org, thread })?;
                    documents += 1;
                }
            }
        }
        self.commit(DIRTY)?;
        tracing::info!(
            documents,
            ms = started.elapsed().as_millis() as u64,
            "search index rebuilt from the store"
        );
        Ok(())
    }
}
