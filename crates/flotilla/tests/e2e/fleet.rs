//! A fleet of processes: a hub, two simulated members and their agents. Joining, properties,
//! RBAC between members, agent failure and recovery, wrong credentials, hub restart, leaving;
//! a placement that converges although the hub and an agent are killed in its middle.

#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Starts a hub on `port`, 0 for one it picks itself; returns it and the port it serves on
/// (read from the admin kubeconfig it writes), so a restart can come back at the same address.
fn start_hub(dir: &Path, port: u16) -> (Proc, u16) {
    let kc = dir.join("admin.kubeconfig");
    let _ = std::fs::remove_file(&kc);
    let child = flotilla()
        .args(["hub", "--data-dir"])
        .arg(dir)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--member-health-threshold-seconds", "3"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    wait_file(&kc);
    let text = std::fs::read_to_string(&kc).unwrap();
    let served = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no server address in {text}"));
    (Proc(child), served)
}

fn membercluster(hub: &Path, name: &str) -> Option<Value> {
    get_json(hub, &["get", "membercluster", name])
}

#[test]
fn members_join_report_fail_recover_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let (mut hub_proc, port) = start_hub(&d("hub"), 0);
    let hub = d("hub/admin.kubeconfig");
    let _m1 = start_member(&d("m1"), "m1");
    let _m2 = start_member(&d("m2"), "m2");

    // Join both; a second join of a name is refused with a clear error.
    for m in ["m1", "m2"] {
        let out = join(&hub, m, &d(&format!("{m}-agent.kubeconfig")));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let again = join(&hub, "m1", &d("again.kubeconfig"));
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // An operator-defined property in member m1.
    let m1_admin = d("m1/admin.kubeconfig");
    assert!(
        kubectl(&m1_admin, &["create", "namespace", "flotilla-system"])
            .status
            .success()
    );
    assert!(kubectl(
        &m1_admin,
        &[
            "-n",
            "flotilla-system",
            "create",
            "configmap",
            "cluster-properties",
            "--from-literal=properties=cost.example.com/per-core=0.05",
            "--from-literal=gpu-count=4"
        ]
    )
    .status
    .success());

    let mut a1 = start_agent("m1", &d("m1-agent.kubeconfig"), &m1_admin, &d("a1.log"));
    let _a2 = start_agent(
        "m2",
        &d("m2-agent.kubeconfig"),
        &d("m2/admin.kubeconfig"),
        &d("a2.log"),
    );

    // Joined, healthy, with properties, visible through kubectl.
    let mc = wait_for("m1 joined with properties", Duration::from_secs(30), || {
        membercluster(&hub, "m1").filter(|mc| {
            condition(mc, "Joined").0 == "True"
                && condition(mc, "Healthy").0 == "True"
                && mc["status"]["properties"]["cost.example.com/per-core"]["value"] == "0.05"
        })
    });
    let props = &mc["status"]["properties"];
    assert_eq!(props["kubernetes-fleet.io/node-count"]["value"], "2");
    assert_eq!(
        props["resources.kubernetes-fleet.io/total-cpu"]["value"],
        "16"
    );
    assert_eq!(
        props["resources.kubernetes-fleet.io/available-cpu"]["value"],
        "16"
    );
    assert_eq!(props["k8s.io/k8s-version"]["value"], "v1.33.13");
    assert_eq!(props["gpu-count"]["value"], "4");
    assert_eq!(mc["status"]["resourceUsage"]["allocatable"]["cpu"], "16");
    assert_eq!(condition(&mc, "ReadyToJoin").0, "True");
    assert_eq!(
        condition(&mc, "ClusterPropertyCollectionSucceeded").0,
        "True"
    );
    let yaml =
        String::from_utf8(kubectl(&hub, &["get", "membercluster", "m1", "-o", "yaml"]).stdout)
            .unwrap();
    assert!(yaml.contains("kubernetes-fleet.io/node-count"), "{yaml}");

    // Available CPU follows what running pods request in the member.
    assert!(kubectl(
        &m1_admin,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2"
        ]
    )
    .status
    .success());
    assert!(kubectl(
        &m1_admin,
        &["set", "resources", "deployment", "web", "--requests=cpu=3"]
    )
    .status
    .success());
    wait_for(
        "available CPU to drop by 6",
        Duration::from_secs(30),
        || {
            membercluster(&hub, "m1").filter(|mc| {
                mc["status"]["properties"]["resources.kubernetes-fleet.io/available-cpu"]["value"]
                    == "10"
            })
        },
    );

    // RBAC: a member's credentials reach its own namespace and nothing else.
    let m1_agent = d("m1-agent.kubeconfig");
    let own = kubectl(&m1_agent, &["get", "configmaps", "-n", "fleet-member-m1"]);
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let other = kubectl(&m1_agent, &["get", "configmaps", "-n", "fleet-member-m2"]);
    assert!(!other.status.success());
    let msg = String::from_utf8_lossy(&other.stderr);
    assert!(
        msg.contains("configmaps is forbidden: User \"fleet-member-m1\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"fleet-member-m2\""),
        "{msg}"
    );
    let cluster = kubectl(&m1_agent, &["get", "memberclusters"]);
    assert!(String::from_utf8_lossy(&cluster.stderr).contains("at the cluster scope"));

    // kill -9 the agent: the member turns unhealthy within the threshold, then recovers.
    a1.0.kill().unwrap();
    let _ = a1.0.wait();
    let mc = wait_for("m1 unhealthy", Duration::from_secs(20), || {
        membercluster(&hub, "m1").filter(|mc| condition(mc, "Healthy").0 == "False")
    });
    assert_eq!(condition(&mc, "Healthy").1, "MemberAgentHeartbeatTimeout");
    let _a1 = start_agent("m1", &m1_agent, &m1_admin, &d("a1b.log"));
    wait_for("m1 healthy again", Duration::from_secs(20), || {
        membercluster(&hub, "m1").filter(|mc| condition(mc, "Healthy").0 == "True")
    });

    // Wrong credentials: a clear log line, and no retry storm.
    let bad = d("bad.kubeconfig");
    let text = std::fs::read_to_string(&m1_agent).unwrap();
    let cut = text.find("    client-certificate-data").unwrap();
    let end = text[cut..].find("contexts:").unwrap() + cut;
    std::fs::write(
        &bad,
        format!(
            "{}    token: not-a-valid-token\n{}",
            &text[..cut],
            &text[end..]
        ),
    )
    .unwrap();
    let bad_agent = start_agent("m1", &bad, &m1_admin, &d("bad.log"));
    // Rejected credentials are reported with what to check (how long the agent then waits is
    // the backoff's, unit-tested in flotilla-agent's backoff.rs).
    let line = wait_for("the agent to report 401", Duration::from_secs(20), || {
        std::fs::read_to_string(d("bad.log"))
            .unwrap()
            .lines()
            .find(|l| l.contains("rejected the agent's credentials (401"))
            .map(String::from)
    });
    drop(bad_agent);
    assert!(
        line.contains("check the agent's hub kubeconfig and that the MemberCluster exists"),
        "{line}"
    );

    // Hub restart (kill -9): agents reconnect without help.
    hub_proc.0.kill().unwrap();
    let _ = hub_proc.0.wait();
    let (_hub2, _) = start_hub(&d("hub"), port);
    // A heartbeat the restarted hub received: the one it has, then a later one.
    let heartbeat = |mc: &Value| mc["status"]["agentStatus"][0]["lastReceivedHeartbeat"].clone();
    let first = heartbeat(&membercluster(&hub, "m2").unwrap());
    wait_for(
        "heartbeats after the hub restart",
        Duration::from_secs(40),
        || {
            membercluster(&hub, "m2")
                .filter(|mc| heartbeat(mc) != first && condition(mc, "Healthy").0 == "True")
        },
    );

    // Leave: deleting the MemberCluster makes the agent report Left and exit; the hub removes
    // the member's namespace and then the MemberCluster.
    assert!(
        kubectl(&hub, &["delete", "membercluster", "m2", "--wait=false"])
            .status
            .success()
    );
    let mut a2 = _a2;
    let code = wait_for("the m2 agent to exit", Duration::from_secs(30), || {
        a2.0.try_wait().unwrap()
    });
    assert!(code.success());
    wait_for("m2 removed", Duration::from_secs(30), || {
        membercluster(&hub, "m2").is_none().then_some(())
    });
    wait_for(
        "namespace fleet-member-m2 removed",
        Duration::from_secs(30),
        || {
            get_json(&hub, &["get", "namespace", "fleet-member-m2"])
                .is_none()
                .then_some(())
        },
    );
    let log = std::fs::read_to_string(d("a2.log")).unwrap();
    assert!(log.contains("left the fleet"), "{log}");
    // m1 stays.
    assert!(membercluster(&hub, "m1").is_some());

    // Revoked access: without its RoleBinding the agent gets 403 and says so.
    assert!(kubectl(
        &hub,
        &[
            "-n",
            "fleet-member-m1",
            "delete",
            "rolebinding",
            "fleet-rolebinding-m1"
        ]
    )
    .status
    .success());
    wait_for("the agent to report 403", Duration::from_secs(20), || {
        let log = std::fs::read_to_string(d("a1b.log")).unwrap();
        log.contains("rejected the agent's credentials (403")
            .then_some(())
    });
}

