//! The scheduling decision: filter, score, pick.
//!
//! **Filter.** A cluster may receive a new placement when it is eligible (joined, healthy, not
//! leaving), the policy tolerates every `NoSchedule` taint it has, it matches one of the
//! required terms, and, for PickN with a `DoNotSchedule` spread constraint, it has the
//! constraint's topology label. PickFixed takes the clusters it names that are members
//! (taints and health aside: naming a cluster is explicit).
//!
//! **Score** (PickN; reported for PickAll). Affinity: the sum over preferred terms whose label
//! selector matches of the term's weight, scaled by its property sorter between the lowest and
//! the highest value among the clusters scored (`round(weight * (v - min) / (max - min))`,
//! Descending; `round(weight * (1 - (v - min) / (max - min)))`, Ascending; the full weight when
//! all values are equal; nothing for a cluster without the property). Topology: minus the
//! amount by which picking the cluster would exceed the `maxSkew` of the `ScheduleAnyway`
//! constraints (a cluster without the topology label counts as exceeding by one).
//!
//! **Pick** (PickN). One cluster at a time, the best by: topology score, then affinity score,
//! then already placed there, then name (lexicographically smaller first). Each pick updates
//! the spread counts, so the clusters of one decision spread as the constraints ask.
//! `DoNotSchedule` constraints are hard: a cluster whose pick would make a domain exceed
//! `maxSkew` over the least used one is not picked, which can leave a PickN unfulfilled.
//!
//! **Stability.** Under the policy it was placed by (`same_policy`), a placement stays where
//! it is: clusters whose labels, properties, taints or health changed keep it
//! (IgnoredDuringExecution); only clusters that left the fleet lose it. PickAll adds clusters
//! that newly match; PickN fills up to N from the best of the others, and when N is lowered
//! drops the lowest scored. Under a changed policy everything is decided afresh, and among
//! equal scores the clusters already placed win, so a policy edit moves as little as it can.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::cluster::{Cluster, ClusterState};
use crate::policy::{PlacementType, Policy, Taint, Term};

/// What to decide.
pub struct Request<'a> {
    /// The placement's policy.
    pub policy: &'a Policy,
    /// Every member cluster of the fleet (in name order, for decisions listed in name order).
    pub clusters: &'a [Cluster],
    /// The clusters the placement is on now.
    pub placed: &'a BTreeSet<String>,
    /// Whether `placed` was decided under this same policy (`numberOfClusters` aside).
    pub same_policy: bool,
}

/// A cluster's scores (higher is better).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    /// From topology spread constraints (0 or negative).
    pub topology: i32,
    /// From preferred cluster affinity terms.
    pub affinity: i32,
}

