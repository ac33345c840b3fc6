//! The member agent. It runs beside (or inside) a member cluster with two clients: the hub,
//! with the member's own credentials (it may touch only `fleet-member-<name>`), and the
//! member's Kubernetes API (any conformant cluster). It follows its InternalMemberCluster on
//! the hub; while told to Join it sends a heartbeat every `heartbeatPeriodSeconds` (jittered)
//! carrying the member's health and properties, computed from watch-fed caches of the
//! member's nodes and pods; when told to Leave it reports that it left and stops.
//!
//! The agent keeps no state of its own: a restarted agent rebuilds everything from the two
//! APIs.

#![warn(missing_docs)]

/// A client error in a line a person can act on: the API server's own message for an answer,
/// else the root cause under kube's and hyper's wrappers ("Connection refused (os error 111)",
/// "invalid peer certificate: UnknownIssuer").
pub fn brief(e: &kube::Error) -> String {
    if let kube::Error::Api(s) = e {
        return format!("{} ({}): {}", s.code, s.reason, s.message);
    }
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    root.to_string()
}

pub mod backoff;
mod client;
pub mod compare;
mod error;
pub mod join;
pub mod kinds;
pub mod work;

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_api::conditions;

use crate::backoff::{failure_of, Backoff};
use flotilla_api::member::{self, condition as cond, reason, MEMBER_AGENT};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};

pub use client::{client_from_kubeconfig, http2_client};
pub use error::Error;

/// What the agent needs to run.
pub struct Agent {
    /// The member's name (the MemberCluster's name on the hub).
    pub name: String,
    /// A client for the hub, with the member's credentials.
    pub hub: kube::Client,
    /// A client for the member cluster.
    pub member: kube::Client,
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// How the hub answered a write, for logging and backoff.
fn describe(e: &kube::Error) -> (bool, String) {
    match e {
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => (
            true,
            format!(
                "the hub rejected the agent's credentials ({} {}): {}; check the agent's hub kubeconfig and that the MemberCluster exists",
                s.code, s.reason, s.message
            ),
        ),
        other => (false, brief(other)),
    }
}

/// The heartbeat's backoff: 1 s doubling to 60 s, ±20% jitter; credential errors wait 60 s at
/// once, so a revoked agent does not hammer the hub.
fn heartbeat_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 0.2)
}

/// Member-side caches the heartbeat reads.
struct MemberView {
    nodes: Store<DynamicObject>,
    pods: Store<DynamicObject>,
}

/// A cache of `ar`'s objects in the member, each kept as `keep` leaves it (the agent reads
/// little of the nodes and pods it counts; without managedFields, always).
fn spawn_reflector(
    client: kube::Client,
    ar: ApiResource,
    keep: fn(&mut Value),
) -> (Store<DynamicObject>, tokio::task::JoinHandle<()>) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let writer = reflector::store::Writer::new(ar.clone());
    let reader = writer.as_reader();
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(move |o| {
                o.metadata.managed_fields = None;
                keep(&mut o.data);
            })
            .reflect(writer)
            .applied_objects();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!(resource = %ar.plural, error = %e, "watching the member cluster failed; retrying");
            }
        }
    });
    (reader, task)
}

