//! The status roll-up (pure): a Work's conditions, written by the member's agent, become its
//! binding's status, and the bindings' statuses the placement's per-cluster statuses and
//! conditions.

use flotilla_api::conditions;
use flotilla_api::placement::cluster_condition as cc;
use flotilla_api::placement::reason::{BindingReason as B, PlacementReason as P};
use kube::api::DynamicObject;
use serde_json::{json, Value};

use super::Scope;
use flotilla_api::overrides::Overridden;
use flotilla_api::work::{placed_identifier, ApplyStrategy, WorkReason};

/// Sets condition `ty` in `conds` as of `now` (the transition time moves only when the status
/// does).
pub(super) fn condition(
    conds: &mut Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    gen: i64,
    now: &str,
) {
    conditions::set_status(conds, ty, status, reason, message, Some(gen), now);
}

/// The placement's Scheduled condition as the scheduler decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// "True" when the policy is fulfilled, else "False".
    pub status: &'static str,
    /// `SchedulingPolicyFulfilled` or `SchedulingPolicyUnfulfilled`.
    pub reason: &'static str,
    /// The scheduler's message.
    pub message: String,
}

/// What the placement's status says besides its clusters: the scheduling outcome, the resource
/// snapshot's index and the identifiers of the selected resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The Scheduled condition.
    pub scheduled: Scheduled,
    /// Index of the latest resource snapshot.
    pub resource_index: String,
    /// `status.selectedResources`.
    pub selected_resources: Vec<Value>,
    /// The apply strategy (which conditions the placement reports).
    pub apply_strategy: Value,
}

/// One cluster's part in the roll-up: its binding's spec and the status computed for it.
pub struct ClusterStatus<'a> {
    /// Target cluster.
    pub cluster: &'a str,
    /// The binding's spec (the overrides it names are reported).
    pub spec: &'a Value,
    /// The binding's status ([`binding_status`]).
    pub status: &'a Value,
}

/// What the planner decided of a binding, besides its Work: the overrides' outcome, whether
/// its rollout started, and why its member counts as unavailable (if it does).
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    /// The cluster's manifests after its overrides, or why they could not be applied.
    pub overridden: Result<&'a Overridden, &'a String>,
    /// Whether the binding names the latest resources.
    pub rollout: Rollout,
    /// The member has been unhealthy past the failover grace period: why.
    pub unreachable: Option<&'a str>,
}

/// Whether the rollout lets a binding have the latest resources ([`super::rollout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// The binding names the latest resources.
    Started,
    /// The rollout strategy holds the binding back: it keeps the resources it names (a
    /// Scheduled binding: none yet).
    Blocked,
}

