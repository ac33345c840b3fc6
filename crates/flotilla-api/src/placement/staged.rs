//! KubeFleet's staged update API (`spec.strategy.type: External`): update strategies (the
//! stages), update runs (one release of one resource snapshot through those stages) and
//! approval requests (a person's go-ahead before or after a stage), cluster-scoped for
//! ClusterResourcePlacements and namespaced for ResourcePlacements. The CRD schemas follow
//! KubeFleet's types field for field; the rules KubeFleet writes in CEL are admission checks
//! here ([`validate_strategy`], [`validate_run`], [`validate_approval`]).
//!
//! A run's `state` takes KubeFleet's values: `Initialize` (the default: compute the stages,
//! start nothing), `Run` (go on, or resume) and `Stop` (finish the clusters already updating,
//! start no new ones); KubeFleet's later names `Execute`, `Pause` and `Abandon` (terminal) are
//! accepted as well, `Execute` meaning `Run` and `Pause` meaning `Stop`.

use serde_json::{json, Value};

use super::schema::{apply_strategy_schema, enumeration, label_selector, open_list, placement_crd};
use crate::crds::{conditions, desc, string};
use crate::member::FieldError;

/// Labels on approval requests (KubeFleet's).
pub mod label {
    /// The update run the request is for.
    pub const TARGET_UPDATE_RUN: &str = "kubernetes-fleet.io/targetupdaterun";
    /// The stage the request is for.
    pub const TARGET_STAGE: &str = "kubernetes-fleet.io/targetUpdatingStage";
    /// `beforeStage` or `afterStage`.
    pub const TASK_TYPE: &str = "kubernetes-fleet.io/taskType";
    /// `true` on the run's latest request for the stage.
    pub const IS_LATEST_APPROVAL: &str = "kubernetes-fleet.io/isLatestUpdateRunApproval";
}

/// The finalizer that keeps a run until its approval requests are gone.
pub const RUN_FINALIZER: &str = "kubernetes-fleet.io/stagedupdaterun-finalizer";

/// The name of the stage that removes the resources of clusters no longer picked.
pub const DELETION_STAGE: &str = "kubernetes-fleet.io/deleteStage";

/// The states a run's `spec.state` may take (KubeFleet's two vocabularies).
pub const STATES: [&str; 6] = ["Initialize", "Run", "Stop", "Execute", "Pause", "Abandon"];

fn int_or_percent(text: &str, default: Value, pattern: &str) -> Value {
    desc(
        text,
        json!({"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true,
            "default": default, "pattern": pattern}),
    )
}

fn task() -> Value {
    json!({"type": "object", "required": ["type"], "properties": {
        "type": enumeration("TimedWait (after a stage only) or Approval.", &["TimedWait", "Approval"], None),
        "waitTime": desc("TimedWait: how long to wait, e.g. 1h30m.", json!({"type": "string",
            "pattern": "^0|([0-9]+(\\.[0-9]+)?(s|m|h))+$"}))
    }})
}

fn stages() -> Value {
    desc(
        "The stages, in order.",
        json!({"type": "array", "maxItems": 31, "items": {"type": "object", "required": ["name"], "properties": {
            "name": desc("Unique in the strategy; lowercase letters and digits.", json!({"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]+$"})),
            "labelSelector": label_selector("The clusters of the stage: empty selects all, absent none."),
            "sortingLabelKey": string("Clusters go in ascending order of this label's integer value, then by name."),
            "maxConcurrency": int_or_percent("How many clusters of the stage update at once: a number, or a percentage of the stage (rounded down, at least 1).",
                json!(1), "^(100|[1-9][0-9]?)%$"),
            "afterStageTasks": desc("Tasks after the stage's clusters are updated (at most one of each type).", json!({"type": "array", "maxItems": 2, "items": task()})),
            "beforeStageTasks": desc("Tasks before the stage starts (one Approval).", json!({"type": "array", "maxItems": 1, "items": task()}))
        }}}),
    )
}

