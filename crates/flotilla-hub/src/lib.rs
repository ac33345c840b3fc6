//! The hub's fleet controllers. Each is a level-triggered reconciler that reads through
//! watch-fed caches and writes through the API (the in-process `kube` client), so it could run
//! against any Kubernetes API server with Flotilla's CRDs installed.

#![warn(missing_docs)]

pub mod install;
pub mod members;
pub mod overrides;
pub mod placement;
pub mod resources;

use std::time::Duration;

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
pub async fn start(
    server: &flotilla_apiserver::ApiServer,
    config: HubConfig,
) -> anyhow::Result<()> {
    install::install(server).await?;
    let client = server.client();
    server.spawn_controller("member-controller", move || {
        members::run(client.clone(), config.clone())
    });
    let client = server.client();
    server.spawn_controller("placement-controller", move || {
        placement::run(client.clone())
    });
    Ok(())
}
