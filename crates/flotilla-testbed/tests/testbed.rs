//! The real cluster helper itself: the pinned release matches the hub's, and a full control
//! plane runs workloads to their real status and stops everything it started.

#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use flotilla_testbed::{ControlPlane, RealCluster, K8S_VERSION};
use serde_json::{json, Value};

fn minor(v: &str) -> &str {
    let mut parts = v.trim_start_matches('v').split('.');
    parts.next();
    parts.next().unwrap_or("")
}

#[test]
fn the_pinned_release_is_the_one_the_script_builds_and_the_hub_reports() {
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/k8s.sh"))
            .unwrap();
    assert!(
        script.contains(&format!("K8S_VERSION={K8S_VERSION}\n")),
        "scripts/k8s.sh pins another release than {K8S_VERSION}"
    );
    assert_eq!(
        minor(K8S_VERSION),
        minor(flotilla_apiserver::schema::GIT_VERSION),
        "the reference cluster and the hub must report the same minor version"
    );
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_full_control_plane_runs_a_deployment_to_available_and_stops_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RealCluster::start(dir.path(), ControlPlane::Full { nodes: 2 }).unwrap();
    let version: Value =
        serde_json::from_str(&cluster.kubectl(&["get", "--raw", "/version"]).unwrap()).unwrap();
    assert_eq!(version["gitVersion"], K8S_VERSION);
    cluster
        .apply(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        }))
        .unwrap();
    wait_for("3 available replicas", Duration::from_secs(60), || {
        cluster
            .kubectl(&[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ])
            .is_ok_and(|o| o.trim() == "3")
    });
    // The pods were scheduled onto the KWOK nodes and run there.
    let pods: Value = serde_json::from_str(
        &cluster
            .kubectl(&["get", "pods", "-l", "app=web", "-o", "json"])
            .unwrap(),
    )
    .unwrap();
    for p in pods["items"].as_array().unwrap() {
        assert!(p["spec"]["nodeName"]
            .as_str()
            .unwrap()
            .starts_with("kwok-node-"));
        assert_eq!(p["status"]["phase"], "Running");
    }
    let url = cluster.url().to_string();
    let pids: Vec<u32> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "pid")
                .then(|| std::fs::read_to_string(p).ok()?.trim().parse().ok())?
        })
        .collect();
    assert_eq!(
        pids.len(),
        4,
        "kube-apiserver, controller manager, scheduler, kwok"
    );
    drop(cluster);
    for pid in pids {
        // Gone, or a zombie waiting to be reaped: either way no longer running.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        assert!(
            stat.is_empty() || state.starts_with('Z') || state.starts_with('X'),
            "process {pid} outlived the cluster: {stat}"
        );
    }
    assert!(std::net::TcpStream::connect(url.trim_start_matches("https://")).is_err());
}
