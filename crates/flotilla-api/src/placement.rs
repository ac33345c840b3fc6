//! KubeFleet's `placement.kubernetes-fleet.io` group: placements (ClusterResourcePlacement,
//! ResourcePlacement), the hub's records of its decisions (resource and scheduling-policy
//! snapshots, bindings), the work sent to members (Work, AppliedWork), overrides and their
//! snapshots, and envelopes. Served in v1 (stored) and v1beta1 with one schema. Field names,
//! types, defaults and limits follow KubeFleet's API; rules it writes in CEL are admission
//! checks (`validate_placement`).

use serde_json::{json, Value};

use crate::crds::{conditions, crd_in, desc, string, CrdNames};

/// API group of placements.
pub const PLACEMENT_GROUP: &str = "placement.kubernetes-fleet.io";
/// The version the hub stores placement objects in.
pub const STORAGE_VERSION: &str = "v1";

/// Labels and annotations KubeFleet puts on the objects it derives.
pub mod label {
    /// On snapshots, bindings and works: the ClusterResourcePlacement (or ResourcePlacement) they belong to.
    pub const PARENT_CRP: &str = "kubernetes-fleet.io/parent-CRP";
    /// On snapshots: `true` on the latest one.
    pub const IS_LATEST_SNAPSHOT: &str = "kubernetes-fleet.io/is-latest-snapshot";
    /// On resource snapshots and works: the resource index.
    pub const RESOURCE_INDEX: &str = "kubernetes-fleet.io/resource-index";
    /// On scheduling-policy snapshots: the policy index.
    pub const POLICY_INDEX: &str = "kubernetes-fleet.io/policy-index";
    /// On works: the index of the resource snapshot they were generated from.
    pub const PARENT_RESOURCE_SNAPSHOT_INDEX: &str =
        "kubernetes-fleet.io/parent-resource-snapshot-index";
    /// On works: the binding they were generated for.
    pub const PARENT_BINDING: &str = "kubernetes-fleet.io/parent-resource-binding";
    /// On works of a ResourcePlacement: its namespace.
    pub const PARENT_NAMESPACE: &str = "kubernetes-fleet.io/parent-namespace";
    /// On ClusterResourceOverride snapshots: the override.
    pub const PARENT_CLUSTER_RESOURCE_OVERRIDE: &str =
        "kubernetes-fleet.io/parent-cluster-resource-override";
    /// On ResourceOverride snapshots: the override.
    pub const PARENT_RESOURCE_OVERRIDE: &str = "kubernetes-fleet.io/parent-resource-override";
    /// On override snapshots: the index.
    pub const OVERRIDE_INDEX: &str = "kubernetes-fleet.io/override-index";
}

/// Annotations.
pub mod annotation {
    /// On resource snapshots: hash of the selected resources.
    pub const RESOURCE_HASH: &str = "kubernetes-fleet.io/resource-hash";
    /// On policy snapshots: hash of the policy (numberOfClusters aside).
    pub const POLICY_HASH: &str = "kubernetes-fleet.io/policy-hash";
    /// On policy snapshots: numberOfClusters of a PickN policy (changing N does not make a new
    /// snapshot).
    pub const NUMBER_OF_CLUSTERS: &str = "kubernetes-fleet.io/number-of-clusters";
    /// On snapshots and bindings: the placement generation they were derived from.
    pub const CRP_GENERATION: &str = "kubernetes-fleet.io/CRP-generation";
    /// On resource snapshots: how many snapshot objects make up the resource index.
    pub const NUMBER_OF_RESOURCE_SNAPSHOTS: &str =
        "kubernetes-fleet.io/number-of-resource-snapshots";
    /// On override snapshots and others: the hash of the spec.
    pub const OVERRIDE_HASH: &str = "kubernetes-fleet.io/override-hash";
    /// On works and applied works: the placement's deleteStrategy (Delete or Abandon).
    pub const DELETE_STRATEGY: &str = "kubernetes-fleet.io/delete-strategy";
}

/// Finalizers.
pub mod finalizer {
    /// On a placement: its snapshots, bindings and works are cleaned up first.
    pub const PLACEMENT_CLEANUP: &str = "kubernetes-fleet.io/crp-cleanup";
}

/// Condition types of a ClusterResourcePlacement (a ResourcePlacement uses the same words
/// with `ResourcePlacement` in place of `ClusterResourcePlacement`).
pub mod crp_condition {
    /// Scheduled.
    pub const SCHEDULED: &str = "ClusterResourcePlacementScheduled";
    /// Rollout started on every scheduled cluster.
    pub const ROLLOUT_STARTED: &str = "ClusterResourcePlacementRolloutStarted";
    /// Overrides applied.
    pub const OVERRIDDEN: &str = "ClusterResourcePlacementOverridden";
    /// Works created or updated.
    pub const WORK_SYNCHRONIZED: &str = "ClusterResourcePlacementWorkSynchronized";
    /// Applied in every cluster.
    pub const APPLIED: &str = "ClusterResourcePlacementApplied";
    /// Available in every cluster.
    pub const AVAILABLE: &str = "ClusterResourcePlacementAvailable";
    /// Differences reported (ReportDiff).
    pub const DIFF_REPORTED: &str = "ClusterResourcePlacementDiffReported";
}

