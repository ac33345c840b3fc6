//! Data-driven tests of the planner and the status roll-up: a scenario is a world (a
//! placement, the selected resources, the fleet, what exists), [`check`] plans one pass and
//! compares a readable rendering of the plan with the expectation. [`World::apply`] makes a
//! plan's writes in memory as the API server would (merge patches, generations, uids), so a
//! scenario can go on from what a pass left; [`World::report`] writes a Work's status as an
//! agent does. `UPDATE_EXPECT=1 cargo test -p flotilla-hub` rewrites the expectations.

use std::collections::BTreeMap;
use std::sync::Arc;

use expect_test::{expect, Expect};
use flotilla_scheduler::Cluster;
use kube::api::DynamicObject;
use kube::ResourceExt;
use serde_json::{json, Value};

use super::{plan, ClusterPlan, Decision, Observed, OverrideSeries, Plan, WorkWrite, Write};
use crate::placement::status::{self, ClusterStatus, Rollout};
use crate::placement::Scope;

const NOW: &str = "2026-12-03T12:00:00Z";

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch.as_object() {
        Some(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        None => *target = patch.clone(),
    }
}

/// What the caches would hold, and the placement.
struct World {
    scope: Scope,
    placement: Value,
    selected: Result<Vec<Value>, String>,
    clusters: Vec<Cluster>,
    /// Every other object, by (kind, namespace, name).
    objects: BTreeMap<(String, String, String), Value>,
    uids: u64,
}

impl World {
    fn new(placement: Value, selected: Vec<Value>, clusters: &[(&str, &[(&str, &str)])]) -> Self {
        let scope = if placement["kind"] == "ResourcePlacement" {
            Scope::Namespaced
        } else {
            Scope::Cluster
        };
        let mut placement = placement;
        merge(
            &mut placement,
            &json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
                "metadata": {"uid": "placement-uid", "generation": 1}}),
        );
        Self {
            scope,
            placement,
            selected: Ok(selected),
            clusters: clusters
                .iter()
                .map(|(name, labels)| {
                    let mut c = Cluster::new(*name);
                    c.labels = labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    c
                })
                .collect(),
            objects: BTreeMap::new(),
            uids: 0,
        }
    }

    fn of_kind(&self, kinds: &[&str]) -> Vec<Arc<DynamicObject>> {
        self.objects
            .iter()
            .filter(|((k, _, _), _)| kinds.contains(&k.as_str()))
            .map(|(_, v)| Arc::new(serde_json::from_value(v.clone()).unwrap()))
            .collect()
    }

    fn plan(&self) -> Decision {
        let placement: DynamicObject = serde_json::from_value(self.placement.clone()).unwrap();
        let mut overrides = Vec::new();
        for (kind, snapshot_kind, cluster_scoped) in [
            (
                "ClusterResourceOverride",
                "ClusterResourceOverrideSnapshot",
                true,
            ),
            ("ResourceOverride", "ResourceOverrideSnapshot", false),
        ] {
            for o in self.of_kind(&[kind]) {
                if !super::override_applies(
                    &o,
                    cluster_scoped,
                    self.scope,
                    &placement.name_any(),
                    placement.namespace().as_deref(),
                ) {
                    continue;
                }
                let snapshots = self
                    .of_kind(&[snapshot_kind])
                    .into_iter()
                    .filter(|s| s.labels().values().any(|v| *v == o.name_any()))
                    .collect();
                overrides.push(OverrideSeries {
                    object: o,
                    cluster_scoped,
                    snapshots,
                });
            }
        }
        plan(&Observed {
            scope: self.scope,
            placement: &placement,
            selection: self.selected.clone(),
            resource_snapshots: self.of_kind(&["ClusterResourceSnapshot", "ResourceSnapshot"]),
            policy_snapshots: self.of_kind(&[
                "ClusterSchedulingPolicySnapshot",
                "SchedulingPolicySnapshot",
            ]),
            overrides,
            clusters: &self.clusters,
            bindings: self.of_kind(&["ClusterResourceBinding", "ResourceBinding"]),
            // As the Work cache keeps them: their specs as digests.
            works: self
                .of_kind(&["Work"])
                .into_iter()
                .map(|w| {
                    let mut w = (*w).clone();
                    super::super::compact::compact_work(&mut w);
                    Arc::new(w)
                })
                .collect(),
            completed_index: None,
            now: NOW,
        })
    }

    fn key(obj: &Value) -> (String, String, String) {
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        (
            s(&obj["kind"]),
            s(&obj["metadata"]["namespace"]),
            s(&obj["metadata"]["name"]),
        )
    }

    fn create(&mut self, mut obj: Value) -> Value {
        self.uids += 1;
        merge(
            &mut obj,
            &json!({"metadata": {"uid": format!("uid-{}", self.uids), "generation": 1}}),
        );
        self.objects.insert(Self::key(&obj), obj.clone());
        obj
    }

    fn patch(&mut self, kind: &str, ns: &str, name: &str, patch: &Value) -> Value {
        let obj = self
            .objects
            .get_mut(&(kind.into(), ns.into(), name.into()))
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} to patch is not there"));
        let spec = obj["spec"].clone();
        merge(obj, patch);
        if obj["spec"] != spec {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        obj.clone()
    }

    /// Makes the plan's writes as the executor and the API server would, then the roll-up;
    /// returns the placement's new status.
    fn apply(&mut self, d: &Decision) -> Value {
        let generation = self.placement["metadata"]["generation"].as_i64().unwrap();
        let plan = match d {
            Decision::Refused { reason, message } => {
                let s = status::refused(
                    self.scope,
                    &self.placement["status"],
                    reason,
                    message,
                    generation,
                    NOW,
                );
                merge(&mut self.placement, &json!({ "status": s }));
                return self.placement["status"].clone();
            }
            Decision::Place(p) => p,
        };
        for w in &plan.snapshots {
            let ns = w.namespace.clone().unwrap_or_default();
            for n in &w.unlatest {
                let p = json!({"metadata": {"labels": {"kubernetes-fleet.io/is-latest-snapshot": "false"}}});
                self.patch(&w.resource.kind, &ns, n, &p);
            }
            self.create(w.create.clone());
            for n in &w.delete {
                self.objects
                    .remove(&(w.resource.kind.clone(), ns.clone(), n.clone()));
            }
        }
        let ns = plan.namespace.clone().unwrap_or_default();
        let ps_kind = self.scope.policy_snapshot().kind;
        let ps = &plan.policy_snapshot;
        for p in ps.metadata.iter().chain(&ps.status) {
            self.patch(&ps_kind, &ns, &ps.name, p);
        }
        let binding_kind = self.scope.binding().kind;
        for b in &plan.delete_bindings {
            self.objects
                .remove(&(binding_kind.clone(), ns.clone(), b.clone()));
        }
        for b in &plan.unschedule_bindings {
            self.patch(
                &binding_kind,
                &ns,
                b,
                &json!({"spec": {"state": "Unscheduled"}}),
            );
        }
        if let Some(m) = &plan.placement_metadata {
            merge(&mut self.placement, m);
        }
        for (wns, w) in &plan.delete_works {
            self.objects
                .remove(&("Work".into(), wns.clone(), w.clone()));
        }
        let mut statuses = Vec::new();
        for c in &plan.clusters {
            let binding = match &c.binding {
                Write::Keep(b) => serde_json::to_value(b.as_ref()).unwrap(),
                Write::Patch(p) => self.patch(&binding_kind, &ns, &c.binding_name, p),
                Write::Create(obj) => self.create(obj.clone()),
            };
            let work = match &c.work {
                WorkWrite::Keep(w) => Some(serde_json::to_value(w.as_ref()).unwrap()),
                WorkWrite::Hold(w) => w
                    .as_ref()
                    .map(|w| serde_json::to_value(w.as_ref()).unwrap()),
                WorkWrite::Patch(p) => Some(self.patch("Work", &c.work_namespace, &c.work_name, p)),
                WorkWrite::Create {
                    object,
                    owned_by_binding,
                } => {
                    let mut object = object.clone();
                    if *owned_by_binding {
                        object["metadata"]["ownerReferences"] = json!([{"name": binding["metadata"]["name"], "uid": binding["metadata"]["uid"]}]);
                    }
                    Some(self.create(object))
                }
            };
            let binding: DynamicObject = serde_json::from_value(binding).unwrap();
            let work: Option<DynamicObject> = work.map(|w| serde_json::from_value(w).unwrap());
            let s = status::binding_status(
                &binding,
                work.as_ref(),
                status::Decided {
                    overridden: c.overridden.as_deref(),
                    rollout: c.rollout,
                    unreachable: c.unreachable.as_deref(),
                },
                generation,
                NOW,
            );
            if status::binding_status_changed(&binding.data["status"], &s) {
                let patch = status::replacing(&binding.data["status"], &s);
                self.patch(
                    &binding_kind,
                    &ns,
                    &c.binding_name,
                    &json!({ "status": patch }),
                );
            }
            statuses.push(s);
        }
        let clusters: Vec<ClusterStatus<'_>> = plan
            .clusters
            .iter()
            .zip(&statuses)
            .map(|(c, s)| ClusterStatus {
                cluster: &c.cluster,
                spec: &c.binding_spec,
                status: s,
            })
            .collect();
        let s = status::placement_status(
            self.scope,
            &self.placement["status"],
            &plan.summary,
            &clusters,
            generation,
            NOW,
        );
        self.placement["status"] = s.clone();
        s
    }

    /// The member's agent reports on its Work: Applied and Available as given, as of the
    /// Work's generation; `failed` manifests (by name) not available.
    fn report(&mut self, cluster: &str, applied: &str, available: &str, failed: &[&str]) {
        let key = self
            .objects
            .keys()
            .find(|(k, ns, _)| k == "Work" && *ns == format!("fleet-member-{cluster}"))
            .cloned()
            .expect("a Work for the cluster");
        let work = self.objects.get_mut(&key).unwrap();
        let g = work["metadata"]["generation"].clone();
        let cond = |ty: &str, st: &str| {
            json!({"type": ty, "status": st, "reason": "Reported", "message": format!("{ty} {st}"),
                "observedGeneration": g, "lastTransitionTime": NOW})
        };
        let manifests: Vec<Value> = failed
            .iter()
            .map(|n| {
                json!({"identifier": {"ordinal": 0, "group": "apps", "version": "v1",
                    "kind": "Deployment", "resource": "deployments", "namespace": "app", "name": n},
                    "conditions": [cond("Applied", "True"), cond("Available", "False")]})
            })
            .collect();
        work["status"] = json!({"conditions": [cond("Applied", applied), cond("Available", available)],
            "manifestConditions": manifests});
    }

    /// Every member's agent reports its Work applied and available; a pass writes the
    /// bindings' statuses.
    fn available_everywhere(&mut self) {
        let clusters: Vec<String> = self
            .objects
            .keys()
            .filter(|(k, _, _)| k == "Work")
            .filter_map(|(_, ns, _)| ns.strip_prefix("fleet-member-").map(String::from))
            .collect();
        for c in clusters {
            self.report(&c, "True", "True", &[]);
        }
        self.apply(&self.plan());
    }

    fn set_spec(&mut self, patch: Value) {
        let g = self.placement["metadata"]["generation"].as_i64().unwrap();
        merge(&mut self.placement, &json!({ "spec": patch }));
        self.placement["metadata"]["generation"] = json!(g + 1);
    }
}

