//! End-to-end tests of a highly available hub: `flotilla hub` replicas on a real etcd (started
//! by the tests), leader failover, kill -9 under writes, etcd faults, backup and restore.

// These tests are synchronous: waiting for a process is a blocking sleep by design.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla_store::etcd_server::EtcdCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::churn;
use crate::support::*;

struct Replica {
    child: Child,
    kubeconfig: PathBuf,
    log: PathBuf,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Whether the replica says it leads: client-go's leader gauge on its /metrics (answered
    /// from memory, so also while etcd is unreachable).
    fn leads(&self) -> bool {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--server", &self.url, "get", "--raw", "/metrics"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "leader_election_master_status{name=\"flotilla-hub\"} 1")
    }

    /// The holder the leader Lease names, read through this replica.
    fn lease_holder(&self) -> Option<String> {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--server", &self.url])
            .args(["-n", "flotilla-system", "get", "lease", "flotilla-hub"])
            .args(["-o", "jsonpath={.spec.holderIdentity}"])
            .output()
            .unwrap();
        let holder = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !holder.is_empty()).then_some(holder)
    }

    /// Whether `identity` (`flotilla@<address>/<pid>`) is this replica's.
    fn is(&self, identity: &str) -> bool {
        let address = identity
            .split_once('@')
            .and_then(|(_, rest)| rest.split('/').next());
        address.is_some() && address == self.url.strip_prefix("https://")
    }
}

fn start_replica(dir: &Path, endpoints: &[String], prefix: &str, extra: &[&str]) -> Replica {
    std::fs::create_dir_all(dir).unwrap();
    let kubeconfig = dir.join("admin.kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let log = dir.join("hub.log");
    let child = flotilla()
        .args(["hub", "--data-dir"])
        .arg(dir)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--store",
            "etcd",
            "--etcd-endpoints",
        ])
        .arg(endpoints.join(","))
        .args([
            "--etcd-prefix",
            prefix,
            "--etcd-request-timeout-seconds",
            "2",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(
            Instant::now() < deadline,
            "the replica did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_string();
    Replica {
        child,
        kubeconfig,
        log,
        url,
    }
}

/// A client with `kubeconfig`'s credentials against `url` (one kubeconfig serves every replica).
async fn client_at(kubeconfig: &Path, url: &str) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.cluster_url = url.parse().unwrap();
    config.read_timeout = Some(Duration::from_secs(30));
    // kube retries 503/504 by default (15 times, backing off to minutes); these tests look at
    // the hub's own answers.
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn cm(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": v}}))
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn shared_etcd() -> &'static (EtcdCluster, tempfile::TempDir) {
    static ETCD: std::sync::OnceLock<(EtcdCluster, tempfile::TempDir)> = std::sync::OnceLock::new();
    ETCD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // A static is never dropped: its directory goes when the test binary does.
        flotilla_store::supervised::remove_when_gone(dir.path()).unwrap();
        (EtcdCluster::start(dir.path(), 1).unwrap(), dir)
    })
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn replicas_serve_one_api_and_every_controller_moves_to_a_new_leader() {
    let dir = tempfile::tempdir().unwrap();
    let endpoints = shared_etcd().0.endpoints();
    let lease = ["--leader-lease-seconds", "5"];
    let a = start_replica(&dir.path().join("a"), &endpoints, "/ha-api", &lease);
    let b = start_replica(&dir.path().join("b"), &endpoints, "/ha-api", &lease);
    // The CA and admin credentials are shared: a's kubeconfig works against b.
    assert_eq!(
        std::fs::read(dir.path().join("a/pki/ca.crt")).unwrap(),
        std::fs::read(dir.path().join("b/pki/ca.crt")).unwrap()
    );
    let rt = runtime();
    rt.block_on(async {
        let ca: Api<ConfigMap> = Api::namespaced(client_at(&a.kubeconfig, &a.url).await, "default");
        let cb: Api<ConfigMap> = Api::namespaced(client_at(&a.kubeconfig, &b.url).await, "default");
        // A watch on b sees a write made through a.
        let start = cb.list(&ListParams::default()).await.unwrap();
        let rv = start.metadata.resource_version.unwrap();
        let mut events = cb
            .watch(&WatchParams::default().timeout(20), &rv)
            .await
            .unwrap()
            .boxed();
        let created = ca
            .create(&PostParams::default(), &cm("x", "1"))
            .await
            .unwrap();
        use futures::StreamExt;
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(o) => assert_eq!(
                o.metadata.resource_version,
                created.metadata.resource_version
            ),
            other => panic!("{other:?}"),
        }
        // Read-your-writes through the other replica, and the same resourceVersion.
        let read = cb.get("x").await.unwrap();
        assert_eq!(
            read.metadata.resource_version,
            created.metadata.resource_version
        );
        // Optimistic concurrency across replicas: b's stale copy is refused after a's update.
        let mut fresh = read.clone();
        fresh.data = Some([("v".to_string(), "2".to_string())].into());
        ca.replace("x", &PostParams::default(), &fresh)
            .await
            .unwrap();
        let mut stale = read;
        stale.data = Some([("v".to_string(), "3".to_string())].into());
        let err = cb
            .replace("x", &PostParams::default(), &stale)
            .await
            .unwrap_err();
        match err {
            kube::Error::Api(s) => assert_eq!(s.code, 409),
            e => panic!("{e}"),
        }
    });
    // Exactly one replica leads: the Lease names it, and only it says so.
    let holder = wait_for("a leader in the Lease", Duration::from_secs(15), || {
        a.lease_holder().filter(|h| a.is(h) || b.is(h))
    });
    let (mut leader, follower) = if a.is(&holder) { (a, b) } else { (b, a) };
    assert!(leader.leads() && !follower.leads());
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let took = wait_until(
        "the Lease names the follower",
        Duration::from_secs(15),
        || follower.lease_holder().is_some_and(|h| follower.is(&h)),
    );
    assert!(follower.leads());
    eprintln!(
        "failover: the Lease named the follower {:.1} s after kill -9 of the leader (lease 5 s)",
        took.as_secs_f64()
    );
    every_controller_runs_on(&follower, &dir.path().join("fleet"), &rt);
}

