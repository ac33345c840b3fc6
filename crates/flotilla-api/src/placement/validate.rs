//! Admission checks of placements and envelopes: the rules KubeFleet writes in CEL and its
//! webhook enforces, with field paths and messages.

use serde_json::{json, Value};

use super::PLACEMENT_GROUP;

/// The rules KubeFleet states in CEL and webhooks on ClusterResourcePlacement and
/// ResourcePlacement: placementType cannot change; clusterNames only with PickFixed,
/// numberOfClusters only (and always) with PickN, affinity not with PickFixed, topology spread
/// only with PickN; property selectors only in required terms and sorters only in preferred
/// ones; a resource selector names one resource or selects by label, not both; property
/// values are quantities; label selectors are well formed; tolerations can be added but not
/// changed or removed. `old` is the stored object on update.
pub fn validate_placement(obj: &Value, old: Option<&Value>) -> Vec<crate::member::FieldError> {
    use crate::quantity::parse_milli;
    use crate::selectors::LabelSelector;
    let mut errs: Vec<crate::member::FieldError> = Vec::new();
    let spec = &obj["spec"];
    for (i, sel) in spec["resourceSelectors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let path = format!("spec.resourceSelectors[{i}]");
        if sel["name"].as_str().is_some_and(|n| !n.is_empty()) && !sel["labelSelector"].is_null() {
            invalid(&mut errs, path.clone(),
                "name and labelSelector are mutually exclusive: select one resource by name, or resources by label".into(),
            );
        }
        if !sel["labelSelector"].is_null() {
            if let Err(e) = LabelSelector::from_object(&sel["labelSelector"]) {
                invalid(&mut errs, format!("{path}.labelSelector"), e);
            }
        }
    }
    let policy = &spec["policy"];
    let ty = policy["placementType"].as_str().unwrap_or("PickAll");
    if let Some(old) = old {
        let was = old["spec"]["policy"]["placementType"]
            .as_str()
            .unwrap_or("PickAll");
        if was != ty {
            invalid(
                &mut errs,
                "spec.policy.placementType".into(),
                format!("placement type is immutable (was {was}, now {ty})"),
            );
        }
        let old_tols = old["spec"]["policy"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let new_tols = policy["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let normal = |t: &Value| {
            json!({"key": t["key"].as_str().unwrap_or(""), "operator": t["operator"].as_str().unwrap_or("Equal"),
                "value": t["value"].as_str().unwrap_or(""), "effect": t["effect"].as_str().unwrap_or("")})
        };
        for t in &old_tols {
            if !new_tols.iter().any(|n| normal(n) == normal(t)) {
                invalid(
                    &mut errs,
                    "spec.policy.tolerations".into(),
                    format!(
                        "tolerations can be added, not changed or removed: {} is missing",
                        normal(t)
                    ),
                );
            }
        }
    }
    if !policy["clusterNames"].is_null() && ty != "PickFixed" {
        invalid(
            &mut errs,
            "spec.policy.clusterNames".into(),
            format!("clusterNames is only valid with placementType PickFixed, not {ty}"),
        );
    }
    match (ty, &policy["numberOfClusters"]) {
        ("PickN", Value::Null) => errs.push((
            "FieldValueRequired",
            "spec.policy.numberOfClusters".into(),
            "numberOfClusters is required with placementType PickN".into(),
        )),
        ("PickN", _) | (_, Value::Null) => {}
        (other, _) => invalid(
            &mut errs,
            "spec.policy.numberOfClusters".into(),
            format!("numberOfClusters is only valid with placementType PickN, not {other}"),
        ),
    }
    if ty == "PickFixed" && !policy["affinity"].is_null() {
        invalid(
            &mut errs,
            "spec.policy.affinity".into(),
            "affinity is not valid with placementType PickFixed".into(),
        );
    }
    if ty != "PickN"
        && policy["topologySpreadConstraints"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    {
        invalid(
            &mut errs,
            "spec.policy.topologySpreadConstraints".into(),
            format!(
                "topology spread constraints are only valid with placementType PickN, not {ty}"
            ),
        );
    }
    let affinity = &policy["affinity"]["clusterAffinity"];
    let required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
        ["clusterSelectorTerms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, term) in required.iter().enumerate() {
        let path = format!("spec.policy.affinity.clusterAffinity.requiredDuringSchedulingIgnoredDuringExecution.clusterSelectorTerms[{i}]");
        if !term["propertySorter"].is_null() {
            invalid(
                &mut errs,
                format!("{path}.propertySorter"),
                "property sorters are only valid in preferred terms".into(),
            );
        }
        check_term(term, &path, &mut errs);
        for (j, e) in term["propertySelector"]["matchExpressions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let p = format!("{path}.propertySelector.matchExpressions[{j}].values");
            match e["values"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                [v] if v.as_str().and_then(parse_milli).is_some() => {}
                [v] => errs.push((
                    "FieldValueInvalid",
                    p,
                    format!("{v} is not a Kubernetes quantity"),
                )),
                other => errs.push((
                    "FieldValueInvalid",
                    p,
                    format!("must have exactly one value, got {}", other.len()),
                )),
            }
        }
    }
    let preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, pref) in preferred.iter().enumerate() {
        let path = format!("spec.policy.affinity.clusterAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference");
        if !pref["preference"]["propertySelector"].is_null() {
            errs.push((
                "FieldValueInvalid",
                format!("{path}.propertySelector"),
                "property selectors are only valid in required terms".into(),
            ));
        }
        check_term(&pref["preference"], &path, &mut errs);
    }
    errs
}

fn invalid(errs: &mut Vec<crate::member::FieldError>, field: String, message: String) {
    errs.push(("FieldValueInvalid", field, message));
}

fn check_term(term: &Value, path: &str, errs: &mut Vec<crate::member::FieldError>) {
    if !term["labelSelector"].is_null() {
        if let Err(e) = crate::selectors::LabelSelector::from_object(&term["labelSelector"]) {
            errs.push(("FieldValueInvalid", format!("{path}.labelSelector"), e));
        }
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn crp(policy: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": "app"}],
            "policy": policy}})
    }

    #[test]
    fn placement_rules_name_the_field() {
        let cases: Vec<(Value, Option<Value>, &str)> = vec![
            (
                json!({"placementType": "PickAll", "clusterNames": ["a"]}),
                None,
                "spec.policy.clusterNames",
            ),
            (
                json!({"placementType": "PickAll", "numberOfClusters": 2}),
                None,
                "spec.policy.numberOfClusters",
            ),
            (
                json!({"placementType": "PickN"}),
                None,
                "spec.policy.numberOfClusters",
            ),
            (
                json!({"placementType": "PickFixed", "clusterNames": ["a"], "affinity": {}}),
                None,
                "spec.policy.affinity",
            ),
            (
                json!({"topologySpreadConstraints": [{"topologyKey": "zone"}]}),
                None,
                "spec.policy.topologySpreadConstraints",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [
                {"propertySorter": {"name": "p", "sortOrder": "Ascending"}}]}}}}),
                None,
                "clusterSelectorTerms[0].propertySorter",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"propertySelector": {"matchExpressions": []}}}]}}}),
                None,
                "preference.propertySelector",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [
                {"propertySelector": {"matchExpressions": [{"name": "p", "operator": "Gt", "values": ["many"]}]}}]}}}}),
                None,
                "matchExpressions[0].values",
            ),
            (
                json!({"affinity": {"clusterAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [
                {"labelSelector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}}]}}}}),
                None,
                "clusterSelectorTerms[0].labelSelector",
            ),
            (
                json!({"placementType": "PickN", "numberOfClusters": 1}),
                Some(crp(json!({"placementType": "PickAll"}))),
                "spec.policy.placementType",
            ),
            (
                json!({"tolerations": [{"key": "b", "operator": "Exists"}]}),
                Some(crp(
                    json!({"tolerations": [{"key": "a", "operator": "Exists"}]}),
                )),
                "spec.policy.tolerations",
            ),
        ];
        for (policy, old, field) in cases {
            let errs = validate_placement(&crp(policy.clone()), old.as_ref());
            assert!(
                errs.iter().any(|(_, f, _)| f.contains(field)),
                "{policy}: expected an error at {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn valid_placements_and_allowed_changes_pass() {
        let good = [
            json!(null),
            json!({"placementType": "PickFixed", "clusterNames": ["a", "b"]}),
            json!({"placementType": "PickN", "numberOfClusters": 2,
                "topologySpreadConstraints": [{"topologyKey": "zone"}],
                "affinity": {"clusterAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [{
                        "labelSelector": {"matchLabels": {"env": "prod"}},
                        "propertySelector": {"matchExpressions": [{"name": "kubernetes-fleet.io/node-count", "operator": "Ge", "values": ["3"]}]}}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {
                        "propertySorter": {"name": "resources.kubernetes-fleet.io/available-cpu", "sortOrder": "Descending"}}}]}}}),
        ];
        for p in good {
            assert_eq!(validate_placement(&crp(p.clone()), None), vec![], "{p}");
        }
        // Adding a toleration is allowed; so is changing N.
        let old = crp(
            json!({"placementType": "PickN", "numberOfClusters": 1, "tolerations": [{"key": "a", "operator": "Exists"}]}),
        );
        let new = crp(json!({"placementType": "PickN", "numberOfClusters": 3,
            "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "value": "x"}]}));
        assert_eq!(validate_placement(&new, Some(&old)), vec![]);
        // Both a name and a label selector in one resource selector.
        let mut both = crp(json!(null));
        both["spec"]["resourceSelectors"][0]["labelSelector"] = json!({"matchLabels": {"a": "b"}});
        assert_eq!(
            validate_placement(&both, None)[0].1,
            "spec.resourceSelectors[0]"
        );
    }
}

/// Rules of ClusterResourceEnvelope and ResourceEnvelope: every entry of `data` is an object
/// with apiVersion, kind and metadata.name; a ResourceEnvelope's objects live in its own
/// namespace (or name none), a ClusterResourceEnvelope's are cluster-scoped; envelopes do not
/// nest.
pub fn validate_envelope(obj: &Value) -> Vec<crate::member::FieldError> {
    let mut errs = Vec::new();
    let namespace = obj["metadata"]["namespace"].as_str();
    let mut entries: Vec<(&String, &Value)> =
        obj["data"].as_object().into_iter().flatten().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, o) in entries {
        let path = format!("data[{key}]");
        for f in ["apiVersion", "kind"] {
            if o[f].as_str().is_none_or(str::is_empty) {
                errs.push((
                    "FieldValueRequired",
                    format!("{path}.{f}"),
                    format!("{f} is required"),
                ));
            }
        }
        if o["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            errs.push((
                "FieldValueRequired",
                format!("{path}.metadata.name"),
                "metadata.name is required".into(),
            ));
        }
        if o["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("{PLACEMENT_GROUP}/")))
            && o["kind"].as_str().is_some_and(|k| k.ends_with("Envelope"))
        {
            errs.push((
                "FieldValueInvalid",
                format!("{path}.kind"),
                "envelopes do not nest".into(),
            ));
        }
        match (namespace, o["metadata"]["namespace"].as_str()) {
            (Some(ns), Some(inner)) if inner != ns => errs.push((
                "FieldValueInvalid",
                format!("{path}.metadata.namespace"),
                format!("a ResourceEnvelope's objects live in its namespace {ns:?}, not {inner:?}"),
            )),
            (None, Some(_)) => errs.push((
                "FieldValueInvalid",
                format!("{path}.metadata.namespace"),
                "a ClusterResourceEnvelope carries cluster-scoped objects; use a ResourceEnvelope for namespaced ones".into(),
            )),
            _ => {}
        }
    }
    errs
}

#[cfg(test)]
mod envelope_tests {
    use super::*;

    #[test]
    fn envelope_entries_are_objects_in_the_right_scope() {
        let ok = json!({"metadata": {"name": "e", "namespace": "shop"}, "data": {
            "quota": {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}}}});
        assert_eq!(validate_envelope(&ok), vec![]);
        let bad = json!({"metadata": {"name": "e", "namespace": "shop"}, "data": {
            "a": {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "other"}},
            "b": {"kind": "ConfigMap", "metadata": {}},
            "c": {"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ResourceEnvelope", "metadata": {"name": "x"}}}});
        let fields: Vec<String> = validate_envelope(&bad).into_iter().map(|e| e.1).collect();
        assert_eq!(
            fields,
            [
                "data[a].metadata.namespace",
                "data[b].apiVersion",
                "data[b].metadata.name",
                "data[c].kind"
            ]
        );
        let cluster = json!({"metadata": {"name": "e"}, "data": {
            "r": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}}});
        assert_eq!(
            validate_envelope(&cluster)[0].1,
            "data[r].metadata.namespace"
        );
    }
}