fn id(m: &Value) -> String {
    let ns = m["metadata"]["namespace"]
        .as_str()
        .map_or(String::new(), |n| format!("{n}/"));
    format!(
        "{} {}{}",
        m["kind"].as_str().unwrap_or(""),
        ns,
        m["metadata"]["name"].as_str().unwrap_or("")
    )
}

fn names(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

/// The plan as a person would read it: one line per write.
fn render(d: &Decision) -> String {
    let p: &Plan = match d {
        Decision::Refused { reason, message } => return format!("refused {reason}: {message}\n"),
        Decision::Place(p) => p,
    };
    let mut out = String::new();
    for w in &p.snapshots {
        let c = &w.create;
        out += &format!(
            "new {} {} labels {} annotations {}; unlatest {}; delete {}\n",
            w.resource.kind,
            c["metadata"]["name"].as_str().unwrap(),
            c["metadata"]["labels"],
            c["metadata"]["annotations"],
            names(&w.unlatest),
            names(&w.delete),
        );
    }
    let ps = &p.policy_snapshot;
    if let Some(m) = &ps.metadata {
        out += &format!("policy snapshot {} metadata {m}\n", ps.name);
    }
    if let Some(s) = &ps.status {
        let s = &s["status"];
        let decisions: Vec<String> = s["clusterDecisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{}{}",
                    d["clusterName"].as_str().unwrap(),
                    if d["selected"] == true { "+" } else { "-" }
                )
            })
            .collect();
        let c = &s["conditions"][0];
        out += &format!(
            "policy snapshot {} status {}={} {} {:?}; decisions {}\n",
            ps.name,
            c["type"].as_str().unwrap(),
            c["status"].as_str().unwrap(),
            c["reason"].as_str().unwrap(),
            c["message"].as_str().unwrap(),
            decisions.join(" ")
        );
    }
    for b in &p.delete_bindings {
        out += &format!("delete binding {b}\n");
    }
    for b in &p.unschedule_bindings {
        out += &format!("unschedule binding {b} (held back)\n");
    }
    for (ns, w) in &p.delete_works {
        out += &format!("delete Work {ns}/{w}\n");
    }
    for c in &p.clusters {
        let spec = &c.binding_spec;
        let binding = match &c.binding {
            Write::Keep(_) => "keep".to_string(),
            Write::Patch(_) => "patch".to_string(),
            Write::Create(_) => "create".to_string(),
        };
        let held = if c.rollout == Rollout::Blocked {
            " (held back)"
        } else {
            ""
        };
        out += &format!(
            "{}{held}: binding {} {binding} {} (snapshot {}, policy {}, overrides {} {}, {:?}); ",
            c.cluster,
            c.binding_name,
            spec["state"].as_str().unwrap(),
            spec["resourceSnapshotName"].as_str().unwrap_or("-"),
            spec["schedulingPolicySnapshotName"].as_str().unwrap(),
            spec["clusterResourceOverrideSnapshots"],
            spec["resourceOverrideSnapshots"],
            spec["clusterDecision"]["reason"].as_str().unwrap(),
        );
        let (how, meta) = match &c.work {
            WorkWrite::Keep(_) => ("keep", None),
            WorkWrite::Hold(w) => (if w.is_some() { "hold" } else { "hold (none)" }, None),
            WorkWrite::Patch(p) => ("patch", Some(&p["metadata"])),
            WorkWrite::Create {
                object,
                owned_by_binding,
            } => (
                if *owned_by_binding {
                    "create (owned by binding)"
                } else {
                    "create"
                },
                Some(&object["metadata"]),
            ),
        };
        out += &format!("Work {}/{} {how}", c.work_namespace, c.work_name);
        if let Some(m) = meta {
            out += &format!(" labels {} annotations {}", m["labels"], m["annotations"]);
        }
        if let Some(spec) = c.work_spec.as_ref().map(|w| &w.spec) {
            let manifests: Vec<String> = spec["workload"]["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(id)
                .collect();
            out += &format!(": [{}]", manifests.join(", "));
        }
        if let Err(e) = &c.overridden {
            out += &format!("; override failed: {e}");
        }
        out += "\n";
    }
    let s = &p.summary;
    out += &format!(
        "summary: Scheduled={} {} {:?}; resource index {}; selected {}\n",
        s.scheduled.status,
        s.scheduled.reason,
        s.scheduled.message,
        s.resource_index,
        s.selected_resources
            .iter()
            .map(|r| {
                let mut t = format!(
                    "{} {}",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                );
                if !r["envelope"].is_null() {
                    t += &format!(" (in {})", r["envelope"]["name"].as_str().unwrap());
                }
                t
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(m) = &p.placement_metadata {
        out += &format!("placement metadata {m}\n");
    }
    for m in &p.moves {
        out += &format!(
            "{} {} -> {}\n",
            if m.back { "fail back" } else { "fail over" },
            m.from,
            m.to.as_deref().unwrap_or("nowhere")
        );
    }
    for c in p.clusters.iter().filter(|c| c.unreachable.is_some()) {
        out += &format!(
            "{} unavailable: {}\n",
            c.cluster,
            c.unreachable.as_ref().unwrap()
        );
    }
    if !p.waiting.is_empty() {
        out += &format!(
            "rollout: {} held back; look again in {:?}\n",
            p.waiting.join(" "),
            p.requeue
        );
    }
    out
}

/// A status as one line per condition and per reported object.
fn render_status(s: &Value) -> String {
    let mut out = String::new();
    let conds = |v: &Value| -> String {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={} {}",
                    c["type"].as_str().unwrap(),
                    c["status"].as_str().unwrap(),
                    c["reason"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for c in s["conditions"].as_array().into_iter().flatten() {
        out += &format!(
            "{}={} {} {:?} (generation {})\n",
            c["type"].as_str().unwrap(),
            c["status"].as_str().unwrap(),
            c["reason"].as_str().unwrap(),
            c["message"].as_str().unwrap(),
            c["observedGeneration"]
        );
    }
    for p in s["placementStatuses"].as_array().into_iter().flatten() {
        out += &format!(
            "  {}: {}\n",
            p["clusterName"].as_str().unwrap(),
            conds(&p["conditions"])
        );
        for f in [
            "failedPlacements",
            "driftedPlacements",
            "diffedPlacements",
            "applicableClusterResourceOverrides",
            "applicableResourceOverrides",
        ] {
            if !p[f].is_null() {
                out += &format!("    {f}: {}\n", p[f]);
            }
        }
    }
    out
}

fn check(world: &World, expected: Expect) {
    expected.assert_eq(&render(&world.plan()));
}

fn crp(name: &str, spec: Value) -> Value {
    json!({"kind": "ClusterResourcePlacement", "metadata": {"name": name}, "spec": spec})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn config_map(ns: &str, name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"k": data}})
}

fn deployment(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns}, "spec": {"replicas": 1}})
}

