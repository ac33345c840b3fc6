//! KubeFleet's `placement.kubernetes-fleet.io` group: placements (ClusterResourcePlacement,
//! ResourcePlacement), the hub's records of its decisions (resource and scheduling-policy
//! snapshots, bindings), the work sent to members (Work, AppliedWork), overrides and their
//! snapshots, and envelopes. Served in v1 (stored) and v1beta1 with one schema. Field names,
//! types, defaults and limits follow KubeFleet's API; rules it writes in CEL are admission
//! checks (`validate_placement`).
//!
//! The names (labels, annotations, finalizers, condition types) are here; the CRD schemas in
//! `schema.rs`; the admission checks in `validate.rs`; evictions and disruption budgets in
//! `eviction.rs`; the staged update API (strategies,
//! runs, approval requests) in `staged.rs`.

pub mod eviction;
pub mod reason;
mod schema;
pub mod staged;
mod validate;

pub use schema::{applied_work, cluster_resource_placement, crds, resource_placement};
pub use validate::{validate_envelope, validate_placement};

/// API group of placements.
pub const PLACEMENT_GROUP: &str = "placement.kubernetes-fleet.io";
/// The version the hub stores placement objects in.
pub const STORAGE_VERSION: &str = "v1";

/// Labels and annotations KubeFleet puts on the objects it derives.
pub mod label {
    /// On snapshots, bindings and works: the ClusterResourcePlacement (or ResourcePlacement) they belong to.
    pub const PARENT_CRP: &str = "kubernetes-fleet.io/parent-CRP";
    /// On snapshots: `true` on the latest one.
    pub const IS_LATEST_SNAPSHOT: &str = "kubernetes-fleet.io/is-latest-snapshot";
    /// On resource snapshots and works: the resource index.
    pub const RESOURCE_INDEX: &str = "kubernetes-fleet.io/resource-index";
    /// On scheduling-policy snapshots: the policy index.
    pub const POLICY_INDEX: &str = "kubernetes-fleet.io/policy-index";
    /// On works: the index of the resource snapshot they were generated from.
    pub const PARENT_RESOURCE_SNAPSHOT_INDEX: &str =
        "kubernetes-fleet.io/parent-resource-snapshot-index";
    /// On works: the binding they were generated for.
    pub const PARENT_BINDING: &str = "kubernetes-fleet.io/parent-resource-binding";
    /// On works of a ResourcePlacement: its namespace.
    pub const PARENT_NAMESPACE: &str = "kubernetes-fleet.io/parent-namespace";
    /// On ClusterResourceOverride snapshots: the override.
    pub const PARENT_CLUSTER_RESOURCE_OVERRIDE: &str =
        "kubernetes-fleet.io/parent-cluster-resource-override";
    /// On ResourceOverride snapshots: the override.
    pub const PARENT_RESOURCE_OVERRIDE: &str = "kubernetes-fleet.io/parent-resource-override";
    /// On override snapshots: the index.
    pub const OVERRIDE_INDEX: &str = "kubernetes-fleet.io/override-index";
}

/// Annotations.
pub mod annotation {
    /// On resource snapshots: hash of the selected resources.
    pub const RESOURCE_HASH: &str = "kubernetes-fleet.io/resource-hash";
    /// On policy snapshots: hash of the policy (numberOfClusters aside).
    pub const POLICY_HASH: &str = "kubernetes-fleet.io/policy-hash";
    /// On policy snapshots: numberOfClusters of a PickN policy (changing N does not make a new
    /// snapshot).
    pub const NUMBER_OF_CLUSTERS: &str = "kubernetes-fleet.io/number-of-clusters";
    /// On snapshots and bindings: the placement generation they were derived from.
    pub const CRP_GENERATION: &str = "kubernetes-fleet.io/CRP-generation";
    /// On resource snapshots: how many snapshot objects make up the resource index.
    pub const NUMBER_OF_RESOURCE_SNAPSHOTS: &str =
        "kubernetes-fleet.io/number-of-resource-snapshots";
    /// On override snapshots and others: the hash of the spec.
    pub const OVERRIDE_HASH: &str = "kubernetes-fleet.io/override-hash";
    /// On works and applied works: the placement's deleteStrategy (Delete or Abandon).
    pub const DELETE_STRATEGY: &str = "kubernetes-fleet.io/delete-strategy";
}

/// Finalizers.
pub mod finalizer {
    /// On a placement: its snapshots, bindings and works are cleaned up first.
    pub const PLACEMENT_CLEANUP: &str = "kubernetes-fleet.io/crp-cleanup";
}

/// Condition types of a ClusterResourcePlacement (a ResourcePlacement uses the same words
/// with `ResourcePlacement` in place of `ClusterResourcePlacement`).
pub mod crp_condition {
    /// Scheduled.
    pub const SCHEDULED: &str = "ClusterResourcePlacementScheduled";
    /// Rollout started on every scheduled cluster.
    pub const ROLLOUT_STARTED: &str = "ClusterResourcePlacementRolloutStarted";
    /// Overrides applied.
    pub const OVERRIDDEN: &str = "ClusterResourcePlacementOverridden";
    /// Works created or updated.
    pub const WORK_SYNCHRONIZED: &str = "ClusterResourcePlacementWorkSynchronized";
    /// Applied in every cluster.
    pub const APPLIED: &str = "ClusterResourcePlacementApplied";
    /// Available in every cluster.
    pub const AVAILABLE: &str = "ClusterResourcePlacementAvailable";
    /// Differences reported (ReportDiff).
    pub const DIFF_REPORTED: &str = "ClusterResourcePlacementDiffReported";
}

/// Per-cluster condition types (placement status entries, bindings).
pub mod cluster_condition {
    /// Scheduled to the cluster.
    pub const SCHEDULED: &str = "Scheduled";
    /// Rollout started on the cluster.
    pub const ROLLOUT_STARTED: &str = "RolloutStarted";
    /// Overrides applied.
    pub const OVERRIDDEN: &str = "Overridden";
    /// Works created or updated.
    pub const WORK_SYNCHRONIZED: &str = "WorkSynchronized";
    /// Applied.
    pub const APPLIED: &str = "Applied";
    /// Available.
    pub const AVAILABLE: &str = "Available";
    /// Differences reported.
    pub const DIFF_REPORTED: &str = "DiffReported";
}
