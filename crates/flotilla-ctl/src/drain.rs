//! `flotilla drain CLUSTER` and `flotilla uncordon CLUSTER`, as KubeFleet's drain and uncordon
//! tools do it: drain taints the MemberCluster (KubeFleet's cordon taint, so either tool undoes
//! the other's) so that no placement picks it again, then evicts every ClusterResourcePlacement
//! placed there (`drain-eviction-<placement>-<cluster>`), each subject to its disruption budget,
//! and reports what each eviction did; uncordon removes the taint.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flotilla_api::conditions;
use flotilla_api::member::member_cluster_resource;
use flotilla_api::placement::label;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::{resource, Connection, Error, Hub};

/// KubeFleet's cordon taint.
pub fn cordon_taint() -> Value {
    json!({"key": "cordon-key", "value": "cordon-value", "effect": "NoSchedule"})
}

/// `flotilla drain` / `flotilla uncordon`.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// The member cluster.
    cluster: String,
    /// How long to wait for each eviction to be judged.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    connection: Connection,
}

/// Sets the MemberCluster's taints to what `change` makes of them; whether they changed.
async fn retaint(
    api: &Api<DynamicObject>,
    cluster: &str,
    change: impl Fn(&mut Vec<Value>),
) -> Result<bool, Error> {
    for _ in 0..10 {
        let mc = api
            .get_opt(cluster)
            .await?
            .ok_or_else(|| Error::Refused(format!("member cluster {cluster:?} not found")))?;
        let mut taints = mc.data["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let before = taints.clone();
        change(&mut taints);
        if taints == before {
            return Ok(false);
        }
        // The resourceVersion makes it an update of what was read, or a conflict to retry.
        let patch = json!({"metadata": {"resourceVersion": mc.metadata.resource_version},
            "spec": {"taints": taints}});
        match api
            .patch(cluster, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Refused(format!(
        "member cluster {cluster:?} keeps changing: try again"
    )))
}

/// Runs `flotilla drain`; returns the exit code (0: every placement evicted or gone).
pub async fn drain(args: DrainArgs) -> Result<u8, Error> {
    let hub = Hub::connect(&args.connection).await?;
    let cluster = &args.cluster;
    let members: Api<DynamicObject> = Api::all_with(hub.client.clone(), &member_cluster_resource());
    let tainted = retaint(&members, cluster, |t| {
        if !t.contains(&cordon_taint()) {
            t.push(cordon_taint());
        }
    })
    .await?;
    println!(
        "member cluster {cluster} {}",
        if tainted {
            "cordoned: no placement picks it again"
        } else {
            "was already cordoned"
        }
    );
    let bindings: Api<DynamicObject> = Api::all_with(
        hub.client.clone(),
        &resource("ClusterResourceBinding", "clusterresourcebindings"),
    );
    let placements: BTreeSet<String> = bindings
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|b| b.data["spec"]["targetCluster"] == cluster.as_str())
        .filter_map(|b| b.metadata.labels.as_ref()?.get(label::PARENT_CRP).cloned())
        .collect();
    if placements.is_empty() {
        println!("no ClusterResourcePlacement has resources on {cluster}");
        return Ok(0);
    }
    let evictions: Api<DynamicObject> = Api::all_with(
        hub.client.clone(),
        &resource(
            "ClusterResourcePlacementEviction",
            "clusterresourceplacementevictions",
        ),
    );
    let mut all = true;
    for p in &placements {
        let name = format!("drain-eviction-{p}-{cluster}");
        // An eviction acts once: a new drain needs a new one.
        if evictions.get_opt(&name).await?.is_some() {
            evictions.delete(&name, &DeleteParams::default()).await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while evictions.get_opt(&name).await?.is_some() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let obj = json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
            "kind": "ClusterResourcePlacementEviction",
            "metadata": {"name": name},
            "spec": {"placementName": p, "clusterName": cluster}});
        evictions
            .create(&PostParams::default(), &serde_json::from_value(obj)?)
            .await?;
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        let verdict = loop {
            let e = evictions.get(&name).await?;
            let conds = &e.data["status"]["conditions"];
            let valid = conditions::find(conds, "Valid");
            if let Some(v) = valid.filter(|v| v["status"] == "False") {
                break (
                    true,
                    format!("nothing to evict ({})", v["message"].as_str().unwrap_or("")),
                );
            }
            if let Some(x) = conditions::find(conds, "Executed") {
                let done = x["status"] == "True";
                break (done, x["message"].as_str().unwrap_or("").to_string());
            }
            if Instant::now() >= deadline {
                break (false, "not judged in time".to_string());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        println!(
            "{p}: {} ({})",
            if verdict.0 { "evicted" } else { "not evicted" },
            verdict.1
        );
        all &= verdict.0;
    }
    Ok(if all { 0 } else { 1 })
}

/// Runs `flotilla uncordon`: removes the cordon taint.
pub async fn uncordon(args: DrainArgs) -> Result<u8, Error> {
    let hub = Hub::connect(&args.connection).await?;
    let members: Api<DynamicObject> = Api::all_with(hub.client.clone(), &member_cluster_resource());
    let changed = retaint(&members, &args.cluster, |t| {
        t.retain(|x| *x != cordon_taint())
    })
    .await?;
    println!(
        "member cluster {} {}",
        args.cluster,
        if changed {
            "uncordoned: placements may pick it again"
        } else {
            "was not cordoned"
        }
    );
    Ok(0)
}
