//! The executor: makes a [`Plan`]'s writes through the API, in order (snapshots, the policy
//! snapshot's decisions, deletions and bindings marked Unscheduled, then each cluster's
//! binding and Work, 16 clusters at a time), and writes each binding's status from what its
//! Work says.

use std::sync::Arc;

use flotilla_api::placement::label;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};

use super::plan::{ClusterPlan, Plan, SeriesWrite, WorkWrite, Write};
use super::status::{binding_status, binding_status_changed, replacing, Decided};
use super::{api_in, work_resource, Scope};
use crate::Error;

/// Whether `r` failed because the object is not there.
fn gone<T>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 404)
}

/// `r`, with "not found" counted as done (a cache that lags behind a deletion).
fn done_unless_failed<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    if gone(&r) {
        return Ok(());
    }
    r.map(|_| ()).map_err(Error::from)
}

async fn write_series(client: &kube::Client, w: &SeriesWrite) -> Result<(), Error> {
    let api = api_in(client, &w.resource, w.namespace.as_deref());
    for name in &w.unlatest {
        let p = json!({"metadata": {"labels": {label::IS_LATEST_SNAPSHOT: "false"}}});
        done_unless_failed(
            api.patch(name, &PatchParams::default(), &Patch::Merge(&p))
                .await,
        )?;
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(w.create.clone())?,
    )
    .await?;
    for name in &w.delete {
        // History that stays behind is removed on the next new snapshot.
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    Ok(())
}

/// One cluster after the pass.
pub struct Settled {
    /// The cluster.
    pub cluster: String,
    /// The binding's status as written.
    pub status: Value,
    /// The binding's resourceVersion when this pass wrote its status.
    pub written: Option<u64>,
}

/// Makes the plan's writes; returns each picked cluster's binding status.
pub async fn execute(
    client: &kube::Client,
    scope: Scope,
    plan: &Plan,
    generation: i64,
    now: &str,
) -> Result<Vec<Settled>, Error> {
    for w in &plan.snapshots {
        write_series(client, w)
            .await
            .map_err(|e| e.concerning(format!("{} series", w.resource.kind)))?;
    }
    let ps_api = api_in(client, &scope.policy_snapshot(), plan.namespace.as_deref());
    let ps = &plan.policy_snapshot;
    if let Some(p) = &ps.metadata {
        ps_api
            .patch(&ps.name, &PatchParams::default(), &Patch::Merge(p))
            .await
            .map_err(|e| Error::from(e).concerning(format!("policy snapshot {}", ps.name)))?;
    }
    if let Some(p) = &ps.status {
        ps_api
            .patch_status(&ps.name, &PatchParams::default(), &Patch::Merge(p))
            .await
            .map_err(|e| Error::from(e).concerning(format!("policy snapshot {}", ps.name)))?;
    }
    if let Some(m) = &plan.placement_metadata {
        api_in(client, &scope.placement(), plan.namespace.as_deref())
            .patch(
                &plan.placement_name,
                &PatchParams::default(),
                &Patch::Merge(m),
            )
            .await
            .map_err(|e| Error::from(e).concerning("the placement's failover record"))?;
    }
    let binding_api = api_in(client, &scope.binding(), plan.namespace.as_deref());
    for name in &plan.delete_bindings {
        done_unless_failed(binding_api.delete(name, &DeleteParams::background()).await)
            .map_err(|e| e.concerning(format!("binding {name}")))?;
    }
    for name in &plan.unschedule_bindings {
        let p = json!({"spec": {"state": "Unscheduled"}});
        done_unless_failed(
            binding_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&p))
                .await,
        )
        .map_err(|e| e.concerning(format!("binding {name}")))?;
    }
    for (ns, name) in &plan.delete_works {
        let works = api_in(client, &work_resource(), Some(ns));
        done_unless_failed(works.delete(name, &DeleteParams::background()).await)
            .map_err(|e| e.concerning(format!("Work {ns}/{name}")))?;
    }
    let binding_api = &binding_api;
    // A loop, not a closure over the clusters: the futures must be Send for any lifetime.
    let mut jobs = Vec::with_capacity(plan.clusters.len());
    for c in &plan.clusters {
        jobs.push(async move {
            let of_binding = |e: Error| e.concerning(format!("binding {}", c.binding_name));
            let binding = write_binding(binding_api, c).await.map_err(of_binding)?;
            let work = write_work(client, scope, c, &binding)
                .await
                .map_err(|e| e.concerning(format!("Work {}/{}", c.work_namespace, c.work_name)))?;
            let (status, written) = settle_binding(
                binding_api,
                &binding,
                work.as_deref(),
                Decided {
                    overridden: c.overridden.as_deref(),
                    rollout: c.rollout,
                    unreachable: c.unreachable.as_deref(),
                },
                generation,
                now,
            )
            .await
            .map_err(of_binding)?;
            Ok::<_, Error>(Settled {
                cluster: c.cluster.clone(),
                status,
                written,
            })
        });
    }
    futures::stream::iter(jobs)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The binding as it is after the write (a kept one is shared with the cache, not copied).
