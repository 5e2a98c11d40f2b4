//! What the store asks of a database: ordered maps of byte keys to byte
//! values, one per [`Table`], read from consistent snapshots and written in
//! transactions that commit durably or not at all.
//!
//! Everything above this seam (records, indexes, queries, the group-commit
//! writer, outboxes, events) is the same for every backend. Two backends
//! implement it: the embedded redb file (`file.rs`, the default) and
//! PostgreSQL (`postgres.rs`, for several nodes over one database).

use super::tables::Table;
use super::{Result, Scan};

/// Reads of one snapshot (or of a write transaction, which sees its own
/// writes).
pub trait Kv {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Keys under `scan.prefix`, in byte order (or reversed), at most
    /// `scan.limit` of them.
    fn scan(&self, table: Table, scan: &Scan) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// The writes of one transaction.
pub trait KvWrite: Kv {
    fn insert(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()>;
    /// Whether there was a value.
    fn remove(&self, table: Table, key: &[u8]) -> Result<bool>;
}

/// A consistent snapshot that may be sent between threads.
pub type Snapshot = Box<dyn Kv + Send + Sync>;

/// What a transaction's body decides once it ran.
pub enum Decision {
    /// Commit durably. `broadcast`: what other nodes must hear once this
    /// commit is visible to them (backends with one node ignore it).
    Commit { broadcast: Option<Vec<u8>> },
    /// Roll everything back.
    Abort,
}

/// The body of a write transaction. It may run more than once (a backend
/// that lost a serialization race runs it again on a fresh transaction),
/// so it must start from scratch each time and have no effects outside
/// what it writes through the [`KvWrite`].
pub type Body<'b> = &'b mut dyn FnMut(&dyn KvWrite) -> Decision;
