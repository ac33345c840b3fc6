//! The staged update run controller (KubeFleet's `ClusterStagedUpdateRun` and
//! `StagedUpdateRun`): [`machine`] decides each pass, this module reads the caches and makes
//! the writes.

pub mod machine;
