//! Whether an eviction may remove a placement's resources from a cluster (pure): KubeFleet's
//! rules, read from its eviction controller. Invalid for a missing or deleting placement, a
//! PickFixed one, or no single binding for the cluster; always executed for a binding being
//! deleted, failed or diff-reported, or when the placement has no disruption budget; not
//! executed when nothing was placed there yet, for a PickAll placement whose budget sets
//! maxUnavailable or a percentage, or when the budget allows no disruption.

use flotilla_api::placement::eviction::{allowed_message, blocked_message, message};
use serde_json::Value;

use crate::placement::rollout::{observe, Available, IntOrPercent};

/// What becomes of an eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid False (terminal), with KubeFleet's message.
    Invalid(&'static str),
    /// Valid True, Executed False (terminal): the message says why.
    NotExecuted(String),
    /// Valid True, Executed True; the binding to delete (name, resourceVersion), if any.
    Executed {
        /// The Executed condition's message.
        message: String,
        /// The binding to delete, with the resourceVersion it was judged at.
        delete: Option<(String, String)>,
    },
}

fn available(b: &Value) -> bool {
    matches!(
        observe(&b["status"], b["metadata"]["generation"].as_i64()).1,
        Available::True { .. }
    )
}

/// Decides an eviction of `cluster` from `placement` (`None`: not found), given the
/// placement's bindings and its disruption budget (`None`: none).
pub fn decide(
    placement: Option<&Value>,
    bindings: &[Value],
    cluster: &str,
    budget: Option<&Value>,
) -> Verdict {
    let Some(p) = placement else {
        return Verdict::Invalid(message::MISSING_PLACEMENT);
    };
    if !p["metadata"]["deletionTimestamp"].is_null() {
        return Verdict::Invalid(message::DELETING_PLACEMENT);
    }
    let policy = &p["spec"]["policy"];
    let placement_type = policy["placementType"].as_str().unwrap_or("PickAll");
    if placement_type == "PickFixed" {
        return Verdict::Invalid(message::PICK_FIXED);
    }
    let targets: Vec<&Value> = bindings
        .iter()
        .filter(|b| b["spec"]["targetCluster"] == cluster)
        .collect();
    let target = match targets.as_slice() {
        [] => return Verdict::Invalid(message::MISSING_BINDING),
        [one] => *one,
        _ => return Verdict::Invalid(message::MULTIPLE_BINDINGS),
    };
    if !target["metadata"]["deletionTimestamp"].is_null() {
        return Verdict::Executed {
            message: message::BEING_REMOVED.into(),
            delete: None,
        };
    }
    let state = target["spec"]["state"].as_str().unwrap_or("");
    let placed = state == "Bound"
        || (state == "Unscheduled" && target["spec"]["resourceSnapshotName"].is_string());
    if !placed {
        return Verdict::NotExecuted(message::NOT_PLACED.into());
    }
    let delete = Some((
        target["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        target["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    ));
    let (failed, availability) =
        observe(&target["status"], target["metadata"]["generation"].as_i64());
    if failed || availability == Available::DiffReported {
        return Verdict::Executed {
            message: message::FAILED.into(),
            delete,
        };
    }
    let Some(budget) = budget else {
        return Verdict::Executed {
            message: message::NO_BUDGET.into(),
            delete,
        };
    };
    let spec = &budget["spec"];
    if placement_type == "PickAll"
        && (!spec["maxUnavailable"].is_null() || spec["minAvailable"].is_string())
    {
        return Verdict::NotExecuted(message::MISCONFIGURED.into());
    }
    let total = bindings.len();
    let up = bindings.iter().filter(|b| available(b)).count();
    let desired = if placement_type == "PickN" {
        policy["numberOfClusters"].as_u64().unwrap_or(0) as usize
    } else {
        0
    };
    let zero = IntOrPercent::Int(0);
    let allowed = if !spec["maxUnavailable"].is_null() {
        let max = IntOrPercent::parse(&spec["maxUnavailable"], zero).scaled(desired);
        max - (total - up) as i64
    } else if !spec["minAvailable"].is_null() {
        let min = IntOrPercent::parse(&spec["minAvailable"], zero).scaled(desired);
        up as i64 - min
    } else {
        0
    };
    if allowed > 0 {
        Verdict::Executed {
            message: allowed_message(up, total),
            delete,
        }
    } else {
        Verdict::NotExecuted(blocked_message(up, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(cluster: &str, state: &str, available: Option<bool>) -> Value {
        let mut conds = vec![];
        if let Some(a) = available {
            conds.push(json!({"type": "Available", "status": if a { "True" } else { "False" },
                "reason": "x", "observedGeneration": 1, "lastTransitionTime": "2027-01-01T00:00:00Z"}));
        }
        json!({"metadata": {"name": format!("web-{cluster}"), "generation": 1, "resourceVersion": "42"},
            "spec": {"targetCluster": cluster, "state": state, "resourceSnapshotName": "web-0-snapshot"},
            "status": {"conditions": conds}})
    }

    fn placement(policy: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"policy": policy}})
    }

    #[test]
    fn kubefleets_eviction_rules() {
        let pick_n = placement(json!({"placementType": "PickN", "numberOfClusters": 3}));
        let pick_all = placement(json!({"placementType": "PickAll"}));
        let pick_fixed = placement(json!({"placementType": "PickFixed", "clusterNames": ["a"]}));
        let three_up = vec![
            binding("a", "Bound", Some(true)),
            binding("b", "Bound", Some(true)),
            binding("c", "Bound", Some(true)),
        ];
        let mut one_down = three_up.clone();
        one_down[2] = binding("c", "Bound", None);
        let mut deleting = three_up.clone();
        deleting[0]["metadata"]["deletionTimestamp"] = json!("2027-01-01T00:00:00Z");
        let mut failed = three_up.clone();
        failed[0] = binding("a", "Bound", Some(false));
        let mut twice = three_up.clone();
        twice.push(binding("a", "Unscheduled", Some(true)));
        let scheduled = vec![binding("a", "Scheduled", None)];
        let budget = |spec: Value| Some(json!({ "spec": spec }));
        let executed = |m: &str| Verdict::Executed {
            message: m.to_string(),
            delete: Some(("web-a".into(), "42".into())),
        };
        /// (case, placement, its bindings, its budget, the verdict).
        type Case<'a> = (
            &'a str,
            Option<&'a Value>,
            &'a [Value],
            Option<Value>,
            Verdict,
        );
        let cases: Vec<Case> = vec![
            (
                "no placement",
                None,
                &three_up,
                None,
                Verdict::Invalid(message::MISSING_PLACEMENT),
            ),
            (
                "PickFixed",
                Some(&pick_fixed),
                &three_up,
                None,
                Verdict::Invalid(message::PICK_FIXED),
            ),
            (
                "no binding",
                Some(&pick_n),
                &three_up[1..],
                None,
                Verdict::Invalid(message::MISSING_BINDING),
            ),
            (
                "two bindings",
                Some(&pick_n),
                &twice,
                None,
                Verdict::Invalid(message::MULTIPLE_BINDINGS),
            ),
            (
                "no budget",
                Some(&pick_n),
                &three_up,
                None,
                executed(message::NO_BUDGET),
            ),
            (
                "being deleted",
                Some(&pick_n),
                &deleting,
                budget(json!({"maxUnavailable": 0})),
                Verdict::Executed {
                    message: message::BEING_REMOVED.into(),
                    delete: None,
                },
            ),
            (
                "failed",
                Some(&pick_n),
                &failed,
                budget(json!({"maxUnavailable": 0})),
                executed(message::FAILED),
            ),
            (
                "not placed",
                Some(&pick_n),
                &scheduled,
                None,
                Verdict::NotExecuted(message::NOT_PLACED.into()),
            ),
            (
                "maxUnavailable 1, all up",
                Some(&pick_n),
                &three_up,
                budget(json!({"maxUnavailable": 1})),
                executed(&allowed_message(3, 3)),
            ),
            (
                "maxUnavailable 1, one down",
                Some(&pick_n),
                &one_down,
                budget(json!({"maxUnavailable": 1})),
                Verdict::NotExecuted(blocked_message(2, 3)),
            ),
            (
                "minAvailable 67% of 3 rounds up to 3",
                Some(&pick_n),
                &three_up,
                budget(json!({"minAvailable": "67%"})),
                Verdict::NotExecuted(blocked_message(3, 3)),
            ),
            (
                "minAvailable 2",
                Some(&pick_n),
                &three_up,
                budget(json!({"minAvailable": 2})),
                executed(&allowed_message(3, 3)),
            ),
            (
                "PickAll with maxUnavailable",
                Some(&pick_all),
                &three_up,
                budget(json!({"maxUnavailable": 1})),
                Verdict::NotExecuted(message::MISCONFIGURED.into()),
            ),
            (
                "PickAll with a percentage",
                Some(&pick_all),
                &three_up,
                budget(json!({"minAvailable": "50%"})),
                Verdict::NotExecuted(message::MISCONFIGURED.into()),
            ),
            (
                "PickAll minAvailable 2",
                Some(&pick_all),
                &three_up,
                budget(json!({"minAvailable": 2})),
                executed(&allowed_message(3, 3)),
            ),
            (
                "PickAll minAvailable 3",
                Some(&pick_all),
                &three_up,
                budget(json!({"minAvailable": 3})),
                Verdict::NotExecuted(blocked_message(3, 3)),
            ),
            (
                "an empty budget allows nothing",
                Some(&pick_n),
                &three_up,
                budget(json!({})),
                Verdict::NotExecuted(blocked_message(3, 3)),
            ),
        ];
        for (case, p, bindings, budget, want) in cases {
            assert_eq!(decide(p, bindings, "a", budget.as_ref()), want, "{case}");
        }
        let mut gone = pick_n.clone();
        gone["metadata"]["deletionTimestamp"] = json!("2027-01-01T00:00:00Z");
        assert_eq!(
            decide(Some(&gone), &three_up, "a", None),
            Verdict::Invalid(message::DELETING_PLACEMENT)
        );
    }
}
