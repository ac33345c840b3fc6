//! Member clusters: names, condition types and reasons, cluster properties, admission rules
//! and the pure logic of health and property computation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::quantity::{format_cpu, format_memory, parse_milli};

/// The namespace of member `name` on the hub.
pub fn namespace_of(name: &str) -> String {
    format!("{NAMESPACE_PREFIX}{name}")
}
/// Prefix of member namespaces on the hub.
pub const NAMESPACE_PREFIX: &str = "fleet-member-";
/// Finalizer the hub keeps on a MemberCluster until its member has left.
pub const FINALIZER: &str = "kubernetes-fleet.io/membercluster-finalizer";
/// Label on hub objects created for a member, naming it.
pub const MEMBER_LABEL: &str = "fleet.kubernetes-fleet.io/member-cluster-name";
/// The agent type Flotilla's agent reports as.
pub const MEMBER_AGENT: &str = "MemberAgent";
/// The signer of the client certificates members join with (kube-apiserver's client signer).
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// MemberCluster, at the storage version.
pub fn member_cluster_resource() -> kube_core::ApiResource {
    kube_core::ApiResource::from_gvk_with_plural(
        &kube_core::GroupVersionKind::gvk(crate::crds::CLUSTER_GROUP, "v1beta1", "MemberCluster"),
        "memberclusters",
    )
}

/// InternalMemberCluster, at the storage version.
pub fn internal_member_cluster_resource() -> kube_core::ApiResource {
    kube_core::ApiResource::from_gvk_with_plural(
        &kube_core::GroupVersionKind::gvk(
            crate::crds::CLUSTER_GROUP,
            "v1beta1",
            "InternalMemberCluster",
        ),
        "internalmemberclusters",
    )
}

/// The `MemberAgent` entry of a member's `status.agentStatus`, if the agent reported.
pub fn agent_status(status: &Value) -> Option<&Value> {
    status["agentStatus"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == MEMBER_AGENT)
}

/// Condition types on MemberCluster / InternalMemberCluster.
pub mod condition {
    /// The hub prepared namespace and RBAC for the member.
    pub const READY_TO_JOIN: &str = "ReadyToJoin";
    /// The member's agent joined (False once it left).
    pub const JOINED: &str = "Joined";
    /// The member sends heartbeats and its API server is ready.
    pub const HEALTHY: &str = "Healthy";
    /// The agent collected the member's properties.
    pub const PROPERTY_COLLECTION_SUCCEEDED: &str = "ClusterPropertyCollectionSucceeded";
}

/// Condition reasons.
pub mod reason {
    /// ReadyToJoin=True.
    pub const READY_TO_JOIN: &str = "MemberClusterReadyToJoin";
    /// Joined=True.
    pub const JOINED: &str = "MemberClusterJoined";
    /// Joined=False after leaving.
    pub const LEFT: &str = "MemberClusterLeft";
    /// Joined=False before the agent reported.
    pub const JOIN_PENDING: &str = "MemberClusterJoinPending";
    /// Healthy=True.
    pub const HEALTHY: &str = "MemberClusterHealthy";
    /// Healthy=False: the member's API server is not ready.
    pub const UNHEALTHY: &str = "MemberClusterUnhealthy";
    /// Healthy=False: no heartbeat within the threshold.
    pub const HEARTBEAT_TIMEOUT: &str = "MemberAgentHeartbeatTimeout";
    /// Healthy=Unknown before any heartbeat.
    pub const NO_HEARTBEAT: &str = "MemberAgentNoHeartbeat";
    /// Properties collected.
    pub const PROPERTIES_COLLECTED: &str = "ClusterPropertiesCollected";
    /// Some properties could not be collected.
    pub const PROPERTIES_FAILED: &str = "ClusterPropertyCollectionFailed";
}

