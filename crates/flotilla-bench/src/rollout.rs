//! `flotilla bench staged` and `flotilla bench rolling`: rollouts over a fleet of simulated
//! members (in this process, each with its agent) joined to a hub process.
//!
//! - staged: a placement with the External strategy over N members, a 3-stage strategy
//!   (10% of the members, then 40%, then the rest; each stage 50% at a time, no waits) and R
//!   staged update runs one after the other, each releasing a new resource snapshot: the time
//!   from a run's start to its Succeeded condition (KubeFleet reports p90 96 s for a 3-stage run
//!   over 100 clusters on a 2 x 16-core hub).
//! - rolling: P placements, each PickN K over N members, placed; then every placement's
//!   resources change at once: the time until every placement is Available with the new
//!   snapshot, with the hub's CPU and memory.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::fleet::start_fleet;
use crate::harness::apply;

/// Arguments of `flotilla bench staged`.
#[derive(clap::Args)]
pub struct StagedBenchArgs {
    /// Number of simulated members.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Runs measured, one after the other.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// Arguments of `flotilla bench rolling`.
#[derive(clap::Args)]
pub struct RollingBenchArgs {
    /// Number of simulated members.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Placements updated at once.
    #[arg(long, default_value_t = 100)]
    placements: usize,
    /// Clusters each placement picks (PickN).
    #[arg(long, default_value_t = 100)]
    pick: u32,
    /// The placements' unavailablePeriodSeconds (KubeFleet's default is 60; a namespace and a
    /// ConfigMap cannot be tracked, so each wave waits this long).
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    unavailable_period_seconds: u64,
}

fn namespace_and_config(ns: &str, version: usize) -> [Value; 2] {
    [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns},
            "data": {"version": version.to_string()}}),
    ]
}

fn percentile(times: &mut [Duration], p: f64) -> f64 {
    times.sort();
    times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64()
}

/// Runs `flotilla bench staged`.
pub async fn run_staged(args: StagedBenchArgs) -> anyhow::Result<()> {
    let fleet = start_fleet(args.members, 60).await?;
    let (hub, ready_in) = (&fleet.hub, fleet.ready_in);
    let admin = flotilla_agent::client_from_kubeconfig(&fleet.kubeconfig).await?;
    // Stages by label: the first 10% of the members, the next 40%, the rest.
    let members: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &flotilla_api::member::member_cluster_resource(),
    );
    for k in 1..=args.members {
        let stage = if k * 10 <= args.members {
            "canary"
        } else if k * 2 <= args.members {
            "early"
        } else {
            "rest"
        };
        members
            .patch(
                &format!("member-{k}"),
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"bench-stage": stage}}})),
            )
            .await?;
    }
    let ns = "staged-bench";
    for o in namespace_and_config(ns, 0) {
        apply(&admin, &o).await?;
    }
    let stage = |name: &str| {
        json!({"name": name, "labelSelector": {"matchLabels": {"bench-stage": name}},
            "maxConcurrency": "50%"})
    };
    for o in [
        json!({"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterStagedUpdateStrategy",
            "metadata": {"name": "three-stages"},
            "spec": {"stages": [stage("canary"), stage("early"), stage("rest")]}}),
        json!({"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterResourcePlacement",
            "metadata": {"name": ns},
            "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": ns}],
                "strategy": {"type": "External"}}}),
    ] {
        apply(&admin, &o).await?;
    }
    let runs: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &flotilla_hub::placement::Scope::Cluster.update_run(),
    );
    let snapshots: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &flotilla_hub::placement::resource_snapshot_resource(),
    );
    let cpu0 = hub.usage().map(|u| u.0);
    let mut times = Vec::new();
    for run in 0..args.runs {
        // A new version to release (the first run releases the first snapshot).
        if run > 0 {
            apply(&admin, &namespace_and_config(ns, run)[1]).await?;
        }
        let snapshot = format!("{ns}-{run}-snapshot");
        let deadline = Instant::now() + Duration::from_secs(60);
        while snapshots.get_opt(&snapshot).await?.is_none() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no snapshot {snapshot} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let name = format!("release-{run}");
        let started = Instant::now();
        runs.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterStagedUpdateRun",
                "metadata": {"name": name},
                "spec": {"placementName": ns, "resourceSnapshotIndex": run.to_string(),
                    "stagedRolloutStrategyName": "three-stages", "state": "Run"}}))?,
        )
        .await?;
        loop {
            let r = runs.get(&name).await?;
            let done = flotilla_api::conditions::find(&r.data["status"]["conditions"], "Succeeded");
            match done.and_then(|c| c["status"].as_str()) {
                Some("True") => break,
                Some("False") => anyhow::bail!("run {name} failed: {}", done.unwrap()["message"]),
                _ => {}
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "run {name} did not finish within 600 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = started.elapsed();
        eprintln!(
            "  run {}/{}: 3 stages over {} members in {:.2} s",
            run + 1,
            args.runs,
            args.members,
            took.as_secs_f64()
        );
        times.push(took);
    }
    let cpu = match (cpu0, hub.usage()) {
        (Some(a), Some((b, _))) => b - a,
        _ => 0.0,
    };
    let rss = hub.usage().map_or(0, |u| u.1);
    println!(
        "members: {} (joined and healthy in {:.1} s)",
        args.members,
        ready_in.as_secs_f64()
    );
    println!(
        "3-stage run (10% / 40% / rest, 50% in-stage concurrency, no waits), start -> Succeeded: p50 {:.2} s, p90 {:.2} s, max {:.2} s over {} runs",
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.9),
        percentile(&mut times, 1.0),
        times.len()
    );
    println!(
        "hub CPU during the runs: {cpu:.1} s; hub RSS after: {:.0} MB",
        rss as f64 / 1e6
    );
    fleet.stop().await;
    Ok(())
}

