//! The agent's own cost: real `flotilla agent` processes (this binary) joined to the hub, each
//! against a simulated member served over HTTPS from this process, measured from /proc idle
//! and while applying a placement's changes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::tracker::Tracker;
use super::workload::{config, objects, placement_with, Applier};
use crate::harness::proc_usage;
use crate::progress::Progress;

/// Agent processes and the members they serve.
pub(crate) struct Agents {
    pub(crate) names: Vec<String>,
    processes: Vec<tokio::process::Child>,
    members: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Agents {
    fn drop(&mut self) {
        // The processes are killed as their handles drop (kill_on_drop).
        for m in &self.members {
            m.abort();
        }
    }
}

/// What the agents cost.
pub(crate) struct AgentCost {
    /// Largest RSS of one agent while idle, bytes.
    pub(crate) idle_rss: u64,
    /// Mean CPU of one agent while idle, millicores.
    pub(crate) idle_millicores: f64,
    /// Largest RSS of one agent while applying, bytes.
    pub(crate) applying_rss: u64,
    /// Mean CPU seconds of one agent per change applied.
    pub(crate) cpu_per_change: f64,
    /// Changes applied.
    pub(crate) changes: usize,
}

/// Serves a simulated member over HTTPS; returns its admin kubeconfig.
async fn serve_member(
    name: &str,
    dir: &Path,
) -> anyhow::Result<(PathBuf, tokio::task::JoinHandle<()>)> {
    let creds = flotilla_apiserver::Credentials::load_or_create(dir, &["127.0.0.1".into()])?;
    let server = flotilla_apiserver::ApiServer::new(
        flotilla_sim::memory_store(),
        flotilla_apiserver::ServerConfig::default(),
    );
    server.start().await?;
    flotilla_sim::start(
        &server,
        flotilla_sim::SimConfig {
            name: name.to_string(),
            ..Default::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let kubeconfig = dir.join("admin.kubeconfig");
    flotilla_apiserver::Credentials::write_kubeconfig(
        &kubeconfig,
        &creds.admin_kubeconfig(&url, name),
    )?;
    let task = tokio::spawn(async move {
        let never = std::future::pending::<()>();
        if let Err(e) = flotilla_apiserver::serve_https(server, listener, &creds, never).await {
            tracing::error!("simulated member stopped serving: {e}");
        }
    });
    Ok((kubeconfig, task))
}

/// Starts `n` agent processes, joined and Healthy.
pub(crate) async fn start(
    n: usize,
    hub_kubeconfig: &Path,
    heartbeat: u32,
) -> anyhow::Result<Agents> {
    let dir = tempfile::tempdir()?;
    let hub_config = kube::config::Kubeconfig::read_from(hub_kubeconfig)?;
    let exe = std::env::current_exe()?;
    let progress = Progress::new("agents start", n as u64);
    let mut agents = Agents {
        names: Vec::new(),
        processes: Vec::new(),
        members: Vec::new(),
        _dir: tempfile::tempdir()?,
    };
    for k in 1..=n {
        let name = format!("agent-{k}");
        let member_dir = dir.path().join(&name);
        std::fs::create_dir_all(&member_dir)?;
        let (member_kubeconfig, task) = serve_member(&name, &member_dir).await?;
        agents.members.push(task);
        let request = flotilla_agent::join::JoinRequest {
            name: &name,
            labels: Default::default(),
            heartbeat_period_seconds: heartbeat,
        };
        let hub_file = member_dir.join("hub.kubeconfig");
        std::fs::write(
            &hub_file,
            flotilla_agent::join::join(&hub_config, &request).await?,
        )?;
        let child = tokio::process::Command::new(&exe)
            .arg("agent")
            .args(["--name", &name, "--hub-kubeconfig"])
            .arg(&hub_file)
            .arg("--member-kubeconfig")
            .arg(&member_kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        agents.processes.push(child);
        agents.names.push(name);
        progress.set(k as u64);
    }
    agents._dir = dir;
    progress.message("waiting for the agents' members to be Healthy");
    let admin = flotilla_agent::client_from_kubeconfig(hub_kubeconfig).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let healthy =
            crate::fleet::healthy_members(&admin, |n| agents.names.iter().any(|a| a == n)).await?;
        if healthy == n {
            break;
        }
        for p in &mut agents.processes {
            if let Some(status) = p.try_wait()? {
                anyhow::bail!("an agent process exited ({status})");
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the agents' members were not Healthy within 120 s ({healthy} of {n} were)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    progress.finish(&format!("{n} agent processes joined and Healthy"));
    Ok(agents)
}

impl Agents {
    fn usage(&self) -> Vec<(f64, u64)> {
        self.processes
            .iter()
            .filter_map(|p| p.id().and_then(proc_usage))
            .collect()
    }

    /// Idle for `window`, then `changes` changes of a placement on every agent's member.
    pub(crate) async fn measure(
        &self,
        window: Duration,
        changes: usize,
        applier: &Applier,
        tracker: &Tracker,
    ) -> anyhow::Result<AgentCost> {
        let n = self.names.len();
        let progress = Progress::new("agents idle", window.as_secs());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = self.usage();
        let t0 = Instant::now();
        while t0.elapsed() < window {
            tokio::time::sleep(Duration::from_secs(1)).await;
            progress.set(t0.elapsed().as_secs().min(window.as_secs()));
        }
        let after = self.usage();
        anyhow::ensure!(
            before.len() == n && after.len() == n,
            "an agent process is gone"
        );
        let secs = t0.elapsed().as_secs_f64();
        let idle_cpu: f64 = before.iter().zip(&after).map(|(a, b)| b.0 - a.0).sum();
        let idle_millicores = idle_cpu / n as f64 / secs * 1000.0;
        let idle_rss = after.iter().map(|u| u.1).max().unwrap_or(0);
        progress.finish(&format!(
            "{idle_millicores:.2} millicores, {:.1} MB each",
            idle_rss as f64 / 1e6
        ));

        let progress = Progress::new("agents applying", changes as u64 + 1);
        let name = "agents-0";
        let clusters = json!({"placementType": "PickFixed", "clusterNames": self.names});
        // Every member at once: the agents' cost, not the rollout's pacing, is measured.
        let rolling =
            json!({"maxUnavailable": "100%", "maxSurge": "100%", "unavailablePeriodSeconds": 1});
        let before = self.usage();
        let mut peak = before.iter().map(|u| u.1).max().unwrap_or(0);
        for o in objects(name, 0) {
            applier.apply(&o).await?;
        }
        applier
            .apply(&placement_with(name, clusters, rolling))
            .await?;
        for version in 0..=changes {
            if version > 0 {
                applier.apply(&config(name, version)).await?;
            }
            let index = version.to_string();
            let what = format!("the agents' placement at resource index {index}");
            let started = Instant::now();
            loop {
                let done = tracker.count_done(&[name.to_string()], n, &index) == 1;
                peak = peak.max(self.usage().iter().map(|u| u.1).max().unwrap_or(0));
                if done {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(120),
                    "{what}: not Available within 120 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            progress.set(version as u64 + 1);
        }
        let after = self.usage();
        let cpu: f64 = before.iter().zip(&after).map(|(a, b)| b.0 - a.0).sum();
        applier.remove(name).await?;
        let cpu_per_change = cpu / n as f64 / (changes + 1) as f64;
        progress.finish(&format!(
            "{:.1} ms CPU per change, peak {:.1} MB",
            cpu_per_change * 1000.0,
            peak as f64 / 1e6
        ));
        Ok(AgentCost {
            idle_rss,
            idle_millicores,
            applying_rss: peak,
            cpu_per_change,
            changes: changes + 1,
        })
    }
}
