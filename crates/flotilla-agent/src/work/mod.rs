//! The work applier: follows the Works in the member's namespace on the hub and makes the
//! member cluster hold what they say.
//!
//! For each Work, an AppliedWork of the same name in the member records what was applied, and
//! every applied object has the AppliedWork as an owner: deleting the AppliedWork (when its
//! Work is gone from the hub) lets the member's own garbage collector remove the objects;
//! objects that leave a Work are deleted by the agent. Manifests are applied in dependency
//! order ([`flotilla_api::manifests::rank_of`]); the contract with the hub (strategies, identifiers,
//! reasons) is [`flotilla_api::work`].
//!
//! Apply strategies: `ServerSideApply` is a server-side apply by the agent's field manager
//! (`force` as configured; a conflict fails the manifest); `ClientSideApply` is carried out as
//! a forced server-side apply, which has the outcome of kubectl's three-way merge (the placed
//! fields win, fields dropped from the placement are removed, fields others set stay);
//! `ReportDiff` applies nothing and reports how the member's object differs. `whenToTakeOver`
//! governs objects that exist in the member without being the fleet's; `whenToApply:
//! IfNotDrifted` stops applying over member-side changes and reports them as drift.
//! Comparisons look at the fields the manifest sets (`PartialComparison`) or at every field of
//! the object's spec and data (`FullComparison`).
//!
//! `apply.rs` applies one manifest, `janitor.rs` cleans up after Works gone from the hub,
//! `install.rs` installs the AppliedWork CRD in the member.

mod apply;
mod install;
mod janitor;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::conditions;

use crate::backoff::{failure_of, Backoff, Failure};
use crate::kinds::Kinds;
use flotilla_api::manifests::rank_of;
use flotilla_api::placement::annotation::DELETE_STRATEGY;
use flotilla_api::placement::cluster_condition as cc;
use flotilla_api::work::{
    applied_work_resource, manifests_of, work_resource, ApplyStrategy, ComparisonOption,
    DeleteStrategy, ManifestReason, WhenToApply, WorkReason,
};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::Error;

pub use apply::compare;
use apply::*;
pub use install::install_applied_work;
use janitor::*;

/// The agent's field manager in member clusters.
pub const FIELD_MANAGER: &str = "work-api-agent";

struct Ctx {
    hub: kube::Client,
    member: kube::Client,
    kinds: Kinds,
    /// When each Work's status was last written (namespace/name).
    status_written: parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Each Work's waits before it is looked at again (namespace/name).
    waits: parking_lot::Mutex<std::collections::HashMap<String, Waits>>,
}

/// How long a Work waits before it is looked at again, by why: after an error (200 ms doubling
/// to 60 s), while some manifest fails to apply (5 s doubling to 5 min), while an applied
/// object is not yet available (250 ms doubling to 10 s); all jittered by ±20%. A new
/// generation of the Work starts them afresh.
struct Waits {
    generation: i64,
    touched: std::time::Instant,
    errors: Backoff,
    failed: Backoff,
    pending: Backoff,
    settled: Backoff,
}

impl Waits {
    fn new(generation: i64) -> Self {
        let ms = Duration::from_millis;
        Self {
            generation,
            touched: std::time::Instant::now(),
            errors: Backoff::new(ms(200), Duration::from_secs(60), 0.2),
            failed: Backoff::new(Duration::from_secs(5), Duration::from_secs(300), 0.2),
            pending: pending_backoff(),
            settled: settled_backoff(),
        }
    }
}

impl Ctx {
    /// Runs `f` on the waits of Work `key` at `generation` (made afresh for a new generation).
    fn with_waits<T>(&self, key: &str, generation: i64, f: impl FnOnce(&mut Waits) -> T) -> T {
        let mut all = self.waits.lock();
        if all.len() > 4096 {
            // Works that are gone are not looked at again: forget them after a while.
            all.retain(|_, w| w.touched.elapsed() < Duration::from_secs(600));
        }
        let w = all
            .entry(key.to_string())
            .or_insert_with(|| Waits::new(generation));
        if w.generation != generation {
            *w = Waits::new(generation);
        }
        w.touched = std::time::Instant::now();
        f(w)
    }
}

