//! Handlers of resource requests: routing, create, get, update, patch, and the status, scale
//! and finalize subresources. Deletion is in `delete.rs`, server-side apply in `apply.rs`, list
//! and watch in `list.rs`.

use std::sync::Arc;

use bytes::Bytes;
use flotilla_store::{Attrs, Error as StoreError, Object, Precondition, Write};
use http::{Method, Response, StatusCode};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::apply::{field_manager, ManagedScope};
use crate::errors::{ApiError, ApiResult, Cause, Target};
use crate::registry::{Resource, SchemaRef};
use crate::request::{Query, RequestInfo};
use crate::schema::{decode, DecodeIssue};
use crate::server::{json_response, ApiServer, Output, ResponseBody};

/// What a handler needs of the request besides the path.
pub(crate) struct Ctx {
    /// The authenticated user; None for the server's own in-process requests.
    pub user: Option<Arc<crate::auth::UserInfo>>,
    pub method: Method,
    pub query: Query,
    pub output: Output,
    pub content_type: String,
    pub body: Bytes,
    pub user_agent: String,
}

/// A response object plus warnings for the `Warning` header.
pub(crate) struct Reply {
    pub code: StatusCode,
    pub body: Value,
    pub warnings: Vec<String>,
}

/// Where a request's object lives.
#[derive(Clone)]
pub(crate) struct Loc {
    pub res: Arc<Resource>,
    pub ns: Option<String>,
    pub name: String,
}

impl Loc {
    pub fn key(&self) -> String {
        self.res.key(self.ns.as_deref(), &self.name)
    }
    pub fn target(&self) -> Target<'_> {
        Target {
            group: &self.res.group,
            resource: &self.res.plural,
            name: &self.name,
        }
    }
}

/// Current time in Kubernetes' RFC 3339 form (second precision, UTC).
pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

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
fn summarize(body: &[u8]) -> String {
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
fn builtin_def(res: &Resource) -> Option<&'static str> {
    match &res.schema {
        SchemaRef::Builtin(d) => Some(d),
        SchemaRef::Custom(_) => None,
    }
}

pub(crate) fn meta(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    v.get("metadata")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

pub(crate) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    let o = v.as_object_mut().expect("objects are JSON objects");
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("just made an object")
}

