//! Serving one API server process-side: open the store, load or create credentials, serve
//! HTTPS, write `DIR/admin.kubeconfig` once ready. Used by `hub`, `member` and `up`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use flotilla_apiserver::{ApiServer, Credentials, ServerConfig};
use flotilla_store::{RedbBackend, Store, StoreConfig};

/// Storage backend of a served API.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StoreKind {
    /// Everything in memory; lost when the process exits.
    Memory,
    /// The embedded, crash-safe store in DATA_DIR/store.redb.
    Redb,
}

/// Opens the store of `kind` under `dir`.
pub fn open_store(kind: StoreKind, dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
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

/// A running HTTPS API server.
pub struct Served {
    /// The server.
    pub server: ApiServer,
    /// Its URL.
    pub url: String,
    /// The admin kubeconfig written for it (absolute path).
    pub kubeconfig: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), flotilla_apiserver::TlsError>>,
}

impl Served {
    /// Stops serving and the server's background work.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.shutdown();
        self.task.await??;
        Ok(())
    }
}

/// Starts an API server over `store` on `bind` with credentials in `dir/pki`; `before_ready`
/// runs after the server's own start (system namespaces, policy) and before the kubeconfig
/// is written, so programs add their APIs and controllers first.
pub async fn serve<F, Fut>(
    dir: &Path,
    bind: SocketAddr,
    store: Store,
    config: ServerConfig,
    name: &str,
    before_ready: F,
) -> anyhow::Result<Served>
where
    F: FnOnce(ApiServer, std::sync::Arc<Credentials>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let server = ApiServer::new(store, config);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("binding {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let creds = std::sync::Arc::new(Credentials::load_or_create(
        &dir.join("pki"),
        &[addr.ip().to_string()],
    )?);
    server
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("starting the API server: {e}"))?;
    before_ready(server.clone(), creds.clone()).await?;
    let url = format!("https://{addr}");
    // An absolute path, so a printed `export KUBECONFIG=...` works from anywhere.
    let kubeconfig = std::fs::canonicalize(dir)
        .map_err(|e| anyhow::anyhow!("resolving {}: {e}", dir.display()))?
        .join("admin.kubeconfig");
    let text = creds.admin_kubeconfig(&url, name);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let server = server.clone();
        let creds = creds.clone();
        async move {
            let shutdown = async {
                let _ = stop_rx.await;
            };
            flotilla_apiserver::serve_https(server, listener, &creds, shutdown).await
        }
    });
    Credentials::write_kubeconfig(&kubeconfig, &text)?;
    Ok(Served {
        server,
        url,
        kubeconfig,
        stop,
        task,
    })
}

/// A `kube` client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", path.display()))?;
    Ok(kube::Client::try_from(cfg)?)
}