/// How often a Work that is applied but not yet available is looked at again: at 250 ms, then
/// half as long again each time (14 s at the 11th look, some 30 s after it was applied), up to
/// 15 min, as KubeFleet's work applier backs off from such a Work (5 s, then 2 s growing by 1.2
/// to 15 s, then by 1.5 to 15 min). The workloads whose availability comes from their
/// controllers are watched (`availability_triggers`): a change to one brings its Work up at
/// once, so these looks are the fallback. Looking every 10 s forever, 100,000 Works waiting at
/// once (the fleet benchmark's headline) asked 10,000 looks a second of the simulated fleet,
/// which then had no time left to make them available (docs/BENCHMARKS.md, fleet scale).
fn pending_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(250), Duration::from_secs(900), 0.2).growing_by(1.5)
}

/// How often a Work that is applied and available (or whose differences are reported) and
/// whose status did not change is looked at again (for drift): KubeFleet's work applier's
/// defaults for such Works, which skip to its fast backoff stage: 15 s, then half as long again
/// each time, up to 15 min (`--work-applier-requeue-rate-limiter-max-slow-backoff-delay-seconds`
/// 15, `-exponential-base-for-fast-backoff` 1.5, `-max-fast-backoff-delay-seconds` 900). Any
/// change of its status starts it again at 15 s. Workloads whose status the agent judges are
/// watched besides, so a change to one brings its Work up at once. A fixed 30 s made an agent
/// of a member with 100 Works, or a simulated fleet of 100,000, look at each of them twice a
/// minute forever (docs/BENCHMARKS.md, fleet scale).
fn settled_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(15), Duration::from_secs(900), 0.2).growing_by(1.5)
}

/// A Work status whose conditions changed only in their messages (progress such as "0 of 1
/// replicas available") is written at most this often; a change of state at once.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the AppliedWork CRD in the member (or brings an older one up to date), then
/// applies Works until dropped. Also removes what Works deleted from the hub had applied.
pub async fn run(name: String, hub: kube::Client, member: kube::Client) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 0.2);
    loop {
        match install_applied_work(&member, Duration::from_secs(60)).await {
            Ok(()) => break,
            Err(e) => {
                let wait = backoff.fail(match &e {
                    Error::Kube(k) => failure_of(k),
                    _ => Failure::Other,
                });
                tracing::warn!(error = %e, retry_in = ?wait, "installing the AppliedWork CRD in the member failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
    let ns = flotilla_api::member::namespace_of(&name);
    let works: Api<DynamicObject> = Api::namespaced_with(hub.clone(), &ns, &work_resource());
    let ctx = Arc::new(Ctx {
        status_written: Default::default(),
        waits: Default::default(),
        hub,
        member: member.clone(),
        kinds: Kinds::default(),
    });
    // One watch of the Works feeds the controller's store and triggers, and the janitor (the
    // same store, and a wake-up on each deletion).
    let writer = reflector::store::Writer::new(work_resource());
    let seen = writer.as_reader();
    let gone = Arc::new(tokio::sync::Notify::new());
    let trigger = {
        let gone = gone.clone();
        watcher(works.clone(), watcher::Config::default())
            .default_backoff()
            // Nothing reads a Work's managedFields: the hub's and the agent's own entries,
            // decoded, were about a third of the cached Work.
            .modify(|w| {
                w.metadata.managed_fields = None;
                pack_manifests(w);
            })
            .reflect(writer)
            .inspect(move |ev| {
                if matches!(ev, Ok(watcher::Event::Delete(_))) {
                    gone.notify_one();
                }
            })
            .applied_objects()
    };
    let mut controller = Controller::for_stream_with(trigger, seen.clone(), work_resource());
    // A workload the agent applied that changes in the member (its controller made progress)
    // has its Work looked at at once, not at the next poll of a pending availability.
    for ar in availability_triggers() {
        let api: Api<DynamicObject> = Api::all_with(member.clone(), &ar);
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .touched_objects();
        let ns = ns.clone();
        controller = controller.watches_stream_with(stream, move |o| owning_work(&o, &ns), ar);
    }
    let controller = controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    tokio::select! {
        _ = controller => {}
        _ = janitor(member, works, &ns, seen, gone) => {}
    }
}

/// The kinds whose availability comes from a status their controller in the member updates
/// ([`flotilla_api::manifests::availability`]): watched, to look at their Works when they
/// change.
fn availability_triggers() -> Vec<kube::core::ApiResource> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch};
    use kube::core::ApiResource;
    vec![
        ApiResource::erase::<apps::Deployment>(&()),
        ApiResource::erase::<apps::StatefulSet>(&()),
        ApiResource::erase::<apps::DaemonSet>(&()),
        ApiResource::erase::<batch::Job>(&()),
    ]
}

/// The Work (in the hub namespace `ns`) whose AppliedWork owns `o`, if one does: an
/// AppliedWork is named after its Work.
fn owning_work(o: &DynamicObject, ns: &str) -> Option<reflector::ObjectRef<DynamicObject>> {
    o.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.kind == "AppliedWork" && r.api_version == applied_work_resource().api_version)
        .map(|r| reflector::ObjectRef::new_with(&r.name, work_resource()).within(ns))
}