const ABC: &[(&str, &[(&str, &str)])] = &[
    ("a", &[("env", "prod")]),
    ("b", &[("env", "prod")]),
    ("c", &[("env", "test")]),
];

fn app() -> Vec<Value> {
    vec![
        namespace("app"),
        config_map("app", "cfg", "1"),
        deployment("app", "web"),
    ]
}

#[test]
fn a_new_placement_snapshots_schedules_binds_and_sends_works() {
    let world = World::new(crp("web", json!({})), app(), ABC);
    check(
        &world,
        expect![[r#"
            new ClusterResourceSnapshot web-0-snapshot labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/resource-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/number-of-resource-snapshots":"1","kubernetes-fleet.io/resource-hash":"c757cefcb23b0f5d"}; unlatest -; delete -
            new ClusterSchedulingPolicySnapshot web-0 labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/policy-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/policy-hash":"2ab82c9a31421b6c"}; unlatest -; delete -
            policy snapshot web-0 status Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; decisions a+ b+ c+
            a: binding web-a-712c3690 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-a-712c3690","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            b: binding web-b-58094590 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-b-58094590","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            c: binding web-c-5fcba890 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-c-5fcba890","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        "#]],
    );
}

#[test]
fn a_settled_placement_writes_nothing() {
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.apply(&world.plan());
    check(
        &world,
        expect![[r#"
            a: binding web-a-712c3690 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            b: binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            c: binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        "#]],
    );
}

#[test]
fn a_changed_resource_rolls_out_within_max_unavailable() {
    // 25% of 3 rounds up to 1: one cluster at a time, each once the one before is available.
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.apply(&world.plan());
    for c in ["a", "b", "c"] {
        world.report(c, "True", "True", &[]);
    }
    world.apply(&world.plan());
    world.selected = Ok(vec![
        namespace("app"),
        config_map("app", "cfg", "2"),
        deployment("app", "web"),
    ]);
    check(
        &world,
        expect![[r#"
            new ClusterResourceSnapshot web-1-snapshot labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/resource-index":"1","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/number-of-resource-snapshots":"1","kubernetes-fleet.io/resource-hash":"d58d4f66c8c71b96"}; unlatest web-0-snapshot; delete -
            a: binding web-a-712c3690 patch Bound (snapshot web-1-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work patch labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-a-712c3690","kubernetes-fleet.io/parent-resource-snapshot-index":"1"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            b (held back): binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            c (held back): binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 1; selected Namespace app, ConfigMap cfg, Deployment web
            rollout: b c held back; look again in None
        "#]],
    );
    world.apply(&world.plan());
    // Until a is available again, b and c wait.
    check(
        &world,
        expect![[r#"
        a: binding web-a-712c3690 keep Bound (snapshot web-1-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        b (held back): binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        c (held back): binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 1; selected Namespace app, ConfigMap cfg, Deployment web
        rollout: b c held back; look again in None
    "#]],
    );
    // a reports: the pass that follows writes its binding's status, the next one moves b.
    world.report("a", "True", "True", &[]);
    world.apply(&world.plan());
    check(
        &world,
        expect![[r#"
        a: binding web-a-712c3690 keep Bound (snapshot web-1-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        b: binding web-b-58094590 patch Bound (snapshot web-1-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work patch labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-b-58094590","kubernetes-fleet.io/parent-resource-snapshot-index":"1"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        c (held back): binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 1; selected Namespace app, ConfigMap cfg, Deployment web
        rollout: c held back; look again in None
    "#]],
    );
}

#[test]
fn a_held_back_cluster_keeps_what_its_binding_names() {
    // b is held back at web-0-snapshot when its Work goes: it is made again from that snapshot,
    // not from the latest.
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    world.selected = Ok(vec![namespace("app"), config_map("app", "cfg", "2")]);
    world.apply(&world.plan());
    world
        .objects
        .remove(&("Work".into(), "fleet-member-b".into(), "web-work".into()));
    check(
        &world,
        expect![[r#"
        a: binding web-a-712c3690 keep Bound (snapshot web-1-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg]
        b (held back): binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-b-58094590","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        c (held back): binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 1; selected Namespace app, ConfigMap cfg
        rollout: b c held back; look again in None
    "#]],
    );
}

#[test]
fn a_replaced_cluster_goes_before_its_replacement_arrives_within_max_surge() {
    let fixed = |names: &[&str]| {
        json!({"policy": {"placementType": "PickFixed", "clusterNames": names},
            "strategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}})
    };
    let mut world = World::new(crp("web", fixed(&["a", "b"])), app(), ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    world.set_spec(fixed(&["a", "c"]));
    // b goes (within maxUnavailable 1 of 2); c waits, Scheduled, while b still counts.
    check(
        &world,
        expect![[r#"
        new ClusterSchedulingPolicySnapshot web-1 labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/policy-index":"1","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"2","kubernetes-fleet.io/policy-hash":"3ee9e7c9a3e98e93"}; unlatest web-0; delete -
        policy snapshot web-1 status Scheduled=True SchedulingPolicyFulfilled "picked the 2 clusters named"; decisions a+ c+
        delete binding web-b-58094590
        a: binding web-a-712c3690 patch Bound (snapshot web-0-snapshot, policy web-1, overrides [] [], "the cluster is named by the placement"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        c (held back): binding web-c-5fcba890 create Scheduled (snapshot -, policy web-1, overrides null null, "the cluster is named by the placement"); Work fleet-member-c/web-work hold (none)
        summary: Scheduled=True SchedulingPolicyFulfilled "picked the 2 clusters named"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        rollout: c held back; look again in None
    "#]],
    );
    world.apply(&world.plan());
    check(
        &world,
        expect![[r#"
        a: binding web-a-712c3690 keep Bound (snapshot web-0-snapshot, policy web-1, overrides [] [], "the cluster is named by the placement"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        c: binding web-c-5fcba890 patch Bound (snapshot web-0-snapshot, policy web-1, overrides [] [], "the cluster is named by the placement"); Work fleet-member-c/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-c-5fcba890","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        summary: Scheduled=True SchedulingPolicyFulfilled "picked the 2 clusters named"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
    "#]],
    );
}

#[test]
fn a_pick_n_share_fails_over_from_an_unhealthy_member_and_back_with_failback() {
    let pick2 = json!({"policy": {"placementType": "PickN", "numberOfClusters": 2}});
    let mut world = World::new(crp("web", pick2), app(), ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    // a has been unhealthy for 10 minutes (the grace period is 5): c takes its share.
    world.clusters[0].state = flotilla_scheduler::ClusterState::Unhealthy;
    world.clusters[0].unhealthy_since = Some("2026-12-03T11:50:00Z".into());
    check(
        &world,
        expect![[r#"
        policy snapshot web-0 status Scheduled=True SchedulingPolicyFulfilled "picked 2 clusters"; decisions b+ c+ a-
        delete binding web-a-712c3690
        b: binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "picked: among the 2 best scored clusters"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        c: binding web-c-5fcba890 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "picked: among the 2 best scored clusters"); Work fleet-member-c/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-c-5fcba890","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        summary: Scheduled=True SchedulingPolicyFulfilled "picked 2 clusters"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        placement metadata {"metadata":{"annotations":{"flotilla.dev/failed-over":"{\"a\":\"c\"}"}}}
        fail over a -> c
    "#]],
    );
    world.apply(&world.plan());
    let record = world.placement["metadata"]["annotations"]["flotilla.dev/failed-over"].clone();
    assert_eq!(record, json!("{\"a\":\"c\"}"));
    // a recovers: without fail-back nothing moves back.
    world.clusters[0].state = flotilla_scheduler::ClusterState::Eligible;
    world.clusters[0].unhealthy_since = None;
    world.available_everywhere();
    check(
        &world,
        expect![[r#"
        b: binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "picked: among the 2 best scored clusters"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        c: binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "picked: among the 2 best scored clusters"); Work fleet-member-c/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        summary: Scheduled=True SchedulingPolicyFulfilled "picked 2 clusters"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
    "#]],
    );
    // With fail-back, its share returns from c.
    merge(
        &mut world.placement,
        &json!({"metadata": {"annotations": {"flotilla.dev/failback": "true"}}}),
    );
    check(
        &world,
        expect![[r#"
        policy snapshot web-0 status Scheduled=True SchedulingPolicyFulfilled "picked 2 clusters"; decisions a+ b+ c-
        delete binding web-c-5fcba890
        a: binding web-a-712c3690 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "kept: the placement is on this cluster (changes of the cluster are IgnoredDuringExecution)"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        b: binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "picked: among the 2 best scored clusters"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
        summary: Scheduled=True SchedulingPolicyFulfilled "picked 2 clusters"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        placement metadata {"metadata":{"annotations":{"flotilla.dev/failed-over":null}}}
        fail back c -> a
    "#]],
    );
}

#[test]
fn a_member_unhealthy_within_the_grace_period_keeps_its_share_until_it_ends() {
    let pick2 = json!({"policy": {"placementType": "PickN", "numberOfClusters": 2}});
    let mut world = World::new(crp("web", pick2), app(), ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    world.clusters[0].state = flotilla_scheduler::ClusterState::Unhealthy;
    world.clusters[0].unhealthy_since = Some("2026-12-03T11:58:00Z".into());
    let Decision::Place(plan) = world.plan() else {
        panic!("placed")
    };
    assert!(plan.moves.is_empty() && plan.delete_bindings.is_empty());
    assert_eq!(plan.requeue, Some(std::time::Duration::from_secs(180)));
    // Off: never.
    merge(
        &mut world.placement,
        &json!({"metadata": {"annotations": {"flotilla.dev/failover-after": "off"}}}),
    );
    world.clusters[0].unhealthy_since = Some("2026-12-03T10:00:00Z".into());
    let Decision::Place(plan) = world.plan() else {
        panic!("placed")
    };
    assert!(plan.moves.is_empty() && plan.delete_bindings.is_empty());
    // PickAll reports it unavailable, whatever its Work said.
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    world.clusters[1].state = flotilla_scheduler::ClusterState::Unhealthy;
    world.clusters[1].unhealthy_since = Some("2026-12-03T11:00:00Z".into());
    let status = world.apply(&world.plan());
    let b = status["placementStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clusterName"] == "b")
        .unwrap()
        .clone();
    let available = b["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(available["status"], "False");
    assert_eq!(available["reason"], "MemberClusterUnhealthy");
}

#[test]
fn snapshots_beyond_the_history_limit_go_oldest_first_unless_a_binding_names_them() {
    // Nothing is available: the bindings stay at web-0-snapshot, which stays.
    let mut world = World::new(crp("web", json!({"revisionHistoryLimit": 2})), app(), ABC);
    for v in ["1", "2", "3"] {
        world.selected = Ok(vec![namespace("app"), config_map("app", "cfg", v)]);
        world.apply(&world.plan());
    }
    world.selected = Ok(vec![namespace("app"), config_map("app", "cfg", "4")]);
    check(
        &world,
        expect![[r#"
            new ClusterResourceSnapshot web-3-snapshot labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/resource-index":"3","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/number-of-resource-snapshots":"1","kubernetes-fleet.io/resource-hash":"68ddb1d97897d54a"}; unlatest web-2-snapshot; delete web-1-snapshot
            a (held back): binding web-a-712c3690 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg]
            b (held back): binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg]
            c (held back): binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work keep: [Namespace app, ConfigMap app/cfg]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 3; selected Namespace app, ConfigMap cfg
            rollout: a b c held back; look again in None
        "#]],
    );
}

#[test]
fn a_new_number_of_clusters_is_an_annotation_not_a_new_policy_snapshot() {
    let pick = |n: i64| json!({"policy": {"placementType": "PickN", "numberOfClusters": n}});
    let mut world = World::new(crp("web", pick(2)), app(), ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    world.set_spec(pick(1));
    check(
        &world,
        expect![[r#"
            policy snapshot web-0 metadata {"metadata":{"annotations":{"kubernetes-fleet.io/number-of-clusters":"1"}}}
            policy snapshot web-0 status Scheduled=True SchedulingPolicyFulfilled "picked 1 cluster"; decisions a+ b- c-
            delete binding web-b-58094590
            a: binding web-a-712c3690 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "picked: among the 2 best scored clusters"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked 1 cluster"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        "#]],
    );
}

#[test]
fn a_cluster_no_longer_picked_loses_its_binding() {
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    world.set_spec(
        json!({"policy": {"placementType": "PickAll", "affinity": {"clusterAffinity":
        {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms":
            [{"labelSelector": {"matchLabels": {"env": "prod"}}}]}}}}}),
    );
    check(
        &world,
        expect![[r#"
            new ClusterSchedulingPolicySnapshot web-1 labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/policy-index":"1","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"2","kubernetes-fleet.io/policy-hash":"b04c09fcd63399f8"}; unlatest web-0; delete -
            policy snapshot web-1 status Scheduled=True SchedulingPolicyFulfilled "picked all 2 clusters that the policy allows"; decisions a+ b+ c-
            delete binding web-c-5fcba890
            a: binding web-a-712c3690 patch Bound (snapshot web-0-snapshot, policy web-1, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            b: binding web-b-58094590 patch Bound (snapshot web-0-snapshot, policy web-1, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 2 clusters that the policy allows"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        "#]],
    );
}

#[test]
fn a_resource_placement_deletes_the_works_of_clusters_no_longer_picked() {
    let rp = json!({"kind": "ResourcePlacement", "metadata": {"name": "api", "namespace": "team"},
        "spec": {"policy": {"placementType": "PickFixed", "clusterNames": ["a", "b"]}}});
    let mut world = World::new(rp, vec![config_map("team", "cfg", "1")], ABC);
    world.apply(&world.plan());
    world.available_everywhere();
    world.set_spec(json!({"policy": {"clusterNames": ["b"]}}));
    check(
        &world,
        expect![[r#"
            new SchedulingPolicySnapshot api-1 labels {"kubernetes-fleet.io/parent-CRP":"api","kubernetes-fleet.io/policy-index":"1","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"2","kubernetes-fleet.io/policy-hash":"7f662cf95df23d57"}; unlatest api-0; delete -
            policy snapshot api-1 status Scheduled=True SchedulingPolicyFulfilled "picked the 1 cluster named"; decisions b+
            delete binding api-a-e703db2e
            delete Work fleet-member-a/team.api-work
            b: binding api-b-efad562e patch Bound (snapshot api-0-snapshot, policy api-1, overrides [] [], "the cluster is named by the placement"); Work fleet-member-b/team.api-work keep: [ConfigMap team/cfg]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked the 1 cluster named"; resource index 0; selected ConfigMap cfg
        "#]],
    );
}

#[test]
fn a_placement_that_cannot_place_says_why_and_writes_nothing() {
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.selected =
        Err("resourceSelectors[0]: the hub serves no kind Widget in group \"x.io\"".into());
    check(
        &world,
        expect![[r#"
            refused InvalidResourceSelectors: resourceSelectors[0]: the hub serves no kind Widget in group "x.io"
        "#]],
    );
    world.selected = Ok(vec![config_map(
        "app",
        "big",
        &"x".repeat(super::MAX_SELECTED_BYTES),
    )]);
    check(
        &world,
        expect![[r#"
        refused SelectedResourcesTooLarge: the selected resources take 1048674 bytes; a resource snapshot holds at most 1048576: select fewer resources or split them across placements
    "#]],
    );
    world.selected = Ok(app());
    world.set_spec(json!({"policy": {"placementType": "PickSome"}}));
    check(
        &world,
        expect![[r#"
        refused InvalidPolicy: spec.policy.placementType: Unsupported value: "PickSome": supported values: "PickAll", "PickN", "PickFixed"
    "#]],
    );
    // Refused: only the Scheduled condition says so.
    let status = world.apply(&world.plan());
    expect![[r#"
        ClusterResourcePlacementScheduled=False InvalidPolicy "spec.policy.placementType: Unsupported value: \"PickSome\": supported values: \"PickAll\", \"PickN\", \"PickFixed\"" (generation 2)
    "#]].assert_eq(&render_status(&status));
    assert!(
        world.objects.is_empty(),
        "nothing written: {:?}",
        world.objects.keys()
    );
}

#[test]
fn overrides_change_the_manifests_of_the_clusters_they_select() {
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.create(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
        "kind": "ClusterResourceOverride", "metadata": {"name": "prod-only"},
        "spec": {"placement": {"name": "web"},
            "clusterResourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": "app"}],
            "policy": {"overrideRules": [{"clusterSelector": {"clusterSelectorTerms":
                [{"labelSelector": {"matchLabels": {"env": "test"}}}]}, "overrideType": "Delete"}]}}}));
    world.create(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
        "kind": "ResourceOverride", "metadata": {"name": "replicas", "namespace": "app"},
        "spec": {"resourceSelectors": [{"group": "apps", "version": "v1", "kind": "Deployment", "name": "web"}],
            "policy": {"overrideRules": [{"clusterSelector": {"clusterSelectorTerms":
                [{"labelSelector": {"matchLabels": {"env": "prod"}}}]},
                "jsonPatchOverrides": [{"op": "replace", "path": "/spec/replicas", "value": 3}]}]}}}));
    check(
        &world,
        expect![[r#"
            new ClusterResourceSnapshot web-0-snapshot labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/resource-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/number-of-resource-snapshots":"1","kubernetes-fleet.io/resource-hash":"c757cefcb23b0f5d"}; unlatest -; delete -
            new ClusterSchedulingPolicySnapshot web-0 labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/policy-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/policy-hash":"2ab82c9a31421b6c"}; unlatest -; delete -
            new ClusterResourceOverrideSnapshot prod-only-0 labels {"kubernetes-fleet.io/parent-cluster-resource-override":"prod-only","kubernetes-fleet.io/override-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/override-hash":"e2b406a9944e0193"}; unlatest -; delete -
            new ResourceOverrideSnapshot replicas-0 labels {"kubernetes-fleet.io/parent-resource-override":"replicas","kubernetes-fleet.io/override-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/override-hash":"b8b3a6d4b2c2d56d"}; unlatest -; delete -
            policy snapshot web-0 status Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; decisions a+ b+ c+
            a: binding web-a-712c3690 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [{"namespace":"app","name":"replicas-0"}], "the cluster matches the placement policy"); Work fleet-member-a/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-a-712c3690","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            b: binding web-b-58094590 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [{"namespace":"app","name":"replicas-0"}], "the cluster matches the placement policy"); Work fleet-member-b/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-b-58094590","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            c: binding web-c-5fcba890 create Bound (snapshot web-0-snapshot, policy web-0, overrides ["prod-only-0"] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-c-5fcba890","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [ConfigMap app/cfg, Deployment app/web]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        "#]],
    );
    let status = world.apply(&world.plan());
    expect![[r#"
        ClusterResourcePlacementScheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows" (generation 1)
        ClusterResourcePlacementRolloutStarted=True RolloutStarted "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementOverridden=True OverriddenSucceeded "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementWorkSynchronized=True WorkSynchronized "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementApplied=Unknown ApplyPending "3 of 3 clusters not reported yet" (generation 1)
          a: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True OverriddenSucceeded, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
            applicableResourceOverrides: [{"namespace":"app","name":"replicas-0"}]
          b: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True OverriddenSucceeded, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
            applicableResourceOverrides: [{"namespace":"app","name":"replicas-0"}]
          c: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True OverriddenSucceeded, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
            applicableClusterResourceOverrides: ["prod-only-0"]
    "#]].assert_eq(&render_status(&status));
}

#[test]
fn clusters_that_get_the_same_manifests_share_one_work_spec() {
    let plans = |world: &World| match world.plan() {
        Decision::Place(p) => p.clusters,
        Decision::Refused { message, .. } => panic!("refused: {message}"),
    };
    let spec = |c: &ClusterPlan| c.work_spec.clone().expect("a Work spec");
    // No override: one copy for every cluster.
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    let clusters = plans(&world);
    let (a, b, c) = (spec(&clusters[0]), spec(&clusters[1]), spec(&clusters[2]));
    assert!(Arc::ptr_eq(&a.spec, &b.spec) && Arc::ptr_eq(&a.spec, &c.spec));
    assert_eq!(a.digest, super::super::compact::digest(&a.spec));
    // An override that picks one cluster out: that one has its own.
    world.create(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
        "kind": "ResourceOverride", "metadata": {"name": "replicas", "namespace": "app"},
        "spec": {"resourceSelectors": [{"group": "apps", "version": "v1", "kind": "Deployment", "name": "web"}],
            "policy": {"overrideRules": [{"clusterSelector": {"clusterSelectorTerms":
                [{"labelSelector": {"matchLabels": {"env": "test"}}}]},
                "jsonPatchOverrides": [{"op": "replace", "path": "/spec/replicas", "value": 3}]}]}}}));
    let clusters = plans(&world);
    let (a, c) = (spec(&clusters[0]), spec(&clusters[2]));
    assert_ne!(a.digest, c.digest, "c is the test cluster");
    assert_eq!(
        c.spec["workload"]["manifests"][2]["spec"]["replicas"],
        json!(3)
    );
    assert_ne!(
        a.spec["workload"]["manifests"][2]["spec"]["replicas"],
        json!(3)
    );
}

#[test]
fn an_override_that_fails_holds_the_cluster_at_what_it_has() {
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    world.apply(&world.plan());
    world.create(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
        "kind": "ClusterResourceOverride", "metadata": {"name": "broken"},
        "spec": {"placement": {"name": "web"},
            "clusterResourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": "app"}],
            "policy": {"overrideRules": [{"clusterSelector": {"clusterSelectorTerms":
                [{"labelSelector": {"matchLabels": {"env": "test"}}}]},
                "jsonPatchOverrides": [{"op": "remove", "path": "/spec/missing"}]}]}}}));
    check(
        &world,
        expect![[r#"
            new ClusterResourceOverrideSnapshot broken-0 labels {"kubernetes-fleet.io/parent-cluster-resource-override":"broken","kubernetes-fleet.io/override-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/override-hash":"c4c2b9a9c9c17902"}; unlatest -; delete -
            a: binding web-a-712c3690 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            b: binding web-b-58094590 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-b/web-work keep: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            c: binding web-c-5fcba890 keep Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-c/web-work hold; override failed: override broken-0 (overrideRules[0]) cannot be applied to Namespace /app: doc is missing path: spec
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        "#]],
    );
    let status = world.apply(&world.plan());
    expect![[r#"
        ClusterResourcePlacementScheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows" (generation 1)
        ClusterResourcePlacementRolloutStarted=True RolloutStarted "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementOverridden=False OverriddenFailed "1 of 3 clusters failed or are not ready" (generation 1)
          a: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
          b: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
          c: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=False OverriddenFailed
    "#]].assert_eq(&render_status(&status));
}

#[test]
fn the_strategy_reaches_every_work() {
    let world = World::new(
        crp(
            "web",
            json!({"policy": {"placementType": "PickFixed", "clusterNames": ["a"]},
            "strategy": {"deleteStrategy": {"propagationPolicy": "Abandon"},
                "applyStrategy": {"type": "ServerSideApply", "whenToTakeOver": "IfNoDiff"}}}),
        ),
        app(),
        ABC,
    );
    let Decision::Place(plan) = world.plan() else {
        panic!("placed");
    };
    let c = &plan.clusters[0];
    expect![[r#"
        binding {"type":"ServerSideApply","comparisonOption":"PartialComparison","whenToApply":"Always","whenToTakeOver":"IfNoDiff"}
        Work {"type":"ServerSideApply","comparisonOption":"PartialComparison","whenToApply":"Always","whenToTakeOver":"IfNoDiff"}
    "#]].assert_eq(&format!(
        "binding {}\nWork {}\n",
        c.binding_spec["applyStrategy"],
        c.work_spec.as_ref().unwrap().spec["applyStrategy"]
    ));
    check(
        &world,
        expect![[r#"
            new ClusterResourceSnapshot web-0-snapshot labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/resource-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/number-of-resource-snapshots":"1","kubernetes-fleet.io/resource-hash":"c757cefcb23b0f5d"}; unlatest -; delete -
            new ClusterSchedulingPolicySnapshot web-0 labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/policy-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/policy-hash":"ce9c500de1aea7e6"}; unlatest -; delete -
            policy snapshot web-0 status Scheduled=True SchedulingPolicyFulfilled "picked the 1 cluster named"; decisions a+
            a: binding web-a-712c3690 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster is named by the placement"); Work fleet-member-a/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-a-712c3690","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Abandon"}: [Namespace app, ConfigMap app/cfg, Deployment app/web]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked the 1 cluster named"; resource index 0; selected Namespace app, ConfigMap cfg, Deployment web
        "#]],
    );
}

#[test]
fn envelopes_are_unwrapped_and_named_in_the_status() {
    // A ResourceEnvelope's objects land in its namespace; a ClusterResourceEnvelope's are
    // cluster-scoped. Within an envelope, objects go by key.
    let envelope = json!({"apiVersion": "placement.kubernetes-fleet.io/v1beta1",
        "kind": "ResourceEnvelope", "metadata": {"name": "config", "namespace": "app"},
        "data": {"b.yaml": config_map("other", "second", "1"),
            "a.yaml": config_map("", "first", "1")}});
    let cluster_envelope = json!({"apiVersion": "placement.kubernetes-fleet.io/v1beta1",
        "kind": "ClusterResourceEnvelope", "metadata": {"name": "hooks"},
        "data": {"webhook.yaml": {"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "guard"}}}});
    let world = World::new(
        crp("web", json!({})),
        vec![namespace("app"), cluster_envelope, envelope],
        &ABC[..1],
    );
    check(
        &world,
        expect![[r#"
            new ClusterResourceSnapshot web-0-snapshot labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/resource-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/number-of-resource-snapshots":"1","kubernetes-fleet.io/resource-hash":"2bafef74b149684e"}; unlatest -; delete -
            new ClusterSchedulingPolicySnapshot web-0 labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/policy-index":"0","kubernetes-fleet.io/is-latest-snapshot":"true"} annotations {"kubernetes-fleet.io/CRP-generation":"1","kubernetes-fleet.io/policy-hash":"2ab82c9a31421b6c"}; unlatest -; delete -
            policy snapshot web-0 status Scheduled=True SchedulingPolicyFulfilled "picked all 1 cluster that the policy allows"; decisions a+
            a: binding web-a-712c3690 create Bound (snapshot web-0-snapshot, policy web-0, overrides [] [], "the cluster matches the placement policy"); Work fleet-member-a/web-work create (owned by binding) labels {"kubernetes-fleet.io/parent-CRP":"web","kubernetes-fleet.io/parent-resource-binding":"web-a-712c3690","kubernetes-fleet.io/parent-resource-snapshot-index":"0"} annotations {"kubernetes-fleet.io/delete-strategy":"Delete"}: [Namespace app, ValidatingWebhookConfiguration guard, ConfigMap app/first, ConfigMap app/second]
            summary: Scheduled=True SchedulingPolicyFulfilled "picked all 1 cluster that the policy allows"; resource index 0; selected Namespace app, ValidatingWebhookConfiguration guard (in hooks), ConfigMap first (in config), ConfigMap second (in config)
        "#]],
    );
}

#[test]
fn a_decision_stays_as_made_under_the_same_policy_snapshot() {
    let pick = json!({"policy": {"placementType": "PickN", "numberOfClusters": 1}});
    let mut world = World::new(crp("web", pick), app(), ABC);
    world.apply(&world.plan());
    // Another pass under the same policy snapshot: the scheduler keeps the cluster ("kept");
    // the binding keeps the reason it was picked for.
    world.selected = Ok(vec![namespace("app")]);
    let Decision::Place(plan) = world.plan() else {
        panic!("placed");
    };
    let decisions = &plan.policy_snapshot.status.as_ref().unwrap()["status"]["clusterDecisions"];
    expect![[r#"
        scheduler: "kept: the placement is on this cluster (changes of the cluster are IgnoredDuringExecution)"
        binding: "picked: among the 1 best scored clusters"
    "#]].assert_eq(&format!(
        "scheduler: {}\nbinding: {}\n",
        decisions[0]["reason"], plan.clusters[0].binding_spec["clusterDecision"]["reason"]
    ));
}

#[test]
fn work_status_rolls_up_into_bindings_and_the_placement() {
    let mut world = World::new(crp("web", json!({})), app(), ABC);
    let status = world.apply(&world.plan());
    expect![[r#"
        ClusterResourcePlacementScheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows" (generation 1)
        ClusterResourcePlacementRolloutStarted=True RolloutStarted "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementOverridden=True NoOverrideSpecified "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementWorkSynchronized=True WorkSynchronized "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementApplied=Unknown ApplyPending "3 of 3 clusters not reported yet" (generation 1)
          a: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
          b: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
          c: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
    "#]].assert_eq(&render_status(&status));
    world.report("a", "True", "True", &[]);
    world.report("b", "True", "False", &["web"]);
    let status = world.apply(&world.plan());
    expect![[r#"
        ClusterResourcePlacementScheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows" (generation 1)
        ClusterResourcePlacementRolloutStarted=True RolloutStarted "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementOverridden=True NoOverrideSpecified "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementWorkSynchronized=True WorkSynchronized "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementApplied=Unknown ApplyPending "1 of 3 clusters not reported yet" (generation 1)
          a: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=True AllWorkHaveBeenApplied, Available=True AllWorkAreAvailable
          b: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=True AllWorkHaveBeenApplied, Available=False WorkNotAvailableYet
            failedPlacements: [{"name":"web","group":"apps","version":"v1","kind":"Deployment","namespace":"app","condition":{"type":"Available","status":"False","reason":"Reported","message":"Available False","observedGeneration":1,"lastTransitionTime":"2026-12-03T12:00:00Z"}}]
          c: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
    "#]].assert_eq(&render_status(&status));
    world.report("b", "True", "True", &[]);
    world.report("c", "True", "True", &[]);
    let status = world.apply(&world.plan());
    expect![[r#"
        ClusterResourcePlacementScheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows" (generation 1)
        ClusterResourcePlacementRolloutStarted=True RolloutStarted "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementOverridden=True NoOverrideSpecified "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementWorkSynchronized=True WorkSynchronized "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementApplied=True ApplySucceeded "3 of 3 clusters" (generation 1)
        ClusterResourcePlacementAvailable=True ResourceAvailable "3 of 3 clusters" (generation 1)
          a: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=True AllWorkHaveBeenApplied, Available=True AllWorkAreAvailable
          b: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=True AllWorkHaveBeenApplied, Available=True AllWorkAreAvailable
          c: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=True AllWorkHaveBeenApplied, Available=True AllWorkAreAvailable
    "#]].assert_eq(&render_status(&status));
    // A new generation of the Works: what the agent said of the old one no longer counts.
    world.selected = Ok(vec![namespace("app")]);
    let status = world.apply(&world.plan());
    expect![[r#"
        ClusterResourcePlacementScheduled=True SchedulingPolicyFulfilled "picked all 3 clusters that the policy allows" (generation 1)
        ClusterResourcePlacementRolloutStarted=False RolloutNotStartedYet "the rollout strategy holds back 2 of 3 clusters" (generation 1)
          a: Scheduled=True Scheduled, RolloutStarted=True RolloutStarted, Overridden=True NoOverrideSpecified, WorkSynchronized=True AllWorkSynced, Applied=Unknown WorkApplyPending
          b: Scheduled=True Scheduled, RolloutStarted=False RolloutNotStartedYet
          c: Scheduled=True Scheduled, RolloutStarted=False RolloutNotStartedYet
    "#]].assert_eq(&render_status(&status));
}

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

fn ro(namespace: &str, placement: Value) -> DynamicObject {
    obj(
        json!({"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ResourceOverride",
        "metadata": {"name": "o", "namespace": namespace}, "spec": {"placement": placement}}),
    )
}

#[test]
fn overrides_apply_to_the_placements_they_name_in_their_scope() {
    use Scope::{Cluster, Namespaced};
    let cro = obj(json!({"apiVersion": "placement.kubernetes-fleet.io/v1",
        "kind": "ClusterResourceOverride", "metadata": {"name": "c"},
        "spec": {"placement": {"name": "web"}}}));
    assert!(super::override_applies(&cro, true, Cluster, "web", None));
    assert!(!super::override_applies(&cro, true, Cluster, "db", None));
    // ClusterResourceOverrides never apply to ResourcePlacements.
    assert!(!super::override_applies(
        &cro,
        true,
        Namespaced,
        "web",
        Some("team")
    ));

    let for_crp = ro("team", json!({"name": "web"}));
    assert!(super::override_applies(
        &for_crp, false, Cluster, "web", None
    ));
    assert!(!super::override_applies(
        &for_crp,
        false,
        Namespaced,
        "web",
        Some("team")
    ));
    let for_rp = ro("team", json!({"name": "web", "scope": "Namespaced"}));
    assert!(super::override_applies(
        &for_rp,
        false,
        Namespaced,
        "web",
        Some("team")
    ));
    assert!(!super::override_applies(
        &for_rp,
        false,
        Namespaced,
        "web",
        Some("other")
    ));
    assert!(!super::override_applies(
        &for_rp, false, Cluster, "web", None
    ));
    // Naming none: every ClusterResourcePlacement, the ResourcePlacements of its namespace.
    let any = ro("team", Value::Null);
    assert!(super::override_applies(&any, false, Cluster, "web", None));
    assert!(super::override_applies(
        &any,
        false,
        Namespaced,
        "web",
        Some("team")
    ));
    assert!(!super::override_applies(
        &any,
        false,
        Namespaced,
        "web",
        Some("other")
    ));
}

#[test]
fn a_policy_snapshot_explains_clusters_not_picked_only_in_the_room_left_under_twenty() {
    // KubeFleet's scheduler: every picked cluster, then unpicked ones until there are 20; the
    // status holds at most 1,000 decisions, so a placement on 1,000 clusters explains none.
    let names: Vec<String> = (0..30).map(|i| format!("m{i:02}")).collect();
    let fleet: Vec<(&str, &[(&str, &str)])> = names.iter().map(|n| (n.as_str(), &[][..])).collect();
    let decisions = |n: usize| {
        let pick = json!({"policy": {"placementType": "PickN", "numberOfClusters": n}});
        let Decision::Place(plan) = World::new(crp("web", pick), app(), &fleet).plan() else {
            panic!("placed");
        };
        let d = &plan.policy_snapshot.status.as_ref().unwrap()["status"]["clusterDecisions"];
        let picked = d
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["selected"] == true)
            .count();
        (picked, d.as_array().unwrap().len() - picked)
    };
    assert_eq!(decisions(5), (5, 15));
    assert_eq!(decisions(20), (20, 0));
    assert_eq!(decisions(25), (25, 0));
}
