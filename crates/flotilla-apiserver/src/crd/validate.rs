//! Validation of a CRD before it is stored: names, versions, a structural schema, and the
//! defaults kube-apiserver fills in (singular and list names).

use serde_json::{json, Value};

use crate::errors::Cause;
use crate::rest::meta_str;

pub fn validate_crd(crd: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = Vec::new();
    default_crd(crd);
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() {
        c.push(Cause::required("spec.group"));
    } else if !group.contains('.') {
        c.push(Cause::invalid(
            "spec.group",
            &spec["group"],
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        c.push(Cause::required("spec.names.plural"));
    } else {
        for p in crate::validation::label_problems(plural) {
            c.push(Cause::invalid(
                "spec.names.plural",
                &spec["names"]["plural"],
                &p,
            ));
        }
    }
    if spec["names"]["kind"].as_str().unwrap_or("").is_empty() {
        c.push(Cause::required("spec.names.kind"));
    }
    let name = meta_str(crd, "name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        c.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        _ => c.push(Cause::not_supported(
            "spec.scope",
            &spec["scope"],
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count();
    if storage != 1 {
        c.push(Cause::invalid_rendered(
            "spec.versions",
            &crate::crd_go::versions(&spec["versions"]),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v["name"].as_str().unwrap_or("");
        if vname.is_empty() {
            c.push(Cause::required(format!("spec.versions[{i}].name")));
        } else if !names.insert(vname.to_string()) {
            c.push(Cause::duplicate(
                format!("spec.versions[{i}].name"),
                &v["name"],
            ));
        }
        let schema = &v["schema"]["openAPIV3Schema"];
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        if !schema.is_object() {
            c.push(Cause::required_detail(path, "schemas are required"));
            continue;
        }
        if schema["type"] != json!("object") {
            c.push(Cause::invalid(
                format!("{path}.type"),
                &schema["type"],
                "must be object at the root",
            ));
        }
        structural(schema, &path, &mut c);
    }
    if old.is_none() && storage == 0 {
        // A new CRD's stored versions are its storage version; without one there are none.
        c.push(Cause::invalid_rendered(
            "status.storedVersions",
            "[]string(nil)",
            "must have at least one stored version",
        ));
    }
    if let Some(old) = old {
        if old["spec"]["scope"] != spec["scope"] {
            c.push(Cause::invalid(
                "spec.scope",
                &spec["scope"],
                "field is immutable",
            ));
        }
        if old["spec"]["group"] != spec["group"] {
            c.push(Cause::invalid(
                "spec.group",
                &spec["group"],
                "field is immutable",
            ));
        }
    }
    c
}

/// Checks the structural-schema rule that every specified field has a type.
fn structural(s: &Value, path: &str, c: &mut Vec<Cause>) {
    let free = s["x-kubernetes-int-or-string"] == json!(true)
        || s["x-kubernetes-preserve-unknown-fields"] == json!(true);
    if s.get("type").is_none()
        && !free
        && s.get("anyOf").is_none()
        && s.get("allOf").is_none()
        && s.get("oneOf").is_none()
    {
        c.push(Cause::required_detail(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if let Some(props) = s["properties"].as_object() {
        for (k, v) in props {
            structural(v, &format!("{path}.properties[{k}]"), c);
        }
    }
    if s["items"].is_object() {
        structural(&s["items"], &format!("{path}.items"), c);
    }
    if s["additionalProperties"].is_object() {
        structural(
            &s["additionalProperties"],
            &format!("{path}.additionalProperties"),
            c,
        );
    }
}

fn default_crd(crd: &mut Value) {
    let kind = crd["spec"]["names"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(names) = crd["spec"]["names"].as_object_mut() {
        if names.get("singular").is_none() && !kind.is_empty() {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names.get("listKind").is_none() && !kind.is_empty() {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if crd["spec"].is_object() && crd["spec"].get("conversion").is_none() {
        crd["spec"]["conversion"] = json!({"strategy": "None"});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::tests::crd;

    #[test]
    fn crd_validation_and_defaults() {
        let mut ok = crd();
        assert!(validate_crd(&mut ok, None).is_empty());
        assert_eq!(ok["spec"]["names"]["singular"], "widget");
        assert_eq!(ok["spec"]["names"]["listKind"], "WidgetList");
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["x"] = json!({});
        let fields: Vec<String> = validate_crd(&mut bad, None)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.versions",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type",
                "status.storedVersions"
            ]
        );
    }
}
