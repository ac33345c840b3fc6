//! Watch-fed caches of every resource type a placement can select (what the hub serves, less
//! its own machinery), found by discovery and refreshed as CRDs come and go. A change to a
//! cached object is reported, so that the placements that may select it are reconciled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use parking_lot::RwLock;
use tokio::sync::mpsc;

/// A cached resource type.
#[derive(Clone)]
pub struct Cached {
    /// The type, at the version discovery prefers.
    pub resource: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Its objects.
    pub store: Store<DynamicObject>,
}

/// A change to a cached object: its type and namespace (None: cluster-scoped).
#[derive(Debug, Clone)]
pub struct Changed {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace of a namespaced object.
    pub namespace: Option<String>,
    /// Name of the object (empty: the type as a whole, e.g. when its cache became ready).
    pub name: String,
    /// Labels of the object.
    pub labels: BTreeMap<String, String>,
}

/// The caches, by (group, kind).
#[derive(Default)]
pub struct Resources {
    types: RwLock<BTreeMap<(String, String), Cached>>,
    /// Types discovery found whose cache is still loading.
    loading: RwLock<std::collections::BTreeSet<(String, String)>>,
    /// Whether a discovery pass has completed: before that, no type is known to be missing.
    discovered: std::sync::atomic::AtomicBool,
}

/// Resource types never placed: the fleet's own machinery (envelopes excepted: they carry
/// objects to place), events, leases, endpoints (the member makes its own), and requests that
/// are not objects.
fn placeable(group: &str, plural: &str) -> bool {
    !matches!(
        (group, plural),
        ("", "events")
            | ("events.k8s.io", _)
            | ("coordination.k8s.io", _)
            | ("", "endpoints")
            | ("discovery.k8s.io", _)
            | ("", "pods")
            | ("", "nodes")
            | ("", "bindings")
            | ("", "componentstatuses")
            | ("apps", "controllerrevisions")
            | ("apps", "replicasets")
            | ("certificates.k8s.io", _)
            | ("authentication.k8s.io", _)
            | ("authorization.k8s.io", _)
            | ("placement.kubernetes-fleet.io", "clusterresourceplacements")
            | ("placement.kubernetes-fleet.io", "resourceplacements")
            | ("placement.kubernetes-fleet.io", "clusterresourcesnapshots")
            | ("placement.kubernetes-fleet.io", "resourcesnapshots")
            | (
                "placement.kubernetes-fleet.io",
                "clusterschedulingpolicysnapshots"
            )
            | ("placement.kubernetes-fleet.io", "schedulingpolicysnapshots")
            | ("placement.kubernetes-fleet.io", "clusterresourcebindings")
            | ("placement.kubernetes-fleet.io", "resourcebindings")
            | ("placement.kubernetes-fleet.io", "works")
            | ("placement.kubernetes-fleet.io", "appliedworks")
            | ("placement.kubernetes-fleet.io", "clusterresourceoverrides")
            | ("placement.kubernetes-fleet.io", "resourceoverrides")
            | (
                "placement.kubernetes-fleet.io",
                "clusterresourceoverridesnapshots"
            )
            | ("placement.kubernetes-fleet.io", "resourceoverridesnapshots")
            | ("cluster.kubernetes-fleet.io", _)
    )
}

/// Namespaces a placement may not select (KubeFleet's reserved prefixes): the fleet's own
/// (`fleet-system`, each member's `fleet-member-NAME`) and Kubernetes'.
pub(crate) fn reserved_namespace(name: &str) -> bool {
    name.starts_with("fleet-") || name.starts_with("kube-")
}

/// What a controller's cache keeps of a watched object: the object with the apiVersion and
/// kind of its type, without managedFields.
///
/// List responses leave the type out of their items (kube-apiserver's and Flotilla's alike),
/// so without it an object a cache first met in a LIST (after a restart, say) has neither,
/// unlike one met in a watch event. No controller reads managedFields (their writes are
/// patches, and an update sent without them keeps them); decoded, they were a third to a half
/// of every cached object.
pub fn typed(ar: &ApiResource) -> impl FnMut(&mut DynamicObject) + Clone + Send + 'static {
    let types = kube::core::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    };
    move |o: &mut DynamicObject| {
        if o.types.as_ref().is_none_or(|t| t.kind.is_empty()) {
            o.types = Some(types.clone());
        }
        o.metadata.managed_fields = None;
    }
}

impl Resources {
    /// The cache of (group, kind), if discovered and loaded.
    pub fn get(&self, group: &str, kind: &str) -> Option<Cached> {
        self.types
            .read()
            .get(&(group.to_string(), kind.to_string()))
            .cloned()
    }

