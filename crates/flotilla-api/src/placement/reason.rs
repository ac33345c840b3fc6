//! The reasons of the conditions the hub writes on bindings and placements (the agent's, on
//! Works and manifests, are [`crate::work::WorkReason`] and [`crate::work::ManifestReason`]).

values! {
    /// Why a binding's condition is what it is.
    BindingReason {
        /// Scheduled: the cluster was picked.
        Scheduled,
        /// RolloutStarted: the binding names the latest resources.
        RolloutStarted,
        /// RolloutStarted: the rollout strategy holds the binding back.
        RolloutNotStartedYet,
        /// Overridden: no override applies.
        NoOverrideSpecified,
        /// Overridden: the overrides applied.
        OverriddenSucceeded,
        /// Overridden: an override cannot be applied.
        OverriddenFailed,
        /// WorkSynchronized: the Work does not hold the latest resources yet.
        WorkNotSynchronizedYet,
        /// WorkSynchronized: the Work holds the latest resources.
        AllWorkSynced,
        /// Applied: the agent applied every manifest.
        AllWorkHaveBeenApplied,
        /// Applied: some manifest is not applied.
        WorkNotAppliedYet,
        /// Applied: the agent has not reported on the latest Work yet.
        WorkApplyPending,
        /// Available: every manifest is available.
        AllWorkAreAvailable,
        /// Available: every manifest is, some only because their availability cannot be
        /// tracked (the rollout counts the cluster ready after its unavailable period).
        NotAllWorkAreAvailabilityTrackable,
        /// Available: some manifest is not available yet.
        WorkNotAvailableYet,
        /// Available: the agent has not reported on the latest Work yet.
        WorkAvailabilityPending,
        /// Available: the member has been unhealthy past the failover grace period; what it
        /// runs is unknown.
        MemberClusterUnhealthy,
        /// DiffReported: the agent reported differences (ReportDiff).
        DiffReported,
        /// DiffReported: the agent has not reported on the latest Work yet (ReportDiff).
        DiffReportPending,
    }
}

values! {
    /// Why a placement's condition is what it is.
    PlacementReason {
        /// Scheduled: every cluster the policy asks for is picked.
        SchedulingPolicyFulfilled,
        /// Scheduled: fewer clusters than the policy asks for could be picked.
        SchedulingPolicyUnfulfilled,
        /// Scheduled: the policy is invalid.
        InvalidPolicy,
        /// Scheduled: the resource selectors are invalid.
        InvalidResourceSelectors,
        /// Scheduled: the selected resources are too large for a snapshot.
        SelectedResourcesTooLarge,
        /// RolloutStarted: on every cluster.
        RolloutStarted,
        /// RolloutStarted: not on some cluster.
        RolloutNotStartedYet,
        /// RolloutStarted: not known for some cluster yet.
        RolloutStartedUnknown,
        /// Overridden: no override applies.
        NoOverrideSpecified,
        /// Overridden: the overrides applied on every cluster.
        OverriddenSucceeded,
        /// Overridden: an override cannot be applied on some cluster.
        OverriddenFailed,
        /// Overridden: not known for some cluster yet.
        OverriddenPending,
        /// WorkSynchronized: every cluster's Work holds the latest resources.
        WorkSynchronized,
        /// WorkSynchronized: some cluster's Work does not yet.
        WorkNotSynchronizedYet,
        /// WorkSynchronized: not known for some cluster yet.
        WorkSynchronizedUnknown,
        /// Applied: on every cluster.
        ApplySucceeded,
        /// Applied: failed on some cluster.
        ApplyFailed,
        /// Applied: not known for some cluster yet.
        ApplyPending,
        /// Available: on every cluster.
        ResourceAvailable,
        /// Available: not yet on some cluster.
        ResourceNotAvailableYet,
        /// Available: not known for some cluster yet.
        ResourceAvailablePending,
        /// DiffReported: every cluster reported its differences.
        DiffReported,
        /// DiffReported: some cluster has not reported yet.
        DiffReportPending,
    }
}

values! {
    /// Why a staged update run's, stage's, cluster's or task's condition is what it is
    /// (KubeFleet's reasons, and `ClusterUpdatingSkipped` for a cluster that left the placement
    /// before its turn).
    UpdateRunReason {
        /// Initialized: the stages are computed.
        UpdateRunInitializedSuccessfully,
        /// Initialized: the run cannot start (the message says why).
        UpdateRunInitializedFailed,
        /// Progressing: clusters are updating.
        UpdateRunProgressing,
        /// Progressing/Succeeded: the run failed.
        UpdateRunFailed,
        /// Progressing: a cluster has been updating for more than five minutes.
        UpdateRunStuck,
        /// Progressing: waiting for a task (approval, timer) of a stage.
        UpdateRunWaiting,
        /// Progressing: stopping; clusters already updating finish.
        UpdateRunStopping,
        /// Progressing: stopped.
        UpdateRunStopped,
        /// Progressing/Succeeded: every stage is done.
        UpdateRunSucceeded,
        /// Stage Progressing: its clusters are updating.
        StageUpdatingStarted,
        /// Stage Progressing: waiting for its tasks.
        StageUpdatingWaiting,
        /// Stage Progressing: stopping.
        StageUpdatingStopping,
        /// Stage Progressing: stopped.
        StageUpdatingStopped,
        /// Stage Succeeded: failed.
        StageUpdatingFailed,
        /// Stage Succeeded: done.
        StageUpdatingSucceeded,
        /// Stage Succeeded: it has no clusters.
        StageUpdatingSkippedNoClusters,
        /// Cluster Started.
        ClusterUpdatingStarted,
        /// Cluster Succeeded: failed.
        ClusterUpdatingFailed,
        /// Cluster Succeeded: done.
        ClusterUpdatingSucceeded,
        /// Cluster Succeeded: it left the placement before its update finished.
        ClusterUpdatingSkipped,
        /// Task ApprovalRequestApproved.
        StageTaskApprovalRequestApproved,
        /// Task ApprovalRequestCreated.
        StageTaskApprovalRequestCreated,
        /// Task WaitTimeElapsed.
        AfterStageTaskWaitTimeElapsed,
        /// ApprovalRequest ApprovalAccepted: the run took the approval.
        ApprovalRequestApprovalAccepted,
    }
}
