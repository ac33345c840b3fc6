//! Finalizers, garbage collection, namespace deletion, and a clean stop and reopen of the redb store (kill -9 under concurrent creates, updates and deletes is the end-to-end test `hub::kill_9_under_creates_updates_and_deletes_loses_no_acknowledged_change`).

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::json;

use crate::support::{self, assert_refused, eventually};

fn cm(name: &str, extra: serde_json::Value) -> ConfigMap {
    let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    if let Some(m) = extra.as_object() {
        for (k, x) in m {
            v["metadata"][k] = x.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

fn owner_ref(owner: &ConfigMap, block: bool) -> serde_json::Value {
    json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid, "blockOwnerDeletion": block}])
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> bool {
    matches!(api.get(name).await, Err(kube::Error::Api(s)) if s.code == 404)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_until_removed() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &cm("f", json!({"finalizers": ["example.com/hold"]})),
    )
    .await
    .unwrap();
    let r = api.delete("f", &DeleteParams::default()).await.unwrap();
    let obj = r.left().expect("a held object is returned, not a Status");
    assert!(obj.metadata.deletion_timestamp.is_some());
    // Still there, marked; new finalizers cannot be added.
    let got = api.get("f").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    let p = json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}});
    assert_refused(
        api.patch("f", &PatchParams::default(), &Patch::Merge(&p))
            .await,
        422,
        "Invalid",
        "ConfigMap \"f\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/more\"}",
        &[(
            "FieldValueForbidden",
            "metadata.finalizers",
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/more\"}",
        )],
    );
    // Removing the last finalizer deletes it.
    let p = json!({"metadata": {"finalizers": null}});
    api.patch("f", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert!(gone(&api, "f").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_background_foreground_orphan() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let pp = PostParams::default();

    // Background: dependents go after the owner.
    let owner = api.create(&pp, &cm("bg", json!({}))).await.unwrap();
    api.create(
        &pp,
        &cm(
            "bg-dep",
            json!({"ownerReferences": owner_ref(&owner, false)}),
        ),
    )
    .await
    .unwrap();
    api.delete("bg", &DeleteParams::background()).await.unwrap();
    eventually("the background dependent is collected", || {
        gone(&api, "bg-dep")
    })
    .await;

    // Foreground: the owner waits for blocking dependents.
    let owner = api.create(&pp, &cm("fg", json!({}))).await.unwrap();
    api.create(
        &pp,
        &cm(
            "fg-dep",
            json!({"ownerReferences": owner_ref(&owner, true), "finalizers": ["example.com/slow"]}),
        ),
    )
    .await
    .unwrap();
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    eventually("the dependent is being deleted", || async {
        api.get("fg-dep")
            .await
            .is_ok_and(|d| d.metadata.deletion_timestamp.is_some())
    })
    .await;
    let held = api.get("fg").await.unwrap();
    assert!(held
        .metadata
        .finalizers
        .unwrap()
        .contains(&"foregroundDeletion".to_string()));
    api.patch(
        "fg-dep",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the owner goes after its dependent", || gone(&api, "fg")).await;

    // Orphan: dependents stay, without the owner reference.
    let owner = api.create(&pp, &cm("or", json!({}))).await.unwrap();
    api.create(
        &pp,
        &cm(
            "or-dep",
            json!({"ownerReferences": owner_ref(&owner, false)}),
        ),
    )
    .await
    .unwrap();
    api.delete("or", &DeleteParams::orphan()).await.unwrap();
    eventually("the orphaning owner is deleted", || gone(&api, "or")).await;
    let dep = api.get("or-dep").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());

    // A dependent whose owner never existed is collected, as kube's GC does.
    let ghost = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}]);
    api.create(&pp, &cm("ghost-dep", json!({"ownerReferences": ghost})))
        .await
        .unwrap();
    eventually("the ghost's dependent is collected", || {
        gone(&api, "ghost-dep")
    })
    .await;

    // Invalid propagation policy.
    let dp = DeleteParams {
        propagation_policy: None,
        ..Default::default()
    };
    api.create(&pp, &cm("keep", json!({}))).await.unwrap();
    let (code, _) = t
        .raw(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/keep",
            Some("application/json"),
            br#"{"propagationPolicy":"Sideways"}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 422);
    api.delete("keep", &dp).await.unwrap();
    let _ = PropagationPolicy::Background;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_its_objects_first() {
    let t = support::start().await;
    let nss: Api<Namespace> = Api::all(t.client.clone());
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(created.spec.unwrap().finalizers.unwrap(), ["kubernetes"]);
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "team");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &cm("held", json!({"finalizers": ["example.com/hold"]})),
    )
    .await
    .unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    eventually("plain objects are removed", || gone(&api, "a")).await;
    let ns = nss.get("team").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    // No new content in a terminating namespace.
    assert_refused(
        api.create(&PostParams::default(), &cm("new", json!({})))
            .await,
        403,
        "Forbidden",
        "configmaps \"new\" is forbidden: unable to create new content in namespace team because it is being terminated",
        &[(
            "NamespaceTerminating",
            "metadata.namespace",
            "namespace team is being terminated",
        )],
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the namespace is gone", || async {
        matches!(nss.get("team").await, Err(kube::Error::Api(s)) if s.code == 404)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_survives_a_restart_and_continues_its_revisions() {
    let t = support::start_with(support::persistent(), Default::default(), None).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    api.delete("c3", &DeleteParams::default()).await.unwrap();
    let last_rv: u64 = api
        .get("c19")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    drop(api);
    let dir = t.stop().await;
    let t = support::start_with(support::persistent(), Default::default(), Some(dir)).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let list = api.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 19);
    assert!(gone(&api, "c3").await);
    let next = api
        .create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    let rv: u64 = next.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        rv > last_rv + 1,
        "revisions continue after the deletion's ({rv} vs {last_rv})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_deletes_change_nothing() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    api.create(&PostParams::default(), &cm("keep", json!({})))
        .await
        .unwrap();
    api.delete(
        "keep",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        api.get("keep").await.is_ok(),
        "dryRun in the DeleteOptions body"
    );
    let (code, _) = t
        .raw(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/keep?dryRun=All",
            None,
            vec![],
        )
        .await;
    assert_eq!(code, 200);
    assert!(api.get("keep").await.is_ok(), "dryRun in the query");
    let (code, _) = t
        .raw(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/keep",
            Some("application/json"),
            br#"{"dryRun":["Some"]}"#.to_vec(),
        )
        .await;
    assert_eq!(
        code, 422,
        "DeleteOptions are validated as kube-apiserver does"
    );
    assert!(api.get("keep").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_after_their_ttl() {
    use k8s_openapi::api::core::v1::Event;
    let config = flotilla_apiserver::ServerConfig {
        event_ttl: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let t = support::start_with(support::backend_under_test(), config, None).await;
    let events: Api<Event> = Api::namespaced(t.client.clone(), "default");
    let now = chrono::Utc::now();
    let ev = |name: &str, last: chrono::DateTime<chrono::Utc>| -> Event {
        serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
            "reason": "Test", "message": "m", "type": "Normal",
            "lastTimestamp": last.format("%Y-%m-%dT%H:%M:%SZ").to_string()}),
        )
        .unwrap()
    };
    events
        .create(
            &PostParams::default(),
            &ev("old", now - chrono::Duration::hours(2)),
        )
        .await
        .unwrap();
    events
        .create(
            &PostParams::default(),
            &ev("fresh", now + chrono::Duration::hours(1)),
        )
        .await
        .unwrap();
    eventually("the old event expires", || async {
        matches!(events.get("old").await, Err(kube::Error::Api(s)) if s.code == 404)
    })
    .await;
    assert!(events.get("fresh").await.is_ok());
}
