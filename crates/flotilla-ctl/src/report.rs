//! What `flotilla rollout status` shows (pure): a placement's rollout read from its objects — a
//! rolling update from its per-cluster statuses and bindings, a staged update from its run —
//! as a [`Report`] (printed as a table with progress bars, or as JSON/YAML) and an [`Outcome`]
//! (the exit code).

use chrono::{DateTime, Utc};
use flotilla_api::conditions::find;
use flotilla_api::placement::staged::parse_duration;
use serde_json::{json, Value};

/// How a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every cluster has the latest (a run: it succeeded).
    Done,
    /// Still going (or waiting for an approval or a timer).
    InProgress,
    /// A cluster or the run failed.
    Failed,
    /// The run is stopped.
    Stopped,
}

impl Outcome {
    /// The exit code of `flotilla rollout status`: 0 done, 1 failed, 3 stopped, 4 in progress
    /// (without `--watch`, or when `--timeout` passed).
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Failed => 1,
            Outcome::Stopped => 3,
            Outcome::InProgress => 4,
        }
    }
}

/// One line of a report: a cluster, or a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Cluster or stage name.
    pub name: String,
    /// Done / total (a cluster: 1 or 0 of 1).
    pub done: usize,
    /// How many there are.
    pub total: usize,
    /// Short state: Available, Updating, Held back, Failed, Waiting, Succeeded, ...
    pub state: String,
    /// What it waits for, or why it failed.
    pub detail: String,
}

/// A rollout as read from the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// First line: what rolls out, how.
    pub title: String,
    /// Clusters (rolling update) or stages (staged run).
    pub lines: Vec<Line>,
    /// How it stands.
    pub outcome: Outcome,
}

fn cond<'a>(conds: &'a Value, ty: &str) -> Option<&'a Value> {
    find(conds, ty)
}

fn status_of(c: Option<&Value>) -> &str {
    c.and_then(|c| c["status"].as_str()).unwrap_or("")
}

