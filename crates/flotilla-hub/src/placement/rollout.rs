//! The rolling update (`spec.strategy.type: RollingUpdate`, KubeFleet's default) as a pure
//! decision: given a placement's bindings, which may change now without taking more clusters
//! down than `maxUnavailable` allows or bringing up more than `maxSurge` allows.
//!
//! KubeFleet's rollout algorithm, read from its rollout controller:
//! - a binding is *ready* when its Available condition is True for its generation; one whose
//!   availability cannot be tracked (reason `NotAllWorkAreAvailabilityTrackable`) is ready once
//!   it has been available for `unavailablePeriodSeconds`; a ReportDiff binding once its
//!   differences are reported;
//! - a bound binding that *failed* (a condition False) is updated regardless of the budget: it
//!   cannot lose availability;
//! - removals of deselected clusters, then in-place updates, take at most
//!   `(ready - canBeUnavailable) - (target - maxUnavailable)`;
//! - newly scheduled clusters take at most `target + maxSurge - canBeReady`;
//! - percentages scale against the target count, rounded up.
//!
//! The planner ([`super::plan`]) asks it which clusters move to the latest resources in a
//! pass; the others keep what their bindings name.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flotilla_api::placement::cluster_condition as cc;
use flotilla_api::placement::reason::BindingReason;
use serde_json::Value;

/// An integer, or a percentage of the target count (`intstr.IntOrString`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    /// A number of clusters.
    Int(i64),
    /// A percentage of the target count.
    Percent(i64),
}

impl IntOrPercent {
    /// Reads `v` (an integer, or a string `"N%"` or `"N"`); `default` when absent or unreadable.
    pub fn parse(v: &Value, default: IntOrPercent) -> Self {
        if let Some(n) = v.as_i64() {
            return IntOrPercent::Int(n);
        }
        match v.as_str() {
            Some(s) => match s.strip_suffix('%') {
                Some(p) => p.parse().map(IntOrPercent::Percent).unwrap_or(default),
                None => s.parse().map(IntOrPercent::Int).unwrap_or(default),
            },
            None => default,
        }
    }

    /// The number of clusters it stands for out of `total`, percentages rounded down (as
    /// `intstr.GetScaledValueFromIntOrPercent(v, total, false)`).
    pub fn scaled_down(self, total: usize) -> i64 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => (p * total as i64).div_euclid(100),
        }
    }

    /// The number of clusters it stands for out of `total`, percentages rounded up (as
    /// `intstr.GetScaledValueFromIntOrPercent(v, total, true)`).
    pub fn scaled(self, total: usize) -> i64 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => (p * total as i64 + 99).div_euclid(100),
        }
    }
}

/// A placement's rolling-update parameters with KubeFleet's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingUpdate {
    /// `maxUnavailable` (default 25%).
    pub max_unavailable: IntOrPercent,
    /// `maxSurge` (default 25%).
    pub max_surge: IntOrPercent,
    /// `unavailablePeriodSeconds` (default 60).
    pub unavailable_period: Duration,
}

impl RollingUpdate {
    /// The parameters of a placement's spec.
    pub fn of_placement(spec: &Value) -> Self {
        let r = &spec["strategy"]["rollingUpdate"];
        let quarter = IntOrPercent::Percent(25);
        RollingUpdate {
            max_unavailable: IntOrPercent::parse(&r["maxUnavailable"], quarter),
            max_surge: IntOrPercent::parse(&r["maxSurge"], quarter),
            unavailable_period: Duration::from_secs(
                r["unavailablePeriodSeconds"].as_u64().unwrap_or(60),
            ),
        }
    }
}

/// How many clusters a placement targets: PickN its `numberOfClusters`, PickFixed the number
/// of names, PickAll the bindings the scheduler targets (scheduled or bound).
pub fn target_count(spec: &Value, scheduler_targeted: usize) -> usize {
    let policy = &spec["policy"];
    match policy["placementType"].as_str().unwrap_or("PickAll") {
        "PickN" => policy["numberOfClusters"].as_u64().unwrap_or(0) as usize,
        "PickFixed" => policy["clusterNames"].as_array().map_or(0, Vec::len),
        _ => scheduler_targeted,
    }
}

