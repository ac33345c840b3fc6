//! Server-side apply requests, and the field manager's view of a request (manager name,
//! schema root). The field-set engine is in `fieldpath.rs`, the bookkeeping in `managed.rs`.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::registry::{Resource, SchemaRef};
use crate::rest::{check_type_meta, meta, meta_mut, meta_str, Ctx, Loc, Reply};
use crate::server::ApiServer;

/// The field manager of an Update-operation write: `fieldManager`, or the client's user agent
/// up to its first '/', as kube-apiserver derives it.
pub(crate) fn field_manager(ctx: &Ctx) -> ApiResult<String> {
    let m = match ctx.query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => {
            let ua = ctx.user_agent.split('/').next().unwrap_or("").trim();
            if ua.is_empty() {
                "unknown".to_string()
            } else {
                ua.chars().take(128).collect()
            }
        }
    };
    if m.len() > 128 || m.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "UpdateOptions",
            "",
            vec![Cause::invalid(
                "fieldManager",
                &json!(m),
                "must consist of printable characters and be at most 128 characters",
            )],
        ));
    }
    Ok(m)
}

/// The schema root the field manager walks: the built-in definition, or the CRD's schema with
/// ObjectMeta for `metadata`.
fn managed_root(res: &Resource) -> Value {
    let meta = json!({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"});
    match &res.schema {
        SchemaRef::Builtin(def) => json!({"$ref": format!("#/definitions/{def}")}),
        SchemaRef::Custom(schema) => {
            let mut v = schema.as_deref().cloned().unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
            if !v["properties"].is_object() {
                v["properties"] = json!({});
            }
            v["properties"]["metadata"] = meta;
            v
        }
    }
}

/// What the field manager needs of a resource and subresource, owned for one request.
pub(crate) struct ManagedScope {
    root: Arc<Value>,
    api_version: String,
    subresource: &'static str,
    has_status: bool,
}

impl ManagedScope {
    pub(crate) fn new(res: &Resource, sub: Option<&str>) -> Self {
        Self {
            root: res
                .managed_root
                .get_or_init(|| Arc::new(managed_root(res)))
                .clone(),
            api_version: res.api_version(),
            subresource: if sub == Some("status") { "status" } else { "" },
            has_status: res.status,
        }
    }

    pub(crate) fn context<'a>(
        &'a self,
        schema: &'a crate::schema::Schema,
    ) -> crate::managed::Context<'a> {
        crate::managed::Context {
            schema,
            root: &self.root,
            api_version: &self.api_version,
            subresource: self.subresource,
            has_status: self.has_status,
        }
    }
}

impl ApiServer {
    /// Server-side apply: merges the applied configuration by field manager, creating the
    /// object if it does not exist.
    pub(crate) async fn apply_patch(
        &self,
        loc: &Loc,
        sub: Option<&str>,
        ctx: &Ctx,
        ct: &str,
    ) -> ApiResult<Reply> {
        let Some(manager) = ctx
            .query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .map(String::from)
        else {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::required_detail(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        };
        let force = match ctx.query.get("force") {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid force value {other:?}"
                )))
            }
        };
        if sub == Some("scale") {
            return Err(ApiError::bad_request(
                "apply is not supported on the scale subresource",
            ));
        }
        let mut config: Value = if ct.ends_with("+json") {
            serde_json::from_slice(&ctx.body).map_err(|e| {
                ApiError::bad_request(format!("error decoding the apply patch: {e}"))
            })?
        } else {
            crate::yaml::to_json(&ctx.body).map_err(|e| {
                ApiError::bad_request(format!(
                    "error decoding YAML: error converting YAML to JSON: {e}"
                ))
            })?
        };
        // An apply configuration names its type itself; nothing is defaulted from the endpoint.
        // The field manager's checks, in its order: type, managedFields, declared fields.
        let gvk = applied_gvk(&config);
        if gvk.2.is_empty()
            || gvk
                != (
                    loc.res.group.as_str(),
                    loc.res.version.as_str(),
                    loc.res.kind.as_str(),
                )
        {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {}/{}, Kind={}",
                gvk.0, gvk.1, gvk.2
            )));
        }
        check_type_meta(&loc.res, &mut config)?;
        if meta(&config)
            .get("managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        {
            let scope = ManagedScope::new(&loc.res, sub);
            let mctx = scope.context(&self.state.schema);
            let undeclared = crate::fieldpath::undeclared(mctx.schema, Some(mctx.root), &config);
            if !undeclared.is_empty() {
                // Whatever fieldValidation says: structured-merge-diff cannot type the object.
                let mut errors: Vec<String> = undeclared
                    .iter()
                    .map(|p| {
                        format!(
                            "{}: field not declared in schema",
                            crate::fieldpath::display(p)
                        )
                    })
                    .collect();
                errors.sort();
                let errors = match errors.as_slice() {
                    [one] => one.clone(),
                    many => format!("errors:\n  {}", many.join("\n  ")),
                };
                return Err(ApiError::internal_without_reason(format!(
                    "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {errors}",
                    meta_str(&config, "namespace"),
                    meta_str(&config, "name"),
                    loc.res.group,
                    loc.res.version,
                    loc.res.kind,
                )));
            }
        }
        match meta_str(&config, "name") {
            "" => {
                meta_mut(&mut config).insert("name".into(), json!(loc.name));
            }
            n if n != loc.name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    loc.name
                )))
            }
            _ => {}
        }
        if let Some(ns) = &loc.ns {
            let got = meta_str(&config, "namespace");
            if !got.is_empty() && got != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let res = &loc.res;
        let scope = ManagedScope::new(res, sub);
        let mctx = scope.context(&self.state.schema);
        for _ in 0..2 {
            if self.state.store.get_latest(&loc.key()).is_none() {
                if sub.is_some() {
                    return Err(ApiError::not_found(loc.target()));
                }
                let merged = crate::managed::apply(&mctx, None, &config, &manager, force)?;
                let cctx = Ctx {
                    user: ctx.user.clone(),
                    method: Method::POST,
                    query: ctx.query.clone(),
                    output: ctx.output,
                    content_type: "application/json".into(),
                    body: Bytes::from(serde_json::to_vec(&merged).expect("JSON encodes")),
                    user_agent: ctx.user_agent.clone(),
                };
                match self.create(res, loc.ns.as_deref(), &cctx).await {
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    other => return other,
                }
            }
            return self
                .guaranteed_update(loc, sub, ctx, None, |current| {
                    crate::managed::apply(&mctx, Some(current), &config, &manager, force)
                })
                .await;
        }
        Err(ApiError::conflict(loc.target(), ApiError::MODIFIED))
    }
}

/// The group, version and kind an apply configuration names, as apimachinery reads them from
/// an unstructured object: all empty when apiVersion does not parse.
fn applied_gvk(config: &Value) -> (&str, &str, &str) {
    let av = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    match av.split('/').collect::<Vec<_>>().as_slice() {
        [""] => ("", "", kind),
        [v] => ("", v, kind),
        [g, v] if !g.is_empty() && !v.is_empty() => (g, v, kind),
        _ => ("", "", ""),
    }
}
