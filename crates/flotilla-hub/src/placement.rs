//! The placement controllers: one for ClusterResourcePlacements, one for ResourcePlacements
//! ([`Scope`]); they share the caches of members, Works, overrides and placeable resources.
//! One level-triggered reconcile per placement does, in order:
//!
//! 1. **Select** the resources from the watch-fed caches ([`crate::resources`]): by name or
//!    label; for a ClusterResourcePlacement cluster-scoped objects, a Namespace with
//!    everything in it (or only itself); for a ResourcePlacement namespaced objects of its own
//!    namespace. Without what the hub assigned ([`flotilla_api::manifests::sanitize`]), in
//!    apply order.
//! 2. **Snapshot** them: a new resource snapshot (`<placement>-<index>-snapshot`) when their
//!    hash changes; and the policy: a new scheduling policy snapshot (`<placement>-<index>`)
//!    when it changes (numberOfClusters aside: an annotation). Old snapshots beyond
//!    `revisionHistoryLimit` are deleted. A ResourcePlacement's live in its namespace.
//! 3. **Schedule** with [`flotilla_scheduler`] over the member clusters, keeping what is placed
//!    when the policy snapshot is the same; the decisions go to the policy snapshot's status.
//! 4. **Bind**: one binding per picked cluster (`<placement>-<cluster>-<hash>`, state Bound,
//!    the latest resource snapshot; every cluster is updated at once until the rollout issue
//!    adds rolling updates); bindings of clusters no longer picked are deleted.
//! 5. **Work**: for each binding, a Work in the member's namespace ([`work_name`]) holds the
//!    manifests and the apply strategy. Bindings and snapshots are owned by the placement; a
//!    ClusterResourcePlacement's Works by their binding, so deletions cascade through the
//!    garbage collector; a ResourcePlacement's Works are in other namespaces than it, so the
//!    controller deletes them (when a cluster is deselected, and under the placement's
//!    finalizer when it is deleted). The agent removes what a deleted Work applied.
//! 6. **Status**: each Work's conditions (written by the member's agent) roll up into its
//!    binding and the placement's per-cluster statuses and conditions (`ClusterResourcePlacement*`
//!    or `ResourcePlacement*` types).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::conditions;
use flotilla_api::manifests::{apply_rank, content_hash, identifier, sanitize};
use flotilla_api::member::namespace_of;
use flotilla_api::placement::{
    annotation, cluster_condition as cc, finalizer, label, PLACEMENT_GROUP, STORAGE_VERSION,
};
use flotilla_api::selectors::LabelSelector;
use flotilla_scheduler::{Cluster, Policy};
use futures::{FutureExt, StreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::ResourceExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::members::member_cluster_resource;
use crate::overrides;
use crate::resources::{Changed, Resources};

fn placement_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(PLACEMENT_GROUP, STORAGE_VERSION, kind),
        plural,
    )
}

/// ClusterResourcePlacement.
pub fn crp_resource() -> ApiResource {
    placement_resource("ClusterResourcePlacement", "clusterresourceplacements")
}
/// ClusterResourceSnapshot.
pub fn resource_snapshot_resource() -> ApiResource {
    placement_resource("ClusterResourceSnapshot", "clusterresourcesnapshots")
}
/// ClusterSchedulingPolicySnapshot.
pub fn policy_snapshot_resource() -> ApiResource {
    placement_resource(
        "ClusterSchedulingPolicySnapshot",
        "clusterschedulingpolicysnapshots",
    )
}
/// ClusterResourceBinding.
pub fn binding_resource() -> ApiResource {
    placement_resource("ClusterResourceBinding", "clusterresourcebindings")
}
/// Work.
pub fn work_resource() -> ApiResource {
    placement_resource("Work", "works")
}
/// ClusterResourceOverride.
pub fn cro_resource() -> ApiResource {
    placement_resource("ClusterResourceOverride", "clusterresourceoverrides")
}
/// ResourceOverride.
pub fn ro_resource() -> ApiResource {
    placement_resource("ResourceOverride", "resourceoverrides")
}
/// ClusterResourceOverrideSnapshot.
pub fn cro_snapshot_resource() -> ApiResource {
    placement_resource(
        "ClusterResourceOverrideSnapshot",
        "clusterresourceoverridesnapshots",
    )
}
/// ResourceOverrideSnapshot.
pub fn ro_snapshot_resource() -> ApiResource {
    placement_resource("ResourceOverrideSnapshot", "resourceoverridesnapshots")
}

use crate::Error;

/// The scheduler's view of the fleet, kept up to date from MemberCluster events: a member's
/// heartbeat that changes nothing the scheduler reads changes nothing here.
#[derive(Default)]
struct Fleet {
    by_name: BTreeMap<String, Cluster>,
    version: u64,
    built: Option<(u64, Arc<Vec<Cluster>>)>,
}

impl Fleet {
    /// Records `c`. When the scheduler's view changed: `Some` of the cluster's previous view
    /// (`None` for a new cluster).
    fn update(&mut self, c: Cluster) -> Option<Option<Cluster>> {
        if self.by_name.get(&c.name) == Some(&c) {
            return None;
        }
        self.version += 1;
        Some(self.by_name.insert(c.name.clone(), c))
    }

    /// Every cluster, by name (shared until the view changes).
    fn clusters(&mut self, members: &Store<DynamicObject>) -> Arc<Vec<Cluster>> {
        // Members removed for good (their last event was the deletion) drop out here.
        if self.by_name.len() != members.state().len() {
            let present: BTreeSet<String> = members.state().iter().map(|m| m.name_any()).collect();
            self.by_name.retain(|n, _| present.contains(n));
            for m in members.state() {
                if !self.by_name.contains_key(&m.name_any()) {
                    if let Ok(v) = serde_json::to_value(m.as_ref()) {
                        self.update(Cluster::from_member_cluster(&v));
                    }
                }
            }
            self.version += 1;
        }
        match &self.built {
            Some((v, c)) if *v == self.version => c.clone(),
            _ => {
                let c = Arc::new(self.by_name.values().cloned().collect::<Vec<_>>());
                self.built = Some((self.version, c.clone()));
                c
            }
        }
    }
}

/// Reconciles of one placement are at least this far apart: a burst of Work status updates
/// (one per cluster) becomes a few reconciles, not one each.
const MIN_RECONCILE_INTERVAL: Duration = Duration::from_millis(200);

/// The most a placement may select, in bytes of JSON: its resource snapshot is one object, and
/// etcd takes at most 1.5 MiB per request.
const MAX_SELECTED_BYTES: usize = 1024 * 1024;

/// A placement status whose own conditions did not change is written at most this often.
const STATUS_DETAIL_INTERVAL: Duration = Duration::from_secs(1);

/// Which placements a controller serves. Everything else is the same for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// ClusterResourcePlacements: cluster-scoped, select cluster-scoped resources (a
    /// Namespace with what is in it); their snapshots and bindings are cluster-scoped.
    Cluster,
    /// ResourcePlacements: namespaced, select resources of their own namespace; their
    /// snapshots and bindings live in that namespace.
    Namespaced,
}

impl Scope {
    /// The placement type.
    pub fn placement(self) -> ApiResource {
        match self {
            Scope::Cluster => crp_resource(),
            Scope::Namespaced => rp_resource(),
        }
    }
    /// The resource snapshot type.
    pub fn resource_snapshot(self) -> ApiResource {
        match self {
            Scope::Cluster => resource_snapshot_resource(),
            Scope::Namespaced => placement_resource("ResourceSnapshot", "resourcesnapshots"),
        }
    }
    /// The scheduling policy snapshot type.
    pub fn policy_snapshot(self) -> ApiResource {
        match self {
            Scope::Cluster => policy_snapshot_resource(),
            Scope::Namespaced => {
                placement_resource("SchedulingPolicySnapshot", "schedulingpolicysnapshots")
            }
        }
    }
    /// The binding type.
    pub fn binding(self) -> ApiResource {
        match self {
            Scope::Cluster => binding_resource(),
            Scope::Namespaced => placement_resource("ResourceBinding", "resourcebindings"),
        }
    }
    /// The placement's condition for a per-cluster condition type (`Applied` ->
    /// `ClusterResourcePlacementApplied` or `ResourcePlacementApplied`).
    fn condition(self, cluster_type: &str) -> String {
        format!("{}{cluster_type}", self.placement().kind)
    }
    /// A reference to the placement `name` (in `namespace` for a ResourcePlacement).
    fn placement_ref(self, name: &str, namespace: Option<&str>) -> ObjectRef<DynamicObject> {
        let r = ObjectRef::new_with(name, self.placement());
        match (self, namespace) {
            (Scope::Namespaced, Some(ns)) => r.within(ns),
            _ => r,
        }
    }
}

