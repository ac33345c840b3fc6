//! `meta.k8s.io` Table and PartialObjectMetadata output: the columns `kubectl get` prints for
//! built-in kinds, and additionalPrinterColumns for custom resources.

use serde_json::{json, Value};

use crate::registry::Resource;
use crate::server::Output;

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: i64,
    description: &'static str,
}

const fn col(
    name: &'static str,
    ty: &'static str,
    priority: i64,
    description: &'static str,
) -> Col {
    Col {
        name,
        ty,
        priority,
        description,
    }
}

// A description written `definition#field` is that field's documentation, as kube-apiserver's
// printers take it from the field's SwaggerDoc; `describe` resolves it.
const NAME: Col = col(
    "Name",
    "string",
    0,
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta#name",
);
const AGE: Col = col(
    "Age",
    "string",
    0,
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta#creationTimestamp",
);

/// The description of a column: a field's documentation for `definition#field`, else the text.
fn describe(description: &str) -> String {
    let Some((def, field)) = description.split_once('#') else {
        return description.to_string();
    };
    crate::schema::Schema::builtin()
        .definition(def)
        .and_then(|d| d.pointer(&format!("/properties/{field}/description")))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Kubernetes' HumanDuration: "45s", "3m20s", "5h", "3d4h", ...
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        let rem = m % 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 8 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rem}h")
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if y < 8 {
        let rem = d % 365;
        return if rem == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{rem}d")
        };
    }
    format!("{y}y")
}

fn age_of(ts: &Value) -> Value {
    match ts
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => json!(human_duration(
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()
        )),
        None => json!("<unknown>"),
    }
}