fn error_policy(work: Arc<DynamicObject>, e: &Error, ctx: Arc<Ctx>) -> Action {
    let failure = match e {
        Error::Kube(k) => failure_of(k),
        _ => Failure::Other,
    };
    let key = format!(
        "{}/{}",
        work.namespace().unwrap_or_default(),
        work.name_any()
    );
    let generation = work.metadata.generation.unwrap_or(0);
    let wait = ctx.with_waits(&key, generation, |w| w.errors.fail(failure));
    match e {
        // Another writer moved the object on (a status patch raced): retry soon, quietly.
        Error::Kube(kube::Error::Api(s)) if s.code == 409 => {}
        _ => {
            tracing::warn!(work = %work.name_any(), error = %e, retry_in = ?wait, "applying the Work failed; retrying");
        }
    }
    Action::requeue(wait)
}

async fn reconcile(work: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if work.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = work.name_any();
    let generation = work.metadata.generation.unwrap_or(0);
    let strategy = &work.data["spec"]["applyStrategy"];
    let s = ApplyStrategy::of_work(strategy);
    let report_only = s.report_only();
    let full = s.comparison == ComparisonOption::FullComparison;
    let if_not_drifted = s.when_to_apply == WhenToApply::IfNotDrifted;
    let take_over = s.when_to_take_over;
    let force = s.forces();

    // The AppliedWork: owner of everything applied for this Work.
    let aw_api: Api<DynamicObject> = Api::all_with(ctx.member.clone(), &applied_work_resource());
    // The strategy is recorded on the AppliedWork, so that another placement's Work meeting
    // the same object can tell whether they agree on how to apply it.
    let strategy_text = strategy.to_string();
    let delete_strategy = DeleteStrategy::of_annotations(work.annotations())
        .as_str()
        .to_string();
    let applied_work = match aw_api.get_opt(&name).await? {
        Some(a)
            if a.annotations().get(APPLY_STRATEGY_ANNOTATION) == Some(&strategy_text)
                && a.annotations().get(DELETE_STRATEGY) == Some(&delete_strategy) =>
        {
            a
        }
        Some(_) => {
            let p = json!({"metadata": {"annotations": {APPLY_STRATEGY_ANNOTATION: strategy_text,
                DELETE_STRATEGY: delete_strategy}}});
            aw_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
                .await?
        }
        None => {
            let obj = json!({"apiVersion": applied_work_resource().api_version, "kind": "AppliedWork",
                "metadata": {"name": name, "annotations": {APPLY_STRATEGY_ANNOTATION: strategy_text,
                    DELETE_STRATEGY: delete_strategy}},
                "spec": {"workName": name, "workNamespace": work.namespace().unwrap_or_default()}});
            aw_api
                .create(&PostParams::default(), &serde_json::from_value(obj)?)
                .await?
        }
    };
    let aw_uid = applied_work.metadata.uid.clone().unwrap_or_default();
    let owner = json!({"apiVersion": applied_work_resource().api_version, "kind": "AppliedWork",
        "name": name, "uid": aw_uid, "blockOwnerDeletion": false});

    let mut manifests = unpacked_manifests(&work)?;
    manifests.sort_by_key(|(_, m)| rank_of(m));
    // What each object was last applied from: an object whose manifest is unchanged and that
    // shows no difference in the member is not applied again.
    let applied_hashes: BTreeMap<(String, String, String), String> = applied_work.data["status"]
        ["appliedResources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                (
                    r["kind"].to_string(),
                    r["namespace"].to_string(),
                    r["name"].to_string(),
                ),
                r["manifestHash"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut outcomes = Vec::new();
    for (ordinal, m) in manifests {
        outcomes.push(
            apply_one(
                &ctx,
                ordinal,
                &m,
                &owner,
                &aw_uid,
                &strategy_text,
                applied_hashes
                    .get(&(
                        m["kind"].to_string(),
                        m["metadata"]["namespace"].to_string(),
                        m["metadata"]["name"].to_string(),
                    ))
                    .map(String::as_str),
                report_only,
                full,
                if_not_drifted,
                take_over,
                force,
            )
            .await,
        );
    }

    // Objects that left the Work go (if still the fleet's). ReportDiff changes nothing.
    let now_applied: Vec<Value> = if report_only {
        applied_work.data["status"]["appliedResources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    } else {
        outcomes
            .iter()
            .filter_map(|o| o.applied_ref.clone())
            .collect()
    };
    let key = |r: &Value| {
        (
            r["group"].to_string(),
            r["kind"].to_string(),
            r["namespace"].to_string(),
            r["name"].to_string(),
        )
    };
    let keep: BTreeSet<_> = now_applied.iter().map(key).collect();
    for old in applied_work.data["status"]["appliedResources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if keep.contains(&key(old)) {
            continue;
        }
        let api_version = api_version_of(old);
        if let Ok((ar, namespaced)) = ctx
            .kinds
            .resolve(
                &ctx.member,
                &api_version,
                old["kind"].as_str().unwrap_or(""),
            )
            .await
        {
            let api: Api<DynamicObject> = match (namespaced, old["namespace"].as_str()) {
                (true, Some(ns)) => Api::namespaced_with(ctx.member.clone(), ns, &ar),
                _ => Api::all_with(ctx.member.clone(), &ar),
            };
            let oname = old["name"].as_str().unwrap_or("");
            if let Ok(Some(live)) = api.get_opt(oname).await {
                let live = serde_json::to_value(&live)?;
                if owned_by(&live, &aw_uid) {
                    if DeleteStrategy::of_annotations(applied_work.annotations())
                        == DeleteStrategy::Abandon
                    {
                        tracing::info!(object = oname, kind = %old["kind"], "no longer placed; left in place (deleteStrategy Abandon)");
                        let _ = disown(&api, oname, &live, &aw_uid).await;
                    } else {
                        tracing::info!(object = oname, kind = %old["kind"], "no longer placed; deleting it");
                        let _ = api.delete(oname, &DeleteParams::background()).await;
                    }
                }
            }
        }
    }
    if applied_work.data["status"]["appliedResources"] != json!(now_applied) {
        aw_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"appliedResources": now_applied}})),
            )
            .await?;
    }

    // The Work's status, as of now.
    let now = conditions::timestamp(chrono::Utc::now());
    // Each manifest's previous entry: its conditions keep their transition times and its drift
    // and diff reports their first-observed times, so an unchanged outcome writes nothing.
    let key = |id: &Value| {
        (
            id["group"].to_string(),
            id["kind"].to_string(),
            id["namespace"].to_string(),
            id["name"].to_string(),
        )
    };
    let previous: BTreeMap<_, &Value> = work.data["status"]["manifestConditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (key(&m["identifier"]), m))
        .collect();
    let mut manifest_conditions = Vec::new();
    let (mut all_applied, mut all_available, mut pending) = (true, true, false);
    for o in &outcomes {
        let prev = previous.get(&key(&o.identifier));
        let mut conds = prev.map_or(json!([]), |p| p["conditions"].clone());
        let (ok, reason, msg) = &o.applied;
        conditions::set(
            &mut conds,
            cc::APPLIED,
            *ok,
            reason.as_str(),
            msg,
            Some(generation),
            &now,
        );
        all_applied &= *ok;
        match &o.available {
            Some((ok, reason, msg)) => {
                conditions::set(
                    &mut conds,
                    cc::AVAILABLE,
                    *ok,
                    reason.as_str(),
                    msg,
                    Some(generation),
                    &now,
                );
                all_available &= *ok;
                pending |= !*ok;
            }
            None => {
                all_available = false;
                if let Some(list) = conds.as_array_mut() {
                    list.retain(|c| c["type"] != cc::AVAILABLE);
                }
            }
        }
        let mut mc = json!({"identifier": o.identifier, "conditions": conds});
        for (field, details, first) in [
            ("driftDetails", &o.drift, "firstDriftedObservedTime"),
            ("diffDetails", &o.diff, "firstDiffedObservedTime"),
        ] {
            if let Some(d) = details {
                let mut d = d.clone();
                if let Some(t) = prev.and_then(|p| p[field].get(first)) {
                    d[first] = t.clone();
                }
                mc[field] = d;
            }
        }
        manifest_conditions.push(mc);
    }
    let mut wconds = work.data["status"]["conditions"].clone();
    let n = outcomes.len();
    if report_only {
        let diffs = outcomes.iter().filter(|o| o.diff.is_some()).count();
        conditions::set(
            &mut wconds,
            cc::DIFF_REPORTED,
            true,
            WorkReason::DiffReported.as_str(),
            &format!("{diffs} of {n} objects differ"),
            Some(generation),
            &now,
        );
        conditions::set(
            &mut wconds,
            cc::APPLIED,
            true,
            WorkReason::ReportDiffMode.as_str(),
            "ReportDiff: nothing is applied",
            Some(generation),
            &now,
        );
        conditions::set(
            &mut wconds,
            cc::AVAILABLE,
            true,
            WorkReason::ReportDiffMode.as_str(),
            "ReportDiff: nothing is applied",
            Some(generation),
            &now,
        );
    } else {
        let applied = outcomes.iter().filter(|o| o.applied.0).count();
        conditions::set(
            &mut wconds,
            cc::APPLIED,
            all_applied,
            if all_applied {
                WorkReason::WorkAppliedCompleted.as_str()
            } else {
                WorkReason::WorkNotAllManifestsApplied.as_str()
            },
            &format!("{applied} of {n} objects applied"),
            Some(generation),
            &now,
        );
        let available = outcomes
            .iter()
            .filter(|o| o.available.as_ref().is_some_and(|a| a.0))
            .count();
        // Kinds without a status to judge are available once applied: the hub's rollout
        // then waits its unavailable period before it counts the cluster ready.
        let untracked = outcomes.iter().any(|o| {
            o.available
                .as_ref()
                .is_some_and(|a| a.1 == ManifestReason::ManifestNotTrackable)
        });
        conditions::set(
            &mut wconds,
            cc::AVAILABLE,
            all_applied && all_available,
            match (all_applied && all_available, untracked) {
                (true, false) => WorkReason::WorkAvailable.as_str(),
                (true, true) => WorkReason::WorkNotAllManifestsTrackable.as_str(),
                (false, _) => WorkReason::WorkNotAllManifestsAvailable.as_str(),
            },
            &format!("{available} of {n} objects available"),
            Some(generation),
            &now,
        );
    }
    let status = json!({"conditions": wconds, "manifestConditions": manifest_conditions});
    let mut deferred = false;
    let unchanged = work.data["status"] == status;
    if !unchanged {
        let key = format!("{}/{name}", work.namespace().unwrap_or_default());
        let state_changed = conditions::without_messages(&work.data["status"])
            != conditions::without_messages(&status);
        let recent = ctx
            .status_written
            .lock()
            .get(&key)
            .is_some_and(|t| t.elapsed() < PROGRESS_INTERVAL);
        if state_changed || !recent {
            let works: Api<DynamicObject> = Api::namespaced_with(
                ctx.hub.clone(),
                &work.namespace().unwrap_or_default(),
                &work_resource(),
            );
            works
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": status})),
                )
                .await?;
            let mut written = ctx.status_written.lock();
            if written.len() > 4096 {
                written.retain(|_, t| t.elapsed() < PROGRESS_INTERVAL);
            }
            written.insert(key, std::time::Instant::now());
        } else {
            deferred = true;
        }
    }
    // Not yet available: look again soon, then less often; failed: retry with backoff;
    // otherwise re-check for drift now and then (sooner when progress waits to be written).
    let key = format!("{}/{name}", work.namespace().unwrap_or_default());
    Ok(ctx.with_waits(&key, generation, |w| {
        w.errors.reset();
        if all_applied {
            w.failed.reset();
        }
        if !pending {
            w.pending.reset();
        }
        if !unchanged {
            w.settled.reset();
        }
        if deferred && all_applied && !pending {
            Action::requeue(PROGRESS_INTERVAL)
        } else if !all_applied {
            Action::requeue(w.failed.fail(Failure::Other))
        } else if pending {
            Action::requeue(w.pending.fail(Failure::Other))
        } else {
            Action::requeue(w.settled.fail(Failure::Other))
        }
    }))
}

