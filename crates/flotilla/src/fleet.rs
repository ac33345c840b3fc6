//! The fleet commands: the hub's controllers, `member`, `agent`, `join` and `up`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_apiserver::{ApiServer, Credentials, ServerConfig};
use kube::api::{Api, DynamicObject};

use crate::serve::{client_from_kubeconfig, open_member, open_redb, serve, StoreKind};

/// Hub flags of the fleet controllers.
#[derive(clap::Args, Clone)]
pub struct HubFleetArgs {
    /// A member is unhealthy once its last heartbeat is older than this (default: three of
    /// the member's heartbeat periods).
    #[arg(long, value_name = "SECONDS")]
    member_health_threshold_seconds: Option<u64>,
    /// How long a deleted member's agent has to report leaving before the hub removes the
    /// member anyway.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    member_leave_timeout_seconds: u64,
}

impl HubFleetArgs {
    pub fn config(&self) -> flotilla_hub::HubConfig {
        flotilla_hub::HubConfig {
            health_threshold: self
                .member_health_threshold_seconds
                .map(Duration::from_secs),
            leave_timeout: Duration::from_secs(self.member_leave_timeout_seconds),
        }
    }
}

/// Everything the hub runs besides the API machinery: the client-certificate signer and the
/// fleet APIs and controllers.
pub async fn start_hub(
    server: &ApiServer,
    creds: &Credentials,
    config: flotilla_hub::HubConfig,
) -> anyhow::Result<()> {
    server.start_signer(creds.ca_pem.clone(), creds.ca_key_pem());
    Ok(flotilla_hub::start(server, config).await?)
}

fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    labels
        .iter()
        .flat_map(|l| l.split(','))
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow::anyhow!("label {l:?} must be KEY=VALUE"))
        })
        .collect()
}

/// `flotilla member`.
#[derive(clap::Args)]
pub struct MemberArgs {
    /// The member cluster's name.
    #[arg(long, value_parser = member_name)]
    name: String,
    /// Directory for the store, credentials and admin.kubeconfig.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Address to serve HTTPS on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "redb")]
    store: StoreKind,
    #[command(flatten)]
    sim: SimArgs,
}

/// The shape of a simulated member.
#[derive(clap::Args, Clone)]
pub struct SimArgs {
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// CPU of each node (a quantity).
    #[arg(long, default_value = "4")]
    node_cpu: String,
    /// Memory of each node (a quantity).
    #[arg(long, default_value = "16Gi")]
    node_memory: String,
    /// Labels of every node, KEY=VALUE (repeat or comma-separate).
    #[arg(long)]
    node_labels: Vec<String>,
    /// How long a pod takes to start (and a Job's pod to finish), in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    workload_delay_ms: u64,
}

impl SimArgs {
    fn config(&self, name: &str) -> anyhow::Result<flotilla_sim::SimConfig> {
        Ok(flotilla_sim::SimConfig {
            name: name.to_string(),
            nodes: self.nodes,
            node_cpu: self.node_cpu.clone(),
            node_memory: self.node_memory.clone(),
            node_labels: parse_labels(&self.node_labels)?,
            delay: Duration::from_millis(self.workload_delay_ms),
            root_ca: String::new(),
        })
    }
}

async fn start_member(
    name: &str,
    dir: &Path,
    bind: SocketAddr,
    store: StoreKind,
    sim: flotilla_sim::SimConfig,
) -> anyhow::Result<crate::serve::Served> {
    let store = open_member(store, dir)?;
    serve(
        dir,
        bind,
        store,
        ServerConfig::default(),
        name,
        Duration::from_secs(10),
        |server, creds| async move {
            // Namespaces get the member's own CA, as a real cluster publishes its CA.
            let sim = flotilla_sim::SimConfig {
                root_ca: creds.ca_pem.clone(),
                ..sim
            };
            Ok(flotilla_sim::start(&server, sim).await?)
        },
    )
    .await
}

pub async fn run_member(args: MemberArgs) -> anyhow::Result<()> {
    let sim = args.sim.config(&args.name)?;
    let served = start_member(&args.name, &args.data_dir, args.bind, args.store, sim).await?;
    tracing::info!(member = %args.name, url = %served.url, "simulated member ready");
    eprintln!(
        "flotilla member {} ready at {}\n  export KUBECONFIG={}\n  kubectl get nodes",
        args.name,
        served.url,
        served.kubeconfig.display()
    );
    crate::shutdown_signal().await;
    served.stop().await
}

/// `flotilla agent`.
#[derive(clap::Args)]
pub struct AgentArgs {
    /// The member's name (its MemberCluster on the hub).
    #[arg(long, value_parser = member_name)]
    name: String,
    /// Kubeconfig for the hub, with the member's credentials (written by `flotilla join`).
    #[arg(long, value_name = "FILE")]
    hub_kubeconfig: PathBuf,
    /// Kubeconfig for the member cluster; without it, the in-cluster service account.
    #[arg(long, value_name = "FILE")]
    member_kubeconfig: Option<PathBuf>,
}

