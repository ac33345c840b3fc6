//! A staged update run as a pure state machine: from the run and what the caches show (its
//! placement, strategy, the latest policy snapshot, the fleet, the placement's bindings, the
//! run's approval requests), the run's next status and the writes that get it there. KubeFleet's
//! update-run controller, read from its source, with its conditions and reasons:
//!
//! - **initialize** (once): the placement must exist, not be deleting and use the `External`
//!   strategy; the resource snapshot is the one the spec names (it must exist) or the latest;
//!   the clusters scheduled under the latest policy snapshot go into the first stage whose
//!   selector matches them (empty selects all, absent none), sorted by `sortingLabelKey` as an
//!   integer, then by name; clusters no longer scheduled make the deletion stage; the
//!   strategy, the apply strategy and each cluster's overrides are frozen into the status.
//!   Unlike KubeFleet, a scheduled cluster that matches no stage is not an error: it is left
//!   out (and named in the Initialized message).
//! - **run** (`state: Run`): stage by stage: the before-stage Approval; then at most
//!   `maxConcurrency` clusters at once (a percentage of the stage rounded down, at least 1),
//!   each bound to the run's snapshot and done when its binding is Available (or its
//!   differences are reported) for its generation; then the after-stage tasks (TimedWait
//!   counted from when the stage's clusters finished; Approval). A stage without clusters is
//!   skipped. Then the deletion stage removes the bindings of clusters no longer picked.
//! - **stop** (`state: Stop`): clusters already updating finish; no new one starts; `Run`
//!   resumes where it stopped. `Abandon` stops for good.
//! - a cluster updating for more than five minutes marks the run Stuck; a binding changed
//!   under the run (another run took it) fails the run; a new policy snapshot fails it (the
//!   stages no longer describe the placement). A cluster that leaves the placement before its
//!   turn is skipped; a cluster that joins during the run is left to the placement (it gets
//!   the last completed run's snapshot) unless the run's `flotilla.dev/newcomers-stage`
//!   annotation names a stage not yet done, which it then joins.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flotilla_api::conditions;
use flotilla_api::placement::reason::UpdateRunReason as R;
use flotilla_api::placement::staged::{label, parse_duration, state_meaning, DELETION_STAGE};
use flotilla_api::selectors::LabelSelector;
use serde_json::{json, Value};

use crate::placement::rollout::{observe, Available, IntOrPercent};

/// How long a cluster may update before the run is marked Stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(300);

/// The annotation that lets clusters joining during a run into a stage not yet done.
pub const NEWCOMERS_STAGE: &str = "flotilla.dev/newcomers-stage";

/// A binding of the placement, as the run needs it.
#[derive(Debug, Clone)]
pub struct Binding<'a> {
    /// The binding's name.
    pub name: String,
    /// Its target cluster.
    pub cluster: &'a str,
    /// Its spec.
    pub spec: &'a Value,
    /// Its status.
    pub status: &'a Value,
    /// Its generation.
    pub generation: Option<i64>,
    /// Whether it is being deleted.
    pub deleting: bool,
}

/// The placement's latest scheduling policy snapshot.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    /// Its name (bindings name it).
    pub name: &'a str,
    /// Its index.
    pub index: String,
    /// How many clusters it asks for (PickN's N; -1 otherwise).
    pub observed_cluster_count: i64,
    /// The clusters the scheduler picked under it (`None`: it has not decided yet).
    pub selected: Option<Vec<String>>,
}

/// What one pass of a run reads.
pub struct Observed<'a> {
    /// The run.
    pub run: &'a Value,
    /// Now.
    pub now: DateTime<Utc>,
    /// The placement, if it exists.
    pub placement: Option<&'a Value>,
    /// The update strategy's spec, if it exists.
    pub strategy: Option<&'a Value>,
    /// The placement's latest resource snapshot index.
    pub latest_resource_index: Option<i64>,
    /// The indexes of the placement's resource snapshots.
    pub resource_indexes: BTreeSet<i64>,
    /// The latest scheduling policy snapshot.
    pub policy: Option<Policy<'a>>,
    /// The fleet: each cluster's labels.
    pub clusters: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// The placement's bindings.
    pub bindings: Vec<Binding<'a>>,
    /// Each scheduled cluster's override snapshots for the released snapshot:
    /// (clusterResourceOverrideSnapshots, resourceOverrideSnapshots).
    pub overrides: BTreeMap<String, (Value, Value)>,
    /// The run's approval requests, by name.
    pub approvals: BTreeMap<String, &'a Value>,
}

