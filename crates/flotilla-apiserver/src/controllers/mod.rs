//! The API server's own controllers: the garbage collector and namespace controller
//! ([`gc`]), the CRD controller ([`crd`]) and the client-certificate signer ([`csr_signer`]).
//! Each runs only while this replica leads, started through [`ApiServer::spawn_controller`]
//! (leadership lost: it is dropped with every task it started; the next leader resumes from
//! the store). What every replica must do for itself, whether it leads or not (serving the CRDs
//! any replica writes: [`crate::crd::serve::follow`]), runs through
//! [`ApiServer::spawn_follower`].

pub(crate) mod crd;
pub(crate) mod csr_signer;
pub(crate) mod gc;

use std::time::Duration;

use crate::server::ApiServer;

/// How often the garbage collector looks at every object again, besides following changes.
const GC_RESYNC: Duration = Duration::from_secs(300);

/// Starts the controllers every API server runs (the signer starts with the CA:
/// [`ApiServer::start_signer`]) and the CRD follower.
pub(crate) fn start(server: &ApiServer) {
    server.spawn_follower("crd-follower", crate::crd::serve::follow(server.clone()));
    let s = server.clone();
    server.spawn_controller("crd-controller", move || crd::run(s.clone()));
    let s = server.clone();
    server.spawn_controller("garbage-collector", move || gc::run(s.clone(), GC_RESYNC));
}
