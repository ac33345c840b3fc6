//! The hub's fleet controllers. Each is a level-triggered reconciler that reads through
//! watch-fed caches and writes through the API (the in-process `kube` client), so it could run
//! against any Kubernetes API server with Flotilla's CRDs installed.

#![warn(missing_docs)]

pub mod admission;
mod error;
pub mod eviction;
pub mod install;
pub mod lease;
pub mod members;
pub mod placement;
mod queue;
pub mod resources;
pub mod updaterun;

use std::time::Duration;

pub use error::Error;

/// Tuning of the hub's controllers.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// A member is unhealthy once its last heartbeat is older than this; None means three
    /// heartbeat periods of that member.
    pub health_threshold: Option<Duration>,
    /// How long a deleted member's agent has to report that it left before the hub removes
    /// the member's namespace anyway.
    pub leave_timeout: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            health_threshold: None,
            leave_timeout: Duration::from_secs(300),
        }
    }
}

/// Installs the fleet APIs on `server` and starts the controllers. Returns once the APIs are
/// served; the controllers run until the server shuts down.
pub async fn start(server: &flotilla_apiserver::ApiServer, config: HubConfig) -> Result<(), Error> {
    install::install(server).await?;
    spawn_controllers(
        &server.client(),
        &server.leadership(),
        server.stopped(),
        config,
    );
    Ok(())
}

/// Starts the controllers against the API server behind `client` (another Kubernetes API
/// server with the fleet CRDs installed, see [`install::install_crds`]): they run while
/// `leadership` is held, until `stopped` resolves.
pub fn spawn_controllers(
    client: &kube::Client,
    leadership: &flotilla_store::Leadership,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
    config: HubConfig,
) {
    let stopped = futures::FutureExt::shared(Box::pin(stopped));
    let c = client.clone();
    leadership.spawn_controller("member-controller", stopped.clone(), move || {
        members::run(c.clone(), config.clone())
    });
    // Placements, update runs and evictions run as one: they share the binding caches
    // (placement::SharedBindings), whose watches the placement controller drives.
    let c = client.clone();
    leadership.spawn_controller("placement-controllers", stopped, move || {
        let mut bindings = placement::SharedBindings::new(&c);
        let eviction = eviction::run(c.clone(), bindings.reader(placement::Scope::Cluster));
        let updaterun = updaterun::run(
            c.clone(),
            [
                bindings.subscribe(placement::Scope::Cluster),
                bindings.subscribe(placement::Scope::Namespaced),
            ],
        );
        let placement = placement::run(c.clone(), bindings);
        async move {
            futures::join!(placement, updaterun, eviction);
        }
    });
}
