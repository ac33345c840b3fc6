//! Create: the namespace must exist and not be terminating, names generated, metadata set,
//! admission (defaults, validation, admission hooks), then the store's create.

use std::sync::Arc;

use flotilla_store::{Error as StoreError, Object, Precondition, Write};
use http::StatusCode;
use serde_json::{json, Value};

use crate::apply::{field_manager, ManagedScope};
use crate::errors::{ApiError, ApiResult, Cause, Target};
use crate::registry::{Resource, SchemaRef};
use crate::schema::{decode, DecodeIssue};
use crate::server::ApiServer;

use super::*;

impl ApiServer {
    pub(crate) async fn ensure_namespace_open(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
    ) -> ApiResult<()> {
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
                    raw: None,
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
                    return Ok(self.written(res, StatusCode::CREATED, &ev.object, warnings));
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
}
