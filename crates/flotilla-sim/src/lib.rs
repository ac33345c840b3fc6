//! A simulated member cluster's behaviour on top of the API server: Node objects with
//! capacity, a scheduler that binds pods only where their requests fit, a kubelet that starts
//! bound pods after a delay (and completes Job pods), and the workload controllers
//! (Deployment -> ReplicaSet -> Pods, StatefulSet, DaemonSet, Job) that write the status
//! fields a real cluster reports. One task per simulated cluster, idle unless the store
//! changes, so many fit in one process.
//!
//! It reads the server's store (events and snapshots) and writes through the API with the
//! in-process client, like any controller.

#![warn(missing_docs)]

mod kubelet;
mod workloads;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use flotilla_api::quantity::parse_milli;
use flotilla_apiserver::ApiServer;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The shape of a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Cluster name (prefix of node names).
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// CPU per node (a quantity, e.g. "4").
    pub node_cpu: String,
    /// Memory per node (a quantity, e.g. "16Gi").
    pub node_memory: String,
    /// Extra labels on every node.
    pub node_labels: BTreeMap<String, String>,
    /// How long a bound pod takes to start, and a Job pod to finish.
    pub delay: Duration,
    /// The cluster's CA (PEM), published in every namespace as the `kube-root-ca.crt`
    /// ConfigMap, as kube-controller-manager's root CA publisher does; empty: not published.
    pub root_ca: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            name: "member".into(),
            nodes: 3,
            node_cpu: "4".into(),
            node_memory: "16Gi".into(),
            node_labels: BTreeMap::new(),
            delay: Duration::from_millis(500),
            root_ca: String::new(),
        }
    }
}

fn ar(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
}

/// What fails a simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A node could not be created.
    #[error("creating node {name}: {message}")]
    Node {
        /// The node.
        name: String,
        /// The API's answer.
        message: String,
    },
    /// The simulated cluster's API server answered with an error.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// An object could not be read.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// How a simulated cluster's store keeps its history: recent changes only, as
/// kube-apiserver's watch cache does (a few hundred events per resource; etcd's older
/// revisions compacted every five minutes). A watch from an older revision gets 410 Gone and
/// lists again, as against a real cluster. With the hub's default (100,000 events, 128 MB)
/// every simulated member of a fleet kept each version of its objects for as long as the
/// benchmark ran: a thousand members could grow to gigabytes.
pub fn store_config() -> flotilla_store::StoreConfig {
    flotilla_store::StoreConfig {
        event_log_capacity: 2_000,
        event_log_bytes: 1 << 20,
        ..Default::default()
    }
}

/// A simulated cluster's store in memory, with [`store_config`]'s history.
pub fn memory_store() -> flotilla_store::Store {
    flotilla_store::Store::open(flotilla_store::MemoryBackend, store_config())
        .expect("the memory backend cannot fail to load")
}

/// Creates the nodes (if missing) and starts the simulation; runs until the server shuts
/// down.
pub async fn start(server: &ApiServer, cfg: SimConfig) -> Result<(), Error> {
    if parse_milli(&cfg.node_cpu).is_none() || parse_milli(&cfg.node_memory).is_none() {
        return Err(Error::Config(format!(
            "node CPU {:?} and memory {:?} must be Kubernetes quantities",
            cfg.node_cpu, cfg.node_memory
        )));
    }
    let client = server.client();
    let nodes: Api<DynamicObject> = Api::all_with(client.clone(), &ar("", "Node", "nodes"));
    for i in 1..=cfg.nodes {
        let name = format!("{}-node-{i}", cfg.name);
        let mut labels: BTreeMap<String, String> = cfg.node_labels.clone();
        labels.insert("kubernetes.io/hostname".into(), name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        let resources = json!({"cpu": cfg.node_cpu, "memory": cfg.node_memory, "pods": "110"});
        let created = server
            .ensure_object(
                "",
                "nodes",
                None,
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}),
            )
            .await
            .map_err(|e| Error::Node {
                name: name.clone(),
                message: e.to_string(),
            })?;
        let current = nodes.get_status(&name).await?;
        if created || current.data["status"]["capacity"] != resources {
            let status = json!({"status": {
                "capacity": resources, "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status (simulated)",
                    "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
                "addresses": [{"type": "InternalIP", "address": format!("10.0.{}.{}", i / 250, i % 250 + 1)},
                    {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": flotilla_apiserver::schema::GIT_VERSION, "osImage": "Flotilla simulated node",
                    "containerRuntimeVersion": "sim://1", "kernelVersion": "6.1.0", "operatingSystem": "linux",
                    "architecture": "amd64", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}
            }});
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await?;
        }
    }
    tokio::spawn(run(server.clone(), cfg));
    Ok(())
}

