//! Real Kubernetes for Flotilla's tests: a control plane of the pinned release
//! (kube-apiserver over Debian's etcd, kube-controller-manager, kube-scheduler) with KWOK
//! simulating nodes and pods, started on loopback and stopped when dropped.
//!
//! The binaries come from `scripts/k8s.sh`, which builds them from the Go module proxy and
//! caches them outside the work tree; `FLOTILLA_K8S_BIN` names a directory that already holds
//! them. Each process runs under a watchdog that stops it when the test process exits, so no
//! control plane outlives a test run, even a killed one.
//!
//! Used as a member cluster for the agent, as a hub for the fleet controllers, and as the
//! reference of the differential API suite.

mod cluster;
pub(crate) mod pki;

pub use cluster::{binaries, ControlPlane, RealCluster, K8S_VERSION};
pub use flotilla_store::supervised::Supervised;
pub use pki::user_kubeconfig;

/// What can go wrong starting a real cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Generating certificates failed.
    #[error("certificates: {0}")]
    Cert(#[from] rcgen::Error),
    /// The Kubernetes binaries could not be built or found.
    #[error("kubernetes binaries: {0}")]
    Binaries(String),
    /// A component did not become ready in time; the message carries its log's tail.
    #[error("{0}")]
    NotReady(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
