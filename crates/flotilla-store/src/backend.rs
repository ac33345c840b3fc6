//! Persistence backends. A backend makes a batch of committed events durable; the store keeps
//! the live state in memory and never reads a backend except when it opens.

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::object::{codec, Event, EventKind, Object, Revision};
use crate::Error;

/// What a backend holds when the store opens.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The last committed revision (0 for an empty store).
    pub revision: Revision,
    /// Every stored object.
    pub objects: Vec<Object>,
}

/// Durable storage for the store's state.
pub trait Backend: Send + Sync + 'static {
    /// Reads the whole persisted state.
    fn load(&self) -> Result<Loaded, Error>;
    /// Makes `batch` durable; `revision` is the revision of its last event. Returns only once
    /// the batch would survive a crash. Called from a blocking thread when [`Self::blocking`].
    fn persist(&self, batch: &[Arc<Event>], revision: Revision) -> Result<(), Error>;
    /// Whether [`Self::persist`] does blocking IO.
    fn blocking(&self) -> bool;
}

/// Keeps nothing: for tests and simulations.
#[derive(Debug, Default)]
pub struct MemoryBackend;

impl Backend for MemoryBackend {
    fn load(&self) -> Result<Loaded, Error> {
        Ok(Loaded::default())
    }

    fn persist(&self, _batch: &[Arc<Event>], _revision: Revision) -> Result<(), Error> {
        Ok(())
    }

    fn blocking(&self) -> bool {
        false
    }
}

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION_KEY: &str = "revision";

/// redb's page cache. The store reads the file once, when it opens (every read after that is
/// served from the store's own map), so the cache only has to hold the B-tree's inner pages a
/// commit walks, a few megabytes for a million objects. redb's default (1 GiB) filled with
/// every page a hub ever wrote: 39 MB of a 2,000-binding hub, growing with the fleet.
const CACHE_BYTES: usize = 64 << 20;

/// The embedded, crash-safe default: one redb file. Each batch is one redb transaction committed
/// with immediate durability (fsync), so every acknowledged write survives a kill.
pub struct RedbBackend {
    db: redb::Database,
}

impl RedbBackend {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| Error::backend("open", e))?;
        Ok(Self { db })
    }
}

impl Backend for RedbBackend {
    fn load(&self) -> Result<Loaded, Error> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Error::backend("read", e))?;
        let mut loaded = Loaded::default();
        match txn.open_table(META) {
            Ok(meta) => {
                if let Some(v) = meta
                    .get(REVISION_KEY)
                    .map_err(|e| Error::backend("read", e))?
                {
                    loaded.revision = v.value();
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(loaded),
            Err(e) => return Err(Error::backend("read", e)),
        }
        let objects = match txn.open_table(OBJECTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(loaded),
            Err(e) => return Err(Error::backend("read", e)),
        };
        for row in objects.iter().map_err(|e| Error::backend("read", e))? {
            let (k, v) = row.map_err(|e| Error::backend("read", e))?;
            let key = k.value();
            let obj = codec::decode(key, v.value())
                .ok_or_else(|| Error::Corrupt(format!("record for key {key} cannot be decoded")))?;
            loaded.objects.push(obj);
        }
        Ok(loaded)
    }

    fn persist(&self, batch: &[Arc<Event>], revision: Revision) -> Result<(), Error> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| Error::backend("write", e))?;
        {
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(|e| Error::backend("write", e))?;
            for ev in batch {
                match ev.kind {
                    EventKind::Put => {
                        objects
                            .insert(ev.key(), codec::encode(&ev.object).as_slice())
                            .map_err(|e| Error::backend("write", e))?;
                    }
                    EventKind::Delete => {
                        objects
                            .remove(ev.key())
                            .map_err(|e| Error::backend("write", e))?;
                    }
                }
            }
            let mut meta = txn
                .open_table(META)
                .map_err(|e| Error::backend("write", e))?;
            meta.insert(REVISION_KEY, revision)
                .map_err(|e| Error::backend("write", e))?;
        }
        txn.commit().map_err(|e| Error::backend("commit", e))?;
        Ok(())
    }

    fn blocking(&self) -> bool {
        true
    }
}