    /// Whether (group, kind) may still come: discovered with its cache loading, or discovery
    /// has not completed yet (a controller that has just started).
    pub fn loading(&self, group: &str, kind: &str) -> bool {
        !self.discovered.load(std::sync::atomic::Ordering::SeqCst)
            || self
                .loading
                .read()
                .contains(&(group.to_string(), kind.to_string()))
    }

    /// Every loaded namespaced type.
    pub fn namespaced(&self) -> Vec<Cached> {
        self.types
            .read()
            .values()
            .filter(|c| c.namespaced)
            .cloned()
            .collect()
    }

    /// Discovers the placeable types now and every `every`, starting a cache for each new one;
    /// changes go to `changes`. Returns, and the caches stop, once `changes` is closed or this
    /// future is dropped.
    pub async fn run(
        self: Arc<Self>,
        client: kube::Client,
        changes: mpsc::UnboundedSender<Changed>,
        every: Duration,
    ) {
        // The caches are this task's own: dropped (the controller stopped), they stop with it.
        let mut caches = tokio::task::JoinSet::new();
        loop {
            while caches.try_join_next().is_some() {}
            match Discovery::new(client.clone()).run().await {
                Ok(discovery) => {
                    for group in discovery.groups() {
                        for (ar, caps) in group.recommended_resources() {
                            if !placeable(&ar.group, &ar.plural)
                                || !caps.supports_operation("watch")
                                || ar.plural.contains('/')
                            {
                                continue;
                            }
                            let key = (ar.group.clone(), ar.kind.clone());
                            if self.types.read().contains_key(&key)
                                || !self.loading.write().insert(key.clone())
                            {
                                continue;
                            }
                            caches.spawn(self.clone().follow(
                                client.clone(),
                                ar,
                                matches!(caps.scope, Scope::Namespaced),
                                changes.clone(),
                            ));
                        }
                    }
                    self.discovered
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err(e) => tracing::warn!(error = %e, "discovering placeable resources failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                // The placement controllers stopped (leadership lost): so do the caches.
                _ = changes.closed() => return,
            }
        }
    }

    async fn follow(
        self: Arc<Self>,
        client: kube::Client,
        ar: ApiResource,
        namespaced: bool,
        changes: mpsc::UnboundedSender<Changed>,
    ) {
        let writer = reflector::store::Writer::new(ar.clone());
        let store = writer.as_reader();
        let api: Api<DynamicObject> = Api::all_with(client, &ar);
        let key = (ar.group.clone(), ar.kind.clone());
        let namespace_kind = ar.group.is_empty() && ar.kind == "Namespace";
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            // What no placement can select is not kept (the members' own namespaces, with
            // their Roles and RoleBindings, are most of what a fleet's hub holds).
            .filter(move |ev| {
                let selectable = match ev {
                    Ok(
                        watcher::Event::Apply(o)
                        | watcher::Event::InitApply(o)
                        | watcher::Event::Delete(o),
                    ) => {
                        let ns = if namespace_kind {
                            o.metadata.name.as_deref()
                        } else {
                            o.metadata.namespace.as_deref()
                        };
                        !ns.is_some_and(reserved_namespace)
                    }
                    _ => true,
                };
                std::future::ready(selectable)
            })
            .modify(typed(&ar))
            .reflect(writer)
            .touched_objects()
            .boxed();
        let ready = {
            let store = store.clone();
            async move { store.wait_until_ready().await }
        };
        tokio::pin!(ready);
        let mut published = false;
        loop {
            tokio::select! {
                _ = changes.closed() => return,
                r = &mut ready, if !published => {
                    if r.is_err() {
                        return;
                    }
                    published = true;
                    self.types.write().insert(key.clone(), Cached {
                        resource: ar.clone(),
                        namespaced,
                        store: store.clone(),
                    });
                    self.loading.write().remove(&key);
                    // Placements that waited for this type can now select it.
                    let _ = changes.send(Changed {
                        group: ar.group.clone(),
                        kind: ar.kind.clone(),
                        namespace: None,
                        name: String::new(),
                        labels: BTreeMap::new(),
                    });
                }
                ev = stream.next() => match ev {
                    Some(Ok(obj)) => {
                        if published {
                            let _ = changes.send(Changed {
                                group: ar.group.clone(),
                                kind: ar.kind.clone(),
                                namespace: if namespaced { obj.metadata.namespace.clone() } else { None },
                                name: obj.metadata.name.clone().unwrap_or_default(),
                                labels: obj.metadata.labels.clone().unwrap_or_default(),
                            });
                        }
                    }
                    Some(Err(e)) => {
                        // The type went away (its CRD was deleted): drop the cache.
                        if matches!(&e, watcher::Error::InitialListFailed(kube::Error::Api(s)) | watcher::Error::WatchFailed(kube::Error::Api(s)) if s.code == 404)
                        {
                            self.types.write().remove(&key);
                            self.loading.write().remove(&key);
                            return;
                        }
                    }
                    None => return,
                }
            }
        }
    }
}
