//! The member lifecycle controller. For each MemberCluster it keeps the member's namespace
//! `fleet-member-<name>`, a Role and RoleBinding giving the member's identity that namespace
//! and nothing else, and the InternalMemberCluster the agent reads; it copies the agent's
//! reports (heartbeat, properties, resource usage) to the MemberCluster's status and judges
//! health from the heartbeat's age. On deletion it tells the agent to leave, waits for it
//! (bounded by the leave timeout), removes the namespace and then the finalizer.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flotilla_api::conditions;
use flotilla_api::crds::CLUSTER_GROUP;
use flotilla_api::member::{self, condition as cond, reason, FINALIZER};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::HubConfig;

/// Field manager of the hub's writes.
pub const MANAGER: &str = "flotilla-hub";

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub use flotilla_api::member::{internal_member_cluster_resource, member_cluster_resource};

use crate::Error;

struct Ctx {
    client: kube::Client,
    config: HubConfig,
    /// When each member's namespace and access were last checked, at which generation: they
    /// are checked again when the spec changes and every [`ACCESS_RECHECK`], not on every
    /// heartbeat.
    access_checked:
        parking_lot::Mutex<std::collections::HashMap<String, (i64, std::time::Instant)>>,
    /// The InternalMemberClusters, from a watch.
    imcs: reflector::Store<DynamicObject>,
}

/// How often a member's namespace, Role and RoleBinding are re-checked (and recreated if
/// someone removed them) without a spec change.
const ACCESS_RECHECK: Duration = Duration::from_secs(300);

