//! What happens to a Work's objects once the Work is gone from the hub: the AppliedWork is
//! deleted (the member's garbage collector removes what it owns), or, with deleteStrategy
//! Abandon, the objects are disowned first and stay.

use std::sync::Arc;
use std::time::Duration;

use crate::kinds::Kinds;
use flotilla_api::work::{applied_work_resource, work_resource, DeleteStrategy};
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::Value;

use super::*;

/// The apiVersion of a recorded resource (group and version).
pub(super) fn api_version_of(r: &Value) -> String {
    let version = r["version"].as_str().unwrap_or("");
    match r["group"].as_str().unwrap_or("") {
        "" => version.to_string(),
        g => format!("{g}/{version}"),
    }
}

/// Takes the AppliedWork `a` off the owners of everything it applied, so that deleting it
/// leaves the objects (deleteStrategy Abandon).
pub(super) async fn abandon(member: &kube::Client, a: &DynamicObject) {
    let uid = a.metadata.uid.clone().unwrap_or_default();
    let kinds = Kinds::default();
    for r in a.data["status"]["appliedResources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let api_version = api_version_of(r);
        let Ok((ar, namespaced)) = kinds
            .resolve(member, &api_version, r["kind"].as_str().unwrap_or(""))
            .await
        else {
            continue;
        };
        let api: Api<DynamicObject> = match (namespaced, r["namespace"].as_str()) {
            (true, Some(ns)) => Api::namespaced_with(member.clone(), ns, &ar),
            _ => Api::all_with(member.clone(), &ar),
        };
        let name = r["name"].as_str().unwrap_or("");
        if let Ok(Some(live)) = api.get_opt(name).await {
            if let Ok(live) = serde_json::to_value(&live) {
                let _ = disown(&api, name, &live, &uid).await;
            }
        }
    }
}

/// Deletes AppliedWorks whose Work is gone from the hub (the member's garbage collector then
/// removes the objects they own). Reads the Works from the applier's shared watch (`seen`): it
/// acts only once that watch has listed them all, so a Work is never taken for gone before it
/// is seen; it looks every 2 s, and at once when the watch reports a deletion (`gone`). The
/// member's AppliedWorks come from a watch of their metadata (what is looked at: name,
/// deletion, the delete strategy's annotation), not a LIST of every AppliedWork with its
/// status every 2 s, which was a tenth of a simulated fleet's CPU at 100 Works per member and
/// as much load on a real member's API server.
pub(super) async fn janitor(
    member: kube::Client,
    works: Api<DynamicObject>,
    ns: &str,
    seen: Store<DynamicObject>,
    gone: Arc<tokio::sync::Notify>,
) {
    let aw: Api<DynamicObject> = Api::all_with(member.clone(), &applied_work_resource());
    let writer =
        reflector::store::Writer::<PartialObjectMeta<DynamicObject>>::new(applied_work_resource());
    let applied = writer.as_reader();
    let metadata: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(member.clone(), &applied_work_resource());
    let follow = watcher(metadata, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|ev| {
            if let Err(e) = ev {
                tracing::warn!(error = %e, "watching AppliedWorks in the member failed; retrying");
            }
            async {}
        });
    tokio::select! {
        _ = follow => {}
        _ = collect(&member, &aw, &works, ns, &seen, &applied, &gone) => {}
    }
}

/// The janitor's loop: what [`janitor`] does with the caches it keeps.
async fn collect(
    member: &kube::Client,
    aw: &Api<DynamicObject>,
    works: &Api<DynamicObject>,
    ns: &str,
    seen: &Store<DynamicObject>,
    applied: &Store<PartialObjectMeta<DynamicObject>>,
    gone: &tokio::sync::Notify,
) {
    if seen.wait_until_ready().await.is_err() || applied.wait_until_ready().await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gone.notified() => {}
        }
        for a in applied.state() {
            let name = a.name_any();
            let work = ObjectRef::new_with(&name, work_resource()).within(ns);
            if seen.get(&work).is_some() || a.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // The watch may not have shown a new Work yet: ask the hub.
            if !matches!(works.get_opt(&name).await, Ok(None)) {
                continue;
            }
            if DeleteStrategy::of_annotations(a.annotations()) == DeleteStrategy::Abandon {
                tracing::info!(work = %name, "the Work is gone from the hub; leaving what it applied (deleteStrategy Abandon)");
                // What it applied is in its status, which the metadata watch leaves out.
                match aw.get_opt(&name).await {
                    Ok(Some(full)) => abandon(member, &full).await,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(work = %name, error = %e, "reading the AppliedWork failed");
                        continue;
                    }
                }
            } else {
                tracing::info!(work = %name, "the Work is gone from the hub; removing what it applied");
            }
            let _ = aw.delete(&name, &DeleteParams::background()).await;
        }
    }
}
