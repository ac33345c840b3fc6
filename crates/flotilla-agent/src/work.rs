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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_api::conditions;

use crate::backoff::{failure_of, Backoff, Failure};
use crate::compare;
use crate::kinds::Kinds;
use flotilla_api::manifests::{availability, rank_of, Availability};
use flotilla_api::placement::annotation::DELETE_STRATEGY;
use flotilla_api::placement::{self, cluster_condition as cc};
use flotilla_api::work::{
    applied_work_resource, identifier, work_resource, ApplyStrategy, ComparisonOption,
    DeleteStrategy, ManifestReason as R, WhenToApply, WhenToTakeOver, WorkReason,
};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::ResourceExt;
use serde_json::{json, Value};

/// The agent's field manager in member clusters.
pub const FIELD_MANAGER: &str = "work-api-agent";

use crate::Error;

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
}

impl Waits {
    fn new(generation: i64) -> Self {
        let ms = Duration::from_millis;
        Self {
            generation,
            touched: std::time::Instant::now(),
            errors: Backoff::new(ms(200), Duration::from_secs(60), 0.2),
            failed: Backoff::new(Duration::from_secs(5), Duration::from_secs(300), 0.2),
            pending: Backoff::new(ms(250), Duration::from_secs(10), 0.2),
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
    let janitor = tokio::spawn(janitor(member, works.clone()));
    let controller = Controller::new_with(works, watcher::Config::default(), work_resource());
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    janitor.abort();
}

/// Annotation on the AppliedWork CRD: a digest of the definition it was installed from.
const DEFINITION_DIGEST: &str = "flotilla.dev/definition-digest";

/// Creates the AppliedWork CRD in the member, or replaces one installed from another
/// definition (an older agent's, or none of ours), and waits until the member serves it
/// (Established) for at most `patience`.
pub async fn install_applied_work(member: &kube::Client, patience: Duration) -> Result<(), Error> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(member.clone(), &ar);
    let mut definition = placement::applied_work();
    let digest = flotilla_api::manifests::content_hash(std::slice::from_ref(&definition));
    definition["metadata"]["annotations"] = json!({DEFINITION_DIGEST: digest});
    let name = definition["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut crd: DynamicObject = serde_json::from_value(definition)?;
    // The member's CRD controller writes the CRD's status as it goes: an update that meets a
    // newer version reads it again.
    for attempt in 1.. {
        let written = match api.get_opt(&name).await? {
            None => api.create(&PostParams::default(), &crd).await.map(drop),
            Some(cur) if cur.annotations().get(DEFINITION_DIGEST) != Some(&digest) => {
                tracing::info!(crd = %name, "updating the AppliedWork CRD in the member to this agent's definition");
                crd.metadata.resource_version = cur.metadata.resource_version.clone();
                api.replace(&name, &PostParams::default(), &crd)
                    .await
                    .map(drop)
            }
            Some(_) => Ok(()),
        };
        match written {
            Ok(()) => break,
            // Another writer (the CRD controller, another agent) was first: look again.
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 10 => {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let cur = api.get(&name).await?;
        let conds = &cur.data["status"]["conditions"];
        if conditions::is_true(conds, "Established") {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let why = conditions::find(conds, "NamesAccepted")
                .filter(|c| c["status"] == "False")
                .map(|c| format!(": {}", c["message"].as_str().unwrap_or("")))
                .unwrap_or_default();
            return Err(Error::Setup(format!(
                "the member has not established the AppliedWork CRD within {patience:?}{why}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The apiVersion of a recorded resource (group and version).
fn api_version_of(r: &Value) -> String {
    let version = r["version"].as_str().unwrap_or("");
    match r["group"].as_str().unwrap_or("") {
        "" => version.to_string(),
        g => format!("{g}/{version}"),
    }
}

/// Takes the AppliedWork `a` off the owners of everything it applied, so that deleting it
/// leaves the objects (deleteStrategy Abandon).
async fn abandon(member: &kube::Client, a: &DynamicObject) {
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
/// removes the objects they own). Follows the hub's Works with its own watch: it acts only
/// once that watch has listed them all, so a Work is never taken for gone before it is seen.
async fn janitor(member: kube::Client, works: Api<DynamicObject>) {
    let aw: Api<DynamicObject> = Api::all_with(member.clone(), &applied_work_resource());
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut listing: BTreeSet<String> = BTreeSet::new();
    let mut ready = false;
    let works_api = works.clone();
    let mut events = watcher(works, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Init)) => listing.clear(),
                Some(Ok(watcher::Event::InitApply(w))) => { listing.insert(w.name_any()); }
                Some(Ok(watcher::Event::InitDone)) => {
                    present = std::mem::take(&mut listing);
                    ready = true;
                }
                Some(Ok(watcher::Event::Apply(w))) => { present.insert(w.name_any()); }
                Some(Ok(watcher::Event::Delete(w))) => {
                    present.remove(&w.name_any());
                    tick.reset_immediately();
                }
                Some(Err(_)) => {}
                None => return,
            },
            _ = tick.tick(), if ready => {
                match aw.list(&Default::default()).await {
                    Ok(list) => {
                        for a in list.items {
                            if present.contains(&a.name_any()) || a.metadata.deletion_timestamp.is_some() {
                                continue;
                            }
                            // The watch may not have shown a new Work yet: ask the hub.
                            if !matches!(works_api.get_opt(&a.name_any()).await, Ok(None)) {
                                continue;
                            }
                            if DeleteStrategy::of_annotations(a.annotations()) == DeleteStrategy::Abandon {
                                tracing::info!(work = %a.name_any(), "the Work is gone from the hub; leaving what it applied (deleteStrategy Abandon)");
                                abandon(&member, &a).await;
                            } else {
                                tracing::info!(work = %a.name_any(), "the Work is gone from the hub; removing what it applied");
                            }
                            let _ = aw.delete(&a.name_any(), &DeleteParams::background()).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "listing AppliedWorks in the member failed"),
                }
            }
        }
    }
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

/// The outcome of one manifest.
struct Outcome {
    identifier: Value,
    applied: (bool, R, String),
    available: Option<(bool, R, String)>,
    drift: Option<Value>,
    diff: Option<Value>,
    applied_ref: Option<Value>,
}

/// What to do with a manifest whose object exists in the member, once it is known whether the
/// object is the fleet's (`ours`), whether it differs from the manifest (`differs`, by the
/// Work's comparison option), and whether the manifest is the one last applied and the object
/// still holds all of it (`settled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// ReportDiff: report the differences, apply nothing.
    Report,
    /// Not the fleet's, and `whenToTakeOver` says no: report, apply nothing.
    Refuse(&'static str),
    /// The fleet's, changed in the member, and `whenToApply` is IfNotDrifted: report drift.
    Drifted,
    /// Nothing to change.
    Skip,
    /// Apply the manifest.
    Apply,
}

/// The apply strategy's decision for an existing object (KubeFleet's applier semantics).
fn decide(
    report_only: bool,
    ours: bool,
    take_over: WhenToTakeOver,
    if_not_drifted: bool,
    differs: bool,
    settled: bool,
) -> Step {
    if report_only {
        return Step::Report;
    }
    if !ours {
        return match take_over {
            WhenToTakeOver::Never => {
                Step::Refuse("the object exists in the member and whenToTakeOver is Never")
            }
            WhenToTakeOver::IfNoDiff if differs => Step::Refuse(
                "the object exists in the member with differences and whenToTakeOver is IfNoDiff",
            ),
            _ => Step::Apply,
        };
    }
    if if_not_drifted && differs {
        return Step::Drifted;
    }
    if settled {
        Step::Skip
    } else {
        Step::Apply
    }
}

/// How the member's object `live` differs from manifest `body` (as the agent would apply it),
/// by the Work's comparison option: every field (`full`), or what a server-side apply would
/// change (a dry run, unless the object already holds the whole manifest). A manifest the
/// member refuses to apply even in a dry run (immutable fields, invalid values) is compared
/// field by field, as KubeFleet does.
pub async fn compare(
    api: &Api<DynamicObject>,
    name: &str,
    body: &Value,
    live: &Value,
    full: bool,
) -> Result<Vec<Value>, kube::Error> {
    let want = compare::comparable(body);
    let have = compare::comparable(live);
    if full {
        return Ok(compare::differences(&want, &have));
    }
    if compare::holds(&want, &have) {
        return Ok(Vec::new());
    }
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.dry_run = true;
    match api.patch(name, &pp, &Patch::Apply(body)).await {
        Ok(result) => {
            let result = serde_json::to_value(&result).unwrap_or(Value::Null);
            Ok(compare::differences(&compare::comparable(&result), &have))
        }
        Err(kube::Error::Api(s)) if s.code == 422 => Ok(compare::differences(&want, &have)),
        Err(e) => Err(e),
    }
}

fn owned_by(live: &Value, applied_uid: &str) -> bool {
    live["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| o.iter().any(|r| r["uid"] == applied_uid))
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

    let mut manifests: Vec<(usize, Value)> = work.data["spec"]["workload"]["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .collect();
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
        conditions::set(
            &mut wconds,
            cc::AVAILABLE,
            all_applied && all_available,
            if all_applied && all_available {
                WorkReason::WorkAvailable.as_str()
            } else {
                WorkReason::WorkNotAllManifestsAvailable.as_str()
            },
            &format!("{available} of {n} objects available"),
            Some(generation),
            &now,
        );
    }
    let status = json!({"conditions": wconds, "manifestConditions": manifest_conditions});
    let mut deferred = false;
    if work.data["status"] != status {
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
        if deferred && all_applied && !pending {
            Action::requeue(PROGRESS_INTERVAL)
        } else if !all_applied {
            Action::requeue(w.failed.fail(Failure::Other))
        } else if pending {
            Action::requeue(w.pending.fail(Failure::Other))
        } else {
            Action::requeue(Duration::from_secs(30))
        }
    }))
}

/// The Available condition of an object as read from the member.
fn judge(obj: &Value) -> (bool, R, String) {
    match availability(obj) {
        Availability::Available => (true, R::ManifestAvailable, "available".into()),
        Availability::NotTracked => (
            true,
            R::ManifestNotTrackable,
            "available once applied (no status to judge)".into(),
        ),
        Availability::NotYet(why) => (false, R::ManifestNotAvailableYet, why),
    }
}

/// Removes the AppliedWork `aw_uid` from the owners of `live` (the object stays, unmanaged).
async fn disown(
    api: &Api<DynamicObject>,
    name: &str,
    live: &Value,
    aw_uid: &str,
) -> Result<(), Error> {
    let owners: Vec<Value> = live["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["uid"] != aw_uid)
        .cloned()
        .collect();
    let p = json!({"metadata": {"ownerReferences": owners,
        "resourceVersion": live["metadata"]["resourceVersion"]}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    Ok(())
}

/// Annotation on an AppliedWork: the apply strategy of its Work, as JSON.
const APPLY_STRATEGY_ANNOTATION: &str = "kubernetes-fleet.io/apply-strategy";

/// Another AppliedWork that owns `live` with an apply strategy other than `strategy`, if any.
async fn conflicting_owner(
    ctx: &Ctx,
    live: &Value,
    aw_uid: &str,
    strategy: &str,
) -> Option<String> {
    let aw_api: Api<DynamicObject> = Api::all_with(ctx.member.clone(), &applied_work_resource());
    let mut owners = BTreeMap::new();
    for name in other_applied_work_owners(live, aw_uid) {
        if let Ok(Some(a)) = aw_api.get_opt(&name).await {
            let uid = a.metadata.uid.clone().unwrap_or_default();
            let theirs = a.annotations().get(APPLY_STRATEGY_ANNOTATION).cloned();
            owners.insert(name, (uid, theirs));
        }
    }
    conflicting(live, aw_uid, strategy, &owners)
}

/// The names of the AppliedWorks other than `aw_uid` that `live`'s ownerReferences name.
fn other_applied_work_owners(live: &Value, aw_uid: &str) -> Vec<String> {
    live["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "AppliedWork" && r["uid"] != aw_uid)
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect()
}

/// The first other AppliedWork owning `live` that exists as referenced (same uid, from
/// `owners`: name -> (uid, its apply-strategy annotation)) with a strategy other than
/// `strategy`.
fn conflicting(
    live: &Value,
    aw_uid: &str,
    strategy: &str,
    owners: &BTreeMap<String, (String, Option<String>)>,
) -> Option<String> {
    live["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "AppliedWork" && r["uid"] != aw_uid)
        .find_map(|r| {
            let name = r["name"].as_str()?;
            let (uid, theirs) = owners.get(name)?;
            (r["uid"] == uid.as_str() && theirs.as_deref() != Some(strategy))
                .then(|| name.to_string())
        })
}

#[allow(clippy::too_many_arguments)]
async fn apply_one(
    ctx: &Ctx,
    ordinal: usize,
    m: &Value,
    owner: &Value,
    aw_uid: &str,
    strategy: &str,
    prev_hash: Option<&str>,
    report_only: bool,
    full: bool,
    if_not_drifted: bool,
    take_over: WhenToTakeOver,
    force: bool,
) -> Outcome {
    let api_version = m["apiVersion"].as_str().unwrap_or("");
    let kind = m["kind"].as_str().unwrap_or("");
    let oname = m["metadata"]["name"].as_str().unwrap_or("").to_string();
    let identifier = identifier(m, Some(ordinal));
    let manifest_hash = flotilla_api::manifests::content_hash(std::slice::from_ref(m));
    let mut out = Outcome {
        identifier: identifier.clone(),
        applied: (false, R::ManifestApplyFailed, String::new()),
        available: None,
        drift: None,
        diff: None,
        applied_ref: None,
    };
    let (ar, namespaced) = match ctx.kinds.resolve(&ctx.member, api_version, kind).await {
        Ok(r) => r,
        Err(missing) => {
            out.applied = (false, R::FailedToFindResource, missing.to_string());
            return out;
        }
    };
    out.identifier["resource"] = json!(ar.plural);
    let api: Api<DynamicObject> = match (namespaced, m["metadata"]["namespace"].as_str()) {
        (true, Some(ns)) => Api::namespaced_with(ctx.member.clone(), ns, &ar),
        (true, None) => Api::default_namespaced_with(ctx.member.clone(), &ar),
        _ => Api::all_with(ctx.member.clone(), &ar),
    };
    let live = match api.get_opt(&oname).await {
        Ok(l) => l.and_then(|l| serde_json::to_value(l).ok()),
        Err(e) => {
            out.applied = (false, R::ManifestApplyFailed, e.to_string());
            return out;
        }
    };
    let observed_gen = live.as_ref().map(|l| l["metadata"]["generation"].clone());
    // What is applied: the manifest, with the AppliedWork among the object's owners.
    let mut body = m.clone();
    let mut owners: Vec<Value> = live
        .as_ref()
        .and_then(|l| l["metadata"]["ownerReferences"].as_array().cloned())
        .unwrap_or_default();
    if !owners.iter().any(|o| o["uid"] == owner["uid"]) {
        owners.push(owner.clone());
    }
    body["metadata"]["ownerReferences"] = json!(owners);
    let recorded = |uid: &Value, hash: &str| {
        let mut r = identifier.clone();
        r["resource"] = json!(ar.plural);
        r["uid"] = uid.clone();
        r["manifestHash"] = json!(hash);
        r
    };
    if let Some(l) = &live {
        let ours = owned_by(l, aw_uid);
        // Another placement's Work placed this object: only one with the same strategy may
        // share it; otherwise the conflict is reported and neither overrides the other.
        if !report_only {
            if let Some(other) = conflicting_owner(ctx, l, aw_uid, strategy).await {
                out.applied = (
                    false,
                    R::ApplyConflictBetweenPlacements,
                    format!("the object is placed by another placement (Work {other}) with a different apply strategy"),
                );
                return out;
            }
        }
        let settled = prev_hash == Some(manifest_hash.as_str())
            && compare::holds(&compare::comparable(m), &compare::comparable(l));
        // The differences matter to reports and to IfNoDiff / IfNotDrifted; an object of ours
        // applied always needs only `settled`.
        let needs_diffs = report_only || !ours || if_not_drifted;
        let diffs = if needs_diffs {
            match compare(&api, &oname, &body, l, full).await {
                Ok(d) => d,
                Err(e) => {
                    out.applied = (
                        false,
                        R::ManifestApplyFailed,
                        format!("comparing with the member's object: {e}"),
                    );
                    return out;
                }
            }
        } else {
            Vec::new()
        };
        let diff_report = || {
            json!({"observedInMemberClusterGeneration": observed_gen,
                "firstDiffedObservedTime": conditions::timestamp(chrono::Utc::now()), "observedDiffs": diffs})
        };
        match decide(
            report_only,
            ours,
            take_over,
            if_not_drifted,
            !diffs.is_empty(),
            settled,
        ) {
            Step::Report => {
                if !diffs.is_empty() {
                    out.diff = Some(diff_report());
                }
                out.applied = (true, R::ReportDiffMode, "ReportDiff: not applied".into());
                out.available = Some((true, R::ReportDiffMode, "ReportDiff: not applied".into()));
                return out;
            }
            Step::Refuse(why) => {
                if !diffs.is_empty() {
                    out.diff = Some(diff_report());
                }
                out.applied = (false, R::NotTakenOver, why.into());
                return out;
            }
            Step::Drifted => {
                out.drift = Some(
                    json!({"observedInMemberClusterGeneration": observed_gen, "firstDriftedObservedTime": conditions::timestamp(chrono::Utc::now()), "observedDrifts": diffs}),
                );
                out.applied = (false, R::FoundDrifts, "the object changed in the member and whenToApply is IfNotDrifted: not applied over the change".into());
                // Still the fleet's: it stays recorded (and is not removed as if it left the Work).
                out.applied_ref = Some(recorded(&l["metadata"]["uid"], prev_hash.unwrap_or("")));
                return out;
            }
            Step::Skip => {
                // Nothing to change: the agent re-applies only what changed.
                out.applied = (true, R::ManifestApplied, "applied".into());
                out.available = Some(judge(l));
                out.applied_ref = Some(recorded(&l["metadata"]["uid"], &manifest_hash));
                return out;
            }
            Step::Apply => {}
        }
    } else if report_only {
        out.diff = Some(
            json!({"observedDiffs": [{"path": "/", "valueInHub": "the whole object"}],
            "firstDiffedObservedTime": conditions::timestamp(chrono::Utc::now())}),
        );
        out.applied = (
            true,
            R::ReportDiffMode,
            "ReportDiff: the object does not exist in the member".into(),
        );
        out.available = Some((true, R::ReportDiffMode, "ReportDiff: not applied".into()));
        return out;
    }
    // Apply.
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    if force {
        pp = pp.force();
    }
    match api.patch(&oname, &pp, &Patch::Apply(&body)).await {
        Ok(applied) => {
            out.applied = (true, R::ManifestApplied, "applied".into());
            let applied = serde_json::to_value(&applied).unwrap_or(Value::Null);
            out.available = Some(judge(&applied));
            out.applied_ref = Some(recorded(&applied["metadata"]["uid"], &manifest_hash));
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            out.applied = (false, R::ApplyConflictWithOtherApplier, s.message);
        }
        Err(kube::Error::Api(s))
            if s.code == 404
                && s.reason == "NotFound"
                && s.details.as_ref().is_none_or(|d| d.name.is_empty()) =>
        {
            // The member stopped serving the kind (a CRD removed, a version dropped): look it
            // up again next time.
            ctx.kinds.forget(api_version);
            out.applied = (
                false,
                R::FailedToFindResource,
                format!(
                    "the member no longer serves {kind} in {api_version}: {}",
                    s.message
                ),
            );
        }
        Err(e) => out.applied = (false, R::ManifestApplyFailed, e.to_string()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_and_conflicts_with_other_appliers_read_owner_references() {
        let live = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "placement.kubernetes-fleet.io/v1beta1", "kind": "AppliedWork", "name": "mine", "uid": "u-mine"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-rs"},
            {"apiVersion": "placement.kubernetes-fleet.io/v1beta1", "kind": "AppliedWork", "name": "other", "uid": "u-other"}]}});
        assert!(owned_by(&live, "u-mine"));
        assert!(owned_by(&live, "u-rs"));
        assert!(!owned_by(&live, "u-nobody"));
        assert!(!owned_by(&json!({"metadata": {}}), "u-mine"));
        assert_eq!(other_applied_work_owners(&live, "u-mine"), ["other"]);

        let strategy = r#"{"type":"ClientSideApply"}"#;
        let owners = |uid: &str, theirs: Option<&str>| {
            BTreeMap::from([
                (
                    "mine".to_string(),
                    ("u-mine".to_string(), Some("x".to_string())),
                ),
                (
                    "other".to_string(),
                    (uid.to_string(), theirs.map(String::from)),
                ),
            ])
        };
        // Another applier with another strategy conflicts; the same strategy, a recreated
        // AppliedWork of that name (another uid) or an owner that is gone do not; nor do we.
        let cases = [
            (owners("u-other", Some("y")), Some("other")),
            (owners("u-other", None), Some("other")),
            (owners("u-other", Some(strategy)), None),
            (owners("u-new", Some("y")), None),
            (BTreeMap::new(), None),
        ];
        for (owners, want) in cases {
            assert_eq!(
                conflicting(&live, "u-mine", strategy, &owners).as_deref(),
                want,
                "{owners:?}"
            );
        }
    }

    #[test]
    fn the_apply_strategy_decides_per_existing_object() {
        use Step::*;
        let never = "the object exists in the member and whenToTakeOver is Never";
        let if_no_diff =
            "the object exists in the member with differences and whenToTakeOver is IfNoDiff";
        // (report_only, ours, whenToTakeOver, IfNotDrifted, differs, settled) -> step
        let table = [
            ((true, false, "Always", false, true, false), Report),
            ((true, true, "Never", true, true, true), Report),
            ((false, false, "Always", false, true, false), Apply),
            ((false, false, "Always", false, false, false), Apply),
            ((false, false, "Never", false, false, false), Refuse(never)),
            ((false, false, "Never", false, true, false), Refuse(never)),
            ((false, false, "IfNoDiff", false, false, false), Apply),
            (
                (false, false, "IfNoDiff", false, true, false),
                Refuse(if_no_diff),
            ),
            ((false, true, "Never", false, true, false), Apply),
            ((false, true, "Always", true, true, false), Drifted),
            ((false, true, "Always", true, true, true), Drifted),
            ((false, true, "Always", true, false, true), Skip),
            ((false, true, "Always", true, false, false), Apply),
            ((false, true, "Always", false, true, true), Skip),
            ((false, true, "Always", false, false, false), Apply),
        ];
        for ((report, ours, take_over, if_not_drifted, differs, settled), want) in table {
            assert_eq!(
                decide(report, ours, WhenToTakeOver::parse(Some(take_over)), if_not_drifted, differs, settled),
                want,
                "report={report} ours={ours} takeOver={take_over} ifNotDrifted={if_not_drifted} differs={differs} settled={settled}"
            );
        }
    }

    #[test]
    fn availability_is_judged_from_the_members_status() {
        let deploy = |available: i64| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "generation": 2},
                "spec": {"replicas": 2},
                "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                    "availableReplicas": available, "readyReplicas": available}})
        };
        assert!(judge(&deploy(2)).0);
        let (ok, reason, _) = judge(&deploy(1));
        assert!(!ok);
        assert_eq!(reason, "ManifestNotAvailableYet");
        let (ok, reason, _) =
            judge(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert!(ok);
        assert_eq!(reason, "ManifestNotTrackable");
    }
}
