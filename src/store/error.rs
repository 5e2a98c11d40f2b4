//! What the store fails with, and what a write closure may fail with.
//! This file imports nothing of My-Chat, so the application's error type
//! can convert from it without depending on the store.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage: {0}")]
    Storage(String),
    #[error("record codec: {0}")]
    Codec(String),
    /// A unique index already holds the key (e.g. an email in use).
    #[error("{0} already exists")]
    Unique(&'static str),
    /// The database was written by a newer version of the program.
    #[error("database schema {found} is newer than this program's {supported}")]
    SchemaTooNew { found: u64, supported: u64 },
    #[error("store is shutting down")]
    ShuttingDown,
    /// The file system is below the store's free-space floor (or said
    /// ENOSPC): nothing of the write was stored.
    #[error("the disk is full")]
    DiskFull,
    /// The commit failed (an I/O error): nothing of the write was stored,
    /// and the database is reopened from its last durable commit.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The write kept losing races with other nodes' commits (PostgreSQL):
    /// nothing of it was stored.
    #[error("the transaction kept losing serialization races")]
    Contended,
}

/// What a write closure may fail with: the caller's own error type (the
/// store never names it), able to carry a store error and to say whether
/// it is a failure of storage itself. The writer needs that to know a
/// broken transaction from a refused write.
pub trait WriteError: From<Error> + Send + 'static {
    fn is_storage(&self) -> bool;
}

impl WriteError for Error {
    fn is_storage(&self) -> bool {
        matches!(
            self,
            Error::Storage(_) | Error::DiskFull | Error::CommitFailed(_) | Error::Contended
        )
    }
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(e.to_string())
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError,
    std::io::Error
);
