//! What every placement of `flotilla bench fleet` places: a namespace with a ConfigMap, a
//! one-replica Deployment and a Service, selected by a PickN ClusterResourcePlacement with a
//! rolling update strategy; created and changed by server-side apply.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};

/// The objects of placement `name`'s namespace, the ConfigMap at `version`.
pub(crate) fn objects(name: &str, version: usize) -> [Value; 4] {
    [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        config(name, version),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}),
    ]
}

/// The ConfigMap whose change rolls the placement out.
pub(crate) fn config(name: &str, version: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": name},
        "data": {"version": version.to_string()}})
}

/// The placement of namespace `name` on `clusters` clusters (PickN, KubeFleet's default
/// rolling update but for `unavailablePeriodSeconds`).
pub(crate) fn placement(name: &str, clusters: usize, unavailable_period: u64) -> Value {
    placement_with(
        name,
        json!({"placementType": "PickN", "numberOfClusters": clusters}),
        json!({"unavailablePeriodSeconds": unavailable_period}),
    )
}

/// The placement of namespace `name` with `policy` and `rolling_update`.
pub(crate) fn placement_with(name: &str, policy: Value, rolling_update: Value) -> Value {
    json!({"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterResourcePlacement",
        "metadata": {"name": name},
        "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": name}],
            "policy": policy,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update}}})
}

/// Applies objects of the kinds above (without a discovery round trip per object).
pub(crate) struct Applier {
    client: kube::Client,
}

impl Applier {
    pub(crate) fn new(client: kube::Client) -> Self {
        Self { client }
    }

    fn resource(kind: &str) -> anyhow::Result<ApiResource> {
        use k8s_openapi::api::{apps::v1::Deployment, core::v1};
        Ok(match kind {
            "Namespace" => ApiResource::erase::<v1::Namespace>(&()),
            "ConfigMap" => ApiResource::erase::<v1::ConfigMap>(&()),
            "Service" => ApiResource::erase::<v1::Service>(&()),
            "Deployment" => ApiResource::erase::<Deployment>(&()),
            "ClusterResourcePlacement" => flotilla_hub::placement::crp_resource(),
            _ => anyhow::bail!("the benchmark does not place {kind}"),
        })
    }

    fn api(&self, o: &Value) -> anyhow::Result<Api<DynamicObject>> {
        let ar = Self::resource(o["kind"].as_str().unwrap_or(""))?;
        Ok(match o["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Server-side applies `o` as the benchmark's field manager.
    pub(crate) async fn apply(&self, o: &Value) -> anyhow::Result<()> {
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        self.api(o)?
            .patch(
                name,
                &PatchParams::apply("flotilla-bench").force(),
                &Patch::Apply(o),
            )
            .await
            .map_err(|e| anyhow::anyhow!("applying {} {name}: {e}", o["kind"]))?;
        Ok(())
    }

    /// Deletes the cluster-scoped `kind` `name` (gone already is fine).
    pub(crate) async fn delete(&self, kind: &str, name: &str) -> anyhow::Result<()> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &Self::resource(kind)?);
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(anyhow::anyhow!("deleting {kind} {name}: {e}")),
        }
    }

    /// Deletes placement `name` and its namespace.
    pub(crate) async fn remove(&self, name: &str) -> anyhow::Result<()> {
        self.delete("ClusterResourcePlacement", name).await?;
        self.delete("Namespace", name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_is_one_the_applier_knows_and_lives_in_the_placed_namespace() {
        let objects = objects("scale-7", 3);
        for o in &objects {
            Applier::resource(o["kind"].as_str().unwrap()).unwrap();
            let ns = o["metadata"]["namespace"].as_str();
            assert!(ns.is_none_or(|n| n == "scale-7"), "{o}");
        }
        assert_eq!(objects[1]["data"]["version"], "3");
        let p = placement("scale-7", 100, 5);
        Applier::resource(p["kind"].as_str().unwrap()).unwrap();
        assert_eq!(p["spec"]["resourceSelectors"][0]["name"], "scale-7");
        assert_eq!(p["spec"]["policy"]["numberOfClusters"], 100);
        assert!(Applier::resource("Secret").is_err());
    }
}
