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

/// `cargo metadata` of the workspace, with the resolved dependency graph for this machine's
/// platform (offline: the crates other platforms need may not be downloaded).
fn metadata() -> Value {
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
        .arg("-vV")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&rustc.stdout).to_string();
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", host])
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
    // The command line is a client of the hub's API, like kubectl: it needs no server,
    // controller or store of Flotilla's.
    assert_eq!(flotilla_deps("flotilla-ctl"), ["flotilla-api"]);
    assert!(flotilla_deps("flotilla-store").is_empty());
    assert!(!needs("flotilla-store", "kube-client"));
    // The benchmarks are wiring's to run, not a library's to need.
    for (krate, closure) in &closures {
        if krate != "flotilla" {
            assert!(
                !closure.contains("flotilla-bench"),
                "{krate} depends on flotilla-bench"
            );
        }
    }
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
    // Outside their tests: the code before a file's `#[cfg(test)]`, in every module.
    let mut readers = Vec::new();
    let mut files = 0;
    for krate in ["crates/flotilla-api/src", "crates/flotilla-scheduler/src"] {
        for (file, code) in code_under(krate) {
            files += 1;
            for clock in ["Utc::now", "SystemTime::now", "Instant::now", "Local::now"] {
                if code.contains(clock) {
                    readers.push(format!("{file} reads {clock}"));
                }
            }
        }
    }
    assert!(files > 10, "the sources were read");
    assert!(readers.is_empty(), "{readers:?}: pass the time in");
}

