//! The `flotilla` binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use flotilla_apiserver::{ApiServer, Credentials, ServerConfig};
use flotilla_store::{RedbBackend, Store, StoreConfig};

mod bench;

/// Flotilla: a multi-cluster Kubernetes fleet manager.
#[derive(Parser)]
#[command(name = "flotilla", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub: a Kubernetes-compatible API server over the fleet's store.
    Hub(HubArgs),
    /// Fleet and API benchmarks with a latency, throughput and memory report.
    Bench(bench::BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum StoreKind {
    /// Everything in memory; lost when the process exits.
    Memory,
    /// The embedded, crash-safe store in DATA_DIR/store.redb.
    Redb,
}

#[derive(clap::Args)]
struct HubArgs {
    /// Directory for the store, credentials and admin.kubeconfig.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Address to serve HTTPS on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "redb")]
    store: StoreKind,
    /// How long Events are kept after they last occurred (kube-apiserver's --event-ttl).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    event_ttl_seconds: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Hub(args) => run_hub(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn open_store(kind: StoreKind, dir: &Path) -> anyhow::Result<Store> {
    Ok(match kind {
        StoreKind::Memory => Store::memory(),
        StoreKind::Redb => {
            let path = dir.join("store.redb");
            let backend = RedbBackend::open(&path)
                .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
            Store::open(backend, StoreConfig::default())?
        }
    })
}

async fn run_hub(args: HubArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", args.data_dir.display()))?;
    let store = open_store(args.store, &args.data_dir)?;
    let config = ServerConfig {
        event_ttl: std::time::Duration::from_secs(args.event_ttl_seconds),
        ..ServerConfig::default()
    };
    let server = ApiServer::new(store, config);
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.bind))?;
    let addr = listener.local_addr()?;
    let creds = Credentials::load_or_create(&args.data_dir.join("pki"), &[addr.ip().to_string()])?;
    server
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("starting the API server: {e}"))?;
    let url = format!("https://{addr}");
    // An absolute path, so the printed `export KUBECONFIG=...` works from anywhere.
    let kubeconfig = std::fs::canonicalize(&args.data_dir)
        .map_err(|e| anyhow::anyhow!("resolving {}: {e}", args.data_dir.display()))?
        .join("admin.kubeconfig");
    let kubeconfig_text = creds.admin_kubeconfig(&url, "flotilla");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            let shutdown = async {
                let _ = stop_rx.await;
            };
            flotilla_apiserver::serve_https(server, listener, &creds, shutdown).await
        }
    });
    // /readyz answers ok now (start() returned); publish the kubeconfig.
    Credentials::write_kubeconfig(&kubeconfig, &kubeconfig_text)?;
    tracing::info!(%url, kubeconfig = %kubeconfig.display(), "hub ready");
    eprintln!(
        "flotilla hub ready at {url}\n  export KUBECONFIG={}\n  kubectl get namespaces",
        kubeconfig.display()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    serving.await??;
    Ok(())
}

async fn shutdown_signal() {
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