/// A binding's status: scheduled, whether its rollout started, its overrides, and its Work's
/// applied and available conditions (as of the Work's current generation) with the manifests
/// that failed, drifted or differ. `work` is `None` when the member's namespace is not there to
/// hold it. A binding not bound to resources yet (state Scheduled) has only its Scheduled and
/// RolloutStarted conditions. `unreachable` (why) makes it unavailable whatever the Work says.
pub fn binding_status(
    binding: &DynamicObject,
    work: Option<&DynamicObject>,
    decided: Decided<'_>,
    generation: i64,
    now: &str,
) -> Value {
    let Decided {
        overridden,
        rollout,
        unreachable,
    } = decided;
    let mut conds = binding.data["status"]["conditions"].clone();
    let g = binding.metadata.generation.unwrap_or(generation);
    let mut set = |ty: &str, status: &str, reason: &str, message: &str| {
        condition(&mut conds, ty, status, reason, message, g, now)
    };
    set(
        cc::SCHEDULED,
        "True",
        B::Scheduled.as_str(),
        binding.data["spec"]["clusterDecision"]["reason"]
            .as_str()
            .unwrap_or_default(),
    );
    match rollout {
        Rollout::Started => set(
            cc::ROLLOUT_STARTED,
            "True",
            B::RolloutStarted.as_str(),
            "the binding names the latest resources",
        ),
        Rollout::Blocked => set(
            cc::ROLLOUT_STARTED,
            "False",
            B::RolloutNotStartedYet.as_str(),
            "the rollout strategy holds the cluster back: it keeps what it has until others are ready",
        ),
    }
    if binding.data["spec"]["state"] == "Scheduled" {
        if let Some(list) = conds.as_array_mut() {
            list.retain(|c| c["type"] == cc::SCHEDULED || c["type"] == cc::ROLLOUT_STARTED);
        }
        return json!({ "conditions": conds });
    }
    match overridden {
        Ok(o) if o.cluster_overrides.is_empty() && o.resource_overrides.is_empty() => set(
            cc::OVERRIDDEN,
            "True",
            B::NoOverrideSpecified.as_str(),
            "no override applies",
        ),
        Ok(o) => set(
            cc::OVERRIDDEN,
            "True",
            B::OverriddenSucceeded.as_str(),
            &format!(
                "{} override(s) applied",
                o.cluster_overrides.len() + o.resource_overrides.len()
            ),
        ),
        Err(e) => set(cc::OVERRIDDEN, "False", B::OverriddenFailed.as_str(), e),
    }
    let mut failed = Vec::new();
    match work {
        _ if overridden.is_err() => set(
            cc::WORK_SYNCHRONIZED,
            "False",
            B::WorkNotSynchronizedYet.as_str(),
            "an override cannot be applied: the Work keeps its previous resources",
        ),
        None => set(
            cc::WORK_SYNCHRONIZED,
            "False",
            B::WorkNotSynchronizedYet.as_str(),
            "the member's namespace is not available",
        ),
        Some(w) => {
            set(
                cc::WORK_SYNCHRONIZED,
                "True",
                B::AllWorkSynced.as_str(),
                "the Work holds the resources the binding names",
            );
            let wgen = w.metadata.generation.unwrap_or(0);
            let wconds = &w.data["status"]["conditions"];
            for (ty, ok, bad, pending) in [
                (
                    cc::APPLIED,
                    B::AllWorkHaveBeenApplied.as_str(),
                    B::WorkNotAppliedYet.as_str(),
                    B::WorkApplyPending.as_str(),
                ),
                (
                    cc::AVAILABLE,
                    B::AllWorkAreAvailable.as_str(),
                    B::WorkNotAvailableYet.as_str(),
                    B::WorkAvailabilityPending.as_str(),
                ),
            ] {
                match conditions::find(wconds, ty)
                    .filter(|c| c["observedGeneration"].as_i64() == Some(wgen))
                {
                    // Available only because nothing tells otherwise: the rollout waits its
                    // unavailable period before it counts the cluster ready.
                    Some(c)
                        if c["status"] == "True"
                            && c["reason"] == WorkReason::WorkNotAllManifestsTrackable.as_str() =>
                    {
                        set(
                            ty,
                            "True",
                            B::NotAllWorkAreAvailabilityTrackable.as_str(),
                            c["message"].as_str().unwrap_or(""),
                        )
                    }
                    Some(c) if c["status"] == "True" => {
                        set(ty, "True", ok, c["message"].as_str().unwrap_or(""))
                    }
                    Some(c) if c["status"] == "False" => {
                        set(ty, "False", bad, c["message"].as_str().unwrap_or(""))
                    }
                    _ => set(
                        ty,
                        "Unknown",
                        pending,
                        "the member's agent has not reported on the latest Work yet",
                    ),
                }
            }
            // A member unhealthy past the grace period: whatever its agent last said, what
            // it runs now is unknown.
            if let Some(why) = unreachable {
                set(
                    cc::AVAILABLE,
                    "False",
                    B::MemberClusterUnhealthy.as_str(),
                    why,
                );
            }
            // ReportDiff: the agent's report of differences, as of the latest Work.
            match conditions::find(wconds, cc::DIFF_REPORTED)
                .filter(|c| c["observedGeneration"].as_i64() == Some(wgen))
            {
                Some(c) => set(
                    cc::DIFF_REPORTED,
                    c["status"].as_str().unwrap_or("Unknown"),
                    B::DiffReported.as_str(),
                    c["message"].as_str().unwrap_or(""),
                ),
                None if ApplyStrategy::of_work(&binding.data["spec"]["applyStrategy"])
                    .report_only() =>
                {
                    set(
                        cc::DIFF_REPORTED,
                        "Unknown",
                        B::DiffReportPending.as_str(),
                        "the member's agent has not reported on the latest Work yet",
                    )
                }
                None => {
                    if let Some(list) = conds.as_array_mut() {
                        list.retain(|c| c["type"] != cc::DIFF_REPORTED);
                    }
                }
            }
            for m in manifest_conditions(w) {
                for ty in [cc::APPLIED, cc::AVAILABLE] {
                    if let Some(c) =
                        conditions::find(&m["conditions"], ty).filter(|c| c["status"] == "False")
                    {
                        let mut f = placed_identifier(&m["identifier"]);
                        f["condition"] = c.clone();
                        failed.push(f);
                        break;
                    }
                }
            }
        }
    }
    failed.truncate(100);
    let mut status = json!({"conditions": conds});
    if !failed.is_empty() {
        status["failedPlacements"] = json!(failed);
    }
    if let Some(w) = work {
        for (f, key) in [
            ("driftedPlacements", "driftDetails"),
            ("diffedPlacements", "diffDetails"),
        ] {
            let list: Vec<Value> = manifest_conditions(w)
                .filter_map(|m| {
                    let mut e = placed_identifier(&m["identifier"]);
                    for (k, v) in m.get(key)?.as_object()? {
                        e[k] = v.clone();
                    }
                    Some(e)
                })
                .take(100)
                .collect();
            if !list.is_empty() {
                status[f] = json!(list);
            }
        }
    }
    status
}