/// ResourcePlacement.
pub fn rp_resource() -> ApiResource {
    placement_resource("ResourcePlacement", "resourceplacements")
}

/// The Work of a placement in each member's namespace: `<crp>-work` for a
/// ClusterResourcePlacement, `<namespace>.<rp>-work` for a ResourcePlacement.
pub fn work_name(placement: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{ns}.{placement}-work"),
        None => format!("{placement}-work"),
    }
}

/// `ar` in `namespace`, or cluster-wide.
fn api_in(client: &kube::Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

struct Ctx {
    scope: Scope,
    client: kube::Client,
    fleet: Arc<parking_lot::Mutex<Fleet>>,
    last_run: parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    status_written: parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    members: Store<DynamicObject>,
    bindings: Store<DynamicObject>,
    works: Store<DynamicObject>,
    cros: Store<DynamicObject>,
    ros: Store<DynamicObject>,
    resources: Arc<Resources>,
}

/// The placements of one scope and the channel that asks their controller to reconcile one.
struct Triggered {
    scope: Scope,
    placements: Store<DynamicObject>,
    bindings: Store<DynamicObject>,
    tx: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
}

/// Where events on shared caches (members, Works, overrides, placeable resources) go: to the
/// placements of either scope they concern.
struct Triggers(Vec<Triggered>);

impl Triggers {
    /// Reconcile every placement of `scope` (both when `None`) for which `concerned` holds.
    fn each(&self, scope: Option<Scope>, concerned: impl Fn(Scope, &DynamicObject) -> bool) {
        for t in self.0.iter().filter(|t| scope.is_none_or(|s| s == t.scope)) {
            for p in t.placements.state() {
                if concerned(t.scope, &p) {
                    let _ =
                        t.tx.send(ObjectRef::from_obj_with(p.as_ref(), t.scope.placement()));
                }
            }
        }
    }

    /// Reconcile the placements that changes of member clusters (before, now) concern
    /// ([`flotilla_scheduler::concerns`]): one pass over the bindings and the placements per
    /// batch of changes, no scheduling over the fleet.
    fn members_changed(&self, changed: &[(Option<Cluster>, Cluster)]) {
        let names: BTreeSet<&str> = changed.iter().map(|c| c.1.name.as_str()).collect();
        for t in &self.0 {
            // Per placement (namespace, name): how many clusters it is on, and which of the
            // changed ones.
            type Placed<'a> = (usize, BTreeSet<&'a str>);
            let mut placed: std::collections::HashMap<(Option<String>, String), Placed> =
                Default::default();
            let bindings = t.bindings.state();
            for b in &bindings {
                let Some(p) = b.labels().get(label::PARENT_CRP) else {
                    continue;
                };
                if b.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let e = placed.entry((b.namespace(), p.clone())).or_default();
                e.0 += 1;
                if let Some(c) = b.data["spec"]["targetCluster"]
                    .as_str()
                    .and_then(|c| names.get(c))
                {
                    e.1.insert(c);
                }
            }
            let nowhere = Placed::default();
            for p in t.placements.state() {
                let (count, on) = placed
                    .get(&(p.namespace(), p.name_any()))
                    .unwrap_or(&nowhere);
                // A policy that does not parse is reported already; no member change fixes it.
                let Ok(policy) = Policy::parse(&p.data["spec"]["policy"]) else {
                    continue;
                };
                if changed.iter().any(|(before, now)| {
                    let here = on.contains(now.name.as_str());
                    flotilla_scheduler::concerns(&policy, before.as_ref(), now, here, *count)
                }) {
                    let _ =
                        t.tx.send(ObjectRef::from_obj_with(p.as_ref(), t.scope.placement()));
                }
            }
        }
    }

    /// Reconcile one placement.
    fn one(&self, scope: Scope, name: &str, namespace: Option<&str>) {
        if let Some(t) = self.0.iter().find(|t| t.scope == scope) {
            let _ = t.tx.send(scope.placement_ref(name, namespace));
        }
    }
}

/// Runs the controllers (ClusterResourcePlacements and ResourcePlacements) until the client's
/// server stops, or until the future is dropped (leadership lost): nothing outlives it.
pub async fn run(client: kube::Client) {
    let (members, member_stream) = cached(&client, member_cluster_resource());
    let (works, work_stream) = cached(&client, work_resource());
    let (cros, cro_stream) = cached(&client, cro_resource());
    let (ros, ro_stream) = cached(&client, ro_resource());
    let resources = Arc::new(Resources::default());
    let (changed_tx, changed_rx) = mpsc::unbounded_channel::<Changed>();
    let fleet = Arc::new(parking_lot::Mutex::new(Fleet::default()));

    let mut tasks: Vec<futures::future::BoxFuture<'static, ()>> = vec![resources
        .clone()
        .run(client.clone(), changed_tx, Duration::from_secs(10))
        .boxed()];
    let mut triggered = Vec::new();
    for scope in [Scope::Cluster, Scope::Namespaced] {
        let ar = scope.placement();
        let writer = reflector::store::Writer::new(ar.clone());
        let reader = writer.as_reader();
        let stream = watcher(
            Api::all_with(client.clone(), &ar),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(crate::resources::typed(&ar))
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_fingerprint, Default::default());
        let (bindings, binding_stream) = cached(&client, scope.binding());
        let binding_reader = bindings.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            scope,
            client: client.clone(),
            fleet: fleet.clone(),
            last_run: Default::default(),
            status_written: Default::default(),
            members: members.clone(),
            bindings,
            works: works.clone(),
            cros: cros.clone(),
            ros: ros.clone(),
            resources: resources.clone(),
        });
        let parent = move |b: DynamicObject| {
            b.labels()
                .get(label::PARENT_CRP)
                .map(|n| scope.placement_ref(n, b.namespace().as_deref()))
        };
        tasks.push(
            Controller::for_stream_with(stream, reader.clone(), ar)
                .watches_stream_with(binding_stream, parent, scope.binding())
                .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
                .run(reconcile, error_policy, ctx)
                .for_each(|_| async {})
                .boxed(),
        );
        triggered.push(Triggered {
            scope,
            placements: reader,
            bindings: binding_reader,
            tx,
        });
    }
    let triggers = Arc::new(Triggers(triggered));

    // Members whose scheduling view changed: the placements they concern. Events that arrive
    // together (the initial list, a burst) are judged together.
    let fleet_view = fleet.clone();
    let for_members = triggers.clone();
    tasks.push(
        member_stream
            .ready_chunks(1024)
            .for_each(move |batch| {
                let changed: Vec<(Option<Cluster>, Cluster)> = batch
                    .into_iter()
                    .filter_map(Result::ok)
                    .filter_map(|m| serde_json::to_value(&m).ok())
                    .map(|v| Cluster::from_member_cluster(&v))
                    .filter_map(|c| Some((fleet_view.lock().update(c.clone())?, c)))
                    .collect();
                if !changed.is_empty() {
                    for_members.members_changed(&changed);
                }
                async {}
            })
            .boxed(),
    );
    // A Work: its placement.
    tasks.push(fan_out(work_stream, triggers.clone(), |w, t| {
        if let Some(p) = w.labels().get(label::PARENT_CRP) {
            match w.labels().get(label::PARENT_NAMESPACE) {
                Some(ns) => t.one(Scope::Namespaced, p, Some(ns)),
                None => t.one(Scope::Cluster, p, None),
            }
        }
    }));
    // An override: the placement it names, or every placement it can apply to.
    tasks.push(fan_out(cro_stream, triggers.clone(), |o, t| {
        match o.data["spec"]["placement"]["name"].as_str() {
            Some(n) => t.one(Scope::Cluster, n, None),
            None => t.each(Some(Scope::Cluster), |_, _| true),
        }
    }));
    tasks.push(fan_out(ro_stream, triggers.clone(), |o, t| {
        let ns = o.namespace();
        match o.data["spec"]["placement"]["name"].as_str() {
            Some(n) if o.data["spec"]["placement"]["scope"] == "Namespaced" => {
                t.one(Scope::Namespaced, n, ns.as_deref())
            }
            Some(n) => t.one(Scope::Cluster, n, None),
            None => t.each(None, |scope, p| {
                scope == Scope::Cluster || p.namespace() == ns
            }),
        }
    }));
    // A placeable resource: the placements that may select it.
    let for_resources = triggers.clone();
    let cache = resources.clone();
    tasks.push(
        tokio_stream::wrappers::UnboundedReceiverStream::new(changed_rx)
            .for_each(move |c| {
                for_resources.each(None, |scope, p| may_select(scope, p, &c, &cache));
                async {}
            })
            .boxed(),
    );
    futures::future::join_all(tasks).await;
}

