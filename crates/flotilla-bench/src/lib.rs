//! The benchmarks behind `flotilla bench`: the API server (`api.rs`), a fleet of simulated
//! members and placement over it (`fleet.rs`, its hub in a process or in this one through
//! `inproc.rs`), rollouts over it (`rollout.rs`), the whole fleet-scale scenario
//! (`scale/`, with `progress.rs`'s bars), backup and
//! restore (`backup.rs`), and one scheduling decision (`scheduler.rs`). Each starts what it measures (hub processes, an etcd,
//! simulated members) through `harness.rs` and reports latency, throughput, CPU and memory.
//! Figures are recorded in docs/BENCHMARKS.md, never asserted in tests.

mod api;
mod backup;
mod fleet;
mod harness;
mod inproc;
mod progress;
mod rollout;
mod scale;
mod scheduler;

/// Which benchmark to run.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// API server throughput, latency, memory and watch delivery.
    Api(api::ApiBenchArgs),
    /// Hub CPU and memory with N simulated members sending heartbeats.
    Members(fleet::MembersBenchArgs),
    /// Time from creating a PickN placement to Available on every picked member, over a
    /// fleet of simulated members.
    Placement(fleet::PlacementBenchArgs),
    /// Backup, restore and restart times at N objects (recovery point and recovery time).
    Backup(backup::BackupBenchArgs),
    /// One PickN scheduling decision over 1,000 and 10,000 clusters.
    Scheduler(scheduler::SchedulerBenchArgs),
    /// Staged update runs of 3 stages over a fleet of simulated members, one after the other.
    Staged(rollout::StagedBenchArgs),
    /// Many placements' rolling updates at once over a fleet of simulated members.
    Rolling(rollout::RollingBenchArgs),
    /// KubeFleet's 1,000-cluster scenarios in one run: join and idle, first placement, P
    /// placements at once, one more beside them and beside 100 rollouts, hub restart, 100
    /// rolling updates, the agent's own cost; a results table with targets, and JSON.
    Fleet(scale::FleetBenchArgs),
}

/// Arguments of `flotilla bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

/// Runs `flotilla bench` until it ends or `interrupted` resolves (the benchmark's future is
/// then dropped, and with it the processes it started).
pub async fn run(
    args: BenchArgs,
    interrupted: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::select! {
        r = run_command(args) => r,
        _ = interrupted => anyhow::bail!("interrupted"),
    }
}

async fn run_command(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Api(a) => api::run(a).await,
        BenchCommand::Members(a) => fleet::run(a).await,
        BenchCommand::Placement(a) => fleet::run_placement(a).await,
        BenchCommand::Backup(a) => backup::run(a).await,
        BenchCommand::Scheduler(a) => scheduler::run(a),
        BenchCommand::Staged(a) => rollout::run_staged(a).await,
        BenchCommand::Rolling(a) => rollout::run_rolling(a).await,
        BenchCommand::Fleet(a) => scale::run(a).await,
    }
}
