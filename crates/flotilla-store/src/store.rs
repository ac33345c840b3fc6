//! The store: a sequencer that orders writes, a committer that makes batches durable, the
//! committed state that readers see and the event log that watchers replay.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::{Arc, Weak};
use std::time::Duration;

use imbl::OrdMap;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, oneshot, watch, Notify};

use crate::backend::Backend;
use crate::object::{render, Event, EventKind, Object, Precondition, Revision, Write};
use crate::Error;

pub(crate) type Map = OrdMap<Arc<str>, Arc<Object>>;

/// A new subscription: the logged events after the start, the live receiver, and the revision
/// the receiver starts after.
type Subscription = (
    VecDeque<Arc<Event>>,
    broadcast::Receiver<Arc<Event>>,
    Revision,
);

/// Tuning of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many recent events the store keeps for watch replay and historic reads. A watch or an
    /// exact read from an older revision gets [`Error::Compacted`].
    pub event_log_capacity: usize,
    /// How many bytes of objects (before and after each change) the event log may hold: the
    /// oldest events go first once it holds more. Large objects written often (a placement's
    /// status over a hundred clusters) otherwise keep gigabytes of old versions.
    pub event_log_bytes: usize,
    /// How many events a watcher may fall behind before it re-reads from the event log. Each
    /// watched prefix's channel holds this many slots from its first watcher on (about 50 bytes
    /// each): 16,384 made each simulated member of a benchmark's fleet 4 MB.
    pub watch_buffer: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            event_log_capacity: 100_000,
            event_log_bytes: 128 << 20,
            watch_buffer: 1_024,
        }
    }
}

/// A handle to the store; clones share it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    engine: Engine,
    pub(crate) committed: RwLock<Committed>,
    events: Mutex<Channels>,
    pub(crate) revision: watch::Sender<Revision>,
    config: StoreConfig,
}

/// Where writes go: ordered here and persisted by a backend, or ordered by etcd.
enum Engine {
    Local(Local),
    Etcd(Box<crate::etcd::Etcd>),
}

/// The single-process engine: a sequencer and a committer over a [`Backend`].
struct Local {
    seq: Mutex<Sequencer>,
    backend: Arc<dyn Backend>,
    wake: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the committer task see that the store is gone and end.
        match &self.engine {
            Engine::Local(l) => l.wake.notify_one(),
            Engine::Etcd(e) => e.stop.notify_one(),
        }
    }
}

/// Writes that have been ordered but not yet made durable.
struct Sequencer {
    /// The latest state, including writes still being committed.
    pending: Map,
    next_rev: Revision,
    queue: Vec<Queued>,
}

struct Queued {
    event: Arc<Event>,
    done: oneshot::Sender<Result<(), String>>,
}

/// What readers see.
pub(crate) struct Committed {
    pub(crate) map: Map,
    pub(crate) rev: Revision,
    log: VecDeque<Arc<Event>>,
    /// The bytes of the objects `log` holds ([`logged_bytes`]).
    log_bytes: usize,
    /// Every event after this revision is in `log`.
    compacted: Revision,
}

/// What an event in the log accounts for: the object after and before the change (the
/// current version is shared with the committed map, so this counts high, never low).
fn logged_bytes(ev: &Event) -> usize {
    ev.object.data.len() + ev.prev.as_ref().map_or(0, |p| p.data.len())
}

impl Inner {
    fn new(engine: Engine, map: Map, revision: Revision, config: StoreConfig) -> Self {
        Inner {
            engine,
            committed: RwLock::new(Committed {
                map,
                rev: revision,
                log: VecDeque::new(),
                log_bytes: 0,
                compacted: revision,
            }),
            events: Mutex::new(Channels::default()),
            revision: watch::channel(revision).0,
            config,
        }
    }

    /// Records that everything up to `rev` has been seen (an etcd progress report) without
    /// new events under this store's prefix.
    pub(crate) fn advance(&self, rev: Revision) {
        let mut c = self.committed.write();
        if rev > c.rev {
            c.rev = rev;
            self.revision.send_replace(rev);
        }
    }