#[test]
fn a_placement_converges_across_a_hub_kill_and_an_agent_kill_in_its_middle() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let (mut hub_proc, port) = start_hub(&d("hub"), 0);
    let hub = d("hub/admin.kubeconfig");
    let _m1 = start_member(&d("m1"), "m1");
    let _m2 = start_member(&d("m2"), "m2");
    for m in ["m1", "m2"] {
        let out = join(&hub, m, &d(&format!("{m}-agent.kubeconfig")));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let agent = |m: &str, log: &str| {
        start_agent(
            m,
            &d(&format!("{m}-agent.kubeconfig")),
            &d(&format!("{m}/admin.kubeconfig")),
            &d(log),
        )
    };
    let mut a1 = agent("m1", "a1.log");
    let _a2 = agent("m2", "a2.log");
    for m in ["m1", "m2"] {
        wait_for(&format!("{m} joined"), Duration::from_secs(30), || {
            membercluster(&hub, m).filter(|mc| condition(mc, "Joined").0 == "True")
        });
    }
    // A namespace of 60 ConfigMaps, placed everywhere.
    let mut yaml = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: bulk}\n");
    for i in 0..60 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: bulk}}\ndata: {{i: \"{i}\"}}\n"
        ));
    }
    yaml.push_str(
        "---\napiVersion: placement.kubernetes-fleet.io/v1beta1\nkind: ClusterResourcePlacement\n\
         metadata: {name: bulk}\nspec:\n  resourceSelectors: [{group: \"\", version: v1, kind: Namespace, name: bulk}]\n  policy: {placementType: PickAll}\n  strategy: {rollingUpdate: {unavailablePeriodSeconds: 1}}\n",
    );
    let out = kubectl_apply(&hub, &yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // In its middle: once the hub has written m1's Work, kill -9 the hub and m1's agent.
    wait_for("m1's Work", Duration::from_secs(30), || {
        get_json(&hub, &["-n", "fleet-member-m1", "get", "works"])
            .filter(|l| l["items"].as_array().is_some_and(|i| !i.is_empty()))
    });
    hub_proc.0.kill().unwrap();
    a1.0.kill().unwrap();
    let _ = hub_proc.0.wait();
    let _ = a1.0.wait();
    let (_hub_proc, _) = start_hub(&d("hub"), port);
    let _a1 = agent("m1", "a1-restarted.log");
    // The placement converges: every ConfigMap on both members, the placement Available.
    for m in ["m1", "m2"] {
        let kc = d(&format!("{m}/admin.kubeconfig"));
        wait_for(
            &format!("all 60 ConfigMaps on {m}"),
            Duration::from_secs(60),
            || {
                get_json(&kc, &["-n", "bulk", "get", "configmaps", "-l", "!nothing"]).filter(|l| {
                    l["items"].as_array().is_some_and(|items| {
                        (0..60).all(|i| {
                            items.iter().any(|c| {
                                c["metadata"]["name"] == format!("c{i}").as_str()
                                    && c["data"]["i"] == i.to_string().as_str()
                            })
                        })
                    })
                })
            },
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = get_json(&hub, &["get", "clusterresourceplacement", "bulk"]).unwrap();
        if condition(&p, "ClusterResourcePlacementAvailable").0 == "True" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the placement is not Available: {:#}\nhub log:\n{}",
            p["status"],
            std::fs::read_to_string(d("hub.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn fleet_commands_reject_bad_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let one_line = |out: &Output, code: i32, want: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(want), "{err}");
        if code == 1 {
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    };
    let out = flotilla()
        .args([
            "member",
            "--name",
            "m",
            "--node-cpu",
            "lots",
            "--store",
            "memory",
            "--data-dir",
        ])
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    one_line(&out, 1, "must be Kubernetes quantities");
    let out = flotilla()
        .args([
            "member",
            "--name",
            "m",
            "--node-labels",
            "novalue",
            "--store",
            "memory",
            "--data-dir",
        ])
        .arg(dir.path().join("m2"))
        .output()
        .unwrap();
    one_line(&out, 1, "must be KEY=VALUE");
    let out = flotilla()
        .args(["join", "x", "--hub-kubeconfig"])
        .arg(dir.path().join("missing.kubeconfig"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    one_line(&out, 1, "missing.kubeconfig");
    let out = flotilla()
        .args(["agent", "--name", "x", "--hub-kubeconfig"])
        .arg(dir.path().join("missing.kubeconfig"))
        .output()
        .unwrap();
    one_line(&out, 1, "missing.kubeconfig");
    let out = flotilla().args(["join", "x"]).output().unwrap();
    one_line(&out, 2, "--hub-kubeconfig");
    let out = flotilla()
        .args(["up", "--members", "many"])
        .output()
        .unwrap();
    one_line(&out, 2, "many");
}

/// The clusters a placement's bindings target (bound or scheduled, not going).
fn bound_to(hub: &Path, placement: &str) -> Vec<String> {
    let mut v: Vec<String> = get_json(hub, &["get", "clusterresourcebindings"])
        .map(|l| {
            l["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["metadata"]["labels"]["kubernetes-fleet.io/parent-CRP"] == placement)
                .filter(|b| {
                    b["spec"]["state"] != "Unscheduled"
                        && b["metadata"]["deletionTimestamp"].is_null()
                })
                .filter_map(|b| b["spec"]["targetCluster"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_pick_n_share_fails_over_from_a_member_whose_agent_died_and_back_with_failback() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let (_hub_proc, _) = start_hub(&d("hub"), 0);
    let hub = d("hub/admin.kubeconfig");
    let mut agents = Vec::new();
    let mut members = Vec::new();
    for m in ["m1", "m2", "m3"] {
        members.push(start_member(&d(m), m));
        let out = join(&hub, m, &d(&format!("{m}-agent.kubeconfig")));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        agents.push(Some(start_agent(
            m,
            &d(&format!("{m}-agent.kubeconfig")),
            &d(&format!("{m}/admin.kubeconfig")),
            &d(&format!("{m}-agent.log")),
        )));
    }
    wait_for("three joined members", Duration::from_secs(60), || {
        let l = get_json(&hub, &["get", "memberclusters"])?;
        (l["items"]
            .as_array()?
            .iter()
            .filter(|m| condition(m, "Joined").0 == "True")
            .count()
            == 3)
            .then_some(())
    });
    let out = kubectl_apply(
        &hub,
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: shared}
---
apiVersion: placement.kubernetes-fleet.io/v1
kind: ClusterResourcePlacement
metadata:
  name: web
  annotations: {flotilla.dev/failover-after: 2s}
spec:
  resourceSelectors: [{group: "", version: v1, kind: Namespace, name: shared}]
  policy: {placementType: PickN, numberOfClusters: 2}
"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = wait_for("two bound clusters", Duration::from_secs(60), || {
        let b = bound_to(&hub, "web");
        (b.len() == 2).then_some(b)
    });
    let lost = first[0].clone();
    let spare = ["m1", "m2", "m3"]
        .into_iter()
        .find(|m| !first.iter().any(|f| f == m))
        .unwrap()
        .to_string();

    // Its agent dies: after 3 missed heartbeats the member is unhealthy, 2 s later its share
    // moves to the spare cluster.
    let index = ["m1", "m2", "m3"].iter().position(|m| *m == lost).unwrap();
    agents[index] = None;
    let mut want: Vec<String> = vec![first[1].clone(), spare.clone()];
    want.sort();
    wait_for("the share to fail over", Duration::from_secs(60), || {
        (bound_to(&hub, "web") == want).then_some(())
    });
    let p = get_json(&hub, &["get", "crp", "web"]).unwrap();
    assert_eq!(
        p["metadata"]["annotations"]["flotilla.dev/failed-over"],
        format!("{{\"{lost}\":\"{spare}\"}}")
    );
    let events = get_json(&hub, &["get", "events", "-A"]).unwrap();
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "FailedOver"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("its share moves to {spare}"))),
        "{events}"
    );

    // It recovers: nothing moves back by itself.
    agents[index] = Some(start_agent(
        &lost,
        &d(&format!("{lost}-agent.kubeconfig")),
        &d(&format!("{lost}/admin.kubeconfig")),
        &d(&format!("{lost}-agent-2.log")),
    ));
    wait_for(
        "the member to be healthy again",
        Duration::from_secs(60),
        || {
            let m = get_json(&hub, &["get", "membercluster", &lost])?;
            (condition(&m, "Healthy").0 == "True").then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bound_to(&hub, "web"), want);

    // Fail-back asked for: the share returns to it.
    let out = kubectl(
        &hub,
        &["annotate", "crp", "web", "flotilla.dev/failback=true"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the share to fail back", Duration::from_secs(60), || {
        (bound_to(&hub, "web") == first).then_some(())
    });
    let p = get_json(&hub, &["get", "crp", "web"]).unwrap();
    assert!(
        p["metadata"]["annotations"]["flotilla.dev/failed-over"].is_null(),
        "{p}"
    );
    drop(members);
}
