//! The CRD controller, run by the leader only: reports each CRD established (names accepted,
//! stored versions recorded) and, for a CRD being deleted, removes its custom objects and then
//! its finalizer. Its clean-ups are its own tasks: they stop with it when leadership is lost,
//! and the next leader resumes them.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::crd::{key_prefix, resources_of, CLEANUP_FINALIZER};
use crate::rest::{finalizers, meta_str, now, Loc};
use crate::server::ApiServer;

/// Runs the controller until the server stops (or, through
/// [`ApiServer::spawn_controller`], until leadership is lost).
pub(crate) async fn run(server: ApiServer) {
    let stopped = server.stopped();
    tokio::pin!(stopped);
    let mut cleanups = Cleanups::default();
    loop {
        let snap = server.store().snapshot();
        for o in snap.range(&key_prefix(), None) {
            reconcile(&server, &crate::rest::parse(o), &mut cleanups).await;
        }
        let mut watcher = match server.store().watch(&key_prefix(), snap.rev) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "the CRD controller cannot watch the store");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                Some(done) = cleanups.tasks.join_next() => {
                    if let Ok(name) = done {
                        cleanups.running.remove(&name);
                    }
                }
                ev = watcher.next() => match ev {
                    Ok(ev) if ev.kind == flotilla_store::EventKind::Put => {
                        reconcile(&server, &crate::rest::parse(&ev.object), &mut cleanups).await;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The clean-ups of deleted CRDs under way (by CRD name).
#[derive(Default)]
struct Cleanups {
    running: HashSet<String>,
    tasks: JoinSet<String>,
}

async fn reconcile(server: &ApiServer, crd: &Value, cleanups: &mut Cleanups) {
    let name = meta_str(crd, "name").to_string();
    if !meta_str(crd, "deletionTimestamp").is_empty() {
        if finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER)
            && cleanups.running.insert(name.clone())
        {
            let server = server.clone();
            let crd = crd.clone();
            cleanups.tasks.spawn(async move {
                cleanup(server, crd).await;
                name
            });
        }
        return;
    }
    let status = established_status(crd);
    if crd.get("status") == Some(&status) {
        return;
    }
    if let Err(e) = server.write_status(&crd_loc(server, &name), status).await {
        tracing::warn!(crd = %name, error = %e, "could not report the CRD established");
    }
}

fn crd_loc(server: &ApiServer, name: &str) -> Loc {
    let res = server
        .state
        .registry
        .read()
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are always served");
    Loc {
        res,
        ns: None,
        name: name.to_string(),
    }
}

fn established_status(crd: &Value) -> Value {
    let old = &crd["status"];
    let condition = |ty: &str, reason: &str, message: &str| {
        let previous = old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == ty && c["status"] == "True");
        let since = previous.map_or_else(|| json!(now()), |p| p["lastTransitionTime"].clone());
        json!({"type": ty, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let mut stored: Vec<Value> = old["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if v["storage"] == json!(true) && !stored.contains(&v["name"]) {
            stored.push(v["name"].clone());
        }
    }
    json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": stored,
    })
}

async fn cleanup(server: ApiServer, crd: Value) {
    let name = meta_str(&crd, "name").to_string();
    let resources = resources_of(&crd);
    if let Some(res) = resources.first() {
        let prefix = res.key_prefix(None);
        let keys: Vec<String> = server
            .store()
            .snapshot()
            .range(&prefix, None)
            .map(|o| o.key.to_string())
            .collect();
        let opts = crate::delete::DeleteOptions::default();
        for key in keys {
            let (ns, obj_name) = crate::list::ns_name(res, &key);
            let loc = Loc {
                res: res.clone(),
                ns,
                name: obj_name,
            };
            if let Err(e) = server.delete_with(&loc, &opts, false).await {
                if e.code != 404 {
                    tracing::warn!(crd = %name, key, error = %e, "could not delete a custom object");
                    return;
                }
            }
        }
    }
    let loc = crd_loc(&server, &name);
    if let Err(e) = server.remove_finalizer(&loc, CLEANUP_FINALIZER).await {
        tracing::warn!(crd = %name, error = %e, "could not finish deleting the CRD");
    }
}