fn strategy_crd(namespaced: bool) -> Value {
    let (kind, plural, scope, short) = if namespaced {
        (
            "StagedUpdateStrategy",
            "stagedupdatestrategies",
            "Namespaced",
            "sus",
        )
    } else {
        (
            "ClusterStagedUpdateStrategy",
            "clusterstagedupdatestrategies",
            "Cluster",
            "csus",
        )
    };
    let schema = json!({
        "type": "object",
        "description": "The stages a staged update run takes, reusable across runs.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "required": ["stages"], "properties": {"stages": stages()}}
        }
    });
    let mut c = placement_crd(
        kind,
        plural,
        scope,
        &[short],
        json!([{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]),
        schema,
    );
    // Strategies have no status.
    for v in c["spec"]["versions"].as_array_mut().into_iter().flatten() {
        v.as_object_mut().map(|m| m.remove("subresources"));
    }
    c
}

fn stage_status() -> Value {
    json!({"type": "object", "required": ["stageName"], "properties": {
        "stageName": {"type": "string"},
        "clusters": desc("Each cluster of the stage.", json!({"type": "array", "items": {"type": "object", "required": ["clusterName"], "properties": {
            "clusterName": {"type": "string"},
            "resourceOverrideSnapshots": open_list("ResourceOverride snapshots of the cluster, fixed when the run starts."),
            "clusterResourceOverrideSnapshots": {"type": "array", "items": {"type": "string"}},
            "conditions": conditions("Started, Succeeded.")
        }}})),
        "afterStageTaskStatus": open_list("The after-stage tasks."),
        "beforeStageTaskStatus": open_list("The before-stage tasks."),
        "startTime": {"type": "string", "format": "date-time"},
        "endTime": {"type": "string", "format": "date-time"},
        "conditions": conditions("Progressing, Succeeded.")
    }})
}

fn run_crd(namespaced: bool) -> Value {
    let (kind, plural, scope, short) = if namespaced {
        ("StagedUpdateRun", "stagedupdateruns", "Namespaced", "sur")
    } else {
        (
            "ClusterStagedUpdateRun",
            "clusterstagedupdateruns",
            "Cluster",
            "csur",
        )
    };
    let cond = |t: &str| format!(".status.conditions[?(@.type==\"{t}\")].status");
    let columns = json!([
        {"name": "Placement", "type": "string", "jsonPath": ".spec.placementName"},
        {"name": "Resource-Snapshot-Index", "type": "string", "jsonPath": ".spec.resourceSnapshotIndex"},
        {"name": "Policy-Snapshot-Index", "type": "string", "jsonPath": ".status.policySnapshotIndexUsed"},
        {"name": "Initialized", "type": "string", "jsonPath": cond("Initialized")},
        {"name": "Progressing", "type": "string", "jsonPath": cond("Progressing")},
        {"name": "Succeeded", "type": "string", "jsonPath": cond("Succeeded")},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Strategy", "type": "string", "priority": 1, "jsonPath": ".spec.stagedRolloutStrategyName"}
    ]);
    let schema = json!({
        "type": "object",
        "description": "One release of a placement's resource snapshot, stage by stage.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "required": ["placementName", "stagedRolloutStrategyName"], "properties": {
                "placementName": desc("The placement; immutable.", json!({"type": "string", "maxLength": 255})),
                "resourceSnapshotIndex": string("The resource snapshot index to release (empty: the latest when the run initializes); immutable."),
                "stagedRolloutStrategyName": string("The update strategy; immutable."),
                "state": enumeration("Initialize, Run or Stop (KubeFleet's later Execute, Pause, Abandon as well).", &STATES, Some("Initialize"))
            }},
            "status": {"type": "object", "properties": {
                "policySnapshotIndexUsed": string("The policy snapshot index the run was computed from."),
                "policyObservedClusterCount": {"type": "integer"},
                "resourceSnapshotIndexUsed": string("The resource snapshot index the run releases."),
                "appliedStrategy": apply_strategy_schema(),
                "stagedUpdateStrategySnapshot": desc("The strategy as it was when the run initialized.", json!({"type": "object", "properties": {"stages": stages()}})),
                "stagesStatus": desc("Each stage.", json!({"type": "array", "items": stage_status()})),
                "deletionStageStatus": stage_status(),
                "conditions": conditions("Initialized, Progressing, Succeeded.")
            }}
        }
    });
    placement_crd(kind, plural, scope, &[short], columns, schema)
}

