//! Serving CRDs, on every replica: the resources a CRD defines are served from the moment it
//! is written through this replica, and [`follow`] serves those written through any other
//! replica sharing the store (and stops serving deleted ones). This must run on every replica,
//! not only the leader: each replica answers requests for every CRD.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{is_crd, key_prefix};
use crate::registry::{NameRule, PrinterColumn, Resource, ScalePaths, SchemaRef};
use crate::rest::meta_str;
use crate::server::ApiServer;

/// The resources a CRD serves.
pub fn resources_of(crd: &Value) -> Vec<Arc<Resource>> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let storage_version = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == json!(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("")
        .to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != json!(false))
        .map(|v| {
            let sub = &v["subresources"];
            let scale = sub
                .get("scale")
                .filter(|s| s.is_object())
                .map(|s| ScalePaths {
                    spec_replicas: s["specReplicasPath"]
                        .as_str()
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas: s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector: s["labelSelectorPath"].as_str().map(String::from),
                });
            let printer_columns = v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| PrinterColumn {
                    name: c["name"].as_str().unwrap_or("").into(),
                    type_: c["type"].as_str().unwrap_or("string").into(),
                    format: c["format"].as_str().unwrap_or("").into(),
                    description: c["description"].as_str().unwrap_or("").into(),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    json_path: c["jsonPath"].as_str().unwrap_or("").into(),
                })
                .collect();
            let selectable_fields = v["selectableFields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| {
                    f["jsonPath"]
                        .as_str()
                        .map(|p| p.trim_start_matches('.').to_string())
                })
                .collect();
            let schema = v["schema"]["openAPIV3Schema"].clone();
            Arc::new(Resource {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or("").into(),
                plural: names["plural"].as_str().unwrap_or("").into(),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_lowercase(), String::from),
                kind: kind.clone(),
                namespaced: spec["scope"] == json!("Namespaced"),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status: sub.get("status").is_some_and(Value::is_object),
                scale,
                generation: true,
                names: NameRule::Subdomain,
                schema: SchemaRef::Custom(schema.is_object().then(|| Arc::new(schema))),
                printer_columns,
                selectable_fields,
                storage_key_group: group.clone(),
                storage_version: storage_version.clone(),
                custom: true,
                managed_root: Default::default(),
            })
        })
        .collect()
}

/// Starts (or updates) serving a CRD after it is written, on every replica; the leader also
/// reports it established or, for a CRD being deleted, removes its custom objects and then its
/// finalizer.
/// Starts (or updates) serving a CRD after it is written through this replica.
pub(crate) fn on_crd_written(server: &ApiServer, crd: &Value) {
    register(server, crd);
}

/// Serves a CRD (not one being deleted: its API stays until clean-up ends).
fn register(server: &ApiServer, crd: &Value) {
    if !meta_str(crd, "deletionTimestamp").is_empty() {
        return;
    }
    let mut reg = server.state.registry.write();
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    reg.remove_custom(group, plural);
    for r in resources_of(crd) {
        reg.insert(r);
    }
}

/// Stops serving a CRD's resources.
fn unregister(server: &ApiServer, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    server.state.registry.write().remove_custom(group, plural);
}

/// Follows CRD changes made through any replica (the store may be shared): serves new and
/// changed CRDs, stops serving deleted ones. Runs until the server stops.
pub(crate) async fn follow(server: ApiServer) {
    let stopped = server.stopped();
    tokio::pin!(stopped);
    let mut watcher: Option<flotilla_store::Watcher> = None;
    loop {
        let w = match watcher.as_mut() {
            Some(w) => w,
            None => {
                let snap = server.store().snapshot();
                for o in snap.range(&key_prefix(), None) {
                    register(&server, &crate::rest::parse(o));
                }
                match server.store().watch(&key_prefix(), snap.rev) {
                    Ok(w) => watcher.insert(w),
                    Err(_) => return,
                }
            }
        };
        tokio::select! {
            _ = &mut stopped => return,
            ev = w.next() => match ev {
                Ok(ev) => {
                    let crd = crate::rest::parse(&ev.object);
                    match ev.kind {
                        flotilla_store::EventKind::Put => register(&server, &crd),
                        flotilla_store::EventKind::Delete => unregister(&server, &crd),
                    }
                }
                Err(flotilla_store::Error::Compacted { .. }) => watcher = None,
                Err(_) => return,
            },
        }
    }
}

/// Bookkeeping after an object is deleted: a deleted CRD stops being served.
pub(crate) fn on_deleted(server: &ApiServer, res: &Resource, obj: &Value) {
    if is_crd(res) {
        unregister(server, obj);
    }
}

/// Serves the CRDs already in the store (at startup, before the server answers).
pub(crate) fn load(server: &ApiServer) {
    let crds: Vec<Value> = server
        .store()
        .snapshot()
        .range(&key_prefix(), None)
        .map(|o| crate::rest::parse(o))
        .collect();
    for crd in crds {
        register(server, &crd);
    }
}
