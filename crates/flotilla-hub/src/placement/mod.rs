//! The placement controllers: one for ClusterResourcePlacements, one for ResourcePlacements
//! ([`Scope`]); they share the caches of members, Works, overrides, snapshots and placeable
//! resources. A pass over one placement decides, then acts:
//!
//! - [`select`] picks the resources from the watch-fed caches ([`crate::resources`]): by name
//!   or label; for a ClusterResourcePlacement cluster-scoped objects, a Namespace with
//!   everything in it (or only itself); for a ResourcePlacement namespaced objects of its own
//!   namespace.
//! - [`plan`] (pure) decides everything else from the caches: a new resource snapshot
//!   (`<placement>-<index>-snapshot`) when the selection's hash changes, a new scheduling
//!   policy snapshot (`<placement>-<index>`) when the policy does (numberOfClusters aside: an
//!   annotation), override snapshots, old snapshots beyond `revisionHistoryLimit` to delete;
//!   the scheduler's decision ([`flotilla_scheduler`], keeping what is placed when the policy
//!   snapshot is the same); one binding per picked cluster (`<placement>-<cluster>-<hash>`);
//!   the rolling update ([`rollout`], KubeFleet's) decides which bindings move to the latest
//!   resource and override snapshots now (state Bound), which wait (a new cluster Scheduled,
//!   a stale one keeping what it names, a deselected one Unscheduled) and which go; for each
//!   bound binding a Work in the member's namespace ([`work_name`]) with what the binding
//!   names, after the cluster's overrides, and the apply strategy (which reaches every
//!   binding at once).
//! - [`execute`] makes those writes through the API. Bindings and snapshots are owned by the
//!   placement; a ClusterResourcePlacement's Works by their binding, so deletions cascade
//!   through the garbage collector; a ResourcePlacement's Works are in other namespaces than
//!   it, so the plan deletes them (when a cluster is deselected) and the placement's finalizer
//!   does when it is deleted. The agent removes what a deleted Work applied.
//! - [`status`] (pure) rolls each Work's conditions (written by the member's agent) up into its
//!   binding and the placement's per-cluster statuses and conditions
//!   (`ClusterResourcePlacement*` or `ResourcePlacement*` types).
//!
//! Events go where they concern ([`routing`]): a change of a placeable resource, an override or
//! a member to the placements it may change (a whole pass); a Work's status to its placement's
//! status roll-up only ([`roll_up`]: the bindings of the clusters whose Works changed, a tally
//! of the rest, the placement's status; nothing else).

mod budget;
pub(crate) mod compact;
mod execute;
pub mod failover;
mod fleet;
mod index;
mod kinds;
pub mod plan;
pub mod rollout;
mod routing;
mod select;
mod shared;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_api::conditions;
use flotilla_api::placement::{finalizer, label};
use flotilla_api::work::work_resource;
use flotilla_scheduler::Cluster;
use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::finalizer::{Error as FinalizerError, Event as FinalizerEvent};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};

use index::Indexed;
use kube::ResourceExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::members::member_cluster_resource;
use crate::queue::{self, Next};
use crate::resources::{Changed, Resources};
use crate::Error;
use fleet::Fleet;
use plan::{Decision, Observed, OverrideSeries};
use routing::{fan_out, key, may_select, StatusOnly, Triggered, Triggers};
use status::{ClusterStatus, Summary};

pub use kinds::*;
pub use shared::SharedBindings;

/// Reconciles of one placement are at least this far apart: a burst of Work status updates
/// (one per cluster) becomes a few reconciles, not one each.
const MIN_RECONCILE_INTERVAL: Duration = Duration::from_millis(200);

/// How many placements of a scope pass at once. A pass holds its plan (every cluster's Work
/// spec) while it writes; unbounded, a thousand placements passing together held them all at
/// once, on a hub whose passes are CPU-bound on a few cores anyway.
const PASSES_AT_ONCE: usize = 16;

/// The most of the hub's time that judging member changes may take. Judging a batch weighs
/// each changed cluster against every placement's policy; when it read every binding too,
/// with 1,000 members whose usage changes as workloads land (a batch each heartbeat) over
/// 100,000 bindings, it took a quarter of the hub's CPU in the headline run (docs/BENCHMARKS.md,
/// fleet scale, seventh session; the bindings now come from an index). After a batch the next
/// waits nine times as long as it took, and the changes in between are judged together.
const MEMBER_DUTY: u32 = 10;

/// How long judging member changes pauses after a batch that took `took`.
fn member_pause(took: Duration) -> Duration {
    took * (MEMBER_DUTY - 1)
}

/// A status roll-up alone may follow the last pass sooner: it costs the clusters whose Works
/// changed, and the last of them to become available is what a person waits for.
const MIN_ROLL_UP_INTERVAL: Duration = Duration::from_millis(50);

/// A placement status whose own conditions did not change is written at most this often, or
/// [`STATUS_DETAIL_PER_CLUSTER`] per cluster it is on if that is longer, up to
/// [`STATUS_DETAIL_MAX`]: its size, and what a write of it costs, grow with its clusters.
const STATUS_DETAIL_INTERVAL: Duration = Duration::from_secs(1);
const STATUS_DETAIL_PER_CLUSTER: Duration = Duration::from_millis(50);
const STATUS_DETAIL_MAX: Duration = Duration::from_secs(30);

/// How long a placement on `clusters` clusters waits between writes of its status details.
fn detail_interval(clusters: usize) -> Duration {
    (STATUS_DETAIL_PER_CLUSTER * u32::try_from(clusters).unwrap_or(u32::MAX))
        .clamp(STATUS_DETAIL_INTERVAL, STATUS_DETAIL_MAX)
}

