//! The structure ARCHITECTURE.md promises, checked: the crate graph (what may depend on what)
//! and the code map (every path it names exists).

#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `cargo metadata` of the workspace, with the resolved dependency graph.
fn metadata() -> Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each workspace crate's name, with the names of everything it needs to build and run (its
/// normal dependencies, transitively; not dev- or build-dependencies).
fn runtime_closures(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let deps: BTreeMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let normal = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), normal)
        })
        .collect();
    meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let id = m.as_str().unwrap();
            let mut seen = BTreeSet::new();
            let mut todo = vec![id];
            while let Some(x) = todo.pop() {
                for d in &deps[x] {
                    if seen.insert(*d) {
                        todo.push(d);
                    }
                }
            }
            (
                names[id].to_string(),
                seen.iter().map(|d| names[d].to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn the_crate_graph_keeps_its_invariants() {
    let meta = metadata();
    let closures = runtime_closures(&meta);
    // Crates that do IO: an async runtime, network or storage clients.
    let io = [
        "tokio",
        "mio",
        "hyper",
        "kube-client",
        "redb",
        "etcd-client",
        "rustls",
        "tonic",
    ];
    let needs = |krate: &str, dep: &str| closures[krate].contains(dep);
    for pure in ["flotilla-api", "flotilla-scheduler"] {
        let found: Vec<&&str> = io.iter().filter(|d| needs(pure, d)).collect();
        assert!(found.is_empty(), "{pure} does no IO, but needs {found:?}");
    }
    // The scheduler decides from the API types alone; the agent works against any cluster
    // through the Kubernetes API, not through Flotilla's server or store; the store knows
    // keys and JSON values, not Kubernetes.
    let flotilla_deps = |krate: &str| -> Vec<String> {
        closures[krate]
            .iter()
            .filter(|d| d.starts_with("flotilla"))
            .cloned()
            .collect()
    };
    assert_eq!(flotilla_deps("flotilla-scheduler"), ["flotilla-api"]);
    assert_eq!(flotilla_deps("flotilla-agent"), ["flotilla-api"]);
    assert!(flotilla_deps("flotilla-store").is_empty());
    assert!(!needs("flotilla-store", "kube-client"));
    // The test bed is for tests only: no crate needs it to build or run.
    for (krate, closure) in &closures {
        assert!(
            !closure.contains("flotilla-testbed"),
            "{krate} depends on flotilla-testbed outside [dev-dependencies]"
        );
    }
    let dev_users = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["name"] == "flotilla-testbed" && d["kind"] == "dev")
        })
        .count();
    assert!(dev_users > 0, "the tests use the test bed");
}

#[test]
fn every_path_the_architecture_names_exists() {
    let root = workspace();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let files_under = |dir: &Path| -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    };
    let mut section: Option<PathBuf> = None;
    let mut missing = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("### `") {
            section = rest
                .strip_suffix('`')
                .filter(|c| c.starts_with("crates/"))
                .map(|c| root.join(c));
            continue;
        }
        if line.starts_with("## ") {
            section = None;
        }
        for (i, quoted) in line.split('`').enumerate() {
            if i % 2 == 0 || quoted.contains(char::is_whitespace) {
                continue;
            }
            let name = quoted.split('#').next().unwrap();
            let rooted = ["crates/", "docs/", "scripts/", ".ci/"]
                .iter()
                .any(|p| name.starts_with(p));
            if rooted {
                if !root.join(name).exists() {
                    missing.push(name.to_string());
                }
            } else if name.ends_with(".rs") && !name.contains("::") {
                // A file of the crate whose section this is.
                let Some(krate) = &section else { continue };
                let found = files_under(krate).iter().any(|f| f.ends_with(name));
                if !found {
                    missing.push(format!("{} in {}", name, krate.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn the_api_types_and_the_scheduler_read_no_clock() {
    // Outside their tests: the code before a file's `#[cfg(test)]`.
    let root = workspace();
    let mut readers = Vec::new();
    for krate in ["crates/flotilla-api/src", "crates/flotilla-scheduler/src"] {
        for entry in std::fs::read_dir(root.join(krate)).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for clock in ["Utc::now", "SystemTime::now", "Instant::now", "Local::now"] {
                if code.contains(clock) {
                    readers.push(format!("{} reads {clock}", entry.path().display()));
                }
            }
        }
    }
    assert!(readers.is_empty(), "{readers:?}: pass the time in");
}
