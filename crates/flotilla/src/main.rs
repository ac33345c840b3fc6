//! The `flotilla` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use flotilla_apiserver::ServerConfig;

/// mimalloc instead of the system allocator: the hub and the simulated fleet allocate many
/// small, short-lived JSON values, where glibc's malloc spent up to half of the CPU time
/// (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backup;
mod external;
mod fleet;
mod serve;

use serve::{open_store, serve, EtcdArgs, StoreKind};

/// Flotilla: a multi-cluster Kubernetes fleet manager.
#[derive(Parser)]
#[command(name = "flotilla", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub: a Kubernetes-compatible API server over the fleet's store, and the fleet
    /// controllers.
    Hub(Box<HubArgs>),
    /// Run a simulated member cluster: the same API server with simulated nodes and workloads.
    Member(fleet::MemberArgs),
    /// Run a member agent: join the hub, heartbeat, report the member cluster's properties.
    Agent(fleet::AgentArgs),
    /// Create a MemberCluster on the hub and write the kubeconfig its agent uses.
    Join(fleet::JoinArgs),
    /// Run a hub, N simulated members and their agents in one process (a local fleet).
    Up(fleet::UpArgs),
    /// Fleet and API benchmarks with a latency, throughput and memory report.
    Bench(flotilla_bench::BenchArgs),
    /// Rollouts of placements: status (live with --watch), stop, resume, undo.
    Rollout(flotilla_ctl::RolloutArgs),
    /// Approve a stage of a staged update run (RUN STAGE, or the approval request's name).
    Approve(flotilla_ctl::ApproveArgs),
    /// Cordon a member cluster (KubeFleet's taint) and evict every ClusterResourcePlacement
    /// from it, each within its disruption budget.
    Drain(flotilla_ctl::DrainArgs),
    /// Remove the cordon taint from a member cluster.
    Uncordon(flotilla_ctl::DrainArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct HubArgs {
    #[command(subcommand)]
    action: Option<backup::HubAction>,
    /// Directory for the store, credentials and admin.kubeconfig (required to serve).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Run only the fleet controllers, against the Kubernetes API server of this kubeconfig
    /// (for example a managed control plane), instead of serving Flotilla's own: the fleet CRDs
    /// and an admission webhook are installed there, replicas elect a leader with a Lease.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data_dir", "bind", "store", "event_ttl_seconds"])]
    kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the address the fleet's admission webhook is served on.
    #[arg(
        long,
        default_value = "127.0.0.1:9443",
        value_name = "ADDR:PORT",
        requires = "kubeconfig"
    )]
    webhook_bind: SocketAddr,
    /// With --kubeconfig: the URL the API server calls the webhook at (default
    /// https://WEBHOOK-BIND/validate-fleet).
    #[arg(long, value_name = "URL", requires = "kubeconfig")]
    webhook_url: Option<String>,
    /// Address to serve HTTPS on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "redb")]
    store: StoreKind,
    /// How long Events are kept after they last occurred (kube-apiserver's --event-ttl).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    event_ttl_seconds: u64,
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    fleet: fleet::HubFleetArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A benchmark and the command-line client report for themselves; their in-process
    // agents' and clients' progress lines would bury that.
    let level = match cli.command {
        // The simulated fleet's agents warn of what a benchmark does on purpose (the hub
        // restarted under them), and kube's client of connections the hub dropped.
        Command::Bench(_) => "warn,flotilla_agent=error,kube_client=error",
        Command::Rollout(_) | Command::Approve(_) | Command::Drain(_) | Command::Uncordon(_) => {
            "warn"
        }
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // kube's client logs each failed connection as an error of its own; the
                // command reports it once, with what it was doing.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(format!(
                        "{level},kube_client::client::builder=off"
                    ))
                }),
        )
        .init();
    // An agent waits on its hub and its member nearly all the time: one thread serves it
    // (and each thread would have its own stack and allocator heap: the agent's memory is
    // measured against KubeFleet's, docs/BENCHMARKS.md).
    let mut builder = match cli.command {
        Command::Agent(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let bench = matches!(cli.command, Command::Bench(_));
    let result = runtime.block_on(async {
        match cli.command {
            Command::Hub(args) => run_hub(*args).await.map(|()| 0),
            Command::Member(args) => fleet::run_member(args).await.map(|()| 0),
            Command::Agent(args) => fleet::run_agent(args).await.map(|()| 0),
            Command::Join(args) => fleet::run_join(args).await.map(|()| 0),
            Command::Up(args) => fleet::run_up(args).await.map(|()| 0),
            Command::Bench(args) => flotilla_bench::run(args, shutdown_signal())
                .await
                .map(|()| 0),
            Command::Rollout(args) => Ok(flotilla_ctl::rollout(args).await?),
            Command::Approve(args) => Ok(flotilla_ctl::approve(args).await?),
            Command::Drain(args) => Ok(flotilla_ctl::drain(args).await?),
            Command::Uncordon(args) => Ok(flotilla_ctl::uncordon(args).await?),
        }
    });
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    // A benchmark has cleaned up by now (its hub stopped, its store closed); its runtime is
    // not dropped: that cancels the tasks left one by one (a thousand simulated members'
    // agents), and kube's controllers panic when they find a reconcile task cancelled under
    // them, a panic message after a clean Ctrl-C. Other commands drop theirs: a hub's store
    // closes cleanly when its last task goes.
    if bench {
        std::mem::forget(runtime);
    }
    ExitCode::from(code)
}

async fn run_hub(args: HubArgs) -> anyhow::Result<()> {
    if let Some(action) = args.action {
        return backup::run(action).await;
    }
    if let Some(kubeconfig) = args.kubeconfig {
        if !args.etcd.etcd_endpoints.is_empty() {
            anyhow::bail!("--kubeconfig runs the controllers against another API server, which keeps its own storage; --etcd-endpoints does not apply");
        }
        return external::run(external::ExternalHub {
            kubeconfig,
            webhook_bind: args.webhook_bind,
            webhook_url: args.webhook_url,
            lease: Duration::from_secs(args.etcd.leader_lease_seconds.max(2)),
            config: args.fleet.config(),
        })
        .await;
    }
    let Some(data_dir) = args.data_dir else {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "the following required argument was not provided: --data-dir <DIR>",
            )
            .exit();
    };
    let store = open_store(args.store, &data_dir, &args.etcd).await?;
    let config = ServerConfig {
        event_ttl: Duration::from_secs(args.event_ttl_seconds),
        ..ServerConfig::default()
    };
    let hub_config = args.fleet.config();
    let compaction = match args.store {
        StoreKind::Etcd if args.etcd.etcd_compaction_interval_seconds > 0 => Some(
            Duration::from_secs(args.etcd.etcd_compaction_interval_seconds),
        ),
        _ => None,
    };
    let served = serve(
        &data_dir,
        args.bind,
        store,
        config,
        "flotilla",
        Duration::from_secs(args.etcd.leader_lease_seconds.max(2)),
        |server, creds| async move {
            if let Some(every) = compaction {
                spawn_compactor(&server, every);
            }
            fleet::start_hub(&server, &creds, hub_config).await
        },
    )
    .await?;
    // Who leads, where kubectl shows it: `kubectl get lease -n flotilla-system flotilla-hub`.
    let lease = flotilla_hub::lease::LeaseConfig {
        namespace: flotilla_hub::lease::SYSTEM_NAMESPACE.into(),
        name: flotilla_hub::lease::LEADER_LEASE.into(),
        identity: served.identity.clone(),
        duration: Duration::from_secs(args.etcd.leader_lease_seconds.max(2)),
    };
    let client = served.server.client();
    served.server.spawn_controller("leader-lease", move || {
        flotilla_hub::lease::record(client.clone(), lease.clone())
    });
    tracing::info!(url = %served.url, kubeconfig = %served.kubeconfig.display(), "hub ready");
    eprintln!(
        "flotilla hub ready at {}\n  export KUBECONFIG={}\n  kubectl get namespaces",
        served.url,
        served.kubeconfig.display()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    served.stop().await
}

/// On the leader, compacts etcd's history every `every`, to the revision seen at the previous
/// run, so that watches and lists at any revision from the last interval still work.
fn spawn_compactor(server: &flotilla_apiserver::ApiServer, every: Duration) {
    let store = server.store().clone();
    server.spawn_controller("etcd-compactor", move || {
        let store = store.clone();
        async move {
            let mut previous = store.revision();
            loop {
                tokio::time::sleep(every).await;
                match store.compact(previous).await {
                    Ok(()) => tracing::info!(revision = previous, "compacted etcd history"),
                    Err(e) => tracing::warn!(error = %e, "compacting etcd history failed"),
                }
                previous = store.revision();
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
