//! The CustomResourceDefinitions of KubeFleet's `cluster.kubernetes-fleet.io` group, served
//! by the hub in versions v1 and v1beta1 (same schema; v1beta1 is the storage version, as in
//! KubeFleet). Field names, types, defaults and limits follow KubeFleet's API; rules KubeFleet
//! writes in CEL are enforced by the hub's admission checks (see `member::validate_member_cluster`).

use serde_json::{json, Value};

/// API group of member clusters.
pub const CLUSTER_GROUP: &str = "cluster.kubernetes-fleet.io";
/// The versions served, storage version last.
pub const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

pub(crate) fn desc(text: &str, mut schema: Value) -> Value {
    schema["description"] = json!(text);
    schema
}

pub(crate) fn string(text: &str) -> Value {
    desc(text, json!({"type": "string"}))
}

pub(crate) fn date_time(text: &str) -> Value {
    desc(text, json!({"type": "string", "format": "date-time"}))
}

/// `metav1.Condition`, as a list-map keyed by type.
pub(crate) fn conditions(text: &str) -> Value {
    desc(
        text,
        json!({
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {
                "type": "object",
                "required": ["lastTransitionTime", "message", "reason", "status", "type"],
                "properties": {
                    "type": {"type": "string", "maxLength": 316,
                        "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"},
                    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                    "reason": {"type": "string", "minLength": 1, "maxLength": 1024,
                        "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
                    "message": {"type": "string", "maxLength": 32768},
                    "lastTransitionTime": {"type": "string", "format": "date-time"},
                    "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0}
                }
            }
        }),
    )
}

fn quantity_map(text: &str) -> Value {
    desc(
        text,
        json!({"type": "object", "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": true,
            "pattern": "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$"
        }}),
    )
}

/// The status both MemberCluster and InternalMemberCluster carry.
fn member_status(extra: &[(&str, Value)]) -> Value {
    let mut props = json!({
        "conditions": conditions("Conditions of the member cluster."),
        "properties": desc("Properties observed for the member cluster, by name (e.g. kubernetes-fleet.io/node-count).",
            json!({"type": "object", "additionalProperties": {
                "type": "object", "required": ["observationTime", "value"],
                "properties": {
                    "value": string("The value, a Kubernetes quantity."),
                    "observationTime": date_time("When the value was observed.")
                }}})),
        "resourceUsage": desc("Resource usage of the member cluster's nodes.", json!({"type": "object", "properties": {
            "capacity": quantity_map("Total resources of all nodes."),
            "allocatable": quantity_map("Resources of all nodes available to workloads."),
            "available": quantity_map("Allocatable resources not yet requested by pods."),
            "observationTime": date_time("When the usage was observed.")
        }})),
        "agentStatus": desc("Status of each agent in the member cluster.", json!({"type": "array", "items": {
            "type": "object", "required": ["type"],
            "properties": {
                "type": string("Type of the agent (MemberAgent)."),
                "conditions": conditions("Conditions reported by the agent."),
                "lastReceivedHeartbeat": date_time("When the hub last received a heartbeat from the agent.")
            }}}))
    });
    for (k, v) in extra {
        props[*k] = v.clone();
    }
    json!({"type": "object", "properties": props})
}

fn crd(
    kind: &str,
    plural: &str,
    scope: &str,
    short: &[&str],
    columns: Value,
    schema: Value,
) -> Value {
    crd_in(
        CLUSTER_GROUP,
        "v1beta1",
        &["fleet", "fleet-cluster"],
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

/// A CRD's kind, plural, scope and short names.
pub(crate) struct CrdNames<'a> {
    pub kind: &'a str,
    pub plural: &'a str,
    pub scope: &'a str,
    pub short: &'a [&'a str],
}

/// A CRD of `group` served in v1 and v1beta1 with one schema, `storage` the stored version.
pub(crate) fn crd_in(
    group: &str,
    storage: &str,
    categories: &[&str],
    names: CrdNames<'_>,
    columns: Value,
    schema: Value,
) -> Value {
    let CrdNames {
        kind,
        plural,
        scope,
        short,
    } = names;
    let versions: Vec<Value> = VERSIONS
        .iter()
        .map(|v| {
            json!({"name": v, "served": true, "storage": *v == storage,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns})
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}"),
            "labels": {"app.kubernetes.io/managed-by": "flotilla"}},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                "singular": kind.to_lowercase(), "shortNames": short,
                "categories": categories},
            "versions": versions
        }
    })
}

