//! What the hub's caches keep of large objects. Of a Work's spec: a digest. The controller
//! wrote the spec (the manifests after overrides, the apply strategy) and only ever asks
//! whether it is still what it would write; the manifests themselves, decoded in the Work
//! cache and again in every placement's last plan, were most of the hub's memory at fleet
//! scale (docs/BENCHMARKS.md, fleet scale). Of a Work's status, the manifest conditions the
//! roll-up reports; of a placement's status, its conditions and a digest of the rest (or, for
//! the controllers that read no status, nothing).

use kube::api::DynamicObject;
use serde_json::{json, Value};

/// The key under which a cached Work's spec holds its digest.
const DIGEST: &str = "flotilla.dev/digest";

/// A digest of `v` that does not depend on the order of object keys (two equal values, as
/// `serde_json` compares them, have the same digest): FNV-1a over a canonical walk.
pub(crate) fn digest(v: &Value) -> u64 {
    let mut h = Fnv::new();
    h.value(v);
    h.0
}

/// [`digest`] of the object `m` as if it had no key `skip`, without copying the rest.
fn digest_except(m: &serde_json::Map<String, Value>, skip: &str) -> u64 {
    let mut h = Fnv::new();
    h.object(m, Some(skip));
    h.0
}

/// FNV-1a, fed by a canonical walk of JSON values.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn string(&mut self, s: &str) {
        self.eat(b"\"");
        self.eat(&(s.len() as u64).to_le_bytes());
        self.eat(s.as_bytes());
    }

    fn object(&mut self, m: &serde_json::Map<String, Value>, skip: Option<&str>) {
        let mut keys: Vec<&String> = m.keys().filter(|k| Some(k.as_str()) != skip).collect();
        keys.sort();
        self.eat(b"{");
        self.eat(&(keys.len() as u64).to_le_bytes());
        for k in keys {
            self.string(k);
            self.value(&m[k]);
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.eat(b"n"),
            Value::Bool(b) => self.eat(if *b { b"t" } else { b"f" }),
            Value::Number(n) => {
                self.eat(b"#");
                self.eat(n.to_string().as_bytes());
            }
            Value::String(s) => self.string(s),
            Value::Array(a) => {
                self.eat(b"[");
                self.eat(&(a.len() as u64).to_le_bytes());
                for x in a {
                    self.value(x);
                }
            }
            Value::Object(m) => self.object(m, None),
        }
    }
}

/// Replaces a Work's spec by its digest, and keeps of its manifests' conditions only those the
/// status roll-up reports ([`super::status::binding_status`]: a manifest that failed to apply or
/// is unavailable, or has drift or diff details), as the Work cache keeps it. A manifest that
/// applied and is available (nearly all of them) adds nothing to the roll-up; at four manifests
/// its conditions were most of a cached Work.
pub(crate) fn compact_work(w: &mut DynamicObject) {
    let d = digest(&w.data["spec"]);
    w.data["spec"] = json!({ DIGEST: format!("{d:016x}") });
    if let Some(list) = w
        .data
        .get_mut("status")
        .and_then(|s| s.get_mut("manifestConditions"))
        .and_then(Value::as_array_mut)
    {
        list.retain(reported);
    }
}

/// Whether the roll-up reports manifest condition `m`: an Applied or Available condition that
/// is False, or drift or diff details.
fn reported(m: &Value) -> bool {
    let failed = m["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c["type"] == "Applied" || c["type"] == "Available") && c["status"] == "False")
    });
    failed || m.get("driftDetails").is_some() || m.get("diffDetails").is_some()
}

/// Drops a placement's status, for the caches of controllers that read only its metadata and
/// spec (update runs, evictions): at 100 clusters the status is most of a placement (some
/// 150 KB of JSON), and each controller would keep its own decoded copy.
pub(crate) fn without_status(p: &mut DynamicObject) {
    if let Some(o) = p.data.as_object_mut() {
        o.remove("status");
    }
}

/// Keeps of a placement's status its conditions and a digest of the rest, as the placement
/// controller's cache keeps it: the controller reads only the conditions (their transition
/// times) and asks whether a status it computed is the one written, and the rest (each
/// cluster's status: some 150 KB of JSON at 100 clusters) was its largest cached object.
pub(crate) fn placement_status(p: &mut DynamicObject) {
    let Some(status) = p.data.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    let d = digest_except(status, "conditions");
    status.retain(|k, _| k == "conditions");
    status.insert(DIGEST.into(), json!(format!("{d:016x}")));
}

/// Whether `status` is what the (cached, compacted) `old` status says was written.
pub(crate) fn same_status(old: &Value, status: &Value) -> bool {
    if old["conditions"] != status["conditions"] {
        return false;
    }
    let none = serde_json::Map::new();
    let rest = digest_except(status.as_object().unwrap_or(&none), "conditions");
    old[DIGEST].as_str() == Some(format!("{rest:016x}").as_str())
}

