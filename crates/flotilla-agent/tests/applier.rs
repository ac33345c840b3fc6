//! The work applier against a real kube-apiserver (the release the hub serves, from
//! `scripts/k8s.sh`): the AppliedWork CRD is installed, brought up to date, and a CRD the
//! member cannot establish is an error, not a silent success.

use std::time::Duration;

use flotilla_agent::work::install_applied_work;
use flotilla_agent::Error;
use futures::StreamExt;
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

async fn client_of(cluster: &flotilla_testbed::RealCluster) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kinds_survive_an_unavailable_api_and_follow_new_crds() {
    use flotilla_agent::kinds::{Kinds, Missing};
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        flotilla_testbed::RealCluster::start(dir.path(), flotilla_testbed::ControlPlane::ApiServer)
            .unwrap();
    let client = client_of(&cluster).await;
    // An aggregated API whose backend does not exist, as metrics.k8s.io is on a cluster whose
    // metrics-server is down: its discovery fails with 503.
    let apiservices: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
            "apiservices",
        ),
    );
    let broken: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": true,
            "groupPriorityMinimum": 100, "versionPriority": 100,
            "service": {"namespace": "kube-system", "name": "metrics-server"}}
    }))
    .unwrap();
    apiservices
        .create(&PostParams::default(), &broken)
        .await
        .unwrap();
    let kinds = Kinds::default();
    let (ar, namespaced) = kinds.resolve(&client, "v1", "ConfigMap").await.unwrap();
    assert_eq!((ar.plural.as_str(), namespaced), ("configmaps", true));
    let (ar, _) = kinds
        .resolve(&client, "apps/v1", "Deployment")
        .await
        .unwrap();
    assert_eq!(ar.plural, "deployments");
    match kinds
        .resolve(&client, "metrics.k8s.io/v1beta1", "NodeMetrics")
        .await
    {
        Err(Missing::DiscoveryFailed(m)) => assert!(
            m.starts_with("the member could not list the resources of metrics.k8s.io/v1beta1: "),
            "{m}"
        ),
        other => panic!("expected a discovery failure, got {other:?}"),
    }
    assert!(kinds.failures().contains_key("metrics.k8s.io/v1beta1"));
    assert_eq!(
        kinds.resolve(&client, "example.com/v1", "Gadget").await,
        Err(Missing::NotServed(
            "the member cluster serves no Gadget in example.com/v1".into()
        ))
    );

    // A CRD installed after the kinds were discovered is found on its first use.
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    crds(&client)
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let mut found = None;
    for _ in 0..100 {
        if let Ok(r) = kinds.resolve(&client, "example.com/v1", "Gadget").await {
            found = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ar, namespaced) = found.expect("the new CRD's kind was never found");
    assert_eq!((ar.plural.as_str(), namespaced), ("gadgets", true));

    // Removed: cached until the applier meets a 404 and forgets the group version; then the
    // next use asks the member again.
    crds(&client)
        .delete("gadgets.example.com", &Default::default())
        .await
        .unwrap();
    assert!(kinds
        .resolve(&client, "example.com/v1", "Gadget")
        .await
        .is_ok());
    let mut gone = false;
    for _ in 0..100 {
        kinds.forget("example.com/v1");
        if let Err(Missing::NotServed(_)) = kinds.resolve(&client, "example.com/v1", "Gadget").await
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "the removed CRD's kind is still resolved");
}

/// The agent's own role in docs/examples/member-agent-rbac.yaml covers what the agent does
/// itself and nothing of what placements carry: with it alone (no controller manager
/// aggregates the content role here), the AppliedWork CRD installs, AppliedWorks are kept,
/// nodes, pods, the properties ConfigMap and /readyz are readable, and a ConfigMap outside
/// `flotilla-system` is forbidden.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_agent_role_covers_its_own_calls_and_no_content() {
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        flotilla_testbed::RealCluster::start(dir.path(), flotilla_testbed::ControlPlane::ApiServer)
            .unwrap();
    let rbac = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/member-agent-rbac.yaml"
    );
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["apply", "-f", rbac])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let agent_kc = dir.path().join("agent.kubeconfig");
    cluster
        .token_kubeconfig("flotilla-system", "flotilla-agent", 1, &agent_kc)
        .unwrap();
    let kc = kube::config::Kubeconfig::read_from(&agent_kc).unwrap();
    let agent = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();

    install_applied_work(&agent, Duration::from_secs(30))
        .await
        .unwrap();
    let applied: Api<DynamicObject> = Api::all_with(
        agent.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("placement.kubernetes-fleet.io", "v1", "AppliedWork"),
            "appliedworks",
        ),
    );
    let aw: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "AppliedWork",
        "metadata": {"name": "w"}, "spec": {"workName": "w", "workNamespace": "fleet-member-m"}}))
    .unwrap();
    // The member's API server establishes the CRD for its clients a moment after its status.
    let mut created = applied.create(&PostParams::default(), &aw).await;
    for _ in 0..50 {
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        created = applied.create(&PostParams::default(), &aw).await;
    }
    created.unwrap();
    applied
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"appliedResources": []}})),
        )
        .await
        .unwrap();
    applied.list(&Default::default()).await.unwrap();
    // The janitor follows AppliedWorks by their metadata: a metadata-only list and watch.
    let metadata: Api<kube::core::PartialObjectMeta<DynamicObject>> = Api::all_with(
        agent.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("placement.kubernetes-fleet.io", "v1", "AppliedWork"),
            "appliedworks",
        ),
    );
    let listed = metadata.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("w"));
    let rv = listed.metadata.resource_version.unwrap_or_default();
    let mut watch = metadata
        .watch(&kube::api::WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = watch.next().await {
        ev.unwrap();
    }
    applied.delete("w", &Default::default()).await.unwrap();
    for (group, version, kind, plural) in [("", "v1", "Node", "nodes"), ("", "v1", "Pod", "pods")] {
        let api: Api<DynamicObject> = Api::all_with(
            agent.clone(),
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, kind),
                plural,
            ),
        );
        api.list(&Default::default()).await.unwrap();
    }
    let configmaps = |ns: &str| -> Api<DynamicObject> {
        Api::namespaced_with(
            agent.clone(),
            ns,
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("", "v1", "ConfigMap"),
                "configmaps",
            ),
        )
    };
    assert!(configmaps("flotilla-system")
        .get_opt("cluster-properties")
        .await
        .unwrap()
        .is_none());
    let readyz = agent
        .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(readyz, "ok");
    let cm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "placed"}}))
    .unwrap();
    match configmaps("default").create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => assert_eq!(
            (s.code, s.message.as_str()),
            (
                403,
                "configmaps is forbidden: User \"system:serviceaccount:flotilla-system:flotilla-agent\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
            )
        ),
        other => panic!("content is not the agent's own role's: {other:?}"),
    }
}

