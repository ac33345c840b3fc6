//! What the scheduler knows of a member cluster: name, labels, numeric properties, taints and
//! whether it may receive new placements.

use std::collections::BTreeMap;

use flotilla_api::conditions;
use flotilla_api::member::condition;
use flotilla_api::quantity::parse_milli;
use serde_json::Value;

use crate::policy::{parse_taint, Taint};

/// Whether a cluster may receive new placements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Joined and healthy.
    Eligible,
    /// Its agent has not joined (or left).
    NotJoined,
    /// Joined, but unhealthy (no heartbeat within the threshold, or its API server not ready).
    Unhealthy,
    /// Leaving the fleet (its MemberCluster is being deleted).
    Leaving,
}

impl ClusterState {
    /// Why a cluster in this state is not picked, or None when it may be.
    pub fn ineligibility(self) -> Option<&'static str> {
        match self {
            Self::Eligible => None,
            Self::NotJoined => Some("the cluster has not joined the fleet"),
            Self::Unhealthy => Some("the cluster is unhealthy"),
            Self::Leaving => Some("the cluster is leaving the fleet"),
        }
    }

    /// Whether what is already placed on a cluster in this state stays there (it is still a
    /// member; health and labels are IgnoredDuringExecution).
    pub fn keeps_placements(self) -> bool {
        matches!(self, Self::Eligible | Self::Unhealthy)
    }
}

/// A member cluster as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// MemberCluster name.
    pub name: String,
    /// MemberCluster labels.
    pub labels: BTreeMap<String, String>,
    /// Numeric properties by name, in milli-units (node count, resources, the operator's own).
    pub properties: BTreeMap<String, i128>,
    /// Taints (`spec.taints`).
    pub taints: Vec<Taint>,
    /// Whether it may receive new placements.
    pub state: ClusterState,
    /// When it became unhealthy (its Healthy condition's lastTransitionTime), while it is.
    pub unhealthy_since: Option<String>,
}

impl Cluster {
    /// An eligible cluster with `name` and nothing else (tests, simulations).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            properties: BTreeMap::new(),
            taints: Vec::new(),
            state: ClusterState::Eligible,
            unhealthy_since: None,
        }
    }

    /// The scheduler's view of a MemberCluster object: properties from `status.properties`
    /// (values that are not quantities, like the Kubernetes version, are left out), taints from
    /// `spec.taints`, state from deletion and the Joined and Healthy conditions.
    pub fn from_member_cluster(mc: &Value) -> Self {
        let meta = &mc["metadata"];
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let properties = mc["status"]["properties"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), parse_milli(v["value"].as_str()?)?)))
                    .collect()
            })
            .unwrap_or_default();
        let taints = mc["spec"]["taints"]
            .as_array()
            .map(|a| a.iter().map(parse_taint).collect())
            .unwrap_or_default();
        let conds = &mc["status"]["conditions"];
        let state = if !meta["deletionTimestamp"].is_null() {
            ClusterState::Leaving
        } else if !conditions::is_true(conds, condition::JOINED) {
            ClusterState::NotJoined
        } else if conditions::find(conds, condition::HEALTHY)
            .is_some_and(|c| c["status"] == "False")
        {
            ClusterState::Unhealthy
        } else {
            ClusterState::Eligible
        };
        let unhealthy_since = (state == ClusterState::Unhealthy)
            .then(|| conditions::find(conds, condition::HEALTHY))
            .flatten()
            .and_then(|c| c["lastTransitionTime"].as_str().map(String::from));
        Self {
            name: meta["name"].as_str().unwrap_or("").to_string(),
            labels,
            properties,
            taints,
            state,
            unhealthy_since,
        }
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}
