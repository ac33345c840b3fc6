//! Table-driven cases of the scheduler: every policy feature, ties, spread and stability.

use std::collections::BTreeSet;

use flotilla_scheduler::{schedule, Cluster, ClusterState, Policy, Request};
use serde_json::{json, Value};

/// A cluster: `name`, then `key=value` labels, `prop:name=quantity` properties,
/// `taint:key=value` NoSchedule taints, and `state:NotJoined|Unhealthy|Leaving`.
fn c(spec: &str) -> Cluster {
    let mut parts = spec.split_whitespace();
    let mut cluster = Cluster::new(parts.next().expect("a name"));
    for p in parts {
        if let Some(rest) = p.strip_prefix("prop:") {
            let (k, v) = rest.split_once('=').expect("prop:name=value");
            cluster.properties.insert(
                k.to_string(),
                flotilla_api::quantity::parse_milli(v).expect("a quantity"),
            );
        } else if let Some(rest) = p.strip_prefix("taint:") {
            let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
            cluster.taints.push(flotilla_scheduler::policy::Taint {
                key: k.into(),
                value: v.into(),
                effect: "NoSchedule".into(),
            });
        } else if let Some(rest) = p.strip_prefix("state:") {
            cluster.state = match rest {
                "NotJoined" => ClusterState::NotJoined,
                "Unhealthy" => ClusterState::Unhealthy,
                "Leaving" => ClusterState::Leaving,
                other => panic!("state {other}"),
            };
        } else {
            let (k, v) = p.split_once('=').expect("key=value");
            cluster.labels.insert(k.into(), v.into());
        }
    }
    cluster
}

struct Case {
    name: &'static str,
    policy: Value,
    clusters: Vec<&'static str>,
    placed: Vec<&'static str>,
    same_policy: bool,
    /// Expected picks, in pick order.
    want: Vec<&'static str>,
    fulfilled: bool,
}

