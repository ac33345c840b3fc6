//! Patch engines: JSON patch (RFC 6902), JSON merge patch (RFC 7396) and strategic merge
//! patch, whose list strategies and merge keys come from Kubernetes' own OpenAPI metadata.

use serde_json::{Map, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::schema::{patch_strategy, ListStrategy, Schema};

/// The patch types of `PATCH` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply; handled by the field manager).
    Apply,
}

impl PatchKind {
    /// The patch type of a Content-Type.
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        match ct {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

impl ApiError {
    pub(crate) fn new_unsupported(message: &str) -> Self {
        let mut e = ApiError::unsupported_media_type("");
        e.message = message.to_string();
        e
    }
}

fn invalid_patch(body: &[u8], detail: &str) -> ApiError {
    let shown = String::from_utf8_lossy(body);
    ApiError::invalid(
        "",
        "",
        "",
        vec![Cause::invalid(
            "patch",
            &Value::String(shown.into_owned()),
            detail,
        )],
    )
}

/// Applies a patch of `kind` to `current`. `def` names the built-in schema (strategic merge
/// patch needs it; custom resources have none and reject strategic patches as kube-apiserver).
pub fn apply(
    schema: &Schema,
    def: Option<&str>,
    kind: PatchKind,
    current: &Value,
    body: &[u8],
) -> ApiResult<Value> {
    match kind {
        PatchKind::Json => {
            let ops: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("json: cannot unmarshal patch: {e}")))?;
            let ops = ops.as_array().ok_or_else(|| {
                ApiError::bad_request("json patch must be an array of operations")
            })?;
            json_patch(current, ops).map_err(|e| {
                // kube-apiserver answers an operation that fails to apply with a bare 422
                // (kubectl prints just that); the reason goes to the log.
                tracing::debug!(error = %e, "json patch operation failed");
                let mut err = ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                );
                err.details = Some(serde_json::json!({}));
                err
            })
        }
        PatchKind::Merge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if !patch.is_object() {
                return Err(invalid_patch(body, "a merge patch must be a JSON object"));
            }
            Ok(merge_patch(current, &patch))
        }
        PatchKind::Apply => Err(ApiError::internal(
            "apply patches go through the field manager",
        )),
        PatchKind::Strategic => {
            let Some(def) = def else {
                return Err(ApiError::new_unsupported(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            };
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let Value::Object(p) = patch else {
                return Err(invalid_patch(
                    body,
                    "a strategic merge patch must be a JSON object",
                ));
            };
            let node = schema
                .definition(def)
                .ok_or_else(|| ApiError::internal(format!("no schema for {def}")))?;
            let mut out = current.clone();
            let Value::Object(o) = &mut out else {
                return Err(ApiError::internal("stored object is not a JSON object"));
            };
            strategic_merge_map(schema, Some(node), o, &p).map_err(|e| invalid_patch(body, &e))?;
            Ok(out)
        }
    }
}

/// RFC 7396.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

fn unescape_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    if !path.starts_with('/') {
        return Err(format!(
            "invalid JSON pointer {path:?}: must start with '/'"
        ));
    }
    Ok(path[1..].split('/').map(unescape_token).collect())
}

fn get_path<'a>(doc: &'a Value, parts: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn remove_path(doc: &mut Value, parts: &[String]) -> Result<Value, String> {
    let (last, parent) = parts
        .split_last()
        .ok_or("cannot remove the whole document")?;
    let container = get_path_mut(doc, parent)?;
    match container {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("unable to remove nonexistent key: {last}: missing value")),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if i >= a.len() {
                return Err(format!(
                    "unable to remove item at index {i}: index out of range"
                ));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("cannot remove {last:?} from a scalar")),
    }
}

fn get_path_mut<'a>(doc: &'a mut Value, parts: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(p)
                .ok_or_else(|| format!("doc is missing path: {p}"))?,
            Value::Array(a) => {
                let i: usize = p
                    .parse()
                    .map_err(|_| format!("invalid array index {p:?}"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => return Err(format!("doc is missing path: {p}")),
        };
    }
    Ok(cur)
}

