//! The fleet controllers against a real kube-apiserver as hub (`flotilla hub --kubeconfig`):
//! the fleet CRDs are installed there, the admission rules run as its validating webhook, a
//! Lease elects the leader, and a simulated and a real member join through `flotilla up
//! --hub-kubeconfig` (certificates signed by the hub's kube-controller-manager) and run a
//! placement through to Available.

#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flotilla_testbed::{ControlPlane, RealCluster};
use serde_json::Value;

use crate::support::*;

/// Processes killed before the clusters they talk to stop (fields drop in order).
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn fleet_controllers_run_against_a_real_kube_apiserver_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = RealCluster::start(&dir.path().join("hub"), ControlPlane::Full { nodes: 0 }).unwrap();
    let member =
        RealCluster::start(&dir.path().join("member"), ControlPlane::Full { nodes: 2 }).unwrap();
    let hub_kc: PathBuf = hub.kubeconfig().to_path_buf();
    ok(
        member.kubeconfig(),
        &[
            "apply",
            "-f",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../docs/examples/member-agent-rbac.yaml"
            ),
        ],
    );
    let agent_kc = dir.path().join("real-agent.kubeconfig");
    member
        .token_kubeconfig("flotilla-system", "flotilla-agent", 2, &agent_kc)
        .unwrap();

    let controllers_log = dir.path().join("controllers.log");
    let fleet_log = dir.path().join("fleet.log");
    let logs = || {
        format!(
            "--- controllers ---\n{}\n--- fleet ---\n{}",
            std::fs::read_to_string(&controllers_log).unwrap_or_default(),
            std::fs::read_to_string(&fleet_log).unwrap_or_default()
        )
    };
    // A replica of the fleet controllers against the real hub.
    let replica = |log: &Path| {
        spawn(
            &[
                "hub",
                "--kubeconfig",
                hub_kc.to_str().unwrap(),
                "--webhook-bind",
                "127.0.0.1:0",
                "--leader-lease-seconds",
                "6",
            ],
            log,
        )
    };
    let mut procs = Processes(vec![replica(&controllers_log)]);
    // Ready when the webhook is registered (the hub serves it before registering it, and
    // installs the CRDs first).
    wait_for(
        "the fleet CRDs and webhook",
        Duration::from_secs(60),
        || {
            get_json(
                &hub_kc,
                &[
                    "get",
                    "validatingwebhookconfiguration",
                    "fleet-validation.flotilla.dev",
                ],
            )
        },
    );

    // The admission rules answer through the webhook with a 422 and field causes, which kubectl
    // shows as it shows the same rule's answer from Flotilla's own API server.
    let out = kubectl_apply(
        &hub_kc,
        "apiVersion: cluster.kubernetes-fleet.io/v1beta1\nkind: MemberCluster\nmetadata: {name: bad}\nspec: {identity: {kind: Robot, name: x}}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("The MemberCluster \"bad\" is invalid: spec.identity.kind: Unsupported value: \"Robot\""),
        "{err}"
    );
    assert!(
        kubectl(&hub_kc, &["get", "membercluster", "bad"])
            .status
            .code()
            != Some(0)
    );

    // The leader holds the Lease.
    let lease = wait_for("the leader lease", Duration::from_secs(30), || {
        get_json(
            &hub_kc,
            &["get", "lease", "-n", "flotilla-system", "flotilla-hub"],
        )
    });
    assert!(lease["spec"]["holderIdentity"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));

    // A simulated and a real member join through the real hub.
    procs.0.push(spawn(
        &[
            "up",
            "--members",
            "1",
            "--hub-kubeconfig",
            hub_kc.to_str().unwrap(),
            "--real-member",
            agent_kc.to_str().unwrap(),
            "--data-dir",
            dir.path().join("fleet").to_str().unwrap(),
            "--heartbeat-period-seconds",
            "2",
            "--workload-delay-ms",
            "200",
        ],
        &fleet_log,
    ));
    let mut last = Value::Null;
    let joined = (0..300).find_map(|_| {
        std::thread::sleep(Duration::from_millis(200));
        last = get_json(&hub_kc, &["get", "memberclusters"])?;
        let items = last["items"].as_array()?;
        let joined = items
            .iter()
            .filter(|m| condition(m, "Joined").0 == "True")
            .count();
        (joined == 2).then_some(())
    });
    assert!(joined.is_some(), "members did not join: {last}\n{}", logs());
    // Joined comes with the first heartbeat; the properties with the first one after the
    // agent's node and pod caches have listed, which may be the next.
    let mut mc = Value::Null;
    for _ in 0..150 {
        mc = get_json(&hub_kc, &["get", "membercluster", "member-2"]).unwrap();
        if !mc["status"]["properties"].is_null() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        mc["status"]["properties"]["kubernetes-fleet.io/node-count"]["value"], "2",
        "{mc}"
    );

    // A placement through to Available on both. Created in the same apply as its resources,
    // its first snapshot may hold only some of them; the rest then roll out as an update, after
    // the untrackable kinds' unavailable period (KubeFleet's default 60 s, 1 s here).
    let app = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {color: blue}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx}]\n---\napiVersion: placement.kubernetes-fleet.io/v1beta1\nkind: ClusterResourcePlacement\nmetadata: {name: shop}\nspec:\n  resourceSelectors: [{group: \"\", version: v1, kind: Namespace, name: shop}]\n  policy: {placementType: PickAll}\n  strategy: {rollingUpdate: {unavailablePeriodSeconds: 1}}\n";
    let out = kubectl_apply(&hub_kc, app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut last = Value::Null;
    let available = (0..450).find_map(|_| {
        std::thread::sleep(Duration::from_millis(200));
        last = get_json(&hub_kc, &["get", "crp", "shop"])?;
        let c = last["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ClusterResourcePlacementAvailable")?;
        (c["status"] == "True" && c["observedGeneration"] == last["metadata"]["generation"])
            .then_some(())
    });
    assert!(
        available.is_some(),
        "placement not Available: {}\n{}",
        serde_json::to_string_pretty(&last["status"]).unwrap(),
        logs()
    );
    // What the hub's controller manager made in the namespace (its CA, its default service
    // account) is not placed: each member has its own.
    let selected: Vec<String> = last["status"]["selectedResources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        selected,
        ["Namespace/shop", "ConfigMap/settings", "Deployment/web"],
        "{selected:?}"
    );
    let hub_ca = get_json(
        &hub_kc,
        &["get", "configmap", "kube-root-ca.crt", "-n", "shop"],
    )
    .unwrap();
    let fleet = dir.path().join("fleet");
    for m in ["member-1", "member-2"] {
        let kc = fleet.join(m).join("admin.kubeconfig");
        let ca = wait_for(
            "the member's own kube-root-ca.crt",
            Duration::from_secs(30),
            || get_json(&kc, &["get", "configmap", "kube-root-ca.crt", "-n", "shop"]),
        );
        assert_ne!(ca["data"], hub_ca["data"], "{m} got the hub's CA");
    }
    for m in ["member-1", "member-2"] {
        let kc = fleet.join(m).join("admin.kubeconfig");
        assert_eq!(
            ok(
                &kc,
                &[
                    "get",
                    "configmap",
                    "settings",
                    "-n",
                    "shop",
                    "-o",
                    "jsonpath={.data.color}"
                ]
            ),
            "blue",
            "{m}"
        );
    }
    let deploy = get_json(
        member.kubeconfig(),
        &["get", "deployment", "web", "-n", "shop"],
    )
    .unwrap();
    assert_eq!(deploy["status"]["availableReplicas"], 2, "{deploy}");

    // A second replica waits; when the leader is killed it takes the Lease over and carries
    // on: deleting the placement removes what it placed.
    let first = lease["spec"]["holderIdentity"].clone();
    let second_log = dir.path().join("controllers-2.log");
    procs.0.push(replica(&second_log));
    // The Lease, not a log line, tells who leads: the second replica takes it once the first
    // is killed, whenever it got ready.
    procs.0[0].kill().unwrap();
    procs.0[0].wait().unwrap();
    wait_for(
        "the second replica to lead",
        Duration::from_secs(30),
        || {
            let l = get_json(
                &hub_kc,
                &["get", "lease", "-n", "flotilla-system", "flotilla-hub"],
            )?;
            let h = &l["spec"]["holderIdentity"];
            (h.is_string() && *h != first).then_some(())
        },
    );
    ok(&hub_kc, &["delete", "crp", "shop"]);
    wait_for(
        "the real member's namespace to go",
        Duration::from_secs(90),
        || {
            let out = kubectl(
                member.kubeconfig(),
                &["get", "namespace", "shop", "-o", "name"],
            );
            (!out.status.success()).then_some(())
        },
    );
    drop(procs);
}
