//! Defaulting of built-in kinds, as kube-apiserver's defaulters do it (replicas, strategies,
//! pod specs, Job fields, Secrets' stringData merged into data).

use serde_json::{json, Map, Value};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let map = v.as_object_mut().expect("defaulting runs on objects");
    let e = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    e.as_object_mut().expect("just made an object")
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// `stringData` is write-only: as kube-apiserver's conversion does, each of its keys is written
/// into `data` (base64), over a key of the same name, and the field itself is dropped.
fn merge_string_data(secret: &mut Map<String, Value>) {
    use base64::Engine;
    let Some(string_data) = secret.remove("stringData") else {
        return;
    };
    let Value::Object(string_data) = string_data else {
        return;
    };
    if string_data.is_empty() {
        return;
    }
    let data = secret.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    let data = data.as_object_mut().expect("just made an object");
    for (k, v) in string_data {
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        data.insert(
            k,
            Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
}

/// What kube-apiserver's strategies set on create only: a namespace's `kubernetes` finalizer
/// (an update that leaves it out, as the finalize subresource does, must not bring it back).
pub fn prepare_for_create(group: &str, kind: &str, obj: &mut Value) {
    if (group, kind) == ("", "Namespace") {
        default(obj_mut(obj, "spec"), "finalizers", json!(["kubernetes"]));
    }
}

/// Applies kube-apiserver's defaults for `kind` (group `group`) to `obj`.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Namespace") => {
            let name = obj["metadata"]["name"].clone();
            let meta = obj_mut(obj, "metadata");
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), name);
            }
            default(obj_mut(obj, "status"), "phase", json!("Active"));
        }
        ("", "Secret") => {
            let map = obj.as_object_mut().expect("object");
            merge_string_data(map);
            default(map, "type", json!("Opaque"));
        }
        ("", "Service") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "type", json!("ClusterIP"));
            let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
            default(spec, "sessionAffinity", json!("None"));
            if !external {
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default(p, "protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        default(p, "targetPort", port);
                    }
                }
            }
        }
        ("", "PersistentVolumeClaim") => {
            default(obj_mut(obj, "spec"), "volumeMode", json!("Filesystem"));
        }
        ("", "PersistentVolume") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default(spec, "volumeMode", json!("Filesystem"));
        }
        ("", "Pod") => {
            pod_spec_defaults(obj_mut(obj, "spec"), "Always");
            // As kube-apiserver: a new pod is Pending, with its QoS class.
            let qos = qos_class(&obj["spec"]);
            let status = obj_mut(obj, "status");
            default(status, "phase", json!("Pending"));
            default(status, "qosClass", json!(qos));
        }
        ("", "ReplicationController") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            // As kube-apiserver: the selector defaults to the template's labels.
            let labels = spec
                .get("template")
                .and_then(|t| t.get("metadata"))
                .and_then(|m| m.get("labels"))
                .cloned();
            if let Some(l) = labels {
                default(spec, "selector", l);
            }
            pod_template_defaults(spec, "Always");
        }
        ("apps", "Deployment") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            rolling_defaults(
                spec,
                "strategy",
                json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
            );
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            pod_template_defaults(spec, "Always");
        }
        ("apps", "ReplicaSet") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            pod_template_defaults(spec, "Always");
        }
        ("apps", "StatefulSet") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            rolling_defaults(spec, "updateStrategy", json!({"partition": 0}));
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            pod_template_defaults(spec, "Always");
        }
        ("apps", "DaemonSet") => {
            let spec = obj_mut(obj, "spec");
            rolling_defaults(
                spec,
                "updateStrategy",
                json!({"maxUnavailable": 1, "maxSurge": 0}),
            );
            default(spec, "revisionHistoryLimit", json!(10));
            pod_template_defaults(spec, "Always");
        }
        ("batch", "Job") => {
            let uid = obj["metadata"]["uid"].clone();
            let name = obj["metadata"]["name"].clone();
            let spec = obj_mut(obj, "spec");
            job_spec_defaults(spec, &uid, &name);
        }
        ("batch", "CronJob") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(jt) = spec.get_mut("jobTemplate").and_then(|j| j.get_mut("spec")) {
                if let Some(js) = jt.as_object_mut() {
                    default(js, "backoffLimit", json!(6));
                    default(js, "completionMode", json!("NonIndexed"));
                    default(js, "suspend", json!(false));
                    pod_template_defaults(js, "");
                }
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            let spec = obj_mut(obj, "spec");
            if spec.get("policyTypes").is_none() {
                let mut types = vec![json!("Ingress")];
                if spec.get("egress").is_some() {
                    types.push(json!("Egress"));
                }
                spec.insert("policyTypes".into(), Value::Array(types));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            default(
                obj.as_object_mut().expect("object"),
                "preemptionPolicy",
                json!("PreemptLowerPriority"),
            );
        }
        ("storage.k8s.io", "StorageClass") => {
            let o = obj.as_object_mut().expect("object");
            default(o, "reclaimPolicy", json!("Delete"));
            default(o, "volumeBindingMode", json!("Immediate"));
        }
        _ => {}
    }
}