/// PartialComparison against a real member: what a server-side apply would change (a dry
/// run that writes nothing), so the member's normalizing is no difference; a manifest the
/// member refuses even in a dry run is compared field by field; other errors are errors.
#[tokio::test(flavor = "multi_thread")]
async fn partial_comparison_asks_the_member_what_an_apply_would_change() {
    use flotilla_agent::work::compare;
    let dir = tempfile::tempdir().unwrap();
    let cluster =
        flotilla_testbed::RealCluster::start(dir.path(), flotilla_testbed::ControlPlane::ApiServer)
            .unwrap();
    let client = client_of(&cluster).await;
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    let manifest = |replicas: i64, cpu: &str, app: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "web", "image": "nginx",
                        "resources": {"limits": {"cpu": cpu}}}]}}}})
    };
    let created = deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest(2, "1", "web")).unwrap(),
        )
        .await
        .unwrap();
    let live = serde_json::to_value(&created).unwrap();
    let paths = |d: Vec<serde_json::Value>| -> Vec<String> {
        d.iter()
            .map(|d| d["path"].as_str().unwrap().to_string())
            .collect()
    };

    // "1000m" is how the member writes 1 CPU back: not a difference, though not the same text.
    let same = compare(
        &deployments,
        "web",
        &manifest(2, "1000m", "web"),
        &live,
        false,
    )
    .await
    .unwrap();
    assert_eq!(paths(same), Vec::<String>::new());
    // A real change is one, and the dry run wrote nothing.
    let more = compare(&deployments, "web", &manifest(3, "1", "web"), &live, false)
        .await
        .unwrap();
    assert_eq!(paths(more), ["/spec/replicas"]);
    assert_eq!(
        deployments.get("web").await.unwrap().data["spec"]["replicas"],
        2
    );
    // An immutable selector: the member refuses even the dry run (422), so the comparison
    // degrades to every field, as KubeFleet's does: the two changed labels and what only the
    // member has (its defaults), with no value in the hub.
    let refused = compare(
        &deployments,
        "web",
        &manifest(2, "1", "other"),
        &live,
        false,
    )
    .await
    .unwrap();
    let only_in_member: Vec<&str> = refused
        .iter()
        .filter(|d| d.get("valueInHub").is_none())
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(
        only_in_member.contains(&"/spec/revisionHistoryLimit"),
        "{refused:?}"
    );
    let changed: Vec<(&str, &str, &str)> = refused
        .iter()
        .filter(|d| d.get("valueInHub").is_some())
        .map(|d| {
            (
                d["path"].as_str().unwrap(),
                d["valueInHub"].as_str().unwrap(),
                d["valueInMember"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            ("/spec/selector/matchLabels/app", "other", "web"),
            ("/spec/template/metadata/labels/app", "other", "web"),
        ]
    );
    // FullComparison compares every field, without asking.
    let full = compare(
        &deployments,
        "web",
        &manifest(2, "1000m", "web"),
        &live,
        true,
    )
    .await
    .unwrap();
    assert!(
        paths(full).contains(&"/spec/template/spec/containers/0/resources/limits/cpu".to_string())
    );
    // Anything else the member answers is an error, not "no difference".
    let elsewhere: Api<DynamicObject> = Api::namespaced_with(
        client,
        "missing",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    let mut gone = manifest(5, "1", "web");
    gone["metadata"]["namespace"] = json!("missing");
    match compare(&elsewhere, "web", &gone, &live, false).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("{other:?}"),
    }
}
