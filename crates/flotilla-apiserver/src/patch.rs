//! Patch engines: JSON patch (RFC 6902), JSON merge patch (RFC 7396) and strategic merge
//! patch, whose list strategies and merge keys come from Kubernetes' own OpenAPI metadata.

use flotilla_api::patch::{json_patch, merge_patch};
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
            Ok(merge_patch(current, patch))
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
