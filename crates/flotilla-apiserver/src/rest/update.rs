//! Update and patch: an object's new version merged from the request (whole object or
//! patch, spec or a subresource), admitted, and written under optimistic concurrency
//! (`guaranteed_update`), generation bumped on spec changes, deletion completed once no
//! finalizer holds the object.

use flotilla_store::{Error as StoreError, Precondition, Write};
use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::apply::{field_manager, ManagedScope};
use crate::errors::{ApiError, ApiResult, Cause};
use crate::registry::{Resource, SchemaRef};
use crate::server::ApiServer;

use super::*;

impl ApiServer {
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
            if same_but_resource_version(&new, &current) {
                // Nothing changed: no write, no new resourceVersion (as kube-apiserver).
                return Ok(Reply {
                    raw: None,
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
                    raw: None,
                    code: StatusCode::OK,
                    body: self.present(res, new),
                    warnings,
                });
            }
            let deleting = ready_to_delete(res, &new);
            let stored = crate::convert::to_storage(res, new);
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
                    return Ok(self.written(res, StatusCode::OK, &ev.object, warnings));
                }
                Err(StoreError::Conflict { .. }) if want_rv.is_none() => continue,
                Err(e) => return Err(store_error(e, loc.target())),
            }
        }
        Err(ApiError::conflict(loc.target(), ApiError::MODIFIED))
    }

    /// Applies the rules of the main resource or a subresource to an update: status is owned by
    /// the status subresource, immutable metadata is kept, generation follows spec changes.
    pub(crate) fn merge_for_update(
        &self,
        res: &Resource,
        sub: Option<&str>,
        current: &Value,
        new: Value,
    ) -> ApiResult<Value> {
        let mut new = new;
        match sub {
            Some("status") => {
                // Only status changes; everything else comes from the current object (whose
                // own status is not copied).
                let mut status = new.get_mut("status").map(Value::take);
                let mut merged = Map::new();
                for (k, v) in current.as_object().into_iter().flatten() {
                    if k != "status" {
                        merged.insert(k.clone(), v.clone());
                    } else if let Some(s) = status.take() {
                        merged.insert(k.clone(), s);
                    }
                }
                if let Some(s) = status {
                    merged.insert("status".into(), s);
                }
                new = Value::Object(merged);
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
        let cur_meta = meta(current);
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
    pub(crate) fn bump_generation(
        res: &Resource,
        sub: Option<&str>,
        current: &Value,
        new: &mut Value,
    ) {
        if (res.generation || res.custom) && sub.is_none() && spec_part(current) != spec_part(new) {
            let g = meta(current)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(new).insert("generation".into(), json!(g));
        }
    }
}

/// Whether two objects are equal but for `metadata.resourceVersion` (an update that changes
/// nothing else is not written), compared in place.
pub(crate) fn same_but_resource_version(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let empty = Map::new();
    let (ma, mb) = (
        a.get("metadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty),
        b.get("metadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty),
    );
    let kept = |m: &Map<String, Value>| m.len() - usize::from(m.contains_key("resourceVersion"));
    let same_meta = kept(ma) == kept(mb)
        && ma
            .iter()
            .filter(|(k, _)| *k != "resourceVersion")
            .all(|(k, v)| mb.get(k) == Some(v));
    let rest = |o: &Map<String, Value>| o.keys().filter(|k| *k != "metadata").count();
    same_meta
        && rest(a) == rest(b)
        && a.iter()
            .filter(|(k, _)| *k != "metadata")
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Everything but metadata and status: what a generation bump looks at.
pub(crate) fn spec_part(v: &Value) -> Map<String, Value> {
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

/// Whether an object being deleted has nothing left holding it.
pub(crate) fn ready_to_delete(res: &Resource, v: &Value) -> bool {
    if meta_str(v, "deletionTimestamp").is_empty() || !finalizers(v).is_empty() {
        return false;
    }
    let is_namespace = res.group.is_empty() && res.plural == "namespaces";
    !is_namespace
        || v["spec"]["finalizers"]
            .as_array()
            .is_none_or(|a| a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::same_but_resource_version as same;
    use serde_json::json;

    #[test]
    fn an_update_is_a_change_unless_only_the_resource_version_differs() {
        let a = json!({"kind": "K", "metadata": {"name": "a", "resourceVersion": "1", "labels": {"x": "1"}}, "spec": {"n": 1}});
        // Key order and the resourceVersion (present, different or absent) do not count.
        let b = json!({"spec": {"n": 1}, "metadata": {"labels": {"x": "1"}, "resourceVersion": "2", "name": "a"}, "kind": "K"});
        let c =
            json!({"kind": "K", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"n": 1}});
        assert!(same(&a, &b) && same(&b, &a) && same(&a, &c) && same(&c, &a));
        // Any other difference does, in metadata or elsewhere, added or removed.
        for other in [
            json!({"kind": "K", "metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"n": 1}}),
            json!({"kind": "K", "metadata": {"name": "a", "labels": {"x": "1"}, "uid": "u"}, "spec": {"n": 1}}),
            json!({"kind": "K", "metadata": {"name": "a"}, "spec": {"n": 1}}),
            json!({"kind": "K", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"n": 2}}),
            json!({"kind": "K", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"n": 1}, "status": {}}),
            json!({"kind": "K", "metadata": {"name": "a", "labels": {"x": "1"}}}),
        ] {
            assert!(!same(&a, &other) && !same(&other, &a), "{other}");
        }
        // Without metadata, an empty one is the same.
        assert!(same(
            &json!({"spec": 1}),
            &json!({"spec": 1, "metadata": {"resourceVersion": "3"}})
        ));
    }
}
