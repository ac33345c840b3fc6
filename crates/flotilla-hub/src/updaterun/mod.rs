//! The staged update run controller (KubeFleet's `ClusterStagedUpdateRun` and
//! `StagedUpdateRun`): [`machine`] decides each pass from the caches; this module reads them
//! and makes the writes: binding specs (a cluster's release), deletions (the deletion stage),
//! approval requests (owned by their run, so deleting a run deletes them), accepted approvals
//! and the run's status. A run is reconciled when it changes, when one of its approval
//! requests does, when a binding of its placement does, and when the machine asks to look
//! again (a timer, a stuck check).

pub mod machine;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::member::member_cluster_resource;
use flotilla_api::placement::label;
use flotilla_api::placement::staged::label as staged_label;
use futures::{FutureExt, StreamExt};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::placement::plan::overrides_for;
use crate::placement::status::replacing;
use crate::placement::{
    api_in, cached, cached_with, compact, follow, override_series, Scope, Watched,
};
use crate::Error;
use machine::{Binding, Observed, Policy};

struct Ctx {
    scope: Scope,
    client: kube::Client,
    /// The resourceVersion of each binding as this controller last wrote it: a pass waits for
    /// the cache to show its own writes before it decides again (watches of runs and of
    /// bindings are not ordered with each other).
    written: parking_lot::Mutex<HashMap<String, u64>>,
    placements: Store<DynamicObject>,
    strategies: Store<DynamicObject>,
    approvals: Store<DynamicObject>,
    bindings: Store<DynamicObject>,
    resource_snapshots: Store<DynamicObject>,
    policy_snapshots: Store<DynamicObject>,
    members: Store<DynamicObject>,
    cros: Store<DynamicObject>,
    ros: Store<DynamicObject>,
    cro_snapshots: Store<DynamicObject>,
    ro_snapshots: Store<DynamicObject>,
}

/// Runs the controllers (cluster-scoped and namespaced runs) until the future is dropped.
/// `bindings` are the caches of both scopes' bindings and streams of their changes
/// ([`crate::placement::SharedBindings::subscribe`]).
pub async fn run(client: kube::Client, bindings: [(Store<DynamicObject>, Watched); 2]) {
    let (members, member_stream) = cached(&client, member_cluster_resource());
    let (cros, cro_stream) = cached(&client, crate::placement::cro_resource());
    let (ros, ro_stream) = cached(&client, crate::placement::ro_resource());
    let (cro_snapshots, cro_snapshot_stream) =
        cached(&client, crate::placement::cro_snapshot_resource());
    let (ro_snapshots, ro_snapshot_stream) =
        cached(&client, crate::placement::ro_snapshot_resource());
    let mut tasks: Vec<futures::future::BoxFuture<'static, ()>> = vec![
        follow(member_stream),
        follow(cro_stream),
        follow(ro_stream),
        follow(cro_snapshot_stream),
        follow(ro_snapshot_stream),
    ];
    for (scope, (bindings, binding_stream)) in [Scope::Cluster, Scope::Namespaced]
        .into_iter()
        .zip(bindings)
    {
        let ar = scope.update_run();
        let (runs, run_stream) = cached(&client, ar.clone());
        // A run reads its placement's metadata and spec, not its status.
        let (placements, placement_stream) =
            cached_with(&client, scope.placement(), compact::without_status);
        let (strategies, strategy_stream) = cached(&client, scope.update_strategy());
        let (approvals, approval_stream) = cached(&client, scope.approval_request());
        let (resource_snapshots, rs_stream) = cached(&client, scope.resource_snapshot());
        let (policy_snapshots, ps_stream) = cached(&client, scope.policy_snapshot());
        tasks.extend([
            follow(placement_stream),
            follow(strategy_stream),
            follow(rs_stream),
            follow(ps_stream),
        ]);
        let ctx = Arc::new(Ctx {
            scope,
            client: client.clone(),
            written: Default::default(),
            placements,
            strategies,
            approvals,
            bindings,
            resource_snapshots,
            policy_snapshots,
            members: members.clone(),
            cros: cros.clone(),
            ros: ros.clone(),
            cro_snapshots: cro_snapshots.clone(),
            ro_snapshots: ro_snapshots.clone(),
        });
        let run_ar = ar.clone();
        let of_request = move |a: DynamicObject| {
            a.labels()
                .get(staged_label::TARGET_UPDATE_RUN)
                .map(|r| in_namespace(ObjectRef::new_with(r, run_ar.clone()), a.namespace()))
        };
        // A binding concerns the unfinished runs of its placement.
        let of_binding = {
            let runs = runs.clone();
            move |b: DynamicObject| -> Vec<ObjectRef<DynamicObject>> {
                let Some(p) = b.labels().get(label::PARENT_CRP).cloned() else {
                    return Vec::new();
                };
                let ns = b.namespace();
                runs.state()
                    .iter()
                    .filter(|r| {
                        r.data["spec"]["placementName"] == p.as_str()
                            && r.namespace() == ns
                            && !finished(&r.data["status"])
                    })
                    .map(|r| ObjectRef::from_obj_with(r.as_ref(), scope.update_run()))
                    .collect()
            }
        };
        tasks.push(
            Controller::for_stream_with(run_stream, runs, ar.clone())
                .watches_stream_with(approval_stream, of_request, scope.approval_request())
                .watches_stream_with(binding_stream, of_binding, scope.binding())
                .run(reconcile, error_policy, ctx)
                .for_each(|_| async {})
                .boxed(),
        );
    }
    futures::future::join_all(tasks).await;
}

