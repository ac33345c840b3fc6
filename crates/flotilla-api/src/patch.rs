//! JSON patch (RFC 6902) and JSON merge patch (RFC 7396) over JSON values, with errors worded
//! as kube-apiserver's patch library (evanphx/json-patch) words them. Used by the API server
//! for PATCH requests and by placement overrides (`jsonPatchOverrides`).

use serde_json::{Map, Value};

/// RFC 7396. Copies only what the patch leaves as it is; the patch's values are moved in.
pub fn merge_patch(target: &Value, patch: Value) -> Value {
    let Value::Object(mut p) = patch else {
        return patch;
    };
    let mut out = Map::new();
    if let Value::Object(t) = target {
        for (k, v) in t {
            match p.remove(k) {
                None => {
                    out.insert(k.clone(), v.clone());
                }
                Some(Value::Null) => {}
                Some(pv) => {
                    out.insert(k.clone(), merge_patch(v, pv));
                }
            }
        }
    }
    for (k, pv) in p {
        if !pv.is_null() {
            let merged = merge_patch(&Value::Null, pv);
            out.insert(k, merged);
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
                // As kube-apiserver's json-patch tests: a missing member of an existing object
                // equals null; under a missing parent the operation does not apply.
                let want = value()?;
                let parent = parts
                    .split_last()
                    .map_or(Some(&doc), |(_, p)| get_path(&doc, p));
                if parent.is_none() {
                    return Err(format!(
                        "test operation does not apply: is nil for path: {path}: missing value"
                    ));
                }
                let found = get_path(&doc, &parts).unwrap_or(&Value::Null);
                if *found != want {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("unexpected kind of operation: {other}")),
        }
    }
    Ok(doc)
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
            assert_eq!(
                merge_patch(&target, patch.clone()),
                want,
                "{target} + {patch}"
            );
        }
    }

    #[test]
    fn a_move_into_its_own_child_says_so() {
        let doc = json!({"a": {"x": 1}});
        let ops = [json!({"op": "move", "from": "/a", "path": "/a/y"})];
        assert_eq!(
            json_patch(&doc, &ops).unwrap_err(),
            "move operation cannot move a value into one of its children"
        );
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
            // A move into the value's own child is refused; onto itself, or into a sibling's
            // child, it is not.
            (
                json!({"a": {"x": 1}, "b": {}}),
                json!([{"op":"move","from":"/a","path":"/a/y"}]),
                Err(()),
            ),
            (
                json!({"a": {"x": 1}}),
                json!([{"op":"move","from":"/a","path":"/a"}]),
                Ok(json!({"a": {"x": 1}})),
            ),
            (
                json!({"a": 1, "b": {}}),
                json!([{"op":"move","from":"/a","path":"/b/c"}]),
                Ok(json!({"b": {"c": 1}})),
            ),
            // A missing member tests equal to null (kube-apiserver's json-patch), which is how
            // kube-runtime's finalizer helper adds the first finalizer; not to a value.
            (
                json!({"metadata": {}}),
                json!([{"op":"test","path":"/metadata/finalizers","value":null},
                    {"op":"add","path":"/metadata/finalizers","value":["f"]}]),
                Ok(json!({"metadata": {"finalizers": ["f"]}})),
            ),
            (
                json!({"metadata": {}}),
                json!([{"op":"test","path":"/metadata/finalizers","value":["f"]}]),
                Err(()),
            ),
            (
                json!({"metadata": {}}),
                json!([{"op":"test","path":"/spec/x","value":null}]),
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
}