/// Why a cluster was picked or not. Displayed as a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    /// PickAll: the cluster passes the policy's filters.
    Matches,
    /// The placement is on the cluster and stays (IgnoredDuringExecution).
    Kept,
    /// PickFixed: the policy names the cluster.
    Named,
    /// PickN: among the N best.
    Picked(u32),
    /// The cluster cannot take new placements (not joined, unhealthy, leaving).
    Ineligible(ClusterState),
    /// The cluster has a NoSchedule taint the policy does not tolerate.
    Taint(&'a Taint),
    /// The cluster matches none of the required terms.
    NoRequiredTerm,
    /// The cluster lacks the label of a DoNotSchedule spread constraint.
    NoTopologyLabel(&'a str),
    /// PickFixed: no member cluster has the name.
    NotAMember,
    /// PickN: N was lowered and the cluster scored lower than those kept.
    NumberLowered,
    /// PickN: the cluster scored lower than the N picked.
    ScoredLower(u32),
    /// PickN: picking the cluster would exceed a DoNotSchedule constraint's maxSkew.
    SpreadLimit,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Matches => f.write_str("the cluster matches the placement policy"),
            Reason::Kept => f.write_str(
                "kept: the placement is on this cluster (changes of the cluster are IgnoredDuringExecution)",
            ),
            Reason::Named => f.write_str("the cluster is named by the placement"),
            Reason::Picked(n) => write!(f, "picked: among the {n} best scored clusters"),
            Reason::Ineligible(state) => {
                f.write_str(state.ineligibility().unwrap_or("the cluster is not eligible"))
            }
            Reason::Taint(t) if t.value.is_empty() => write!(
                f,
                "the cluster has the taint {}:{} and the placement does not tolerate it",
                t.key, t.effect
            ),
            Reason::Taint(t) => write!(
                f,
                "the cluster has the taint {}={}:{} and the placement does not tolerate it",
                t.key, t.value, t.effect
            ),
            Reason::NoRequiredTerm => {
                f.write_str("the cluster matches none of the required cluster selector terms")
            }
            Reason::NoTopologyLabel(key) => write!(
                f,
                "the cluster has no label {key} for the topology spread constraint"
            ),
            Reason::NotAMember => f.write_str("no member cluster has this name"),
            Reason::NumberLowered => f.write_str(
                "numberOfClusters was lowered and the cluster scored lower than those kept",
            ),
            Reason::ScoredLower(n) => write!(f, "the cluster scored lower than the {n} picked"),
            Reason::SpreadLimit => f.write_str(
                "picking the cluster would exceed the maxSkew of a topology spread constraint",
            ),
        }
    }
}

/// A cluster picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'a> {
    /// Cluster name.
    pub name: &'a str,
    /// Its scores when it was picked.
    pub score: Score,
    /// Why.
    pub reason: Reason<'a>,
}

/// A cluster not picked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<'a> {
    /// Cluster name (for PickFixed, possibly a name no member has).
    pub name: &'a str,
    /// Why.
    pub reason: Reason<'a>,
}

/// The decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Clusters picked, in the order picked (kept ones first).
    pub selected: Vec<Selected<'a>>,
    /// Clusters not picked. PickFixed: in the order named; PickN: dropped by a lowered N, then
    /// eligible but not picked, then filtered out; each in the order of the request's clusters.
    pub rejected: Vec<Rejected<'a>>,
    /// Whether the policy is satisfied (PickN: N picked; PickFixed: every named cluster).
    pub fulfilled: bool,
    /// A sentence for the Scheduled condition.
    pub message: String,
}

impl Decision<'_> {
    /// Names of the clusters picked.
    pub fn names(&self) -> Vec<&str> {
        self.selected.iter().map(|s| s.name).collect()
    }
}

fn term_matches(term: &Term, c: &Cluster) -> bool {
    term.labels
        .as_ref()
        .is_none_or(|l| l.matches(|k| c.label(k)))
        && term.properties.iter().all(|p| {
            c.properties
                .get(&p.name)
                .is_some_and(|v| p.op.holds(*v, p.value))
        })
}

/// Why `c` cannot receive a new placement under `policy`, if it cannot.
fn filter<'a>(policy: &'a Policy, c: &'a Cluster) -> Option<Reason<'a>> {
    if c.state.ineligibility().is_some() {
        return Some(Reason::Ineligible(c.state));
    }
    if let Some(t) = c.taints.iter().find(|t| {
        t.effect == "NoSchedule" && !policy.tolerations.iter().any(|tol| tol.tolerates(t))
    }) {
        return Some(Reason::Taint(t));
    }
    if !policy.required.is_empty() && !policy.required.iter().any(|t| term_matches(t, c)) {
        return Some(Reason::NoRequiredTerm);
    }
    if policy.placement_type == PlacementType::PickN {
        if let Some(s) = policy
            .spread
            .iter()
            .find(|s| s.do_not_schedule && c.label(&s.topology_key).is_none())
        {
            return Some(Reason::NoTopologyLabel(&s.topology_key));
        }
    }
    None
}

