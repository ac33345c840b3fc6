//! The planner (pure): from a placement and what the caches hold (its snapshots, the fleet,
//! its bindings and Works, the overrides that apply), the writes that make the world match
//! the placement, with every decision as a value. [`super::execute`] carries them out; the
//! status roll-up ([`super::status`]) then runs on what the writes returned.
//!
//! Snapshot names follow from their index, so the planner names a snapshot before it exists;
//! a cache that lags behind a write makes the executor's create answer 409 AlreadyExists, and
//! the pass is retried.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine;
use flotilla_api::manifests::{content_hash, sanitize};
use flotilla_api::member::namespace_of;
use flotilla_api::placement::{annotation, label, PLACEMENT_GROUP};
use flotilla_scheduler::{Cluster, Policy};
use kube::api::DynamicObject;
use kube::core::ApiResource;
use kube::ResourceExt;
use serde_json::{json, Value};

use super::failover;
use super::rollout::{self, Available, BindingState, RollingUpdate};
use super::status::{replacing, Rollout, Scheduled, Summary};
use super::{
    cro_resource, cro_snapshot_resource, ro_resource, ro_snapshot_resource, work_name, Scope,
};
use flotilla_api::overrides::{self, Overridden, Override};
use flotilla_api::placement::reason::PlacementReason;
use flotilla_api::work::{identifier, work_resource, work_spec, ApplyStrategy, DeleteStrategy};
use std::time::Duration;

/// The most a placement may select, in bytes of JSON: its resource snapshot is one object, and
/// etcd takes at most 1.5 MiB per request.
pub const MAX_SELECTED_BYTES: usize = 1024 * 1024;

/// What the planner reads: the placement and, from the caches, everything of it.
pub struct Observed<'a> {
    /// ClusterResourcePlacements or ResourcePlacements.
    pub scope: Scope,
    /// The placement.
    pub placement: &'a DynamicObject,
    /// The selected resources ([`super::select`]) or why the selectors are invalid.
    pub selection: Result<Vec<Value>, String>,
    /// The placement's resource snapshots.
    pub resource_snapshots: Vec<Arc<DynamicObject>>,
    /// The placement's scheduling policy snapshots.
    pub policy_snapshots: Vec<Arc<DynamicObject>>,
    /// The overrides that apply to the placement ([`override_applies`]) with their snapshots.
    pub overrides: Vec<OverrideSeries>,
    /// The fleet as the scheduler sees it, by name.
    pub clusters: &'a [Cluster],
    /// The placement's bindings.
    pub bindings: Vec<Arc<DynamicObject>>,
    /// The placement's Works (in the members' namespaces).
    pub works: Vec<Arc<DynamicObject>>,
    /// With the External strategy: the resource snapshot index the last staged update run
    /// that succeeded released (what newly picked clusters get).
    pub completed_index: Option<String>,
    /// The time conditions that change are stamped with.
    pub now: &'a str,
}

/// An override and its snapshots.
pub struct OverrideSeries {
    /// The ClusterResourceOverride or ResourceOverride.
    pub object: Arc<DynamicObject>,
    /// Whether it is a ClusterResourceOverride.
    pub cluster_scoped: bool,
    /// Its snapshots.
    pub snapshots: Vec<Arc<DynamicObject>>,
}

/// What a pass decides.
pub enum Decision {
    /// The placement places nothing: its Scheduled condition says why; nothing else changes.
    Refused {
        /// The condition's reason.
        reason: &'static str,
        /// The condition's message.
        message: String,
    },
    /// The writes that make the world match the placement.
    Place(Box<Plan>),
}

/// The writes of one pass, in the order the executor makes them.
#[derive(Debug)]
pub struct Plan {
    /// The placement's name.
    pub placement_name: String,
    /// The placement's namespace (a ResourcePlacement's): where its snapshots and bindings
    /// live.
    pub namespace: Option<String>,
    /// New snapshots (resource, policy, override) and the series' upkeep.
    pub snapshots: Vec<SeriesWrite>,
    /// The scheduling policy snapshot's annotation and status.
    pub policy_snapshot: PolicySnapshotWrite,
    /// Bindings of clusters no longer picked that go now (by name).
    pub delete_bindings: Vec<String>,
    /// Bindings of clusters no longer picked that the rollout holds back: marked Unscheduled,
    /// their clusters keep their resources for now.
    pub unschedule_bindings: Vec<String>,
    /// Works of clusters no longer picked (namespace, name): a ResourcePlacement's, which no
    /// binding owns.
    pub delete_works: Vec<(String, String)>,
    /// Each picked cluster's binding and Work.
    pub clusters: Vec<ClusterPlan>,
    /// What the placement's status says besides its clusters.
    pub summary: Summary,
    /// Clusters the rollout holds back (their bindings wait for others to become ready).
    pub waiting: Vec<String>,
    /// When to look again although nothing changed (an untrackable cluster becomes ready, a
    /// member's failover grace period ends).
    pub requeue: Option<Duration>,
    /// A merge patch of the placement's metadata (the failover record), if it changed.
    pub placement_metadata: Option<Value>,
    /// Shares moved by failover or fail-back in this pass.
    pub moves: Vec<Move>,
}

/// A share of a PickN placement moved off an unhealthy cluster, or back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The cluster it leaves.
    pub from: String,
    /// The cluster it goes to (none when no other cluster is eligible).
    pub to: Option<String>,
    /// Fail-back (true) or failover.
    pub back: bool,
}

/// A new snapshot in a series: the previous latest ones are marked so no more, the oldest
/// beyond the history limit go.
#[derive(Debug)]
pub struct SeriesWrite {
    /// The snapshot type.
    pub resource: ApiResource,
    /// Where the series lives.
    pub namespace: Option<String>,
    /// Snapshots whose is-latest label goes to "false".
    pub unlatest: Vec<String>,
    /// The new snapshot.
    pub create: Value,
    /// Snapshots beyond the history limit, oldest first.
    pub delete: Vec<String>,
}

