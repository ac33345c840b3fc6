//! Event routing: which placements an event on a shared cache (members, Works, overrides,
//! placeable resources) concerns, and what of them it asks to redo.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use flotilla_api::selectors::LabelSelector;
use flotilla_scheduler::{Cluster, Policy};
use futures::{FutureExt, StreamExt};
use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Scope, Watched};
use crate::resources::{Changed, Resources};

/// The key of a placement in [`StatusOnly`] and in the controller's bookkeeping.
pub(super) fn key(name: &str, namespace: Option<&str>) -> String {
    format!("{}/{name}", namespace.unwrap_or(""))
}

/// Placements for which every event since their last pass asked only for the status roll-up
/// (a Work's status moved), with the namespaces of the Works whose events asked. An event
/// that needs a whole pass (the placement or one of its bindings changed, a member, an
/// override or a resource concerns it) marks the placement whole until its next pass, whatever
/// comes after it; a pass with no mark (a requeue) is whole too. A roll-up looks only at the
/// clusters of the Works named, so nothing else may have changed since the last pass.
#[derive(Default)]
pub(super) struct StatusOnly(parking_lot::Mutex<HashMap<String, Asked>>);

/// What the events since a placement's last pass asked of its next one.
enum Asked {
    Whole,
    /// The roll-up, for the Works in these namespaces (none: the placement's own status only).
    Status(BTreeSet<String>),
}

impl StatusOnly {
    /// Takes the mark of `key`: `Some` (the Works' namespaces) when only the status roll-up
    /// was asked for.
    pub(super) fn take(&self, key: &str) -> Option<BTreeSet<String>> {
        match self.0.lock().remove(key)? {
            Asked::Whole => None,
            Asked::Status(works) => Some(works),
        }
    }
    /// Marks `key` (again, for a pass that was put off) with the namespaces of the Works that
    /// asked; a mark for a whole pass stays.
    pub(super) fn mark(&self, key: String, works: impl IntoIterator<Item = String>) {
        if let Asked::Status(s) = self
            .0
            .lock()
            .entry(key)
            .or_insert_with(|| Asked::Status(BTreeSet::new()))
        {
            s.extend(works);
        }
    }
    /// Marks `key` for a whole pass.
    pub(super) fn whole(&self, key: String) {
        self.0.lock().insert(key, Asked::Whole);
    }
}

/// The placements of one scope and the channel that asks their controller to reconcile one.
pub(super) struct Triggered {
    pub scope: Scope,
    pub placements: Store<DynamicObject>,
    pub bindings: Arc<super::index::Indexed>,
    pub status_only: Arc<StatusOnly>,
    pub tx: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
}

impl Triggered {
    /// A whole pass of `p`.
    fn whole(&self, p: &DynamicObject) {
        self.status_only
            .whole(key(&p.name_any(), p.namespace().as_deref()));
        let _ = self
            .tx
            .send(ObjectRef::from_obj_with(p, self.scope.placement()));
    }
}

/// Where events on shared caches (members, Works, overrides, placeable resources) go: to the
/// placements of either scope they concern.
pub(super) struct Triggers(pub Vec<Triggered>);

impl Triggers {
    /// Reconcile every placement of `scope` (both when `None`) for which `concerned` holds.
    pub fn each(&self, scope: Option<Scope>, concerned: impl Fn(Scope, &DynamicObject) -> bool) {
        for t in self.0.iter().filter(|t| scope.is_none_or(|s| s == t.scope)) {
            for p in t.placements.state() {
                if concerned(t.scope, &p) {
                    t.whole(&p);
                }
            }
        }
    }

    /// Reconcile the placements that changes of member clusters (before, now) concern
    /// ([`flotilla_scheduler::concerns`]): which placements are on the changed clusters and on
    /// how many clusters each is come from the binding index ([`super::index::binding_keys`]),
    /// then one pass over the placements per batch of changes, no scheduling over the fleet.
    /// (A scan of every binding per batch took a quarter of the hub's CPU at 100,000 bindings:
    /// docs/BENCHMARKS.md, fleet scale, seventh session.)
    pub fn members_changed(&self, changed: &[(Option<Cluster>, Cluster)]) {
        use super::index::{live_key, on_cluster_key, placement_key, LIVE};
        for t in &self.0 {
            // Per placement (its index key): which of the changed clusters it is on.
            let mut on: HashMap<String, BTreeSet<&str>> = HashMap::new();
            for (_, c) in changed {
                for p in t.bindings.keys_beside(&on_cluster_key(&c.name), LIVE) {
                    on.entry(p).or_default().insert(c.name.as_str());
                }
            }
            let nowhere = BTreeSet::new();
            for p in t.placements.state() {
                let pkey = placement_key(&p.name_any(), p.namespace().as_deref());
                let here = on.get(&pkey).unwrap_or(&nowhere);
                // A policy that does not parse is reported already; no member change fixes it.
                let Ok(policy) = Policy::parse(&p.data["spec"]["policy"]) else {
                    continue;
                };
                let count = t.bindings.count(&live_key(&pkey));
                // A cluster a share failed over from may take it back (fail-back).
                let record = p.annotations().get(super::failover::FAILED_OVER).cloned();
                let failed_over = |c: &str| {
                    record
                        .as_deref()
                        .is_some_and(|r| r.contains(&format!("\"{c}\":")))
                };
                if changed.iter().any(|(before, now)| {
                    let is_here = here.contains(now.name.as_str());
                    flotilla_scheduler::concerns(&policy, before.as_ref(), now, is_here, count)
                        || failed_over(&now.name)
                }) {
                    t.whole(&p);
                }
            }
        }
    }