/// Per-cluster condition types (placement status entries, bindings).
pub mod cluster_condition {
    /// Scheduled to the cluster.
    pub const SCHEDULED: &str = "Scheduled";
    /// Rollout started on the cluster.
    pub const ROLLOUT_STARTED: &str = "RolloutStarted";
    /// Overrides applied.
    pub const OVERRIDDEN: &str = "Overridden";
    /// Works created or updated.
    pub const WORK_SYNCHRONIZED: &str = "WorkSynchronized";
    /// Applied.
    pub const APPLIED: &str = "Applied";
    /// Available.
    pub const AVAILABLE: &str = "Available";
    /// Differences reported.
    pub const DIFF_REPORTED: &str = "DiffReported";
}

fn label_selector(text: &str) -> Value {
    desc(
        text,
        json!({"type": "object", "x-kubernetes-map-type": "atomic", "properties": {
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
            "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"], "properties": {
                "key": {"type": "string"},
                "operator": {"type": "string"},
                "values": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}
            }}, "x-kubernetes-list-type": "atomic"}
        }}),
    )
}

fn enumeration(text: &str, values: &[&str], default: Option<&str>) -> Value {
    let mut v = desc(text, json!({"type": "string", "enum": values}));
    if let Some(d) = default {
        v["default"] = json!(d);
    }
    v
}

fn int32(text: &str) -> Value {
    desc(text, json!({"type": "integer", "format": "int32"}))
}

/// A list whose items the hub writes and clients read: typed at the top, open below.
fn open_list(text: &str) -> Value {
    desc(
        text,
        json!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
    )
}

fn open_object(text: &str) -> Value {
    desc(
        text,
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    )
}

fn resource_selectors(text: &str, namespaced: bool) -> Value {
    let mut props = json!({
        "group": string("Group of the resources (empty for the core group)."),
        "version": string("Version of the resources."),
        "kind": string("Kind of the resources."),
        "name": string("Name of one resource (with no label selector)."),
        "labelSelector": label_selector("Selects resources by label (with no name).")
    });
    if !namespaced {
        props["selectionScope"] = enumeration(
            "For a Namespace: the namespace alone, or with every resource in it, or with the resources the other selectors pick in it.",
            &["NamespaceOnly", "NamespaceWithResources", "NamespaceWithResourceSelectors"],
            Some("NamespaceWithResources"),
        );
    }
    desc(
        text,
        json!({"type": "array", "minItems": 1, "maxItems": 100, "items": {
            "type": "object", "required": ["group", "version", "kind"], "properties": props}}),
    )
}

fn cluster_selector_term() -> Value {
    json!({"type": "object", "properties": {
        "labelSelector": label_selector("Labels the cluster must have."),
        "propertySelector": desc("Properties the cluster must have (required terms only).", json!({
            "type": "object", "required": ["matchExpressions"], "properties": {
                "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["name", "operator", "values"], "properties": {
                    "name": string("The property (e.g. kubernetes-fleet.io/node-count, resources.kubernetes-fleet.io/available-cpu)."),
                    "operator": enumeration("How the cluster's value compares to the given one.", &["Gt", "Ge", "Eq", "Ne", "Lt", "Le"], None),
                    "values": {"type": "array", "maxItems": 1, "items": {"type": "string"}}
                }}}
            }})),
        "propertySorter": desc("Grades clusters by a property (preferred terms only).", json!({
            "type": "object", "required": ["name", "sortOrder"], "properties": {
                "name": string("The property."),
                "sortOrder": enumeration("Descending prefers higher values, Ascending lower ones.", &["Descending", "Ascending"], None)
            }}))
    }})
}

fn toleration() -> Value {
    json!({"type": "object", "properties": {
        "key": string("The taint key (empty with Exists: every key)."),
        "operator": enumeration("Equal or Exists.", &["Equal", "Exists"], Some("Equal")),
        "value": string("The taint value (with Equal)."),
        "effect": enumeration("The effect (empty: every effect).", &["NoSchedule"], None)
    }})
}

/// `spec.policy` of a placement (also a scheduling-policy snapshot's `spec.policy`).
fn policy() -> Value {
    desc(
        "Which member clusters the resources go to. Absent: every joined cluster.",
        json!({"type": "object", "properties": {
            "placementType": enumeration("PickAll, PickN or PickFixed; cannot change.", &["PickAll", "PickN", "PickFixed"], Some("PickAll")),
            "clusterNames": desc("PickFixed: the clusters.", json!({"type": "array", "maxItems": 100, "items": {"type": "string"}})),
            "numberOfClusters": desc("PickN: how many clusters.", json!({"type": "integer", "format": "int32", "minimum": 0})),
            "affinity": desc("Cluster affinity.", json!({"type": "object", "properties": {
                "clusterAffinity": {"type": "object", "properties": {
                    "requiredDuringSchedulingIgnoredDuringExecution": desc("Clusters must match one of these terms when picked.", json!({
                        "type": "object", "required": ["clusterSelectorTerms"], "properties": {
                            "clusterSelectorTerms": {"type": "array", "maxItems": 10, "items": cluster_selector_term()}
                        }})),
                    "preferredDuringSchedulingIgnoredDuringExecution": desc("Weighted preferences.", json!({
                        "type": "array", "items": {"type": "object", "required": ["weight", "preference"], "properties": {
                            "weight": {"type": "integer", "format": "int32", "minimum": -100, "maximum": 100},
                            "preference": cluster_selector_term()
                        }}}))
                }}
            }})),
            "topologySpreadConstraints": desc("PickN: how to spread over cluster topology.", json!({
                "type": "array", "items": {"type": "object", "required": ["topologyKey"], "properties": {
                    "maxSkew": {"type": "integer", "format": "int32", "minimum": 1, "default": 1},
                    "topologyKey": string("The cluster label whose values are the topology domains."),
                    "whenUnsatisfiable": enumeration("DoNotSchedule (a hard limit) or ScheduleAnyway.", &["DoNotSchedule", "ScheduleAnyway"], None)
                }}})),
            "tolerations": desc("Taints tolerated; tolerations can be added, not changed or removed.", json!({"type": "array", "maxItems": 100, "items": toleration()}))
        }}),
    )
}

