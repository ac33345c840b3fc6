//! Kubernetes' own OpenAPI definitions for the built-in kinds (vendored by
//! `scripts/update-k8s-schema.sh`), and the decoding checks the server derives from them: field
//! types, unknown fields and their pruning, patch merge keys and strategies.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

const DEFINITIONS_GZ: &[u8] = include_bytes!("../data/k8s-definitions.json.gz");

/// The Kubernetes release whose API the server serves.
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "33");
/// The `gitVersion` reported by `/version`.
pub const GIT_VERSION: &str = "v1.33.13";

/// The built-in OpenAPI definitions, keyed by definition name.
#[derive(Debug)]
pub struct Schema {
    /// `io.k8s.api.core.v1.ConfigMap` -> schema.
    pub definitions: Map<String, Value>,
}

impl Schema {
    /// The built-in definitions, decoded once per process.
    pub fn builtin() -> Arc<Schema> {
        static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
        SCHEMA
            .get_or_init(|| {
                let mut text = String::new();
                flate2::read::GzDecoder::new(DEFINITIONS_GZ)
                    .read_to_string(&mut text)
                    .expect("the vendored definitions are valid gzip");
                let mut doc: Value =
                    serde_json::from_str(&text).expect("the vendored definitions are valid JSON");
                let mut definitions = match doc.get_mut("definitions").map(Value::take) {
                    Some(Value::Object(m)) => m,
                    _ => panic!("the vendored definitions have no definitions object"),
                };
                // Kubernetes' OpenAPI v3 declares these defaults of list-map keys, which
                // server-side apply needs to match items; the vendored definitions lack them.
                for def in [
                    "io.k8s.api.core.v1.ContainerPort",
                    "io.k8s.api.core.v1.ServicePort",
                ] {
                    if let Some(p) = definitions
                        .get_mut(def)
                        .and_then(|d| d.pointer_mut("/properties/protocol"))
                    {
                        p["default"] = Value::String("TCP".into());
                    }
                }
                Arc::new(Schema { definitions })
            })
            .clone()
    }

    /// A definition by name.
    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// Follows `$ref` (possibly repeatedly) to the schema it names.
    pub fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match node.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let name = r.rsplit('/').next().unwrap_or(r);
                    match self.definitions.get(name) {
                        Some(n) => node = n,
                        None => return node,
                    }
                }
                None => return node,
            }
        }
        node
    }

    /// The schema of property `field` of the object schema `node`, or of the values of a map.
    pub fn property<'a>(&'a self, node: &'a Value, field: &str) -> Option<&'a Value> {
        let node = self.resolve(node);
        if let Some(p) = node.get("properties").and_then(|p| p.get(field)) {
            return Some(p);
        }
        match node.get("additionalProperties") {
            Some(v) if v.is_object() => Some(v),
            _ => None,
        }
    }

    /// The item schema of an array schema.
    pub fn items<'a>(&'a self, node: &'a Value) -> Option<&'a Value> {
        self.resolve(node).get("items")
    }
}

/// A problem found while decoding an object against its schema.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeIssue {
    /// A field the schema does not know (already pruned from the object).
    Unknown(String),
    /// A resource quantity that does not parse.
    Quantity(String),
    /// A value of the wrong JSON type.
    Type {
        /// Dotted path of the field.
        path: String,
        /// The JSON type found.
        found: &'static str,
        /// The type expected.
        expected: String,
    },
}

/// The JSON type name of a value, as Go's decoder reports it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decodes `value` against the schema `node` as Kubernetes' Go decoder would for a built-in
/// kind: unknown fields are removed (and reported), null fields are dropped, and values of the
/// wrong type are reported.
pub fn decode(schema: &Schema, node: &Value, value: &mut Value) -> Vec<DecodeIssue> {
    let mut issues = Vec::new();
    walk(schema, node, value, &mut String::new(), &mut issues);
    issues
}