/// One placement as its last whole pass left it: what a status roll-up needs, and what the
/// caches must show for the roll-up to be all that is needed.
struct Settled {
    /// The placement's generation the pass planned for.
    generation: i64,
    summary: Summary,
    /// The rollout holds clusters back: a change of a Work's status may let them go, so it
    /// takes a whole pass, not only the roll-up.
    rolling: bool,
    clusters: Vec<SettledCluster>,
    /// Some binding names override snapshots.
    any_override: bool,
    /// What the roll-ups since the pass learnt.
    tally: parking_lot::Mutex<Tally>,
}

/// Where each cluster of a settled placement stands, kept by the roll-ups so that one Work's
/// change costs the work of its cluster, not of every cluster of the placement: the
/// placement's own conditions follow from the counts; its whole status (every cluster's
/// entry) is built only when it is written.
#[derive(Default)]
struct Tally {
    /// Per cluster (as in [`Settled::clusters`]): where it stands along the condition chain.
    chains: Vec<Vec<&'static str>>,
    counts: status::Counts,
    /// Binding statuses written that the cache may not show yet, by cluster (as in
    /// [`Settled::clusters`]): the binding's resourceVersion after the write, the status.
    pending: HashMap<usize, (u64, Value)>,
    /// A cluster's status moved since the placement's status was last written.
    dirty: bool,
}

impl Tally {
    fn set(&mut self, i: usize, chain: Vec<&'static str>) {
        self.counts.remove(&self.chains[i]);
        self.counts.add(&chain);
        self.chains[i] = chain;
    }

    /// A status written for cluster `i` that `binding` (from the cache) does not show yet, and
    /// the binding's resourceVersion after that write.
    fn pending(&self, i: usize, binding: &DynamicObject) -> Option<(u64, &Value)> {
        self.pending
            .get(&i)
            .filter(|(v, _)| execute::version(binding) < *v)
            .map(|(v, status)| (*v, status))
    }

    /// The binding's status as last written: the cache's, unless a write it does not show
    /// yet is pending.
    fn status<'a>(&'a self, i: usize, binding: &'a DynamicObject) -> &'a Value {
        self.pending(i, binding)
            .map_or(&binding.data["status"], |(_, status)| status)
    }
}

struct SettledCluster {
    cluster: String,
    binding_name: String,
    binding_spec: Value,
    work_namespace: String,
    work_name: String,
    /// The digest of the Work's spec as written (`None` while an override fails: whatever
    /// is there).
    work_spec: Option<u64>,
    overridden: Result<Arc<flotilla_api::overrides::Overridden>, String>,
    rollout: status::Rollout,
    unreachable: Option<String>,
}

/// The settled placements by key ([`key`]).
type SettledMap = parking_lot::Mutex<HashMap<String, Arc<Settled>>>;

struct Ctx {
    scope: Scope,
    client: kube::Client,
    fleet: Arc<parking_lot::Mutex<Fleet>>,
    last_run: parking_lot::Mutex<HashMap<String, Instant>>,
    status_written: parking_lot::Mutex<HashMap<String, Instant>>,
    /// Shared by both scopes' controllers.
    details: Arc<budget::DetailBudget>,
    settled: Arc<SettledMap>,
    status_only: Arc<StatusOnly>,
    members: Store<DynamicObject>,
    bindings: Arc<Indexed>,
    works: Arc<Indexed>,
    resource_snapshots: Arc<Indexed>,
    policy_snapshots: Arc<Indexed>,
    cros: Store<DynamicObject>,
    ros: Store<DynamicObject>,
    cro_snapshots: Store<DynamicObject>,
    ro_snapshots: Store<DynamicObject>,
    /// Staged update runs (the External strategy).
    runs: Store<DynamicObject>,
    /// Events about failover and fail-back.
    recorder: kube::runtime::events::Recorder,
    resources: Arc<Resources>,
}

impl Ctx {
    /// Whether every cache a plan reads has had its first list.
    fn caches_ready(&self) -> bool {
        [
            &self.members,
            self.bindings.store(),
            self.works.store(),
            self.resource_snapshots.store(),
            self.policy_snapshots.store(),
            &self.cros,
            &self.ros,
            &self.cro_snapshots,
            &self.ro_snapshots,
            &self.runs,
        ]
        .iter()
        .all(|s| s.wait_until_ready().now_or_never().is_some())
    }
}

