//! KubeFleet's eviction API: `ClusterResourcePlacementEviction` (remove a placement's resources
//! from one cluster, once) and `ClusterResourcePlacementDisruptionBudget` (named as its
//! placement: how many of its clusters voluntary disruptions may take down). The CRD schemas
//! follow KubeFleet's types; its CEL rules are admission checks here.

use serde_json::{json, Value};

use super::schema::placement_crd;
use crate::crds::{conditions, desc};
use crate::member::FieldError;

fn eviction_crd() -> Value {
    let schema = json!({
        "type": "object",
        "description": "Removes a placement's resources from one cluster, once; subject to the placement's disruption budget.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "required": ["placementName", "clusterName"], "properties": {
                "placementName": desc("The ClusterResourcePlacement; immutable.", json!({"type": "string", "maxLength": 255})),
                "clusterName": desc("The cluster; immutable.", json!({"type": "string", "maxLength": 255}))
            }},
            "status": {"type": "object", "properties": {
                "conditions": conditions("Valid, Executed.")
            }}
        }
    });
    let cond = |t: &str| format!(".status.conditions[?(@.type==\"{t}\")].status");
    placement_crd(
        "ClusterResourcePlacementEviction",
        "clusterresourceplacementevictions",
        "Cluster",
        &["crpe"],
        json!([
            {"name": "Valid", "type": "string", "jsonPath": cond("Valid")},
            {"name": "Executed", "type": "string", "jsonPath": cond("Executed")},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]),
        schema,
    )
}

