//! The campaign summary: runs, faults by kind, events, intents, workflows, safety violations,
//! and the liveness table, as Markdown (printed, and written into RELIABILITY.md by the long
//! mode).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::liveness::{self, Liveness};
use super::run::RunReport;
use crate::support::wire::changed_forms;

/// Every run added up.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub runs: u64,
    pub elapsed: Duration,
    pub actions: BTreeMap<&'static str, u64>,
    pub faults_fired: BTreeMap<String, u64>,
    pub events: i64,
    pub intents: BTreeMap<String, i64>,
    pub workflows: BTreeMap<String, i64>,
    pub effects: u64,
    pub second_effects: u64,
    /// Liveness figures added up (`ready_secs`: the slowest run).
    pub liveness: Liveness,
    /// Safety violations over every run.
    pub safety_violations: usize,
    /// Liveness violations by invariant (1–5).
    pub liveness_violations: [usize; 5],
    /// `(seed, violations, kept directory)` of every run with a violation (safety, then
    /// liveness).
    pub failures: Vec<(u64, Vec<String>, Option<std::path::PathBuf>)>,
    /// Every run's wire profile and what came of it.
    pub profiles: Vec<Profile>,
}

/// One run's wire profile, for the table of profiles survived.
#[derive(Debug)]
pub(crate) struct Profile {
    pub seed: u64,
    pub spec: String,
    pub events: i64,
    pub second_effects: u64,
    pub violations: usize,
}

fn add<K: Ord + Clone, V: Copy + std::ops::AddAssign + Default>(
    into: &mut BTreeMap<K, V>,
    from: &BTreeMap<K, V>,
) {
    for (key, value) in from {
        *into.entry(key.clone()).or_default() += *value;
    }
}

impl Summary {
    pub(crate) fn add(&mut self, run: &RunReport) {
        self.runs += 1;
        self.elapsed += run.elapsed;
        add(&mut self.actions, &run.actions);
        add(&mut self.faults_fired, &run.facts.faults_fired);
        add(&mut self.intents, &run.facts.intents);
        add(&mut self.workflows, &run.facts.workflows);
        self.events += run.facts.events;
        self.effects += run.facts.effects;
        self.second_effects += run.facts.second_effects;
        let found = &run.liveness;
        let total = &mut self.liveness;
        total.ready_secs = total.ready_secs.max(found.ready_secs);
        total.exits_on += found.exits_on;
        total.exits_with_reason += found.exits_with_reason;
        total.exits_done += found.exits_done;
        total.entries_on += found.entries_on;
        total.entries_done += found.entries_done;
        total.retries += found.retries;
        total.open_positions += found.open_positions;
        self.safety_violations += run.violations.len();
        for violation in &run.liveness_violations {
            let invariant = (1..=5).find(|n| violation.starts_with(&format!("liveness ({n})")));
            if let Some(n) = invariant {
                self.liveness_violations[n - 1] += 1;
            }
        }
        if !run.violations.is_empty() || !run.liveness_violations.is_empty() {
            let mut all = run.violations.clone();
            all.extend(run.liveness_violations.iter().cloned());
            self.failures.push((run.seed, all, run.kept.clone()));
        }
        self.profiles.push(Profile {
            seed: run.seed,
            spec: run.wire.clone(),
            events: run.facts.events,
            second_effects: run.facts.second_effects,
            violations: run.violations.len(),
        });
    }

    /// The liveness table: each invariant, what it checked, and its violations.
    fn liveness_markdown(&self) -> String {
        let live = &self.liveness;
        let v = &self.liveness_violations;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| liveness invariant (checked after the quiet phase of every run) | checked | violations |\n|---|---|---|"
        );
        let _ = writeln!(
            out,
            "| (1) ready and cursor = latest EventSeqId within {} s of the faults cleared | {} runs (slowest {:.1} s) | {} |",
            liveness::READY_WITHIN.as_secs(),
            self.runs,
            live.ready_secs,
            v[0]
        );
        let _ = writeln!(
            out,
            "| (2) every exit signal still On for an open position closed it, or the store says why it may not | {} left On at the end ({} with a recorded reason); {} exits done, {} retries over the runs | {} |",
            live.exits_on, live.exits_with_reason, live.exits_done, live.retries, v[1]
        );
        let _ = writeln!(
            out,
            "| (3) every entry signal still On acted on (done, or a recorded reason) | {} ({} done) | {} |",
            live.entries_on, live.entries_done, v[2]
        );
        let _ = writeln!(
            out,
            "| (4) no workflow, prepare job or intent active past its deadline | {} runs | {} |",
            self.runs, v[3]
        );
        let _ = writeln!(
            out,
            "| (5) monitored positions = the simulator's open positions, none stale | {} open positions | {} |",
            live.open_positions, v[4]
        );
        out
    }

    /// Every failing seed with its violations and the command that replays it.
    pub(crate) fn failures_text(&self, run_secs: u64) -> String {
        let mut out = String::new();
        for (seed, violations, kept) in &self.failures {
            let _ = writeln!(
                out,
                "seed {seed} (replay: CAMPAIGN_SEED={seed} CAMPAIGN_RUN_SECS={run_secs} cargo test --test it fault_campaign::bounded_campaign -- --nocapture; files: {kept:?}):"
            );
            for violation in violations {
                let _ = writeln!(out, "  - {violation}");
            }
        }
        out
    }

    /// The summary as Markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let total = |map: &BTreeMap<String, i64>| map.values().sum::<i64>();
        let _ = writeln!(out, "| figure | value |\n|---|---|");
        let _ = writeln!(
            out,
            "| runs | {} ({:.0} min of runs) |",
            self.runs,
            self.elapsed.as_secs_f64() / 60.0
        );
        let _ = writeln!(out, "| events logged and applied | {} |", self.events);
        let _ = writeln!(
            out,
            "| intents | {} ({}) |",
            total(&self.intents),
            listing(&self.intents)
        );
        let _ = writeln!(
            out,
            "| workflows | {} ({}) |",
            total(&self.workflows),
            listing(&self.workflows)
        );
        let _ = writeln!(out, "| effects (orders, paper fills) | {} |", self.effects);
        let _ = writeln!(out, "| second effects | {} |", self.second_effects);
        let _ = writeln!(out, "| safety violations | {} |", self.safety_violations);
        let _ = writeln!(
            out,
            "| liveness violations | {} |",
            self.liveness_violations.iter().sum::<usize>()
        );
        let _ = writeln!(out, "\n{}", self.liveness_markdown());
        let _ = writeln!(out, "\n| fault or action scheduled | count |\n|---|---|");
        for (kind, n) in &self.actions {
            let _ = writeln!(out, "| {kind} | {n} |");
        }
        let _ = writeln!(
            out,
            "\n| fault fired (counted by the simulator) | count |\n|---|---|"
        );
        for (kind, n) in &self.faults_fired {
            let _ = writeln!(out, "| {kind} | {n} |");
        }
        let survived = self.profiles.iter().filter(|p| p.violations == 0).count();
        let _ = writeln!(
            out,
            "\nWire profiles: {survived} of {} survived (the simulator played each run's `random:` profile; the forms listed are those that are not today's).\n\n| seed | wire forms played | events | second effects | violations |\n|---|---|---|---|---|",
            self.profiles.len()
        );
        for profile in &self.profiles {
            let forms = changed_forms(&profile.spec);
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} |",
                profile.seed,
                forms.len(),
                forms.join(" "),
                profile.events,
                profile.second_effects,
                profile.violations
            );
        }
        out
    }
}

fn listing(map: &BTreeMap<String, i64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