/// Follows `stream` (which keeps its cache), handing each object to `route`.
fn fan_out(
    stream: Watched,
    triggers: Arc<Triggers>,
    route: impl Fn(&DynamicObject, &Triggers) + Send + 'static,
) -> futures::future::BoxFuture<'static, ()> {
    stream
        .for_each(move |ev| {
            if let Ok(o) = ev {
                route(&o, &triggers);
            }
            async {}
        })
        .boxed()
}

/// Whether an override applies to the placement `name` (of `scope`, in `namespace`): a
/// ClusterResourceOverride only to ClusterResourcePlacements; a ResourceOverride that names
/// a placement to that one (a ResourcePlacement of its namespace with `scope: Namespaced`),
/// one that names none to every placement (ResourcePlacements: of its namespace).
fn override_applies(
    o: &DynamicObject,
    cluster_override: bool,
    scope: Scope,
    name: &str,
    namespace: Option<&str>,
) -> bool {
    if o.metadata.deletion_timestamp.is_some() || (cluster_override && scope != Scope::Cluster) {
        return false;
    }
    let target = &o.data["spec"]["placement"];
    let same_namespace = scope == Scope::Cluster || o.namespace().as_deref() == namespace;
    match target["name"].as_str() {
        None => same_namespace,
        Some(n) if cluster_override => n == name,
        Some(n) => {
            let target_scope = if target["scope"] == "Namespaced" {
                Scope::Namespaced
            } else {
                Scope::Cluster
            };
            n == name && target_scope == scope && same_namespace
        }
    }
}

/// Snapshots of the overrides that apply to the placement (taken now if their spec changed).
async fn override_snapshots(
    ctx: &Ctx,
    name: &str,
    namespace: Option<&str>,
) -> Result<(Vec<overrides::Override>, Vec<overrides::Override>), Error> {
    let mut out = (Vec::new(), Vec::new());
    for (store, cluster_scoped) in [(&ctx.cros, true), (&ctx.ros, false)] {
        for o in store
            .state()
            .iter()
            .filter(|o| override_applies(o, cluster_scoped, ctx.scope, name, namespace))
        {
            let spec = o.data["spec"].clone();
            let hash = content_hash(std::slice::from_ref(&spec));
            let ns = o.namespace();
            let series = Series {
                ar: if cluster_scoped {
                    cro_snapshot_resource()
                } else {
                    ro_snapshot_resource()
                },
                namespace: ns.as_deref(),
                parent_label: if cluster_scoped {
                    label::PARENT_CLUSTER_RESOURCE_OVERRIDE
                } else {
                    label::PARENT_RESOURCE_OVERRIDE
                },
                parent: o.as_ref(),
                parent_ar: if cluster_scoped {
                    cro_resource()
                } else {
                    ro_resource()
                },
                index_label: label::OVERRIDE_INDEX,
                hash_annotation: annotation::OVERRIDE_HASH,
                keep: 10,
            };
            let oname = o.name_any();
            let snap = snapshot(
                &ctx.client,
                &series,
                &hash,
                |i| format!("{oname}-{i}"),
                json!({"overrideSpec": spec, "overrideHash": base64_of(&hash)}),
                json!({}),
            )
            .await?;
            let entry = overrides::Override {
                name: snap.name_any(),
                namespace: ns.clone(),
                spec: snap.data["spec"]["overrideSpec"].clone(),
            };
            if cluster_scoped {
                out.0.push(entry);
            } else {
                out.1.push(entry);
            }
        }
    }
    Ok(out)
}

type Watched =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Send>>;

fn cached(client: &kube::Client, ar: ApiResource) -> (Store<DynamicObject>, Watched) {
    let writer = reflector::store::Writer::new(ar.clone());
    let reader = writer.as_reader();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(crate::resources::typed(&ar))
        .reflect(writer)
        .touched_objects()
        .boxed();
    (reader, stream)
}

/// Reconcile a placement when its spec, labels, finalizers or deletion change (not for its own
/// status writes).
fn spec_fingerprint(o: &DynamicObject) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    o.metadata.generation.hash(&mut h);
    o.metadata.deletion_timestamp.is_some().hash(&mut h);
    o.metadata.finalizers.hash(&mut h);
    Some(h.finish())
}

