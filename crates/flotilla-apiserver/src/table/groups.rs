//! Printers of the kinds of the named API groups (apps, batch, RBAC, networking, ...), as
//! kube-apiserver's printers print them.

use serde_json::{json, Value};

use super::format::*;
use super::{col, desired_current_ready, Printer, Row, AGE, NAME};

/// The printers of this part of the API, each with its columns and cells together.
pub(super) const GROUPS: &[Printer] = &[
    // CertificateSigningRequest
    Printer {
        kinds: &[("certificates.k8s.io", "CertificateSigningRequest")],
        columns: || {
            vec![
                NAME,
                AGE,
                col("SignerName", "string", 0, "Name of the signer"),
                col(
                    "Requestor",
                    "string",
                    0,
                    "Name of the user that requested the CSR.",
                ),
                col(
                    "RequestedDuration",
                    "string",
                    0,
                    "Requested duration of the certificate.",
                ),
                col("Condition", "string", 0, "The current status of the CSR."),
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            let conds: Vec<&str> = status["conditions"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c["status"] == "True")
                        .filter_map(|c| c["type"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let mut cond = if conds.is_empty() {
                "Pending".to_string()
            } else {
                conds.join(",")
            };
            if status["certificate"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            {
                cond.push_str(",Issued");
            }
            vec![
                name,
                age,
                spec["signerName"].clone(),
                spec["username"].clone(),
                json!(spec["expirationSeconds"]
                    .as_i64()
                    .map(human_duration)
                    .unwrap_or_else(|| "<none>".into())),
                json!(cond),
            ]
        },
    },
    // Deployment
    Printer {
        kinds: &[("apps", "Deployment")],
        columns: || {
            vec![
                NAME,
                col(
                    "Ready",
                    "string",
                    0,
                    "Number of ready replicas out of desired",
                ),
                col(
                    "Up-to-date",
                    "string",
                    0,
                    "Total number of updated replicas",
                ),
                col(
                    "Available",
                    "string",
                    0,
                    "Total number of available replicas",
                ),
                AGE,
                col(
                    "Containers",
                    "string",
                    1,
                    "Names of each container in the template.",
                ),
                col(
                    "Images",
                    "string",
                    1,
                    "Images referenced by each container in the template.",
                ),
                col("Selector", "string", 1, "Label selector for pods."),
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            let (containers, images) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&status["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                json!(int(&status["updatedReplicas"])),
                json!(int(&status["availableReplicas"])),
                age,
                json!(containers),
                json!(images),
                json!(selector_text(&spec["selector"])),
            ]
        },
    },
    // ReplicaSet
    Printer {
        kinds: &[("apps", "ReplicaSet")],
        columns: || {
            vec![
                NAME,
                col("Desired", "integer", 0, "Number of desired pods"),
                col("Current", "integer", 0, "Number of actually running pods"),
                col("Ready", "integer", 0, "Number of ready pods"),
                AGE,
            ]
        },
        cells: desired_current_ready,
    },
    // StatefulSet
    Printer {
        kinds: &[("apps", "StatefulSet")],
        columns: || {
            vec![
                NAME,
                col(
                    "Ready",
                    "string",
                    0,
                    "Number of ready replicas out of desired",
                ),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&status["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                age,
            ]
        },
    },
    // DaemonSet
    Printer {
        kinds: &[("apps", "DaemonSet")],
        columns: || {
            vec![
                NAME,
                col("Desired", "integer", 0, "Desired number of scheduled pods"),
                col("Current", "integer", 0, "Current number of scheduled pods"),
                col("Ready", "integer", 0, "Number of ready pods"),
                col("Up-to-date", "integer", 0, "Number of updated pods"),
                col("Available", "integer", 0, "Number of available pods"),
                col("Node Selector", "string", 0, "Node selector"),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            let ns: Vec<String> = spec["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|s| {
                    s.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(int(&status["desiredNumberScheduled"])),
                json!(int(&status["currentNumberScheduled"])),
                json!(int(&status["numberReady"])),
                json!(int(&status["updatedNumberScheduled"])),
                json!(int(&status["numberAvailable"])),
                or_none(&ns.join(",")),
                age,
            ]
        },
    },
    // Job
    Printer {
        kinds: &[("batch", "Job")],
        columns: || {
            vec![
                NAME,
                col("Status", "string", 0, "Status of the job"),
                col(
                    "Completions",
                    "string",
                    0,
                    "Desired and successful completions",
                ),
                col("Duration", "string", 0, "Time the job ran"),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
            let has = |t: &str| {
                conditions
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            let state = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if spec["suspend"] == json!(true) {
                "Suspended"
            } else {
                "Running"
            };
            let duration = match (
                status["startTime"].as_str(),
                status["completionTime"].as_str(),
            ) {
                (Some(s), Some(e)) => match (
                    chrono::DateTime::parse_from_rfc3339(s),
                    chrono::DateTime::parse_from_rfc3339(e),
                ) {
                    (Ok(s), Ok(e)) => human_duration((e - s).num_seconds()),
                    _ => String::new(),
                },
                (Some(_), None) => age_of(&status["startTime"])
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                _ => String::new(),
            };
            vec![
                name,
                json!(state),
                json!(format!(
                    "{}/{}",
                    int(&status["succeeded"]),
                    spec["completions"]
                        .as_i64()
                        .map_or("1".to_string(), |c| c.to_string())
                )),
                json!(duration),
                age,
            ]
        },
    },
    // CronJob
    Printer {
        kinds: &[("batch", "CronJob")],
        columns: || {
            vec![
                NAME,
                col("Schedule", "string", 0, "The schedule"),
                col("Timezone", "string", 0, "The time zone"),
                col("Suspend", "boolean", 0, "Whether the cron job is suspended"),
                col("Active", "integer", 0, "Number of running jobs"),
                col(
                    "Last Schedule",
                    "string",
                    0,
                    "When the job was last scheduled",
                ),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            vec![
                name,
                spec["schedule"].clone(),
                or_none(spec["timeZone"].as_str().unwrap_or("")),
                json!(spec["suspend"].as_bool().unwrap_or(false)),
                json!(count(&status["active"])),
                if status["lastScheduleTime"].is_string() {
                    age_of(&status["lastScheduleTime"])
                } else {
                    json!("<none>")
                },
                age,
            ]
        },
    },
    // CustomResourceDefinition
    Printer {
        kinds: &[("apiextensions.k8s.io", "CustomResourceDefinition")],
        columns: || {
            vec![
                NAME,
                col("Created At", "date", 0, "When the CRD was created"),
            ]
        },
        cells: |r| {
            let Row { m, name, .. } = r;
            vec![name, m["creationTimestamp"].clone()]
        },
    },
    // Role, ClusterRole, LimitRange
    Printer {
        kinds: &[
            ("rbac.authorization.k8s.io", "Role"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("", "LimitRange"),
        ],
        columns: || {
            vec![
                NAME,
                col("Created At", "date", 0, "When the object was created"),
            ]
        },
        cells: |r| {
            let Row { m, name, .. } = r;
            vec![name, m["creationTimestamp"].clone()]
        },
    },
    // RoleBinding, ClusterRoleBinding
    Printer {
        kinds: &[
            ("rbac.authorization.k8s.io", "RoleBinding"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ],
        columns: || {
            vec![
                NAME,
                col("Role", "string", 0, "Role referenced by the binding"),
                AGE,
                col("Users", "string", 1, "Users bound"),
                col("Groups", "string", 1, "Groups bound"),
                col("ServiceAccounts", "string", 1, "Service accounts bound"),
            ]
        },
        cells: |r| {
            let Row { o, name, age, .. } = r;
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    o["roleRef"]["kind"].as_str().unwrap_or(""),
                    o["roleRef"]["name"].as_str().unwrap_or("")
                )),
                age,
                subjects_of(o, "User"),
                subjects_of(o, "Group"),
                subjects_of(o, "ServiceAccount"),
            ]
        },
    },
    // Ingress
    Printer {
        kinds: &[("networking.k8s.io", "Ingress")],
        columns: || {
            vec![
                NAME,
                col("Class", "string", 0, "The ingress class"),
                col("Hosts", "string", 0, "Hosts the ingress serves"),
                col("Address", "string", 0, "Addresses of the load balancer"),
                col("Ports", "string", 0, "Ports of the load balancer"),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            let hosts: Vec<&str> = spec["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["host"].as_str())
                .collect();
            let tls = spec["tls"].as_array().is_some_and(|t| !t.is_empty());
            let addrs: Vec<&str> = status["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                .collect();
            vec![
                name,
                or_none(spec["ingressClassName"].as_str().unwrap_or("")),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(addrs.join(",")),
                json!(if tls { "80, 443" } else { "80" }),
                age,
            ]
        },
    },
    // NetworkPolicy
    Printer {
        kinds: &[("networking.k8s.io", "NetworkPolicy")],
        columns: || {
            vec![
                NAME,
                col("Pod-Selector", "string", 0, "Pods the policy applies to"),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name, age, spec, ..
            } = r;
            vec![name, json!(selector_text(&spec["podSelector"])), age]
        },
    },
    // HorizontalPodAutoscaler
    Printer {
        kinds: &[("autoscaling", "HorizontalPodAutoscaler")],
        columns: || {
            vec![
                NAME,
                col("Reference", "string", 0, "The scaled object"),
                col("Targets", "string", 0, "Current and target metrics"),
                col("MinPods", "string", 0, "Lower replica limit"),
                col("MaxPods", "integer", 0, "Upper replica limit"),
                col("Replicas", "integer", 0, "Current replicas"),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            let target = &spec["scaleTargetRef"];
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    target["kind"].as_str().unwrap_or(""),
                    target["name"].as_str().unwrap_or("")
                )),
                json!(format!("<unknown>/{} metrics", count(&spec["metrics"]))),
                json!(spec["minReplicas"].as_i64().unwrap_or(1).to_string()),
                json!(int(&spec["maxReplicas"])),
                json!(int(&status["currentReplicas"])),
                age,
            ]
        },
    },
    // PodDisruptionBudget
    Printer {
        kinds: &[("policy", "PodDisruptionBudget")],
        columns: || {
            vec![
                NAME,
                col(
                    "Min Available",
                    "string",
                    0,
                    "Pods that must stay available",
                ),
                col(
                    "Max Unavailable",
                    "string",
                    0,
                    "Pods that may be unavailable",
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    0,
                    "Disruptions allowed now",
                ),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name,
                age,
                spec,
                status,
                ..
            } = r;
            let text = |v: &Value| match v {
                Value::Null => json!("N/A"),
                Value::String(s) => json!(s),
                other => json!(other.to_string()),
            };
            vec![
                name,
                text(&spec["minAvailable"]),
                text(&spec["maxUnavailable"]),
                json!(int(&status["disruptionsAllowed"])),
                age,
            ]
        },
    },
    // Lease
    Printer {
        kinds: &[("coordination.k8s.io", "Lease")],
        columns: || vec![NAME, col("Holder", "string", 0, "The lease holder"), AGE],
        cells: |r| {
            let Row {
                name, age, spec, ..
            } = r;
            vec![
                name,
                or_none(spec["holderIdentity"].as_str().unwrap_or("")),
                age,
            ]
        },
    },
    // PriorityClass
    Printer {
        kinds: &[("scheduling.k8s.io", "PriorityClass")],
        columns: || {
            vec![
                NAME,
                col("Value", "integer", 0, "The priority value"),
                col(
                    "Global-Default",
                    "boolean",
                    0,
                    "Whether this is the default priority class",
                ),
                AGE,
                col("PreemptionPolicy", "string", 0, "The preemption policy"),
            ]
        },
        cells: |r| {
            let Row { o, name, age, .. } = r;
            vec![
                name,
                json!(int(&o["value"])),
                json!(o["globalDefault"].as_bool().unwrap_or(false)),
                age,
                json!(o["preemptionPolicy"]
                    .as_str()
                    .unwrap_or("PreemptLowerPriority")),
            ]
        },
    },
    // StorageClass
    Printer {
        kinds: &[("storage.k8s.io", "StorageClass")],
        columns: || {
            vec![
                NAME,
                col("Provisioner", "string", 0, "The provisioner"),
                col(
                    "ReclaimPolicy",
                    "string",
                    0,
                    "Reclaim policy of provisioned volumes",
                ),
                col("VolumeBindingMode", "string", 0, "When volumes are bound"),
                col(
                    "AllowVolumeExpansion",
                    "string",
                    0,
                    "Whether volumes may grow",
                ),
                AGE,
            ]
        },
        cells: |r| {
            let Row { o, name, age, .. } = r;
            vec![
                name,
                o["provisioner"].clone(),
                json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
                json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
                json!(o["allowVolumeExpansion"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string()),
                age,
            ]
        },
    },
];