pub(crate) fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    meta(v).get(field).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn finalizers(v: &Value) -> Vec<String> {
    meta(v)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses stored object bytes.
/// Only the metadata of a stored object, as `{"metadata": ...}` (the rest of the JSON is
/// skipped without being built), for controllers that follow every write.
pub(crate) fn parse_meta(obj: &Object) -> Value {
    #[derive(serde::Deserialize)]
    struct MetaOnly {
        #[serde(default)]
        metadata: Value,
    }
    let m: MetaOnly = serde_json::from_slice(&obj.data).unwrap_or(MetaOnly {
        metadata: Value::Null,
    });
    json!({ "metadata": m.metadata })
}

pub(crate) fn parse(obj: &Object) -> Value {
    serde_json::from_slice(&obj.data).expect("stored objects are valid JSON")
}

/// Selector attributes of an object: labels and the resource's selectable fields.
pub(crate) fn attrs_of(res: &Resource, v: &Value) -> Attrs {
    let labels = meta(v)
        .get("labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    let fields = res
        .selectable_fields
        .iter()
        .filter_map(|path| {
            let mut cur = v;
            for part in path.split('.') {
                cur = cur.get(part)?;
            }
            let s = match cur {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((Box::from(path.as_str()), Box::from(s.as_str())))
        })
        .chain(gc_attrs(v))
        .collect();
    Attrs { labels, fields }
}

/// Attribute names the garbage collector reads instead of parsing each written object. Field
/// selectors cannot name them (they accept only a resource's selectable fields).
pub(crate) const ATTR_UID: &str = "metadata.uid";
pub(crate) const ATTR_OWNERS: &str = "metadata.ownerReferences.uid";
pub(crate) const ATTR_DELETION: &str = "metadata.deletionTimestamp";

fn gc_attrs(v: &Value) -> Vec<(Box<str>, Box<str>)> {
    let m = meta(v);
    let mut out = vec![(Box::from(ATTR_UID), Box::from(meta_str(v, "uid")))];
    let owners: Vec<&str> = m
        .get("ownerReferences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|o| o["uid"].as_str()).collect())
        .unwrap_or_default();
    if !owners.is_empty() {
        out.push((Box::from(ATTR_OWNERS), Box::from(owners.join(","))));
    }
    let deleted = meta_str(v, "deletionTimestamp");
    if !deleted.is_empty() {
        out.push((Box::from(ATTR_DELETION), Box::from(deleted)));
    }
    out
}

/// The metadata the garbage collector needs (uid, owner uids, deletionTimestamp) as
/// `{"metadata": ...}`, from the attributes computed at write time; objects stored before
/// those attributes existed are parsed.
pub(crate) fn gc_meta(obj: &Object) -> Value {
    let Some(uid) = obj.attrs.field(ATTR_UID) else {
        return parse_meta(obj);
    };
    let mut m = json!({"uid": uid});
    if let Some(owners) = obj.attrs.field(ATTR_OWNERS) {
        m["ownerReferences"] = owners.split(',').map(|u| json!({"uid": u})).collect();
    }
    if let Some(d) = obj.attrs.field(ATTR_DELETION) {
        m["deletionTimestamp"] = json!(d);
    }
    json!({ "metadata": m })
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Everything but metadata and status: what a generation bump looks at.
fn spec_part(v: &Value) -> Map<String, Value> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

impl ApiServer {
    pub(crate) async fn resource_request(
        &self,
        info: RequestInfo,
        ctx: Ctx,
    ) -> ApiResult<Response<ResponseBody>> {
        let res = {
            let registry = self.state.registry.read();
            match registry.get(&info.group, &info.version, &info.resource) {
                Some(r) => r,
                // A group-version the server does not serve is outside every API handler.
                None if registry.resources_of(&info.group, &info.version).is_empty() => {
                    return Err(ApiError::page_not_found())
                }
                None => return Err(ApiError::no_route()),
            }
        };
        if !res.namespaced && info.namespace.is_some() {
            return Err(ApiError::no_route());
        }
        if res.namespaced && info.namespace.is_none() && info.name.is_some() {
            return Err(ApiError::no_route());
        }
        if let Some(sub) = info.subresource.as_deref() {
            let ok = match sub {
                "status" => res.status,
                "approval" => res.plural == "certificatesigningrequests",
                "scale" => res.scale.is_some(),
                "finalize" => res.plural == "namespaces" && res.group.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(ApiError::no_route());
            }
        }
        // Writes, and reads of the latest state, start from a view that includes every
        // write acknowledged before this request, through any hub replica. Reads at
        // resourceVersion "0" (any) are served from this replica's cache as they are.
        let latest = match ctx.method {
            Method::GET | Method::HEAD => {
                ctx.query.get("resourceVersion").unwrap_or("").is_empty()
                    && ctx.query.get("resourceVersionMatch").is_none()
            }
            _ => true,
        };
        if latest {
            self.state.store.sync().await.map_err(sync_error)?;
        }
        let Some(name) = info.name.clone() else {
            return match ctx.method {
                Method::GET | Method::HEAD => {
                    if ctx.query.flag("watch") {
                        self.watch(&res, info.namespace.as_deref(), &ctx).await
                    } else {
                        self.list(&res, info.namespace.as_deref(), &ctx).await
                    }
                }
                Method::POST => {
                    let ns = match (res.namespaced, info.namespace.clone()) {
                        (true, None) => return Err(ApiError::no_route()),
                        (_, ns) => ns,
                    };
                    let reply = self.create(&res, ns.as_deref(), &ctx).await?;
                    Ok(self.render_reply(&res, reply, ctx.output))
                }
                Method::DELETE => {
                    self.delete_collection(&res, info.namespace.as_deref(), &ctx)
                        .await
                }
                m => Err(ApiError::method_not_allowed(m.as_str(), &res.plural)),
            };
        };
        let loc = Loc {
            res: res.clone(),
            ns: info.namespace.clone(),
            name,
        };
        let sub = info.subresource.as_deref();
        if matches!(ctx.method, Method::GET | Method::HEAD) {
            // A get reads the latest state whatever resourceVersion says, but the value must
            // be one (kube-apiserver answers 500 for it; see docs/api-compatibility.md).
            crate::list::parse_rv(&ctx.query)?;
        }
        let reply = match (&ctx.method, sub) {
            (&Method::GET | &Method::HEAD, Some("scale")) => self.get_scale(&loc)?,
            (&Method::GET | &Method::HEAD, _) => self.get(&loc)?,
            (&Method::PUT, _) => self.update(&loc, sub, &ctx).await?,
            (&Method::PATCH, _) => self.patch(&loc, sub, &ctx).await?,
            (&Method::DELETE, None) => self.delete(&loc, &ctx).await?,
            (m, _) => return Err(ApiError::method_not_allowed(m.as_str(), &res.plural)),
        };
        if sub == Some("scale") {
            return Ok(json_with_warnings(reply));
        }
        Ok(self.render_reply(&res, reply, ctx.output))
    }

    fn render_reply(
        &self,
        res: &Resource,
        mut reply: Reply,
        output: Output,
    ) -> Response<ResponseBody> {
        if reply.body.get("kind").and_then(Value::as_str) != Some("Status") {
            reply.body = crate::table::render_one(res, reply.body, output);
        }
        json_with_warnings(reply)
    }

    pub(crate) fn get(&self, loc: &Loc) -> ApiResult<Reply> {
        let obj = self
            .state
            .store
            .get(&loc.key())
            .ok_or_else(|| ApiError::not_found(loc.target()))?;
        Ok(Reply {
            code: StatusCode::OK,
            body: self.present(&loc.res, parse(&obj)),
            warnings: vec![],
        })
    }

    /// Presents a stored object at the requested version (custom resources are stored at the
    /// version they were written with and served at any version: conversion strategy None).
    pub(crate) fn present(&self, res: &Resource, v: Value) -> Value {
        crate::convert::to_request(res, v)
    }

    async fn ensure_namespace_open(&self, res: &Resource, ns: &str, name: &str) -> ApiResult<()> {
        let key = format!("{}{ns}", crate::registry::key_prefix_of("", "namespaces"));
        let Some(nsobj) = self.state.store.get(&key) else {
            return Err(ApiError::not_found(Target {
                group: "",
                resource: "namespaces",
                name: ns,
            }));
        };
        if !meta_str(&parse(&nsobj), "deletionTimestamp").is_empty() {
            let message = format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            );
            return Err(ApiError::forbidden(
                Target {
                    group: &res.group,
                    resource: &res.plural,
                    name,
                },
                &message,
            )
            .with_cause(
                "NamespaceTerminating",
                "metadata.namespace",
                &format!("namespace {ns} is being terminated"),
            ));
        }
        Ok(())
    }

    pub(crate) async fn create(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        ctx: &Ctx,
    ) -> ApiResult<Reply> {
        let mut obj = decode_body(&ctx.content_type, &ctx.body, builtin_def(res), &res.kind)?;
        let fv = FieldValidation::from_query(&ctx.query)?;
        check_type_meta(res, &mut obj)?;
        {
            let m = meta_mut(&mut obj);
            match (ns, m.get("namespace").and_then(Value::as_str)) {
                (Some(want), Some(got)) if !got.is_empty() && got != want => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                (Some(want), _) => {
                    m.insert("namespace".into(), json!(want));
                }
                (None, _) => {
                    m.remove("namespace");
                }
            }
            if m.get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ApiError::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(f);
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now()));
            if res.generation || res.custom {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if res.status {
            let o = obj.as_object_mut().expect("object");
            if res.custom {
                o.remove("status");
            } else if o.contains_key("status") || res.group != "apiextensions.k8s.io" {
                o.insert("status".into(), json!({}));
            }
        }
        if res.group == "certificates.k8s.io" && res.plural == "certificatesigningrequests" {
            crate::csr::set_requester(&mut obj, ctx.user.as_deref());
        }
        let warnings = self.admit(res, &mut obj, None, fv)?;
        {
            let manager = field_manager(ctx)?;
            let scope = ManagedScope::new(res, None);
            let mctx = scope.context(&self.state.schema);
            crate::managed::record_update(&mctx, None, &mut obj, &manager)?;
        }
        let generate =
            meta_str(&obj, "name").is_empty() && !meta_str(&obj, "generateName").is_empty();
        if let Some(ns) = ns {
            self.ensure_namespace_open(res, ns, meta_str(&obj, "name"))
                .await?;
        }
        for attempt in 0..8 {
            if generate {
                let name = format!("{}{}", meta_str(&obj, "generateName"), random_suffix());
                meta_mut(&mut obj).insert("name".into(), json!(name));
            }
            let name = meta_str(&obj, "name").to_string();
            let causes = crate::validation::validate_metadata(&obj["metadata"], res.names);
            if !causes.is_empty() {
                return Err(ApiError::invalid(&res.group, &res.kind, &name, causes));
            }
            let loc = Loc {
                res: res.clone(),
                ns: ns.map(String::from),
                name: name.clone(),
            };
            if ctx.query.dry_run() {
                if self.state.store.get(&loc.key()).is_some() {
                    return Err(ApiError::already_exists(loc.target()));
                }
                return Ok(Reply {
                    code: StatusCode::CREATED,
                    body: obj,
                    warnings,
                });
            }
            let stored = crate::convert::to_storage(res, obj.clone());
            let write = Write::Put {
                attrs: attrs_of(res, &stored),
                value: stored,
                precondition: Precondition::MustNotExist,
            };
            match self.state.store.write(&loc.key(), write).await {
                Ok(ev) => {
                    self.after_write(res, &ev.object);
                    return Ok(Reply {
                        code: StatusCode::CREATED,
                        body: self.present(res, parse(&ev.object)),
                        warnings,
                    });
                }
                Err(StoreError::AlreadyExists { .. }) if generate && attempt < 7 => continue,
                Err(e) => return Err(store_error(e, loc.target())),
            }
        }
        unreachable!("the create loop returns on its last attempt")
    }

    /// Decoding, defaulting and validation shared by every write. `old` is the current object
    /// on updates. Returns warnings.
    pub(crate) fn admit(
        &self,
        res: &Resource,
        obj: &mut Value,
        old: Option<&Value>,
        fv: FieldValidation,
    ) -> ApiResult<Vec<String>> {
        let mut warnings = Vec::new();
        let name = meta_str(obj, "name").to_string();
        match &res.schema {
            SchemaRef::Builtin(def) => {
                let schema = self.state.schema.clone();
                let node = schema
                    .definition(def)
                    .ok_or_else(|| ApiError::internal(format!("no schema for {def}")))?;
                let issues = decode(&schema, node, obj);
                let mut unknown = Vec::new();
                for issue in issues {
                    match issue {
                        DecodeIssue::Unknown(p) => unknown.push(p),
                        DecodeIssue::Quantity(_) => {
                            return Err(ApiError::bad_request(format!(
                                "{kind} in version \"{v}\" cannot be handled as a {kind}: {msg}",
                                kind = res.kind,
                                v = res.version,
                                msg = crate::validation::QUANTITY_MSG,
                            )));
                        }
                        DecodeIssue::Type {
                            path,
                            found,
                            expected,
                        } => {
                            return Err(ApiError::bad_request(format!(
                                "{kind} in version \"{v}\" cannot be handled as a {kind}: json: cannot unmarshal {found} into Go struct field {kind}.{path} of type {expected}",
                                kind = res.kind,
                                v = res.version,
                            )));
                        }
                    }
                }
                let prefix = format!(
                    "{kind} in version \"{v}\" cannot be handled as a {kind}: ",
                    kind = res.kind,
                    v = res.version,
                );
                unknown_fields(fv, unknown, &prefix, &mut warnings)?;
                crate::builtin::apply_defaults(&res.group, &res.kind, obj);
                if old.is_none() {
                    crate::builtin::prepare_for_create(&res.group, &res.kind, obj);
                }
                let mut causes = crate::builtin::validate(&res.group, &res.kind, obj);
                if res.group == "apiextensions.k8s.io" {
                    causes.extend(crate::crd::validate_crd(obj, old));
                }
                if !causes.is_empty() {
                    return Err(ApiError::invalid(&res.group, &res.kind, &name, causes));
                }
            }
            SchemaRef::Custom(schema) => {
                let (unknown, causes) = crate::crd::admit_custom(schema.as_deref(), obj);
                unknown_fields(fv, unknown, "", &mut warnings)?;
                if !causes.is_empty() {
                    return Err(ApiError::invalid(&res.group, &res.kind, &name, causes));
                }
            }
        }
        let causes = self.run_validators(res, obj, old);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&res.group, &res.kind, &name, causes));
        }
        if let Some(old) = old {
            let mut causes = Vec::new();
            if res.group.is_empty() && res.kind == "Secret" && old.get("type") != obj.get("type") {
                causes.push(Cause::invalid("type", &obj["type"], "field is immutable"));
            }
            for kind in ["ConfigMap", "Secret"] {
                if res.group.is_empty()
                    && res.kind == kind
                    && old.get("immutable") == Some(&json!(true))
                {
                    for f in ["data", "binaryData", "stringData"] {
                        if old.get(f) != obj.get(f) {
                            causes.push(Cause::forbidden(
                                f,
                                "field is immutable when `immutable` is set",
                            ));
                        }
                    }
                }
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid(&res.group, &res.kind, &name, causes));
            }
        }
        Ok(warnings)
    }

    /// Bookkeeping after a write that concerns other parts of the server (CRDs).
    pub(crate) fn after_write(&self, res: &Resource, obj: &Object) {
        if res.group == "apiextensions.k8s.io" && res.plural == "customresourcedefinitions" {
            crate::crd::serve::on_crd_written(self, &parse(obj));
        }
    }

    pub(crate) async fn update(&self, loc: &Loc, sub: Option<&str>, ctx: &Ctx) -> ApiResult<Reply> {
        let def = if sub == Some("scale") {
            Some("io.k8s.api.autoscaling.v1.Scale")
        } else {
            builtin_def(&loc.res)
        };
        let kind = if sub == Some("scale") {
            "Scale"
        } else {
            &loc.res.kind
        };
        let mut body = decode_body(&ctx.content_type, &ctx.body, def, kind)?;
        if sub == Some("scale") {
            return self.write_scale(loc, body, ctx).await;
        }
        check_type_meta(&loc.res, &mut body)?;
        let body_name = meta_str(&body, "name");
        if body_name != loc.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                loc.name
            )));
        }
        if let Some(ns) = &loc.ns {
            let got = meta_str(&body, "namespace");
            if !got.is_empty() && got != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let rv: Option<u64> =
            match meta_str(&body, "resourceVersion") {
                "" => None,
                s => Some(s.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {s:?}"))
                })?),
            };
        self.guaranteed_update(loc, sub, ctx, rv, |_current| Ok(body.clone()))
            .await
    }

    pub(crate) async fn patch(&self, loc: &Loc, sub: Option<&str>, ctx: &Ctx) -> ApiResult<Reply> {
        let ct = ctx
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let kind = crate::patch::PatchKind::from_content_type(&ct)?;
        if kind == crate::patch::PatchKind::Apply {
            return self.apply_patch(loc, sub, ctx, &ct).await;
        }
        if ctx.query.get("force").is_some_and(|f| !f.is_empty()) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        if sub == Some("scale") {
            let current = self.get_scale(loc)?.body;
            let patched = crate::patch::apply(&self.state.schema, None, kind, &current, &ctx.body)?;
            return self.write_scale(loc, patched, ctx).await;
        }
        let schema_def = match &loc.res.schema {
            SchemaRef::Builtin(def) => Some(*def),
            SchemaRef::Custom(_) => None,
        };
        let state = self.state.clone();
        let body = ctx.body.clone();
        let strict = FieldValidation::from_query(&ctx.query)? == FieldValidation::Strict;
        let res = loc.res.clone();
        self.guaranteed_update(loc, sub, ctx, None, move |current| {
            let mut patched = crate::patch::apply(&state.schema, schema_def, kind, current, &body)?;
            if strict {
                strict_patch_result(&state.schema, &res, &patched)?;
            }
            // A resourceVersion in the patch is a precondition; otherwise the current one is.
            let rv_in_patch = meta_str(&patched, "resourceVersion").to_string();
            if rv_in_patch.is_empty() {
                meta_mut(&mut patched).insert(
                    "resourceVersion".into(),
                    current["metadata"]["resourceVersion"].clone(),
                );
            }
            Ok(patched)
        })
        .await
    }

    /// The read-modify-write loop of updates and patches: `make` builds the new object from
    /// the current one; conflicts with concurrent writers are retried unless the client named a
    /// resourceVersion.
    pub(crate) async fn guaranteed_update(
        &self,
        loc: &Loc,
        sub: Option<&str>,
        ctx: &Ctx,
        client_rv: Option<u64>,
        make: impl Fn(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Reply> {
        let fv = FieldValidation::from_query(&ctx.query)?;
        let manager = field_manager(ctx)?;
        let key = loc.key();
        let res = &loc.res;
        for _ in 0..32 {
            let current_obj = self
                .state
                .store
                .get_latest(&key)
                .ok_or_else(|| ApiError::not_found(loc.target()))?;
            let current = self.present(res, parse(&current_obj));
            let mut new = make(&current)?;
            if !new.is_object() {
                return Err(ApiError::bad_request("the object must be a JSON object"));
            }
            check_type_meta(res, &mut new)?;
            let rv_text = meta_str(&new, "resourceVersion").to_string();
            let want_rv = match client_rv {
                Some(rv) => Some(rv),
                None if !rv_text.is_empty() => Some(rv_text.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv_text:?}"))
                })?),
                None => None,
            };
            if let Some(rv) = want_rv {
                if rv != current_obj.mod_rev {
                    return Err(ApiError::conflict(loc.target(), ApiError::MODIFIED));
                }
            }
            let uid = meta_str(&new, "uid");
            if !uid.is_empty() && uid != meta_str(&current, "uid") {
                return Err(ApiError::conflict(
                    loc.target(),
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&current, "uid")
                    ),
                ));
            }
            new = self.merge_for_update(res, sub, &current, new)?;
            let warnings = self.admit(res, &mut new, Some(&current), fv)?;
            Self::bump_generation(res, sub, &current, &mut new);
            let causes = crate::validation::validate_metadata(&new["metadata"], res.names);
            if !causes.is_empty() {
                return Err(ApiError::invalid(&res.group, &res.kind, &loc.name, causes));
            }
            if !meta_str(&current, "deletionTimestamp").is_empty() {
                let old_f = finalizers(&current);
                let added: Vec<Value> = finalizers(&new)
                    .into_iter()
                    .filter(|f| !old_f.contains(f))
                    .map(Value::from)
                    .collect();
                if !added.is_empty() {
                    let detail = format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                        crate::errors::render_value(&Value::Array(added))
                    );
                    return Err(ApiError::invalid(
                        &res.group,
                        &res.kind,
                        &loc.name,
                        vec![Cause::forbidden("metadata.finalizers", &detail)],
                    ));
                }
            }
            {
                let scope = ManagedScope::new(res, sub);
                let mctx = scope.context(&self.state.schema);
                crate::managed::record_update(&mctx, Some(&current), &mut new, &manager)?;
            }
            let mut unchanged = current.clone();
            meta_mut(&mut unchanged).remove("resourceVersion");
            let mut cmp = new.clone();
            meta_mut(&mut cmp).remove("resourceVersion");
            if cmp == unchanged {
                // Nothing changed: no write, no new resourceVersion (as kube-apiserver).
                return Ok(Reply {
                    code: StatusCode::OK,
                    body: self.present(res, current),
                    warnings,
                });
            }
            if ctx.query.dry_run() {
                meta_mut(&mut new).insert(
                    "resourceVersion".into(),
                    json!(current_obj.mod_rev.to_string()),
                );
                return Ok(Reply {
                    code: StatusCode::OK,
                    body: self.present(res, new),
                    warnings,
                });
            }
            let deleting = ready_to_delete(res, &new);
            let stored = crate::convert::to_storage(res, new.clone());
            let write = if deleting {
                Write::Delete {
                    last: stored,
                    precondition: Precondition::ModRevision(current_obj.mod_rev),
                }
            } else {
                Write::Put {
                    attrs: attrs_of(res, &stored),
                    value: stored,
                    precondition: Precondition::ModRevision(current_obj.mod_rev),
                }
            };
            match self.state.store.write(&key, write).await {
                Ok(ev) => {
                    self.after_write(res, &ev.object);
                    if deleting {
                        crate::crd::serve::on_deleted(self, res, &parse(&ev.object));
                    }
                    return Ok(Reply {
                        code: StatusCode::OK,
                        body: self.present(res, parse(&ev.object)),
                        warnings,
                    });
                }
                Err(StoreError::Conflict { .. }) if want_rv.is_none() => continue,
                Err(e) => return Err(store_error(e, loc.target())),
            }
        }
        Err(ApiError::conflict(loc.target(), ApiError::MODIFIED))
    }

    /// Applies the rules of the main resource or a subresource to an update: status is owned by
    /// the status subresource, immutable metadata is kept, generation follows spec changes.
    fn merge_for_update(
        &self,
        res: &Resource,
        sub: Option<&str>,
        current: &Value,
        new: Value,
    ) -> ApiResult<Value> {
        let mut new = new;
        match sub {
            Some("status") => {
                // Only status changes; everything else comes from the current object.
                let mut merged = current.clone();
                match new.get("status") {
                    Some(s) => merged["status"] = s.clone(),
                    None => {
                        merged.as_object_mut().expect("object").remove("status");
                    }
                }
                new = merged;
            }
            Some("approval") => {
                // Approval changes the conditions only; the signer writes the certificate.
                let mut merged = current.clone();
                merged["status"]["conditions"] = new["status"]["conditions"].clone();
                new = merged;
            }
            Some("finalize") => {
                let mut merged = current.clone();
                merged["spec"]["finalizers"] = new["spec"]["finalizers"].clone();
                new = merged;
            }
            _ => {
                if res.group.is_empty() && res.plural == "namespaces" {
                    // spec.finalizers change only through the finalize subresource.
                    match current["spec"].get("finalizers") {
                        Some(f) => new["spec"]["finalizers"] = f.clone(),
                        None => {
                            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                                spec.remove("finalizers");
                            }
                        }
                    }
                }
                if res.status {
                    let o = new.as_object_mut().expect("object");
                    match current.get("status") {
                        Some(s) => {
                            o.insert("status".into(), s.clone());
                        }
                        None => {
                            o.remove("status");
                        }
                    }
                }
            }
        }
        let cur_meta = meta(current).clone();
        let m = meta_mut(&mut new);
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match cur_meta.get(f) {
                Some(v) => {
                    m.insert(f.into(), v.clone());
                }
                None => {
                    m.remove(f);
                }
            }
        }
        m.remove("selfLink");
        Ok(new)
    }

    /// Bumps `metadata.generation` when an update changed the spec, judged on the admitted
    /// objects (defaults and Go's encoding applied to both), as kube-apiserver's strategies do.
    fn bump_generation(res: &Resource, sub: Option<&str>, current: &Value, new: &mut Value) {
        if (res.generation || res.custom) && sub.is_none() && spec_part(current) != spec_part(new) {
            let g = meta(current)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(new).insert("generation".into(), json!(g));
        }
    }

    fn get_scale(&self, loc: &Loc) -> ApiResult<Reply> {
        let obj = self.get(loc)?.body;
        let paths = loc.res.scale.clone().ok_or_else(ApiError::no_route)?;
        let at = |p: &str| -> Value {
            let mut cur = &obj;
            for part in p.trim_start_matches('.').split('.') {
                cur = &cur[part];
            }
            cur.clone()
        };
        let m = meta(&obj);
        let mut status = json!({"replicas": at(&paths.status_replicas).as_i64().unwrap_or(0)});
        if let Some(sel) = &paths.label_selector {
            if let Some(s) = at(sel).as_str() {
                status["selector"] = json!(s);
            }
        }
        Ok(Reply {
            code: StatusCode::OK,
            body: json!({
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"),
                    "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp"),
                },
                // ScaleSpec.replicas is `omitempty` in Go: zero replicas leave `spec: {}`.
                "spec": match at(&paths.spec_replicas).as_i64().unwrap_or(0) {
                    0 => json!({}),
                    n => json!({"replicas": n}),
                },
                "status": status,
            }),
            warnings: vec![],
        })
    }

    async fn write_scale(&self, loc: &Loc, scale: Value, ctx: &Ctx) -> ApiResult<Reply> {
        let replicas = scale["spec"]["replicas"].as_i64().ok_or_else(|| {
            ApiError::invalid(
                "autoscaling",
                "Scale",
                &loc.name,
                vec![Cause::required("spec.replicas")],
            )
        })?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &loc.name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let rv: Option<u64> = scale["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok());
        let path = loc
            .res
            .scale
            .clone()
            .ok_or_else(ApiError::no_route)?
            .spec_replicas;
        self.guaranteed_update(loc, None, ctx, rv, |current| {
            let mut new = current.clone();
            let mut cur = &mut new;
            let parts: Vec<&str> = path.trim_start_matches('.').split('.').collect();
            for part in &parts[..parts.len() - 1] {
                if !cur[*part].is_object() {
                    cur[*part] = json!({});
                }
                cur = &mut cur[*part];
            }
            cur[parts[parts.len() - 1]] = json!(replicas);
            meta_mut(&mut new).remove("resourceVersion");
            Ok(new)
        })
        .await?;
        self.get_scale(loc)
    }
}

