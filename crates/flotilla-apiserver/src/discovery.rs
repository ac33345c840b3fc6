//! Discovery: `/api`, `/apis`, `/apis/GROUP`, and the resource lists of each group/version.
//!
//! The server answers the legacy (unaggregated) formats. Clients that ask for aggregated
//! discovery (`as=APIGroupDiscoveryList`) list `application/json` as a fallback; content
//! negotiation then picks plain JSON and the client falls back to the legacy walk, as it does
//! against any server without aggregated discovery.

use http::Response;
use http::StatusCode;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::rest::Ctx;
use crate::server::{json_response, ApiServer, ResponseBody};

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

/// Serves a discovery path; 404 for anything else.
pub(crate) fn serve(
    server: &ApiServer,
    path: &str,
    _ctx: &Ctx,
) -> ApiResult<Response<ResponseBody>> {
    let registry = server.state.registry.read();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
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
