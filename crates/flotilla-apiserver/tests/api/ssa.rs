//! Server-side apply through the `kube` client: ownership, conflicts, force, removal, status,
//! custom resources with list-map keys, and bad input.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{json, Value};

use crate::support::{self, eventually, status_of};

fn managers(obj: &kube::api::ObjectMeta) -> Vec<(String, String, Vec<String>)> {
    obj.managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let fields = serde_json::to_value(e.fields_v1.unwrap()).unwrap();
            let mut keys: Vec<String> = Vec::new();
            fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
                for (k, c) in v.as_object().into_iter().flatten() {
                    if k == "." {
                        continue;
                    }
                    let p = format!("{prefix}/{k}");
                    if c.as_object().is_some_and(|o| o.keys().all(|k| k == ".")) {
                        out.push(p.clone());
                    }
                    walk(c, &p, out);
                }
            }
            walk(&fields, "", &mut keys);
            (
                e.manager.unwrap_or_default(),
                e.operation.unwrap_or_default(),
                keys,
            )
        })
        .collect()
}

fn deployment(replicas: Option<i32>, labels: Value) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}});
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_shares_conflicts_forces_and_removes() {
    let t = support::start().await;
    let api: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let alice = PatchParams::apply("alice");
    let d = api
        .patch(
            "web",
            &alice,
            &Patch::Apply(deployment(Some(2), json!({"team": "a"}))),
        )
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    let m = managers(&d.metadata);
    assert_eq!((m[0].0.as_str(), m[0].1.as_str()), ("alice", "Apply"));
    assert!(m[0].2.contains(&"/f:spec/f:replicas".to_string()));
    assert!(
        !m[0].2.iter().any(|f| f.contains("progressDeadlineSeconds")),
        "defaults are not the applier's"
    );

    // Same value from another manager: shared, no conflict.
    let bob = PatchParams::apply("bob");
    let same = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    api.patch("web", &bob, &Patch::Apply(&same)).await.unwrap();
    // A different value conflicts, with kube-apiserver's wording and causes.
    let more = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    let s = status_of(api.patch("web", &bob, &Patch::Apply(&more)).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    let cause = &s.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldManagerConflict", ".spec.replicas")
    );
    // Forced, bob takes it over.
    let d = api
        .patch("web", &bob.clone().force(), &Patch::Apply(&more))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(4));
    assert!(managers(&d.metadata)
        .iter()
        .any(|(m, _, f)| m == "alice" && !f.contains(&"/f:spec/f:replicas".to_string())));

    // alice drops her label from the applied configuration: it is removed.
    let d = api
        .patch("web", &alice, &Patch::Apply(deployment(None, json!({}))))
        .await
        .unwrap();
    assert!(!d.metadata.labels.unwrap_or_default().contains_key("team"));
    assert_eq!(d.spec.unwrap().replicas, Some(4), "bob still owns replicas");

    // Update operations are recorded per manager.
    let pp = PatchParams {
        field_manager: Some("scaler".into()),
        ..Default::default()
    };
    let d = api
        .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 6}})))
        .await
        .unwrap();
    assert!(managers(&d.metadata).iter().any(|(m, op, f)| m == "scaler"
        && op == "Update"
        && f == &vec!["/f:spec/f:replicas".to_string()]));

    // Apply with dry run changes nothing.
    let dry = PatchParams::apply("alice").force().dry_run();
    let would = api
        .patch("web", &dry, &Patch::Apply(deployment(Some(9), json!({}))))
        .await
        .unwrap();
    assert_eq!(would.spec.unwrap().replicas, Some(9));
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(6)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rejects_bad_input() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}});
    let path = "/api/v1/namespaces/default/configmaps/x";
    let ct = Some("application/apply-patch+yaml");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = cm("x");
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let typed_patch = "failed to create typed patch object (/x; /v1, Kind=ConfigMap): .bogus: field not declared in schema";
    // (query, body, code, reason, message): kube-apiserver's answers (the differential suite's
    // error-statuses case sends the same requests to it). Unknown fields fail whatever
    // fieldValidation says, with the field manager's reasonless 500.
    type Case<'a> = (&'a str, Vec<u8>, u16, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        ("", with(&|_| {}), 422, Some("Invalid"), "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"),
        ("?fieldManager=m", serde_json::to_vec(&cm("y")).unwrap(), 400, Some("BadRequest"), "the name of the object (y) does not match the name on the URL (x)"),
        ("?fieldManager=m", br#"{"metadata":{"name":"x"}}"#.to_vec(), 400, Some("BadRequest"), "invalid object type: /, Kind="),
        ("?fieldManager=m", with(&|v| { v.as_object_mut().unwrap().remove("kind"); }), 400, Some("BadRequest"), "invalid object type: /v1, Kind="),
        ("?fieldManager=m", with(&|v| v["kind"] = json!("Secret")), 400, Some("BadRequest"), "invalid object type: /v1, Kind=Secret"),
        ("?fieldManager=m", with(&|v| v["metadata"]["managedFields"] = json!([{"manager": "m"}])), 400, Some("BadRequest"), "metadata.managedFields must be nil"),
        ("?fieldManager=m&fieldValidation=Strict", with(&|v| v["bogus"] = json!(1)), 500, None, typed_patch),
        ("?fieldManager=m", with(&|v| v["bogus"] = json!(1)), 500, None, typed_patch),
        ("?fieldManager=m&fieldValidation=Ignore", with(&|v| v["bogus"] = json!(1)), 500, None, typed_patch),
        ("?fieldManager=m", b"a: [unclosed".to_vec(), 400, Some("BadRequest"), "error decoding YAML: error converting YAML to JSON: yaml: line 1: did not find expected ',' or ']'"),
    ];
    for (query, body, code, reason, message) in cases {
        let (got, status) = t.raw("PATCH", &format!("{path}{query}"), ct, body).await;
        assert_eq!(
            (got, status["reason"].as_str(), status["message"].as_str()),
            (code, reason, Some(message)),
            "{query}"
        );
    }
    assert_eq!(
        status_of(api.get("x").await).code,
        404,
        "nothing was written"
    );
    let (code, _) = t
        .raw(
            "PATCH",
            &format!("{path}?fieldManager=m"),
            ct,
            serde_json::to_vec(&cm("x")).unwrap(),
        )
        .await;
    assert_eq!(code, 201, "apply creates");
    let (code, _) = t
        .raw(
            "PATCH",
            &format!("{path}?fieldManager=m"),
            ct,
            serde_json::to_vec(&cm("x")).unwrap(),
        )
        .await;
    assert_eq!(code, 200, "and applies again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_to_status_and_to_custom_resources_with_list_map_keys() {
    let t = support::start().await;
    let deps: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    deps.patch(
        "web",
        &PatchParams::apply("owner"),
        &Patch::Apply(deployment(Some(1), json!({}))),
    )
    .await
    .unwrap();
    let st = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 1, "readyReplicas": 1}});
    let d = deps
        .patch_status("web", &PatchParams::apply("controller"), &Patch::Apply(&st))
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(1));
    let entry = d
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("controller"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));

    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "fleets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "fleets", "kind": "Fleet"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                     "spec": {"type": "object", "properties": {"members": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                         "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "weight": {"type": "integer"}}}}}}}}}}]}})).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Fleet"),
        "fleets",
    );
    let fleets: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), "default", &ar);
    eventually("fleets are served", || async {
        fleets.list(&Default::default()).await.is_ok()
    })
    .await;
    let fleet = |members: Value| json!({"apiVersion": "example.com/v1", "kind": "Fleet", "metadata": {"name": "f"}, "spec": {"members": members}});
    fleets
        .patch(
            "f",
            &PatchParams::apply("east"),
            &Patch::Apply(fleet(json!([{"name": "e1", "weight": 1}]))),
        )
        .await
        .unwrap();
    let f = fleets
        .patch(
            "f",
            &PatchParams::apply("west"),
            &Patch::Apply(fleet(json!([{"name": "w1", "weight": 2}]))),
        )
        .await
        .unwrap();
    let names: Vec<&str> = f.data["spec"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["e1", "w1"],
        "items merge by their key, each owned by its applier"
    );
    let f = fleets
        .patch(
            "f",
            &PatchParams::apply("east"),
            &Patch::Apply(fleet(json!([]))),
        )
        .await
        .unwrap();
    let names: Vec<&str> = f.data["spec"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["w1"],
        "east's item goes when east stops applying it"
    );
    let s = status_of(
        fleets
            .patch(
                "f",
                &PatchParams::apply("east"),
                &Patch::Apply(fleet(json!([{"name": "w1", "weight": 3}]))),
            )
            .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (
            409,
            "Conflict",
            "Apply failed with 1 conflict: conflict with \"west\": .spec.members[name=\"w1\"].weight"
        )
    );
}
