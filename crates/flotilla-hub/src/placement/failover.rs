//! Failover and fail-back (pure; beyond KubeFleet). A member that stays unhealthy (no
//! heartbeat, or its API server not ready) past a grace period loses its share of PickN
//! placements to other eligible clusters; PickAll and PickFixed placements report it
//! unavailable. When it recovers nothing moves back, unless the placement asks for fail-back:
//! then each share returns to the cluster it left. Moves go through the rolling update like any
//! scheduling change (`maxSurge` brings the replacement, `maxUnavailable` bounds the removal).
//!
//! Set on the placement with annotations:
//! - `flotilla.dev/failover-after`: the grace period (`5m` by default, KubeFleet's duration
//!   form), or `off`;
//! - `flotilla.dev/failback: "true"`: move back on recovery.
//!
//! The hub records what moved where in `flotilla.dev/failed-over` (a JSON object, failed
//! cluster to replacement), so that fail-back knows where each share came from.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flotilla_api::placement::staged::parse_duration;
use flotilla_scheduler::{Cluster, ClusterState};
use kube::api::DynamicObject;
use kube::ResourceExt;

/// The grace period annotation.
pub const FAILOVER_AFTER: &str = "flotilla.dev/failover-after";
/// The fail-back annotation.
pub const FAILBACK: &str = "flotilla.dev/failback";
/// The record of shares moved: failed cluster to replacement.
pub const FAILED_OVER: &str = "flotilla.dev/failed-over";

/// The grace period by default.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(300);

/// A placement's failover settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The grace period; `None`: failover is off.
    pub after: Option<Duration>,
    /// Whether shares move back on recovery.
    pub back: bool,
}

impl Settings {
    /// The settings a placement's annotations give (an unreadable period: the default).
    pub fn of(p: &DynamicObject) -> Self {
        let a = p.annotations();
        let after = match a.get(FAILOVER_AFTER).map(String::as_str) {
            Some("off") => None,
            Some(s) => Some(parse_duration(s).unwrap_or(DEFAULT_AFTER)),
            None => Some(DEFAULT_AFTER),
        };
        Settings {
            after,
            back: a.get(FAILBACK).is_some_and(|v| v == "true"),
        }
    }
}

/// The record of moved shares a placement carries.
pub fn record_of(p: &DynamicObject) -> BTreeMap<String, String> {
    p.annotations()
        .get(FAILED_OVER)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// How long until `c` has been unhealthy for `after` (zero: it has); `None` when it is not
/// unhealthy.
pub fn unhealthy_for(c: &Cluster, after: Duration, now: DateTime<Utc>) -> Option<Duration> {
    if c.state != ClusterState::Unhealthy {
        return None;
    }
    let since = c
        .unhealthy_since
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(now, |t| t.with_timezone(&Utc));
    let due = since + chrono::Duration::from_std(after).unwrap_or_default();
    Some((due - now).to_std().unwrap_or(Duration::ZERO))
}

/// What failover changes in a PickN placement's scheduling input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Adjusted {
    /// The clusters the scheduler should keep.
    pub placed: BTreeSet<String>,
    /// Clusters that lose their share now (unhealthy past the grace period).
    pub failing: Vec<String>,
    /// Shares that move back: (recovered cluster, its replacement).
    pub returning: Vec<(String, String)>,
    /// When a placed cluster's grace period ends.
    pub requeue: Option<Duration>,
}

/// Adjusts what a PickN placement keeps: placed clusters unhealthy past the grace period drop
/// out (also while their binding waits to go); with fail-back, a recovered cluster takes its
/// share back from the replacement recorded in `record`.
pub fn adjust(
    placed: &BTreeSet<String>,
    clusters: &[Cluster],
    record: &BTreeMap<String, String>,
    settings: Settings,
    now: DateTime<Utc>,
) -> Adjusted {
    let mut out = Adjusted {
        placed: placed.clone(),
        ..Adjusted::default()
    };
    let Some(after) = settings.after else {
        return out;
    };
    let by_name: BTreeMap<&str, &Cluster> = clusters.iter().map(|c| (c.name.as_str(), c)).collect();
    for name in placed {
        let Some(c) = by_name.get(name.as_str()) else {
            continue;
        };
        match unhealthy_for(c, after, now) {
            Some(left) if left.is_zero() => {
                out.placed.remove(name);
                out.failing.push(name.clone());
            }
            Some(left) => out.requeue = Some(out.requeue.map_or(left, |r| r.min(left))),
            None => {}
        }
    }
    if settings.back {
        for (from, to) in record {
            let recovered = by_name
                .get(from.as_str())
                .is_some_and(|c| c.state == ClusterState::Eligible);
            if recovered && out.placed.contains(to) && !out.placed.contains(from) {
                out.placed.remove(to);
                out.placed.insert(from.clone());
                out.returning.push((from.clone(), to.clone()));
            }
        }
    }
    out
}