/// A placement with `spec.strategy.type: RollingUpdate`: each cluster of its status.
pub fn rolling(placement: &Value) -> Report {
    let name = placement["metadata"]["name"].as_str().unwrap_or("");
    let kind = placement["kind"]
        .as_str()
        .unwrap_or("ClusterResourcePlacement");
    let index = placement["status"]["observedResourceIndex"]
        .as_str()
        .unwrap_or("-");
    let generation = placement["metadata"]["generation"].as_i64();
    let conds = &placement["status"]["conditions"];
    let mut lines = Vec::new();
    for c in placement["status"]["placementStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let cc = &c["conditions"];
        let first_not_true = [
            "RolloutStarted",
            "Overridden",
            "WorkSynchronized",
            "Applied",
            "Available",
            "DiffReported",
        ]
        .iter()
        .filter_map(|t| cond(cc, t))
        .find(|x| x["status"] != "True");
        let (state, detail, done) = match first_not_true {
            None if cond(cc, "Available").is_some() || cond(cc, "DiffReported").is_some() => {
                ("Available".to_string(), String::new(), 1)
            }
            None => (
                "Updating".into(),
                "waiting for the member's agent".into(),
                0,
            ),
            Some(x) => {
                let ty = x["type"].as_str().unwrap_or("");
                let msg = x["message"].as_str().unwrap_or("").to_string();
                match (ty, x["status"].as_str().unwrap_or("")) {
                    ("RolloutStarted", "False") => ("Held back".into(), msg, 0),
                    ("Available", "False") => ("Updating".into(), msg, 0),
                    (_, "False") => {
                        let failed = c["failedPlacements"]
                            .as_array()
                            .map(|f| {
                                f.iter()
                                    .take(3)
                                    .map(|f| {
                                        format!(
                                            "{} {}: {}",
                                            f["kind"].as_str().unwrap_or(""),
                                            f["name"].as_str().unwrap_or(""),
                                            f["condition"]["message"].as_str().unwrap_or("")
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            })
                            .filter(|s| !s.is_empty());
                        (
                            "Failed".into(),
                            format!("{ty} False: {}", failed.unwrap_or(msg)),
                            0,
                        )
                    }
                    _ => ("Updating".into(), format!("{ty}: {msg}"), 0),
                }
            }
        };
        lines.push(Line {
            name: c["clusterName"].as_str().unwrap_or("").to_string(),
            done,
            total: 1,
            state,
            detail,
        });
    }
    let current = |ty: &str| {
        cond(conds, &format!("{kind}{ty}"))
            .filter(|c| c["observedGeneration"].as_i64() == generation)
    };
    let failed = lines.iter().any(|l| l.state == "Failed");
    let outcome = if failed {
        Outcome::Failed
    } else if ["Available", "DiffReported"]
        .iter()
        .any(|t| status_of(current(t)) == "True")
    {
        Outcome::Done
    } else {
        Outcome::InProgress
    };
    let done = lines.iter().map(|l| l.done).sum::<usize>();
    Report {
        title: format!(
            "{kind} {name}: rolling update of resource snapshot {index}, {done} of {} clusters done",
            lines.len()
        ),
        lines,
        outcome,
    }
}

/// A staged update run: its stages, what each waits for and until when.
pub fn staged(run: &Value, now: DateTime<Utc>) -> Report {
    let name = run["metadata"]["name"].as_str().unwrap_or("");
    let st = &run["status"];
    let conds = &st["conditions"];
    let placement = run["spec"]["placementName"].as_str().unwrap_or("");
    let index = st["resourceSnapshotIndexUsed"]
        .as_str()
        .or(run["spec"]["resourceSnapshotIndex"].as_str())
        .unwrap_or("latest");
    let state = run["spec"]["state"].as_str().unwrap_or("Initialize");
    let mut lines = Vec::new();
    let stages = st["stagesStatus"].as_array().cloned().unwrap_or_default();
    let config = &st["stagedUpdateStrategySnapshot"]["stages"];
    for (i, s) in stages
        .iter()
        .chain(
            [&st["deletionStageStatus"]]
                .into_iter()
                .filter(|d| d.is_object()),
        )
        .enumerate()
    {
        let clusters = s["clusters"].as_array().cloned().unwrap_or_default();
        let ok = |c: &Value| status_of(cond(&c["conditions"], "Succeeded")) == "True";
        let done = clusters.iter().filter(|c| ok(c)).count();
        let updating: Vec<&str> = clusters
            .iter()
            .filter(|c| {
                status_of(cond(&c["conditions"], "Started")) == "True"
                    && status_of(cond(&c["conditions"], "Succeeded")).is_empty()
            })
            .filter_map(|c| c["clusterName"].as_str())
            .collect();
        let failed: Vec<String> = clusters
            .iter()
            .filter(|c| status_of(cond(&c["conditions"], "Succeeded")) == "False")
            .map(|c| {
                format!(
                    "{}: {}",
                    c["clusterName"].as_str().unwrap_or(""),
                    cond(&c["conditions"], "Succeeded").unwrap()["message"]
                        .as_str()
                        .unwrap_or("")
                )
            })
            .collect();
        let sc = &s["conditions"];
        let progressing = cond(sc, "Progressing");
        let reason = progressing.and_then(|p| p["reason"].as_str()).unwrap_or("");
        let (state, detail) = if status_of(cond(sc, "Succeeded")) == "True" {
            let skipped = cond(sc, "Succeeded")
                .is_some_and(|c| c["reason"] == "StageUpdatingSkippedNoClusters");
            (
                if skipped { "Skipped" } else { "Succeeded" }.to_string(),
                String::new(),
            )
        } else if !failed.is_empty() || status_of(cond(sc, "Succeeded")) == "False" {
            ("Failed".into(), failed.join("; "))
        } else if reason == "StageUpdatingWaiting" {
            (
                "Waiting".into(),
                waiting_for(s, &config[i], name, progressing, now),
            )
        } else if reason == "StageUpdatingStopping" || reason == "StageUpdatingStopped" {
            (
                "Stopped".into(),
                progressing
                    .and_then(|p| p["message"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        } else if !updating.is_empty() {
            (
                "Updating".into(),
                format!("updating: {}", updating.join(", ")),
            )
        } else {
            ("Pending".into(), String::new())
        };
        let stage_name = s["stageName"].as_str().unwrap_or("");
        let active = matches!(state.as_str(), "Updating" | "Failed" | "Stopped");
        lines.push(Line {
            // KubeFleet's name for the deletion stage is long: shown as "(deletion)".
            name: if stage_name == flotilla_api::placement::staged::DELETION_STAGE {
                "(deletion)".to_string()
            } else {
                stage_name.to_string()
            },
            done,
            total: clusters.len(),
            state,
            detail,
        });
        // The stage in progress: each of its clusters under it.
        if active {
            for c in &clusters {
                let cc = &c["conditions"];
                let (st, detail, done) = match status_of(cond(cc, "Succeeded")) {
                    "True" => ("Succeeded", String::new(), 1),
                    "False" => (
                        "Failed",
                        cond(cc, "Succeeded").unwrap()["message"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        0,
                    ),
                    _ if status_of(cond(cc, "Started")) == "True" => ("Updating", String::new(), 0),
                    _ => ("Pending", String::new(), 0),
                };
                lines.push(Line {
                    name: format!("  {}", c["clusterName"].as_str().unwrap_or("")),
                    done,
                    total: 1,
                    state: st.to_string(),
                    detail,
                });
            }
        }
    }
    let run_status = |ty: &str| status_of(cond(conds, ty)).to_string();
    let outcome = if run_status("Succeeded") == "True" {
        Outcome::Done
    } else if run_status("Succeeded") == "False" || run_status("Initialized") == "False" {
        Outcome::Failed
    } else if cond(conds, "Progressing").is_some_and(|p| p["reason"] == "UpdateRunStopped")
        || matches!(state, "Stop" | "Pause" | "Abandon")
            && cond(conds, "Progressing").is_some_and(|p| p["status"] == "False")
    {
        Outcome::Stopped
    } else {
        Outcome::InProgress
    };
    let why = [
        ("Initialized", "False"),
        ("Succeeded", "False"),
        ("Progressing", "False"),
    ]
    .iter()
    .find_map(|(t, s)| cond(conds, t).filter(|c| c["status"] == *s))
    .and_then(|c| c["message"].as_str())
    .map(|m| format!(": {m}"))
    .unwrap_or_default();
    Report {
        title: format!(
            "run {name} of placement {placement}: resource snapshot {index}, state {state}{why}"
        ),
        lines,
        outcome,
    }
}

/// What a waiting stage waits for: a person's approval (and how to give it), or a timer (and
/// until when).
fn waiting_for(
    stage: &Value,
    config: &Value,
    run: &str,
    progressing: Option<&Value>,
    now: DateTime<Utc>,
) -> String {
    let stage_name = stage["stageName"].as_str().unwrap_or("");
    let mut waits = Vec::new();
    let all_done = stage["clusters"].as_array().is_some_and(|c| {
        c.iter()
            .all(|c| status_of(cond(&c["conditions"], "Succeeded")) == "True")
    });
    let (field, tasks) = if all_done {
        ("afterStageTaskStatus", &config["afterStageTasks"])
    } else {
        ("beforeStageTaskStatus", &config["beforeStageTasks"])
    };
    for (k, t) in stage[field].as_array().into_iter().flatten().enumerate() {
        let tc = &t["conditions"];
        match t["type"].as_str() {
            Some("Approval") if status_of(cond(tc, "ApprovalRequestApproved")) != "True" => waits
                .push(format!(
                    "approval {} (flotilla approve {run} {stage_name})",
                    t["approvalRequestName"].as_str().unwrap_or("")
                )),
            Some("TimedWait") if status_of(cond(tc, "WaitTimeElapsed")) != "True" => {
                let wait = tasks[k]["waitTime"].as_str().unwrap_or("");
                let since = progressing
                    .and_then(|p| p["lastTransitionTime"].as_str())
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let left = since.zip(parse_duration(wait)).map(|(s, d)| {
                    (s + chrono::Duration::from_std(d).unwrap_or_default() - now)
                        .num_seconds()
                        .max(0)
                });
                waits.push(match left {
                    Some(l) => format!("timer {wait} ({l}s left)"),
                    None => format!("timer {wait}"),
                });
            }
            _ => {}
        }
    }
    waits.join(", ")
}

fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The report as a person reads it.
pub fn render(r: &Report) -> String {
    let mut out = format!("{}\n", r.title);
    let name_w = r
        .lines
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let state_w = r
        .lines
        .iter()
        .map(|l| l.state.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out += &format!(
        "{:name_w$}  {:16}  {:state_w$}  DETAIL\n",
        "NAME", "PROGRESS", "STATE"
    );
    for l in &r.lines {
        let progress = format!("{} {}/{}", bar(l.done, l.total, 8), l.done, l.total);
        let line = format!(
            "{:name_w$}  {:16}  {:state_w$}  {}",
            l.name, progress, l.state, l.detail
        );
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// The report as data (`-o json|yaml`).
pub fn to_value(r: &Report) -> Value {
    json!({
        "title": r.title,
        "outcome": format!("{:?}", r.outcome),
        "items": r.lines.iter().map(|l| json!({"name": l.name, "done": l.done, "total": l.total,
            "state": l.state, "detail": l.detail})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
