//! End-to-end tests of the `flotilla hub` process: its command-line contract, kubectl against
//! it, and kill -9 under concurrent creates, updates and deletes.

// These tests are synchronous: waiting for a process is a blocking sleep by design.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::churn;

use crate::support::*;

pub(crate) struct Hub {
    child: Child,
    pub(crate) kubeconfig: PathBuf,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a hub on a free port and waits for its admin kubeconfig.
pub(crate) fn start_hub(dir: &Path) -> Hub {
    let kubeconfig = dir.join("admin.kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let child = flotilla()
        .args(["hub", "--data-dir"])
        .arg(dir)
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(
            Instant::now() < deadline,
            "the hub did not write its kubeconfig"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Hub { child, kubeconfig }
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1_with_one_line() {
    let out = flotilla().args(["hub"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = flotilla()
        .args(["hub", "--data-dir", "/tmp/x", "--store", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = flotilla().args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let file = tempfile::NamedTempFile::new().unwrap();
    let out = flotilla()
        .args(["hub", "--data-dir"])
        .arg(file.path().join("sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("creating"), "{err}");

    // A port already in use is a runtime failure too.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = flotilla()
        .args(["hub", "--data-dir"])
        .arg(dir.path())
        .args(["--bind", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: binding"));
}

#[test]
fn kubectl_works_against_the_hub_process_and_credentials_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path());
    let kubectl = |args: &[&str]| {
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &hub.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let manifest =
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\ndata:\n  a: b\n";
            child
                .stdin
                .take()
                .unwrap()
                .write_all(manifest.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(kubectl(&["get", "namespaces"]).contains("default"));
    kubectl(&["create", "-f", "-"]);
    let ca = std::fs::read(dir.path().join("pki/ca.crt")).unwrap();
    drop(hub);
    let hub = start_hub(dir.path());
    assert_eq!(
        std::fs::read(dir.path().join("pki/ca.crt")).unwrap(),
        ca,
        "the CA is reused"
    );
    let out = Command::new("kubectl")
        .args(["get", "configmap", "kept", "-o", "jsonpath={.data.a}"])
        .env("KUBECONFIG", &hub.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b");
}

#[test]
fn kill_9_under_creates_updates_and_deletes_loses_no_acknowledged_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = start_hub(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(Mutex::new(churn::Ledger::default()));
    rt.block_on(async {
        let client = client(&hub.kubeconfig).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = (0..16)
            .map(|w| {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
                tokio::spawn(churn::work(api, w, ledger.clone(), stop.clone(), None))
            })
            .collect();
        // Let changes flow, then kill the hub mid-stream.
        while churn::Ledger::changes(&ledger) < 600 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        hub.child.kill().unwrap();
        hub.child.wait().unwrap();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    });
    let hub = start_hub(dir.path());
    rt.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&hub.kubeconfig).await, "default");
        let ledger = std::mem::take(&mut *ledger.lock().unwrap());
        churn::check(&api, &ledger).await;
    });
}

#[test]
fn bench_refuses_replicas_without_etcd_and_measures_backup_and_restore() {
    let out = flotilla()
        .args(["bench", "api", "--store", "redb", "--replicas", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--replicas 3 needs --store etcd"), "{err}");
    let out = flotilla()
        .args(["bench", "api", "--replicas", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A small run of the backup benchmark: backup, restore, start on the restored store, and
    // the restored hub serves every object (the benchmark checks and fails otherwise).
    let out = flotilla()
        .args(["bench", "backup", "--store", "redb", "--objects", "300"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| recovery time (restore + start) |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the restored hub serves all 300 objects"),
        "{stdout}"
    );
}
