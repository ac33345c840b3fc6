//! The simulated cluster against its own API server: workloads reach the status a real
//! cluster reports, within node capacity.

use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn ar(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
}

async fn create(client: &kube::Client, group: &str, kind: &str, plural: &str, obj: Value) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ar(group, kind, plural));
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).unwrap(),
    )
    .await
    .unwrap();
}

async fn wait_status(
    client: &kube::Client,
    group: &str,
    kind: &str,
    plural: &str,
    name: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ar(group, kind, plural));
    for _ in 0..200 {
        let o = api.get(name).await.unwrap();
        if ok(&o.data["status"]) {
            return o.data["status"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{kind} {name} never reached the expected status: {}",
        api.get(name).await.unwrap().data["status"]
    );
}

fn template(app: &str, cpu: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}})
}

#[tokio::test]
async fn workloads_reach_their_status_within_capacity() {
    let server =
        flotilla_apiserver::ApiServer::new(flotilla_store::Store::memory(), Default::default());
    server.start().await.unwrap();
    let cfg = flotilla_sim::SimConfig {
        name: "t".into(),
        nodes: 2,
        node_cpu: "2".into(),
        node_memory: "4Gi".into(),
        delay: Duration::from_millis(50),
        ..Default::default()
    };
    flotilla_sim::start(&server, cfg).await.unwrap();
    let c = server.client();
    let nodes: Api<DynamicObject> = Api::all_with(c.clone(), &ar("", "Node", "nodes"));
    let n = nodes.get("t-node-1").await.unwrap();
    assert_eq!(n.data["status"]["allocatable"]["cpu"], "2");

    create(&c, "apps", "Deployment", "deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template("web", "500m")}})).await;
    let st = wait_status(&c, "apps", "Deployment", "deployments", "web", |s| {
        s["availableReplicas"] == 3
    })
    .await;
    assert_eq!(st["readyReplicas"], 3);
    assert_eq!(st["updatedReplicas"], 3);
    assert!(st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Available" && c["status"] == "True"));

    create(&c, "batch", "Job", "jobs", json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi"}, "spec": {"completions": 2, "template": {
            "metadata": {"labels": {"app": "pi"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl",
            "resources": {"requests": {"cpu": "100m"}}}]}}}})).await;
    let st = wait_status(&c, "batch", "Job", "jobs", "pi", |s| s["succeeded"] == 2).await;
    assert!(st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Complete" && c["status"] == "True"));

    create(&c, "apps", "StatefulSet", "statefulsets", json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"}, "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template("db", "100m")}})).await;
    wait_status(&c, "apps", "StatefulSet", "statefulsets", "db", |s| {
        s["readyReplicas"] == 2
    })
    .await;
    let pods: Api<DynamicObject> =
        Api::namespaced_with(c.clone(), "default", &ar("", "Pod", "pods"));
    assert!(
        pods.get_opt("db-0").await.unwrap().is_some()
            && pods.get_opt("db-1").await.unwrap().is_some()
    );

    create(&c, "apps", "DaemonSet", "daemonsets", json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent", "10m")}})).await;
    wait_status(&c, "apps", "DaemonSet", "daemonsets", "agent", |s| {
        s["numberReady"] == 2 && s["desiredNumberScheduled"] == 2
    })
    .await;

    // 3 x 500m + 2 x 100m + 2 x 10m are requested of 4 CPUs: a 3-CPU pod fits nowhere.
    create(&c, "apps", "Deployment", "deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "big"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "big"}}, "template": template("big", "3")}})).await;
    // The scheduler's verdict on the pod, then the Deployment's on itself: states, not a wait.
    let mut big = None;
    for _ in 0..200 {
        let list = pods.list(&Default::default()).await.unwrap();
        big = list.items.into_iter().find(|p| {
            p.metadata.name.as_deref().unwrap().starts_with("big-")
                && p.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
        });
        if big.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let big = big.expect("the big pod is judged unschedulable");
    assert_eq!(big.data["status"]["phase"], "Pending");
    assert!(big.data["spec"]["nodeName"].is_null());
    let st = wait_status(&c, "apps", "Deployment", "deployments", "big", |s| {
        s["replicas"] == 1
            && s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Available" && c["status"] == "False")
    })
    .await;
    assert_eq!(st["availableReplicas"], 0, "{st}");

    // Scaling down removes pods.
    let deps: Api<DynamicObject> = Api::namespaced_with(
        c.clone(),
        "default",
        &ar("apps", "Deployment", "deployments"),
    );
    deps.patch(
        "web",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_status(&c, "apps", "Deployment", "deployments", "web", |s| {
        s["replicas"] == 1 && s["availableReplicas"] == 1
    })
    .await;
    server.shutdown();
}

/// Polls `f` (every 50 ms, 10 s at most) until it returns Some.
async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn every_namespace_gets_its_default_service_account_and_the_cluster_ca() {
    let server =
        flotilla_apiserver::ApiServer::new(flotilla_store::Store::memory(), Default::default());
    server.start().await.unwrap();
    let ca = "-----BEGIN CERTIFICATE-----\nsimulated\n-----END CERTIFICATE-----\n";
    let cfg = flotilla_sim::SimConfig {
        name: "t".into(),
        nodes: 1,
        root_ca: ca.into(),
        ..Default::default()
    };
    flotilla_sim::start(&server, cfg).await.unwrap();
    let c = server.client();
    let namespaces: Api<DynamicObject> =
        Api::all_with(c.clone(), &ar("", "Namespace", "namespaces"));
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let sas: Api<DynamicObject> = Api::namespaced_with(
        c.clone(),
        "shop",
        &ar("", "ServiceAccount", "serviceaccounts"),
    );
    let cms: Api<DynamicObject> =
        Api::namespaced_with(c.clone(), "shop", &ar("", "ConfigMap", "configmaps"));
    eventually("the default service account", || async {
        sas.get_opt("default").await.unwrap()
    })
    .await;
    let cm = eventually("kube-root-ca.crt", || async {
        cms.get_opt("kube-root-ca.crt").await.unwrap()
    })
    .await;
    assert_eq!(cm.data["data"]["ca.crt"], ca);
    // The system namespaces have them too.
    let kube_system: Api<DynamicObject> =
        Api::namespaced_with(c.clone(), "kube-system", &ar("", "ConfigMap", "configmaps"));
    eventually("kube-system's kube-root-ca.crt", || async {
        kube_system.get_opt("kube-root-ca.crt").await.unwrap()
    })
    .await;

    // Changed, it is reset; removed, it comes back.
    cms.patch(
        "kube-root-ca.crt",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"data": {"ca.crt": "someone else's"}})),
    )
    .await
    .unwrap();
    eventually("the CA reset", || async {
        let cm = cms.get("kube-root-ca.crt").await.unwrap();
        (cm.data["data"]["ca.crt"] == ca).then_some(())
    })
    .await;
    cms.delete("kube-root-ca.crt", &Default::default())
        .await
        .unwrap();
    sas.delete("default", &Default::default()).await.unwrap();
    eventually("both recreated", || async {
        let cm = cms.get_opt("kube-root-ca.crt").await.unwrap()?;
        let sa = sas.get_opt("default").await.unwrap()?;
        (cm.data["data"]["ca.crt"] == ca && sa.metadata.uid.is_some()).then_some(())
    })
    .await;
}

