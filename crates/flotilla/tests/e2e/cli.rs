//! The command line's error paths: every command refuses bad input and reports failures in
//! one line (`error: ...`, exit 1) or as a usage error (exit 2), before it starts anything;
//! and an agent whose member cluster cannot be reached says so on the member's status.

#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::hub::start_hub;
use crate::support::*;

/// A kubeconfig for an API server that is not there.
fn dead_kubeconfig(path: &Path) {
    // Port 1 on loopback: nothing listens there, and nothing may bind it without privilege.
    std::fs::write(
        path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
    .unwrap();
}

/// `out` failed with `code`; for a runtime failure (1), stderr is exactly the line `want`.
#[track_caller]
fn refused(out: &Output, code: i32, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    if code == 1 {
        assert_eq!(err.trim(), want, "one line, and nothing else");
    } else {
        assert!(err.starts_with(want), "{err}");
    }
}

#[test]
fn commands_refuse_bad_input_and_report_failures_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    let run = |args: &[&str]| {
        flotilla()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    dead_kubeconfig(&d("dead.kubeconfig"));
    std::fs::write(d("garbage.backup"), "garbage\n").unwrap();

    // Backup and restore.
    refused(
        &run(&["hub", "backup", "--kubeconfig", "missing.kubeconfig", "--out", "x.backup"]),
        1,
        "error: reading kubeconfig missing.kubeconfig: failed to read kubeconfig from '\"missing.kubeconfig\"': No such file or directory (os error 2)",
    );
    refused(
        &run(&[
            "hub",
            "backup",
            "--kubeconfig",
            "dead.kubeconfig",
            "--out",
            "x.backup",
        ]),
        1,
        "error: asking the hub for a backup: Connection refused (os error 111)",
    );
    refused(
        &run(&[
            "hub",
            "restore",
            "--from",
            "missing.backup",
            "--data-dir",
            "r",
        ]),
        1,
        "error: opening missing.backup: No such file or directory (os error 2)",
    );
    refused(
        &run(&["hub", "restore", "--from", "garbage.backup", "--data-dir", "r"]),
        1,
        "error: garbage.backup: stored data is corrupt: backup line 1: expected value at line 1 column 1",
    );
    refused(
        &run(&[
            "hub",
            "restore",
            "--from",
            "garbage.backup",
            "--data-dir",
            "r",
            "--store",
            "memory",
        ]),
        1,
        "error: restore into redb or etcd (memory keeps nothing)",
    );
    refused(
        &run(&["hub", "restore", "--data-dir", "r"]),
        2,
        "error: the following required arguments were not provided:",
    );

    // Serving.
    refused(
        &run(&["hub", "--data-dir", "h", "--store", "etcd"]),
        1,
        "error: --store etcd needs --etcd-endpoints URL[,URL...]",
    );
    refused(
        &run(&[
            "hub",
            "--data-dir",
            "h",
            "--store",
            "etcd",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
            "--etcd-ca",
            "missing.pem",
        ]),
        1,
        "error: reading missing.pem: No such file or directory (os error 2)",
    );
    refused(
        &run(&["hub", "--kubeconfig", "dead.kubeconfig"]),
        1,
        "error: reaching the API server of dead.kubeconfig: Connection refused (os error 111)",
    );
    refused(
        &run(&["hub", "--data-dir", "h", "--leader-lease-seconds", "soon"]),
        2,
        "error: invalid value 'soon' for '--leader-lease-seconds <SECONDS>'",
    );

    // Members, agents, joining, a local fleet.
    let bad_name = "error: invalid value 'Bad_Name' for";
    refused(
        &run(&["member", "--name", "Bad_Name", "--data-dir", "m"]),
        2,
        bad_name,
    );
    refused(
        &run(&[
            "agent",
            "--name",
            "Bad_Name",
            "--hub-kubeconfig",
            "dead.kubeconfig",
        ]),
        2,
        bad_name,
    );
    refused(
        &run(&[
            "join",
            "Bad_Name",
            "--hub-kubeconfig",
            "dead.kubeconfig",
            "--out",
            "a.kubeconfig",
        ]),
        2,
        bad_name,
    );
    refused(
        &run(&[
            "join",
            "m1",
            "--hub-kubeconfig",
            "dead.kubeconfig",
            "--out",
            "a.kubeconfig",
        ]),
        1,
        "error: reaching the hub of dead.kubeconfig: Connection refused (os error 111)",
    );
    refused(
        &run(&["agent", "--name", "m1", "--hub-kubeconfig", "dead.kubeconfig", "--member-kubeconfig", "missing.kubeconfig"]),
        1,
        "error: reading kubeconfig missing.kubeconfig: failed to read kubeconfig from '\"missing.kubeconfig\"': No such file or directory (os error 2)",
    );
    // Nothing starts when an input is missing: no hub, no member.
    refused(
        &run(&[
            "up",
            "--members",
            "1",
            "--data-dir",
            "u",
            "--real-member",
            "missing.kubeconfig",
        ]),
        1,
        "error: reading kubeconfig missing.kubeconfig: No such file or directory (os error 2)",
    );
    assert!(
        !d("u").exists(),
        "up started something before reading its inputs"
    );

    // Against a running hub: a member's credentials may not take a backup, and a name is
    // joined once.
    let hub = start_hub(&d("hub"));
    let hub_kc = hub.kubeconfig.to_str().unwrap();
    let joined = run(&[
        "join",
        "m1",
        "--hub-kubeconfig",
        hub_kc,
        "--out",
        "m1-agent.kubeconfig",
    ]);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    refused(
        &run(&["hub", "backup", "--kubeconfig", "m1-agent.kubeconfig", "--out", "x.backup"]),
        1,
        "error: asking the hub for a backup: 403 (Forbidden): forbidden: User \"fleet-member-m1\" cannot get path \"/flotilla/backup\"",
    );
    assert!(!d("x.backup").exists() && !d("x.partial").exists());

    // An agent whose member cluster cannot be reached reports it on the MemberCluster.
    let _agent = start_agent(
        "m1",
        &d("m1-agent.kubeconfig"),
        &d("dead.kubeconfig"),
        &d("agent.log"),
    );
    let mc = wait_for(
        "m1 unhealthy, with the reason",
        Duration::from_secs(30),
        || {
            get_json(&hub.kubeconfig, &["get", "membercluster", "m1"]).filter(|mc| {
                condition(mc, "Joined").0 == "True" && condition(mc, "Healthy").0 == "False"
            })
        },
    );
    let agent = &mc["status"]["agentStatus"][0]["conditions"];
    let healthy = agent
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Healthy"))
        .unwrap();
    assert_eq!(
        healthy["message"],
        "the member API server is not ready: Connection refused (os error 111)"
    );
}
