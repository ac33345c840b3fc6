//! Subresources besides status (which update and patch handle): scale, read and written
//! through the resource's replica paths; and the internal writes the server's controllers
//! make through the same handlers (status, finalizers, namespace finalize).

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::request::Query;
use crate::server::{ApiServer, Output};

use super::*;

impl ApiServer {
    pub(crate) fn get_scale(&self, loc: &Loc) -> ApiResult<Reply> {
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
            raw: None,
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

    pub(crate) async fn write_scale(&self, loc: &Loc, scale: Value, ctx: &Ctx) -> ApiResult<Reply> {
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

/// An internal request context (controllers writing through the API).
pub(crate) fn internal_ctx() -> Ctx {
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
