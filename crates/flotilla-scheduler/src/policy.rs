//! A placement's scheduling policy (KubeFleet's `spec.policy`), parsed once into plain values
//! the scheduler evaluates quickly: label selectors compiled, property values as exact
//! milli-units.

use flotilla_api::quantity::parse_milli;
use flotilla_api::selectors::LabelSelector;
use serde_json::Value;

/// How clusters are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementType {
    /// Every cluster that passes the filters (the default).
    PickAll,
    /// The best N clusters (`numberOfClusters`).
    PickN,
    /// The clusters named in `clusterNames`.
    PickFixed,
}

/// A comparison of a cluster property against a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyOp {
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl PropertyOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Gt" => Self::Gt,
            "Ge" => Self::Ge,
            "Eq" => Self::Eq,
            "Ne" => Self::Ne,
            "Lt" => Self::Lt,
            "Le" => Self::Le,
            _ => return None,
        })
    }

    /// Whether `observed op value` holds.
    pub fn holds(self, observed: i128, value: i128) -> bool {
        match self {
            Self::Gt => observed > value,
            Self::Ge => observed >= value,
            Self::Eq => observed == value,
            Self::Ne => observed != value,
            Self::Lt => observed < value,
            Self::Le => observed <= value,
        }
    }
}

/// One requirement of a property selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyRequirement {
    /// Property name (`kubernetes-fleet.io/node-count`, `resources.kubernetes-fleet.io/available-cpu`, ...).
    pub name: String,
    /// The comparison.
    pub op: PropertyOp,
    /// The value compared against, in milli-units.
    pub value: i128,
}

/// Sorts clusters by a property: a preferred term's weight scaled linearly between the lowest
/// and the highest value among the clusters scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySorter {
    /// Property name.
    pub name: String,
    /// Higher values preferred (Descending) or lower ones (Ascending).
    pub descending: bool,
}

/// A cluster selector term: a label selector AND a property selector (required terms) or a
/// label selector and a property sorter (preferred terms).
#[derive(Debug, Clone, Default)]
pub struct Term {
    /// Labels the cluster must have (None: any).
    pub labels: Option<LabelSelector>,
    /// Properties the cluster must have (all of them).
    pub properties: Vec<PropertyRequirement>,
    /// How a preferred term grades clusters by a property.
    pub sorter: Option<PropertySorter>,
}

/// A preferred term and its weight (-100..100).
#[derive(Debug, Clone)]
pub struct Preferred {
    /// Added to a matching cluster's affinity score (scaled by the sorter, if any).
    pub weight: i32,
    /// The term.
    pub term: Term,
}

/// A topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    /// The largest allowed difference between the most and the least used domain.
    pub max_skew: u32,
    /// The cluster label whose values are the domains.
    pub topology_key: String,
    /// DoNotSchedule (true, the default): a hard limit; ScheduleAnyway: a preference.
    pub do_not_schedule: bool,
}

/// A toleration of cluster taints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// The taint key (None with Exists: every key).
    pub key: Option<String>,
    /// `Exists` (true) or `Equal` (false, the default).
    pub exists: bool,
    /// The value for Equal.
    pub value: String,
    /// The effect tolerated (None: every effect).
    pub effect: Option<String>,
}

/// A cluster taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value (may be empty).
    pub value: String,
    /// Effect (`NoSchedule`).
    pub effect: String,
}

impl Toleration {
    /// Whether this toleration tolerates `taint` (Kubernetes' rules).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if let Some(e) = &self.effect {
            if *e != taint.effect {
                return false;
            }
        }
        match &self.key {
            None => self.exists,
            Some(k) if *k != taint.key => false,
            Some(_) => self.exists || self.value == taint.value,
        }
    }
}