/// The latest scheduling policy snapshot's writes.
#[derive(Debug)]
pub struct PolicySnapshotWrite {
    /// Its name.
    pub name: String,
    /// A merge patch of its metadata (numberOfClusters changed: an annotation).
    pub metadata: Option<Value>,
    /// A merge patch of its status (the scheduler's decisions).
    pub status: Option<Value>,
}

/// A write of one object.
#[derive(Debug)]
pub enum Write {
    /// As it is.
    Keep(Arc<DynamicObject>),
    /// A merge patch.
    Patch(Value),
    /// A new object.
    Create(Value),
}

/// A write of a Work.
#[derive(Debug)]
pub enum WorkWrite {
    /// As it is.
    Keep(Arc<DynamicObject>),
    /// An override cannot be applied: the cluster keeps what it has (if anything).
    Hold(Option<Arc<DynamicObject>>),
    /// A merge patch.
    Patch(Value),
    /// A new Work; a ClusterResourceBinding owns it (its reference is added once the binding's
    /// uid is known).
    Create {
        /// The Work.
        object: Value,
        /// Whether the binding owns it.
        owned_by_binding: bool,
    },
}

/// One picked cluster: its binding and its Work.
#[derive(Debug)]
pub struct ClusterPlan {
    /// The cluster.
    pub cluster: String,
    /// The binding's name.
    pub binding_name: String,
    /// The binding's spec as it should be.
    pub binding_spec: Value,
    /// How the binding gets there.
    pub binding: Write,
    /// The Work's namespace (the member's).
    pub work_namespace: String,
    /// The Work's name.
    pub work_name: String,
    /// The Work's spec as it should be (`None` while an override fails).
    pub work_spec: Option<WorkSpec>,
    /// How the Work gets there.
    pub work: WorkWrite,
    /// The cluster's manifests after its overrides, or why they could not be applied.
    pub overridden: Result<Arc<Overridden>, String>,
    /// Whether the binding names the latest resources or is held back.
    pub rollout: Rollout,
    /// Why the cluster is reported unavailable whatever its Work says (its member has been
    /// unhealthy past the failover grace period).
    pub unreachable: Option<String>,
}

/// Whether an override applies to the placement `name` (of `scope`, in `namespace`): a
/// ClusterResourceOverride only to ClusterResourcePlacements; a ResourceOverride that names
/// a placement to that one (a ResourcePlacement of its namespace with `scope: Namespaced`),
/// one that names none to every placement (ResourcePlacements: of its namespace).
pub fn override_applies(
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

/// A snapshot series: its type, where it lives, its parent (label and owner), the label and
/// annotation that index it, how many it keeps.
struct Series<'a> {
    resource: ApiResource,
    namespace: Option<&'a str>,
    parent_label: &'a str,
    parent: &'a DynamicObject,
    parent_resource: ApiResource,
    index_label: &'a str,
    hash_annotation: &'a str,
    keep: usize,
    /// Snapshots bindings still name: kept beyond the limit until no binding does.
    in_use: &'a BTreeSet<String>,
}

/// The latest snapshot of a series (possibly one the pass creates).
struct Latest {
    name: String,
    index: i64,
    spec: Value,
    annotations: BTreeMap<String, String>,
    /// The snapshot as the cache holds it (`None`: created by this pass).
    existing: Option<Arc<DynamicObject>>,
}

