//! A hub in the benchmark's own process, on a runtime of its own: its threads are named
//! `flotilla-hub`, so its CPU time is told apart from the simulated fleet's (summed over
//! those threads from /proc/self/task); its memory is not (the process's RSS is shared).
//! Killing it drops its runtime without a graceful shutdown, as a crash would; at the end of a
//! benchmark it stops its controllers first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The name of the hub runtime's threads.
const THREAD_NAME: &str = "flotilla-hub";

/// How the hub's runtime goes.
enum Stop {
    /// As a crash: its tasks dropped where they stand.
    Crash,
    /// Its controllers stopped first (the benchmark is over).
    Graceful,
}

/// A hub running on its own runtime in this process.
pub(crate) struct InProcessHub {
    dir: PathBuf,
    addr: SocketAddr,
    stop: Option<std::sync::mpsc::Sender<Stop>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessHub {
    /// Starts a hub on the embedded store in `dir`, serving on `addr` (port 0 picks one);
    /// returns once `dir/admin.kubeconfig` is written.
    pub(crate) async fn start(dir: &Path, addr: SocketAddr) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = std::sync::mpsc::channel::<Stop>();
        let thread = {
            let dir = dir.to_path_buf();
            std::thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name(THREAD_NAME)
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!("hub runtime: {e}")));
                            return;
                        }
                    };
                    match runtime.block_on(serve(&dir, addr)) {
                        Ok((bound, server)) => {
                            let _ = ready_tx.send(Ok(bound));
                            // Serving goes on in the runtime's tasks until told to stop.
                            if let Ok(Stop::Graceful) = stop_rx.recv() {
                                // Controllers end and their writes finish before the runtime
                                // goes.
                                server.shutdown();
                                // (The timer is made inside the runtime: outside it has none.)
                                runtime.block_on(async {
                                    tokio::time::sleep(Duration::from_millis(500)).await
                                });
                            }
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                    // Tasks still running are dropped where they stand.
                    runtime.shutdown_background();
                })?
        };
        let addr = ready_rx
            .await
            .map_err(|_| anyhow::anyhow!("the in-process hub stopped while starting"))??;
        Ok(Self {
            dir: dir.to_path_buf(),
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Its admin kubeconfig.
    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// Stops it abruptly and starts it again on the same store and address; returns how long
    /// the new one took to serve.
    pub(crate) async fn crash_and_restart(&mut self) -> anyhow::Result<Duration> {
        self.halt(Stop::Crash);
        let started = Instant::now();
        // The store file is released once the old runtime's tasks are gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Self::start(&self.dir, self.addr).await {
                Ok(h) => {
                    *self = h;
                    return Ok(started.elapsed());
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("restarting the in-process hub: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn halt(&mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// CPU seconds used so far by the hub's threads.
    pub(crate) fn cpu_seconds() -> f64 {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0.0;
        };
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim_end().starts_with(THREAD_NAME))
            })
            .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            .filter_map(|s| crate::harness::stat_cpu_seconds(&s))
            .sum()
    }
}

impl Drop for InProcessHub {
    fn drop(&mut self) {
        self.halt(Stop::Graceful);
    }
}

/// Serves a hub on `addr` with its store and credentials in `dir`; returns the bound address
/// and the server.
async fn serve(
    dir: &Path,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, flotilla_apiserver::ApiServer)> {
    let path = dir.join("store.redb");
    let backend = flotilla_store::RedbBackend::open(&path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let store = flotilla_store::Store::open(backend, flotilla_store::StoreConfig::default())?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let leadership = store.campaign(
        &format!("bench@{addr}/{}", std::process::id()),
        Duration::from_secs(10),
    );
    let server = flotilla_apiserver::ApiServer::new(store, Default::default());
    server.set_leadership(leadership);
    let creds = flotilla_apiserver::Credentials::load_or_create(
        &dir.join("pki"),
        &[addr.ip().to_string()],
    )?;
    server.start().await?;
    server.start_signer(creds.ca_pem.clone(), creds.ca_key_pem());
    flotilla_hub::start(&server, flotilla_hub::HubConfig::default()).await?;
    let url = format!("https://{addr}");
    let text = creds.admin_kubeconfig(&url, "flotilla");
    let serving = server.clone();
    tokio::spawn(async move {
        let never = std::future::pending::<()>();
        if let Err(e) = flotilla_apiserver::serve_https(serving, listener, &creds, never).await {
            tracing::error!("the in-process hub stopped serving: {e}");
        }
    });
    flotilla_apiserver::Credentials::write_kubeconfig(&dir.join("admin.kubeconfig"), &text)?;
    Ok((addr, server))
}
