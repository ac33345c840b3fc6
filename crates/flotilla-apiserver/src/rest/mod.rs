//! Handlers of resource requests. This module holds the request context (`Ctx`, `Loc`,
//! `Reply`), the routing of a resource request to its handler, get, and the mapping of store
//! errors; the handlers are `create.rs`, `update.rs` (update and patch, status included) and
//! `subresources.rs` (scale; the controllers' internal writes); `decode.rs` reads request
//! bodies; `meta.rs` is object metadata and the store's attributes. Deletion is in
//! `delete.rs`, server-side apply in `apply.rs`, list and watch in `list.rs`.

mod create;
mod decode;
mod meta;
mod subresources;
mod update;

use std::sync::Arc;

use bytes::Bytes;
use flotilla_store::Error as StoreError;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Target};
use crate::registry::Resource;
use crate::request::{Query, RequestInfo};
use crate::server::{json_response, ApiServer, Output, ResponseBody};

pub(crate) use decode::*;
pub(crate) use meta::*;

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
    /// The body as stored JSON, when it is exactly what the client gets (a write's result in
    /// the version it was written in); `body` is then Null and is parsed only when the
    /// response needs another form (a table, partial metadata).
    pub raw: Option<Bytes>,
}

impl Reply {
    /// A reply whose body is stored JSON, sent as it is.
    pub(crate) fn stored(code: StatusCode, raw: Bytes, warnings: Vec<String>) -> Self {
        Self {
            raw: Some(raw),
            code,
            body: Value::Null,
            warnings,
        }
    }
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
        if reply.raw.is_some() {
            if output == Output::Json {
                return json_with_warnings(reply);
            }
            if let Some(raw) = reply.raw.take() {
                reply.body = serde_json::from_slice(&raw).expect("stored objects are valid JSON");
            }
        }
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
            raw: None,
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

    /// The reply to a write: the stored bytes as they are when they are in the requested form
    /// (no decode and re-encode), else the stored object presented.
    pub(crate) fn written(
        &self,
        res: &Resource,
        code: StatusCode,
        obj: &flotilla_store::Object,
        warnings: Vec<String>,
    ) -> Reply {
        if !crate::convert::needs_conversion(res)
            || crate::convert::stored_in_version(res, &obj.data)
        {
            return Reply::stored(code, obj.data.clone(), warnings);
        }
        Reply {
            raw: None,
            code,
            body: self.present(res, parse(obj)),
            warnings,
        }
    }
}

/// The answer when the store cannot bring its view up to date.
pub(crate) fn sync_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(m) => ApiError::unavailable(m),
        StoreError::Timeout(m) => ApiError::timeout(m),
        StoreError::Closed => ApiError::store_closed(),
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
        StoreError::Closed => ApiError::store_closed(),
        StoreError::Unavailable(m) => ApiError::unavailable(m),
        StoreError::Timeout(m) => ApiError::timeout(m),
        e => ApiError::internal(e.to_string()),
    }
}

fn json_with_warnings(reply: Reply) -> Response<ResponseBody> {
    let mut r = match reply.raw {
        Some(raw) => crate::server::bytes_response(reply.code, "application/json", raw),
        None => json_response(reply.code, &reply.body),
    };
    for w in reply.warnings {
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\"")))
        {
            r.headers_mut().append(http::header::WARNING, v);
        }
    }
    r
}