/// Runs the controllers (ClusterResourcePlacements and ResourcePlacements) until the client's
/// server stops, or until the future is dropped (leadership lost): nothing outlives it. Their
/// binding caches are `bindings`, whose watches they drive.
pub async fn run(client: kube::Client, mut bindings: SharedBindings) {
    let (members, member_stream) = cached(&client, member_cluster_resource());
    let (works, work_events) = cached_indexed(
        &client,
        work_resource(),
        compact::compact_work,
        index::work_keys,
    );
    let work_stream: Watched = work_events.touched_objects().boxed();
    let (cros, cro_stream) = cached(&client, cro_resource());
    let (ros, ro_stream) = cached(&client, ro_resource());
    let (cro_snapshots, cro_snapshot_stream) = cached(&client, cro_snapshot_resource());
    let (ro_snapshots, ro_snapshot_stream) = cached(&client, ro_snapshot_resource());
    let resources = Arc::new(Resources::default());
    let (changed_tx, changed_rx) = mpsc::unbounded_channel::<Changed>();
    let fleet = Arc::new(parking_lot::Mutex::new(Fleet::default()));
    let details = Arc::new(budget::DetailBudget::default());

    let mut tasks: Vec<futures::future::BoxFuture<'static, ()>> = vec![
        resources
            .clone()
            .run(client.clone(), changed_tx, Duration::from_secs(10))
            .boxed(),
        // Snapshots are only read: their streams keep their caches.
        follow(cro_snapshot_stream),
        follow(ro_snapshot_stream),
    ];
    let mut triggered = Vec::new();
    for scope in [Scope::Cluster, Scope::Namespaced] {
        let ar = scope.placement();
        let writer = reflector::store::Writer::new(ar.clone());
        let reader = writer.as_reader();
        let status_only = Arc::new(StatusOnly::default());
        let settled: Arc<SettledMap> = Default::default();
        let asks_whole = status_only.clone();
        let stream = watcher(
            Api::all_with(client.clone(), &ar),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify({
            let mut typed = crate::resources::typed(&ar);
            move |p| {
                typed(p);
                compact::placement_status(p);
            }
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_fingerprint, Default::default())
        .inspect_ok(move |p| asks_whole.whole(key(&p.name_any(), p.namespace().as_deref())));
        // The watches that keep the placement and binding caches are followed by tasks of
        // their own, which hand the controller what to reconcile: a controller polls its
        // streams only while it has room for another reconcile, so under load its caches fell
        // minutes behind, and passes that read a stale binding wrote it again and again
        // (docs/BENCHMARKS.md, fleet scale, seventh session).
        let (stream, follow_placements) = decoupled(stream.boxed());
        tasks.push(follow_placements);
        let (bindings, binding_events) = bindings.take(scope);
        let (binding_stream, follow_bindings) = decoupled(decisive_bindings(
            binding_events,
            settled.clone(),
            status_only.clone(),
        ));
        tasks.push(follow_bindings);
        let binding_index = bindings.clone();
        let (resource_snapshots, rs_events) =
            cached_indexed(&client, scope.resource_snapshot(), |_| {}, index::by_owner);
        tasks.push(follow(rs_events.touched_objects().boxed()));
        let (policy_snapshots, ps_events) =
            cached_indexed(&client, scope.policy_snapshot(), |_| {}, index::by_owner);
        tasks.push(follow(ps_events.touched_objects().boxed()));
        let (runs, run_stream) = cached(&client, scope.update_run());
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            scope,
            client: client.clone(),
            fleet: fleet.clone(),
            last_run: Default::default(),
            status_written: Default::default(),
            details: details.clone(),
            settled,
            status_only: status_only.clone(),
            members: members.clone(),
            bindings,
            works: works.clone(),
            resource_snapshots,
            policy_snapshots,
            cros: cros.clone(),
            ros: ros.clone(),
            cro_snapshots: cro_snapshots.clone(),
            ro_snapshots: ro_snapshots.clone(),
            runs,
            recorder: kube::runtime::events::Recorder::new(
                client.clone(),
                kube::runtime::events::Reporter {
                    controller: "flotilla-placement".into(),
                    instance: None,
                },
            ),
            resources: resources.clone(),
        });
        let parent = move |b: DynamicObject| {
            b.labels()
                .get(label::PARENT_CRP)
                .map(|n| scope.placement_ref(n, b.namespace().as_deref()))
        };
        // What asks for a pass: the placement (its spec), its bindings, its update runs (a
        // run that finishes changes what newly picked clusters get), and the routed triggers
        // (members, Works, overrides, resources).
        let asks = futures::stream::select_all([
            stream
                .filter_map(move |p| {
                    let r = p
                        .ok()
                        .map(|p| scope.placement_ref(&p.name_any(), p.namespace().as_deref()));
                    futures::future::ready(r)
                })
                .boxed(),
            binding_stream
                .filter_map(move |b| futures::future::ready(b.ok().and_then(parent)))
                .boxed(),
            run_stream
                .filter_map(move |r| {
                    let r = r.ok().and_then(|r| {
                        r.data["spec"]["placementName"]
                            .as_str()
                            .map(|n| scope.placement_ref(n, r.namespace().as_deref()))
                    });
                    futures::future::ready(r)
                })
                .boxed(),
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed(),
        ]);
        let placements = reader.clone();
        tasks.push(
            queue::run(asks, PASSES_AT_ONCE, move |r| {
                let (placements, ctx) = (placements.clone(), ctx.clone());
                async move {
                    if placements.wait_until_ready().await.is_err() {
                        return Next::on_change();
                    }
                    // Gone from the cache: deleted, and its last pass has been.
                    let Some(placement) = placements.get(&r) else {
                        return Next::on_change();
                    };
                    match reconcile(placement.clone(), ctx).await {
                        Ok(next) => next,
                        Err(e) => error_policy(&placement, &e),
                    }
                }
            })
            .boxed(),
        );
        triggered.push(Triggered {
            scope,
            placements: reader,
            bindings: binding_index,
            status_only,
            tx,
        });
    }
    let triggers = Arc::new(Triggers(triggered));

    // Members whose scheduling view changed: the placements they concern. Events that arrive
    // together (the initial list, a burst) are judged together, and judging takes at most a
    // tenth of the time ([`MEMBER_DUTY`]).
    let fleet_view = fleet.clone();
    let for_members = triggers.clone();
    tasks.push(
        member_stream
            .ready_chunks(1024)
            .for_each(move |batch| {
                let started = Instant::now();
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
                tokio::time::sleep(member_pause(started.elapsed()))
            })
            .boxed(),
    );
    // A Work: its placement's status.
    tasks.push(fan_out(work_stream, triggers.clone(), |w, t| {
        if let Some(p) = w.labels().get(label::PARENT_CRP) {
            let work_namespace = w.namespace().unwrap_or_default();
            match w.labels().get(label::PARENT_NAMESPACE) {
                Some(ns) => t.status_of(Scope::Namespaced, p, Some(ns), work_namespace),
                None => t.status_of(Scope::Cluster, p, None, work_namespace),
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

pub(crate) type Watched =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Send>>;

/// A watch-fed cache of `ar` and the stream that keeps it (to follow, or to trigger on).
pub(crate) fn cached(client: &kube::Client, ar: ApiResource) -> (Store<DynamicObject>, Watched) {
    cached_with(client, ar, |_| {})
}

/// [`cached`], each object changed by `compact` before the cache keeps it.
pub(crate) fn cached_with(
    client: &kube::Client,
    ar: ApiResource,
    compact: fn(&mut DynamicObject),
) -> (Store<DynamicObject>, Watched) {
    let (store, events) = cached_events(client, ar, compact);
    (store, events.touched_objects().boxed())
}

pub(crate) type Events = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send>,
>;

/// [`cached_with`], with an index ([`index::Indexed`]) kept by the same stream.
pub(crate) fn cached_indexed(
    client: &kube::Client,
    ar: ApiResource,
    compact: fn(&mut DynamicObject),
    keys: index::Keys,
) -> (Arc<Indexed>, Events) {
    let (store, events) = cached_events(client, ar.clone(), compact);
    let indexed = Arc::new(Indexed::new(store, ar, keys));
    let keeper = indexed.clone();
    let events = events.inspect_ok(move |ev| keeper.apply(ev)).boxed();
    (indexed, events)
}

/// [`cached_with`], as the watch's events (which tell a deletion from a change).
fn cached_events(
    client: &kube::Client,
    ar: ApiResource,
    compact: fn(&mut DynamicObject),
) -> (Store<DynamicObject>, Events) {
    let writer = reflector::store::Writer::new(ar.clone());
    let reader = writer.as_reader();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let mut keep = crate::resources::typed(&ar);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(move |o| {
            keep(o);
            compact(o);
        })
        .reflect(writer)
        .boxed();
    (reader, stream)
}

/// The binding events a whole pass of their placement must see: a binding created or deleted,
/// its spec, labels, finalizers or deletion changed (each also marks the placement whole), and
/// status changes of a placement that rolls out (its plan reads them) or has not settled. The
/// status changes of a settled placement's bindings are the roll-up's own writes, which its
/// tally holds already: passing them on would turn each into a whole pass.
fn decisive_bindings(
    events: Events,
    settled: Arc<SettledMap>,
    status_only: Arc<StatusOnly>,
) -> Watched {
    use std::hash::{Hash, Hasher};
    let mut seen: HashMap<(Option<String>, String), u64> = HashMap::new();
    let placement_key = |b: &DynamicObject| {
        b.labels()
            .get(label::PARENT_CRP)
            .map(|p| key(p, b.namespace().as_deref()))
    };
    events
        .filter_map(move |ev| {
            let out = match ev {
                Err(e) => Some(Err(e)),
                Ok(watcher::Event::Init) => {
                    seen.clear();
                    None
                }
                Ok(watcher::Event::InitDone) => None,
                Ok(watcher::Event::Delete(b)) => {
                    seen.remove(&(b.namespace(), b.name_any()));
                    if let Some(k) = placement_key(&b) {
                        status_only.whole(k);
                    }
                    Some(Ok(b))
                }
                Ok(watcher::Event::Apply(b) | watcher::Event::InitApply(b)) => {
                    let mut h = std::hash::DefaultHasher::new();
                    b.metadata.generation.hash(&mut h);
                    b.metadata.deletion_timestamp.is_some().hash(&mut h);
                    b.metadata.finalizers.hash(&mut h);
                    b.metadata.labels.hash(&mut h);
                    let fingerprint = h.finish();
                    let same = seen.insert((b.namespace(), b.name_any()), fingerprint)
                        == Some(fingerprint);
                    match placement_key(&b) {
                        Some(k) if !same => {
                            status_only.whole(k);
                            Some(Ok(b))
                        }
                        Some(k) => {
                            let quiet = settled.lock().get(&k).is_some_and(|s| !s.rolling);
                            (!quiet).then_some(Ok(b))
                        }
                        None => None,
                    }
                }
            };
            futures::future::ready(out)
        })
        .boxed()
}

/// Follows a stream that only keeps its cache.
pub(crate) fn follow(stream: Watched) -> futures::future::BoxFuture<'static, ()> {
    stream.for_each(|_| async {}).boxed()
}

/// Follows `stream` (whose polling keeps a cache) in a task of its own, handing each object
/// on as its name, namespace and labels (what a controller needs to know which object to
/// reconcile; the rest it reads from the cache): returns that stream and the task. The
/// hand-over holds only those few fields while the controller is busy.
fn decoupled(stream: Watched) -> (Watched, futures::future::BoxFuture<'static, ()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = stream
        .for_each(move |item| {
            // A watch error is retried by the watcher; the cache keeps what it had.
            if let Ok(o) = item {
                // The controller ends with the leader task that runs this one.
                let _ = tx.send(Ok(shared::identity(&o)));
            }
            async {}
        })
        .boxed();
    (
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed(),
        task,
    )
}

/// Reconcile a placement when its spec, finalizers, failover annotations or deletion change
/// (not for its own status writes).
fn spec_fingerprint(o: &DynamicObject) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    o.metadata.generation.hash(&mut h);
    o.metadata.deletion_timestamp.is_some().hash(&mut h);
    o.metadata.finalizers.hash(&mut h);
    // The failover settings are annotations: changing them is a change of the placement.
    for a in [failover::FAILOVER_AFTER, failover::FAILBACK] {
        o.annotations().get(a).hash(&mut h);
    }
    Some(h.finish())
}

fn error_policy(crp: &DynamicObject, e: &Error) -> Next {
    match e {
        e if e.is_conflict() => Next::after(Duration::from_millis(100)),
        Error::Loading(_) => Next::after(Duration::from_millis(500)),
        _ => {
            tracing::warn!(placement = %crp.name_any(), error = %e, "placement reconcile failed; retrying");
            Next::after(Duration::from_secs(2))
        }
    }
}

/// A ResourcePlacement's Works live in other namespaces (the members'), where its owner
/// references cannot reach: a finalizer keeps the placement until its Works are deleted
/// (kube-runtime's finalizer helper adds it and, once this is done, removes it).
async fn delete_works(ctx: &Ctx, placement: &DynamicObject) -> Result<Next, Error> {
    let name = placement.name_any();
    let ns = placement.namespace();
    for w in ctx
        .works
        .matching(&[&index::placement_key(&name, ns.as_deref())], |w| {
            w.labels().get(label::PARENT_CRP) == Some(&name)
                && w.labels().get(label::PARENT_NAMESPACE) == ns.as_ref()
        })
    {
        if w.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let api = api_in(&ctx.client, &work_resource(), w.namespace().as_deref());
        match api.delete(&w.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                let work = format!(
                    "Work {}/{}",
                    w.namespace().unwrap_or_default(),
                    w.name_any()
                );
                return Err(Error::from(e).concerning(work));
            }
        }
    }
    Ok(Next::on_change())
}

async fn reconcile(placement: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Next, Error> {
    let name = placement.name_any();
    let namespace = placement.namespace();
    if placement.metadata.deletion_timestamp.is_some() {
        // Snapshots and bindings are owned by the placement: the garbage collector removes
        // them, and with a ClusterResourcePlacement's bindings their Works; the agents remove
        // what the Works applied.
        let key = key(&name, namespace.as_deref());
        ctx.last_run.lock().remove(&key);
        ctx.settled.lock().remove(&key);
        ctx.status_only.take(&key);
    }
    if ctx.scope == Scope::Cluster {
        if placement.metadata.deletion_timestamp.is_some() {
            return Ok(Next::on_change());
        }
        return place(placement, &ctx).await;
    }
    let api = api_in(&ctx.client, &ctx.scope.placement(), namespace.as_deref());
    let cleanup = finalizer::PLACEMENT_CLEANUP;
    // kube-runtime's finalizer helper speaks its controller's `Action`, which does not tell
    // when: the pass's own answer is kept aside.
    let next = parking_lot::Mutex::new(Next::on_change());
    kube::runtime::finalizer(&api, cleanup, placement, |event| async {
        *next.lock() = match event {
            FinalizerEvent::Apply(p) => place(p, &ctx).await?,
            FinalizerEvent::Cleanup(p) => delete_works(&ctx, &p).await?,
        };
        Ok::<_, Error>(kube::runtime::controller::Action::await_change())
    })
    .await
    .map(|_| next.into_inner())
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => {
            Error::from(e).concerning(format!("the finalizer of ResourcePlacement {name}"))
        }
        e => Error::Finalizer(e.to_string()),
    })
}

/// A pass over a placement that is not being deleted.
async fn place(placement: Arc<DynamicObject>, ctx: &Ctx) -> Result<Next, Error> {
    let scope = ctx.scope;
    let name = placement.name_any();
    let namespace = placement.namespace();
    let namespace = namespace.as_deref();
    let key = key(&name, namespace);
    let status_only = ctx.status_only.take(&key);
    {
        let now = Instant::now();
        let mut last = ctx.last_run.lock();
        if let Some(t) = last.get(&key) {
            let since = now.duration_since(*t);
            let interval = match status_only {
                Some(_) => MIN_ROLL_UP_INTERVAL,
                None => MIN_RECONCILE_INTERVAL,
            };
            if since < interval {
                // What was asked stays asked.
                match status_only {
                    Some(works) => ctx.status_only.mark(key, works),
                    None => ctx.status_only.whole(key),
                }
                return Ok(Next::after(interval - since));
            }
        }
        if last.len() > 4096 {
            // Placements deleted without a last reconcile leave entries: drop the stale ones.
            last.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        }
        last.insert(key.clone(), now);
    }
    if !ctx.caches_ready() {
        return Err(Error::Loading("the placement caches".into()));
    }
    let generation = placement.metadata.generation.unwrap_or(0);
    let now = conditions::timestamp(chrono::Utc::now());
    if let Some(works) = status_only {
        let settled = ctx.settled.lock().get(&key).cloned();
        if let Some(settled) = settled.filter(|s| {
            s.generation == generation
                && !s.rolling
                && works
                    .iter()
                    .all(|ns| s.clusters.iter().any(|c| c.work_namespace == *ns))
        }) {
            if let Some(action) = roll_up(ctx, &placement, &key, &settled, &works, &now).await? {
                return Ok(action);
            }
        }
    }
    tracing::debug!(placement = %key, "reconcile");
    let clusters = ctx.fleet.lock().clusters(&ctx.members);
    let observed = observe(ctx, &placement, &clusters, &now)?;
    let plan = match plan::plan(&observed) {
        Decision::Refused { reason, message } => {
            ctx.settled.lock().remove(&key);
            let status = status::refused(
                scope,
                &placement.data["status"],
                reason,
                &message,
                generation,
                &now,
            );
            write_status(&ctx.client, scope, &name, namespace, status).await?;
            return Ok(Next::on_change());
        }
        Decision::Place(plan) => *plan,
    };
    let bindings = execute::execute(&ctx.client, scope, &plan, generation, &now).await?;
    for m in &plan.moves {
        report_move(ctx, &placement, m).await;
    }
    let mut by_cluster: HashMap<&str, &Value> = bindings
        .iter()
        .map(|b| (b.cluster.as_str(), &b.status))
        .collect();
    let statuses: Vec<ClusterStatus<'_>> = plan
        .clusters
        .iter()
        .filter_map(|c| {
            Some(ClusterStatus {
                cluster: &c.cluster,
                spec: &c.binding_spec,
                status: by_cluster.remove(c.cluster.as_str())?,
            })
        })
        .collect();
    let status = status::placement_status(
        scope,
        &placement.data["status"],
        &plan.summary,
        &statuses,
        generation,
        &now,
    );
    let clusters = plan.clusters.len();
    let written = write_placement_status(ctx, &placement, &key, clusters, status).await?;
    let mut after = written.after;
    if !plan.waiting.is_empty() {
        tracing::debug!(placement = %key, waiting = ?plan.waiting, "the rollout holds clusters back");
    }
    if let Some(ready) = plan.requeue {
        // An untrackable cluster becomes ready then, or a failover is due: nothing else would
        // say so, and only a whole pass decides it.
        after = after.min(ready.max(MIN_RECONCILE_INTERVAL));
        ctx.status_only.whole(key.clone());
    }
    let mut tally = Tally {
        dirty: written.deferred,
        ..Tally::default()
    };
    let mut by_cluster: HashMap<&str, &execute::Settled> =
        bindings.iter().map(|b| (b.cluster.as_str(), b)).collect();
    let mut kept = Vec::with_capacity(clusters);
    for c in plan.clusters {
        // A cluster whose binding the pass did not settle is not in the roll-up's view.
        let Some(b) = by_cluster.remove(c.cluster.as_str()) else {
            continue;
        };
        let chain = status::chain_of(&b.status, &plan.summary);
        tally.counts.add(&chain);
        tally.chains.push(chain);
        if let Some(v) = b.written {
            tally.pending.insert(kept.len(), (v, b.status.clone()));
        }
        kept.push(SettledCluster {
            cluster: c.cluster,
            binding_name: c.binding_name,
            binding_spec: c.binding_spec,
            work_namespace: c.work_namespace,
            work_name: c.work_name,
            work_spec: c.work_spec.as_ref().map(|w| w.digest),
            // The roll-up reads which overrides applied, not the manifests.
            overridden: c.overridden.map(|o| {
                Arc::new(flotilla_api::overrides::Overridden {
                    manifests: Vec::new(),
                    cluster_overrides: o.cluster_overrides.clone(),
                    resource_overrides: o.resource_overrides.clone(),
                })
            }),
            rollout: c.rollout,
            unreachable: c.unreachable,
        });
    }
    let settled = Settled {
        generation,
        rolling: !plan.waiting.is_empty(),
        summary: plan.summary,
        any_override: kept.iter().any(|c| status::overridden(&c.binding_spec)),
        clusters: kept,
        tally: parking_lot::Mutex::new(tally),
    };
    ctx.settled.lock().insert(key, Arc::new(settled));
    Ok(Next::after(after))
}

/// The overrides (ClusterResourceOverrides, ResourceOverrides) that apply to the placement
/// `name`, each with its snapshots, from the caches `[cros, ros, cro snapshots, ro snapshots]`.
pub(crate) fn override_series(
    [cros, ros, cro_snapshots, ro_snapshots]: [&Store<DynamicObject>; 4],
    scope: Scope,
    name: &str,
    namespace: Option<&str>,
) -> Vec<OverrideSeries> {
    let mut overrides = Vec::new();
    for (store, snapshots, cluster_scoped, parent_label) in [
        (
            cros,
            cro_snapshots,
            true,
            label::PARENT_CLUSTER_RESOURCE_OVERRIDE,
        ),
        (ros, ro_snapshots, false, label::PARENT_RESOURCE_OVERRIDE),
    ] {
        for o in store
            .state_filter(|o| plan::override_applies(o, cluster_scoped, scope, name, namespace))
        {
            let (oname, ons) = (o.name_any(), o.namespace());
            let snapshots = snapshots.state_filter(|s| {
                s.labels().get(parent_label) == Some(&oname) && s.namespace() == ons
            });
            overrides.push(OverrideSeries {
                object: o,
                cluster_scoped,
                snapshots,
            });
        }
    }
    overrides
}

/// What the planner reads about `placement`, from the caches.
fn observe<'a>(
    ctx: &Ctx,
    placement: &'a DynamicObject,
    clusters: &'a [Cluster],
    now: &'a str,
) -> Result<Observed<'a>, Error> {
    let scope = ctx.scope;
    let name = placement.name_any();
    let namespace = placement.namespace();
    let selection = select::select(&ctx.resources, scope, &serde_json::to_value(placement)?)?;
    // Candidates come from the caches' indexes by placement; these filters decide.
    let owner = index::placement_key(&name, namespace.as_deref());
    let of_placement = |o: &DynamicObject| {
        o.labels().get(label::PARENT_CRP) == Some(&name)
            && o.metadata.namespace.as_deref() == namespace.as_deref()
    };
    let work_name = work_name(&name, namespace.as_deref());
    let overrides = override_series(
        [&ctx.cros, &ctx.ros, &ctx.cro_snapshots, &ctx.ro_snapshots],
        scope,
        &name,
        namespace.as_deref(),
    );
    Ok(Observed {
        scope,
        placement,
        selection,
        resource_snapshots: ctx.resource_snapshots.matching(&[&owner], of_placement),
        policy_snapshots: ctx.policy_snapshots.matching(&[&owner], of_placement),
        overrides,
        clusters,
        bindings: ctx.bindings.matching(&[&owner], of_placement),
        completed_index: completed_index(&ctx.runs, &name, namespace.as_deref()),
        // By name (a placement's Works share it) and by labels.
        works: ctx
            .works
            .matching(&[&owner, &index::work_name_key(&work_name)], |w| {
                w.metadata.name.as_deref() == Some(work_name.as_str())
                    || (w.labels().get(label::PARENT_CRP) == Some(&name)
                        && w.labels().get(label::PARENT_NAMESPACE) == namespace.as_ref())
            }),
        now,
    })
}