/// A placement's scheduling policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How clusters are picked.
    pub placement_type: PlacementType,
    /// PickFixed: the clusters, in the order given.
    pub cluster_names: Vec<String>,
    /// PickN: how many.
    pub number_of_clusters: u32,
    /// Required terms, ORed (empty: no requirement).
    pub required: Vec<Term>,
    /// Preferred terms.
    pub preferred: Vec<Preferred>,
    /// Topology spread constraints (PickN).
    pub spread: Vec<Spread>,
    /// Tolerations of cluster taints.
    pub tolerations: Vec<Toleration>,
}

impl Default for Policy {
    /// No policy: PickAll.
    fn default() -> Self {
        Self {
            placement_type: PlacementType::PickAll,
            cluster_names: Vec::new(),
            number_of_clusters: 0,
            required: Vec::new(),
            preferred: Vec::new(),
            spread: Vec::new(),
            tolerations: Vec::new(),
        }
    }
}

fn field(path: &str, problem: impl std::fmt::Display) -> String {
    format!("{path}: {problem}")
}

fn parse_term(v: &Value, path: &str) -> Result<Term, String> {
    let labels = match v.get("labelSelector") {
        Some(sel) if !sel.is_null() => Some(
            LabelSelector::from_object(sel)
                .map_err(|e| field(&format!("{path}.labelSelector"), e))?,
        ),
        _ => None,
    };
    let mut properties = Vec::new();
    if let Some(exprs) = v["propertySelector"]["matchExpressions"].as_array() {
        for (i, e) in exprs.iter().enumerate() {
            let p = format!("{path}.propertySelector.matchExpressions[{i}]");
            let name = e["name"]
                .as_str()
                .ok_or_else(|| field(&format!("{p}.name"), "Required value"))?;
            let op_text = e["operator"].as_str().unwrap_or("");
            let op = PropertyOp::parse(op_text).ok_or_else(|| {
                field(
                    &format!("{p}.operator"),
                    format!("Unsupported value: {op_text:?}: supported values: \"Gt\", \"Ge\", \"Eq\", \"Ne\", \"Lt\", \"Le\""),
                )
            })?;
            let values = e["values"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let [value] = values else {
                return Err(field(
                    &format!("{p}.values"),
                    format!("must have exactly one value, got {}", values.len()),
                ));
            };
            let text = value.as_str().unwrap_or("");
            let value = parse_milli(text).ok_or_else(|| {
                field(
                    &format!("{p}.values[0]"),
                    format!("{text:?} is not a Kubernetes quantity"),
                )
            })?;
            properties.push(PropertyRequirement {
                name: name.to_string(),
                op,
                value,
            });
        }
    }
    let sorter = match v.get("propertySorter") {
        Some(s) if !s.is_null() => {
            let name = s["name"]
                .as_str()
                .ok_or_else(|| field(&format!("{path}.propertySorter.name"), "Required value"))?;
            let descending = match s["sortOrder"].as_str() {
                Some("Descending") => true,
                Some("Ascending") => false,
                other => {
                    return Err(field(
                        &format!("{path}.propertySorter.sortOrder"),
                        format!(
                        "Unsupported value: {:?}: supported values: \"Ascending\", \"Descending\"",
                        other.unwrap_or("")
                    ),
                    ))
                }
            };
            Some(PropertySorter {
                name: name.to_string(),
                descending,
            })
        }
        _ => None,
    };
    Ok(Term {
        labels,
        properties,
        sorter,
    })
}

/// Parses a toleration (`spec.policy.tolerations[i]`).
pub fn parse_toleration(t: &Value) -> Toleration {
    Toleration {
        key: t["key"]
            .as_str()
            .filter(|k| !k.is_empty())
            .map(String::from),
        exists: t["operator"] == "Exists",
        value: t["value"].as_str().unwrap_or("").to_string(),
        effect: t["effect"]
            .as_str()
            .filter(|e| !e.is_empty())
            .map(String::from),
    }
}

/// Parses a cluster taint (`MemberCluster.spec.taints[i]`).
pub fn parse_taint(t: &Value) -> Taint {
    Taint {
        key: t["key"].as_str().unwrap_or("").to_string(),
        value: t["value"].as_str().unwrap_or("").to_string(),
        effect: t["effect"].as_str().unwrap_or("NoSchedule").to_string(),
    }
}

impl Policy {
    /// Parses `spec.policy` (null or absent: PickAll with no constraints). Errors name the
    /// field; admission validates policies first, so an error here means a stored policy the
    /// scheduler cannot use.
    pub fn parse(policy: &Value) -> Result<Self, String> {
        let mut p = Policy::default();
        if policy.is_null() {
            return Ok(p);
        }
        p.placement_type = match policy["placementType"].as_str() {
            None | Some("PickAll") => PlacementType::PickAll,
            Some("PickN") => PlacementType::PickN,
            Some("PickFixed") => PlacementType::PickFixed,
            Some(other) => {
                return Err(field(
                    "spec.policy.placementType",
                    format!("Unsupported value: {other:?}: supported values: \"PickAll\", \"PickN\", \"PickFixed\""),
                ))
            }
        };
        p.cluster_names = policy["clusterNames"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        p.number_of_clusters = match &policy["numberOfClusters"] {
            Value::Null => 0,
            n => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    field(
                        "spec.policy.numberOfClusters",
                        "must be greater than or equal to 0",
                    )
                })?,
        };
        let affinity = &policy["affinity"]["clusterAffinity"];
        if let Some(terms) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            ["clusterSelectorTerms"]
            .as_array()
        {
            for (i, t) in terms.iter().enumerate() {
                p.required.push(parse_term(t, &format!("spec.policy.affinity.clusterAffinity.requiredDuringSchedulingIgnoredDuringExecution.clusterSelectorTerms[{i}]"))?);
            }
        }
        if let Some(prefs) = affinity["preferredDuringSchedulingIgnoredDuringExecution"].as_array()
        {
            for (i, t) in prefs.iter().enumerate() {
                let path = format!("spec.policy.affinity.clusterAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
                let weight = t["weight"]
                    .as_i64()
                    .filter(|w| (-100..=100).contains(w))
                    .ok_or_else(|| {
                        field(
                            &format!("{path}.weight"),
                            "must be between -100 and 100, inclusive",
                        )
                    })? as i32;
                p.preferred.push(Preferred {
                    weight,
                    term: parse_term(&t["preference"], &format!("{path}.preference"))?,
                });
            }
        }
        if let Some(constraints) = policy["topologySpreadConstraints"].as_array() {
            for (i, c) in constraints.iter().enumerate() {
                let path = format!("spec.policy.topologySpreadConstraints[{i}]");
                let max_skew = match &c["maxSkew"] {
                    Value::Null => 1,
                    v => v
                        .as_u64()
                        .filter(|s| *s >= 1)
                        .and_then(|s| u32::try_from(s).ok())
                        .ok_or_else(|| {
                            field(
                                &format!("{path}.maxSkew"),
                                "must be greater than or equal to 1",
                            )
                        })?,
                };
                let topology_key = c["topologyKey"]
                    .as_str()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| field(&format!("{path}.topologyKey"), "Required value"))?
                    .to_string();
                let do_not_schedule = match c["whenUnsatisfiable"].as_str() {
                    None | Some("") | Some("DoNotSchedule") => true,
                    Some("ScheduleAnyway") => false,
                    Some(other) => {
                        return Err(field(
                            &format!("{path}.whenUnsatisfiable"),
                            format!("Unsupported value: {other:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\""),
                        ))
                    }
                };
                p.spread.push(Spread {
                    max_skew,
                    topology_key,
                    do_not_schedule,
                });
            }
        }
        if let Some(tols) = policy["tolerations"].as_array() {
            p.tolerations = tols.iter().map(parse_toleration).collect();
        }
        Ok(p)
    }
}