/// Affinity scores, by cluster index, of the clusters in `scored` (others stay 0).
fn affinity_scores(policy: &Policy, clusters: &[Cluster], scored: &[usize]) -> Vec<i32> {
    let mut scores = vec![0; clusters.len()];
    for pref in &policy.preferred {
        let matching = scored
            .iter()
            .copied()
            .filter(|i| term_matches(&pref.term, &clusters[*i]));
        match &pref.term.sorter {
            None => {
                for i in matching {
                    scores[i] += pref.weight;
                }
            }
            Some(sorter) => {
                let values: Vec<(usize, i128)> = matching
                    .filter_map(|i| Some((i, *clusters[i].properties.get(&sorter.name)?)))
                    .collect();
                let Some(min) = values.iter().map(|v| v.1).min() else {
                    continue;
                };
                let max = values.iter().map(|v| v.1).max().unwrap_or(min);
                for (i, v) in values {
                    scores[i] += if max == min {
                        pref.weight
                    } else {
                        let frac = (v - min) as f64 / (max - min) as f64;
                        let frac = if sorter.descending { frac } else { 1.0 - frac };
                        (f64::from(pref.weight) * frac).round() as i32
                    };
                }
            }
        }
    }
    scores
}

/// Whether a member cluster's change (from `before`, `None` when it is new, to `now`) can
/// change what a placement under `policy` gets, the placement being on `placed` clusters and
/// on this one if `here`: so that a member's change reconciles only the placements it
/// concerns, never the whole fleet's.
///
/// A placement on the cluster is concerned when the cluster can no longer keep it (it left)
/// or its labels changed (per-cluster overrides read them); other changes of a cluster a
/// placement is on change nothing (IgnoredDuringExecution). A placement not on the cluster is
/// concerned only if it may now take it: PickFixed naming it; PickAll, or PickN short of N,
/// whose filter the cluster passes.
pub fn concerns(
    policy: &Policy,
    before: Option<&Cluster>,
    now: &Cluster,
    here: bool,
    placed: usize,
) -> bool {
    if here {
        // Its health matters too: failover counts from when it turned unhealthy.
        return !now.state.keeps_placements()
            || before.is_none_or(|b| b.labels != now.labels || b.state != now.state);
    }
    match policy.placement_type {
        PlacementType::PickFixed => policy.cluster_names.contains(&now.name),
        PlacementType::PickAll => filter(policy, now).is_none(),
        PlacementType::PickN => {
            placed < policy.number_of_clusters as usize && filter(policy, now).is_none()
        }
    }
}

/// Decides which clusters the placement goes to.
pub fn schedule<'a>(req: &Request<'a>) -> Decision<'a> {
    match req.policy.placement_type {
        PlacementType::PickAll => pick_all(req),
        PlacementType::PickFixed => pick_fixed(req),
        PlacementType::PickN => pick_n(req),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn pick_all<'a>(req: &Request<'a>) -> Decision<'a> {
    let mut d = Decision {
        fulfilled: true,
        ..Default::default()
    };
    let mut scored = Vec::new();
    let mut kept = vec![false; req.clusters.len()];
    for (i, c) in req.clusters.iter().enumerate() {
        match filter(req.policy, c) {
            None => scored.push(i),
            Some(_)
                if req.same_policy
                    && c.state.keeps_placements()
                    && req.placed.contains(&c.name) =>
            {
                kept[i] = true;
                scored.push(i);
            }
            Some(reason) => d.rejected.push(Rejected {
                name: &c.name,
                reason,
            }),
        }
    }
    let scores = affinity_scores(req.policy, req.clusters, &scored);
    for i in scored {
        d.selected.push(Selected {
            name: &req.clusters[i].name,
            score: Score {
                topology: 0,
                affinity: scores[i],
            },
            reason: if kept[i] {
                Reason::Kept
            } else {
                Reason::Matches
            },
        });
    }
    d.message = format!(
        "picked all {} that the policy allows",
        plural(d.selected.len(), "cluster", "clusters")
    );
    d
}

