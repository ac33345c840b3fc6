//! The agent's one error type: what stops the agent, the applier or a join, and what the agent
//! reports about its member cluster.

/// An error of the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kubeconfig file cannot be read.
    #[error("reading kubeconfig {path}: {message}")]
    ReadKubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A kubeconfig cannot be used (no current cluster, bad credentials data).
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file, or what the kubeconfig is of.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A cluster (the hub or the member) answered with an error.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The hub could not be reached at all (a join's first request).
    #[error("reaching the hub: {}", crate::brief(.0))]
    Unreachable(kube::Error),
    /// A join found a member of that name on the hub.
    #[error("member cluster {0:?} already exists on the hub; choose another name or delete it first (kubectl delete membercluster {0})")]
    Exists(String),
    /// The hub did not do its part of a join in time.
    #[error("{0}")]
    Timeout(String),
    /// A join's key or certificate request could not be made.
    #[error("making the member's certificate request: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A manifest, an object or a server's answer could not be read.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The member cluster is not ready for the agent (its API server not ready, the
    /// custom-properties ConfigMap unreadable); the message is what the agent reports in the
    /// member's conditions.
    #[error("{0}")]
    Member(String),
    /// The member cannot be set up for the applier (the AppliedWork CRD).
    #[error("{0}")]
    Setup(String),
    /// The agent's watch of its InternalMemberCluster ended.
    #[error("the watch of the member's InternalMemberCluster on the hub ended")]
    WatchEnded,
}