/// Whether a cache has received its initial list.
fn synced(store: &Store<DynamicObject>) -> bool {
    use futures::FutureExt;
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

impl Agent {
    /// Runs until the hub tells the member to leave (Ok) or `shutdown` resolves (Ok).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let ns = member::namespace_of(&self.name);
        let imc_ar = member::internal_member_cluster_resource();
        let imcs: Api<DynamicObject> = Api::namespaced_with(self.hub.clone(), &ns, &imc_ar);
        let (nodes, nodes_task) = spawn_reflector(
            self.member.clone(),
            resource("", "v1", "Node", "nodes"),
            member::node_usage_fields,
        );
        let (pods, pods_task) = spawn_reflector(
            self.member.clone(),
            resource("", "v1", "Pod", "pods"),
            member::pod_usage_fields,
        );
        let view = MemberView { nodes, pods };
        // The work applier: what the hub's Works say, applied in the member.
        let work_task = tokio::spawn(work::run(
            self.name.clone(),
            self.hub.clone(),
            self.member.clone(),
        ));
        // The InternalMemberCluster, followed by watch.
        let (imc_tx, mut imc_rx) = tokio::sync::watch::channel::<Option<DynamicObject>>(None);
        let watch_task = tokio::spawn({
            let imcs = imcs.clone();
            let name = self.name.clone();
            async move {
                let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
                let stream = watcher(imcs, cfg).default_backoff().applied_objects();
                futures::pin_mut!(stream);
                let mut last_err = String::new();
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(o) => {
                            last_err.clear();
                            imc_tx.send_replace(Some(o));
                        }
                        // The hub no longer has the watch's revision (it restarted, or
                        // compacted): the watcher lists afresh, nothing to report.
                        Err(watcher::Error::WatchError(s)) if s.code == 410 => {
                            tracing::debug!(
                                "the InternalMemberCluster watch expired; listing again"
                            );
                        }
                        Err(e) => {
                            let msg = match &e {
                                watcher::Error::InitialListFailed(k)
                                | watcher::Error::WatchStartFailed(k)
                                | watcher::Error::WatchFailed(k) => describe(k).1,
                                other => other.to_string(),
                            };
                            if msg != last_err {
                                // Retried: a hub away long enough to matter shows as failing
                                // heartbeats here and as an unhealthy member on the hub.
                                tracing::warn!(error = %msg, "watching the InternalMemberCluster on the hub failed; retrying with backoff");
                                last_err = msg;
                            }
                        }
                    }
                }
            }
        });
        let result = self
            .main_loop(&imcs, &view, &mut imc_rx, &mut shutdown)
            .await;
        // Nothing of the agent outlives it.
        for t in [watch_task, nodes_task, pods_task, work_task] {
            t.abort();
        }
        result
    }

    async fn main_loop(
        &self,
        imcs: &Api<DynamicObject>,
        view: &MemberView,
        imc_rx: &mut tokio::sync::watch::Receiver<Option<DynamicObject>>,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<(), Error> {
        let mut backoff = heartbeat_backoff();
        let mut last_sent = Value::Null;
        let mut version = String::new();
        let mut joined_logged = false;
        loop {
            let imc = imc_rx.borrow_and_update().clone();
            let Some(imc) = imc else {
                tokio::select! {
                    _ = &mut *shutdown => return Ok(()),
                    r = imc_rx.changed() => { r.map_err(|_| Error::WatchEnded)?; continue; }
                }
            };
            let period = imc.data["spec"]["heartbeatPeriodSeconds"]
                .as_u64()
                .unwrap_or(60)
                .clamp(1, 600);
            if imc.data["spec"]["state"] == "Leave" {
                match self.report_left(imcs).await {
                    Ok(()) => {
                        tracing::info!(member = %self.name, "left the fleet as the hub asked; stopping");
                        return Ok(());
                    }
                    Err(e) => {
                        let (_, msg) = describe(&e);
                        let wait = backoff.fail(failure_of(&e));
                        tracing::warn!(error = %msg, retry_in = ?wait, "could not report leaving");
                        tokio::select! {
                            _ = &mut *shutdown => return Ok(()),
                            _ = tokio::time::sleep(wait) => continue,
                        }
                    }
                }
            }
            if version.is_empty() {
                if let Ok(v) = self.member.apiserver_version().await {
                    version = v.git_version;
                }
            }
            let wait = match self
                .heartbeat(imcs, view, &imc.data, &version, &mut last_sent)
                .await
            {
                Ok(()) => {
                    backoff.reset();
                    if !joined_logged {
                        tracing::info!(member = %self.name, period_seconds = period, "joined the fleet; sending heartbeats");
                        joined_logged = true;
                    }
                    // Jitter of +-10% spreads a fleet's heartbeats over the period.
                    let jitter = rand::random_range(0.9..1.1);
                    Duration::from_secs_f64(period as f64 * jitter)
                }
                Err(e) => {
                    let (auth, msg) = describe(&e);
                    let wait = backoff.fail(failure_of(&e));
                    if auth {
                        tracing::error!(error = %msg, retry_in = ?wait, "heartbeat rejected");
                    } else {
                        tracing::warn!(error = %msg, retry_in = ?wait, "heartbeat failed; the hub may be unreachable");
                    }
                    last_sent = Value::Null;
                    wait
                }
            };
            // Sleep until the next beat, but wake at once when the hub changes the spec.
            let spec = imc.data["spec"].clone();
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = &mut *shutdown => return Ok(()),
                    _ = tokio::time::sleep_until(deadline) => break,
                    r = imc_rx.changed() => {
                        r.map_err(|_| Error::WatchEnded)?;
                        let changed = imc_rx.borrow().as_ref().map(|o| o.data["spec"].clone()) != Some(spec.clone());
                        if changed { break; }
                    }
                }
            }
        }
    }

    async fn member_ready(&self) -> Result<(), Error> {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| Error::Member(e.to_string()))?;
        let not_ready =
            |why: String| Error::Member(format!("the member API server is not ready: {why}"));
        match tokio::time::timeout(Duration::from_secs(10), self.member.request_text(req)).await {
            Ok(Ok(t)) if t.trim() == "ok" => Ok(()),
            Ok(Ok(t)) => Err(not_ready(t.trim().to_string())),
            Ok(Err(e)) => Err(not_ready(brief(&e))),
            Err(_) => Err(Error::Member(
                "the member API server did not answer /readyz within 10s".into(),
            )),
        }
    }

    async fn custom_properties(&self) -> Result<BTreeMap<String, String>, Error> {
        let cms: Api<DynamicObject> = Api::namespaced_with(
            self.member.clone(),
            member::CUSTOM_PROPERTIES_NAMESPACE,
            &resource("", "v1", "ConfigMap", "configmaps"),
        );
        match cms.get_opt(member::CUSTOM_PROPERTIES_CONFIGMAP).await {
            Ok(None) => Ok(BTreeMap::new()),
            Ok(Some(cm)) => Ok(member::parse_custom_properties(&cm.data["data"])),
            Err(e) => Err(Error::Member(format!(
                "reading ConfigMap {}/{}: {e}",
                member::CUSTOM_PROPERTIES_NAMESPACE,
                member::CUSTOM_PROPERTIES_CONFIGMAP
            ))),
        }
    }

    /// One heartbeat: a merge patch of the InternalMemberCluster's status with the agent's
    /// status, plus properties and usage only when their values changed since the last beat.
    async fn heartbeat(
        &self,
        imcs: &Api<DynamicObject>,
        view: &MemberView,
        imc: &Value,
        version: &str,
        last_sent: &mut Value,
    ) -> Result<(), kube::Error> {
        let now = conditions::timestamp(chrono::Utc::now());
        let ready = self.member_ready().await;
        let mut agent_conds = member::agent_status(&imc["status"])
            .map(|a| a["conditions"].clone())
            .unwrap_or(Value::Null);
        conditions::set(
            &mut agent_conds,
            cond::JOINED,
            true,
            reason::JOINED,
            "the member agent joined the fleet",
            None,
            &now,
        );
        match &ready {
            Ok(()) => conditions::set(
                &mut agent_conds,
                cond::HEALTHY,
                true,
                reason::HEALTHY,
                "the member API server is ready",
                None,
                &now,
            ),
            Err(m) => conditions::set(
                &mut agent_conds,
                cond::HEALTHY,
                false,
                reason::UNHEALTHY,
                &m.to_string(),
                None,
                &now,
            ),
        };
        let mut status = json!({"agentStatus": [{"type": MEMBER_AGENT, "conditions": agent_conds, "lastReceivedHeartbeat": now}]});
        if ready.is_ok() && synced(&view.nodes) && synced(&view.pods) {
            let nodes = view.nodes.state();
            let pods = view.pods.state();
            let usage = member::Usage::compute(
                nodes
                    .iter()
                    .map(|n| (n.metadata.name.as_deref().unwrap_or(""), &n.data)),
                pods.iter().map(|p| &p.data),
            );
            let custom = self.custom_properties().await;
            let (props, rejected) = member::properties(
                &usage,
                version,
                custom.as_ref().unwrap_or(&BTreeMap::new()),
                &now,
            );
            let mut imc_conds = imc["status"]["conditions"].clone();
            match (&custom, rejected.is_empty()) {
                (Err(e), _) => conditions::set(
                    &mut imc_conds,
                    cond::PROPERTY_COLLECTION_SUCCEEDED,
                    false,
                    reason::PROPERTIES_FAILED,
                    &e.to_string(),
                    None,
                    &now,
                ),
                (Ok(_), false) => {
                    let msg = rejected
                        .iter()
                        .map(|(k, why)| format!("property {k:?} {why}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    conditions::set(
                        &mut imc_conds,
                        cond::PROPERTY_COLLECTION_SUCCEEDED,
                        false,
                        reason::PROPERTIES_FAILED,
                        &msg,
                        None,
                        &now,
                    )
                }
                (Ok(_), true) => conditions::set(
                    &mut imc_conds,
                    cond::PROPERTY_COLLECTION_SUCCEEDED,
                    true,
                    reason::PROPERTIES_COLLECTED,
                    "all properties were collected",
                    None,
                    &now,
                ),
            };
            let usage_json = usage.resource_usage(&now);
            let values = |props: &Value, usage: &Value, conds: &Value| {
                let vals: BTreeMap<&String, &Value> = props
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k, &v["value"])).collect())
                    .unwrap_or_default();
                json!({"props": vals, "usage": [&usage["capacity"], &usage["allocatable"], &usage["available"]], "conds": conds})
            };
            let fingerprint = values(&props, &usage_json, &imc_conds);
            let stored = values(
                &imc["status"]["properties"],
                &imc["status"]["resourceUsage"],
                &imc["status"]["conditions"],
            );
            if fingerprint != *last_sent || fingerprint != stored {
                // Properties that disappeared are removed (null in a merge patch).
                let mut props_patch = props.clone();
                if let Some(old) = imc["status"]["properties"].as_object() {
                    for k in old.keys() {
                        if props_patch.get(k).is_none() {
                            props_patch[k] = Value::Null;
                        }
                    }
                }
                status["properties"] = props_patch;
                status["resourceUsage"] = usage_json;
                status["conditions"] = imc_conds;
                *last_sent = fingerprint;
            }
        }
        self.write_status(imcs, status).await
    }

    /// A merge patch of the InternalMemberCluster's status.
    async fn write_status(
        &self,
        imcs: &Api<DynamicObject>,
        status: Value,
    ) -> Result<(), kube::Error> {
        imcs.patch_status(
            &self.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
        Ok(())
    }

    async fn report_left(&self, imcs: &Api<DynamicObject>) -> Result<(), kube::Error> {
        let now = conditions::timestamp(chrono::Utc::now());
        let imc = imcs.get_status(&self.name).await?;
        let mut agent_conds = member::agent_status(&imc.data["status"])
            .map(|a| a["conditions"].clone())
            .unwrap_or(Value::Null);
        conditions::set(
            &mut agent_conds,
            cond::JOINED,
            false,
            reason::LEFT,
            "the member agent left the fleet",
            None,
            &now,
        );
        let status = json!({"agentStatus": [{"type": MEMBER_AGENT, "conditions": agent_conds, "lastReceivedHeartbeat": now}]});
        self.write_status(imcs, status).await
    }
}