/// What a pass decides.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// The run's status as it should be.
    pub status: Value,
    /// Bindings to bind to the run's snapshot: (name, spec merge patch).
    pub bind: Vec<(String, Value)>,
    /// Bindings to delete (the deletion stage).
    pub delete_bindings: Vec<String>,
    /// Approval requests to create.
    pub create_approvals: Vec<Value>,
    /// Approved requests whose approval the run takes: (name, status conditions).
    pub accept_approvals: Vec<(String, Value)>,
    /// When to look again although nothing changes (a timer, a stuck check).
    pub requeue: Option<Duration>,
    /// What a run that cannot initialize yet waits for (its conditions say nothing until it
    /// initializes or gives up after [`INIT_WAIT`]).
    pub waiting: Option<String>,
}

/// Sets a condition as of the run's generation.
struct Conds<'a> {
    generation: Option<i64>,
    now: &'a str,
}

impl Conds<'_> {
    fn set(&self, conds: &mut Value, ty: &str, status: &str, reason: R, message: &str) {
        conditions::set_status(
            conds,
            ty,
            status,
            reason.as_str(),
            message,
            self.generation,
            self.now,
        );
    }
}

fn is(conds: &Value, ty: &str, status: &str) -> bool {
    conditions::find(conds, ty).is_some_and(|c| c["status"] == status)
}

