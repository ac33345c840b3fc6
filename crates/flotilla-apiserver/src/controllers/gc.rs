//! The garbage collector (ownerReferences with background, foreground and orphan propagation)
//! and the namespace controller (a deleted namespace's objects are removed, then the namespace).
//!
//! Both follow the store's event stream and write through the server's own update and delete
//! paths, so every rule of the API (finalizers, validation, events) applies to their writes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_store::{Event, EventKind};
use serde_json::{json, Value};

use crate::delete::DeleteOptions;
use crate::list::ns_name;
use crate::registry::{key_prefix_of, Resource};
use crate::rest::{finalizers, meta, meta_str, Loc};
use crate::server::ApiServer;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    uid: String,
    block: bool,
}

fn owners(v: &Value) -> Vec<Owner> {
    meta(v)
        .get("ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    Some(Owner {
                        uid: o.get("uid")?.as_str()?.to_string(),
                        block: o.get("blockOwnerDeletion") == Some(&json!(true)),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a write of the collector took effect or found the object already gone (404); other
/// failures are logged with `what` and the object they concern.
fn settled<T>(
    r: Result<T, crate::errors::ApiError>,
    what: &str,
    object: &dyn std::fmt::Display,
) -> bool {
    match r {
        Ok(_) => true,
        Err(e) if e.code == 404 => true,
        // The server is going away under the collector: nothing to report.
        Err(e) if e.is_store_closed() => {
            tracing::debug!(object = %object, error = %e, "{what}");
            false
        }
        Err(e) => {
            tracing::warn!(object = %object, error = %e, "{what}");
            false
        }
    }
}

/// The latest of an Event's occurrence times.
fn last_seen(e: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    [
        &e["series"]["lastObservedTime"],
        &e["lastTimestamp"],
        &e["eventTime"],
        &e["metadata"]["creationTimestamp"],
    ]
    .into_iter()
    .filter_map(|t| t.as_str())
    .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    .map(|t| t.with_timezone(&chrono::Utc))
    .max()
}

/// The collector's view of the object graph.
#[derive(Default)]
struct Graph {
    /// uid -> key of every live object.
    keys: HashMap<String, String>,
    /// owner uid -> keys of objects that name it.
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    fn add(&mut self, key: &str, v: &Value) {
        let uid = meta_str(v, "uid");
        if !uid.is_empty() {
            self.keys.insert(uid.to_string(), key.to_string());
        }
        for o in owners(v) {
            self.dependents
                .entry(o.uid)
                .or_default()
                .insert(key.to_string());
        }
    }

    /// The keys of the objects that name `uid` as an owner.
    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remove(&mut self, key: &str, v: &Value) {
        let uid = meta_str(v, "uid");
        if self.keys.get(uid).is_some_and(|k| k == key) {
            self.keys.remove(uid);
        }
        for o in owners(v) {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
    }
}

/// Runs the garbage collector and namespace controller until the store closes.
pub(crate) async fn run(server: ApiServer, resync: Duration) {
    let mut graph = Graph::default();
    let snap = server.store().snapshot();
    let mut pending: HashSet<String> = HashSet::new();
    for o in snap.range("/", None) {
        let v = crate::rest::parse(o);
        graph.add(&o.key, &v);
        if !owners(&v).is_empty() || !meta_str(&v, "deletionTimestamp").is_empty() {
            pending.insert(o.key.to_string());
        }
    }
    let mut watcher = match server.store().watch("/", snap.rev) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "garbage collector cannot watch the store");
            return;
        }
    };
    let mut gc = Collector { server, graph };
    for key in pending.drain() {
        gc.process(&key).await;
    }
    let mut ticker = tokio::time::interval(resync);
    let ttl = gc.server.state.config.event_ttl;
    let mut expiry =
        tokio::time::interval((ttl / 60).clamp(Duration::from_millis(50), Duration::from_secs(60)));
    let stopped = gc.server.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            ev = watcher.next() => match ev {
                Ok(ev) => gc.on_event(&ev).await,
                Err(flotilla_store::Error::Compacted { .. }) => {
                    // Fell behind the event log: start over from the current state.
                    let snap = gc.server.store().snapshot();
                    gc.graph = Graph::default();
                    for o in snap.range("/", None) {
                        gc.graph.add(&o.key, &crate::rest::parse(o));
                    }
                    match gc.server.store().watch("/", snap.rev) {
                        Ok(w) => watcher = w,
                        Err(_) => return,
                    }
                }
                Err(_) => return,
            },
            _ = ticker.tick() => gc.resync().await,
            _ = expiry.tick() => gc.expire_events(ttl).await,
        }
    }
}

