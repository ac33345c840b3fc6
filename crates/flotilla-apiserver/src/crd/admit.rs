//! The structural-schema validator: custom objects are pruned of unknown fields, defaulted
//! and validated against their version's OpenAPI v3 schema, with kube-apiserver's causes.

use serde_json::{json, Map, Value};

use crate::errors::Cause;
use crate::schema::{decode, DecodeIssue};

/// Prunes, defaults and validates a custom object against its version's schema. Returns the
/// unknown (pruned) field paths and the causes of a 422.
pub fn admit_custom(schema: Option<&Value>, obj: &mut Value) -> (Vec<String>, Vec<Cause>) {
    let mut unknown = Vec::new();
    let mut causes = Vec::new();
    // metadata is ObjectMeta whatever the schema says.
    if let Some(m) = obj.get_mut("metadata") {
        let s = crate::schema::Schema::builtin();
        let node = s
            .definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .expect("ObjectMeta is defined");
        for issue in decode(&s, node, m) {
            match issue {
                DecodeIssue::Unknown(p) => unknown.push(format!("metadata.{p}")),
                DecodeIssue::Quantity(p) => causes.push(Cause::invalid(
                    format!("metadata.{p}"),
                    &Value::Null,
                    crate::validation::QUANTITY_MSG,
                )),
                DecodeIssue::Type {
                    path,
                    found,
                    expected,
                } => causes.push(Cause::invalid(
                    format!("metadata.{path}"),
                    &json!(found),
                    &format!("must be of type {expected}"),
                )),
            }
        }
    }
    let Some(schema) = schema else {
        return (unknown, causes);
    };
    if let Some(o) = obj.as_object_mut() {
        let props = schema["properties"].as_object();
        let keys: Vec<String> = o.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            let v = o.get_mut(&k).expect("key from the map");
            match props.and_then(|p| p.get(&k)) {
                Some(s) => walk(s, v, &k, &mut unknown, &mut causes),
                None if schema["x-kubernetes-preserve-unknown-fields"] == json!(true) => {}
                None => {
                    unknown.push(k.clone());
                    o.remove(&k);
                }
            }
        }
        apply_defaults(schema, o);
        for r in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !o.contains_key(r) {
                causes.push(Cause::required(r));
            }
        }
    }
    (unknown, causes)
}

fn apply_defaults(schema: &Value, o: &mut Map<String, Value>) {
    if let Some(props) = schema["properties"].as_object() {
        for (k, s) in props {
            if !o.contains_key(k) {
                if let Some(d) = s.get("default") {
                    o.insert(k.clone(), d.clone());
                }
            }
        }
    }
}