/// Each controller of the hub does its work on `hub` (a replica that took over): the CRD
/// controller establishes a new CRD, the garbage collector removes a dependent, the member
/// controller admits a member that joins now, and the placement controller places a
/// namespace on it.
fn every_controller_runs_on(hub: &Replica, dir: &Path, rt: &tokio::runtime::Runtime) {
    let crd = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
      "metadata":{"name":"widgets.example.com"},
      "spec":{"group":"example.com","scope":"Namespaced",
        "names":{"plural":"widgets","singular":"widget","kind":"Widget"},
        "versions":[{"name":"v1","served":true,"storage":true,
          "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;
    rt.block_on(async {
        let client = client_at(&hub.kubeconfig, &hub.url).await;
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(client.clone());
        crds.create(&PostParams::default(), &serde_json::from_str(crd).unwrap())
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let owner = cms.create(&PostParams::default(), &cm("owner", "1")).await.unwrap();
        let mut dependent = cm("dependent", "1");
        dependent.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: owner.metadata.uid.unwrap(),
                ..Default::default()
            },
        ]);
        cms.create(&PostParams::default(), &dependent).await.unwrap();
        cms.delete("owner", &Default::default()).await.unwrap();
    });
    let kc = &hub.kubeconfig;
    wait_for(
        "the new leader establishes the CRD",
        Duration::from_secs(15),
        || {
            get_json(kc, &["get", "crd", "widgets.example.com"])
                .filter(|c| condition(c, "Established").0 == "True")
        },
    );
    wait_for(
        "the new leader's garbage collector",
        Duration::from_secs(15),
        || {
            (!kubectl(kc, &["get", "configmap", "dependent"])
                .status
                .success())
            .then_some(())
        },
    );
    // A member joins through the new leader (its agent talks to it).
    let _member = start_member(&dir.join("m1"), "m1");
    let out = join(kc, "m1", &dir.join("m1-agent.kubeconfig"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let member_kc = dir.join("m1/admin.kubeconfig");
    let _agent = start_agent(
        "m1",
        &dir.join("m1-agent.kubeconfig"),
        &member_kc,
        &dir.join("agent.log"),
    );
    wait_for(
        "the member controller admits m1",
        Duration::from_secs(30),
        || {
            get_json(kc, &["get", "membercluster", "m1"]).filter(|mc| {
                condition(mc, "Joined").0 == "True" && condition(mc, "Healthy").0 == "True"
            })
        },
    );
    let out = kubectl_apply(
        kc,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: team}\ndata: {a: \"1\"}\n---\n\
         apiVersion: placement.kubernetes-fleet.io/v1beta1\nkind: ClusterResourcePlacement\n\
         metadata: {name: team}\nspec:\n  resourceSelectors: [{group: \"\", version: v1, kind: Namespace, name: team}]\n  policy: {placementType: PickAll}\n  strategy: {rollingUpdate: {unavailablePeriodSeconds: 1}}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the placement controller places team on m1",
        Duration::from_secs(30),
        || {
            get_json(&member_kc, &["-n", "team", "get", "configmap", "app"])
                .filter(|c| c["data"]["a"] == "1")
        },
    );
}

#[test]
fn kill_9_of_one_replica_under_writes_loses_nothing_and_spares_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let endpoints = shared_etcd().0.endpoints();
    let mut a = start_replica(&dir.path().join("a"), &endpoints, "/ha-kill", &[]);
    let b = start_replica(&dir.path().join("b"), &endpoints, "/ha-kill", &[]);
    let rt = runtime();
    let ledger = Arc::new(Mutex::new(churn::Ledger::default()));
    let b_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    rt.block_on(async {
        let ca = client_at(&a.kubeconfig, &a.url).await;
        let cb = client_at(&a.kubeconfig, &b.url).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Creates, updates and deletes with preconditions, half through each replica.
        let tasks: Vec<_> = (0..12)
            .map(|w| {
                let on_b = w % 2 == 1;
                let api: Api<ConfigMap> =
                    Api::namespaced(if on_b { cb.clone() } else { ca.clone() }, "default");
                let errors = on_b.then(|| b_errors.clone());
                tokio::spawn(churn::work(api, w, ledger.clone(), stop.clone(), errors))
            })
            .collect();
        while churn::Ledger::changes(&ledger) < 600 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        let at_kill = churn::Ledger::changes(&ledger);
        // b's clients carry on.
        let deadline = Instant::now() + Duration::from_secs(30);
        while churn::Ledger::changes(&ledger) < at_kill + 600 {
            assert!(Instant::now() < deadline, "writes through b stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        assert!(
            b_errors.lock().unwrap().is_empty(),
            "{:?}",
            b_errors.lock().unwrap()
        );
        let api: Api<ConfigMap> = Api::namespaced(cb, "default");
        let ledger = std::mem::take(&mut *ledger.lock().unwrap());
        churn::check(&api, &ledger).await;
    });
}

#[test]
fn a_three_member_etcd_losing_one_member_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = EtcdCluster::start(&dir.path().join("etcd"), 3).unwrap();
    let hub = start_replica(
        &dir.path().join("hub"),
        &etcd.endpoints(),
        "/ha-three",
        &["--leader-lease-seconds", "3"],
    );
    let rt = runtime();
    rt.block_on(async {
        let api: Api<ConfigMap> =
            Api::namespaced(client_at(&hub.kubeconfig, &hub.url).await, "default");
        api.create(&PostParams::default(), &cm("before", "1"))
            .await
            .unwrap();
        tokio::task::block_in_place(|| etcd.kill(0));
        // Until the survivors notice (and elect a new etcd leader if it was the leader: etcd
        // holds writes meanwhile), requests may answer 503/504, never anything else.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let started = Instant::now();
            match api
                .create(&PostParams::default(), &cm("after-0", "1"))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    assert_unavailable(&e, started, &hub);
                    assert!(Instant::now() < deadline, "the hub did not resume: {e}");
                }
            }
        }
        // Then every request goes to a live member: none fails.
        for n in 1..20 {
            let name = format!("after-{n}");
            if let Err(e) = api.create(&PostParams::default(), &cm(&name, "1")).await {
                panic!(
                    "create {name} failed with one member down: {e}\n{}",
                    hub.log()
                );
            }
            api.get(&name).await.unwrap();
        }
        assert_eq!(
            api.list(&ListParams::default()).await.unwrap().items.len(),
            21
        );

        // A second member down: no quorum. Writes and consistent reads answer 503/504 within
        // the request timeout (2 s here), they do not hang.
        tokio::task::block_in_place(|| etcd.kill(1));
        for _ in 0..3 {
            let started = Instant::now();
            let err = api
                .create(&PostParams::default(), &cm("no-quorum", "1"))
                .await
                .expect_err("a write without quorum");
            assert_unavailable(&err, started, &hub);
            let started = Instant::now();
            let err = api
                .get("before")
                .await
                .expect_err("a consistent read without quorum");
            assert_unavailable(&err, started, &hub);
        }
        // The leader cannot renew its lease without quorum: it steps down.
        tokio::task::block_in_place(|| {
            wait_until("the leader to step down", Duration::from_secs(15), || {
                !hub.leads()
            })
        });

        // Quorum back: the hub serves again, with nothing lost, and leads again.
        tokio::task::block_in_place(|| {
            etcd.restart(0).unwrap();
            etcd.restart(1).unwrap();
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match api
                .create(&PostParams::default(), &cm("recovered", "1"))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "the hub did not recover: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let names: Vec<String> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        assert_eq!(names.len(), 22, "{names:?}");
        assert!(!names.iter().any(|n| n == "no-quorum"));
        tokio::task::block_in_place(|| {
            wait_until("the hub to lead again", Duration::from_secs(30), || {
                hub.leads()
            })
        });
    });
}