fn count(v: &Value) -> i64 {
    match v {
        Value::Object(m) => m.len() as i64,
        Value::Array(a) => a.len() as i64,
        _ => 0,
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn or_none(s: &str) -> Value {
    if s.is_empty() {
        json!("<none>")
    } else {
        json!(s)
    }
}

fn columns(res: &Resource) -> Vec<Col> {
    if res.custom {
        return vec![];
    }
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Namespace") => vec![
            NAME,
            col("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        ("", "ConfigMap") => vec![
            NAME,
            col("Data", "string", 0, "io.k8s.api.core.v1.ConfigMap#data"),
            AGE,
        ],
        ("", "Node") => vec![
            NAME,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            AGE,
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of internal IPs for the node.",
            ),
            col("OS-Image", "string", 1, "OS image reported by the node."),
        ],
        ("certificates.k8s.io", "CertificateSigningRequest") => vec![
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
        ],
        ("", "Secret") => vec![
            NAME,
            col("Type", "string", 0, "io.k8s.api.core.v1.Secret#type"),
            col("Data", "string", 0, "io.k8s.api.core.v1.Secret#data"),
            AGE,
        ],
        ("", "Service") => vec![
            NAME,
            col("Type", "string", 0, "The type of the service"),
            col("Cluster-IP", "string", 0, "The cluster IP"),
            col("External-IP", "string", 0, "External IPs"),
            col("Port(s)", "string", 0, "Service ports"),
            AGE,
            col("Selector", "string", 1, "The selector"),
        ],
        ("", "ServiceAccount") => vec![NAME, col("Secrets", "string", 0, "Number of secrets"), AGE],
        ("", "Event") => vec![
            col(
                "Last Seen",
                "string",
                0,
                "Time since the event was last seen",
            ),
            col("Type", "string", 0, "Type of the event"),
            col("Reason", "string", 0, "Reason"),
            col("Object", "string", 0, "The object the event is about"),
            col("Message", "string", 0, "Message"),
        ],
        ("apps", "Deployment") => vec![
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
        ],
        ("apps", "ReplicaSet") => vec![
            NAME,
            col("Desired", "integer", 0, "Number of desired pods"),
            col("Current", "integer", 0, "Number of actually running pods"),
            col("Ready", "integer", 0, "Number of ready pods"),
            AGE,
        ],
        ("apps", "StatefulSet") => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "Number of ready replicas out of desired",
            ),
            AGE,
        ],
        ("apps", "DaemonSet") => vec![
            NAME,
            col("Desired", "integer", 0, "Desired number of scheduled pods"),
            col("Current", "integer", 0, "Current number of scheduled pods"),
            col("Ready", "integer", 0, "Number of ready pods"),
            col("Up-to-date", "integer", 0, "Number of updated pods"),
            col("Available", "integer", 0, "Number of available pods"),
            col("Node Selector", "string", 0, "Node selector"),
            AGE,
        ],
        ("batch", "Job") => vec![
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
        ],
        ("batch", "CronJob") => vec![
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
        ],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => vec![
            NAME,
            col("Created At", "date", 0, "When the CRD was created"),
        ],
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") | ("", "LimitRange") => {
            vec![
                NAME,
                col("Created At", "date", 0, "When the object was created"),
            ]
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => vec![
            NAME,
            col("Role", "string", 0, "Role referenced by the binding"),
            AGE,
            col("Users", "string", 1, "Users bound"),
            col("Groups", "string", 1, "Groups bound"),
            col("ServiceAccounts", "string", 1, "Service accounts bound"),
        ],
        ("networking.k8s.io", "Ingress") => vec![
            NAME,
            col("Class", "string", 0, "The ingress class"),
            col("Hosts", "string", 0, "Hosts the ingress serves"),
            col("Address", "string", 0, "Addresses of the load balancer"),
            col("Ports", "string", 0, "Ports of the load balancer"),
            AGE,
        ],
        ("networking.k8s.io", "NetworkPolicy") => vec![
            NAME,
            col("Pod-Selector", "string", 0, "Pods the policy applies to"),
            AGE,
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            NAME,
            col("Reference", "string", 0, "The scaled object"),
            col("Targets", "string", 0, "Current and target metrics"),
            col("MinPods", "string", 0, "Lower replica limit"),
            col("MaxPods", "integer", 0, "Upper replica limit"),
            col("Replicas", "integer", 0, "Current replicas"),
            AGE,
        ],
        ("policy", "PodDisruptionBudget") => vec![
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
        ],
        ("coordination.k8s.io", "Lease") => {
            vec![NAME, col("Holder", "string", 0, "The lease holder"), AGE]
        }
        ("", "PersistentVolumeClaim") => vec![
            NAME,
            col("Status", "string", 0, "Phase of the claim"),
            col("Volume", "string", 0, "Bound volume"),
            col("Capacity", "string", 0, "Capacity of the volume"),
            col("Access Modes", "string", 0, "Access modes"),
            col("StorageClass", "string", 0, "Storage class"),
            col(
                "VolumeAttributesClass",
                "string",
                0,
                "Volume attributes class",
            ),
            AGE,
        ],
        ("", "ResourceQuota") => vec![
            NAME,
            AGE,
            col("Request", "string", 0, "Requests used and allowed"),
            col("Limit", "string", 0, "Limits used and allowed"),
        ],
        ("scheduling.k8s.io", "PriorityClass") => vec![
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
        ],
        ("storage.k8s.io", "StorageClass") => vec![
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
        ],
        ("", "Pod") => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted.",
            ),
            AGE,
            col("IP", "string", 1, "The pod's IP address."),
            col("Node", "string", 1, "The node the pod runs on."),
        ],
        ("", "Endpoints") => vec![
            NAME,
            col("Endpoints", "string", 0, "Endpoints of the service"),
            AGE,
        ],
        ("", "ReplicationController") => vec![
            NAME,
            col("Desired", "integer", 0, "Number of desired pods"),
            col("Current", "integer", 0, "Number of actually running pods"),
            col("Ready", "integer", 0, "Number of ready pods"),
            AGE,
        ],
        ("", "PersistentVolume") => vec![
            NAME,
            col("Capacity", "string", 0, "Capacity of the volume"),
            col("Access Modes", "string", 0, "Access modes"),
            col("Reclaim Policy", "string", 0, "Reclaim policy"),
            col("Status", "string", 0, "Phase of the volume"),
            col("Claim", "string", 0, "The bound claim"),
            col("StorageClass", "string", 0, "Storage class"),
            col(
                "VolumeAttributesClass",
                "string",
                0,
                "Volume attributes class",
            ),
            col("Reason", "string", 0, "Reason of the phase"),
            AGE,
        ],
        _ => vec![NAME, AGE],
    }
}

