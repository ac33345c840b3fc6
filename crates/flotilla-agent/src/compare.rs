//! The work applier's comparisons, as pure functions: what of an object takes part in a
//! comparison, whether a member object already holds everything a manifest sets, and the
//! field-by-field differences between two objects in KubeFleet's patch-detail form.
//!
//! How they are used (`work.rs`), as KubeFleet's applier does it: a `FullComparison` is the
//! difference between the manifest and the member's object; a `PartialComparison` (the
//! default) is the difference between the member's object and what a server-side apply of the
//! manifest would make of it (a dry run), so fields the manifest does not set, and defaults the
//! member adds inside lists (container ports' protocol, a probe's thresholds), are not
//! differences. [`holds`] spares the dry run when the member's object already holds every
//! field of the manifest.

use serde_json::{json, Map, Value};

/// At most this many differences are reported per object (KubeFleet's limit).
pub const MAX_DETAILS: usize = 100;

/// The part of an object a comparison looks at: everything but `status` and the metadata the
/// server keeps for itself (only name, namespace, labels and annotations stay).
pub fn comparable(obj: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        match k.as_str() {
            "status" => {}
            "metadata" => {
                let mut meta = Map::new();
                for f in ["name", "namespace", "labels", "annotations"] {
                    if let Some(x) = v.get(f).filter(|x| !x.is_null()) {
                        meta.insert(f.to_string(), x.clone());
                    }
                }
                out.insert(k.clone(), Value::Object(meta));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Whether `live` holds every field `want` sets, with the same value: maps may hold more keys;
/// lists must have as many items, each holding the wanted one (so what the member's API server
/// defaults inside list items does not count). A missing field `want` sets to null, an empty
/// map or an empty list counts as held, as the API server drops them.
pub fn holds(want: &Value, live: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, wv)| match l.get(k) {
            Some(lv) => holds(wv, lv),
            None => is_empty(wv),
        }),
        (Value::Array(w), Value::Array(l)) => {
            w.len() == l.len() && w.iter().zip(l).all(|(a, b)| holds(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (w, l) => w == l,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The differences between the hub's version of an object and the member's, field by field
/// (lists item by item), as KubeFleet's patch details: `path` (a JSON pointer), `valueInHub`
/// where the hub has the field, `valueInMember` where the member has it. Values are shown as Go
/// prints them (`fmt.Sprint`), as KubeFleet reports them. At most [`MAX_DETAILS`].
pub fn differences(hub: &Value, member: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    walk(String::new(), Some(hub), Some(member), &mut out);
    out.truncate(MAX_DETAILS);
    out
}

fn walk(path: String, hub: Option<&Value>, member: Option<&Value>, out: &mut Vec<Value>) {
    if out.len() >= MAX_DETAILS {
        return;
    }
    match (hub, member) {
        (Some(Value::Object(h)), Some(Value::Object(m))) => {
            let mut keys: Vec<&String> = h.keys().chain(m.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                walk(p, h.get(k), m.get(k), out);
            }
        }
        (Some(Value::Array(h)), Some(Value::Array(m))) => {
            for i in 0..h.len().max(m.len()) {
                walk(format!("{path}/{i}"), h.get(i), m.get(i), out);
            }
        }
        (Some(Value::Number(a)), Some(Value::Number(b))) if a.as_f64() == b.as_f64() => {}
        (Some(h), Some(m)) if h == m => {}
        (h, m) => {
            let mut d = json!({"path": if path.is_empty() { "/".to_string() } else { path }});
            if let Some(h) = h {
                d["valueInHub"] = json!(go_sprint(h));
            }
            if let Some(m) = m {
                d["valueInMember"] = json!(go_sprint(m));
            }
            out.push(d);
        }
    }
}

/// A JSON value as Go's `fmt.Sprint` prints it once decoded as Kubernetes decodes JSON
/// (integers as int64, other numbers as float64): strings bare, `map[k:v ...]` with sorted
/// keys, `[a b]`, `<nil>`.
pub fn go_sprint(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0)),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_sprint).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_sprint(&m[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// A float64 as `%v` prints it: the shortest digits that read back as the same number, in
/// exponent form (`1e-05`, `1e+21`) when the exponent is below -4 or at least 21.
fn go_float(f: f64) -> String {
    let a = f.abs();
    if a == 0.0 || (1e-4..1e21).contains(&a) {
        return format!("{f}");
    }
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((mant, exp)) => {
            let e: i32 = exp.parse().unwrap_or(0);
            format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_go_prints_int64_and_float64() {
        for (v, want) in [
            (json!(12345678901234567_i64), "12345678901234567"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(-5), "-5"),
            (json!(0.5), "0.5"),
            (json!(1e21), "1e+21"),
        ] {
            assert_eq!(go_sprint(&v), want, "{v}");
        }
    }

    #[test]
    fn a_field_set_to_null_is_held_by_its_absence() {
        assert!(holds(&json!({"a": null, "b": {}, "c": []}), &json!({})));
        assert!(!holds(&json!({"a": 0}), &json!({})));
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}})
    }

    #[test]
    fn comparable_keeps_identity_labels_annotations_and_content() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "uid": "u", "resourceVersion": "9",
                "generation": 1, "creationTimestamp": "t", "managedFields": [], "ownerReferences": [],
                "labels": {"a": "b"}, "annotations": {"x": "y"}, "finalizers": ["f"]},
            "data": {"k": "v"}, "status": {"phase": "x"}});
        assert_eq!(
            comparable(&live),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "n", "labels": {"a": "b"}, "annotations": {"x": "y"}},
                "data": {"k": "v"}})
        );
    }

    /// (case, manifest, member object, held)
    fn holds_cases() -> Vec<(&'static str, Value, Value, bool)> {
        let want = deployment(
            json!([{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]),
        );
        let defaulted = deployment(
            json!([{"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
            "ports": [{"containerPort": 80, "protocol": "TCP"}]}]),
        );
        let mut more_replicas = defaulted.clone();
        more_replicas["spec"]["replicas"] = json!(3);
        let mut progress = defaulted.clone();
        progress["spec"]["progressDeadlineSeconds"] = json!(600);
        let two = deployment(
            json!([{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "envoy"}]),
        );
        let mut other_image = defaulted.clone();
        other_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        vec![
            ("identical", want.clone(), want.clone(), true),
            (
                "defaults inside list items",
                want.clone(),
                defaulted.clone(),
                true,
            ),
            (
                "fields the manifest leaves out",
                want.clone(),
                progress,
                true,
            ),
            ("a changed scalar", want.clone(), more_replicas, false),
            (
                "a changed field in a list item",
                want.clone(),
                other_image,
                false,
            ),
            (
                "a list item more in the member",
                want.clone(),
                two.clone(),
                false,
            ),
            ("a list item fewer in the member", two, want.clone(), false),
            (
                "1 and 1.0 are one number",
                json!({"a": 1}),
                json!({"a": 1.0}),
                true,
            ),
            (
                "an empty map the server dropped",
                json!({"a": {}}),
                json!({}),
                true,
            ),
            (
                "an empty list the server dropped",
                json!({"a": []}),
                json!({}),
                true,
            ),
            ("a missing field", json!({"a": "x"}), json!({}), false),
            (
                "null against a value",
                json!({"a": null}),
                json!({"a": 1}),
                false,
            ),
        ]
    }

    #[test]
    fn holds_judges_field_by_field_with_list_items_in_order() {
        for (case, want, live, expected) in holds_cases() {
            assert_eq!(holds(&want, &live), expected, "{case}");
        }
    }

    #[test]
    fn differences_name_each_field_with_values_as_kubefleet_shows_them() {
        let hub = json!({"spec": {"replicas": 2, "paused": false, "ports": [{"port": 80}, {"port": 443}],
            "selector": {"app": "web"}, "tls/mode": "strict"}, "data": {"ratio": 0.5}});
        let member = json!({"spec": {"replicas": 3, "ports": [{"port": 80}], "selector": {"app": "web", "tier": "front"},
            "strategy": {"type": "RollingUpdate"}, "tls/mode": "strict"}, "data": {"ratio": 0.5}});
        assert_eq!(
            differences(&hub, &member),
            vec![
                json!({"path": "/spec/paused", "valueInHub": "false"}),
                json!({"path": "/spec/ports/1", "valueInHub": "map[port:443]"}),
                json!({"path": "/spec/replicas", "valueInHub": "2", "valueInMember": "3"}),
                json!({"path": "/spec/selector/tier", "valueInMember": "front"}),
                json!({"path": "/spec/strategy", "valueInMember": "map[type:RollingUpdate]"}),
            ]
        );
        // Keys with / and ~ are escaped as JSON pointers.
        let d = differences(&json!({"a/b": 1, "c~d": 1}), &json!({"a/b": 2, "c~d": 2}));
        assert_eq!(d[0]["path"], "/a~1b");
        assert_eq!(d[1]["path"], "/c~0d");
        // Whole objects that differ in type.
        assert_eq!(
            differences(&json!("x"), &json!(["x"])),
            vec![json!({"path": "/", "valueInHub": "x", "valueInMember": "[x]"})]
        );
        assert!(differences(&json!({"a": 1}), &json!({"a": 1.0})).is_empty());
    }

    #[test]
    fn at_most_a_hundred_differences_per_object() {
        let hub: Map<String, Value> = (0..150).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let d = differences(&Value::Object(hub), &json!({}));
        assert_eq!(d.len(), MAX_DETAILS);
        assert_eq!(d[0]["path"], "/k000");
    }

    #[test]
    fn values_print_as_go_prints_them() {
        for (v, want) in [
            (json!(null), "<nil>"),
            (json!(true), "true"),
            (json!("text"), "text"),
            (json!(3), "3"),
            (json!(-2.5), "-2.5"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1e21), "1e+21"),
            (json!(123456789), "123456789"),
            (json!(2.0), "2"),
            (json!([1, "a", [true]]), "[1 a [true]]"),
            (json!({"b": 1, "a": {"c": "d"}}), "map[a:map[c:d] b:1]"),
        ] {
            assert_eq!(go_sprint(&v), want, "{v}");
        }
    }
}