/// Property names, as KubeFleet's property provider reports them.
pub mod property {
    /// Number of nodes.
    pub const NODE_COUNT: &str = "kubernetes-fleet.io/node-count";
    /// Kubernetes version of the member's API server.
    pub const K8S_VERSION: &str = "k8s.io/k8s-version";
    /// Prefix of resource properties: `<prefix>{total,allocatable,available}-{cpu,memory}`.
    pub const RESOURCE_PREFIX: &str = "resources.kubernetes-fleet.io/";
    /// Total CPU of all nodes.
    pub const TOTAL_CPU: &str = "resources.kubernetes-fleet.io/total-cpu";
    /// Allocatable CPU.
    pub const ALLOCATABLE_CPU: &str = "resources.kubernetes-fleet.io/allocatable-cpu";
    /// Allocatable CPU not requested by pods.
    pub const AVAILABLE_CPU: &str = "resources.kubernetes-fleet.io/available-cpu";
    /// Total memory of all nodes.
    pub const TOTAL_MEMORY: &str = "resources.kubernetes-fleet.io/total-memory";
    /// Allocatable memory.
    pub const ALLOCATABLE_MEMORY: &str = "resources.kubernetes-fleet.io/allocatable-memory";
    /// Allocatable memory not requested by pods.
    pub const AVAILABLE_MEMORY: &str = "resources.kubernetes-fleet.io/available-memory";
}

/// Where operators put their own properties in a member cluster: a ConfigMap whose data keys
/// are property names and whose values are quantities.
pub const CUSTOM_PROPERTIES_NAMESPACE: &str = "flotilla-system";
/// Name of the custom properties ConfigMap.
pub const CUSTOM_PROPERTIES_CONFIGMAP: &str = "cluster-properties";

/// The operator's properties from the ConfigMap's `data`: the key `properties` holds one
/// `NAME=VALUE` per line (names may contain `/`, which ConfigMap keys cannot; `#` starts a
/// comment), and every other key is a property name itself.
pub fn parse_custom_properties(data: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(m) = data.as_object() else {
        return out;
    };
    for (k, v) in m {
        let v = v.as_str().unwrap_or("");
        if k == "properties" {
            for line in v
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let (name, value) = line.split_once('=').unwrap_or((line, ""));
                out.insert(name.trim().to_string(), value.trim().to_string());
            }
        } else {
            out.insert(k.clone(), v.trim().to_string());
        }
    }
    out
}

/// Sums of CPU (millicores) and memory (milli-bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu: i128,
    /// Memory in milli-bytes.
    pub memory: i128,
}

impl Resources {
    fn of(list: &Value) -> Self {
        let q = |k: &str| {
            list[k]
                .as_str()
                .and_then(parse_milli)
                .or_else(|| list[k].as_i64().map(|i| i as i128 * 1000))
                .unwrap_or(0)
        };
        Self {
            cpu: q("cpu"),
            memory: q("memory"),
        }
    }
    fn add(&mut self, o: Self) {
        self.cpu += o.cpu;
        self.memory += o.memory;
    }
    fn json(&self) -> Value {
        json!({"cpu": format_cpu(self.cpu), "memory": format_memory(self.memory)})
    }
}

/// What a pod requests, as the scheduler reckons it: its containers, plus sidecars (init
/// containers with `restartPolicy: Always`, which run beside them), or more if an init
/// container (with the sidecars started before it) needs more; plus overhead.
pub fn pod_requests(pod: &Value) -> Resources {
    let spec = &pod["spec"];
    let mut sum = Resources::default();
    for c in spec["containers"].as_array().into_iter().flatten() {
        sum.add(Resources::of(&c["resources"]["requests"]));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let r = Resources::of(&c["resources"]["requests"]);
        let during = if c["restartPolicy"] == "Always" {
            sum.add(r);
            sidecars.add(r);
            sidecars
        } else {
            let mut d = r;
            d.add(sidecars);
            d
        };
        init_peak.cpu = init_peak.cpu.max(during.cpu);
        init_peak.memory = init_peak.memory.max(during.memory);
    }
    sum.cpu = sum.cpu.max(init_peak.cpu);
    sum.memory = sum.memory.max(init_peak.memory);
    sum.add(Resources::of(&spec["overhead"]));
    sum
}