pub async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let hub = client_from_kubeconfig(&args.hub_kubeconfig).await?;
    let member =
        match &args.member_kubeconfig {
            Some(p) => client_from_kubeconfig(p).await?,
            None => kube::Client::try_from(kube::Config::incluster().map_err(|e| {
                anyhow::anyhow!("no --member-kubeconfig and not in a cluster: {e}")
            })?)?,
        };
    tracing::info!(member = %args.name, "agent starting");
    flotilla_agent::Agent {
        name: args.name,
        hub,
        member,
    }
    .run(crate::shutdown_signal())
    .await?;
    Ok(())
}

/// `flotilla join`.
#[derive(clap::Args)]
pub struct JoinArgs {
    /// The new member's name.
    #[arg(value_parser = member_name)]
    name: String,
    /// The hub's admin kubeconfig.
    #[arg(long, value_name = "FILE")]
    hub_kubeconfig: PathBuf,
    /// Where to write the agent's hub kubeconfig.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Labels of the MemberCluster, KEY=VALUE (repeat or comma-separate).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// The member's heartbeat period.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    heartbeat_period_seconds: u32,
}

/// A member's name, checked before anything is done with it: its namespace on the hub,
/// `fleet-member-<name>`, must be a DNS-1123 label.
fn member_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a member needs a name".into());
    }
    let namespace = format!("{}{s}", flotilla_api::member::NAMESPACE_PREFIX);
    match flotilla_api::names::label_problems(&namespace).first() {
        None => Ok(s.to_string()),
        Some(p) => Err(format!(
            "its namespace on the hub, {namespace}, would be invalid: {p}"
        )),
    }
}

fn member_cluster_api(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(client, &flotilla_api::member::member_cluster_resource())
}

/// Joins member `name` to the hub of `hub_kubeconfig` ([`flotilla_agent::join`]) and writes
/// the agent's hub kubeconfig to `out`.
pub async fn join(
    hub_kubeconfig: &Path,
    name: &str,
    labels: BTreeMap<String, String>,
    heartbeat_period: u32,
    out: &Path,
) -> anyhow::Result<()> {
    let kc = kube::config::Kubeconfig::read_from(hub_kubeconfig)
        .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", hub_kubeconfig.display()))?;
    let request = flotilla_agent::join::JoinRequest {
        name,
        labels,
        heartbeat_period_seconds: heartbeat_period,
    };
    use flotilla_agent::{join::join, Error};
    let path = hub_kubeconfig.display();
    let text = join(&kc, &request).await.map_err(|e| match e {
        Error::Unreachable(e) => {
            anyhow::anyhow!("reaching the hub of {path}: {}", crate::serve::brief(&e))
        }
        Error::Kubeconfig { message, .. } => anyhow::anyhow!("kubeconfig {path}: {message}"),
        e => e.into(),
    })?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    Credentials::write_kubeconfig(out, &text)?;
    Ok(())
}

pub async fn run_join(args: JoinArgs) -> anyhow::Result<()> {
    let labels = parse_labels(&args.labels)?;
    join(
        &args.hub_kubeconfig,
        &args.name,
        labels,
        args.heartbeat_period_seconds,
        &args.out,
    )
    .await?;
    eprintln!(
        "member cluster {} joined the hub; start its agent with:\n  flotilla agent --name {} --hub-kubeconfig {} --member-kubeconfig MEMBER_KUBECONFIG",
        args.name,
        args.name,
        args.out.display()
    );
    Ok(())
}

/// `flotilla up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// Number of simulated members.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Directory for the hub's and members' state and kubeconfigs.
    #[arg(long, value_name = "DIR", default_value = ".flotilla/fleet")]
    data_dir: PathBuf,
    /// Address of the hub.
    #[arg(long, default_value = "127.0.0.1:6443", value_name = "ADDR:PORT")]
    bind: SocketAddr,
    /// Heartbeat period of the members.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    heartbeat_period_seconds: u32,
    /// A real cluster to join as one more member (after the simulated ones), by its kubeconfig;
    /// repeatable. Its agent runs in this process; the kubeconfig is copied to
    /// DIR/member-K/admin.kubeconfig beside the simulated members'.
    #[arg(long = "real-member", value_name = "KUBECONFIG")]
    real_members: Vec<PathBuf>,
    /// Join the members to the hub of this (admin) kubeconfig instead of starting one: a
    /// `flotilla hub`, or a Kubernetes API server that `flotilla hub --kubeconfig` runs the
    /// fleet controllers against.
    #[arg(long, value_name = "FILE", conflicts_with = "bind")]
    hub_kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    sim: SimArgs,
    #[command(flatten)]
    fleet: HubFleetArgs,
}