/// The non-test code of every `.rs` file under `dir`: the text before its `#[cfg(test)]`.
fn code_under(dir: &str) -> Vec<(String, String)> {
    let root = workspace();
    let mut out = Vec::new();
    let mut todo = vec![root.join(dir)];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                out.push((rel, code));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn controllers_start_only_through_spawn_controller() {
    // Tasks the hub and the API server may start themselves, none of them a controller: each
    // is scoped to one request, one connection, or is the election that decides who leads.
    let allowed: BTreeMap<&str, usize> = BTreeMap::from([
        // `spawn_follower` (runs on every replica) and the stream of one backup request.
        ("crates/flotilla-apiserver/src/server.rs", 2),
        // The event stream of one watch request.
        ("crates/flotilla-apiserver/src/list.rs", 1),
        // One client connection.
        ("crates/flotilla-apiserver/src/tls.rs", 1),
        // The campaign for the leader Lease.
        ("crates/flotilla-hub/src/lease.rs", 1),
    ]);
    let mut found = BTreeMap::new();
    for dir in ["crates/flotilla-apiserver/src", "crates/flotilla-hub/src"] {
        for (file, code) in code_under(dir) {
            let n =
                code.matches("tokio::spawn(").count() + code.matches("std::thread::spawn(").count();
            if n > 0 {
                found.insert(file, n);
            }
        }
    }
    let found: BTreeMap<&str, usize> = found.iter().map(|(f, n)| (f.as_str(), *n)).collect();
    assert_eq!(
        found, allowed,
        "a controller starts through spawn_controller (leader only) or spawn_follower (every \
         replica), never with a bare tokio::spawn; its own tasks go in a JoinSet it owns"
    );
}

/// Whether string literal `s` (without quotes) is a storage key or key prefix:
/// `/{group}/{plural}/...`, the group `core` or a domain.
fn is_storage_key(s: &str) -> bool {
    let mut parts = s.strip_prefix('/').unwrap_or("").split('/');
    let (Some(group), Some(plural)) = (parts.next(), parts.next()) else {
        return false;
    };
    let domain = group.contains('.')
        && group
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    (group == "core" || domain)
        && !plural.is_empty()
        && plural.chars().all(|c| c.is_ascii_lowercase())
}

/// The string literals of Rust source `code` (comments and char literals skipped; raw strings
/// read whole).
fn string_literals(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '\'' if c.get(i + 2) == Some(&'\'') => i += 3,
            '\'' if c.get(i + 1) == Some(&'\\') && c.get(i + 3) == Some(&'\'') => i += 4,
            'r' if matches!(c.get(i + 1), Some('"') | Some('#'))
                && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_')) =>
            {
                let hashes = c[i + 1..].iter().take_while(|&&x| x == '#').count();
                let start = i + 1 + hashes + 1;
                let mut j = start;
                while j < c.len()
                    && !(c[j] == '"'
                        && c[j + 1..].iter().take(hashes).all(|&x| x == '#')
                        && c.len() >= j + 1 + hashes)
                {
                    j += 1;
                }
                out.push(c[start.min(c.len())..j.min(c.len())].iter().collect());
                i = j + 1 + hashes;
            }
            '"' => {
                let mut j = i + 1;
                let mut lit = String::new();
                while j < c.len() && c[j] != '"' {
                    if c[j] == '\\' {
                        j += 1;
                    }
                    if let Some(&x) = c.get(j) {
                        lit.push(x);
                    }
                    j += 1;
                }
                out.push(lit);
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn storage_keys_are_made_only_by_the_registry() {
    assert_eq!(
        string_literals("let a = \"/x/\"; // \"no\"\nlet q = '\"'; let r = r#\"a\"b\"#;"),
        ["/x/", "a\"b"]
    );
    assert!(is_storage_key("/core/namespaces/"));
    assert!(is_storage_key(
        "/rbac.authorization.k8s.io/roles/{ns}/{name}"
    ));
    assert!(!is_storage_key("/apis/apps/v1"));
    assert!(!is_storage_key("/openapi/v3"));
    let mut literals = Vec::new();
    for dir in [
        "crates/flotilla-apiserver/src",
        "crates/flotilla-hub/src",
        "crates/flotilla/src",
    ] {
        for (file, code) in code_under(dir) {
            if file.ends_with("flotilla-apiserver/src/registry.rs") {
                continue;
            }
            for part in string_literals(&code) {
                if part.starts_with('/') && is_storage_key(&part) {
                    literals.push(format!("{file}: \"{part}\""));
                }
            }
        }
    }
    assert!(
        literals.is_empty(),
        "storage keys are made by registry::key_prefix_of and Resource::key, not spelled out: \
         {literals:?}"
    );
}

#[test]
fn only_the_api_server_serves_http() {
    // Of the libraries, only the API server depends directly on an HTTP server and TLS; the
    // others speak to it through the `kube` client. (The binary answers AdmissionReviews with
    // hyper in `external.rs`.)
    let meta = metadata();
    let serving = ["hyper", "hyper-util", "rustls", "tokio-rustls", "tower"];
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let mut found = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        if !members.contains(p["id"].as_str().unwrap()) {
            continue;
        }
        let direct: Vec<&str> = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|n| serving.contains(n))
            .collect();
        if !direct.is_empty() {
            found.insert(p["name"].as_str().unwrap().to_string(), direct);
        }
    }
    let servers: Vec<&String> = found.keys().collect();
    assert_eq!(
        servers,
        ["flotilla", "flotilla-agent", "flotilla-apiserver"],
        "{found:?}"
    );
    assert_eq!(found["flotilla"], ["hyper"]);
    // The agent builds an HTTP/2 client (kube's speaks HTTP/1.1) with hyper-util's client.
    assert_eq!(found["flotilla-agent"], ["hyper-util", "tower"]);
    let agent = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "flotilla-agent")
        .unwrap();
    let hyper_util = agent["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hyper-util")
        .unwrap();
    let features: Vec<&str> = hyper_util["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(features.contains(&"client-legacy"), "{features:?}");
}

#[test]
fn controllers_read_caches_and_write_through_the_api() {
    // The API server's controllers write through its handlers, never to the store.
    let mut offending = Vec::new();
    for (file, code) in code_under("crates/flotilla-apiserver/src/controllers") {
        for write in ["store().write(", "store.write(", "store().delete("] {
            if code.contains(write) {
                offending.push(format!("{file}: {write}"));
            }
        }
    }
    // Placement decides from its watch-fed caches: no LIST or GET of its own.
    let placement = code_under("crates/flotilla-hub/src/placement");
    assert!(placement.len() > 5, "the placement sources were read");
    for (file, code) in placement {
        for read in [".list(", ".get_opt(", ".get_status(", "Api::get("] {
            if code.contains(read) {
                offending.push(format!("{file}: {read}"));
            }
        }
    }
    assert!(offending.is_empty(), "{offending:?}");
}
