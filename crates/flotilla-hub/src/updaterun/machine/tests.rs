//! Scenarios of staged update runs: a world (the run, its strategy and placement, the fleet, the
//! placement's bindings, approval requests, a clock), [`World::pass`] runs one step and makes
//! its writes in memory as the API server and the placement controller would; [`render`] shows
//! the run as a person reads it. `UPDATE_EXPECT=1 cargo test -p flotilla-hub` rewrites the
//! expectations.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use expect_test::{expect, Expect};
use serde_json::{json, Value};

use super::*;

const START: i64 = 1_800_000_000;

struct World {
    run: Value,
    strategy: Option<Value>,
    placement: Option<Value>,
    policy_index: String,
    resource_indexes: BTreeSet<i64>,
    clusters: BTreeMap<String, BTreeMap<String, String>>,
    /// Bindings by cluster.
    bindings: BTreeMap<String, Value>,
    approvals: BTreeMap<String, Value>,
    now: i64,
    /// What the last pass wrote, one line each.
    writes: Vec<String>,
    requeue: Option<Duration>,
}

fn strategy() -> Value {
    json!({"stages": [
        {"name": "canary", "labelSelector": {"matchLabels": {"env": "canary"}},
            "afterStageTasks": [{"type": "TimedWait", "waitTime": "1m"}]},
        {"name": "half", "labelSelector": {"matchLabels": {"env": "prod"}}, "sortingLabelKey": "order",
            "maxConcurrency": "50%", "beforeStageTasks": [{"type": "Approval"}]},
        {"name": "rest", "labelSelector": {}, "afterStageTasks": [{"type": "Approval"}]}
    ]})
}

impl World {
    /// Six clusters: a canary, four prod ones (ordered by label), one other; each bound to
    /// snapshot 0 under policy snapshot web-0; run `r` releases index 1.
    fn new() -> Self {
        let mut w = World {
            run: json!({"metadata": {"name": "r", "generation": 1},
                "spec": {"placementName": "web", "resourceSnapshotIndex": "1",
                    "stagedRolloutStrategyName": "three", "state": "Initialize"}}),
            strategy: Some(strategy()),
            placement: Some(json!({"metadata": {"name": "web"},
                "spec": {"strategy": {"type": "External"}}})),
            policy_index: "0".into(),
            resource_indexes: BTreeSet::from([0, 1]),
            clusters: BTreeMap::new(),
            bindings: BTreeMap::new(),
            approvals: BTreeMap::new(),
            now: START,
            writes: Vec::new(),
            requeue: None,
        };
        for (name, env, order) in [
            ("canary1", "canary", None),
            ("prod-a", "prod", Some("4")),
            ("prod-b", "prod", Some("1")),
            ("prod-c", "prod", Some("3")),
            ("prod-d", "prod", Some("2")),
            ("other", "dev", None),
        ] {
            let mut labels = BTreeMap::from([("env".to_string(), env.to_string())]);
            if let Some(o) = order {
                labels.insert("order".into(), o.into());
            }
            w.clusters.insert(name.into(), labels);
            w.bind_old(name);
        }
        w
    }

    /// A binding of `cluster` at snapshot 0, available.
    fn bind_old(&mut self, cluster: &str) {
        self.bindings.insert(
            cluster.into(),
            json!({"metadata": {"name": format!("web-{cluster}"), "generation": 1},
                "spec": {"state": "Bound", "targetCluster": cluster,
                    "resourceSnapshotName": "web-0-snapshot", "schedulingPolicySnapshotName": "web-0",
                    "clusterResourceOverrideSnapshots": [], "resourceOverrideSnapshots": []},
                "status": {"conditions": [{"type": "Available", "status": "True",
                    "reason": "AllWorkAreAvailable", "observedGeneration": 1,
                    "lastTransitionTime": "2027-01-01T00:00:00Z"}]}}),
        );
    }