fn walk(
    schema: &Schema,
    node: &Value,
    value: &mut Value,
    path: &mut String,
    out: &mut Vec<DecodeIssue>,
) {
    let is_quantity = node
        .get("$ref")
        .and_then(Value::as_str)
        .is_some_and(|r| r.ends_with("resource.Quantity"));
    if is_quantity {
        let ok = match &*value {
            Value::String(q) => crate::validation::parse_quantity(q).is_some(),
            Value::Number(_) | Value::Null => true,
            _ => false,
        };
        if !ok {
            out.push(DecodeIssue::Quantity(path.clone()));
        }
        return;
    }
    let embedded_meta = !path.is_empty()
        && path.as_str() != "metadata"
        && node
            .get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with("meta.v1.ObjectMeta"));
    let node = schema.resolve(node);
    let ty = node.get("type").and_then(Value::as_str);
    let format = node.get("format").and_then(Value::as_str);
    if value.is_null() {
        return;
    }
    let type_error = |out: &mut Vec<DecodeIssue>, path: &str, v: &Value, expected: &str| {
        out.push(DecodeIssue::Type {
            path: path.to_string(),
            found: json_type(v),
            expected: expected.to_string(),
        })
    };
    match ty {
        Some("string") => {
            let ok = value.is_string()
                || (format == Some("int-or-string") && (value.is_i64() || value.is_u64()));
            if !ok {
                type_error(out, path, value, "string");
            }
        }
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                let expected = match format {
                    Some("int32") => "int32",
                    _ => "int64",
                };
                type_error(out, path, value, expected);
            }
        }
        Some("number") => {
            if !value.is_number() {
                type_error(out, path, value, "float64");
            }
        }
        Some("boolean") => {
            if !value.is_boolean() {
                type_error(out, path, value, "bool");
            }
        }
        Some("array") => {
            let Some(items) = value.as_array_mut() else {
                type_error(out, path, value, "[]");
                return;
            };
            let Some(item_schema) = node.get("items") else {
                return;
            };
            let base = path.len();
            for (i, item) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(schema, item_schema, item, path, out);
                path.truncate(base);
            }
        }
        Some("object") | None => {
            let props = node.get("properties").and_then(Value::as_object);
            let additional = node.get("additionalProperties").filter(|a| a.is_object());
            if props.is_none() && additional.is_none() {
                // Free-form (RawExtension, JSON): kept as it is.
                if ty == Some("object") && !value.is_object() {
                    type_error(out, path, value, "map[string]interface {}");
                }
                return;
            }
            let Some(obj) = value.as_object_mut() else {
                type_error(out, path, value, "struct");
                return;
            };
            let base = path.len();
            let mut unknown = Vec::new();
            let mut nulls = Vec::new();
            for (k, v) in obj.iter_mut() {
                let child = props.and_then(|p| p.get(k)).or(additional);
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match child {
                    Some(c) => {
                        if v.is_null() && props.is_some_and(|p| p.contains_key(k)) {
                            nulls.push(k.clone());
                        } else {
                            walk(schema, c, v, path, out);
                        }
                    }
                    None => {
                        out.push(DecodeIssue::Unknown(path.clone()));
                        unknown.push(k.clone());
                    }
                }
                path.truncate(base);
            }
            // Go's encoder leaves out an empty map or slice of an optional field (`omitempty`):
            // what kube-apiserver stores and answers has no `labels: {}` or `finalizers: []`.
            let required = |k: &str| {
                node.get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|x| x == k))
            };
            let empties: Vec<String> = obj
                .iter()
                .filter(|(k, v)| {
                    let declared = props.and_then(|p| p.get(*k));
                    declared.is_some_and(|d| is_empty_collection(schema, d, v)) && !required(k)
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in unknown.into_iter().chain(nulls).chain(empties) {
                obj.remove(&k);
            }
            // An ObjectMeta embedded in a template is a Go struct whose zero creation time
            // encodes as null, which kube-apiserver 1.33 still writes.
            if embedded_meta && !obj.contains_key("creationTimestamp") {
                obj.insert("creationTimestamp".into(), Value::Null);
            }
        }
        Some(_) => {}
    }
}

/// Whether `v` is an empty list, or an empty map of a map-typed field (a struct's `{}` stays:
/// Go encodes a set struct pointer, e.g. `emptyDir: {}`, even when all its fields are empty).
fn is_empty_collection(schema: &Schema, field: &Value, v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(m) if m.is_empty() => {
            let f = schema.resolve(field);
            f.get("properties").is_none() && f.get("additionalProperties").is_some()
        }
        _ => false,
    }
}