/// `err` is the Status etcd's unavailability maps to (503 or 504), answered well within the
/// time a hanging request would take.
fn assert_unavailable(err: &kube::Error, started: Instant, hub: &Replica) {
    let elapsed = started.elapsed();
    match err {
        kube::Error::Api(s) => assert!(
            s.code == 503 || s.code == 504,
            "expected 503/504, got {s:?}"
        ),
        other => panic!("expected a Status, got {other}"),
    }
    assert!(
        elapsed < Duration::from_secs(10),
        "the answer took {elapsed:?}\n{}",
        hub.log()
    );
}

#[test]
fn backup_of_an_etcd_hub_restores_into_redb_and_into_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let endpoints = shared_etcd().0.endpoints();
    let hub = start_replica(&dir.path().join("hub"), &endpoints, "/ha-backup", &[]);
    let rt = runtime();
    let before = rt.block_on(async {
        let api: Api<ConfigMap> =
            Api::namespaced(client_at(&hub.kubeconfig, &hub.url).await, "default");
        for i in 0..50 {
            api.create(
                &PostParams::default(),
                &cm(&format!("c{i}"), &i.to_string()),
            )
            .await
            .unwrap();
        }
        api.list(&ListParams::default()).await.unwrap().items
    });
    let file = dir.path().join("fleet.backup");
    let out = flotilla()
        .args(["hub", "backup", "--kubeconfig"])
        .arg(&hub.kubeconfig)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("backed up"));
    drop(hub);

    // Into a new embedded store: same objects, same resourceVersions.
    let restored = dir.path().join("restored");
    let out = flotilla()
        .args(["hub", "restore", "--from"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second restore into the same directory is refused and changes nothing.
    let again = flotilla()
        .args(["hub", "restore", "--from"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(text.contains("already holds a store"), "{text}");
    // A truncated backup is refused.
    let cut = dir.path().join("cut.backup");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let bad = flotilla()
        .args(["hub", "restore", "--from"])
        .arg(&cut)
        .arg("--data-dir")
        .arg(dir.path().join("never"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with(&format!(
            "error: {}: stored data is corrupt: backup line ",
            cut.display()
        )) && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        !dir.path().join("never/store.redb").exists(),
        "nothing restored"
    );

    let kubeconfig = restored.join("admin.kubeconfig");
    let mut child = flotilla()
        .args(["hub", "--data-dir"])
        .arg(&restored)
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the restored hub starts", Duration::from_secs(30), || {
        kubeconfig.exists()
    });
    let after = rt.block_on(async {
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        let url = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap()
            .to_string();
        let api: Api<ConfigMap> = Api::namespaced(client_at(&kubeconfig, &url).await, "default");
        api.list(&ListParams::default()).await.unwrap().items
    });
    let _ = child.kill();
    let _ = child.wait();
    let key = |c: &ConfigMap| {
        (
            c.metadata.name.clone(),
            c.metadata.resource_version.clone(),
            c.data.clone(),
        )
    };
    assert_eq!(
        after.iter().map(key).collect::<Vec<_>>(),
        before.iter().map(key).collect::<Vec<_>>()
    );

    // Into an empty etcd prefix: the same objects (etcd numbers them anew).
    let out = flotilla()
        .args(["hub", "restore", "--from"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("etcd-restored"))
        .args([
            "--store",
            "etcd",
            "--etcd-prefix",
            "/ha-backup-restored",
            "--etcd-endpoints",
        ])
        .arg(endpoints.join(","))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hub = start_replica(
        &dir.path().join("etcd-restored"),
        &endpoints,
        "/ha-backup-restored",
        &[],
    );
    let names = rt.block_on(async {
        let api: Api<ConfigMap> =
            Api::namespaced(client_at(&hub.kubeconfig, &hub.url).await, "default");
        api.list(&ListParams::default()).await.unwrap().items
    });
    assert_eq!(
        names
            .iter()
            .map(|c| (c.metadata.name.clone(), c.data.clone()))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|c| (c.metadata.name.clone(), c.data.clone()))
            .collect::<Vec<_>>()
    );
}
