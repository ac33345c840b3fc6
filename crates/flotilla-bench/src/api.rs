//! `flotilla bench api`: measures a hub's API over HTTPS with the `kube` client — create, get
//! and patch throughput and latency at several concurrencies, LIST of 10,000 objects, watch
//! delivery latency to 100 watchers, and the hub's memory and CPU per request.
//!
//! By default it starts its own hub process (so it can read the hub's RSS and CPU time from
//! /proc); `--kubeconfig` measures an already running server instead. With `--store etcd` it
//! starts a single-member etcd of its own (unless given `--etcd-endpoints`) and `--replicas`
//! hub processes on it; the load is spread over the replicas, watchers too, while the updates
//! they watch go through the first one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::harness::*;

/// Arguments of `flotilla bench api`.
#[derive(clap::Args)]
pub struct ApiBenchArgs {
    /// Store of the hub the benchmark starts.
    #[arg(long, default_value = "redb", value_parser = ["redb", "memory", "etcd"])]
    store: String,
    /// Hub replicas to start (more than one needs --store etcd).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    replicas: u16,
    /// etcd to use with --store etcd (default: a single-member etcd the benchmark starts).
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Measure the server of this kubeconfig instead of starting a hub (no RSS/CPU figures).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Objects for the memory figure after the 10,000-object phase.
    #[arg(long, default_value_t = 50_000)]
    max_objects: usize,
    /// Size of each object's payload in bytes.
    #[arg(long, default_value_t = 1024)]
    object_bytes: usize,
}

