//! The hub's one error type: why a reconcile of its controllers did not finish, and why
//! installing the fleet APIs, registering the webhook or campaigning for the Lease failed.

/// An error of the hub. A reconcile that fails is retried by its controller (a conflict at
/// once, a type that is still loading shortly, anything else with backoff).
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
    /// A fleet CRD could not be installed, or was not served in time.
    #[error("{0}")]
    Install(String),
    /// The fleet's validating webhook could not be registered.
    #[error("registering the fleet's validating webhook: {0}")]
    Webhook(kube::Error),
}