/// The record after a decision: each cluster failing now is paired with a newly picked
/// cluster (in name order); shares that went back are forgotten; so are clusters that are
/// placed again.
pub fn update_record(
    record: &BTreeMap<String, String>,
    adjusted: &Adjusted,
    before: &BTreeSet<String>,
    selected: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut out = record.clone();
    for (from, _) in &adjusted.returning {
        out.remove(from);
    }
    let taken: BTreeSet<String> = out.values().cloned().collect();
    let fresh_list: Vec<String> = selected
        .iter()
        .filter(|c| !before.contains(*c) && !taken.contains(*c))
        .cloned()
        .collect();
    let mut fresh = fresh_list.into_iter();
    for from in &adjusted.failing {
        if out.contains_key(from) {
            continue;
        }
        if let Some(to) = fresh.next() {
            out.insert(from.clone(), to);
        }
    }
    out.retain(|from, to| !selected.contains(from) && selected.contains(to));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn cluster(name: &str, unhealthy_since: Option<i64>) -> Cluster {
        let mut c = Cluster::new(name);
        if let Some(s) = unhealthy_since {
            c.state = ClusterState::Unhealthy;
            c.unhealthy_since = Some(flotilla_api::conditions::timestamp(at(s)));
        }
        c
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_cluster_unhealthy_past_the_grace_period_loses_its_share() {
        let on = Settings {
            after: Some(Duration::from_secs(300)),
            back: false,
        };
        let clusters = [
            cluster("a", Some(0)),
            cluster("b", None),
            cluster("c", None),
        ];
        let placed = set(&["a", "b"]);
        // Within the grace period: it keeps it; look again when the period ends.
        let adj = adjust(&placed, &clusters, &BTreeMap::new(), on, at(120));
        assert_eq!(adj.placed, placed);
        assert_eq!(adj.requeue, Some(Duration::from_secs(180)));
        // Past it: it drops out; the record pairs it with the newly picked cluster.
        let adj = adjust(&placed, &clusters, &BTreeMap::new(), on, at(300));
        assert_eq!(adj.placed, set(&["b"]));
        assert_eq!(adj.failing, ["a"]);
        let record = update_record(&BTreeMap::new(), &adj, &placed, &set(&["b", "c"]));
        assert_eq!(record, BTreeMap::from([("a".into(), "c".into())]));
        // Off: nothing moves.
        let off = Settings {
            after: None,
            back: false,
        };
        assert_eq!(
            adjust(&placed, &clusters, &BTreeMap::new(), off, at(9999)).placed,
            placed
        );
    }

    #[test]
    fn a_recovered_cluster_takes_its_share_back_only_with_failback() {
        let record = BTreeMap::from([("a".to_string(), "c".to_string())]);
        let clusters = [cluster("a", None), cluster("b", None), cluster("c", None)];
        let placed = set(&["b", "c"]);
        let settings = |back| Settings {
            after: Some(Duration::from_secs(300)),
            back,
        };
        let adj = adjust(&placed, &clusters, &record, settings(false), at(0));
        assert_eq!(adj.placed, placed, "no fail-back: nothing moves back");
        let adj = adjust(&placed, &clusters, &record, settings(true), at(0));
        assert_eq!(adj.placed, set(&["a", "b"]));
        assert_eq!(adj.returning, [("a".to_string(), "c".to_string())]);
        assert!(update_record(&record, &adj, &placed, &set(&["a", "b"])).is_empty());
        // Still unhealthy: it stays away.
        let sick = [
            cluster("a", Some(0)),
            cluster("b", None),
            cluster("c", None),
        ];
        let adj = adjust(&placed, &sick, &record, settings(true), at(10));
        assert_eq!(adj.placed, placed);
    }

    #[test]
    fn settings_read_from_annotations() {
        let p = |a: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "X",
                "metadata": {"name": "p", "annotations": a}}))
            .unwrap()
        };
        assert_eq!(
            Settings::of(&p(serde_json::json!({}))),
            Settings {
                after: Some(DEFAULT_AFTER),
                back: false
            }
        );
        assert_eq!(
            Settings::of(&p(
                serde_json::json!({FAILOVER_AFTER: "30s", FAILBACK: "true"})
            )),
            Settings {
                after: Some(Duration::from_secs(30)),
                back: true
            }
        );
        assert_eq!(
            Settings::of(&p(serde_json::json!({FAILOVER_AFTER: "off"}))).after,
            None
        );
        let rec = p(serde_json::json!({FAILED_OVER: "{\"a\":\"c\"}"}));
        assert_eq!(record_of(&rec)["a"], "c");
    }
}
