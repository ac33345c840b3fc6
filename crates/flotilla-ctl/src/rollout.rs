//! `flotilla rollout status|stop|resume|undo` and `flotilla approve`.

use std::time::{Duration, Instant};

use flotilla_api::conditions;
use flotilla_api::placement::staged::label;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::report::{self, Outcome, Report};
use crate::{Connection, Error, Hub, Output};

/// `flotilla rollout ...`.
#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    action: RolloutAction,
    #[command(flatten)]
    connection: Connection,
}

#[derive(clap::Subcommand, Debug)]
enum RolloutAction {
    /// Show a placement's rollout: per cluster (rolling update) or per stage of its latest
    /// staged update run. Exit code: 0 done, 1 failed, 3 stopped, 4 still in progress.
    Status {
        /// The placement.
        placement: String,
        /// A staged update run to show (default: the placement's most recent).
        #[arg(long)]
        run: Option<String>,
        /// Redraw as it changes until it is done, failed or stopped.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: give up after this many seconds (exit 4).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Stop a staged update run: clusters updating finish, no new one starts.
    Stop {
        /// The run.
        run: String,
    },
    /// Resume a stopped (or only initialized) staged update run.
    Resume {
        /// The run.
        run: String,
    },
    /// Roll a placement with the External strategy back (or forward) to a resource snapshot:
    /// creates a staged update run that releases it.
    Undo {
        /// The placement.
        placement: String,
        /// The resource snapshot index to release.
        #[arg(long, value_name = "N")]
        to_index: u64,
        /// The update strategy (default: the one of the placement's most recent run).
        #[arg(long)]
        strategy: Option<String>,
    },
}

/// `flotilla approve`.
#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The run (with STAGE), or the approval request's name.
    run_or_request: String,
    /// The stage whose pending approval to give.
    stage: Option<String>,
    /// Why (recorded in the Approved condition's message).
    #[arg(long, default_value = "approved with flotilla approve")]
    message: String,
    #[command(flatten)]
    connection: Connection,
}

fn print(r: &Report, output: Output) -> Result<(), Error> {
    match output {
        Output::Table => print!("{}", report::render(r)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report::to_value(r))?),
        Output::Yaml => print!("{}", serde_yaml::to_string(&report::to_value(r))?),
    }
    Ok(())
}

/// Runs `flotilla rollout ...`; returns the exit code.
pub async fn rollout(args: RolloutArgs) -> Result<u8, Error> {
    let hub = Hub::connect(&args.connection).await?;
    match args.action {
        RolloutAction::Status {
            placement,
            run,
            watch,
            timeout,
            output,
        } => {
            let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
            let mut last = None;
            loop {
                let r = hub.report(&placement, run.as_deref()).await?;
                if last.as_ref() != Some(&r) {
                    print(&r, output)?;
                }
                if !watch || r.outcome != Outcome::InProgress {
                    return Ok(r.outcome.code());
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Outcome::InProgress.code());
                }
                last = Some(r);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        RolloutAction::Stop { run } => set_state(&hub, &run, "Stop").await,
        RolloutAction::Resume { run } => set_state(&hub, &run, "Run").await,
        RolloutAction::Undo {
            placement,
            to_index,
            strategy,
        } => undo(&hub, &placement, to_index, strategy).await,
    }
}

async fn set_state(hub: &Hub, run: &str, state: &str) -> Result<u8, Error> {
    let r = hub.get(&hub.kinds.run, run).await?;
    let conds = &r["status"]["conditions"];
    if conditions::find(conds, "Succeeded").is_some_and(|c| c["status"] != "Unknown") {
        return Err(Error::Refused(format!(
            "run {run:?} is finished ({}): start a new run",
            conditions::find(conds, "Succeeded").unwrap()["reason"]
                .as_str()
                .unwrap_or("")
        )));
    }
    hub.api(&hub.kinds.run)
        .patch(
            run,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"state": state}})),
        )
        .await?;
    println!("run {run} set to {state}");
    Ok(0)
}

async fn undo(
    hub: &Hub,
    placement: &str,
    to_index: u64,
    strategy: Option<String>,
) -> Result<u8, Error> {
    let p = hub.get(&hub.kinds.placement, placement).await?;
    if p["spec"]["strategy"]["type"] != "External" {
        return Err(Error::Refused(format!(
            "placement {placement:?} rolls out with RollingUpdate: its clusters get what it selects on the hub; revert the resources there, or switch it to spec.strategy.type External to release older snapshots with staged update runs"
        )));
    }
    let strategy = match strategy {
        Some(s) => s,
        None => hub
            .runs_of(placement)
            .await?
            .first()
            .and_then(|r| r["spec"]["stagedRolloutStrategyName"].as_str().map(String::from))
            .ok_or_else(|| {
                Error::Refused(format!(
                    "placement {placement:?} has no staged update run to take the strategy from: give --strategy"
                ))
            })?,
    };
    let name = format!(
        "{placement}-to-{to_index}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    let mut run = json!({"apiVersion": hub.kinds.run.api_version, "kind": hub.kinds.run.kind,
        "metadata": {"name": name},
        "spec": {"placementName": placement, "resourceSnapshotIndex": to_index.to_string(),
            "stagedRolloutStrategyName": strategy, "state": "Run"}});
    if let Some(ns) = &hub.namespace {
        run["metadata"]["namespace"] = json!(ns);
    }
    hub.api(&hub.kinds.run)
        .create(&PostParams::default(), &serde_json::from_value(run)?)
        .await?;
    println!("created run {name}: releases resource snapshot {to_index} of {placement} through strategy {strategy}");
    Ok(0)
}

/// Runs `flotilla approve`; returns the exit code.
pub async fn approve(args: ApproveArgs) -> Result<u8, Error> {
    let hub = Hub::connect(&args.connection).await?;
    let api = hub.api(&hub.kinds.approval);
    let names: Vec<String> = match &args.stage {
        None => {
            hub.get(&hub.kinds.approval, &args.run_or_request).await?;
            vec![args.run_or_request.clone()]
        }
        Some(stage) => {
            let run = &args.run_or_request;
            let selector = format!(
                "{}={run},{}={stage}",
                label::TARGET_UPDATE_RUN,
                label::TARGET_STAGE
            );
            let list = api.list(&ListParams::default().labels(&selector)).await?;
            let pending: Vec<String> = list
                .items
                .iter()
                .filter(|a| !conditions::is_true(&a.data["status"]["conditions"], "Approved"))
                .filter_map(|a| a.metadata.name.clone())
                .collect();
            if pending.is_empty() {
                return Err(Error::Refused(if list.items.is_empty() {
                    format!("run {run:?} has no approval request for stage {stage:?} yet: the run creates it when it reaches the stage")
                } else {
                    format!("stage {stage:?} of run {run:?} is already approved")
                }));
            }
            pending
        }
    };
    for name in names {
        let req = hub.get(&hub.kinds.approval, &name).await?;
        let mut conds = req["status"]["conditions"].clone();
        conditions::set_status(
            &mut conds,
            "Approved",
            "True",
            "ApprovedByFlotilla",
            &args.message,
            req["metadata"]["generation"].as_i64(),
            &conditions::timestamp(chrono::Utc::now()),
        );
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": conds}})),
        )
        .await?;
        println!("approved {name}");
    }
    Ok(0)
}
