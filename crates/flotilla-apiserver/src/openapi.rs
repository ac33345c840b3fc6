//! OpenAPI v2 (`/openapi/v2`) and v3 (`/openapi/v3`, `/openapi/v3/<group-version>`) documents,
//! built from Kubernetes' own definitions plus the schemas of established CRDs. They carry what
//! kubectl looks for: definitions with `x-kubernetes-group-version-kind` (for `explain` and
//! client-side validation) and PATCH operations that declare the `fieldValidation` parameter (so
//! kubectl leaves validation to the server).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::errors::{ApiError, ApiResult};
use crate::registry::{Resource, SchemaRef};
use crate::rest::Ctx;
use crate::schema::GIT_VERSION;
use crate::server::{bytes_response, ApiServer, ResponseBody};

/// The definition name of a resource's schema.
pub(crate) fn definition_name(r: &Resource) -> String {
    match &r.schema {
        SchemaRef::Builtin(d) => d.to_string(),
        SchemaRef::Custom(_) => {
            let reversed: Vec<&str> = r.group.split('.').rev().collect();
            format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
        }
    }
}

fn gvk(r: &Resource) -> Value {
    json!([{"group": r.group, "version": r.version, "kind": r.kind}])
}

/// The definitions of custom resources, as OpenAPI schemas.
fn custom_definition(r: &Resource) -> Value {
    let SchemaRef::Custom(schema) = &r.schema else {
        return Value::Null;
    };
    let mut s = schema
        .as_deref()
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let props = s
        .as_object_mut()
        .map(|o| o.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(p)) = props {
        p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        p.insert("metadata".into(), json!({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "description": "Standard object's metadata."}));
    }
    s["x-kubernetes-group-version-kind"] = gvk(r);
    s
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(r) = x.as_str() {
                        out.push(r.rsplit('/').next().unwrap_or(r).to_string());
                    }
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The definitions needed by `resources` (transitively), plus the common meta types.
fn definitions_for(
    server: &ApiServer,
    resources: &[std::sync::Arc<Resource>],
) -> Map<String, Value> {
    let schema = &server.state.schema;
    let mut out = Map::new();
    let mut todo: Vec<String> = vec![
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
    ];
    for r in resources {
        let name = definition_name(r);
        if r.custom {
            let d = custom_definition(r);
            collect_refs(&d, &mut todo);
            out.insert(name, d);
        } else {
            todo.push(name.clone());
            let list = format!("{name}List");
            if schema.definition(&list).is_some() {
                todo.push(list);
            }
        }
    }
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) || out.contains_key(&name) {
            continue;
        }
        if let Some(d) = schema.definition(&name) {
            collect_refs(d, &mut todo);
            out.insert(name, d.clone());
        }
    }
    out
}

fn query_param(name: &str, v3: bool) -> Value {
    if v3 {
        json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
    } else {
        json!({"name": name, "in": "query", "type": "string", "uniqueItems": true})
    }
}

fn operation(r: &Resource, action: &str, v3: bool) -> Value {
    let def = definition_name(r);
    let ref_prefix = if v3 {
        "#/components/schemas/"
    } else {
        "#/definitions/"
    };
    let target = if action == "list" {
        format!("{def}List")
    } else {
        def
    };
    let response = if v3 {
        json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("{ref_prefix}{target}")}}}})
    } else {
        json!({"description": "OK", "schema": {"$ref": format!("{ref_prefix}{target}")}})
    };
    let mut params = vec![query_param("pretty", v3)];
    if matches!(action, "post" | "put" | "patch") {
        params.extend(
            ["dryRun", "fieldManager", "fieldValidation"]
                .iter()
                .map(|p| query_param(p, v3)),
        );
    }
    if action == "patch" {
        params.push(query_param("force", v3));
    }
    if action == "list" {
        params.extend(
            [
                "labelSelector",
                "fieldSelector",
                "limit",
                "continue",
                "resourceVersion",
                "resourceVersionMatch",
                "watch",
                "allowWatchBookmarks",
                "timeoutSeconds",
                "sendInitialEvents",
            ]
            .iter()
            .map(|p| query_param(p, v3)),
        );
    }
    json!({
        "description": format!("{action} {}", r.kind),
        "operationId": format!("{action}{}{}", r.kind, r.version),
        "parameters": params,
        "responses": {"200": response, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    })
}