/// An Event on the placement for a share that failover or fail-back moved (best effort: the
/// move is made and recorded on the placement whether or not the Event is).
async fn report_move(ctx: &Ctx, placement: &DynamicObject, m: &plan::Move) {
    use kube::runtime::events::{Event, EventType};
    let (reason, note, type_) = match (&m.to, m.back) {
        (Some(to), false) => (
            "FailedOver",
            format!(
                "{} has been unhealthy past the grace period: its share moves to {to}",
                m.from
            ),
            EventType::Warning,
        ),
        (None, false) => (
            "FailedOver",
            format!(
                "{} has been unhealthy past the grace period: no other cluster can take its share",
                m.from
            ),
            EventType::Warning,
        ),
        (to, true) => (
            "FailedBack",
            format!(
                "{} recovered: its share moves back from {}",
                to.as_deref().unwrap_or("?"),
                m.from
            ),
            EventType::Normal,
        ),
    };
    let reference = kube::Resource::object_ref(placement, &ctx.scope.placement());
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reschedule".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(error = %e, "recording a failover event");
    }
}

/// The resource snapshot index the last staged update run of the placement that succeeded
/// released.
fn completed_index(
    runs: &Store<DynamicObject>,
    placement: &str,
    namespace: Option<&str>,
) -> Option<String> {
    runs.state()
        .iter()
        .filter(|r| {
            r.data["spec"]["placementName"] == placement && r.namespace().as_deref() == namespace
        })
        .filter_map(|r| {
            let done = conditions::find(&r.data["status"]["conditions"], "Succeeded")
                .filter(|c| c["status"] == "True")?;
            Some((
                done["lastTransitionTime"].as_str()?.to_string(),
                r.data["status"]["resourceSnapshotIndexUsed"]
                    .as_str()?
                    .to_string(),
            ))
        })
        .max()
        .map(|(_, index)| index)
}

