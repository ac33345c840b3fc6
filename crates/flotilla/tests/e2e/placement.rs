//! Placement end to end: `flotilla up` (a hub, two simulated members and one real Kubernetes
//! cluster — kube-apiserver, controller manager, scheduler and KWOK nodes — as member-3, with
//! their agents), driven by kubectl with KubeFleet manifests. Resources arrive in the members and their
//! status shows on the hub; policies pick the expected clusters; updates, deselection and
//! deletion reach the members; drift and differences are reported.

#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

struct Fleet {
    child: Child,
    // Dropped after the fleet's process is killed (Drop below), so its agent never sees the
    // cluster go away under it.
    _real: flotilla_testbed::RealCluster,
    dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fleet {
    /// A fleet of `members`: the last is a real cluster, the others are simulated.
    fn start(members: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let real = flotilla_testbed::RealCluster::start(
            &dir.path().join("real"),
            flotilla_testbed::ControlPlane::Full { nodes: 2 },
        )
        .unwrap();
        // The real member's agent runs as docs/members.md tells users to run it: a service
        // account with the documented RBAC, through a token kubeconfig.
        let out = kubectl(
            real.kubeconfig(),
            &[
                "apply",
                "-f",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../docs/examples/member-agent-rbac.yaml"
                ),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let agent_kubeconfig = dir.path().join("real-agent.kubeconfig");
        real.token_kubeconfig("flotilla-system", "flotilla-agent", 2, &agent_kubeconfig)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["up", "--members", &(members - 1).to_string(), "--data-dir"])
            .arg(dir.path())
            .arg("--real-member")
            .arg(&agent_kubeconfig)
            // The hub picks a free port itself (no race with other processes for one chosen
            // here) and writes it into its admin kubeconfig.
            .args([
                "--bind",
                "127.0.0.1:0",
                "--heartbeat-period-seconds",
                "2",
                "--workload-delay-ms",
                "200",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("fleet.log")).unwrap())
            .spawn()
            .unwrap();
        let fleet = Fleet {
            child,
            _real: real,
            dir,
        };
        for m in 1..=members {
            wait_for("the member kubeconfig", Duration::from_secs(60), || {
                fleet.member(m).exists().then_some(())
            });
        }
        wait_joined(&fleet.hub(), members, Duration::from_secs(60));
        fleet
    }

    fn hub(&self) -> PathBuf {
        self.dir.path().join("hub/admin.kubeconfig")
    }

    fn member(&self, m: usize) -> PathBuf {
        self.dir.path().join(format!("member-{m}/admin.kubeconfig"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fleet.log")).unwrap_or_default()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.hub(), args)
    }

    fn ok(&self, args: &[&str]) {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn apply(&self, yaml: &str) {
        apply(&self.hub(), yaml);
    }

    /// `kubectl get ARGS -o json` on the hub.
    fn get(&self, args: &[&str]) -> Option<Value> {
        let mut a = vec!["get"];
        a.extend(args);
        get_json(&self.hub(), &a)
    }

    /// Waits for the placement's condition `ty` to be True; returns the placement.
    fn wait_condition(&self, crp: &str, ty: &str) -> Value {
        self.wait_placement(&["crp", crp], ty)
    }

    /// Waits for condition `ty` of the placement `kubectl get ARGS` finds to be True (as of
    /// its generation); returns the placement.
    fn wait_placement(&self, args: &[&str], ty: &str) -> Value {
        let crp = args.join(" ");
        let mut last = Value::Null;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(p) = self.get(args) {
                if condition(&p, ty).0 == "True"
                    && p["status"]["conditions"]
                        .as_array()
                        .and_then(|c| c.iter().find(|c| c["type"] == ty))
                        .is_some_and(|c| c["observedGeneration"] == p["metadata"]["generation"])
                {
                    return p;
                }
                last = p;
            }
            assert!(
                Instant::now() < deadline,
                "{crp}: {ty} did not turn True: {}\n{}",
                serde_json::to_string_pretty(&last["status"]).unwrap(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the placement's condition `ty` to be False; returns its reason.
    fn unscheduled(&self, args: &[&str], ty: &str) -> String {
        wait_for(
            &format!("{ty}=False on {args:?}"),
            Duration::from_secs(30),
            || {
                let p = self.get(args)?;
                let (st, reason) = condition(&p, ty);
                (st == "False").then_some(reason)
            },
        )
    }

    /// The clusters the placement's status lists.
    fn placed_on(&self, crp: &str) -> Vec<String> {
        let p = self.get(&["crp", crp]).unwrap();
        let mut v: Vec<String> = p["status"]["placementStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["clusterName"].as_str().map(String::from))
            .collect();
        v.sort();
        v
    }
}

fn apply(kubeconfig: &Path, yaml: &str) {
    let out = kubectl_apply(kubeconfig, yaml);
    assert!(
        out.status.success(),
        "kubectl apply: {}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The placement's status entry for `cluster`.
fn cluster_status(p: &Value, cluster: &str) -> Option<Value> {
    p["status"]["placementStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["clusterName"] == cluster)
        .cloned()
}

/// The status of condition `ty` of a placement status entry (one cluster).
fn entry_condition(entry: &Value, ty: &str) -> String {
    entry["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

fn crp(name: &str, namespace: &str, policy: &str, strategy: &str) -> String {
    format!(
        "apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacement
metadata:
  name: {name}
spec:
  resourceSelectors:
    - group: \"\"
      kind: Namespace
      version: v1
      name: {namespace}
{policy}{strategy}"
    )
}

#[test]
fn pick_all_places_a_namespace_everywhere_updates_it_and_removes_it() {
    let fleet = Fleet::start(3);
    fleet.ok(&["create", "namespace", "shop"]);
    fleet.ok(&[
        "-n",
        "shop",
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
    ]);
    fleet.ok(&[
        "-n",
        "shop",
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    fleet.ok(&["-n", "shop", "expose", "deployment", "web", "--port=80"]);
    // KubeFleet's default rolling update (25% of 3: one cluster at a time), each counted ready
    // one second after it applied (a Namespace and a ConfigMap have no status to judge).
    fleet.apply(&crp(
        "shop",
        "shop",
        "  policy:\n    placementType: PickAll\n",
        "  strategy:\n    rollingUpdate:\n      unavailablePeriodSeconds: 1\n",
    ));

    let p = fleet.wait_condition("shop", "ClusterResourcePlacementAvailable");
    for ty in [
        "ClusterResourcePlacementScheduled",
        "ClusterResourcePlacementRolloutStarted",
        "ClusterResourcePlacementOverridden",
        "ClusterResourcePlacementWorkSynchronized",
        "ClusterResourcePlacementApplied",
    ] {
        assert_eq!(condition(&p, ty).0, "True", "{ty}");
    }
    assert_eq!(
        fleet.placed_on("shop"),
        ["member-1", "member-2", "member-3"]
    );
    let kinds: Vec<&str> = p["status"]["selectedResources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "Service", "Deployment"]);
    for m in 1..=3 {
        let dep = get_json(
            &fleet.member(m),
            &["-n", "shop", "get", "deployment", "web"],
        )
        .unwrap();
        assert_eq!(dep["status"]["availableReplicas"], 2, "member-{m}");
        let cm = get_json(
            &fleet.member(m),
            &["-n", "shop", "get", "configmap", "settings"],
        )
        .unwrap();
        assert_eq!(cm["data"]["color"], "blue");
        assert!(get_json(&fleet.member(m), &["-n", "shop", "get", "service", "web"]).is_some());
    }
    // kubectl explains what the hub decided.
    let out = fleet.kubectl(&["get", "clusterresourcebindings"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    assert!(fleet
        .get(&["clusterresourcesnapshot", "shop-0-snapshot"])
        .is_some());
    assert!(fleet
        .get(&["clusterschedulingpolicysnapshot", "shop-0"])
        .is_some());

    // A change on the hub reaches every member.
    fleet.ok(&[
        "-n",
        "shop",
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ]);
    for m in 1..=3 {
        wait_for("the update in the member", Duration::from_secs(30), || {
            let cm = get_json(
                &fleet.member(m),
                &["-n", "shop", "get", "configmap", "settings"],
            )?;
            (cm["data"]["color"] == "green").then_some(())
        });
    }
    assert_eq!(
        fleet.get(&["crp", "shop"]).unwrap()["status"]["observedResourceIndex"],
        "1"
    );

    // Overrides: replicas and image per cluster (a ResourceOverride), a label on the
    // namespace everywhere (a ClusterResourceOverride).
    fleet.ok(&[
        "label",
        "membercluster",
        "member-1",
        "env=prod",
        "tier=gold",
    ]);
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ResourceOverride
metadata:
  name: web-size
  namespace: shop
spec:
  placement:
    name: shop
  resourceSelectors:
    - {group: apps, version: v1, kind: Deployment, name: web}
  policy:
    overrideRules:
      - clusterSelector:
          clusterSelectorTerms:
            - labelSelector:
                matchLabels: {env: prod}
        jsonPatchOverrides:
          - {op: replace, path: /spec/replicas, value: 3}
          - {op: replace, path: /spec/template/spec/containers/0/image, value: "nginx:${MEMBER-CLUSTER-LABEL-KEY-tier}"}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourceOverride
metadata:
  name: ns-owner
spec:
  clusterResourceSelectors:
    - {group: "", version: v1, kind: Namespace, name: shop}
  policy:
    overrideRules:
      - jsonPatchOverrides:
          - {op: add, path: /metadata/labels/placed-on, value: "${MEMBER-CLUSTER-NAME}"}
"#,
    );
    wait_for("the overrides in member-1", Duration::from_secs(30), || {
        let dep = get_json(
            &fleet.member(1),
            &["-n", "shop", "get", "deployment", "web"],
        )?;
        let image = dep["spec"]["template"]["spec"]["containers"][0]["image"].as_str()?;
        (dep["spec"]["replicas"] == 3 && image == "nginx:gold").then_some(())
    });
    for m in 1..=3 {
        wait_for("the namespace label", Duration::from_secs(30), || {
            let ns = get_json(&fleet.member(m), &["get", "namespace", "shop"])?;
            (ns["metadata"]["labels"]["placed-on"] == format!("member-{m}")).then_some(())
        });
    }
    let dep2 = get_json(
        &fleet.member(2),
        &["-n", "shop", "get", "deployment", "web"],
    )
    .unwrap();
    assert_eq!(
        dep2["spec"]["replicas"], 2,
        "member-2 is not prod: not overridden"
    );
    let p = fleet.wait_condition("shop", "ClusterResourcePlacementOverridden");
    assert_eq!(
        condition(&p, "ClusterResourcePlacementOverridden").1,
        "OverriddenSucceeded"
    );
    let m1 = cluster_status(&p, "member-1").unwrap();
    assert_eq!(m1["applicableResourceOverrides"][0]["name"], "web-size-0");
    assert_eq!(m1["applicableClusterResourceOverrides"][0], "ns-owner-0");
    // An override that cannot apply fails that cluster only.
    fleet.ok(&["label", "membercluster", "member-2", "env=prod"]);
    let p = wait_for(
        "member-2's override to fail",
        Duration::from_secs(30),
        || {
            let p = fleet.get(&["crp", "shop"])?;
            let m2 = cluster_status(&p, "member-2")?;
            (entry_condition(&m2, "Overridden") == "False").then_some(p)
        },
    );
    assert_eq!(
        condition(&p, "ClusterResourcePlacementOverridden").0,
        "False"
    );
    let m1 = cluster_status(&p, "member-1").unwrap();
    assert_eq!(entry_condition(&m1, "Overridden"), "True");
    // Overrides cannot touch an object's identity.
    let out = fleet.kubectl(&["-n", "shop", "patch", "resourceoverride", "web-size", "--type=json", "-p",
        r#"[{"op":"add","path":"/spec/policy/overrideRules/0/jsonPatchOverrides/-","value":{"op":"replace","path":"/metadata/name","value":"x"}}]"#]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not be overridden"));

    // Once the cluster no longer matches the failing rule, it is updated again.
    fleet.ok(&["label", "membercluster", "member-2", "env-"]);
    wait_for(
        "member-2's override to recover",
        Duration::from_secs(30),
        || {
            let p = fleet.get(&["crp", "shop"])?;
            let m2 = cluster_status(&p, "member-2")?;
            (entry_condition(&m2, "Overridden") == "True").then_some(())
        },
    );

    // Envelopes carry objects that must not take effect on the hub: a ResourceQuota in the
    // placed namespace, a ClusterRole selected next to the namespace.
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ResourceEnvelope
metadata:
  name: limits
  namespace: shop
data:
  quota.yaml:
    apiVersion: v1
    kind: ResourceQuota
    metadata: {name: shop-quota}
    spec: {hard: {pods: "20"}}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourceEnvelope
metadata:
  name: shop-rbac
data:
  reader.yaml:
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: shop-reader}
    rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
"#,
    );
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacement
metadata:
  name: shop
spec:
  resourceSelectors:
    - {group: "", kind: Namespace, version: v1, name: shop}
    - {group: placement.kubernetes-fleet.io, kind: ClusterResourceEnvelope, version: v1, name: shop-rbac}
  policy:
    placementType: PickAll
  strategy:
    rollingUpdate: {unavailablePeriodSeconds: 1}
"#,
    );
    for m in 1..=3 {
        wait_for(
            "the enveloped objects in the member",
            Duration::from_secs(30),
            || {
                get_json(
                    &fleet.member(m),
                    &["-n", "shop", "get", "resourcequota", "shop-quota"],
                )?;
                get_json(&fleet.member(m), &["get", "clusterrole", "shop-reader"])?;
                Some(())
            },
        );
    }
    assert!(
        fleet
            .get(&["-n", "shop", "resourcequota", "shop-quota"])
            .is_none(),
        "not on the hub"
    );
    let p = fleet.wait_condition("shop", "ClusterResourcePlacementAvailable");
    let quota = p["status"]["selectedResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "ResourceQuota")
        .unwrap()
        .clone();
    assert_eq!(quota["envelope"]["name"], "limits");
    assert_eq!(quota["envelope"]["type"], "ResourceEnvelope");
    // An envelope with an object of another namespace is refused.
    let out = fleet.kubectl(&["-n", "shop", "patch", "resourceenvelope", "limits", "--type=merge", "-p",
        r#"{"data":{"x.yaml":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}}}"#]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("live in its namespace"));

    // Deleting the placement removes everything it placed.
    fleet.ok(&["delete", "crp", "shop"]);
    for m in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ns = get_json(&fleet.member(m), &["get", "namespace", "shop"]);
            let role = get_json(&fleet.member(m), &["get", "clusterrole", "shop-reader"]);
            if ns.is_none() && role.is_none() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the namespace and role did not leave member-{m}: namespace {}, role present: {}\n{}",
                ns.map(|n| n["status"].to_string()).unwrap_or_default(),
                role.is_some(),
                fleet.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    wait_for(
        "the bindings and works to go",
        Duration::from_secs(30),
        || {
            let b = fleet.get(&["clusterresourcebindings"])?;
            let w = fleet.get(&["works", "-A"])?;
            (b["items"].as_array()?.is_empty() && w["items"].as_array()?.is_empty()).then_some(())
        },
    );
}

#[test]
fn policies_pick_clusters_by_labels_properties_taints_and_names() {
    let fleet = Fleet::start(3);
    for (m, labels) in [
        (1, ["env=prod", "region=east"]),
        (2, ["env=prod", "region=west"]),
        (3, ["env=dev", "region=east"]),
    ] {
        let name = format!("member-{m}");
        fleet.ok(&["label", "membercluster", &name, labels[0], labels[1]]);
    }
    // member-1 runs a workload of its own: less CPU available than member-2.
    let hog = kubectl(
        &fleet.member(1),
        &[
            "create",
            "deployment",
            "hog",
            "--image=busybox",
            "--replicas=1",
        ],
    );
    assert!(hog.status.success());
    let out = kubectl(
        &fleet.member(1),
        &["set", "resources", "deployment", "hog", "--requests=cpu=3"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "member-1's available CPU to drop",
        Duration::from_secs(30),
        || {
            let mc = fleet.get(&["membercluster", "member-1"])?;
            let cpu = mc["status"]["properties"]["resources.kubernetes-fleet.io/available-cpu"]
                ["value"]
                .as_str()?;
            (cpu == "9").then_some(())
        },
    );
    for ns in ["picked", "fixed", "tainted", "drift", "diff"] {
        fleet.ok(&["create", "namespace", ns]);
        fleet.ok(&[
            "-n",
            ns,
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
        ]);
    }

    // PickN: required label and property, preferred by most available CPU.
    fleet.apply(&crp(
        "picked",
        "picked",
        "  policy:
    placementType: PickN
    numberOfClusters: 1
    affinity:
      clusterAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          clusterSelectorTerms:
            - labelSelector:
                matchLabels: {env: prod}
              propertySelector:
                matchExpressions:
                  - {name: kubernetes-fleet.io/node-count, operator: Ge, values: [\"3\"]}
        preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference:
              propertySorter: {name: resources.kubernetes-fleet.io/available-cpu, sortOrder: Descending}
",
        "",
    ));
    fleet.wait_condition("picked", "ClusterResourcePlacementAvailable");
    assert_eq!(fleet.placed_on("picked"), ["member-2"]);
    assert!(get_json(&fleet.member(2), &["get", "namespace", "picked"]).is_some());
    assert!(get_json(&fleet.member(1), &["get", "namespace", "picked"]).is_none());
    let decisions = fleet
        .get(&["clusterschedulingpolicysnapshot", "picked-0"])
        .unwrap();
    let d = decisions["status"]["clusterDecisions"].as_array().unwrap();
    assert!(d.iter().any(|c| c["clusterName"] == "member-2"
        && c["selected"] == true
        && c["clusterScore"]["affinityScore"] == 100));

    // A NoSchedule taint keeps PickAll away from member-1.
    fleet.ok(&[
        "patch",
        "membercluster",
        "member-1",
        "--type=merge",
        "-p",
        r#"{"spec":{"taints":[{"key":"maintenance","value":"true","effect":"NoSchedule"}]}}"#,
    ]);
    fleet.apply(&crp(
        "tainted",
        "tainted",
        "  policy:
    placementType: PickAll
    affinity:
      clusterAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          clusterSelectorTerms:
            - labelSelector:
                matchLabels: {env: prod}
",
        "",
    ));
    fleet.wait_condition("tainted", "ClusterResourcePlacementAvailable");
    assert_eq!(fleet.placed_on("tainted"), ["member-2"]);

    // PickFixed; then a cluster leaves the selection and its objects leave it.
    fleet.apply(&crp(
        "fixed",
        "fixed",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-3]\n",
        "",
    ));
    fleet.wait_condition("fixed", "ClusterResourcePlacementAvailable");
    assert_eq!(fleet.placed_on("fixed"), ["member-3"]);
    fleet.apply(&crp(
        "fixed",
        "fixed",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-1]\n",
        "",
    ));
    wait_for(
        "the objects to leave member-3",
        // A real member's namespace controller and garbage collector take their time on a
        // loaded 2-core machine (a fresh-machine run needed more than 30 s).
        Duration::from_secs(90),
        || {
            get_json(&fleet.member(3), &["get", "namespace", "fixed"])
                .is_none()
                .then_some(())
        },
    );
    fleet.wait_condition("fixed", "ClusterResourcePlacementAvailable");
    assert_eq!(fleet.placed_on("fixed"), ["member-1"]);
    assert!(get_json(
        &fleet.member(1),
        &["-n", "fixed", "get", "configmap", "settings"]
    )
    .is_some());

    // Admission: the placement type cannot change.
    let out = fleet.kubectl(&[
        "patch",
        "crp",
        "fixed",
        "--type=merge",
        "-p",
        r#"{"spec":{"policy":{"placementType":"PickAll","clusterNames":null}}}"#,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("placement type is immutable"));

    // A member-side edit is reported as drift (whenToApply: IfNotDrifted) and not overwritten.
    fleet.apply(&crp(
        "drift",
        "drift",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-3]\n",
        "  strategy:\n    applyStrategy:\n      whenToApply: IfNotDrifted\n",
    ));
    fleet.wait_condition("drift", "ClusterResourcePlacementAvailable");
    let out = kubectl(
        &fleet.member(3),
        &[
            "-n",
            "drift",
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"color":"red"}}"#,
        ],
    );
    assert!(out.status.success());
    // The agent looks at a settled Work again after 15 s, then half as long again each time
    // (KubeFleet's fast backoff): the edit, moments after Available, is seen at the first.
    let drifted = wait_for("the drift to be reported", Duration::from_secs(60), || {
        let p = fleet.get(&["crp", "drift"])?;
        let d = p["status"]["placementStatuses"][0]["driftedPlacements"]
            .as_array()?
            .clone();
        (!d.is_empty()).then_some(d)
    });
    assert_eq!(drifted[0]["kind"], "ConfigMap");
    assert_eq!(
        drifted[0]["observedDrifts"],
        serde_json::json!([{"path": "/data/color", "valueInHub": "blue", "valueInMember": "red"}])
    );
    let cm = get_json(
        &fleet.member(3),
        &["-n", "drift", "get", "configmap", "settings"],
    )
    .unwrap();
    assert_eq!(cm["data"]["color"], "red");

    // Two placements with different apply strategies claim one namespace: the second
    // reports the conflict and changes nothing.
    fleet.ok(&["create", "namespace", "shared"]);
    fleet.apply(&crp(
        "shared-a",
        "shared",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-2]\n",
        "",
    ));
    fleet.wait_condition("shared-a", "ClusterResourcePlacementAvailable");
    fleet.apply(&crp(
        "shared-b",
        "shared",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-2]\n",
        "  strategy:\n    applyStrategy:\n      type: ServerSideApply\n",
    ));
    let failed = wait_for(
        "the conflict to be reported",
        Duration::from_secs(40),
        || {
            let p = fleet.get(&["crp", "shared-b"])?;
            let f = p["status"]["placementStatuses"][0]["failedPlacements"]
                .as_array()?
                .clone();
            (!f.is_empty()).then_some(f)
        },
    );
    assert_eq!(
        failed[0]["condition"]["reason"],
        "ApplyConflictBetweenPlacements"
    );
    assert_eq!(
        condition(
            &fleet.get(&["crp", "shared-a"]).unwrap(),
            "ClusterResourcePlacementAvailable"
        )
        .0,
        "True"
    );

    // deleteStrategy Abandon: deleting the placement leaves what it placed, unmanaged.
    fleet.ok(&["create", "namespace", "kept"]);
    fleet.apply(&crp(
        "kept",
        "kept",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-3]\n",
        "  strategy:\n    deleteStrategy:\n      propagationPolicy: Abandon\n",
    ));
    fleet.wait_condition("kept", "ClusterResourcePlacementAvailable");
    fleet.ok(&["delete", "crp", "kept"]);
    wait_for("the AppliedWork to go", Duration::from_secs(30), || {
        get_json(&fleet.member(3), &["get", "appliedwork", "kept-work"])
            .is_none()
            .then_some(())
    });
    // Abandoned: the namespace stays, owned by nothing the garbage collector could follow.
    wait_for(
        "the namespace kept, without owners",
        Duration::from_secs(30),
        || {
            get_json(&fleet.member(3), &["get", "namespace", "kept"]).filter(|ns| {
                ns["metadata"]["ownerReferences"]
                    .as_array()
                    .is_none_or(|o| o.is_empty())
            })
        },
    );

    // ReportDiff reports without applying.
    fleet.apply(&crp(
        "diff",
        "diff",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-2]\n",
        "  strategy:\n    applyStrategy:\n      type: ReportDiff\n",
    ));
    let diffed = wait_for(
        "the differences to be reported",
        Duration::from_secs(40),
        || {
            let p = fleet.get(&["crp", "diff"])?;
            let d = p["status"]["placementStatuses"][0]["diffedPlacements"]
                .as_array()?
                .clone();
            (!d.is_empty()).then_some(d)
        },
    );
    assert!(diffed.iter().any(|d| d["kind"] == "Namespace"));
    fleet.wait_condition("diff", "ClusterResourcePlacementDiffReported");
    assert!(get_json(&fleet.member(2), &["get", "namespace", "diff"]).is_none());

    // What the real member's API server defaults inside lists (a port's protocol, a
    // container's pull policy and termination message path), and fields others set inside list
    // items, are not differences under PartialComparison: the same Deployment made in the
    // member directly shows no difference from the hub's.
    let twin = "apiVersion: v1\nkind: Namespace\nmetadata: {name: twin}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: twin}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]\n";
    fleet.apply(twin);
    // The member's copy also sets a field inside the container that the hub's leaves out.
    apply(
        &fleet.member(3),
        &twin.replace(
            "ports: [{containerPort: 80}]",
            "ports: [{containerPort: 80}], env: [{name: MODE, value: member}]",
        ),
    );
    fleet.apply(&crp(
        "twin",
        "twin",
        "  policy:\n    placementType: PickFixed\n    clusterNames: [member-3]\n",
        "  strategy:\n    applyStrategy:\n      type: ReportDiff\n",
    ));
    let p = fleet.wait_condition("twin", "ClusterResourcePlacementDiffReported");
    assert!(
        p["status"]["placementStatuses"][0]["diffedPlacements"]
            .as_array()
            .is_none_or(|d| d.is_empty()),
        "{}",
        serde_json::to_string_pretty(&p["status"]).unwrap()
    );
}

#[test]
fn resource_placement_places_resources_of_its_namespace() {
    let fleet = Fleet::start(3);
    fleet.ok(&["label", "membercluster", "member-3", "env=dev"]);
    for m in ["member-1", "member-2"] {
        fleet.ok(&["label", "membercluster", m, "env=prod"]);
    }
    fleet.ok(&["create", "namespace", "team"]);
    fleet.ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
    ]);
    fleet.ok(&["-n", "team", "label", "configmap", "settings", "app=api"]);
    fleet.ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "unrelated",
        "--from-literal=b=2",
    ]);
    fleet.ok(&["-n", "team", "create", "deployment", "api", "--image=nginx"]);
    // The namespace itself goes everywhere by a ClusterResourcePlacement, alone.
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacement
metadata:
  name: team-namespace
spec:
  resourceSelectors:
    - {group: "", version: v1, kind: Namespace, name: team, selectionScope: NamespaceOnly}
"#,
    );
    fleet.wait_condition("team-namespace", "ClusterResourcePlacementAvailable");
    assert!(get_json(
        &fleet.member(1),
        &["-n", "team", "get", "configmap", "settings"]
    )
    .is_none());
    // The namespace's team places its own resources with a ResourcePlacement.
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ResourcePlacement
metadata:
  name: api
  namespace: team
spec:
  resourceSelectors:
    - {group: apps, version: v1, kind: Deployment, name: api}
    - {group: "", version: v1, kind: ConfigMap, labelSelector: {matchLabels: {app: api}}}
  policy:
    placementType: PickN
    numberOfClusters: 2
    affinity:
      clusterAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          clusterSelectorTerms:
            - labelSelector: {matchLabels: {env: prod}}
  strategy:
    rollingUpdate: {unavailablePeriodSeconds: 1}
"#,
    );
    let rp = fleet.wait_placement(&["-n", "team", "rp", "api"], "ResourcePlacementAvailable");
    for ty in [
        "ResourcePlacementScheduled",
        "ResourcePlacementRolloutStarted",
        "ResourcePlacementOverridden",
        "ResourcePlacementWorkSynchronized",
        "ResourcePlacementApplied",
    ] {
        assert_eq!(condition(&rp, ty).0, "True", "{ty}");
    }
    let kinds: Vec<&str> = rp["status"]["selectedResources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["settings", "api"]);
    for m in 1..=2 {
        let dep = get_json(
            &fleet.member(m),
            &["-n", "team", "get", "deployment", "api"],
        )
        .unwrap();
        assert_eq!(dep["status"]["availableReplicas"], 1, "member-{m}");
        assert!(get_json(
            &fleet.member(m),
            &["-n", "team", "get", "configmap", "settings"]
        )
        .is_some());
        assert!(get_json(
            &fleet.member(m),
            &["-n", "team", "get", "configmap", "unrelated"]
        )
        .is_none());
    }
    assert!(get_json(
        &fleet.member(3),
        &["-n", "team", "get", "deployment", "api"]
    )
    .is_none());
    // Its snapshots and bindings live in its namespace; its Works in the members'.
    let bindings = fleet.get(&["-n", "team", "resourcebindings"]).unwrap();
    assert_eq!(bindings["items"].as_array().unwrap().len(), 2);
    assert!(fleet
        .get(&["-n", "team", "resourcesnapshot", "api-0-snapshot"])
        .is_some());
    assert!(fleet
        .get(&["-n", "team", "schedulingpolicysnapshot", "api-0"])
        .is_some());
    let work = fleet
        .get(&["-n", "fleet-member-member-1", "work", "team.api-work"])
        .unwrap();
    assert_eq!(
        work["metadata"]["labels"]["kubernetes-fleet.io/parent-namespace"],
        "team"
    );

    // A ResourceOverride of the namespace, naming the ResourcePlacement.
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ResourceOverride
metadata:
  name: api-label
  namespace: team
spec:
  placement:
    name: api
    scope: Namespaced
  resourceSelectors:
    - {group: apps, version: v1, kind: Deployment, name: api}
  policy:
    overrideRules:
      - overrideType: JSONPatch
        jsonPatchOverrides:
          - {op: add, path: /metadata/labels/placed-on, value: "${MEMBER-CLUSTER-NAME}"}
"#,
    );
    for m in 1..=2 {
        wait_for(
            "the override in the member",
            Duration::from_secs(30),
            || {
                let dep = get_json(
                    &fleet.member(m),
                    &["-n", "team", "get", "deployment", "api"],
                )?;
                (dep["metadata"]["labels"]["placed-on"] == format!("member-{m}")).then_some(())
            },
        );
    }
    let rp = fleet.get(&["-n", "team", "rp", "api"]).unwrap();
    let entry = cluster_status(&rp, "member-1").unwrap();
    assert_eq!(entry["applicableResourceOverrides"][0]["namespace"], "team");

    // A Work of the placement where it is not scheduled (as a restart between deleting a
    // binding and its Work would leave) is removed.
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: Work
metadata:
  name: team.api-work
  namespace: fleet-member-member-3
  labels:
    kubernetes-fleet.io/parent-CRP: api
    kubernetes-fleet.io/parent-namespace: team
spec:
  workload:
    manifests: []
"#,
    );
    wait_for(
        "the stray Work to be removed",
        Duration::from_secs(30),
        || {
            fleet
                .get(&["-n", "fleet-member-member-3", "work", "team.api-work"])
                .is_none()
                .then_some(())
        },
    );

    // A ResourcePlacement selects only namespaced resources.
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ResourcePlacement
metadata:
  name: wrong
  namespace: team
spec:
  resourceSelectors:
    - {group: "", version: v1, kind: Namespace, name: team}
"#,
    );
    let why = fleet.unscheduled(&["-n", "team", "rp", "wrong"], "ResourcePlacementScheduled");
    assert_eq!(why, "InvalidResourceSelectors");

    // A selection larger than one snapshot can hold is refused on the placement.
    let big = "x".repeat(700 * 1024);
    for n in ["big-1", "big-2"] {
        let file = fleet.dir.path().join(n);
        std::fs::write(&file, &big).unwrap();
        let from = format!("--from-file=data={}", file.display());
        fleet.ok(&["-n", "team", "create", "configmap", n, &from]);
        fleet.ok(&["-n", "team", "label", "configmap", n, "size=big"]);
    }
    fleet.apply(
        r#"apiVersion: placement.kubernetes-fleet.io/v1
kind: ResourcePlacement
metadata:
  name: big
  namespace: team
spec:
  resourceSelectors:
    - {group: "", version: v1, kind: ConfigMap, labelSelector: {matchLabels: {size: big}}}
"#,
    );
    let why = fleet.unscheduled(&["-n", "team", "rp", "big"], "ResourcePlacementScheduled");
    assert_eq!(why, "SelectedResourcesTooLarge");

    // One cluster fewer: its objects and its Work go.
    fleet.ok(&[
        "-n",
        "team",
        "patch",
        "rp",
        "api",
        "--type=merge",
        "-p",
        r#"{"spec":{"policy":{"numberOfClusters":1}}}"#,
    ]);
    let left = wait_for("one cluster left", Duration::from_secs(30), || {
        let gone: Vec<usize> = (1..=2)
            .filter(|m| {
                get_json(
                    &fleet.member(*m),
                    &["-n", "team", "get", "deployment", "api"],
                )
                .is_none()
            })
            .collect();
        (gone.len() == 1).then(|| 3 - gone[0])
    });
    let dropped = 3 - left;
    let dropped_ns = format!("fleet-member-member-{dropped}");
    wait_for(
        "the dropped cluster's Work to go",
        Duration::from_secs(30),
        || {
            fleet
                .get(&["-n", &dropped_ns, "work", "team.api-work"])
                .is_none()
                .then_some(())
        },
    );

    // Deleting the placement removes what it placed, then the placement (its finalizer).
    fleet.ok(&["-n", "team", "delete", "rp", "api", "--wait=false"]);
    wait_for(
        "the objects to leave the member",
        Duration::from_secs(30),
        || {
            get_json(
                &fleet.member(left),
                &["-n", "team", "get", "deployment", "api"],
            )
            .is_none()
            .then_some(())
        },
    );
    wait_for("the placement to go", Duration::from_secs(30), || {
        fleet
            .get(&["-n", "team", "rp", "api"])
            .is_none()
            .then_some(())
    });
    let left_ns = format!("fleet-member-member-{left}");
    assert!(fleet
        .get(&["-n", &left_ns, "work", "team.api-work"])
        .is_none());
    wait_for("the bindings to go", Duration::from_secs(30), || {
        let b = fleet.get(&["-n", "team", "resourcebindings"])?;
        b["items"].as_array()?.is_empty().then_some(())
    });
    // The namespace stays: its ClusterResourcePlacement still places it.
    assert!(get_json(&fleet.member(left), &["get", "namespace", "team"]).is_some());
}
