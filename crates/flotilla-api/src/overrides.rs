//! Per-cluster overrides (pure): ClusterResourceOverride and ResourceOverride rules applied to
//! a placement's manifests for one member cluster.
//!
//! A ClusterResourceOverride's `clusterResourceSelectors` pick cluster-scoped manifests; a
//! ResourceOverride's `resourceSelectors` pick manifests in its own namespace (by group, kind
//! and name; the version is not compared, as one object is served in several). Each rule whose
//! `clusterSelector` matches the cluster (no selector, or no terms: every cluster; terms are
//! ORed) either removes the manifest from that cluster (`Delete`) or applies its JSON patch
//! operations (`JSONPatch`), with `${MEMBER-CLUSTER-NAME}` and
//! `${MEMBER-CLUSTER-LABEL-KEY-<key>}` replaced in string values. ClusterResourceOverrides go
//! first and ResourceOverrides after them, so a ResourceOverride wins where both change a field;
//! within each kind, overrides go by name.

use std::collections::BTreeMap;

use crate::selectors::LabelSelector;
use serde_json::Value;

/// An override snapshot: its name (and namespace for a ResourceOverride) and override spec.
#[derive(Debug, Clone)]
pub struct Override {
    /// Snapshot name.
    pub name: String,
    /// Namespace (ResourceOverride snapshots).
    pub namespace: Option<String>,
    /// `spec.overrideSpec` of the snapshot (the override's spec).
    pub spec: Value,
}

/// The manifests for one cluster and the overrides that changed them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overridden {
    /// The manifests to send (some may be removed).
    pub manifests: Vec<Value>,
    /// ClusterResourceOverride snapshots that applied.
    pub cluster_overrides: Vec<String>,
    /// ResourceOverride snapshots that applied, as (namespace, name).
    pub resource_overrides: Vec<(String, String)>,
}

