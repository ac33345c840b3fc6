//! The scheduler and kubelet of a simulated cluster: pods bound only where their requests
//! fit, started after a delay, Job pods completed.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_api::member::{node_schedulable, pod_holds_resources, pod_requests, Resources};
use flotilla_api::quantity::parse_milli;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::workloads::PODS;
use crate::*;

impl Sim {
    /// The scheduler and the kubelet: bind pending pods where their requests fit, start bound
    /// pods after the delay, complete Job pods after another.
    pub(crate) fn schedule_and_run(&mut self, st: &State, w: &mut Writes) {
        let mut free: BTreeMap<String, Resources> = BTreeMap::new();
        for n in st.nodes.iter().filter(|n| node_schedulable(n)) {
            let a = &n["status"]["allocatable"];
            free.insert(
                name(n).to_string(),
                Resources {
                    cpu: a["cpu"].as_str().and_then(parse_milli).unwrap_or(0),
                    memory: a["memory"].as_str().and_then(parse_milli).unwrap_or(0),
                },
            );
        }
        for p in st.pods.iter().filter(|p| pod_holds_resources(p)) {
            if let Some(f) = free.get_mut(p["spec"]["nodeName"].as_str().unwrap_or("")) {
                let r = pod_requests(p);
                f.cpu -= r.cpu;
                f.memory -= r.memory;
            }
        }
        let now_i = Instant::now();
        let mut live = BTreeSet::new();
        for p in st.pods.iter().filter(|p| !deleting(p)) {
            let key = format!("{}/{}", ns(p), name(p));
            live.insert(key.clone());
            let node = p["spec"]["nodeName"].as_str().unwrap_or("");
            let phase = p["status"]["phase"].as_str().unwrap_or("Pending");
            if node.is_empty() {
                let r = pod_requests(p);
                // Most free CPU first, then name: spreads pods like the default scorer.
                let fit = free
                    .iter()
                    .filter(|(_, f)| f.cpu >= r.cpu && f.memory >= r.memory)
                    .max_by_key(|(n, f)| (f.cpu, std::cmp::Reverse((*n).clone())))
                    .map(|(n, _)| n.clone());
                match fit {
                    Some(n) => {
                        let f = free.get_mut(&n).expect("node");
                        f.cpu -= r.cpu;
                        f.memory -= r.memory;
                        w.patch(
                            self.api("", "Pod", "pods", ns(p)),
                            name(p),
                            None,
                            json!({"spec": {"nodeName": n}}),
                        );
                    }
                    None => {
                        let mut conds = p["status"]["conditions"].clone();
                        let msg = format!(
                            "0/{} nodes are available: insufficient cpu or memory.",
                            st.nodes.len()
                        );
                        set_cond(&mut conds, "PodScheduled", false, "Unschedulable", &msg);
                        self.set_status(
                            w,
                            PODS,
                            p,
                            json!({"phase": "Pending", "conditions": conds}),
                        );
                    }
                }
                continue;
            }
            let job_pod = p["metadata"]["ownerReferences"][0]["kind"] == "Job";
            match phase {
                "Pending" | "Running" if phase != "Running" || job_pod => {
                    let due = *self
                        .started
                        .entry(key.clone())
                        .or_insert(now_i + self.cfg.delay);
                    if due > now_i {
                        self.timers.insert((due, key.clone()), ());
                        continue;
                    }
                    self.started.remove(&key);
                    let mut conds = p["status"]["conditions"].clone();
                    let status = if phase == "Pending" {
                        for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
                            set_cond(&mut conds, t, true, "", "");
                        }
                        let containers: Vec<Value> = p["spec"]["containers"].as_array().into_iter().flatten().map(|c| json!({
                            "name": c["name"], "image": c["image"], "imageID": "", "ready": true, "started": true,
                            "restartCount": 0, "state": {"running": {"startedAt": now()}}})).collect();
                        json!({"phase": "Running", "conditions": conds, "startTime": now(), "hostIP": "10.0.0.1",
                            "podIP": format!("10.244.{}.{}", rand::random_range(0..255), rand::random_range(1..255)),
                            "qosClass": p["status"]["qosClass"].clone(), "containerStatuses": containers})
                    } else {
                        for t in ["ContainersReady", "Ready"] {
                            set_cond(&mut conds, t, false, "PodCompleted", "");
                        }
                        let containers: Vec<Value> = p["spec"]["containers"].as_array().into_iter().flatten().map(|c| json!({
                            "name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false,
                            "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now()}}})).collect();
                        json!({"phase": "Succeeded", "conditions": conds, "containerStatuses": containers})
                    };
                    self.set_status(w, PODS, p, status);
                }
                _ => {}
            }
        }
        self.started.retain(|k, _| live.contains(k));
    }
}