/// Runs the controller until the client's server goes away.
pub async fn run(client: kube::Client, config: HubConfig) {
    let mc_ar = member_cluster_resource();
    let imc_ar = internal_member_cluster_resource();
    let mcs: Api<DynamicObject> = Api::all_with(client.clone(), &mc_ar);
    let imcs: Api<DynamicObject> = Api::all_with(client.clone(), &imc_ar);
    // MemberClusters trigger a reconcile when what the controller acts on changes (spec,
    // labels, finalizers, deletion), not when the controller's own status write comes back.
    let mc_writer = reflector::store::Writer::new(mc_ar.clone());
    let mc_reader = mc_writer.as_reader();
    let mc_stream = watcher(mcs, watcher::Config::default())
        .default_backoff()
        .modify(crate::resources::typed(&mc_ar))
        .reflect(mc_writer)
        .applied_objects()
        .predicate_filter(trigger_fingerprint, Default::default());
    // InternalMemberClusters are read from this cache, not fetched per reconcile.
    let imc_writer = reflector::store::Writer::new(imc_ar.clone());
    let imc_reader = imc_writer.as_reader();
    let imc_stream = watcher(imcs, watcher::Config::default())
        .default_backoff()
        .modify(crate::resources::typed(&imc_ar))
        .reflect(imc_writer)
        .applied_objects();
    let ctx = Arc::new(Ctx {
        client,
        config,
        access_checked: Default::default(),
        imcs: imc_reader,
    });
    let mapper_ar = mc_ar.clone();
    Controller::for_stream_with(mc_stream, mc_reader, mc_ar)
        .watches_stream_with(
            imc_stream,
            move |imc| {
                // An InternalMemberCluster is named after its member.
                imc.metadata
                    .name
                    .map(|n| ObjectRef::new_with(n.as_str(), mapper_ar.clone()))
            },
            imc_ar,
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// What a MemberCluster change must trigger a reconcile for.
fn trigger_fingerprint(mc: &DynamicObject) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    mc.metadata.generation.hash(&mut h);
    mc.metadata.deletion_timestamp.is_some().hash(&mut h);
    mc.metadata.finalizers.hash(&mut h);
    mc.metadata.labels.hash(&mut h);
    mc.data["spec"].to_string().hash(&mut h);
    Some(h.finish())
}

fn error_policy(mc: Arc<DynamicObject>, e: &Error, _: Arc<Ctx>) -> Action {
    match e {
        // Conflicts are routine (someone wrote in between): retry at once.
        e if e.is_conflict() => Action::requeue(Duration::from_millis(100)),
        _ => {
            tracing::warn!(member = %mc.name_any(), error = %e, "member reconcile failed; retrying");
            Action::requeue(Duration::from_secs(2))
        }
    }
}

fn period_of(mc: &DynamicObject) -> u64 {
    mc.data["spec"]["heartbeatPeriodSeconds"]
        .as_u64()
        .unwrap_or(60)
        .clamp(1, 600)
}

fn threshold(config: &HubConfig, period: u64) -> Duration {
    config
        .health_threshold
        .unwrap_or(Duration::from_secs(3 * period))
}

fn agent_status(imc: &Value) -> Option<&Value> {
    member::agent_status(&imc["status"])
}

fn last_heartbeat(imc: &Value) -> Option<DateTime<Utc>> {
    agent_status(imc)?["lastReceivedHeartbeat"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The agent reported that it left.
fn agent_left(imc: &Value) -> bool {
    agent_status(imc).is_some_and(|a| {
        conditions::find(&a["conditions"], cond::JOINED)
            .is_some_and(|c| c["status"] == "False" && c["reason"] == reason::LEFT)
    })
}

/// A MemberCluster's status from its current status and its InternalMemberCluster (pure).
pub fn member_status(
    current: &Value,
    imc: Option<&Value>,
    now: DateTime<Utc>,
    threshold: Duration,
) -> Value {
    let mut status = if current.is_object() {
        current.clone()
    } else {
        json!({})
    };
    let stamp = conditions::timestamp(now);
    let mut conds = status["conditions"].take();
    conditions::set(
        &mut conds,
        cond::READY_TO_JOIN,
        true,
        reason::READY_TO_JOIN,
        "the hub prepared the member's namespace and access",
        None,
        &stamp,
    );
    let empty = json!({});
    let imc = imc.unwrap_or(&empty);
    let agent = agent_status(imc);
    let joined = agent.and_then(|a| conditions::find(&a["conditions"], cond::JOINED));
    match joined {
        Some(j) => {
            conditions::set_status(
                &mut conds,
                cond::JOINED,
                j["status"].as_str().unwrap_or("Unknown"),
                j["reason"].as_str().unwrap_or(reason::JOINED),
                j["message"].as_str().unwrap_or(""),
                None,
                &stamp,
            );
        }
        None => {
            conditions::set_status(
                &mut conds,
                cond::JOINED,
                "Unknown",
                reason::JOIN_PENDING,
                "waiting for the member agent to join",
                None,
                &stamp,
            );
        }
    }
    let is_joined = joined.is_some_and(|j| j["status"] == "True");
    if is_joined {
        let (health, r, msg) = member::heartbeat_health(last_heartbeat(imc), now, threshold);
        let agent_unhealthy = agent
            .and_then(|a| conditions::find(&a["conditions"], cond::HEALTHY))
            .filter(|c| c["status"] == "False");
        match (health, agent_unhealthy) {
            (Some(true), Some(c)) => conditions::set(
                &mut conds,
                cond::HEALTHY,
                false,
                c["reason"].as_str().unwrap_or(reason::UNHEALTHY),
                c["message"].as_str().unwrap_or(""),
                None,
                &stamp,
            ),
            (Some(h), _) => conditions::set(&mut conds, cond::HEALTHY, h, r, &msg, None, &stamp),
            (None, _) => {
                conditions::set_status(&mut conds, cond::HEALTHY, "Unknown", r, &msg, None, &stamp)
            }
        };
    } else {
        conditions::set_status(
            &mut conds,
            cond::HEALTHY,
            "Unknown",
            reason::JOIN_PENDING,
            "the member has not joined",
            None,
            &stamp,
        );
    }
    if let Some(c) = conditions::find(
        &imc["status"]["conditions"],
        cond::PROPERTY_COLLECTION_SUCCEEDED,
    ) {
        conditions::set_status(
            &mut conds,
            cond::PROPERTY_COLLECTION_SUCCEEDED,
            c["status"].as_str().unwrap_or("Unknown"),
            c["reason"].as_str().unwrap_or(reason::PROPERTIES_COLLECTED),
            c["message"].as_str().unwrap_or(""),
            None,
            &stamp,
        );
    }
    status["conditions"] = conds;
    let o = status.as_object_mut().expect("object");
    for f in ["agentStatus", "properties", "resourceUsage"] {
        match imc["status"].get(f) {
            Some(v) => {
                o.insert(f.into(), v.clone());
            }
            None => {
                o.remove(f);
            }
        }
    }
    status
}

async fn reconcile(mc: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = mc.name_any();
    let ns = member::namespace_of(&name);
    let client = &ctx.client;
    let mcs: Api<DynamicObject> = Api::all_with(client.clone(), &member_cluster_resource());
    let imcs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &internal_member_cluster_resource());
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    let imc = ctx
        .imcs
        .get(&ObjectRef::new_with(&name, internal_member_cluster_resource()).within(&ns))
        .map(|o| (*o).clone());
    if let Some(deleted) = mc.metadata.deletion_timestamp.as_ref() {
        if !mc.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        let deleted = DateTime::from_timestamp(deleted.0.as_second(), 0).unwrap_or_else(Utc::now);
        let waited = Utc::now() - deleted;
        let timeout = chrono::Duration::from_std(ctx.config.leave_timeout).unwrap_or_default();
        if let Some(imc) = &imc {
            let joined = agent_status(&imc.data).is_some();
            if imc.data["spec"]["state"] != "Leave" {
                imcs.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"state": "Leave"}})),
                )
                .await?;
                tracing::info!(member = %name, "member deleted; asked its agent to leave");
            }
            if joined && !agent_left(&imc.data) && waited < timeout {
                let left = (timeout - waited).to_std().unwrap_or_default();
                return Ok(Action::requeue(left.min(Duration::from_secs(5))));
            }
            if joined && !agent_left(&imc.data) {
                tracing::warn!(member = %name, "the member agent did not report leaving within the leave timeout; removing the member anyway");
            }
        }
        match namespaces.delete(&ns, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        let rest: Vec<String> = mc
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        set_finalizers(&mcs, &mc, rest).await?;
        ctx.access_checked.lock().remove(&name);
        tracing::info!(member = %name, "member left the fleet");
        return Ok(Action::await_change());
    }
    if !mc.finalizers().iter().any(|f| f == FINALIZER) {
        let mut fs = mc.finalizers().to_vec();
        fs.push(FINALIZER.into());
        set_finalizers(&mcs, &mc, fs).await?;
        // The finalizer write triggers the next round.
        return Ok(Action::await_change());
    }
    let generation = mc.metadata.generation.unwrap_or(0);
    let fresh = ctx
        .access_checked
        .lock()
        .get(&name)
        .is_some_and(|(g, at)| *g == generation && at.elapsed() < ACCESS_RECHECK);
    if !fresh {
        ensure_access(client, &mc, &name, &ns).await?;
        ctx.access_checked
            .lock()
            .insert(name.clone(), (generation, std::time::Instant::now()));
    }
    let period = period_of(&mc);
    let imc = match imc {
        None => {
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": format!("{CLUSTER_GROUP}/v1beta1"), "kind": "InternalMemberCluster",
                "metadata": {"name": name, "namespace": ns, "labels": {member::MEMBER_LABEL: name}},
                "spec": {"state": "Join", "heartbeatPeriodSeconds": period}
            }))?;
            imcs.create(&PostParams::default(), &obj).await?
        }
        Some(imc) => {
            if imc.data["spec"]["state"] != "Join"
                || imc.data["spec"]["heartbeatPeriodSeconds"] != json!(period)
            {
                imcs.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"spec": {"state": "Join", "heartbeatPeriodSeconds": period}}),
                    ),
                )
                .await?
            } else {
                imc
            }
        }
    };
    let now = Utc::now();
    let th = threshold(&ctx.config, period);
    let status = member_status(&mc.data["status"], Some(&imc.data), now, th);
    if status != mc.data["status"] {
        // A replace at the cached resourceVersion: a stale cache gets 409 and a quick retry.
        let mut obj = (*mc).clone();
        obj.data["status"] = status;
        mcs.replace_status(&name, &PostParams::default(), &obj)
            .await?;
    }
    // Come back when the member would turn unhealthy without another heartbeat.
    let next = match last_heartbeat(&imc.data) {
        Some(last) => (member::heartbeat_deadline(last, th) - now)
            .to_std()
            .map(|d| d + Duration::from_millis(200))
            .unwrap_or(Duration::from_secs(300)),
        None => Duration::from_secs(300),
    };
    Ok(Action::requeue(next.min(Duration::from_secs(300))))
}

