//! End-to-end tests: separate `flotilla` processes (hub, simulated members, agents) on
//! loopback, driven by kubectl and the kube client, with faults.

mod fleet;
mod ha;
mod hub;
mod placement;
mod support;
