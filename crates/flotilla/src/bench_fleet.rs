//! `flotilla bench members`: a hub process with N simulated members joined (members and
//! agents in this process, the agents talking to the hub over HTTPS with their own
//! credentials), then the hub's CPU and memory while the fleet only sends heartbeats.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};

use crate::bench::{proc_usage, start_hub};

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

pub async fn run(args: MembersBenchArgs) -> anyhow::Result<()> {
    let (hub, kubeconfig) = start_hub("memory").await?;
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    eprintln!(
        "starting and joining {} simulated members ...",
        args.members
    );
    let mut joined = futures::stream::iter(1..=args.members)
        .map(|k| {
            let kubeconfig = kubeconfig.clone();
            let out = dir.path().join(format!("member-{k}.kubeconfig"));
            let period = args.heartbeat_period_seconds;
            async move {
                let member = start_member(k).await?;
                let name = format!("member-{k}");
                crate::fleet::join(
                    &kubeconfig,
                    &name,
                    crate::fleet::member_labels(k),
                    period,
                    &out,
                )
                .await?;
                let hub = crate::serve::client_from_kubeconfig(&out).await?;
                let agent = flotilla_agent::Agent { name, hub, member };
                tokio::spawn(agent.run(std::future::pending()));
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16);
    let mut n = 0;
    while let Some(r) = joined.next().await {
        r?;
        n += 1;
        if n % 100 == 0 || n == args.members {
            eprintln!(
                "  {n}/{} joined ({:.1}s)",
                args.members,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let admin = crate::serve::client_from_kubeconfig(&kubeconfig).await?;
    let mcs: Api<DynamicObject> =
        Api::all_with(admin, &flotilla_hub::members::member_cluster_resource());
    loop {
        let list = mcs.list(&ListParams::default()).await?;
        let healthy = list
            .items
            .iter()
            .filter(|m| {
                flotilla_api::conditions::is_true(&m.data["status"]["conditions"], "Healthy")
            })
            .count();
        if healthy == args.members {
            break;
        }
        eprintln!("  {healthy}/{} healthy ...", args.members);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let ready_in = started.elapsed();
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
    Ok(())
}
