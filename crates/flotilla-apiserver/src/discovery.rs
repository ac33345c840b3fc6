//! Discovery: `/api`, `/apis`, `/apis/GROUP`, and the resource lists of each group/version.
//!
//! Both formats: the legacy one (a request per group version) and aggregated discovery
//! (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList at `/api` and `/apis`, every group's
//! resources in one response), which kubectl and client-go ask for first.

use http::Response;
use http::StatusCode;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::rest::Ctx;
use crate::server::{
    bytes_response, json_response, ApiServer, Output, ResponseBody, AGGREGATED_DISCOVERY,
};
use bytes::Bytes;

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

fn resource_entries(r: &Resource) -> Vec<Value> {
    let mut main = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
        "storageVersionHash": r.storage_version_hash(),
    });
    if !r.short_names.is_empty() {
        main["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        main["categories"] = json!(r.categories);
    }
    let mut out = vec![main];
    if r.status {
        out.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": ["get", "patch", "update"]}));
    }
    if r.scale.is_some() {
        out.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                        "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
    }
    if r.group.is_empty() && r.plural == "namespaces" {
        out.push(
            json!({"name": "namespaces/finalize", "singularName": "", "namespaced": false,
                        "kind": "Namespace", "verbs": ["update"]}),
        );
    }
    out
}

/// A resource as aggregated discovery lists it, with its subresources.
fn aggregated_resource(r: &Resource) -> Value {
    let kind = |k: &str| json!({"group": "", "version": "", "kind": k});
    let mut out = json!({
        "resource": r.plural,
        "responseKind": kind(&r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    let mut subs = Vec::new();
    if r.group.is_empty() && r.plural == "namespaces" {
        subs.push(
            json!({"subresource": "finalize", "responseKind": kind(&r.kind), "verbs": ["update"]}),
        );
    }
    if r.scale.is_some() {
        subs.push(json!({"subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"]}));
    }
    if r.status {
        subs.push(json!({"subresource": "status", "responseKind": kind(&r.kind), "verbs": ["get", "patch", "update"]}));
    }
    if !subs.is_empty() {
        out["subresources"] = json!(subs);
    }
    out
}

/// `/api` (the core group) or `/apis` (every other group) as an APIGroupDiscoveryList.
fn aggregated(registry: &crate::registry::Registry, core: bool) -> Value {
    let groups = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        registry.groups()
    };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let mut resources = registry.resources_of(&g, v);
                    resources.sort_by(|a, b| a.plural.cmp(&b.plural));
                    let resources: Vec<Value> =
                        resources.iter().map(|r| aggregated_resource(r)).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !g.is_empty() {
                metadata["name"] = json!(g);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}

/// Serves a discovery path; 404 for anything else.
pub(crate) fn serve(
    server: &ApiServer,
    path: &str,
    ctx: &Ctx,
) -> ApiResult<Response<ResponseBody>> {
    let registry = server.state.registry.read();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if ctx.output == Output::AggregatedDiscovery {
        let body = aggregated(&registry, parts.as_slice() == ["api"]);
        return Ok(bytes_response(
            StatusCode::OK,
            AGGREGATED_DISCOVERY,
            Bytes::from(serde_json::to_vec(&body).expect("JSON")),
        ));
    }
    let body = match parts.as_slice() {
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }),
        ["apis"] => {
            let groups: Vec<Value> = registry
                .groups()
                .iter()
                .map(|(g, vs)| group_json(g, vs))
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        ["apis", group] => {
            let (g, vs) = registry
                .groups()
                .into_iter()
                .find(|(g, _)| g == group)
                .ok_or_else(ApiError::page_not_found)?;
            let mut v = group_json(&g, &vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        }
        ["api", version] | ["apis", _, version] => {
            let group = if parts[0] == "api" { "" } else { parts[1] };
            let resources = registry.resources_of(group, version);
            if resources.is_empty() {
                return Err(ApiError::page_not_found());
            }
            let gv = if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            };
            let entries: Vec<Value> = resources.iter().flat_map(|r| resource_entries(r)).collect();
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries})
        }
        _ => return Err(ApiError::page_not_found()),
    };
    Ok(json_response(StatusCode::OK, &body))
}
