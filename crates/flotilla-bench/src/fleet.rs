//! `flotilla bench members`: a hub process with N simulated members joined (members and
//! agents in this process, the agents talking to the hub over HTTPS with their own
//! credentials), then the hub's CPU and memory while the fleet only sends heartbeats.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};

use crate::harness::proc_usage;
use crate::progress::Progress;

/// Arguments of `flotilla bench members`.
#[derive(clap::Args)]
pub struct MembersBenchArgs {
    /// Number of simulated members.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Heartbeat period of every member.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    heartbeat_period_seconds: u32,
    /// How long to measure the idle hub.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    window_seconds: u64,
}

async fn start_member(k: usize) -> anyhow::Result<kube::Client> {
    let server = flotilla_apiserver::ApiServer::new(
        flotilla_sim::memory_store(),
        flotilla_apiserver::ServerConfig::default(),
    );
    server
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("member {k}: {e}"))?;
    let sim = flotilla_sim::SimConfig {
        name: format!("member-{k}"),
        ..Default::default()
    };
    flotilla_sim::start(&server, sim).await?;
    Ok(server.client())
}

/// The hub of a benchmark's fleet: a process of its own, or a runtime in this process.
pub(crate) enum FleetHub {
    /// `flotilla hub` in a process of its own: its CPU and memory are its own.
    Process(crate::harness::Hub),
    /// A hub on its own runtime in this process: its CPU is told apart, its memory is not.
    InProcess(crate::inproc::InProcessHub),
}

impl FleetHub {
    /// Its admin kubeconfig.
    pub(crate) fn kubeconfig(&self) -> std::path::PathBuf {
        match self {
            FleetHub::Process(h) => h.kubeconfig(0),
            FleetHub::InProcess(h) => h.kubeconfig(),
        }
    }

    /// (CPU seconds so far, RSS bytes): the hub's own, or with an in-process hub its threads'
    /// CPU and the whole process's RSS.
    pub(crate) fn usage(&self) -> Option<(f64, u64)> {
        self.probe().usage()
    }

    /// What reads its usage, for a task of its own (until the hub restarts).
    pub(crate) fn probe(&self) -> Probe {
        match self {
            FleetHub::Process(h) => Probe::Pid(h.pid),
            FleetHub::InProcess(_) => Probe::InProcess,
        }
    }

    /// Whether its RSS is its own (a process of its own).
    pub(crate) fn separate(&self) -> bool {
        matches!(self, FleetHub::Process(_))
    }

    /// Kills it (SIGKILL, or an in-process hub's runtime dropped) and starts it again on the
    /// same store and address; returns how long the new one took to serve.
    pub(crate) async fn crash_and_restart(&mut self) -> anyhow::Result<Duration> {
        match self {
            FleetHub::Process(h) => h.kill_and_restart().await,
            FleetHub::InProcess(h) => h.crash_and_restart().await,
        }
    }
}

/// Reads a hub's CPU time and RSS.
#[derive(Clone, Copy)]
pub(crate) enum Probe {
    Pid(u32),
    InProcess,
}

impl Probe {
    /// (CPU seconds so far, RSS bytes), as [`FleetHub::usage`].
    pub(crate) fn usage(self) -> Option<(f64, u64)> {
        match self {
            Probe::Pid(pid) => proc_usage(pid),
            Probe::InProcess => Some((
                crate::inproc::InProcessHub::cpu_seconds(),
                proc_usage(std::process::id())?.1,
            )),
        }
    }
}

/// How a fleet is made.
pub(crate) struct FleetOptions {
    pub(crate) members: usize,
    /// Heartbeat period of every member, in seconds.
    pub(crate) heartbeat: u32,
    /// The hub in a process of its own (else on a runtime in this one).
    pub(crate) hub_process: bool,
    /// The hub's store: `memory` or `redb` (a hub that is restarted needs `redb`).
    pub(crate) store: &'static str,
}

/// A hub and simulated members (with their agents) in this process.
pub(crate) struct Fleet {
    /// The hub.
    pub(crate) hub: FleetHub,
    /// Its admin kubeconfig.
    pub(crate) kubeconfig: std::path::PathBuf,
    /// How long joining (and becoming healthy) took.
    pub(crate) ready_in: Duration,
    /// The members' credentials, and an in-process hub's store.
    _dir: tempfile::TempDir,
    stop: tokio::sync::broadcast::Sender<()>,
    agents: Vec<tokio::task::JoinHandle<Result<(), flotilla_agent::Error>>>,
}

