//! Rollouts end to end: `flotilla up` with ten simulated members; a placement's rolling update
//! is checked from what the members themselves went through (each member's Deployment watched
//! from the start), not from timings.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use crate::support::*;

/// A fleet of simulated members under one `flotilla up`.
struct Fleet {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fleet {
    fn start(members: usize, workload_delay_ms: u64) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["up", "--members", &members.to_string(), "--data-dir"])
            .arg(dir.path())
            .args([
                "--bind",
                "127.0.0.1:0",
                "--heartbeat-period-seconds",
                "2",
                "--workload-delay-ms",
                &workload_delay_ms.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("fleet.log")).unwrap())
            .spawn()
            .unwrap();
        let fleet = Fleet { child, dir };
        wait_joined(&fleet.hub(), members, Duration::from_secs(90));
        fleet
    }

    fn hub(&self) -> PathBuf {
        self.dir.path().join("hub/admin.kubeconfig")
    }

    fn member(&self, m: usize) -> PathBuf {
        self.dir.path().join(format!("member-{m}/admin.kubeconfig"))
    }

    fn apply(&self, yaml: &str) {
        let out = kubectl_apply(&self.hub(), yaml);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fleet.log")).unwrap_or_default()
    }
}

/// What a member's Deployment showed at one moment: its image, and whether every replica runs
/// that image and is available.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    member: usize,
    image: String,
    settled: bool,
}

fn seen(member: usize, d: &Deployment) -> Seen {
    let spec = d.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    let image = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    let settled = st.observed_generation == d.metadata.generation
        && st.replicas == Some(want)
        && st.updated_replicas == Some(want)
        && st.available_replicas == Some(want);
    Seen {
        member,
        image,
        settled,
    }
}

fn app(image: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata:
  name: roll
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: roll
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
"#
    )
}

/// The largest number of members updating at once (showing the new image, not yet settled on
/// it) in the recorded sequence, replayed in the order the watches saw it.
fn most_updating_at_once(events: &[Seen], members: usize, new_image: &str) -> usize {
    let mut state: Vec<Option<&Seen>> = vec![None; members + 1];
    let mut most = 0;
    for e in events {
        state[e.member] = Some(e);
        let updating = state
            .iter()
            .flatten()
            .filter(|s| s.image == new_image && !s.settled)
            .count();
        most = most.max(updating);
    }
    most
}

