//! The fault campaign: the daemon as a real process against the in-process simulator on a
//! seeded, randomized schedule of faults and automation activity (see `schedule.rs`), with the
//! invariants checked after the quiet phase at the end of every run: safety (it did no harm,
//! `invariants.rs`) and liveness (it did its job or recorded why not, `liveness.rs`).
//!
//! * `cargo test --test it fault_campaign` (and so `cargo test`, CI): 3 random seeds × 45 s,
//!   a 30 s resource soak, and one 20 s run of a daemon that ignores exit signals (test-only
//!   switch), which liveness invariant 2 must catch.
//! * `CAMPAIGN_SEED=<n> [CAMPAIGN_RUN_SECS=<s>] cargo test --test it
//!   fault_campaign::bounded_campaign -- --nocapture`: replays one seed's schedule.
//! * Every run's simulator plays a `random:` wire profile drawn from its seed (printed with
//!   it); `CAMPAIGN_WIRE=<spec>` plays that profile instead (`default`: today's forms).
//! * Long mode: `CAMPAIGN_MINUTES=30 cargo test --test it fault_campaign::long_campaign --
//!   --ignored --nocapture` runs seeds back to back for that long alongside a soak of the same
//!   length, prints the summary tables, and with `CAMPAIGN_REPORT=RELIABILITY.md` writes them
//!   into that file.
//! * Failover mode (needs PostgreSQL): two daemons with `ha.enabled` on one cluster of their
//!   own; SIGKILL, SIGTERM and SIGSTOP hit the leader, some pauses outlast its lease, and
//!   PostgreSQL is restarted and stopped, beside every other fault. Bounded (2 seeds × 45 s,
//!   in `.ci/run`): `cargo test --test it fault_campaign::bounded_failover_campaign_postgres --
//!   --ignored --nocapture`; long: `CAMPAIGN_MINUTES=30 cargo test --test it
//!   fault_campaign::long_failover_campaign -- --ignored --nocapture` (its tables go between
//!   the failover markers of `CAMPAIGN_REPORT`).

mod invariants;
mod liveness;
mod report;
mod resources;
mod run;
mod schedule;

use std::time::{Duration, Instant};

use report::Summary;
use run::RunReport;
use schedule::{Mode, Schedule};
use testkit::env_u64;

/// Seeds of the bounded (CI) campaign.
const CI_SEEDS: usize = 3;
/// Seeds of the bounded failover campaign.
const CI_FAILOVER_SEEDS: usize = 2;
/// Length of one run's schedule in the bounded campaign.
const CI_RUN: Duration = Duration::from_secs(45);
/// Length of the bounded soak.
const CI_SOAK: Duration = Duration::from_secs(30);
/// Length of one run's schedule in the long mode.
const LONG_RUN: Duration = Duration::from_secs(60);
/// Where the long mode's tables go in the report file: `<!-- {marker}:begin -->` … `end`.
const REPORT_MARKER: &str = "campaign";
const FAILOVER_REPORT_MARKER: &str = "failover-campaign";

/// The bounded tests run one after the other: each measures a daemon under its own load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn run_length(default: Duration) -> Duration {
    env_u64("CAMPAIGN_RUN_SECS").map_or(default, Duration::from_secs)
}

/// Length of the run of a daemon that ignores exit signals.
const BROKEN_RUN: Duration = Duration::from_secs(20);

/// One seed in its own task, so a panic becomes a failed run that still names its seed.
async fn run_seed(seed: u64, length: Duration, mode: Mode) -> RunReport {
    run_seed_with(seed, length, mode, &[]).await
}