fn manifest_conditions(w: &DynamicObject) -> impl Iterator<Item = &Value> {
    w.data["status"]["manifestConditions"]
        .as_array()
        .into_iter()
        .flatten()
}

/// Whether a binding whose status is `old` needs `new` written: when a condition's status,
/// reason or generation changes (also in the lists of failed, drifted, diffed objects).
/// Progress messages in between ("2 of 3 objects available") show in the placement's status,
/// not in every binding write.
pub fn binding_status_changed(old: &Value, new: &Value) -> bool {
    old != new && conditions::without_messages(old) != conditions::without_messages(new)
}

/// The conditions a placement reports per cluster and rolls up, in order, after Scheduled: a
/// ReportDiff placement's end with DiffReported, any other's with Applied and Available.
pub fn condition_chain(apply_strategy: &Value) -> &'static [&'static str] {
    if ApplyStrategy::of_work(apply_strategy).report_only() {
        &[
            cc::ROLLOUT_STARTED,
            cc::OVERRIDDEN,
            cc::WORK_SYNCHRONIZED,
            cc::DIFF_REPORTED,
        ]
    } else {
        &[
            cc::ROLLOUT_STARTED,
            cc::OVERRIDDEN,
            cc::WORK_SYNCHRONIZED,
            cc::APPLIED,
            cc::AVAILABLE,
        ]
    }
}

/// A cluster's conditions as its placement reports them (KubeFleet's): Scheduled, then the
/// binding's conditions along `chain` up to the first that is not True (one the binding does
/// not have yet is Unknown); what follows is not reported: it does not concern the latest
/// resources yet.
fn cluster_conditions(binding_status: &Value, chain: &[&str]) -> (Value, Vec<&'static str>) {
    let binding = &binding_status["conditions"];
    let mut out = Vec::new();
    let mut statuses = Vec::new();
    out.extend(conditions::find(binding, cc::SCHEDULED).cloned());
    for ty in chain {
        let status = match conditions::find(binding, ty) {
            Some(c) => {
                out.push(c.clone());
                match c["status"].as_str() {
                    Some("True") => "True",
                    Some("False") => "False",
                    _ => "Unknown",
                }
            }
            None => "Unknown",
        };
        statuses.push(status);
        if status != "True" {
            break;
        }
    }
    (Value::Array(out), statuses)
}