/// Whether an object being deleted has nothing left holding it.
fn ready_to_delete(res: &Resource, v: &Value) -> bool {
    if meta_str(v, "deletionTimestamp").is_empty() || !finalizers(v).is_empty() {
        return false;
    }
    let is_namespace = res.group.is_empty() && res.plural == "namespaces";
    !is_namespace
        || v["spec"]["finalizers"]
            .as_array()
            .is_none_or(|a| a.is_empty())
}

/// An internal request context (controllers writing through the API).
fn internal_ctx() -> Ctx {
    Ctx {
        user: None,
        method: Method::PUT,
        query: Query::default(),
        output: Output::Json,
        content_type: "application/json".into(),
        body: Bytes::new(),
        user_agent: "flotilla-apiserver".into(),
    }
}

impl ApiServer {
    /// Replaces an object's status through the status subresource (used by the server's own
    /// controllers).
    pub(crate) async fn write_status(&self, loc: &Loc, status: Value) -> ApiResult<Reply> {
        self.guaranteed_update(loc, Some("status"), &internal_ctx(), None, |current| {
            let mut new = current.clone();
            new["status"] = status.clone();
            meta_mut(&mut new).remove("resourceVersion");
            Ok(new)
        })
        .await
    }

    /// Removes one finalizer from an object (deleting it if it was the last one of an object
    /// being deleted).
    pub(crate) async fn remove_finalizer(&self, loc: &Loc, finalizer: &str) -> ApiResult<Reply> {
        self.guaranteed_update(loc, None, &internal_ctx(), None, |current| {
            let mut new = current.clone();
            let kept: Vec<String> = finalizers(current)
                .into_iter()
                .filter(|f| f != finalizer)
                .collect();
            let m = meta_mut(&mut new);
            m.remove("resourceVersion");
            if kept.is_empty() {
                m.remove("finalizers");
            } else {
                m.insert("finalizers".into(), json!(kept));
            }
            Ok(new)
        })
        .await
    }