/// A busy member's store moves past the revision a pass read before the pass can watch
/// from it (its own writes and others'): the simulation passes again over the latest state
/// instead of stopping for good, which left a member's workloads never available.
#[tokio::test]
async fn a_pass_whose_revision_left_the_history_passes_again() {
    // A store that keeps one event: every pass that writes twice or more moves past it.
    let store = flotilla_store::Store::open(
        flotilla_store::MemoryBackend,
        flotilla_store::StoreConfig {
            event_log_capacity: 1,
            ..flotilla_sim::store_config()
        },
    )
    .unwrap();
    let server =
        flotilla_apiserver::ApiServer::new(store, flotilla_apiserver::ServerConfig::default());
    server.start().await.unwrap();
    let cfg = flotilla_sim::SimConfig {
        delay: Duration::from_millis(10),
        ..Default::default()
    };
    flotilla_sim::start(&server, cfg).await.unwrap();
    let client = server.client();
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &ar("", "Namespace", "namespaces"));
    let ns: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
    )
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let deployments: Api<DynamicObject> =
        Api::namespaced_with(client, "web", &ar("apps", "Deployment", "deployments"));
    let d: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = deployments.get("web").await.unwrap();
        if d.data["status"]["availableReplicas"] == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Deployment's status after 30 s: {}",
            d.data["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
