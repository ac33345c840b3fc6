//! `flotilla bench fleet`: KubeFleet's published 1,000-cluster scenarios (and an edge fleet
//! of 10,000) in one command. A hub (a process of its own with `--hub-process`, else a
//! runtime in this process) on the embedded store, N simulated members with their agents in
//! this process, and six phases:
//!
//! 1. join: N members Joined and Healthy; the hub's CPU and RSS idle, heartbeats only;
//! 2. first placement: a PickN-K placement (`workload.rs`), create to Available, repeated;
//! 3. P placements at once, to all Available, with CPU and peak RSS; then one more
//!    placement while they stand, and while 100 of them roll out;
//! 4. hub restart: killed, started on the same store; until every placement is seen
//!    Available again and the hub is idle;
//! 5. 100 rolling updates at once, to all complete;
//! 6. the agent's cost: real `flotilla agent` processes (`agents.rs`), idle and applying.
//!
//! The results (`report.rs`) are a table with the targets of issue 16 and the anchors'
//! published figures, and the same as JSON.

mod agents;
mod report;
mod tracker;
mod workload;

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use serde_json::json;

use crate::fleet::{start_fleet_with, FleetOptions, Probe};
use crate::progress::Progress;
use report::Report;
use tracker::Tracker;
use workload::{config, objects, placement, Applier};

/// Arguments of `flotilla bench fleet`.
#[derive(clap::Args)]
pub struct FleetBenchArgs {
    /// Number of simulated members.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one())]
    members: usize,
    /// Placements created at once in phase 3.
    #[arg(long, default_value_t = 100)]
    placements: usize,
    /// Clusters each placement picks (PickN).
    #[arg(long, default_value_t = 10)]
    clusters_per_placement: usize,
    /// Heartbeat period of every member, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    heartbeat: u32,
    /// Run the hub in a process of its own (its CPU and memory its own); without it the hub
    /// runs on a runtime of its own in this process (its CPU told apart, its memory not).
    #[arg(long)]
    hub_process: bool,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
    /// Repetitions of each single-placement measurement.
    #[arg(long, default_value_t = 10, value_parser = at_least_one())]
    repetitions: usize,
    /// How long the idle hub, and the idle agents, are measured.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    idle_seconds: u64,
    /// Real agent processes measured in phase 6.
    #[arg(long, default_value_t = 3)]
    agents: usize,
    /// The placements' unavailablePeriodSeconds (KubeFleet's default is 60; a namespace and
    /// a ConfigMap cannot be tracked, so each wave of a rollout waits this long).
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    unavailable_period_seconds: u64,
}

fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// Rolling updates at once in phases 3 and 5 (KubeFleet's scenario).
const ROLLOUTS: usize = 100;

/// The scenarios the targets are set for.
struct Scenario {
    /// 1,000 members (KubeFleet's report).
    thousand: bool,
    /// 100 clusters per placement over 1,000 members.
    thousand_by_100: bool,
    /// 1,000 placements of 100 clusters: 100,000 bindings.
    headline: bool,
    /// 10,000 members (the edge fleet).
    edge: bool,
    /// 1,000 clusters per placement over 10,000 members.
    edge_by_1000: bool,
}

impl Scenario {
    fn of(a: &FleetBenchArgs) -> Self {
        let thousand = a.members == 1000;
        let thousand_by_100 = thousand && a.clusters_per_placement == 100;
        let edge = a.members == 10_000;
        Self {
            thousand,
            thousand_by_100,
            headline: thousand_by_100 && a.placements == 1000,
            edge,
            edge_by_1000: edge && a.clusters_per_placement == 1000,
        }
    }
}

/// What every phase works with.
struct Bench<'a> {
    args: &'a FleetBenchArgs,
    crps: Api<DynamicObject>,
    applier: Applier,
    tracker: Tracker,
    report: Report,
}