fn pick_fixed<'a>(req: &Request<'a>) -> Decision<'a> {
    let by_name: HashMap<&str, &Cluster> =
        req.clusters.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut d = Decision::default();
    let mut seen = BTreeSet::new();
    for name in &req.policy.cluster_names {
        if !seen.insert(name.as_str()) {
            continue;
        }
        match by_name.get(name.as_str()) {
            None => d.rejected.push(Rejected {
                name,
                reason: Reason::NotAMember,
            }),
            // Named explicitly: taints and health do not keep it out; it must be a member.
            Some(c) if c.state.keeps_placements() => d.selected.push(Selected {
                name,
                score: Score::default(),
                reason: Reason::Named,
            }),
            Some(c) => d.rejected.push(Rejected {
                name,
                reason: Reason::Ineligible(c.state),
            }),
        }
    }
    let wanted = seen.len();
    d.fulfilled = d.selected.len() == wanted;
    d.message = if d.fulfilled {
        format!("picked the {} named", plural(wanted, "cluster", "clusters"))
    } else {
        format!(
            "picked {} of the {} named: {}",
            d.selected.len(),
            plural(wanted, "cluster", "clusters"),
            d.rejected
                .iter()
                .map(|r| format!("{} ({})", r.name, r.reason))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    d
}

/// Spread bookkeeping for one constraint: clusters picked per domain.
struct Domains<'a> {
    counts: HashMap<&'a str, u32>,
}

impl Domains<'_> {
    /// The skew after adding one to `domain`.
    fn skew_after(&self, domain: &str) -> u32 {
        let mut min = u32::MAX;
        let mut after = 0;
        for (d, n) in &self.counts {
            let n = if *d == domain { n + 1 } else { *n };
            if *d == domain {
                after = n;
            }
            min = min.min(n);
        }
        after - min.min(after)
    }
}

/// PickN candidates alike for spreading (the same domain under every constraint), in order of
/// preference; `next` is the first not yet picked.
struct Group<'a> {
    domains: Vec<Option<&'a str>>,
    members: Vec<usize>,
    next: usize,
}