/// Whether the (cached, compacted) Work `w` has the spec whose digest is `spec_digest`.
pub(crate) fn has_spec(w: &DynamicObject, spec_digest: u64) -> bool {
    w.data["spec"][DIGEST]
        .as_str()
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        == Some(spec_digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_have_equal_digests_whatever_the_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"a": 1, "b": {"x": [1, "2"], "y": null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"b": {"y": null, "x": [1, "2"]}, "a": 1}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn different_values_have_different_digests() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!("0"),
            json!(""),
            json!([]),
            json!({}),
            json!([null]),
            json!({"a": null}),
            json!({"a": "b"}),
            json!({"ab": ""}),
            json!(["a", "b"]),
            json!(["ab"]),
            json!([["a"], "b"]),
            json!([["a", "b"]]),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 2}}),
        ];
        let mut seen = std::collections::HashSet::new();
        for v in &values {
            assert!(seen.insert(digest(v)), "{v} collides");
        }
    }

    #[test]
    fn a_compacted_work_knows_its_spec_and_keeps_everything_else() {
        let spec = json!({"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap"}]},
            "applyStrategy": {"type": "ClientSideApply"}});
        let mut w: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "Work",
            "metadata": {"name": "w", "namespace": "fleet-member-a", "labels": {"k": "v"}},
            "spec": spec.clone(), "status": {"conditions": []}}))
        .unwrap();
        compact_work(&mut w);
        assert!(has_spec(&w, digest(&spec)));
        let mut other = spec.clone();
        other["applyStrategy"]["type"] = json!("ServerSideApply");
        assert!(!has_spec(&w, digest(&other)));
        assert_eq!(w.data["status"], json!({"conditions": []}));
        assert_eq!(w.metadata.labels.unwrap()["k"], "v");
        assert!(w.data["spec"].get("workload").is_none());
    }

    #[test]
    fn a_compacted_placement_status_tells_whether_a_status_is_the_one_written() {
        let status = json!({"conditions": [{"type": "Scheduled", "status": "True"}],
            "observedResourceIndex": "0",
            "perClusterPlacementStatuses": [{"clusterName": "a", "conditions": []}]});
        let mut p: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterResourcePlacement",
            "metadata": {"name": "web"}, "spec": {"policy": {}}, "status": status.clone()}))
        .unwrap();
        placement_status(&mut p);
        let old = &p.data["status"];
        assert_eq!(old["conditions"], status["conditions"]);
        assert!(old.get("perClusterPlacementStatuses").is_none());
        assert_eq!(p.data["spec"], json!({"policy": {}}));
        assert!(same_status(old, &status));
        let mut other = status.clone();
        other["perClusterPlacementStatuses"][0]["clusterName"] = json!("b");
        assert!(!same_status(old, &other));
        let mut other = status.clone();
        other["conditions"][0]["status"] = json!("False");
        assert!(!same_status(old, &other));
        assert!(!same_status(
            old,
            &json!({"conditions": status["conditions"]})
        ));
        // Nothing written yet: no status, and none is the same as any status computed.
        let mut fresh: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterResourcePlacement",
            "metadata": {"name": "web"}, "spec": {}}))
        .unwrap();
        placement_status(&mut fresh);
        assert!(fresh.data.get("status").is_none());
        assert!(!same_status(&fresh.data["status"], &status));
    }

    #[test]
    fn a_compacted_work_keeps_the_manifest_conditions_the_roll_up_reports() {
        let manifest = |name: &str, applied: &str, available: &str| {
            json!({"identifier": {"kind": "ConfigMap", "name": name},
                "conditions": [{"type": "Applied", "status": applied},
                    {"type": "Available", "status": available}]})
        };
        let mut drifted = manifest("drifted", "True", "True");
        drifted["driftDetails"] = json!({"observedDrifts": []});
        let mut diffed = manifest("diffed", "True", "Unknown");
        diffed["diffDetails"] = json!({"observedDiffs": []});
        let mut w: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "Work",
            "metadata": {"name": "w", "namespace": "fleet-member-a"},
            "spec": {}, "status": {"conditions": [{"type": "Applied", "status": "False"}],
                "manifestConditions": [manifest("fine", "True", "True"),
                    manifest("unapplied", "False", "Unknown"), drifted.clone(),
                    manifest("unavailable", "True", "False"), diffed.clone(),
                    manifest("pending", "True", "Unknown")]}}))
        .unwrap();
        compact_work(&mut w);
        assert_eq!(
            w.data["status"]["manifestConditions"],
            json!([
                manifest("unapplied", "False", "Unknown"),
                drifted,
                manifest("unavailable", "True", "False"),
                diffed
            ])
        );
        assert_eq!(
            w.data["status"]["conditions"],
            json!([{"type": "Applied", "status": "False"}])
        );
    }
}