/// Runs `flotilla bench fleet`.
pub async fn run(args: FleetBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=args.members).contains(&args.clusters_per_placement),
        "--clusters-per-placement must be between 1 and --members ({})",
        args.members
    );
    anyhow::ensure!(args.repetitions > 0, "--repetitions must be at least 1");
    anyhow::ensure!(args.heartbeat > 0, "--heartbeat must be at least 1 second");
    let began = Instant::now();
    let scenario = Scenario::of(&args);
    let mut report = Report::default();
    report.fact("machine", report::machine());
    report.fact(
        "arguments",
        json!({
            "members": args.members, "placements": args.placements,
            "clusters_per_placement": args.clusters_per_placement,
            "heartbeat_seconds": args.heartbeat, "hub_process": args.hub_process,
            "repetitions": args.repetitions, "idle_seconds": args.idle_seconds,
            "agents": args.agents, "unavailable_period_seconds": args.unavailable_period_seconds,
        }),
    );

    // 1. join, and the idle hub.
    let mut fleet = start_fleet_with(&FleetOptions {
        members: args.members,
        heartbeat: args.heartbeat,
        hub_process: args.hub_process,
        store: "redb",
    })
    .await?;
    report.add(
        "join",
        format!("{} members Joined and Healthy", args.members),
        fleet.ready_in.as_secs_f64(),
        "s",
    );
    let (idle_cpu, idle_rss) = idle(fleet.hub.probe(), args.idle_seconds).await?;
    let rss_scope = if fleet.hub.separate() {
        "hub RSS"
    } else {
        "benchmark process RSS (hub in process)"
    };
    report
        .add(
            "idle",
            "hub CPU, heartbeats only",
            idle_cpu,
            "% of one core",
        )
        .target(
            if scenario.edge { 10.0 } else { 2.0 },
            "1,000 or 10,000 members",
            scenario.thousand || scenario.edge,
        )
        .anchor("KubeFleet, 1,000 members: hub agent 3.5 cores + API server 13 cores");
    report
        .add("idle", rss_scope, idle_rss as f64 / 1e6, "MB")
        .target(
            if scenario.edge { 2000.0 } else { 250.0 },
            "1,000 or 10,000 members",
            (scenario.thousand || scenario.edge) && fleet.hub.separate(),
        )
        .anchor("KubeFleet, 1,000 members: hub agent > 8 GB + API server 47 GB");

    let admin = flotilla_agent::client_from_kubeconfig(&fleet.kubeconfig).await?;
    let crps: Api<DynamicObject> =
        Api::all_with(admin.clone(), &flotilla_hub::placement::crp_resource());
    let mut bench = Bench {
        args: &args,
        applier: Applier::new(admin),
        tracker: Tracker::start(crps.clone()).await?,
        crps,
        report,
    };
    let k = args.clusters_per_placement;

    // 2. the first placement, alone on the fleet.
    let times = bench.single("first placement", "first", None).await?;
    let first_target = match (scenario.thousand_by_100, scenario.edge_by_1000) {
        (_, true) => 5.0,
        _ => 1.0,
    };
    percentiles(&mut bench.report, "first placement", k, &times)
        .target(
            first_target,
            "100 of 1,000 or 1,000 of 10,000 clusters",
            scenario.thousand_by_100 || scenario.edge_by_1000,
        )
        .anchor("KubeFleet p90 20 s (100 of 1,000); Karmada p99 ~1 s (100 clusters)");

    // 3. P placements at once, then one more beside them, and beside 100 rolling out.
    let names: Vec<String> = (0..args.placements).map(|i| format!("scale-{i}")).collect();
    let probe = fleet.hub.probe();
    let (took, cpu, peak) = bench.place_all(&names, probe).await?;
    let bindings = args.placements * k;
    bench
        .report
        .add(
            "placements",
            format!(
                "{} placements x {k} clusters ({bindings} bindings) all Available",
                args.placements
            ),
            took.as_secs_f64(),
            "s",
        )
        .target(60.0, "1,000 x 100 over 1,000 members", scenario.headline);
    bench.report.add(
        "placements",
        "hub CPU while placing",
        cpu / took.as_secs_f64() * 100.0,
        "% of one core",
    );
    bench
        .report
        .add(
            "placements",
            format!("{rss_scope}, peak"),
            peak as f64 / 1e6,
            "MB",
        )
        .target(
            2000.0,
            "1,000 x 100 over 1,000 members",
            scenario.headline && fleet.hub.separate(),
        );
    if args.placements > 0 {
        let times = bench.single("one more, standing", "standing", None).await?;
        percentiles(
            &mut bench.report,
            "one more placement beside them",
            k,
            &times,
        )
        .target(2.0, "1,000 x 100 over 1,000 members", scenario.headline)
        .anchor("KubeFleet p90 21 s");
        let rolled = &names[..names.len().min(ROLLOUTS)];
        let edits = Instant::now();
        bench.change(rolled, 1).await?;
        let times = bench
            .single("one more, rolling", "rolling", Some((rolled, "1")))
            .await?;
        percentiles(
            &mut bench.report,
            &format!("one more placement while {} roll out", rolled.len()),
            k,
            &times,
        )
        .target(3.0, "1,000 x 100 over 1,000 members", scenario.headline)
        .anchor("KubeFleet p90 30 s");
        bench.wait_rolled(rolled, "1", "rollouts finish").await?;
        bench.report.add(
            "placements",
            format!("those {} rolling updates complete", rolled.len()),
            edits.elapsed().as_secs_f64(),
            "s",
        );

        // 4. hub restart.
        let (ready, resynced) = bench.restart(&mut fleet, &names, rolled, idle_cpu).await?;
        bench.report.add(
            "restart",
            "killed hub serving again",
            ready.as_secs_f64(),
            "s",
        );
        bench
            .report
            .add(
                "restart",
                "every placement seen Available again and the hub idle",
                resynced.as_secs_f64(),
                "s",
            )
            .target(30.0, "1,000 x 100 over 1,000 members", scenario.headline)
            .anchor("KubeFleet p90 11 min 15 s (1,000 placements, 100,000 bindings)");

        // 5. 100 rolling updates at once.
        let probe = fleet.hub.probe();
        let cpu0 = probe.usage().map_or(0.0, |u| u.0);
        let started = Instant::now();
        bench.change(rolled, 2).await?;
        bench.wait_rolled(rolled, "2", "rolling updates").await?;
        let took = started.elapsed();
        let cpu = probe.usage().map_or(0.0, |u| u.0) - cpu0;
        bench.report.add(
            "rollouts",
            format!(
                "{} rolling updates at once complete (unavailablePeriodSeconds {})",
                rolled.len(),
                args.unavailable_period_seconds
            ),
            took.as_secs_f64(),
            "s",
        );
        bench.report.add(
            "rollouts",
            "hub CPU while rolling out",
            cpu / took.as_secs_f64() * 100.0,
            "% of one core",
        );
    }

    // 6. the agent's own cost.
    if args.agents > 0 {
        let agents = agents::start(args.agents, &fleet.kubeconfig, args.heartbeat).await?;
        let cost = agents
            .measure(
                Duration::from_secs(args.idle_seconds),
                5,
                &bench.applier,
                &bench.tracker,
            )
            .await?;
        let r = &mut bench.report;
        r.add(
            "agent",
            "agent RSS idle (largest)",
            cost.idle_rss as f64 / 1e6,
            "MB",
        )
        .target(20.0, "any fleet", true)
        .anchor("KubeFleet member agent 33-40 MB");
        r.add(
            "agent",
            "agent CPU idle (mean)",
            cost.idle_millicores,
            "millicores",
        )
        .target(1.0, "any fleet", true)
        .anchor("KubeFleet member agent 2-5 millicores");
        r.add(
            "agent",
            format!("agent RSS applying {} changes (peak)", cost.changes),
            cost.applying_rss as f64 / 1e6,
            "MB",
        );
        r.add(
            "agent",
            "agent CPU per change applied (mean)",
            cost.cpu_per_change * 1000.0,
            "ms",
        );
        drop(agents);
    }

    let mut report = std::mem::take(&mut bench.report);
    report.fact("duration_seconds", json!(began.elapsed().as_secs_f64()));
    drop(bench);
    fleet.stop().await;
    println!(
        "flotilla bench fleet: {} members, {} placements x {k} clusters, hub {}; {:.1} min",
        args.members,
        args.placements,
        if args.hub_process {
            "in its own process"
        } else {
            "in this process"
        },
        began.elapsed().as_secs_f64() / 60.0
    );
    print!("{}", report.table());
    let missed = report.missed();
    if missed > 0 {
        println!("{missed} target(s) missed");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())? + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The hub's CPU (% of one core) over `seconds` after 10 s of settling, and its RSS after.
