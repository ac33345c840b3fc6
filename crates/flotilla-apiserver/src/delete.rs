//! Deletion: delete with preconditions and propagation (finalizers, deletionTimestamp) and
//! deletecollection.

use std::sync::Arc;

use flotilla_store::{Error as StoreError, Precondition, Write};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::registry::Resource;
use crate::rest::{
    attrs_of, decode_body, finalizers, meta_mut, meta_str, now, parse, store_error, Ctx, Loc, Reply,
};
use crate::server::{json_response, ApiServer, ResponseBody};

impl ApiServer {
    pub(crate) async fn delete(&self, loc: &Loc, ctx: &Ctx) -> ApiResult<Reply> {
        let opts = delete_options(ctx)?;
        self.delete_with(loc, &opts, opts.dry_run || ctx.query.dry_run())
            .await
    }

    pub(crate) async fn delete_with(
        &self,
        loc: &Loc,
        opts: &DeleteOptions,
        dry_run: bool,
    ) -> ApiResult<Reply> {
        let key = loc.key();
        let res = &loc.res;
        for _ in 0..32 {
            let cur_obj = self
                .state
                .store
                .get_latest(&key)
                .ok_or_else(|| ApiError::not_found(loc.target()))?;
            let current = parse(&cur_obj);
            if let Some(uid) = &opts.uid {
                if uid != meta_str(&current, "uid") {
                    return Err(ApiError::conflict(
                        loc.target(),
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            meta_str(&current, "uid")
                        ),
                    ));
                }
            }
            if let Some(rv) = opts.resource_version {
                if rv != cur_obj.mod_rev {
                    return Err(ApiError::conflict(
                        loc.target(),
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            cur_obj.mod_rev
                        ),
                    ));
                }
            }
            let mut fins = finalizers(&current);
            if let Some(f) = crate::crd::deletion_finalizer(res, &current) {
                if !fins.iter().any(|x| x == f) {
                    fins.push(f.to_string());
                }
            }
            match opts.propagation.as_deref() {
                Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                    fins.retain(|f| f != "orphan");
                    fins.push("foregroundDeletion".into());
                }
                Some("Orphan") if !fins.iter().any(|f| f == "orphan") => {
                    fins.retain(|f| f != "foregroundDeletion");
                    fins.push("orphan".into());
                }
                _ => {}
            }
            let is_namespace = res.group.is_empty() && res.plural == "namespaces";
            let ns_finalizers = is_namespace
                && current["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
            let graceful = !fins.is_empty() || ns_finalizers;
            if graceful {
                let mut new = current.clone();
                let m = meta_mut(&mut new);
                if !m.contains_key("deletionTimestamp") {
                    m.insert("deletionTimestamp".into(), json!(now()));
                    // kube-apiserver's generic store marks the deletion with a zero grace
                    // period and a new generation; CRDs have a registry of their own that
                    // sets the timestamp only.
                    let is_crd = res.group == "apiextensions.k8s.io"
                        && res.plural == "customresourcedefinitions";
                    if !is_crd {
                        m.insert("deletionGracePeriodSeconds".into(), json!(0));
                        if let Some(g) = m
                            .get("generation")
                            .and_then(Value::as_i64)
                            .filter(|g| *g > 0)
                        {
                            m.insert("generation".into(), json!(g + 1));
                        }
                    }
                }
                m.insert("finalizers".into(), json!(fins));
                if fins.is_empty() {
                    m.remove("finalizers");
                }
                if is_namespace {
                    new["status"]["phase"] = json!("Terminating");
                }
                if new == current || dry_run {
                    return Ok(Reply {
                        raw: None,
                        code: StatusCode::OK,
                        body: self.present(res, new),
                        warnings: vec![],
                    });
                }
                let write = Write::Put {
                    attrs: attrs_of(res, &new),
                    value: new,
                    precondition: Precondition::ModRevision(cur_obj.mod_rev),
                };
                match self.state.store.write(&key, write).await {
                    Ok(ev) => {
                        self.after_write(res, &ev.object);
                        return Ok(Reply {
                            raw: None,
                            code: StatusCode::OK,
                            body: self.present(res, parse(&ev.object)),
                            warnings: vec![],
                        });
                    }
                    Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. })
                        if opts.resource_version.is_none() =>
                    {
                        continue
                    }
                    Err(e) => return Err(store_error(e, loc.target())),
                }
            }
            let mut details =
                json!({"name": loc.name, "kind": res.plural, "uid": meta_str(&current, "uid")});
            if !res.group.is_empty() {
                details["group"] = json!(res.group);
            }
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details,
            });
            if dry_run {
                return Ok(Reply {
                    raw: None,
                    code: StatusCode::OK,
                    body: status,
                    warnings: vec![],
                });
            }
            let write = Write::Delete {
                last: current.clone(),
                precondition: Precondition::ModRevision(cur_obj.mod_rev),
            };
            match self.state.store.write(&key, write).await {
                Ok(ev) => {
                    crate::crd::serve::on_deleted(self, res, &parse(&ev.object));
                    return Ok(Reply {
                        raw: None,
                        code: StatusCode::OK,
                        body: status,
                        warnings: vec![],
                    });
                }
                Err(StoreError::Conflict { .. }) if opts.resource_version.is_none() => continue,
                Err(e) => return Err(store_error(e, loc.target())),
            }
        }
        Err(ApiError::conflict(loc.target(), ApiError::MODIFIED))
    }

    pub(crate) async fn delete_collection(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        ctx: &Ctx,
    ) -> ApiResult<Response<ResponseBody>> {
        let opts = delete_options(ctx)?;
        let filter = crate::list::Filter::from_query(res, &ctx.query)?;
        let snap = self.state.store.snapshot();
        let prefix = res.key_prefix(ns);
        let targets: Vec<(Option<String>, String)> = snap
            .range(&prefix, None)
            .filter(|o| filter.matches(res, o))
            .map(|o| crate::list::ns_name(res, &o.key))
            .collect();
        let mut items = Vec::new();
        for (ns, name) in targets {
            let loc = Loc {
                res: res.clone(),
                ns,
                name,
            };
            let before = self
                .state
                .store
                .get(&loc.key())
                .map(|o| self.present(res, parse(&o)));
            match self
                .delete_with(&loc, &opts, opts.dry_run || ctx.query.dry_run())
                .await
            {
                // An object deleted at once is listed as it last was; a held one as it is now.
                Ok(r) if r.body["kind"] == "Status" => items.extend(before),
                Ok(r) => items.push(r.body),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let mut metadata = json!({"resourceVersion": self.state.store.revision().to_string()});
        if res.custom {
            // As kube-apiserver's unstructured lists of custom resources.
            metadata["continue"] = json!("");
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
                    "metadata": metadata, "items": items}),
        ))
    }
}

