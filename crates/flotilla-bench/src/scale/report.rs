//! The results of `flotilla bench fleet`: one row per figure with its unit, the target where
//! the run is the scenario the target is set for, and the published anchor; printed as a
//! table and written as JSON.

use serde_json::{json, Value};

/// A target a figure must stay under, and whether this run is the scenario it is set for.
#[derive(Clone)]
pub(crate) struct Target {
    /// The bound, in the row's unit.
    pub(crate) below: f64,
    /// The scenario it is set for ("1,000 members"), for a run that is another.
    pub(crate) scenario: &'static str,
    /// Whether this run is that scenario.
    pub(crate) applies: bool,
}

/// One measured figure.
pub(crate) struct Row {
    pub(crate) phase: &'static str,
    pub(crate) figure: String,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    pub(crate) target: Option<Target>,
    /// What others published for the same figure, with its source.
    pub(crate) anchor: &'static str,
}

impl Row {
    /// Met, missed, or not judged (no target, or another scenario).
    pub(crate) fn verdict(&self) -> &'static str {
        match &self.target {
            Some(t) if t.applies && self.value < t.below => "met",
            Some(t) if t.applies => "MISSED",
            Some(_) => "n/a",
            None => "",
        }
    }

    fn value_text(&self) -> String {
        match self.unit {
            "s" | "% of one core" | "millicores" => format!("{:.2}", self.value),
            _ => format!("{:.0}", self.value),
        }
    }

    fn target_text(&self) -> String {
        match &self.target {
            Some(t) if t.applies => format!("< {}", trim(t.below)),
            Some(t) => format!("< {} at {}", trim(t.below), t.scenario),
            None => String::new(),
        }
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Every figure of a run, in the order measured.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
    /// Facts about the run: arguments, machine, phase durations.
    pub(crate) facts: Vec<(String, Value)>,
}

impl Report {
    pub(crate) fn add(
        &mut self,
        phase: &'static str,
        figure: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> &mut Row {
        self.rows.push(Row {
            phase,
            figure: figure.into(),
            value,
            unit,
            target: None,
            anchor: "",
        });
        self.rows.last_mut().expect("just pushed")
    }

    pub(crate) fn fact(&mut self, name: &str, value: Value) {
        self.facts.push((name.to_string(), value));
    }

    /// The table a person reads.
    pub(crate) fn table(&self) -> String {
        let header = [
            "phase", "figure", "value", "unit", "target", "verdict", "anchor",
        ];
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.phase.to_string(),
                    r.figure.clone(),
                    r.value_text(),
                    r.unit.to_string(),
                    r.target_text(),
                    r.verdict().to_string(),
                    r.anchor.to_string(),
                ]
            })
            .collect();
        let mut width = header.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |row: &[String]| {
            let mut out = String::new();
            for (i, (c, w)) in row.iter().zip(width).enumerate() {
                let pad = w - c.chars().count();
                // Numbers right-aligned, words left.
                if i == 2 {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    if i + 1 < row.len() {
                        out.push_str(&" ".repeat(pad));
                    }
                }
                if i + 1 < row.len() {
                    out.push_str("  ");
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&header.map(String::from));
        for row in &cells {
            out.push_str(&line(row));
        }
        out
    }

    /// The same as JSON.
    pub(crate) fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "phase": r.phase,
                    "figure": r.figure,
                    "value": r.value,
                    "unit": r.unit,
                    "target": r.target.as_ref().map(|t| json!({
                        "below": t.below, "scenario": t.scenario, "applies": t.applies,
                    })),
                    "verdict": match r.verdict() { "" => Value::Null, v => json!(v.to_lowercase()) },
                    "anchor": (!r.anchor.is_empty()).then_some(r.anchor),
                })
            })
            .collect();
        let facts: serde_json::Map<String, Value> = self.facts.iter().cloned().collect();
        json!({"facts": facts, "results": rows})
    }

    /// How many applicable targets were missed.
    pub(crate) fn missed(&self) -> usize {
        self.rows.iter().filter(|r| r.verdict() == "MISSED").count()
    }
}

impl Row {
    pub(crate) fn target(
        &mut self,
        below: f64,
        scenario: &'static str,
        applies: bool,
    ) -> &mut Self {
        self.target = Some(Target {
            below,
            scenario,
            applies,
        });
        self
    }

    pub(crate) fn anchor(&mut self, anchor: &'static str) -> &mut Self {
        self.anchor = anchor;
        self
    }
}

/// The machine the run is on: cores, CPU model, memory.
pub(crate) fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "memory_gib": (mem_kb as f64 / 1048576.0 * 10.0).round() / 10.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_target_and_its_scenario() {
        let mut r = Report::default();
        r.add("join", "members Joined", 12.0, "s");
        r.add("idle", "hub CPU", 1.5, "% of one core")
            .target(2.0, "1,000 members", true);
        r.add("idle", "hub RSS", 300.0, "MB")
            .target(250.0, "1,000 members", true)
            .anchor("KubeFleet: 8 GB");
        r.add("idle", "hub RSS at scale", 300.0, "MB")
            .target(250.0, "1,000 members", false);
        let v: Vec<&str> = r.rows.iter().map(Row::verdict).collect();
        assert_eq!(v, ["", "met", "MISSED", "n/a"]);
        assert_eq!(r.missed(), 1);
        let table = r.table();
        assert!(table.contains("< 250 at 1,000 members"), "{table}");
        assert!(table.lines().nth(3).unwrap().contains("MISSED"), "{table}");
        let j = r.json();
        assert_eq!(j["results"][2]["verdict"], "missed");
        assert_eq!(j["results"][2]["anchor"], "KubeFleet: 8 GB");
        assert_eq!(j["results"][0]["target"], Value::Null);
        assert_eq!(j["results"][3]["target"]["applies"], false);
    }

    #[test]
    fn a_value_equal_to_its_bound_misses() {
        let mut r = Report::default();
        r.add("p", "f", 2.0, "s").target(2.0, "x", true);
        assert_eq!(r.rows[0].verdict(), "MISSED");
    }
}
