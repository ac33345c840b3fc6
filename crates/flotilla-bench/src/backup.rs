//! `flotilla bench backup`: what a fleet operator plans around — how long `flotilla hub backup`
//! takes at N objects (the recovery point can be no fresher than that), and how long a restore
//! plus a hub start on the restored store takes (the recovery time). It runs the real commands
//! as separate processes, as an operator would, and checks that the restored hub serves every
//! object.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::harness::{configmap, run_phase, spawn_hub, start_hubs, Procs};

/// Arguments of `flotilla bench backup`.
#[derive(clap::Args)]
pub struct BackupBenchArgs {
    /// Store of the hub that is backed up and restored.
    #[arg(long, default_value = "redb", value_parser = ["redb", "etcd"])]
    store: String,
    /// Objects in the hub when it is backed up.
    #[arg(long, default_value_t = 50_000)]
    objects: usize,
    /// Size of each object's payload in bytes.
    #[arg(long, default_value_t = 1024)]
    object_bytes: usize,
}

async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Runs a `flotilla` subcommand to completion; returns how long it took.
async fn flotilla(args: &[&std::ffi::OsStr]) -> anyhow::Result<Duration> {
    let args: Vec<std::ffi::OsString> = args.iter().map(|a| a.to_os_string()).collect();
    let exe = std::env::current_exe()?;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = std::process::Command::new(exe)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "flotilla {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(started.elapsed())
    })
    .await?
}

pub async fn run(args: BackupBenchArgs) -> anyhow::Result<()> {
    eprintln!("starting a hub (--store {}) ...", args.store);
    let hub = start_hubs(&args.store, 1, &[]).await?;
    let kubeconfig = hub.kubeconfig(0);
    let c = client(&kubeconfig).await?;
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-backup"}}),
    )?;
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    eprintln!("filling to {} objects ...", args.objects);
    let payload: Arc<str> = Arc::from("x".repeat(args.object_bytes.saturating_sub(150).max(1)));
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "bench-backup");
    {
        let api = api.clone();
        run_phase("fill", args.objects, 64, &Procs::default(), move |i| {
            let api = api.clone();
            let cm = configmap(&format!("cm-{i}"), &payload);
            async move {
                api.create(&PostParams::default(), &cm).await?;
                Ok(())
            }
        })
        .await?;
    }

    let work = tempfile::tempdir()?;
    let file = work.path().join("fleet.backup");
    eprintln!("flotilla hub backup ...");
    let backup = flotilla(&[
        "hub".as_ref(),
        "backup".as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
    ])
    .await?;
    let size = std::fs::metadata(&file)?.len();

    // The restored store: a new data directory, or a new prefix on the same etcd.
    let restored = work.path().join("restored");
    let mut store_args: Vec<String> = Vec::new();
    if args.store == "etcd" {
        store_args = hub.store_args_with_prefix("/flotilla-bench-restored");
    }
    eprintln!("flotilla hub restore ...");
    let mut restore_args: Vec<&std::ffi::OsStr> = vec![
        "hub".as_ref(),
        "restore".as_ref(),
        "--from".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
        "--store".as_ref(),
        args.store.as_ref(),
    ];
    restore_args.extend(store_args.iter().map(std::ffi::OsStr::new));
    let restore = flotilla(&restore_args).await?;

    eprintln!("starting a hub on the restored store ...");
    let started = Instant::now();
    let mut child = spawn_hub(&args.store, &store_args, &restored).await?;
    let start = started.elapsed();
    let served = {
        let c = client(&restored.join("admin.kubeconfig")).await?;
        let api: Api<ConfigMap> = Api::namespaced(c, "bench-backup");
        api.list(&ListParams::default()).await?.items.len()
    };
    let _ = child.kill();
    let _ = child.wait();
    drop(hub);
    anyhow::ensure!(
        served == args.objects,
        "the restored hub serves {served} of {} objects",
        args.objects
    );

    println!(
        "## flotilla bench backup (--store {}, {} objects of {} bytes)\n",
        args.store, args.objects, args.object_bytes
    );
    println!("| step | seconds |");
    println!("|---|---|");
    println!(
        "| `flotilla hub backup` ({:.0} MB file) | {:.2} |",
        size as f64 / 1e6,
        backup.as_secs_f64()
    );
    println!("| `flotilla hub restore` | {:.2} |", restore.as_secs_f64());
    println!(
        "| hub start on the restored store, until ready | {:.2} |",
        start.as_secs_f64()
    );
    println!(
        "| recovery time (restore + start) | {:.2} |",
        (restore + start).as_secs_f64()
    );
    println!("\nthe restored hub serves all {served} objects");
    Ok(())
}
