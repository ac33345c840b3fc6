//! CustomResourceDefinitions: a CRD is checked before it is stored ([`validate`]), its
//! resources are served by every replica as soon as it is written ([`serve`]), and custom
//! objects are pruned, defaulted and validated against its structural schema ([`admit`]). The
//! leader's [CRD controller](crate::controllers::crd) reports CRDs established and removes the
//! custom objects of a deleted one.

pub(crate) mod admit;
pub(crate) mod serve;
pub(crate) mod validate;

use serde_json::Value;

use crate::registry::Resource;
use crate::rest::meta;

pub use admit::admit_custom;
pub use serve::resources_of;
pub use validate::validate_crd;

/// The finalizer that holds a deleted CRD until its custom objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Where CRDs are stored.
pub(crate) fn key_prefix() -> String {
    crate::registry::key_prefix_of("apiextensions.k8s.io", "customresourcedefinitions")
}

pub(crate) fn is_crd(res: &Resource) -> bool {
    res.group == "apiextensions.k8s.io" && res.plural == "customresourcedefinitions"
}

/// Whether deleting an object of `res` must first clean up (CRDs).
pub(crate) fn deletion_finalizer(res: &Resource, obj: &Value) -> Option<&'static str> {
    (is_crd(res) && meta(obj).get("deletionTimestamp").is_none()).then_some(CLEANUP_FINALIZER)
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{json, Value};

    /// A CRD with a schema that exercises validation, defaults and list types.
    pub(crate) fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "kind": "Widget"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                "spec": {"type": "object", "required": ["size"], "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}]}})
    }
}
