//! A Kubernetes-compatible API server over Flotilla's store.
//!
//! It serves discovery, OpenAPI, CRUD, list and watch with Kubernetes' semantics for the
//! built-in kinds a fleet places and for custom resources, and runs the API machinery's own
//! controllers (garbage collection, namespace deletion, CRD establishment). The hub and the
//! simulated member clusters both embed it.
//!
//! **Invariant:** only this crate knows the HTTP wire format of the Kubernetes API.

#![warn(missing_docs)]

mod apply;
mod builtin;
mod convert;
mod crd;
mod delete;
mod discovery;
pub mod errors;
mod fieldpath;
mod gc;
mod list;
mod managed;
mod openapi;
mod patch;
mod proto;
pub mod registry;
mod request;
mod rest;
pub mod schema;
pub mod selectors;
mod server;
mod table;
pub mod tls;
pub mod validation;

use std::convert::Infallible;
use std::time::Duration;

pub use errors::{ApiError, Cause};
pub use patch::{json_patch, merge_patch};
pub use server::{version_info, ApiServer, ResponseBody, ServerConfig, MAX_BODY};
pub use tls::{serve_https, Credentials, TlsError};

/// Namespaces every server has, as kube-apiserver creates them.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    /// Brings the server to ready: creates the system namespaces, serves the CRDs in the
    /// store, starts the garbage collector and namespace controller, and marks `/readyz` ok.
    pub async fn start(&self) -> Result<(), ApiError> {
        let ns_res = self
            .state
            .registry
            .read()
            .get("", "v1", "namespaces")
            .expect("namespaces are built in");
        for ns in SYSTEM_NAMESPACES {
            if self.store().get(&ns_res.key(None, ns)).is_some() {
                continue;
            }
            let ctx = rest::Ctx {
                method: http::Method::POST,
                query: request::Query::default(),
                output: server::Output::Json,
                content_type: "application/json".into(),
                user_agent: "flotilla-apiserver".into(),
                body: serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                    .expect("JSON encodes")
                    .into(),
            };
            match self.create(&ns_res, None, &ctx).await {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        crd::load(self);
        tokio::spawn(gc::run(self.clone(), Duration::from_secs(300)));
        self.set_ready();
        Ok(())
    }

    /// A `kube` client that talks to this server in process (no socket), through the same
    /// request path as external clients.
    pub fn client(&self) -> kube::Client {
        let server = self.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }
}
