//! Field sets and the schema-driven operations of server-side apply, with the semantics of
//! Kubernetes' structured-merge-diff: which fields an object sets, how two objects differ, how
//! an applied configuration merges into a live object, and how fields are removed.
//!
//! Shapes come from the schema: `x-kubernetes-list-type` (atomic, set, map with
//! `x-kubernetes-list-map-keys`) and `x-kubernetes-map-type` (atomic, granular), from
//! Kubernetes' own definitions for built-in kinds and from CRD schemas for custom resources.
//! Lists without a list type are atomic; maps and structs are granular unless marked atomic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::schema::Schema;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// An item of a map-type list, by its key fields (canonical JSON object): `k:{...}`.
    Key(String),
    /// An item of a set-type list, by value (canonical JSON): `v:...`.
    Value(String),
    /// An item of a list by position: `i:N`.
    Index(usize),
}

impl PathElement {
    /// The FieldsV1 key of the element.
    pub fn to_key(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        let (prefix, rest) = s.split_once(':')?;
        Some(match prefix {
            "f" => PathElement::Field(rest.to_string()),
            "k" => PathElement::Key(canonical(&serde_json::from_str(rest).ok()?)),
            "v" => PathElement::Value(canonical(&serde_json::from_str(rest).ok()?)),
            "i" => PathElement::Index(rest.parse().ok()?),
            _ => return None,
        })
    }

