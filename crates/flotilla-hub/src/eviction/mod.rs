//! The eviction controller (KubeFleet's `ClusterResourcePlacementEviction`): each eviction is
//! judged once ([`decide`]) and, when allowed, deletes the cluster's binding with a
//! resourceVersion precondition (the binding as judged, or nothing). The disruption budget is
//! read from the API, not a cache, as KubeFleet does: a budget created a moment ago must hold.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use flotilla_api::conditions;
use flotilla_api::placement::eviction::{message, reason};
use flotilla_api::placement::label;
use futures::{FutureExt, StreamExt};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::placement::{
    api_in, cached, cached_with, compact, crp_resource, follow, placement_resource, Scope,
};
use crate::Error;
use decide::Verdict;

struct Ctx {
    client: kube::Client,
    placements: Store<DynamicObject>,
    bindings: Store<DynamicObject>,
}

/// Runs the eviction controller until the future is dropped.
/// `bindings` is the cache of ClusterResourcePlacements' bindings (the placement controller's:
/// [`crate::placement::SharedBindings::reader`]).
pub async fn run(client: kube::Client, bindings: Store<DynamicObject>) {
    let ar = placement_resource(
        "ClusterResourcePlacementEviction",
        "clusterresourceplacementevictions",
    );
    let (evictions, eviction_stream) = cached(&client, ar.clone());
    // The decision reads a placement's metadata and policy, not its status.
    let (placements, placement_stream) =
        cached_with(&client, crp_resource(), compact::without_status);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        placements,
        bindings,
    });
    futures::future::join_all([
        follow(placement_stream),
        Controller::for_stream_with(eviction_stream, evictions, ar)
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {})
            .boxed(),
    ])
    .await;
}

fn error_policy(_: Arc<DynamicObject>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "eviction");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(eviction: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let conds = &eviction.data["status"]["conditions"];
    let generation = eviction.metadata.generation;
    // One-shot: invalid, or judged, is final.
    let invalid = conditions::find(conds, "Valid")
        .is_some_and(|c| c["status"] == "False" && c["observedGeneration"].as_i64() == generation);
    if invalid || conditions::find(conds, "Executed").is_some() {
        return Ok(Action::await_change());
    }
    for s in [&ctx.placements, &ctx.bindings] {
        if s.wait_until_ready().now_or_never().is_none() {
            return Err(Error::Loading("the eviction caches".into()));
        }
    }
    let name = eviction.name_any();
    let placement_name = eviction.data["spec"]["placementName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let cluster = eviction.data["spec"]["clusterName"].as_str().unwrap_or("");
    let placement = ctx
        .placements
        .get(&ObjectRef::new_with(&placement_name, crp_resource()))
        .map(|p| serde_json::to_value(p.as_ref()))
        .transpose()?;
    let bindings: Vec<Value> = ctx
        .bindings
        .state_filter(|b| b.labels().get(label::PARENT_CRP) == Some(&placement_name))
        .iter()
        .map(|b| serde_json::to_value(b.as_ref()))
        .collect::<Result<_, _>>()?;
    let budget = api_in(
        &ctx.client,
        &placement_resource(
            "ClusterResourcePlacementDisruptionBudget",
            "clusterresourceplacementdisruptionbudgets",
        ),
        None,
    )
    .get_opt(&placement_name)
    .await?
    .map(serde_json::to_value)
    .transpose()?;
    let verdict = decide::decide(placement.as_ref(), &bindings, cluster, budget.as_ref());
    let now = conditions::timestamp(chrono::Utc::now());
    let mut conds = conds.clone();
    let mut set = |ty: &str, status: &str, reason: &str, msg: &str| {
        conditions::set_status(&mut conds, ty, status, reason, msg, generation, &now);
    };
    match &verdict {
        Verdict::Invalid(why) => set("Valid", "False", reason::INVALID, why),
        Verdict::NotExecuted(why) => {
            set("Valid", "True", reason::VALID, message::VALID);
            set("Executed", "False", reason::NOT_EXECUTED, why);
        }
        Verdict::Executed {
            message: why,
            delete,
        } => {
            if let Some((binding, rv)) = delete {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: Some(rv.clone()),
                        uid: None,
                    }),
                    ..DeleteParams::background()
                };
                match api_in(&ctx.client, &Scope::Cluster.binding(), None)
                    .delete(binding, &dp)
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    // Changed since it was judged: judge it again.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        return Ok(Action::requeue(Duration::from_millis(200)))
                    }
                    Err(e) => return Err(Error::from(e).concerning(format!("binding {binding}"))),
                }
            }
            set("Valid", "True", reason::VALID, message::VALID);
            set("Executed", "True", reason::EXECUTED, why);
        }
    }
    tracing::info!(eviction = %name, cluster, placement = %placement_name, ?verdict, "eviction judged");
    api_in(
        &ctx.client,
        &placement_resource(
            "ClusterResourcePlacementEviction",
            "clusterresourceplacementevictions",
        ),
        None,
    )
    .patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"conditions": conds}})),
    )
    .await
    .map_err(|e| Error::from(e).concerning(format!("eviction {name}")))?;
    Ok(Action::await_change())
}