#[test]
fn a_rolling_update_never_takes_more_than_max_unavailable_down() {
    const MEMBERS: usize = 10;
    let fleet = Fleet::start(MEMBERS, 1500);
    fleet.apply(&app("web:1"));
    // The Namespace has no status to judge: each cluster counts as ready 2 s after it applied
    // (unavailablePeriodSeconds), the Deployment once it is available.
    fleet.apply(
        r#"
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacement
metadata:
  name: web
spec:
  resourceSelectors:
  - {group: "", version: v1, kind: Namespace, name: roll}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 20%
      maxSurge: 25%
      unavailablePeriodSeconds: 2
"#,
    );
    let placement_available = |index: &str| {
        let p = get_json(&fleet.hub(), &["get", "crp", "web"])?;
        (condition(&p, "ClusterResourcePlacementAvailable").0 == "True"
            && p["status"]["observedResourceIndex"] == index)
            .then_some(p)
    };
    wait_for(
        "the first version everywhere",
        Duration::from_secs(90),
        || placement_available("0"),
    );

    // Every member's Deployment, watched from here on.
    let events: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for m in 1..=MEMBERS {
        let (kubeconfig, events) = (fleet.member(m), events.clone());
        rt.spawn(async move {
            let api: Api<Deployment> = Api::namespaced(client(&kubeconfig).await, "roll");
            let cfg = watcher::Config::default().fields("metadata.name=web");
            let mut stream = watcher(api, cfg).applied_objects().boxed();
            while let Some(Ok(d)) = stream.next().await {
                events.lock().unwrap().push(seen(m, &d));
            }
        });
    }
    wait_for(
        "every member's watch to start",
        Duration::from_secs(30),
        || {
            let e = events.lock().unwrap();
            (1..=MEMBERS)
                .all(|m| {
                    e.iter()
                        .any(|s| s.member == m && s.image == "web:1" && s.settled)
                })
                .then_some(())
        },
    );

    // The new version; while it rolls out the placement says the strategy holds clusters back.
    fleet.apply(&app("web:2"));
    let mut held_back_seen = false;
    wait_for(
        "the second version everywhere",
        Duration::from_secs(180),
        || {
            let p = get_json(&fleet.hub(), &["get", "crp", "web"])?;
            if condition(&p, "ClusterResourcePlacementRolloutStarted")
                == ("False".into(), "RolloutNotStartedYet".into())
            {
                held_back_seen = true;
            }
            placement_available("1")
        },
    );
    // The watches may lag a moment behind the agents that reported to the hub.
    let events = wait_for(
        "every member to show web:2 settled",
        Duration::from_secs(30),
        || {
            let events = events.lock().unwrap().clone();
            (1..=MEMBERS)
                .all(|m| {
                    events
                        .iter()
                        .rev()
                        .find(|s| s.member == m)
                        .is_some_and(|s| s.image == "web:2" && s.settled)
                })
                .then_some(events)
        },
    );
    // 20% of 10: at most two members update at once, and the budget is used.
    let most = most_updating_at_once(&events, MEMBERS, "web:2");
    assert_eq!(most, 2, "members updating at once, at most: {events:#?}");
    assert!(
        held_back_seen,
        "the placement never said it held clusters back\n{}",
        fleet.log()
    );
    // The command line says it is done, cluster by cluster.
    let out = flotilla()
        .args([
            "rollout",
            "status",
            "web",
            "--watch",
            "--timeout",
            "60",
            "--kubeconfig",
        ])
        .arg(fleet.hub())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(table.contains("10 of 10 clusters done"), "{table}");
    // Each cluster's binding says its rollout started once it moved, and how it is available.
    let bindings = get_json(&fleet.hub(), &["get", "clusterresourcebindings"]).unwrap();
    for b in bindings["items"].as_array().unwrap() {
        assert_eq!(b["spec"]["resourceSnapshotName"], "web-1-snapshot");
        assert_eq!(condition(b, "RolloutStarted").0, "True", "{b}");
        // The Namespace has no status to judge: the agent says so, and the rollout waited.
        assert_eq!(
            condition(b, "Available"),
            ("True".into(), "NotAllWorkAreAvailabilityTrackable".into()),
            "{b}"
        );
    }
}