/// Replaces the MemberCluster's finalizers, at the resourceVersion it was read at.
async fn set_finalizers(
    mcs: &Api<DynamicObject>,
    mc: &DynamicObject,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    mcs.patch(
        &mc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"finalizers": finalizers, "resourceVersion": mc.resource_version()}}),
        ),
    )
    .await?;
    Ok(())
}

/// The member's namespace, and a Role and RoleBinding giving its identity that namespace.
async fn ensure_access(
    client: &kube::Client,
    mc: &DynamicObject,
    name: &str,
    ns: &str,
) -> Result<(), Error> {
    let labels = json!({member::MEMBER_LABEL: name});
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    if namespaces.get_opt(ns).await?.is_none() {
        let obj = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": labels}}))?;
        create_ok_if_exists(namespaces.create(&PostParams::default(), &obj).await)?;
    }
    let rbac = "rbac.authorization.k8s.io";
    let roles: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &resource(rbac, "v1", "Role", "roles"));
    let role_name = format!("fleet-role-{name}");
    if roles.get_opt(&role_name).await?.is_none() {
        let obj = serde_json::from_value(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": role_name, "namespace": ns, "labels": labels},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        )?;
        create_ok_if_exists(roles.create(&PostParams::default(), &obj).await)?;
    }
    let bindings: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &resource(rbac, "v1", "RoleBinding", "rolebindings"),
    );
    let binding_name = format!("fleet-rolebinding-{name}");
    let mut subject = mc.data["spec"]["identity"].clone();
    if subject["apiGroup"].is_null() && subject["kind"] != "ServiceAccount" {
        subject["apiGroup"] = json!(rbac);
    }
    let want = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": binding_name, "namespace": ns, "labels": labels},
        "roleRef": {"apiGroup": rbac, "kind": "Role", "name": role_name},
        "subjects": [subject]});
    match bindings.get_opt(&binding_name).await? {
        None => {
            let obj = serde_json::from_value(want)?;
            create_ok_if_exists(bindings.create(&PostParams::default(), &obj).await)?;
        }
        Some(cur) if cur.data["subjects"] != want["subjects"] => {
            // The identity changed: the binding follows it.
            bindings
                .patch(
                    &binding_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"subjects": want["subjects"]})),
                )
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