/// The status roll-up alone (run when only Works of clusters the last whole pass placed on
/// changed): the bindings of the clusters whose Works are in `works` are settled from them,
/// the placement's conditions follow from the tally, and its whole status is built only when
/// it is to be written. `None` when the caches do not show what that pass wrote (a binding or
/// Work changed or went, or the cache has not caught up): then a whole pass is due.
async fn roll_up(
    ctx: &Ctx,
    placement: &DynamicObject,
    key: &str,
    settled: &Settled,
    works: &std::collections::BTreeSet<String>,
    now: &str,
) -> Result<Option<Next>, Error> {
    let scope = ctx.scope;
    let namespace = placement.namespace();
    let generation = placement.metadata.generation.unwrap_or(0);
    let binding_api = api_in(&ctx.client, &scope.binding(), namespace.as_deref());
    for (i, c) in settled.clusters.iter().enumerate() {
        if !works.contains(&c.work_namespace) {
            continue;
        }
        let Some((binding, work)) = as_settled(ctx, c, namespace.as_deref()) else {
            return Ok(None);
        };
        // The binding as the last write left it, which the cache may not show yet.
        let pending = settled
            .tally
            .lock()
            .pending(i, &binding)
            .map(|(v, status)| (v, status.clone()));
        let binding = match pending {
            Some((version, status)) => {
                let mut b = (*binding).clone();
                b.data["status"] = status;
                // The write is made against the version it followed (a precondition).
                b.metadata.resource_version = Some(version.to_string());
                Arc::new(b)
            }
            None => binding,
        };
        let (status, written) = execute::settle_binding(
            &binding_api,
            &binding,
            work.as_deref(),
            status::Decided {
                overridden: c.overridden.as_deref(),
                rollout: c.rollout,
                unreachable: c.unreachable.as_deref(),
            },
            generation,
            now,
        )
        .await?;
        let mut tally = settled.tally.lock();
        tally.set(i, status::chain_of(&status, &settled.summary));
        if let Some(v) = written {
            tally.pending.insert(i, (v, status));
            tally.dirty = true;
        }
    }
    // The placement's own conditions, from the counts.
    let old = &placement.data["status"];
    let (conds, dirty) = {
        let tally = settled.tally.lock();
        let conds = status::placement_conditions(
            scope,
            &old["conditions"],
            &settled.summary,
            &tally.counts,
            settled.any_override,
            generation,
            now,
        );
        (conds, tally.dirty)
    };
    if !dirty && conds == old["conditions"] {
        return Ok(Some(Next::after(Duration::from_secs(300))));
    }
    let same_conditions =
        conditions::without_messages(&old["conditions"]) == conditions::without_messages(&conds);
    if let Err(wait) = ctx.write_due(key, same_conditions, settled.clusters.len()) {
        return Ok(Some(Next::after(wait)));
    }
    // The whole status: every cluster's binding as the pass left it.
    let mut found = Vec::with_capacity(settled.clusters.len());
    for c in &settled.clusters {
        let Some((binding, _)) = as_settled(ctx, c, namespace.as_deref()) else {
            return Ok(None);
        };
        found.push(binding);
    }
    let status = {
        let mut tally = settled.tally.lock();
        let clusters: Vec<ClusterStatus<'_>> = settled
            .clusters
            .iter()
            .zip(&found)
            .enumerate()
            .map(|(i, (c, b))| ClusterStatus {
                cluster: &c.cluster,
                spec: &c.binding_spec,
                status: tally.status(i, b),
            })
            .collect();
        let status =
            status::placement_status(scope, old, &settled.summary, &clusters, generation, now);
        drop(clusters);
        // What the cache shows now needs no keeping.
        tally
            .pending
            .retain(|i, (v, _)| execute::version(&found[*i]) < *v);
        status
    };
    let clusters = settled.clusters.len();
    let written = write_placement_status(ctx, placement, key, clusters, status).await?;
    settled.tally.lock().dirty = written.deferred;
    Ok(Some(Next::after(written.after)))
}

