//! `flotilla bench scheduler`: one PickN decision over a fleet of 1,000 and 10,000 clusters,
//! with required affinity (labels and a property selector), preferred affinity (a label and a
//! property sorter) and a topology spread constraint; the scheduler is a pure function, so this
//! times it directly, in process.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flotilla_scheduler::{schedule, Cluster, Policy, Request};
use serde_json::json;

/// Arguments of `flotilla bench scheduler`.
#[derive(clap::Args)]
pub struct SchedulerBenchArgs {
    /// Fleet sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000])]
    clusters: Vec<usize>,
    /// Clusters each decision picks.
    #[arg(long, default_value_t = 100)]
    pick: u32,
    /// Decisions timed per fleet size.
    #[arg(long, default_value_t = 200)]
    runs: usize,
}

/// A fleet of `n` clusters: 5 regions x 3 zones, two environments, some with GPUs, available
/// CPU between 0 and 64 cores, a cost per core; one in 20 tainted. Deterministic.
pub fn fleet(n: usize) -> Vec<Cluster> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|i| {
            let mut c = Cluster::new(format!("member-{i:05}"));
            let region = format!("region-{}", next() % 5);
            let zone = format!("{region}-{}", next() % 3);
            c.labels.insert("region".into(), region);
            c.labels.insert("zone".into(), zone);
            c.labels.insert(
                "env".into(),
                if next() % 4 == 0 { "staging" } else { "prod" }.into(),
            );
            if next() % 3 == 0 {
                c.labels.insert("gpu".into(), "true".into());
            }
            c.properties.insert(
                "resources.kubernetes-fleet.io/available-cpu".into(),
                (next() % 64_000) as i128,
            );
            c.properties.insert(
                "kubernetes-fleet.io/node-count".into(),
                ((next() % 50 + 1) * 1000) as i128,
            );
            c.properties
                .insert("cost-per-core".into(), (next() % 100) as i128);
            if i % 20 == 0 {
                c.taints.push(flotilla_scheduler::policy::Taint {
                    key: "maintenance".into(),
                    value: "true".into(),
                    effect: "NoSchedule".into(),
                });
            }
            c
        })
        .collect()
}

/// The benchmark's policy: PickN with required labels and properties, preferences by label
/// and by available CPU, spread over zones.
pub fn policy(pick: u32) -> Policy {
    Policy::parse(&json!({
        "placementType": "PickN",
        "numberOfClusters": pick,
        "affinity": {"clusterAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": [{
                "labelSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]},
                "propertySelector": {"matchExpressions": [
                    {"name": "kubernetes-fleet.io/node-count", "operator": "Ge", "values": ["3"]}
                ]}
            }]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 20, "preference": {"labelSelector": {"matchLabels": {"gpu": "true"}}}},
                {"weight": 80, "preference": {"propertySorter": {
                    "name": "resources.kubernetes-fleet.io/available-cpu", "sortOrder": "Descending"}}}
            ]
        }},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
        ]
    }))
    .expect("the benchmark's policy is valid")
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

pub fn run(args: SchedulerBenchArgs) -> anyhow::Result<()> {
    let policy = policy(args.pick);
    let placed = BTreeSet::new();
    println!("## flotilla bench scheduler\n");
    println!(
        "One PickN decision ({} clusters; required labels and property, preferred label and \
         property sorter, spread over 15 zones), {} runs per fleet size.\n",
        args.pick, args.runs
    );
    println!("| clusters | picked | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for &n in &args.clusters {
        let clusters = fleet(n);
        eprintln!("  {n} clusters: {} decisions ...", args.runs);
        let mut times = Vec::with_capacity(args.runs);
        let mut picked = 0;
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let d = schedule(&Request {
                policy: &policy,
                clusters: &clusters,
                placed: &placed,
                same_policy: false,
            });
            times.push(t.elapsed());
            picked = d.selected.len();
            std::hint::black_box(d);
        }
        times.sort();
        let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {n} | {picked} | {} | {} | {} |",
            ms(at(0.5)),
            ms(at(0.99)),
            ms(*times.last().expect("runs"))
        );
    }
    Ok(())
}