/// A binding's state, as the scheduler and the rollout leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingState {
    /// Picked by the scheduler, no resources bound yet.
    Scheduled,
    /// Bound to a resource snapshot.
    Bound,
    /// No longer picked: to be removed.
    Unscheduled,
}

/// A binding's Available condition for its current generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Available {
    /// True since `since`; `trackable` false when the agent cannot judge availability (ready
    /// only after the unavailable period).
    True {
        /// Whether availability is judged from the objects' status.
        trackable: bool,
        /// When it turned True.
        since: DateTime<Utc>,
    },
    /// ReportDiff: the differences are reported for the binding's generation (ready; it never
    /// counts as a cluster that can become ready).
    DiffReported,
    /// Not True (yet) for the binding's generation.
    No,
}

/// What a binding's status says for the rollout, as of its `generation`: whether it failed (a
/// condition False: Overridden, WorkSynchronized, Applied, Available or DiffReported) and its
/// availability.
pub fn observe(status: &Value, generation: Option<i64>) -> (bool, Available) {
    let conds = &status["conditions"];
    let current = |ty: &str| {
        flotilla_api::conditions::find(conds, ty)
            .filter(|c| c["observedGeneration"].as_i64() == generation)
    };
    let failed = [
        cc::OVERRIDDEN,
        cc::WORK_SYNCHRONIZED,
        cc::APPLIED,
        cc::AVAILABLE,
        cc::DIFF_REPORTED,
    ]
    .iter()
    .any(|ty| current(ty).is_some_and(|c| c["status"] == "False"));
    if current(cc::DIFF_REPORTED).is_some_and(|c| c["status"] == "True") {
        return (failed, Available::DiffReported);
    }
    let available = match current(cc::AVAILABLE).filter(|c| c["status"] == "True") {
        Some(c) => Available::True {
            trackable: c["reason"] != BindingReason::NotAllWorkAreAvailabilityTrackable.as_str(),
            since: c["lastTransitionTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc)),
        },
        None => Available::No,
    };
    (failed, available)
}

/// What the rollout needs to know of one binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The target cluster.
    pub cluster: &'a str,
    /// Its state.
    pub state: BindingState,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Bound to the latest resource snapshot and overrides.
    pub up_to_date: bool,
    /// A condition of it is False for its generation (Overridden, WorkSynchronized, Applied,
    /// Available or DiffReported).
    pub failed: bool,
    /// Its availability.
    pub available: Available,
}

/// Which bindings change now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision<'a> {
    /// Clusters whose binding is bound, updated to the latest resources, or removed now.
    pub change: Vec<&'a str>,
    /// Stale clusters left for later by the budget (RolloutStarted False, "waiting").
    pub waiting: Vec<&'a str>,
    /// When to look again for an untrackable binding to become ready (`None`: when something
    /// changes).
    pub requeue: Option<Duration>,
}

/// Whether `b` is ready at `now`; if not, how long until it may be (`None`: unknown).
fn readiness(b: &Binding<'_>, period: Duration, now: DateTime<Utc>) -> (bool, Option<Duration>) {
    match b.available {
        Available::True {
            trackable: true, ..
        } => (true, None),
        Available::True {
            trackable: false,
            since,
        } => {
            let ready_at = since + chrono::Duration::from_std(period).unwrap_or_default();
            match (ready_at - now).to_std() {
                Ok(wait) if !wait.is_zero() => (false, Some(wait)),
                _ => (true, None),
            }
        }
        Available::DiffReported => (true, None),
        Available::No => (false, None),
    }
}

