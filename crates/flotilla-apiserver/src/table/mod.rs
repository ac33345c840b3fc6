//! `meta.k8s.io` Table and PartialObjectMetadata output: the columns `kubectl get` prints for
//! built-in kinds, and additionalPrinterColumns for custom resources.
//!
//! Each built-in kind has one [`Printer`], its column headers and the cells of a row side by
//! side: the core group's in `core.rs`, the named groups' in `groups.rs`; how values print in
//! cells (durations, selectors, ...) is `format.rs`; custom resources print their CRD's columns.

mod core;
mod format;
mod groups;

use serde_json::{json, Value};

use crate::registry::Resource;
use crate::server::Output;
use format::age_of;

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: i64,
    description: &'static str,
}

const fn col(
    name: &'static str,
    ty: &'static str,
    priority: i64,
    description: &'static str,
) -> Col {
    Col {
        name,
        ty,
        priority,
        description,
    }
}

// A description written `definition#field` is that field's documentation, as kube-apiserver's
// printers take it from the field's SwaggerDoc; `describe` resolves it.
const NAME: Col = col(
    "Name",
    "string",
    0,
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta#name",
);
const AGE: Col = col(
    "Age",
    "string",
    0,
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta#creationTimestamp",
);

/// The description of a column: a field's documentation for `definition#field`, else the text.
fn describe(description: &str) -> String {
    let Some((def, field)) = description.split_once('#') else {
        return description.to_string();
    };
    crate::schema::Schema::builtin()
        .definition(def)
        .and_then(|d| d.pointer(&format!("/properties/{field}/description")))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// How one kind prints: its columns, and the cells of an object's row in the same order.
struct Printer {
    /// The (group, kind) pairs it prints.
    kinds: &'static [(&'static str, &'static str)],
    /// The column definitions.
    columns: fn() -> Vec<Col>,
    /// An object's cells.
    cells: fn(Row<'_>) -> Vec<Value>,
}

/// What a printer's cells are made from: the object, its parts, and its name and age cells.
struct Row<'a> {
    o: &'a Value,
    m: &'a Value,
    name: Value,
    age: Value,
    spec: &'a Value,
    status: &'a Value,
}

impl<'a> Row<'a> {
    fn of(o: &'a Value) -> Self {
        let m = &o["metadata"];
        Row {
            o,
            m,
            name: m["name"].clone(),
            age: age_of(&m["creationTimestamp"]),
            spec: &o["spec"],
            status: &o["status"],
        }
    }
}

/// Kinds without a printer of their own show their name and age.
const DEFAULT: Printer = Printer {
    kinds: &[],
    columns: || vec![NAME, AGE],
    cells: default_cells,
};

fn default_cells(r: Row<'_>) -> Vec<Value> {
    vec![r.name, r.age]
}

/// The cells of ReplicaSets and ReplicationControllers: desired, current and ready replicas.
fn desired_current_ready(r: Row<'_>) -> Vec<Value> {
    vec![
        r.name,
        json!(format::int(&r.spec["replicas"])),
        json!(format::int(&r.status["replicas"])),
        json!(format::int(&r.status["readyReplicas"])),
        r.age,
    ]
}

/// The printer of a built-in resource.
fn printer(res: &Resource) -> &'static Printer {
    core::CORE
        .iter()
        .chain(groups::GROUPS)
        .find(|p| {
            p.kinds
                .iter()
                .any(|(g, k)| *g == res.group && *k == res.kind)
        })
        .unwrap_or(&DEFAULT)
}

/// Evaluates a simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`,
/// `.metadata.labels.app`) against an object.
pub fn simple_jsonpath<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    // Steps: fields (with `\.` escaping a dot inside a name), `[N]`, `['name']` and
    // `[?(@.field=="value")]` filters (the first match), as printer columns use them.
    let p = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let chars: Vec<char> = p.chars().collect();
    let mut cur = o;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => i += 1,
            '[' => {
                let end = i + chars[i..].iter().position(|c| *c == ']')?;
                let inner: String = chars[i + 1..end].iter().collect();
                i = end + 1;
                if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                    let (field, want) = filter.split_once("==")?;
                    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                    cur = cur
                        .as_array()?
                        .iter()
                        .find(|e| e.get(field.trim()).and_then(Value::as_str) == Some(want))?;
                } else if let Ok(n) = inner.parse::<usize>() {
                    cur = cur.get(n)?;
                } else {
                    cur = cur.get(inner.trim_matches(|c| c == '"' || c == '\''))?;
                }
            }
            _ => {
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                cur = cur.get(&name)?;
            }
        }
    }
    Some(cur)
}

