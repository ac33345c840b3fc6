//! The hub's one error type: why a reconcile of its controllers did not finish, and why
//! installing the fleet APIs, registering the webhook or campaigning for the Lease failed.

/// An error of the hub. A reconcile that fails is retried by its controller (a conflict at
/// once, a type that is still loading shortly, anything else with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request (a 409 conflict is retried at once).
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A write of one object a reconcile makes failed: which object, and the API's answer.
    #[error("{object}: {source}")]
    Write {
        /// The object, as kind and name ("binding web-a-1234abcd").
        object: String,
        /// The API's answer.
        #[source]
        source: kube::Error,
    },
    /// An object did not have the shape its kind promises.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A placement selects a type whose cache is still loading (or not yet discovered).
    #[error("waiting for the cache of {0}")]
    Loading(String),
    /// A finalizer could not be handled (kube-runtime's finalizer helper).
    #[error("{0}")]
    Finalizer(String),
    /// A fleet CRD could not be installed, or was not served in time.
    #[error("{0}")]
    Install(String),
    /// The fleet's validating webhook could not be registered.
    #[error("registering the fleet's validating webhook: {0}")]
    Webhook(kube::Error),
}

impl Error {
    /// This error, saying which object it concerns (an API error becomes [`Error::Write`]).
    pub fn concerning(self, object: impl Into<String>) -> Self {
        match self {
            Error::Kube(source) => Error::Write {
                object: object.into(),
                source,
            },
            e => e,
        }
    }

    /// Whether the API answered 409 Conflict (another writer was first: retry at once).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) | Error::Write { source: kube::Error::Api(s), .. } if s.code == 409)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": "Conflict",
            "message": "the object has been modified"}))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_write_error_names_its_object_and_stays_a_conflict() {
        let e = Error::from(api_error(409)).concerning("binding web-a-1234abcd");
        assert!(e.is_conflict());
        assert!(e.to_string().starts_with("binding web-a-1234abcd: "), "{e}");
        assert!(!Error::from(api_error(500))
            .concerning("Work x/y")
            .is_conflict());
        // Errors that are not the API's answer keep their own words.
        let loading = Error::Loading("apps/Deployment".into()).concerning("binding b");
        assert_eq!(
            loading.to_string(),
            "waiting for the cache of apps/Deployment"
        );
    }
}