fn access_modes(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn subjects_of(o: &Value, kind: &str) -> Value {
    let names: Vec<String> = o["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["kind"] == kind)
        .map(|s| match (kind, s["namespace"].as_str()) {
            ("ServiceAccount", Some(ns)) => format!("{ns}/{}", s["name"].as_str().unwrap_or("")),
            _ => s["name"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    json!(names.join(", "))
}

fn quota_pairs(status: &Value, keep: impl Fn(&str) -> bool) -> Value {
    let hard = status["hard"].as_object();
    let used = status["used"].as_object();
    let mut parts: Vec<String> = hard
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep(k))
        .map(|(k, h)| {
            let u = used
                .and_then(|u| u.get(k))
                .and_then(Value::as_str)
                .unwrap_or("0");
            format!("{k}: {u}/{}", h.as_str().unwrap_or(""))
        })
        .collect();
    parts.sort();
    json!(parts.join(", "))
}

fn cells(res: &Resource, o: &Value) -> Vec<Value> {
    let m = &o["metadata"];
    let name = m["name"].clone();
    let age = age_of(&m["creationTimestamp"]);
    let spec = &o["spec"];
    let status = &o["status"];
    match (res.group.as_str(), res.kind.as_str()) {
        _ if res.custom => custom_cells(res, o),
        ("", "Namespace") => vec![
            name,
            json!(status["phase"].as_str().unwrap_or("Active")),
            age,
        ],
        ("", "ConfigMap") => vec![
            name,
            json!(count(&o["data"]) + count(&o["binaryData"])),
            age,
        ],
        ("", "Node") => {
            let ready = status["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| {
                    if c["status"] == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let mut st = ready.to_string();
            if spec["unschedulable"] == json!(true) {
                st.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = m["labels"]
                .as_object()
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            let ip = status["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .and_then(|a| a["address"].as_str())
                .unwrap_or("<none>");
            vec![
                name,
                json!(st),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                age,
                json!(status["nodeInfo"]["kubeletVersion"].as_str().unwrap_or("")),
                json!(ip),
                json!(status["nodeInfo"]["osImage"]
                    .as_str()
                    .unwrap_or("<unknown>")),
            ]
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
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
        }
        ("", "Secret") => vec![name, o["type"].clone(), json!(count(&o["data"])), age],
        ("", "Service") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| match p["nodePort"].as_i64() {
                            Some(np) => format!(
                                "{}:{}/{}",
                                int(&p["port"]),
                                np,
                                p["protocol"].as_str().unwrap_or("TCP")
                            ),
                            None => format!(
                                "{}/{}",
                                int(&p["port"]),
                                p["protocol"].as_str().unwrap_or("TCP")
                            ),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let selector: Vec<String> = spec["selector"]
                .as_object()
                .map(|s| {
                    s.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            let external = spec["externalName"].as_str().unwrap_or("");
            vec![
                name,
                spec["type"].clone(),
                or_none(spec["clusterIP"].as_str().unwrap_or("")),
                or_none(external),
                or_none(&ports.join(",")),
                age,
                or_none(&selector.join(",")),
            ]
        }
        ("", "ServiceAccount") => vec![name, json!(count(&o["secrets"])), age],
        ("", "Event") => {
            let io = &o["involvedObject"];
            let last = if o["lastTimestamp"].is_string() {
                &o["lastTimestamp"]
            } else {
                &m["creationTimestamp"]
            };
            vec![
                age_of(last),
                o["type"].clone(),
                o["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    io["kind"].as_str().unwrap_or("").to_lowercase(),
                    io["name"].as_str().unwrap_or("")
                )),
                o["message"].clone(),
            ]
        }
        ("apps", "Deployment") => {
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
        }
        ("apps", "ReplicaSet") => vec![
            name,
            json!(int(&spec["replicas"])),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
            age,
        ],
        ("apps", "StatefulSet") => vec![
            name,
            json!(format!(
                "{}/{}",
                int(&status["readyReplicas"]),
                int(&spec["replicas"])
            )),
            age,
        ],
        ("apps", "DaemonSet") => {
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
        }
        ("batch", "Job") => {
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
        }
        ("batch", "CronJob") => vec![
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
        ],
        ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("rbac.authorization.k8s.io", "Role" | "ClusterRole")
        | ("", "LimitRange") => vec![name, m["creationTimestamp"].clone()],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => vec![
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
        ],
        ("networking.k8s.io", "Ingress") => {
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
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            vec![name, json!(selector_text(&spec["podSelector"])), age]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
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
        }
        ("policy", "PodDisruptionBudget") => {
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
        }
        ("coordination.k8s.io", "Lease") => vec![
            name,
            or_none(spec["holderIdentity"].as_str().unwrap_or("")),
            age,
        ],
        ("", "PersistentVolumeClaim") => {
            let modes = access_modes(&status["accessModes"]);
            vec![
                name,
                json!(status["phase"].as_str().unwrap_or("Pending")),
                json!(spec["volumeName"].as_str().unwrap_or("")),
                json!(status["capacity"]["storage"].as_str().unwrap_or("")),
                json!(modes),
                or_none(spec["storageClassName"].as_str().unwrap_or("")),
                or_none(spec["volumeAttributesClassName"].as_str().unwrap_or("")),
                age,
            ]
        }
        ("", "ResourceQuota") => vec![
            name,
            age,
            quota_pairs(status, |k| !k.starts_with("limits.")),
            quota_pairs(status, |k| k.starts_with("limits.")),
        ],
        ("scheduling.k8s.io", "PriorityClass") => vec![
            name,
            json!(int(&o["value"])),
            json!(o["globalDefault"].as_bool().unwrap_or(false)),
            age,
            json!(o["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")),
        ],
        ("storage.k8s.io", "StorageClass") => vec![
            name,
            o["provisioner"].clone(),
            json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
            json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
            json!(o["allowVolumeExpansion"]
                .as_bool()
                .unwrap_or(false)
                .to_string()),
            age,
        ],
        ("", "Pod") => {
            let statuses = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"] == json!(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status["phase"].as_str().unwrap_or("Pending")),
                json!(restarts.to_string()),
                age,
                or_none(status["podIP"].as_str().unwrap_or("")),
                or_none(spec["nodeName"].as_str().unwrap_or("")),
            ]
        }
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for subset in o["subsets"].as_array().into_iter().flatten() {
                let ports: Vec<i64> = subset["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| int(&p["port"]))
                    .collect();
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    let ip = a["ip"].as_str().unwrap_or("");
                    if ports.is_empty() {
                        eps.push(ip.to_string());
                    }
                    for p in &ports {
                        eps.push(format!("{ip}:{p}"));
                    }
                }
            }
            vec![name, or_none(&eps.join(",")), age]
        }
        ("", "ReplicationController") => vec![
            name,
            json!(int(&spec["replicas"])),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
            age,
        ],
        ("", "PersistentVolume") => {
            let claim = &spec["claimRef"];
            let claim_text = match (claim["namespace"].as_str(), claim["name"].as_str()) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => String::new(),
            };
            vec![
                name,
                json!(spec["capacity"]["storage"].as_str().unwrap_or("")),
                json!(access_modes(&spec["accessModes"])),
                json!(spec["persistentVolumeReclaimPolicy"]
                    .as_str()
                    .unwrap_or("Retain")),
                json!(status["phase"].as_str().unwrap_or("Pending")),
                json!(claim_text),
                json!(spec["storageClassName"].as_str().unwrap_or("")),
                or_none(spec["volumeAttributesClassName"].as_str().unwrap_or("")),
                json!(status["reason"].as_str().unwrap_or("")),
                age,
            ]
        }
        _ => vec![name, age],
    }
}

fn containers_images(pod: &Value) -> (String, String) {
    let cs = pod["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector_text(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if let Some(exprs) = sel["matchExpressions"].as_array() {
        for e in exprs {
            let vals: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key = e["key"].as_str().unwrap_or("");
            parts.push(match e["operator"].as_str().unwrap_or("") {
                "In" => format!("{key} in ({})", vals.join(",")),
                "NotIn" => format!("{key} notin ({})", vals.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            });
        }
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// Evaluates a simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`,
/// `.metadata.labels.app`) against an object.
pub fn simple_jsonpath<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    // Steps: fields (with `\.` escaping a dot inside a name), `[N]`, `['name']` and
    // `[?(@.field=="value")]` filters (the first match), as printer columns use them.
    let p = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let chars: Vec<char> = p.chars().collect();
    let mut cur = o;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => i += 1,
            '[' => {
                let end = i + chars[i..].iter().position(|c| *c == ']')?;
                let inner: String = chars[i + 1..end].iter().collect();
                i = end + 1;
                if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                    let (field, want) = filter.split_once("==")?;
                    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                    cur = cur
                        .as_array()?
                        .iter()
                        .find(|e| e.get(field.trim()).and_then(Value::as_str) == Some(want))?;
                } else if let Ok(n) = inner.parse::<usize>() {
                    cur = cur.get(n)?;
                } else {
                    cur = cur.get(inner.trim_matches(|c| c == '"' || c == '\''))?;
                }
            }
            _ => {
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                cur = cur.get(&name)?;
            }
        }
    }
    Some(cur)
}

fn custom_cells(res: &Resource, o: &Value) -> Vec<Value> {
    let mut out = vec![o["metadata"]["name"].clone()];
    if res.printer_columns.is_empty() {
        out.push(age_of(&o["metadata"]["creationTimestamp"]));
        return out;
    }
    for c in &res.printer_columns {
        let v = simple_jsonpath(o, &c.json_path)
            .cloned()
            .unwrap_or(Value::Null);
        out.push(match (c.type_.as_str(), &v) {
            (_, Value::Null) => Value::Null,
            ("date", Value::String(_)) => age_of(&v),
            ("string", Value::String(_)) => v,
            ("string", other) => json!(other.to_string()),
            _ => v,
        });
    }
    out
}

fn column_definitions(res: &Resource) -> Vec<Value> {
    if res.custom {
        let mut cols = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": describe(NAME.description), "priority": 0}),
        ];
        if res.printer_columns.is_empty() {
            cols.push(json!({"name": "Age", "type": "date", "format": "", "description": describe(AGE.description), "priority": 0}));
        }
        for c in &res.printer_columns {
            // The CRD handler's default description names the column's path.
            let description = if c.description.is_empty() {
                format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    c.json_path
                )
            } else {
                c.description.clone()
            };
            cols.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": description, "priority": c.priority}));
        }
        return cols;
    }
    columns(res)
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.ty, "format": format, "description": describe(c.description), "priority": c.priority})
        })
        .collect()
}

fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()})
}

fn row(res: &Resource, o: &Value) -> Value {
    json!({"cells": cells(res, o), "object": partial_metadata(o)})
}

/// Renders one object for the requested output.
pub(crate) fn render_one(res: &Resource, o: Value, output: Output) -> Value {
    match output {
        Output::Json
        | Output::Yaml
        | Output::OpenApiV2Protobuf(_)
        | Output::AggregatedDiscovery => o,
        Output::Metadata => partial_metadata(&o),
        Output::Table(v) => json!({
            "kind": "Table",
            "apiVersion": format!("meta.k8s.io/{v}"),
            "metadata": {"resourceVersion": o["metadata"]["resourceVersion"].clone()},
            "columnDefinitions": column_definitions(res),
            "rows": [row(res, &o)],
        }),
    }
}

/// Renders a list for the requested output (Table or PartialObjectMetadataList).
pub(crate) fn render_list(
    res: &Resource,
    objs: Vec<Value>,
    list_meta: Value,
    output: Output,
) -> Value {
    match output {
        Output::Table(v) => json!({
            "kind": "Table",
            "apiVersion": format!("meta.k8s.io/{v}"),
            "metadata": list_meta,
            "columnDefinitions": column_definitions(res),
            "rows": objs.iter().map(|o| row(res, o)).collect::<Vec<_>>(),
        }),
        Output::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "items": objs.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        Output::Json
        | Output::Yaml
        | Output::OpenApiV2Protobuf(_)
        | Output::AggregatedDiscovery => json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": list_meta,
            "items": objs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubernetes() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(secs), want);
        }
    }

    #[test]
    fn jsonpaths() {
        let o = json!({"spec": {"replicas": 3, "list": [{"a": 1}]}, "metadata": {"labels": {"app": "x"}}});
        assert_eq!(simple_jsonpath(&o, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(simple_jsonpath(&o, ".spec.list[0].a"), Some(&json!(1)));
        assert_eq!(
            simple_jsonpath(&o, ".metadata.labels.app"),
            Some(&json!("x"))
        );
        assert_eq!(simple_jsonpath(&o, ".spec.missing"), None);
        let m = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Joined", "status": "True"}],
            "properties": {"kubernetes-fleet.io/node-count": {"value": "3"}}}});
        assert_eq!(
            simple_jsonpath(&m, ".status.conditions[?(@.type==\"Joined\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            simple_jsonpath(
                &m,
                ".status.properties.kubernetes-fleet\\.io/node-count.value"
            ),
            Some(&json!("3"))
        );
        assert_eq!(
            simple_jsonpath(
                &m,
                ".status.properties['kubernetes-fleet.io/node-count'].value"
            ),
            Some(&json!("3"))
        );
        assert_eq!(
            simple_jsonpath(&m, ".status.conditions[?(@.type==\"Gone\")].status"),
            None
        );
    }
}
