//! The AppliedWork CRD in the member: installed, or brought up to this agent's definition.

use std::time::Duration;

use flotilla_api::conditions;

use flotilla_api::placement::{self};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::ResourceExt;
use serde_json::json;

use crate::Error;

/// Annotation on the AppliedWork CRD: a digest of the definition it was installed from.
pub(super) const DEFINITION_DIGEST: &str = "flotilla.dev/definition-digest";

/// Creates the AppliedWork CRD in the member, or replaces one installed from another
/// definition (an older agent's, or none of ours), and waits until the member serves it
/// (Established) for at most `patience`.
pub async fn install_applied_work(member: &kube::Client, patience: Duration) -> Result<(), Error> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(member.clone(), &ar);
    let mut definition = placement::applied_work();
    let digest = flotilla_api::manifests::content_hash(std::slice::from_ref(&definition));
    definition["metadata"]["annotations"] = json!({DEFINITION_DIGEST: digest});
    let name = definition["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut crd: DynamicObject = serde_json::from_value(definition)?;
    // The member's CRD controller writes the CRD's status as it goes: an update that meets a
    // newer version reads it again.
    for attempt in 1.. {
        let written = match api.get_opt(&name).await? {
            None => api.create(&PostParams::default(), &crd).await.map(drop),
            Some(cur) if cur.annotations().get(DEFINITION_DIGEST) != Some(&digest) => {
                tracing::info!(crd = %name, "updating the AppliedWork CRD in the member to this agent's definition");
                crd.metadata.resource_version = cur.metadata.resource_version.clone();
                api.replace(&name, &PostParams::default(), &crd)
                    .await
                    .map(drop)
            }
            Some(_) => Ok(()),
        };
        match written {
            Ok(()) => break,
            // Another writer (the CRD controller, another agent) was first: look again.
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 10 => {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let cur = api.get(&name).await?;
        let conds = &cur.data["status"]["conditions"];
        if conditions::is_true(conds, "Established") {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let why = conditions::find(conds, "NamesAccepted")
                .filter(|c| c["status"] == "False")
                .map(|c| format!(": {}", c["message"].as_str().unwrap_or("")))
                .unwrap_or_default();
            return Err(Error::Setup(format!(
                "the member has not established the AppliedWork CRD within {patience:?}{why}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