    /// The element as structured-merge-diff prints it in paths (`.name`, `[name="c"]`).
    pub fn display(&self) -> String {
        match self {
            PathElement::Field(f) => format!(".{f}"),
            PathElement::Key(k) => {
                let v: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = v
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

/// JSON with object keys sorted (serde_json keeps insertion order here).
pub fn canonical(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                let mut out = Map::new();
                for (k, v) in sorted {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// A set of field paths, as a tree: `members` are paths that end here, `children` continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

/// A full path.
pub type Path = Vec<PathElement>;

/// Prints a path as structured-merge-diff does (`.spec.containers[name="c"].image`).
pub fn display(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

impl Set {
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Adds a path.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the set holds `path`.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether the set holds `path` or anything below it.
    pub fn has_prefix(&self, path: &[PathElement]) -> bool {
        match path {
            [] => !self.is_empty(),
            [last] => {
                self.members.contains(last)
                    || self.children.get(last).is_some_and(|c| !c.is_empty())
            }
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has_prefix(rest)),
        }
    }

    /// Every path in the set, in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let keys: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for k in keys {
            prefix.push(k.clone());
            if self.members.contains(k) {
                out.push(prefix.clone());
            }
            if let Some(c) = self.children.get(k) {
                c.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The union of two sets.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        for p in other.paths() {
            out.insert(&p);
        }
        out
    }

    /// The paths of `self` not in `other`.
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set::default();
        for p in self.paths() {
            if !other.contains(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set::default();
        for p in self.paths() {
            if other.contains(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// The FieldsV1 encoding.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let keys: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for k in keys {
            let mut v = Map::new();
            let child = self.children.get(k).filter(|c| !c.is_empty());
            // kube-apiserver writes "." (the element itself is owned) first.
            if self.members.contains(k) && child.is_some() {
                v.insert(".".into(), json!({}));
            }
            if let Some(Value::Object(c)) = child.map(Set::to_fields_v1) {
                v.extend(c);
            }
            out.insert(k.to_key(), Value::Object(v));
        }
        Value::Object(out)
    }

    /// Decodes FieldsV1.
    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let mut out = Set::default();
        let obj = v.as_object().ok_or("fieldsV1 must be an object")?;
        for (k, child) in obj {
            if k == "." {
                continue;
            }
            let pe = PathElement::parse(k).ok_or_else(|| format!("invalid fieldsV1 key {k:?}"))?;
            let c = child
                .as_object()
                .ok_or("fieldsV1 entries must be objects")?;
            if c.is_empty() || c.contains_key(".") {
                out.members.insert(pe.clone());
            }
            if c.keys().any(|k| k != ".") {
                out.children.insert(pe, Set::from_fields_v1(child)?);
            }
        }
        Ok(out)
    }
}

/// How a schema node behaves under apply.
#[derive(Debug, Clone)]
pub enum Shape<'a> {
    /// A scalar or anything compared as a whole.
    Atomic,
    /// A struct with known fields.
    Struct(&'a Value),
    /// A map whose values have the given schema (or are deduced).
    Map(Option<&'a Value>),
    /// A list merged by key fields.
    MapList(Option<&'a Value>, Vec<String>),
    /// A list merged as a set of values.
    SetList,
    /// Shape deduced from the value (unknown or preserved fields).
    Deduced,
}

/// Resolves the shape of a schema node (built-in definitions resolve `$ref`s).
pub fn shape<'a>(schema: &'a Schema, node: Option<&'a Value>) -> Shape<'a> {
    let Some(node) = node else {
        return Shape::Deduced;
    };
    let node = schema.resolve(node);
    if node.get("x-kubernetes-int-or-string") == Some(&json!(true))
        || node.get("format").and_then(Value::as_str) == Some("int-or-string")
    {
        return Shape::Atomic;
    }
    match node.get("type").and_then(Value::as_str) {
        Some("array") => match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys = node["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect();
                Shape::MapList(node.get("items").map(|i| schema.resolve(i)), keys)
            }
            Some("set") => Shape::SetList,
            _ => Shape::Atomic,
        },
        Some("object") | None => {
            if node.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                return Shape::Atomic;
            }
            if node.get("properties").is_some() {
                Shape::Struct(node)
            } else if let Some(a) = node.get("additionalProperties").filter(|a| a.is_object()) {
                Shape::Map(Some(a))
            } else if node.get("type").is_some()
                || node.get("x-kubernetes-preserve-unknown-fields").is_some()
            {
                Shape::Map(None)
            } else {
                Shape::Deduced
            }
        }
        Some(_) => Shape::Atomic,
    }
}

/// The schema of field `k` of a struct node, or of a map's values.
fn child<'a>(schema: &'a Schema, shape: &Shape<'a>, k: &str) -> Option<&'a Value> {
    match shape {
        Shape::Struct(n) => n
            .get("properties")
            .and_then(|p| p.get(k))
            .or_else(|| n.get("additionalProperties").filter(|a| a.is_object())),
        Shape::Map(v) => *v,
        _ => None,
    }
    .map(|n| schema.resolve(n))
}

/// The element of a list item under a list shape.
fn item_element(shape: &Shape<'_>, item: &Value, index: usize) -> PathElement {
    match shape {
        Shape::MapList(items, keys) if !keys.is_empty() => {
            let mut m = Map::new();
            for k in keys {
                // A missing key field takes its schema default (ports' protocol is TCP).
                let default = items.and_then(|n| n.pointer(&format!("/properties/{k}/default")));
                if let Some(v) = item.get(k).or(default) {
                    m.insert(k.clone(), v.clone());
                }
            }
            PathElement::Key(canonical(&Value::Object(m)))
        }
        Shape::SetList => PathElement::Value(canonical(item)),
        _ => PathElement::Index(index),
    }
}

/// The set of fields `value` sets (structured-merge-diff's ToFieldSet).
pub fn field_set(schema: &Schema, node: Option<&Value>, value: &Value) -> Set {
    let mut set = Set::default();
    walk_set(
        schema,
        shape(schema, node),
        value,
        &mut Vec::new(),
        &mut set,
    );
    set
}

fn walk_set<'a>(schema: &'a Schema, sh: Shape<'a>, value: &Value, path: &mut Path, set: &mut Set) {
    walk(schema, sh, value, path, set, &mut None);
}

/// The value at each path of a field set (the first, should a list repeat a key).
type Values<'v> = std::collections::HashMap<Path, &'v Value>;

/// [`walk_set`], also recording in `values` the value at each path added.
fn walk<'a, 'v>(
    schema: &'a Schema,
    sh: Shape<'a>,
    value: &'v Value,
    path: &mut Path,
    set: &mut Set,
    values: &mut Option<&mut Values<'v>>,
) {
    fn add<'v>(path: &Path, set: &mut Set, v: &'v Value, values: &mut Option<&mut Values<'v>>) {
        set.insert(path);
        if let Some(values) = values.as_deref_mut() {
            values.entry(path.clone()).or_insert(v);
        }
    }
    let sh = match (&sh, value) {
        (Shape::Deduced, Value::Object(_)) => Shape::Map(None),
        (Shape::Deduced, _) => Shape::Atomic,
        _ => sh,
    };
    match (&sh, value) {
        (Shape::Struct(_) | Shape::Map(_), Value::Object(m)) => {
            for (k, v) in m {
                path.push(PathElement::Field(k.clone()));
                let known = matches!(&sh, Shape::Struct(n) if n.get("properties").and_then(|p| p.get(k)).is_some());
                let empty = v.is_null() || v.as_object().is_some_and(|o| o.is_empty());
                if empty || !known {
                    add(path, set, v, values);
                }
                walk(
                    schema,
                    shape(schema, child(schema, &sh, k)),
                    v,
                    path,
                    set,
                    values,
                );
                path.pop();
            }
        }
        (Shape::MapList(items, _), Value::Array(a)) => {
            for (i, item) in a.iter().enumerate() {
                path.push(item_element(&sh, item, i));
                add(path, set, item, values);
                walk(schema, shape(schema, *items), item, path, set, values);
                path.pop();
            }
        }
        (Shape::SetList, Value::Array(a)) => {
            for (i, item) in a.iter().enumerate() {
                path.push(item_element(&sh, item, i));
                add(path, set, item, values);
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                add(path, set, value, values);
            }
        }
    }
}

/// The fields of `value` its schema does not declare, as structured-merge-diff's typed
/// conversion finds them ("field not declared in schema"): struct fields that are neither
/// properties nor allowed by `additionalProperties` or `x-kubernetes-preserve-unknown-fields`.
/// An object's `apiVersion`, `kind` and `metadata` are always declared at the root and in
/// embedded resources.
pub fn undeclared(schema: &Schema, node: Option<&Value>, value: &Value) -> Vec<Path> {
    fn go(
        schema: &Schema,
        node: Option<&Value>,
        value: &Value,
        root: bool,
        path: &mut Path,
        out: &mut Vec<Path>,
    ) {
        let Some(node) = node.map(|n| schema.resolve(n)) else {
            return;
        };
        let flag = |f: &str| node.get(f) == Some(&json!(true));
        if flag("x-kubernetes-int-or-string") {
            return;
        }
        match value {
            Value::Object(m) => {
                let props = node.get("properties").and_then(Value::as_object);
                let additional = node.get("additionalProperties").filter(|a| a.is_object());
                let open = flag("x-kubernetes-preserve-unknown-fields")
                    || node.get("additionalProperties") == Some(&json!(true));
                if props.is_none() && additional.is_none() {
                    // Free-form (RawExtension, JSON, preserved): anything goes.
                    return;
                }
                let typemeta = root || flag("x-kubernetes-embedded-resource");
                for (k, v) in m {
                    path.push(PathElement::Field(k.clone()));
                    match props.and_then(|p| p.get(k)).or(additional) {
                        Some(child) => go(schema, Some(child), v, false, path, out),
                        None if open
                            || (typemeta
                                && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")) => {}
                        None => out.push(path.clone()),
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                let sh = shape(schema, Some(node));
                let item_node = node.get("items");
                for (i, item) in items.iter().enumerate() {
                    path.push(item_element(&sh, item, i));
                    go(schema, item_node, item, false, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    go(schema, node, value, true, &mut Vec::new(), &mut out);
    out
}

/// The value at `path` in `value` (tests compare against it).
#[cfg(test)]
pub fn get<'v>(
    schema: &Schema,
    node: Option<&Value>,
    value: &'v Value,
    path: &[PathElement],
) -> Option<&'v Value> {
    let mut cur = value;
    let mut sh = shape(schema, node);
    for pe in path {
        let sh_now = match (&sh, cur) {
            (Shape::Deduced, Value::Object(_)) => Shape::Map(None),
            _ => sh.clone(),
        };
        let (next, next_shape) = match (pe, cur) {
            (PathElement::Field(k), Value::Object(m)) => {
                (m.get(k)?, shape(schema, child(schema, &sh_now, k)))
            }
            (
                PathElement::Key(_) | PathElement::Value(_) | PathElement::Index(_),
                Value::Array(a),
            ) => {
                let items = match &sh_now {
                    Shape::MapList(items, _) => *items,
                    _ => None,
                };
                let found = a
                    .iter()
                    .enumerate()
                    .find(|(i, item)| &item_element(&sh_now, item, *i) == pe)?;
                (found.1, shape(schema, items))
            }
            _ => return None,
        };
        cur = next;
        sh = next_shape;
    }
    Some(cur)
}

/// What changed between two objects (structured-merge-diff's Compare).
#[derive(Debug, Default)]
pub struct Comparison {
    /// Paths only in the new object.
    pub added: Set,
    /// Paths only in the old object.
    pub removed: Set,
    /// Paths in both whose values differ.
    pub modified: Set,
}

/// Compares `old` with `new`. Subtrees that are equal in both are skipped without computing
/// their field sets (a heartbeat changes a few fields of a large status), so the cost follows
/// the size of the change, not of the object; lists are compared whole.
pub fn compare(schema: &Schema, node: Option<&Value>, old: &Value, new: &Value) -> Comparison {
    let mut out = Comparison::default();
    compare_at(schema, node, old, new, &mut Vec::new(), &mut out);
    out
}

/// The paths strictly below `path` that changed between `old` and `new` (the members at
/// `path` itself are decided by the caller, which knows whether the key is marked).
fn compare_at(
    schema: &Schema,
    node: Option<&Value>,
    old: &Value,
    new: &Value,
    path: &mut Path,
    out: &mut Comparison,
) {
    if old == new {
        return;
    }
    let sh = shape(schema, node);
    let map_like = |v: &Value| {
        matches!(
            (&sh, v),
            (
                Shape::Struct(_) | Shape::Map(_) | Shape::Deduced,
                Value::Object(_)
            )
        )
    };
    if !(map_like(old) && map_like(new)) {
        // Lists, scalars and type changes: whole field sets for this subtree.
        // One walk each records every path with its value: no lookup per path (a lookup
        // scans a list's items, making lists quadratic).
        let (mut fo, mut fnew) = (Set::default(), Set::default());
        let (mut vo, mut vn) = (Values::new(), Values::new());
        let sh_node = shape(schema, node);
        walk(
            schema,
            sh_node.clone(),
            old,
            &mut path.clone(),
            &mut fo,
            &mut Some(&mut vo),
        );
        walk(
            schema,
            sh_node,
            new,
            &mut path.clone(),
            &mut fnew,
            &mut Some(&mut vn),
        );
        let below = |p: &Path| p.len() > path.len();
        for p in fo.intersection(&fnew).paths().into_iter().filter(below) {
            let (a, b) = (vo.get(&p).copied(), vn.get(&p).copied());
            let leafy = |v: Option<&Value>| !matches!(v, Some(Value::Object(o)) if !o.is_empty());
            if a != b && leafy(a) && leafy(b) && !fnew.children_below(&p) {
                out.modified.insert(&p);
            }
        }
        for p in fnew.difference(&fo).paths().into_iter().filter(below) {
            out.added.insert(&p);
        }
        for p in fo.difference(&fnew).paths().into_iter().filter(below) {
            out.removed.insert(&p);
        }
        return;
    }
    let sh = match sh {
        Shape::Deduced => Shape::Map(None),
        other => other,
    };
    let (o, n) = (old.as_object().expect("map"), new.as_object().expect("map"));
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    for k in keys {
        let (a, b) = (o.get(k.as_str()), n.get(k.as_str()));
        if a == b {
            continue;
        }
        path.push(PathElement::Field(k.clone()));
        let child_node = child(schema, &sh, k);
        let child_shape = shape(schema, child_node);
        let known = matches!(&sh, Shape::Struct(nd) if nd.get("properties").and_then(|p| p.get(k.as_str())).is_some());
        // Whether a side's set holds this path itself: `walk_set` marks empty and unknown
        // fields, and a leaf inserts its own path.
        let own = |v: Option<&Value>| {
            v.is_some_and(|v| {
                let empty = v.is_null() || v.as_object().is_some_and(|o| o.is_empty());
                let leaf = !matches!(
                    (&child_shape, v),
                    (
                        Shape::Struct(_) | Shape::Map(_) | Shape::Deduced,
                        Value::Object(_)
                    ) | (Shape::MapList(..) | Shape::SetList, Value::Array(_))
                );
                empty || !known || leaf
            })
        };
        match (own(a), own(b)) {
            (false, true) => out.added.insert(path),
            (true, false) => out.removed.insert(path),
            (true, true) => {
                let leafy = |v: &Value| !matches!(v, Value::Object(o) if !o.is_empty());
                let (a, b) = (a.expect("own"), b.expect("own"));
                if leafy(a) && leafy(b) && field_set(schema, child_node, b).is_empty() {
                    out.modified.insert(path);
                }
            }
            (false, false) => {}
        }
        match (a, b) {
            (Some(a), Some(b)) => compare_at(schema, child_node, a, b, path, out),
            (None, Some(b)) => walk_set(schema, shape(schema, child_node), b, path, &mut out.added),
            (Some(a), None) => {
                walk_set(schema, shape(schema, child_node), a, path, &mut out.removed)
            }
            (None, None) => {}
        }
        path.pop();
    }
}

/// [`compare`] by whole field sets (structured-merge-diff's definition); the reference the
/// pruned comparison is tested against.
#[cfg(test)]
fn compare_whole(schema: &Schema, node: Option<&Value>, old: &Value, new: &Value) -> Comparison {
    let (fo, fnew) = (field_set(schema, node, old), field_set(schema, node, new));
    let mut modified = Set::default();
    for p in fo.intersection(&fnew).paths() {
        let (a, b) = (get(schema, node, old, &p), get(schema, node, new, &p));
        let leafy = |v: Option<&Value>| !matches!(v, Some(Value::Object(o)) if !o.is_empty());
        if a != b && leafy(a) && leafy(b) && !fnew.children_below(&p) {
            modified.insert(&p);
        }
    }
    Comparison {
        added: fnew.difference(&fo),
        removed: fo.difference(&fnew),
        modified,
    }
}

impl Set {
    /// Whether paths continue below `path` (it is an inner node, not only a leaf).
    fn children_below(&self, path: &[PathElement]) -> bool {
        match path {
            [] => !self.children.is_empty(),
            [last] => self.children.get(last).is_some_and(|c| !c.is_empty()),
            [first, rest @ ..] => self
                .children
                .get(first)
                .is_some_and(|c| c.children_below(rest)),
        }
    }
}

/// Merges an applied configuration into a live object (structured-merge-diff's Merge).
pub fn merge(schema: &Schema, node: Option<&Value>, live: &Value, config: &Value) -> Value {
    let sh = shape(schema, node);
    let sh = match (&sh, config) {
        (Shape::Deduced, Value::Object(_)) => Shape::Map(None),
        (Shape::Deduced, _) => Shape::Atomic,
        _ => sh,
    };
    match (&sh, live, config) {
        (Shape::Struct(_) | Shape::Map(_), Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                let merged = match out.get(k) {
                    Some(lv) => merge(schema, child(schema, &sh, k), lv, cv),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Shape::MapList(items, _), Value::Array(l), Value::Array(c)) => {
            let key = |v: &Value, i: usize| item_element(&sh, v, i);
            let mut out: Vec<Value> = Vec::new();
            let config_keys: Vec<PathElement> =
                c.iter().enumerate().map(|(i, v)| key(v, i)).collect();
            for (i, lv) in l.iter().enumerate() {
                let k = key(lv, i);
                match config_keys.iter().position(|ck| *ck == k) {
                    Some(j) => out.push(merge(schema, *items, lv, &c[j])),
                    None => out.push(lv.clone()),
                }
            }
            let live_keys: Vec<PathElement> =
                l.iter().enumerate().map(|(i, v)| key(v, i)).collect();
            for (j, cv) in c.iter().enumerate() {
                if !live_keys.contains(&config_keys[j]) {
                    out.push(cv.clone());
                }
            }
            Value::Array(out)
        }
        (Shape::SetList, Value::Array(l), Value::Array(c)) => {
            let mut out = l.clone();
            for v in c {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// Removes the fields and items at `paths` from `value`.
pub fn remove(schema: &Schema, node: Option<&Value>, value: &mut Value, path: &[PathElement]) {
    let sh = shape(schema, node);
    let sh = match (&sh, &*value) {
        (Shape::Deduced, Value::Object(_)) => Shape::Map(None),
        _ => sh,
    };
    match (path, value) {
        ([PathElement::Field(k)], Value::Object(m)) => {
            m.remove(k);
        }
        ([PathElement::Field(k), rest @ ..], Value::Object(m)) => {
            let c = child(schema, &sh, k);
            if let Some(v) = m.get_mut(k) {
                remove(schema, c, v, rest);
            }
        }
        ([pe], Value::Array(a)) => {
            let mut i = 0;
            a.retain(|item| {
                let keep = item_element(&sh, item, i) != *pe;
                i += 1;
                keep
            });
        }
        ([pe, rest @ ..], Value::Array(a)) => {
            let items = match &sh {
                Shape::MapList(items, _) => *items,
                _ => None,
            };
            // An item's key fields go only with the item itself.
            if let (Shape::MapList(_, keys), [PathElement::Field(f)]) = (&sh, rest) {
                if keys.contains(f) {
                    return;
                }
            }
            let sh2 = sh.clone();
            for (i, item) in a.iter_mut().enumerate() {
                if item_element(&sh2, item, i) == *pe {
                    remove(schema, items, item, rest);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> (std::sync::Arc<Schema>, Value) {
        let s = Schema::builtin();
        let node = s
            .definition("io.k8s.api.apps.v1.Deployment")
            .unwrap()
            .clone();
        (s, node)
    }

    #[test]
    fn pruned_compare_equals_the_whole_comparison() {
        let s = crate::schema::Schema::builtin();
        let node = s.definition("io.k8s.api.apps.v1.Deployment").cloned();
        let base = json!({"metadata": {"name": "d", "labels": {"a": "1"}, "annotations": {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}}},
            "status": {"conditions": [{"type": "Available", "status": "True"}]}, "x-unknown": {"k": 1}});
        let variants = [
            json!({"metadata": {"name": "d", "labels": {"a": "2", "b": "3"}, "annotations": null},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "c", "image": "j"}, {"name": "d", "image": "i"}]}}},
                "status": {}, "x-unknown": {"k": 2, "l": {}}}),
            json!({"metadata": {"name": "d"}, "spec": {"replicas": "3", "paused": true}, "status": null}),
            json!({"metadata": {"name": "d", "labels": {}, "annotations": {"z": ""}}, "spec": {}, "x-unknown": []}),
            json!({}),
        ];
        for (old, new) in [
            (&base, &variants[0]),
            (&base, &variants[1]),
            (&base, &variants[2]),
            (&base, &variants[3]),
            (&variants[0], &base),
            (&variants[1], &variants[2]),
            (&variants[3], &base),
        ] {
            for n in [node.as_ref(), None] {
                let fast = compare(&s, n, old, new);
                let whole = compare_whole(&s, n, old, new);
                assert_eq!(fast.added, whole.added, "added {old} -> {new}");
                assert_eq!(fast.removed, whole.removed, "removed {old} -> {new}");
                assert_eq!(fast.modified, whole.modified, "modified {old} -> {new}");
            }
        }
    }

    #[test]
    fn field_sets_encode_like_kube_apiserver() {
        let (s, node) = deployment();
        let d = json!({"metadata": {"labels": {"app": "web"}, "finalizers": ["a"]},
                       "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                "template": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["x"]}]}}}});
        let set = field_set(&s, Some(&node), &d);
        let want = json!({
            "f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}, "f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"c\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}}}}}}}
        });
        // finalizers is a set list: its items are members, the list itself is not.
        let mut got = set.to_fields_v1();
        got["f:metadata"]["f:finalizers"]
            .as_object_mut()
            .unwrap()
            .remove(".");
        let mut w = want.clone();
        w["f:metadata"]["f:finalizers"]
            .as_object_mut()
            .unwrap()
            .remove(".");
        assert_eq!(got, w);
        // Round trip.
        assert_eq!(Set::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
        assert!(set.contains(&[
            PathElement::Field("spec".into()),
            PathElement::Field("replicas".into())
        ]));
        let img: Path = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("template".into()),
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key("{\"name\":\"c\"}".into()),
            PathElement::Field("image".into()),
        ];
        assert_eq!(
            display(&img),
            ".spec.template.spec.containers[name=\"c\"].image"
        );
        assert_eq!(get(&s, Some(&node), &d, &img), Some(&json!("i")));
    }

    #[test]
    fn compare_merge_and_remove_follow_the_schema() {
        let (s, node) = deployment();
        let live = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let config = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}}});
        let merged = merge(&s, Some(&node), &live, &config);
        assert_eq!(merged["spec"]["replicas"], 3);
        let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"], "merged by key, live order first");
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"][1]["image"],
            "b:2"
        );

        let cmp = compare(&s, Some(&node), &live, &merged);
        let paths = |set: &Set| set.paths().iter().map(|p| display(p)).collect::<Vec<_>>();
        assert_eq!(
            paths(&cmp.modified),
            [
                ".spec.replicas",
                ".spec.template.spec.containers[name=\"b\"].image"
            ]
        );
        assert!(paths(&cmp.added)
            .contains(&".spec.template.spec.containers[name=\"c\"].image".to_string()));
        assert!(cmp.removed.is_empty());

        let mut v = merged.clone();
        remove(
            &s,
            Some(&node),
            &mut v,
            &[
                PathElement::Field("spec".into()),
                PathElement::Field("template".into()),
                PathElement::Field("spec".into()),
                PathElement::Field("containers".into()),
                PathElement::Key("{\"name\":\"a\"}".into()),
            ],
        );
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        remove(
            &s,
            Some(&node),
            &mut v,
            &[
                PathElement::Field("spec".into()),
                PathElement::Field("replicas".into()),
            ],
        );
        assert!(v["spec"].get("replicas").is_none());

        // Atomic lists replace; set lists union.
        let m = merge(
            &s,
            Some(&node),
            &json!({"metadata": {"finalizers": ["a"]}, "spec": {"template": {"spec": {"containers": [{"name": "x", "args": ["1", "2"]}]}}}}),
            &json!({"metadata": {"finalizers": ["b"]}, "spec": {"template": {"spec": {"containers": [{"name": "x", "args": ["3"]}]}}}}),
        );
        assert_eq!(m["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            m["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["3"])
        );
    }
}