fn paths_for(resources: &[std::sync::Arc<Resource>], v3: bool) -> Map<String, Value> {
    let mut paths = Map::new();
    for r in resources {
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(
            collection.clone(),
            json!({"get": operation(r, "list", v3), "post": operation(r, "post", v3), "delete": operation(r, "deletecollection", v3)}),
        );
        let item = format!("{collection}/{{name}}");
        paths.insert(
            item.clone(),
            json!({"get": operation(r, "get", v3), "put": operation(r, "put", v3), "patch": operation(r, "patch", v3), "delete": operation(r, "delete", v3)}),
        );
        if r.status {
            paths.insert(
                format!("{item}/status"),
                json!({"get": operation(r, "get", v3), "put": operation(r, "put", v3), "patch": operation(r, "patch", v3)}),
            );
        }
    }
    paths
}

/// Rewrites v2 references to v3 ones, wrapping `$ref`s that have siblings in `allOf` as
/// kube-apiserver publishes them.
fn to_v3(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                *r = r.replace("#/definitions/", "#/components/schemas/");
                if m.len() > 1 {
                    let r = m.remove("$ref").expect("just seen");
                    m.insert("allOf".into(), json!([{"$ref": r}]));
                }
            }
            for x in m.values_mut() {
                to_v3(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(to_v3),
        _ => {}
    }
}

fn gv_path(r: &Resource) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

fn json_bytes(v: &Value) -> Response<ResponseBody> {
    bytes_response(
        StatusCode::OK,
        "application/json",
        Bytes::from(serde_json::to_vec(v).expect("JSON encodes")),
    )
}

/// Serves `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<gv>`.
pub(crate) fn serve(
    server: &ApiServer,
    path: &str,
    ctx: &Ctx,
) -> ApiResult<Response<ResponseBody>> {
    let resources: Vec<_> = server.state.registry.read().all().cloned().collect();
    if path == "/openapi/v2" {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": GIT_VERSION},
            "paths": paths_for(&resources, false),
            "definitions": definitions_for(server, &resources),
            "security": [{"BearerToken": []}],
            "securityDefinitions": {"BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            }},
        });
        if let crate::server::Output::OpenApiV2Protobuf(_) = ctx.output {
            let b = crate::openapi_proto::document(&doc);
            return Ok(bytes_response(
                StatusCode::OK,
                crate::openapi_proto::RESPONSE_MEDIA_TYPE,
                Bytes::from(b),
            ));
        }
        return Ok(json_bytes(&doc));
    }
    let mut by_gv: BTreeMap<String, Vec<std::sync::Arc<Resource>>> = BTreeMap::new();
    for r in &resources {
        by_gv.entry(gv_path(r)).or_default().push(r.clone());
    }
    if path == "/openapi/v3" {
        let mut paths = Map::new();
        for (gv, rs) in &by_gv {
            // The hash changes whenever the group-version's resources or schemas change.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for r in rs {
                r.kind.hash(&mut h);
                if let SchemaRef::Custom(Some(s)) = &r.schema {
                    s.to_string().hash(&mut h);
                }
                r.printer_columns.len().hash(&mut h);
            }
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={:016X}", h.finish())}),
            );
        }
        // kube-openapi writes this index without a content type, so Go's server sniffs one.
        return Ok(bytes_response(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from(serde_json::to_vec(&json!({"paths": paths})).expect("JSON encodes")),
        ));
    }
    let gv = path.trim_start_matches("/openapi/v3/");
    let rs = by_gv.get(gv).ok_or_else(ApiError::no_route)?;
    let mut doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths_for(rs, true),
        "components": {"schemas": definitions_for(server, rs)},
    });
    to_v3(&mut doc);
    Ok(json_bytes(&doc))
}