/// Defaults a rollout strategy field by field, as kube-apiserver does: type RollingUpdate, and
/// for RollingUpdate each missing parameter.
fn rolling_defaults(spec: &mut Map<String, Value>, field: &str, params: Value) {
    let strategy = spec.entry(field.to_string()).or_insert_with(|| json!({}));
    if !strategy.is_object() {
        *strategy = json!({});
    }
    let s = strategy.as_object_mut().expect("just made an object");
    default(s, "type", json!("RollingUpdate"));
    if s.get("type") == Some(&json!("RollingUpdate")) {
        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
        if !ru.is_object() {
            *ru = json!({});
        }
        if let (Some(ru), Some(p)) = (ru.as_object_mut(), params.as_object()) {
            for (k, v) in p {
                default(ru, k, v.clone());
            }
        }
    }
}

fn job_spec_defaults(spec: &mut Map<String, Value>, uid: &Value, name: &Value) {
    let parallelism_set = spec.get("parallelism").is_some_and(|v| !v.is_null());
    let completions_set = spec.get("completions").is_some_and(|v| !v.is_null());
    if !parallelism_set && !completions_set {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    default(spec, "manualSelector", Value::Null);
    spec.remove("manualSelector");
    // Like kube-apiserver, a Job without a manual selector selects its pods by its own uid.
    if spec.get("selector").is_none() && uid.is_string() {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
        if let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut) {
            let meta = t.entry("metadata").or_insert_with(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    for (k, v) in [
                        ("batch.kubernetes.io/controller-uid", uid),
                        ("batch.kubernetes.io/job-name", name),
                        ("controller-uid", uid),
                        ("job-name", name),
                    ] {
                        l.insert(k.into(), v.clone());
                    }
                }
            }
        }
    }
    pod_template_defaults(spec, "");
}

fn pod_template_defaults(spec: &mut Map<String, Value>, restart_policy: &str) {
    if let Some(pod) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        pod_spec_defaults(pod, restart_policy);
    }
}

/// A pod's QoS class: Guaranteed when every container's cpu and memory limits equal their
/// requests, BestEffort when nothing is requested or limited, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect();
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c["resources"][*k]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][*r];
            let request = &c["resources"]["requests"][*r];
            limit.is_string() && (request.is_null() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn pod_spec_defaults(pod: &mut Map<String, Value>, restart_policy: &str) {
    if !restart_policy.is_empty() {
        default(pod, "restartPolicy", json!(restart_policy));
    }
    default(pod, "dnsPolicy", json!("ClusterFirst"));
    default(pod, "terminationGracePeriodSeconds", json!(30));
    default(pod, "schedulerName", json!("default-scheduler"));
    default(pod, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = pod.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default(c, "terminationMessagePath", json!("/dev/termination-log"));
                default(c, "terminationMessagePolicy", json!("File"));
                default(c, "resources", json!({}));
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let latest = !image_has_tag(image) || image.ends_with(":latest");
                default(
                    c,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

fn image_has_tag(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.contains(':')
}
