//! Validation of built-in kinds: the checks a user of kube-apiserver would notice (required
//! fields, selectors matching templates, port ranges, ...), with its field paths and words.

use serde_json::{json, Value};

use crate::errors::Cause;
use crate::selectors::LabelSelector;
use crate::validation::{config_key_problem, label_problems};

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