/// Whether new pods can use a node: Ready and not cordoned.
pub fn node_schedulable(node: &Value) -> bool {
    node["spec"]["unschedulable"] != true
        && node["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Whether a pod holds node resources: bound to a node and not finished.
pub fn pod_holds_resources(pod: &Value) -> bool {
    pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

/// Keeps of `pod` only what [`Usage::compute`] reads (its node, phase and requests): what an
/// agent caches of every pod in its cluster. A whole decoded pod (managedFields, env,
/// volumes, status) is some 20 KB; this, a few hundred bytes.
pub fn pod_usage_fields(pod: &mut Value) {
    let spec = &pod["spec"];
    let requests = |cs: &Value| -> Value {
        cs.as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let mut k = json!({"resources": {"requests": c["resources"]["requests"].clone()}});
                if !c["restartPolicy"].is_null() {
                    k["restartPolicy"] = c["restartPolicy"].clone();
                }
                k
            })
            .collect()
    };
    *pod = json!({
        "spec": {
            "nodeName": spec["nodeName"].clone(),
            "containers": requests(&spec["containers"]),
            "initContainers": requests(&spec["initContainers"]),
            "overhead": spec["overhead"].clone(),
        },
        "status": {"phase": pod["status"]["phase"].clone()},
    });
}

/// Keeps of `node` only what [`Usage::compute`] reads (capacity, allocatable, whether it is
/// cordoned, its conditions' types and statuses): a real node's status lists its images and
/// volumes, many kilobytes.
pub fn node_usage_fields(node: &mut Value) {
    let conditions: Value = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!({"type": c["type"].clone(), "status": c["status"].clone()}))
        .collect();
    *node = json!({
        "spec": {"unschedulable": node["spec"]["unschedulable"].clone()},
        "status": {
            "capacity": node["status"]["capacity"].clone(),
            "allocatable": node["status"]["allocatable"].clone(),
            "conditions": conditions,
        },
    });
}

/// A member's nodes' totals, with what running pods request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of nodes.
    pub nodes: usize,
    /// Sum of node capacity, over every node.
    pub capacity: Resources,
    /// Sum of node allocatable, over the nodes new pods can use (Ready, not cordoned).
    pub allocatable: Resources,
    /// Sum of requests of pods holding resources on those nodes.
    pub requested: Resources,
}

impl Usage {
    /// Totals over `nodes` (name, and the object with its spec and status) and `pods` (every
    /// pod; finished and unbound ones, and those on nodes that are cordoned or not Ready, are
    /// skipped).
    pub fn compute<'a>(
        nodes: impl IntoIterator<Item = (&'a str, &'a Value)>,
        pods: impl IntoIterator<Item = &'a Value>,
    ) -> Self {
        let mut u = Usage::default();
        let mut usable = std::collections::BTreeSet::new();
        for (name, n) in nodes {
            u.nodes += 1;
            u.capacity.add(Resources::of(&n["status"]["capacity"]));
            if node_schedulable(n) {
                u.allocatable
                    .add(Resources::of(&n["status"]["allocatable"]));
                usable.insert(name);
            }
        }
        for p in pods {
            if pod_holds_resources(p)
                && usable.contains(p["spec"]["nodeName"].as_str().unwrap_or(""))
            {
                u.requested.add(pod_requests(p));
            }
        }
        u
    }

    /// Allocatable minus requested, never below zero.
    pub fn available(&self) -> Resources {
        Resources {
            cpu: (self.allocatable.cpu - self.requested.cpu).max(0),
            memory: (self.allocatable.memory - self.requested.memory).max(0),
        }
    }

    /// `status.resourceUsage` of a MemberCluster.
    pub fn resource_usage(&self, observed: &str) -> Value {
        json!({"capacity": self.capacity.json(), "allocatable": self.allocatable.json(),
            "available": self.available().json(), "observationTime": observed})
    }
}

/// The properties a member reports: node count, version and resources, plus `custom` (from the
/// operator's ConfigMap). Returns the `status.properties` map and the custom entries that
/// were rejected (name -> why).
pub fn properties(
    usage: &Usage,
    version: &str,
    custom: &BTreeMap<String, String>,
    observed: &str,
) -> (Value, BTreeMap<String, String>) {
    use property::*;
    let mut props = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        props.insert(k.into(), json!({"value": v, "observationTime": observed}));
    };
    let avail = usage.available();
    put(NODE_COUNT, usage.nodes.to_string());
    put(TOTAL_CPU, format_cpu(usage.capacity.cpu));
    put(ALLOCATABLE_CPU, format_cpu(usage.allocatable.cpu));
    put(AVAILABLE_CPU, format_cpu(avail.cpu));
    put(TOTAL_MEMORY, format_memory(usage.capacity.memory));
    put(ALLOCATABLE_MEMORY, format_memory(usage.allocatable.memory));
    put(AVAILABLE_MEMORY, format_memory(avail.memory));
    let mut rejected = BTreeMap::new();
    for (k, v) in custom {
        if k == K8S_VERSION || k == NODE_COUNT || k.starts_with(RESOURCE_PREFIX) {
            rejected.insert(
                k.clone(),
                "is reported by the agent and cannot be overridden".into(),
            );
        } else if let Some(p) = crate::names::label_key_problem(k) {
            rejected.insert(k.clone(), format!("is not a valid property name: {p}"));
        } else if parse_milli(v).is_none() {
            rejected.insert(
                k.clone(),
                format!("value {v:?} is not a Kubernetes quantity"),
            );
        } else {
            put(k, v.trim().to_string());
        }
    }
    // The version is a property too, though not a quantity (KubeFleet reports it the same way).
    props.insert(
        K8S_VERSION.into(),
        json!({"value": version, "observationTime": observed}),
    );
    (Value::Object(props), rejected)
}

