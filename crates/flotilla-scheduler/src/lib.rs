//! Flotilla's scheduler: which member clusters a placement goes to. KubeFleet's placement
//! policies (PickAll, PickN, PickFixed; required and preferred cluster affinity with label and
//! property selectors and property sorters; taints and tolerations; topology spread
//! constraints) evaluated as one pure function over plain values: no IO, no clock, the same
//! answer for the same input. The hub's placement controller feeds it the fleet's member
//! clusters and the placement's current clusters, and writes the decision into a scheduling
//! policy snapshot and bindings. See [the `schedule` module](mod@schedule) for the rules and
//! the tie-breaking.

#![warn(missing_docs)]

pub mod cluster;
pub mod policy;
pub mod schedule;

pub use cluster::{Cluster, ClusterState};
pub use policy::{PlacementType, Policy};
pub use schedule::{concerns, schedule, Decision, Reason, Rejected, Request, Score, Selected};