/// Decides which of a placement's bindings may change now (`bindings` in the order the
/// candidates are taken; the caller sorts them by cluster name).
pub fn decide<'a>(
    bindings: &[Binding<'a>],
    target: usize,
    strategy: &RollingUpdate,
    now: DateTime<Utc>,
) -> Decision<'a> {
    let (mut ready, mut can_be_ready, mut can_be_unavailable) = (0i64, 0i64, 0i64);
    let mut bounding = Vec::new();
    let mut removals = Vec::new();
    let mut updates = Vec::new();
    let mut failed_updates = Vec::new();
    let mut requeue: Option<Duration> = None;
    let mut all_ready = true;
    for b in bindings {
        let (is_ready, wait) = readiness(b, strategy.unavailable_period, now);
        let mut count_readiness = || {
            if is_ready {
                ready += 1;
            } else {
                all_ready = false;
                if let Some(w) = wait {
                    requeue = Some(requeue.map_or(w, |r| r.min(w)));
                }
            }
        };
        match b.state {
            BindingState::Scheduled => bounding.push(b.cluster),
            BindingState::Unscheduled => {
                if !b.failed && b.available != Available::DiffReported {
                    can_be_ready += 1;
                }
                count_readiness();
                if !b.deleting {
                    removals.push(b.cluster);
                } else if is_ready {
                    // Being deleted: it can go from the cluster at any moment.
                    can_be_unavailable += 1;
                }
            }
            BindingState::Bound => {
                count_readiness();
                if !b.failed && b.available != Available::DiffReported {
                    can_be_ready += 1;
                }
                if !b.deleting {
                    if b.up_to_date {
                        continue;
                    }
                    if b.failed {
                        failed_updates.push(b.cluster);
                    } else {
                        updates.push(b.cluster);
                    }
                } else if is_ready {
                    can_be_unavailable += 1;
                }
            }
        }
    }
    if all_ready {
        requeue = None;
    }
    if bounding.is_empty() && removals.is_empty() && updates.is_empty() && failed_updates.is_empty()
    {
        return Decision {
            requeue,
            ..Decision::default()
        };
    }
    let min_available = target as i64 - strategy.max_unavailable.scaled(target);
    let max_to_remove = (ready - can_be_unavailable) - min_available;
    let max_to_add = target as i64 + strategy.max_surge.scaled(target) - can_be_ready;
    let take = |list: &[&'a str], n: i64| -> (Vec<&'a str>, Vec<&'a str>) {
        let n = n.clamp(0, list.len() as i64) as usize;
        (list[..n].to_vec(), list[n..].to_vec())
    };
    // Failed bindings first, regardless of the budget; then removals, then updates, within
    // maxUnavailable; then new clusters within maxSurge.
    let mut change = failed_updates;
    let (removed, removals_left) = take(&removals, max_to_remove);
    let (updated, updates_left) = take(&updates, max_to_remove - removed.len() as i64);
    let (bound, bounding_left) = take(&bounding, max_to_add);
    change.extend(removed);
    change.extend(updated);
    change.extend(bound);
    let mut waiting = updates_left;
    waiting.extend(bounding_left);
    waiting.extend(removals_left);
    Decision {
        change,
        waiting,
        requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    const NAMES: [&str; 12] = [
        "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09", "c10", "c11", "c12",
    ];

    /// `n` bound bindings, ready and stale (a new snapshot arrived).
    fn stale(n: usize) -> Vec<Binding<'static>> {
        NAMES[..n]
            .iter()
            .map(|c| Binding {
                cluster: c,
                state: BindingState::Bound,
                deleting: false,
                up_to_date: false,
                failed: false,
                available: Available::True {
                    trackable: true,
                    since: at(-600),
                },
            })
            .collect()
    }

    fn strategy(unavailable: IntOrPercent, surge: IntOrPercent) -> RollingUpdate {
        RollingUpdate {
            max_unavailable: unavailable,
            max_surge: surge,
            unavailable_period: Duration::from_secs(60),
        }
    }

    #[test]
    fn parameters_read_with_kubefleets_defaults_and_scale_rounded_up() {
        let defaults = RollingUpdate::of_placement(&json!({}));
        assert_eq!(
            defaults,
            strategy(IntOrPercent::Percent(25), IntOrPercent::Percent(25))
        );
        let given = RollingUpdate::of_placement(&json!({"strategy": {"rollingUpdate": {
            "maxUnavailable": 2, "maxSurge": "50%", "unavailablePeriodSeconds": 5}}}));
        assert_eq!(given.max_unavailable, IntOrPercent::Int(2));
        assert_eq!(given.max_surge, IntOrPercent::Percent(50));
        assert_eq!(given.unavailable_period, Duration::from_secs(5));
        assert_eq!(
            IntOrPercent::parse(&json!("3"), IntOrPercent::Int(0)),
            IntOrPercent::Int(3)
        );
        assert_eq!(
            IntOrPercent::parse(&json!("x%"), IntOrPercent::Int(7)),
            IntOrPercent::Int(7)
        );
        // Percentages round up: 25% of 10 is 3, 20% of 10 is 2, 1% of 1 is 1, 0% is 0.
        for (p, total, want) in [(25, 10, 3), (20, 10, 2), (1, 1, 1), (0, 10, 0), (100, 7, 7)] {
            assert_eq!(
                IntOrPercent::Percent(p).scaled(total),
                want,
                "{p}% of {total}"
            );
        }
        assert_eq!(IntOrPercent::Int(4).scaled(100), 4);
    }

    #[test]
    fn the_target_follows_the_placement_type() {
        let spec = |p: Value| json!({"policy": p});
        assert_eq!(
            target_count(
                &spec(json!({"placementType": "PickN", "numberOfClusters": 4})),
                9
            ),
            4
        );
        assert_eq!(
            target_count(
                &spec(json!({"placementType": "PickFixed", "clusterNames": ["a", "b"]})),
                9
            ),
            2
        );
        assert_eq!(
            target_count(&spec(json!({"placementType": "PickAll"})), 9),
            9
        );
        assert_eq!(target_count(&json!({}), 3), 3);
    }

    /// (what, bindings, target, maxUnavailable, maxSurge, changed now, left waiting).
    type Case<'a> = (
        &'a str,
        Vec<Binding<'a>>,
        usize,
        IntOrPercent,
        IntOrPercent,
        &'a [&'a str],
        &'a [&'a str],
    );

    #[test]
    fn budgets_bound_each_step_of_a_rollout() {
        let now = at(0);
        // (case, bindings, target, maxUnavailable, maxSurge) -> (change, waiting)
        let mut two_updating = stale(10);
        for b in &mut two_updating[..2] {
            b.up_to_date = true;
            b.available = Available::No;
        }
        let mut failed = stale(10);
        failed[9].failed = true;
        failed[9].available = Available::No;
        let scheduled = |c: &'static str| Binding {
            cluster: c,
            state: BindingState::Scheduled,
            deleting: false,
            up_to_date: false,
            failed: false,
            available: Available::No,
        };
        let mut scale_up = stale(10);
        for b in &mut scale_up {
            b.up_to_date = true;
        }
        scale_up.extend(["c11", "c12"].map(scheduled));
        let mut scale_down = stale(10);
        for b in &mut scale_down {
            b.up_to_date = true;
        }
        for b in &mut scale_down[6..] {
            b.state = BindingState::Unscheduled;
        }
        let mut deleting = stale(4);
        deleting[3].state = BindingState::Unscheduled;
        deleting[3].deleting = true;
        // A cluster leaving while another arrives: the leaving one still counts as one that
        // can be ready, so with maxSurge 1 of 2 the newcomer waits for it to go.
        let mut replaced = stale(3);
        replaced[0].up_to_date = true;
        replaced[1].up_to_date = true;
        replaced[2].state = BindingState::Unscheduled;
        replaced.push(scheduled("c04"));
        // A failed cluster cannot become ready: it leaves room for one newcomer, not two.
        let mut failed_room = stale(3);
        for b in &mut failed_room {
            b.up_to_date = true;
        }
        failed_room[0].failed = true;
        failed_room[0].available = Available::No;
        failed_room.push(scheduled("c04"));
        failed_room.push(scheduled("c05"));
        // A leaving cluster that failed cannot become ready: it leaves room for the newcomer.
        let mut failed_leaving = stale(2);
        failed_leaving[0].up_to_date = true;
        failed_leaving[1].state = BindingState::Unscheduled;
        failed_leaving[1].failed = true;
        failed_leaving[1].available = Available::No;
        failed_leaving.push(scheduled("c03"));
        // Removals and updates share one budget.
        let mut shared = stale(4);
        shared[3].state = BindingState::Unscheduled;
        // A bound binding being deleted may go any moment too.
        let mut bound_deleting = stale(4);
        bound_deleting[3].deleting = true;
        let cases: Vec<Case> = vec![
            (
                "a leaving cluster holds a newcomer back within maxSurge",
                replaced,
                2,
                IntOrPercent::Int(0),
                IntOrPercent::Int(1),
                &["c03"],
                &["c04"],
            ),
            (
                "a failed leaving cluster leaves room for the newcomer within maxSurge 0",
                failed_leaving,
                2,
                IntOrPercent::Int(0),
                IntOrPercent::Int(0),
                &["c03"],
                &["c02"],
            ),
            (
                "a failed cluster leaves room for one newcomer",
                failed_room,
                3,
                IntOrPercent::Int(1),
                IntOrPercent::Int(0),
                &["c04"],
                &["c05"],
            ),
            (
                "a removal and an update share maxUnavailable",
                shared,
                3,
                IntOrPercent::Int(1),
                IntOrPercent::Int(0),
                &["c04", "c01"],
                &["c02", "c03"],
            ),
            (
                "a ready bound binding being deleted counts against the budget",
                bound_deleting,
                3,
                IntOrPercent::Int(1),
                IntOrPercent::Int(0),
                &["c01"],
                &["c02", "c03"],
            ),
            (
                "nothing stale: nothing changes",
                scale_up[..10].to_vec(),
                10,
                IntOrPercent::Percent(25),
                IntOrPercent::Percent(25),
                &[],
                &[],
            ),
            (
                "maxUnavailable 20% of 10: two clusters at a time",
                stale(10),
                10,
                IntOrPercent::Percent(20),
                IntOrPercent::Percent(25),
                &["c01", "c02"],
                &["c03", "c04", "c05", "c06", "c07", "c08", "c09", "c10"],
            ),
            (
                "two still updating use the whole budget",
                two_updating,
                10,
                IntOrPercent::Percent(20),
                IntOrPercent::Percent(25),
                &[],
                &["c03", "c04", "c05", "c06", "c07", "c08", "c09", "c10"],
            ),
            (
                "a failed binding is updated although it leaves no budget",
                failed,
                10,
                IntOrPercent::Int(1),
                IntOrPercent::Int(0),
                &["c10"],
                &[
                    "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09",
                ],
            ),
            (
                "maxUnavailable 0: only what failed",
                stale(3),
                3,
                IntOrPercent::Int(0),
                IntOrPercent::Int(1),
                &[],
                &["c01", "c02", "c03"],
            ),
            (
                "scale up 10 -> 12 within maxSurge (3 of 12)",
                scale_up.clone(),
                12,
                IntOrPercent::Percent(25),
                IntOrPercent::Percent(25),
                &["c11", "c12"],
                &[],
            ),
            (
                "scale up with maxSurge 0: one new cluster per missing one",
                scale_up,
                12,
                IntOrPercent::Percent(25),
                IntOrPercent::Int(0),
                &["c11", "c12"],
                &[],
            ),
            (
                "scale down 10 -> 6: removals within maxUnavailable (2 of 6)",
                scale_down,
                6,
                IntOrPercent::Percent(25),
                IntOrPercent::Percent(25),
                &["c07", "c08", "c09", "c10"],
                &[],
            ),
            (
                "a ready binding being deleted may go any moment: it counts against the budget",
                deleting,
                3,
                IntOrPercent::Int(1),
                IntOrPercent::Int(0),
                &["c01"],
                &["c02", "c03"],
            ),
        ];
        for (case, bindings, target, unavailable, surge, change, waiting) in cases {
            let d = decide(&bindings, target, &strategy(unavailable, surge), now);
            assert_eq!(d.change, change, "{case}");
            assert_eq!(d.waiting, waiting, "{case}");
        }
    }

    #[test]
    fn a_bindings_status_says_whether_it_failed_and_how_it_is_available() {
        let cond = |ty: &str, st: &str, reason: &str, gen: i64| {
            json!({"type": ty, "status": st, "reason": reason, "observedGeneration": gen,
                "lastTransitionTime": "2027-01-15T08:00:00Z"})
        };
        let status = |conds: Vec<Value>| json!({ "conditions": conds });
        let since = DateTime::parse_from_rfc3339("2027-01-15T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // Available for the binding's generation: tracked, or not (untrackable kinds).
        let s = status(vec![cond("Available", "True", "AllWorkAreAvailable", 2)]);
        assert_eq!(
            observe(&s, Some(2)),
            (
                false,
                Available::True {
                    trackable: true,
                    since
                }
            )
        );
        let s = status(vec![cond(
            "Available",
            "True",
            "NotAllWorkAreAvailabilityTrackable",
            2,
        )]);
        assert_eq!(
            observe(&s, Some(2)),
            (
                false,
                Available::True {
                    trackable: false,
                    since
                }
            )
        );
        // Of an older generation: neither available nor failed.
        let s = status(vec![
            cond("Available", "True", "AllWorkAreAvailable", 1),
            cond("Applied", "False", "WorkNotAppliedYet", 1),
        ]);
        assert_eq!(observe(&s, Some(2)), (false, Available::No));
        // Any of the conditions False fails it.
        for ty in [
            "Overridden",
            "WorkSynchronized",
            "Applied",
            "Available",
            "DiffReported",
        ] {
            let s = status(vec![cond(ty, "False", "X", 3)]);
            assert_eq!(observe(&s, Some(3)), (true, Available::No), "{ty}");
        }
        // RolloutStarted False (held back) is no failure.
        let s = status(vec![cond(
            "RolloutStarted",
            "False",
            "RolloutNotStartedYet",
            3,
        )]);
        assert_eq!(observe(&s, Some(3)), (false, Available::No));
        // ReportDiff: reported differences make it ready.
        let s = status(vec![cond("DiffReported", "True", "DiffReported", 3)]);
        assert_eq!(observe(&s, Some(3)), (false, Available::DiffReported));
    }

    #[test]
    fn diff_reported_bindings_are_ready_but_never_count_as_can_be_ready() {
        // Two clusters report differences, one is new: target 3, maxSurge 0. The reported ones
        // do not count against the surge, so the newcomer comes at once; they count as ready,
        // but two ready of the 3 - 1 that must stay leave no room for an update yet.
        let mut b = stale(2);
        for x in &mut b {
            x.available = Available::DiffReported;
        }
        b.push(Binding {
            cluster: "c03",
            state: BindingState::Scheduled,
            deleting: false,
            up_to_date: false,
            failed: false,
            available: Available::No,
        });
        let d = decide(
            &b,
            3,
            &strategy(IntOrPercent::Int(1), IntOrPercent::Int(0)),
            at(0),
        );
        assert_eq!(d.change, ["c03"]);
        assert_eq!(d.waiting, ["c01", "c02"]);
    }

    #[test]
    fn untrackable_bindings_are_ready_after_the_unavailable_period() {
        let mut b = stale(4);
        for x in &mut b[..3] {
            x.up_to_date = true;
        }
        // c01 applied 20 s ago, its kinds untrackable: not ready for another 40 s.
        b[0].available = Available::True {
            trackable: false,
            since: at(-20),
        };
        let s = strategy(IntOrPercent::Int(1), IntOrPercent::Int(0));
        let d = decide(&b, 4, &s, at(0));
        assert!(d.change.is_empty(), "{d:?}");
        assert_eq!(d.waiting, ["c04"]);
        assert_eq!(d.requeue, Some(Duration::from_secs(40)));
        // At the end of the period it counts as ready, and c04 may go.
        let d = decide(&b, 4, &s, at(40));
        assert_eq!(d.change, ["c04"]);
        assert_eq!(d.requeue, None);
        // With nothing stale the wait is still reported.
        let d = decide(&b[..3], 3, &s, at(0));
        assert!(d.change.is_empty() && d.waiting.is_empty(), "{d:?}");
        assert_eq!(d.requeue, Some(Duration::from_secs(40)));
    }
}