/// Whether the placement `p` may select the changed object: a ResourcePlacement one of its
/// namespace; a ClusterResourcePlacement a cluster-scoped one or, for a namespaced object,
/// its namespace (whose labels come from `resources`). A `c` without a name is a type whose
/// cache has just loaded.
fn may_select(scope: Scope, p: &DynamicObject, c: &Changed, resources: &Resources) -> bool {
    let matches = |s: &Value, name: &str, labels: &BTreeMap<String, String>| {
        if let Some(n) = s["name"].as_str().filter(|n| !n.is_empty()) {
            return name.is_empty() || n == name;
        }
        match &s["labelSelector"] {
            Value::Null => true,
            sel => LabelSelector::from_object(sel)
                .map(|l| l.matches(|k| labels.get(k).map(String::as_str)))
                .unwrap_or(false),
        }
    };
    let sels = p.data["spec"]["resourceSelectors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if scope == Scope::Namespaced
        && !c.name.is_empty()
        && c.namespace.as_deref() != p.namespace().as_deref()
    {
        return false;
    }
    sels.iter().any(|s| {
        let (g, k) = (
            s["group"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
        );
        // A type whose cache has just loaded concerns every selector of it, whatever its
        // name or labels select.
        if g == c.group && k == c.kind && (c.name.is_empty() || matches(s, &c.name, &c.labels)) {
            return true;
        }
        if scope == Scope::Namespaced {
            return false;
        }
        match &c.namespace {
            Some(ns) if g.is_empty() && k == "Namespace" => {
                let labels = resources
                    .get("", "Namespace")
                    .and_then(|n| {
                        n.store
                            .get(&ObjectRef::new_with(ns, n.resource.clone()))
                            .map(|o| o.labels().clone())
                    })
                    .unwrap_or_default();
                matches(s, ns, &labels)
            }
            _ => false,
        }
    })
}

fn error_policy(crp: Arc<DynamicObject>, e: &Error, _: Arc<Ctx>) -> Action {
    match e {
        Error::Kube(kube::Error::Api(s)) if s.code == 409 => {
            Action::requeue(Duration::from_millis(100))
        }
        Error::Loading(_) => Action::requeue(Duration::from_millis(500)),
        _ => {
            tracing::warn!(placement = %crp.name_any(), error = %e, "placement reconcile failed; retrying");
            Action::requeue(Duration::from_secs(2))
        }
    }
}

/// Namespaces a placement may not select.
fn reserved_namespace(name: &str) -> bool {
    name.starts_with("fleet-") || name.starts_with("kube-")
}

/// The selected resources (sanitized, in apply order) or why the selectors are invalid.
fn select(ctx: &Ctx, placement: &Value) -> Result<Result<Vec<Value>, String>, Error> {
    let own_namespace = placement["metadata"]["namespace"].as_str();
    let sels = placement["spec"]["resourceSelectors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(ns) = own_namespace.filter(|ns| reserved_namespace(ns)) {
        return Ok(Err(format!(
            "the namespace {ns} is reserved for the fleet and Kubernetes: a ResourcePlacement there places nothing"
        )));
    }
    let mut picked: BTreeMap<(String, String, String, String), Value> = BTreeMap::new();
    let mut add = |obj: &DynamicObject| {
        if obj.metadata.deletion_timestamp.is_some() {
            return;
        }
        let Ok(v) = serde_json::to_value(obj) else {
            return;
        };
        if !flotilla_api::manifests::propagated(&v) {
            return;
        }
        let key = (
            v["apiVersion"].as_str().unwrap_or("").to_string(),
            v["kind"].as_str().unwrap_or("").to_string(),
            obj.namespace().unwrap_or_default(),
            obj.name_any(),
        );
        picked.entry(key).or_insert_with(|| sanitize(&v));
    };
    for (i, sel) in sels.iter().enumerate() {
        let group = sel["group"].as_str().unwrap_or("");
        let kind = sel["kind"].as_str().unwrap_or("");
        let Some(cache) = ctx.resources.get(group, kind) else {
            if ctx.resources.loading(group, kind) {
                return Err(Error::Loading(format!("{kind}.{group}")));
            }
            return Ok(Err(format!(
                "resourceSelectors[{i}]: the hub serves no kind {kind} in group {group:?}"
            )));
        };
        match ctx.scope {
            Scope::Cluster if cache.namespaced => return Ok(Err(format!(
                "resourceSelectors[{i}]: {kind} is namespaced; a ClusterResourcePlacement selects cluster-scoped resources (a Namespace brings what is in it)"
            ))),
            Scope::Namespaced if !cache.namespaced => return Ok(Err(format!(
                "resourceSelectors[{i}]: {kind} is cluster-scoped; a ResourcePlacement selects resources in its own namespace (use a ClusterResourcePlacement)"
            ))),
            _ => {}
        }
        let label_sel = match &sel["labelSelector"] {
            Value::Null => None,
            s => match LabelSelector::from_object(s) {
                Ok(s) => Some(s),
                Err(e) => return Ok(Err(format!("resourceSelectors[{i}].labelSelector: {e}"))),
            },
        };
        let name = sel["name"].as_str().filter(|n| !n.is_empty());
        for obj in cache.store.state() {
            if name.is_some_and(|n| obj.name_any() != n)
                || (ctx.scope == Scope::Namespaced && obj.namespace().as_deref() != own_namespace)
            {
                continue;
            }
            if let Some(ls) = &label_sel {
                let labels = obj.labels();
                if !ls.matches(|k| labels.get(k).map(String::as_str)) {
                    continue;
                }
            }
            if kind == "Namespace" && group.is_empty() {
                let ns = obj.name_any();
                if reserved_namespace(&ns) {
                    continue;
                }
                add(&obj);
                if sel["selectionScope"].as_str() != Some("NamespaceOnly") {
                    for t in ctx.resources.namespaced() {
                        for o in t.store.state() {
                            if o.metadata.namespace.as_deref() == Some(ns.as_str()) {
                                add(&o);
                            }
                        }
                    }
                }
            } else {
                add(&obj);
            }
        }
    }
    let mut out: Vec<Value> = picked.into_values().collect();
    out.sort_by(|a, b| {
        let rank = |v: &Value| {
            apply_rank(
                v["apiVersion"].as_str().unwrap_or(""),
                v["kind"].as_str().unwrap_or(""),
            )
        };
        rank(a).cmp(&rank(b)).then_with(|| {
            let k = |v: &Value| {
                (
                    v["apiVersion"].to_string(),
                    v["kind"].to_string(),
                    v["metadata"]["namespace"].to_string(),
                    v["metadata"]["name"].to_string(),
                )
            };
            k(a).cmp(&k(b))
        })
    });
    Ok(Ok(out))
}

fn owner_ref(obj: &DynamicObject, ar: &ApiResource) -> Value {
    json!({"apiVersion": ar.api_version, "kind": ar.kind, "name": obj.name_any(),
        "uid": obj.metadata.uid.clone().unwrap_or_default(), "blockOwnerDeletion": true, "controller": true})
}

fn short_hash(s: &str) -> String {
    content_hash(&[json!(s)])[..8].to_string()
}

/// Index of a snapshot (its index label).
fn index_of(o: &DynamicObject, key: &str) -> i64 {
    o.labels()
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// What a snapshot series is: its type, where it lives, its parent (label and owner), the
/// labels and annotations that index it.
struct Series<'a> {
    ar: ApiResource,
    namespace: Option<&'a str>,
    parent_label: &'a str,
    parent: &'a DynamicObject,
    parent_ar: ApiResource,
    index_label: &'a str,
    hash_annotation: &'a str,
    keep: usize,
}

/// Keeps a snapshot series: returns the latest snapshot, after creating a new one (named by
/// `name_of(index)`) when `hash` differs from the latest's; deletes the oldest beyond `keep`.
async fn snapshot(
    client: &kube::Client,
    series: &Series<'_>,
    hash: &str,
    name_of: impl Fn(i64) -> String,
    spec: Value,
    extra_annotations: Value,
) -> Result<DynamicObject, Error> {
    let api: Api<DynamicObject> = match series.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &series.ar),
        None => Api::all_with(client.clone(), &series.ar),
    };
    let parent_name = series.parent.name_any();
    let mut all = api
        .list(&ListParams::default().labels(&format!("{}={parent_name}", series.parent_label)))
        .await?
        .items;
    all.sort_by_key(|o| index_of(o, series.index_label));
    if let Some(latest) = all.last() {
        if latest
            .annotations()
            .get(series.hash_annotation)
            .is_some_and(|h| h == hash)
        {
            return Ok(latest.clone());
        }
    }
    let index = all
        .last()
        .map_or(0, |l| index_of(l, series.index_label) + 1);
    // The previous latest is latest no more.
    for o in all.iter().filter(|o| {
        o.labels()
            .get(label::IS_LATEST_SNAPSHOT)
            .is_some_and(|v| v == "true")
    }) {
        let p = json!({"metadata": {"labels": {label::IS_LATEST_SNAPSHOT: "false"}}});
        api.patch(&o.name_any(), &PatchParams::default(), &Patch::Merge(&p))
            .await?;
    }
    let mut annotations = json!({series.hash_annotation: hash,
        annotation::CRP_GENERATION: series.parent.metadata.generation.unwrap_or(0).to_string()});
    if let Some(extra) = extra_annotations.as_object() {
        for (k, v) in extra {
            annotations[k] = v.clone();
        }
    }
    let mut obj = json!({
        "apiVersion": series.ar.api_version, "kind": series.ar.kind,
        "metadata": {"name": name_of(index),
            "labels": {series.parent_label: parent_name, series.index_label: index.to_string(), label::IS_LATEST_SNAPSHOT: "true"},
            "annotations": annotations,
            "ownerReferences": [owner_ref(series.parent, &series.parent_ar)]},
        "spec": spec
    });
    if let Some(ns) = series.namespace {
        obj["metadata"]["namespace"] = json!(ns);
    }
    let created = api
        .create(&PostParams::default(), &serde_json::from_value(obj)?)
        .await?;
    // History beyond the limit goes, oldest first (the new one counts).
    let excess = (all.len() + 1).saturating_sub(series.keep);
    for o in all.iter().take(excess) {
        let _ = api.delete(&o.name_any(), &DeleteParams::default()).await;
    }
    Ok(created)
}

/// The objects a selected resource places, with the envelope they came in: an envelope's
/// objects (by key, in order; a ResourceEnvelope's in its namespace), anything else itself.
fn unwrap_envelope(obj: &Value) -> Vec<(Value, Option<Value>)> {
    let kind = obj["kind"].as_str().unwrap_or("");
    let is_envelope = obj["apiVersion"]
        .as_str()
        .is_some_and(|a| a.starts_with(&format!("{PLACEMENT_GROUP}/")))
        && matches!(kind, "ClusterResourceEnvelope" | "ResourceEnvelope");
    if !is_envelope {
        return vec![(obj.clone(), None)];
    }
    let namespace = obj["metadata"]["namespace"].as_str();
    let mut envelope = json!({"name": obj["metadata"]["name"], "type": kind});
    if let Some(ns) = namespace {
        envelope["namespace"] = json!(ns);
    }
    let mut inner: Vec<(&String, &Value)> = obj["data"].as_object().into_iter().flatten().collect();
    inner.sort_by(|a, b| a.0.cmp(b.0));
    inner
        .into_iter()
        .map(|(_, o)| {
            let mut o = sanitize(o);
            if let Some(ns) = namespace {
                o["metadata"]["namespace"] = json!(ns);
            }
            (o, Some(envelope.clone()))
        })
        .collect()
}

/// The policy without numberOfClusters (which does not make a new snapshot).
fn policy_identity(policy: &Value) -> Value {
    let mut p = policy.clone();
    if let Some(m) = p.as_object_mut() {
        m.remove("numberOfClusters");
    }
    p
}

fn condition(conds: &mut Value, ty: &str, status: &str, reason: &str, message: &str, gen: i64) {
    let now = conditions::timestamp(chrono::Utc::now());
    conditions::set_status(conds, ty, status, reason, message, Some(gen), &now);
}