pub(crate) async fn run(args: ApiBenchArgs) -> anyhow::Result<()> {
    let replicas = usize::from(args.replicas);
    if replicas > 1 && args.store != "etcd" {
        anyhow::bail!("--replicas {replicas} needs --store etcd (replicas share etcd)");
    }
    if args.kubeconfig.is_some() && replicas > 1 {
        anyhow::bail!("--replicas starts hubs; it does not apply with --kubeconfig");
    }
    let (hub, kubeconfigs) = match &args.kubeconfig {
        Some(k) => (None, vec![k.clone()]),
        None => {
            eprintln!(
                "starting {replicas} hub replica(s) (--store {}) ...",
                args.store
            );
            let h = start_hubs(&args.store, replicas, &args.etcd_endpoints).await?;
            let k = (0..replicas).map(|r| h.kubeconfig(r)).collect();
            (Some(h), k)
        }
    };
    let pid = hub.as_ref().map(|h| h.pid);
    let procs = Procs {
        hubs: hub.as_ref().map(|h| h.pids.clone()).unwrap_or_default(),
        etcd: hub.as_ref().and_then(|h| h.etcd_pid()),
    };
    let mut clients = Vec::new();
    for k in &kubeconfigs {
        let kc = Kubeconfig::read_from(k)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        clients.push(kube::Client::try_from(config)?);
    }
    let client = clients[0].clone();
    // Operation i goes through replica i mod replicas.
    let spread = |ns: &str| -> Vec<Api<ConfigMap>> {
        clients
            .iter()
            .map(|c| Api::namespaced(c.clone(), ns))
            .collect()
    };
    let payload: Arc<str> = Arc::from("x".repeat(args.object_bytes.saturating_sub(150).max(1)));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [
        "bench-c1",
        "bench-c16",
        "bench-c64",
        "bench-list",
        "bench-watch",
    ] {
        let n: Namespace = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?;
        if let Err(e) = namespaces.create(&PostParams::default(), &n).await {
            anyhow::bail!("creating namespace {ns}: {e} (is the server empty?)");
        }
    }
    let rss = || {
        (
            pid.and_then(proc_usage).map(|u| u.1),
            procs.etcd.and_then(proc_usage).map(|u| u.1),
        )
    };
    let idle_rss = rss();
    let mut phases = Vec::new();
    eprintln!("creates:");
    for (c, n) in [(1usize, 1000usize), (16, 4000), (64, 5000)] {
        let apis = spread(&format!("bench-c{c}"));
        let payload = payload.clone();
        phases.push(
            run_phase(
                &format!("create, concurrency {c}"),
                n,
                c,
                &procs,
                move |i| {
                    let api = apis[i % apis.len()].clone();
                    let cm = configmap(&format!("cm-{i}"), &payload);
                    async move {
                        api.create(&PostParams::default(), &cm).await?;
                        Ok(())
                    }
                },
            )
            .await?,
        );
    }
    eprintln!("reads and patches:");
    {
        let apis = spread("bench-c16");
        phases.push(
            run_phase("get, concurrency 16", 10_000, 16, &procs, move |i| {
                let api = apis[i % apis.len()].clone();
                async move {
                    api.get(&format!("cm-{}", i % 4000)).await?;
                    Ok(())
                }
            })
            .await?,
        );
        let apis = spread("bench-c16");
        phases.push(
            run_phase("merge patch, concurrency 16", 4000, 16, &procs, move |i| {
                let api = apis[i % apis.len()].clone();
                async move {
                    let p = json!({"metadata": {"labels": {"patched": i.to_string()}}});
                    api.patch(
                        &format!("cm-{}", i % 4000),
                        &PatchParams::default(),
                        &Patch::Merge(&p),
                    )
                    .await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    eprintln!("filling bench-list to 10,000 objects ...");
    {
        let apis = spread("bench-list");
        let payload = payload.clone();
        run_phase("fill", 10_000, 64, &procs, move |i| {
            let api = apis[i % apis.len()].clone();
            let cm = configmap(&format!("cm-{i}"), &payload);
            async move {
                api.create(&PostParams::default(), &cm).await?;
                Ok(())
            }
        })
        .await?;
    }
    let rss_10k = rss();
    eprintln!("LIST of 10,000 objects:");
    // The LIST figure is the server's: the response is read as bytes, not decoded into
    // 10,000 typed objects on the client.
    let list = {
        let clients = clients.clone();
        run_phase(
            "list 10,000 objects, concurrency 1",
            20,
            1,
            &procs,
            move |i| {
                let client = clients[i % clients.len()].clone();
                async move {
                    let req = http::Request::get("/api/v1/namespaces/bench-list/configmaps")
                        .body(kube::client::Body::empty())?;
                    let resp = client.send(req).await?;
                    anyhow::ensure!(resp.status().is_success(), "LIST failed: {}", resp.status());
                    let body = http_body_util::BodyExt::collect(resp.into_body())
                        .await?
                        .to_bytes();
                    anyhow::ensure!(
                        body.len() > 10_000 * 1000,
                        "LIST returned only {} bytes",
                        body.len()
                    );
                    Ok(())
                }
            },
        )
        .await?
    };
    eprintln!("watch delivery: 100 watchers, 1,000 updates ...");
    let watch = watch_delivery(&clients).await?;
    let total_so_far = 1000 + 4000 + 5000 + 10_000 + 1;
    let extra = args.max_objects.saturating_sub(total_so_far);
    let mut rss_max = (None, None);
    if extra > 0 {
        eprintln!("filling to {} objects ...", args.max_objects);
        let apis = spread("bench-list");
        let payload = payload.clone();
        run_phase("fill", extra, 64, &procs, move |i| {
            let api = apis[i % apis.len()].clone();
            let cm = configmap(&format!("more-{i}"), &payload);
            async move {
                api.create(&PostParams::default(), &cm).await?;
                Ok(())
            }
        })
        .await?;
        rss_max = rss();
    }
    let mut hub = hub;
    let mut restart = None;
    if let Some(h) = hub.as_mut().filter(|h| h.store != "memory") {
        eprintln!("killing the hub (SIGKILL) and restarting it on its data ...");
        restart = Some(h.kill_and_restart().await?);
    }

    let replicas_note = if replicas > 1 {
        format!(", {replicas} replicas, load spread over them")
    } else {
        String::new()
    };
    println!(
        "## flotilla bench api (--store {}{replicas_note})\n",
        args.store
    );
    println!("| operation | count | ops/s | p50 ms | p99 ms | hub CPU ms/op | etcd CPU ms/op |");
    println!("|---|---|---|---|---|---|---|");
    for p in &phases {
        println!("{}", p.row());
    }
    println!("{}", list.row());
    let mut wl = watch.clone();
    wl.sort();
    println!(
        "\nwatch delivery, 100 watchers x 1,000 updates ({} deliveries): p50 {} ms, p99 {} ms, max {} ms",
        wl.len(),
        ms(percentile(&wl, 0.5)),
        ms(percentile(&wl, 0.99)),
        ms(wl.last().copied().unwrap_or_default())
    );
    let mb = |b: Option<u64>| {
        b.map(|b| format!("{:.0} MB", b as f64 / 1e6))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "hub RSS (first replica): idle {}, after 10,000 objects {}, after {} objects {}",
        mb(idle_rss.0),
        mb(rss_10k.0),
        args.max_objects,
        mb(rss_max.0)
    );
    if procs.etcd.is_some() {
        println!(
            "etcd RSS: idle {}, after 10,000 objects {}, after {} objects {}",
            mb(idle_rss.1),
            mb(rss_10k.1),
            args.max_objects,
            mb(rss_max.1)
        );
    }
    if let Some(took) = restart {
        let how = if args.store == "etcd" {
            " (its watch cache reloaded from etcd)"
        } else {
            ""
        };
        println!(
            "hub restart after kill -9 with {} objects: ready in {:.2} s{how}",
            args.max_objects,
            took.as_secs_f64()
        );
    }
    drop(hub);
    Ok(())
}

/// 100 watchers on one namespace; 1,000 sequential updates each carrying the time they were
/// sent; returns every watcher's delivery latency. With several replicas, watchers are spread
/// over them and the updates go through the first.
async fn watch_delivery(clients: &[kube::Client]) -> anyhow::Result<Vec<Duration>> {
    let api: Api<ConfigMap> = Api::namespaced(clients[0].clone(), "bench-watch");
    let created = api
        .create(&PostParams::default(), &configmap("target", "0"))
        .await?;
    let rv = created.metadata.resource_version.unwrap_or_default();
    let origin = Instant::now();
    let updates = 1000usize;
    let mut watchers = Vec::new();
    for w in 0..100 {
        // Watchers are spread over the replicas; the updates go through the first one.
        let api: Api<ConfigMap> =
            Api::namespaced(clients[w % clients.len()].clone(), "bench-watch");
        let rv = rv.clone();
        let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
        watchers.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut lat = Vec::with_capacity(updates);
            while lat.len() < updates {
                match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
                    Ok(Some(Ok(WatchEvent::Modified(cm)))) => {
                        let sent: u64 = cm
                            .data
                            .as_ref()
                            .and_then(|d| d.get("payload"))
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0);
                        let now = origin.elapsed().as_micros() as u64;
                        lat.push(Duration::from_micros(now.saturating_sub(sent)));
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            lat
        }));
    }
    // Give every watch time to be established before the first update.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..updates {
        let sent = origin.elapsed().as_micros().to_string();
        let p = json!({"data": {"payload": sent}});
        api.patch("target", &PatchParams::default(), &Patch::Merge(&p))
            .await?;
    }
    let mut all = Vec::new();
    for w in watchers {
        all.extend(w.await?);
    }
    anyhow::ensure!(
        all.len() == 100 * updates,
        "only {} of {} deliveries arrived",
        all.len(),
        100 * updates
    );
    Ok(all)
}