    /// Replaces the whole state (etcd's history was compacted past this cache's position):
    /// every open watch ends and no watch can resume from before `rev`.
    pub(crate) fn reset(&self, map: Map, rev: Revision) {
        let mut c = self.committed.write();
        c.map = map;
        c.rev = rev;
        c.log.clear();
        c.log_bytes = 0;
        c.compacted = rev;
        *self.events.lock() = Channels::default();
        self.revision.send_replace(rev);
    }

    /// The committed event at `rev` for `key`, if the event log still holds it.
    pub(crate) fn logged(&self, rev: Revision, key: &str) -> Option<Arc<Event>> {
        let c = self.committed.read();
        let i = c.log.partition_point(|e| e.rev < rev);
        c.log
            .get(i)
            .filter(|e| e.rev == rev && e.key() == key)
            .cloned()
    }
}

impl Store {
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Opens a store over `backend`, loading what it holds. Must be called within a Tokio
    /// runtime: it starts the committer task.
    pub fn open(backend: impl Backend, config: StoreConfig) -> Result<Self, Error> {
        let backend: Arc<dyn Backend> = Arc::new(backend);
        let loaded = backend.load()?;
        let mut map = Map::new();
        let mut revision = loaded.revision;
        for obj in loaded.objects {
            revision = revision.max(obj.mod_rev);
            map.insert(obj.key.clone(), Arc::new(obj));
        }
        let wake = Arc::new(Notify::new());
        let engine = Engine::Local(Local {
            seq: Mutex::new(Sequencer {
                pending: map.clone(),
                next_rev: revision + 1,
                queue: Vec::new(),
            }),
            backend,
            wake: wake.clone(),
        });
        let inner = Arc::new(Inner::new(engine, map, revision, config));
        tokio::spawn(run_committer(Arc::downgrade(&inner), wake));
        Ok(Self { inner })
    }

    /// Opens a store over etcd: loads the objects under the configured prefix, then follows
    /// etcd's watch. Writes go to etcd; revisions are etcd's. Must be called within a Tokio
    /// runtime: it starts the task that feeds the watch cache.
    pub async fn open_etcd(etcd: crate::EtcdConfig, config: StoreConfig) -> Result<Self, Error> {
        let (engine, loaded, feed) = crate::etcd::Etcd::connect(etcd).await?;
        let mut map = Map::new();
        for obj in loaded.objects {
            map.insert(obj.key.clone(), Arc::new(obj));
        }
        let inner = Arc::new(Inner::new(
            Engine::Etcd(Box::new(engine)),
            map,
            loaded.revision,
            config,
        ));
        tokio::spawn(crate::etcd::feed(Arc::downgrade(&inner), feed));
        Ok(Self { inner })
    }

    /// Which kind of store this is: `memory`/`redb` (one process) or `etcd`.
    pub fn is_etcd(&self) -> bool {
        matches!(self.inner.engine, Engine::Etcd(_))
    }

    /// With etcd, a value all replicas share (not an API object): stores `value` under `name`
    /// unless a replica did first, and returns what is stored. None for single-process stores.
    pub async fn shared_value(&self, name: &str, value: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
        match &self.inner.engine {
            Engine::Local(_) => Ok(None),
            Engine::Etcd(e) => match e.system_get(name).await? {
                Some(v) => Ok(Some(v)),
                None => e.system_create(name, value).await.map(Some),
            },
        }
    }

    pub(crate) fn etcd(&self) -> Option<&crate::etcd::Etcd> {
        match &self.inner.engine {
            Engine::Etcd(e) => Some(e),
            Engine::Local(_) => None,
        }
    }

    /// Opens an empty in-memory store.
    pub fn memory() -> Self {
        Self::open(crate::MemoryBackend, StoreConfig::default())
            .expect("the memory backend cannot fail to load")
    }

    /// The latest committed revision.
    pub fn revision(&self) -> Revision {
        self.inner.committed.read().rev
    }

    /// The oldest revision from which watches and historic reads are still possible.
    pub fn compacted_revision(&self) -> Revision {
        self.inner.committed.read().compacted
    }