pub async fn run_up(args: UpArgs) -> anyhow::Result<()> {
    // Every input is read before anything starts.
    let real_members = args
        .real_members
        .iter()
        .map(|source| {
            std::fs::read_to_string(source)
                .map(|text| (source.clone(), text))
                .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", source.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (hub, hub_kubeconfig) = match &args.hub_kubeconfig {
        Some(kc) => (None, kc.clone()),
        None => {
            let hub_dir = args.data_dir.join("hub");
            let store = open_redb(&hub_dir)?;
            let hub_config = args.fleet.config();
            let hub = serve(
                &hub_dir,
                args.bind,
                store,
                ServerConfig::default(),
                "flotilla",
                Duration::from_secs(10),
                |server, creds| async move { start_hub(&server, &creds, hub_config).await },
            )
            .await?;
            eprintln!("hub ready at {}", hub.url);
            let kc = hub.kubeconfig.clone();
            (Some(hub), kc)
        }
    };
    let hub_mcs = member_cluster_api(client_from_kubeconfig(&hub_kubeconfig).await?);
    let mut members = Vec::new();
    let mut agents = Vec::new();
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let total = args.members + args.real_members.len();
    for k in 1..=total {
        let name = format!("member-{k}");
        let dir = args.data_dir.join(&name);
        let (served, member_kubeconfig, url) = if k <= args.members {
            let mut sim = args.sim.config(&name)?;
            for (key, v) in flotilla_sim::member_labels(k) {
                sim.node_labels.entry(key).or_insert(v);
            }
            let served =
                start_member(&name, &dir, "127.0.0.1:0".parse()?, StoreKind::Redb, sim).await?;
            let (kc, url) = (served.kubeconfig.clone(), served.url.clone());
            (Some(served), kc, url)
        } else {
            let (source, text) = &real_members[k - args.members - 1];
            std::fs::create_dir_all(&dir)?;
            let kc = dir.join("admin.kubeconfig");
            flotilla_apiserver::Credentials::write_kubeconfig(&kc, text)?;
            (None, kc, format!("the cluster of {}", source.display()))
        };
        let member_client = client_from_kubeconfig(&member_kubeconfig).await?;
        let agent_kubeconfig = dir.join("agent-hub.kubeconfig");
        let exists = hub_mcs.get_opt(&name).await?.is_some();
        if !exists || !agent_kubeconfig.exists() {
            if exists {
                // The credentials are gone: join again.
                hub_mcs.delete(&name, &Default::default()).await?;
                wait_gone(&hub_mcs, &name).await?;
            }
            join(
                &hub_kubeconfig,
                &name,
                flotilla_sim::member_labels(k),
                args.heartbeat_period_seconds,
                &agent_kubeconfig,
            )
            .await?;
        }
        let hub_client = client_from_kubeconfig(&agent_kubeconfig).await?;
        let mut stop = stop_tx.subscribe();
        agents.push(tokio::spawn(
            flotilla_agent::Agent {
                name: name.clone(),
                hub: hub_client,
                member: member_client,
            }
            .run(async move {
                let _ = stop.recv().await;
            }),
        ));
        eprintln!("{name} ready at {url} (joined)");
        members.push((name, member_kubeconfig, served));
    }
    let hub_kc = hub_kubeconfig.display().to_string();
    eprintln!(
        "\nflotilla fleet is up: a hub, {} simulated and {} real members.",
        args.members,
        args.real_members.len()
    );
    eprintln!("  hub:      export KUBECONFIG={hub_kc}");
    for (name, kubeconfig, _) in &members {
        eprintln!("  {name}: {}", kubeconfig.display());
    }
    eprintln!("\nTry:");
    eprintln!("  kubectl --kubeconfig {hub_kc} get memberclusters");
    eprintln!("  kubectl --kubeconfig {hub_kc} get membercluster member-1 -o yaml");
    if let Some((_, kubeconfig, _)) = members.first() {
        eprintln!("  kubectl --kubeconfig {} get nodes", kubeconfig.display());
    }
    eprintln!("\nCtrl-C stops the fleet; running `flotilla up` again with the same --data-dir resumes it.");
    crate::shutdown_signal().await;
    eprintln!("stopping the fleet");
    let _ = stop_tx.send(());
    for a in agents {
        let _ = a.await;
    }
    for (_, _, served) in members {
        if let Some(m) = served {
            m.stop().await?;
        }
    }
    match hub {
        Some(hub) => hub.stop().await,
        None => Ok(()),
    }
}

async fn wait_gone(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while api.get_opt(name).await?.is_some() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("member cluster {name} was not removed within 60s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