    fn set_state(&mut self, state: &str) {
        self.run["spec"]["state"] = json!(state);
        let g = self.run["metadata"]["generation"].as_i64().unwrap();
        self.run["metadata"]["generation"] = json!(g + 1);
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.now, 0).unwrap()
    }

    fn pass(&mut self) {
        let policy = Policy {
            name: "web-0",
            index: self.policy_index.clone(),
            observed_cluster_count: -1,
            selected: Some(
                self.bindings
                    .values()
                    .filter(|b| b["spec"]["state"] != "Unscheduled")
                    .map(|b| b["spec"]["targetCluster"].as_str().unwrap().to_string())
                    .collect(),
            ),
        };
        let bindings: Vec<Binding<'_>> = self
            .bindings
            .values()
            .map(|b| Binding {
                name: b["metadata"]["name"].as_str().unwrap().to_string(),
                cluster: b["spec"]["targetCluster"].as_str().unwrap(),
                spec: &b["spec"],
                status: &b["status"],
                generation: b["metadata"]["generation"].as_i64(),
                deleting: !b["metadata"]["deletionTimestamp"].is_null(),
            })
            .collect();
        let overrides = self
            .clusters
            .keys()
            .map(|c| {
                let cro = if c == "canary1" {
                    json!(["canary-tweak-0"])
                } else {
                    json!([])
                };
                (c.clone(), (cro, json!([])))
            })
            .collect();
        let step = step(&Observed {
            run: &self.run,
            now: self.now(),
            placement: self.placement.as_ref(),
            strategy: self.strategy.as_ref(),
            latest_resource_index: self.resource_indexes.iter().max().copied(),
            resource_indexes: self.resource_indexes.clone(),
            policy: Some(policy),
            clusters: &self.clusters,
            bindings,
            overrides,
            approvals: self.approvals.iter().map(|(k, v)| (k.clone(), v)).collect(),
        });
        self.writes.clear();
        self.run["status"] = step.status;
        for (name, patch) in step.bind {
            let b = self
                .bindings
                .values_mut()
                .find(|b| b["metadata"]["name"] == name.as_str())
                .unwrap();
            for (k, v) in patch.as_object().unwrap() {
                b["spec"][k] = v.clone();
            }
            let g = b["metadata"]["generation"].as_i64().unwrap() + 1;
            b["metadata"]["generation"] = json!(g);
            self.writes.push(format!(
                "bind {name} to {} (overrides {} {})",
                patch["resourceSnapshotName"].as_str().unwrap(),
                patch["clusterResourceOverrideSnapshots"],
                patch["resourceOverrideSnapshots"]
            ));
        }
        for name in step.delete_bindings {
            self.bindings
                .retain(|_, b| b["metadata"]["name"] != name.as_str());
            self.writes.push(format!("delete binding {name}"));
        }
        for a in step.create_approvals {
            let name = a["metadata"]["name"].as_str().unwrap().to_string();
            self.writes.push(format!(
                "create approval request {name} (labels {})",
                a["metadata"]["labels"]
            ));
            let mut a = a;
            a["metadata"]["generation"] = json!(1);
            self.approvals.insert(name, a);
        }
        for (name, conds) in step.accept_approvals {
            self.approvals.get_mut(&name).unwrap()["status"]["conditions"] = conds;
            self.writes.push(format!("accept approval {name}"));
        }
        self.requeue = step.requeue;
    }

    /// The member's agent reports the cluster's binding available for its generation.
    fn available(&mut self, cluster: &str) {
        let b = self.bindings.get_mut(cluster).unwrap();
        let g = b["metadata"]["generation"].clone();
        b["status"] = json!({"conditions": [{"type": "Available", "status": "True",
            "reason": "AllWorkAreAvailable", "observedGeneration": g,
            "lastTransitionTime": conditions::timestamp(DateTime::from_timestamp(self.now, 0).unwrap())}]});
    }

    fn approve(&mut self, name: &str) {
        let a = self.approvals.get_mut(name).expect("the request exists");
        a["status"] = json!({"conditions": [{"type": "Approved", "status": "True",
            "reason": "lgtm", "message": "", "observedGeneration": 1,
            "lastTransitionTime": "2027-01-01T00:00:00Z"}]});
    }
}