fn approval_crd(namespaced: bool) -> Value {
    let (kind, plural, scope, short) = if namespaced {
        ("ApprovalRequest", "approvalrequests", "Namespaced", "areq")
    } else {
        (
            "ClusterApprovalRequest",
            "clusterapprovalrequests",
            "Cluster",
            "careq",
        )
    };
    let columns = json!([
        {"name": "Update-Run", "type": "string", "jsonPath": ".spec.parentStageRollout"},
        {"name": "Stage", "type": "string", "jsonPath": ".spec.targetStage"},
        {"name": "Approved", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Approved\")].status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    let schema = json!({
        "type": "object",
        "description": "A person's approval of a stage of an update run: set the Approved condition True.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "required": ["parentStageRollout", "targetStage"], "properties": {
                "parentStageRollout": string("The update run."),
                "targetStage": string("The stage.")
            }},
            "status": {"type": "object", "properties": {
                "conditions": conditions("Approved (by a person), ApprovalAccepted (by the run).")
            }}
        }
    });
    placement_crd(kind, plural, scope, &[short], columns, schema)
}

/// The staged update CRDs.
pub fn crds() -> Vec<Value> {
    vec![
        strategy_crd(false),
        strategy_crd(true),
        run_crd(false),
        run_crd(true),
        approval_crd(false),
        approval_crd(true),
    ]
}

/// KubeFleet's duration form (`1h30m`, `90s`, `1.5m`).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    if s == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut number = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                total += n * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
            }
            _ => return None,
        }
    }
    number
        .is_empty()
        .then(|| std::time::Duration::from_secs_f64(total))
}
fn invalid(errs: &mut Vec<FieldError>, field: String, message: impl Into<String>) {
    errs.push(("FieldValueInvalid", field, message.into()));
}

/// The rules KubeFleet states in CEL on update strategies: stage names unique; after a stage
/// at most one TimedWait and one Approval, a TimedWait with its waitTime and an Approval
/// without one; before a stage only an Approval, without waitTime; an integer maxConcurrency
/// at least 1; label selectors well formed.
pub fn validate_strategy(obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let stages = obj["spec"]["stages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in stages.iter().enumerate() {
        let path = format!("spec.stages[{i}]");
        if let Some(name) = s["name"].as_str() {
            if !seen.insert(name) {
                invalid(
                    &mut errs,
                    format!("{path}.name"),
                    format!("stage names must be unique: {name:?} is used twice"),
                );
            }
        }
        if !s["labelSelector"].is_null() {
            if let Err(e) = crate::selectors::LabelSelector::from_object(&s["labelSelector"]) {
                invalid(&mut errs, format!("{path}.labelSelector"), e);
            }
        }
        if let Some(n) = s["maxConcurrency"].as_i64() {
            if n < 1 {
                invalid(
                    &mut errs,
                    format!("{path}.maxConcurrency"),
                    "maxConcurrency must be at least 1",
                );
            }
        }
        let after = s["afterStageTasks"].as_array().cloned().unwrap_or_default();
        for ty in ["TimedWait", "Approval"] {
            if after.iter().filter(|t| t["type"] == ty).count() > 1 {
                invalid(
                    &mut errs,
                    format!("{path}.afterStageTasks"),
                    format!("afterStageTasks cannot have more than one {ty} task"),
                );
            }
        }
        for (j, t) in after.iter().enumerate() {
            let tpath = format!("{path}.afterStageTasks[{j}]");
            match t["type"].as_str() {
                Some("Approval") if !t["waitTime"].is_null() => invalid(
                    &mut errs,
                    format!("{tpath}.waitTime"),
                    "waitTime does not apply to an Approval task",
                ),
                Some("TimedWait") if t["waitTime"].is_null() => invalid(
                    &mut errs,
                    format!("{tpath}.waitTime"),
                    "waitTime is required for a TimedWait task",
                ),
                _ => {}
            }
        }
        for (j, t) in s["beforeStageTasks"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let tpath = format!("{path}.beforeStageTasks[{j}]");
            if t["type"] == "TimedWait" {
                invalid(
                    &mut errs,
                    format!("{tpath}.type"),
                    "beforeStageTasks cannot include a TimedWait task",
                );
            } else if !t["waitTime"].is_null() {
                invalid(
                    &mut errs,
                    format!("{tpath}.waitTime"),
                    "waitTime does not apply to an Approval task",
                );
            }
        }
    }
    errs
}

