//! A CRD's versions as kube-apiserver prints them in validation errors: Go's `%#v` of its
//! internal `[]apiextensions.CustomResourceDefinitionVersion`, after the v1-to-internal
//! conversion has moved per-version fields that all versions share to the top level.

use serde_json::Value;

/// Go's `%#v` of the internal versions of `versions` (a CRD's `spec.versions`).
pub(crate) fn versions(versions: &Value) -> String {
    const TYPE: &str = "apiextensions.CustomResourceDefinitionVersion";
    let Some(list) = versions.as_array() else {
        return format!("[]{TYPE}(nil)");
    };
    // The conversion hoists a per-version field out of every version when all versions have
    // the same value of it (a single version always does).
    let shared = |field: &str| list.windows(2).all(|w| w[0][field] == w[1][field]);
    let (schema, subresources, columns, selectable) = (
        !shared("schema"),
        !shared("subresources"),
        !shared("additionalPrinterColumns"),
        !shared("selectableFields"),
    );
    let items: Vec<String> = list
        .iter()
        .map(|v| {
            format!(
                "{TYPE}{{Name:{}, Served:{}, Storage:{}, Deprecated:{}, DeprecationWarning:{}, Schema:{}, Subresources:{}, AdditionalPrinterColumns:{}, SelectableFields:{}}}",
                go_string(&v["name"]),
                v["served"] == Value::Bool(true),
                v["storage"] == Value::Bool(true),
                v["deprecated"] == Value::Bool(true),
                pointer("string", v["deprecationWarning"].is_string()),
                pointer(
                    "apiextensions.CustomResourceValidation",
                    schema && !v["schema"].is_null()
                ),
                pointer(
                    "apiextensions.CustomResourceSubresources",
                    subresources && !v["subresources"].is_null()
                ),
                columns_of(if columns { &v["additionalPrinterColumns"] } else { &Value::Null }),
                selectable_of(if selectable { &v["selectableFields"] } else { &Value::Null }),
            )
        })
        .collect();
    format!("[]{TYPE}{{{}}}", items.join(", "))
}

/// A Go string in `%#v`: quoted, `""` when absent.
fn go_string(v: &Value) -> String {
    format!("{:?}", v.as_str().unwrap_or(""))
}

/// A typed pointer in `%#v`. Go prints a set pointer's address, which no other server can
/// repeat; a fixed heap-like address stands for it.
fn pointer(ty: &str, set: bool) -> String {
    if set {
        format!("(*{ty})(0xc000000000)")
    } else {
        format!("(*{ty})(nil)")
    }
}

fn columns_of(v: &Value) -> String {
    const TYPE: &str = "apiextensions.CustomResourceColumnDefinition";
    let Some(list) = v.as_array() else {
        return format!("[]{TYPE}(nil)");
    };
    let items: Vec<String> = list
        .iter()
        .map(|c| {
            format!(
                "{TYPE}{{Name:{}, Type:{}, Format:{}, Description:{}, Priority:{}, JSONPath:{}}}",
                go_string(&c["name"]),
                go_string(&c["type"]),
                go_string(&c["format"]),
                go_string(&c["description"]),
                c["priority"].as_i64().unwrap_or(0),
                go_string(&c["jsonPath"]),
            )
        })
        .collect();
    format!("[]{TYPE}{{{}}}", items.join(", "))
}

fn selectable_of(v: &Value) -> String {
    const TYPE: &str = "apiextensions.SelectableField";
    let Some(list) = v.as_array() else {
        return format!("[]{TYPE}(nil)");
    };
    let items: Vec<String> = list
        .iter()
        .map(|f| format!("{TYPE}{{JSONPath:{}}}", go_string(&f["jsonPath"])))
        .collect();
    format!("[]{TYPE}{{{}}}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn shared_fields_are_hoisted_and_the_rest_printed_as_go_does() {
        // kube-apiserver v1.33's rendering of a single version without a storage flag.
        assert_eq!(
            super::versions(&json!([{"name": "v1", "served": true, "storage": false,
                "schema": {"openAPIV3Schema": {"type": "object"}}}])),
            "[]apiextensions.CustomResourceDefinitionVersion{apiextensions.CustomResourceDefinitionVersion{Name:\"v1\", Served:true, Storage:false, Deprecated:false, DeprecationWarning:(*string)(nil), Schema:(*apiextensions.CustomResourceValidation)(nil), Subresources:(*apiextensions.CustomResourceSubresources)(nil), AdditionalPrinterColumns:[]apiextensions.CustomResourceColumnDefinition(nil), SelectableFields:[]apiextensions.SelectableField(nil)}}"
        );
        // Columns that differ between versions stay in each version.
        let two = super::versions(&json!([
            {"name": "v1", "storage": true, "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
            {"name": "v2", "storage": true}]));
        assert!(two.contains("AdditionalPrinterColumns:[]apiextensions.CustomResourceColumnDefinition{apiextensions.CustomResourceColumnDefinition{Name:\"Size\", Type:\"integer\", Format:\"\", Description:\"\", Priority:0, JSONPath:\".spec.size\"}}"), "{two}");
        assert!(
            two.contains("Name:\"v2\", Served:false, Storage:true"),
            "{two}"
        );
        assert_eq!(
            super::versions(&json!(null)),
            "[]apiextensions.CustomResourceDefinitionVersion(nil)"
        );
        assert_eq!(
            super::versions(&json!([])),
            "[]apiextensions.CustomResourceDefinitionVersion{}"
        );
    }
}