/// How a list field merges under a strategic merge patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the original.
    Replace,
    /// Items are merged by the value of this key.
    MergeByKey(String),
    /// A list of primitives merged as a set.
    MergePrimitives,
}

/// The strategic-merge-patch strategy of a field schema (`x-kubernetes-patch-strategy` and
/// `x-kubernetes-patch-merge-key`, exactly as Kubernetes declares them).
pub fn patch_strategy(schema: &Schema, field: &Value) -> (ListStrategy, bool) {
    let strategy = field
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .unwrap_or("");
    let parts: Vec<&str> = strategy.split(',').collect();
    let retain_keys = parts.contains(&"retainKeys");
    let merge = parts.contains(&"merge");
    let list = if merge {
        match field
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
        {
            Some(key) => ListStrategy::MergeByKey(key.to_string()),
            None => {
                let items = schema.items(field).map(|i| schema.resolve(i));
                let primitive = items.is_some_and(|i| {
                    !matches!(i.get("type").and_then(Value::as_str), Some("object") | None)
                        || i.get("format").and_then(Value::as_str) == Some("int-or-string")
                });
                if primitive {
                    ListStrategy::MergePrimitives
                } else {
                    ListStrategy::Replace
                }
            }
        }
    } else {
        ListStrategy::Replace
    };
    (list, retain_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(def: &str, mut value: Value, expect_value: Value, expect_issues: &[DecodeIssue]) {
        let s = Schema::builtin();
        let node = s.definition(def).unwrap().clone();
        let issues = decode(&s, &node, &mut value);
        assert_eq!(issues, expect_issues);
        assert_eq!(value, expect_value);
    }

    #[test]
    fn decoding_prunes_unknown_fields_and_reports_types() {
        check(
            "io.k8s.api.core.v1.ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1},
                   "data": {"k": "v"}, "extra": true}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}),
            &[
                DecodeIssue::Unknown("metadata.bogus".into()),
                DecodeIssue::Unknown("extra".into()),
            ],
        );
        check(
            "io.k8s.api.core.v1.ConfigMap",
            json!({"data": {"k": 5}}),
            json!({"data": {"k": 5}}),
            &[DecodeIssue::Type {
                path: "data.k".into(),
                found: "number",
                expected: "string".into(),
            }],
        );
        // int-or-string accepts both; nulls are dropped; nested lists are walked.
        check(
            "io.k8s.api.core.v1.Service",
            json!({"spec": {"ports": [{"port": 80, "targetPort": "http", "x": 1}, {"port": 81, "targetPort": 8080}], "clusterIP": null}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8080}]}}),
            &[DecodeIssue::Unknown("spec.ports[0].x".into())],
        );
        check(
            "io.k8s.api.core.v1.ResourceRequirements",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "lots"}}),
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "lots"}}),
            &[DecodeIssue::Quantity("requests.cpu".into())],
        );
    }

    #[test]
    fn patch_strategies_come_from_kubernetes_metadata() {
        let s = Schema::builtin();
        let pod_spec = s.definition("io.k8s.api.core.v1.PodSpec").unwrap();
        let containers = s.property(pod_spec, "containers").unwrap();
        assert_eq!(
            patch_strategy(&s, containers).0,
            ListStrategy::MergeByKey("name".into())
        );
        let container = s.items(containers).unwrap();
        let ports = s.property(container, "ports").unwrap();
        assert_eq!(
            patch_strategy(&s, ports).0,
            ListStrategy::MergeByKey("containerPort".into())
        );
        let volumes = s.property(pod_spec, "volumes").unwrap();
        assert_eq!(
            patch_strategy(&s, volumes),
            (ListStrategy::MergeByKey("name".into()), true)
        );
        let args = s.property(container, "args").unwrap();
        assert_eq!(patch_strategy(&s, args).0, ListStrategy::Replace);
        let meta = s
            .definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .unwrap();
        let finalizers = s.property(meta, "finalizers").unwrap();
        assert_eq!(
            patch_strategy(&s, finalizers).0,
            ListStrategy::MergePrimitives
        );
    }
}