/// What a state means: Initialize, Run (Execute), Stop (Pause), Abandon.
pub fn state_meaning(state: &str) -> &str {
    match state {
        "Execute" => "Run",
        "Pause" => "Stop",
        "" => "Initialize",
        s => s,
    }
}

/// The rules KubeFleet states in CEL on update runs: the name under 128 characters;
/// placementName, resourceSnapshotIndex and stagedRolloutStrategyName immutable; no way back
/// to Initialize once started, none from Initialize straight to Stop, none out of Abandon.
pub fn validate_run(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if obj["metadata"]["name"]
        .as_str()
        .is_some_and(|n| n.len() >= 128)
    {
        invalid(
            &mut errs,
            "metadata.name".into(),
            "metadata.name max length is 127",
        );
    }
    let Some(old) = old else {
        return errs;
    };
    let (spec, was) = (&obj["spec"], &old["spec"]);
    for f in [
        "placementName",
        "resourceSnapshotIndex",
        "stagedRolloutStrategyName",
    ] {
        let empty = |v: &Value| v.is_null() || v == "";
        if spec[f] != was[f] && !(empty(&spec[f]) && empty(&was[f])) {
            invalid(&mut errs, format!("spec.{f}"), format!("{f} is immutable"));
        }
    }
    let from = state_meaning(was["state"].as_str().unwrap_or(""));
    let to = state_meaning(spec["state"].as_str().unwrap_or(""));
    let refused = match (from, to) {
        ("Abandon", to) if to != "Abandon" => {
            Some("Abandon is a terminal state and cannot transition to any other state")
        }
        ("Initialize", "Stop") => Some("cannot transition from Initialize to Stop"),
        ("Run", "Initialize") => Some("cannot transition from Run to Initialize"),
        ("Stop", "Initialize") => Some("cannot transition from Stop to Initialize"),
        _ => None,
    };
    if let Some(why) = refused {
        invalid(
            &mut errs,
            "spec.state".into(),
            format!("invalid state transition: {why}"),
        );
    }
    errs
}