fn custom_cells(res: &Resource, o: &Value) -> Vec<Value> {
    let mut out = vec![o["metadata"]["name"].clone()];
    if res.printer_columns.is_empty() {
        out.push(age_of(&o["metadata"]["creationTimestamp"]));
        return out;
    }
    for c in &res.printer_columns {
        let v = simple_jsonpath(o, &c.json_path)
            .cloned()
            .unwrap_or(Value::Null);
        out.push(match (c.type_.as_str(), &v) {
            (_, Value::Null) => Value::Null,
            ("date", Value::String(_)) => age_of(&v),
            ("string", Value::String(_)) => v,
            ("string", other) => json!(other.to_string()),
            _ => v,
        });
    }
    out
}

fn column_definitions(res: &Resource) -> Vec<Value> {
    if res.custom {
        let mut cols = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": describe(NAME.description), "priority": 0}),
        ];
        if res.printer_columns.is_empty() {
            cols.push(json!({"name": "Age", "type": "date", "format": "", "description": describe(AGE.description), "priority": 0}));
        }
        for c in &res.printer_columns {
            // The CRD handler's default description names the column's path.
            let description = if c.description.is_empty() {
                format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    c.json_path
                )
            } else {
                c.description.clone()
            };
            cols.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": description, "priority": c.priority}));
        }
        return cols;
    }
    (printer(res).columns)()
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.ty, "format": format, "description": describe(c.description), "priority": c.priority})
        })
        .collect()
}

fn cells(res: &Resource, o: &Value) -> Vec<Value> {
    if res.custom {
        return custom_cells(res, o);
    }
    (printer(res).cells)(Row::of(o))
}

fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()})
}

fn row(res: &Resource, o: &Value) -> Value {
    json!({"cells": cells(res, o), "object": partial_metadata(o)})
}

/// Renders one object for the requested output.
pub(crate) fn render_one(res: &Resource, o: Value, output: Output) -> Value {
    match output {
        Output::Json
        | Output::Yaml
        | Output::OpenApiV2Protobuf(_)
        | Output::AggregatedDiscovery => o,
        Output::Metadata => partial_metadata(&o),
        Output::Table(v) => json!({
            "kind": "Table",
            "apiVersion": format!("meta.k8s.io/{v}"),
            "metadata": {"resourceVersion": o["metadata"]["resourceVersion"].clone()},
            "columnDefinitions": column_definitions(res),
            "rows": [row(res, &o)],
        }),
    }
}

/// Renders a list for the requested output (Table or PartialObjectMetadataList).
pub(crate) fn render_list(
    res: &Resource,
    objs: Vec<Value>,
    list_meta: Value,
    output: Output,
) -> Value {
    match output {
        Output::Table(v) => json!({
            "kind": "Table",
            "apiVersion": format!("meta.k8s.io/{v}"),
            "metadata": list_meta,
            "columnDefinitions": column_definitions(res),
            "rows": objs.iter().map(|o| row(res, o)).collect::<Vec<_>>(),
        }),
        Output::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "items": objs.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        Output::Json
        | Output::Yaml
        | Output::OpenApiV2Protobuf(_)
        | Output::AggregatedDiscovery => json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": list_meta,
            "items": objs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::format::human_duration;
    use super::*;

    #[test]
    fn human_durations_match_kubernetes() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(secs), want);
        }
    }

    #[test]
    fn jsonpaths() {
        let o = json!({"spec": {"replicas": 3, "list": [{"a": 1}]}, "metadata": {"labels": {"app": "x"}}});
        assert_eq!(simple_jsonpath(&o, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(simple_jsonpath(&o, ".spec.list[0].a"), Some(&json!(1)));
        assert_eq!(
            simple_jsonpath(&o, ".metadata.labels.app"),
            Some(&json!("x"))
        );
        assert_eq!(simple_jsonpath(&o, ".spec.missing"), None);
        let m = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Joined", "status": "True"}],
            "properties": {"kubernetes-fleet.io/node-count": {"value": "3"}}}});
        assert_eq!(
            simple_jsonpath(&m, ".status.conditions[?(@.type==\"Joined\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            simple_jsonpath(
                &m,
                ".status.properties.kubernetes-fleet\\.io/node-count.value"
            ),
            Some(&json!("3"))
        );
        assert_eq!(
            simple_jsonpath(
                &m,
                ".status.properties['kubernetes-fleet.io/node-count'].value"
            ),
            Some(&json!("3"))
        );
        assert_eq!(
            simple_jsonpath(&m, ".status.conditions[?(@.type==\"Gone\")].status"),
            None
        );
    }
}
