//! Flotilla's API: the KubeFleet API groups the hub serves (as CustomResourceDefinitions),
//! the names and reasons of their conditions, cluster properties and the pure logic over
//! them (resource quantities, property computation, member health). No IO.

#![warn(missing_docs)]

#[macro_use]
mod values;

pub mod conditions;
pub mod crds;
pub mod kubeconfig;
pub mod manifests;
pub mod member;
pub mod names;
pub mod overrides;
pub mod patch;
pub mod placement;
pub mod quantity;
pub mod selectors;
pub mod work;
