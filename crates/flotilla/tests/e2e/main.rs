//! End-to-end tests: separate `flotilla` processes (hub, simulated members, agents) on
//! loopback, driven by kubectl and the kube client, with faults.

mod bench;
mod churn;
mod cli;
mod differential;
mod external_hub;
mod fleet;
mod ha;
mod hub;
mod kubectl_versions;
mod placement;
mod rollout;
mod structure;
mod support;