struct Collector {
    server: ApiServer,
    graph: Graph,
}

impl Collector {
    fn resource_of_key(&self, key: &str) -> Option<Arc<Resource>> {
        let mut parts = key.trim_start_matches('/').splitn(3, '/');
        let group = parts.next()?;
        let plural = parts.next()?;
        let group = if group == "core" { "" } else { group };
        let reg = self.server.state.registry.read();
        let found = reg
            .all()
            .find(|r| r.group == group && r.plural == plural)
            .cloned();
        found
    }

    fn loc(&self, key: &str) -> Option<Loc> {
        let res = self.resource_of_key(key)?;
        let (ns, name) = ns_name(&res, key);
        Some(Loc { res, ns, name })
    }

    async fn on_event(&mut self, ev: &Event) {
        let key = ev.key().to_string();
        // The graph needs metadata only (uid, ownerReferences, deletion).
        let now: Value = crate::rest::gc_meta(&ev.object);
        if let Some(prev) = &ev.prev {
            self.graph.remove(&key, &crate::rest::gc_meta(prev));
        }
        match ev.kind {
            EventKind::Put => {
                self.graph.add(&key, &now);
                if !owners(&now).is_empty() || !meta_str(&now, "deletionTimestamp").is_empty() {
                    self.process(&key).await;
                }
            }
            EventKind::Delete => {
                let uid = meta_str(&now, "uid").to_string();
                let deps: Vec<String> = self.graph.dependents_of(&uid);
                for d in deps {
                    self.process(&d).await;
                }
                // An owner waiting for its dependents may now be free to go.
                for o in owners(&now) {
                    if let Some(k) = self.graph.keys.get(&o.uid).cloned() {
                        self.process(&k).await;
                    }
                }
                if let (Some(res), true) =
                    (self.resource_of_key(&key), key.matches('/').count() >= 4)
                {
                    if let (Some(ns), _) = ns_name(&res, &key) {
                        let ns_key = format!("{}{ns}", key_prefix_of("", "namespaces"));
                        self.process(&ns_key).await;
                    }
                }
            }
        }
    }

    async fn resync(&mut self) {
        let snap = self.server.store().snapshot();
        let keys: Vec<String> = snap
            .range("/", None)
            .filter(|o| {
                let v = crate::rest::parse(o);
                !owners(&v).is_empty() || !meta_str(&v, "deletionTimestamp").is_empty()
            })
            .map(|o| o.key.to_string())
            .collect();
        for k in keys {
            self.process(&k).await;
        }
    }