/// Parsed delete options.
#[derive(Debug, Default, Clone)]
pub(crate) struct DeleteOptions {
    pub propagation: Option<String>,
    /// `dryRun: ["All"]` in the body (the query parameter is read separately).
    pub dry_run: bool,
    pub uid: Option<String>,
    pub resource_version: Option<u64>,
}

fn delete_options(ctx: &Ctx) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions {
        propagation: ctx.query.get("propagationPolicy").map(String::from),
        ..Default::default()
    };
    if ctx.query.get("orphanDependents") == Some("true") {
        o.propagation = Some("Orphan".into());
    }
    if !ctx.body.is_empty() {
        let body = decode_body(
            &ctx.content_type,
            &ctx.body,
            Some("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
            "DeleteOptions",
        )?;
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation = Some(p.into());
        }
        match body.get("dryRun") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::Array(a)) if a.len() == 1 && a[0] == "All" => o.dry_run = true,
            Some(other) => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    vec![crate::errors::Cause::not_supported(
                        "dryRun",
                        other,
                        &["All"],
                    )],
                ))
            }
        }
        if body.get("orphanDependents") == Some(&json!(true)) {
            o.propagation = Some("Orphan".into());
        }
        if let Some(u) = body["preconditions"]["uid"].as_str() {
            o.uid = Some(u.into());
        }
        if let Some(rv) = body["preconditions"]["resourceVersion"].as_str() {
            o.resource_version =
                Some(rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv:?}"))
                })?);
        }
    }
    if let Some(p) = &o.propagation {
        if !matches!(p.as_str(), "Foreground" | "Background" | "Orphan") {
            return Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                vec![Cause::not_supported(
                    "propagationPolicy",
                    &json!(p),
                    &["Foreground", "Background", "Orphan"],
                )],
            ));
        }
    }
    Ok(o)
}
