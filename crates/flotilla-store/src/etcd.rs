//! The etcd engine: etcd orders and stores every write, its revisions are the store's, and the
//! store's in-memory state becomes a watch cache fed by one etcd watch over the prefix.
//!
//! Keys: a store key `/core/configmaps/ns/a` lives at `{prefix}/core/configmaps/ns/a`. Keys the
//! hub keeps for itself (leader lease, shared credentials, sync fences) live at `{prefix}/!...`,
//! inside the watched range, so that every revision the hub itself causes reaches the cache in
//! order; the cache skips them. Values are a small binary record: selector attributes, then the
//! object's JSON split where the resourceVersion goes, so that an event becomes the served bytes
//! by one splice, without parsing JSON.
//!
//! Consistent reads ([`crate::Store::sync`]): fetch etcd's current revision R (a linearizable
//! read). The cache has every write at or before R once it has applied R, or any later
//! revision. When writes outside the prefix moved R (a shared etcd), the cache cannot reach R
//! by its own events; then one fence write under `{prefix}/!sync` (shared by concurrent
//! readers) produces an event after R on the cache's own watch. Progress notifications are not
//! used: etcd before 3.4.25/3.5.8 may send them ahead of pending events.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Certificate, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity, KeyValue,
    TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::Notify;

use crate::etcd_pool::{Op, Pool};
use crate::object::{codec, Attrs, Event, EventKind, Object, Precondition, Revision, Write};
use crate::store::{publish, Inner, Map};
use crate::{Error, Loaded, Store};

/// Where the etcd engine finds etcd and how it talks to it.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members (`http://127.0.0.1:2379`, `https://...`).
    pub endpoints: Vec<String>,
    /// The key prefix under which this hub keeps everything (default `/flotilla`).
    pub prefix: String,
    /// TLS towards etcd, when its URLs are `https`.
    pub tls: Option<EtcdTls>,
    /// How long one request to etcd may take before the API answers 504.
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// Endpoints with the default prefix and timeout, without TLS.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            prefix: "/flotilla".into(),
            tls: None,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// TLS material for etcd (PEM).
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's serving certificates.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key, when etcd requires client certificates.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// The engine: the members and the key layout.
pub(crate) struct Etcd {
    pool: Arc<Pool>,
    /// `{prefix}` without a trailing slash.
    prefix: String,
    /// Serializes fence writes so that concurrent readers share one.
    fence: tokio::sync::Mutex<()>,
    pub(crate) stop: Arc<Notify>,
}

/// What the feeding task needs.
pub(crate) struct Feed {
    pool: Arc<Pool>,
    prefix: String,
    stop: Arc<Notify>,
}

const PAGE: i64 = 1000;
const RECORD_VERSION: u8 = 2;
const MAX_MESSAGE: usize = 256 << 20;

fn range_end(prefix: &str) -> String {
    // Everything under `{prefix}/`: '/' + 1 is '0'.
    format!("{prefix}0")
}