    /// Brings one object in line with the ownership rules.
    async fn process(&mut self, key: &str) {
        let Some(obj) = self.server.store().get(key) else {
            return;
        };
        let v = crate::rest::parse(&obj);
        let Some(loc) = self.loc(key) else { return };
        let deleting = !meta_str(&v, "deletionTimestamp").is_empty();
        let fins = finalizers(&v);
        let uid = meta_str(&v, "uid").to_string();
        if deleting && loc.res.group.is_empty() && loc.res.plural == "namespaces" {
            self.finish_namespace(&loc, &v).await;
            return;
        }
        if deleting && fins.iter().any(|f| f == "orphan") {
            let deps: Vec<String> = self.graph.dependents_of(&uid);
            for d in deps {
                if let Some(dl) = self.loc(&d) {
                    let owner = uid.clone();
                    let r = self
                        .server
                        .modify(&dl, move |o| {
                            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                                refs.retain(|r| r["uid"].as_str() != Some(owner.as_str()));
                                if refs.is_empty() {
                                    o["metadata"]
                                        .as_object_mut()
                                        .map(|m| m.remove("ownerReferences"));
                                }
                            }
                        })
                        .await;
                    if !settled(r, "could not orphan a dependent", &d) {
                        return;
                    }
                }
            }
            self.drop_finalizer(&loc, "orphan").await;
            return;
        }
        if deleting && fins.iter().any(|f| f == "foregroundDeletion") {
            let deps: Vec<String> = self.graph.dependents_of(&uid);
            let mut blocking = 0;
            for d in deps {
                let Some(dobj) = self.server.store().get(&d) else {
                    continue;
                };
                let dv = crate::rest::parse(&dobj);
                if owners(&dv).iter().any(|o| o.uid == uid && o.block) {
                    blocking += 1;
                }
                if meta_str(&dv, "deletionTimestamp").is_empty() {
                    if let Some(dl) = self.loc(&d) {
                        let opts = DeleteOptions {
                            propagation: Some("Foreground".into()),
                            ..Default::default()
                        };
                        settled(
                            self.server.delete_with(&dl, &opts, false).await,
                            "could not delete a dependent",
                            &d,
                        );
                    }
                }
            }
            if blocking == 0 {
                self.drop_finalizer(&loc, "foregroundDeletion").await;
            }
            return;
        }
        // A dependent whose owners are all gone is deleted; dangling references are dropped.
        let refs = owners(&v);
        if refs.is_empty() || deleting {
            return;
        }
        let alive: Vec<&Owner> = refs
            .iter()
            .filter(|o| self.graph.keys.contains_key(&o.uid))
            .collect();
        if alive.is_empty() {
            let opts = DeleteOptions {
                propagation: Some("Background".into()),
                ..Default::default()
            };
            settled(
                self.server.delete_with(&loc, &opts, false).await,
                "could not collect an orphaned dependent",
                &key,
            );
        } else if alive.len() < refs.len() {
            let live: HashSet<String> = alive.iter().map(|o| o.uid.clone()).collect();
            let r = self
                .server
                .modify(&loc, move |o| {
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"].as_str().is_some_and(|u| live.contains(u)));
                    }
                })
                .await;
            settled(r, "could not drop dangling owner references", &key);
        }
    }

    /// Deletes Events whose last occurrence is older than `ttl`, as kube-apiserver's event TTL
    /// does.
    async fn expire_events(&self, ttl: Duration) {
        let Ok(ttl) = chrono::Duration::from_std(ttl) else {
            return;
        };
        let cutoff = chrono::Utc::now() - ttl;
        let expired: Vec<String> = self
            .server
            .store()
            .snapshot()
            .range(&key_prefix_of("", "events"), None)
            .filter(|o| last_seen(&crate::rest::parse(o)).is_some_and(|t| t < cutoff))
            .map(|o| o.key.to_string())
            .collect();
        for key in expired {
            if let Some(loc) = self.loc(&key) {
                settled(
                    self.server
                        .delete_with(&loc, &DeleteOptions::default(), false)
                        .await,
                    "could not expire an event",
                    &key,
                );
            }
        }
    }

    async fn drop_finalizer(&self, loc: &Loc, f: &str) {
        settled(
            self.server.remove_finalizer(loc, f).await,
            "could not remove a finalizer",
            &loc.name,
        );
    }

    /// Deletes a terminating namespace's objects; once none are left, removes the namespace's
    /// `kubernetes` finalizer so that the namespace itself goes.
    async fn finish_namespace(&self, loc: &Loc, ns_obj: &Value) {
        let ns = &loc.name;
        let resources: Vec<Arc<Resource>> = {
            let reg = self.server.state.registry.read();
            let mut seen = HashSet::new();
            reg.all()
                .filter(|r| {
                    r.namespaced && seen.insert((r.storage_key_group.clone(), r.plural.clone()))
                })
                .cloned()
                .collect()
        };
        let snap = self.server.store().snapshot();
        let mut remaining: Vec<String> = Vec::new();
        for res in resources {
            let prefix = res.key_prefix(Some(ns));
            let items: Vec<(String, bool)> = snap
                .range(&prefix, None)
                .map(|o| {
                    (
                        o.key.to_string(),
                        !meta_str(&crate::rest::parse(o), "deletionTimestamp").is_empty(),
                    )
                })
                .collect();
            if !items.is_empty() {
                remaining.push(format!(
                    "{}.{} has {} resource instances",
                    res.plural,
                    res.group,
                    items.len()
                ));
            }
            for (key, already) in items {
                if already {
                    continue;
                }
                let (ons, name) = ns_name(&res, &key);
                let l = Loc {
                    res: res.clone(),
                    ns: ons,
                    name,
                };
                settled(
                    self.server
                        .delete_with(&l, &DeleteOptions::default(), false)
                        .await,
                    "could not delete an object of a terminating namespace",
                    &key,
                );
            }
        }
        let spec_finalizers = ns_obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if remaining.is_empty() && spec_finalizers {
            settled(
                self.server.finalize_namespace(loc).await,
                "could not finalize the namespace",
                &ns,
            );
        }
    }
}