fn now() -> String {
    flotilla_api::conditions::timestamp(chrono::Utc::now())
}

/// A create's result, where another writer having made the object first is fine.
fn create_tolerating_conflict(r: kube::Result<DynamicObject>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Which objects the simulation reacts to.
const PREFIXES: &[&str] = &[
    "/core/pods/",
    "/core/nodes/",
    "/apps/deployments/",
    "/apps/replicasets/",
    "/apps/statefulsets/",
    "/apps/daemonsets/",
    "/batch/jobs/",
    "/core/namespaces/",
];

/// Objects of the namespace defaults, whose removal the simulation repairs.
fn namespace_default_key(key: &str) -> bool {
    (key.starts_with("/core/configmaps/") && key.ends_with("/kube-root-ca.crt"))
        || (key.starts_with("/core/serviceaccounts/") && key.ends_with("/default"))
}

/// The description kube-controller-manager's root CA publisher gives `kube-root-ca.crt`.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

async fn run(server: ApiServer, cfg: SimConfig) {
    let mut sim = Sim {
        client: server.client(),
        cfg,
        timers: BTreeMap::new(),
        started: HashMap::new(),
    };
    let mut stopped = Box::pin(server.stopped());
    loop {
        let rev = sim.reconcile_all(server.store()).await;
        let mut watcher = match server.store().watch("/", rev) {
            Ok(w) => w,
            // The pass's own writes and others' pushed the revision it read out of the
            // store's short history (a busy member): another pass over the latest state, as a
            // controller lists again after 410 Gone.
            Err(flotilla_store::Error::Compacted { .. }) => continue,
            Err(e) => {
                tracing::error!(error = %e, "simulation cannot watch the store");
                return;
            }
        };
        loop {
            let next_timer = sim.timers.keys().next().map(|(t, _)| *t);
            let sleep = async {
                match next_timer {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stopped => return,
                _ = sleep => {
                    let now = Instant::now();
                    let due: Vec<_> = sim.timers.keys().filter(|(t, _)| *t <= now).cloned().collect();
                    for k in due {
                        sim.timers.remove(&k);
                    }
                    // Let concurrent events settle before one pass over the state.
                    sim.reconcile_all(server.store()).await;
                }
                ev = watcher.next() => match ev {
                    Ok(ev) => {
                        if !PREFIXES.iter().any(|p| ev.key().starts_with(p))
                            && !namespace_default_key(ev.key())
                        {
                            continue;
                        }
                        // Coalesce a burst of events into one pass.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        while let Some(Ok(_)) = futures_now(&mut watcher) {}
                        sim.reconcile_all(server.store()).await;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

/// The watcher's next event if one is already there.
fn futures_now(
    w: &mut flotilla_store::Watcher,
) -> Option<Result<std::sync::Arc<flotilla_store::Event>, flotilla_store::Error>> {
    use std::future::Future;
    let fut = w.next();
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}

struct Sim {
    client: kube::Client,
    cfg: SimConfig,
    /// Wake-ups for pod transitions (when, pod key).
    timers: BTreeMap<(Instant, String), ()>,
    /// When each bound pod's start (or a Job pod's completion) is due.
    started: HashMap<String, Instant>,
}

struct State {
    nodes: Vec<Value>,
    pods: Vec<Value>,
    deployments: Vec<Value>,
    replicasets: Vec<Value>,
    statefulsets: Vec<Value>,
    daemonsets: Vec<Value>,
    jobs: Vec<Value>,
}

/// The objects under `prefix`, decoded, without their managedFields (which nothing here
/// reads, and which were a third of each decoded object).
fn load(snap: &flotilla_store::Snapshot, prefix: &str) -> Vec<Value> {
    snap.range(prefix, None)
        .filter_map(|o| serde_json::from_slice::<Value>(&o.data).ok())
        .map(|mut v| {
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            v
        })
        .collect()
}

/// How many simulated clusters of a process decode and act on their state at once. A pass
/// holds its cluster's workloads decoded while it writes; a thousand clusters passing at once
/// (a placement reaching all of them) held gigabytes, for no gain on a machine of a few
/// cores: the passes' own work is CPU, and their writes go to in-process API servers.
const CONCURRENT_PASSES: usize = 8;

/// The permits of [`CONCURRENT_PASSES`], shared by every simulated cluster of the process.
fn passes() -> &'static tokio::sync::Semaphore {
    static PASSES: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PASSES.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_PASSES))
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}
fn ns(v: &Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or("default")
}
fn uid(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or("")
}
fn deleting(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}
fn controller_uid(v: &Value) -> Option<&str> {
    v["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)?["uid"]
        .as_str()
}
fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name(owner), "uid": uid(owner),
        "controller": true, "blockOwnerDeletion": true}])
}
fn pod_ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && flotilla_api::conditions::is_true(&p["status"]["conditions"], "Ready")
        && !deleting(p)
}
fn replicas(v: &Value) -> i64 {
    v["spec"]["replicas"].as_i64().unwrap_or(1)
}
fn generation(v: &Value) -> i64 {
    v["metadata"]["generation"].as_i64().unwrap_or(1)
}

/// A short stable hash of a pod template (the pod-template-hash label, kept in the member's
/// store: the same in every build, so a restart does not roll every workload).
fn template_hash(t: &Value) -> String {
    let digest = flotilla_api::manifests::content_hash(std::slice::from_ref(t));
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = u64::from_str_radix(&digest, 16).expect("16 hex digits");
    (0..10)
        .map(|_| {
            let c = alphabet[(n % alphabet.len() as u64) as usize] as char;
            n /= alphabet.len() as u64;
            c
        })
        .collect()
}

impl Sim {
    fn api(&self, group: &str, kind: &str, plural: &str, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &ar(group, kind, plural))
    }

    /// One pass over the cluster's latest state (taken once the pass may run): the writes it
    /// calls for are decided while the pass holds its permit and its decoded state, then made
    /// together once both are let go. Returns the revision it read.
    ///
    /// A pass used to write one request at a time while holding its permit: with a fleet's
    /// agents keeping the process's runtime busy, each write waited its turn behind them, a
    /// pass took many seconds, and the other clusters waited for its permit (a member's
    /// Deployment stayed unobserved for minutes in the headline run). Writes made together
    /// share one turn and one commit of the store.
    async fn reconcile_all(&mut self, store: &flotilla_store::Store) -> flotilla_store::Revision {
        let mut w = Writes::default();
        let rev = {
            let _permit = passes()
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let snap = &store.snapshot();
            let st = State {
                nodes: load(snap, "/core/nodes/"),
                pods: load(snap, "/core/pods/"),
                deployments: load(snap, "/apps/deployments/"),
                replicasets: load(snap, "/apps/replicasets/"),
                statefulsets: load(snap, "/apps/statefulsets/"),
                daemonsets: load(snap, "/apps/daemonsets/"),
                jobs: load(snap, "/batch/jobs/"),
            };
            self.deployments(&st, &mut w);
            self.replicasets(&st, &mut w);
            self.statefulsets(&st, &mut w);
            self.daemonsets(&st, &mut w);
            self.jobs(&st, &mut w);
            self.schedule_and_run(&st, &mut w);
            self.namespace_defaults(snap, &mut w);
            snap.rev
        };
        for r in futures::future::join_all(w.0).await {
            if let Err(e) = r {
                // A conflict or a vanished object is settled by the next pass.
                tracing::debug!(error = %e, "simulation pass");
            }
        }
        rev
    }

    /// What kube-controller-manager makes in every active namespace: the `default`
    /// ServiceAccount (service account controller) and the `kube-root-ca.crt` ConfigMap with
    /// the cluster's CA (root CA publisher), recreated when removed and reset when changed.
    fn namespace_defaults(&self, snap: &flotilla_store::Snapshot, w: &mut Writes) {
        let manager = || Some("kube-controller-manager".to_string());
        for n in load(snap, "/core/namespaces/") {
            if deleting(&n) || n["status"]["phase"] == "Terminating" {
                continue;
            }
            let ns_name = name(&n);
            if snap
                .get(&format!("/core/serviceaccounts/{ns_name}/default"))
                .is_none()
            {
                w.create(
                    self.api("", "ServiceAccount", "serviceaccounts", ns_name),
                    manager(),
                    json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": ns_name}}),
                );
            }
            if self.cfg.root_ca.is_empty() {
                continue;
            }
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns_name,
                    "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": {"ca.crt": self.cfg.root_ca}});
            let api = self.api("", "ConfigMap", "configmaps", ns_name);
            match snap.get(&format!("/core/configmaps/{ns_name}/kube-root-ca.crt")) {
                None => w.create(api, manager(), cm),
                Some(o) => {
                    let cur: Value = serde_json::from_slice(&o.data).unwrap_or(Value::Null);
                    if cur["data"] != cm["data"] {
                        w.patch(
                            api,
                            "kube-root-ca.crt",
                            manager(),
                            json!({"data": cm["data"]}),
                        );
                    }
                }
            }
        }
    }

    fn owned<'a>(&self, pods: &'a [Value], owner: &Value) -> Vec<&'a Value> {
        pods.iter()
            .filter(|p| ns(p) == ns(owner) && controller_uid(p) == Some(uid(owner)))
            .collect()
    }

    fn create_pod(
        &self,
        w: &mut Writes,
        owner: &Value,
        (api_version, kind): (&str, &str),
        pod_name: Option<&str>,
        extra_labels: Value,
        node: Option<&str>,
    ) {
        let template = &owner["spec"]["template"];
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        if let Some(m) = extra_labels.as_object() {
            for (k, v) in m {
                labels[k] = v.clone();
            }
        }
        let mut spec = template["spec"].clone();
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        if kind == "Job" && spec["restartPolicy"].is_null() {
            spec["restartPolicy"] = json!("Never");
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": ns(owner), "labels": labels,
                "annotations": template["metadata"]["annotations"].clone(),
                "ownerReferences": owner_ref(owner, api_version, kind)},
            "spec": spec});
        let mut pod = pod;
        // Named pods (StatefulSets) keep their name; others get one from the server, as a
        // controller's generateName does.
        match pod_name {
            Some(n) => pod["metadata"]["name"] = json!(n),
            None => pod["metadata"]["generateName"] = json!(format!("{}-", name(owner))),
        }
        if pod["metadata"]["annotations"].is_null() {
            pod["metadata"]
                .as_object_mut()
                .expect("object")
                .remove("annotations");
        }
        w.create(self.api("", "Pod", "pods", ns(owner)), None, pod);
    }

    fn delete(&self, w: &mut Writes, (group, kind, plural): Kind, v: &Value) {
        w.delete(self.api(group, kind, plural, ns(v)), name(v));
    }

    fn set_status(&self, w: &mut Writes, (group, kind, plural): Kind, v: &Value, status: Value) {
        // Only write what changed.
        let cur = &v["status"];
        let changed = status
            .as_object()
            .map(|m| m.iter().any(|(k, val)| &cur[k] != val))
            .unwrap_or(false);
        if changed {
            w.patch_status(self.api(group, kind, plural, ns(v)), name(v), status);
        }
    }
}