impl Fleet {
    /// Stops the agents first, then the hub: nothing reports a hub that went away.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(());
        for a in std::mem::take(&mut self.agents) {
            let _ = a.await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // An early return (an error): the agents are told to stop as the hub goes.
        let _ = self.stop.send(());
    }
}

/// How many MemberClusters named as `named` says are Healthy.
pub(crate) async fn healthy_members(
    admin: &kube::Client,
    named: impl Fn(&str) -> bool,
) -> anyhow::Result<usize> {
    let mcs: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &flotilla_api::member::member_cluster_resource(),
    );
    let list = mcs.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|m| {
            m.metadata.name.as_deref().is_some_and(&named)
                && flotilla_api::conditions::is_true(&m.data["status"]["conditions"], "Healthy")
        })
        .count())
}

/// A hub process on the memory store with `members` simulated members joined and healthy.
pub(crate) async fn start_fleet(members: usize, period: u32) -> anyhow::Result<Fleet> {
    start_fleet_with(&FleetOptions {
        members,
        heartbeat: period,
        hub_process: true,
        store: "memory",
    })
    .await
}

/// A hub with simulated members joined and healthy, as `options` say.
pub(crate) async fn start_fleet_with(options: &FleetOptions) -> anyhow::Result<Fleet> {
    let members = options.members;
    let dir = tempfile::tempdir()?;
    let hub = if options.hub_process {
        FleetHub::Process(crate::harness::start_hubs(options.store, 1, &[]).await?)
    } else {
        let addr = "127.0.0.1:0".parse()?;
        FleetHub::InProcess(
            crate::inproc::InProcessHub::start(&dir.path().join("hub"), addr).await?,
        )
    };
    let kubeconfig = hub.kubeconfig();
    let hub_config = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let started = Instant::now();
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let progress = Progress::new("join", members as u64);
    let period = options.heartbeat;
    let mut joined = futures::stream::iter(1..=members)
        .map(|k| {
            let hub_config = hub_config.clone();
            let out = dir.path().join(format!("member-{k}.kubeconfig"));
            let mut stopped = stop.subscribe();
            async move {
                let member = start_member(k).await?;
                let name = format!("member-{k}");
                let request = flotilla_agent::join::JoinRequest {
                    name: &name,
                    labels: flotilla_sim::member_labels(k),
                    heartbeat_period_seconds: period,
                };
                let text = flotilla_agent::join::join(&hub_config, &request).await?;
                std::fs::write(&out, text)?;
                let hub = flotilla_agent::client_from_kubeconfig(&out).await?;
                let agent = flotilla_agent::Agent { name, hub, member };
                anyhow::Ok(tokio::spawn(agent.run(async move {
                    let _ = stopped.recv().await;
                })))
            }
        })
        .buffer_unordered(16);
    let mut agents = Vec::with_capacity(members);
    while let Some(r) = joined.next().await {
        agents.push(r?);
        progress.set(agents.len() as u64);
    }
    drop(joined);
    progress.message("waiting for every member to be Healthy");
    let admin = flotilla_agent::client_from_kubeconfig(&kubeconfig).await?;
    loop {
        let healthy = healthy_members(&admin, |_| true).await?;
        if healthy == members {
            break;
        }
        progress.message(&format!("{healthy}/{members} Healthy"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    progress.finish(&format!("{members} members joined and Healthy"));
    Ok(Fleet {
        hub,
        kubeconfig,
        ready_in: started.elapsed(),
        _dir: dir,
        stop,
        agents,
    })
}

pub async fn run(args: MembersBenchArgs) -> anyhow::Result<()> {
    let fleet = start_fleet(args.members, args.heartbeat_period_seconds).await?;
    let (hub, ready_in) = (&fleet.hub, fleet.ready_in);
    eprintln!(
        "all {} members joined and healthy in {:.1}s; settling 10s, then measuring for {}s ...",
        args.members,
        ready_in.as_secs_f64(),
        args.window_seconds
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu0, _) = hub
        .usage()
        .ok_or_else(|| anyhow::anyhow!("cannot read the hub's /proc"))?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.window_seconds)).await;
    let (cpu1, rss) = hub
        .usage()
        .ok_or_else(|| anyhow::anyhow!("cannot read the hub's /proc"))?;
    let secs = t0.elapsed().as_secs_f64();
    println!("members: {}", args.members);
    println!("heartbeat period: {}s", args.heartbeat_period_seconds);
    println!("join + healthy: {:.1}s", ready_in.as_secs_f64());
    println!(
        "hub CPU while idle (heartbeats only): {:.2}% of one core ({:.2}s CPU over {:.0}s)",
        100.0 * (cpu1 - cpu0) / secs,
        cpu1 - cpu0,
        secs
    );
    println!("hub RSS: {:.1} MB", rss as f64 / 1e6);
    fleet.stop().await;
    Ok(())
}

/// Arguments of `flotilla bench placement`.
#[derive(clap::Args)]
pub struct PlacementBenchArgs {
    /// Number of simulated members.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Clusters each placement picks (PickN).
    #[arg(long, default_value_t = 100)]
    pick: u32,
    /// Placements measured, one after the other (each deleted, and its Works gone, before the
    /// next).
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

/// One PickN placement at a time over a fleet of simulated members: the time from creating it
/// to its Available condition being True (every picked member applied the namespace, a
/// ConfigMap and a one-replica Deployment, and the Deployment is available there). Each
/// placement is then deleted and its Works waited out, so every run measures one placement
/// on a fleet that is otherwise idle (heartbeats aside).
pub async fn run_placement(args: PlacementBenchArgs) -> anyhow::Result<()> {
    use kube::api::PostParams;
    use serde_json::json;
    let fleet = start_fleet(args.members, 60).await?;
    let (hub, ready_in) = (&fleet.hub, fleet.ready_in);
    let admin = flotilla_agent::client_from_kubeconfig(&fleet.kubeconfig).await?;
    let crps: Api<DynamicObject> =
        Api::all_with(admin.clone(), &flotilla_hub::placement::crp_resource());
    let mut times = Vec::new();
    let cpu0 = hub.usage().map(|u| u.0);
    for run in 0..args.runs {
        let ns = format!("bench-{run}");
        let objects = [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns}, "data": {"run": run.to_string()}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        ];
        for o in objects {
            crate::harness::apply(&admin, &o).await?;
        }
        let crp = json!({"apiVersion": "placement.kubernetes-fleet.io/v1", "kind": "ClusterResourcePlacement",
            "metadata": {"name": ns},
            "spec": {"resourceSelectors": [{"group": "", "version": "v1", "kind": "Namespace", "name": ns}],
                "policy": {"placementType": "PickN", "numberOfClusters": args.pick}}});
        let started = Instant::now();
        crps.create(&PostParams::default(), &serde_json::from_value(crp)?)
            .await?;
        loop {
            let p = crps.get(&ns).await?;
            let available = flotilla_api::conditions::find(
                &p.data["status"]["conditions"],
                "ClusterResourcePlacementAvailable",
            )
            .is_some_and(|c| {
                c["status"] == "True" && c["observedGeneration"] == json!(p.metadata.generation)
            });
            let placed = p.data["status"]["placementStatuses"]
                .as_array()
                .map_or(0, Vec::len);
            if available && placed == args.pick as usize {
                break;
            }
            if started.elapsed() > Duration::from_secs(300) {
                anyhow::bail!("placement {ns} did not become available within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        eprintln!(
            "  run {}/{}: Available on {} clusters in {:.3} s",
            run + 1,
            args.runs,
            args.pick,
            took.as_secs_f64()
        );
        times.push(took);
        // Remove it; the next run starts once its Works are gone and the members settled.
        crps.delete(&ns, &Default::default()).await?;
        let ns_api: Api<DynamicObject> = Api::all_with(
            admin.clone(),
            &kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
        );
        ns_api.delete(&ns, &Default::default()).await?;
        let works: Api<DynamicObject> =
            Api::all_with(admin.clone(), &flotilla_api::work::work_resource());
        let parent = format!("{}={ns}", flotilla_api::placement::label::PARENT_CRP);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !works
            .list(&kube::api::ListParams::default().labels(&parent))
            .await?
            .items
            .is_empty()
        {
            if Instant::now() > deadline {
                anyhow::bail!("the Works of {ns} were not removed within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let cpu = match (cpu0, hub.usage()) {
        (Some(a), Some((b, _))) => b - a,
        _ => 0.0,
    };
    let rss = hub.usage().map_or(0, |u| u.1);
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64();
    println!(
        "members: {} (joined and healthy in {:.1} s)",
        args.members,
        ready_in.as_secs_f64()
    );
    println!(
        "PickN {} placement, create -> Available on all {}: p50 {:.3} s, p99 {:.3} s, max {:.3} s over {} runs",
        args.pick, args.pick, at(0.5), at(0.99), times.last().map_or(0.0, |t| t.as_secs_f64()), times.len()
    );
    println!(
        "hub CPU during the runs: {cpu:.1} s; hub RSS after: {:.0} MB",
        rss as f64 / 1e6
    );
    fleet.stop().await;
    Ok(())
}
