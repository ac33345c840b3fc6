//! `flotilla hub backup` and `flotilla hub restore`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use futures::AsyncBufReadExt as _;

use crate::serve::{client_from_kubeconfig, EtcdArgs, StoreKind};

/// What `flotilla hub` does instead of serving.
#[derive(clap::Subcommand)]
pub enum HubAction {
    /// Write every object of a running hub, at one consistent revision, to a file (any store).
    Backup(BackupArgs),
    /// Create a hub's store from a backup: an empty data directory (redb) or an empty etcd
    /// prefix. Run it with the hub stopped, then start the hub on the restored store.
    Restore(RestoreArgs),
}

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Admin kubeconfig of the hub (DATA_DIR/admin.kubeconfig).
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// The backup file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file (from `flotilla hub backup`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The hub's data directory (for redb: the store is created in it).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The store to restore into.
    #[arg(long, value_enum, default_value = "redb")]
    store: StoreKind,
    #[command(flatten)]
    etcd: EtcdArgs,
}

pub async fn run(action: HubAction) -> anyhow::Result<()> {
    match action {
        HubAction::Backup(a) => backup(a).await,
        HubAction::Restore(a) => restore(a).await,
    }
}

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let client = client_from_kubeconfig(&args.kubeconfig).await?;
    let req = http::Request::get("/flotilla/backup").body(Vec::new())?;
    let mut lines = client
        .request_stream(req)
        .await
        .map_err(|e| anyhow::anyhow!("asking the hub for a backup: {}", crate::serve::brief(&e)))?
        .lines();
    let tmp = args.out.with_extension("partial");
    let file = std::fs::File::create(&tmp)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut count = 0usize;
    let mut complete = false;
    let mut revision = 0;
    use futures::StreamExt as _;
    while let Some(line) = lines.next().await {
        let line = line.map_err(|e| anyhow::anyhow!("reading the backup stream: {e}"))?;
        if count == 0 && revision == 0 {
            let head: serde_json::Value = serde_json::from_str(&line)
                .map_err(|_| anyhow::anyhow!("the hub did not send a backup: {line}"))?;
            revision = head["revision"].as_u64().unwrap_or(0);
        } else if line.starts_with("{\"end\":true") {
            complete = true;
        } else {
            count += 1;
            if count.is_multiple_of(10_000) {
                eprintln!("  {count} objects");
            }
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    if !complete {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("the backup stream ended early; nothing was written");
    }
    std::fs::rename(&tmp, &args.out)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "backed up {count} objects at revision {revision} to {} in {:.2} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let into_etcd = match args.store {
        StoreKind::Memory => anyhow::bail!("restore into redb or etcd (memory keeps nothing)"),
        StoreKind::Redb => false,
        StoreKind::Etcd => true,
    };
    let file = std::fs::File::open(&args.from)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", args.from.display()))?;
    let backup = flotilla_store::backup::read(std::io::BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.from.display()))?;
    let count = backup.objects.len();
    let revision = backup.revision;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", args.data_dir.display()))?;
    if into_etcd {
        let store = crate::serve::open_store(StoreKind::Etcd, &args.data_dir, &args.etcd).await?;
        flotilla_store::backup::restore_into(&store, backup, |n| {
            eprintln!("  {n}/{count} objects");
        })
        .await
        .map_err(|e| anyhow::anyhow!("restoring into etcd: {e}"))?;
    } else {
        let path = args.data_dir.join("store.redb");
        flotilla_store::backup::restore_redb(&path, &backup)
            .map_err(|e| anyhow::anyhow!("restoring into {}: {e}", path.display()))?;
    }
    eprintln!(
        "restored {count} objects (backup revision {revision}) in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