async fn write_binding(
    api: &Api<DynamicObject>,
    c: &ClusterPlan,
) -> Result<Arc<DynamicObject>, Error> {
    Ok(match &c.binding {
        Write::Keep(b) => b.clone(),
        Write::Patch(p) => Arc::new(
            api.patch(&c.binding_name, &PatchParams::default(), &Patch::Merge(p))
                .await?,
        ),
        Write::Create(obj) => Arc::new(
            api.create(
                &PostParams::default(),
                &serde_json::from_value(obj.clone())?,
            )
            .await?,
        ),
    })
}

/// The Work as it is after the write; `None` when the member's namespace is gone (it is
/// leaving): nothing to send.
async fn write_work(
    client: &kube::Client,
    scope: Scope,
    c: &ClusterPlan,
    binding: &DynamicObject,
) -> Result<Option<Arc<DynamicObject>>, Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &c.work_namespace, &work_resource());
    Ok(match &c.work {
        WorkWrite::Keep(w) => Some(w.clone()),
        WorkWrite::Hold(w) => w.clone(),
        WorkWrite::Patch(p) => Some(Arc::new(
            api.patch(&c.work_name, &PatchParams::default(), &Patch::Merge(p))
                .await?,
        )),
        WorkWrite::Create {
            object,
            owned_by_binding,
        } => {
            let mut object = object.clone();
            if *owned_by_binding {
                let ar = scope.binding();
                object["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": ar.api_version, "kind": ar.kind, "name": binding.name_any(),
                    "uid": binding.metadata.uid.clone().unwrap_or_default(),
                    "blockOwnerDeletion": true, "controller": true}]);
            }
            match api
                .create(&PostParams::default(), &serde_json::from_value(object)?)
                .await
            {
                Ok(w) => Some(Arc::new(w)),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => None,
                Err(e) => return Err(e.into()),
            }
        }
    })
}

/// Computes a binding's status from its Work and writes it when it changed
/// ([`binding_status_changed`]); returns it, and the binding's resourceVersion after the
/// write when there was one.
pub async fn settle_binding(
    api: &Api<DynamicObject>,
    binding: &DynamicObject,
    work: Option<&DynamicObject>,
    decided: Decided<'_>,
    generation: i64,
    now: &str,
) -> Result<(Value, Option<u64>), Error> {
    let status = binding_status(binding, work, decided, generation, now);
    let mut written = None;
    if binding_status_changed(&binding.data["status"], &status) {
        let patch = replacing(&binding.data["status"], &status);
        // Written only over the version it was worked out from: conditions carry their
        // transition times over from it, and a stale copy (a cache behind) would move them
        // on every write. A newer binding answers 409, and the pass runs again.
        let after = api
            .patch_status(
                &binding.name_any(),
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"metadata": {"resourceVersion": binding.metadata.resource_version},
                    "status": patch}),
                ),
            )
            .await?;
        written = Some(version(&after));
    }
    Ok((status, written))
}

/// An object's resourceVersion as a number (both stores count up; 0 when it is not one).
pub fn version(o: &DynamicObject) -> u64 {
    o.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::status::Rollout;

    /// A binding status worked out from a copy older than the stored binding is not written
    /// (its conditions' transition times would be moved on by a stale copy): 409, and the
    /// binding stays as it was; worked out from the latest copy, it is written.
    #[tokio::test]
    async fn a_binding_status_is_written_only_over_the_version_it_came_from() {
        let store = flotilla_store::Store::open(
            flotilla_store::MemoryBackend,
            flotilla_store::StoreConfig::default(),
        )
        .unwrap();
        let server = flotilla_apiserver::ApiServer::new(store, Default::default());
        server.start().await.unwrap();
        crate::install::install(&server).await.unwrap();
        let api: Api<DynamicObject> = Api::all_with(server.client(), &Scope::Cluster.binding());
        let binding = json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
            "kind": "ClusterResourceBinding", "metadata": {"name": "web-member-1"},
            "spec": {"state": "Bound", "targetCluster": "member-1",
                "resourceSnapshotName": "web-0-snapshot", "schedulingPolicySnapshotName": "web-0",
                "clusterDecision": {"clusterName": "member-1", "selected": true, "reason": "picked"}}});
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(binding).unwrap(),
            )
            .await
            .unwrap();
        let overridden = Default::default();
        let decided = |rollout| Decided {
            overridden: Ok(&overridden),
            rollout,
            unreachable: None,
        };
        let now = "2026-12-07T10:00:00Z";
        // Written from the latest copy.
        let (_, written) = settle_binding(&api, &created, None, decided(Rollout::Started), 1, now)
            .await
            .unwrap();
        let latest = api.get("web-member-1").await.unwrap();
        assert_eq!(written, Some(version(&latest)));
        // The copy it was worked out from is now stale: another status is not written over
        // the newer binding.
        let err = settle_binding(&api, &created, None, decided(Rollout::Blocked), 1, now)
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{err}");
        assert_eq!(api.get("web-member-1").await.unwrap(), latest);
        // From the latest copy it is.
        let (_, written) = settle_binding(&api, &latest, None, decided(Rollout::Blocked), 1, now)
            .await
            .unwrap();
        assert!(written.is_some_and(|v| v > version(&latest)));
    }
}
