//! Watch-fed caches looked up by the placement their objects belong to. A pass over one
//! placement reads its bindings, Works and snapshots; filtering the whole cache for them cost
//! every pass the size of the fleet's state (at 100 placements of 100 clusters, 20,000 objects
//! scanned per pass), so the passes of P placements cost P times the state. The index maps a
//! key (the owning placement, or a Work's name) to the objects under it; it is kept by the same
//! watch stream as the cache, after the cache, and may briefly hold more than the cache does,
//! never less of what a reader asks for: [`Indexed::matching`] reads each candidate from the
//! cache and applies the caller's predicate, so a lookup returns exactly what a filter of the
//! whole cache would.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::api::DynamicObject;
use kube::core::ApiResource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::ResourceExt;

/// An object's place in a cache: (namespace, name).
type Id = (Option<String>, String);

/// The keys an object is indexed under.
pub(crate) type Keys = fn(&DynamicObject) -> Vec<String>;

/// A cache and its index.
pub(crate) struct Indexed {
    store: Store<DynamicObject>,
    ar: ApiResource,
    keys: Keys,
    index: parking_lot::RwLock<Index>,
}

#[derive(Default)]
struct Index {
    by_key: HashMap<String, HashSet<Id>>,
    keys_of: HashMap<Id, Vec<String>>,
}

impl Index {
    fn insert(&mut self, id: Id, keys: Vec<String>) {
        self.remove(&id);
        for k in &keys {
            self.by_key.entry(k.clone()).or_default().insert(id.clone());
        }
        self.keys_of.insert(id, keys);
    }

    fn remove(&mut self, id: &Id) {
        for k in self.keys_of.remove(id).unwrap_or_default() {
            if let Some(ids) = self.by_key.get_mut(&k) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
    }
}

fn id_of(o: &DynamicObject) -> Id {
    (o.namespace(), o.name_any())
}

impl Indexed {
    pub(crate) fn new(store: Store<DynamicObject>, ar: ApiResource, keys: Keys) -> Self {
        Self {
            store,
            ar,
            keys,
            index: Default::default(),
        }
    }

    /// The cache itself.
    pub(crate) fn store(&self) -> &Store<DynamicObject> {
        &self.store
    }

    /// Follows one event of the watch that feeds the cache (after the cache took it).
    pub(crate) fn apply(&self, event: &watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                self.index.write().insert(id_of(o), (self.keys)(o));
            }
            watcher::Event::Delete(o) => self.index.write().remove(&id_of(o)),
            watcher::Event::Init => {}
            // A relist replaced the cache: the index is rebuilt from it (objects deleted while
            // the watch was down leave it here).
            watcher::Event::InitDone => {
                let mut index = Index::default();
                for o in self.store.state() {
                    index.insert(id_of(&o), (self.keys)(&o));
                }
                *self.index.write() = index;
            }
        }
    }

    /// How many objects are under `key`.
    pub(crate) fn count(&self, key: &str) -> usize {
        self.index.read().by_key.get(key).map_or(0, HashSet::len)
    }

    /// For each object under `key`, its own keys that start with `prefix` (without it): what
    /// the index knows of them, without reading the objects.
    pub(crate) fn keys_beside(&self, key: &str, prefix: &str) -> Vec<String> {
        let index = self.index.read();
        index
            .by_key
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| index.keys_of.get(id))
            .flatten()
            .filter_map(|k| k.strip_prefix(prefix))
            .map(String::from)
            .collect()
    }

    /// The cached objects under any of `keys` (each once) that `pred` accepts: what filtering
    /// the whole cache with `pred` returns, provided every object `pred` accepts is indexed
    /// under one of `keys`.
    pub(crate) fn matching(
        &self,
        keys: &[&str],
        pred: impl Fn(&DynamicObject) -> bool,
    ) -> Vec<Arc<DynamicObject>> {
        let ids: HashSet<Id> = {
            let index = self.index.read();
            keys.iter()
                .filter_map(|k| index.by_key.get(*k))
                .flatten()
                .cloned()
                .collect()
        };
        ids.into_iter()
            .filter_map(|(ns, name)| {
                let mut r = ObjectRef::new_with(&name, self.ar.clone());
                r.namespace = ns;
                self.store.get(&r)
            })
            .filter(|o| pred(o))
            .collect()
    }
}