fn in_namespace(r: ObjectRef<DynamicObject>, ns: Option<String>) -> ObjectRef<DynamicObject> {
    match ns {
        Some(ns) => r.within(&ns),
        None => r,
    }
}

/// Whether a run's status says it is over (succeeded, failed, or failed to start).
fn finished(status: &Value) -> bool {
    let c = &status["conditions"];
    flotilla_api::conditions::find(c, "Succeeded").is_some_and(|x| x["status"] != "Unknown")
        || flotilla_api::conditions::find(c, "Initialized").is_some_and(|x| x["status"] == "False")
}

impl Ctx {
    /// Whether every cache a pass reads has had its first list (a run must never be computed
    /// from a cache that has not loaded: it would see no clusters).
    fn ready(&self) -> bool {
        [
            &self.placements,
            &self.strategies,
            &self.approvals,
            &self.bindings,
            &self.resource_snapshots,
            &self.policy_snapshots,
            &self.members,
            &self.cros,
            &self.ros,
            &self.cro_snapshots,
            &self.ro_snapshots,
        ]
        .iter()
        .all(|s| s.wait_until_ready().now_or_never().is_some())
    }
}

fn error_policy(_: Arc<DynamicObject>, e: &Error, _: Arc<Ctx>) -> Action {
    if e.is_conflict() {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "staged update run");
    Action::requeue(Duration::from_secs(2))
}

fn index_label(o: &DynamicObject, key: &str) -> Option<i64> {
    o.labels().get(key).and_then(|v| v.parse().ok())
}