#[test]
fn the_staged_update_api_is_served_with_kubefleets_rules() {
    let dir = tempfile::tempdir().unwrap();
    let hub = crate::hub::start_hub(dir.path());
    let kc = &hub.kubeconfig;
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let refused = |out: std::process::Output, why: &str| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "accepted; wanted {why}");
        assert!(err.contains("is invalid") && err.contains(why), "{err}");
    };
    ok(kubectl_apply(
        kc,
        r#"
apiVersion: placement.kubernetes-fleet.io/v1beta1
kind: ClusterStagedUpdateStrategy
metadata:
  name: three-stages
spec:
  stages:
  - name: canary
    labelSelector: {matchLabels: {env: canary}}
    afterStageTasks: [{type: TimedWait, waitTime: 1m}]
  - name: half
    labelSelector: {matchLabels: {env: prod}}
    maxConcurrency: 50%
    beforeStageTasks: [{type: Approval}]
  - name: rest
    labelSelector: {}
"#,
    ));
    // Defaults as KubeFleet declares them; the short names kubectl users type.
    let s = get_json(kc, &["get", "csus", "three-stages"]).unwrap();
    assert_eq!(s["spec"]["stages"][0]["maxConcurrency"], 1);
    assert_eq!(s["spec"]["stages"][1]["maxConcurrency"], "50%");
    refused(
        kubectl_apply(
            kc,
            r#"
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterStagedUpdateStrategy
metadata: {name: bad}
spec:
  stages: [{name: a, afterStageTasks: [{type: TimedWait}]}]
"#,
        ),
        "waitTime is required for a TimedWait task",
    );
    refused(
        kubectl_apply(
            kc,
            r#"
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterStagedUpdateStrategy
metadata: {name: bad}
spec:
  stages: [{name: Not-Lower}]
"#,
        ),
        "spec.stages[0].name",
    );

    ok(kubectl_apply(
        kc,
        r#"
apiVersion: placement.kubernetes-fleet.io/v1beta1
kind: ClusterStagedUpdateRun
metadata: {name: release-1}
spec:
  placementName: web
  resourceSnapshotIndex: "1"
  stagedRolloutStrategyName: three-stages
"#,
    ));
    let r = get_json(kc, &["get", "csur", "release-1"]).unwrap();
    assert_eq!(r["spec"]["state"], "Initialize");
    refused(
        kubectl(
            kc,
            &[
                "patch",
                "csur",
                "release-1",
                "--type=merge",
                "-p",
                r#"{"spec":{"resourceSnapshotIndex":"2"}}"#,
            ],
        ),
        "resourceSnapshotIndex is immutable",
    );
    refused(
        kubectl(
            kc,
            &[
                "patch",
                "csur",
                "release-1",
                "--type=merge",
                "-p",
                r#"{"spec":{"state":"Stop"}}"#,
            ],
        ),
        "cannot transition from Initialize to Stop",
    );
    ok(kubectl(
        kc,
        &[
            "patch",
            "csur",
            "release-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"state":"Run"}}"#,
        ],
    ));

    ok(kubectl_apply(
        kc,
        r#"
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterApprovalRequest
metadata: {name: release-1-before-half}
spec: {parentStageRollout: release-1, targetStage: half}
"#,
    ));
    refused(
        kubectl(
            kc,
            &[
                "patch",
                "careq",
                "release-1-before-half",
                "--type=merge",
                "-p",
                r#"{"spec":{"targetStage":"rest"}}"#,
            ],
        ),
        "The spec field is immutable",
    );
    // A person approves through the status.
    ok(kubectl(
        kc,
        &[
            "patch",
            "careq",
            "release-1-before-half",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Approved","status":"True","reason":"lgtm","message":"","lastTransitionTime":"2026-12-07T00:00:00Z","observedGeneration":1}]}}"#,
        ],
    ));
    let out = kubectl(kc, &["get", "careq"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("release-1") && table.contains("half") && table.contains("True"),
        "{table}"
    );
}

/// The value of ConfigMap `staged/settings` in each member (`-` where absent).
fn versions(fleet: &Fleet, members: usize) -> Vec<String> {
    (1..=members)
        .map(|m| {
            get_json(
                &fleet.member(m),
                &["-n", "staged", "get", "configmap", "settings"],
            )
            .and_then(|c| c["data"]["v"].as_str().map(String::from))
            .unwrap_or_else(|| "-".into())
        })
        .collect()
}

fn run_condition(fleet: &Fleet, run: &str, ty: &str) -> (String, String) {
    get_json(&fleet.hub(), &["get", "csur", run])
        .map(|r| condition(&r, ty))
        .unwrap_or_default()
}