/// [`run_seed`] with extra daemon environment.
async fn run_seed_with(
    seed: u64,
    length: Duration,
    mode: Mode,
    extra: &'static [(&'static str, &'static str)],
) -> RunReport {
    let mut schedule = Schedule::generate(seed, length, mode);
    if let Ok(wire) = std::env::var("CAMPAIGN_WIRE") {
        schedule.wire = wire;
    }
    let wire = schedule.wire.clone();
    println!(
        "run ({mode:?}): CAMPAIGN_SEED={seed} CAMPAIGN_RUN_SECS={} wire profile {wire}",
        length.as_secs()
    );
    let outcome = tokio::spawn(run::run(schedule, extra)).await;
    let report = outcome.unwrap_or_else(|err| {
        let message = match err.try_into_panic() {
            Ok(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
            Err(err) => err.to_string(),
        };
        RunReport {
            seed,
            wire,
            violations: vec![format!("the run panicked: {message}")],
            ..RunReport::default()
        }
    });
    println!(
        "  seed {seed}: {:.0} s, {} events, {} intents, workflows {:?}, {} safety violations, {} liveness violations (ready in {:.1} s, {} exit signals On for open positions, {} retries)",
        report.elapsed.as_secs_f64(),
        report.facts.events,
        report.facts.intents.values().sum::<i64>(),
        report.facts.workflows,
        report.violations.len(),
        report.liveness_violations.len(),
        report.liveness.ready_secs,
        report.liveness.exits_on,
        report.liveness.retries,
    );
    for violation in report.violations.iter().chain(&report.liveness_violations) {
        println!("    - {violation}");
    }
    for reason in &report.liveness.reasons {
        println!("    reason recorded: {reason}");
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_campaign() {
    bounded(Mode::Single, CI_SEEDS).await;
}

/// The failover mode, bounded: every fault above plus takeovers and PostgreSQL faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn bounded_failover_campaign_postgres() {
    bounded(Mode::Failover, CI_FAILOVER_SEEDS).await;
}

/// `seeds` random runs of `mode` (or `CAMPAIGN_SEED`'s); every invariant must hold.
async fn bounded(mode: Mode, seeds: usize) {
    let _one = ONE_AT_A_TIME.lock().await;
    let length = run_length(CI_RUN);
    let seeds: Vec<u64> = match env_u64("CAMPAIGN_SEED") {
        Some(seed) => vec![seed],
        None => (0..seeds).map(|_| fastrand::u64(..)).collect(),
    };
    let mut summary = Summary::default();
    for seed in seeds {
        summary.add(&run_seed(seed, length, mode).await);
    }
    println!("{}", summary.markdown());
    assert!(
        summary.failures.is_empty(),
        "invariants violated:\n{}",
        summary.failures_text(length.as_secs())
    );
    assert!(
        summary.events >= 10_000,
        "a burst of 10,000+ events per run"
    );
}

/// A daemon that ignores exit signals (the test-only switch) does no harm — the safety
/// invariants hold — and is caught by liveness invariant 2 within one bounded run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_catches_a_daemon_that_ignores_exit_signals() {
    let _one = ONE_AT_A_TIME.lock().await;
    let seed = testkit::seed("CAMPAIGN_SEED");
    let report = run_seed_with(
        seed,
        BROKEN_RUN,
        Mode::Single,
        &[(
            mesolive_supervisor::tasks::workflow::IGNORE_EXIT_SIGNALS_ENV,
            "1",
        )],
    )
    .await;
    let caught: Vec<&String> = report
        .liveness_violations
        .iter()
        .filter(|v| v.starts_with("liveness (2)") && v.contains("no workflow"))
        .collect();
    assert!(
        !caught.is_empty(),
        "seed {seed}: the broken daemon was not caught: safety {:#?}, liveness {:#?}",
        report.violations,
        report.liveness_violations
    );
    assert!(
        report.violations.is_empty(),
        "seed {seed}: doing nothing does no harm: {:#?}",
        report.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_resource_soak() {
    let _one = ONE_AT_A_TIME.lock().await;
    let seed = testkit::seed("CAMPAIGN_SEED");
    let report = resources::soak(CI_SOAK, seed).await;
    println!("{}", report.markdown());
    assert!(
        report.violations.is_empty(),
        "soak (seed {seed}): {:#?}",
        report.violations
    );
    assert!(
        report.drops >= 5 && report.positions_closed > 0,
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long mode: CAMPAIGN_MINUTES=30 cargo test --test it fault_campaign::long_campaign -- --ignored --nocapture"]
async fn long_campaign() {
    long(Mode::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long mode, needs PostgreSQL: CAMPAIGN_MINUTES=30 cargo test --test it fault_campaign::long_failover_campaign -- --ignored --nocapture"]
async fn long_failover_campaign() {
    long(Mode::Failover).await;
}

/// Runs seeds of `mode` back to back for `CAMPAIGN_MINUTES` (single mode: beside a resource
/// soak of the same length), prints the tables and writes them into `CAMPAIGN_REPORT`.
async fn long(mode: Mode) {
    let minutes = env_u64("CAMPAIGN_MINUTES").unwrap_or(30);
    let total = Duration::from_secs(minutes * 60);
    let length = run_length(LONG_RUN);
    let first = testkit::seed("CAMPAIGN_SEED");
    println!("long campaign ({mode:?}): {minutes} min, first seed {first}");
    let soak = (mode == Mode::Single).then(|| tokio::spawn(resources::soak(total, first)));
    let started = Instant::now();
    let mut seeds = fastrand::Rng::with_seed(first);
    let mut summary = Summary::default();
    // Runs take their schedule plus setup and quiescence; start one only if it fits.
    while started.elapsed() + length + Duration::from_secs(20) < total {
        summary.add(&run_seed(seeds.u64(..), length, mode).await);
    }
    let soak = match soak {
        Some(soak) => Some(soak.await.expect("the soak ran")),
        None => None,
    };
    let report_file = std::env::var("CAMPAIGN_REPORT").ok();
    let report_env = report_file
        .as_ref()
        .map(|path| format!(" CAMPAIGN_REPORT={path}"))
        .unwrap_or_default();
    let (test, marker, heading) = match mode {
        Mode::Single => ("long_campaign", REPORT_MARKER, "Fault campaign"),
        Mode::Failover => (
            "long_failover_campaign",
            FAILOVER_REPORT_MARKER,
            "Failover campaign",
        ),
    };
    let command = format!(
        "CAMPAIGN_MINUTES={minutes} CAMPAIGN_SEED={first}{report_env} cargo test --test it fault_campaign::{test} -- --ignored --nocapture"
    );
    let mut tables = format!(
        "Produced by `{command}` ({:.0} min wall clock, debug build, 2 cores; every run's seed is printed and replays with `CAMPAIGN_SEED=<seed> CAMPAIGN_RUN_SECS={}`).\n\n### {heading}\n\n{}",
        started.elapsed().as_secs_f64() / 60.0,
        length.as_secs(),
        summary.markdown(),
    );
    if let Some(soak) = &soak {
        tables.push_str(&format!(
            "\n### Resource soak (concurrently)\n\n{}\nSoak violations: {}.\n",
            soak.markdown(),
            soak.violations.len()
        ));
    }
    println!("{tables}");
    if let Some(path) = report_file {
        write_report(&path, marker, &tables);
    }
    let soak_violations = soak.map(|soak| soak.violations).unwrap_or_default();
    assert!(
        summary.failures.is_empty() && soak_violations.is_empty(),
        "campaign:\n{}\nsoak: {soak_violations:#?}",
        summary.failures_text(length.as_secs()),
    );
}

/// Replaces the text between the `marker` comments of `path` with `tables`.
fn write_report(path: &str, marker: &str, tables: &str) {
    let text = std::fs::read_to_string(path).expect("report file readable");
    let (open, close) = (
        format!("<!-- {marker}:begin -->"),
        format!("<!-- {marker}:end -->"),
    );
    let (Some(begin), Some(end)) = (text.find(&open), text.find(&close)) else {
        panic!("{path} has no {open} … {close} block");
    };
    let updated = format!("{}{open}\n{tables}{}", &text[..begin], &text[end..]);
    std::fs::write(path, updated).expect("report file writable");
}
