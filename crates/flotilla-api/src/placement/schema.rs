//! The CRDs of `placement.kubernetes-fleet.io`, built as JSON so the condition, selector and
//! policy schemas are written once.

use serde_json::{json, Value};

use super::{PLACEMENT_GROUP, STORAGE_VERSION};
use crate::crds::{conditions, crd_in, desc, string, CrdNames};

pub(super) fn label_selector(text: &str) -> Value {
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

pub(super) fn enumeration(text: &str, values: &[&str], default: Option<&str>) -> Value {
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
pub(super) fn open_list(text: &str) -> Value {
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

pub(super) fn apply_strategy_schema() -> Value {
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
            "applyStrategy": apply_strategy_schema(),
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

pub(super) fn placement_crd(
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
            "applyStrategy": apply_strategy_schema()
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
            "applyStrategy": apply_strategy_schema()
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
    .into_iter()
    .chain(super::staged::crds())
    .chain(super::eviction::crds())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placement_crd_is_named_after_its_plural_and_group() {
        let crds = crds();
        assert_eq!(crds.len(), 24);
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
