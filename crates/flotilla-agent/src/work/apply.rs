//! Applying one manifest: the strategy's decision for an existing object ([`decide`]),
//! comparison with the member's object, conflicts with other placements and appliers, the
//! server-side apply, and availability from the applied object's status.

use std::collections::BTreeMap;

use flotilla_api::conditions;

use crate::compare;
use flotilla_api::manifests::{availability, Availability};
use flotilla_api::work::{applied_work_resource, identifier, ManifestReason as R, WhenToTakeOver};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::Error;

use super::*;

/// The outcome of one manifest.
pub(super) struct Outcome {
    pub(super) identifier: Value,
    pub(super) applied: (bool, R, String),
    pub(super) available: Option<(bool, R, String)>,
    pub(super) drift: Option<Value>,
    pub(super) diff: Option<Value>,
    pub(super) applied_ref: Option<Value>,
}

/// What to do with a manifest whose object exists in the member, once it is known whether the
/// object is the fleet's (`ours`), whether it differs from the manifest (`differs`, by the
/// Work's comparison option), and whether the manifest is the one last applied and the object
/// still holds all of it (`settled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
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
pub(super) fn decide(
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

pub(super) fn owned_by(live: &Value, applied_uid: &str) -> bool {
    live["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| o.iter().any(|r| r["uid"] == applied_uid))
}

/// The Available condition of an object as read from the member.
pub(super) fn judge(obj: &Value) -> (bool, R, String) {
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
pub(super) async fn disown(
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
pub(super) const APPLY_STRATEGY_ANNOTATION: &str = "kubernetes-fleet.io/apply-strategy";

/// Another AppliedWork that owns `live` with an apply strategy other than `strategy`, if any.
pub(super) async fn conflicting_owner(
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
pub(super) fn other_applied_work_owners(live: &Value, aw_uid: &str) -> Vec<String> {
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
pub(super) fn conflicting(
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
pub(super) async fn apply_one(
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