    /// A whole pass of one placement.
    pub fn one(&self, scope: Scope, name: &str, namespace: Option<&str>) {
        if let Some(t) = self.0.iter().find(|t| t.scope == scope) {
            t.status_only.whole(key(name, namespace));
            let _ = t.tx.send(scope.placement_ref(name, namespace));
        }
    }

    /// The status roll-up of one placement: its Work in `work_namespace` changed (see
    /// [`StatusOnly`] for when a whole pass runs instead).
    pub fn status_of(
        &self,
        scope: Scope,
        name: &str,
        namespace: Option<&str>,
        work_namespace: String,
    ) {
        if let Some(t) = self.0.iter().find(|t| t.scope == scope) {
            t.status_only.mark(key(name, namespace), [work_namespace]);
            let _ = t.tx.send(scope.placement_ref(name, namespace));
        }
    }
}

/// Follows `stream` (which keeps its cache), handing each object to `route`.
pub(super) fn fan_out(
    stream: Watched,
    triggers: Arc<Triggers>,
    route: impl Fn(&DynamicObject, &Triggers) + Send + 'static,
) -> futures::future::BoxFuture<'static, ()> {
    stream
        .for_each(move |ev| {
            if let Ok(o) = ev {
                route(&o, &triggers);
            }
            async {}
        })
        .boxed()
}

/// Whether the placement `p` may select the changed object: a ResourcePlacement one of its
/// namespace; a ClusterResourcePlacement a cluster-scoped one or, for a namespaced object,
/// its namespace (whose labels come from `resources`). A `c` without a name is a type whose
/// cache has just loaded.
pub(super) fn may_select(
    scope: Scope,
    p: &DynamicObject,
    c: &Changed,
    resources: &Resources,
) -> bool {
    let matches = |s: &Value, name: &str, labels: &BTreeMap<String, String>| {
        if let Some(n) = s["name"].as_str().filter(|n| !n.is_empty()) {
            return name.is_empty() || n == name;
        }
        match &s["labelSelector"] {
            Value::Null => true,
            sel => LabelSelector::from_object(sel)
                .map(|l| l.matches(|k| labels.get(k).map(String::as_str)))
                .unwrap_or(false),
        }
    };
    let sels = p.data["spec"]["resourceSelectors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if scope == Scope::Namespaced
        && !c.name.is_empty()
        && c.namespace.as_deref() != p.namespace().as_deref()
    {
        return false;
    }
    sels.iter().any(|s| {
        let (g, k) = (
            s["group"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
        );
        // A type whose cache has just loaded concerns every selector of it, whatever its
        // name or labels select.
        if g == c.group && k == c.kind && (c.name.is_empty() || matches(s, &c.name, &c.labels)) {
            return true;
        }
        if scope == Scope::Namespaced {
            return false;
        }
        match &c.namespace {
            Some(ns) if g.is_empty() && k == "Namespace" => {
                let labels = resources
                    .get("", "Namespace")
                    .and_then(|n| {
                        n.store
                            .get(&ObjectRef::new_with(ns, n.resource.clone()))
                            .map(|o| o.labels().clone())
                    })
                    .unwrap_or_default();
                matches(s, ns, &labels)
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_whole_pass_asked_for_is_not_hidden_by_roll_ups_asked_after_it() {
        let asked = StatusOnly::default();
        // Nothing asked (a requeue): a whole pass.
        assert_eq!(asked.take("/web"), None);
        // Only Works changed: the roll-up, for their namespaces.
        asked.mark("/web".into(), ["fleet-member-a".to_string()]);
        asked.mark("/web".into(), ["fleet-member-b".to_string()]);
        assert_eq!(
            asked.take("/web"),
            Some(BTreeSet::from([
                "fleet-member-a".into(),
                "fleet-member-b".into()
            ]))
        );
        assert_eq!(asked.take("/web"), None);
        // A binding changed, then a Work: still a whole pass.
        asked.whole("/web".into());
        asked.mark("/web".into(), ["fleet-member-a".to_string()]);
        assert_eq!(asked.take("/web"), None);
        // The placement's own status only (a write put off): an empty roll-up.
        asked.mark("/web".into(), []);
        assert_eq!(asked.take("/web"), Some(BTreeSet::new()));
    }

    #[test]
    fn a_resource_placement_is_triggered_by_its_own_namespace_only() {
        let rp = obj(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
            "kind": "ResourcePlacement", "metadata": {"name": "api", "namespace": "team"},
            "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "ConfigMap"}]}}));
        let changed = |ns: Option<&str>, name: &str| Changed {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: ns.map(String::from),
            name: name.into(),
            labels: BTreeMap::new(),
        };
        let resources = Resources::default();
        let n = Scope::Namespaced;
        assert!(may_select(n, &rp, &changed(Some("team"), "a"), &resources));
        assert!(!may_select(
            n,
            &rp,
            &changed(Some("other"), "a"),
            &resources
        ));
        // A type whose cache just loaded concerns every placement selecting it.
        assert!(may_select(n, &rp, &changed(None, ""), &resources));
        let secret = Changed {
            kind: "Secret".into(),
            ..changed(Some("team"), "a")
        };
        assert!(!may_select(n, &rp, &secret, &resources));
        // ... also one whose selector names labels the (nameless) type event has not.
        let labelled = obj(
            json!({"apiVersion": "placement.kubernetes-fleet.io/v1beta1",
            "kind": "ClusterResourcePlacement", "metadata": {"name": "prod"},
            "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace",
                "labelSelector": {"matchLabels": {"env": "prod"}}}]}}),
        );
        let namespaces = Changed {
            kind: "Namespace".into(),
            ..changed(None, "")
        };
        assert!(may_select(
            Scope::Cluster,
            &labelled,
            &namespaces,
            &resources
        ));
        // Until discovery has run once, no type is known to be missing.
        assert!(resources.loading("", "Namespace"));
    }
}