/// A ResourcePlacement's Works live in other namespaces (the members'), where its owner
/// references cannot reach: a finalizer keeps the placement until its Works are deleted.
async fn finalize(ctx: &Ctx, placement: &DynamicObject) -> Result<Action, Error> {
    let name = placement.name_any();
    let ns = placement.namespace();
    for w in ctx.works.state().iter().filter(|w| {
        w.labels().get(label::PARENT_CRP) == Some(&name)
            && w.labels().get(label::PARENT_NAMESPACE) == ns.as_ref()
    }) {
        if w.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let api = api_in(&ctx.client, &work_resource(), w.namespace().as_deref());
        match api.delete(&w.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let finalizers: Vec<&String> = placement
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer::PLACEMENT_CLEANUP)
        .collect();
    // The resourceVersion makes this a compare-and-set: a concurrent change answers 409.
    let p = json!({"metadata": {"finalizers": finalizers,
        "resourceVersion": placement.resource_version()}});
    let api = api_in(&ctx.client, &ctx.scope.placement(), ns.as_deref());
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    Ok(Action::await_change())
}

async fn reconcile(crp: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let client = &ctx.client;
    let scope = ctx.scope;
    let name = crp.name_any();
    let namespace = crp.namespace();
    let namespace = namespace.as_deref();
    let key = format!("{}/{name}", namespace.unwrap_or(""));
    let has_finalizer = crp
        .finalizers()
        .iter()
        .any(|f| f == finalizer::PLACEMENT_CLEANUP);
    if crp.metadata.deletion_timestamp.is_some() {
        // Snapshots and bindings are owned by the placement: the garbage collector removes
        // them, and with a ClusterResourcePlacement's bindings their Works; the agents remove
        // what the Works applied.
        ctx.last_run.lock().remove(&key);
        if has_finalizer {
            return finalize(&ctx, &crp).await;
        }
        return Ok(Action::await_change());
    }
    if scope == Scope::Namespaced && !has_finalizer {
        let mut finalizers = crp.finalizers().to_vec();
        finalizers.push(finalizer::PLACEMENT_CLEANUP.to_string());
        let p = json!({"metadata": {"finalizers": finalizers,
            "resourceVersion": crp.resource_version()}});
        api_in(client, &scope.placement(), namespace)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
            .await?;
        // The change brings the placement back.
        return Ok(Action::await_change());
    }
    {
        let now = std::time::Instant::now();
        let mut last = ctx.last_run.lock();
        if let Some(t) = last.get(&key) {
            let since = now.duration_since(*t);
            if since < MIN_RECONCILE_INTERVAL {
                return Ok(Action::requeue(MIN_RECONCILE_INTERVAL - since));
            }
        }
        if last.len() > 4096 {
            // Placements deleted without a last reconcile leave entries: drop the stale ones.
            last.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        }
        last.insert(key.clone(), now);
    }
    let generation = crp.metadata.generation.unwrap_or(0);
    tracing::debug!(placement = %key, "reconcile");
    let crp_value = serde_json::to_value(crp.as_ref())?;
    let spec = &crp_value["spec"];
    let keep = spec["revisionHistoryLimit"]
        .as_u64()
        .unwrap_or(10)
        .clamp(1, 1000) as usize;
    let mut status = json!({});
    let mut conds = crp_value["status"]["conditions"].clone();

    // 1-2. Select and snapshot the resources.
    let selected = match select(&ctx, &crp_value)? {
        Ok(s) => s,
        Err(why) => {
            condition(
                &mut conds,
                &scope.condition(cc::SCHEDULED),
                "False",
                "InvalidResourceSelectors",
                &why,
                generation,
            );
            status["conditions"] = conds;
            write_status(client, scope, &name, namespace, status).await?;
            return Ok(Action::await_change());
        }
    };
    // One snapshot object holds the selection: beyond what a store takes in one object, the
    // placement says so (and its clusters keep what they have) rather than failing each pass.
    let size: usize = selected.iter().map(|v| v.to_string().len()).sum();
    if size > MAX_SELECTED_BYTES {
        condition(
            &mut conds,
            &scope.condition(cc::SCHEDULED),
            "False",
            "SelectedResourcesTooLarge",
            &format!(
                "the selected resources take {size} bytes; a resource snapshot holds at most {MAX_SELECTED_BYTES}: select fewer resources or split them across placements"
            ),
            generation,
        );
        status["conditions"] = conds;
        write_status(client, scope, &name, namespace, status).await?;
        return Ok(Action::await_change());
    }
    let resource_hash = content_hash(&selected);
    let series = |ar: ApiResource, index_label, hash_annotation| Series {
        ar,
        namespace,
        parent_label: label::PARENT_CRP,
        parent: &crp,
        parent_ar: scope.placement(),
        index_label,
        hash_annotation,
        keep,
    };
    let rs = snapshot(
        client,
        &series(
            scope.resource_snapshot(),
            label::RESOURCE_INDEX,
            annotation::RESOURCE_HASH,
        ),
        &resource_hash,
        |i| format!("{name}-{i}-snapshot"),
        json!({"selectedResources": selected}),
        json!({annotation::NUMBER_OF_RESOURCE_SNAPSHOTS: "1"}),
    )
    .await?;
    let resource_index = index_of(&rs, label::RESOURCE_INDEX).to_string();
    // Envelopes are unwrapped: their objects are what the members get.
    let (manifests, envelopes): (Vec<Value>, Vec<Option<Value>>) = rs.data["spec"]
        ["selectedResources"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(unwrap_envelope)
        .unzip();

    // Policy snapshot.
    let policy_value = spec["policy"].clone();
    let policy = match Policy::parse(&policy_value) {
        Ok(p) => p,
        Err(why) => {
            condition(
                &mut conds,
                &scope.condition(cc::SCHEDULED),
                "False",
                "InvalidPolicy",
                &why,
                generation,
            );
            status["conditions"] = conds;
            write_status(client, scope, &name, namespace, status).await?;
            return Ok(Action::await_change());
        }
    };
    let policy_hash = content_hash(&[policy_identity(&policy_value)]);
    let n_annotation = match policy.placement_type {
        flotilla_scheduler::PlacementType::PickN => {
            json!({annotation::NUMBER_OF_CLUSTERS: policy.number_of_clusters.to_string()})
        }
        _ => json!({}),
    };
    let ps = snapshot(
        client,
        &series(
            scope.policy_snapshot(),
            label::POLICY_INDEX,
            "kubernetes-fleet.io/policy-hash",
        ),
        &policy_hash,
        |i| format!("{name}-{i}"),
        if policy_value.is_null() {
            json!({"policyHash": base64_of(&policy_hash)})
        } else {
            json!({"policy": policy_value, "policyHash": base64_of(&policy_hash)})
        },
        n_annotation.clone(),
    )
    .await?;
    let ps_name = ps.name_any();
    let ps_api = api_in(client, &scope.policy_snapshot(), namespace);
    if let Some(n) = n_annotation[annotation::NUMBER_OF_CLUSTERS].as_str() {
        if ps
            .annotations()
            .get(annotation::NUMBER_OF_CLUSTERS)
            .map(String::as_str)
            != Some(n)
        {
            let p = json!({"metadata": {"annotations": {annotation::NUMBER_OF_CLUSTERS: n}}});
            ps_api
                .patch(&ps_name, &PatchParams::default(), &Patch::Merge(&p))
                .await?;
        }
    }

    // 3. Schedule.
    let clusters = ctx.fleet.lock().clusters(&ctx.members);
    let mine: Vec<Arc<DynamicObject>> = ctx
        .bindings
        .state()
        .into_iter()
        .filter(|b| {
            b.labels().get(label::PARENT_CRP) == Some(&name)
                && b.namespace().as_deref() == namespace
        })
        .collect();
    let placed: BTreeSet<String> = mine
        .iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .filter_map(|b| b.data["spec"]["targetCluster"].as_str().map(String::from))
        .collect();
    let same_policy = !mine.is_empty()
        && mine
            .iter()
            .all(|b| b.data["spec"]["schedulingPolicySnapshotName"] == ps_name.as_str());
    let decision = flotilla_scheduler::schedule(&flotilla_scheduler::Request {
        policy: &policy,
        clusters: &clusters,
        placed: &placed,
        same_policy,
    });
    let decisions: Vec<Value> = decision
        .selected
        .iter()
        .map(|s| {
            json!({"clusterName": s.name, "selected": true,
            "clusterScore": {"affinityScore": s.score.affinity, "priorityScore": s.score.topology},
            "reason": s.reason.to_string()})
        })
        .chain(decision.rejected.iter().take(20).map(
            |r| json!({"clusterName": r.name, "selected": false, "reason": r.reason.to_string()}),
        ))
        .collect();
    let (sched_status, sched_reason) = if decision.fulfilled {
        ("True", "SchedulingPolicyFulfilled")
    } else {
        ("False", "SchedulingPolicyUnfulfilled")
    };
    let mut ps_conds = ps.data["status"]["conditions"].clone();
    let now = conditions::timestamp(chrono::Utc::now());
    conditions::set_status(
        &mut ps_conds,
        "Scheduled",
        sched_status,
        sched_reason,
        &decision.message,
        ps.metadata.generation,
        &now,
    );
    let ps_status = json!({"status": {"observedCRPGeneration": generation,
        "conditions": ps_conds, "clusterDecisions": decisions,
        "targetClusters": decision.names()}});
    if ps.data["status"]["clusterDecisions"] != ps_status["status"]["clusterDecisions"]
        || ps.data["status"]["conditions"] != ps_status["status"]["conditions"]
        || ps.data["status"]["observedCRPGeneration"] != json!(generation)
    {
        ps_api
            .patch_status(&ps_name, &PatchParams::default(), &Patch::Merge(&ps_status))
            .await?;
    }

    // Overrides that apply to this placement, as snapshots.
    let (cro_snaps, ro_snaps) = override_snapshots(&ctx, &name, namespace).await?;
    let cluster_labels: BTreeMap<&str, &BTreeMap<String, String>> = clusters
        .iter()
        .map(|c| (c.name.as_str(), &c.labels))
        .collect();

    // 4. Bindings.
    let binding_api = api_in(client, &scope.binding(), namespace);
    let apply_strategy = apply_strategy_of(spec);
    let wanted: BTreeMap<&str, &flotilla_scheduler::Selected> =
        decision.selected.iter().map(|s| (s.name, s)).collect();
    let work_name = work_name(&name, namespace);
    for b in &mine {
        let target = b.data["spec"]["targetCluster"].as_str().unwrap_or("");
        if !wanted.contains_key(target) && b.metadata.deletion_timestamp.is_none() {
            binding_api
                .delete(&b.name_any(), &DeleteParams::background())
                .await?;
        }
    }
    if scope == Scope::Namespaced {
        // A ResourcePlacement's Works are not owned by their bindings (another namespace):
        // those of clusters no longer picked are deleted here, also when their binding went
        // before (a restart between the two deletions leaves nothing behind).
        let keep: BTreeSet<String> = wanted.keys().map(|c| namespace_of(c)).collect();
        for w in ctx.works.state().iter().filter(|w| {
            w.labels().get(label::PARENT_CRP) == Some(&name)
                && w.labels().get(label::PARENT_NAMESPACE).map(String::as_str) == namespace
                && w.metadata.deletion_timestamp.is_none()
                && !w.namespace().is_some_and(|ns| keep.contains(&ns))
        }) {
            let works = api_in(client, &work_resource(), w.namespace().as_deref());
            match works
                .delete(&w.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Each cluster's binding and Work, 16 clusters at a time.
    let (binding_api, mine, manifests, cro_snaps, ro_snaps, cluster_labels) = (
        &binding_api,
        &mine,
        &manifests,
        &cro_snaps,
        &ro_snaps,
        &cluster_labels,
    );
    let shared = (
        &name,
        &rs,
        &ps_name,
        &apply_strategy,
        &resource_index,
        &crp,
        &ctx,
        &work_name,
    );
    let mut jobs = Vec::with_capacity(wanted.len());
    for (cluster, s) in &wanted {
        let (cluster, s): (&str, &flotilla_scheduler::Selected) = (cluster, s);
        let (name, rs, ps_name, apply_strategy, resource_index, crp, ctx, work_name) = shared;
        jobs.push(async move {
            let bname = format!(
                "{name}-{cluster}-{}",
                short_hash(&format!("{name}/{cluster}"))
            );
            let no_labels = BTreeMap::new();
            let labels = cluster_labels.get(cluster).copied().unwrap_or(&no_labels);
            let overridden = overrides::apply(manifests, cluster, labels, cro_snaps, ro_snaps);
            let (cro_used, ro_used) = match &overridden {
                Ok(o) => (
                    json!(o.cluster_overrides),
                    json!(o
                        .resource_overrides
                        .iter()
                        .map(|(ns, n)| json!({"namespace": ns, "name": n}))
                        .collect::<Vec<_>>()),
                ),
                Err(_) => (json!([]), json!([])),
            };
            let mut bspec = json!({
                "state": "Bound",
                "resourceSnapshotName": rs.name_any(),
                "clusterResourceOverrideSnapshots": cro_used,
                "resourceOverrideSnapshots": ro_used,
                "schedulingPolicySnapshotName": ps_name,
                "targetCluster": cluster,
                "clusterDecision": {"clusterName": cluster, "selected": true,
                    "clusterScore": {"affinityScore": s.score.affinity, "priorityScore": s.score.topology},
                    "reason": s.reason.to_string()},
                "applyStrategy": apply_strategy,
            });
            let existing = mine.iter().find(|b| b.name_any() == bname);
            // The decision stays as made when the cluster was picked under this policy
            // snapshot (later passes of the same decision would only say "kept").
            if let Some(b) = existing.filter(|b| {
                b.data["spec"]["schedulingPolicySnapshotName"] == ps_name.as_str()
                    && b.data["spec"]["clusterDecision"].is_object()
            }) {
                bspec["clusterDecision"] = b.data["spec"]["clusterDecision"].clone();
            }
            let binding = match existing {
                Some(b) if b.data["spec"] == bspec => b.as_ref().clone(),
                Some(_) => {
                    let p = json!({"spec": bspec});
                    binding_api
                        .patch(&bname, &PatchParams::default(), &Patch::Merge(&p))
                        .await?
                }
                None => {
                    let ar = scope.binding();
                    let mut obj = json!({"apiVersion": ar.api_version, "kind": ar.kind,
                        "metadata": {"name": bname, "labels": {label::PARENT_CRP: name},
                            "annotations": {annotation::CRP_GENERATION: generation.to_string()},
                            "ownerReferences": [owner_ref(crp, &scope.placement())]},
                        "spec": bspec});
                    if let Some(ns) = namespace {
                        obj["metadata"]["namespace"] = json!(ns);
                    }
                    binding_api
                        .create(&PostParams::default(), &serde_json::from_value(obj)?)
                        .await?
                }
            };
            // 5. The Work.
            let ns = namespace_of(cluster);
            let work_api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &ns, &work_resource());
            let cluster_manifests = match &overridden {
                Ok(o) => o.manifests.clone(),
                Err(_) => Vec::new(),
            };
            let wspec =
                json!({"workload": {"manifests": cluster_manifests}, "applyStrategy": apply_strategy});
            let mut work_labels = json!({label::PARENT_CRP: name, label::PARENT_BINDING: bname,
                label::PARENT_RESOURCE_SNAPSHOT_INDEX: resource_index});
            if let Some(ns) = namespace {
                work_labels[label::PARENT_NAMESPACE] = json!(ns);
            }
            let delete_strategy = match crp.data["spec"]["strategy"]["deleteStrategy"]
                ["propagationPolicy"]
                .as_str()
            {
                Some("Abandon") => "Abandon",
                _ => "Delete",
            };
            let current = ctx
                .works
                .get(&ObjectRef::new_with(work_name, work_resource()).within(&ns));
            let work = match current {
                // An override failed: the cluster keeps what it has until it is fixed.
                current if overridden.is_err() => current.map(|w| w.as_ref().clone()),
                Some(w)
                    if w.data["spec"] == wspec
                        && w.labels().get(label::PARENT_RESOURCE_SNAPSHOT_INDEX)
                            == Some(resource_index)
                        && w.annotations().get(annotation::DELETE_STRATEGY).map(String::as_str)
                            == Some(delete_strategy) =>
                {
                    Some(w.as_ref().clone())
                }
                Some(_) => {
                    let p = json!({"metadata": {"labels": work_labels,
                        "annotations": {annotation::DELETE_STRATEGY: delete_strategy}}, "spec": wspec});
                    Some(
                        work_api
                            .patch(work_name, &PatchParams::default(), &Patch::Merge(&p))
                            .await?,
                    )
                }
                None => {
                    let mut obj = json!({"apiVersion": work_resource().api_version, "kind": "Work",
                        "metadata": {"name": work_name, "namespace": ns, "labels": work_labels,
                            "annotations": {annotation::DELETE_STRATEGY: delete_strategy}},
                        "spec": wspec});
                    if scope == Scope::Cluster {
                        // A cluster-scoped binding can own it; a ResourceBinding cannot (another
                        // namespace): its placement's finalizer removes it.
                        obj["metadata"]["ownerReferences"] =
                            json!([owner_ref(&binding, &scope.binding())]);
                    }
                    match work_api
                        .create(&PostParams::default(), &serde_json::from_value(obj)?)
                        .await
                    {
                        Ok(w) => Some(w),
                        // The member's namespace is gone (it is leaving): nothing to send.
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => None,
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            // 6. The binding's status from its Work.
            let bstatus = binding_status(&binding, work.as_ref(), &overridden, generation);
            // Written when a condition's status, reason or generation changes (also in the lists
            // of failed, drifted, diffed objects): progress messages in between ("2 of 3
            // objects available") show in the placement's status, not in every binding write.
            if binding.data["status"] != bstatus
                && conditions::without_messages(&binding.data["status"])
                    != conditions::without_messages(&bstatus)
            {
                let patch = replacing(&binding.data["status"], &bstatus);
                binding_api
                    .patch_status(
                        &bname,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"status": patch})),
                    )
                    .await?;
            }
            Ok::<_, Error>((cluster.to_string(), bstatus, bspec))
        });
    }
    let results: Vec<Result<(String, Value, Value), Error>> = futures::stream::iter(jobs)
        .buffer_unordered(16)
        .collect()
        .await;
    let mut bindings: BTreeMap<String, Value> = BTreeMap::new();
    let mut binding_specs: BTreeMap<String, Value> = BTreeMap::new();
    for r in results {
        let (cluster, bstatus, bspec) = r?;
        bindings.insert(cluster.clone(), bstatus);
        binding_specs.insert(cluster, bspec);
    }

    // The placement's status.
    let mut per_cluster = Vec::new();
    for (cluster, bstatus) in &bindings {
        let mut entry = json!({"clusterName": cluster, "observedResourceIndex": resource_index,
            "conditions": bstatus["conditions"]});
        if let Some(b) = binding_specs.get(cluster) {
            for (from, to) in [
                (
                    "clusterResourceOverrideSnapshots",
                    "applicableClusterResourceOverrides",
                ),
                ("resourceOverrideSnapshots", "applicableResourceOverrides"),
            ] {
                if b[from].as_array().is_some_and(|a| !a.is_empty()) {
                    entry[to] = b[from].clone();
                }
            }
        }
        for f in ["failedPlacements", "driftedPlacements", "diffedPlacements"] {
            if bstatus[f].as_array().is_some_and(|a| !a.is_empty()) {
                entry[f] = bstatus[f].clone();
            }
        }
        per_cluster.push(entry);
    }
    condition(
        &mut conds,
        &scope.condition(cc::SCHEDULED),
        sched_status,
        sched_reason,
        &decision.message,
        generation,
    );
    for (cluster_type, ok_reason, bad_reason, pending_reason) in [
        (
            cc::ROLLOUT_STARTED,
            "RolloutStarted",
            "RolloutNotStartedYet",
            "RolloutStartedUnknown",
        ),
        (
            cc::OVERRIDDEN,
            "NoOverrideSpecified",
            "OverriddenFailed",
            "OverriddenPending",
        ),
        (
            cc::WORK_SYNCHRONIZED,
            "WorkSynchronized",
            "WorkNotSynchronizedYet",
            "WorkSynchronizedUnknown",
        ),
        (cc::APPLIED, "ApplySucceeded", "ApplyFailed", "ApplyPending"),
        (
            cc::AVAILABLE,
            "ResourceAvailable",
            "ResourceNotAvailableYet",
            "ResourceAvailablePending",
        ),
    ] {
        let statuses: Vec<&str> = bindings
            .values()
            .map(|b| {
                conditions::find(&b["conditions"], cluster_type)
                    .and_then(|c| c["status"].as_str())
                    .unwrap_or("Unknown")
            })
            .collect();
        let total = statuses.len();
        let good = statuses.iter().filter(|s| **s == "True").count();
        let bad = statuses.iter().filter(|s| **s == "False").count();
        let (st, reason, msg) = if good == total {
            ("True", ok_reason, format!("{good} of {total} clusters"))
        } else if bad > 0 {
            (
                "False",
                bad_reason,
                format!("{bad} of {total} clusters failed or are not ready"),
            )
        } else {
            (
                "Unknown",
                pending_reason,
                format!("{good} of {total} clusters so far"),
            )
        };
        condition(
            &mut conds,
            &scope.condition(cluster_type),
            st,
            reason,
            &msg,
            generation,
        );
    }
    // DiffReported, when the clusters report differences (ReportDiff).
    let diff_type = scope.condition(cc::DIFF_REPORTED);
    let reported = bindings
        .values()
        .filter(|b| conditions::find(&b["conditions"], cc::DIFF_REPORTED).is_some())
        .count();
    if reported > 0 {
        let (st, reason) = if reported == bindings.len() {
            ("True", "DiffReported")
        } else {
            ("Unknown", "DiffReportPending")
        };
        let msg = format!(
            "{reported} of {} clusters reported their differences",
            bindings.len()
        );
        condition(&mut conds, &diff_type, st, reason, &msg, generation);
    } else if let Some(list) = conds.as_array_mut() {
        list.retain(|c| c["type"] != diff_type.as_str());
    }
    let any_override = binding_specs.values().any(|b| {
        b["clusterResourceOverrideSnapshots"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            || b["resourceOverrideSnapshots"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    });
    let overridden_type = scope.condition(cc::OVERRIDDEN);
    if any_override && conditions::is_true(&conds, &overridden_type) {
        let msg = conditions::find(&conds, &overridden_type)
            .and_then(|c| c["message"].as_str())
            .unwrap_or("")
            .to_string();
        condition(
            &mut conds,
            &overridden_type,
            "True",
            "OverriddenSucceeded",
            &msg,
            generation,
        );
    }
    status["selectedResources"] = json!(manifests
        .iter()
        .zip(&envelopes)
        .map(|(m, e)| {
            let mut id = identifier(m);
            if let Some(e) = e {
                id["envelope"] = e.clone();
            }
            id
        })
        .collect::<Vec<_>>());
    status["observedResourceIndex"] = json!(resource_index);
    status["placementStatuses"] = json!(per_cluster);
    status["conditions"] = conds;
    if crp_value["status"] != status {
        // While only per-cluster details and progress messages move (the placement's own
        // conditions keep their status and reason), the large status is written at most once
        // a second; a change of the placement's conditions is written at once.
        let same_conditions = conditions::without_messages(&crp_value["status"]["conditions"])
            == conditions::without_messages(&status["conditions"]);
        let now = std::time::Instant::now();
        let recent = ctx
            .status_written
            .lock()
            .get(&key)
            .map(|t| now.duration_since(*t));
        if let Some(since) = recent.filter(|s| same_conditions && *s < STATUS_DETAIL_INTERVAL) {
            return Ok(Action::requeue(STATUS_DETAIL_INTERVAL - since));
        }
        write_status(client, scope, &name, namespace, status).await?;
        let mut written = ctx.status_written.lock();
        if written.len() > 4096 {
            written.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        }
        written.insert(key, now);
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The placement's apply strategy with KubeFleet's defaults filled in (also when the placement
/// has no strategy at all).
fn apply_strategy_of(spec: &Value) -> Value {
    let mut a = json!({"type": "ClientSideApply", "comparisonOption": "PartialComparison",
        "whenToApply": "Always", "whenToTakeOver": "Always"});
    if let Some(given) = spec["strategy"]["applyStrategy"].as_object() {
        for (k, v) in given {
            a[k] = v.clone();
        }
    }
    a
}

/// A merge patch that makes `old` into `new` at the top level: a merge patch keeps what it
/// does not mention, so keys `new` dropped (a list that emptied) go as null.
fn replacing(old: &Value, new: &Value) -> Value {
    let mut patch = new.clone();
    for k in old.as_object().into_iter().flat_map(|o| o.keys()) {
        if new.get(k).is_none() {
            patch[k] = Value::Null;
        }
    }
    patch
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn write_status(
    client: &kube::Client,
    scope: Scope,
    name: &str,
    namespace: Option<&str>,
    status: Value,
) -> Result<(), Error> {
    api_in(client, &scope.placement(), namespace)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await?;
    Ok(())
}

/// A binding's status: scheduled and rolled out (every cluster at once for now), no
/// overrides yet, and its Work's applied and available conditions (as of the Work's current
/// generation) with the manifests that failed.
fn binding_status(
    binding: &DynamicObject,
    work: Option<&DynamicObject>,
    overridden: &Result<overrides::Overridden, String>,
    generation: i64,
) -> Value {
    let mut conds = binding.data["status"]["conditions"].clone();
    let g = binding.metadata.generation.unwrap_or(generation);
    condition(
        &mut conds,
        cc::SCHEDULED,
        "True",
        "Scheduled",
        binding.data["spec"]["clusterDecision"]["reason"]
            .as_str()
            .unwrap_or_default(),
        g,
    );
    condition(
        &mut conds,
        cc::ROLLOUT_STARTED,
        "True",
        "RolloutStarted",
        "the resources roll out to the cluster",
        g,
    );
    match overridden {
        Ok(o) if o.cluster_overrides.is_empty() && o.resource_overrides.is_empty() => condition(
            &mut conds,
            cc::OVERRIDDEN,
            "True",
            "NoOverrideSpecified",
            "no override applies",
            g,
        ),
        Ok(o) => condition(
            &mut conds,
            cc::OVERRIDDEN,
            "True",
            "OverriddenSucceeded",
            &format!(
                "{} override(s) applied",
                o.cluster_overrides.len() + o.resource_overrides.len()
            ),
            g,
        ),
        Err(e) => condition(
            &mut conds,
            cc::OVERRIDDEN,
            "False",
            "OverriddenFailed",
            e,
            g,
        ),
    }
    let mut failed = Vec::new();
    match work {
        _ if overridden.is_err() => {
            condition(
                &mut conds,
                cc::WORK_SYNCHRONIZED,
                "False",
                "WorkNotSynchronizedYet",
                "an override cannot be applied: the Work keeps its previous resources",
                g,
            );
        }
        None => {
            condition(
                &mut conds,
                cc::WORK_SYNCHRONIZED,
                "False",
                "WorkNotSynchronizedYet",
                "the member's namespace is not available",
                g,
            );
        }
        Some(w) => {
            condition(
                &mut conds,
                cc::WORK_SYNCHRONIZED,
                "True",
                "AllWorkSynced",
                "the Work holds the latest resources",
                g,
            );
            let wgen = w.metadata.generation.unwrap_or(0);
            let wconds = &w.data["status"]["conditions"];
            for (ty, ok, bad, pending) in [
                (
                    cc::APPLIED,
                    "AllWorkHaveBeenApplied",
                    "WorkNotAppliedYet",
                    "WorkApplyPending",
                ),
                (
                    cc::AVAILABLE,
                    "AllWorkAreAvailable",
                    "WorkNotAvailableYet",
                    "WorkAvailabilityPending",
                ),
            ] {
                match conditions::find(wconds, ty)
                    .filter(|c| c["observedGeneration"].as_i64() == Some(wgen))
                {
                    Some(c) if c["status"] == "True" => condition(
                        &mut conds,
                        ty,
                        "True",
                        ok,
                        c["message"].as_str().unwrap_or(""),
                        g,
                    ),
                    Some(c) if c["status"] == "False" => condition(
                        &mut conds,
                        ty,
                        "False",
                        bad,
                        c["message"].as_str().unwrap_or(""),
                        g,
                    ),
                    _ => condition(
                        &mut conds,
                        ty,
                        "Unknown",
                        pending,
                        "the member's agent has not reported on the latest Work yet",
                        g,
                    ),
                }
            }
            // ReportDiff: the agent's report of differences, as of the latest Work.
            match conditions::find(wconds, cc::DIFF_REPORTED)
                .filter(|c| c["observedGeneration"].as_i64() == Some(wgen))
            {
                Some(c) => condition(
                    &mut conds,
                    cc::DIFF_REPORTED,
                    c["status"].as_str().unwrap_or("Unknown"),
                    "DiffReported",
                    c["message"].as_str().unwrap_or(""),
                    g,
                ),
                None => {
                    if let Some(list) = conds.as_array_mut() {
                        list.retain(|c| c["type"] != cc::DIFF_REPORTED);
                    }
                }
            }
            for m in w.data["status"]["manifestConditions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for ty in [cc::APPLIED, cc::AVAILABLE] {
                    if let Some(c) =
                        conditions::find(&m["conditions"], ty).filter(|c| c["status"] == "False")
                    {
                        let mut f = m["identifier"].clone();
                        if let Some(o) = f.as_object_mut() {
                            o.remove("ordinal");
                            o.remove("resource");
                        }
                        f["condition"] = c.clone();
                        failed.push(f);
                        break;
                    }
                }
            }
        }
    }
    failed.truncate(100);
    let mut status = json!({"conditions": conds});
    if !failed.is_empty() {
        status["failedPlacements"] = json!(failed);
    }
    if let Some(w) = work {
        for f in ["driftedPlacements", "diffedPlacements"] {
            let list: Vec<Value> = w.data["status"]["manifestConditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let key = if f == "driftedPlacements" {
                        "driftDetails"
                    } else {
                        "diffDetails"
                    };
                    let details = m.get(key)?;
                    let mut e = m["identifier"].clone();
                    if let Some(o) = e.as_object_mut() {
                        o.remove("ordinal");
                        o.remove("resource");
                    }
                    for (k, v) in details.as_object()? {
                        e[k] = v.clone();
                    }
                    Some(e)
                })
                .take(100)
                .collect();
            if !list.is_empty() {
                status[f] = json!(list);
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn ro(namespace: &str, placement: Value) -> DynamicObject {
        obj(
            json!({"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ResourceOverride",
            "metadata": {"name": "o", "namespace": namespace}, "spec": {"placement": placement}}),
        )
    }

    #[test]
    fn overrides_apply_to_the_placements_they_name_in_their_scope() {
        use Scope::{Cluster, Namespaced};
        let cro = obj(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
            "kind": "ClusterResourceOverride", "metadata": {"name": "c"},
            "spec": {"placement": {"name": "web"}}}));
        assert!(override_applies(&cro, true, Cluster, "web", None));
        assert!(!override_applies(&cro, true, Cluster, "db", None));
        // ClusterResourceOverrides never apply to ResourcePlacements.
        assert!(!override_applies(
            &cro,
            true,
            Namespaced,
            "web",
            Some("team")
        ));

        let for_crp = ro("team", json!({"name": "web"}));
        assert!(override_applies(&for_crp, false, Cluster, "web", None));
        assert!(!override_applies(
            &for_crp,
            false,
            Namespaced,
            "web",
            Some("team")
        ));
        let for_rp = ro("team", json!({"name": "web", "scope": "Namespaced"}));
        assert!(override_applies(
            &for_rp,
            false,
            Namespaced,
            "web",
            Some("team")
        ));
        assert!(!override_applies(
            &for_rp,
            false,
            Namespaced,
            "web",
            Some("other")
        ));
        assert!(!override_applies(&for_rp, false, Cluster, "web", None));
        // Naming none: every ClusterResourcePlacement, the ResourcePlacements of its namespace.
        let any = ro("team", Value::Null);
        assert!(override_applies(&any, false, Cluster, "web", None));
        assert!(override_applies(
            &any,
            false,
            Namespaced,
            "web",
            Some("team")
        ));
        assert!(!override_applies(
            &any,
            false,
            Namespaced,
            "web",
            Some("other")
        ));
    }

    #[test]
    fn a_resource_placement_is_triggered_by_its_own_namespace_only() {
        let rp = obj(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
            "kind": "ResourcePlacement", "metadata": {"name": "api", "namespace": "team"},
            "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "ConfigMap"}]}}));
        let changed = |ns: Option<&str>, name: &str| Changed {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: ns.map(String::from),
            name: name.into(),
            labels: BTreeMap::new(),
        };
        let resources = Resources::default();
        let n = Scope::Namespaced;
        assert!(may_select(n, &rp, &changed(Some("team"), "a"), &resources));
        assert!(!may_select(
            n,
            &rp,
            &changed(Some("other"), "a"),
            &resources
        ));
        // A type whose cache just loaded concerns every placement selecting it.
        assert!(may_select(n, &rp, &changed(None, ""), &resources));
        let secret = Changed {
            kind: "Secret".into(),
            ..changed(Some("team"), "a")
        };
        assert!(!may_select(n, &rp, &secret, &resources));
        // ... also one whose selector names labels the (nameless) type event has not.
        let labelled = obj(
            json!({"apiVersion": "placement.kubernetes-fleet.io/v1beta1",
            "kind": "ClusterResourcePlacement", "metadata": {"name": "prod"},
            "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace",
                "labelSelector": {"matchLabels": {"env": "prod"}}}]}}),
        );
        let namespaces = Changed {
            kind: "Namespace".into(),
            ..changed(None, "")
        };
        assert!(may_select(
            Scope::Cluster,
            &labelled,
            &namespaces,
            &resources
        ));
        // Until discovery has run once, no type is known to be missing.
        assert!(resources.loading("", "Namespace"));
    }

    #[test]
    fn a_status_patch_removes_what_the_new_status_dropped() {
        let old = json!({"conditions": [], "failedPlacements": [{"name": "a"}]});
        let new = json!({"conditions": [{"type": "Applied"}]});
        assert_eq!(
            replacing(&old, &new),
            json!({"conditions": [{"type": "Applied"}], "failedPlacements": null})
        );
        assert_eq!(replacing(&Value::Null, &new), new);
    }

    #[test]
    fn works_are_named_after_their_placement() {
        assert_eq!(work_name("web", None), "web-work");
        assert_eq!(work_name("api", Some("team")), "team.api-work");
        assert_eq!(
            Scope::Namespaced.condition(cc::AVAILABLE),
            "ResourcePlacementAvailable"
        );
        assert_eq!(
            Scope::Cluster.condition(cc::SCHEDULED),
            "ClusterResourcePlacementScheduled"
        );
    }
}