fn approve(fleet: &Fleet, request: &str) {
    wait_for(
        &format!("approval request {request}"),
        Duration::from_secs(60),
        || get_json(&fleet.hub(), &["get", "careq", request]),
    );
    let out = kubectl(
        &fleet.hub(),
        &[
            "patch",
            "careq",
            request,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Approved","status":"True","reason":"lgtm","message":"approved by the test","lastTransitionTime":"2026-12-07T00:00:00Z","observedGeneration":1}]}}"#,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_staged_run_goes_stage_by_stage_through_a_timer_and_approvals() {
    let fleet = Fleet::start(4, 200);
    let hub = fleet.hub();
    for (m, env) in [(1, "canary"), (2, "prod"), (3, "prod"), (4, "dev")] {
        let out = kubectl(
            &hub,
            &[
                "label",
                "membercluster",
                &format!("member-{m}"),
                &format!("env={env}"),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fleet.apply(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: staged}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: staged}
data: {v: "1"}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacement
metadata: {name: staged}
spec:
  resourceSelectors: [{group: "", version: v1, kind: Namespace, name: staged}]
  strategy: {type: External}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterStagedUpdateStrategy
metadata: {name: three}
spec:
  stages:
  - name: canary
    labelSelector: {matchLabels: {env: canary}}
    afterStageTasks: [{type: TimedWait, waitTime: 2s}]
  - name: prod
    labelSelector: {matchLabels: {env: prod}}
    maxConcurrency: 50%
    beforeStageTasks: [{type: Approval}]
  - name: rest
    labelSelector: {}
    afterStageTasks: [{type: Approval}]
"#,
    );
    // External: the placement schedules, but nothing reaches a member before a run.
    wait_for("four scheduled bindings", Duration::from_secs(60), || {
        let b = get_json(&hub, &["get", "clusterresourcebindings"])?;
        let items = b["items"].as_array()?;
        (items.len() == 4 && items.iter().all(|b| b["spec"]["state"] == "Scheduled")).then_some(())
    });
    assert_eq!(versions(&fleet, 4), ["-", "-", "-", "-"]);

    fleet.apply(
        r#"
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterStagedUpdateRun
metadata: {name: release-1}
spec: {placementName: staged, stagedRolloutStrategyName: three, state: Run}
"#,
    );
    // The canary, then (after its 2 s) the prod stage waits for its approval.
    wait_for(
        "the approval request before prod",
        Duration::from_secs(60),
        || get_json(&hub, &["get", "careq", "release-1-before-prod"]),
    );
    wait_for("the canary to get v1", Duration::from_secs(30), || {
        (versions(&fleet, 4) == ["1", "-", "-", "-"]).then_some(())
    });
    assert_eq!(
        run_condition(&fleet, "release-1", "Progressing"),
        ("False".into(), "UpdateRunWaiting".into())
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        versions(&fleet, 4),
        ["1", "-", "-", "-"],
        "nothing moves without approval"
    );
    approve(&fleet, "release-1-before-prod");
    wait_for(
        "the approval request after rest",
        Duration::from_secs(60),
        || get_json(&hub, &["get", "careq", "release-1-after-rest"]),
    );
    wait_for("every member to get v1", Duration::from_secs(30), || {
        (versions(&fleet, 4) == ["1", "1", "1", "1"]).then_some(())
    });
    let accepted = get_json(&hub, &["get", "careq", "release-1-before-prod"]).unwrap();
    assert_eq!(condition(&accepted, "ApprovalAccepted").0, "True");
    assert_eq!(run_condition(&fleet, "release-1", "Succeeded").0, "");
    approve(&fleet, "release-1-after-rest");
    wait_for("the run to succeed", Duration::from_secs(30), || {
        (run_condition(&fleet, "release-1", "Succeeded")
            == ("True".into(), "UpdateRunSucceeded".into()))
            .then_some(())
    });
    let status = ctl(&fleet, &["rollout", "status", "staged"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // A new version: nothing moves until a run releases it.
    let out = kubectl(
        &hub,
        &[
            "-n",
            "staged",
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"v":"2"}}"#,
        ],
    );
    assert!(out.status.success());
    wait_for("snapshot 1", Duration::from_secs(30), || {
        get_json(
            &hub,
            &["get", "clusterresourcesnapshot", "staged-1-snapshot"],
        )
    });
    fleet.apply(
        r#"
apiVersion: placement.kubernetes-fleet.io/v1beta1
kind: ClusterStagedUpdateRun
metadata: {name: release-2}
spec: {placementName: staged, stagedRolloutStrategyName: three, state: Run}
"#,
    );
    wait_for(
        "release-2 to wait for prod's approval",
        Duration::from_secs(60),
        || get_json(&hub, &["get", "careq", "release-2-before-prod"]),
    );
    assert_eq!(versions(&fleet, 4), ["2", "1", "1", "1"]);
    // The status command shows what it waits for and how to give it.
    let status = ctl(&fleet, &["rollout", "status", "staged"]);
    let table = String::from_utf8_lossy(&status.stdout).to_string();
    assert_eq!(status.status.code(), Some(4), "{table}");
    assert!(table.contains("flotilla approve release-2 prod"), "{table}");

    // Stopped, an approval does not move it; resumed, it goes on from where it was.
    ctl_ok(&fleet, &["rollout", "stop", "release-2"]);
    wait_for("release-2 to stop", Duration::from_secs(30), || {
        (run_condition(&fleet, "release-2", "Progressing").1 == "UpdateRunStopped").then_some(())
    });
    assert_eq!(
        ctl(&fleet, &["rollout", "status", "staged"]).status.code(),
        Some(3)
    );
    ctl_ok(&fleet, &["approve", "release-2", "prod"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        versions(&fleet, 4),
        ["2", "1", "1", "1"],
        "stopped: no new cluster starts"
    );
    ctl_ok(&fleet, &["rollout", "resume", "release-2"]);
    wait_for("prod to get v2", Duration::from_secs(60), || {
        (versions(&fleet, 4) == ["2", "2", "2", "2"]).then_some(())
    });
    wait_for(
        "the approval request after rest",
        Duration::from_secs(60),
        || get_json(&hub, &["get", "careq", "release-2-after-rest"]),
    );
    ctl_ok(&fleet, &["approve", "release-2-after-rest"]);
    let status = ctl(
        &fleet,
        &[
            "rollout",
            "status",
            "staged",
            "--watch",
            "--timeout",
            "60",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // Rollback: a run that releases snapshot 0 again, all at once.
    fleet.apply(
        r#"
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterStagedUpdateStrategy
metadata: {name: all-at-once}
spec:
  stages: [{name: all, labelSelector: {}, maxConcurrency: "100%"}]
"#,
    );
    let out = ctl(
        &fleet,
        &[
            "rollout",
            "undo",
            "staged",
            "--to-index",
            "0",
            "--strategy",
            "all-at-once",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("every member back at v1", Duration::from_secs(60), || {
        (versions(&fleet, 4) == ["1", "1", "1", "1"]).then_some(())
    });
    let status = ctl(
        &fleet,
        &["rollout", "status", "staged", "--watch", "--timeout", "60"],
    );
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // What cannot be done says why.
    let out = ctl(&fleet, &["approve", "release-2", "nosuchstage"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("has no approval request for stage \"nosuchstage\""));
    let out = ctl(&fleet, &["rollout", "stop", "release-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is finished"));

    // Deleting a run deletes its approval requests.
    let out = kubectl(&hub, &["delete", "csur", "release-1"]);
    assert!(out.status.success());
    wait_for(
        "release-1's approval requests to go",
        Duration::from_secs(30),
        || {
            let l = get_json(
                &hub,
                &[
                    "get",
                    "careq",
                    "-l",
                    "kubernetes-fleet.io/targetupdaterun=release-1",
                ],
            )?;
            l["items"].as_array()?.is_empty().then_some(())
        },
    );
}

/// `flotilla ARGS --kubeconfig HUB`.
fn ctl(fleet: &Fleet, args: &[&str]) -> std::process::Output {
    flotilla()
        .args(args)
        .arg("--kubeconfig")
        .arg(fleet.hub())
        .output()
        .unwrap()
}

fn ctl_ok(fleet: &Fleet, args: &[&str]) {
    let out = ctl(fleet, args);
    assert!(
        out.status.success(),
        "flotilla {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn drain_evicts_within_the_disruption_budget_and_uncordon_lets_clusters_back() {
    let fleet = Fleet::start(4, 200);
    let hub = fleet.hub();
    fleet.apply(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: staged}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: staged}
data: {v: "1"}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacement
metadata: {name: three}
spec:
  resourceSelectors: [{group: "", version: v1, kind: Namespace, name: staged}]
  policy: {placementType: PickN, numberOfClusters: 3}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacementDisruptionBudget
metadata: {name: three}
spec: {minAvailable: 3}
"#,
    );
    let placed = |v: &[String]| -> Vec<usize> {
        v.iter()
            .enumerate()
            .filter(|(_, x)| x.as_str() == "1")
            .map(|(i, _)| i + 1)
            .collect()
    };
    let first = wait_for("three members to get it", Duration::from_secs(60), || {
        let p = get_json(&hub, &["get", "crp", "three"])?;
        (condition(&p, "ClusterResourcePlacementAvailable").0 == "True").then_some(())?;
        let on = placed(&versions(&fleet, 4));
        (on.len() == 3).then_some(on)
    });
    let victim = format!("member-{}", first[0]);

    // minAvailable 3 of 3 available: the budget refuses; the cluster is cordoned all the same.
    let out = ctl(&fleet, &["drain", &victim]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not evicted (Eviction is blocked by specified ClusterResourcePlacementDisruptionBudget, availablePlacements: 3, totalPlacements: 3)"),
        "{text}"
    );
    let e = get_json(
        &hub,
        &["get", "crpe", &format!("drain-eviction-three-{victim}")],
    )
    .unwrap();
    assert_eq!(
        condition(&e, "Valid"),
        (
            "True".into(),
            "ClusterResourcePlacementEvictionValid".into()
        )
    );
    assert_eq!(
        condition(&e, "Executed"),
        (
            "False".into(),
            "ClusterResourcePlacementEvictionNotExecuted".into()
        )
    );
    assert_eq!(placed(&versions(&fleet, 4)), first, "nothing moved");

    // minAvailable 2: allowed; the cordoned cluster loses it, the free one gets it.
    let out = kubectl(
        &hub,
        &[
            "patch",
            "crpdb",
            "three",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":2}}"#,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl(&fleet, &["drain", &victim]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "evicted (Eviction is allowed by specified ClusterResourcePlacementDisruptionBudget"
        ),
        "{text}"
    );
    let free = (1..=4).find(|m| !first.contains(m)).unwrap();
    let mut want: Vec<usize> = first.iter().copied().skip(1).chain([free]).collect();
    want.sort();
    wait_for(
        "the placement to move off the drained cluster",
        Duration::from_secs(60),
        || (placed(&versions(&fleet, 4)) == want).then_some(()),
    );

    // Uncordoned, it may be picked again; nothing moves back by itself.
    ctl_ok(&fleet, &["uncordon", &victim]);
    let mc = get_json(&hub, &["get", "membercluster", &victim]).unwrap();
    assert!(
        mc["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()),
        "{mc}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(placed(&versions(&fleet, 4)), want);

    // A budget with both bounds is refused, as KubeFleet's CEL rule does.
    let out = kubectl(
        &hub,
        &[
            "patch",
            "crpdb",
            "three",
            "--type=merge",
            "-p",
            r#"{"spec":{"maxUnavailable":1}}"#,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Both MaxUnavailable and MinAvailable cannot be specified"));
}

#[test]
fn a_resource_placement_rolls_out_through_a_namespaced_staged_run() {
    let fleet = Fleet::start(2, 200);
    let hub = fleet.hub();
    fleet.apply(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team}
data: {v: "1"}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ResourcePlacement
metadata: {name: cfg, namespace: team}
spec:
  resourceSelectors: [{group: "", version: v1, kind: ConfigMap, name: settings}]
  strategy: {type: External}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: StagedUpdateStrategy
metadata: {name: gated, namespace: team}
spec:
  stages: [{name: all, labelSelector: {}, maxConcurrency: "100%", afterStageTasks: [{type: Approval}]}]
---
apiVersion: placement.kubernetes-fleet.io/v1beta1
kind: StagedUpdateRun
metadata: {name: first, namespace: team}
spec: {placementName: cfg, stagedRolloutStrategyName: gated, state: Run}
"#,
    );
    // The namespace itself is not placed by a ResourcePlacement: the members need it.
    for m in 1..=2 {
        let out = kubectl(&fleet.member(m), &["create", "namespace", "team"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_for(
        "the approval request after the stage",
        Duration::from_secs(60),
        || get_json(&hub, &["-n", "team", "get", "areq", "first-after-all"]),
    );
    let out = ctl(&fleet, &["rollout", "status", "-n", "team", "cfg"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    ctl_ok(&fleet, &["approve", "-n", "team", "first", "all"]);
    let out = ctl(
        &fleet,
        &[
            "rollout",
            "status",
            "-n",
            "team",
            "cfg",
            "--watch",
            "--timeout",
            "60",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for m in 1..=2 {
        let cm = get_json(
            &fleet.member(m),
            &["-n", "team", "get", "configmap", "settings"],
        )
        .unwrap();
        assert_eq!(cm["data"]["v"], "1");
    }
}