/// The placement's reasons for a condition of the chain: (all True, some False, some Unknown).
fn placement_reasons(ty: &str) -> (&'static str, &'static str, &'static str) {
    match ty {
        cc::ROLLOUT_STARTED => (
            P::RolloutStarted.as_str(),
            P::RolloutNotStartedYet.as_str(),
            P::RolloutStartedUnknown.as_str(),
        ),
        cc::OVERRIDDEN => (
            P::NoOverrideSpecified.as_str(),
            P::OverriddenFailed.as_str(),
            P::OverriddenPending.as_str(),
        ),
        cc::WORK_SYNCHRONIZED => (
            P::WorkSynchronized.as_str(),
            P::WorkNotSynchronizedYet.as_str(),
            P::WorkSynchronizedUnknown.as_str(),
        ),
        cc::APPLIED => (
            P::ApplySucceeded.as_str(),
            P::ApplyFailed.as_str(),
            P::ApplyPending.as_str(),
        ),
        cc::AVAILABLE => (
            P::ResourceAvailable.as_str(),
            P::ResourceNotAvailableYet.as_str(),
            P::ResourceAvailablePending.as_str(),
        ),
        _ => (
            P::DiffReported.as_str(),
            P::DiffReportPending.as_str(),
            P::DiffReportPending.as_str(),
        ),
    }
}

/// The placement's status: per-cluster statuses from the bindings, the placement's conditions
/// rolled up from theirs (`old` is the placement's status as stored, whose conditions keep
/// their transition times). As KubeFleet's, a condition is True when it is True on every
/// cluster, Unknown when it is Unknown on some, else False when it is False on some; the
/// conditions after the first that is not True are not reported.
pub fn placement_status(
    scope: Scope,
    old: &Value,
    summary: &Summary,
    clusters: &[ClusterStatus<'_>],
    generation: i64,
    now: &str,
) -> Value {
    let chain = condition_chain(&summary.apply_strategy);
    let mut per_cluster = Vec::with_capacity(clusters.len());
    let mut counts = Counts::default();
    for c in clusters {
        let (cluster_conds, statuses) = cluster_conditions(c.status, chain);
        counts.add(&statuses);
        let mut entry = json!({"clusterName": c.cluster,
            "observedResourceIndex": summary.resource_index,
            "conditions": cluster_conds});
        // The overrides the cluster's resources went through, once they roll out to it.
        if statuses.first() == Some(&"True") {
            for (from, to) in [
                (
                    "clusterResourceOverrideSnapshots",
                    "applicableClusterResourceOverrides",
                ),
                ("resourceOverrideSnapshots", "applicableResourceOverrides"),
            ] {
                if c.spec[from].as_array().is_some_and(|a| !a.is_empty()) {
                    entry[to] = c.spec[from].clone();
                }
            }
            for f in ["failedPlacements", "driftedPlacements", "diffedPlacements"] {
                if c.status[f].as_array().is_some_and(|a| !a.is_empty()) {
                    entry[f] = c.status[f].clone();
                }
            }
        }
        per_cluster.push(entry);
    }
    let any_override = clusters.iter().any(|c| overridden(c.spec));
    let conds = placement_conditions(
        scope,
        &old["conditions"],
        summary,
        &counts,
        any_override,
        generation,
        now,
    );
    json!({
        "selectedResources": summary.selected_resources,
        "observedResourceIndex": summary.resource_index,
        "placementStatuses": per_cluster,
        "conditions": conds,
    })
}

/// Whether a binding's spec names override snapshots.
pub fn overridden(binding_spec: &Value) -> bool {
    [
        "clusterResourceOverrideSnapshots",
        "resourceOverrideSnapshots",
    ]
    .iter()
    .any(|f| binding_spec[*f].as_array().is_some_and(|a| !a.is_empty()))
}

/// Where one cluster stands along its placement's condition chain: the status of each
/// condition up to the first that is not True.
pub fn chain_of(binding_status: &Value, summary: &Summary) -> Vec<&'static str> {
    cluster_conditions(binding_status, condition_chain(&summary.apply_strategy)).1
}

/// Per condition of the chain, how many clusters report it True, False and Unknown: all the
/// placement's own conditions need of its clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    total: usize,
    by_condition: Vec<(usize, usize, usize)>,
}