fn apply_strategy() -> Value {
    desc(
        "How the agent applies the resources in the member clusters.",
        json!({"type": "object", "properties": {
            "type": enumeration("ClientSideApply, ServerSideApply or ReportDiff (apply nothing, report differences).", &["ClientSideApply", "ServerSideApply", "ReportDiff"], Some("ClientSideApply")),
            "comparisonOption": enumeration("Compare only the fields the placement sets, or every field.", &["PartialComparison", "FullComparison"], Some("PartialComparison")),
            "whenToApply": enumeration("Always, or only while the member's object has not drifted.", &["Always", "IfNotDrifted"], Some("Always")),
            "whenToTakeOver": enumeration("For objects that already exist in the member: take over Always, only IfNoDiff, or Never.", &["Always", "IfNoDiff", "Never"], Some("Always")),
            "allowCoOwnership": desc("Apply to objects other owners also own.", json!({"type": "boolean"})),
            "serverSideApplyConfig": {"type": "object", "properties": {
                "force": desc("Take fields over from other managers on conflict.", json!({"type": "boolean"}))
            }}
        }}),
    )
}

fn strategy() -> Value {
    desc(
        "How changes roll out to the clusters.",
        json!({"type": "object", "properties": {
            "type": enumeration("RollingUpdate, or External (a staged update run drives it).", &["RollingUpdate", "External"], Some("RollingUpdate")),
            "rollingUpdate": {"type": "object", "properties": {
                "maxUnavailable": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true, "default": "25%", "pattern": "^((100|[0-9]{1,2})%|[0-9]+)$"},
                "maxSurge": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true, "default": "25%", "pattern": "^((100|[0-9]{1,2})%|[0-9]+)$"},
                "unavailablePeriodSeconds": {"type": "integer", "default": 60}
            }},
            "applyStrategy": apply_strategy(),
            "deleteStrategy": {"type": "object", "properties": {
                "propagationPolicy": enumeration("Delete the placed resources from the members with the placement, or Abandon them there.", &["Delete", "Abandon"], Some("Delete"))
            }}
        }}),
    )
}

fn resource_identifier() -> Value {
    json!({"type": "object", "required": ["version", "kind", "name"], "properties": {
        "group": {"type": "string"}, "version": {"type": "string"}, "kind": {"type": "string"},
        "name": {"type": "string"}, "namespace": {"type": "string"},
        "envelope": {"type": "object", "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"}, "type": {"type": "string"}}}
    }})
}

fn placement_schema(namespaced: bool) -> Value {
    let what = if namespaced {
        "resources of its namespace"
    } else {
        "cluster-scoped resources (namespaces with their contents)"
    };
    json!({
        "type": "object",
        "description": format!("Places {what} on member clusters."),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "required": ["resourceSelectors"], "properties": {
                "resourceSelectors": resource_selectors("The resources to place (ORed).", namespaced),
                "policy": policy(),
                "strategy": strategy(),
                "revisionHistoryLimit": desc("How many old resource and policy snapshots are kept.",
                    json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 1000, "default": 10}))
            }},
            "status": {"type": "object", "properties": {
                "selectedResources": desc("The resources selected.", json!({"type": "array", "items": resource_identifier()})),
                "observedResourceIndex": string("The resource snapshot index the conditions describe."),
                "placementStatuses": desc("One entry per scheduled cluster (PickN and PickFixed: one per wanted cluster, possibly without a cluster).",
                    json!({"type": "array", "items": {"type": "object", "properties": {
                        "clusterName": {"type": "string"},
                        "observedResourceIndex": {"type": "string"},
                        "applicableResourceOverrides": open_list("ResourceOverride snapshots applied."),
                        "applicableClusterResourceOverrides": {"type": "array", "items": {"type": "string"}},
                        "failedPlacements": open_list("Resources that failed to apply or are not available (at most 100)."),
                        "driftedPlacements": open_list("Resources changed in the member away from the placement (at most 100)."),
                        "diffedPlacements": open_list("Resources that differ from the placement (at most 100)."),
                        "conditions": conditions("Conditions of the placement on this cluster.")
                    }}})),
                "conditions": conditions("Conditions of the placement.")
            }}
        }
    })
}