async fn idle(probe: Probe, seconds: u64) -> anyhow::Result<(f64, u64)> {
    let progress = Progress::new("idle", seconds + 10);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress.set(t.elapsed().as_secs().min(10));
    }
    let (cpu0, _) = probe
        .usage()
        .ok_or_else(|| anyhow::anyhow!("cannot read the hub's CPU time"))?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress.set(10 + t0.elapsed().as_secs().min(seconds));
    }
    let (cpu1, rss) = probe
        .usage()
        .ok_or_else(|| anyhow::anyhow!("cannot read the hub's CPU time"))?;
    let pct = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    progress.finish(&format!(
        "hub {pct:.2}% of one core, {:.0} MB",
        rss as f64 / 1e6
    ));
    Ok((pct, rss))
}

/// Adds p50, p90 and p99 rows of `times`; returns the p99 row.
fn percentiles<'r>(
    report: &'r mut Report,
    what: &str,
    k: usize,
    times: &[Duration],
) -> &'r mut report::Row {
    let mut sorted = times.to_vec();
    sorted.sort();
    for (label, p) in [("p50", 0.5), ("p90", 0.9)] {
        report.add(
            "placement",
            format!("{what}, {k} clusters, create to Available, {label}"),
            crate::harness::percentile(&sorted, p).as_secs_f64(),
            "s",
        );
    }
    report.add(
        "placement",
        format!(
            "{what}, {k} clusters, create to Available, p99 of {}",
            times.len()
        ),
        crate::harness::percentile(&sorted, 0.99).as_secs_f64(),
        "s",
    )
}

