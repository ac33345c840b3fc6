//! Integration tests of the API server: a real server on 127.0.0.1 over HTTPS, driven by the
//! `kube` crate and the installed `kubectl`.

mod auth;
mod crd;
mod crud;
mod kubectl;
mod lifecycle;
mod list_watch;
mod patches;
mod ssa;
mod support;