/// Index of a snapshot (its index label).
fn index_of(o: &DynamicObject, key: &str) -> i64 {
    o.labels()
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

fn owner_ref(obj: &DynamicObject, ar: &ApiResource) -> Value {
    json!({"apiVersion": ar.api_version, "kind": ar.kind, "name": obj.name_any(),
        "uid": obj.metadata.uid.clone().unwrap_or_default(), "blockOwnerDeletion": true, "controller": true})
}

fn short_hash(s: &str) -> String {
    content_hash(&[json!(s)])[..8].to_string()
}

fn base64_of(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Keeps a snapshot series: the latest snapshot, and the writes that make a new one (named
/// `name_of(index)`) when `hash` differs from the latest's.
fn keep_series(
    series: &Series<'_>,
    existing: &[Arc<DynamicObject>],
    hash: &str,
    name_of: impl Fn(i64) -> String,
    spec: Value,
    extra_annotations: Value,
) -> (Latest, Option<SeriesWrite>) {
    let mut all: Vec<&Arc<DynamicObject>> = existing.iter().collect();
    all.sort_by_key(|o| index_of(o, series.index_label));
    if let Some(latest) = all.last().filter(|l| {
        l.annotations()
            .get(series.hash_annotation)
            .is_some_and(|h| h == hash)
    }) {
        let latest = Latest {
            name: latest.name_any(),
            index: index_of(latest, series.index_label),
            spec: latest.data["spec"].clone(),
            annotations: latest.annotations().clone(),
            existing: Some((*latest).clone()),
        };
        return (latest, None);
    }
    let index = all
        .last()
        .map_or(0, |l| index_of(l, series.index_label) + 1);
    let unlatest = all
        .iter()
        .filter(|o| {
            o.labels()
                .get(label::IS_LATEST_SNAPSHOT)
                .is_some_and(|v| v == "true")
        })
        .map(|o| o.name_any())
        .collect();
    let mut annotations = BTreeMap::from([
        (series.hash_annotation.to_string(), hash.to_string()),
        (
            annotation::CRP_GENERATION.to_string(),
            series.parent.metadata.generation.unwrap_or(0).to_string(),
        ),
    ]);
    for (k, v) in extra_annotations.as_object().into_iter().flatten() {
        annotations.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
    }
    let name = name_of(index);
    let mut obj = json!({
        "apiVersion": series.resource.api_version, "kind": series.resource.kind,
        "metadata": {"name": name,
            "labels": {series.parent_label: series.parent.name_any(),
                series.index_label: index.to_string(), label::IS_LATEST_SNAPSHOT: "true"},
            "annotations": annotations,
            "ownerReferences": [owner_ref(series.parent, &series.parent_resource)]},
        "spec": spec
    });
    if let Some(ns) = series.namespace {
        obj["metadata"]["namespace"] = json!(ns);
    }
    // History beyond the limit goes, oldest first (the new one counts), but not what a
    // binding held back by the rollout still names.
    let excess = (all.len() + 1).saturating_sub(series.keep);
    let write = SeriesWrite {
        resource: series.resource.clone(),
        namespace: series.namespace.map(String::from),
        unlatest,
        create: obj,
        delete: all
            .iter()
            .take(excess)
            .map(|o| o.name_any())
            .filter(|n| !series.in_use.contains(n))
            .collect(),
    };
    let latest = Latest {
        name,
        index,
        spec,
        annotations,
        existing: None,
    };
    (latest, Some(write))
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

/// What a resource snapshot places: its selected resources, envelopes unwrapped.
fn manifests_of_snapshot(snapshot: &DynamicObject) -> Vec<Value> {
    snapshot.data["spec"]["selectedResources"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(unwrap_envelope)
        .map(|(m, _)| m)
        .collect()
}

/// The index of the placement's resource snapshot `name` and the snapshot, if the caches hold
/// it.
fn snapshot_named<'a>(o: &'a Observed<'_>, name: &str) -> Option<(String, &'a DynamicObject)> {
    let snapshot = o.resource_snapshots.iter().find(|s| s.name_any() == name)?;
    let index = snapshot.labels().get(label::RESOURCE_INDEX)?.clone();
    Some((index, snapshot))
}

/// What a plan makes once and shares among its clusters rather than once per cluster: the
/// manifests of a resource snapshot no override applies to (every cluster gets the same), and
/// the Work spec (with its digest) of manifests that clusters share. On a placement of 100
/// clusters the copies and digests made per cluster were a fifth of the hub's CPU in the
/// headline run (docs/BENCHMARKS.md, fleet scale).
#[derive(Default)]
struct Shared {
    /// By resource snapshot name.
    plain: HashMap<String, Arc<Overridden>>,
    /// By the manifests' address (the entry keeps them, so the address is not reused) and
    /// apply strategy.
    work_specs: HashMap<usize, Vec<(Arc<Overridden>, Value, WorkSpec)>>,
}

impl Shared {
    /// The resource snapshot `name` (whose manifests `manifests` makes, or lends) after
    /// `cluster`'s overrides: shared when there are none.
    fn overridden<'m>(
        &mut self,
        name: &str,
        manifests: impl FnOnce() -> Cow<'m, [Value]>,
        cluster: &str,
        labels: &BTreeMap<String, String>,
        cluster_overrides: &[Override],
        resource_overrides: &[Override],
    ) -> Result<Arc<Overridden>, String> {
        if cluster_overrides.is_empty() && resource_overrides.is_empty() {
            // What `overrides::apply` returns when there are none: the manifests as they are.
            let plain = self.plain.entry(name.to_string()).or_insert_with(|| {
                Arc::new(Overridden {
                    manifests: manifests().into_owned(),
                    ..Overridden::default()
                })
            });
            return Ok(plain.clone());
        }
        overrides::apply(
            &manifests(),
            cluster,
            labels,
            cluster_overrides,
            resource_overrides,
        )
        .map(Arc::new)
    }

    /// The Work spec of `overridden` with `apply_strategy`.
    fn work_spec(&mut self, overridden: &Arc<Overridden>, apply_strategy: &Value) -> WorkSpec {
        let entries = self
            .work_specs
            .entry(Arc::as_ptr(overridden) as usize)
            .or_default();
        if let Some((_, _, spec)) = entries.iter().find(|(_, s, _)| s == apply_strategy) {
            return spec.clone();
        }
        let spec = work_spec(&overridden.manifests, apply_strategy);
        let made = WorkSpec {
            digest: super::compact::digest(&spec),
            spec: Arc::new(spec),
        };
        entries.push((overridden.clone(), apply_strategy.clone(), made.clone()));
        made
    }
}

/// A Work's spec as it should be, shared among the clusters whose Works carry the same, and
/// its digest ([`super::compact::digest`]).
#[derive(Debug, Clone)]
pub struct WorkSpec {
    /// `{"workload": {"manifests": [...]}, "applyStrategy": {...}}`.
    pub spec: Arc<Value>,
    /// Its digest, as the Work cache keeps it ([`super::compact::has_spec`]).
    pub digest: u64,
}

/// The resources a binding names (a resource snapshot and the override snapshots applied)
/// and what they make for its cluster.
#[derive(Debug, Clone)]
struct Content {
    snapshot: String,
    /// The snapshot's index (the Work's label).
    index: String,
    /// `clusterResourceOverrideSnapshots`.
    cluster_overrides: Value,
    /// `resourceOverrideSnapshots`.
    resource_overrides: Value,
    /// The manifests after the overrides, or why an override cannot be applied.
    overridden: Result<Arc<Overridden>, String>,
}

impl Content {
    /// The latest snapshot after the cluster's overrides.
    fn latest(snapshot: &str, index: &str, overridden: Result<Arc<Overridden>, String>) -> Self {
        let (cluster_overrides, resource_overrides) = match &overridden {
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
        Content {
            snapshot: snapshot.to_string(),
            index: index.to_string(),
            cluster_overrides,
            resource_overrides,
            overridden,
        }
    }

    /// What a bound binding's `spec` names, rebuilt from the snapshots in the caches; `None`
    /// when one of them is gone.
    fn of_binding(
        spec: &Value,
        o: &Observed<'_>,
        shared: &mut Shared,
        cluster: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<Self> {
        let name = spec["resourceSnapshotName"].as_str()?;
        let (index, snapshot) = snapshot_named(o, name)?;
        let list = |f: &str| spec[f].as_array().cloned().unwrap_or_default();
        let (cro_names, ro_names) = (
            list("clusterResourceOverrideSnapshots"),
            list("resourceOverrideSnapshots"),
        );
        let (mut cros, mut ros) = (Vec::new(), Vec::new());
        for series in &o.overrides {
            for s in &series.snapshots {
                let entry = || Override {
                    name: s.name_any(),
                    namespace: s.namespace(),
                    spec: s.data["spec"]["overrideSpec"].clone(),
                };
                if series.cluster_scoped && cro_names.contains(&json!(s.name_any())) {
                    cros.push(entry());
                } else if !series.cluster_scoped
                    && ro_names.contains(
                        &json!({"namespace": s.namespace().unwrap_or_default(), "name": s.name_any()}),
                    )
                {
                    ros.push(entry());
                }
            }
        }
        if cros.len() != cro_names.len() || ros.len() != ro_names.len() {
            return None;
        }
        Some(Content {
            snapshot: name.to_string(),
            index,
            cluster_overrides: spec["clusterResourceOverrideSnapshots"].clone(),
            resource_overrides: spec["resourceOverrideSnapshots"].clone(),
            overridden: shared.overridden(
                name,
                || Cow::Owned(manifests_of_snapshot(snapshot)),
                cluster,
                labels,
                &cros,
                &ros,
            ),
        })
    }

    /// The snapshot `name` after the cluster's current overrides; `None` when it is gone.
    fn of_snapshot(
        name: &str,
        o: &Observed<'_>,
        shared: &mut Shared,
        cluster: &str,
        labels: &BTreeMap<String, String>,
        cluster_overrides: &[Override],
        resource_overrides: &[Override],
    ) -> Option<Self> {
        let (index, snapshot) = snapshot_named(o, name)?;
        let overridden = shared.overridden(
            name,
            || Cow::Owned(manifests_of_snapshot(snapshot)),
            cluster,
            labels,
            cluster_overrides,
            resource_overrides,
        );
        Some(Content::latest(name, &index, overridden))
    }

    /// Whether a binding's `spec` names these resources.
    fn bound_by(&self, spec: &Value) -> bool {
        spec["resourceSnapshotName"] == self.snapshot.as_str()
            && spec["clusterResourceOverrideSnapshots"] == self.cluster_overrides
            && spec["resourceOverrideSnapshots"] == self.resource_overrides
    }

    /// The binding's resource fields.
    fn spec(&self) -> Value {
        json!({"state": "Bound", "resourceSnapshotName": self.snapshot,
            "clusterResourceOverrideSnapshots": self.cluster_overrides,
            "resourceOverrideSnapshots": self.resource_overrides})
    }
}

/// Each cluster's override snapshots for the resource snapshot `snapshot` with the overrides
/// that apply now (their latest snapshots): what a staged update run releases to it, as
/// (`clusterResourceOverrideSnapshots`, `resourceOverrideSnapshots`).
pub fn overrides_for<'a>(
    snapshot: &DynamicObject,
    series: &[OverrideSeries],
    clusters: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
) -> BTreeMap<String, (Value, Value)> {
    let manifests = manifests_of_snapshot(snapshot);
    let (mut cros, mut ros) = (Vec::new(), Vec::new());
    for s in series {
        let latest = s
            .snapshots
            .iter()
            .max_by_key(|x| index_of(x, label::OVERRIDE_INDEX));
        if let Some(latest) = latest {
            let entry = Override {
                name: latest.name_any(),
                namespace: latest.namespace(),
                spec: latest.data["spec"]["overrideSpec"].clone(),
            };
            if s.cluster_scoped {
                cros.push(entry);
            } else {
                ros.push(entry);
            }
        }
    }
    clusters
        .into_iter()
        .map(|(c, labels)| {
            let overridden = overrides::apply(&manifests, c, labels, &cros, &ros).map(Arc::new);
            let content = Content::latest("", "", overridden);
            (
                c.to_string(),
                (content.cluster_overrides, content.resource_overrides),
            )
        })
        .collect()
}

/// Decides one pass of a placement.
pub fn plan(o: &Observed<'_>) -> Decision {
    let p = o.placement;
    let scope = o.scope;
    let name = p.name_any();
    let namespace = p.metadata.namespace.as_deref();
    let generation = p.metadata.generation.unwrap_or(0);
    let spec = &p.data["spec"];
    let keep = spec["revisionHistoryLimit"]
        .as_u64()
        .unwrap_or(10)
        .clamp(1, 1000) as usize;

    // 1-2. The selected resources and their snapshot.
    let selected = match &o.selection {
        Ok(s) => s,
        Err(why) => {
            return Decision::Refused {
                reason: PlacementReason::InvalidResourceSelectors.as_str(),
                message: why.clone(),
            }
        }
    };
    // One snapshot object holds the selection: beyond what a store takes in one object, the
    // placement says so (and its clusters keep what they have) rather than failing each pass.
    let size: usize = selected.iter().map(|v| v.to_string().len()).sum();
    if size > MAX_SELECTED_BYTES {
        return Decision::Refused {
            reason: PlacementReason::SelectedResourcesTooLarge.as_str(),
            message: format!(
                "the selected resources take {size} bytes; a resource snapshot holds at most {MAX_SELECTED_BYTES}: select fewer resources or split them across placements"
            ),
        };
    }
    let policy_value = &spec["policy"];
    let policy = match Policy::parse(policy_value) {
        Ok(p) => p,
        Err(why) => {
            return Decision::Refused {
                reason: PlacementReason::InvalidPolicy.as_str(),
                message: why,
            }
        }
    };
    let in_use: BTreeSet<String> = o
        .bindings
        .iter()
        .filter_map(|b| {
            b.data["spec"]["resourceSnapshotName"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let overrides_in_use: BTreeSet<String> = o
        .bindings
        .iter()
        .flat_map(|b| {
            let spec = &b.data["spec"];
            let cros = spec["clusterResourceOverrideSnapshots"].as_array();
            let ros = spec["resourceOverrideSnapshots"].as_array();
            cros.into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .chain(ros.into_iter().flatten().filter_map(|r| r["name"].as_str()))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let nothing = BTreeSet::new();
    let series = |resource: ApiResource, index_label, hash_annotation, in_use| Series {
        resource,
        namespace,
        parent_label: label::PARENT_CRP,
        parent: p,
        parent_resource: scope.placement(),
        index_label,
        hash_annotation,
        keep,
        in_use,
    };
    let mut snapshots = Vec::new();
    let (rs, write) = keep_series(
        &series(
            scope.resource_snapshot(),
            label::RESOURCE_INDEX,
            annotation::RESOURCE_HASH,
            &in_use,
        ),
        &o.resource_snapshots,
        &content_hash(selected),
        |i| format!("{name}-{i}-snapshot"),
        json!({"selectedResources": selected}),
        json!({annotation::NUMBER_OF_RESOURCE_SNAPSHOTS: "1"}),
    );
    snapshots.extend(write);
    let resource_index = rs.index.to_string();
    // Envelopes are unwrapped: their objects are what the members get.
    let (manifests, envelopes): (Vec<Value>, Vec<Option<Value>>) = rs.spec["selectedResources"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(unwrap_envelope)
        .unzip();

    // The policy's snapshot.
    let policy_hash = content_hash(&[policy_identity(policy_value)]);
    let number_of_clusters = match policy.placement_type {
        flotilla_scheduler::PlacementType::PickN => Some(policy.number_of_clusters.to_string()),
        _ => None,
    };
    let n_annotation = match &number_of_clusters {
        Some(n) => json!({annotation::NUMBER_OF_CLUSTERS: n}),
        None => json!({}),
    };
    let (ps, write) = keep_series(
        &series(
            scope.policy_snapshot(),
            label::POLICY_INDEX,
            annotation::POLICY_HASH,
            &nothing,
        ),
        &o.policy_snapshots,
        &policy_hash,
        |i| format!("{name}-{i}"),
        if policy_value.is_null() {
            json!({"policyHash": base64_of(&policy_hash)})
        } else {
            json!({"policy": policy_value, "policyHash": base64_of(&policy_hash)})
        },
        n_annotation,
    );
    snapshots.extend(write);
    let metadata = number_of_clusters
        .filter(|n| ps.annotations.get(annotation::NUMBER_OF_CLUSTERS) != Some(n))
        .map(|n| json!({"metadata": {"annotations": {annotation::NUMBER_OF_CLUSTERS: n}}}));

    // 3. Schedule: the scheduler keeps what is bound or scheduled (not what waits to go),
    // less what fails over ([`failover`]).
    let now = chrono::DateTime::parse_from_rfc3339(o.now)
        .map_or(chrono::Utc::now(), |t| t.with_timezone(&chrono::Utc));
    let before: BTreeSet<String> = o
        .bindings
        .iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .filter(|b| b.data["spec"]["state"] != "Unscheduled")
        .filter_map(|b| b.data["spec"]["targetCluster"].as_str().map(String::from))
        .collect();
    let pick_n = policy.placement_type == flotilla_scheduler::PlacementType::PickN;
    let failover_settings = failover::Settings::of(p);
    let record = failover::record_of(p);
    let adjusted = if pick_n {
        failover::adjust(&before, o.clusters, &record, failover_settings, now)
    } else {
        failover::Adjusted {
            placed: before.clone(),
            ..Default::default()
        }
    };
    let placed = &adjusted.placed;
    let same_policy = !o.bindings.is_empty()
        && o.bindings
            .iter()
            .all(|b| b.data["spec"]["schedulingPolicySnapshotName"] == ps.name.as_str());
    let decision = flotilla_scheduler::schedule(&flotilla_scheduler::Request {
        policy: &policy,
        clusters: o.clusters,
        placed,
        same_policy,
    });
    let selected_names: BTreeSet<String> = decision
        .selected
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    let new_record = if pick_n {
        failover::update_record(&record, &adjusted, &before, &selected_names)
    } else {
        record.clone()
    };
    let mut moves: Vec<Move> = adjusted
        .failing
        .iter()
        .filter(|c| !record.contains_key(*c))
        .map(|c| Move {
            from: c.clone(),
            to: new_record.get(c).cloned(),
            back: false,
        })
        .collect();
    moves.extend(adjusted.returning.iter().map(|(from, to)| Move {
        from: to.clone(),
        to: Some(from.clone()),
        back: true,
    }));
    let placement_metadata = (new_record != record).then(|| {
        let value = if new_record.is_empty() {
            Value::Null
        } else {
            json!(serde_json::to_string(&new_record).unwrap_or_default())
        };
        json!({"metadata": {"annotations": {failover::FAILED_OVER: value}}})
    });
    // Members unhealthy past the grace period: reported unavailable wherever they are placed.
    let grace = failover_settings.after.unwrap_or(failover::DEFAULT_AFTER);
    let unreachable: BTreeMap<&str, String> = o
        .clusters
        .iter()
        .filter(|c| failover::unhealthy_for(c, grace, now).is_some_and(|l| l.is_zero()))
        .map(|c| {
            (
                c.name.as_str(),
                format!(
                    "the member cluster has been unhealthy since {}: what it runs is unknown",
                    c.unhealthy_since.as_deref().unwrap_or("?")
                ),
            )
        })
        .collect();
    let decisions: Vec<Value> = decision
        .selected
        .iter()
        .map(|s| {
            json!({"clusterName": s.name, "selected": true,
            "clusterScore": {"affinityScore": s.score.affinity, "priorityScore": s.score.topology},
            "reason": s.reason.to_string()})
        })
        // As KubeFleet's scheduler: every picked cluster, then clusters not picked and why in
        // the room left under 20 (the status holds at most 1,000 decisions).
        .chain(decision.rejected.iter().take(MAX_UNSELECTED_DECISIONS.saturating_sub(decision.selected.len())).map(
            |r| json!({"clusterName": r.name, "selected": false, "reason": r.reason.to_string()}),
        ))
        .collect();
    let scheduled = if decision.fulfilled {
        Scheduled {
            status: "True",
            reason: PlacementReason::SchedulingPolicyFulfilled.as_str(),
            message: decision.message.clone(),
        }
    } else {
        Scheduled {
            status: "False",
            reason: PlacementReason::SchedulingPolicyUnfulfilled.as_str(),
            message: decision.message.clone(),
        }
    };
    let ps_status = ps
        .existing
        .as_ref()
        .map_or(&Value::Null, |e| &e.data["status"]);
    let mut ps_conds = ps_status["conditions"].clone();
    // A snapshot created now starts at generation 1.
    let ps_generation = ps
        .existing
        .as_ref()
        .map_or(Some(1), |e| e.metadata.generation);
    flotilla_api::conditions::set_status(
        &mut ps_conds,
        "Scheduled",
        scheduled.status,
        scheduled.reason,
        &scheduled.message,
        ps_generation,
        o.now,
    );
    let status_patch = json!({"status": {"observedCRPGeneration": generation,
        "conditions": ps_conds, "clusterDecisions": decisions,
        "targetClusters": decision.names()}});
    let status = (ps_status["clusterDecisions"] != status_patch["status"]["clusterDecisions"]
        || ps_status["conditions"] != status_patch["status"]["conditions"]
        || ps_status["observedCRPGeneration"] != json!(generation))
    .then_some(status_patch);
    let policy_snapshot = PolicySnapshotWrite {
        name: ps.name.clone(),
        metadata,
        status,
    };

    // Overrides that apply to this placement, as snapshots.
    let (mut cluster_overrides, mut resource_overrides) = (Vec::new(), Vec::new());
    for s in &o.overrides {
        let ov = &s.object;
        let ov_spec = ov.data["spec"].clone();
        let hash = content_hash(std::slice::from_ref(&ov_spec));
        let ns = ov.namespace();
        let (snapshot_resource, parent_label, parent_resource) = if s.cluster_scoped {
            (
                cro_snapshot_resource(),
                label::PARENT_CLUSTER_RESOURCE_OVERRIDE,
                cro_resource(),
            )
        } else {
            (
                ro_snapshot_resource(),
                label::PARENT_RESOURCE_OVERRIDE,
                ro_resource(),
            )
        };
        let ov_name = ov.name_any();
        let (latest, write) = keep_series(
            &Series {
                resource: snapshot_resource,
                namespace: ns.as_deref(),
                parent_label,
                parent: ov,
                parent_resource,
                index_label: label::OVERRIDE_INDEX,
                hash_annotation: annotation::OVERRIDE_HASH,
                keep: 10,
                in_use: &overrides_in_use,
            },
            &s.snapshots,
            &hash,
            |i| format!("{ov_name}-{i}"),
            json!({"overrideSpec": ov_spec, "overrideHash": base64_of(&hash)}),
            json!({}),
        );
        snapshots.extend(write);
        let entry = Override {
            name: latest.name,
            namespace: ns,
            spec: latest.spec["overrideSpec"].clone(),
        };
        if s.cluster_scoped {
            cluster_overrides.push(entry);
        } else {
            resource_overrides.push(entry);
        }
    }
    let cluster_labels: BTreeMap<&str, &BTreeMap<String, String>> = o
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), &c.labels))
        .collect();

    // 4. The rollout: which bindings move to the latest resources now ([`rollout`]).
    let apply_strategy = ApplyStrategy::of_placement(spec);
    let wanted: BTreeMap<&str, &flotilla_scheduler::Selected> =
        decision.selected.iter().map(|s| (s.name, s)).collect();
    let live: BTreeMap<&str, &Arc<DynamicObject>> = o
        .bindings
        .iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .filter_map(|b| Some((b.data["spec"]["targetCluster"].as_str()?, b)))
        .collect();
    let no_labels = BTreeMap::new();
    let labels_of = |c: &str| cluster_labels.get(c).copied().unwrap_or(&no_labels);
    // Each picked cluster's latest resources after its overrides.
    let mut shared = Shared::default();
    let fresh: BTreeMap<&str, Content> = wanted
        .keys()
        .map(|c| {
            let overridden = shared.overridden(
                &rs.name,
                || Cow::Borrowed(&manifests),
                c,
                labels_of(c),
                &cluster_overrides,
                &resource_overrides,
            );
            (*c, Content::latest(&rs.name, &resource_index, overridden))
        })
        .collect();
    let mut candidates = Vec::with_capacity(live.len() + wanted.len());
    for b in &o.bindings {
        let Some(cluster) = b.data["spec"]["targetCluster"].as_str() else {
            continue;
        };
        let deleting = b.metadata.deletion_timestamp.is_some();
        let bound = b.data["spec"]["resourceSnapshotName"].is_string();
        let state = match (deleting, wanted.contains_key(cluster)) {
            (false, false) => BindingState::Unscheduled,
            _ => match b.data["spec"]["state"].as_str() {
                Some("Scheduled") => BindingState::Scheduled,
                Some("Unscheduled") if deleting => BindingState::Unscheduled,
                // Picked again before it went: it has what it had.
                _ if bound => BindingState::Bound,
                _ => BindingState::Scheduled,
            },
        };
        let up_to_date = fresh
            .get(cluster)
            .is_some_and(|f| f.bound_by(&b.data["spec"]));
        let (failed, available) = rollout::observe(&b.data["status"], b.metadata.generation);
        candidates.push(rollout::Binding {
            cluster,
            state,
            deleting,
            up_to_date,
            failed,
            available,
        });
    }
    for cluster in wanted.keys().filter(|c| !live.contains_key(*c)) {
        candidates.push(rollout::Binding {
            cluster,
            state: BindingState::Scheduled,
            deleting: false,
            up_to_date: false,
            failed: false,
            available: Available::No,
        });
    }
    candidates.sort_by(|a, b| a.cluster.cmp(b.cluster).then(b.deleting.cmp(&a.deleting)));
    // With the External strategy staged update runs move the bindings: the placement binds no
    // one and deletes nothing itself.
    let external = spec["strategy"]["type"] == "External";
    let rolling = if external {
        rollout::Decision::default()
    } else {
        rollout::decide(
            &candidates,
            rollout::target_count(spec, wanted.len()),
            &RollingUpdate::of_placement(spec),
            now,
        )
    };
    let moving: BTreeSet<&str> = rolling.change.iter().copied().collect();
    let held: BTreeSet<&str> = rolling.waiting.iter().copied().collect();

    // Bindings of clusters no longer picked go within the budget; the others wait, marked
    // Unscheduled, and keep their resources.
    let (mut delete_bindings, mut unschedule_bindings) = (Vec::new(), Vec::new());
    for (cluster, b) in live.iter().filter(|(c, _)| !wanted.contains_key(*c)) {
        if moving.contains(cluster) {
            delete_bindings.push(b.name_any());
        } else if b.data["spec"]["state"] != "Unscheduled" {
            unschedule_bindings.push(b.name_any());
        }
    }
    // A ResourcePlacement's Works are not owned by their bindings (another namespace): those
    // of clusters no longer picked are deleted with their binding, also when the binding went
    // before (a restart between the two deletions leaves nothing behind).
    let work_name = work_name(&name, namespace);
    let mut delete_works = Vec::new();
    if scope == Scope::Namespaced {
        let keep: BTreeSet<String> = live
            .keys()
            .filter(|c| wanted.contains_key(*c) || !moving.contains(*c))
            .chain(wanted.keys())
            .map(|c| namespace_of(c))
            .collect();
        delete_works = o
            .works
            .iter()
            .filter(|w| {
                w.metadata.deletion_timestamp.is_none()
                    && !w.namespace().is_some_and(|ns| keep.contains(&ns))
            })
            .map(|w| (w.namespace().unwrap_or_default(), w.name_any()))
            .collect();
    }
    let delete_strategy = DeleteStrategy::of_placement(spec).as_str();

    // Each picked cluster's binding and Work (looked up by name: a placement on a thousand
    // clusters has a thousand of each).
    let bindings_by_name: HashMap<&str, &Arc<DynamicObject>> = o
        .bindings
        .iter()
        .filter_map(|b| Some((b.metadata.name.as_deref()?, b)))
        .collect();
    let works_by_namespace: HashMap<&str, &Arc<DynamicObject>> = o
        .works
        .iter()
        .filter(|w| w.metadata.name.as_deref() == Some(work_name.as_str()))
        .filter_map(|w| Some((w.metadata.namespace.as_deref()?, w)))
        .collect();
    let mut clusters = Vec::with_capacity(wanted.len());
    for (cluster, s) in &wanted {
        let binding_name = format!(
            "{name}-{cluster}-{}",
            short_hash(&format!("{name}/{cluster}"))
        );
        let existing = bindings_by_name.get(binding_name.as_str()).copied();
        let current = works_by_namespace
            .get(namespace_of(cluster).as_str())
            .copied();
        // What the binding names: the latest resources, or (held back) what it has; with
        // the External strategy what a run released, or for a cluster new to the placement
        // what the last successful run released.
        let had = existing.map_or(Value::Null, |b| b.data["spec"].clone());
        let bound = had["resourceSnapshotName"].is_string() && had["state"] != "Scheduled";
        let (mut bspec, content, rollout) = if external && bound {
            let content = Content::of_binding(&had, o, &mut shared, cluster, labels_of(cluster));
            (had.clone(), content, Rollout::Started)
        } else if external {
            let released = o.completed_index.as_ref().and_then(|i| {
                Content::of_snapshot(
                    &format!("{name}-{i}-snapshot"),
                    o,
                    &mut shared,
                    cluster,
                    labels_of(cluster),
                    &cluster_overrides,
                    &resource_overrides,
                )
            });
            match released {
                Some(c) => (c.spec(), Some(c), Rollout::Started),
                None => (json!({"state": "Scheduled"}), None, Rollout::Blocked),
            }
        } else if held.contains(cluster) {
            if bound {
                let content =
                    Content::of_binding(&had, o, &mut shared, cluster, labels_of(cluster));
                (had.clone(), content, Rollout::Blocked)
            } else {
                (json!({"state": "Scheduled"}), None, Rollout::Blocked)
            }
        } else {
            let f = &fresh[cluster];
            (f.spec(), Some(f.clone()), Rollout::Started)
        };
        if bspec["state"] != "Scheduled" {
            bspec["state"] = json!("Bound");
        }
        // The scheduler's decision and the apply strategy reach every binding at once.
        bspec["schedulingPolicySnapshotName"] = json!(ps.name);
        bspec["targetCluster"] = json!(cluster);
        bspec["clusterDecision"] = json!({"clusterName": cluster, "selected": true,
            "clusterScore": {"affinityScore": s.score.affinity, "priorityScore": s.score.topology},
            "reason": s.reason.to_string()});
        // A run fixes the apply strategy of what it released.
        if !(external && bound && had["applyStrategy"].is_object()) {
            bspec["applyStrategy"] = apply_strategy.clone();
        }
        // The decision stays as made when the cluster was picked under this policy snapshot
        // (later passes of the same decision would only say "kept").
        if let Some(b) = existing.filter(|b| {
            b.data["spec"]["schedulingPolicySnapshotName"] == ps.name.as_str()
                && b.data["spec"]["clusterDecision"].is_object()
        }) {
            bspec["clusterDecision"] = b.data["spec"]["clusterDecision"].clone();
        }
        let binding = match existing {
            Some(b) if b.data["spec"] == bspec => Write::Keep(b.clone()),
            // Replaced, not merged: a binding held back as Scheduled names no resources.
            // Replaced as read: a write in between (a staged update run's release) makes it a
            // conflict and the pass is retried on what that write left.
            Some(b) => Write::Patch(json!({
                "metadata": {"resourceVersion": b.metadata.resource_version},
                "spec": replacing(&b.data["spec"], &bspec)})),
            None => {
                let ar = scope.binding();
                let mut obj = json!({"apiVersion": ar.api_version, "kind": ar.kind,
                    "metadata": {"name": binding_name, "labels": {label::PARENT_CRP: name},
                        "annotations": {annotation::CRP_GENERATION: generation.to_string()},
                        "ownerReferences": [owner_ref(p, &scope.placement())]},
                    "spec": bspec});
                if let Some(ns) = namespace {
                    obj["metadata"]["namespace"] = json!(ns);
                }
                Write::Create(obj)
            }
        };
        // 5. The Work: what the binding names.
        let work_namespace = namespace_of(cluster);
        let (work_spec, work, overridden) = match content {
            // Nothing bound yet, or what the binding names is gone from the history: the
            // cluster keeps what it has.
            None => (None, WorkWrite::Hold(current.cloned()), Ok(Arc::default())),
            // An override failed: the cluster keeps what it has until it is fixed.
            Some(Content {
                overridden: Err(e), ..
            }) => (None, WorkWrite::Hold(current.cloned()), Err(e)),
            Some(Content {
                overridden: Ok(ov),
                index,
                ..
            }) => {
                let wspec = shared.work_spec(&ov, &bspec["applyStrategy"]);
                let mut work_labels = json!({label::PARENT_CRP: name,
                    label::PARENT_BINDING: binding_name,
                    label::PARENT_RESOURCE_SNAPSHOT_INDEX: index});
                if let Some(ns) = namespace {
                    work_labels[label::PARENT_NAMESPACE] = json!(ns);
                }
                let write = match current {
                    Some(w)
                        if super::compact::has_spec(w, wspec.digest)
                            && w.labels().get(label::PARENT_RESOURCE_SNAPSHOT_INDEX)
                                == Some(&index)
                            && w.annotations()
                                .get(annotation::DELETE_STRATEGY)
                                .map(String::as_str)
                                == Some(delete_strategy) =>
                    {
                        WorkWrite::Keep(w.clone())
                    }
                    Some(_) => WorkWrite::Patch(json!({"metadata": {"labels": work_labels,
                        "annotations": {annotation::DELETE_STRATEGY: delete_strategy}},
                        "spec": *wspec.spec})),
                    None => WorkWrite::Create {
                        object: json!({"apiVersion": work_resource().api_version,
                            "kind": "Work",
                            "metadata": {"name": work_name, "namespace": work_namespace,
                                "labels": work_labels,
                                "annotations": {annotation::DELETE_STRATEGY: delete_strategy}},
                            "spec": *wspec.spec}),
                        // A cluster-scoped binding can own it; a ResourceBinding cannot
                        // (another namespace): its placement's finalizer removes it.
                        owned_by_binding: scope == Scope::Cluster,
                    },
                };
                (Some(wspec), write, Ok(ov))
            }
        };
        clusters.push(ClusterPlan {
            cluster: cluster.to_string(),
            binding_name,
            binding_spec: bspec,
            binding,
            work_namespace,
            work_name: work_name.clone(),
            work_spec,
            work,
            overridden,
            rollout,
            unreachable: unreachable.get(cluster).cloned(),
        });
    }
    let selected_resources = manifests
        .iter()
        .zip(&envelopes)
        .map(|(m, e)| {
            let mut id = identifier(m, None);
            if let Some(e) = e {
                id["envelope"] = e.clone();
            }
            id
        })
        .collect();
    Decision::Place(Box::new(Plan {
        placement_name: name.clone(),
        namespace: namespace.map(String::from),
        snapshots,
        policy_snapshot,
        delete_bindings,
        unschedule_bindings,
        delete_works,
        clusters,
        summary: Summary {
            scheduled,
            resource_index,
            selected_resources,
            apply_strategy,
        },
        requeue: [
            rolling.requeue.filter(|_| !rolling.waiting.is_empty()),
            adjusted.requeue,
        ]
        .into_iter()
        .flatten()
        .min(),
        placement_metadata,
        moves,
        waiting: rolling.waiting.iter().map(|c| c.to_string()).collect(),
    }))
}

/// How many decisions a policy snapshot's status has at most besides the picked clusters'
/// (KubeFleet's `maxUnselectedClusterDecisionCount`): the room left under it once they are in.
const MAX_UNSELECTED_DECISIONS: usize = 20;

#[cfg(test)]
mod tests;
