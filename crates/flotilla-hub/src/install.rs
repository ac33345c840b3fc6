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

/// Creates the fleet CRDs, or brings existing ones up to this version's definitions, and
/// registers the admission checks.
pub async fn install(server: &ApiServer) -> anyhow::Result<()> {
    server.add_validator(
        crds::CLUSTER_GROUP,
        "memberclusters",
        Arc::new(|obj, _old| {
            member::validate_member_cluster(obj)
                .into_iter()
                .map(|(reason, field, message)| Cause {
                    reason,
                    field,
                    message,
                })
                .collect()
        }),
    );
    for plural in ["clusterresourceplacements", "resourceplacements"] {
        server.add_validator(
            placement::PLACEMENT_GROUP,
            plural,
            Arc::new(|obj, old| {
                placement::validate_placement(obj, old)
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
    for plural in ["clusterresourceoverrides", "resourceoverrides"] {
        server.add_validator(
            placement::PLACEMENT_GROUP,
            plural,
            Arc::new(|obj, _old| {
                crate::overrides::validate(obj)
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
    let api: Api<DynamicObject> = Api::all_with(server.client(), &crd_resource());
    for mut crd in crds::all() {
        let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            crd.to_string().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        crd["metadata"]["annotations"] = serde_json::json!({DIGEST: digest});
        let mut obj: DynamicObject = serde_json::from_value(crd)?;
        match api.get_opt(&name).await? {
            None => {
                api.create(&PostParams::default(), &obj).await?;
            }
            Some(cur)
                if cur
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DIGEST))
                    != Some(&digest) =>
            {
                obj.metadata.resource_version = cur.metadata.resource_version.clone();
                api.replace(&name, &PostParams::default(), &obj).await?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}
