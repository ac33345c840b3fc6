//! A real Kubernetes cluster on loopback: etcd, kube-apiserver, and for a full control plane
//! kube-controller-manager, kube-scheduler and KWOK with fake nodes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flotilla_store::etcd_server::EtcdCluster;
use serde_json::{json, Value};

use crate::{io, pki, Error, Result};
use flotilla_store::supervised::Supervised;

/// The Kubernetes release the binaries are built from (`scripts/k8s.sh` pins the same).
pub const K8S_VERSION: &str = "v1.33.13";

/// How much of a control plane to run.
#[derive(Clone, Copy, Debug)]
pub enum ControlPlane {
    /// etcd and kube-apiserver: enough for API behaviour (the differential suite).
    ApiServer,
    /// Also kube-controller-manager, kube-scheduler and KWOK managing `nodes` fake nodes, so
    /// workloads reach their real status.
    Full {
        /// How many nodes KWOK simulates.
        nodes: usize,
    },
}

/// The directory of the Kubernetes binaries: `FLOTILLA_K8S_BIN`, else what `scripts/k8s.sh`
/// prints (it builds them the first time, showing its progress on stderr).
pub fn binaries() -> Result<PathBuf> {
    static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut dir = DIR.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = dir.as_ref() {
        return Ok(d.clone());
    }
    let d = match std::env::var_os("FLOTILLA_K8S_BIN") {
        Some(d) => PathBuf::from(d),
        None => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/k8s.sh");
            let out = Command::new("bash")
                .arg(&script)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(io(format!("running {}", script.display())))?;
            if !out.status.success() {
                return Err(Error::Binaries(format!(
                    "{} failed ({})",
                    script.display(),
                    out.status
                )));
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    for b in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        if !d.join(b).is_file() {
            return Err(Error::Binaries(format!("{} has no {b}", d.display())));
        }
    }
    *dir = Some(d.clone());
    Ok(d)
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(l.local_addr().map_err(io("finding a free port"))?.port())
}

/// A running real cluster; dropping it stops every process it started.
pub struct RealCluster {
    dir: PathBuf,
    url: String,
    kubeconfig: PathBuf,
    processes: Vec<Supervised>,
    // Dropped after the processes (fields drop in order), so kube-apiserver never sees etcd go.
    _etcd: EtcdCluster,
}

impl RealCluster {
    /// Starts a cluster with its state under `dir` and waits until it serves (and, for a full
    /// control plane, until its nodes are Ready and the `default` service account exists).
    // Blocking by design: tests set the cluster up before anything else runs on their thread.
    #[allow(clippy::disallowed_methods)]
    pub fn start(dir: &Path, plane: ControlPlane) -> Result<Self> {
        let bin = binaries()?;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let pki = pki::write(&dir.join("pki"))?;
        let etcd = EtcdCluster::start(&dir.join("etcd"), 1).map_err(io("starting etcd"))?;
        let port = free_port()?;
        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, pki.admin_kubeconfig(&url, "real"))
            .map_err(io("writing the admin kubeconfig"))?;
        let p = |x: &Path| x.display().to_string();
        let logs = dir.join("logs");
        let apiserver = Supervised::spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &[
                format!("--etcd-servers={}", etcd.endpoint(0)),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", p(&dir.join("pki"))),
                format!("--tls-cert-file={}", p(&pki.server_crt)),
                format!("--tls-private-key-file={}", p(&pki.server_key)),
                format!("--client-ca-file={}", p(&pki.ca_crt)),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p(&pki.sa_pub)),
                format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                "--authorization-mode=Node,RBAC".into(),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
            ],
            &logs,
        )
        .map_err(io("starting kube-apiserver"))?;
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            url,
            kubeconfig,
            processes: vec![apiserver],
            _etcd: etcd,
        };
        cluster.wait("kube-apiserver /readyz", Duration::from_secs(90), |c| {
            c.kubectl(&["get", "--raw", "/readyz"])
                .is_ok_and(|o| o.trim() == "ok")
        })?;
        let ControlPlane::Full { nodes } = plane else {
            return Ok(cluster);
        };
        let kc = p(&cluster.kubeconfig);
        let components = [
            (
                "kube-controller-manager",
                vec![
                    format!("--kubeconfig={kc}"),
                    "--secure-port=0".into(),
                    "--leader-elect=false".into(),
                    format!("--service-account-private-key-file={}", p(&pki.sa_key)),
                    format!("--root-ca-file={}", p(&pki.ca_crt)),
                    format!("--cluster-signing-cert-file={}", p(&pki.ca_crt)),
                    format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
                    "--use-service-account-credentials=false".into(),
                    "--controllers=*".into(),
                ],
            ),
            (
                "kube-scheduler",
                vec![
                    format!("--kubeconfig={kc}"),
                    "--secure-port=0".into(),
                    "--leader-elect=false".into(),
                ],
            ),
            (
                "kwok",
                vec![
                    format!("--kubeconfig={kc}"),
                    "--manage-all-nodes=true".into(),
                    "--cidr=10.244.0.1/16".into(),
                    "--node-ip=10.0.0.1".into(),
                ],
            ),
        ];
        for (name, args) in components {
            let proc = Supervised::spawn(name, &bin.join(name), &args, &logs)
                .map_err(io(format!("starting {name}")))?;
            cluster.processes.push(proc);
        }
        let nodes: Vec<Value> = (1..=nodes).map(node).collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": nodes});
        if !nodes.is_empty() {
            cluster.apply(&list)?;
        }
        cluster.wait("the nodes to be Ready", Duration::from_secs(90), |c| {
            let Ok(out) = c.kubectl(&["get", "nodes", "-o", "json"]) else {
                return false;
            };
            let v: Value = serde_json::from_str(&out).unwrap_or_default();
            let items = v["items"].as_array().cloned().unwrap_or_default();
            items.len() == list["items"].as_array().map_or(0, Vec::len)
                && items.iter().all(|n| {
                    n["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
        })?;
        cluster.wait(
            "the default service account",
            Duration::from_secs(60),
            |c| {
                c.kubectl(&["get", "serviceaccount", "default", "-o", "name"])
                    .is_ok()
            },
        )?;
        Ok(cluster)
    }

    /// The API server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin kubeconfig (group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig for an ordinary user of this cluster (a client certificate from its CA).
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> Result<String> {
        let read = |f: &str| {
            std::fs::read_to_string(self.dir.join("pki").join(f))
                .map_err(io(format!("reading {f}")))
        };
        crate::pki::user_kubeconfig(&read("ca.crt")?, &read("ca.key")?, &self.url, user, groups)
    }

    /// The directory holding the cluster's state and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs kubectl against the cluster; its stdout, or its stderr as the error.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .map_err(|e| format!("running kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A kubeconfig at `path` for the ServiceAccount `namespace/name`, with a token from the
    /// TokenRequest API (valid `hours`), as a user gives an agent outside the cluster.
    pub fn token_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        hours: u32,
        path: &Path,
    ) -> Result<()> {
        let token = self
            .kubectl(&[
                "create",
                "token",
                name,
                "-n",
                namespace,
                &format!("--duration={hours}h"),
            ])
            .map_err(|e| Error::NotReady(format!("kubectl create token: {e}")))?;
        let admin = std::fs::read_to_string(&self.kubeconfig)
            .map_err(io("reading the admin kubeconfig"))?;
        let ca = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
            .unwrap_or("")
            .to_string();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: real\n  context:\n    cluster: real\n    user: {name}\ncurrent-context: real\n",
            url = self.url,
            token = token.trim(),
        );
        std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
    }

    /// `kubectl apply` of `manifest` (an object or a List).
    pub fn apply(&self, manifest: &Value) -> Result<()> {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(io("running kubectl apply"))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(manifest.to_string().as_bytes())
            .map_err(io("writing to kubectl apply"))?;
        let out = child
            .wait_with_output()
            .map_err(io("running kubectl apply"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::NotReady(format!(
                "kubectl apply: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    #[allow(clippy::disallowed_methods)]
    fn wait(&mut self, what: &str, timeout: Duration, ok: impl Fn(&Self) -> bool) -> Result<()> {
        let start = Instant::now();
        loop {
            if ok(self) {
                return Ok(());
            }
            if let Some(dead) = self
                .processes
                .iter_mut()
                .find_map(|p| (!p.running()).then_some(p))
            {
                return Err(Error::NotReady(format!(
                    "{} exited while waiting for {what}:\n{}",
                    dead.name(),
                    dead.log_tail(20)
                )));
            }
            if start.elapsed() > timeout {
                let tails: Vec<String> = self
                    .processes
                    .iter()
                    .map(|p| format!("== {}\n{}", p.name(), p.log_tail(10)))
                    .collect();
                return Err(Error::NotReady(format!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    tails.join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        // The controllers and nodes first, kube-apiserver last; etcd after them all.
        while let Some(mut p) = self.processes.pop() {
            p.stop();
        }
    }
}

/// A fake node KWOK manages: 8 CPUs, 32 GiB, 110 pods.
fn node(i: usize) -> Value {
    let name = format!("kwok-node-{i}");
    let resources =
        json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "KWOK",
                "kernelVersion": "kwok",
                "containerRuntimeVersion": "kwok",
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
                "kubeletVersion": K8S_VERSION,
                "kubeProxyVersion": K8S_VERSION,
            },
        },
    })
}
