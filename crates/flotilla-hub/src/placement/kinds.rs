//! The placement's resource table: the kinds placement reads and writes, by [`Scope`]
//! (cluster-scoped placements or namespaced ones), and the names it gives.

use flotilla_api::placement::{PLACEMENT_GROUP, STORAGE_VERSION};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::ObjectRef;

/// A kind of `placement.kubernetes-fleet.io` in the version the hub stores.
pub fn placement_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(PLACEMENT_GROUP, STORAGE_VERSION, kind),
        plural,
    )
}

/// ClusterResourcePlacement.
pub fn crp_resource() -> ApiResource {
    placement_resource("ClusterResourcePlacement", "clusterresourceplacements")
}
/// ClusterResourceSnapshot.
pub fn resource_snapshot_resource() -> ApiResource {
    placement_resource("ClusterResourceSnapshot", "clusterresourcesnapshots")
}
/// ClusterSchedulingPolicySnapshot.
pub fn policy_snapshot_resource() -> ApiResource {
    placement_resource(
        "ClusterSchedulingPolicySnapshot",
        "clusterschedulingpolicysnapshots",
    )
}
/// ClusterResourceBinding.
pub fn binding_resource() -> ApiResource {
    placement_resource("ClusterResourceBinding", "clusterresourcebindings")
}
/// ClusterResourceOverride.
pub fn cro_resource() -> ApiResource {
    placement_resource("ClusterResourceOverride", "clusterresourceoverrides")
}
/// ResourceOverride.
pub fn ro_resource() -> ApiResource {
    placement_resource("ResourceOverride", "resourceoverrides")
}
/// ClusterResourceOverrideSnapshot.
pub fn cro_snapshot_resource() -> ApiResource {
    placement_resource(
        "ClusterResourceOverrideSnapshot",
        "clusterresourceoverridesnapshots",
    )
}
/// ResourceOverrideSnapshot.
pub fn ro_snapshot_resource() -> ApiResource {
    placement_resource("ResourceOverrideSnapshot", "resourceoverridesnapshots")
}

/// Which placements a controller serves. Everything else is the same for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// ClusterResourcePlacements: cluster-scoped, select cluster-scoped resources (a
    /// Namespace with what is in it); their snapshots and bindings are cluster-scoped.
    Cluster,
    /// ResourcePlacements: namespaced, select resources of their own namespace; their
    /// snapshots and bindings live in that namespace.
    Namespaced,
}

impl Scope {
    /// The placement type.
    pub fn placement(self) -> ApiResource {
        match self {
            Scope::Cluster => crp_resource(),
            Scope::Namespaced => rp_resource(),
        }
    }
    /// The resource snapshot type.
    pub fn resource_snapshot(self) -> ApiResource {
        match self {
            Scope::Cluster => resource_snapshot_resource(),
            Scope::Namespaced => placement_resource("ResourceSnapshot", "resourcesnapshots"),
        }
    }
    /// The scheduling policy snapshot type.
    pub fn policy_snapshot(self) -> ApiResource {
        match self {
            Scope::Cluster => policy_snapshot_resource(),
            Scope::Namespaced => {
                placement_resource("SchedulingPolicySnapshot", "schedulingpolicysnapshots")
            }
        }
    }
    /// The binding type.
    pub fn binding(self) -> ApiResource {
        match self {
            Scope::Cluster => binding_resource(),
            Scope::Namespaced => placement_resource("ResourceBinding", "resourcebindings"),
        }
    }
    /// The staged update run type.
    pub fn update_run(self) -> ApiResource {
        match self {
            Scope::Cluster => {
                placement_resource("ClusterStagedUpdateRun", "clusterstagedupdateruns")
            }
            Scope::Namespaced => placement_resource("StagedUpdateRun", "stagedupdateruns"),
        }
    }
    /// The staged update strategy type.
    pub fn update_strategy(self) -> ApiResource {
        match self {
            Scope::Cluster => placement_resource(
                "ClusterStagedUpdateStrategy",
                "clusterstagedupdatestrategies",
            ),
            Scope::Namespaced => {
                placement_resource("StagedUpdateStrategy", "stagedupdatestrategies")
            }
        }
    }
    /// The approval request type.
    pub fn approval_request(self) -> ApiResource {
        match self {
            Scope::Cluster => {
                placement_resource("ClusterApprovalRequest", "clusterapprovalrequests")
            }
            Scope::Namespaced => placement_resource("ApprovalRequest", "approvalrequests"),
        }
    }
    /// The placement's condition for a per-cluster condition type (`Applied` ->
    /// `ClusterResourcePlacementApplied` or `ResourcePlacementApplied`).
    pub(super) fn condition(self, cluster_type: &str) -> String {
        format!("{}{cluster_type}", self.placement().kind)
    }
    /// A reference to the placement `name` (in `namespace` for a ResourcePlacement).
    pub(crate) fn placement_ref(
        self,
        name: &str,
        namespace: Option<&str>,
    ) -> ObjectRef<DynamicObject> {
        let r = ObjectRef::new_with(name, self.placement());
        match (self, namespace) {
            (Scope::Namespaced, Some(ns)) => r.within(ns),
            _ => r,
        }
    }
}

/// ResourcePlacement.
pub fn rp_resource() -> ApiResource {
    placement_resource("ResourcePlacement", "resourceplacements")
}

/// The Work of a placement in each member's namespace: `<crp>-work` for a
/// ClusterResourcePlacement, `<namespace>.<rp>-work` for a ResourcePlacement.
pub fn work_name(placement: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{ns}.{placement}-work"),
        None => format!("{placement}-work"),
    }
}

/// `ar` in `namespace`, or cluster-wide.
pub(crate) fn api_in(
    client: &kube::Client,
    ar: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}