fn cond_line(conds: &Value) -> String {
    conds
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} {}",
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run as a person reads it, and what the pass wrote.
fn render(w: &World) -> String {
    let s = &w.run["status"];
    let mut out = format!("run: {}\n", cond_line(&s["conditions"]));
    let stages = s["stagesStatus"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&s["deletionStageStatus"]).filter(|d| !d.is_null()));
    for st in stages {
        out += &format!(
            "  {}: {}\n",
            st["stageName"].as_str().unwrap(),
            cond_line(&st["conditions"])
        );
        for c in st["clusters"].as_array().into_iter().flatten() {
            let started = is(&c["conditions"], "Started", "True");
            let state = match conditions::find(&c["conditions"], "Succeeded") {
                Some(x) => x["reason"].as_str().unwrap().to_string(),
                None if started => "updating".into(),
                None => "waiting".into(),
            };
            out += &format!("    {} {state}\n", c["clusterName"].as_str().unwrap());
        }
        for field in ["beforeStageTaskStatus", "afterStageTaskStatus"] {
            for t in st[field].as_array().into_iter().flatten() {
                out += &format!(
                    "    {} {}{}: {}\n",
                    &field[..field.len() - "StageTaskStatus".len()],
                    t["type"].as_str().unwrap(),
                    t["approvalRequestName"]
                        .as_str()
                        .map_or(String::new(), |n| format!(" {n}")),
                    cond_line(&t["conditions"])
                );
            }
        }
    }
    for wr in &w.writes {
        out += &format!("> {wr}\n");
    }
    if let Some(r) = w.requeue {
        out += &format!("> look again in {r:?}\n");
    }
    out
}

fn check(w: &World, expected: Expect) {
    expected.assert_eq(&render(w));
}