fn case(
    name: &'static str,
    policy: Value,
    clusters: &[&'static str],
    want: &[&'static str],
) -> Case {
    Case {
        name,
        policy,
        clusters: clusters.to_vec(),
        placed: vec![],
        same_policy: false,
        want: want.to_vec(),
        fulfilled: true,
    }
}

impl Case {
    fn placed(mut self, placed: &[&'static str], same_policy: bool) -> Self {
        self.placed = placed.to_vec();
        self.same_policy = same_policy;
        self
    }
    fn unfulfilled(mut self) -> Self {
        self.fulfilled = false;
        self
    }
}

fn run(cases: Vec<Case>) {
    for k in cases {
        let policy = Policy::parse(&k.policy).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        let clusters: Vec<Cluster> = k.clusters.iter().map(|s| c(s)).collect();
        let placed: BTreeSet<String> = k.placed.iter().map(|s| s.to_string()).collect();
        let d = schedule(&Request {
            policy: &policy,
            clusters: &clusters,
            placed: &placed,
            same_policy: k.same_policy,
        });
        assert_eq!(d.names(), k.want, "{}: {d:#?}", k.name);
        assert_eq!(d.fulfilled, k.fulfilled, "{}: {}", k.name, d.message);
        // Every cluster is accounted for exactly once.
        let mut all: Vec<&str> = d
            .names()
            .into_iter()
            .chain(d.rejected.iter().map(|r| r.name))
            .collect();
        all.sort();
        let mut expected: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        if policy.placement_type == flotilla_scheduler::PlacementType::PickFixed {
            expected = policy.cluster_names.iter().map(String::as_str).collect();
        }
        expected.sort();
        expected.dedup();
        assert_eq!(
            all, expected,
            "{}: every cluster selected or rejected",
            k.name
        );
    }
}

fn required(terms: Value) -> Value {
    json!({"affinity": {"clusterAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"clusterSelectorTerms": terms}}}})
}

fn pick_n(n: u32, mut extra: Value) -> Value {
    extra["placementType"] = json!("PickN");
    extra["numberOfClusters"] = json!(n);
    extra
}

fn preferred(prefs: Value) -> Value {
    json!({"affinity": {"clusterAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": prefs}}})
}

#[test]
fn pick_all_filters_eligibility_labels_properties_and_taints() {
    run(vec![
        case(
            "no policy: every eligible cluster",
            Value::Null,
            &[
                "a",
                "b state:NotJoined",
                "c state:Unhealthy",
                "d state:Leaving",
                "e",
            ],
            &["a", "e"],
        ),
        case(
            "required label",
            required(json!([{"labelSelector": {"matchLabels": {"env": "prod"}}}])),
            &["a env=prod", "b env=dev", "c"],
            &["a"],
        ),
        case(
            "terms are ORed",
            required(json!([
                {"labelSelector": {"matchLabels": {"env": "prod"}}},
                {"labelSelector": {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]}}
            ])),
            &["a env=prod", "b region=eu", "c region=us"],
            &["a", "b"],
        ),
        case(
            "label AND property within a term",
            required(json!([{
                "labelSelector": {"matchLabels": {"env": "prod"}},
                "propertySelector": {"matchExpressions": [{"name": "kubernetes-fleet.io/node-count", "operator": "Ge", "values": ["3"]}]}
            }])),
            &[
                "a env=prod prop:kubernetes-fleet.io/node-count=5",
                "b env=prod prop:kubernetes-fleet.io/node-count=2",
                "c prop:kubernetes-fleet.io/node-count=9",
                "d env=prod",
            ],
            &["a"],
        ),
        case(
            "a taint without a toleration excludes",
            Value::Null,
            &["a taint:gpu=true", "b"],
            &["b"],
        ),
        case(
            "Equal toleration",
            json!({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]}),
            &["a taint:gpu=true", "b taint:gpu=false", "c"],
            &["a", "c"],
        ),
        case(
            "Exists without a key tolerates every taint",
            json!({"tolerations": [{"operator": "Exists"}]}),
            &["a taint:gpu=true", "b taint:spot"],
            &["a", "b"],
        ),
        case(
            "a toleration of another key does not tolerate, whatever its value",
            json!({"tolerations": [{"key": "spot", "operator": "Equal", "value": "true"}]}),
            &["a taint:gpu=true", "b taint:spot=true"],
            &["b"],
        ),
        case(
            "a spread constraint does not filter a PickAll placement",
            spread("zone", 1, "DoNotSchedule"),
            &["a zone=a", "x"],
            &["a", "x"],
        ),
        case(
            "a null propertySorter is no sorter",
            preferred(
                json!([{"weight": 10, "preference": {"labelSelector": null, "propertySorter": null}}]),
            ),
            &["a", "b"],
            &["a", "b"],
        ),
        case(
            "a toleration of another effect does not tolerate",
            json!({"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}]}),
            &["a taint:gpu=true"],
            &[],
        ),
    ]);
}

#[test]
fn property_operators_compare_quantities_exactly() {
    let clusters = [
        "small prop:resources.kubernetes-fleet.io/available-cpu=500m",
        "one prop:resources.kubernetes-fleet.io/available-cpu=1",
        "big prop:resources.kubernetes-fleet.io/available-cpu=4",
        "none",
    ];
    let cases = [
        ("Gt", "1", vec!["big"]),
        ("Ge", "1000m", vec!["one", "big"]),
        ("Eq", "0.5", vec!["small"]),
        ("Ne", "1", vec!["small", "big"]),
        ("Lt", "1", vec!["small"]),
        ("Le", "4", vec!["small", "one", "big"]),
    ];
    let mut table = Vec::new();
    for (op, value, want) in cases {
        let mut k = case(
            "operator",
            required(json!([{"propertySelector": {"matchExpressions": [
                {"name": "resources.kubernetes-fleet.io/available-cpu", "operator": op, "values": [value]}
            ]}}])),
            &clusters,
            &[],
        );
        k.want = want;
        table.push(k);
    }
    run(table);
}

#[test]
fn pick_fixed_takes_the_named_members() {
    run(vec![
        case(
            "named clusters, taints and health aside",
            json!({"placementType": "PickFixed", "clusterNames": ["c", "a"]}),
            &["a taint:gpu=true", "b", "c state:Unhealthy"],
            &["c", "a"],
        ),
        case(
            "a name no member has",
            json!({"placementType": "PickFixed", "clusterNames": ["a", "ghost", "a"]}),
            &["a", "b"],
            &["a"],
        )
        .unfulfilled(),
        case(
            "a member that has not joined or is leaving",
            json!({"placementType": "PickFixed", "clusterNames": ["a", "b", "c"]}),
            &["a", "b state:NotJoined", "c state:Leaving"],
            &["a"],
        )
        .unfulfilled(),
    ]);
}

#[test]
fn pick_n_scores_by_preferences_and_sorters() {
    run(vec![
        case(
            "preferred label",
            pick_n(
                2,
                preferred(
                    json!([{"weight": 50, "preference": {"labelSelector": {"matchLabels": {"tier": "gold"}}}}]),
                ),
            ),
            &["a", "b tier=gold", "c", "d tier=gold"],
            &["b", "d"],
        ),
        case(
            "negative weight avoids",
            pick_n(
                2,
                preferred(
                    json!([{"weight": -80, "preference": {"labelSelector": {"matchLabels": {"spot": "true"}}}}]),
                ),
            ),
            &["a spot=true", "b", "c spot=true", "d"],
            &["b", "d"],
        ),
        case(
            "Descending sorter: most available CPU",
            pick_n(
                2,
                preferred(
                    json!([{"weight": 100, "preference": {"propertySorter": {"name": "resources.kubernetes-fleet.io/available-cpu", "sortOrder": "Descending"}}}]),
                ),
            ),
            &[
                "a prop:resources.kubernetes-fleet.io/available-cpu=2",
                "b prop:resources.kubernetes-fleet.io/available-cpu=16",
                "c prop:resources.kubernetes-fleet.io/available-cpu=8",
                "d",
            ],
            &["b", "c"],
        ),
        case(
            "Ascending sorter: cheapest",
            pick_n(
                1,
                preferred(
                    json!([{"weight": 100, "preference": {"propertySorter": {"name": "cost", "sortOrder": "Ascending"}}}]),
                ),
            ),
            &["a prop:cost=0.5", "b prop:cost=0.2", "c prop:cost=0.9"],
            &["b"],
        ),
        case(
            "a sorter within a label selector grades the matching clusters only",
            pick_n(
                1,
                preferred(json!([
                    {"weight": 100, "preference": {"labelSelector": {"matchLabels": {"env": "prod"}}, "propertySorter": {"name": "cost", "sortOrder": "Ascending"}}}
                ])),
            ),
            &[
                "a prop:cost=0.1",
                "b env=prod prop:cost=0.5",
                "c env=prod prop:cost=0.3",
            ],
            &["c"],
        ),
        case(
            "terms add up",
            pick_n(
                1,
                preferred(json!([
                    {"weight": 30, "preference": {"labelSelector": {"matchLabels": {"ssd": "true"}}}},
                    {"weight": 20, "preference": {"labelSelector": {"matchLabels": {"gpu": "true"}}}}
                ])),
            ),
            &["a ssd=true", "b gpu=true", "c ssd=true gpu=true"],
            &["c"],
        ),
        case(
            "required and preferred together",
            pick_n(1, {
                let mut p = required(json!([{"labelSelector": {"matchLabels": {"env": "prod"}}}]));
                p["affinity"]["clusterAffinity"]
                    ["preferredDuringSchedulingIgnoredDuringExecution"] = json!([{"weight": 10, "preference": {"labelSelector": {"matchLabels": {"zone": "1"}}}}]);
                p
            }),
            &["a zone=1", "b env=prod", "c env=prod zone=1"],
            &["c"],
        ),
    ]);
}

#[test]
fn sorter_weights_scale_linearly_between_the_fleet_minimum_and_maximum() {
    let clusters: Vec<Cluster> = ["a prop:p=10", "b prop:p=20", "c prop:p=100", "d"]
        .iter()
        .map(|s| c(s))
        .collect();
    let none = BTreeSet::new();
    for (order, want) in [
        ("Descending", [("a", 0), ("b", 11), ("c", 100), ("d", 0)]),
        ("Ascending", [("a", 100), ("b", 89), ("c", 0), ("d", 0)]),
    ] {
        let policy = Policy::parse(&pick_n(
            4,
            preferred(json!([{"weight": 100, "preference": {"propertySorter": {"name": "p", "sortOrder": order}}}])),
        ))
        .unwrap();
        let d = schedule(&Request {
            policy: &policy,
            clusters: &clusters,
            placed: &none,
            same_policy: false,
        });
        for (name, score) in want {
            let s = d.selected.iter().find(|s| s.name == name).unwrap();
            assert_eq!(s.score.affinity, score, "{order} {name}");
        }
    }
}

#[test]
fn ties_break_by_placement_then_name() {
    run(vec![
        case("equal scores: names in order", pick_n(2, json!({})), &["c", "a", "b"], &["a", "b"]),
        case(
            "under a changed policy, placed clusters win ties",
            pick_n(2, json!({})),
            &["a", "b", "c", "d"],
            &["c", "a"],
        )
        .placed(&["c"], false),
        case(
            "but a better score beats being placed",
            pick_n(1, preferred(json!([{"weight": 1, "preference": {"labelSelector": {"matchLabels": {"x": "y"}}}}]))),
            &["a", "b x=y"],
            &["b"],
        )
        .placed(&["a"], false),
    ]);
}

#[test]
fn a_placement_stays_where_it_is_under_the_same_policy() {
    let gold = || {
        pick_n(
            2,
            preferred(
                json!([{"weight": 50, "preference": {"labelSelector": {"matchLabels": {"tier": "gold"}}}}]),
            ),
        )
    };
    run(vec![
        case(
            "a better cluster joins: nothing moves",
            gold(),
            &["a", "b", "z tier=gold"],
            &["a", "b"],
        )
        .placed(&["a", "b"], true),
        case(
            "a placed cluster's labels change: it stays",
            pick_n(
                2,
                required(json!([{"labelSelector": {"matchLabels": {"env": "prod"}}}])),
            ),
            &["a", "b env=prod", "c env=prod"],
            &["a", "b"],
        )
        .placed(&["a", "b"], true),
        case(
            "a placed cluster turns unhealthy or tainted: it stays",
            pick_n(2, json!({})),
            &["a state:Unhealthy", "b taint:x=y", "c"],
            &["a", "b"],
        )
        .placed(&["a", "b"], true),
        case(
            "a placed cluster leaves: the next best replaces it",
            gold(),
            &["a state:Leaving", "b", "c", "d tier=gold"],
            &["b", "d"],
        )
        .placed(&["a", "b"], true),
        case(
            "N raised: the placed stay, the best others are added",
            pick_n(3, json!({})),
            &["a", "b", "c", "d"],
            &["c", "d", "a"],
        )
        .placed(&["c", "d"], true),
        case(
            "N lowered: the lowest scored go",
            gold(),
            &["a", "b tier=gold", "c", "d tier=gold"],
            &["b", "d"],
        )
        .placed(&["a", "b", "c", "d"], true),
        case(
            "PickAll: a placed cluster stops matching and stays; a new match is added",
            required(json!([{"labelSelector": {"matchLabels": {"env": "prod"}}}])),
            &["a", "b env=prod", "c env=prod"],
            &["a", "b", "c"],
        )
        .placed(&["a", "b"], true),
        case(
            "PickAll under a changed policy: clusters that no longer match lose it",
            required(json!([{"labelSelector": {"matchLabels": {"env": "prod"}}}])),
            &["a", "b env=prod"],
            &["b"],
        )
        .placed(&["a", "b"], false),
    ]);
}

#[test]
fn pick_n_without_enough_clusters_is_unfulfilled() {
    run(vec![
        case(
            "fewer eligible than N",
            pick_n(3, json!({})),
            &["a", "b state:NotJoined", "c"],
            &["a", "c"],
        )
        .unfulfilled(),
        case("N of 0 picks nothing", pick_n(0, json!({})), &["a"], &[]),
    ]);
}

fn spread(key: &str, skew: u32, when: &str) -> Value {
    json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when}]})
}

#[test]
fn topology_spread_constraints() {
    let zones = [
        "a1 zone=a prop:p=9",
        "a2 zone=a prop:p=8",
        "a3 zone=a prop:p=7",
        "b1 zone=b prop:p=3",
        "b2 zone=b prop:p=2",
        "c1 zone=c prop:p=1",
    ];
    let mut by_p = spread("zone", 1, "DoNotSchedule");
    by_p["affinity"] = preferred(json!([{"weight": 100, "preference": {"propertySorter": {"name": "p", "sortOrder": "Descending"}}}]))["affinity"].clone();
    run(vec![
        case(
            "one per zone before a second anywhere, best first",
            pick_n(3, by_p.clone()),
            &zones,
            &["a1", "b1", "c1"],
        ),
        case(
            "then the best again",
            pick_n(4, by_p.clone()),
            &zones,
            &["a1", "b1", "c1", "a2"],
        ),
        case(
            "without spread the scores alone decide",
            pick_n(
                3,
                preferred(
                    json!([{"weight": 100, "preference": {"propertySorter": {"name": "p", "sortOrder": "Descending"}}}]),
                ),
            ),
            &zones,
            &["a1", "a2", "a3"],
        ),
        case(
            "DoNotSchedule is a hard limit",
            pick_n(4, spread("zone", 1, "DoNotSchedule")),
            &[
                "a1 zone=a",
                "b1 zone=b",
                "b2 zone=b",
                "b3 zone=b",
                "b4 zone=b",
            ],
            &["a1", "b1", "b2"],
        )
        .unfulfilled(),
        case(
            "ScheduleAnyway is a preference",
            pick_n(4, spread("zone", 1, "ScheduleAnyway")),
            &[
                "a1 zone=a",
                "b1 zone=b",
                "b2 zone=b",
                "b3 zone=b",
                "b4 zone=b",
            ],
            &["a1", "b1", "b2", "b3"],
        ),
        case(
            "DoNotSchedule filters clusters without the topology label",
            pick_n(2, spread("zone", 1, "DoNotSchedule")),
            &["a1 zone=a", "x", "b1 zone=b"],
            &["a1", "b1"],
        ),
        case(
            "ScheduleAnyway ranks clusters without the label last",
            pick_n(3, spread("zone", 1, "ScheduleAnyway")),
            &["a other=1", "b zone=b", "c zone=c"],
            &["b", "c", "a"],
        ),
        case(
            "maxSkew 2 allows two ahead",
            pick_n(3, spread("zone", 2, "DoNotSchedule")),
            &["a1 zone=a", "a2 zone=a", "a3 zone=a", "b1 zone=b"],
            &["a1", "a2", "b1"],
        ),
        case(
            "what is placed counts towards the spread",
            pick_n(3, spread("zone", 1, "DoNotSchedule")),
            &[
                "a1 zone=a",
                "a2 zone=a",
                "b1 zone=b",
                "b2 zone=b",
                "c1 zone=c",
            ],
            &["a1", "a2", "b1"],
        )
        .placed(&["a1", "a2"], true),
        case(
            "a kept cluster counts in its domain: the better cluster beside it would exceed the skew",
            pick_n(2, by_p.clone()),
            &["a1 zone=a prop:p=1", "a2 zone=a prop:p=9", "b1 zone=b prop:p=5"],
            &["a1", "b1"],
        )
        .placed(&["a1"], true),
        case(
            "two constraints",
            pick_n(
                4,
                json!({"topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "region", "whenUnsatisfiable": "DoNotSchedule"},
                    {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
                ]}),
            ),
            &[
                "eu1 region=eu zone=z1",
                "eu2 region=eu zone=z2",
                "eu3 region=eu zone=z1",
                "us1 region=us zone=z1",
                "us2 region=us zone=z2",
            ],
            &["eu1", "us2", "eu2", "us1"],
        ),
    ]);
}

#[test]
fn decisions_say_why() {
    let policy = Policy::parse(&pick_n(
        1,
        required(json!([{"labelSelector": {"matchLabels": {"env": "prod"}}}])),
    ))
    .unwrap();
    let clusters: Vec<Cluster> = [
        "a env=prod",
        "b env=prod",
        "c",
        "d env=prod taint:gpu",
        "e env=prod state:Leaving",
        "f env=prod taint:gpu=true",
    ]
    .iter()
    .map(|s| c(s))
    .collect();
    let none = BTreeSet::new();
    let d = schedule(&Request {
        policy: &policy,
        clusters: &clusters,
        placed: &none,
        same_policy: false,
    });
    let why = |n: &str| {
        d.rejected
            .iter()
            .find(|r| r.name == n)
            .unwrap()
            .reason
            .to_string()
    };
    assert!(why("b").contains("scored lower"), "{}", why("b"));
    assert!(
        why("c").contains("required cluster selector terms"),
        "{}",
        why("c")
    );
    assert!(why("d").contains("taint gpu:NoSchedule"), "{}", why("d"));
    assert!(why("e").contains("leaving"), "{}", why("e"));
    assert_eq!(
        why("f"),
        "the cluster has the taint gpu=true:NoSchedule and the placement does not tolerate it"
    );
    assert_eq!(d.message, "picked 1 cluster");

    // Spread: a cluster without the topology label, one the skew blocks while too few are
    // picked, and one that only scored lower once enough are.
    let decide = |n: u32, specs: &[&str]| {
        let policy = Policy::parse(&pick_n(n, spread("zone", 1, "DoNotSchedule"))).unwrap();
        let clusters: Vec<Cluster> = specs.iter().map(|s| c(s)).collect();
        let placed = BTreeSet::new();
        let d = schedule(&Request {
            policy: &policy,
            clusters: &clusters,
            placed: &placed,
            same_policy: false,
        });
        d.rejected
            .iter()
            .map(|r| (r.name.to_string(), r.reason.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        decide(
            4,
            &["a1 zone=a", "b1 zone=b", "b2 zone=b", "b3 zone=b", "x"]
        ),
        [
            (
                "b3".to_string(),
                "picking the cluster would exceed the maxSkew of a topology spread constraint"
                    .to_string()
            ),
            (
                "x".to_string(),
                "the cluster has no label zone for the topology spread constraint".to_string()
            ),
        ]
    );
    // The skew kept a2 out of the last round, but enough were picked: it scored lower.
    assert_eq!(
        decide(2, &["a1 zone=a", "a2 zone=a", "b1 zone=b"]),
        [(
            "a2".to_string(),
            "the cluster scored lower than the 2 picked".to_string()
        )]
    );
    assert_eq!(
        decide(2, &["a1 zone=a", "b1 zone=b", "b2 zone=b"]),
        [(
            "b2".to_string(),
            "the cluster scored lower than the 2 picked".to_string()
        )]
    );
}

#[test]
fn policies_the_scheduler_cannot_use_are_refused_with_the_field() {
    let cases = [
        (
            json!({"placementType": "PickSome"}),
            "spec.policy.placementType",
        ),
        (
            required(
                json!([{"propertySelector": {"matchExpressions": [{"name": "p", "operator": "Bigger", "values": ["1"]}]}}]),
            ),
            "matchExpressions[0].operator",
        ),
        (
            required(
                json!([{"propertySelector": {"matchExpressions": [{"name": "p", "operator": "Gt", "values": ["1", "2"]}]}}]),
            ),
            "must have exactly one value",
        ),
        (
            required(
                json!([{"propertySelector": {"matchExpressions": [{"name": "p", "operator": "Gt", "values": ["lots"]}]}}]),
            ),
            "not a Kubernetes quantity",
        ),
        (
            preferred(json!([{"weight": 101, "preference": {}}])),
            "weight: must be between -100 and 100",
        ),
        (
            preferred(
                json!([{"weight": 1, "preference": {"propertySorter": {"name": "p", "sortOrder": "Up"}}}]),
            ),
            "propertySorter.sortOrder",
        ),
        (spread("zone", 0, "DoNotSchedule"), "maxSkew"),
        (spread("zone", 1, "Sometimes"), "whenUnsatisfiable"),
        (
            json!({"topologySpreadConstraints": [{"maxSkew": 1}]}),
            "topologyKey: Required value",
        ),
        (
            required(
                json!([{"labelSelector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}}]),
            ),
            "labelSelector",
        ),
    ];
    for (policy, want) in cases {
        let err = Policy::parse(&policy).expect_err(want);
        assert!(err.contains(want), "{err} should mention {want}");
    }
}

#[test]
fn clusters_are_read_from_member_cluster_objects() {
    let mc = json!({
        "metadata": {"name": "m1", "labels": {"env": "prod"}},
        "spec": {"taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [
                {"type": "Joined", "status": "True"},
                {"type": "Healthy", "status": "True"}
            ],
            "properties": {
                "kubernetes-fleet.io/node-count": {"value": "3"},
                "resources.kubernetes-fleet.io/available-memory": {"value": "2Gi"},
                "k8s.io/kubernetes-version": {"value": "v1.33.0"}
            }
        }
    });
    let c = Cluster::from_member_cluster(&mc);
    assert_eq!(c.name, "m1");
    assert_eq!(c.label("env"), Some("prod"));
    assert_eq!(c.properties["kubernetes-fleet.io/node-count"], 3000);
    assert_eq!(
        c.properties["resources.kubernetes-fleet.io/available-memory"],
        2 * 1024 * 1024 * 1024 * 1000
    );
    assert!(!c.properties.contains_key("k8s.io/kubernetes-version"));
    assert_eq!(c.taints.len(), 1);
    assert_eq!(c.state, ClusterState::Eligible);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut m = mc.clone();
        f(&mut m);
        Cluster::from_member_cluster(&m).state
    };
    assert_eq!(
        with(&|m| m["status"]["conditions"][1]["status"] = json!("False")),
        ClusterState::Unhealthy
    );
    assert_eq!(
        with(&|m| m["status"]["conditions"][0]["status"] = json!("False")),
        ClusterState::NotJoined
    );
    assert_eq!(
        with(&|m| m["status"]["conditions"] = json!([])),
        ClusterState::NotJoined
    );
    assert_eq!(
        with(&|m| m["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z")),
        ClusterState::Leaving
    );
}

#[test]
fn a_member_change_concerns_only_the_placements_it_can_change() {
    use flotilla_scheduler::concerns;
    let prod = c("m1 env=prod");
    let dev = c("m2 env=dev");
    let tainted = c("m3 env=prod taint:gpu");
    let unhealthy = c("m4 env=prod state:Unhealthy");
    let prod_only = required(json!([{"labelSelector": {"matchLabels": {"env": "prod"}}}]));
    let all =
        Policy::parse(&json!({"placementType": "PickAll", "affinity": prod_only["affinity"]}))
            .unwrap();
    let n2 = Policy::parse(&pick_n(2, prod_only.clone())).unwrap();
    let fixed =
        Policy::parse(&json!({"placementType": "PickFixed", "clusterNames": ["m2"]})).unwrap();
    let relabelled = c("m1 env=prod tier=gold");
    let busier = c("m1 env=prod prop:cpu=3");
    let left = c("m1 env=prod state:NotJoined");
    // (case, policy, before, now, placed here, clusters placed, concerned)
    let table = [
        (
            "PickAll, a matching cluster",
            &all,
            Some(&dev),
            &prod,
            false,
            1,
            true,
        ),
        (
            "PickAll, a new matching cluster",
            &all,
            None,
            &prod,
            false,
            1,
            true,
        ),
        (
            "PickAll, a cluster it does not match",
            &all,
            None,
            &dev,
            false,
            1,
            false,
        ),
        (
            "PickAll, an untolerated taint",
            &all,
            None,
            &tainted,
            false,
            1,
            false,
        ),
        (
            "PickAll, an unhealthy cluster",
            &all,
            None,
            &unhealthy,
            false,
            1,
            false,
        ),
        (
            "on the cluster, its labels changed",
            &all,
            Some(&prod),
            &relabelled,
            true,
            1,
            true,
        ),
        (
            "on the cluster, its properties changed",
            &n2,
            Some(&prod),
            &busier,
            true,
            2,
            false,
        ),
        (
            "on the cluster, it left",
            &n2,
            Some(&prod),
            &left,
            true,
            2,
            true,
        ),
        (
            "PickN short of N, a matching cluster",
            &n2,
            None,
            &prod,
            false,
            1,
            true,
        ),
        (
            "PickN fulfilled, a matching cluster",
            &n2,
            None,
            &prod,
            false,
            2,
            false,
        ),
        (
            "PickN short of N, a cluster it does not match",
            &n2,
            None,
            &dev,
            false,
            0,
            false,
        ),
        (
            "PickFixed, a named cluster",
            &fixed,
            None,
            &dev,
            false,
            0,
            true,
        ),
        (
            "PickFixed, another cluster",
            &fixed,
            None,
            &prod,
            false,
            0,
            false,
        ),
    ];
    for (name, policy, before, now, here, placed, want) in table {
        assert_eq!(concerns(policy, before, now, here, placed), want, "{name}");
    }
}