fn pick_n<'a>(req: &Request<'a>) -> Decision<'a> {
    let policy = req.policy;
    let n = policy.number_of_clusters as usize;
    let clusters = req.clusters;
    let mut d = Decision::default();
    let placed: Vec<bool> = clusters
        .iter()
        .map(|c| !req.placed.is_empty() && req.placed.contains(&c.name))
        .collect();
    let mut candidates = Vec::new();
    let mut keep = Vec::new();
    let mut filtered = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        if req.same_policy && placed[i] && c.state.keeps_placements() {
            keep.push(i);
        } else if let Some(why) = filter(policy, c) {
            filtered.push((i, why));
        } else {
            candidates.push(i);
        }
    }
    let scored: Vec<usize> = keep.iter().chain(&candidates).copied().collect();
    let affinity = affinity_scores(policy, clusters, &scored);
    // Preference among equals: affinity, already placed, name.
    let prefer = |a: &usize, b: &usize| {
        affinity[*b]
            .cmp(&affinity[*a])
            .then(placed[*b].cmp(&placed[*a]))
            .then_with(|| clusters[*a].name.cmp(&clusters[*b].name))
    };

    // What stays: the kept clusters, the best N of them when N was lowered.
    keep.sort_by(prefer);
    let dropped = if keep.len() > n {
        keep.split_off(n)
    } else {
        Vec::new()
    };
    let mut chosen: Vec<(usize, Score, Reason<'a>)> = keep
        .iter()
        .map(|i| {
            let score = Score {
                topology: 0,
                affinity: affinity[*i],
            };
            (*i, score, Reason::Kept)
        })
        .collect();

    // Spread counts over every domain among the clusters in play.
    let mut domains: Vec<Domains<'_>> = policy
        .spread
        .iter()
        .map(|s| {
            let mut counts = HashMap::new();
            for i in keep.iter().chain(&candidates) {
                if let Some(v) = clusters[*i].label(&s.topology_key) {
                    counts.entry(v).or_insert(0);
                }
            }
            for i in &keep {
                if let Some(v) = clusters[*i].label(&s.topology_key) {
                    *counts.entry(v).or_insert(0) += 1;
                }
            }
            Domains { counts }
        })
        .collect();

    // Candidates grouped by their domains (clusters of one group are alike for spreading),
    // each group in order of preference.
    let mut by_domains: HashMap<Vec<Option<&str>>, Vec<usize>> = HashMap::new();
    for i in &candidates {
        let sig = policy
            .spread
            .iter()
            .map(|s| clusters[*i].label(&s.topology_key))
            .collect();
        by_domains.entry(sig).or_default().push(*i);
    }
    let mut groups: Vec<Group<'_>> = by_domains
        .into_iter()
        .map(|(domains, mut members)| {
            members.sort_by(prefer);
            Group {
                domains,
                members,
                next: 0,
            }
        })
        .collect();
    // A fixed order of groups, so that equal candidates are found in the same order each time.
    groups.sort_by(|a, b| a.domains.cmp(&b.domains));

    let mut blocked_by_spread = false;
    while chosen.len() < n {
        let mut best: Option<(usize, usize, Score)> = None; // (group, cluster, score)
        blocked_by_spread = false;
        for (g, group) in groups.iter().enumerate() {
            let Some(&i) = group.members.get(group.next) else {
                continue;
            };
            let mut penalty = 0i32;
            let mut allowed = true;
            for ((s, dom), value) in policy.spread.iter().zip(&domains).zip(&group.domains) {
                let over = match value {
                    Some(v) => dom.skew_after(v).saturating_sub(s.max_skew) as i32,
                    None => 1,
                };
                if s.do_not_schedule && over > 0 {
                    allowed = false;
                    break;
                }
                penalty += over;
            }
            if !allowed {
                blocked_by_spread = true;
                continue;
            }
            let score = Score {
                topology: -penalty,
                affinity: affinity[i],
            };
            let better = match &best {
                None => true,
                Some((_, j, s)) => (score.topology, score.affinity)
                    .cmp(&(s.topology, s.affinity))
                    .then(placed[i].cmp(&placed[*j]))
                    .then_with(|| clusters[*j].name.cmp(&clusters[i].name))
                    .is_gt(),
            };
            if better {
                best = Some((g, i, score));
            }
        }
        let Some((g, i, score)) = best else { break };
        groups[g].next += 1;
        for (dom, value) in domains.iter_mut().zip(&groups[g].domains) {
            if let Some(v) = value {
                *dom.counts.entry(v).or_insert(0) += 1;
            }
        }
        chosen.push((i, score, Reason::Picked(policy.number_of_clusters)));
    }

    let mut picked = vec![false; clusters.len()];
    for (i, score, reason) in &chosen {
        picked[*i] = true;
        d.selected.push(Selected {
            name: &clusters[*i].name,
            score: *score,
            reason: *reason,
        });
    }
    let unpicked = if blocked_by_spread && chosen.len() < n {
        Reason::SpreadLimit
    } else {
        Reason::ScoredLower(policy.number_of_clusters)
    };
    d.rejected = dropped
        .iter()
        .map(|i| (*i, Reason::NumberLowered))
        .chain(
            candidates
                .iter()
                .filter(|i| !picked[**i])
                .map(|i| (*i, unpicked)),
        )
        .chain(filtered)
        .map(|(i, reason)| Rejected {
            name: &clusters[i].name,
            reason,
        })
        .collect();
    d.fulfilled = chosen.len() == n;
    d.message = if d.fulfilled {
        format!("picked {}", plural(n, "cluster", "clusters"))
    } else if blocked_by_spread {
        format!(
            "picked {} of {}: the topology spread constraints allow no more",
            chosen.len(),
            plural(n, "cluster", "clusters")
        )
    } else {
        format!(
            "picked {} of {}: only {} eligible",
            chosen.len(),
            plural(n, "cluster", "clusters"),
            plural(chosen.len(), "cluster is", "clusters are")
        )
    };
    d
}