/// MemberCluster: a cluster in the fleet, as the hub sees it (cluster-scoped).
pub fn member_cluster() -> Value {
    let spec = json!({
        "type": "object",
        "required": ["identity"],
        "description": "The desired state of the member cluster.",
        "properties": {
            "identity": desc("The RBAC subject the member's agent authenticates to the hub as; the hub grants it access to the member's namespace only.",
                json!({"type": "object", "required": ["kind", "name"], "x-kubernetes-map-type": "atomic",
                    "properties": {
                        "apiGroup": string("API group of the subject."),
                        "kind": string("User, Group or ServiceAccount."),
                        "name": string("Name of the subject."),
                        "namespace": string("Namespace of a ServiceAccount subject.")
                    }})),
            "heartbeatPeriodSeconds": desc("How often, in seconds, the member's agent sends a heartbeat (1..600).",
                json!({"type": "integer", "format": "int32", "default": 60, "minimum": 1, "maximum": 600})),
            "taints": desc("Taints of the member cluster; placements that do not tolerate one are not scheduled here.",
                json!({"type": "array", "maxItems": 100, "items": {
                    "type": "object", "required": ["effect", "key"],
                    "properties": {
                        "key": string("The taint key."),
                        "value": string("The taint value."),
                        "effect": desc("The effect; only NoSchedule.", json!({"type": "string", "enum": ["NoSchedule"]}))
                    }}})),
            "deleteOptions": desc("How the member cluster is deleted.", json!({"type": "object", "properties": {
                "validationMode": desc("Strict or Skip.", json!({"type": "string", "enum": ["Skip", "Strict"], "default": "Strict"}))
            }}))
        }
    });
    let schema = json!({
        "type": "object",
        "description": "A member cluster of the fleet, as represented on the hub.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": spec,
            "status": member_status(&[])
        }
    });
    let columns = json!([
        {"name": "Joined", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Joined\")].status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Member-Agent-Last-Seen", "type": "date", "jsonPath": ".status.agentStatus[?(@.type==\"MemberAgent\")].lastReceivedHeartbeat"},
        {"name": "Node-Count", "type": "string", "jsonPath": ".status.properties.kubernetes-fleet\\.io/node-count.value"},
        {"name": "Available-CPU", "type": "string", "jsonPath": ".status.resourceUsage.available.cpu"},
        {"name": "Available-Memory", "type": "string", "jsonPath": ".status.resourceUsage.available.memory"},
        {"name": "Allocatable-CPU", "type": "string", "priority": 1, "jsonPath": ".status.resourceUsage.allocatable.cpu"},
        {"name": "Allocatable-Memory", "type": "string", "priority": 1, "jsonPath": ".status.resourceUsage.allocatable.memory"}
    ]);
    crd(
        "MemberCluster",
        "memberclusters",
        "Cluster",
        &["cluster"],
        columns,
        schema,
    )
}

/// InternalMemberCluster: the hub's instructions to one member's agent and the agent's
/// reports, in namespace `fleet-member-<name>`.
pub fn internal_member_cluster() -> Value {
    let schema = json!({
        "type": "object",
        "description": "The hub's instructions to a member agent, and the agent's status.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "required": ["state"], "properties": {
                "state": desc("Join or Leave.", json!({"type": "string", "enum": ["Join", "Leave"]})),
                "heartbeatPeriodSeconds": desc("How often, in seconds, the agent sends a heartbeat (1..600).",
                    json!({"type": "integer", "format": "int32", "default": 60, "minimum": 1, "maximum": 600}))
            }},
            "status": member_status(&[])
        }
    });
    let columns = json!([
        {"name": "Joined", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Joined\")].status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    crd(
        "InternalMemberCluster",
        "internalmemberclusters",
        "Namespaced",
        &["imc"],
        columns,
        schema,
    )
}

/// Every CRD the hub installs.
pub fn all() -> Vec<Value> {
    let mut all = vec![member_cluster(), internal_member_cluster()];
    all.extend(crate::placement::crds());
    all
}