fn selects(sel: &Value, m: &Value) -> bool {
    let api_version = m["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    sel["group"].as_str().unwrap_or("") == group
        && sel["kind"] == m["kind"]
        && sel["name"] == m["metadata"]["name"]
}

fn rule_applies(rule: &Value, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let terms = rule["clusterSelector"]["clusterSelectorTerms"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if terms.is_empty() {
        return Ok(true);
    }
    for t in terms {
        let sel = match &t["labelSelector"] {
            Value::Null => return Ok(true),
            s => LabelSelector::from_object(s)?,
        };
        if sel.matches(|k| labels.get(k).map(String::as_str)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Replaces the variables in every string of `v`.
fn substitute(
    v: &Value,
    cluster: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            let mut out = s.replace("${MEMBER-CLUSTER-NAME}", cluster);
            while let Some(start) = out.find("${MEMBER-CLUSTER-LABEL-KEY-") {
                let rest = &out[start + "${MEMBER-CLUSTER-LABEL-KEY-".len()..];
                let Some(end) = rest.find('}') else {
                    return Err(format!("unterminated variable in {s:?}"));
                };
                let key = &rest[..end];
                let value = labels.get(key).ok_or_else(|| {
                    format!("the cluster {cluster} has no label {key:?} for ${{MEMBER-CLUSTER-LABEL-KEY-{key}}}")
                })?;
                out = format!("{}{}{}", &out[..start], value, &rest[end + 1..]);
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, cluster, labels))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), substitute(x, cluster, labels)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Applies the overrides to `manifests` for the cluster `cluster` with `labels`. An error names
/// the override and the manifest (the cluster's placement then reports Overridden False).
pub fn apply(
    manifests: &[Value],
    cluster: &str,
    labels: &BTreeMap<String, String>,
    cluster_overrides: &[Override],
    resource_overrides: &[Override],
) -> Result<Overridden, String> {
    let mut out = Overridden::default();
    let mut cros: Vec<&Override> = cluster_overrides.iter().collect();
    cros.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ros: Vec<&Override> = resource_overrides.iter().collect();
    ros.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for m in manifests {
        let namespace = m["metadata"]["namespace"].as_str();
        let mut current = Some(m.clone());
        let applicable = cros
            .iter()
            .filter(|o| {
                namespace.is_none()
                    && o.spec["clusterResourceSelectors"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| selects(s, m)))
            })
            .map(|o| (*o, true))
            .chain(
                ros.iter()
                    .filter(|o| {
                        namespace.is_some()
                            && o.namespace.as_deref() == namespace
                            && o.spec["resourceSelectors"]
                                .as_array()
                                .is_some_and(|s| s.iter().any(|s| selects(s, m)))
                    })
                    .map(|o| (*o, false)),
            );
        for (o, cluster_scoped) in applicable {
            let what = format!(
                "{} {}/{}",
                m["kind"].as_str().unwrap_or(""),
                namespace.unwrap_or(""),
                m["metadata"]["name"].as_str().unwrap_or("")
            );
            let mut used = false;
            for (i, rule) in o.spec["policy"]["overrideRules"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !rule_applies(rule, labels)
                    .map_err(|e| format!("override {}: overrideRules[{i}]: {e}", o.name))?
                {
                    continue;
                }
                let Some(doc) = current.as_mut() else { break };
                used = true;
                if rule["overrideType"] == "Delete" {
                    current = None;
                    break;
                }
                let ops: Vec<Value> = rule["jsonPatchOverrides"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|op| substitute(op, cluster, labels))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("override {}: overrideRules[{i}]: {e}", o.name))?;
                *doc = crate::patch::json_patch(doc, &ops).map_err(|e| {
                    format!(
                        "override {} (overrideRules[{i}]) cannot be applied to {what}: {e}",
                        o.name
                    )
                })?;
            }
            if used {
                if cluster_scoped {
                    if !out.cluster_overrides.contains(&o.name) {
                        out.cluster_overrides.push(o.name.clone());
                    }
                } else {
                    let key = (o.namespace.clone().unwrap_or_default(), o.name.clone());
                    if !out.resource_overrides.contains(&key) {
                        out.resource_overrides.push(key);
                    }
                }
            }
        }
        if let Some(doc) = current {
            out.manifests.push(doc);
        }
    }
    out.cluster_overrides.sort();
    out.resource_overrides.sort();
    Ok(out)
}

/// Admission rules of ClusterResourceOverride and ResourceOverride that the schema cannot say:
/// patches may not touch the identity of an object or its status, `remove` carries no value,
/// `Delete` rules carry no patches, label selectors are well formed.
pub fn validate(obj: &Value) -> Vec<crate::member::FieldError> {
    let mut errs = Vec::new();
    for (i, rule) in obj["spec"]["policy"]["overrideRules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.policy.overrideRules[{i}]");
        let ops = rule["jsonPatchOverrides"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if rule["overrideType"] == "Delete" && !ops.is_empty() {
            errs.push((
                "FieldValueInvalid",
                format!("{path}.jsonPatchOverrides"),
                "a Delete rule has no jsonPatchOverrides".to_string(),
            ));
        }
        if rule["overrideType"] != "Delete" && ops.is_empty() {
            errs.push((
                "FieldValueRequired",
                format!("{path}.jsonPatchOverrides"),
                "a JSONPatch rule needs at least one operation".to_string(),
            ));
        }
        for (j, op) in ops.iter().enumerate() {
            let p = op["path"].as_str().unwrap_or("");
            let forbidden = p.is_empty()
                || p == "/"
                || [
                    "/kind",
                    "/apiVersion",
                    "/status",
                    "/metadata/name",
                    "/metadata/namespace",
                    "/metadata/uid",
                    "/metadata/resourceVersion",
                ]
                .iter()
                .any(|f| p == *f || p.starts_with(&format!("{f}/")))
                || (p.starts_with("/metadata")
                    && !(p.starts_with("/metadata/labels")
                        || p.starts_with("/metadata/annotations")));
            if forbidden {
                errs.push(("FieldValueInvalid", format!("{path}.jsonPatchOverrides[{j}].path"),
                    format!("{p:?} may not be overridden: only spec, data and other content, labels and annotations")));
            }
            if op["op"] == "remove" && !op["value"].is_null() {
                errs.push((
                    "FieldValueInvalid",
                    format!("{path}.jsonPatchOverrides[{j}].value"),
                    "a remove operation has no value".to_string(),
                ));
            }
            if op["op"] != "remove" && op.get("value").is_none() {
                errs.push((
                    "FieldValueRequired",
                    format!("{path}.jsonPatchOverrides[{j}].value"),
                    format!(
                        "a {} operation needs a value",
                        op["op"].as_str().unwrap_or("")
                    ),
                ));
            }
        }
        for (j, t) in rule["clusterSelector"]["clusterSelectorTerms"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if !t["labelSelector"].is_null() {
                if let Err(e) = LabelSelector::from_object(&t["labelSelector"]) {
                    errs.push((
                        "FieldValueInvalid",
                        format!("{path}.clusterSelector.clusterSelectorTerms[{j}].labelSelector"),
                        e,
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}})
    }

    fn ns() -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    }

    fn ro(name: &str, rules: Value) -> Override {
        Override {
            name: name.into(),
            namespace: Some("shop".into()),
            spec: json!({"resourceSelectors": [{"group": "apps", "version": "v1", "kind": "Deployment", "name": "web"}],
                "policy": {"overrideRules": rules}}),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rules_patch_the_clusters_they_select_with_variables() {
        let o = ro(
            "scale",
            json!([
                {"clusterSelector": {"clusterSelectorTerms": [{"labelSelector": {"matchLabels": {"env": "prod"}}}]},
                 "jsonPatchOverrides": [
                    {"op": "replace", "path": "/spec/replicas", "value": 5},
                    {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:${MEMBER-CLUSTER-LABEL-KEY-version}"},
                    {"op": "add", "path": "/metadata/labels", "value": {"cluster": "${MEMBER-CLUSTER-NAME}"}}]}
            ]),
        );
        let prod = labels(&[("env", "prod"), ("version", "2")]);
        let out = apply(
            &[ns(), deploy()],
            "m1",
            &prod,
            &[],
            std::slice::from_ref(&o),
        )
        .unwrap();
        assert_eq!(out.manifests[1]["spec"]["replicas"], 5);
        assert_eq!(
            out.manifests[1]["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
        assert_eq!(out.manifests[1]["metadata"]["labels"]["cluster"], "m1");
        assert_eq!(out.manifests[0], ns());
        assert_eq!(
            out.resource_overrides,
            vec![("shop".to_string(), "scale".to_string())]
        );
        // Another cluster: untouched, and the override is not listed.
        let dev = labels(&[("env", "dev")]);
        let out = apply(&[ns(), deploy()], "m2", &dev, &[], std::slice::from_ref(&o)).unwrap();
        assert_eq!(out.manifests[1], deploy());
        assert!(out.resource_overrides.is_empty());
        // A missing label is an error naming the override.
        let err = apply(&[deploy()], "m3", &labels(&[("env", "prod")]), &[], &[o]).unwrap_err();
        assert!(err.contains("no label \"version\""), "{err}");
    }

    #[test]
    fn an_override_touches_only_the_resources_it_selects() {
        let label = ro(
            "label",
            json!([{"jsonPatchOverrides": [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]}]),
        );
        let named = |api_version: &str, kind: &str, name: &str| json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "shop"}});
        // Same group and kind, another name; same name, another kind; same kind and name in
        // another group.
        let manifests = [
            named("apps/v1", "Deployment", "web"),
            named("apps/v1", "Deployment", "api"),
            named("v1", "ConfigMap", "web"),
            named("example.com/v1", "Deployment", "web"),
        ];
        let out = apply(&manifests, "m1", &labels(&[]), &[], &[label]).unwrap();
        let labelled: Vec<bool> = out
            .manifests
            .iter()
            .map(|m| m["metadata"]["labels"]["x"] == "y")
            .collect();
        assert_eq!(labelled, [true, false, false, false]);
    }

    #[test]
    fn overrides_apply_within_their_scope_only() {
        let label = json!([{"jsonPatchOverrides": [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]}]);
        let selector = json!([{"group": "", "version": "v1", "kind": "ConfigMap", "name": "web"}]);
        // A ClusterResourceOverride selecting a namespaced kind touches nothing; a
        // ResourceOverride touches its own namespace only, and nothing cluster-scoped.
        let cro = Override {
            name: "cluster".into(),
            namespace: None,
            spec: json!({"clusterResourceSelectors": selector, "policy": {"overrideRules": label}}),
        };
        let ro = Override {
            name: "shop".into(),
            namespace: Some("shop".into()),
            spec: json!({"resourceSelectors": selector, "policy": {"overrideRules": label}}),
        };
        let cm = |ns: Option<&str>| {
            let mut m =
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}});
            if let Some(ns) = ns {
                m["metadata"]["namespace"] = json!(ns);
            }
            m
        };
        let manifests = [cm(Some("shop")), cm(Some("other")), cm(None)];
        let out = apply(
            &manifests,
            "m1",
            &labels(&[]),
            std::slice::from_ref(&cro),
            std::slice::from_ref(&ro),
        )
        .unwrap();
        let labelled: Vec<bool> = out
            .manifests
            .iter()
            .map(|m| m["metadata"]["labels"]["x"] == "y")
            .collect();
        assert_eq!(labelled, [true, false, true]);
        assert_eq!(out.cluster_overrides, ["cluster"]);
        assert_eq!(
            out.resource_overrides,
            [("shop".to_string(), "shop".to_string())]
        );
    }

    #[test]
    fn delete_removes_the_manifest_and_resource_overrides_win() {
        let cro = Override {
            name: "ns-label".into(),
            namespace: None,
            spec: json!({"clusterResourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": "shop"}],
                "policy": {"overrideRules": [{"jsonPatchOverrides": [{"op": "add", "path": "/metadata/labels", "value": {"team": "a"}}]}]}}),
        };
        let first = ro(
            "a-first",
            json!([{"jsonPatchOverrides": [{"op": "replace", "path": "/spec/replicas", "value": 3}]}]),
        );
        let second = ro(
            "b-second",
            json!([{"jsonPatchOverrides": [{"op": "replace", "path": "/spec/replicas", "value": 4}]}]),
        );
        let out = apply(
            &[ns(), deploy()],
            "m",
            &labels(&[]),
            std::slice::from_ref(&cro),
            &[second.clone(), first],
        )
        .unwrap();
        assert_eq!(out.manifests[0]["metadata"]["labels"]["team"], "a");
        assert_eq!(
            out.manifests[1]["spec"]["replicas"], 4,
            "overrides apply by name; the last wins"
        );
        assert_eq!(out.cluster_overrides, vec!["ns-label".to_string()]);
        let gone = ro("gone", json!([{"overrideType": "Delete"}]));
        let out = apply(&[ns(), deploy()], "m", &labels(&[]), &[], &[gone]).unwrap();
        assert_eq!(out.manifests, vec![ns()]);
    }

    #[test]
    fn a_patch_that_does_not_apply_is_an_error() {
        let bad = ro(
            "bad",
            json!([{"jsonPatchOverrides": [{"op": "replace", "path": "/spec/missing/field", "value": 1}]}]),
        );
        let err = apply(&[deploy()], "m", &labels(&[]), &[], &[bad]).unwrap_err();
        assert!(
            err.contains("override bad") && err.contains("Deployment shop/web"),
            "{err}"
        );
    }

    #[test]
    fn admission_refuses_identity_and_status_paths() {
        let obj = json!({"spec": {"policy": {"overrideRules": [
            {"jsonPatchOverrides": [{"op": "replace", "path": "/metadata/name", "value": "x"},
                                     {"op": "replace", "path": "/status/phase", "value": "x"},
                                     {"op": "remove", "path": "/spec/a", "value": 1},
                                     {"op": "add", "path": "/metadata/labels/a", "value": "b"}]},
            {"overrideType": "Delete", "jsonPatchOverrides": [{"op": "remove", "path": "/spec/a"}]},
            {"jsonPatchOverrides": []},
            {"jsonPatchOverrides": [{"op": "replace", "path": "/", "value": {}},
                                     {"op": "replace", "path": "", "value": {}}]},
            {"clusterSelector": {"clusterSelectorTerms": [
                {"labelSelector": null},
                {"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}]},
             "jsonPatchOverrides": [{"op": "replace", "path": "/spec/a", "value": 1}]}
        ]}}});
        let fields: Vec<(&str, String)> = validate(&obj).into_iter().map(|e| (e.0, e.1)).collect();
        let invalid = |f: &str| ("FieldValueInvalid", f.to_string());
        assert_eq!(
            fields,
            [
                invalid("spec.policy.overrideRules[0].jsonPatchOverrides[0].path"),
                invalid("spec.policy.overrideRules[0].jsonPatchOverrides[1].path"),
                invalid("spec.policy.overrideRules[0].jsonPatchOverrides[2].value"),
                invalid("spec.policy.overrideRules[1].jsonPatchOverrides"),
                (
                    "FieldValueRequired",
                    "spec.policy.overrideRules[2].jsonPatchOverrides".to_string()
                ),
                invalid("spec.policy.overrideRules[3].jsonPatchOverrides[0].path"),
                invalid("spec.policy.overrideRules[3].jsonPatchOverrides[1].path"),
                invalid("spec.policy.overrideRules[4].clusterSelector.clusterSelectorTerms[1].labelSelector"),
            ]
        );
    }
}
