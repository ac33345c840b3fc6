//! API errors, rendered as `metav1.Status` with the codes, reasons and wording kube-apiserver
//! uses.

use serde_json::{json, Value};

/// A field-level cause of an Invalid error.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The field path, e.g. `metadata.name` or `spec.containers[0].image`.
    pub field: String,
    /// The detail, e.g. `Required value` or `Invalid value: "X": must be ...`.
    pub message: String,
}

impl Cause {
    /// `Required value`.
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `Required value: detail`.
    pub fn required_detail(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: format!("Required value: {detail}"),
        }
    }

    /// `Invalid value: <value>: detail`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    /// `Invalid value: <rendered>: detail`, for values Kubernetes prints in a Go form of their
    /// own (an internal struct, a typed nil).
    pub fn invalid_rendered(field: impl Into<String>, rendered: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {rendered}: {detail}"),
        }
    }

    /// `Unsupported value: <value>: supported values: ...`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        }
    }

    /// `Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: &Value) -> Self {
        Self {
            reason: "FieldValueNotFound",
            field: field.into(),
            message: format!("Not found: {}", render_value(value)),
        }
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    /// `Too long: may not be more than N bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }

    /// The `field: message` form used in the Status message.
    pub fn to_text(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// Renders a value the way Kubernetes' field errors quote it: strings quoted, and string maps
/// and lists in Go's `%#v` form (`map[string]string{"a":"1", "b":"2"}`, `[]string{"x"}`).
pub(crate) fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let items: Vec<String> = a
                .iter()
                .map(|x| format!("{:?}", x.as_str().unwrap_or("")))
                .collect();
            format!("[]string{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// An error answered with a `metav1.Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, if any.
    pub details: Option<Value>,
    /// Answered as Go's plain-text `404 page not found` rather than a Status, as kube-apiserver
    /// answers paths outside every API group it serves.
    pub(crate) plain_text: bool,
}

/// Names the object an error concerns: its group, resource (plural) and name.
#[derive(Debug, Clone, Default)]
pub struct Target<'a> {
    /// API group.
    pub group: &'a str,
    /// Plural resource name (what kube-apiserver calls "kind" in Status details).
    pub resource: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Target<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The Status details naming the object; empty fields are left out, as Go's omitempty does.
    fn details(&self) -> Value {
        let mut d = json!({});
        for (k, v) in [
            ("name", self.name),
            ("group", self.group),
            ("kind", self.resource),
        ] {
            if !v.is_empty() {
                d[k] = json!(v);
            }
        }
        d
    }
}

/// The message of [`ApiError::store_closed`].
const STORE_CLOSED: &str = "the store is shutting down";

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            plain_text: false,
        }
    }

    /// 404 for a path outside every served group and version, in plain text.
    pub fn page_not_found() -> Self {
        let mut e = Self::new(404, "NotFound", "404 page not found\n");
        e.plain_text = true;
        e
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(t: Target<'_>, detail: &str) -> Self {
        let mut e = Self::new(
            403,
            "Forbidden",
            format!("{} \"{}\" is forbidden: {detail}", t.qualified(), t.name),
        );
        e.details = Some(t.details());
        e
    }

    /// Adds a cause to `details.causes`.
    pub fn with_cause(mut self, reason: &str, field: &str, message: &str) -> Self {
        let d = self.details.get_or_insert_with(|| json!({}));
        if d.get("causes").is_none() {
            d["causes"] = json!([]);
        }
        if let Some(arr) = d.get_mut("causes").and_then(Value::as_array_mut) {
            arr.push(json!({"reason": reason, "field": field, "message": message}));
        }
        self
    }

    /// 404 NotFound for an object.
    pub fn not_found(t: Target<'_>) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", t.qualified(), t.name),
        );
        e.details = Some(t.details());
        e
    }

    /// 404 NotFound for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/json;stream=watch",
        )
        .with_details(json!({}))
    }

    /// 406 NotAcceptable from a discovery endpoint, which kube-apiserver words differently.
    pub fn discovery_not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml",
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(t: Target<'_>) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", t.qualified(), t.name),
        );
        e.details = Some(t.details());
        e
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(t: Target<'_>, detail: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {detail}",
                t.qualified(),
                t.name
            ),
        );
        e.details = Some(t.details());
        e
    }

    /// The detail of a conflict on a stale resourceVersion.
    pub const MODIFIED: &'static str =
        "the object has been modified; please apply your changes to the latest version and try again";

    /// 410 Expired (Gone).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json; got {content_type:?}"),
        )
    }

    /// 422 Invalid with field causes.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let texts: Vec<String> = causes.iter().map(Cause::to_text).collect();
        let joined = if texts.len() == 1 {
            texts[0].clone()
        } else {
            format!("[{}]", texts.join(", "))
        };
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {joined}"),
        );
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut details = Target {
            group,
            resource: kind,
            name,
        }
        .details();
        details["causes"] = json!(causes);
        e.details = Some(details);
        e
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// An error kube-apiserver passes on from a library as it is: a 500 with no reason (as the
    /// field manager's "failed to create typed patch object").
    pub fn internal_without_reason(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 503 for a request the store could not take because it is shutting down.
    pub fn store_closed() -> Self {
        Self::unavailable(STORE_CLOSED)
    }

    /// Whether this is [`Self::store_closed`]: the server is going away.
    pub fn is_store_closed(&self) -> bool {
        self.code == 503 && self.message == STORE_CLOSED
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Sets `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            // StatusReasonUnknown is "", which Go's omitempty leaves out.
            s.as_object_mut().expect("an object").remove("reason");
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The result type of request handling.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_kubernetes_wording() {
        let t = Target {
            group: "apps",
            resource: "deployments",
            name: "web",
        };
        let e = ApiError::not_found(t.clone());
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        assert_eq!(e.to_status()["details"]["group"], "apps");
        let e = ApiError::conflict(t, ApiError::MODIFIED);
        assert_eq!(e.code, 409);
        assert!(e
            .message
            .starts_with("Operation cannot be fulfilled on deployments.apps \"web\""));

        let e = ApiError::invalid(
            "",
            "ConfigMap",
            "Bad_Name",
            vec![Cause::invalid(
                "metadata.name",
                &json!("Bad_Name"),
                "must be lower case",
            )],
        );
        assert_eq!(
            e.message,
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": must be lower case"
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");

        let two = ApiError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![
                Cause::required("spec.selector"),
                Cause::required("spec.template.spec.containers"),
            ],
        );
        assert_eq!(
            two.message,
            "Deployment.apps \"d\" is invalid: [spec.selector: Required value, spec.template.spec.containers: Required value]"
        );
    }
}