/// The binding and Work of a settled cluster from the caches, when they are as the whole pass
/// left them (the binding's spec, the Work's spec where the pass wrote one).
fn as_settled(
    ctx: &Ctx,
    c: &SettledCluster,
    namespace: Option<&str>,
) -> Option<(Arc<DynamicObject>, Option<Arc<DynamicObject>>)> {
    let mut binding_ref = ObjectRef::new_with(&c.binding_name, ctx.scope.binding());
    if let Some(ns) = namespace {
        binding_ref = binding_ref.within(ns);
    }
    let binding =
        ctx.bindings.store().get(&binding_ref).filter(|b| {
            b.metadata.deletion_timestamp.is_none() && b.data["spec"] == c.binding_spec
        })?;
    let work = ctx
        .works
        .store()
        .get(&ObjectRef::new_with(&c.work_name, work_resource()).within(&c.work_namespace));
    if let Some(spec) = c.work_spec {
        if work.as_ref().is_none_or(|w| !compact::has_spec(w, spec)) {
            return None;
        }
    }
    Some((binding, work))
}

/// What [`write_placement_status`] did.
struct Written {
    /// When to look again.
    after: Duration,
    /// The write was put off (only details moved, and the last write was recent).
    deferred: bool,
}

impl Ctx {
    /// Whether the placement's status may be written now: while only per-cluster details and
    /// progress messages move (its own conditions keep their status and reason), the large
    /// status is written at most every [`detail_interval`], and within the hub's budget for
    /// such writes ([`budget`]); a change of its conditions is written at once. When it may
    /// not, the roll-up is marked due when it may.
    fn write_due(&self, key: &str, same_conditions: bool, clusters: usize) -> Result<(), Duration> {
        if !same_conditions {
            return Ok(());
        }
        let interval = detail_interval(clusters);
        let since = self
            .status_written
            .lock()
            .get(key)
            .map(|t| t.elapsed())
            .filter(|s| *s < interval);
        let due = match since {
            Some(since) => Err(interval - since),
            None => self.details.take(key, clusters, Instant::now()),
        };
        if due.is_err() {
            // The roll-up is all that is due then, unless something else asks for more.
            self.status_only.mark(key.to_string(), []);
        }
        due
    }

