//! Name, label and metadata rules, with Kubernetes' own wording.

use serde_json::Value;

use crate::errors::Cause;
use crate::registry::NameRule;
pub use flotilla_api::names::{
    label1035_problems, label_key_problem, label_problems, label_value_problem, subdomain_problems,
};

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn path_segment_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s == "." || s == ".." {
        out.push(format!("may not be '{s}'"));
    }
    for c in ["/", "%"] {
        if s.contains(c) {
            out.push(format!("may not contain '{c}'"));
        }
    }
    out
}

/// Problems of an object name under `rule`.
pub fn name_problems(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => subdomain_problems(name),
        NameRule::Label => label_problems(name),
        NameRule::Label1035 => label1035_problems(name),
        NameRule::PathSegment => path_segment_problems(name),
    }
}

/// The problem of `k` as a ConfigMap or Secret key, if any.
pub fn config_key_problem(k: &str) -> Option<String> {
    if k.is_empty() || k.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if k == "." || k == ".." || k.starts_with("..") {
        return Some("must not be '.' or '..' or start with '..'".into());
    }
    if !k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some(CONFIG_KEY_MSG.into());
    }
    None
}

/// The message kube-apiserver gives for a malformed resource quantity.
pub const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parses a Kubernetes resource quantity ("500m", "1Gi", "1e3", "2") into its value.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number.matches('.').count() > 1 || number[1..].contains(['+', '-']) {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(n * factor)
}

const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// Validates an object's metadata: name, labels, annotations, finalizers, owner references.
pub fn validate_metadata(meta: &Value, rule: NameRule) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::required_detail(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for p in name_problems(rule, name) {
            causes.push(Cause::invalid("metadata.name", &Value::from(name), &p));
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(p) = label_key_problem(k) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    &Value::from(k.as_str()),
                    &p,
                ));
            }
            match v.as_str() {
                Some(s) => {
                    if let Some(p) = label_value_problem(s) {
                        causes.push(Cause::invalid("metadata.labels", v, &p));
                    }
                }
                None => causes.push(Cause::invalid("metadata.labels", v, "must be a string")),
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Some(p) = label_key_problem(&k.to_ascii_lowercase()) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::from(k.as_str()),
                    &p,
                ));
            }
        }
        if total > TOTAL_ANNOTATION_SIZE {
            causes.push(Cause::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE,
            ));
        }
    }
    if let Some(fins) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in fins.iter().enumerate() {
            let s = f.as_str().unwrap_or("");
            if let Some(p) = label_key_problem(s) {
                causes.push(Cause::invalid(format!("metadata.finalizers[{i}]"), f, &p));
            }
        }
    }
    if let Some(owners) = meta.get("ownerReferences").and_then(Value::as_array) {
        let mut controllers = 0;
        for (i, o) in owners.iter().enumerate() {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if o.get(field)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    causes.push(Cause::invalid(
                        format!("metadata.ownerReferences[{i}].{field}"),
                        &Value::from(""),
                        &format!("{field} must not be empty"),
                    ));
                }
            }
            if o.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            causes.push(Cause::invalid(
                "metadata.ownerReferences",
                &Value::Array(owners.clone()),
                "Only one reference can have Controller set to true",
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_rules() {
        let cases: &[(NameRule, &str, bool)] = &[
            (NameRule::Subdomain, "web.example-1", true),
            (NameRule::Subdomain, "Web", false),
            (NameRule::Subdomain, "-web", false),
            (NameRule::Subdomain, "a..b", false),
            (NameRule::Label, "web-1", true),
            (NameRule::Label, "web.1", false),
            (NameRule::Label1035, "1web", false),
            (NameRule::Label1035, "web1", true),
            (NameRule::PathSegment, "system:admin", true),
            (NameRule::PathSegment, "a/b", false),
            (NameRule::PathSegment, "..", false),
        ];
        for (rule, name, ok) in cases {
            assert_eq!(
                name_problems(*rule, name).is_empty(),
                *ok,
                "{rule:?} {name}"
            );
        }
        assert_eq!(
            name_problems(NameRule::Subdomain, &"a".repeat(254)).len(),
            1
        );
        assert_eq!(name_problems(NameRule::Label, &"a".repeat(64)).len(), 1);
    }

    #[test]
    fn quantities() {
        let cases: &[(&str, Option<f64>)] = &[
            ("2", Some(2.0)),
            ("500m", Some(0.5)),
            ("1Gi", Some(1073741824.0)),
            ("1.5k", Some(1500.0)),
            ("1e3", Some(1000.0)),
            ("-1", Some(-1.0)),
            ("abc", None),
            ("1Gb", None),
            ("1..2", None),
            ("", None),
        ];
        for (q, want) in cases {
            assert_eq!(parse_quantity(q), *want, "{q}");
        }
    }

    #[test]
    fn label_rules() {
        assert_eq!(label_key_problem("app"), None);
        assert_eq!(label_key_problem("example.com/app"), None);
        assert!(label_key_problem("Example.com/app").is_some());
        assert!(label_key_problem("/app").is_some());
        assert!(label_key_problem("app-").is_some());
        assert_eq!(label_value_problem(""), None);
        assert_eq!(label_value_problem("My_Value.1"), None);
        assert!(label_value_problem("a b").is_some());
        assert!(label_value_problem(&"a".repeat(64)).is_some());
    }

    #[test]
    fn metadata_causes_name_the_fields() {
        let causes = validate_metadata(
            &json!({"name": "Bad", "labels": {"ok": "fine", "bad key": "x"}, "finalizers": ["example.com/f", "no good"]}),
            NameRule::Subdomain,
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["metadata.name", "metadata.labels", "metadata.finalizers[1]"]
        );
        let causes = validate_metadata(&json!({}), NameRule::Subdomain);
        assert_eq!(causes[0].reason, "FieldValueRequired");
    }
}
