//! Request bodies decoded and checked as kube-apiserver does: JSON, YAML or protobuf into an
//! object, field validation (`Strict`, `Warn`, `Ignore`) with its unknown and duplicate
//! fields, and the object's apiVersion and kind against the resource.

use serde_json::Value;

use crate::errors::{ApiError, ApiResult, Cause};
use crate::registry::{Resource, SchemaRef};
use crate::request::Query;
use crate::schema::{decode, DecodeIssue};

/// The field-validation directive of a write (`Strict`, `Warn` (default) or `Ignore`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn from_query(q: &Query) -> ApiResult<Self> {
        match q.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?} (Strict, Warn and Ignore are supported)"
            ))),
        }
    }
}

/// The start of a body an error quotes, as kube-apiserver's `summarizeData` cuts it.
pub(crate) fn summarize(body: &[u8]) -> String {
    // apimachinery's summarizeData: a JSON object as text, anything else in hex, cut at 30 bytes.
    let (cut, more) = match body.len() > 30 {
        true => (&body[..30], " ..."),
        false => (body, ""),
    };
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(cut)),
        Some(_) => format!(
            "{}{more}",
            cut.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// Parses a request body as JSON, YAML or (for built-in kinds, whose protobuf definition is
/// `proto_def`) Kubernetes' protobuf encoding, by content type.
pub(crate) fn decode_body(
    content_type: &str,
    body: &[u8],
    proto_def: Option<&str>,
    kind: &str,
) -> ApiResult<Value> {
    let base = content_type.split(';').next().unwrap_or("").trim();
    let v: Value = match base {
        crate::proto::MEDIA_TYPE => match proto_def {
            Some(def) => crate::proto::decode(body, def).map_err(|e| {
                // kube-apiserver quotes Go's reader ("unexpected EOF" for a cut-off body)
                // and the body's first bytes in hex.
                let detail = if e.starts_with("truncated") {
                    "unexpected EOF".to_string()
                } else {
                    e
                };
                ApiError::bad_request(format!(
                    "the object provided is unrecognized (must be of type {kind}): {detail} ({})",
                    summarize(body)
                ))
            })?,
            None => return Err(ApiError::unsupported_media_type(base)),
        },
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            // Go's wording for a cut-off document; serde's for other syntax errors.
            let detail = if e.is_eof() {
                "unexpected end of JSON input".to_string()
            } else {
                e.to_string()
            };
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {detail} ({})",
                summarize(body)
            ))
        })?,
        "application/yaml" => crate::yaml::to_json(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {kind}): {e} ({})",
                summarize(body)
            ))
        })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(v)
}

/// The OpenAPI (and protobuf) definition of a built-in resource.
pub(crate) fn builtin_def(res: &Resource) -> Option<&'static str> {
    match &res.schema {
        SchemaRef::Builtin(d) => Some(d),
        SchemaRef::Custom(_) => None,
    }
}

/// Under strict field validation, a patch whose result has fields the schema does not know is
/// refused as kube-apiserver refuses it: 422, the patched object quoted under the `patch` field.
pub(crate) fn strict_patch_result(
    schema: &crate::schema::Schema,
    res: &Resource,
    patched: &Value,
) -> ApiResult<()> {
    let mut probe = patched.clone();
    let unknown: Vec<String> = match &res.schema {
        SchemaRef::Builtin(def) => match schema.definition(def) {
            Some(node) => decode(schema, node, &mut probe)
                .into_iter()
                .filter_map(|i| match i {
                    DecodeIssue::Unknown(p) => Some(p),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        },
        SchemaRef::Custom(s) => crate::crd::admit_custom(s.as_deref(), &mut probe).0,
    };
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    Err(ApiError::invalid(
        "",
        "",
        "",
        vec![Cause::invalid(
            "patch",
            &Value::String(patched.to_string()),
            &format!("strict decoding error: {}", list.join(", ")),
        )],
    ))
}

/// Applies the field validation directive to the unknown fields found; a strict error's
/// message starts with `prefix` (how kube-apiserver's decoder names the object).
pub(crate) fn unknown_fields(
    fv: FieldValidation,
    unknown: Vec<String>,
    prefix: &str,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    match fv {
        FieldValidation::Strict => {
            let list: Vec<String> = unknown
                .iter()
                .map(|p| format!("unknown field \"{p}\""))
                .collect();
            Err(ApiError::bad_request(format!(
                "{prefix}strict decoding error: {}",
                list.join(", ")
            )))
        }
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|p| format!("unknown field \"{p}\"")));
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

/// Checks (and fills in) apiVersion and kind of a request object against the endpoint.
pub(crate) fn check_type_meta(res: &Resource, obj: &mut Value) -> ApiResult<()> {
    let Some(o) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let want_av = res.api_version();
    // What the body leaves out comes from the endpoint, as kube-apiserver's decoder defaults
    // it.
    let missing = |o: &serde_json::Map<String, Value>, f: &str| {
        o.get(f).and_then(Value::as_str).unwrap_or("").is_empty()
    };
    if missing(o, "kind") || missing(o, "apiVersion") {
        // Type meta first, as every stored object has it.
        let mut typed = serde_json::Map::new();
        for (field, default) in [("apiVersion", want_av.clone()), ("kind", res.kind.clone())] {
            let v = match o.remove(field) {
                Some(Value::String(s)) if !s.is_empty() => s,
                _ => default,
            };
            typed.insert(field.into(), Value::String(v));
        }
        typed.extend(std::mem::take(o));
        *o = typed;
    }
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind != res.kind {
        // As kube-apiserver's conversion into the endpoint's internal type words it.
        let version = av.rsplit('/').next().unwrap_or(av);
        let internal = if res.group.is_empty() {
            "core"
        } else {
            res.group.split('.').next().unwrap_or(&res.group)
        };
        return Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {want}: converting ({version}.{kind}) to ({internal}.{want}): unknown conversion",
            want = res.kind
        )));
    }
    if av != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    Ok(())
}
