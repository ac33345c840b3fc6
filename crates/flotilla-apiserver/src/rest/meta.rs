//! Object metadata as handlers read and write it, and the attributes the store indexes
//! objects by (uid, owners, deletion) so that the garbage collector need not parse them.

use flotilla_store::{Attrs, Object};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::registry::Resource;

/// Current time in Kubernetes' RFC 3339 form (second precision, UTC).
pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn meta(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    v.get("metadata")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

pub(crate) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    let o = v.as_object_mut().expect("objects are JSON objects");
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("just made an object")
}

pub(crate) fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    meta(v).get(field).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn finalizers(v: &Value) -> Vec<String> {
    meta(v)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses stored object bytes.
/// Only the metadata of a stored object, as `{"metadata": ...}` (the rest of the JSON is
/// skipped without being built), for controllers that follow every write.
pub(crate) fn parse_meta(obj: &Object) -> Value {
    #[derive(serde::Deserialize)]
    struct MetaOnly {
        #[serde(default)]
        metadata: Value,
    }
    let m: MetaOnly = serde_json::from_slice(&obj.data).unwrap_or(MetaOnly {
        metadata: Value::Null,
    });
    json!({ "metadata": m.metadata })
}

pub(crate) fn parse(obj: &Object) -> Value {
    serde_json::from_slice(&obj.data).expect("stored objects are valid JSON")
}

/// Selector attributes of an object: labels and the resource's selectable fields.
pub(crate) fn attrs_of(res: &Resource, v: &Value) -> Attrs {
    let labels = meta(v)
        .get("labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    let fields = res
        .selectable_fields
        .iter()
        .filter_map(|path| {
            let mut cur = v;
            for part in path.split('.') {
                cur = cur.get(part)?;
            }
            let s = match cur {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((Box::from(path.as_str()), Box::from(s.as_str())))
        })
        .chain(gc_attrs(v))
        .collect();
    Attrs { labels, fields }
}

/// Attribute names the garbage collector reads instead of parsing each written object. Field
/// selectors cannot name them (they accept only a resource's selectable fields).
pub(crate) const ATTR_UID: &str = "metadata.uid";

pub(crate) const ATTR_OWNERS: &str = "metadata.ownerReferences.uid";

pub(crate) const ATTR_DELETION: &str = "metadata.deletionTimestamp";

pub(crate) fn gc_attrs(v: &Value) -> Vec<(Box<str>, Box<str>)> {
    let m = meta(v);
    let mut out = vec![(Box::from(ATTR_UID), Box::from(meta_str(v, "uid")))];
    let owners: Vec<&str> = m
        .get("ownerReferences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|o| o["uid"].as_str()).collect())
        .unwrap_or_default();
    if !owners.is_empty() {
        out.push((Box::from(ATTR_OWNERS), Box::from(owners.join(","))));
    }
    let deleted = meta_str(v, "deletionTimestamp");
    if !deleted.is_empty() {
        out.push((Box::from(ATTR_DELETION), Box::from(deleted)));
    }
    out
}

/// The metadata the garbage collector needs (uid, owner uids, deletionTimestamp) as
/// `{"metadata": ...}`, from the attributes computed at write time; objects stored before
/// those attributes existed are parsed.
pub(crate) fn gc_meta(obj: &Object) -> Value {
    let Some(uid) = obj.attrs.field(ATTR_UID) else {
        return parse_meta(obj);
    };
    let mut m = json!({"uid": uid});
    if let Some(owners) = obj.attrs.field(ATTR_OWNERS) {
        m["ownerReferences"] = owners.split(',').map(|u| json!({"uid": u})).collect();
    }
    if let Some(d) = obj.attrs.field(ATTR_DELETION) {
        m["deletionTimestamp"] = json!(d);
    }
    json!({ "metadata": m })
}

pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
