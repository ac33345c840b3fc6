//! The contract between the hub and the member agents, typed once for both: the Work and
//! AppliedWork kinds, the apply and delete strategies a Work carries (with KubeFleet's
//! defaults), the identifier of a placed object, and the reasons of the conditions the agent
//! reports on a Work and on each of its manifests. The hub writes Works by these rules and
//! the agent reads them by the same ones; the apply order is [`crate::manifests::rank_of`].

use std::collections::BTreeMap;

use kube_core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use crate::placement::annotation::DELETE_STRATEGY;
use crate::placement::{PLACEMENT_GROUP, STORAGE_VERSION};

/// The Work kind: the manifests for one member cluster, in the member's namespace on the hub.
pub fn work_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(PLACEMENT_GROUP, STORAGE_VERSION, "Work"),
        "works",
    )
}

/// The AppliedWork kind: in the member cluster, what the agent applied for a Work, and the
/// owner of every object it applied.
pub fn applied_work_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(PLACEMENT_GROUP, STORAGE_VERSION, "AppliedWork"),
        "appliedworks",
    )
}

/// A Work's spec: the manifests to apply (in the order the hub selected them; the agent
/// applies them by [`crate::manifests::rank_of`], reporting each by its position) and the
/// apply strategy ([`ApplyStrategy::of_placement`]).
pub fn work_spec(manifests: &[Value], apply_strategy: &Value) -> Value {
    json!({"workload": {"manifests": manifests}, "applyStrategy": apply_strategy})
}

/// The manifests of a Work's spec, each with its position (the `ordinal` of its identifier).
pub fn manifests_of(spec: &Value) -> Vec<(usize, Value)> {
    spec["workload"]["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .cloned()
        .enumerate()
        .collect()
}

values! {
    /// How the agent applies a Work's manifests (`applyStrategy.type`).
    ApplyType {
        /// Applied as kubectl's three-way merge would (by a forced server-side apply).
        ClientSideApply,
        /// A server-side apply by the agent's field manager.
        ServerSideApply,
        /// Nothing is applied; differences are reported.
        ReportDiff,
    }
}

values! {
    /// Which fields are compared with the member's object (`applyStrategy.comparisonOption`).
    ComparisonOption {
        /// The fields the manifest sets.
        PartialComparison,
        /// Every field of the object's spec and data.
        FullComparison,
    }
}

values! {
    /// When the agent applies over the member's object (`applyStrategy.whenToApply`).
    WhenToApply {
        /// Always.
        Always,
        /// Only while the member's object has not drifted from what was applied.
        IfNotDrifted,
    }
}

values! {
    /// Whether the agent takes over objects that exist in the member without being the
    /// fleet's (`applyStrategy.whenToTakeOver`).
    WhenToTakeOver {
        /// Always.
        Always,
        /// Only when the member's object does not differ from the manifest.
        IfNoDiff,
        /// Never.
        Never,
    }
}

values! {
    /// What becomes of a placement's objects in the members when it is deleted or they leave
    /// it (`strategy.deleteStrategy.propagationPolicy`; on Works and AppliedWorks the
    /// [`DELETE_STRATEGY`] annotation).
    DeleteStrategy {
        /// They are deleted.
        Delete,
        /// They stay, no longer the fleet's.
        Abandon,
    }
}

impl DeleteStrategy {
    /// The delete strategy of a placement's spec.
    pub fn of_placement(spec: &Value) -> Self {
        Self::parse(spec["strategy"]["deleteStrategy"]["propagationPolicy"].as_str())
    }

    /// The delete strategy a Work or AppliedWork carries in its annotations.
    pub fn of_annotations(annotations: &BTreeMap<String, String>) -> Self {
        Self::parse(annotations.get(DELETE_STRATEGY).map(String::as_str))
    }
}

/// A Work's apply strategy, read with KubeFleet's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStrategy {
    /// `type`.
    pub ty: ApplyType,
    /// `comparisonOption`.
    pub comparison: ComparisonOption,
    /// `whenToApply`.
    pub when_to_apply: WhenToApply,
    /// `whenToTakeOver`.
    pub when_to_take_over: WhenToTakeOver,
    /// `serverSideApplyConfig.force`.
    pub force_conflicts: bool,
}

