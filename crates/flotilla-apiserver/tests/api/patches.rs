//! Each patch type through the `kube` client, on built-in and custom kinds.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{self, assert_refused};

async fn web(t: &support::TestServer) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "1"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
                                  {"name": "side", "image": "side:1"}]}}}})).unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_json_and_strategic_patches() {
    let t = support::start().await;
    let api = web(&t).await;
    let pp = PatchParams::default();

    // JSON merge patch replaces lists wholesale.
    let p = json!({"metadata": {"labels": {"b": "2", "a": null}}, "spec": {"replicas": 3}});
    let d = api.patch("web", &pp, &Patch::Merge(&p)).await.unwrap();
    assert_eq!(
        d.metadata.labels.unwrap(),
        [("b".to_string(), "2".to_string())].into()
    );
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));

    // Strategic merge patch merges containers by name and env by name.
    let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}}}});
    let d = api.patch("web", &pp, &Patch::Strategic(&p)).await.unwrap();
    let cs = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("app:2"));
    let env: Vec<String> = cs[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    // A new item goes before the ones the server had, as kube-apiserver puts it.
    assert_eq!(env, ["B", "A"]);
    assert_eq!(
        cs[0].ports.as_ref().unwrap().len(),
        1,
        "untouched lists stay"
    );

    // JSON patch (RFC 6902), including a failing test operation that changes nothing.
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels/c", "value": "3"}]))
    .unwrap();
    let d = api
        .patch("web", &pp, &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(5));
    let rv = d.metadata.resource_version.clone();
    let bad: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 9}]))
    .unwrap();
    assert_refused(
        api.patch("web", &pp, &Patch::<()>::Json(bad)).await,
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        &[],
    );
    assert_eq!(api.get("web").await.unwrap().metadata.resource_version, rv);

    // A patch that makes the object invalid is rejected with causes.
    let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": ""}]}}}});
    assert_refused(
        api.patch("web", &pp, &Patch::Strategic(&p)).await,
        422,
        "Invalid",
        "Deployment.apps \"web\" is invalid: spec.template.spec.containers[0].image: Required value",
        &[(
            "FieldValueRequired",
            "spec.template.spec.containers[0].image",
            "Required value",
        )],
    );

    // A patch naming a stale resourceVersion conflicts.
    let p = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}});
    assert_refused(
        api.patch("web", &pp, &Patch::Merge(&p)).await,
        409,
        "Conflict",
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
        &[],
    );

    // force belongs to apply patches only.
    let (code, body) = t
        .raw(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web?force=true",
            Some("application/merge-patch+json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (code, &body["message"], &body["details"]["causes"]),
        (
            422,
            &json!("PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"),
            &json!([{"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch", "field": "force"}])
        )
    );

    // Patching a missing object is a 404.
    assert_refused(
        api.patch("nope", &pp, &Patch::Merge(&json!({}))).await,
        404,
        "NotFound",
        "deployments.apps \"nope\" not found",
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource() {
    let t = support::start().await;
    let api = web(&t).await;
    let s = api.get_scale("web").await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(2));
    let p = json!({"spec": {"replicas": 7}});
    let s = api
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(7));
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(7)
    );
    let p = json!({"spec": {"replicas": -1}});
    assert_refused(
        api.patch_scale("web", &PatchParams::default(), &Patch::Merge(&p))
            .await,
        422,
        "Invalid",
        "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        &[(
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        )],
    );
}