/// Whether every placement is Available with the snapshot `index`.
async fn all_at(crps: &Api<DynamicObject>, names: &[String], index: &str) -> anyhow::Result<usize> {
    let list = crps.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|p| names.iter().any(|n| p.metadata.name.as_deref() == Some(n)))
        .filter(|p| {
            p.data["status"]["observedResourceIndex"] == index
                && flotilla_api::conditions::find(
                    &p.data["status"]["conditions"],
                    "ClusterResourcePlacementAvailable",
                )
                .is_some_and(|c| {
                    c["status"] == "True" && c["observedGeneration"] == json!(p.metadata.generation)
                })
        })
        .count())
}

/// Runs `flotilla bench rolling`.
pub async fn run_rolling(args: RollingBenchArgs) -> anyhow::Result<()> {
    let fleet = start_fleet(args.members, 60).await?;
    let (hub, ready_in) = (&fleet.hub, fleet.ready_in);
    let admin = flotilla_agent::client_from_kubeconfig(&fleet.kubeconfig).await?;
    let crps: Api<DynamicObject> =
        Api::all_with(admin.clone(), &flotilla_hub::placement::crp_resource());
    let names: Vec<String> = (0..args.placements).map(|i| format!("roll-{i}")).collect();
    eprintln!(
        "placing {} placements of PickN {} ...",
        args.placements, args.pick
    );
    let placed = Instant::now();
    futures::stream::iter(names.iter())
        .map(|ns| {
            let admin = admin.clone();
            let (pick, period) = (args.pick, args.unavailable_period_seconds);
            async move {
                for o in namespace_and_config(ns, 0) {
                    apply(&admin, &o).await?;
                }
                apply(
                    &admin,
                    &json!({"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterResourcePlacement",
                        "metadata": {"name": ns},
                        "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": ns}],
                            "policy": {"placementType": "PickN", "numberOfClusters": pick},
                            "strategy": {"type": "RollingUpdate",
                                "rollingUpdate": {"unavailablePeriodSeconds": period}}}}),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    loop {
        let n = all_at(&crps, &names, "0").await?;
        if n == names.len() {
            break;
        }
        anyhow::ensure!(
            placed.elapsed() < Duration::from_secs(1800),
            "the placements were not Available within 30 minutes ({n} were)"
        );
        eprintln!("  {n}/{} placed ...", names.len());
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!(
        "placed in {:.1} s; settling 10 s, then updating every placement's resources at once ...",
        placed.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu0 = hub.usage().map(|u| u.0);
    let started = Instant::now();
    futures::stream::iter(names.iter())
        .map(|ns| {
            let admin = admin.clone();
            async move { apply(&admin, &namespace_and_config(ns, 1)[1]).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let updated = started.elapsed();
    loop {
        let n = all_at(&crps, &names, "1").await?;
        if n == names.len() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the rolling updates did not complete within an hour ({n} did)"
        );
        eprintln!(
            "  {n}/{} rolled out ({:.0} s) ...",
            names.len(),
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let took = started.elapsed();
    let cpu = match (cpu0, hub.usage()) {
        (Some(a), Some((b, _))) => b - a,
        _ => 0.0,
    };
    let rss = hub.usage().map_or(0, |u| u.1);
    println!(
        "members: {} (joined and healthy in {:.1} s)",
        args.members,
        ready_in.as_secs_f64()
    );
    println!(
        "{} rolling updates of PickN {} placements at once (maxUnavailable and maxSurge 25%, unavailablePeriodSeconds {}): all {} edits in {:.1} s, all Available with the new snapshot in {:.1} s",
        args.placements,
        args.pick,
        args.unavailable_period_seconds,
        args.placements,
        updated.as_secs_f64(),
        took.as_secs_f64()
    );
    println!(
        "hub CPU during the rollout: {cpu:.1} s ({:.0}% of one core); hub RSS after: {:.0} MB",
        100.0 * cpu / took.as_secs_f64(),
        rss as f64 / 1e6
    );
    fleet.stop().await;
    Ok(())
}
