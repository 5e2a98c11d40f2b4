//! Search over the whole history: a tantivy index in `data_dir/search/`.
//!
//! The store stays the truth; the index is a copy that may lag a moment
//! behind it. Committed events reach it from the store's commit listener
//! (`feed`, which only queues), and one indexer thread applies them and
//! commits the index — a message is acknowledged without waiting for any
//! of this. The index remembers whether its writer stopped cleanly; one
//! that is missing, unreadable or was not closed cleanly (a crash, a
//! restore) is rebuilt from the store at start while the server serves.
//!
//! Results are ids only: the thread lists read each thread from the store
//! and apply the access rule (`threads::rules::Access`) to it, so a stale
//! entry can never show anything the store no longer holds.

pub mod index;
mod indexer;
pub mod snippet;

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use crate::events::Event;
use crate::ids::{OrgId, SpaceId, VisitorId};
use crate::messages::model::Message;
use crate::store::Store;
use crate::threads::model::Thread;
pub use index::Found;
use index::SearchIndex;

/// The index's folder under the data dir (left out of backups: it is
/// rebuilt from the database).
pub const DIR: &str = "search";

/// What the indexer is asked to do, in commit order.
enum Op {
    /// A message was stored, edited or deleted.
    Message {
        message: Box<Message>,
        thread: ThreadRef,
    },
    /// A thread was created or changed (its subject, its visitor's fields).
    Thread {
        thread: ThreadRef,
        subject: Option<String>,
        new: bool,
    },
    /// A visitor's fields may have changed.
    Visitor(VisitorId),
    /// A visitor and everything about it were erased.
    ForgetVisitor(VisitorId),
    /// A space and everything in it were deleted.
    ForgetSpace(SpaceId),
    /// Answered once everything queued before it is searchable.
    Flush(oneshot::Sender<()>),
    /// The last operation: commit the index as complete and end.
    Stop(oneshot::Sender<()>),
}

#[derive(Clone, Copy)]
struct ThreadRef {
    id: crate::ids::ThreadId,
    space: SpaceId,
    visitor: VisitorId,
}

impl ThreadRef {
    fn of(t: &Thread) -> Self {
        ThreadRef {
            id: t.id,
            space: t.chat_space_id,
            visitor: t.visitor_id,
        }
    }
}

pub struct Search {
    index: Arc<SearchIndex>,
    complete: bool,
    ops: mpsc::Sender<Op>,
    /// Taken by the indexer when it starts.
    queue: Mutex<Option<mpsc::Receiver<Op>>>,
    indexer: Mutex<Option<indexer::Handle>>,
}

impl Search {
    /// Opens the index in `dir` (creating it when missing).
    pub fn open(dir: &Path) -> tantivy::Result<Search> {
        let (index, complete) = SearchIndex::open(dir)?;
        let (ops, queue) = mpsc::channel();
        Ok(Search {
            index: Arc::new(index),
            complete,
            ops,
            queue: Mutex::new(Some(queue)),
            indexer: Mutex::new(None),
        })
    }

    /// Starts the indexer thread: it rebuilds the index from `store` first
    /// when the index is not complete, then applies what was fed.
    pub fn start(&self, store: Store) -> tantivy::Result<()> {
        let Some(queue) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        let handle = indexer::start(
            self.index.clone(),
            store,
            self.ops.clone(),
            queue,
            !self.complete,
        )?;
        *self.indexer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(())
    }

    /// Applies what is queued, commits the index as complete and stops the
    /// indexer. Called after the store's last commit.
    pub async fn stop(&self) {
        let handle = self
            .indexer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            handle.stop().await;
        }
    }

    /// Queues what a commit's events change in the index. Runs on the
    /// store's writer thread: it never blocks.
    pub fn feed(&self, events: &[Event]) {
        for event in events {
            let op = match event {
                // A history line ("Claimed by …") is not something to search for.
                Event::MessageNew { message, .. } | Event::MessageChanged { message, .. }
                    if message.event.is_some() =>
                {
                    continue;
                }
                Event::MessageNew { message, thread }
                | Event::MessageChanged { message, thread } => Op::Message {
                    message: Box::new(message.clone()),
                    thread: ThreadRef::of(thread),
                },
                Event::ThreadNew { thread } => Op::Thread {
                    thread: ThreadRef::of(thread),
                    subject: thread.subject.clone(),
                    new: true,
                },
                Event::ThreadUpdated { thread } => Op::Thread {
                    thread: ThreadRef::of(thread),
                    subject: thread.subject.clone(),
                    new: false,
                },
                Event::VisitorErased { visitor, .. } => Op::ForgetVisitor(*visitor),
                Event::WidgetsEnded { .. }
                | Event::Read { .. }
                | Event::AgentRevoked { .. }
                | Event::AgentAccessChanged { .. }
                | Event::AgentAway { .. }
                | Event::LabelsChanged { .. }
                | Event::ParticipantJoined { .. }
                | Event::ParticipantLeft { .. }
                | Event::SigningKeyRevoked { .. }
                | Event::OfflineMessage { .. }
                | Event::ThreadTransferred { .. } => continue,
            };
            let _ = self.ops.send(op);
        }
    }

    /// A visitor's searchable fields changed outside a thread event.
    pub fn visitor_changed(&self, id: VisitorId) {
        let _ = self.ops.send(Op::Visitor(id));
    }

    /// A space was deleted: its documents go.
    pub fn space_deleted(&self, id: SpaceId) {
        let _ = self.ops.send(Op::ForgetSpace(id));
    }

    /// Waits until everything queued so far is searchable (or the indexer
    /// has stopped).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.ops.send(Op::Flush(done)).is_ok() {
            if let Some(indexer) = &*self.indexer.lock().unwrap_or_else(|e| e.into_inner()) {
                indexer.wake();
            }
            let _ = wait.await;
        }
    }

    /// Threads (and visitors) of `org` whose text matches `q`, best first.
    /// Internal notes count only when `notes` (agents).
    pub fn find(&self, org: OrgId, q: &str, notes: bool, limit: usize) -> Vec<Found> {
        match self.index.search(org, q, notes, limit) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "search failed");
                Vec::new()
            }
        }
    }

    /// How many index documents still mention a visitor (its fields, its
    /// threads' subjects and messages).
    pub fn documents_of_visitor(&self, id: VisitorId) -> usize {
        self.index.count_of_visitor(id).unwrap_or(0)
    }

    /// Documents in the index.
    pub fn documents(&self) -> u64 {
        self.index.documents()
    }
}
