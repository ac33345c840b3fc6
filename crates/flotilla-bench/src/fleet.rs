//! `flotilla bench members`: a hub process with N simulated members joined (members and
//! agents in this process, the agents talking to the hub over HTTPS with their own
//! credentials), then the hub's CPU and memory while the fleet only sends heartbeats.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};

use crate::harness::{proc_usage, start_hub};

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
        flotilla_store::Store::memory(),
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

/// A hub process and simulated members (with their agents) in this process.
pub(crate) struct Fleet {
    /// The hub process.
    pub(crate) hub: crate::harness::Hub,
    /// Its admin kubeconfig.
    pub(crate) kubeconfig: std::path::PathBuf,
    /// How long joining (and becoming healthy) took.
    pub(crate) ready_in: Duration,
    /// The members' credentials.
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

/// A hub with `members` simulated members joined and healthy.
pub(crate) async fn start_fleet(members: usize, period: u32) -> anyhow::Result<Fleet> {
    let (hub, kubeconfig) = start_hub("memory").await?;
    let dir = tempfile::tempdir()?;
    let hub_config = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let started = Instant::now();
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    eprintln!("starting and joining {members} simulated members ...");
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
    let mut n = 0;
    let mut agents = Vec::with_capacity(members);
    while let Some(r) = joined.next().await {
        agents.push(r?);
        n += 1;
        if n % 100 == 0 || n == members {
            eprintln!(
                "  {n}/{members} joined ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(joined);
    let admin = flotilla_agent::client_from_kubeconfig(&kubeconfig).await?;
    let mcs: Api<DynamicObject> =
        Api::all_with(admin, &flotilla_api::member::member_cluster_resource());
    loop {
        let list = mcs.list(&ListParams::default()).await?;
        let healthy = list
            .items
            .iter()
            .filter(|m| {
                flotilla_api::conditions::is_true(&m.data["status"]["conditions"], "Healthy")
            })
            .count();
        if healthy == members {
            break;
        }
        eprintln!("  {healthy}/{members} healthy ...");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
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
    let (cpu0, _) =
        proc_usage(hub.pid).ok_or_else(|| anyhow::anyhow!("cannot read the hub's /proc"))?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.window_seconds)).await;
    let (cpu1, rss) =
        proc_usage(hub.pid).ok_or_else(|| anyhow::anyhow!("cannot read the hub's /proc"))?;
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
    let cpu0 = proc_usage(hub.pid).map(|u| u.0);
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
    let cpu = match (cpu0, proc_usage(hub.pid)) {
        (Some(a), Some((b, _))) => b - a,
        _ => 0.0,
    };
    let rss = proc_usage(hub.pid).map_or(0, |u| u.1);
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
