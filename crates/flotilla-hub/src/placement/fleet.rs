//! The scheduler's view of the fleet, shared by both placement controllers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flotilla_scheduler::Cluster;
use kube::api::DynamicObject;
use kube::runtime::reflector::Store;
use kube::ResourceExt;

/// The scheduler's view of the fleet, kept up to date from MemberCluster events: a member's
/// heartbeat that changes nothing the scheduler reads changes nothing here.
#[derive(Default)]
pub(super) struct Fleet {
    by_name: BTreeMap<String, Cluster>,
    version: u64,
    built: Option<(u64, Arc<Vec<Cluster>>)>,
}

impl Fleet {
    /// Records `c`. When the scheduler's view changed: `Some` of the cluster's previous view
    /// (`None` for a new cluster).
    pub fn update(&mut self, c: Cluster) -> Option<Option<Cluster>> {
        if self.by_name.get(&c.name) == Some(&c) {
            return None;
        }
        self.version += 1;
        Some(self.by_name.insert(c.name.clone(), c))
    }

    /// Every cluster, by name (shared until the view changes).
    pub fn clusters(&mut self, members: &Store<DynamicObject>) -> Arc<Vec<Cluster>> {
        // Members removed for good (their last event was the deletion) drop out here.
        if self.by_name.len() != members.state().len() {
            let present: BTreeSet<String> = members.state().iter().map(|m| m.name_any()).collect();
            self.by_name.retain(|n, _| present.contains(n));
            for m in members.state() {
                if !self.by_name.contains_key(&m.name_any()) {
                    if let Ok(v) = serde_json::to_value(m.as_ref()) {
                        self.update(Cluster::from_member_cluster(&v));
                    }
                }
            }
            self.version += 1;
        }
        match &self.built {
            Some((v, c)) if *v == self.version => c.clone(),
            _ => {
                let c = Arc::new(self.by_name.values().cloned().collect::<Vec<_>>());
                self.built = Some((self.version, c.clone()));
                c
            }
        }
    }
}