fn add_path(doc: &mut Value, parts: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    let container =
        get_path_mut(doc, parent).map_err(|e| format!("add operation does not apply: {e}"))?;
    match container {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if i > a.len() {
                return Err(format!(
                    "add operation does not apply: index {i} out of range"
                ));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err("add operation does not apply: parent is not a container".into()),
    }
}

/// RFC 6902.
pub fn json_patch(doc: &Value, ops: &[Value]) -> Result<Value, String> {
    let mut doc = doc.clone();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("missing operation: op")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("operation {kind:?} is missing path"))?;
        let parts = pointer_parts(path)?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("operation {kind:?} is missing value"))
        };
        let from = || -> Result<Vec<String>, String> {
            pointer_parts(
                op.get("from")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("operation {kind:?} is missing from"))?,
            )
        };
        match kind {
            "add" => add_path(&mut doc, &parts, value()?)?,
            "remove" => {
                remove_path(&mut doc, &parts)?;
            }
            "replace" => {
                let v = value()?;
                let target = get_path_mut(&mut doc, &parts)
                    .map_err(|_| format!("replace operation does not apply: doc is missing key: {path}: missing value"))?;
                *target = v;
            }
            "move" => {
                let f = from()?;
                if parts.starts_with(&f) && parts.len() > f.len() {
                    return Err(
                        "move operation cannot move a value into one of its children".into(),
                    );
                }
                let v = remove_path(&mut doc, &f)?;
                add_path(&mut doc, &parts, v)?;
            }
            "copy" => {
                let v = get_path(&doc, &from()?)
                    .cloned()
                    .ok_or("copy operation does not apply: from is missing")?;
                add_path(&mut doc, &parts, v)?;
            }
            "test" => {
                let want = value()?;
                if get_path(&doc, &parts) != Some(&want) {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("unexpected kind of operation: {other}")),
        }
    }
    Ok(doc)
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Strategic merge of patch map `p` into `o`, guided by the schema node (None: plain merge).
fn strategic_merge_map(
    schema: &Schema,
    node: Option<&Value>,
    o: &mut Map<String, Value>,
    p: &Map<String, Value>,
) -> Result<(), String> {
    match p.get(DIRECTIVE).and_then(Value::as_str) {
        Some("replace") => {
            *o = p
                .iter()
                .filter(|(k, _)| *k != DIRECTIVE)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            return Ok(());
        }
        Some("delete") => {
            o.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other} in map: {p:?}")),
    }
    for (k, v) in p {
        if k == DIRECTIVE || k == RETAIN_KEYS || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE) {
            let remove = v
                .as_array()
                .ok_or("$deleteFromPrimitiveList must be a list")?;
            if let Some(Value::Array(list)) = o.get_mut(field) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if v.is_null() {
            o.remove(k);
            continue;
        }
        let field_schema = node.and_then(|n| schema.property(n, k));
        match (o.get_mut(k), v) {
            (Some(Value::Object(orig)), Value::Object(pm)) => {
                strategic_merge_map(schema, field_schema, orig, pm)?;
            }
            (_, Value::Object(pm)) => {
                let mut fresh = Map::new();
                strategic_merge_map(schema, field_schema, &mut fresh, pm)?;
                // A `$patch: delete` of an absent map leaves nothing behind.
                if pm.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                    o.insert(k.clone(), Value::Object(fresh));
                }
            }
            (orig, Value::Array(items)) => {
                let strategy = field_schema
                    .map(|f| patch_strategy(schema, f).0)
                    .unwrap_or(ListStrategy::Replace);
                let item_schema = field_schema.and_then(|f| schema.items(f));
                let original = match orig {
                    Some(Value::Array(a)) => std::mem::take(a),
                    _ => Vec::new(),
                };
                let server_order = match strategy {
                    ListStrategy::Replace => Vec::new(),
                    _ => original.clone(),
                };
                let mut merged = merge_list(schema, item_schema, &strategy, original, items)?;
                if !matches!(strategy, ListStrategy::Replace) {
                    let order = match p.get(&format!("{SET_ELEMENT_ORDER}{k}")) {
                        Some(Value::Array(order)) => order.as_slice(),
                        _ => items.as_slice(),
                    };
                    merged = normalize_order(&strategy, merged, order, &server_order);
                }
                o.insert(k.clone(), Value::Array(merged));
            }
            (_, v) => {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    // Lists named only in `$setElementOrder` (all items from the original) are reordered too.
    for (k, order) in p {
        if let (Some(field), Value::Array(order)) = (k.strip_prefix(SET_ELEMENT_ORDER), order) {
            if p.contains_key(field) {
                continue;
            }
            let strategy = node
                .and_then(|n| schema.property(n, field))
                .map(|f| patch_strategy(schema, f).0)
                .unwrap_or(ListStrategy::Replace);
            if let Some(Value::Array(list)) = o.get_mut(field) {
                let taken = std::mem::take(list);
                let server_order = taken.clone();
                *list = normalize_order(&strategy, taken, order, &server_order);
            }
        }
    }
    if let Some(Value::Array(keep)) = p.get(RETAIN_KEYS) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        o.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list(
    schema: &Schema,
    item_schema: Option<&Value>,
    strategy: &ListStrategy,
    original: Vec<Value>,
    patch: &[Value],
) -> Result<Vec<Value>, String> {
    // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
    if patch
        .iter()
        .any(|i| i.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|i| i.get(DIRECTIVE).is_none())
            .cloned()
            .collect());
    }
    match strategy {
        ListStrategy::Replace => Ok(patch.to_vec()),
        ListStrategy::MergePrimitives => {
            let mut out = original;
            for item in patch {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(out)
        }
        ListStrategy::MergeByKey(key) => {
            let mut out = original;
            for item in patch {
                let Value::Object(pm) = item else {
                    return Err(format!(
                        "expected a map in the list merged by key {key:?}, got {item}"
                    ));
                };
                let Some(kv) = pm.get(key) else {
                    return Err(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ));
                };
                let pos = out.iter().position(|o| o.get(key) == Some(kv));
                match (pm.get(DIRECTIVE).and_then(Value::as_str), pos) {
                    (Some("delete"), Some(i)) => {
                        out.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => {
                        if let Value::Object(orig) = &mut out[i] {
                            strategic_merge_map(schema, item_schema, orig, pm)?;
                        }
                    }
                    (_, None) => {
                        let mut fresh = Map::new();
                        strategic_merge_map(schema, item_schema, &mut fresh, pm)?;
                        out.push(Value::Object(fresh));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// The order of a merged list, as Kubernetes' strategic merge gives it: the items the patch names
/// (in `order`: its `$setElementOrder` list, else the patch list itself) keep the patch's order;
/// the items only the server had keep theirs, and are slotted in before the first patch item
/// they preceded in `server_order` (the list before the patch). An item new to the list therefore
/// comes before the server's remaining items, as kube-apiserver places it.
fn normalize_order(
    strategy: &ListStrategy,
    merged: Vec<Value>,
    order: &[Value],
    server_order: &[Value],
) -> Vec<Value> {
    let same = |a: &Value, b: &Value| match strategy {
        ListStrategy::MergeByKey(k) => a.get(k).is_some() && a.get(k) == b.get(k),
        _ => a == b,
    };
    let index = |list: &[Value], item: &Value| list.iter().position(|x| same(x, item));
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|i| index(order, i).is_some());
    patch_items.sort_by_key(|i| index(order, i));
    server_only.sort_by_key(|i| index(server_order, i).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index(server_order, l), index(server_order, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7396_examples() {
        // The examples of RFC 7396 appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn json_patch_rfc6902_examples() {
        let cases: Vec<(Value, Value, Result<Value, ()>)> = vec![
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux"}]),
                Ok(json!({"foo":"bar","baz":"qux"})),
            ),
            (
                json!({"foo":["bar","baz"]}),
                json!([{"op":"add","path":"/foo/1","value":"qux"}]),
                Ok(json!({"foo":["bar","qux","baz"]})),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"remove","path":"/baz"}]),
                Ok(json!({"foo":"bar"})),
            ),
            (
                json!({"foo":["bar","qux","baz"]}),
                json!([{"op":"remove","path":"/foo/1"}]),
                Ok(json!({"foo":["bar","baz"]})),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"replace","path":"/baz","value":"boo"}]),
                Ok(json!({"baz":"boo","foo":"bar"})),
            ),
            (
                json!({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}),
                json!([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]),
                Ok(json!({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})),
            ),
            (
                json!({"foo":["all","grass","cows","eat"]}),
                json!([{"op":"move","from":"/foo/1","path":"/foo/3"}]),
                Ok(json!({"foo":["all","cows","eat","grass"]})),
            ),
            (
                json!({"baz":"qux","foo":["a",2,"c"]}),
                json!([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]),
                Ok(json!({"baz":"qux","foo":["a",2,"c"]})),
            ),
            (
                json!({"baz":"qux"}),
                json!([{"op":"test","path":"/baz","value":"bar"}]),
                Err(()),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/child","value":{"grandchild":{}}}]),
                Ok(json!({"foo":"bar","child":{"grandchild":{}}})),
            ),
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz/bat","value":"qux"}]),
                Err(()),
            ),
            (
                json!({"/":9,"~1":10}),
                json!([{"op":"test","path":"/~01","value":10}]),
                Ok(json!({"/":9,"~1":10})),
            ),
            (
                json!({"foo":["bar"]}),
                json!([{"op":"add","path":"/foo/-","value":["abc","def"]}]),
                Ok(json!({"foo":["bar",["abc","def"]]})),
            ),
            (
                json!({"a":1}),
                json!([{"op":"remove","path":"/b"}]),
                Err(()),
            ),
            (json!({"a":1}), json!([{"op":"frob","path":"/a"}]), Err(())),
        ];
        for (doc, ops, want) in cases {
            let got = json_patch(&doc, ops.as_array().unwrap());
            match want {
                Ok(w) => assert_eq!(got.unwrap(), w, "{doc} {ops}"),
                Err(()) => assert!(got.is_err(), "{doc} {ops} gave {got:?}"),
            }
        }
    }

    fn smp(def: &str, current: Value, patch: Value) -> Value {
        let s = Schema::builtin();
        apply(
            &s,
            Some(def),
            PatchKind::Strategic,
            &current,
            patch.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn strategic_merge_uses_kubernetes_merge_keys() {
        let dep = "io.k8s.api.apps.v1.Deployment";
        let current = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80}], "args": ["x", "y"]},
            {"name": "b", "image": "b:1"}]}}}});
        // containers merge by name, env by name, ports by containerPort; args are replaced. An
        // item new to a merged list comes before the server's items, as kube-apiserver puts it.
        let got = smp(
            dep,
            current.clone(),
            json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}], "ports": [{"containerPort": 81}], "args": ["z"]}]}}}}),
        );
        let a = &got["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(a["image"], "a:2");
        assert_eq!(
            a["env"],
            json!([{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}])
        );
        assert_eq!(
            a["ports"],
            json!([{"containerPort": 81}, {"containerPort": 80}])
        );
        assert_eq!(a["args"], json!(["z"]));
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"][1]["name"],
            "b"
        );

        // $patch: delete removes an element by key; null removes a field.
        let got = smp(
            dep,
            current.clone(),
            json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "$patch": "delete"}, {"name": "a", "args": null}]}}}}),
        );
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80}]}])
        );

        // $setElementOrder reorders; $patch: replace on a map replaces it.
        let got = smp(
            dep,
            current.clone(),
            json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}),
        );
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"][0]["name"],
            "b"
        );
        let got = smp(
            dep,
            current,
            json!({"spec": {"template": {"$patch": "replace", "spec": {"containers": []}}}}),
        );
        assert_eq!(got["spec"]["template"], json!({"spec": {"containers": []}}));
    }

    #[test]
    fn strategic_merge_directives_for_primitives_and_retained_keys() {
        let cm = "io.k8s.api.core.v1.ConfigMap";
        let got = smp(
            cm,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c"]}}),
        );
        assert_eq!(
            got["metadata"]["finalizers"],
            json!(["c", "a", "b"]),
            "finalizers merge as a set, new ones first"
        );
        // Items the patch names keep its order; the server's others keep their place.
        let got = smp(
            cm,
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"finalizers": ["c", "d", "a"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["b", "c", "d", "a"]));
        let got = smp(
            cm,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["b"]));
        let dep = "io.k8s.api.apps.v1.Deployment";
        let got = smp(
            dep,
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
        let err = apply(
            &Schema::builtin(),
            Some(dep),
            PatchKind::Strategic,
            &json!({}),
            br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("does not contain declared merge key: name"),
            "{}",
            err.message
        );
    }

    #[test]
    fn patch_types_by_content_type() {
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml").unwrap(),
            PatchKind::Apply
        );
        assert_eq!(
            PatchKind::from_content_type("text/plain").unwrap_err().code,
            415
        );
        let e = apply(
            &Schema::builtin(),
            None,
            PatchKind::Strategic,
            &json!({}),
            b"{}",
        )
        .unwrap_err();
        assert_eq!(e.code, 415);
    }
}
