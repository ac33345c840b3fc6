//! What the benchmarks share: hub processes started and measured (CPU time and RSS from
//! /proc), phases of operations run at a concurrency with their latencies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

/// The hub processes a benchmark started (and the etcd it started for them).
pub(crate) struct Hub {
    pub(crate) children: Vec<std::process::Child>,
    /// Process ids of the replicas, the first one first.
    pub(crate) pids: Vec<u32>,
    /// The first replica's process id.
    pub(crate) pid: u32,
    pub(crate) store: String,
    /// Arguments every replica gets besides the store (etcd endpoints and prefix).
    pub(crate) store_args: Vec<String>,
    /// Dropped before `dir`: etcd is stopped through its pid file there.
    pub(crate) etcd: Option<flotilla_store::etcd_server::EtcdCluster>,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Hub {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `flotilla hub` on `dir` and waits until it has written its kubeconfig (which it does
/// once /readyz answers ok).
pub(crate) async fn spawn_hub(
    store: &str,
    store_args: &[String],
    dir: &std::path::Path,
) -> anyhow::Result<std::process::Child> {
    spawn_hub_on(store, store_args, dir, "127.0.0.1:0").await
}

/// [`spawn_hub`] serving on `bind`.
pub(crate) async fn spawn_hub_on(
    store: &str,
    store_args: &[String],
    dir: &std::path::Path,
    bind: &str,
) -> anyhow::Result<std::process::Child> {
    let kubeconfig = dir.join("admin.kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let exe = std::env::current_exe()?;
    // FLOTILLA_BENCH_HUB_WRAP="valgrind --tool=massif ..." runs the hub under a profiler.
    let wrap = std::env::var("FLOTILLA_BENCH_HUB_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut child = match words.next() {
        Some(w) => {
            let mut c = std::process::Command::new(w);
            c.args(words).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    let mut child = child
        .args(["hub", "--store", store, "--bind", bind, "--data-dir"])
        .arg(dir)
        .args(store_args)
        .env(
            "RUST_LOG",
            std::env::var("FLOTILLA_BENCH_HUB_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(hub_log(dir)?)
        .spawn()?;
    // A wrapped hub (valgrind) starts tens of times slower.
    let ready_within = if wrap.is_empty() { 120 } else { 1200 };
    let deadline = Instant::now() + Duration::from_secs(ready_within);
    while !kubeconfig.exists() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            anyhow::bail!("the hub did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

/// Where a hub process's log goes: `DIR/hub.log` when `FLOTILLA_BENCH_HUB_LOG` names a log
/// filter (`info`, `flotilla_hub=debug`, ...), else nowhere.
fn hub_log(dir: &std::path::Path) -> anyhow::Result<std::process::Stdio> {
    if std::env::var_os("FLOTILLA_BENCH_HUB_LOG").is_none() {
        return Ok(std::process::Stdio::null());
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("hub.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    eprintln!("the hub logs to {}", path.display());
    Ok(file.into())
}

/// Starts `replicas` hubs on `store`; with etcd and no `etcd_endpoints`, on a single-member
/// etcd started for them.
pub(crate) async fn start_hubs(
    store: &str,
    replicas: usize,
    etcd_endpoints: &[String],
) -> anyhow::Result<Hub> {
    let dir = tempfile::tempdir()?;
    let mut etcd = None;
    let mut store_args = Vec::new();
    if store == "etcd" {
        let endpoints = if etcd_endpoints.is_empty() {
            eprintln!("starting etcd (single member) ...");
            let path = dir.path().join("etcd");
            let cluster = tokio::task::spawn_blocking(move || {
                flotilla_store::etcd_server::EtcdCluster::start(&path, 1)
            })
            .await??;
            let endpoints = cluster.endpoints();
            etcd = Some(cluster);
            endpoints
        } else {
            etcd_endpoints.to_vec()
        };
        // A prefix of its own, so that a shared etcd's other data is left alone.
        let prefix = format!(
            "/flotilla-bench-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        );
        store_args = vec![
            "--etcd-endpoints".into(),
            endpoints.join(","),
            "--etcd-prefix".into(),
            prefix,
        ];
    }
    let mut children = Vec::new();
    for r in 0..replicas {
        // The first replica creates the shared credentials; the others adopt them.
        children.push(spawn_hub(store, &store_args, &dir.path().join(format!("r{r}"))).await?);
    }
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    Ok(Hub {
        children,
        pid: pids[0],
        pids,
        store: store.to_string(),
        store_args,
        dir,
        etcd,
    })
}

impl Hub {
    /// The admin kubeconfig of replica `r` (every replica accepts the same credentials).
    pub(crate) fn kubeconfig(&self, r: usize) -> PathBuf {
        self.dir.path().join(format!("r{r}/admin.kubeconfig"))
    }

    /// The store arguments of a hub on the same etcd under another prefix.
    pub(crate) fn store_args_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut args = self.store_args.clone();
        if let Some(p) = args.iter().position(|a| a == "--etcd-prefix") {
            args[p + 1] = prefix.to_string();
        }
        args
    }

    /// The etcd process the benchmark started, if any.
    pub(crate) fn etcd_pid(&self) -> Option<u32> {
        self.etcd.as_ref().and_then(|e| e.pid(0))
    }

    /// Kills the first replica with SIGKILL and starts it again on the same data and address
    /// (its clients reconnect); returns how long the new process took to become ready.
    pub(crate) async fn kill_and_restart(&mut self) -> anyhow::Result<Duration> {
        let text = std::fs::read_to_string(self.kubeconfig(0))?;
        let bind = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .ok_or_else(|| anyhow::anyhow!("the hub's kubeconfig names no server"))?
            .to_string();
        self.children[0].kill()?;
        self.children[0].wait()?;
        let started = Instant::now();
        self.children[0] = spawn_hub_on(
            &self.store,
            &self.store_args,
            &self.dir.path().join("r0"),
            &bind,
        )
        .await?;
        self.pid = self.children[0].id();
        self.pids[0] = self.pid;
        Ok(started.elapsed())
    }
}

/// User+system CPU seconds from the text of a /proc `stat` file (of a process or a thread).
pub(crate) fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// (user+system CPU seconds, RSS bytes) of a process, from /proc.
pub(crate) fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let cpu = stat_cpu_seconds(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((cpu, rss_kb * 1024))
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The processes whose CPU time a phase measures.
#[derive(Clone, Default)]
pub(crate) struct Procs {
    /// Hub replicas (their CPU is summed).
    pub(crate) hubs: Vec<u32>,
    /// etcd, when the benchmark started it.
    pub(crate) etcd: Option<u32>,
}

impl Procs {
    /// CPU seconds used so far by the hubs and by etcd.
    pub(crate) fn cpu(&self) -> (Option<f64>, Option<f64>) {
        let hubs: Option<f64> = if self.hubs.is_empty() {
            None
        } else {
            self.hubs.iter().map(|p| proc_usage(*p).map(|u| u.0)).sum()
        };
        (hubs, self.etcd.and_then(proc_usage).map(|u| u.0))
    }
}

pub(crate) struct Phase {
    pub(crate) name: String,
    pub(crate) ops: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) cpu: Option<f64>,
    pub(crate) etcd_cpu: Option<f64>,
}

impl Phase {
    pub(crate) fn row(&self) -> String {
        let mut l = self.latencies.clone();
        l.sort();
        let per_op = |c: Option<f64>| {
            c.map(|c| format!("{:.3}", c * 1000.0 / self.ops as f64))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} |",
            self.name,
            self.ops,
            self.ops as f64 / self.elapsed.as_secs_f64(),
            ms(percentile(&l, 0.5)),
            ms(percentile(&l, 0.99)),
            per_op(self.cpu),
            per_op(self.etcd_cpu),
        )
    }
}

pub(crate) fn configmap(name: &str, payload: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"bench": "true"}},
        "data": {"payload": payload},
    }))
    .expect("a valid ConfigMap")
}

/// Runs `total` operations with `concurrency` workers; `op(i)` performs operation i.
pub(crate) async fn run_phase<F, Fut>(
    name: &str,
    total: usize,
    concurrency: usize,
    procs: &Procs,
    op: F,
) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    eprintln!("  {name}: {total} operations at concurrency {concurrency} ...");
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu0 = procs.cpu();
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for w in workers {
        latencies.extend(w.await??);
    }
    let elapsed = start.elapsed();
    let cpu1 = procs.cpu();
    let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    Ok(Phase {
        name: name.into(),
        ops: total,
        elapsed,
        latencies,
        cpu: diff(cpu0.0, cpu1.0),
        etcd_cpu: diff(cpu0.1, cpu1.1),
    })
}

/// Server-side applies `o` (any kind the hub serves) as the benchmark's field manager.
pub(crate) async fn apply(admin: &kube::Client, o: &serde_json::Value) -> anyhow::Result<()> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let gvk = kube::core::GroupVersionKind::try_from(&kube::core::TypeMeta {
        api_version: o["apiVersion"].as_str().unwrap_or("").into(),
        kind: o["kind"].as_str().unwrap_or("").into(),
    })?;
    let (ar, _) = kube::discovery::pinned_kind(admin, &gvk).await?;
    let api: Api<DynamicObject> = match o["metadata"]["namespace"].as_str() {
        Some(n) => Api::namespaced_with(admin.clone(), n, &ar),
        None => Api::all_with(admin.clone(), &ar),
    };
    api.patch(
        o["metadata"]["name"].as_str().unwrap_or(""),
        &PatchParams::apply("flotilla-bench").force(),
        &Patch::Apply(o),
    )
    .await?;
    Ok(())
}
