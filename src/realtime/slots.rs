//! How many sockets are open: in all (`limits.max_sockets`, every socket
//! kind) and per visitor (`limits.sockets_per_visitor`, widget sockets).
//! An upgrade takes a [`Slot`] before it answers, and the socket holds it
//! until it ends, so the counts are exact even while upgrades race.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{AppError, AppResult};
use crate::ids::VisitorId;

pub struct Sockets {
    open: AtomicUsize,
    max: usize,
    per_visitor: Mutex<HashMap<VisitorId, usize>>,
    max_per_visitor: usize,
}

/// One open (or opening) socket's place; given back on drop.
pub struct Slot {
    sockets: Arc<Sockets>,
    visitor: Option<VisitorId>,
}

impl Sockets {
    pub fn new(max: u32, max_per_visitor: u32) -> Arc<Sockets> {
        Arc::new(Sockets {
            open: AtomicUsize::new(0),
            max: max as usize,
            per_visitor: Mutex::default(),
            max_per_visitor: max_per_visitor as usize,
        })
    }

    /// Sockets open or being opened now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A place under the global cap; 503 when there is none.
    pub fn acquire(self: &Arc<Self>) -> AppResult<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| {
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

    /// Runs a socket's task, holding the slot until it ends.
    pub async fn hold<F: Future>(self, socket: F) -> F::Output {
        let out = socket.await;
        drop(self);
        out
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
    }
}