impl ApplyStrategy {
    /// A placement's apply strategy as the hub writes it into bindings and Works: KubeFleet's
    /// defaults, with what the placement sets over them (also when it sets no strategy).
    pub fn of_placement(spec: &Value) -> Value {
        let mut a = json!({"type": ApplyType::ClientSideApply.as_str(),
            "comparisonOption": ComparisonOption::PartialComparison.as_str(),
            "whenToApply": WhenToApply::Always.as_str(),
            "whenToTakeOver": WhenToTakeOver::Always.as_str()});
        if let Some(given) = spec["strategy"]["applyStrategy"].as_object() {
            for (k, v) in given {
                a[k] = v.clone();
            }
        }
        a
    }

    /// The strategy a Work carries (`spec.applyStrategy`).
    pub fn of_work(strategy: &Value) -> Self {
        Self {
            ty: ApplyType::parse(strategy["type"].as_str()),
            comparison: ComparisonOption::parse(strategy["comparisonOption"].as_str()),
            when_to_apply: WhenToApply::parse(strategy["whenToApply"].as_str()),
            when_to_take_over: WhenToTakeOver::parse(strategy["whenToTakeOver"].as_str()),
            force_conflicts: strategy["serverSideApplyConfig"]["force"] == true,
        }
    }

    /// Whether the agent applies nothing and reports differences.
    pub fn report_only(&self) -> bool {
        self.ty == ApplyType::ReportDiff
    }

    /// Whether the apply takes fields over from other managers: always, except for a
    /// server-side apply not configured to force.
    pub fn forces(&self) -> bool {
        self.ty != ApplyType::ServerSideApply || self.force_conflicts
    }
}

