//! The work applier against a real kube-apiserver (the release the hub serves, from
//! `scripts/k8s.sh`): the AppliedWork CRD is installed, brought up to date, and a CRD the
//! member cannot establish is an error, not a silent success.

use std::time::Duration;

use flotilla_agent::work::{install_applied_work, Error};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn crds(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    )
}

const NAME: &str = "appliedworks.placement.kubernetes-fleet.io";

#[tokio::test(flavor = "multi_thread")]
async fn the_applied_work_crd_is_installed_upgraded_or_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        flotilla_testbed::RealCluster::start(dir.path(), flotilla_testbed::ControlPlane::ApiServer)
            .unwrap();
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let api = crds(&client);

    // A fresh member: created and established.
    install_applied_work(&client, Duration::from_secs(60))
        .await
        .unwrap();
    let crd = api.get(NAME).await.unwrap();
    let digest =
        crd.metadata.annotations.as_ref().unwrap()["flotilla.dev/definition-digest"].clone();
    let served: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("placement.kubernetes-fleet.io", "v1beta1", "AppliedWork"),
            "appliedworks",
        ),
    );
    served.list(&Default::default()).await.unwrap();

    // An older definition (another digest, another description) is brought up to date.
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"flotilla.dev/definition-digest": "old"}},
            "spec": {"names": {"shortNames": ["stale"]}}}),
        ),
    )
    .await
    .unwrap();
    install_applied_work(&client, Duration::from_secs(60))
        .await
        .unwrap();
    let crd = api.get(NAME).await.unwrap();
    assert_eq!(
        crd.metadata.annotations.as_ref().unwrap()["flotilla.dev/definition-digest"],
        digest
    );
    assert!(
        crd.data["spec"]["names"]["shortNames"]
            .as_array()
            .is_none_or(|s| !s.contains(&json!("stale"))),
        "{}",
        crd.data["spec"]["names"]
    );

    // A member where another CRD already uses the kind: the member never establishes ours,
    // and installing says why instead of reporting success.
    api.delete(NAME, &Default::default()).await.unwrap();
    for _ in 0..100 {
        if api.get_opt(NAME).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let squatter: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "otherworks.placement.kubernetes-fleet.io"},
        "spec": {"group": "placement.kubernetes-fleet.io", "scope": "Cluster",
            "names": {"plural": "otherworks", "singular": "otherwork", "kind": "AppliedWork", "listKind": "AppliedWorkList"},
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &squatter).await.unwrap();
    let err = install_applied_work(&client, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Setup(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("the member has not established the AppliedWork CRD within 3s: ")
            && msg.contains("AppliedWork"),
        "{msg}"
    );
}
