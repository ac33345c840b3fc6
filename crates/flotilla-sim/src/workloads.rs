//! The workload controllers of a simulated cluster: Deployment -> ReplicaSet -> Pods,
//! StatefulSet, DaemonSet and Job, writing the status fields a real cluster reports.

use serde_json::{json, Value};

use crate::*;

const DEPLOYMENTS: Kind = ("apps", "Deployment", "deployments");
const REPLICASETS: Kind = ("apps", "ReplicaSet", "replicasets");
const STATEFULSETS: Kind = ("apps", "StatefulSet", "statefulsets");
const DAEMONSETS: Kind = ("apps", "DaemonSet", "daemonsets");
const JOBS: Kind = ("batch", "Job", "jobs");
pub(crate) const PODS: Kind = ("", "Pod", "pods");

impl Sim {
    pub(crate) fn deployments(&self, st: &State, w: &mut Writes) {
        for d in st.deployments.iter().filter(|d| !deleting(d)) {
            let hash = template_hash(&d["spec"]["template"]);
            let rss: Vec<&Value> = st
                .replicasets
                .iter()
                .filter(|r| ns(r) == ns(d) && controller_uid(r) == Some(uid(d)))
                .collect();
            let want = replicas(d);
            let current = rss
                .iter()
                .find(|r| r["metadata"]["labels"]["pod-template-hash"] == hash.as_str());
            match current {
                None => {
                    let mut template = d["spec"]["template"].clone();
                    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                    let mut selector = d["spec"]["selector"].clone();
                    selector["matchLabels"]["pod-template-hash"] = json!(hash);
                    let mut labels = template["metadata"]["labels"].clone();
                    labels["pod-template-hash"] = json!(hash);
                    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": format!("{}-{hash}", name(d)), "namespace": ns(d), "labels": labels,
                            "annotations": {"deployment.kubernetes.io/revision": (rss.len() + 1).to_string()},
                            "ownerReferences": owner_ref(d, "apps/v1", "Deployment")},
                        "spec": {"replicas": want, "selector": selector, "template": template}});
                    w.create(
                        self.api("apps", "ReplicaSet", "replicasets", ns(d)),
                        None,
                        rs,
                    );
                }
                Some(rs) if replicas(rs) != want => w.patch(
                    self.api("apps", "ReplicaSet", "replicasets", ns(d)),
                    name(rs),
                    None,
                    json!({"spec": {"replicas": want}}),
                ),
                Some(_) => {}
            }
            // Old ReplicaSets scale down once the new one is available.
            let new_available = current
                .map(|r| r["status"]["availableReplicas"].as_i64().unwrap_or(0))
                .unwrap_or(0);
            for old in rss
                .iter()
                .filter(|r| r["metadata"]["labels"]["pod-template-hash"] != hash.as_str())
            {
                if replicas(old) != 0 && new_available >= want {
                    w.patch(
                        self.api("apps", "ReplicaSet", "replicasets", ns(d)),
                        name(old),
                        None,
                        json!({"spec": {"replicas": 0}}),
                    );
                }
            }
            let sum = |f: &str| {
                rss.iter()
                    .map(|r| r["status"][f].as_i64().unwrap_or(0))
                    .sum::<i64>()
            };
            let updated = current
                .map(|r| r["status"]["replicas"].as_i64().unwrap_or(0))
                .unwrap_or(0);
            let available = sum("availableReplicas");
            let complete = updated == want && new_available == want && sum("replicas") == want;
            let mut conds = d["status"]["conditions"].clone();
            set_cond(
                &mut conds,
                "Available",
                available >= want,
                if available >= want {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if available >= want {
                    "Deployment has minimum availability."
                } else {
                    "Deployment does not have minimum availability."
                },
            );
            set_cond(
                &mut conds,
                "Progressing",
                true,
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                &format!(
                    "ReplicaSet \"{}-{hash}\" {}",
                    name(d),
                    if complete {
                        "has successfully progressed."
                    } else {
                        "is progressing."
                    }
                ),
            );
            let status = json!({"observedGeneration": generation(d), "replicas": sum("replicas"),
                "updatedReplicas": updated, "readyReplicas": sum("readyReplicas"), "availableReplicas": available,
                "unavailableReplicas": (want - available).max(0), "conditions": conds});
            self.set_status(w, DEPLOYMENTS, d, status);
        }
    }

    pub(crate) fn replicasets(&self, st: &State, w: &mut Writes) {
        for rs in st.replicasets.iter().filter(|r| !deleting(r)) {
            let pods: Vec<&Value> = self
                .owned(&st.pods, rs)
                .into_iter()
                .filter(|p| !deleting(p))
                .collect();
            let want = replicas(rs) as usize;
            if pods.len() < want {
                for _ in pods.len()..want {
                    self.create_pod(w, rs, ("apps/v1", "ReplicaSet"), None, json!({}), None);
                }
            } else if pods.len() > want {
                // Unready and unscheduled pods go first, as kube's controller prefers.
                let mut victims = pods.clone();
                victims.sort_by_key(|p| (pod_ready(p), p["spec"]["nodeName"].is_string()));
                for p in victims.iter().take(pods.len() - want) {
                    self.delete(w, PODS, p);
                }
            }
            let ready = pods.iter().filter(|p| pod_ready(p)).count();
            let status = json!({"replicas": pods.len(), "fullyLabeledReplicas": pods.len(),
                "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": generation(rs)});
            self.set_status(w, REPLICASETS, rs, status);
        }
    }

    pub(crate) fn statefulsets(&self, st: &State, w: &mut Writes) {
        for s in st.statefulsets.iter().filter(|s| !deleting(s)) {
            let pods: Vec<&Value> = self.owned(&st.pods, s);
            let want = replicas(s);
            // Ordered start: pod i is created once pods 0..i are ready.
            for i in 0..want {
                let pn = format!("{}-{i}", name(s));
                match pods.iter().find(|p| name(p) == pn) {
                    Some(p) if pod_ready(p) => continue,
                    Some(_) => break,
                    None => {
                        self.create_pod(w, s, ("apps/v1", "StatefulSet"), Some(&pn), json!({"statefulset.kubernetes.io/pod-name": pn, "apps.kubernetes.io/pod-index": i.to_string()}), None);
                        break;
                    }
                }
            }
            for p in &pods {
                let idx = name(p)
                    .rsplit('-')
                    .next()
                    .and_then(|i| i.parse::<i64>().ok())
                    .unwrap_or(0);
                if idx >= want && !deleting(p) {
                    self.delete(w, PODS, p);
                }
            }
            let live: Vec<&&Value> = pods.iter().filter(|p| !deleting(p)).collect();
            let ready = live.iter().filter(|p| pod_ready(p)).count();
            let status = json!({"observedGeneration": generation(s), "replicas": live.len(),
                "readyReplicas": ready, "currentReplicas": live.len(), "updatedReplicas": live.len(),
                "availableReplicas": ready});
            self.set_status(w, STATEFULSETS, s, status);
        }
    }

    pub(crate) fn daemonsets(&self, st: &State, w: &mut Writes) {
        let nodes: Vec<&Value> = st
            .nodes
            .iter()
            .filter(|n| n["spec"]["unschedulable"] != true)
            .collect();
        for ds in st.daemonsets.iter().filter(|d| !deleting(d)) {
            let pods = self.owned(&st.pods, ds);
            for n in &nodes {
                if !pods.iter().any(|p| p["spec"]["nodeName"] == name(n)) {
                    self.create_pod(
                        w,
                        ds,
                        ("apps/v1", "DaemonSet"),
                        None,
                        json!({}),
                        Some(name(n)),
                    );
                }
            }
            let ready = pods.iter().filter(|p| pod_ready(p)).count();
            let status = json!({"observedGeneration": generation(ds), "desiredNumberScheduled": nodes.len(),
                "currentNumberScheduled": pods.len(), "updatedNumberScheduled": pods.len(),
                "numberReady": ready, "numberAvailable": ready, "numberMisscheduled": 0,
                "numberUnavailable": nodes.len().saturating_sub(ready)});
            self.set_status(w, DAEMONSETS, ds, status);
        }
    }

    pub(crate) fn jobs(&self, st: &State, w: &mut Writes) {
        for j in st.jobs.iter().filter(|j| !deleting(j)) {
            let pods = self.owned(&st.pods, j);
            let completions = j["spec"]["completions"].as_i64().unwrap_or(1);
            let parallelism = j["spec"]["parallelism"].as_i64().unwrap_or(1);
            let succeeded = pods
                .iter()
                .filter(|p| p["status"]["phase"] == "Succeeded")
                .count() as i64;
            let active = pods
                .iter()
                .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
                .count() as i64;
            let done = succeeded >= completions;
            if !done && j["spec"]["suspend"] != true {
                let want_active = parallelism.min(completions - succeeded);
                for _ in active..want_active {
                    let mut labels =
                        json!({"batch.kubernetes.io/job-name": name(j), "job-name": name(j)});
                    labels["batch.kubernetes.io/controller-uid"] = json!(uid(j));
                    self.create_pod(w, j, ("batch/v1", "Job"), None, labels, None);
                }
            }
            let mut status = json!({"active": active, "succeeded": succeeded, "ready": pods.iter().filter(|p| pod_ready(p)).count(),
                "startTime": j["status"]["startTime"].as_str().map(String::from).unwrap_or_else(now)});
            if done {
                let mut conds = j["status"]["conditions"].clone();
                set_cond(
                    &mut conds,
                    "SuccessCriteriaMet",
                    true,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                set_cond(
                    &mut conds,
                    "Complete",
                    true,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                status["conditions"] = conds;
                status["completionTime"] = json!(j["status"]["completionTime"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(now));
                status["active"] = json!(0);
            }
            self.set_status(w, JOBS, j, status);
        }
    }
}
