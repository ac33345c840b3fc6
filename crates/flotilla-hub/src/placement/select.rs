//! Selection: the resources a placement's selectors pick, from the watch-fed caches of
//! placeable resources ([`crate::resources`]), without what the hub assigned
//! ([`flotilla_api::manifests::sanitize`]), in apply order.

use std::collections::BTreeMap;

use flotilla_api::manifests::{rank_of, sanitize};
use flotilla_api::selectors::LabelSelector;
use kube::api::DynamicObject;
use kube::ResourceExt;
use serde_json::Value;

use super::Scope;
use crate::resources::{reserved_namespace, Resources};
use crate::Error;

/// The selected resources (sanitized, in apply order) or why the selectors are invalid.
pub(super) fn select(
    resources: &Resources,
    scope: Scope,
    placement: &Value,
) -> Result<Result<Vec<Value>, String>, Error> {
    let own_namespace = placement["metadata"]["namespace"].as_str();
    let sels = placement["spec"]["resourceSelectors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(ns) = own_namespace.filter(|ns| reserved_namespace(ns)) {
        return Ok(Err(format!(
            "the namespace {ns} is reserved for the fleet and Kubernetes: a ResourcePlacement there places nothing"
        )));
    }
    let mut picked: BTreeMap<(String, String, String, String), Value> = BTreeMap::new();
    let mut add = |obj: &DynamicObject| {
        if obj.metadata.deletion_timestamp.is_some() {
            return;
        }
        let Ok(v) = serde_json::to_value(obj) else {
            return;
        };
        if !flotilla_api::manifests::propagated(&v) {
            return;
        }
        let key = (
            v["apiVersion"].as_str().unwrap_or("").to_string(),
            v["kind"].as_str().unwrap_or("").to_string(),
            obj.namespace().unwrap_or_default(),
            obj.name_any(),
        );
        picked.entry(key).or_insert_with(|| sanitize(&v));
    };
    for (i, sel) in sels.iter().enumerate() {
        let group = sel["group"].as_str().unwrap_or("");
        let kind = sel["kind"].as_str().unwrap_or("");
        let Some(cache) = resources.get(group, kind) else {
            if resources.loading(group, kind) {
                return Err(Error::Loading(format!("{kind}.{group}")));
            }
            return Ok(Err(format!(
                "resourceSelectors[{i}]: the hub serves no kind {kind} in group {group:?}"
            )));
        };
        match scope {
            Scope::Cluster if cache.namespaced => return Ok(Err(format!(
                "resourceSelectors[{i}]: {kind} is namespaced; a ClusterResourcePlacement selects cluster-scoped resources (a Namespace brings what is in it)"
            ))),
            Scope::Namespaced if !cache.namespaced => return Ok(Err(format!(
                "resourceSelectors[{i}]: {kind} is cluster-scoped; a ResourcePlacement selects resources in its own namespace (use a ClusterResourcePlacement)"
            ))),
            _ => {}
        }
        let label_sel = match &sel["labelSelector"] {
            Value::Null => None,
            s => match LabelSelector::from_object(s) {
                Ok(s) => Some(s),
                Err(e) => return Ok(Err(format!("resourceSelectors[{i}].labelSelector: {e}"))),
            },
        };
        let name = sel["name"].as_str().filter(|n| !n.is_empty());
        for obj in cache.store.state() {
            if name.is_some_and(|n| obj.name_any() != n)
                || (scope == Scope::Namespaced && obj.namespace().as_deref() != own_namespace)
            {
                continue;
            }
            if let Some(ls) = &label_sel {
                let labels = obj.labels();
                if !ls.matches(|k| labels.get(k).map(String::as_str)) {
                    continue;
                }
            }
            if kind == "Namespace" && group.is_empty() {
                let ns = obj.name_any();
                if reserved_namespace(&ns) {
                    continue;
                }
                add(&obj);
                if sel["selectionScope"].as_str() != Some("NamespaceOnly") {
                    for t in resources.namespaced() {
                        for o in t.store.state() {
                            if o.metadata.namespace.as_deref() == Some(ns.as_str()) {
                                add(&o);
                            }
                        }
                    }
                }
            } else {
                add(&obj);
            }
        }
    }
    let mut out: Vec<Value> = picked.into_values().collect();
    out.sort_by(|a, b| {
        rank_of(a).cmp(&rank_of(b)).then_with(|| {
            let k = |v: &Value| {
                (
                    v["apiVersion"].to_string(),
                    v["kind"].to_string(),
                    v["metadata"]["namespace"].to_string(),
                    v["metadata"]["name"].to_string(),
                )
            };
            k(a).cmp(&k(b))
        })
    });
    Ok(Ok(out))
}
