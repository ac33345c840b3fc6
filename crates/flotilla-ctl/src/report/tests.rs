use expect_test::expect;
use serde_json::json;

use super::*;

fn c(ty: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": ty, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2027-01-15T08:00:00Z", "observedGeneration": 2})
}

#[test]
fn a_rolling_update_shows_each_cluster_and_what_holds_it() {
    let ok = |ty: &str| c(ty, "True", "x", "");
    let p = json!({"kind": "ClusterResourcePlacement", "metadata": {"name": "web", "generation": 2},
    "status": {"observedResourceIndex": "3",
        "conditions": [c("ClusterResourcePlacementRolloutStarted", "False", "RolloutNotStartedYet", "")],
        "placementStatuses": [
            {"clusterName": "member-1", "conditions": [ok("Scheduled"), ok("RolloutStarted"), ok("Overridden"),
                ok("WorkSynchronized"), ok("Applied"), ok("Available")]},
            {"clusterName": "member-2", "conditions": [ok("Scheduled"), ok("RolloutStarted"), ok("Overridden"),
                ok("WorkSynchronized"), c("Applied", "Unknown", "WorkApplyPending", "the member's agent has not reported")]},
            {"clusterName": "member-3", "conditions": [ok("Scheduled"),
                c("RolloutStarted", "False", "RolloutNotStartedYet", "the rollout strategy holds the cluster back")]}
        ]}});
    let r = rolling(&p);
    assert_eq!(r.outcome, Outcome::InProgress);
    expect![[r#"
        ClusterResourcePlacement web: rolling update of resource snapshot 3, 1 of 3 clusters done
        NAME      PROGRESS          STATE      DETAIL
        member-1  [########] 1/1    Available
        member-2  [--------] 0/1    Updating   Applied: the member's agent has not reported
        member-3  [--------] 0/1    Held back  the rollout strategy holds the cluster back
    "#]]
    .assert_eq(&render(&r));

    // A failed apply fails the rollout, naming the objects.
    let mut failed = p.clone();
    failed["status"]["placementStatuses"][1]["conditions"][4] = c(
        "Applied",
        "False",
        "WorkNotAppliedYet",
        "1 of 2 objects applied",
    );
    failed["status"]["placementStatuses"][1]["failedPlacements"] = json!([
        {"kind": "Deployment", "name": "web", "condition": {"message": "image pull policy invalid"}}]);
    let r = rolling(&failed);
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(
        r.lines[1].detail,
        "Applied False: Deployment web: image pull policy invalid"
    );

    // Available for the current generation: done.
    let mut done = p;
    done["status"]["conditions"] = json!([c(
        "ClusterResourcePlacementAvailable",
        "True",
        "ResourceAvailable",
        ""
    )]);
    assert_eq!(rolling(&done).outcome, Outcome::Done);
    done["metadata"]["generation"] = json!(3);
    assert_eq!(
        rolling(&done).outcome,
        Outcome::InProgress,
        "as of an older generation"
    );
}

fn cluster(name: &str, started: bool, succeeded: Option<&str>) -> Value {
    let mut conds = vec![];
    if started {
        conds.push(c("Started", "True", "ClusterUpdatingStarted", ""));
    }
    if let Some(s) = succeeded {
        conds.push(c("Succeeded", s, "x", "the binding changed under the run"));
    }
    json!({"clusterName": name, "conditions": conds})
}

#[test]
fn a_staged_run_shows_each_stage_and_what_it_waits_for() {
    let now = DateTime::parse_from_rfc3339("2027-01-15T08:00:40Z")
        .unwrap()
        .with_timezone(&Utc);
    let run = json!({"metadata": {"name": "release-2"},
        "spec": {"placementName": "web", "state": "Run"},
        "status": {
            "resourceSnapshotIndexUsed": "4",
            "conditions": [c("Initialized", "True", "UpdateRunInitializedSuccessfully", ""),
                c("Progressing", "False", "UpdateRunWaiting", "waiting for after-stage tasks in stage canary")],
            "stagedUpdateStrategySnapshot": {"stages": [
                {"name": "canary", "afterStageTasks": [{"type": "TimedWait", "waitTime": "1m"}, {"type": "Approval"}]},
                {"name": "prod", "beforeStageTasks": [{"type": "Approval"}]},
                {"name": "empty"}]},
            "stagesStatus": [
                {"stageName": "canary", "clusters": [cluster("member-1", true, Some("True"))],
                    "conditions": [c("Progressing", "False", "StageUpdatingWaiting", "")],
                    "afterStageTaskStatus": [{"type": "TimedWait"},
                        {"type": "Approval", "approvalRequestName": "release-2-after-canary"}]},
                {"stageName": "prod", "clusters": [cluster("member-2", false, None), cluster("member-3", false, None)],
                    "beforeStageTaskStatus": [{"type": "Approval", "approvalRequestName": "release-2-before-prod"}]},
                {"stageName": "empty", "clusters": [],
                    "conditions": [c("Succeeded", "True", "StageUpdatingSkippedNoClusters", "")]}],
            "deletionStageStatus": {"stageName": "kubernetes-fleet.io/deleteStage", "clusters": []}}});
    let r = staged(&run, now);
    assert_eq!(r.outcome, Outcome::InProgress);
    expect![[r#"
        run release-2 of placement web: resource snapshot 4, state Run: waiting for after-stage tasks in stage canary
        NAME        PROGRESS          STATE    DETAIL
        canary      [########] 1/1    Waiting  timer 1m (20s left), approval release-2-after-canary (flotilla approve release-2 canary)
        prod        [--------] 0/2    Pending
        empty       [########] 0/0    Skipped
        (deletion)  [########] 0/0    Pending
    "#]]
    .assert_eq(&render(&r));

    // A failed cluster fails the run's report; a stopped run says so.
    let mut failed = run.clone();
    failed["status"]["stagesStatus"][1]["clusters"][0] = cluster("member-2", true, Some("False"));
    failed["status"]["conditions"][1] = c(
        "Succeeded",
        "False",
        "UpdateRunFailed",
        "the binding changed",
    );
    let r = staged(&failed, now);
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.lines[1].state, "Failed");
    assert_eq!(
        r.lines[1].detail,
        "member-2: the binding changed under the run"
    );
    // The stage in progress lists its clusters.
    expect![[r#"
        run release-2 of placement web: resource snapshot 4, state Run: the binding changed
        NAME        PROGRESS          STATE    DETAIL
        canary      [########] 1/1    Waiting  timer 1m (20s left), approval release-2-after-canary (flotilla approve release-2 canary)
        prod        [--------] 0/2    Failed   member-2: the binding changed under the run
          member-2  [--------] 0/1    Failed   the binding changed under the run
          member-3  [--------] 0/1    Pending
        empty       [########] 0/0    Skipped
        (deletion)  [########] 0/0    Pending
    "#]].assert_eq(&render(&r));
    let mut stopped = run;
    stopped["spec"]["state"] = json!("Stop");
    stopped["status"]["conditions"][1] = c(
        "Progressing",
        "False",
        "UpdateRunStopped",
        "The update run has been stopped",
    );
    assert_eq!(staged(&stopped, now).outcome, Outcome::Stopped);
    assert_eq!(to_value(&staged(&stopped, now))["outcome"], "Stopped");
}

#[test]
fn exit_codes_tell_pipelines_how_it_ended() {
    assert_eq!(
        [
            Outcome::Done,
            Outcome::Failed,
            Outcome::Stopped,
            Outcome::InProgress
        ]
        .map(Outcome::code),
        [0, 1, 3, 4]
    );
}