impl Counts {
    /// Counts a cluster standing at `chain` ([`chain_of`]).
    pub fn add(&mut self, chain: &[&str]) {
        self.total += 1;
        self.tally(chain, |n| *n += 1);
    }

    /// Uncounts a cluster counted at `chain`.
    pub fn remove(&mut self, chain: &[&str]) {
        self.total -= 1;
        self.tally(chain, |n| *n -= 1);
    }

    fn tally(&mut self, chain: &[&str], f: impl Fn(&mut usize)) {
        if self.by_condition.len() < chain.len() {
            self.by_condition.resize(chain.len(), (0, 0, 0));
        }
        for (count, st) in self.by_condition.iter_mut().zip(chain) {
            match *st {
                "True" => f(&mut count.0),
                "False" => f(&mut count.1),
                _ => f(&mut count.2),
            }
        }
    }
}

/// The placement's own conditions from its clusters' `counts` (`old`: the conditions as
/// stored, whose transition times they keep): Scheduled from the scheduler's summary, then
/// along the chain, a condition True when it is True on every cluster, Unknown when it is
/// Unknown on some, else False; the conditions after the first that is not True go.
pub fn placement_conditions(
    scope: Scope,
    old: &Value,
    summary: &Summary,
    counts: &Counts,
    any_override: bool,
    generation: i64,
    now: &str,
) -> Value {
    let chain = condition_chain(&summary.apply_strategy);
    let mut conds = old.clone();
    let s = &summary.scheduled;
    condition(
        &mut conds,
        &scope.condition(cc::SCHEDULED),
        s.status,
        s.reason,
        &s.message,
        generation,
        now,
    );
    let total = counts.total;
    let mut reported = Vec::new();
    for (i, ty) in chain.iter().enumerate() {
        let (good, bad, unknown) = counts.by_condition.get(i).copied().unwrap_or_default();
        let (ok_reason, bad_reason, pending_reason) = placement_reasons(ty);
        let (st, reason, msg) = if unknown > 0 {
            (
                "Unknown",
                pending_reason,
                format!("{unknown} of {total} clusters not reported yet"),
            )
        } else if bad > 0 {
            let msg = if *ty == cc::ROLLOUT_STARTED {
                format!("the rollout strategy holds back {bad} of {total} clusters")
            } else {
                format!("{bad} of {total} clusters failed or are not ready")
            };
            ("False", bad_reason, msg)
        } else if *ty == cc::OVERRIDDEN && any_override {
            (
                "True",
                P::OverriddenSucceeded.as_str(),
                format!("{good} of {total} clusters"),
            )
        } else {
            ("True", ok_reason, format!("{good} of {total} clusters"))
        };
        let ty = scope.condition(ty);
        condition(&mut conds, &ty, st, reason, &msg, generation, now);
        reported.push(ty);
        if st != "True" {
            break;
        }
    }
    // The conditions after the first that is not True (and those of the other chain) go.
    let unreported: Vec<String> = [
        cc::ROLLOUT_STARTED,
        cc::OVERRIDDEN,
        cc::WORK_SYNCHRONIZED,
        cc::APPLIED,
        cc::AVAILABLE,
        cc::DIFF_REPORTED,
    ]
    .iter()
    .map(|ty| scope.condition(ty))
    .filter(|ty| !reported.contains(ty))
    .collect();
    if let Some(list) = conds.as_array_mut() {
        list.retain(|c| {
            !c["type"]
                .as_str()
                .is_some_and(|t| unreported.iter().any(|u| u == t))
        });
    }
    conds
}

/// The status of a placement that places nothing because of `reason` (its Scheduled condition
/// False; everything else as it was).
pub fn refused(
    scope: Scope,
    old: &Value,
    reason: &str,
    message: &str,
    generation: i64,
    now: &str,
) -> Value {
    let mut conds = old["conditions"].clone();
    condition(
        &mut conds,
        &scope.condition(cc::SCHEDULED),
        "False",
        reason,
        message,
        generation,
        now,
    );
    json!({"conditions": conds})
}

