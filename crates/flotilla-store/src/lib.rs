//! Flotilla's object store.
//!
//! One global revision numbers every write; it is the `resourceVersion` the API server serves.
//! The live state is an immutable ordered map held in memory (cloning it is O(1)), so reads never
//! touch disk and a consistent snapshot at any recent revision is the current map with newer
//! events undone. Writes go through a single sequencer that checks preconditions and assigns
//! revisions; a committer task persists whole batches through the [`Backend`] (group commit)
//! before anyone can read them, so an acknowledged write is always durable.
//!
//! **Invariant:** readers see only committed (durable) state, in revision order, with no gaps.

#![warn(missing_docs)]

mod backend;
pub mod backup;
mod election;
mod etcd;
mod etcd_pool;
pub mod etcd_server;
mod object;
mod store;
pub mod supervised;

pub use backend::{Backend, Loaded, MemoryBackend, RedbBackend};
pub use election::Leadership;
pub use etcd::{EtcdConfig, EtcdTls};
pub use object::{Attrs, Event, EventKind, Object, Precondition, Revision, Write};
pub use store::{Snapshot, Store, StoreConfig, Watcher};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A create found the key already present.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// The key does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The key's mod revision is not the one the write required.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the write required.
        expected: Revision,
        /// The key's current revision.
        actual: Revision,
    },
    /// The requested revision is older than the oldest event the store still holds.
    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// The requested revision is newer than anything committed, and did not arrive in time.
    #[error("revision {requested} is newer than the current revision {current}")]
    TooNew {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The backend failed; the write was not made.
    #[error("storage {op} failed: {source}")]
    Backend {
        /// What the backend was doing.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The persisted data cannot be read.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The storage is unreachable (etcd down or refusing); nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The storage did not answer in time; a write may or may not have been made.
    #[error("storage timeout: {0}")]
    Timeout(String),
    /// The store's configuration is invalid.
    #[error("invalid store configuration: {0}")]
    Invalid(String),
    /// The store is shutting down or its committer has stopped.
    #[error("the store is closed")]
    Closed,
}

impl Error {
    pub(crate) fn backend(
        op: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            op,
            source: Box::new(e),
        }
    }
}
