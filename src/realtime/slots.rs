//! How many sockets are open: in all (`limits.max_sockets`, every socket
//! kind) and per visitor (`limits.sockets_per_visitor`, widget sockets);
//! and no new socket while the process's memory is above its high-water
//! mark (`memory`), so a memory limit is never reached by taking sockets.
//! An upgrade takes a [`Slot`] before it answers, and the socket holds it
//! until it ends, so the counts are exact even while upgrades race.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;

use crate::error::{AppError, AppResult};
use crate::ids::VisitorId;

pub struct Sockets {
    open: AtomicUsize,
    max: usize,
    per_visitor: Mutex<HashMap<VisitorId, usize>>,
    max_per_visitor: usize,
    /// Resident bytes above which new sockets are refused; 0: no mark.
    memory_high: u64,
    /// Sockets open when the mark was reached. The allocator keeps what
    /// closed sockets used for the next ones, so memory may stay above the
    /// mark after they close: up to this many sockets reuse it.
    memory_ceiling: AtomicUsize,
    /// Upgrades refused at the memory mark, and at `max_sockets`.
    pub refused_memory: AtomicU64,
    pub refused_full: AtomicU64,
}

/// One open (or opening) socket's place; given back on drop.
pub struct Slot {
    sockets: Arc<Sockets>,
    visitor: Option<VisitorId>,
}

impl Sockets {
    pub fn new(max: u32, max_per_visitor: u32) -> Arc<Sockets> {
        Sockets::with_memory_mark(max, max_per_visitor, 0)
    }

    /// Also refuses new sockets while the process holds more than
    /// `memory_high` bytes of anonymous memory (0: never).
    pub fn with_memory_mark(max: u32, max_per_visitor: u32, memory_high: u64) -> Arc<Sockets> {
        Arc::new(Sockets {
            open: AtomicUsize::new(0),
            max: max as usize,
            per_visitor: Mutex::default(),
            max_per_visitor: max_per_visitor as usize,
            memory_high,
            memory_ceiling: AtomicUsize::new(usize::MAX),
            refused_memory: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
        })
    }

    /// Whether memory allows one more socket: below the mark, or fewer
    /// sockets open than when it was reached.
    fn memory_allows(&self) -> bool {
        let below = crate::memory::used_bytes().is_none_or(|used| used < self.memory_high);
        if below {
            self.memory_ceiling.store(usize::MAX, Ordering::Relaxed);
            return true;
        }
        let open = self.open();
        match self.memory_ceiling.compare_exchange(
            usize::MAX,
            open,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            // Reached just now: what is open is what memory holds.
            Ok(_) => false,
            Err(ceiling) => open < ceiling,
        }
    }

    /// The memory mark in bytes (0: none).
    pub fn memory_high(&self) -> u64 {
        self.memory_high
    }

    /// Sockets open or being opened now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A place under the global cap and the memory mark; 503 when there
    /// is none.
    pub fn acquire(self: &Arc<Self>) -> AppResult<Slot> {
        if self.memory_high > 0 && !self.memory_allows() {
            if self
                .refused_memory
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(1000)
            {
                tracing::warn!(
                    high = self.memory_high,
                    open = self.open(),
                    "memory at its high-water mark: new sockets are refused (503)"
                );
            }
            return Err(AppError::Unavailable(
                "the server is short of memory; retry later".into(),
            ));
        }
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| {
                self.refused_full.fetch_add(1, Ordering::Relaxed);
                AppError::Unavailable("the server holds all the sockets it can; retry later".into())
            })?;
        Ok(Slot {
            sockets: self.clone(),
            visitor: None,
        })
    }
}

impl Slot {
    /// Counts this socket as one of `visitor`'s; 429 (`too_many_sockets`)
    /// when the visitor already holds as many as it may.
    pub fn for_visitor(&mut self, visitor: VisitorId) -> AppResult<()> {
        let mut counts = self.sockets.per_visitor.lock().expect("sockets lock");
        let count = counts.entry(visitor).or_insert(0);
        if *count >= self.sockets.max_per_visitor {
            return Err(AppError::TooMany {
                code: "too_many_sockets",
                message: format!(
                    "a visitor may hold at most {} sockets; close one first",
                    self.sockets.max_per_visitor
                ),
            });
        }
        *count += 1;
        self.visitor = Some(visitor);
        Ok(())
    }

    /// Runs a socket's task, holding the slot until it ends (or is
    /// dropped). A combinator rather than an `async fn`: an `async fn`
    /// would keep `socket` twice in every socket's task, once as its
    /// argument and once as what it awaits.
    pub fn hold<F: Future>(self, socket: F) -> impl Future<Output = F::Output> {
        socket.map(move |out| {
            drop(self);
            out
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.sockets.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(visitor) = self.visitor {
            let mut counts = self.sockets.per_visitor.lock().expect("sockets lock");
            if let Some(count) = counts.get_mut(&visitor) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&visitor);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_dropped() {
        let sockets = Sockets::new(2, 1);
        let a = sockets.acquire().unwrap();
        let b = sockets.acquire().unwrap();
        assert_eq!(sockets.acquire().err().unwrap().status().as_u16(), 503);
        drop(a);
        let mut c = sockets.acquire().unwrap();
        let visitor = VisitorId::new();
        c.for_visitor(visitor).unwrap();
        drop(b);
        let mut d = sockets.acquire().unwrap();
        assert_eq!(
            d.for_visitor(visitor).unwrap_err().code(),
            "too_many_sockets"
        );
        drop(c);
        d.for_visitor(visitor).unwrap();
        drop(d);
        assert_eq!(sockets.open(), 0);
        assert!(sockets.per_visitor.lock().unwrap().is_empty());
        assert_eq!(sockets.refused_full.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn no_socket_above_the_memory_mark() {
        let sockets = Sockets::with_memory_mark(10, 1, 1);
        let refused = sockets.acquire().err().unwrap();
        assert_eq!(refused.status().as_u16(), 503);
        assert_eq!(sockets.open(), 0);
        assert_eq!(sockets.refused_memory.load(Ordering::Relaxed), 1);
        // Reached with sockets open: once some close, as many take their
        // place (their memory is reused), no more.
        let held = Sockets::with_memory_mark(10, 1, 1);
        held.open.store(2, Ordering::Relaxed);
        assert!(held.acquire().is_err());
        held.open.store(1, Ordering::Relaxed);
        let slot = held.acquire().unwrap();
        assert!(held.acquire().is_err());
        drop(slot);
        assert_eq!(held.open(), 1);
        let roomy = Sockets::with_memory_mark(10, 1, u64::MAX);
        assert!(roomy.acquire().is_ok());
    }
}
