//! End-to-end tests of `flotilla bench fleet`: a small run through every phase (the hub in
//! this process, killed and restarted on its store), its table and JSON; usage errors; Ctrl-C
//! in the middle of a run, after which nothing it started is left running or on disk.

// These tests are synchronous: waiting for a process is a blocking sleep by design.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

/// Processes (other than this test) whose command line mentions `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&dir))
        .collect()
}

/// Nothing of a run is left: no process, no file in its TMPDIR.
fn assert_left_nothing(tmp: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_under(tmp).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processes_under(tmp), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bench_fleet_runs_every_phase_and_reports_a_table_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("../bench-fleet.json");
    let out = flotilla()
        .env("TMPDIR", tmp.path())
        .args([
            "bench",
            "fleet",
            "--members",
            "6",
            "--placements",
            "3",
            "--clusters-per-placement",
            "2",
            "--repetitions",
            "2",
            "--idle-seconds",
            "2",
            "--agents",
            "1",
            "--unavailable-period-seconds",
            "1",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    // Quiet: progress and results, no log lines of agents or clients.
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("WARN"),
        "{stderr}"
    );
    for row in [
        "6 members Joined and Healthy",
        "hub CPU, heartbeats only",
        "first placement, 2 clusters, create to Available, p99 of 2",
        "3 placements x 2 clusters (6 bindings) all Available",
        "one more placement while 3 roll out",
        "every placement seen Available again and the hub idle",
        "3 rolling updates at once complete",
        "agent RSS idle (largest)",
    ] {
        assert!(stdout.contains(row), "no row {row:?} in\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    let rows = report["results"].as_array().unwrap();
    let phases: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(
        phases.into_iter().collect::<Vec<_>>(),
        [
            "agent",
            "idle",
            "join",
            "placement",
            "placements",
            "restart",
            "rollouts"
        ]
    );
    // Every figure measured; targets of another scenario not judged; the agent's judged.
    for r in rows {
        assert!(r["value"].as_f64().unwrap() >= 0.0, "{r}");
    }
    let first = rows
        .iter()
        .find(|r| {
            r["figure"].as_str().unwrap().contains("first placement") && r["target"].is_object()
        })
        .unwrap();
    assert_eq!(first["verdict"], "n/a", "{first}");
    let agent = rows
        .iter()
        .find(|r| r["figure"] == "agent CPU idle (mean)")
        .unwrap();
    assert!(
        matches!(agent["verdict"].as_str(), Some("met" | "missed")),
        "{agent}"
    );
    assert_eq!(report["facts"]["arguments"]["members"], 6);
    assert!(report["facts"]["machine"]["cores"].as_u64().unwrap() > 0);
    assert_left_nothing(tmp.path());
}

#[test]
fn bench_fleet_refuses_impossible_arguments() {
    let out = flotilla()
        .args([
            "bench",
            "fleet",
            "--members",
            "3",
            "--clusters-per-placement",
            "4",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--clusters-per-placement must be between 1 and --members (3)"),
        "{err}"
    );
    // Usage errors (exit 2), before anything starts.
    for (arg, value) in [
        ("--members", "0"),
        ("--repetitions", "0"),
        ("--heartbeat", "0"),
    ] {
        let out = flotilla()
            .args(["bench", "fleet", arg, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(
            err.contains(&format!("invalid value '0' for '{arg}")),
            "{arg}: {err}"
        );
    }
}

#[test]
fn ctrl_c_stops_bench_fleet_and_leaves_nothing_running() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = flotilla()
        .env("TMPDIR", tmp.path())
        .args([
            "bench",
            "fleet",
            "--hub-process",
            "--members",
            "4",
            "--placements",
            "2",
            "--clusters-per-placement",
            "2",
            "--idle-seconds",
            "30",
            "--agents",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted while the fleet idles: hub process, members and agents all up.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let idle = line.starts_with("idle:");
        seen.push(line);
        if idle {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.starts_with("idle:")),
        "{}",
        seen.join("\n")
    );
    assert!(
        !processes_under(tmp.path()).is_empty(),
        "the hub process runs"
    );
    // The shell's own kill: a fresh Debian root has no /bin/kill (procps).
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "still running 30 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(code, Some(1), "{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.contains("interrupted")),
        "{}",
        rest.join("\n")
    );
    assert!(
        !rest
            .iter()
            .any(|l| l.contains("ERROR") || l.contains("WARN")),
        "{}",
        rest.join("\n")
    );
    assert_left_nothing(tmp.path());
}