fn since(conds: &Value, ty: &str) -> Option<DateTime<Utc>> {
    conditions::find(conds, ty)?["lastTransitionTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The approval request name of a stage's task: `<run>-before-<stage>` or `<run>-after-<stage>`.
pub fn approval_name(run: &str, before: bool, stage: &str) -> String {
    let when = if before { "before" } else { "after" };
    format!("{run}-{when}-{stage}")
}

/// One pass of the run.
pub fn step(o: &Observed<'_>) -> Step {
    let run = o.run;
    let now = conditions::timestamp(o.now);
    let c = Conds {
        generation: run["metadata"]["generation"].as_i64(),
        now: &now,
    };
    let mut status = run["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut out = Step::default();
    let conds = status["conditions"].clone();
    // Finished (or failed to start): nothing more to do.
    if is(&conds, "Initialized", "False")
        || is(&conds, "Succeeded", "True")
        || is(&conds, "Succeeded", "False")
    {
        out.status = status;
        return out;
    }
    if !is(&conds, "Initialized", "True") {
        match initialize(o) {
            Ok(init) => {
                status = init.status;
                let msg = if init.unstaged.is_empty() {
                    "the stages are computed".to_string()
                } else {
                    format!(
                        "the stages are computed; clusters that match no stage keep what they have: {}",
                        init.unstaged.join(", ")
                    )
                };
                c.set(
                    &mut status["conditions"],
                    "Initialized",
                    "True",
                    R::UpdateRunInitializedSuccessfully,
                    &msg,
                );
            }
            Err(InitError::NotYet(why)) if young(o.run, o.now) => {
                // Not yet: look again soon; the run fails only if it stays so.
                out.waiting = Some(why);
                out.status = status;
                out.requeue = Some(Duration::from_secs(1));
                return out;
            }
            Err(InitError::NotYet(why) | InitError::Fail(why)) => {
                c.set(
                    &mut status["conditions"],
                    "Initialized",
                    "False",
                    R::UpdateRunInitializedFailed,
                    &why,
                );
                out.status = status;
                return out;
            }
        }
    }
    let state = state_meaning(run["spec"]["state"].as_str().unwrap_or("Initialize")).to_string();
    if state == "Initialize" {
        out.status = status;
        return out;
    }
    // The stages describe the placement as scheduled then; a new policy ends the run.
    if let Some(p) = &o.policy {
        if status["policySnapshotIndexUsed"] != p.index.as_str() {
            let why = format!(
                "the placement's scheduling policy changed (snapshot {} is newer than {}): the stages no longer describe it; start a new run",
                p.index,
                status["policySnapshotIndexUsed"].as_str().unwrap_or("?")
            );
            fail(&c, &mut status, &why);
            out.status = status;
            return out;
        }
    }
    execute(o, &c, &mut status, &state, &mut out);
    out.status = status;
    out
}

/// Whether the run was created less than [`INIT_WAIT`] ago (a run without a creation time
/// counts as old).
fn young(run: &Value, now: DateTime<Utc>) -> bool {
    run["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| (now - t.with_timezone(&Utc)).num_seconds() < INIT_WAIT.as_secs() as i64)
}

fn fail(c: &Conds<'_>, status: &mut Value, message: &str) {
    c.set(
        &mut status["conditions"],
        "Progressing",
        "False",
        R::UpdateRunFailed,
        "The stages are aborted due to a non-recoverable error",
    );
    c.set(
        &mut status["conditions"],
        "Succeeded",
        "False",
        R::UpdateRunFailed,
        message,
    );
}

struct Init {
    status: Value,
    unstaged: Vec<String>,
}

/// Why a run cannot initialize: for good, or not yet (what it needs may be created with it,
/// in one `kubectl apply`, and reach the caches a moment later).
enum InitError {
    Fail(String),
    NotYet(String),
}

/// How long a run waits for what it names to appear before it fails to initialize.
pub const INIT_WAIT: Duration = Duration::from_secs(60);

fn initialize(o: &Observed<'_>) -> Result<Init, InitError> {
    use InitError::{Fail, NotYet};
    let spec = &o.run["spec"];
    let placement_name = spec["placementName"].as_str().unwrap_or("");
    let placement = o
        .placement
        .ok_or_else(|| NotYet(format!("the placement {placement_name:?} is not found")))?;
    if !placement["metadata"]["deletionTimestamp"].is_null() {
        return Err(Fail(format!(
            "the placement {placement_name:?} is being deleted"
        )));
    }
    if placement["spec"]["strategy"]["type"] != "External" {
        return Err(Fail(format!(
            "the placement {placement_name:?} does not use the External rollout strategy: set spec.strategy.type: External"
        )));
    }
    let strategy_name = spec["stagedRolloutStrategyName"].as_str().unwrap_or("");
    let strategy = o.strategy.ok_or_else(|| {
        NotYet(format!(
            "the update strategy {strategy_name:?} is not found"
        ))
    })?;
    let policy = o.policy.as_ref().ok_or_else(|| {
        NotYet(format!(
            "the placement {placement_name:?} has no scheduling policy snapshot yet"
        ))
    })?;
    // Every cluster the scheduler picked has its binding (the caches may lag a moment).
    let bound: BTreeSet<&str> = o
        .bindings
        .iter()
        .filter(|b| b.spec["schedulingPolicySnapshotName"] == policy.name)
        .map(|b| b.cluster)
        .collect();
    match &policy.selected {
        None => {
            return Err(NotYet(format!(
                "the placement {placement_name:?} is not scheduled yet"
            )))
        }
        Some(selected) => {
            if let Some(missing) = selected.iter().find(|c| !bound.contains(c.as_str())) {
                return Err(NotYet(format!(
                    "the binding of cluster {missing} (picked by the placement) is not there yet"
                )));
            }
        }
    }
    let index = match spec["resourceSnapshotIndex"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        Some(s) => {
            let i: i64 = s
                .parse()
                .map_err(|_| Fail(format!("resourceSnapshotIndex {s:?} is not an integer")))?;
            if !o.resource_indexes.contains(&i) {
                let why = format!(
                    "the resource snapshot with index {i} of placement {placement_name:?} is not found"
                );
                // An index above the latest may be one the placement has not taken yet.
                return Err(if o.latest_resource_index.is_some_and(|l| i > l) {
                    NotYet(why)
                } else {
                    Fail(why)
                });
            }
            i
        }
        None => o.latest_resource_index.ok_or_else(|| {
            NotYet(format!(
                "the placement {placement_name:?} has no resource snapshot yet"
            ))
        })?,
    };
    // The clusters scheduled under the latest policy, and those no longer scheduled.
    let mut scheduled = BTreeSet::new();
    let mut leaving = BTreeSet::new();
    for b in &o.bindings {
        if b.deleting {
            continue;
        }
        match b.spec["state"].as_str() {
            Some("Unscheduled") => {
                leaving.insert(b.cluster);
            }
            _ if b.spec["schedulingPolicySnapshotName"] == policy.name => {
                scheduled.insert(b.cluster);
            }
            _ => {}
        }
    }
    let no_labels = BTreeMap::new();
    let mut staged = BTreeSet::new();
    let mut stages = Vec::new();
    for (i, st) in strategy["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = st["name"].as_str().unwrap_or("");
        let selector = match &st["labelSelector"] {
            Value::Null => None,
            s => Some(
                LabelSelector::from_object(s)
                    .map_err(|e| Fail(format!("stage {name:?} (stages[{i}]): {e}")))?,
            ),
        };
        let mut members: Vec<&str> = scheduled
            .iter()
            .copied()
            .filter(|c| !staged.contains(c))
            .filter(|c| {
                let labels = o.clusters.get(*c).unwrap_or(&no_labels);
                selector
                    .as_ref()
                    .is_some_and(|s| s.matches(|k| labels.get(k).map(String::as_str)))
            })
            .collect();
        staged.extend(members.iter().copied());
        if let Some(key) = st["sortingLabelKey"].as_str() {
            let value = |c: &str| {
                o.clusters
                    .get(c)
                    .and_then(|l| l.get(key))
                    .and_then(|v| v.parse::<i64>().ok())
            };
            // Integer values ascending; clusters without one after them; then by name.
            members.sort_by_key(|c| (value(c).is_none(), value(c), c.to_string()));
        }
        let clusters: Vec<Value> = members
            .iter()
            .map(|c| cluster_entry(c, o.overrides.get(*c)))
            .collect();
        let run_name = o.run["metadata"]["name"].as_str().unwrap_or("");
        let tasks = |field: &str, before: bool| -> Vec<Value> {
            st[field]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    let mut s = json!({"type": t["type"]});
                    if t["type"] == "Approval" {
                        s["approvalRequestName"] = json!(approval_name(run_name, before, name));
                    }
                    s
                })
                .collect()
        };
        let mut stage = json!({"stageName": name, "clusters": clusters});
        let after = tasks("afterStageTasks", false);
        if !after.is_empty() {
            stage["afterStageTaskStatus"] = json!(after);
        }
        let before = tasks("beforeStageTasks", true);
        if !before.is_empty() {
            stage["beforeStageTaskStatus"] = json!(before);
        }
        stages.push(stage);
    }
    let unstaged: Vec<String> = scheduled
        .iter()
        .filter(|c| !staged.contains(*c))
        .map(|c| c.to_string())
        .collect();
    let deletion: Vec<Value> = leaving.iter().map(|c| json!({"clusterName": c})).collect();
    let mut status = json!({
        "policySnapshotIndexUsed": policy.index,
        "policyObservedClusterCount": policy.observed_cluster_count,
        "resourceSnapshotIndexUsed": index.to_string(),
        "appliedStrategy": flotilla_api::work::ApplyStrategy::of_placement(&placement["spec"]),
        "stagedUpdateStrategySnapshot": strategy,
        "stagesStatus": stages,
        "deletionStageStatus": {"stageName": DELETION_STAGE, "clusters": deletion},
    });
    status["conditions"] = o.run["status"]["conditions"].clone();
    Ok(Init { status, unstaged })
}

fn cluster_entry(cluster: &str, overrides: Option<&(Value, Value)>) -> Value {
    let mut e = json!({"clusterName": cluster});
    if let Some((cro, ro)) = overrides {
        if cro.as_array().is_some_and(|a| !a.is_empty()) {
            e["clusterResourceOverrideSnapshots"] = cro.clone();
        }
        if ro.as_array().is_some_and(|a| !a.is_empty()) {
            e["resourceOverrideSnapshots"] = ro.clone();
        }
    }
    e
}

fn or_empty(v: &Value) -> Value {
    if v.is_null() {
        json!([])
    } else {
        v.clone()
    }
}

/// The binding spec fields that release the run's snapshot to `cluster`.
fn release(status: &Value, placement: &str, cluster: &Value) -> Value {
    let index = status["resourceSnapshotIndexUsed"].as_str().unwrap_or("0");
    json!({"state": "Bound",
        "resourceSnapshotName": format!("{placement}-{index}-snapshot"),
        "clusterResourceOverrideSnapshots": or_empty(&cluster["clusterResourceOverrideSnapshots"]),
        "resourceOverrideSnapshots": or_empty(&cluster["resourceOverrideSnapshots"]),
        "applyStrategy": status["appliedStrategy"]})
}

/// Whether the binding names what the run released to the cluster.
fn releases(binding: &Binding<'_>, want: &Value) -> bool {
    ["resourceSnapshotName", "applyStrategy"]
        .iter()
        .all(|f| binding.spec[*f] == want[*f])
        && or_empty(&binding.spec["clusterResourceOverrideSnapshots"])
            == want["clusterResourceOverrideSnapshots"]
        && or_empty(&binding.spec["resourceOverrideSnapshots"]) == want["resourceOverrideSnapshots"]
}

fn execute(o: &Observed<'_>, c: &Conds<'_>, status: &mut Value, state: &str, out: &mut Step) {
    let placement = o.run["spec"]["placementName"].as_str().unwrap_or("");
    let stopping = state != "Run";
    let live: BTreeMap<&str, &Binding<'_>> = o
        .bindings
        .iter()
        .filter(|b| !b.deleting)
        .map(|b| (b.cluster, b))
        .collect();
    let stage_count = status["stagesStatus"].as_array().map_or(0, Vec::len);

    // Newcomers join the named stage, if the run says so and it is not done yet.
    if let Some(target) = o.run["metadata"]["annotations"][NEWCOMERS_STAGE].as_str() {
        let known: BTreeSet<String> = status["stagesStatus"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&status["deletionStageStatus"]))
            .flat_map(|s| s["clusters"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["clusterName"].as_str().map(String::from))
            .collect();
        let policy = o.policy.as_ref().map(|p| p.name);
        let newcomers: Vec<&str> = live
            .values()
            .filter(|b| {
                b.spec["state"] != "Unscheduled"
                    && Some(
                        b.spec["schedulingPolicySnapshotName"]
                            .as_str()
                            .unwrap_or(""),
                    ) == policy
                    && !known.contains(b.cluster)
            })
            .map(|b| b.cluster)
            .collect();
        if let Some(stage) = status["stagesStatus"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .find(|s| s["stageName"] == target && !is(&s["conditions"], "Succeeded", "True"))
        {
            for n in newcomers {
                if let Some(list) = stage["clusters"].as_array_mut() {
                    list.push(cluster_entry(n, o.overrides.get(n)));
                }
            }
        }
    }

    for i in 0..stage_count {
        let stage = &mut status["stagesStatus"][i];
        if is(&stage["conditions"], "Succeeded", "True") {
            continue;
        }
        let stage_name = stage["stageName"].as_str().unwrap_or("").to_string();
        let config = status["stagedUpdateStrategySnapshot"]["stages"][i].clone();
        let stage = &mut status["stagesStatus"][i];
        let clusters = stage["clusters"].as_array().cloned().unwrap_or_default();
        // A stage without clusters is skipped, tasks and all.
        if clusters.is_empty() {
            c.set(
                &mut stage["conditions"],
                "Progressing",
                "False",
                R::StageUpdatingSkippedNoClusters,
                "the stage has no clusters",
            );
            c.set(
                &mut stage["conditions"],
                "Succeeded",
                "True",
                R::StageUpdatingSkippedNoClusters,
                "the stage has no clusters: skipped",
            );
            continue;
        }
        // Before the stage: its Approval.
        if !stopping {
            let approved = approvals(o, c, stage, "beforeStageTaskStatus", out);
            if !approved {
                c.set(
                    &mut stage["conditions"],
                    "Progressing",
                    "False",
                    R::StageUpdatingWaiting,
                    "Not all before-stage tasks are completed, waiting for approval",
                );
                waiting(c, status, "before-stage", &stage_name);
                return;
            }
        }
        let max = IntOrPercent::parse(&config["maxConcurrency"], IntOrPercent::Int(1))
            .scaled_down(clusters.len())
            .max(1) as usize;
        let (mut updating, mut finished, mut started_now) = (0usize, 0usize, 0usize);
        let mut stuck = Vec::new();
        let mut failure = None;
        for (j, cluster) in clusters.iter().enumerate() {
            let name = cluster["clusterName"].as_str().unwrap_or("");
            let entry = &mut status["stagesStatus"][i]["clusters"][j];
            if is(&entry["conditions"], "Succeeded", "True") {
                finished += 1;
                continue;
            }
            let want = release(&status_view(status), placement, cluster);
            let binding = live.get(name).filter(|b| b.spec["state"] != "Unscheduled");
            let entry = &mut status["stagesStatus"][i]["clusters"][j];
            let Some(binding) = binding else {
                // It left the placement: nothing to update there.
                c.set(
                    &mut entry["conditions"],
                    "Succeeded",
                    "True",
                    R::ClusterUpdatingSkipped,
                    "the cluster left the placement before its update finished: skipped",
                );
                finished += 1;
                continue;
            };
            let started = is(&entry["conditions"], "Started", "True");
            if !started {
                if stopping || updating >= max {
                    continue;
                }
                if !releases(binding, &want) || binding.spec["state"] != "Bound" {
                    out.bind.push((binding.name.clone(), want));
                }
                c.set(
                    &mut entry["conditions"],
                    "Started",
                    "True",
                    R::ClusterUpdatingStarted,
                    "Cluster update started",
                );
                updating += 1;
                started_now += 1;
                continue;
            }
            updating += 1;
            if !releases(binding, &want) || binding.spec["state"] != "Bound" {
                let why = format!(
                    "the binding {} of cluster {name} in stage {stage_name} no longer names what this run released: another run or a person changed it",
                    binding.name
                );
                c.set(
                    &mut entry["conditions"],
                    "Succeeded",
                    "False",
                    R::ClusterUpdatingFailed,
                    &why,
                );
                failure = Some(why);
                continue;
            }
            let (_, available) = observe(binding.status, binding.generation);
            match available {
                Available::True { .. } | Available::DiffReported => {
                    c.set(
                        &mut entry["conditions"],
                        "Succeeded",
                        "True",
                        R::ClusterUpdatingSucceeded,
                        "Cluster update completed successfully",
                    );
                    updating -= 1;
                    finished += 1;
                }
                Available::No => {
                    if let Some(t) = since(&entry["conditions"], "Started") {
                        if (o.now - t).to_std().is_ok_and(|d| d > STUCK_AFTER) {
                            stuck.push(name.to_string());
                        }
                    }
                }
            }
        }
        let stage = &mut status["stagesStatus"][i];
        if let Some(why) = failure {
            c.set(
                &mut stage["conditions"],
                "Progressing",
                "False",
                R::StageUpdatingFailed,
                "Stage update aborted due to a non-recoverable error",
            );
            c.set(
                &mut stage["conditions"],
                "Succeeded",
                "False",
                R::StageUpdatingFailed,
                &why,
            );
            fail(c, status, &why);
            return;
        }
        if stage["startTime"].is_null() && (started_now > 0 || finished > 0 || updating > 0) {
            stage["startTime"] = json!(c.now);
        }
        if finished < clusters.len() {
            if stopping {
                let (reason, run_reason, msg) = if updating > 0 {
                    (
                        R::StageUpdatingStopping,
                        R::UpdateRunStopping,
                        format!("stopping: {updating} cluster(s) still updating finish first"),
                    )
                } else {
                    (
                        R::StageUpdatingStopped,
                        R::UpdateRunStopped,
                        "The update run has been stopped".to_string(),
                    )
                };
                c.set(
                    &mut stage["conditions"],
                    "Progressing",
                    "False",
                    reason,
                    &msg,
                );
                let st = if updating > 0 { "Unknown" } else { "False" };
                c.set(
                    &mut status["conditions"],
                    "Progressing",
                    st,
                    run_reason,
                    &msg,
                );
                out.requeue = (updating > 0).then_some(Duration::from_secs(15));
                return;
            }
            c.set(
                &mut stage["conditions"],
                "Progressing",
                "True",
                R::StageUpdatingStarted,
                "Clusters in the stage started updating",
            );
            if stuck.is_empty() {
                c.set(
                    &mut status["conditions"],
                    "Progressing",
                    "True",
                    R::UpdateRunProgressing,
                    "The update run is making progress",
                );
            } else {
                c.set(
                    &mut status["conditions"],
                    "Progressing",
                    "False",
                    R::UpdateRunStuck,
                    &format!(
                        "The updateRun is stuck waiting for cluster(s) {} in stage {stage_name} to finish updating, please check placement status for potential errors",
                        stuck.join(", ")
                    ),
                );
            }
            out.requeue = Some(Duration::from_secs(15));
            return;
        }
        // Every cluster of the stage is done: the after-stage tasks.
        if !is(&stage["conditions"], "Progressing", "False")
            || conditions::find(&stage["conditions"], "Progressing")
                .is_some_and(|p| p["reason"] != R::StageUpdatingWaiting.as_str())
        {
            c.set(
                &mut stage["conditions"],
                "Progressing",
                "False",
                R::StageUpdatingWaiting,
                "All clusters in the stage are updated, waiting for after-stage tasks to complete",
            );
        }
        if stopping {
            stopped(c, status);
            return;
        }
        let done_at = since(&stage["conditions"], "Progressing").unwrap_or(o.now);
        let mut passed = true;
        let tasks = config["afterStageTasks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (k, task) in tasks.iter().enumerate() {
            if task["type"] == "TimedWait" {
                let wait = task["waitTime"]
                    .as_str()
                    .and_then(parse_duration)
                    .unwrap_or_default();
                let until = done_at + chrono::Duration::from_std(wait).unwrap_or_default();
                match (until - o.now).to_std() {
                    Ok(left) if !left.is_zero() => {
                        passed = false;
                        out.requeue = Some(out.requeue.map_or(left, |r| r.min(left)));
                    }
                    _ => {
                        let ts = &mut status["stagesStatus"][i]["afterStageTaskStatus"][k];
                        c.set(
                            &mut ts["conditions"],
                            "WaitTimeElapsed",
                            "True",
                            R::AfterStageTaskWaitTimeElapsed,
                            "Wait time elapsed",
                        );
                    }
                }
            }
        }
        let stage = &mut status["stagesStatus"][i];
        passed &= approvals(o, c, stage, "afterStageTaskStatus", out);
        if !passed {
            waiting(c, status, "after-stage", &stage_name);
            return;
        }
        stage_done(c, &mut status["stagesStatus"][i]);
    }
    if stopping {
        stopped(c, status);
        return;
    }

    // The deletion stage: the bindings of clusters no longer picked go.
    let del = &mut status["deletionStageStatus"];
    if del["startTime"].is_null() {
        del["startTime"] = json!(c.now);
    }
    let mut remaining = 0;
    let count = del["clusters"].as_array().map_or(0, Vec::len);
    for j in 0..count {
        let entry = &mut del["clusters"][j];
        let name = entry["clusterName"].as_str().unwrap_or("").to_string();
        match o.bindings.iter().find(|b| b.cluster == name) {
            Some(b) => {
                remaining += 1;
                if !b.deleting {
                    out.delete_bindings.push(b.name.clone());
                }
                c.set(
                    &mut entry["conditions"],
                    "Started",
                    "True",
                    R::ClusterUpdatingStarted,
                    "Cluster update started",
                );
            }
            None => {
                c.set(
                    &mut entry["conditions"],
                    "Started",
                    "True",
                    R::ClusterUpdatingStarted,
                    "Cluster update started",
                );
                c.set(
                    &mut entry["conditions"],
                    "Succeeded",
                    "True",
                    R::ClusterUpdatingSucceeded,
                    "Cluster update completed successfully",
                );
            }
        }
    }
    if remaining > 0 {
        c.set(
            &mut del["conditions"],
            "Progressing",
            "True",
            R::StageUpdatingStarted,
            "Clusters in the stage started updating",
        );
        c.set(
            &mut status["conditions"],
            "Progressing",
            "True",
            R::UpdateRunProgressing,
            "The update run is making progress",
        );
        out.requeue = Some(Duration::from_secs(15));
        return;
    }
    stage_done(c, del);
    c.set(
        &mut status["conditions"],
        "Progressing",
        "False",
        R::UpdateRunSucceeded,
        "All stages are completed",
    );
    c.set(
        &mut status["conditions"],
        "Succeeded",
        "True",
        R::UpdateRunSucceeded,
        "All stages are completed successfully",
    );
}

/// The parts of the status a release reads (a copy, so the stage can be borrowed mutably).
fn status_view(status: &Value) -> Value {
    json!({"resourceSnapshotIndexUsed": status["resourceSnapshotIndexUsed"],
        "appliedStrategy": status["appliedStrategy"]})
}

/// A stage (or the deletion stage) done: its end time and Succeeded.
fn stage_done(c: &Conds<'_>, stage: &mut Value) {
    if stage["endTime"].is_null() {
        stage["endTime"] = json!(c.now);
    }
    c.set(
        &mut stage["conditions"],
        "Progressing",
        "False",
        R::StageUpdatingSucceeded,
        "All clusters in the stage are updated and after-stage tasks are completed",
    );
    c.set(
        &mut stage["conditions"],
        "Succeeded",
        "True",
        R::StageUpdatingSucceeded,
        "Stage update completed successfully",
    );
}

fn stopped(c: &Conds<'_>, status: &mut Value) {
    c.set(
        &mut status["conditions"],
        "Progressing",
        "False",
        R::UpdateRunStopped,
        "The update run has been stopped",
    );
}

fn waiting(c: &Conds<'_>, status: &mut Value, which: &str, stage: &str) {
    c.set(
        &mut status["conditions"],
        "Progressing",
        "False",
        R::UpdateRunWaiting,
        &format!("The updateRun is waiting for {which} tasks in stage {stage} to complete"),
    );
}

/// The Approval tasks of a stage (`field`: before or after): creates the requests, takes an
/// approval once a person gives it; whether every one is approved.
fn approvals(
    o: &Observed<'_>,
    c: &Conds<'_>,
    stage: &mut Value,
    field: &str,
    out: &mut Step,
) -> bool {
    let run = o.run["metadata"]["name"].as_str().unwrap_or("");
    let stage_name = stage["stageName"].as_str().unwrap_or("").to_string();
    let mut all = true;
    let count = stage[field].as_array().map_or(0, Vec::len);
    for k in 0..count {
        let task = &mut stage[field][k];
        if task["type"] != "Approval" {
            continue;
        }
        if is(&task["conditions"], "ApprovalRequestApproved", "True") {
            continue;
        }
        let name = task["approvalRequestName"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match o.approvals.get(&name) {
            None => {
                all = false;
                out.create_approvals.push(json!({
                    "metadata": {"name": name, "labels": {
                        label::TARGET_STAGE: stage_name, label::TARGET_UPDATE_RUN: run,
                        label::TASK_TYPE: if field == "beforeStageTaskStatus" { "beforeStage" } else { "afterStage" },
                        label::IS_LATEST_APPROVAL: "true"}},
                    "spec": {"parentStageRollout": run, "targetStage": stage_name}}));
            }
            Some(req) => {
                c.set(
                    &mut task["conditions"],
                    "ApprovalRequestCreated",
                    "True",
                    R::StageTaskApprovalRequestCreated,
                    "ApprovalRequest object is created",
                );
                let gen = req["metadata"]["generation"].as_i64();
                let current = |ty: &str| {
                    conditions::find(&req["status"]["conditions"], ty).is_some_and(|x| {
                        x["status"] == "True"
                            && (x["observedGeneration"].is_null()
                                || x["observedGeneration"].as_i64() == gen)
                    })
                };
                let (approved, accepted) = (current("Approved"), current("ApprovalAccepted"));
                if !approved && !accepted {
                    all = false;
                    continue;
                }
                if approved && !accepted {
                    let mut conds = req["status"]["conditions"].clone();
                    conditions::set_status(
                        &mut conds,
                        "ApprovalAccepted",
                        "True",
                        R::ApprovalRequestApprovalAccepted.as_str(),
                        "The approval request has been approved and cannot be reverted",
                        gen,
                        c.now,
                    );
                    out.accept_approvals.push((name.clone(), conds));
                }
                c.set(
                    &mut task["conditions"],
                    "ApprovalRequestApproved",
                    "True",
                    R::StageTaskApprovalRequestApproved,
                    "ApprovalRequest object is approved",
                );
            }
        }
    }
    all
}

#[cfg(test)]
mod tests;