/// The identifier of a placed object (KubeFleet's ResourceIdentifier): its group, version,
/// kind, name and namespace, and in a Work's status its `ordinal`, the position of its
/// manifest in the Work.
pub fn identifier(manifest: &Value, ordinal: Option<usize>) -> Value {
    let api_version = manifest["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let mut id = serde_json::Map::new();
    if let Some(o) = ordinal {
        id.insert("ordinal".into(), json!(o));
    }
    id.insert("group".into(), json!(group));
    id.insert("version".into(), json!(version));
    id.insert("kind".into(), manifest["kind"].clone());
    id.insert("name".into(), manifest["metadata"]["name"].clone());
    if let Some(ns) = manifest["metadata"]["namespace"].as_str() {
        id.insert("namespace".into(), json!(ns));
    }
    Value::Object(id)
}

/// A Work's manifest identifier as a placement reports it: without what only the Work knows
/// (the manifest's position and the resource's name).
pub fn placed_identifier(work_identifier: &Value) -> Value {
    let mut id = work_identifier.clone();
    if let Some(o) = id.as_object_mut() {
        o.remove("ordinal");
        o.remove("resource");
    }
    id
}

values! {
    /// Why a manifest's Applied or Available condition is what it is, as the agent reports it
    /// in a Work's `status.manifestConditions`.
    ManifestReason {
        /// Applied (or left as it is: nothing to change).
        ManifestApplied,
        /// The member refused the apply.
        ManifestApplyFailed,
        /// The member does not serve the manifest's kind.
        FailedToFindResource,
        /// The object is placed by another placement with another apply strategy.
        ApplyConflictBetweenPlacements,
        /// Another field manager owns fields the apply would change.
        ApplyConflictWithOtherApplier,
        /// The object exists in the member and the strategy does not take it over.
        NotTakenOver,
        /// The member's object drifted and the strategy applies only while it has not.
        FoundDrifts,
        /// ReportDiff: nothing applied.
        ReportDiffMode,
        /// The object is available.
        ManifestAvailable,
        /// The object is not available yet.
        ManifestNotAvailableYet,
        /// The object's kind has no availability to track: available once applied.
        ManifestNotTrackable,
    }
}

values! {
    /// Why a Work's Applied, Available or DiffReported condition is what it is, as the agent
    /// reports it.
    WorkReason {
        /// Every manifest is applied.
        WorkAppliedCompleted,
        /// Some manifest is not applied.
        WorkNotAllManifestsApplied,
        /// Every manifest is available.
        WorkAvailable,
        /// Some manifest is not available yet.
        WorkNotAllManifestsAvailable,
        /// Every manifest is available, some only because their kind has no availability to
        /// track (available once applied).
        WorkNotAllManifestsTrackable,
        /// ReportDiff: the differences are reported.
        DiffReported,
        /// ReportDiff: nothing is applied.
        ReportDiffMode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_strategy_reads_with_kubefleets_defaults() {
        let written = ApplyStrategy::of_placement(&json!({}));
        assert_eq!(
            written,
            json!({"type": "ClientSideApply", "comparisonOption": "PartialComparison",
                "whenToApply": "Always", "whenToTakeOver": "Always"})
        );
        let read = ApplyStrategy::of_work(&written);
        assert_eq!(read, ApplyStrategy::of_work(&json!({})));
        assert!(read.forces() && !read.report_only());

        let spec = json!({"strategy": {"applyStrategy": {"type": "ServerSideApply",
            "whenToTakeOver": "IfNoDiff", "allowCoOwnership": true}}});
        let written = ApplyStrategy::of_placement(&spec);
        assert_eq!(written["allowCoOwnership"], true);
        assert_eq!(written["comparisonOption"], "PartialComparison");
        let read = ApplyStrategy::of_work(&written);
        assert_eq!(read.ty, ApplyType::ServerSideApply);
        assert_eq!(read.when_to_take_over, WhenToTakeOver::IfNoDiff);
        assert!(!read.forces());
        let forced = json!({"type": "ServerSideApply", "serverSideApplyConfig": {"force": true}});
        assert!(ApplyStrategy::of_work(&forced).forces());
        let diff = json!({"type": "ReportDiff", "comparisonOption": "FullComparison",
            "whenToApply": "IfNotDrifted", "whenToTakeOver": "Never"});
        let read = ApplyStrategy::of_work(&diff);
        assert!(read.report_only());
        assert_eq!(read.comparison, ComparisonOption::FullComparison);
        assert_eq!(read.when_to_apply, WhenToApply::IfNotDrifted);
        assert_eq!(read.when_to_take_over, WhenToTakeOver::Never);
        // A value the API does not know reads as the default.
        assert_eq!(
            ApplyStrategy::of_work(&json!({"whenToTakeOver": "Sometimes"})).when_to_take_over,
            WhenToTakeOver::Always
        );
    }

    #[test]
    fn the_delete_strategy_is_delete_unless_abandon() {
        let of = |p: Value| {
            DeleteStrategy::of_placement(
                &json!({"strategy": {"deleteStrategy": {"propagationPolicy": p}}}),
            )
        };
        assert_eq!(of(json!("Abandon")), DeleteStrategy::Abandon);
        assert_eq!(of(json!("Delete")), DeleteStrategy::Delete);
        assert_eq!(of(Value::Null), DeleteStrategy::Delete);
        let annotated = BTreeMap::from([(DELETE_STRATEGY.to_string(), "Abandon".to_string())]);
        assert_eq!(
            DeleteStrategy::of_annotations(&annotated),
            DeleteStrategy::Abandon
        );
        assert_eq!(
            DeleteStrategy::of_annotations(&BTreeMap::new()).as_str(),
            "Delete"
        );
    }

    #[test]
    fn a_work_spec_carries_its_manifests_in_order() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let strategy = ApplyStrategy::of_placement(&json!({}));
        let spec = work_spec(&[cm.clone(), ns.clone()], &strategy);
        assert_eq!(spec["applyStrategy"], strategy);
        assert_eq!(manifests_of(&spec), [(0, cm), (1, ns)]);
        assert!(manifests_of(&json!({})).is_empty());
    }

    #[test]
    fn identifiers_carry_the_ordinal_only_in_works() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n"}});
        assert_eq!(
            identifier(&deploy, None),
            json!({"group": "apps", "version": "v1", "kind": "Deployment", "name": "d", "namespace": "n"})
        );
        let mut in_work = identifier(&deploy, Some(2));
        assert_eq!(in_work["ordinal"], 2);
        in_work["resource"] = json!("deployments");
        assert_eq!(placed_identifier(&in_work), identifier(&deploy, None));
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}});
        assert_eq!(
            identifier(&ns, None),
            json!({"group": "", "version": "v1", "kind": "Namespace", "name": "app"})
        );
    }

    #[test]
    fn reasons_print_as_the_api_spells_them() {
        assert_eq!(
            ManifestReason::ManifestApplied.to_string(),
            "ManifestApplied"
        );
        assert_eq!(
            WorkReason::parse(Some("WorkAvailable")),
            WorkReason::WorkAvailable
        );
        assert_eq!(WorkReason::DiffReported.as_str(), "DiffReported");
    }
}