/// KubeFleet's rule on approval requests: the spec is immutable.
pub fn validate_approval(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(old) = old {
        if obj["spec"] != old["spec"] {
            invalid(&mut errs, "spec".into(), "The spec field is immutable");
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errs: &[FieldError]) -> Vec<(&str, &str)> {
        errs.iter()
            .map(|(_, f, m)| (f.as_str(), m.as_str()))
            .collect()
    }

    #[test]
    fn strategies_follow_kubefleets_task_rules() {
        let ok = json!({"spec": {"stages": [
            {"name": "canary", "labelSelector": {"matchLabels": {"env": "canary"}},
                "afterStageTasks": [{"type": "TimedWait", "waitTime": "1m"}, {"type": "Approval"}]},
            {"name": "rest", "labelSelector": {}, "maxConcurrency": "50%",
                "beforeStageTasks": [{"type": "Approval"}]}
        ]}});
        assert!(validate_strategy(&ok, None).is_empty());
        let bad = json!({"spec": {"stages": [
            {"name": "a", "maxConcurrency": 0,
                "afterStageTasks": [{"type": "TimedWait"}, {"type": "Approval", "waitTime": "1m"}]},
            {"name": "a", "afterStageTasks": [{"type": "Approval"}, {"type": "Approval"}],
                "beforeStageTasks": [{"type": "TimedWait", "waitTime": "1m"}]},
            {"name": "b", "beforeStageTasks": [{"type": "Approval", "waitTime": "1m"}],
                "labelSelector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}}
        ]}});
        let errs = validate_strategy(&bad, None);
        let got = fields(&errs);
        for want in [
            (
                "spec.stages[0].maxConcurrency",
                "maxConcurrency must be at least 1",
            ),
            (
                "spec.stages[0].afterStageTasks[0].waitTime",
                "waitTime is required for a TimedWait task",
            ),
            (
                "spec.stages[0].afterStageTasks[1].waitTime",
                "waitTime does not apply to an Approval task",
            ),
            (
                "spec.stages[1].name",
                "stage names must be unique: \"a\" is used twice",
            ),
            (
                "spec.stages[1].afterStageTasks",
                "afterStageTasks cannot have more than one Approval task",
            ),
            (
                "spec.stages[1].beforeStageTasks[0].type",
                "beforeStageTasks cannot include a TimedWait task",
            ),
            (
                "spec.stages[2].beforeStageTasks[0].waitTime",
                "waitTime does not apply to an Approval task",
            ),
        ] {
            assert!(got.contains(&want), "{want:?} in {got:#?}");
        }
        assert!(got
            .iter()
            .any(|(f, _)| *f == "spec.stages[2].labelSelector"));
        assert_eq!(got.len(), 8, "{got:#?}");
    }

    #[test]
    fn runs_keep_what_they_release_and_move_between_states_as_kubefleet_allows() {
        let run = |state: &str, index: &str| {
            json!({"metadata": {"name": "r"}, "spec": {"placementName": "web",
                "resourceSnapshotIndex": index, "stagedRolloutStrategyName": "s", "state": state}})
        };
        assert!(validate_run(&run("Initialize", "1"), None).is_empty());
        let long = json!({"metadata": {"name": "x".repeat(128)}, "spec": {}});
        assert_eq!(
            fields(&validate_run(&long, None)),
            [("metadata.name", "metadata.name max length is 127")]
        );
        let moved = validate_run(&run("Run", "2"), Some(&run("Initialize", "1")));
        assert_eq!(
            fields(&moved),
            [(
                "spec.resourceSnapshotIndex",
                "resourceSnapshotIndex is immutable"
            )]
        );
        for (from, to, ok) in [
            ("Initialize", "Run", true),
            ("Initialize", "Execute", true),
            ("Run", "Stop", true),
            ("Stop", "Run", true),
            ("Pause", "Execute", true),
            ("Run", "Abandon", true),
            ("Initialize", "Stop", false),
            ("Initialize", "Pause", false),
            ("Run", "Initialize", false),
            ("Stop", "Initialize", false),
            ("Abandon", "Run", false),
            ("Abandon", "Abandon", true),
        ] {
            let errs = validate_run(&run(to, "1"), Some(&run(from, "1")));
            assert_eq!(errs.is_empty(), ok, "{from} -> {to}: {errs:?}");
            if !ok {
                assert_eq!(errs[0].1, "spec.state");
            }
        }
    }

    #[test]
    fn approval_requests_cannot_change_what_they_approve() {
        let req = |stage: &str| json!({"spec": {"parentStageRollout": "r", "targetStage": stage}});
        assert!(validate_approval(&req("a"), Some(&req("a"))).is_empty());
        assert_eq!(
            fields(&validate_approval(&req("b"), Some(&req("a")))),
            [("spec", "The spec field is immutable")]
        );
    }

    #[test]
    fn every_staged_crd_is_served_in_both_versions() {
        let crds = crds();
        let names: Vec<&str> = crds
            .iter()
            .map(|c| c["spec"]["names"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "ClusterStagedUpdateStrategy",
                "StagedUpdateStrategy",
                "ClusterStagedUpdateRun",
                "StagedUpdateRun",
                "ClusterApprovalRequest",
                "ApprovalRequest"
            ]
        );
        for c in &crds {
            let versions: Vec<&str> = c["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap())
                .collect();
            assert!(versions.contains(&"v1") && versions.contains(&"v1beta1"));
        }
    }
}