/// The index key of the placement `name` in `namespace` (None: a ClusterResourcePlacement).
pub(crate) fn placement_key(name: &str, namespace: Option<&str>) -> String {
    format!("{}/{name}", namespace.unwrap_or(""))
}

/// Bindings and snapshots: under their placement (a label, and their own namespace).
pub(crate) fn by_owner(o: &DynamicObject) -> Vec<String> {
    o.labels()
        .get(flotilla_api::placement::label::PARENT_CRP)
        .map(|p| vec![placement_key(p, o.metadata.namespace.as_deref())])
        .unwrap_or_default()
}

/// Bindings: under their placement ([`by_owner`]) and, unless they are being deleted, under
/// [`live_key`] of it and [`on_cluster_key`] of their target cluster: which placements are on
/// a cluster, and on how many clusters each is, without reading every binding.
pub(crate) fn binding_keys(o: &DynamicObject) -> Vec<String> {
    let mut keys = by_owner(o);
    if o.metadata.deletion_timestamp.is_some() {
        return keys;
    }
    if let Some(owner) = keys.first() {
        keys.push(live_key(owner));
    }
    if let Some(c) = o.data["spec"]["targetCluster"].as_str() {
        keys.push(on_cluster_key(c));
    }
    keys
}

/// The prefix of [`live_key`].
pub(crate) const LIVE: &str = "live:";

/// The key of the bindings of the placement [`placement_key`] `placement` not being deleted.
pub(crate) fn live_key(placement: &str) -> String {
    format!("{LIVE}{placement}")
}

/// The key of the bindings on cluster `cluster` not being deleted.
pub(crate) fn on_cluster_key(cluster: &str) -> String {
    format!("on:{cluster}")
}

/// The index key of Works named `name`.
pub(crate) fn work_name_key(name: &str) -> String {
    format!("name:{name}")
}