    /// Waits until the committed revision reaches `rev`, for at most `timeout`.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> Result<(), Error> {
        let mut rx = self.inner.revision.subscribe();
        let outcome = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rev))
            .await
            .map(|r| r.is_ok());
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Closed),
            Err(_) => Err(Error::TooNew {
                requested: rev,
                current: self.revision(),
            }),
        }
    }

    /// The committed object at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Object>> {
        self.inner.committed.read().map.get(key).cloned()
    }

    /// The latest state of `key`, including a write still being committed. Read-modify-write
    /// loops start from this so they do not spin on their own in-flight writes; the result of
    /// such a loop is acknowledged only after everything it builds on is durable.
    pub fn get_latest(&self, key: &str) -> Option<Arc<Object>> {
        match &self.inner.engine {
            Engine::Local(l) => l.seq.lock().pending.get(key).cloned(),
            Engine::Etcd(_) => self.get(key),
        }
    }

    /// Makes the following reads consistent: returns once this store's view includes every
    /// write acknowledged anywhere before the call (with etcd, writes made through other hub
    /// replicas). A single-process store is always current.
    pub async fn sync(&self) -> Result<Revision, Error> {
        match &self.inner.engine {
            Engine::Local(_) => Ok(self.revision()),
            Engine::Etcd(e) => e.sync(self).await,
        }
    }

    /// A consistent view of everything committed, at the latest revision.
    pub fn snapshot(&self) -> Snapshot {
        let c = self.inner.committed.read();
        Snapshot {
            rev: c.rev,
            map: c.map.clone(),
        }
    }

    /// A consistent view at revision `rev`, restricted to keys under `prefix` (other keys may
    /// show a later state). Fails with [`Error::Compacted`] when `rev` is older than the event
    /// log, and [`Error::TooNew`] when it is newer than the latest commit.
    pub fn snapshot_at(&self, rev: Revision, prefix: &str) -> Result<Snapshot, Error> {
        let c = self.inner.committed.read();
        if rev > c.rev {
            return Err(Error::TooNew {
                requested: rev,
                current: c.rev,
            });
        }
        if rev < c.compacted {
            return Err(Error::Compacted {
                requested: rev,
                oldest: c.compacted,
            });
        }
        let mut map = c.map.clone();
        for ev in c.log.iter().rev() {
            if ev.rev <= rev {
                break;
            }
            if !ev.key().starts_with(prefix) {
                continue;
            }
            match &ev.prev {
                Some(prev) => {
                    map.insert(prev.key.clone(), prev.clone());
                }
                None => {
                    map.remove(ev.key());
                }
            }
        }
        Ok(Snapshot { rev, map })
    }

    /// Writes one key. Returns the committed event once it is durable.
    pub async fn write(&self, key: &str, write: Write) -> Result<Arc<Event>, Error> {
        let local = match &self.inner.engine {
            Engine::Local(l) => l,
            Engine::Etcd(e) => return e.write(self, key, write).await,
        };
        let (done, rx) = oneshot::channel();
        let event = {
            let mut seq = local.seq.lock();
            let current = seq.pending.get(key).cloned();
            check(key, current.as_deref(), write_precondition(&write))?;
            let rev = seq.next_rev;
            let key: Arc<str> = current
                .as_ref()
                .map(|c| c.key.clone())
                .unwrap_or_else(|| Arc::from(key));
            let event = match write {
                Write::Put {
                    mut value, attrs, ..
                } => {
                    let object = Arc::new(Object {
                        key: key.clone(),
                        create_rev: current.as_ref().map_or(rev, |c| c.create_rev),
                        mod_rev: rev,
                        attrs,
                        data: render(&mut value, rev),
                    });
                    seq.pending.insert(key, object.clone());
                    Event {
                        rev,
                        kind: EventKind::Put,
                        object,
                        prev: current,
                    }
                }
                Write::Delete { mut last, .. } => {
                    let prev = current.ok_or_else(|| Error::NotFound {
                        key: key.to_string(),
                    })?;
                    let object = Arc::new(Object {
                        key: key.clone(),
                        create_rev: prev.create_rev,
                        mod_rev: rev,
                        attrs: prev.attrs.clone(),
                        data: render(&mut last, rev),
                    });
                    seq.pending.remove(&key);
                    Event {
                        rev,
                        kind: EventKind::Delete,
                        object,
                        prev: Some(prev),
                    }
                }
            };
            let event = Arc::new(event);
            seq.next_rev += 1;
            seq.queue.push(Queued {
                event: event.clone(),
                done,
            });
            event
        };
        local.wake.notify_one();
        match rx.await {
            Ok(Ok(())) => Ok(event),
            Ok(Err(message)) => Err(Error::Backend {
                op: "commit",
                source: message.into(),
            }),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Watches keys under `prefix`, starting after revision `from`: the watcher first replays
    /// the logged events after `from`, then follows new commits.
    pub fn watch(&self, prefix: &str, from: Revision) -> Result<Watcher, Error> {
        let (backlog, rx, at) = self.subscribe(prefix, from)?;
        Ok(Watcher {
            store: self.clone(),
            prefix: prefix.to_string(),
            backlog,
            rx,
            last: from,
            seen: at,
        })
    }

    fn subscribe(&self, prefix: &str, from: Revision) -> Result<Subscription, Error> {
        let c = self.inner.committed.read();
        if from < c.compacted {
            return Err(Error::Compacted {
                requested: from,
                oldest: c.compacted,
            });
        }
        if from > c.rev {
            return Err(Error::TooNew {
                requested: from,
                current: c.rev,
            });
        }
        // Subscribing under the read lock means the receiver sees exactly the events after
        // `c.rev`; the log supplies those from `from` to `c.rev`.
        let rx = self.inner.events.lock().subscribe(
            prefix,
            channel_capacity(prefix, self.inner.config.watch_buffer),
        );
        let start = c.log.partition_point(|e| e.rev <= from);
        let backlog = c
            .log
            .range(start..)
            .filter(|e| e.key().starts_with(prefix))
            .cloned()
            .collect();
        Ok((backlog, rx, c.rev))
    }

    /// Compacts history at `rev` (never past the latest revision): drops the events at and
    /// before it from the event log and, with etcd, compacts etcd's history too. Watches and
    /// exact reads from before `rev` then get [`Error::Compacted`].
    pub async fn compact(&self, rev: Revision) -> Result<(), Error> {
        let rev = rev.min(self.revision());
        if let Engine::Etcd(e) = &self.inner.engine {
            e.compact(rev).await?;
        }
        self.compact_log(rev);
        Ok(())
    }

    pub(crate) fn compact_log(&self, rev: Revision) {
        let mut c = self.inner.committed.write();
        let rev = rev.min(c.rev);
        while c.log.front().is_some_and(|e| e.rev <= rev) {
            c.log.pop_front();
        }
        c.compacted = c.compacted.max(rev);
    }
}

fn write_precondition(w: &Write) -> Precondition {
    match w {
        Write::Put { precondition, .. } | Write::Delete { precondition, .. } => *precondition,
    }
}

fn check(key: &str, current: Option<&Object>, pre: Precondition) -> Result<(), Error> {
    match (pre, current) {
        (Precondition::None, _) => Ok(()),
        (Precondition::MustNotExist, None) => Ok(()),
        (Precondition::MustNotExist, Some(_)) => Err(Error::AlreadyExists {
            key: key.to_string(),
        }),
        (Precondition::MustExist | Precondition::ModRevision(_), None) => Err(Error::NotFound {
            key: key.to_string(),
        }),
        (Precondition::MustExist, Some(_)) => Ok(()),
        (Precondition::ModRevision(want), Some(c)) if c.mod_rev == want => Ok(()),
        (Precondition::ModRevision(want), Some(c)) => Err(Error::Conflict {
            key: key.to_string(),
            expected: want,
            actual: c.mod_rev,
        }),
    }
}

async fn run_committer(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(inner) = inner.upgrade() else { return };
        let Engine::Local(local) = &inner.engine else {
            return;
        };
        loop {
            let batch = std::mem::take(&mut local.seq.lock().queue);
            if batch.is_empty() {
                break;
            }
            let events: Vec<Arc<Event>> = batch.iter().map(|q| q.event.clone()).collect();
            let last = events.last().map_or(0, |e| e.rev);
            // Cancelled: the runtime is shutting down under the store (the process is going
            // away); the writes fail and there is nothing to report.
            let mut cancelled = false;
            let result = if local.backend.blocking() {
                let backend = local.backend.clone();
                let events = events.clone();
                tokio::task::spawn_blocking(move || backend.persist(&events, last))
                    .await
                    .unwrap_or_else(|e| {
                        cancelled = e.is_cancelled();
                        Err(Error::backend("commit", e))
                    })
            } else {
                local.backend.persist(&events, last)
            };
            match result {
                Ok(()) => {
                    publish(&inner, &events);
                    for q in batch {
                        let _ = q.done.send(Ok(()));
                    }
                }
                Err(e) => {
                    if !cancelled {
                        tracing::error!(error = %e, "commit failed; failing the writes of the batch");
                    }
                    // The writes report it as their own commit failure: its cause, once.
                    let message = match &e {
                        Error::Backend { source, .. } => source.to_string(),
                        other => other.to_string(),
                    };
                    // Everything sequenced after the failed batch was checked against state
                    // that will never exist: fail it too and restart from the committed state.
                    let rest = {
                        let mut seq = local.seq.lock();
                        let c = inner.committed.read();
                        seq.pending = c.map.clone();
                        seq.next_rev = c.rev + 1;
                        std::mem::take(&mut seq.queue)
                    };
                    for q in batch.into_iter().chain(rest) {
                        if cancelled {
                            // The writers see the store closed, as after it stopped.
                            drop(q.done);
                        } else {
                            let _ = q.done.send(Err(message.clone()));
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn publish(inner: &Inner, events: &[Arc<Event>]) {
    let mut c = inner.committed.write();
    for ev in events {
        match ev.kind {
            EventKind::Put => {
                c.map.insert(ev.object.key.clone(), ev.object.clone());
            }
            EventKind::Delete => {
                c.map.remove(ev.key());
            }
        }
        c.rev = ev.rev;
        c.log_bytes += logged_bytes(ev);
        c.log.push_back(ev.clone());
    }
    inner.events.lock().publish(events);
    // The newest event stays, whatever its size: a watch can always resume from the latest
    // revision.
    while c.log.len() > inner.config.event_log_capacity
        || (c.log_bytes > inner.config.event_log_bytes && c.log.len() > 1)
    {
        if let Some(old) = c.log.pop_front() {
            c.log_bytes -= logged_bytes(&old);
            c.compacted = old.rev;
        }
    }
    inner.revision.send_replace(c.rev);
}

/// A consistent, immutable view of the store at one revision.
#[derive(Clone)]
pub struct Snapshot {
    /// The revision the view shows.
    pub rev: Revision,
    map: Map,
}

impl Snapshot {
    /// The object at `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<Object>> {
        self.map.get(key)
    }

    /// The objects whose keys start with `prefix`, in key order, starting after `start_after`.
    pub fn range<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        let lower = match start_after {
            Some(k) if k >= prefix => Bound::Excluded(k),
            _ => Bound::Included(prefix),
        };
        self.map
            .range::<_, str>((lower, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
    }

    /// How many objects have keys under `prefix` after `start_after` (used for
    /// `remainingItemCount`).
    pub fn count(&self, prefix: &str, start_after: Option<&str>) -> usize {
        self.range(prefix, start_after).count()
    }
}

/// How many events a prefix's channel buffers: the configured buffer for the wide prefixes
/// (everything, a group, a resource), less for a namespace or an object, whose watchers are many
/// and see few events. A watcher that falls further behind re-reads from the event log.
fn channel_capacity(prefix: &str, buffer: usize) -> usize {
    if prefix.matches('/').count() <= 3 {
        buffer.max(16)
    } else {
        buffer.clamp(16, 256)
    }
}

/// The live event channels of the watchers, one per watched prefix, so a commit wakes only the
/// watchers of prefixes its key is under (not every watcher of the store).
#[derive(Default)]
struct Channels {
    /// Prefixes ending in `/` (how keys are structured): found from a key's own `/` boundaries.
    by_prefix: std::collections::HashMap<String, broadcast::Sender<Arc<Event>>>,
    /// Any other prefixes, checked one by one.
    other: Vec<(String, broadcast::Sender<Arc<Event>>)>,
    /// Publishes since channels without receivers were last dropped.
    since_sweep: usize,
}

impl Channels {
    fn subscribe(&mut self, prefix: &str, capacity: usize) -> broadcast::Receiver<Arc<Event>> {
        if prefix.is_empty() || prefix.ends_with('/') {
            if let Some(tx) = self.by_prefix.get(prefix) {
                return tx.subscribe();
            }
            let (tx, rx) = broadcast::channel(capacity);
            self.by_prefix.insert(prefix.to_string(), tx);
            rx
        } else {
            if let Some((_, tx)) = self.other.iter().find(|(p, _)| p == prefix) {
                return tx.subscribe();
            }
            let (tx, rx) = broadcast::channel(capacity);
            self.other.push((prefix.to_string(), tx));
            rx
        }
    }

    fn publish(&mut self, events: &[Arc<Event>]) {
        for ev in events {
            let key = ev.key();
            let send = |p: &str| {
                if let Some(tx) = self.by_prefix.get(p) {
                    // No receivers is fine: nobody is watching.
                    let _ = tx.send(ev.clone());
                }
            };
            send("");
            for (i, _) in key.match_indices('/') {
                send(&key[..=i]);
            }
            for (p, tx) in &self.other {
                if key.starts_with(p.as_str()) {
                    let _ = tx.send(ev.clone());
                }
            }
        }
        self.since_sweep += 1;
        if self.since_sweep >= 256 {
            self.since_sweep = 0;
            self.by_prefix.retain(|_, tx| tx.receiver_count() > 0);
            self.other.retain(|(_, tx)| tx.receiver_count() > 0);
        }
    }
}

/// A stream of committed events under one key prefix, in revision order.
pub struct Watcher {
    store: Store,
    prefix: String,
    backlog: VecDeque<Arc<Event>>,
    rx: broadcast::Receiver<Arc<Event>>,
    last: Revision,
    /// The newest revision known to be covered: every event up to it is delivered or pending.
    seen: Revision,
}

impl Watcher {
    /// The revision of the last event delivered (or the starting revision).
    pub fn revision(&self) -> Revision {
        self.last
    }

    /// A revision safe to report as progress (a bookmark): every event under the prefix up
    /// to it has been delivered. When nothing is pending this is the store's latest revision.
    pub fn progress(&self) -> Revision {
        // The store's revision is read before looking at the channel: an event committed
        // after this read is either in the channel (then nothing newer than `last` is safe)
        // or newer than the revision read.
        let rev = self.store.revision();
        if self.backlog.is_empty() && self.rx.is_empty() {
            rev.max(self.seen).max(self.last)
        } else {
            self.last
        }
    }

    /// The next event. A watcher that falls behind re-reads from the event log; it fails with
    /// [`Error::Compacted`] only when the events it missed are gone from the log.
    pub async fn next(&mut self) -> Result<Arc<Event>, Error> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                self.last = ev.rev;
                return Ok(ev);
            }
            match self.rx.recv().await {
                Ok(ev) => {
                    self.seen = self.seen.max(ev.rev);
                    if ev.rev <= self.last || !ev.key().starts_with(&self.prefix) {
                        continue;
                    }
                    self.last = ev.rev;
                    return Ok(ev);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (backlog, rx, at) = self.store.subscribe(&self.prefix, self.last)?;
                    self.backlog = backlog;
                    self.rx = rx;
                    self.seen = self.seen.max(at);
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Error::Closed),
            }
        }
    }
}
