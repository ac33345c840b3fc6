//! CustomResourceDefinition lifecycle through the `kube` client with DynamicObject.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

use crate::support::{self, assert_refused, eventually};

fn widget_crd(versions: serde_json::Value) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": versions}}))
    .unwrap()
}

fn version(name: &str, storage: bool) -> serde_json::Value {
    json!({"name": name, "served": true, "storage": storage,
           "subresources": {"status": {}},
           "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
               "spec": {"type": "object", "required": ["size"], "properties": {
                   "size": {"type": "integer", "minimum": 1, "maximum": 10},
                   "color": {"type": "string", "enum": ["red", "blue"], "default": "red"}}},
               "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}})
}

fn widgets(t: &support::TestServer, v: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", v, "Widget"),
        "widgets",
    );
    Api::namespaced_with(t.client.clone(), "default", &ar)
}

fn widget(v: &str, name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": format!("example.com/{v}"), "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn established(crds: &Api<CustomResourceDefinition>) -> bool {
    crds.get("widgets.example.com")
        .await
        .ok()
        .and_then(|c| c.status)
        .and_then(|s| s.conditions)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                && cs
                    .iter()
                    .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_lifecycle() {
    let t = support::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    crds.create(
        &PostParams::default(),
        &widget_crd(json!([version("v1", true)])),
    )
    .await
    .unwrap();
    eventually("the CRD is established", || established(&crds)).await;

    let v1 = widgets(&t, "v1");
    let w = v1
        .create(
            &PostParams::default(),
            &widget("v1", "w1", json!({"size": 3, "junk": true})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.data["spec"],
        json!({"size": 3, "color": "red"}),
        "pruned and defaulted"
    );
    assert_eq!(w.metadata.generation, Some(1));

    // kube-apiserver lists these two causes in Go map order, which varies from run to run;
    // Flotilla in key order.
    assert_refused(
        v1.create(
            &PostParams::default(),
            &widget("v1", "bad", json!({"size": 30, "color": "pink"})),
        )
        .await,
        422,
        "Invalid",
        "Widget.example.com \"bad\" is invalid: [spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\", spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10]",
        &[
            (
                "FieldValueNotSupported",
                "spec.color",
                "Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
            ),
            (
                "FieldValueInvalid",
                "spec.size",
                "Invalid value: 30: spec.size in body should be less than or equal to 10",
            ),
        ],
    );
    assert_refused(
        v1.create(&PostParams::default(), &widget("v1", "bad", json!({})))
            .await,
        422,
        "Invalid",
        "Widget.example.com \"bad\" is invalid: spec.size: Required value",
        &[("FieldValueRequired", "spec.size", "Required value")],
    );
    // Strategic merge patch is not for custom resources.
    assert_refused(
        v1.patch(
            "w1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 4}})),
        )
        .await,
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        &[],
    );

    // Status subresource.
    let st = json!({"status": {"ready": true}, "spec": {"size": 9}});
    let w = v1
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(
        (
            w.data["status"]["ready"].clone(),
            w.data["spec"]["size"].clone()
        ),
        (json!(true), json!(3))
    );

    // A second version is served from the same storage (conversion None).
    let mut crd = crds.get("widgets.example.com").await.unwrap();
    let mut v2 = version("v2", false);
    v2["additionalPrinterColumns"] =
        json!([{"name": "Color", "type": "string", "jsonPath": ".spec.color"}]);
    crd.spec.versions.push(serde_json::from_value(v2).unwrap());
    crds.replace("widgets.example.com", &PostParams::default(), &crd)
        .await
        .unwrap();
    let w2 = widgets(&t, "v2");
    eventually("v2 is served", || async { w2.get("w1").await.is_ok() }).await;
    let got = w2.get("w1").await.unwrap();
    assert_eq!(got.types.unwrap().api_version, "example.com/v2");

    // Printer columns in Table output.
    let (code, table) = support::raw_with(
        &t.client,
        "GET",
        "/apis/example.com/v2/namespaces/default/widgets",
        None,
        &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Color"]);
    assert_eq!(table["rows"][0]["cells"], json!(["w1", "red"]));

    // Invalid CRDs are rejected.
    let mut bad = widget_crd(json!([version("v1", false)]));
    bad.metadata.name = Some("gadgets.example.com".into());
    const VERSIONS: &str = "[]apiextensions.CustomResourceDefinitionVersion{apiextensions.CustomResourceDefinitionVersion{Name:\"v1\", Served:true, Storage:false, Deprecated:false, DeprecationWarning:(*string)(nil), Schema:(*apiextensions.CustomResourceValidation)(nil), Subresources:(*apiextensions.CustomResourceSubresources)(nil), AdditionalPrinterColumns:[]apiextensions.CustomResourceColumnDefinition(nil), SelectableFields:[]apiextensions.SelectableField(nil)}}";
    assert_refused(
        crds.create(&PostParams::default(), &bad).await,
        422,
        "Invalid",
        &format!("CustomResourceDefinition.apiextensions.k8s.io \"gadgets.example.com\" is invalid: [metadata.name: Invalid value: \"gadgets.example.com\": must be spec.names.plural+\".\"+spec.group, spec.versions: Invalid value: {VERSIONS}: must have exactly one version marked as storage version, status.storedVersions: Invalid value: []string(nil): must have at least one stored version]"),
        &[
            (
                "FieldValueInvalid",
                "metadata.name",
                "Invalid value: \"gadgets.example.com\": must be spec.names.plural+\".\"+spec.group",
            ),
            (
                "FieldValueInvalid",
                "spec.versions",
                &format!("Invalid value: {VERSIONS}: must have exactly one version marked as storage version"),
            ),
            (
                "FieldValueInvalid",
                "status.storedVersions",
                "Invalid value: []string(nil): must have at least one stored version",
            ),
        ],
    );

    // Deleting the CRD removes its objects and stops serving it.
    crds.delete("widgets.example.com", &Default::default())
        .await
        .unwrap();
    eventually("the CRD is gone", || async {
        matches!(crds.get("widgets.example.com").await, Err(kube::Error::Api(s)) if s.code == 404)
    })
    .await;
    let (code, _) = t
        .raw(
            "GET",
            "/apis/example.com/v1/namespaces/default/widgets",
            None,
            vec![],
        )
        .await;
    assert_eq!(code, 404);
    let leftovers = t
        .server
        .store()
        .snapshot()
        .count("/example.com/widgets/", None);
    assert_eq!(leftovers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_scale_subresource_and_selectable_fields() {
    let t = support::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let mut v = version("v1", true);
    v["subresources"]["scale"] = json!({"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.count", "labelSelectorPath": ".status.selector"});
    v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["count"] =
        json!({"type": "integer"});
    v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["selector"] =
        json!({"type": "string"});
    v["selectableFields"] = json!([{"jsonPath": ".spec.color"}]);
    crds.create(&PostParams::default(), &widget_crd(json!([v])))
        .await
        .unwrap();
    eventually("the CRD is established", || established(&crds)).await;
    let api = widgets(&t, "v1");
    api.create(
        &PostParams::default(),
        &widget("v1", "a", json!({"size": 2, "color": "blue"})),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &widget("v1", "b", json!({"size": 2})),
    )
    .await
    .unwrap();
    let st = json!({"status": {"count": 2, "selector": "app=w"}});
    api.patch_status("a", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();

    let (code, scale) = t
        .raw(
            "GET",
            "/apis/example.com/v1/namespaces/default/widgets/a/scale",
            None,
            vec![],
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        (
            scale["spec"]["replicas"].clone(),
            scale["status"]["replicas"].clone(),
            scale["status"]["selector"].clone()
        ),
        (json!(2), json!(2), json!("app=w"))
    );
    let (code, _) = t
        .raw(
            "PATCH",
            "/apis/example.com/v1/namespaces/default/widgets/a/scale",
            Some("application/merge-patch+json"),
            br#"{"spec":{"replicas":5}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(api.get("a").await.unwrap().data["spec"]["size"], 5);
    // The schema still applies through the scale subresource (maximum 10).
    let (code, _) = t
        .raw(
            "PATCH",
            "/apis/example.com/v1/namespaces/default/widgets/a/scale",
            Some("application/merge-patch+json"),
            br#"{"spec":{"replicas":50}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 422);

    let blue = api
        .list(&kube::api::ListParams::default().fields("spec.color=blue"))
        .await
        .unwrap();
    assert_eq!(blue.items.len(), 1);
    let red = api
        .list(&kube::api::ListParams::default().fields("spec.color=red"))
        .await
        .unwrap();
    assert_eq!(
        red.items
            .iter()
            .map(|w| w.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["b"],
        "defaults are selectable"
    );
    assert_refused(
        api.list(&kube::api::ListParams::default().fields("spec.size=2"))
            .await,
        400,
        "BadRequest",
        "field label not supported: spec.size",
        &[],
    );
}