impl Bench<'_> {
    /// One placement at a time, `--repetitions` times: create to Available on every picked
    /// cluster; each removed (and gone) before the next. With `rolling`, also reports how
    /// many ran while those placements were still rolling out to their index.
    async fn single(
        &mut self,
        phase: &str,
        prefix: &str,
        rolling: Option<(&[String], &str)>,
    ) -> anyhow::Result<Vec<Duration>> {
        let k = self.args.clusters_per_placement;
        let progress = Progress::new(phase, self.args.repetitions as u64);
        let mut times = Vec::new();
        let mut beside_rollouts = 0;
        for r in 0..self.args.repetitions {
            let name = format!("{prefix}-{r}");
            for o in objects(&name, 0) {
                self.applier.apply(&o).await?;
            }
            let started = Instant::now();
            self.applier
                .apply(&placement(&name, k, self.args.unavailable_period_seconds))
                .await?;
            let one = [name.clone()];
            self.tracker
                .wait_for(
                    Duration::from_secs(300),
                    &format!("placement {name} Available"),
                    |t| t.count_done(&one, k, "0") == 1,
                )
                .await?;
            let took = started.elapsed();
            times.push(took);
            if let Some((names, index)) = rolling {
                if self.tracker.count_done(names, k, index) < names.len() {
                    beside_rollouts += 1;
                }
            }
            progress.set(r as u64 + 1);
            progress.note(&format!("last {:.3} s", took.as_secs_f64()));
            self.applier.remove(&name).await?;
            self.tracker
                .wait_for(
                    Duration::from_secs(300),
                    &format!("placement {name} removed"),
                    |t| t.gone(&name),
                )
                .await?;
        }
        let mut sorted = times.clone();
        sorted.sort();
        let mut summary = format!(
            "p50 {:.3} s, p99 {:.3} s",
            crate::harness::percentile(&sorted, 0.5).as_secs_f64(),
            crate::harness::percentile(&sorted, 0.99).as_secs_f64()
        );
        if rolling.is_some() {
            summary += &format!(
                ", {beside_rollouts} of {} while the rollouts ran",
                times.len()
            );
            self.report.fact(
                "repetitions_while_rolling_out",
                json!({"while": beside_rollouts, "of": times.len()}),
            );
        }
        progress.finish(&summary);
        Ok(times)
    }

    /// Places every one of `names` at once: time to all Available, the hub's CPU seconds and
    /// its peak RSS meanwhile.
    async fn place_all(
        &mut self,
        names: &[String],
        probe: Probe,
    ) -> anyhow::Result<(Duration, f64, u64)> {
        let k = self.args.clusters_per_placement;
        let progress = Progress::new("namespaces", names.len() as u64);
        let applier = &self.applier;
        let mut done = 0;
        let mut created = futures::stream::iter(names)
            .map(|n| async move {
                for o in objects(n, 0) {
                    applier.apply(&o).await?;
                }
                anyhow::Ok(())
            })
            .buffer_unordered(16);
        while let Some(r) = created.next().await {
            r?;
            done += 1;
            progress.set(done);
        }
        drop(created);
        progress.finish(&format!("{} namespaces with their objects", names.len()));

        let peak = Peak::start(probe);
        let cpu0 = probe.usage().map_or(0.0, |u| u.0);
        let started = Instant::now();
        let period = self.args.unavailable_period_seconds;
        let progress = Progress::new("placements at once", names.len() as u64);
        progress.message("creating");
        futures::stream::iter(names)
            .map(|n| async move { applier.apply(&placement(n, k, period)).await })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        progress.message("waiting for Available");
        self.tracker
            .wait_for(self.long_wait(), "every placement Available", |t| {
                let n = t.count_done(names, k, "0");
                progress.set(n as u64);
                n == names.len()
            })
            .await?;
        let took = started.elapsed();
        let cpu = probe.usage().map_or(0.0, |u| u.0) - cpu0;
        let peak = peak.stop();
        progress.finish(&format!(
            "{} placements Available, peak {:.0} MB",
            names.len(),
            peak as f64 / 1e6
        ));
        Ok((took, cpu, peak))
    }

    /// Changes every one of `names`' ConfigMap to `version` (a rolling update each).
    async fn change(&self, names: &[String], version: usize) -> anyhow::Result<()> {
        let applier = &self.applier;
        futures::stream::iter(names)
            .map(|n| async move { applier.apply(&config(n, version)).await })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(())
    }

    /// Waits until every one of `names` is Available at resource index `index`.
    async fn wait_rolled(&self, names: &[String], index: &str, what: &str) -> anyhow::Result<()> {
        let k = self.args.clusters_per_placement;
        let progress = Progress::new(what, names.len() as u64);
        self.tracker
            .wait_for(self.long_wait(), what, |t| {
                let n = t.count_done(names, k, index);
                progress.set(n as u64);
                n == names.len()
            })
            .await?;
        progress.finish(&format!(
            "{} placements at resource index {index}",
            names.len()
        ));
        Ok(())
    }

    /// How long a phase over the whole fleet may take before the benchmark gives up: an hour,
    /// or a tenth of a second per binding where there are more (the headline's 100,000
    /// bindings: 2.8 hours), so a slow run is measured rather than cut short.
    fn long_wait(&self) -> Duration {
        let bindings = (self.args.placements * self.args.clusters_per_placement) as u64;
        Duration::from_secs(3600).max(Duration::from_millis(100 * bindings))
    }

    /// Kills the hub and starts it on the same store: (serving again, every placement seen
    /// Available again and the hub idle), both from the kill. Idle: three seconds in a row
    /// under twice the idle CPU of phase 1 (at least 5% of one core).
    async fn restart(
        &mut self,
        fleet: &mut crate::fleet::Fleet,
        names: &[String],
        rolled: &[String],
        idle_cpu: f64,
    ) -> anyhow::Result<(Duration, Duration)> {
        let k = self.args.clusters_per_placement;
        let progress = Progress::new("hub restart", names.len() as u64);
        progress.message("killing the hub");
        let killed = Instant::now();
        let ready = fleet.hub.crash_and_restart().await?;
        progress.message("serving again; reading every placement");
        // Read afresh from the new hub (in pages), not from the watch's memory.
        let rest = &names[rolled.len()..];
        loop {
            let mut done = 0;
            let mut page = kube::api::ListParams::default().limit(100);
            loop {
                let list = self.crps.list(&page).await?;
                for p in &list.items {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let index = if rolled.contains(&name) { "1" } else { "0" };
                    if (rolled.contains(&name) || rest.contains(&name))
                        && tracker::Seen::of(p).done(k, index)
                    {
                        done += 1;
                    }
                }
                match list.metadata.continue_ {
                    Some(c) if !c.is_empty() => page = page.continue_token(&c),
                    _ => break,
                }
            }
            progress.set(done as u64);
            if done == names.len() {
                break;
            }
            anyhow::ensure!(
                killed.elapsed() < self.long_wait(),
                "{done} of {} placements Available {} minutes after the restart",
                names.len(),
                self.long_wait().as_secs() / 60
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        progress.message("waiting for the hub to be idle");
        let probe = fleet.hub.probe();
        let threshold = (2.0 * idle_cpu).max(5.0);
        let mut quiet_since: Option<Instant> = None;
        let mut last = (Instant::now(), probe.usage().map_or(0.0, |u| u.0));
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = (Instant::now(), probe.usage().map_or(0.0, |u| u.0));
            let pct = (now.1 - last.1) / (now.0 - last.0).as_secs_f64() * 100.0;
            quiet_since = if pct < threshold {
                quiet_since.or(Some(last.0))
            } else {
                None
            };
            last = now;
            if quiet_since.is_some_and(|q| q.elapsed() >= Duration::from_secs(3)) {
                break;
            }
            anyhow::ensure!(
                killed.elapsed() < self.long_wait(),
                "the hub was not idle within {} minutes of its restart",
                self.long_wait().as_secs() / 60
            );
        }
        let resynced = quiet_since.map_or(killed.elapsed(), |q| q - killed);
        progress.finish(&format!(
            "serving in {:.1} s, re-synced and idle in {:.1} s",
            ready.as_secs_f64(),
            resynced.as_secs_f64()
        ));
        Ok((ready, resynced))
    }
}

/// The peak RSS of a hub, sampled every 200 ms until stopped.
struct Peak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Peak {
    fn start(probe: Probe) -> Self {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn({
            let peak = peak.clone();
            async move {
                loop {
                    if let Some((_, rss)) = probe.usage() {
                        peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}
