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
pub mod auth;
mod builtin;
mod controllers;
mod convert;
mod crd;
mod crd_go;
mod csr;
mod delete;
mod discovery;
pub mod errors;
mod fieldpath;
mod list;
mod managed;
mod openapi;
mod openapi_proto;
mod patch;
mod proto;
pub mod registry;
mod request;
mod rest;
pub mod schema;
pub use flotilla_api::selectors;
mod server;
mod table;
pub mod tls;
pub mod validation;
mod yaml;

use std::convert::Infallible;

pub use csr::CLIENT_SIGNER;
pub use errors::{ApiError, Cause};

pub use server::{
    error_response, json_response, version_info, ApiServer, ResponseBody, ServerConfig, ValidateFn,
    MAX_BODY,
};
pub use tls::{new_serving_ca, serve_https, serve_tls, serving_config, Credentials, Error};

/// Namespaces every server has, as kube-apiserver creates them.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    /// Brings the server to ready: creates the system namespaces, serves the CRDs in the
    /// store, starts the garbage collector and namespace controller, and marks `/readyz` ok.
    pub async fn start(&self) -> Result<(), ApiError> {
        for ns in SYSTEM_NAMESPACES {
            self.ensure_object(
                "",
                "namespaces",
                None,
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await?;
        }
        for (plural, obj) in auth::bootstrap_policy() {
            self.ensure_object("rbac.authorization.k8s.io", plural, None, obj)
                .await?;
        }
        crd::serve::load(self);
        controllers::start(self);
        self.set_ready();
        Ok(())
    }

    /// Creates `obj` (of `group`/`plural` version v1, in `ns`) through the API unless an object of that
    /// name exists. Returns whether it created it.
    pub async fn ensure_object(
        &self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
        obj: serde_json::Value,
    ) -> Result<bool, ApiError> {
        let res = self
            .state
            .registry
            .read()
            .get(group, "v1", plural)
            .ok_or_else(ApiError::no_route)?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if self.store().get(&res.key(ns, &name)).is_some() {
            return Ok(false);
        }
        let ctx = rest::Ctx {
            user: None,
            method: http::Method::POST,
            query: request::Query::default(),
            output: server::Output::Json,
            content_type: "application/json".into(),
            user_agent: "flotilla-apiserver".into(),
            body: serde_json::to_vec(&obj).expect("JSON encodes").into(),
        };
        match self.create(&res, ns, &ctx).await {
            Ok(_) => Ok(true),
            Err(e) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
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
