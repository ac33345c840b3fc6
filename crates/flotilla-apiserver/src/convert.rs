//! Conversion between the version a request uses and the version an object is stored at.
//!
//! - core/v1 Event and events.k8s.io/v1 Event are one resource, stored in the core/v1 form
//!   (as kube-apiserver stores them); events.k8s.io requests see the converted form.
//! - Custom resources are stored at the version they were written with and served at any
//!   version with only apiVersion changed (conversion strategy None).

use serde_json::{Map, Value};

use crate::registry::Resource;

/// events.k8s.io/v1 field <-> core/v1 field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_new_event(res: &Resource) -> bool {
    res.group == "events.k8s.io" && res.kind == "Event"
}

/// Whether objects of `res` need converting between request and storage form.
pub fn needs_conversion(res: &Resource) -> bool {
    res.custom || is_new_event(res)
}

/// Whether a stored custom object is already in the version `res` serves, so its bytes can be
/// sent as they are (the stored JSON starts with its apiVersion).
pub fn stored_in_version(res: &Resource, data: &[u8]) -> bool {
    res.custom && {
        let prefix = format!("{{\"apiVersion\":\"{}\"", res.api_version());
        data.starts_with(prefix.as_bytes())
    }
}

fn rename(
    v: Value,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
    api_version: &str,
) -> Value {
    let Value::Object(o) = v else { return v };
    let renames: Vec<(&str, &str)> = pairs.collect();
    let mut out = Map::new();
    for (k, x) in o {
        let key = renames
            .iter()
            .find(|(from, _)| *from == k)
            .map_or(k, |(_, to)| to.to_string());
        out.insert(key, x);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Value::Object(out)
}

/// The stored object as the request's version shows it.
pub fn to_request(res: &Resource, v: Value) -> Value {
    if is_new_event(res) {
        return rename(
            v,
            EVENT_FIELDS.iter().map(|(n, o)| (*o, *n)),
            "events.k8s.io/v1",
        );
    }
    if res.custom {
        let want = res.api_version();
        let mut v = v;
        if v.get("apiVersion").and_then(Value::as_str) != Some(want.as_str()) {
            v["apiVersion"] = Value::String(want);
        }
        return v;
    }
    v
}

/// A request's object in its stored form.
pub fn to_storage(res: &Resource, v: Value) -> Value {
    if is_new_event(res) {
        return rename(v, EVENT_FIELDS.iter().copied(), "v1");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn custom_objects_in_the_served_version_pass_as_bytes() {
        let crd = json!({"spec": {"group": "x.io", "scope": "Namespaced",
            "names": {"kind": "W", "plural": "ws", "singular": "w", "listKind": "WList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
                         {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let rs = crate::crd::resources_of(&crd);
        let (v1, v2) = (&rs[0], &rs[1]);
        let data = br#"{"apiVersion":"x.io/v1","kind":"W","metadata":{"name":"a"}}"#;
        assert!(stored_in_version(v1, data));
        assert!(!stored_in_version(v2, data));
        assert!(!stored_in_version(
            v1,
            br#"{"kind":"W","apiVersion":"x.io/v1"}"#
        ));
        let core = Registry::default().get("", "v1", "configmaps").unwrap();
        assert!(!stored_in_version(&core, br#"{"apiVersion":"v1"}"#));
    }

    #[test]
    fn events_round_trip_between_the_two_apis() {
        let reg = Registry::default();
        let new = reg.get("events.k8s.io", "v1", "events").unwrap();
        let core = reg.get("", "v1", "events").unwrap();
        assert_eq!(
            new.key_prefix(Some("a")),
            core.key_prefix(Some("a")),
            "one storage location"
        );
        let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                       "regarding": {"kind": "Deployment", "name": "web"}, "note": "scaled", "reason": "Scaled",
                       "reportingController": "flotilla", "deprecatedCount": 2});
        let stored = to_storage(&new, e.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "scaled");
        assert_eq!(stored["reportingComponent"], "flotilla");
        assert_eq!(stored["count"], 2);
        assert_eq!(to_request(&new, stored.clone()), e);
        assert_eq!(to_request(&core, stored.clone()), stored);
    }
}