/// A kind's API group, kind and plural.
type Kind = (&'static str, &'static str, &'static str);

/// The writes a pass decided on, made together once it has let go of its state.
#[derive(Default)]
struct Writes(Vec<futures::future::BoxFuture<'static, Result<(), Error>>>);

impl Writes {
    fn push(&mut self, f: impl std::future::Future<Output = Result<(), Error>> + Send + 'static) {
        self.0.push(Box::pin(f));
    }

    /// Creates `obj`; another writer having made it first is fine.
    fn create(&mut self, api: Api<DynamicObject>, field_manager: Option<String>, obj: Value) {
        self.push(async move {
            let obj: DynamicObject = serde_json::from_value(obj)?;
            let pp = PostParams {
                field_manager,
                ..Default::default()
            };
            create_tolerating_conflict(api.create(&pp, &obj).await)
        });
    }

    /// A merge patch of `name`.
    fn patch(
        &mut self,
        api: Api<DynamicObject>,
        name: &str,
        field_manager: Option<String>,
        patch: Value,
    ) {
        let name = name.to_string();
        self.push(async move {
            let pp = PatchParams {
                field_manager,
                ..Default::default()
            };
            api.patch(&name, &pp, &Patch::Merge(patch)).await?;
            Ok(())
        });
    }

    /// A merge patch of `name`'s status.
    fn patch_status(&mut self, api: Api<DynamicObject>, name: &str, status: Value) {
        let name = name.to_string();
        self.push(async move {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
            Ok(())
        });
    }

    /// Deletes `name`; already gone is fine.
    fn delete(&mut self, api: Api<DynamicObject>, name: &str) {
        let name = name.to_string();
        self.push(async move {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        });
    }
}

fn set_cond(conds: &mut Value, ty: &str, status: bool, reason: &str, message: &str) {
    // Pod and workload conditions carry reason/message only when set; keep them compact.
    flotilla_api::conditions::set(
        conds,
        ty,
        status,
        if reason.is_empty() { ty } else { reason },
        message,
        None,
        &now(),
    );
}

const REGIONS: [&str; 3] = ["eastus", "westeurope", "southeastasia"];
const ENVIRONMENTS: [&str; 2] = ["prod", "staging"];

/// The labels of simulated member `k` (1-based): a region and an environment, so placements
/// have something to select on.
pub fn member_labels(k: usize) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (
            "fleet.flotilla.dev/region".to_string(),
            REGIONS[(k - 1) % REGIONS.len()].to_string(),
        ),
        (
            "fleet.flotilla.dev/environment".to_string(),
            ENVIRONMENTS[(k - 1) % ENVIRONMENTS.len()].to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_template_hash_is_the_same_in_every_build() {
        let template = serde_json::json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
        let hash = template_hash(&template);
        assert_eq!(hash, "ccnn7qtpmk");
        assert_ne!(template_hash(&serde_json::json!({"spec": {}})), hash);
    }
}