/// Works: under their placement (labels naming it and its namespace) and under their name.
pub(crate) fn work_keys(o: &DynamicObject) -> Vec<String> {
    use flotilla_api::placement::label;
    let labels = o.labels();
    let mut keys = vec![work_name_key(&o.name_any())];
    if let Some(p) = labels.get(label::PARENT_CRP) {
        keys.push(placement_key(
            p,
            labels.get(label::PARENT_NAMESPACE).map(String::as_str),
        ));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use serde_json::json;

    fn obj(ns: &str, name: &str, parent: Option<&str>) -> DynamicObject {
        let mut labels = json!({});
        if let Some(p) = parent {
            labels[flotilla_api::placement::label::PARENT_CRP] = json!(p);
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels}}))
        .unwrap()
    }

    /// Feeds events to a cache and its index, as the watch stream does.
    struct Fed {
        writer: Writer<DynamicObject>,
        indexed: Indexed,
    }

    impl Fed {
        fn new() -> Self {
            let ar = ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk("", "v1", "ConfigMap"),
                "configmaps",
            );
            let writer = Writer::new(ar.clone());
            let indexed = Indexed::new(writer.as_reader(), ar, by_owner);
            Self { writer, indexed }
        }
        fn feed(&mut self, ev: watcher::Event<DynamicObject>) {
            self.writer.apply_watcher_event(&ev);
            self.indexed.apply(&ev);
        }
        fn names(&self, ns: &str, p: &str) -> Vec<String> {
            let pred = |o: &DynamicObject| {
                o.labels().get(flotilla_api::placement::label::PARENT_CRP) == Some(&p.to_string())
                    && o.namespace().as_deref() == Some(ns)
            };
            let mut got: Vec<String> = self
                .indexed
                .matching(&[&placement_key(p, Some(ns))], pred)
                .iter()
                .map(|o| o.name_any())
                .collect();
            // The same as filtering the whole cache.
            let mut all: Vec<String> = self
                .indexed
                .store()
                .state()
                .iter()
                .filter(|o| pred(o))
                .map(|o| o.name_any())
                .collect();
            got.sort();
            all.sort();
            assert_eq!(got, all);
            got
        }
    }

    #[test]
    fn lookups_by_placement_follow_applies_moves_deletes_and_relists() {
        let mut f = Fed::new();
        f.feed(watcher::Event::Apply(obj("a", "b1", Some("p"))));
        f.feed(watcher::Event::Apply(obj("a", "b2", Some("p"))));
        f.feed(watcher::Event::Apply(obj("b", "b3", Some("p"))));
        f.feed(watcher::Event::Apply(obj("a", "b4", Some("q"))));
        f.feed(watcher::Event::Apply(obj("a", "b5", None)));
        assert_eq!(f.names("a", "p"), ["b1", "b2"]);
        // Under several keys, each object once.
        let k = placement_key("p", Some("a"));
        assert_eq!(f.indexed.matching(&[&k, &k], |_| true).len(), 2);
        assert_eq!(f.names("b", "p"), ["b3"]);
        assert_eq!(f.names("a", "q"), ["b4"]);
        // A label that changes moves the object.
        f.feed(watcher::Event::Apply(obj("a", "b2", Some("q"))));
        assert_eq!(f.names("a", "p"), ["b1"]);
        assert_eq!(f.names("a", "q"), ["b2", "b4"]);
        f.feed(watcher::Event::Delete(obj("a", "b1", Some("p"))));
        assert!(f.names("a", "p").is_empty());
        // A relist: what it does not list is gone, what it lists is found.
        f.feed(watcher::Event::Init);
        f.feed(watcher::Event::InitApply(obj("a", "b6", Some("p"))));
        f.feed(watcher::Event::InitApply(obj("a", "b4", Some("q"))));
        f.feed(watcher::Event::InitDone);
        assert_eq!(f.names("a", "p"), ["b6"]);
        assert_eq!(f.names("a", "q"), ["b4"]);
        assert!(f.names("b", "p").is_empty());
    }

    #[test]
    fn works_are_found_by_placement_and_by_name() {
        use flotilla_api::placement::label;
        let mut w: DynamicObject =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Work",
            "metadata": {"name": "w", "namespace": "m1",
                         "labels": {label::PARENT_CRP: "p", label::PARENT_NAMESPACE: "ns"}}}))
            .unwrap();
        assert_eq!(
            work_keys(&w),
            [work_name_key("w"), placement_key("p", Some("ns"))]
        );
        w.metadata.labels = None;
        assert_eq!(work_keys(&w), [work_name_key("w")]);
    }

    #[test]
    fn bindings_tell_which_placements_are_on_a_cluster_and_how_many_clusters_each_has() {
        let binding = |name: &str, p: &str, cluster: &str, deleting: bool| {
            let mut b = json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
                "kind": "ClusterResourceBinding",
                "metadata": {"name": name,
                    "labels": {flotilla_api::placement::label::PARENT_CRP: p}},
                "spec": {"targetCluster": cluster}});
            if deleting {
                b["metadata"]["deletionTimestamp"] = json!("2026-12-08T00:00:00Z");
            }
            serde_json::from_value::<DynamicObject>(b).unwrap()
        };
        let ar = ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(
                "placement.kubernetes-fleet.io",
                "v1",
                "ClusterResourceBinding",
            ),
            "clusterresourcebindings",
        );
        let mut writer = Writer::new(ar.clone());
        let indexed = Indexed::new(writer.as_reader(), ar, binding_keys);
        let mut feed = |ev: watcher::Event<DynamicObject>| {
            writer.apply_watcher_event(&ev);
            indexed.apply(&ev);
        };
        feed(watcher::Event::Apply(binding("web-a", "web", "a", false)));
        feed(watcher::Event::Apply(binding("web-b", "web", "b", false)));
        feed(watcher::Event::Apply(binding("api-a", "api", "a", false)));
        feed(watcher::Event::Apply(binding("db-a", "db", "a", true)));
        let on = |c: &str| {
            let mut p = indexed.keys_beside(&on_cluster_key(c), LIVE);
            p.sort();
            p
        };
        assert_eq!(on("a"), ["/api", "/web"], "db's binding is being deleted");
        assert_eq!(indexed.count(&live_key("/web")), 2);
        assert_eq!(indexed.count(&live_key("/db")), 0);
        // A binding marked for deletion leaves both keys; one deleted, all of them.
        feed(watcher::Event::Apply(binding("web-b", "web", "b", true)));
        assert_eq!(indexed.count(&live_key("/web")), 1);
        assert!(on("b").is_empty());
        feed(watcher::Event::Delete(binding("api-a", "api", "a", false)));
        assert_eq!(on("a"), ["/web"]);
    }
}
