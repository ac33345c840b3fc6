//! Defaulting and validation of built-in kinds: the defaults and the checks a user of
//! kube-apiserver would notice (required fields, selectors matching templates, port ranges, ...).

use serde_json::{json, Map, Value};

use crate::errors::Cause;
use crate::selectors::LabelSelector;
use crate::validation::{config_key_problem, label_problems};

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

/// Validates a built-in object; returns the causes of a 422.
pub fn validate(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    let spec = &obj["spec"];
    match (group, kind) {
        ("certificates.k8s.io", "CertificateSigningRequest") => c.extend(crate::csr::validate(obj)),
        ("", "ConfigMap") => {
            let mut keys = std::collections::BTreeSet::new();
            for field in ["data", "binaryData"] {
                if let Some(m) = obj.get(field).and_then(Value::as_object) {
                    for k in m.keys() {
                        if let Some(p) = config_key_problem(k) {
                            c.push(Cause::invalid(field, &Value::from(k.as_str()), &p));
                        }
                        if !keys.insert(k.clone()) {
                            c.push(Cause::invalid(
                                field,
                                &Value::from(k.as_str()),
                                "duplicate of key present in data",
                            ));
                        }
                    }
                }
            }
        }
        ("", "Secret") => {
            // stringData was merged into data by the defaults, as kube-apiserver validates the
            // converted object: a bad key is reported under data.
            if let Some(m) = obj.get("data").and_then(Value::as_object) {
                for k in m.keys() {
                    if let Some(p) = config_key_problem(k) {
                        c.push(Cause::invalid(
                            format!("data[{k}]"),
                            &Value::from(k.as_str()),
                            &p,
                        ));
                    }
                }
            }
        }
        ("", "Service") => validate_service(spec, &mut c),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
                if r < 0 {
                    c.push(Cause::invalid(
                        "spec.replicas",
                        &json!(r),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            validate_selector_and_template(spec, "spec", &mut c);
        }
        ("", "Pod") => validate_pod_spec(spec, "spec", &mut c),
        ("", "ReplicationController") => {
            let labels = spec["template"]["metadata"]["labels"].as_object();
            for (k, v) in spec["selector"].as_object().into_iter().flatten() {
                if labels.and_then(|l| l.get(k)) != Some(v) {
                    c.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &spec["template"]["metadata"]["labels"],
                        "`selector` does not match template `labels`",
                    ));
                    break;
                }
            }
            validate_pod_spec(&spec["template"]["spec"], "spec.template.spec", &mut c);
        }
        ("batch", "Job") => {
            validate_selector_and_template(spec, "spec", &mut c);
            validate_job_restart(&spec["template"]["spec"], "spec.template.spec", &mut c);
        }
        ("batch", "CronJob") => {
            if spec["schedule"].as_str().unwrap_or("").is_empty() {
                c.push(Cause::required("spec.schedule"));
            }
            let tpl = &spec["jobTemplate"]["spec"]["template"];
            validate_pod_spec(&tpl["spec"], "spec.jobTemplate.spec.template.spec", &mut c);
            validate_job_restart(&tpl["spec"], "spec.jobTemplate.spec.template.spec", &mut c);
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let role_ref = &obj["roleRef"];
            for f in ["kind", "name"] {
                if role_ref[f].as_str().unwrap_or("").is_empty() {
                    c.push(Cause::required(format!("roleRef.{f}")));
                }
            }
            if let Some(subjects) = obj["subjects"].as_array() {
                for (i, s) in subjects.iter().enumerate() {
                    let kind = s["kind"].as_str().unwrap_or("");
                    if !matches!(kind, "ServiceAccount" | "User" | "Group") {
                        c.push(Cause::not_supported(
                            format!("subjects[{i}].kind"),
                            &s["kind"],
                            &["ServiceAccount", "User", "Group"],
                        ));
                    }
                    if s["name"].as_str().unwrap_or("").is_empty() {
                        c.push(Cause::required(format!("subjects[{i}].name")));
                    }
                }
            }
        }
        ("policy", "PodDisruptionBudget")
            if spec.get("minAvailable").is_some() && spec.get("maxUnavailable").is_some() =>
        {
            c.push(Cause::invalid(
                "spec",
                spec,
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        ("scheduling.k8s.io", "PriorityClass") if !obj["value"].is_i64() => {
            c.push(Cause::required("value"));
        }
        ("storage.k8s.io", "StorageClass")
            if obj["provisioner"].as_str().unwrap_or("").is_empty() =>
        {
            c.push(Cause::required("provisioner"));
        }
        ("coordination.k8s.io", "Lease") => {}
        _ => {}
    }
    c
}

fn validate_service(spec: &Value, c: &mut Vec<Cause>) {
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let supported = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !supported.contains(&ty) {
        c.push(Cause::not_supported("spec.type", &spec["type"], &supported));
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        c.push(Cause::required("spec.ports"));
    }
    if ty == "ExternalName" && spec["externalName"].as_str().unwrap_or("").is_empty() {
        c.push(Cause::required("spec.externalName"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            c.push(Cause::required(format!("spec.ports[{i}].name")));
        }
        if !name.is_empty() && !names.insert(name.to_string()) {
            c.push(Cause::duplicate(
                format!("spec.ports[{i}].name"),
                &p["name"],
            ));
        }
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            c.push(Cause::invalid(
                format!("spec.ports[{i}].port"),
                &json!(port),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            c.push(Cause::not_supported(
                format!("spec.ports[{i}].protocol"),
                &p["protocol"],
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
}

fn validate_job_restart(pod: &Value, path: &str, c: &mut Vec<Cause>) {
    match pod["restartPolicy"].as_str() {
        Some("OnFailure" | "Never") => {}
        None => c.push(Cause::required_detail(
            format!("{path}.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        )),
        Some(_) => c.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &pod["restartPolicy"],
            &["OnFailure", "Never"],
        )),
    }
}

fn validate_selector_and_template(spec: &Value, path: &str, c: &mut Vec<Cause>) {
    let selector = &spec["selector"];
    if !selector.is_object() {
        c.push(Cause::required(format!("{path}.selector")));
    } else {
        match LabelSelector::from_object(selector) {
            Ok(sel) => {
                if sel.is_empty() {
                    c.push(Cause::invalid(
                        format!("{path}.selector"),
                        selector,
                        "empty selector is invalid for deployment",
                    ));
                }
                let labels = spec["template"]["metadata"]["labels"].as_object();
                let matches =
                    sel.matches(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str));
                if !matches {
                    c.push(Cause::invalid(
                        format!("{path}.template.metadata.labels"),
                        &spec["template"]["metadata"]["labels"],
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            Err(e) => c.push(Cause::invalid(format!("{path}.selector"), selector, &e)),
        }
    }
    validate_pod_spec(
        &spec["template"]["spec"],
        &format!("{path}.template.spec"),
        c,
    );
}

fn validate_pod_spec(pod: &Value, path: &str, c: &mut Vec<Cause>) {
    let mut volumes = std::collections::BTreeSet::new();
    for (i, v) in pod["volumes"].as_array().into_iter().flatten().enumerate() {
        let name = v["name"].as_str().unwrap_or("");
        if name.is_empty() {
            c.push(Cause::required(format!("{path}.volumes[{i}].name")));
        } else if !volumes.insert(name.to_string()) {
            c.push(Cause::duplicate(
                format!("{path}.volumes[{i}].name"),
                &v["name"],
            ));
        } else {
            for p in label_problems(name) {
                c.push(Cause::invalid(
                    format!("{path}.volumes[{i}].name"),
                    &v["name"],
                    &p,
                ));
            }
        }
    }
    for list in ["initContainers", "containers"] {
        for (i, ct) in pod[list].as_array().into_iter().flatten().enumerate() {
            let p = format!("{path}.{list}[{i}]");
            for (j, m) in ct["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = m["name"].as_str().unwrap_or("");
                if name.is_empty() {
                    c.push(Cause::required(format!("{p}.volumeMounts[{j}].name")));
                } else if !volumes.contains(name) {
                    c.push(Cause::not_found(
                        format!("{p}.volumeMounts[{j}].name"),
                        &m["name"],
                    ));
                }
                if m["mountPath"].as_str().unwrap_or("").is_empty() {
                    c.push(Cause::required(format!("{p}.volumeMounts[{j}].mountPath")));
                }
            }
            for (j, e) in ct["env"].as_array().into_iter().flatten().enumerate() {
                if e["name"].as_str().unwrap_or("").is_empty() {
                    c.push(Cause::required(format!("{p}.env[{j}].name")));
                }
            }
            let res = &ct["resources"];
            for (name, req) in res["requests"].as_object().into_iter().flatten() {
                let limit = res["limits"].get(name);
                let (Some(r), Some(l)) = (
                    req.as_str().and_then(crate::validation::parse_quantity),
                    limit
                        .and_then(Value::as_str)
                        .and_then(crate::validation::parse_quantity),
                ) else {
                    continue;
                };
                if r > l {
                    c.push(Cause::invalid(
                        format!("{p}.resources.requests"),
                        req,
                        &format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.and_then(Value::as_str).unwrap_or("")
                        ),
                    ));
                }
            }
        }
    }
    let containers = pod["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if containers.is_empty() {
        c.push(Cause::required(format!("{path}.containers")));
    }
    let mut names = std::collections::BTreeSet::new();
    for (list, items) in [
        (
            "initContainers",
            pod["initContainers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        ),
        ("containers", containers),
    ] {
        for (i, ct) in items.iter().enumerate() {
            let p = format!("{path}.{list}[{i}]");
            let name = ct["name"].as_str().unwrap_or("");
            if name.is_empty() {
                c.push(Cause::required(format!("{p}.name")));
            } else {
                for problem in label_problems(name) {
                    c.push(Cause::invalid(format!("{p}.name"), &ct["name"], &problem));
                }
                if !names.insert(name.to_string()) {
                    c.push(Cause::duplicate(format!("{p}.name"), &ct["name"]));
                }
            }
            if ct["image"].as_str().unwrap_or("").trim().is_empty() {
                c.push(Cause::required(format!("{p}.image")));
            }
            if let Some(ports) = ct["ports"].as_array() {
                for (j, port) in ports.iter().enumerate() {
                    let n = port["containerPort"].as_i64().unwrap_or(0);
                    if !(1..=65535).contains(&n) {
                        c.push(Cause::invalid(
                            format!("{p}.ports[{j}].containerPort"),
                            &json!(n),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn deployment_defaults_and_validation() {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}});
        apply_defaults("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        // An empty strategy is defaulted field by field; Recreate gets no rolling parameters.
        let mut e = json!({"spec": {"strategy": {}}});
        apply_defaults("apps", "Deployment", &mut e);
        assert_eq!(
            e["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply_defaults("apps", "Deployment", &mut r);
        assert_eq!(r["spec"]["strategy"], json!({"type": "Recreate"}));
        let c0 = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c0["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c0["ports"][0]["protocol"], "TCP");
        assert!(validate("apps", "Deployment", &d).is_empty());

        let bad = json!({"spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}, {"name": "c", "image": "i"}]}}}});
        assert_eq!(
            fields(&validate("apps", "Deployment", &bad)),
            [
                "spec.template.metadata.labels",
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[1].name"
            ]
        );
        let empty = json!({"spec": {}});
        assert_eq!(
            fields(&validate("apps", "Deployment", &empty)),
            ["spec.selector", "spec.template.spec.containers"]
        );
    }

    #[test]
    fn service_and_job_rules() {
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply_defaults("", "Service", &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert!(validate("", "Service", &s).is_empty());
        let bad = json!({"spec": {"ports": [{"port": 0, "name": "a"}, {"port": 80, "name": "a"}], "type": "Bogus"}});
        assert_eq!(
            fields(&validate("", "Service", &bad)),
            ["spec.type", "spec.ports[0].port", "spec.ports[1].name"]
        );
        let mut job = json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        apply_defaults("batch", "Job", &mut job);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "j"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        assert_eq!(
            fields(&validate("batch", "Job", &job)),
            ["spec.template.spec.restartPolicy"]
        );
    }

    #[test]
    fn pod_spec_volumes_env_and_resources() {
        let d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
            "volumes": [{"name": "data"}, {"name": "data"}],
            "containers": [{"name": "c", "image": "i",
                "volumeMounts": [{"name": "data", "mountPath": "/d"}, {"name": "nope", "mountPath": "/n"}],
                "env": [{"value": "x"}],
                "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}}}});
        let causes = validate("apps", "Deployment", &d);
        let got: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("spec.template.spec.volumes[1].name", "FieldValueDuplicate"),
                (
                    "spec.template.spec.containers[0].volumeMounts[1].name",
                    "FieldValueNotFound"
                ),
                (
                    "spec.template.spec.containers[0].env[0].name",
                    "FieldValueRequired"
                ),
                (
                    "spec.template.spec.containers[0].resources.requests",
                    "FieldValueInvalid"
                ),
            ]
        );
        assert!(causes[3]
            .message
            .contains("must be less than or equal to cpu limit of 1"));
    }

    #[test]
    fn pods_start_pending_with_their_qos_class() {
        let pod = |resources: Value| {
            let mut p = json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}});
            apply_defaults("", "Pod", &mut p);
            p
        };
        let p = pod(json!({}));
        assert_eq!(
            (
                p["status"]["phase"].clone(),
                p["status"]["qosClass"].clone()
            ),
            (json!("Pending"), json!("BestEffort"))
        );
        assert_eq!(
            pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))["status"]["qosClass"],
            "Guaranteed"
        );
        assert_eq!(
            pod(json!({"requests": {"cpu": "1"}}))["status"]["qosClass"],
            "Burstable"
        );
        assert_eq!(p["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn configmap_keys() {
        let cm = json!({"data": {"ok.key": "1", "bad key": "2"}, "binaryData": {"ok.key": "AA=="}});
        assert_eq!(
            fields(&validate("", "ConfigMap", &cm)),
            ["data", "binaryData"]
        );
    }
}