async fn reconcile(run: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if run.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let scope = ctx.scope;
    let run_name = run.name_any();
    let ns = run.namespace();
    let value = serde_json::to_value(run.as_ref())?;
    if finished(&value["status"]) {
        return Ok(Action::await_change());
    }
    if !ctx.ready() {
        return Err(Error::Loading("the update run caches".into()));
    }
    let placement_name = value["spec"]["placementName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let of_placement = |o: &DynamicObject| {
        o.labels().get(label::PARENT_CRP) == Some(&placement_name) && o.namespace() == ns
    };
    let placement = ctx
        .placements
        .get(&in_namespace(
            ObjectRef::new_with(&placement_name, scope.placement()),
            ns.clone(),
        ))
        .map(|p| serde_json::to_value(p.as_ref()))
        .transpose()?;
    let strategy_name = value["spec"]["stagedRolloutStrategyName"]
        .as_str()
        .unwrap_or("");
    let strategy = ctx
        .strategies
        .get(&in_namespace(
            ObjectRef::new_with(strategy_name, scope.update_strategy()),
            ns.clone(),
        ))
        .map(|s| s.data["spec"].clone());
    let snapshots = ctx.resource_snapshots.state_filter(of_placement);
    let resource_indexes = snapshots
        .iter()
        .filter_map(|s| index_label(s, label::RESOURCE_INDEX))
        .collect();
    let latest_resource_index = snapshots
        .iter()
        .filter_map(|s| index_label(s, label::RESOURCE_INDEX))
        .max();
    let policy_snapshot = ctx
        .policy_snapshots
        .state_filter(of_placement)
        .into_iter()
        .max_by_key(|p| index_label(p, label::POLICY_INDEX));
    let policy = policy_snapshot.as_ref().map(|p| Policy {
        selected: p.data["status"]["clusterDecisions"].as_array().map(|d| {
            d.iter()
                .filter(|x| x["selected"] == true)
                .filter_map(|x| x["clusterName"].as_str().map(String::from))
                .collect()
        }),
        name: p.metadata.name.as_deref().unwrap_or(""),
        index: index_label(p, label::POLICY_INDEX).unwrap_or(0).to_string(),
        observed_cluster_count: p
            .annotations()
            .get(flotilla_api::placement::annotation::NUMBER_OF_CLUSTERS)
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1),
    });
    let clusters: BTreeMap<String, BTreeMap<String, String>> = ctx
        .members
        .state()
        .iter()
        .map(|m| (m.name_any(), m.labels().clone()))
        .collect();
    let binding_objects = ctx.bindings.state_filter(of_placement);
    // Our own binding writes first: decide only on a cache that shows them.
    {
        let mut written = ctx.written.lock();
        let mut lagging = false;
        for b in &binding_objects {
            let key = b.name_any();
            if let Some(w) = written.get(&key).copied() {
                let seen = b
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse::<u64>().ok());
                match seen {
                    Some(s) if s < w => lagging = true,
                    _ => {
                        written.remove(&key);
                    }
                }
            }
        }
        if lagging {
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
    }
    let bindings: Vec<Binding<'_>> = binding_objects
        .iter()
        .filter_map(|b| {
            Some(Binding {
                name: b.name_any(),
                cluster: b.data["spec"]["targetCluster"].as_str()?,
                spec: &b.data["spec"],
                status: &b.data["status"],
                generation: b.metadata.generation,
                deleting: b.metadata.deletion_timestamp.is_some(),
            })
        })
        .collect();
    // The overrides of the snapshot the run releases, for each cluster (frozen at start).
    let released = match value["spec"]["resourceSnapshotIndex"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        Some(i) => i.parse().ok(),
        None => latest_resource_index,
    };
    let overrides = match (
        value["status"]["resourceSnapshotIndexUsed"].is_null(),
        released.and_then(|i| {
            snapshots
                .iter()
                .find(|s| index_label(s, label::RESOURCE_INDEX) == Some(i))
        }),
    ) {
        (true, Some(snapshot)) => {
            let series = override_series(
                [&ctx.cros, &ctx.ros, &ctx.cro_snapshots, &ctx.ro_snapshots],
                scope,
                &placement_name,
                ns.as_deref(),
            );
            overrides_for(
                snapshot,
                &series,
                clusters.iter().map(|(c, l)| (c.as_str(), l)),
            )
        }
        _ => BTreeMap::new(),
    };
    let approval_objects = ctx.approvals.state_filter(|a| {
        a.labels().get(staged_label::TARGET_UPDATE_RUN) == Some(&run_name) && a.namespace() == ns
    });
    let approval_values: Vec<(String, Value)> = approval_objects
        .iter()
        .map(|a| Ok((a.name_any(), serde_json::to_value(a.as_ref())?)))
        .collect::<Result<_, serde_json::Error>>()?;
    let step = machine::step(&Observed {
        run: &value,
        now: chrono::Utc::now(),
        placement: placement.as_ref(),
        strategy: strategy.as_ref(),
        latest_resource_index,
        resource_indexes,
        policy,
        clusters: &clusters,
        bindings,
        overrides,
        approvals: approval_values
            .iter()
            .map(|(n, v)| (n.clone(), v))
            .collect(),
    });

    if let Some(why) = &step.waiting {
        tracing::debug!(run = %run_name, %why, "the run waits to initialize");
    }
    // The writes: releases and deletions first, then requests, then the status that says so.
    let binding_api = api_in(&ctx.client, &scope.binding(), ns.as_deref());
    for (name, spec) in &step.bind {
        // As read: a write in between is a conflict, and the run decides again.
        let rv = binding_objects
            .iter()
            .find(|b| b.name_any() == *name)
            .and_then(|b| b.metadata.resource_version.clone());
        let patch = json!({"metadata": {"resourceVersion": rv}, "spec": spec});
        match binding_api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(b) => {
                if let Some(v) = b.metadata.resource_version.and_then(|v| v.parse().ok()) {
                    ctx.written.lock().insert(name.clone(), v);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(100)))
            }
            Err(e) => return Err(Error::from(e).concerning(format!("binding {name}"))),
        }
    }
    for name in &step.delete_bindings {
        match binding_api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::from(e).concerning(format!("binding {name}"))),
        }
    }
    let approval_api = api_in(&ctx.client, &scope.approval_request(), ns.as_deref());
    for request in &step.create_approvals {
        let ar = scope.approval_request();
        let run_ar = scope.update_run();
        let mut obj = request.clone();
        obj["apiVersion"] = json!(ar.api_version);
        obj["kind"] = json!(ar.kind);
        obj["metadata"]["ownerReferences"] = json!([{"apiVersion": run_ar.api_version,
            "kind": run_ar.kind, "name": run_name,
            "uid": run.metadata.uid.clone().unwrap_or_default(),
            "blockOwnerDeletion": true, "controller": true}]);
        if let Some(n) = &ns {
            obj["metadata"]["namespace"] = json!(n);
        }
        match approval_api
            .create(&PostParams::default(), &serde_json::from_value(obj)?)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Error::from(e).concerning("approval request")),
        }
    }
    for (name, conds) in &step.accept_approvals {
        approval_api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"conditions": conds}})),
            )
            .await
            .map_err(|e| Error::from(e).concerning(format!("approval request {name}")))?;
    }
    if step.status != value["status"] {
        // Over the status as read: a cache behind the last write is a conflict, not a step
        // back.
        let patch = json!({"metadata": {"resourceVersion": run.metadata.resource_version},
            "status": replacing(&value["status"], &step.status)});
        match api_in(&ctx.client, &scope.update_run(), ns.as_deref())
            .patch_status(&run_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(100)))
            }
            Err(e) => return Err(Error::from(e).concerning(format!("run {run_name}"))),
        }
    }
    Ok(match step.requeue {
        Some(after) => Action::requeue(after),
        None => Action::requeue(Duration::from_secs(60)),
    })
}