impl Etcd {
    /// Connects and loads everything under the prefix, retrying while etcd is unreachable.
    pub(crate) async fn connect(config: crate::EtcdConfig) -> Result<(Etcd, Loaded, Feed), Error> {
        let prefix = config.prefix.trim_end_matches('/').to_string();
        if prefix.is_empty() || !prefix.starts_with('/') {
            return Err(Error::Invalid(format!(
                "etcd prefix {:?} must start with '/' and name something",
                config.prefix
            )));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(5), config.request_timeout);
        if let Some(tls) = &config.tls {
            let mut t = TlsOptions::new();
            if let Some(ca) = &tls.ca {
                t = t.ca_certificate(Certificate::from_pem(ca.clone()));
            }
            if let Some((cert, key)) = &tls.identity {
                t = t.identity(Identity::from_pem(cert.clone(), key.clone()));
            }
            opts = opts.with_tls(t);
        }
        let mut delay = Duration::from_millis(200);
        let (pool, loaded) = loop {
            let attempt = async {
                let pool =
                    Pool::new(&config.endpoints, opts.clone(), config.request_timeout).await?;
                let loaded = load(&pool, &prefix).await?;
                Ok::<_, Error>((pool, loaded))
            };
            match attempt.await {
                Ok(r) => break r,
                Err(e @ Error::Invalid(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(endpoints = ?config.endpoints, error = %e, "waiting for etcd");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let stop = Arc::new(Notify::new());
        let pool = Arc::new(pool);
        let feed = Feed {
            pool: pool.clone(),
            prefix: prefix.clone(),
            stop: stop.clone(),
        };
        Ok((
            Etcd {
                pool,
                prefix,
                fence: tokio::sync::Mutex::new(()),
                stop,
            },
            loaded,
            feed,
        ))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The key of a value the hub keeps for itself (not an API object).
    pub(crate) fn system_key(&self, name: &str) -> String {
        format!("{}/!{name}", self.prefix)
    }

    pub(crate) fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    fn timeout(&self) -> Duration {
        self.pool.timeout()
    }

    pub(crate) async fn write(
        &self,
        store: &Store,
        key: &str,
        write: Write,
    ) -> Result<Arc<Event>, Error> {
        let ekey = self.key(key);
        let (precondition, op, record) = match write {
            Write::Put {
                mut value,
                attrs,
                precondition,
            } => {
                let record = encode(&mut value, &attrs);
                (
                    precondition,
                    TxnOp::put(ekey.clone(), record.clone(), None),
                    Some((record, attrs)),
                )
            }
            Write::Delete { precondition, .. } => {
                (precondition, TxnOp::delete(ekey.clone(), None), None)
            }
        };
        let compare = match precondition {
            Precondition::None => vec![],
            Precondition::MustNotExist => {
                vec![Compare::create_revision(ekey.clone(), CompareOp::Equal, 0)]
            }
            Precondition::MustExist => {
                vec![Compare::version(ekey.clone(), CompareOp::Greater, 0)]
            }
            Precondition::ModRevision(r) => vec![Compare::mod_revision(
                ekey.clone(),
                CompareOp::Equal,
                r as i64,
            )],
        };
        let is_delete = record.is_none();
        let txn = Txn::new()
            .when(compare)
            .and_then([op])
            .or_else([TxnOp::get(ekey.clone(), None)]);
        let resp = self
            .pool
            .call(Op::Write, |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision()) as Revision;
        if !resp.succeeded() {
            let current = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
                _ => None,
            });
            return Err(match (precondition, current) {
                (Precondition::MustNotExist, _) => Error::AlreadyExists {
                    key: key.to_string(),
                },
                (Precondition::ModRevision(expected), Some(actual)) => Error::Conflict {
                    key: key.to_string(),
                    expected,
                    actual: actual as Revision,
                },
                _ => Error::NotFound {
                    key: key.to_string(),
                },
            });
        }
        if is_delete {
            let deleted = resp.op_responses().into_iter().any(|r| match r {
                TxnOpResponse::Delete(d) => d.deleted() > 0,
                _ => false,
            });
            if !deleted {
                return Err(Error::NotFound {
                    key: key.to_string(),
                });
            }
        }
        // Read-your-writes on this replica: the answer is sent once the cache has the write.
        let _ = store.wait_for(rev, self.timeout()).await;
        if let Some(ev) = store.inner().logged(rev, key) {
            return Ok(ev);
        }
        // The cache is behind (etcd unreachable since) or already dropped the event: describe
        // the write from what is known; it is durable in etcd either way.
        let prev = store.get(key);
        let object = match record {
            Some((record, _)) => {
                let mut obj = decode(key, &record, rev, rev)
                    .ok_or_else(|| Error::Corrupt(format!("record for {key}")))?;
                if let Some(p) = &prev {
                    obj.create_rev = p.create_rev;
                }
                obj
            }
            None => match &prev {
                Some(p) => rerender(p, rev),
                None => {
                    return Err(Error::NotFound {
                        key: key.to_string(),
                    })
                }
            },
        };
        Ok(Arc::new(Event {
            rev,
            kind: if is_delete {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            object: Arc::new(object),
            prev,
        }))
    }

    /// etcd's current revision (a linearizable read of nothing).
    async fn current_revision(&self) -> Result<Revision, Error> {
        let key = self.system_key("sync");
        let resp = self
            .pool
            .call(Op::Read, |c| {
                let key = key.clone();
                async move {
                    c.kv_client()
                        .get(key, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()) as Revision)
    }

    pub(crate) async fn sync(&self, store: &Store) -> Result<Revision, Error> {
        let target = self.current_revision().await?;
        if store.revision() >= target {
            return Ok(store.revision());
        }
        // Usually the events are on their way: give them a moment.
        if store
            .wait_for(target, Duration::from_millis(5))
            .await
            .is_ok()
        {
            return Ok(store.revision());
        }
        let _fence = self.fence.lock().await;
        if store.revision() >= target {
            return Ok(store.revision());
        }
        let key = self.system_key("sync");
        let resp = self
            .pool
            .call(Op::Write, |c| {
                let key = key.clone();
                async move { c.kv_client().put(key, Vec::new(), None).await }
            })
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision()) as Revision;
        store
            .wait_for(rev, self.timeout())
            .await
            .map_err(|_| Error::Timeout("the watch cache did not catch up with etcd".into()))?;
        Ok(store.revision())
    }

    pub(crate) async fn compact(&self, rev: Revision) -> Result<(), Error> {
        self.pool
            .call(Op::Write, |c| async move {
                match c.kv_client().compact(rev as i64, None).await {
                    Ok(_) => Ok(()),
                    // Already compacted at or past `rev` (another replica did it): fine.
                    Err(e) if e.to_string().contains("compacted") => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// Reads a value the hub keeps for itself.
    pub(crate) async fn system_get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let key = self.system_key(name);
        let resp = self
            .pool
            .call(Op::Read, |c| {
                let key = key.clone();
                async move { c.kv_client().get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Stores `value` under `name` unless something is there; returns what is stored.
    pub(crate) async fn system_create(&self, name: &str, value: Vec<u8>) -> Result<Vec<u8>, Error> {
        let key = self.system_key(name);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .pool
            .call(Op::Write, |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(value);
        }
        Ok(resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
                _ => None,
            })
            .unwrap_or(value))
    }
}

/// Reads every object under the prefix at one revision, page by page.
async fn load(pool: &Pool, prefix: &str) -> Result<Loaded, Error> {
    let end = range_end(prefix);
    let mut from = format!("{prefix}/");
    let mut loaded = Loaded::default();
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if loaded.revision > 0 {
            opts = opts.with_revision(loaded.revision as i64);
        }
        let resp = pool
            .call(Op::Read, |c| {
                let (from, opts) = (from.clone(), opts.clone());
                async move {
                    c.kv_client()
                        .max_decoding_message_size(MAX_MESSAGE)
                        .get(from, Some(opts))
                        .await
                }
            })
            .await?;
        if loaded.revision == 0 {
            loaded.revision = resp.header().map_or(0, |h| h.revision()) as Revision;
        }
        for kv in resp.kvs() {
            if let Some(obj) = object_of(prefix, kv)? {
                loaded.objects.push(obj);
            }
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => {
                let mut next = last.key().to_vec();
                next.push(0);
                from = String::from_utf8(next)
                    .map_err(|_| Error::Corrupt("a key under the prefix is not UTF-8".into()))?;
            }
            _ => return Ok(loaded),
        }
    }
}

/// The stored object of `kv`, or None for the hub's own keys.
fn object_of(prefix: &str, kv: &KeyValue) -> Result<Option<Object>, Error> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|_| Error::Corrupt("a key under the prefix is not UTF-8".into()))?;
    let Some(key) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    if key.starts_with("/!") {
        return Ok(None);
    }
    decode(
        key,
        kv.value(),
        kv.create_revision() as Revision,
        kv.mod_revision() as Revision,
    )
    .map(Some)
    .ok_or_else(|| Error::Corrupt(format!("record for key {key} cannot be decoded")))
}

/// Follows etcd's watch from the cache's revision, applying events in order. On a broken
/// stream it resumes from the last applied revision; when etcd has compacted past it, it
/// reloads everything and ends the open watches (their clients re-list).
pub(crate) async fn feed(inner: Weak<Inner>, feed: Feed) {
    let Feed { pool, prefix, stop } = feed;
    let end = range_end(&prefix);
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(start) = inner.upgrade().map(|i| i.committed.read().rev) else {
            return;
        };
        let (member, client) = pool.current();
        let mut wc = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let opts = WatchOptions::new()
            .with_range(end.clone())
            .with_start_revision(start as i64 + 1);
        let watch = tokio::select! {
            _ = stop.notified() => return,
            w = wc.watch(format!("{prefix}/"), Some(opts)) => w,
        };
        let mut stream = match watch {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "etcd watch could not start; retrying");
                pool.failed(member, &e);
                tokio::select! {
                    _ = stop.notified() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = stop.notified() => return,
                m = stream.message() => m,
            };
            let Some(inner) = inner.upgrade() else { return };
            match msg {
                Ok(Some(resp)) => {
                    delay = Duration::from_millis(100);
                    if resp.canceled() {
                        if resp.compact_revision() == 0 {
                            // e.g. the member lost its leader (watches require one).
                            tracing::warn!(
                                reason = resp.cancel_reason(),
                                "etcd cancelled the watch; resuming"
                            );
                            pool.failed(member, &resp.cancel_reason());
                        }
                        if resp.compact_revision() > 0 {
                            tracing::warn!(
                                compacted = resp.compact_revision(),
                                "etcd history was compacted past the watch cache; reloading"
                            );
                            reload(&inner, &pool, &prefix).await;
                        }
                        break;
                    }
                    if resp.events().is_empty() {
                        continue;
                    }
                    apply(&inner, &prefix, resp.events());
                }
                Ok(None) => {
                    tracing::warn!("etcd watch stream ended; resuming");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "etcd watch failed; resuming");
                    pool.failed(member, &e);
                    break;
                }
            }
        }
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

async fn reload(inner: &Inner, pool: &Pool, prefix: &str) {
    loop {
        match load(pool, prefix).await {
            Ok(loaded) => {
                let mut map = Map::new();
                for obj in loaded.objects {
                    map.insert(obj.key.clone(), Arc::new(obj));
                }
                inner.reset(map, loaded.revision);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reloading from etcd failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn apply(inner: &Inner, prefix: &str, events: &[etcd_client::Event]) {
    let mut out = Vec::with_capacity(events.len());
    let mut last = 0;
    {
        // Events are applied one batch at a time by this task only, so the map read here is
        // the state before the batch, updated as the batch goes.
        let c = inner.committed.read();
        let mut overlay: Vec<(Arc<str>, Option<Arc<Object>>)> = Vec::new();
        let current = |key: &str, overlay: &Vec<(Arc<str>, Option<Arc<Object>>)>| {
            overlay
                .iter()
                .rev()
                .find(|(k, _)| &**k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| c.map.get(key).cloned())
        };
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            let rev = kv.mod_revision() as Revision;
            last = last.max(rev);
            if rev <= c.rev {
                continue;
            }
            let Some(key) = std::str::from_utf8(kv.key())
                .ok()
                .and_then(|k| k.strip_prefix(prefix))
            else {
                continue;
            };
            if key.starts_with("/!") {
                continue;
            }
            let prev = current(key, &overlay);
            let event = match ev.event_type() {
                EventType::Put => {
                    let Some(obj) = decode(
                        key,
                        kv.value(),
                        kv.create_revision() as Revision,
                        kv.mod_revision() as Revision,
                    ) else {
                        tracing::error!(key, rev, "undecodable record in etcd; skipped");
                        continue;
                    };
                    let obj = Arc::new(obj);
                    overlay.push((obj.key.clone(), Some(obj.clone())));
                    Event {
                        rev,
                        kind: EventKind::Put,
                        object: obj,
                        prev,
                    }
                }
                EventType::Delete => {
                    let Some(p) = prev else { continue };
                    overlay.push((p.key.clone(), None));
                    Event {
                        rev,
                        kind: EventKind::Delete,
                        object: Arc::new(rerender(&p, rev)),
                        prev: Some(p),
                    }
                }
            };
            out.push(Arc::new(event));
        }
    }
    if !out.is_empty() {
        publish(inner, &out);
    }
    // Revisions of the hub's own keys (fences, the leader lease) count as seen too.
    inner.advance(last);
}

/// The final state `prev` rendered at a deletion's revision, as delete events carry it.
fn rerender(prev: &Object, rev: Revision) -> Object {
    let mut value: serde_json::Value =
        serde_json::from_slice(&prev.data).unwrap_or(serde_json::Value::Null);
    Object {
        key: prev.key.clone(),
        create_rev: prev.create_rev,
        mod_rev: rev,
        attrs: prev.attrs.clone(),
        data: crate::object::render(&mut value, rev),
    }
}

/// Encodes an object for etcd: version, attributes, the split offset, the JSON without the
/// resourceVersion value (it is spliced in at the split when read).
fn encode(value: &mut serde_json::Value, attrs: &Attrs) -> Vec<u8> {
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.insert("resourceVersion".into(), serde_json::Value::Null);
    }
    let (json, split) = split_json(value);
    let mut out = Vec::with_capacity(json.len() + 64);
    out.push(RECORD_VERSION);
    codec::write_attrs(&mut out, attrs);
    out.extend_from_slice(&split.map_or(u32::MAX, |s| s as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// Serializes `value`, leaving out the value of `metadata.resourceVersion`; returns the bytes
/// and the offset where that value belongs.
fn split_json(value: &serde_json::Value) -> (Vec<u8>, Option<usize>) {
    let Some(top) = value.as_object() else {
        return (serde_json::to_vec(value).expect("JSON encodes"), None);
    };
    let mut out = Vec::with_capacity(256);
    let mut split = None;
    out.push(b'{');
    for (i, (k, v)) in top.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).expect("JSON encodes");
        out.push(b':');
        match v.as_object() {
            Some(meta) if k == "metadata" => {
                out.push(b'{');
                for (j, (mk, mv)) in meta.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut out, mk).expect("JSON encodes");
                    out.push(b':');
                    if mk == "resourceVersion" {
                        split = Some(out.len());
                    } else {
                        serde_json::to_writer(&mut out, mv).expect("JSON encodes");
                    }
                }
                out.push(b'}');
            }
            _ => serde_json::to_writer(&mut out, v).expect("JSON encodes"),
        }
    }
    out.push(b'}');
    (out, split)
}

fn decode(key: &str, bytes: &[u8], create_rev: Revision, mod_rev: Revision) -> Option<Object> {
    let mut r = codec::Reader(bytes);
    if r.take(1)? != [RECORD_VERSION] {
        return None;
    }
    let attrs = r.attrs()?;
    let split = r.u32()?;
    let json = r.0;
    let data = if split == u32::MAX {
        Bytes::copy_from_slice(json)
    } else {
        let split = split as usize;
        if split > json.len() {
            return None;
        }
        let rv = mod_rev.to_string();
        let mut d = Vec::with_capacity(json.len() + rv.len() + 2);
        d.extend_from_slice(&json[..split]);
        d.push(b'"');
        d.extend_from_slice(rv.as_bytes());
        d.push(b'"');
        d.extend_from_slice(&json[split..]);
        Bytes::from(d)
    };
    Some(Object {
        key: Arc::from(key),
        create_rev,
        mod_rev,
        attrs,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_the_revision_spliced_in() {
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "7", "labels": {"x": "y"}},
            "data": {"resourceVersion": "", "k": "\"quoted\""}
        });
        let attrs = Attrs {
            labels: vec![("x".into(), "y".into())],
            fields: vec![],
        };
        let rec = encode(&mut v, &attrs);
        let obj = decode("/core/configmaps/default/a", &rec, 3, 42).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&obj.data).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "42");
        assert_eq!(back["data"]["resourceVersion"], "");
        assert_eq!(back["data"]["k"], "\"quoted\"");
        assert_eq!(obj.attrs, attrs);
        assert_eq!((obj.create_rev, obj.mod_rev), (3, 42));
        // The key order is the object's own (resourceVersion keeps its place).
        let text = std::str::from_utf8(&obj.data).unwrap();
        assert!(text.starts_with(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"42","labels""#), "{text}");
        // Truncated or foreign records are rejected.
        assert!(decode("/k", &rec[..5], 1, 1).is_none());
        assert!(decode("/k", &[1, 0, 0], 1, 1).is_none());
    }

    #[test]
    fn objects_without_metadata_are_stored_verbatim() {
        let mut v = serde_json::json!([1, 2]);
        let rec = encode(&mut v, &Attrs::default());
        let obj = decode("/k", &rec, 1, 2).unwrap();
        assert_eq!(&obj.data[..], b"[1,2]");
    }
}
