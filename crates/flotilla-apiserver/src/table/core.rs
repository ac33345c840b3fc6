//! Printers of the core group's kinds (`kubectl get pods`, `services`, ...), as
//! kube-apiserver's printers print them.

use serde_json::json;

use super::format::*;
use super::{col, desired_current_ready, Printer, Row, AGE, NAME};

/// The printers of this part of the API, each with its columns and cells together.
pub(super) const CORE: &[Printer] = &[
    // Namespace
    Printer {
        kinds: &[("", "Namespace")],
        columns: || {
            vec![
                NAME,
                col("Status", "string", 0, "The status of the namespace"),
                AGE,
            ]
        },
        cells: |r| {
            let Row {
                name, age, status, ..
            } = r;
            vec![
                name,
                json!(status["phase"].as_str().unwrap_or("Active")),
                age,
            ]
        },
    },
    // ConfigMap
    Printer {
        kinds: &[("", "ConfigMap")],
        columns: || {
            vec![
                NAME,
                col("Data", "string", 0, "io.k8s.api.core.v1.ConfigMap#data"),
                AGE,
            ]
        },
        cells: |r| {
            let Row { o, name, age, .. } = r;
            vec![
                name,
                json!(count(&o["data"]) + count(&o["binaryData"])),
                age,
            ]
        },
    },
    // Node
    Printer {
        kinds: &[("", "Node")],
        columns: || {
            vec![
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
            ]
        },
        cells: |r| {
            let Row {
                m,
                name,
                age,
                spec,
                status,
                ..
            } = r;
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
        },
    },
    // Secret
    Printer {
        kinds: &[("", "Secret")],
        columns: || {
            vec![
                NAME,
                col("Type", "string", 0, "io.k8s.api.core.v1.Secret#type"),
                col("Data", "string", 0, "io.k8s.api.core.v1.Secret#data"),
                AGE,
            ]
        },
        cells: |r| {
            let Row { o, name, age, .. } = r;
            vec![name, o["type"].clone(), json!(count(&o["data"])), age]
        },
    },
    // Service
    Printer {
        kinds: &[("", "Service")],
        columns: || {
            vec![
                NAME,
                col("Type", "string", 0, "The type of the service"),
                col("Cluster-IP", "string", 0, "The cluster IP"),
                col("External-IP", "string", 0, "External IPs"),
                col("Port(s)", "string", 0, "Service ports"),
                AGE,
                col("Selector", "string", 1, "The selector"),
            ]
        },
        cells: |r| {
            let Row {
                name, age, spec, ..
            } = r;
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
        },
    },
    // ServiceAccount
    Printer {
        kinds: &[("", "ServiceAccount")],
        columns: || vec![NAME, col("Secrets", "string", 0, "Number of secrets"), AGE],
        cells: |r| {
            let Row { o, name, age, .. } = r;
            vec![name, json!(count(&o["secrets"])), age]
        },
    },
    // Event
    Printer {
        kinds: &[("", "Event")],
        columns: || {
            vec![
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
            ]
        },
        cells: |r| {
            let Row { o, m, .. } = r;
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
        },
    },
    // PersistentVolumeClaim
    Printer {
        kinds: &[("", "PersistentVolumeClaim")],
        columns: || {
            vec![
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
        },
    },
    // ResourceQuota
    Printer {
        kinds: &[("", "ResourceQuota")],
        columns: || {
            vec![
                NAME,
                AGE,
                col("Request", "string", 0, "Requests used and allowed"),
                col("Limit", "string", 0, "Limits used and allowed"),
            ]
        },
        cells: |r| {
            let Row {
                name, age, status, ..
            } = r;
            vec![
                name,
                age,
                quota_pairs(status, |k| !k.starts_with("limits.")),
                quota_pairs(status, |k| k.starts_with("limits.")),
            ]
        },
    },
    // Pod
    Printer {
        kinds: &[("", "Pod")],
        columns: || {
            vec![
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
        },
    },
    // Endpoints
    Printer {
        kinds: &[("", "Endpoints")],
        columns: || {
            vec![
                NAME,
                col("Endpoints", "string", 0, "Endpoints of the service"),
                AGE,
            ]
        },
        cells: |r| {
            let Row { o, name, age, .. } = r;
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
        },
    },
    // ReplicationController
    Printer {
        kinds: &[("", "ReplicationController")],
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
    // PersistentVolume
    Printer {
        kinds: &[("", "PersistentVolume")],
        columns: || {
            vec![
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
        },
    },
];