    /// Records a write of the placement's status.
    fn written(&self, key: &str) {
        let now = Instant::now();
        let mut written = self.status_written.lock();
        if written.len() > 4096 {
            written.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        }
        written.insert(key.to_string(), now);
    }
}

/// Writes the placement's status when it changed, or puts it off ([`Ctx::write_due`]).
async fn write_placement_status(
    ctx: &Ctx,
    placement: &DynamicObject,
    key: &str,
    clusters: usize,
    status: Value,
) -> Result<Written, Error> {
    let old = &placement.data["status"];
    if !compact::same_status(old, &status) {
        let same_conditions = conditions::without_messages(&old["conditions"])
            == conditions::without_messages(&status["conditions"]);
        if let Err(wait) = ctx.write_due(key, same_conditions, clusters) {
            return Ok(Written {
                after: wait,
                deferred: true,
            });
        }
        let name = placement.name_any();
        let namespace = placement.namespace();
        write_status(&ctx.client, ctx.scope, &name, namespace.as_deref(), status).await?;
        ctx.written(key);
    }
    Ok(Written {
        after: Duration::from_secs(300),
        deferred: false,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::placement::cluster_condition as cc;

    /// The task follows its stream (which keeps a cache) whether or not the controller takes
    /// what it hands on, and hands on each object as its name, namespace and labels.
    #[tokio::test]
    async fn a_decoupled_stream_is_followed_while_nobody_takes_from_it() {
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = seen.clone();
        let objects = (0..1000).map(|i| {
            Ok(DynamicObject {
                types: None,
                metadata: kube::core::ObjectMeta {
                    name: Some(format!("b{i}")),
                    namespace: Some("team".into()),
                    labels: Some([(label::PARENT_CRP.to_string(), "web".to_string())].into()),
                    resource_version: Some(i.to_string()),
                    ..Default::default()
                },
                data: json!({"spec": {"targetCluster": "m"}, "status": {"big": "x".repeat(100)}}),
            })
        });
        let stream: Watched = futures::stream::iter(objects)
            .inspect(move |_| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .boxed();
        let (handed, task) = decoupled(stream);
        // Only the task runs: the stream is followed to its end.
        task.await;
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1000);
        let handed: Vec<DynamicObject> = handed.map(Result::unwrap).collect().await;
        assert_eq!(handed.len(), 1000);
        assert_eq!(handed[7].metadata.name.as_deref(), Some("b7"));
        assert_eq!(handed[7].metadata.namespace.as_deref(), Some("team"));
        assert_eq!(handed[7].labels()[label::PARENT_CRP], "web");
        assert!(handed[7].data.is_null(), "no spec or status is held");
    }

    /// Judging member changes pauses nine times as long as a batch took: a tenth of the time.
    #[test]
    fn judging_member_changes_takes_a_tenth_of_the_time() {
        let took = Duration::from_millis(20);
        let pause = member_pause(took);
        assert_eq!(pause, Duration::from_millis(180));
        assert_eq!(took * MEMBER_DUTY, took + pause);
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
