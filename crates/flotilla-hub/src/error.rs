//! The error of a reconcile of the hub's controllers.

/// Why a reconcile did not finish; the controller retries it (a conflict at once, a type that
/// is still loading shortly, anything else with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request (a 409 conflict is retried at once).
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// An object did not have the shape its kind promises.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A placement selects a type whose cache is still loading (or not yet discovered).
    #[error("waiting for the cache of {0}")]
    Loading(String),
}
