//! Figures, their targets, and the two renderings (table, JSON). A figure keeps every sample so
//! the median, min and max can be checked against them.

use std::fmt;

use serde::Serialize;

/// A figure's target, as the issue states it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// The median must be at least this.
    AtLeast(f64),
    /// The median must be at most this.
    AtMost(f64),
}

impl Target {
    fn met_by(self, value: f64) -> bool {
        match self {
            Target::AtLeast(bound) => value >= bound,
            Target::AtMost(bound) => value <= bound,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(bound) => format!(">= {}", number(bound)),
            Target::AtMost(bound) => format!("<= {}", number(bound)),
        }
    }
}

/// One measured quantity of one scenario over every run.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// The scenario (`1 transport`, `2 ingest`…), numbered as in issue 8.
    pub scenario: String,
    /// What was measured.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// The median over the runs (the figure).
    pub median: f64,
    /// The lowest run.
    pub min: f64,
    /// The highest run.
    pub max: f64,
    /// Every run, in order.
    pub samples: Vec<f64>,
    /// The target, if the issue sets one.
    pub target: Option<Target>,
    /// Whether the median meets the target.
    pub met: Option<bool>,
    /// Conditions worth knowing (sizes, backoff, settings).
    pub note: String,
}

impl Figure {
    /// A figure from its samples (at least one).
    pub fn new(scenario: &str, name: &str, unit: &str, samples: Vec<f64>) -> Figure {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => 0.0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Figure {
            scenario: scenario.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            median,
            min: sorted.first().copied().unwrap_or(0.0),
            max: sorted.last().copied().unwrap_or(0.0),
            samples,
            target: None,
            met: None,
            note: String::new(),
        }
    }

    /// The same figure judged against `target`.
    pub fn target(mut self, target: Target) -> Figure {
        self.met = Some(target.met_by(self.median));
        self.target = Some(target);
        self
    }

    /// The same figure with a note.
    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }
}

/// Everything one `bench` run measured, and where.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it ran (UTC).
    pub date: String,
    /// CPU count and model.
    pub machine: Machine,
    /// Runs per scenario.
    pub runs: usize,
    /// Whether these are `--quick` sizes (not figures to quote).
    pub quick: bool,
    /// Every figure, in scenario order.
    pub figures: Vec<Figure>,
    /// Scenarios that could not finish, and why: the others' figures still stand.
    pub failures: Vec<ScenarioFailure>,
}

/// A scenario that could not finish.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioFailure {
    /// Its number.
    pub scenario: u8,
    /// Why.
    pub error: String,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// `model name` of /proc/cpuinfo.
    pub model: String,
}

impl Machine {
    fn detect() -> Machine {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            model,
        }
    }
}

impl Report {
    /// An empty report for `runs` runs per scenario.
    pub fn new(runs: usize, quick: bool) -> Report {
        Report {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine: Machine::detect(),
            runs,
            quick,
            figures: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Adds what scenario `scenario` measured, or that it failed (said on stderr as well).
    pub fn record(
        &mut self,
        scenario: u8,
        measured: Result<impl IntoIterator<Item = Figure>, impl fmt::Display>,
    ) {
        match measured {
            Ok(figures) => self.figures.extend(figures),
            Err(err) => {
                eprintln!("bench: scenario {scenario} failed: {err}");
                self.failures.push(ScenarioFailure {
                    scenario,
                    error: err.to_string(),
                });
            }
        }
    }

    /// The JSON form (`--json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The table: one line per figure, median first, then min/max, target, verdict, note.
    pub fn table(&self) -> String {
        let rows = self
            .figures
            .iter()
            .map(|f| {
                vec![
                    f.scenario.clone(),
                    f.name.clone(),
                    number(f.median),
                    number(f.min),
                    number(f.max),
                    f.unit.clone(),
                    f.target.map(Target::describe).unwrap_or_default(),
                    match f.met {
                        Some(true) => "met".into(),
                        Some(false) => "MISSED".into(),
                        None => String::new(),
                    },
                    f.note.clone(),
                ]
            })
            .collect();
        let failures: String = self
            .failures
            .iter()
            .map(|f| format!("  scenario {} FAILED: {}\n", f.scenario, f.error))
            .collect();
        format!(
            "{} run(s) per scenario{}, {} on {} CPU(s), {}\n{}{failures}",
            self.runs,
            if self.quick { " (--quick sizes)" } else { "" },
            self.machine.model,
            self.machine.cpus,
            self.date,
            crate::table::columns(
                &[
                    "scenario", "figure", "median", "min", "max", "unit", "target", "", "note"
                ],
                rows,
            )
        )
    }
}

/// A figure as people read it: three significant digits, thousands without decimals.
fn number(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max_and_verdict() {
        let odd = Figure::new("1", "x", "u", vec![3.0, 1.0, 2.0]).target(Target::AtLeast(2.0));
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        assert_eq!(odd.met, Some(true));
        let even = Figure::new("1", "x", "u", vec![4.0, 1.0, 2.0, 3.0]).target(Target::AtMost(2.0));
        assert_eq!(even.median, 2.5);
        assert_eq!(even.met, Some(false));
        assert_eq!(even.samples, vec![4.0, 1.0, 2.0, 3.0]);
    }
}
