//! Create, get, update, delete and their error paths, through the `kube` client over HTTPS.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::support::{self, assert_refused, raw_with, status_of};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": image}]}}}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_update_delete_with_server_set_metadata() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let m = &created.metadata;
    assert!(m.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(m.creation_timestamp.is_some());
    assert_eq!(m.namespace.as_deref(), Some("default"));
    let rv1: u64 = m.resource_version.as_deref().unwrap().parse().unwrap();
    assert_eq!(m.generation, None, "ConfigMaps do not track generation");

    let got = api.get("a").await.unwrap();
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    let mut changed = got.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);

    // A stale resourceVersion conflicts.
    assert_refused(
        api.replace("a", &PostParams::default(), &changed).await,
        409,
        "Conflict",
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again",
        &[],
    );

    // An update that changes nothing writes nothing.
    let same = api
        .replace("a", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        updated.metadata.resource_version
    );

    assert_refused(
        api.create(&PostParams::default(), &cm("a")).await,
        409,
        "AlreadyExists",
        "configmaps \"a\" already exists",
        &[],
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let s = status_of(api.get("a").await);
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (404, "NotFound", "configmaps \"a\" not found")
    );
    assert_refused(
        api.delete("a", &DeleteParams::default()).await,
        404,
        "NotFound",
        "configmaps \"a\" not found",
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_dry_run_and_generation() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let mut g = cm("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let a = api.create(&PostParams::default(), &g).await.unwrap();
    let b = api.create(&PostParams::default(), &g).await.unwrap();
    let (na, nb) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(na.starts_with("gen-") && na.len() == 9, "{na}");
    assert_ne!(na, nb);

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, &cm("dry")).await.unwrap();
    assert_eq!(
        status_of(api.get("dry").await).code,
        404,
        "dry run writes nothing"
    );

    let deps: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let d = deps
        .create(&PostParams::default(), &deployment("web", "nginx:1"))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1), "defaulted");
    // Metadata changes do not bump generation; spec changes do.
    let mut labelled = d.clone();
    labelled.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let l = deps
        .replace("web", &PostParams::default(), &labelled)
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(1));
    let mut respec = l.clone();
    respec.spec.as_mut().unwrap().replicas = Some(4);
    let r = deps
        .replace("web", &PostParams::default(), &respec)
        .await
        .unwrap();
    assert_eq!(r.metadata.generation, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_is_separate_from_the_main_resource() {
    let t = support::start().await;
    let deps: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut d = deployment("s", "nginx:1");
    d.status = Some(serde_json::from_value(json!({"replicas": 9})).unwrap());
    let created = deps.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(
        created.status.as_ref().and_then(|s| s.replicas),
        None,
        "status is dropped on create"
    );

    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s"}, "status": {"replicas": 3, "readyReplicas": 2}});
    let after = deps
        .patch_status(
            "s",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap();
    assert_eq!(after.status.as_ref().unwrap().ready_replicas, Some(2));
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // A main-resource update cannot change status; a status update cannot change spec.
    let mut main = after.clone();
    main.status.as_mut().unwrap().ready_replicas = Some(0);
    main.spec.as_mut().unwrap().replicas = Some(7);
    let m = deps
        .replace("s", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(m.status.as_ref().unwrap().ready_replicas, Some(2));
    assert_eq!(m.spec.as_ref().unwrap().replicas, Some(7));
    let mut st = m.clone();
    st.spec.as_mut().unwrap().replicas = Some(1);
    st.status.as_mut().unwrap().ready_replicas = Some(5);
    let s = deps
        .replace_status("s", &PostParams::default(), &st)
        .await
        .unwrap();
    assert_eq!(s.spec.as_ref().unwrap().replicas, Some(7));
    assert_eq!(s.status.as_ref().unwrap().ready_replicas, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_get_422_with_field_causes_and_change_nothing() {
    let t = support::start().await;
    let deps: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut bad = deployment("bad", "");
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some([("app".to_string(), "other".to_string())].into());
    assert_refused(
        deps.create(&PostParams::default(), &bad).await,
        422,
        "Invalid",
        "Deployment.apps \"bad\" is invalid: [spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`, spec.template.spec.containers[0].image: Required value]",
        &[
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
            ),
            (
                "FieldValueRequired",
                "spec.template.spec.containers[0].image",
                "Required value",
            ),
        ],
    );
    assert_eq!(status_of(deps.get("bad").await).code, 404);

    let svcs: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1bad"}, "spec": {"ports": [{"port": 80}]}})).unwrap();
    const DNS_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    assert_refused(
        svcs.create(&PostParams::default(), &svc).await,
        422,
        "Invalid",
        &format!("Service \"1bad\" is invalid: metadata.name: Invalid value: \"1bad\": {DNS_1035}"),
        &[(
            "FieldValueInvalid",
            "metadata.name",
            &format!("Invalid value: \"1bad\": {DNS_1035}"),
        )],
    );

    // Objects in a missing namespace: 404 for the namespace.
    let other: Api<ConfigMap> = Api::namespaced(t.client.clone(), "nope");
    let s = status_of(other.create(&PostParams::default(), &cm("a")).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    let nss: Api<Namespace> = Api::all(t.client.clone());
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Upper"}}),
    )
    .unwrap();
    const RFC_1123: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    assert_refused(
        nss.create(&PostParams::default(), &ns).await,
        422,
        "Invalid",
        &format!(
            "Namespace \"Upper\" is invalid: metadata.name: Invalid value: \"Upper\": {RFC_1123}"
        ),
        &[(
            "FieldValueInvalid",
            "metadata.name",
            &format!("Invalid value: \"Upper\": {RFC_1123}"),
        )],
    );
    assert!(nss.list(&ListParams::default()).await.unwrap().items.len() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_precise_statuses() {
    let t = support::start().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, s) = t
        .raw(
            "POST",
            path,
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(s["kind"], "Status");

    let (code, s) = t
        .raw(
            "POST",
            path,
            Some("application/yaml"),
            b"a: [unclosed".to_vec(),
        )
        .await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));

    let yaml =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n".to_vec();
    let (code, s) = t.raw("POST", path, Some("application/yaml"), yaml).await;
    assert_eq!(code, 201, "{s}");

    let (code, s) = t
        .raw("POST", path, Some("text/plain"), b"hello".to_vec())
        .await;
    assert_eq!(
        (code, s["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );

    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 10)}});
    let (code, s) = t
        .raw(
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(&big).unwrap(),
        )
        .await;
    assert_eq!(
        (code, s["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );

    let (code, _) = t
        .raw("GET", "/apis/nope.example.com/v1/things", None, vec![])
        .await;
    assert_eq!(code, 404);
    let (code, _) = t
        .raw("GET", "/api/v1/namespaces/default/nothings", None, vec![])
        .await;
    assert_eq!(code, 404);

    // Kind and apiVersion must match the endpoint.
    let wrong = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, s) = t
        .raw(
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(&wrong).unwrap(),
        )
        .await;
    assert_eq!(code, 400, "{s}");

    // Unknown fields: Strict rejects, Warn (default) warns and prunes, Ignore prunes silently.
    let extra = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "bogus": 1}),
    )
    .unwrap();
    let (code, s) = t
        .raw(
            "POST",
            &format!("{path}?fieldValidation=Strict"),
            Some("application/json"),
            extra.clone(),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(
        s["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"bogus\""
    );
    let (code, s) = t.raw("POST", path, Some("application/json"), extra).await;
    assert_eq!(code, 201);
    assert!(s.get("bogus").is_none());
    let (code, _) = t
        .raw(
            "POST",
            &format!("{path}?fieldValidation=Bogus"),
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(code, 400);

    // Wrong field types are a 400 like Go's decoder reports.
    let typed = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t"}, "data": {"k": 1}})).unwrap();
    let (code, s) = t.raw("POST", path, Some("application/json"), typed).await;
    assert_eq!(code, 400);
    assert!(
        s["message"].as_str().unwrap().contains(
            "cannot unmarshal number into Go struct field ConfigMap.data.k of type string"
        ),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_wrong_token_requests_are_unauthorized() {
    let t = support::start().await;
    let mut config = kube::Config::new(t.url.parse().unwrap());
    config.accept_invalid_certs = true;
    let anon = kube::Client::try_from(config.clone()).unwrap();
    let (code, s) = raw_with(&anon, "GET", "/api/v1/namespaces", None, &[], vec![]).await;
    assert_eq!((code, s["reason"].as_str()), (401, Some("Unauthorized")));
    let (code, _) = raw_with(
        &anon,
        "GET",
        "/api/v1/namespaces",
        None,
        &[("authorization", "Bearer wrong")],
        vec![],
    )
    .await;
    assert_eq!(code, 401);
    let token = std::fs::read_to_string(t.dir.path().join("pki/admin.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (code, _) = raw_with(
        &anon,
        "GET",
        "/api/v1/namespaces",
        None,
        &[("authorization", &auth)],
        vec![],
    )
    .await;
    assert_eq!(code, 200, "the admin bearer token authenticates");
    // Health and version are public, as kube-apiserver's default RBAC makes them.
    let (code, _) = raw_with(&anon, "GET", "/readyz", None, &[], vec![]).await;
    assert_eq!(code, 200);
    let (code, v) = raw_with(&anon, "GET", "/version", None, &[], vec![]).await;
    assert_eq!(
        (code, v["gitVersion"].as_str()),
        (200, Some(flotilla_apiserver::schema::GIT_VERSION))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_client_uses_the_same_api() {
    let t = support::start().await;
    let local: Api<ConfigMap> = Api::namespaced(t.server.client(), "default");
    local
        .create(&PostParams::default(), &cm("inproc"))
        .await
        .unwrap();
    let remote: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    assert!(remote.get("inproc").await.is_ok());
    assert_refused(
        local.create(&PostParams::default(), &cm("inproc")).await,
        409,
        "AlreadyExists",
        "configmaps \"inproc\" already exists",
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_accepts_only_all() {
    let t = support::start().await;
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}),
    )
    .unwrap();
    let (code, s) = t
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=Sometimes",
            Some("application/json"),
            body.clone(),
        )
        .await;
    // kube-apiserver validates the options object: 422 on CreateOptions' dryRun.
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(s["details"]["kind"], "CreateOptions");
    assert_eq!(s["details"]["causes"][0]["field"], "dryRun");
    let (code, _) = t
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            Some("application/json"),
            body,
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = t
        .raw(
            "GET",
            "/api/v1/namespaces/default/configmaps/d",
            None,
            vec![],
        )
        .await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_one_resource_through_both_apis() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    let t = support::start().await;
    let deps: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let d = deps
        .create(&PostParams::default(), &deployment("web", "nginx:1"))
        .await
        .unwrap();
    let new_api: Api<NewEvent> = Api::namespaced(t.client.clone(), "default");
    let e: NewEvent = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.1"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "flotilla.dev/placement",
        "reportingInstance": "hub-0", "action": "Place", "reason": "Placed", "type": "Normal",
        "note": "placed on 3 clusters",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "default", "uid": d.metadata.uid}})).unwrap();
    let created = new_api.create(&PostParams::default(), &e).await.unwrap();
    assert_eq!(created.note.as_deref(), Some("placed on 3 clusters"));

    let core_api: Api<CoreEvent> = Api::namespaced(t.client.clone(), "default");
    let core = core_api.get("web.1").await.unwrap();
    assert_eq!(core.message.as_deref(), Some("placed on 3 clusters"));
    assert_eq!(core.involved_object.name.as_deref(), Some("web"));
    assert_eq!(
        core.reporting_component.as_deref(),
        Some("flotilla.dev/placement")
    );
    let found = core_api
        .list(
            &ListParams::default().fields("involvedObject.name=web,involvedObject.kind=Deployment"),
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    // Both APIs list the same object; an update through one shows through the other.
    let mut c = core.clone();
    c.message = Some("placed on 4 clusters".into());
    core_api
        .replace("web.1", &PostParams::default(), &c)
        .await
        .unwrap();
    assert_eq!(
        new_api.get("web.1").await.unwrap().note.as_deref(),
        Some("placed on 4 clusters")
    );
    assert_eq!(
        new_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let describe = t.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(
        describe.contains("Placed") && describe.contains("placed on 4 clusters"),
        "{describe}"
    );
    new_api.delete("web.1", &Default::default()).await.unwrap();
    assert_eq!(status_of(core_api.get("web.1").await).code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_quantities_and_pod_spec_references_are_rejected() {
    let t = support::start().await;
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let mut d = serde_json::to_value(deployment("q", "nginx:1")).unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "lots"}});
    let (code, s) = t
        .raw(
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(&d).unwrap(),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("quantities must match the regular expression"),
        "{s}"
    );
    d["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}});
    d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    let (code, s) = t
        .raw(
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(&d).unwrap(),
        )
        .await;
    assert_eq!(code, 422, "{s}");
    assert_eq!(
        s["details"]["causes"][0]["field"],
        "spec.template.spec.containers[0].volumeMounts[0].name"
    );
    assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueNotFound");
    d["spec"]["template"]["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    let (code, s) = t
        .raw(
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(&d).unwrap(),
        )
        .await;
    assert_eq!(code, 201, "{s}");
}