#[test]
fn a_three_stage_run_waits_for_its_timer_and_approvals_and_goes_stage_by_stage() {
    let mut w = World::new();
    // Initialize computes the stages and starts nothing.
    w.pass();
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully
          canary: 
            canary1 waiting
            after TimedWait: 
          half: 
            prod-b waiting
            prod-d waiting
            prod-c waiting
            prod-a waiting
            before Approval r-before-half: 
          rest: 
            other waiting
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
    "#]],
    );
    assert_eq!(w.run["status"]["resourceSnapshotIndexUsed"], "1");
    assert_eq!(
        w.run["status"]["stagesStatus"][0]["clusters"][0]["clusterResourceOverrideSnapshots"],
        json!(["canary-tweak-0"])
    );

    // Run: the canary goes first (one at a time by default), with its overrides.
    w.set_state("Run");
    w.pass();
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=True UpdateRunProgressing
          canary: Progressing=True StageUpdatingStarted
            canary1 updating
            after TimedWait: 
          half: 
            prod-b waiting
            prod-d waiting
            prod-c waiting
            prod-a waiting
            before Approval r-before-half: 
          rest: 
            other waiting
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
        > bind web-canary1 to web-1-snapshot (overrides ["canary-tweak-0"] [])
        > look again in 15s
    "#]],
    );
    w.available("canary1");
    w.pass();
    // Its stage waits a minute after its clusters finished.
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=False UpdateRunWaiting
          canary: Progressing=False StageUpdatingWaiting
            canary1 ClusterUpdatingSucceeded
            after TimedWait: 
          half: 
            prod-b waiting
            prod-d waiting
            prod-c waiting
            prod-a waiting
            before Approval r-before-half: 
          rest: 
            other waiting
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
        > look again in 60s
    "#]],
    );
    w.now += 61;
    w.pass();
    // Then the next stage waits for its approval.
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=False UpdateRunWaiting
          canary: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            canary1 ClusterUpdatingSucceeded
            after TimedWait: WaitTimeElapsed=True AfterStageTaskWaitTimeElapsed
          half: Progressing=False StageUpdatingWaiting
            prod-b waiting
            prod-d waiting
            prod-c waiting
            prod-a waiting
            before Approval r-before-half: 
          rest: 
            other waiting
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
        > create approval request r-before-half (labels {"kubernetes-fleet.io/targetUpdatingStage":"half","kubernetes-fleet.io/targetupdaterun":"r","kubernetes-fleet.io/taskType":"beforeStage","kubernetes-fleet.io/isLatestUpdateRunApproval":"true"})
    "#]],
    );
    w.approve("r-before-half");
    w.pass();
    // Half of four at a time, in the order of their label.
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=True UpdateRunProgressing
          canary: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            canary1 ClusterUpdatingSucceeded
            after TimedWait: WaitTimeElapsed=True AfterStageTaskWaitTimeElapsed
          half: Progressing=True StageUpdatingStarted
            prod-b updating
            prod-d updating
            prod-c waiting
            prod-a waiting
            before Approval r-before-half: ApprovalRequestCreated=True StageTaskApprovalRequestCreated, ApprovalRequestApproved=True StageTaskApprovalRequestApproved
          rest: 
            other waiting
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
        > bind web-prod-b to web-1-snapshot (overrides [] [])
        > bind web-prod-d to web-1-snapshot (overrides [] [])
        > accept approval r-before-half
        > look again in 15s
    "#]],
    );
    w.available("prod-b");
    w.pass();
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=True UpdateRunProgressing
          canary: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            canary1 ClusterUpdatingSucceeded
            after TimedWait: WaitTimeElapsed=True AfterStageTaskWaitTimeElapsed
          half: Progressing=True StageUpdatingStarted
            prod-b ClusterUpdatingSucceeded
            prod-d updating
            prod-c updating
            prod-a waiting
            before Approval r-before-half: ApprovalRequestCreated=True StageTaskApprovalRequestCreated, ApprovalRequestApproved=True StageTaskApprovalRequestApproved
          rest: 
            other waiting
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
        > bind web-prod-c to web-1-snapshot (overrides [] [])
        > look again in 15s
    "#]],
    );
    for c in ["prod-d", "prod-c", "prod-a"] {
        w.available(c);
        w.pass();
    }
    w.pass();
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=True UpdateRunProgressing
          canary: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            canary1 ClusterUpdatingSucceeded
            after TimedWait: WaitTimeElapsed=True AfterStageTaskWaitTimeElapsed
          half: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            prod-b ClusterUpdatingSucceeded
            prod-d ClusterUpdatingSucceeded
            prod-c ClusterUpdatingSucceeded
            prod-a ClusterUpdatingSucceeded
            before Approval r-before-half: ApprovalRequestCreated=True StageTaskApprovalRequestCreated, ApprovalRequestApproved=True StageTaskApprovalRequestApproved
          rest: Progressing=True StageUpdatingStarted
            other updating
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
        > look again in 15s
    "#]],
    );
    w.available("other");
    w.pass();
    // The last stage waits for its after-stage approval.
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=False UpdateRunWaiting
          canary: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            canary1 ClusterUpdatingSucceeded
            after TimedWait: WaitTimeElapsed=True AfterStageTaskWaitTimeElapsed
          half: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            prod-b ClusterUpdatingSucceeded
            prod-d ClusterUpdatingSucceeded
            prod-c ClusterUpdatingSucceeded
            prod-a ClusterUpdatingSucceeded
            before Approval r-before-half: ApprovalRequestCreated=True StageTaskApprovalRequestCreated, ApprovalRequestApproved=True StageTaskApprovalRequestApproved
          rest: Progressing=False StageUpdatingWaiting
            other ClusterUpdatingSucceeded
            after Approval r-after-rest: 
          kubernetes-fleet.io/deleteStage: 
        > create approval request r-after-rest (labels {"kubernetes-fleet.io/targetUpdatingStage":"rest","kubernetes-fleet.io/targetupdaterun":"r","kubernetes-fleet.io/taskType":"afterStage","kubernetes-fleet.io/isLatestUpdateRunApproval":"true"})
    "#]],
    );
    w.approve("r-after-rest");
    w.pass();
    check(
        &w,
        expect![[r#"
        run: Initialized=True UpdateRunInitializedSuccessfully, Progressing=False UpdateRunSucceeded, Succeeded=True UpdateRunSucceeded
          canary: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            canary1 ClusterUpdatingSucceeded
            after TimedWait: WaitTimeElapsed=True AfterStageTaskWaitTimeElapsed
          half: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            prod-b ClusterUpdatingSucceeded
            prod-d ClusterUpdatingSucceeded
            prod-c ClusterUpdatingSucceeded
            prod-a ClusterUpdatingSucceeded
            before Approval r-before-half: ApprovalRequestCreated=True StageTaskApprovalRequestCreated, ApprovalRequestApproved=True StageTaskApprovalRequestApproved
          rest: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
            other ClusterUpdatingSucceeded
            after Approval r-after-rest: ApprovalRequestCreated=True StageTaskApprovalRequestCreated, ApprovalRequestApproved=True StageTaskApprovalRequestApproved
          kubernetes-fleet.io/deleteStage: Progressing=False StageUpdatingSucceeded, Succeeded=True StageUpdatingSucceeded
        > accept approval r-after-rest
    "#]],
    );
    // Finished: nothing more.
    w.pass();
    assert!(w.writes.is_empty() && w.requeue.is_none());
}

/// A world with one stage of every cluster, `maxConcurrency` 2.
fn one_stage() -> World {
    let mut w = World::new();
    w.strategy =
        Some(json!({"stages": [{"name": "all", "labelSelector": {}, "maxConcurrency": 2}]}));
    w.set_state("Run");
    w
}

fn cluster_states(w: &World) -> String {
    w.run["status"]["stagesStatus"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["clusters"].as_array().unwrap().clone())
        .map(|c| {
            let st = match conditions::find(&c["conditions"], "Succeeded") {
                Some(x) => x["reason"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("ClusterUpdating")
                    .to_string(),
                None if is(&c["conditions"], "Started", "True") => "updating".into(),
                None => "-".into(),
            };
            format!("{}:{st}", c["clusterName"].as_str().unwrap())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_condition(w: &World, ty: &str) -> (String, String) {
    let c = conditions::find(&w.run["status"]["conditions"], ty)
        .cloned()
        .unwrap_or_default();
    (
        c["status"].as_str().unwrap_or("").to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn stop_finishes_the_clusters_updating_and_run_resumes_where_it_stopped() {
    let mut w = one_stage();
    w.pass();
    assert_eq!(
        cluster_states(&w),
        "canary1:updating other:updating prod-a:- prod-b:- prod-c:- prod-d:-"
    );
    w.set_state("Stop");
    w.pass();
    // Stopping: the two updating finish, nothing new starts.
    assert_eq!(
        run_condition(&w, "Progressing"),
        ("Unknown".into(), "UpdateRunStopping".into())
    );
    assert!(w.writes.is_empty(), "{:?}", w.writes);
    w.available("canary1");
    w.available("other");
    w.pass();
    assert_eq!(
        cluster_states(&w),
        "canary1:Succeeded other:Succeeded prod-a:- prod-b:- prod-c:- prod-d:-"
    );
    assert_eq!(
        run_condition(&w, "Progressing"),
        ("False".into(), "UpdateRunStopped".into())
    );
    assert_eq!(
        conditions::find(
            &w.run["status"]["stagesStatus"][0]["conditions"],
            "Progressing"
        )
        .unwrap()["reason"],
        "StageUpdatingStopped"
    );
    assert!(w.writes.is_empty());
    // KubeFleet's later name for Run resumes it as well.
    w.set_state("Execute");
    w.pass();
    assert_eq!(
        w.writes,
        [
            "bind web-prod-a to web-1-snapshot (overrides [] [])",
            "bind web-prod-b to web-1-snapshot (overrides [] [])"
        ]
    );
    assert_eq!(
        run_condition(&w, "Progressing"),
        ("True".into(), "UpdateRunProgressing".into())
    );
}

#[test]
fn clusters_that_leave_are_skipped_and_the_deletion_stage_removes_the_deselected() {
    let mut w = one_stage();
    // "other" was deselected before the run: the deletion stage removes it at the end.
    w.bindings.get_mut("other").unwrap()["spec"]["state"] = json!("Unscheduled");
    w.pass();
    assert_eq!(
        cluster_states(&w),
        "canary1:updating prod-a:updating prod-b:- prod-c:- prod-d:-"
    );
    // prod-b leaves the placement before its turn: skipped, not a failure.
    w.bindings.get_mut("prod-b").unwrap()["spec"]["state"] = json!("Unscheduled");
    w.available("canary1");
    w.available("prod-a");
    w.pass();
    assert_eq!(
        cluster_states(&w),
        "canary1:Succeeded prod-a:Succeeded prod-b:Skipped prod-c:updating prod-d:updating"
    );
    w.available("prod-c");
    w.available("prod-d");
    w.pass();
    assert_eq!(w.writes, ["delete binding web-other"]);
    assert_eq!(run_condition(&w, "Succeeded").0, "");
    w.pass();
    assert_eq!(
        run_condition(&w, "Succeeded"),
        ("True".into(), "UpdateRunSucceeded".into())
    );
    // prod-b's binding stays: it is the placement's to remove, not the run's (it was not
    // deselected when the run started).
    assert!(w.bindings.contains_key("prod-b"));
}

#[test]
fn newcomers_join_the_named_stage_or_are_left_to_the_placement() {
    for (annotation, want) in [
        (
            None,
            "canary1:updating other:updating prod-a:- prod-b:- prod-c:- prod-d:-",
        ),
        (
            Some("all"),
            "canary1:updating other:updating prod-a:- prod-b:- prod-c:- prod-d:- zeta:-",
        ),
    ] {
        let mut w = one_stage();
        if let Some(a) = annotation {
            w.run["metadata"]["annotations"] = json!({NEWCOMERS_STAGE: a});
        }
        w.pass();
        // A cluster joins: scheduled under the same policy, Scheduled.
        w.clusters.insert("zeta".into(), BTreeMap::new());
        w.bind_old("zeta");
        w.bindings.get_mut("zeta").unwrap()["spec"]["state"] = json!("Scheduled");
        w.pass();
        assert_eq!(cluster_states(&w), want, "{annotation:?}");
    }
}

#[test]
fn a_stage_without_clusters_is_skipped_with_its_tasks() {
    let mut w = World::new();
    w.strategy = Some(json!({"stages": [
        {"name": "nobody", "labelSelector": {"matchLabels": {"env": "none"}},
            "afterStageTasks": [{"type": "Approval"}]},
        {"name": "absent"},
        {"name": "all", "labelSelector": {}, "maxConcurrency": "100%"}
    ]}));
    w.set_state("Run");
    w.pass();
    let stages = &w.run["status"]["stagesStatus"];
    for i in 0..2 {
        assert_eq!(
            conditions::find(&stages[i]["conditions"], "Succeeded").unwrap()["reason"],
            "StageUpdatingSkippedNoClusters"
        );
    }
    assert_eq!(w.writes.len(), 6, "100% of six at once: {:?}", w.writes);
    assert!(w.approvals.is_empty());
}

#[test]
fn clusters_matching_no_stage_are_named_and_left_out() {
    let mut w = World::new();
    w.strategy = Some(json!({"stages": [
        {"name": "prod", "labelSelector": {"matchLabels": {"env": "prod"}}}]}));
    w.pass();
    let init = conditions::find(&w.run["status"]["conditions"], "Initialized").unwrap();
    assert_eq!(init["status"], "True");
    assert_eq!(
        init["message"],
        "the stages are computed; clusters that match no stage keep what they have: canary1, other"
    );
}

#[test]
fn a_run_that_cannot_start_says_why_and_does_nothing_more() {
    type Change = Box<dyn Fn(&mut World)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "no placement",
            Box::new(|w: &mut World| w.placement = None),
            "the placement \"web\" is not found",
        ),
        (
            "rolling update",
            Box::new(|w: &mut World| {
                w.placement.as_mut().unwrap()["spec"]["strategy"]["type"] = json!("RollingUpdate")
            }),
            "does not use the External rollout strategy",
        ),
        (
            "no strategy",
            Box::new(|w: &mut World| w.strategy = None),
            "the update strategy \"three\" is not found",
        ),
        (
            "no snapshot",
            Box::new(|w: &mut World| w.run["spec"]["resourceSnapshotIndex"] = json!("7")),
            "the resource snapshot with index 7 of placement \"web\" is not found",
        ),
        (
            "bad index",
            Box::new(|w: &mut World| w.run["spec"]["resourceSnapshotIndex"] = json!("x")),
            "resourceSnapshotIndex \"x\" is not an integer",
        ),
    ];
    for (case, change, why) in cases {
        let mut w = World::new();
        change(&mut w);
        w.pass();
        let init = conditions::find(&w.run["status"]["conditions"], "Initialized")
            .unwrap()
            .clone();
        assert_eq!(init["status"], "False", "{case}");
        assert_eq!(init["reason"], "UpdateRunInitializedFailed", "{case}");
        assert!(
            init["message"].as_str().unwrap().contains(why),
            "{case}: {init}"
        );
        // Terminal: Run does not revive it.
        w.set_state("Run");
        w.pass();
        assert!(w.writes.is_empty(), "{case}");
    }
    // With no index given, the latest snapshot is released.
    let mut w = World::new();
    w.run["spec"]["resourceSnapshotIndex"] = json!("");
    w.resource_indexes.insert(4);
    w.pass();
    assert_eq!(w.run["status"]["resourceSnapshotIndexUsed"], "4");
}

#[test]
fn a_binding_changed_under_the_run_or_a_new_policy_fails_it() {
    let mut w = one_stage();
    w.pass();
    // Another run (or a person) points canary1 elsewhere while it updates.
    w.bindings.get_mut("canary1").unwrap()["spec"]["resourceSnapshotName"] =
        json!("web-0-snapshot");
    w.pass();
    assert_eq!(
        run_condition(&w, "Succeeded"),
        ("False".into(), "UpdateRunFailed".into())
    );
    assert!(cluster_states(&w).starts_with("canary1:Failed"));

    let mut w = one_stage();
    w.pass();
    w.policy_index = "1".into();
    w.pass();
    assert_eq!(
        run_condition(&w, "Succeeded"),
        ("False".into(), "UpdateRunFailed".into())
    );
    let msg =
        conditions::find(&w.run["status"]["conditions"], "Succeeded").unwrap()["message"].clone();
    assert!(
        msg.as_str().unwrap().contains("scheduling policy changed"),
        "{msg}"
    );
}

#[test]
fn a_cluster_updating_for_five_minutes_marks_the_run_stuck() {
    let mut w = one_stage();
    w.pass();
    w.now += 299;
    w.pass();
    assert_eq!(
        run_condition(&w, "Progressing"),
        ("True".into(), "UpdateRunProgressing".into())
    );
    w.now += 2;
    w.pass();
    assert_eq!(
        run_condition(&w, "Progressing"),
        ("False".into(), "UpdateRunStuck".into())
    );
    let msg =
        conditions::find(&w.run["status"]["conditions"], "Progressing").unwrap()["message"].clone();
    assert!(msg.as_str().unwrap().contains("canary1, other"), "{msg}");
    // Once they finish it goes on.
    w.available("canary1");
    w.available("other");
    w.pass();
    assert_eq!(
        run_condition(&w, "Progressing"),
        ("True".into(), "UpdateRunProgressing".into())
    );
}

#[test]
fn an_approval_given_before_the_run_takes_it_is_kept_even_if_withdrawn() {
    let mut w = World::new();
    w.strategy = Some(
        json!({"stages": [{"name": "all", "labelSelector": {}, "beforeStageTasks": [{"type": "Approval"}]}]}),
    );
    w.set_state("Run");
    w.pass();
    assert_eq!(w.writes.len(), 1, "{:?}", w.writes);
    w.approve("r-before-all");
    w.pass();
    assert!(w
        .writes
        .contains(&"accept approval r-before-all".to_string()));
    // Withdrawn after acceptance: the run goes on.
    w.approvals.get_mut("r-before-all").unwrap()["status"]["conditions"][0]["status"] =
        json!("False");
    w.pass();
    assert_eq!(run_condition(&w, "Progressing").1, "UpdateRunProgressing");
}

#[test]
fn durations_read_as_kubefleet_writes_them() {
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("0"), Some(Duration::ZERO));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("5d"), None);
}

#[test]
fn a_run_created_with_its_placement_waits_for_it_then_gives_up() {
    let mut w = World::new();
    w.run["metadata"]["creationTimestamp"] = json!(conditions::timestamp(w.now()));
    w.placement = None;
    w.pass();
    // Nothing said yet; looked at again in a second.
    assert!(conditions::find(&w.run["status"]["conditions"], "Initialized").is_none());
    assert_eq!(w.requeue, Some(Duration::from_secs(1)));
    // It appears: the run initializes.
    w.placement =
        Some(json!({"metadata": {"name": "web"}, "spec": {"strategy": {"type": "External"}}}));
    w.pass();
    assert_eq!(run_condition(&w, "Initialized").0, "True");
    // One that never appears: after a minute the run fails to initialize.
    let mut w = World::new();
    w.run["metadata"]["creationTimestamp"] = json!(conditions::timestamp(w.now()));
    w.strategy = None;
    w.pass();
    assert!(conditions::find(&w.run["status"]["conditions"], "Initialized").is_none());
    w.now += 61;
    w.pass();
    assert_eq!(
        run_condition(&w, "Initialized"),
        ("False".into(), "UpdateRunInitializedFailed".into())
    );
}