/// A schema's `pattern`, compiled once per process (schemas repeat a few patterns across many
/// writes; compiling one costs far more than matching it). Shared, not cloned: a clone of a
/// `Regex` starts with empty matching caches, which it then builds on every use.
fn cached_regex(pattern: &str) -> Option<std::sync::Arc<regex::Regex>> {
    type Cache = std::collections::HashMap<String, Option<std::sync::Arc<regex::Regex>>>;
    static CACHE: std::sync::OnceLock<parking_lot::Mutex<Cache>> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().get(pattern) {
        return r.clone();
    }
    let compiled = regex::Regex::new(pattern).ok().map(std::sync::Arc::new);
    let mut c = cache.lock();
    if c.len() < 4096 {
        c.insert(pattern.to_string(), compiled.clone());
    }
    compiled
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(s: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>, c: &mut Vec<Cause>) {
    if v.is_null() {
        if s["nullable"] != json!(true) {
            c.push(Cause::invalid(
                path,
                v,
                &format!(
                    "{path} in body must be of type {}: \"null\"",
                    s["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if s["x-kubernetes-int-or-string"] == json!(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            c.push(Cause::invalid(
                path,
                v,
                &format!(
                    "{path} in body must be of type integer,string: \"{}\"",
                    type_name(v)
                ),
            ));
        }
        return;
    }
    let found = type_name(v);
    let ty = s["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "" => true,
        "number" => v.is_number(),
        t => t == found,
    };
    if !type_ok {
        c.push(Cause {
            reason: "FieldValueTypeInvalid",
            field: path.to_string(),
            message: format!(
                "Invalid value: \"{found}\": {path} in body must be of type {ty}: \"{found}\""
            ),
        });
        return;
    }
    if let Some(e) = s["enum"].as_array() {
        if !e.contains(v) {
            let supported: Vec<String> = e
                .iter()
                .map(|x| x.as_str().map_or(x.to_string(), String::from))
                .collect();
            let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
            c.push(Cause::not_supported(path, v, &refs));
        }
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = s["maximum"].as_f64() {
                let excl = s["exclusiveMaximum"] == json!(true);
                if x > max || (excl && x == max) {
                    let rel = if excl {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    c.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {max}"),
                    ));
                }
            }
            if let Some(min) = s["minimum"].as_f64() {
                let excl = s["exclusiveMinimum"] == json!(true);
                if x < min || (excl && x == min) {
                    let rel = if excl {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    c.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {min}"),
                    ));
                }
            }
        }
        Value::String(_) => {
            let st = v.as_str().unwrap_or_default();
            let len = st.chars().count() as u64;
            if let Some(max) = s["maxLength"].as_u64() {
                if len > max {
                    c.push(Cause {
                        reason: "FieldValueTooLong",
                        field: path.to_string(),
                        message: format!("Too long: may not be more than {max} bytes"),
                    });
                }
            }
            if let Some(min) = s["minLength"].as_u64() {
                if len < min {
                    c.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be at least {min} chars long"),
                    ));
                }
            }
            if let Some(p) = s["pattern"].as_str() {
                if let Some(re) = cached_regex(p) {
                    if !re.is_match(st) {
                        c.push(Cause::invalid(
                            path,
                            v,
                            &format!("{path} in body should match '{p}'"),
                        ));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = s["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    c.push(Cause {
                        reason: "FieldValueTooMany",
                        field: path.to_string(),
                        message: format!(
                            "Too many: {}: must have at most {max} items",
                            items.len()
                        ),
                    });
                }
            }
            if let Some(min) = s["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    c.push(Cause::invalid(
                        path,
                        &json!(items.len()),
                        &format!("{path} in body should have at least {min} items"),
                    ));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), unknown, c);
                }
            }
            match s["x-kubernetes-list-type"].as_str() {
                Some("set") => {
                    for i in 0..items.len() {
                        if items[..i].contains(&items[i]) {
                            c.push(Cause::duplicate(format!("{path}[{i}]"), &items[i]));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = s["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    for i in 0..items.len() {
                        let key_of = |x: &Value| {
                            keys.iter()
                                .map(|k| x.get(*k).cloned().unwrap_or(Value::Null))
                                .collect::<Vec<_>>()
                        };
                        let ki = key_of(&items[i]);
                        if items[..i].iter().any(|x| key_of(x) == ki) {
                            c.push(Cause::duplicate(format!("{path}[{i}]"), &Value::Array(ki)));
                        }
                    }
                }
                _ => {}
            }
        }
        Value::Object(o) => {
            let props = s["properties"].as_object();
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            let preserve = s["x-kubernetes-preserve-unknown-fields"] == json!(true)
                || s["additionalProperties"] == json!(true);
            let embedded = s["x-kubernetes-embedded-resource"] == json!(true);
            // In key order, as kube-apiserver's schema validator reports its causes.
            let mut keys: Vec<String> = o.keys().cloned().collect();
            keys.sort();
            for k in keys {
                let child_path = format!("{path}.{k}");
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child = props.and_then(|p| p.get(&k)).or(additional);
                match child {
                    Some(cs) => {
                        let cv = o.get_mut(&k).expect("key from the map");
                        walk(cs, cv, &child_path, unknown, c);
                    }
                    None if preserve
                        || (props.is_none() && additional.is_none() && ty.is_empty()) => {}
                    None => {
                        unknown.push(child_path);
                        o.remove(&k);
                    }
                }
            }
            apply_defaults(s, o);
            for r in s["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !o.contains_key(r) {
                    c.push(Cause::required(format!("{path}.{r}")));
                }
            }
            if let Some(max) = s["maxProperties"].as_u64() {
                if o.len() as u64 > max {
                    c.push(Cause::invalid(
                        path,
                        &json!(o.len()),
                        &format!("{path} in body should have at most {max} properties"),
                    ));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::tests::crd;

    #[test]
    fn custom_objects_are_pruned_defaulted_and_validated() {
        let c = crd();
        let schema = c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "junk": 1},
                             "spec": {"size": 3, "extra": true, "free": {"any": {"thing": 1}}}, "top": 1});
        let (unknown, causes) = admit_custom(Some(&schema), &mut obj);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(unknown, ["metadata.junk", "spec.extra", "top"]);
        assert_eq!(
            obj["spec"],
            json!({"size": 3, "free": {"any": {"thing": 1}}, "color": "red"})
        );

        let mut bad = json!({"spec": {"size": "big", "color": "pink", "tags": ["a", "a"]}});
        let (_, causes) = admit_custom(Some(&schema), &mut bad);
        let got: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("spec.color", "FieldValueNotSupported"),
                ("spec.size", "FieldValueTypeInvalid"),
                ("spec.tags[1]", "FieldValueDuplicate")
            ],
            "in key order"
        );
        let mut missing = json!({"spec": {"size": 11}});
        let (_, causes) = admit_custom(Some(&schema), &mut missing);
        let got: Vec<&str> = causes.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            got,
            ["Invalid value: 11: spec.size in body should be less than or equal to 10"]
        );
        let mut none = json!({});
        let (_, causes) = admit_custom(Some(&schema), &mut none);
        assert!(causes.is_empty());
    }
}