    /// Clears a terminating namespace's `spec.finalizers` (the finalize subresource), which
    /// deletes it when nothing else holds it.
    pub(crate) async fn finalize_namespace(&self, loc: &Loc) -> ApiResult<Reply> {
        self.guaranteed_update(loc, Some("finalize"), &internal_ctx(), None, |current| {
            let mut new = current.clone();
            new["spec"]["finalizers"] = json!([]);
            meta_mut(&mut new).remove("resourceVersion");
            Ok(new)
        })
        .await
    }

    /// Applies a change to an object through the update path (used by the server's own
    /// controllers).
    pub(crate) async fn modify(&self, loc: &Loc, f: impl Fn(&mut Value)) -> ApiResult<Reply> {
        self.guaranteed_update(loc, None, &internal_ctx(), None, |current| {
            let mut new = current.clone();
            f(&mut new);
            meta_mut(&mut new).remove("resourceVersion");
            Ok(new)
        })
        .await
    }
}

/// Under strict field validation, a patch whose result has fields the schema does not know is
/// refused as kube-apiserver refuses it: 422, the patched object quoted under the `patch` field.
fn strict_patch_result(
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
fn unknown_fields(
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

/// The answer when the store cannot bring its view up to date.
pub(crate) fn sync_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(m) => ApiError::unavailable(m),
        StoreError::Timeout(m) => ApiError::timeout(m),
        StoreError::Closed => ApiError::unavailable("the store is shutting down"),
        e => ApiError::internal(e.to_string()),
    }
}

pub(crate) fn store_error(e: StoreError, t: Target<'_>) -> ApiError {
    match e {
        StoreError::AlreadyExists { .. } => ApiError::already_exists(t),
        StoreError::NotFound { .. } => ApiError::not_found(t),
        StoreError::Conflict { .. } => ApiError::conflict(t, ApiError::MODIFIED),
        StoreError::Compacted { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        StoreError::TooNew { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        ))
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})),
        StoreError::Closed => ApiError::unavailable("the store is shutting down"),
        StoreError::Unavailable(m) => ApiError::unavailable(m),
        StoreError::Timeout(m) => ApiError::timeout(m),
        e => ApiError::internal(e.to_string()),
    }
}

fn json_with_warnings(reply: Reply) -> Response<ResponseBody> {
    let mut r = json_response(reply.code, &reply.body);
    for w in reply.warnings {
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\"")))
        {
            r.headers_mut().append(http::header::WARNING, v);
        }
    }
    r
}