fn create_ok_if_exists(r: Result<DynamicObject, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imc(joined: &str, reason_: &str, heartbeat: Option<DateTime<Utc>>) -> Value {
        let mut a = json!({"type": member::MEMBER_AGENT, "conditions": [
            {"type": "Joined", "status": joined, "reason": reason_, "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        if let Some(h) = heartbeat {
            a["lastReceivedHeartbeat"] = json!(h.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        json!({"status": {"agentStatus": [a], "properties": {"kubernetes-fleet.io/node-count": {"value": "3", "observationTime": "2026-01-01T00:00:00Z"}}}})
    }

    fn condition<'a>(s: &'a Value, t: &str) -> &'a Value {
        conditions::find(&s["conditions"], t).unwrap()
    }

    #[test]
    fn status_follows_the_agent() {
        let now = Utc::now();
        let th = Duration::from_secs(30);
        let s = member_status(&Value::Null, None, now, th);
        assert_eq!(condition(&s, "ReadyToJoin")["status"], "True");
        assert_eq!(condition(&s, "Joined")["status"], "Unknown");
        assert_eq!(condition(&s, "Healthy")["status"], "Unknown");

        let s = member_status(&s, Some(&imc("True", reason::JOINED, Some(now))), now, th);
        assert_eq!(condition(&s, "Joined")["status"], "True");
        assert_eq!(condition(&s, "Healthy")["status"], "True");
        assert_eq!(
            s["properties"]["kubernetes-fleet.io/node-count"]["value"],
            "3"
        );

        let later = now + chrono::Duration::seconds(31);
        let s = member_status(&s, Some(&imc("True", reason::JOINED, Some(now))), later, th);
        assert_eq!(condition(&s, "Healthy")["status"], "False");
        assert_eq!(
            condition(&s, "Healthy")["reason"],
            reason::HEARTBEAT_TIMEOUT
        );

        let s = member_status(
            &s,
            Some(&imc("True", reason::JOINED, Some(later))),
            later,
            th,
        );
        assert_eq!(condition(&s, "Healthy")["status"], "True");

        let left = imc("False", reason::LEFT, Some(later));
        assert!(agent_left(&left));
        let s = member_status(&s, Some(&left), later, th);
        assert_eq!(condition(&s, "Joined")["reason"], reason::LEFT);
    }
}