/// A merge patch that makes `old` into `new` at the top level: a merge patch keeps what it
/// does not mention, so keys `new` dropped (a list that emptied) go as null.
pub fn replacing(old: &Value, new: &Value) -> Value {
    let mut patch = new.clone();
    for k in old.as_object().into_iter().flat_map(|o| o.keys()) {
        if new.get(k).is_none() {
            patch[k] = Value::Null;
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_from_a_tally_kept_change_by_change_are_those_of_the_whole_status() {
        // The roll-up keeps counts cluster by cluster (a cluster's old chain out, its new one
        // in) and derives the placement's conditions from them; they must be the conditions
        // the whole status, built from every cluster, carries.
        let cond = |ty: &str, st: &str| {
            json!({"type": ty, "status": st, "reason": "r",
            "message": "", "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        let binding = |chain: &[(&str, &str)]| {
            let mut conds = vec![cond(cc::SCHEDULED, "True")];
            conds.extend(chain.iter().map(|(ty, st)| cond(ty, st)));
            json!({"conditions": conds})
        };
        let started = (cc::ROLLOUT_STARTED, "True");
        let overridden = (cc::OVERRIDDEN, "True");
        let synced = (cc::WORK_SYNCHRONIZED, "True");
        let stages = [
            binding(&[]),
            binding(&[started, overridden, synced]),
            binding(&[started, overridden, synced, (cc::APPLIED, "True")]),
            binding(&[
                started,
                overridden,
                synced,
                (cc::APPLIED, "True"),
                (cc::AVAILABLE, "False"),
            ]),
            binding(&[
                started,
                overridden,
                synced,
                (cc::APPLIED, "True"),
                (cc::AVAILABLE, "True"),
            ]),
        ];
        let summary = Summary {
            scheduled: Scheduled {
                status: "True",
                reason: "SchedulingPolicyFulfilled",
                message: "picked all 3 clusters".into(),
            },
            resource_index: "0".into(),
            selected_resources: Vec::new(),
            apply_strategy: json!({}),
        };
        let tallied = |counts: &Counts| {
            let (scope, old) = (Scope::Cluster, &Value::Null);
            placement_conditions(scope, old, &summary, counts, false, 1, "now")
        };
        let spec = json!({});
        let names = ["a", "b", "c"];
        // Each cluster moves through the stages at its own pace.
        let paths: [&[usize]; 3] = [&[0, 1, 2, 4], &[0, 1, 3, 4], &[0, 2, 2, 4]];
        let mut at: Vec<usize> = vec![0; 3];
        let mut counts = Counts::default();
        let mut chains: Vec<Vec<&str>> =
            at.iter().map(|s| chain_of(&stages[*s], &summary)).collect();
        for c in &chains {
            counts.add(c);
        }
        for step in 1..4 {
            for (i, path) in paths.iter().enumerate() {
                at[i] = path[step];
                let chain = chain_of(&stages[at[i]], &summary);
                counts.remove(&chains[i]);
                counts.add(&chain);
                chains[i] = chain;
                let clusters: Vec<ClusterStatus<'_>> = names
                    .iter()
                    .zip(&at)
                    .map(|(n, s)| ClusterStatus {
                        cluster: n,
                        spec: &spec,
                        status: &stages[*s],
                    })
                    .collect();
                let whole =
                    placement_status(Scope::Cluster, &Value::Null, &summary, &clusters, 1, "now");
                assert_eq!(
                    whole["conditions"],
                    tallied(&counts),
                    "step {step}, cluster {i}"
                );
            }
        }
        // At the end every cluster is available: so is the placement.
        assert!(tallied(&counts)
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "ClusterResourcePlacementAvailable" && c["status"] == "True"));
    }

    #[test]
    fn a_status_patch_removes_what_the_new_status_dropped() {
        let old = json!({"conditions": [], "failedPlacements": [{"name": "a"}]});
        let new = json!({"conditions": [{"type": "Applied"}]});
        assert_eq!(
            replacing(&old, &new),
            json!({"conditions": [{"type": "Applied"}], "failedPlacements": null})
        );
        assert_eq!(replacing(&Value::Null, &new), new);
    }
}