fn placement_columns(kind_prefix: &str) -> Value {
    json!([
        {"name": "Gen", "type": "string", "jsonPath": ".metadata.generation"},
        {"name": "Scheduled", "type": "string", "jsonPath": format!(".status.conditions[?(@.type==\"{kind_prefix}Scheduled\")].status")},
        {"name": "Scheduled-Gen", "type": "string", "jsonPath": format!(".status.conditions[?(@.type==\"{kind_prefix}Scheduled\")].observedGeneration")},
        {"name": "Available", "type": "string", "jsonPath": format!(".status.conditions[?(@.type==\"{kind_prefix}Available\")].status")},
        {"name": "Available-Gen", "type": "string", "jsonPath": format!(".status.conditions[?(@.type==\"{kind_prefix}Available\")].observedGeneration")},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ])
}

fn simple_schema(text: &str, spec: Value, status: Value) -> Value {
    json!({
        "type": "object",
        "description": text,
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": spec,
            "status": status
        }
    })
}

fn gen_age() -> Value {
    json!([
        {"name": "Gen", "type": "string", "jsonPath": ".metadata.generation"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ])
}

fn placement_crd(
    kind: &str,
    plural: &str,
    scope: &str,
    short: &[&str],
    columns: Value,
    schema: Value,
) -> Value {
    crd_in(
        PLACEMENT_GROUP,
        STORAGE_VERSION,
        &["fleet", "fleet-placement"],
        CrdNames {
            kind,
            plural,
            scope,
            short,
        },
        columns,
        schema,
    )
}

fn resource_snapshot(namespaced: bool) -> Value {
    let schema = simple_schema(
        "An immutable snapshot of the resources a placement selected (one resource index; large selections span several objects).",
        json!({"type": "object", "required": ["selectedResources"], "properties": {
            "selectedResources": desc("The selected resources, as they were.", json!({"type": "array", "items": {
                "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}))
        }}),
        json!({"type": "object", "properties": {"conditions": conditions("Conditions.")}}),
    );
    let (kind, plural, scope) = if namespaced {
        ("ResourceSnapshot", "resourcesnapshots", "Namespaced")
    } else {
        (
            "ClusterResourceSnapshot",
            "clusterresourcesnapshots",
            "Cluster",
        )
    };
    placement_crd(kind, plural, scope, &[], gen_age(), schema)
}

fn policy_snapshot(namespaced: bool) -> Value {
    let schema = simple_schema(
        "An immutable snapshot of a placement's scheduling policy, and the scheduler's decisions under it.",
        json!({"type": "object", "properties": {
            "policy": policy(),
            "policyHash": desc("Hash of the policy.", json!({"type": "string", "format": "byte"}))
        }}),
        json!({"type": "object", "properties": {
            "observedCRPGeneration": desc("The placement generation the decisions answer.", json!({"type": "integer", "format": "int64"})),
            "conditions": conditions("Conditions (Scheduled)."),
            "targetClusters": {"type": "array", "items": {"type": "string"}},
            "clusterDecisions": desc("The scheduler's decisions: every picked cluster, and some not picked, with why.", json!({
                "type": "array", "maxItems": 1000, "items": cluster_decision()}))
        }}),
    );
    let (kind, plural, scope) = if namespaced {
        (
            "SchedulingPolicySnapshot",
            "schedulingpolicysnapshots",
            "Namespaced",
        )
    } else {
        (
            "ClusterSchedulingPolicySnapshot",
            "clusterschedulingpolicysnapshots",
            "Cluster",
        )
    };
    placement_crd(kind, plural, scope, &[], gen_age(), schema)
}

fn cluster_decision() -> Value {
    json!({"type": "object", "required": ["clusterName", "selected"], "properties": {
        "clusterName": {"type": "string"},
        "selected": {"type": "boolean"},
        "clusterScore": {"type": "object", "properties": {
            "affinityScore": int32("Score from preferred cluster affinity."),
            "priorityScore": int32("Score from topology spread.")
        }},
        "reason": {"type": "string"}
    }})
}

fn binding(namespaced: bool) -> Value {
    let schema = simple_schema(
        "The hub's decision to place one resource snapshot on one cluster, and how it went.",
        json!({"type": "object", "required": ["targetCluster"], "properties": {
            "state": enumeration("Scheduled (decided), Bound (rolling out) or Unscheduled (being removed).", &["Scheduled", "Bound", "Unscheduled"], None),
            "resourceSnapshotName": string("The resource snapshot placed."),
            "resourceOverrideSnapshots": open_list("ResourceOverride snapshots that apply."),
            "clusterResourceOverrideSnapshots": {"type": "array", "items": {"type": "string"}},
            "schedulingPolicySnapshotName": string("The policy snapshot that decided it."),
            "targetCluster": string("The member cluster."),
            "clusterDecision": cluster_decision(),
            "applyStrategy": apply_strategy()
        }}),
        json!({"type": "object", "properties": {
            "failedPlacements": open_list("Resources that failed to apply or are not available."),
            "driftedPlacements": open_list("Resources that drifted."),
            "diffedPlacements": open_list("Resources that differ."),
            "conditions": conditions("Conditions (RolloutStarted, Overridden, WorkSynchronized, Applied, Available, DiffReported).")
        }}),
    );
    let columns = json!([
        {"name": "WorkSynchronized", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"WorkSynchronized\")].status"},
        {"name": "ResourcesApplied", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Applied\")].status"},
        {"name": "ResourceAvailable", "type": "string", "priority": 1, "jsonPath": ".status.conditions[?(@.type==\"Available\")].status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    let (kind, plural, scope) = if namespaced {
        ("ResourceBinding", "resourcebindings", "Namespaced")
    } else {
        (
            "ClusterResourceBinding",
            "clusterresourcebindings",
            "Cluster",
        )
    };
    placement_crd(kind, plural, scope, &[], columns, schema)
}

fn work() -> Value {
    let schema = simple_schema(
        "The manifests one member cluster's agent applies, in its namespace on the hub, and how it went.",
        json!({"type": "object", "properties": {
            "workload": {"type": "object", "properties": {
                "manifests": desc("The objects to apply.", json!({"type": "array", "items": {
                    "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}))
            }},
            "applyStrategy": apply_strategy()
        }}),
        json!({"type": "object", "properties": {
            "conditions": conditions("Conditions (Applied, Available, DiffReported)."),
            "manifestConditions": open_list("Each manifest's identifier, conditions, drifts and diffs.")
        }}),
    );
    let columns = json!([
        {"name": "Applied", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Applied\")].status"},
        {"name": "Available", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Available\")].status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    placement_crd("Work", "works", "Namespaced", &[], columns, schema)
}

/// AppliedWork, installed in member clusters by the agent.
pub fn applied_work() -> Value {
    let schema = simple_schema(
        "In a member cluster: the objects the agent applied for one Work, so that it can remove them.",
        json!({"type": "object", "required": ["workName", "workNamespace"], "properties": {
            "workName": string("The Work's name."),
            "workNamespace": string("The Work's namespace on the hub.")
        }}),
        json!({"type": "object", "properties": {
            "appliedResources": desc("Objects applied.", json!({"type": "array", "items": {"type": "object", "properties": {
                "group": {"type": "string"}, "version": {"type": "string"}, "kind": {"type": "string"},
                "resource": {"type": "string"}, "namespace": {"type": "string"}, "name": {"type": "string"},
                "uid": {"type": "string"}, "ordinal": {"type": "integer"},
                "manifestHash": {"type": "string"}
            }}}))
        }}),
    );
    placement_crd(
        "AppliedWork",
        "appliedworks",
        "Cluster",
        &[],
        gen_age(),
        schema,
    )
}

fn override_policy() -> Value {
    desc(
        "How selected resources change per cluster.",
        json!({"type": "object", "required": ["overrideRules"], "properties": {
            "overrideRules": {"type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "object", "properties": {
                "clusterSelector": desc("The clusters the rule applies to (absent: all).", json!({"type": "object", "properties": {
                    "clusterSelectorTerms": {"type": "array", "items": {"type": "object", "properties": {
                        "labelSelector": label_selector("Labels of the clusters.")
                    }}}
                }})),
                "overrideType": enumeration("JSONPatch (change the resource) or Delete (do not place it).", &["JSONPatch", "Delete"], Some("JSONPatch")),
                "jsonPatchOverrides": desc("RFC 6902 operations; values may use ${MEMBER-CLUSTER-NAME} and ${MEMBER-CLUSTER-LABEL-KEY-<key>}.", json!({
                    "type": "array", "maxItems": 20, "items": {"type": "object", "required": ["op", "path"], "properties": {
                        "op": enumeration("add, remove or replace.", &["add", "remove", "replace"], None),
                        "path": string("JSON pointer into the resource."),
                        "value": {"x-kubernetes-preserve-unknown-fields": true}
                    }}}))
            }}}
        }}),
    )
}

fn override_spec(namespaced: bool) -> Value {
    let selector_field = if namespaced {
        "resourceSelectors"
    } else {
        "clusterResourceSelectors"
    };
    let mut props = json!({
        "placement": desc("The placement whose resources the override changes (absent: every placement).", json!({
            "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "scope": {"type": "string"}}})),
        "policy": override_policy()
    });
    props[selector_field] = desc(
        "The resources the override applies to.",
        json!({"type": "array", "maxItems": 20, "items": {"type": "object", "required": ["group", "version", "kind", "name"], "properties": {
            "group": {"type": "string"}, "version": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}}}}),
    );
    json!({"type": "object", "required": [selector_field, "policy"], "properties": props})
}

fn override_crd(namespaced: bool) -> Value {
    let (kind, plural, scope) = if namespaced {
        ("ResourceOverride", "resourceoverrides", "Namespaced")
    } else {
        (
            "ClusterResourceOverride",
            "clusterresourceoverrides",
            "Cluster",
        )
    };
    let schema = json!({
        "type": "object", "description": "Changes selected resources per cluster before they are placed.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": override_spec(namespaced)
        }
    });
    let mut c = placement_crd(kind, plural, scope, &[], gen_age(), schema);
    // Overrides have no status.
    for v in c["spec"]["versions"].as_array_mut().into_iter().flatten() {
        v.as_object_mut().map(|m| m.remove("subresources"));
    }
    c
}

fn override_snapshot(namespaced: bool) -> Value {
    let (kind, plural, scope) = if namespaced {
        (
            "ResourceOverrideSnapshot",
            "resourceoverridesnapshots",
            "Namespaced",
        )
    } else {
        (
            "ClusterResourceOverrideSnapshot",
            "clusterresourceoverridesnapshots",
            "Cluster",
        )
    };
    let schema = simple_schema(
        "An immutable snapshot of an override, so that placement statuses name the overrides they used.",
        json!({"type": "object", "required": ["overrideSpec"], "properties": {
            "overrideSpec": override_spec(namespaced),
            "overrideHash": {"type": "string", "format": "byte"}
        }}),
        open_object("Unused."),
    );
    placement_crd(kind, plural, scope, &[], gen_age(), schema)
}

fn envelope(namespaced: bool) -> Value {
    let (kind, plural, scope) = if namespaced {
        ("ResourceEnvelope", "resourceenvelopes", "Namespaced")
    } else {
        (
            "ClusterResourceEnvelope",
            "clusterresourceenvelopes",
            "Cluster",
        )
    };
    let schema = json!({
        "type": "object",
        "description": "Carries objects that must take effect in member clusters but not on the hub (e.g. webhooks, quotas); placed like any resource, unwrapped by the agent.",
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "data": desc("The objects, by any key.", json!({"type": "object", "additionalProperties": {
                "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}))
        }
    });
    let mut c = placement_crd(kind, plural, scope, &[], gen_age(), schema);
    for v in c["spec"]["versions"].as_array_mut().into_iter().flatten() {
        v.as_object_mut().map(|m| m.remove("subresources"));
    }
    c
}

/// ClusterResourcePlacement.
pub fn cluster_resource_placement() -> Value {
    placement_crd(
        "ClusterResourcePlacement",
        "clusterresourceplacements",
        "Cluster",
        &["crp"],
        placement_columns("ClusterResourcePlacement"),
        placement_schema(false),
    )
}

/// ResourcePlacement.
pub fn resource_placement() -> Value {
    placement_crd(
        "ResourcePlacement",
        "resourceplacements",
        "Namespaced",
        &["rp"],
        placement_columns("ResourcePlacement"),
        placement_schema(true),
    )
}

/// Every CRD of the placement group.
pub fn crds() -> Vec<Value> {
    vec![
        cluster_resource_placement(),
        resource_placement(),
        resource_snapshot(false),
        resource_snapshot(true),
        policy_snapshot(false),
        policy_snapshot(true),
        binding(false),
        binding(true),
        work(),
        applied_work(),
        override_crd(false),
        override_crd(true),
        override_snapshot(false),
        override_snapshot(true),
        envelope(false),
        envelope(true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placement_crd_is_named_after_its_plural_and_group() {
        let crds = crds();
        assert_eq!(crds.len(), 16);
        for c in &crds {
            let plural = c["spec"]["names"]["plural"].as_str().unwrap();
            assert_eq!(c["metadata"]["name"], format!("{plural}.{PLACEMENT_GROUP}"));
            let versions = c["spec"]["versions"].as_array().unwrap();
            assert_eq!(
                versions.iter().filter(|v| v["storage"] == true).count(),
                1,
                "{plural}"
            );
        }
    }
}

/// The rules KubeFleet states in CEL and webhooks on ClusterResourcePlacement and
/// ResourcePlacement: placementType cannot change; clusterNames only with PickFixed,
/// numberOfClusters only (and always) with PickN, affinity not with PickFixed, topology spread
/// only with PickN; property selectors only in required terms and sorters only in preferred
/// ones; a resource selector names one resource or selects by label, not both; property
/// values are quantities; label selectors are well formed; tolerations can be added but not
/// changed or removed. `old` is the stored object on update.
pub fn validate_placement(obj: &Value, old: Option<&Value>) -> Vec<crate::member::FieldError> {
    use crate::quantity::parse_milli;
    use crate::selectors::LabelSelector;
    let mut errs: Vec<crate::member::FieldError> = Vec::new();
    let spec = &obj["spec"];
    for (i, sel) in spec["resourceSelectors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let path = format!("spec.resourceSelectors[{i}]");
        if sel["name"].as_str().is_some_and(|n| !n.is_empty()) && !sel["labelSelector"].is_null() {
            invalid(&mut errs, path.clone(),
                "name and labelSelector are mutually exclusive: select one resource by name, or resources by label".into(),
            );
        }
        if !sel["labelSelector"].is_null() {
            if let Err(e) = LabelSelector::from_object(&sel["labelSelector"]) {
                invalid(&mut errs, format!("{path}.labelSelector"), e);
            }
        }
    }
    let policy = &spec["policy"];
    let ty = policy["placementType"].as_str().unwrap_or("PickAll");
    if let Some(old) = old {
        let was = old["spec"]["policy"]["placementType"]
            .as_str()
            .unwrap_or("PickAll");
        if was != ty {
            invalid(
                &mut errs,
                "spec.policy.placementType".into(),
                format!("placement type is immutable (was {was}, now {ty})"),
            );
        }
        let old_tols = old["spec"]["policy"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let new_tols = policy["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let normal = |t: &Value| {
            json!({"key": t["key"].as_str().unwrap_or(""), "operator": t["operator"].as_str().unwrap_or("Equal"),
                "value": t["value"].as_str().unwrap_or(""), "effect": t["effect"].as_str().unwrap_or("")})
        };
        for t in &old_tols {
            if !new_tols.iter().any(|n| normal(n) == normal(t)) {
                invalid(
                    &mut errs,
                    "spec.policy.tolerations".into(),
                    format!(
                        "tolerations can be added, not changed or removed: {} is missing",
                        normal(t)
                    ),
                );
            }
        }
    }
    if !policy["clusterNames"].is_null() && ty != "PickFixed" {
        invalid(
            &mut errs,
            "spec.policy.clusterNames".into(),
            format!("clusterNames is only valid with placementType PickFixed, not {ty}"),
        );
    }
    match (ty, &policy["numberOfClusters"]) {
        ("PickN", Value::Null) => errs.push((
            "FieldValueRequired",
            "spec.policy.numberOfClusters".into(),
            "numberOfClusters is required with placementType PickN".into(),
        )),
        ("PickN", _) | (_, Value::Null) => {}
        (other, _) => invalid(
            &mut errs,
            "spec.policy.numberOfClusters".into(),
            format!("numberOfClusters is only valid with placementType PickN, not {other}"),
        ),
    }
    if ty == "PickFixed" && !policy["affinity"].is_null() {
        invalid(
            &mut errs,
            "spec.policy.affinity".into(),
            "affinity is not valid with placementType PickFixed".into(),
        );
    }
    if ty != "PickN"
        && policy["topologySpreadConstraints"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    {
        invalid(
            &mut errs,
            "spec.policy.topologySpreadConstraints".into(),
            format!(
                "topology spread constraints are only valid with placementType PickN, not {ty}"
            ),
        );
    }
    let affinity = &policy["affinity"]["clusterAffinity"];
    let required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
        ["clusterSelectorTerms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, term) in required.iter().enumerate() {
        let path = format!("spec.policy.affinity.clusterAffinity.requiredDuringSchedulingIgnoredDuringExecution.clusterSelectorTerms[{i}]");
        if !term["propertySorter"].is_null() {
            invalid(
                &mut errs,
                format!("{path}.propertySorter"),
                "property sorters are only valid in preferred terms".into(),
            );
        }
        check_term(term, &path, &mut errs);
        for (j, e) in term["propertySelector"]["matchExpressions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let p = format!("{path}.propertySelector.matchExpressions[{j}].values");
            match e["values"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                [v] if v.as_str().and_then(parse_milli).is_some() => {}
                [v] => errs.push((
                    "FieldValueInvalid",
                    p,
                    format!("{v} is not a Kubernetes quantity"),
                )),
                other => errs.push((
                    "FieldValueInvalid",
                    p,
                    format!("must have exactly one value, got {}", other.len()),
                )),
            }
        }
    }
    let preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, pref) in preferred.iter().enumerate() {
        let path = format!("spec.policy.affinity.clusterAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference");
        if !pref["preference"]["propertySelector"].is_null() {
            errs.push((
                "FieldValueInvalid",
                format!("{path}.propertySelector"),
                "property selectors are only valid in required terms".into(),
            ));
        }
        check_term(&pref["preference"], &path, &mut errs);
    }
    errs
}

fn invalid(errs: &mut Vec<crate::member::FieldError>, field: String, message: String) {
    errs.push(("FieldValueInvalid", field, message));
}

fn check_term(term: &Value, path: &str, errs: &mut Vec<crate::member::FieldError>) {
    if !term["labelSelector"].is_null() {
        if let Err(e) = crate::selectors::LabelSelector::from_object(&term["labelSelector"]) {
            errs.push(("FieldValueInvalid", format!("{path}.labelSelector"), e));
        }
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn crp(policy: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": "app"}],
            "policy": policy}})
    }

    #[test]
    fn placement_rules_name_the_field() {
        let cases: Vec<(Value, Option<Value>, &str)> = vec![
            (
                json!({"placementType": "PickAll", "clusterNames": ["a"]}),
                None,
                "spec.policy.clusterNames",
            ),
            (
                json!({"placementType": "PickAll", "numberOfClusters": 2}),
                None,
                "spec.policy.numberOfClusters",
            ),
            (
                json!({"placementType": "PickN"}),
                None,
                "spec.policy.numberOfClusters",
            ),
            (
                json!({"placementType": "PickFixed", "clusterNames": ["a"], "affinity": {}}),
                None,
                "spec.policy.affinity",
            ),
            (
                json!({"topologySpreadConstraints": [{"topologyKey": "zone"}]}),
                None,
                "spec.policy.topologySpreadConstraints",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [
                {"propertySorter": {"name": "p", "sortOrder": "Ascending"}}]}}}}),
                None,
                "clusterSelectorTerms[0].propertySorter",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"propertySelector": {"matchExpressions": []}}}]}}}),
                None,
                "preference.propertySelector",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [
                {"propertySelector": {"matchExpressions": [{"name": "p", "operator": "Gt", "values": ["many"]}]}}]}}}}),
                None,
                "matchExpressions[0].values",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [
                {"labelSelector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}}]}}}}),
                None,
                "clusterSelectorTerms[0].labelSelector",
            ),
            (
                json!({"placementType": "PickN", "numberOfClusters": 1}),
                Some(crp(json!({"placementType": "PickAll"}))),
                "spec.policy.placementType",
            ),
            (
                json!({"tolerations": [{"key": "b", "operator": "Exists"}]}),
                Some(crp(
                    json!({"tolerations": [{"key": "a", "operator": "Exists"}]}),
                )),
                "spec.policy.tolerations",
            ),
        ];
        for (policy, old, field) in cases {
            let errs = validate_placement(&crp(policy.clone()), old.as_ref());
            assert!(
                errs.iter().any(|(_, f, _)| f.contains(field)),
                "{policy}: expected an error at {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn valid_placements_and_allowed_changes_pass() {
        let good = [
            json!(null),
            json!({"placementType": "PickFixed", "clusterNames": ["a", "b"]}),
            json!({"placementType": "PickN", "numberOfClusters": 2,
                "topologySpreadConstraints": [{"topologyKey": "zone"}],
                "affinity": {"clusterAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [{
                        "labelSelector": {"matchLabels": {"env": "prod"}},
                        "propertySelector": {"matchExpressions": [{"name": "kubernetes-fleet.io/node-count", "operator": "Ge", "values": ["3"]}]}}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {
                        "propertySorter": {"name": "resources.kubernetes-fleet.io/available-cpu", "sortOrder": "Descending"}}}]}}}),
        ];
        for p in good {
            assert_eq!(validate_placement(&crp(p.clone()), None), vec![], "{p}");
        }
        // Adding a toleration is allowed; so is changing N.
        let old = crp(
            json!({"placementType": "PickN", "numberOfClusters": 1, "tolerations": [{"key": "a", "operator": "Exists"}]}),
        );
        let new = crp(json!({"placementType": "PickN", "numberOfClusters": 3,
            "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "value": "x"}]}));
        assert_eq!(validate_placement(&new, Some(&old)), vec![]);
        // Both a name and a label selector in one resource selector.
        let mut both = crp(json!(null));
        both["spec"]["resourceSelectors"][0]["labelSelector"] = json!({"matchLabels": {"a": "b"}});
        assert_eq!(
            validate_placement(&both, None)[0].1,
            "spec.resourceSelectors[0]"
        );
    }
}

/// Rules of ClusterResourceEnvelope and ResourceEnvelope: every entry of `data` is an object
/// with apiVersion, kind and metadata.name; a ResourceEnvelope's objects live in its own
/// namespace (or name none), a ClusterResourceEnvelope's are cluster-scoped; envelopes do not
/// nest.
pub fn validate_envelope(obj: &Value) -> Vec<crate::member::FieldError> {
    let mut errs = Vec::new();
    let namespace = obj["metadata"]["namespace"].as_str();
    let mut entries: Vec<(&String, &Value)> =
        obj["data"].as_object().into_iter().flatten().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, o) in entries {
        let path = format!("data[{key}]");
        for f in ["apiVersion", "kind"] {
            if o[f].as_str().is_none_or(str::is_empty) {
                errs.push((
                    "FieldValueRequired",
                    format!("{path}.{f}"),
                    format!("{f} is required"),
                ));
            }
        }
        if o["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            errs.push((
                "FieldValueRequired",
                format!("{path}.metadata.name"),
                "metadata.name is required".into(),
            ));
        }
        if o["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("{PLACEMENT_GROUP}/")))
            && o["kind"].as_str().is_some_and(|k| k.ends_with("Envelope"))
        {
            errs.push((
                "FieldValueInvalid",
                format!("{path}.kind"),
                "envelopes do not nest".into(),
            ));
        }
        match (namespace, o["metadata"]["namespace"].as_str()) {
            (Some(ns), Some(inner)) if inner != ns => errs.push((
                "FieldValueInvalid",
                format!("{path}.metadata.namespace"),
                format!("a ResourceEnvelope's objects live in its namespace {ns:?}, not {inner:?}"),
            )),
            (None, Some(_)) => errs.push((
                "FieldValueInvalid",
                format!("{path}.metadata.namespace"),
                "a ClusterResourceEnvelope carries cluster-scoped objects; use a ResourceEnvelope for namespaced ones".into(),
            )),
            _ => {}
        }
    }
    errs
}

#[cfg(test)]
mod envelope_tests {
    use super::*;

    #[test]
    fn envelope_entries_are_objects_in_the_right_scope() {
        let ok = json!({"metadata": {"name": "e", "namespace": "shop"}, "data": {
            "quota": {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}}}});
        assert_eq!(validate_envelope(&ok), vec![]);
        let bad = json!({"metadata": {"name": "e", "namespace": "shop"}, "data": {
            "a": {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "other"}},
            "b": {"kind": "ConfigMap", "metadata": {}},
            "c": {"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ResourceEnvelope", "metadata": {"name": "x"}}}});
        let fields: Vec<String> = validate_envelope(&bad).into_iter().map(|e| e.1).collect();
        assert_eq!(
            fields,
            [
                "data[a].metadata.namespace",
                "data[b].apiVersion",
                "data[b].metadata.name",
                "data[c].kind"
            ]
        );
        let cluster = json!({"metadata": {"name": "e"}, "data": {
            "r": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}}});
        assert_eq!(
            validate_envelope(&cluster)[0].1,
            "data[r].metadata.namespace"
        );
    }
}