/// Keeps a cached Work's manifests as their JSON text, read again when the Work is applied
/// ([`unpacked_manifests`]). Decoded, the manifests were most of the agent's memory: a decoded
/// JSON value takes several times its text, and an agent keeps every Work of its member
/// (docs/BENCHMARKS.md, fleet scale).
fn pack_manifests(w: &mut DynamicObject) {
    let manifests = w
        .data
        .get_mut("spec")
        .and_then(|s| s.get_mut("workload"))
        .and_then(|w| w.get_mut("manifests"));
    if let Some(m) = manifests.filter(|m| m.is_array()) {
        *m = Value::String(m.to_string());
    }
}

/// The manifests of a Work, numbered in order, whether its cache packed them or not.
fn unpacked_manifests(work: &DynamicObject) -> Result<Vec<(usize, Value)>, Error> {
    match &work.data["spec"]["workload"]["manifests"] {
        Value::String(text) => {
            let list: Vec<Value> = serde_json::from_str(text)?;
            Ok(list.into_iter().enumerate().collect())
        }
        _ => Ok(manifests_of(&work.data["spec"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_work_is_looked_at_soon_then_less_and_less_often() {
        let mut b = pending_backoff();
        assert!(b.fail(Failure::Other) <= Duration::from_millis(300));
        let mut total = Duration::ZERO;
        let mut waits = Vec::new();
        for _ in 0..10 {
            let w = b.fail(Failure::Other);
            total += w;
            waits.push(w);
        }
        // Soon at first: ten more looks within the first minute, the last under 30 s apart.
        assert!(total < Duration::from_secs(60), "{waits:?}");
        assert!(*waits.last().unwrap() < Duration::from_secs(30));
        for _ in 0..20 {
            b.fail(Failure::Other);
        }
        let late = b.fail(Failure::Other);
        assert!(late >= Duration::from_secs(720) && late <= Duration::from_secs(900));
    }

    #[test]
    fn a_settled_work_is_looked_at_less_and_less_often_up_to_fifteen_minutes() {
        let mut b = settled_backoff();
        let first = b.fail(Failure::Other);
        assert!(first >= Duration::from_secs(12) && first <= Duration::from_secs(18));
        let waits: Vec<Duration> = (0..20).map(|_| b.fail(Failure::Other)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(900)));
        assert!(*waits.last().unwrap() >= Duration::from_secs(720));
        b.reset();
        assert!(b.fail(Failure::Other) <= Duration::from_secs(18));
    }

    #[test]
    fn a_cached_work_keeps_its_manifests_as_text_and_gives_them_back_in_order() {
        let manifests = json!([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "a"},
                "data": {"k": "v"}}]);
        let mut w: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "Work",
            "metadata": {"name": "w", "namespace": "fleet-member-m"},
            "spec": {"workload": {"manifests": manifests.clone()},
                "applyStrategy": {"type": "ClientSideApply"}}}))
        .unwrap();
        let unpacked = unpacked_manifests(&w).unwrap();
        pack_manifests(&mut w);
        assert!(w.data["spec"]["workload"]["manifests"].is_string());
        assert_eq!(w.data["spec"]["applyStrategy"]["type"], "ClientSideApply");
        assert_eq!(unpacked_manifests(&w).unwrap(), unpacked);
        assert_eq!(unpacked[1], (1, manifests[1].clone()));
        // Packed twice is packed once; a Work without manifests has none.
        pack_manifests(&mut w);
        assert_eq!(unpacked_manifests(&w).unwrap(), unpacked);
        let mut empty: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "Work",
            "metadata": {"name": "e"}, "spec": {}}))
        .unwrap();
        pack_manifests(&mut empty);
        assert_eq!(unpacked_manifests(&empty).unwrap(), vec![]);
        assert_eq!(empty.data["spec"], json!({}));
    }

    #[test]
    fn a_workload_leads_to_the_work_whose_applied_work_owns_it() {
        let owned = |refs: Value| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "app", "ownerReferences": refs}}))
            .unwrap()
        };
        let aw = applied_work_resource().api_version;
        let o = owned(json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "1"},
            {"apiVersion": aw, "kind": "AppliedWork", "name": "crp-work", "uid": "2"}]));
        let r = owning_work(&o, "fleet-member-a").unwrap();
        assert_eq!(
            (r.name.as_str(), r.namespace.as_deref()),
            ("crp-work", Some("fleet-member-a"))
        );
        // Owned by something else (or another group's AppliedWork), or by nothing: no Work.
        let other = owned(
            json!([{"apiVersion": "example.com/v1", "kind": "AppliedWork", "name": "w", "uid": "3"}]),
        );
        assert!(owning_work(&other, "fleet-member-a").is_none());
        let mut none = owned(json!([]));
        none.metadata.owner_references = None;
        assert!(owning_work(&none, "fleet-member-a").is_none());
    }
}