fn int_or_percent(text: &str) -> Value {
    desc(
        text,
        json!({"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true}),
    )
}

fn budget_crd() -> Value {
    let schema = json!({
        "type": "object",
        "description": "How many clusters of the placement of the same name voluntary disruptions (evictions) may take down.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "maxUnavailable": int_or_percent("At most this many (or this percentage of PickN's numberOfClusters) clusters unavailable; not with PickAll."),
                "minAvailable": int_or_percent("At least this many (or this percentage of PickN's numberOfClusters) clusters available; PickAll: an integer.")
            }}
        }
    });
    let mut c = placement_crd(
        "ClusterResourcePlacementDisruptionBudget",
        "clusterresourceplacementdisruptionbudgets",
        "Cluster",
        &["crpdb"],
        json!([
            {"name": "Max-Unavailable", "type": "string", "jsonPath": ".spec.maxUnavailable"},
            {"name": "Min-Available", "type": "string", "jsonPath": ".spec.minAvailable"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]),
        schema,
    );
    // Budgets have no status.
    for v in c["spec"]["versions"].as_array_mut().into_iter().flatten() {
        v.as_object_mut().map(|m| m.remove("subresources"));
    }
    c
}

/// The eviction CRDs.
pub fn crds() -> Vec<Value> {
    vec![eviction_crd(), budget_crd()]
}

fn invalid(errs: &mut Vec<FieldError>, field: &str, message: impl Into<String>) {
    errs.push(("FieldValueInvalid", field.to_string(), message.into()));
}

/// KubeFleet's rules on evictions: placementName and clusterName are immutable.
pub fn validate_eviction(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(old) = old {
        for (f, name) in [
            ("placementName", "PlacementName"),
            ("clusterName", "ClusterName"),
        ] {
            if obj["spec"][f] != old["spec"][f] {
                invalid(
                    &mut errs,
                    &format!("spec.{f}"),
                    format!("The {name} field is immutable"),
                );
            }
        }
    }
    errs
}

/// KubeFleet's rules on disruption budgets: not both maxUnavailable and minAvailable; each an
/// integer of at least 0 or a percentage `N%` (0 to 100).
pub fn validate_budget(obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    if !spec["maxUnavailable"].is_null() && !spec["minAvailable"].is_null() {
        invalid(
            &mut errs,
            "spec",
            "Both MaxUnavailable and MinAvailable cannot be specified",
        );
    }
    for f in ["maxUnavailable", "minAvailable"] {
        let ok = match &spec[f] {
            Value::Null => true,
            Value::Number(n) => n.as_i64().is_some_and(|n| n >= 0),
            Value::String(s) => is_percent(s),
            _ => false,
        };
        if !ok {
            invalid(
                &mut errs,
                &format!("spec.{f}"),
                "If supplied value is String should match regex '^(100|[0-9]{1,2})%$' or If supplied value is Integer must be greater than or equal to 0",
            );
        }
    }
    errs
}

/// Whether `s` matches KubeFleet's `^(100|[0-9]{1,2})%$`.
fn is_percent(s: &str) -> bool {
    s.strip_suffix('%').is_some_and(|n| {
        n == "100" || (!n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The reasons of an eviction's conditions (KubeFleet's).
pub mod reason {
    /// Valid True.
    pub const VALID: &str = "ClusterResourcePlacementEvictionValid";
    /// Valid False.
    pub const INVALID: &str = "ClusterResourcePlacementEvictionInvalid";
    /// Executed True.
    pub const EXECUTED: &str = "ClusterResourcePlacementEvictionExecuted";
    /// Executed False.
    pub const NOT_EXECUTED: &str = "ClusterResourcePlacementEvictionNotExecuted";
}

/// KubeFleet's messages, word for word.
pub mod message {
    /// Invalid: no such placement.
    pub const MISSING_PLACEMENT: &str =
        "Failed to find ClusterResourcePlacement targeted by eviction";
    /// Invalid: the placement is being deleted.
    pub const DELETING_PLACEMENT: &str =
        "Found deleting ClusterResourcePlacement targeted by eviction";
    /// Invalid: PickFixed.
    pub const PICK_FIXED: &str =
        "Found ClusterResourcePlacement with PickFixed placement type targeted by eviction";
    /// Invalid: no binding for the cluster.
    pub const MISSING_BINDING: &str =
        "Failed to find scheduler decision for placement in cluster targeted by eviction";
    /// Invalid: more than one binding for the cluster.
    pub const MULTIPLE_BINDINGS: &str =
        "Found more than one scheduler decision for placement in cluster targeted by eviction";
    /// Valid.
    pub const VALID: &str = "Eviction is valid";
    /// Executed: no budget.
    pub const NO_BUDGET: &str =
        "Eviction is allowed, no ClusterResourcePlacementDisruptionBudget specified";
    /// Executed: the binding is being deleted.
    pub const BEING_REMOVED: &str = "Eviction is allowed, resources propagated by placement is currently being removed from cluster targeted by eviction";
    /// Executed: the binding failed.
    pub const FAILED: &str = "Eviction is allowed, placement has failed";
    /// Not executed: a PickAll budget with maxUnavailable or a percentage.
    pub const MISCONFIGURED: &str = "Eviction is blocked by misconfigured ClusterResourcePlacementDisruptionBudget, either MaxUnavailable is specified or MinAvailable is specified as a percentage for PickAll ClusterResourcePlacement";
    /// Not executed: nothing placed yet.
    pub const NOT_PLACED: &str =
        "Eviction is blocked, placement has not propagated resources to target cluster yet";
}

/// Executed, allowed by the budget.
pub fn allowed_message(available: usize, total: usize) -> String {
    format!("Eviction is allowed by specified ClusterResourcePlacementDisruptionBudget, availablePlacements: {available}, totalPlacements: {total}")
}

/// Not executed, blocked by the budget.
pub fn blocked_message(available: usize, total: usize) -> String {
    format!("Eviction is blocked by specified ClusterResourcePlacementDisruptionBudget, availablePlacements: {available}, totalPlacements: {total}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_take_one_bound_as_an_integer_or_a_percentage() {
        for (spec, ok) in [
            (json!({"maxUnavailable": 1}), true),
            (json!({"minAvailable": "50%"}), true),
            (json!({"minAvailable": "100%"}), true),
            (json!({"minAvailable": 0}), true),
            (json!({"maxUnavailable": -1}), false),
            (json!({"maxUnavailable": "101%"}), false),
            (json!({"maxUnavailable": "5"}), false),
            (json!({"maxUnavailable": 1, "minAvailable": 1}), false),
        ] {
            let errs = validate_budget(&json!({ "spec": spec }), None);
            assert_eq!(errs.is_empty(), ok, "{spec}: {errs:?}");
        }
        let both = validate_budget(
            &json!({"spec": {"maxUnavailable": 1, "minAvailable": 1}}),
            None,
        );
        assert_eq!(both[0].1, "spec");
    }

    #[test]
    fn evictions_cannot_change_their_target() {
        let e = |c: &str| json!({"spec": {"placementName": "web", "clusterName": c}});
        assert!(validate_eviction(&e("a"), Some(&e("a"))).is_empty());
        let errs = validate_eviction(&e("b"), Some(&e("a")));
        assert_eq!(
            errs,
            [(
                "FieldValueInvalid",
                "spec.clusterName".to_string(),
                "The ClusterName field is immutable".to_string()
            )]
        );
    }
}