/// The health a heartbeat at `last` gives at `now`, with the member unhealthy once no
/// heartbeat came for `threshold`. Returns (status, reason, message); status None is Unknown.
pub fn heartbeat_health(
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    threshold: std::time::Duration,
) -> (Option<bool>, &'static str, String) {
    match last {
        None => (
            None,
            reason::NO_HEARTBEAT,
            "the member agent has not sent a heartbeat yet".into(),
        ),
        Some(t) => {
            let age = (now - t).num_milliseconds().max(0) as u128;
            if age > threshold.as_millis() {
                (
                    Some(false),
                    reason::HEARTBEAT_TIMEOUT,
                    format!(
                        "no heartbeat from the member agent for {}s (threshold {}s); last heartbeat at {}",
                        age / 1000,
                        threshold.as_secs(),
                        t.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                )
            } else {
                (
                    Some(true),
                    reason::HEALTHY,
                    "the member agent sends heartbeats".into(),
                )
            }
        }
    }
}

/// When the member turns unhealthy unless another heartbeat arrives.
pub fn heartbeat_deadline(last: DateTime<Utc>, threshold: std::time::Duration) -> DateTime<Utc> {
    last + chrono::Duration::milliseconds(threshold.as_millis() as i64)
}

/// A field error of [`validate_member_cluster`]: (reason, field, message).
pub type FieldError = (&'static str, String, String);

/// The rules KubeFleet states in CEL on MemberCluster (name length, taint keys and values,
/// unique taints) and the identity kinds RBAC understands.
pub fn validate_member_cluster(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if name.len() > 63 {
        errs.push((
            "FieldValueInvalid",
            "metadata.name".into(),
            "metadata.name max length is 63".into(),
        ));
    }
    let spec = &obj["spec"];
    match spec["identity"]["kind"].as_str() {
        Some("User" | "Group" | "ServiceAccount") | None => {}
        Some(k) => errs.push((
            "FieldValueNotSupported",
            "spec.identity.kind".into(),
            format!("Unsupported value: {k:?}: supported values: \"User\", \"Group\", \"ServiceAccount\""),
        )),
    }
    let taints = spec["taints"].as_array().cloned().unwrap_or_default();
    for (i, t) in taints.iter().enumerate() {
        let key = t["key"].as_str().unwrap_or("");
        if let Some(p) = crate::names::label_key_problem(key) {
            errs.push((
                "FieldValueInvalid",
                format!("spec.taints[{i}].key"),
                format!("taint key must be a valid qualified name: {p}"),
            ));
        }
        let value = t["value"].as_str().unwrap_or("");
        if value.len() > 63 {
            errs.push((
                "FieldValueInvalid",
                format!("spec.taints[{i}].value"),
                "taint value must not exceed 63 characters".into(),
            ));
        } else if crate::names::label_value_problem(value).is_some() {
            errs.push((
                "FieldValueInvalid",
                format!("spec.taints[{i}].value"),
                "taint value must be a valid label value".into(),
            ));
        }
        if taints[..i].contains(t) {
            errs.push((
                "FieldValueDuplicate",
                format!("spec.taints[{i}]"),
                "taints must be unique".into(),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: &str, mem: &str) -> Value {
        json!({"metadata": {"name": name},
            "status": {"capacity": {"cpu": cpu, "memory": mem}, "allocatable": {"cpu": cpu, "memory": mem},
                "conditions": [{"type": "Ready", "status": "True"}]}})
    }
    fn named(nodes: &[Value]) -> impl Iterator<Item = (&str, &Value)> {
        nodes
            .iter()
            .map(|n| (n["metadata"]["name"].as_str().unwrap(), n))
    }
    fn pod(node: &str, cpu: &str, mem: &str, phase: &str) -> Value {
        json!({"spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": cpu, "memory": mem}}}]},
            "status": {"phase": phase}})
    }

    #[test]
    fn usage_subtracts_requests_of_running_pods_only() {
        let nodes = [node("n1", "4", "8Gi"), node("n2", "4", "8Gi")];
        let pods = [
            pod("n1", "500m", "1Gi", "Running"),
            pod("n2", "1", "2Gi", "Pending"),
            pod("n1", "2", "1Gi", "Succeeded"),
            pod("", "3", "1Gi", "Pending"),
        ];
        let u = Usage::compute(named(&nodes), &pods);
        assert_eq!(u.nodes, 2);
        assert_eq!(format_cpu(u.available().cpu), "6500m");
        assert_eq!(format_memory(u.available().memory), "13Gi");
        let (props, rejected) = properties(
            &u,
            "v1.33.0",
            &BTreeMap::from([
                ("cost.example.com/per-core".to_string(), "0.05".to_string()),
                ("gpus".to_string(), "many".to_string()),
                (property::NODE_COUNT.to_string(), "9".to_string()),
            ]),
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(props[property::NODE_COUNT]["value"], "2");
        assert_eq!(props[property::TOTAL_CPU]["value"], "8");
        assert_eq!(props[property::AVAILABLE_MEMORY]["value"], "13Gi");
        assert_eq!(props[property::K8S_VERSION]["value"], "v1.33.0");
        assert_eq!(props["cost.example.com/per-core"]["value"], "0.05");
        assert!(props.get("gpus").is_none());
        assert_eq!(rejected.len(), 2);
    }

    #[test]
    fn custom_properties_come_from_lines_and_keys() {
        let p = parse_custom_properties(
            &json!({"properties": "# costs\ncost.example.com/per-core = 0.05\n\nbad-line\n", "gpu-count": "4"}),
        );
        assert_eq!(p["cost.example.com/per-core"], "0.05");
        assert_eq!(p["gpu-count"], "4");
        assert_eq!(p["bad-line"], "");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn the_usage_fields_alone_give_the_same_usage() {
        let mut nodes = vec![
            node("a", "4", "16Gi"),
            node("b", "8", "32Gi"),
            node("c", "2", "8Gi"),
        ];
        nodes[1]["spec"]["unschedulable"] = json!(true);
        nodes[2]["status"]["conditions"][0]["status"] = json!("False");
        nodes[0]["status"]["images"] = json!([{"names": ["registry/app:1"], "sizeBytes": 1}]);
        nodes[0]["metadata"]["managedFields"] = json!([{"manager": "kubelet"}]);
        let mut pods = vec![
            pod("a", "500m", "1Gi", "Running"),
            pod("a", "250m", "512Mi", "Succeeded"),
            pod("b", "1", "1Gi", "Running"),
            pod("", "1", "1Gi", "Pending"),
        ];
        pods[0]["spec"]["initContainers"] = json!([
            {"name": "side", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
            {"name": "init", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]);
        pods[0]["spec"]["overhead"] = json!({"cpu": "10m", "memory": "1Mi"});
        pods[0]["spec"]["containers"][0]["env"] = json!([{"name": "X", "value": "y"}]);
        let before = Usage::compute(named(&nodes), pods.iter());
        let mut small_nodes = nodes.clone();
        for n in &mut small_nodes {
            let name = n["metadata"].clone();
            node_usage_fields(n);
            n["metadata"] = name;
        }
        let mut small_pods = pods.clone();
        small_pods.iter_mut().for_each(pod_usage_fields);
        assert_eq!(
            Usage::compute(named(&small_nodes), small_pods.iter()),
            before
        );
        assert!(before.requested.cpu > 2000, "{before:?}");
        assert!(small_nodes[0]["status"].get("images").is_none());
        assert!(small_pods[0]["spec"]["containers"][0].get("env").is_none());
        assert!(small_pods[0].get("metadata").is_none());
    }

    #[test]
    fn cordoned_and_not_ready_nodes_are_not_usable_capacity() {
        let mut cordoned = node("n2", "4", "8Gi");
        cordoned["spec"]["unschedulable"] = json!(true);
        let mut not_ready = node("n3", "4", "8Gi");
        not_ready["status"]["conditions"][0]["status"] = json!("False");
        let mut unknown = node("n4", "4", "8Gi");
        unknown["status"]["conditions"] = json!([]);
        let nodes = [node("n1", "4", "8Gi"), cordoned, not_ready, unknown];
        // Pods on nodes that are not usable do not take from what is usable.
        let pods = [
            pod("n1", "1", "1Gi", "Running"),
            pod("n2", "2", "2Gi", "Running"),
        ];
        let u = Usage::compute(named(&nodes), &pods);
        assert_eq!(u.nodes, 4);
        assert_eq!(format_cpu(u.capacity.cpu), "16");
        assert_eq!(format_cpu(u.allocatable.cpu), "4");
        assert_eq!(format_cpu(u.available().cpu), "3");
        assert_eq!(format_memory(u.available().memory), "7Gi");
    }

    #[test]
    fn sidecars_add_to_the_containers_and_to_later_init_containers() {
        // containers 500m; sidecar 200m runs beside them (700m); a later init container of
        // 600m runs beside the sidecar (800m): the pod needs 800m.
        let p = json!({"spec": {"nodeName": "n",
            "containers": [{"resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}}],
            "initContainers": [
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "200m", "memory": "50Mi"}}},
                {"resources": {"requests": {"cpu": "600m", "memory": "10Mi"}}}]}});
        let r = pod_requests(&p);
        assert_eq!(r.cpu, 800);
        assert_eq!(format_memory(r.memory), "150Mi");
        // An init container before the sidecar does not run beside it.
        let q = json!({"spec": {"initContainers": [
                {"resources": {"requests": {"cpu": "600m"}}},
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}}],
            "containers": [{"resources": {"requests": {"cpu": "500m"}}}]}});
        assert_eq!(pod_requests(&q).cpu, 700);
    }

    #[test]
    fn init_containers_and_overhead_count_like_the_scheduler() {
        let p = json!({"spec": {"nodeName": "n", "overhead": {"cpu": "100m"},
            "containers": [{"resources": {"requests": {"cpu": "200m"}}}, {"resources": {"requests": {"cpu": "300m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}]}});
        let r = pod_requests(&p);
        assert_eq!(r.cpu, 1100);
        assert_eq!(format_memory(r.memory), "1Mi");
    }

    #[test]
    fn health_follows_the_last_heartbeat() {
        let now = Utc::now();
        let th = std::time::Duration::from_secs(30);
        assert_eq!(heartbeat_health(None, now, th).0, None);
        assert_eq!(
            heartbeat_health(Some(now - chrono::Duration::seconds(10)), now, th).0,
            Some(true)
        );
        let (s, r, m) = heartbeat_health(Some(now - chrono::Duration::seconds(31)), now, th);
        assert_eq!((s, r), (Some(false), reason::HEARTBEAT_TIMEOUT));
        assert!(m.contains("threshold 30s"), "{m}");
        assert_eq!(
            heartbeat_deadline(now, th),
            now + chrono::Duration::seconds(30)
        );
    }

    #[test]
    fn member_cluster_rules() {
        let mc = |spec: Value| json!({"metadata": {"name": "m1"}, "spec": spec});
        let ok = mc(json!({"identity": {"kind": "User", "name": "u"},
            "taints": [{"key": "example.com/gpu", "value": "true", "effect": "NoSchedule"}]}));
        assert!(validate_member_cluster(&ok).is_empty());
        let bad = mc(
            json!({"identity": {"kind": "Robot", "name": "u"}, "taints": [
            {"key": "bad key", "effect": "NoSchedule"},
            {"key": "a", "value": "x/y", "effect": "NoSchedule"},
            {"key": "a", "value": "x/y", "effect": "NoSchedule"}]}),
        );
        let fields: Vec<String> = validate_member_cluster(&bad)
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.identity.kind",
                "spec.taints[0].key",
                "spec.taints[1].value",
                "spec.taints[2].value",
                "spec.taints[2]"
            ]
        );
        let long = json!({"metadata": {"name": "x".repeat(64)}, "spec": {"identity": {"kind": "User", "name": "u"}}});
        assert_eq!(validate_member_cluster(&long)[0].1, "metadata.name");
    }
}
