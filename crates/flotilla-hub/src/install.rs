//! Serving the fleet APIs: the KubeFleet CRDs (created or updated at start) and the admission
//! rules KubeFleet writes in CEL or webhooks (member clusters, placements).

use std::sync::Arc;

use flotilla_api::{crds, member, placement};
use flotilla_apiserver::{ApiServer, Cause};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};

/// Annotation recording which definition a CRD was installed from.
const DIGEST: &str = "flotilla.dev/definition-digest";

/// The CRD resource.
fn crd_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    )
}

/// An admission rule: the object, the stored one on update; the field errors.
pub type Rule = fn(&serde_json::Value, Option<&serde_json::Value>) -> Vec<member::FieldError>;

/// The fleet's admission rules, by group and plural: the rules KubeFleet writes in CEL or
/// webhooks. The hub's own API server runs them in process; against another API server they
/// run in the hub's validating webhook (`crate::admission`).
pub fn rules() -> [(&'static str, &'static str, Rule); 15] {
    use flotilla_api::placement::PLACEMENT_GROUP as P;
    use flotilla_api::placement::{eviction, staged};
    [
        (crds::CLUSTER_GROUP, "memberclusters", |o, _| {
            member::validate_member_cluster(o)
        }),
        (
            P,
            "clusterresourceplacements",
            placement::validate_placement,
        ),
        (P, "resourceplacements", placement::validate_placement),
        (P, "clusterresourceoverrides", |o, _| {
            flotilla_api::overrides::validate(o)
        }),
        (P, "resourceoverrides", |o, _| {
            flotilla_api::overrides::validate(o)
        }),
        (P, "clusterresourceenvelopes", |o, _| {
            placement::validate_envelope(o)
        }),
        (P, "resourceenvelopes", |o, _| {
            placement::validate_envelope(o)
        }),
        (
            P,
            "clusterstagedupdatestrategies",
            staged::validate_strategy,
        ),
        (P, "stagedupdatestrategies", staged::validate_strategy),
        (P, "clusterstagedupdateruns", staged::validate_run),
        (P, "stagedupdateruns", staged::validate_run),
        (P, "clusterapprovalrequests", staged::validate_approval),
        (P, "approvalrequests", staged::validate_approval),
        (
            P,
            "clusterresourceplacementevictions",
            eviction::validate_eviction,
        ),
        (
            P,
            "clusterresourceplacementdisruptionbudgets",
            eviction::validate_budget,
        ),
    ]
}

/// Creates the fleet CRDs, or brings existing ones up to this version's definitions, and
/// registers the admission checks on the hub's own API server.
pub async fn install(server: &ApiServer) -> Result<(), crate::Error> {
    for (group, plural, rule) in rules() {
        server.add_validator(
            group,
            plural,
            Arc::new(move |obj, old| {
                rule(obj, old)
                    .into_iter()
                    .map(|(reason, field, message)| Cause {
                        reason,
                        field,
                        message,
                    })
                    .collect()
            }),
        );
    }
    install_crds(server.client()).await
}

/// Creates the fleet CRDs through `client`, or brings existing ones up to this version's
/// definitions (an annotation records which definition each was installed from), and waits
/// until the API server serves them.
pub async fn install_crds(client: kube::Client) -> Result<(), crate::Error> {
    let api: Api<DynamicObject> = Api::all_with(client, &crd_resource());
    let mut names = Vec::new();
    for mut crd in crds::all() {
        let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
        // A stable digest (FNV over the JSON), the same in every build of the hub.
        let digest = flotilla_api::manifests::content_hash(std::slice::from_ref(&crd));
        crd["metadata"]["annotations"] = serde_json::json!({DIGEST: digest});
        let mut obj: DynamicObject = serde_json::from_value(crd)?;
        // The API server's CRD controller writes the CRD's status as it goes (a real
        // kube-apiserver does so right after every change): an update that meets a newer
        // version reads it again.
        for attempt in 1.. {
            let written = match api.get_opt(&name).await? {
                None => api.create(&PostParams::default(), &obj).await.map(drop),
                Some(cur)
                    if cur
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(DIGEST))
                        != Some(&digest) =>
                {
                    obj.metadata.resource_version = cur.metadata.resource_version.clone();
                    api.replace(&name, &PostParams::default(), &obj)
                        .await
                        .map(drop)
                }
                Some(_) => Ok(()),
            };
            match written {
                Ok(()) => break,
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < 10 => {
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(crate::Error::Install(format!("installing CRD {name}: {e}"))),
            }
        }
        names.push(name);
    }
    // kube-apiserver serves a new CRD once it is Established (a moment after creation).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    for name in names {
        loop {
            let crd = api.get(&name).await?;
            if flotilla_api::conditions::is_true(&crd.data["status"]["conditions"], "Established") {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(crate::Error::Install(format!(
                    "CRD {name} was not Established within 60 s: {}",
                    crd.data["status"]
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Creates namespace `name` through `client` if it does not exist.
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<(), crate::Error> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        ),
    );
    let ns: DynamicObject = serde_json::from_value(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
