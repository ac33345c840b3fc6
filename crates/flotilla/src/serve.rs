//! Serving one API server process-side: open the store, load or create credentials, serve
//! HTTPS, write `DIR/admin.kubeconfig` once ready. Used by `hub`, `member` and `up`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_apiserver::{ApiServer, Credentials, ServerConfig};
use flotilla_store::{RedbBackend, Store, StoreConfig};

/// Storage backend of a served API.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StoreKind {
    /// Everything in memory; lost when the process exits.
    Memory,
    /// The embedded, crash-safe store in DATA_DIR/store.redb.
    Redb,
    /// etcd (--etcd-endpoints): several hub replicas can share it.
    Etcd,
}

/// Where the etcd store is and how the hub uses it.
#[derive(clap::Args, Clone, Debug)]
pub struct EtcdArgs {
    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(long, value_delimiter = ',', value_name = "URL[,URL...]")]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix for everything this hub keeps in etcd; hubs on one etcd need distinct ones.
    #[arg(long, default_value = "/flotilla", value_name = "PREFIX")]
    pub etcd_prefix: String,
    /// CA certificate (PEM) that signed etcd's serving certificates.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key (PEM) for etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// How long a request to etcd may take before the API answers 504.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub etcd_request_timeout_seconds: u64,
    /// How often the leader compacts etcd's history to the revision of the previous run
    /// (0: never; then compact etcd yourself).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub etcd_compaction_interval_seconds: u64,
    /// Leader lease: a dead leader replica is replaced within about this long.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub leader_lease_seconds: u64,
}

impl EtcdArgs {
    /// The store's view of these flags.
    pub fn config(&self) -> anyhow::Result<flotilla_store::EtcdConfig> {
        if self.etcd_endpoints.is_empty() {
            anyhow::bail!("--store etcd needs --etcd-endpoints URL[,URL...]");
        }
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
        };
        let mut c = flotilla_store::EtcdConfig::new(self.etcd_endpoints.clone());
        c.prefix = self.etcd_prefix.clone();
        c.request_timeout = Duration::from_secs(self.etcd_request_timeout_seconds.max(1));
        if self.etcd_ca.is_some() || self.etcd_cert.is_some() {
            c.tls = Some(flotilla_store::EtcdTls {
                ca: self.etcd_ca.as_ref().map(read).transpose()?,
                identity: match (&self.etcd_cert, &self.etcd_key) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    _ => None,
                },
            });
        }
        Ok(c)
    }
}

/// Opens the store of `kind` under `dir` (for etcd, as `etcd` says).
pub async fn open_store(kind: StoreKind, dir: &Path, etcd: &EtcdArgs) -> anyhow::Result<Store> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    Ok(match kind {
        StoreKind::Memory => Store::memory(),
        StoreKind::Redb => open_redb(dir)?,
        StoreKind::Etcd => {
            let config = etcd.config()?;
            tracing::info!(endpoints = ?config.endpoints, prefix = %config.prefix, "opening the etcd store");
            Store::open_etcd(config, StoreConfig::default())
                .await
                .map_err(|e| anyhow::anyhow!("opening the etcd store: {e}"))?
        }
    })
}

/// Opens a simulated member's store of `kind` under `dir`, with a member's history
/// ([`flotilla_sim::store_config`]).
pub fn open_member(kind: StoreKind, dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    match kind {
        StoreKind::Memory => Ok(flotilla_sim::memory_store()),
        StoreKind::Redb => open_redb_with(dir, flotilla_sim::store_config()),
        StoreKind::Etcd => {
            anyhow::bail!("this process keeps its state in memory or redb, not etcd")
        }
    }
}

/// Opens the embedded store in `dir` (made if missing).
pub fn open_redb(dir: &Path) -> anyhow::Result<Store> {
    open_redb_with(dir, StoreConfig::default())
}

/// Opens the embedded store in `dir` with `config`.
fn open_redb_with(dir: &Path, config: StoreConfig) -> anyhow::Result<Store> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let path = dir.join("store.redb");
    let backend =
        RedbBackend::open(&path).map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    Ok(Store::open(backend, config)?)
}

/// With a shared store, makes every replica use the same CA and admin credentials: the first
/// replica stores its own (from `pki`, generated if missing) in the store, later ones adopt
/// those. Files given by hand in `pki` on the first replica are thus shared too.
pub async fn share_credentials(store: &Store, pki: &Path) -> anyhow::Result<()> {
    if !store.is_etcd() {
        return Ok(());
    }
    Credentials::load_or_create(pki, &[])?;
    let mine = Credentials::shared_files(pki)?;
    let stored = store
        .shared_value("credentials", serde_json::to_vec(&mine)?)
        .await
        .map_err(|e| anyhow::anyhow!("sharing credentials through etcd: {e}"))?
        .unwrap_or_default();
    let shared: std::collections::BTreeMap<String, String> = serde_json::from_slice(&stored)
        .map_err(|e| anyhow::anyhow!("the credentials stored in etcd are unreadable: {e}"))?;
    if shared != mine {
        tracing::info!(dir = %pki.display(), "using the CA and admin credentials shared through etcd");
        Credentials::write_shared_files(pki, &shared)?;
    }
    Ok(())
}

/// A running HTTPS API server.
pub struct Served {
    /// The server.
    pub server: ApiServer,
    /// Its URL.
    pub url: String,
    /// The admin kubeconfig written for it (absolute path).
    pub kubeconfig: PathBuf,
    /// This replica's identity in leader election (`name@address/pid`).
    pub identity: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), flotilla_apiserver::Error>>,
}

impl Served {
    /// Stops serving and the server's background work; a leader hands over at once.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.leadership().resign().await;
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
    leader_lease: Duration,
    before_ready: F,
) -> anyhow::Result<Served>
where
    F: FnOnce(ApiServer, std::sync::Arc<Credentials>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    share_credentials(&store, &dir.join("pki")).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("binding {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let identity = format!("{name}@{addr}/{}", std::process::id());
    let leadership = store.campaign(&identity, leader_lease);
    let server = ApiServer::new(store, config);
    server.set_leadership(leadership);
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
        identity,
        stop,
        task,
    })
}

pub use flotilla_agent::{brief, client_from_kubeconfig};
