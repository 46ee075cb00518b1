//! (10) Reaction latency: an entry signal arriving while the daemon ingests a steady background
//! load of events → the first state-changing call of its workflow reaching the simulator. Both
//! moments are the simulator's own clock: the signal's `at_us` (read while the event is being
//! logged, before any connection can be sent it) and the call's `at_us` in the request log.
//!
//! The daemon is a child process, as deployed (logging at `info` to a file), in `paper` mode
//! with no limit on open positions; each signal is an Off→On instance on strategy 101 /
//! `PAPER-1`. After its first call the workflow is left to finish, then the signal goes Off and
//! the daemon is seen to apply it (its `/metrics`), so the next sample starts from an idle
//! workflow runner.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::child::ChildDaemon;
use super::harness::{BenchSim, Scratch, progress, rate, until};
use super::report::{Figure, Target};
use super::{BenchError, Sizes};
use crate::ops::metrics::series_value;
use mesolive_api::wire::methods;
use mesolive_sim::{AdminClient, PAPER_ACCOUNT, SimOptions, Timing};

/// The strategy the signals are for (paper account `PAPER-1`).
const STRATEGY: i64 = 101;
/// The target for the p99, in milliseconds.
const TARGET_P99_MS: f64 = 10.0;
/// Background events emitted per tick, and the tick (together: the background rate).
const LOAD_TICK: Duration = Duration::from_millis(10);
/// Longest one step of a sample (a call to appear, a workflow to finish) may take.
const STEP_LIMIT: Duration = Duration::from_secs(30);
/// How often the request log is read while waiting for the call.
const LOG_POLL: Duration = Duration::from_millis(5);
/// How often the daemon's `/metrics` is read while waiting for it.
const METRICS_POLL: Duration = Duration::from_millis(10);
/// Background events the daemon must have applied before the first signal (load reached it).
const WARM_UP_EVENTS: u64 = 2_000;
/// The series of the workflow outcomes that end a workflow.
const FINAL_OUTCOMES: [&str; 4] = [
    "mesolive_workflow_transitions_total{outcome=\"done\"}",
    "mesolive_workflow_transitions_total{outcome=\"failed\"}",
    "mesolive_workflow_transitions_total{outcome=\"cancelled\"}",
    "mesolive_workflow_transitions_total{outcome=\"observed\"}",
];
/// The daemon's settings for the scenario.
const SETTINGS: [(&str, &str); 2] = [
    ("MESOLIVE__AUTOMATION__MODE", "paper"),
    ("MESOLIVE__AUTOMATION__MAX_OPEN_POSITIONS", "1000000"),
];

/// One run's latencies and the background rate it really had.
struct Sample {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    background_per_second: f64,
}

/// Runs the scenario `runs` times.
pub(super) async fn run(runs: usize, sizes: &Sizes) -> Result<Vec<Figure>, BenchError> {
    let mut samples = Vec::with_capacity(runs);
    for run in 1..=runs {
        let sample = once(sizes).await?;
        progress(format_args!(
            "10 reaction run {run}/{runs}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
             ({} signals, background {:.0} events/s)",
            sample.p50_ms,
            sample.p99_ms,
            sample.max_ms,
            sizes.reaction_signals,
            sample.background_per_second
        ));
        samples.push(sample);
    }
    let column = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let note = format!(
        "{} entry signals, paper, child process, background {} events/s; signal logged -> \
         first state-changing call (simulator's clock)",
        sizes.reaction_signals, sizes.reaction_background
    );
    Ok(vec![
        Figure::new(
            "10 reaction",
            "signal to call p50",
            "ms",
            column(|s| s.p50_ms),
        )
        .note(note.clone()),
        Figure::new(
            "10 reaction",
            "signal to call p99",
            "ms",
            column(|s| s.p99_ms),
        )
        .target(Target::AtMost(TARGET_P99_MS))
        .note(note.clone()),
        Figure::new(
            "10 reaction",
            "signal to call max",
            "ms",
            column(|s| s.max_ms),
        )
        .note(note),
        Figure::new(
            "10 reaction",
            "background load achieved",
            "events/s",
            column(|s| s.background_per_second),
        ),
    ])
}

async fn once(sizes: &Sizes) -> Result<Sample, BenchError> {
    let sim = BenchSim::start_with(SimOptions {
        positions: 2,
        timing: Timing {
            prepare_delay: Duration::from_millis(5),
            fill_delay: Duration::from_millis(5),
            ..Timing::default()
        },
        ..SimOptions::default()
    })
    .await?;
    let scratch = Scratch::new()?;
    let measured = async {
        let daemon = ChildDaemon::spawn(&sim, &scratch, &SETTINGS)?;
        let (stop_load, stopped) = watch::channel(false);
        let load = tokio::spawn(background(
            sim.admin.clone(),
            sizes.reaction_background,
            stopped,
        ));
        let latencies = measure(&sim, &daemon, sizes.reaction_signals).await;
        let _ = stop_load.send(true);
        let background = load
            .await
            .map_err(|err| BenchError::Child(format!("the background load panicked: {err}")))?;
        Ok::<_, BenchError>((latencies?, background?))
    }
    .await;
    sim.stop().await;
    let (mut latencies, background_per_second) = measured?;
    latencies.sort_by(f64::total_cmp);
    Ok(Sample {
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        background_per_second,
    })
}

/// Emits `per_second` events in steady ticks until told to stop; the rate it achieved.
async fn background(
    admin: AdminClient,
    per_second: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<f64, BenchError> {
    let per_tick = ((per_second as f64 * LOAD_TICK.as_secs_f64()).round() as u64).max(1);
    let mut ticks = tokio::time::interval(LOAD_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut emitted = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticks.tick() => {
                admin.emit(per_tick).await?;
                emitted += per_tick;
            }
        }
    }
    Ok(rate(emitted, started.elapsed()))
}

/// `signals` samples, in milliseconds, in the order taken.
async fn measure(
    sim: &BenchSim,
    daemon: &ChildDaemon,
    signals: usize,
) -> Result<Vec<f64>, BenchError> {
    until(
        "the daemon to be ready",
        STEP_LIMIT,
        METRICS_POLL,
        || async {
            daemon.check_alive()?;
            Ok(daemon.ready().await.then_some(()))
        },
    )
    .await?;
    let applied = read(daemon, &["mesolive_events_applied_total"]).await?;
    read_until(
        daemon,
        "the background load to reach the daemon",
        &["mesolive_events_applied_total"],
        applied + WARM_UP_EVENTS as f64,
    )
    .await?;
    let mut latencies = Vec::with_capacity(signals);
    for _ in 0..signals {
        latencies.push(sample(sim, daemon).await?);
    }
    Ok(latencies)
}

/// One signal: On → its first state-changing call (the sample) → its workflow finished → Off,
/// applied.
async fn sample(sim: &BenchSim, daemon: &ChildDaemon) -> Result<f64, BenchError> {
    let finished_before = read(daemon, &FINAL_OUTCOMES).await?;
    let on = signal(&sim.admin, "On").await?;
    let signalled_us = number(&on, "at_us")?;
    let called_us = first_state_change(&sim.admin, signalled_us).await?;
    read_until(
        daemon,
        "the entry workflow to finish",
        &FINAL_OUTCOMES,
        finished_before + 1.0,
    )
    .await?;
    let off = signal(&sim.admin, "Off").await?;
    let off_seq = number(&off, "event_seq_id")?;
    read_until(
        daemon,
        "the daemon to apply the signal Off",
        &["mesolive_event_cursor"],
        off_seq as f64,
    )
    .await?;
    Ok(called_us.saturating_sub(signalled_us) as f64 / 1_000.0)
}

/// The sum of `series` in the daemon's `/metrics` now (an absent series counts 0).
async fn read(daemon: &ChildDaemon, series: &[&str]) -> Result<f64, BenchError> {
    daemon.check_alive()?;
    let text = daemon
        .scrape()
        .await
        .ok_or_else(|| BenchError::Child("/metrics did not answer".into()))?;
    Ok(series.iter().filter_map(|s| series_value(&text, s)).sum())
}

/// Waits until the sum of `series` is at least `at_least`.
async fn read_until(
    daemon: &ChildDaemon,
    what: &str,
    series: &[&str],
    at_least: f64,
) -> Result<(), BenchError> {
    until(what, STEP_LIMIT, METRICS_POLL, || async {
        Ok((read(daemon, series).await? >= at_least).then_some(()))
    })
    .await
}

async fn signal(admin: &AdminClient, state: &str) -> Result<Value, BenchError> {
    Ok(admin
        .post(
            "/signals",
            json!({"kind": "entry", "state": state, "strategy_id": STRATEGY, "account": PAPER_ACCOUNT}),
        )
        .await?)
}

/// The `at_us` of the first state-changing request recorded after `after_us`.
async fn first_state_change(admin: &AdminClient, after_us: u64) -> Result<u64, BenchError> {
    let path = format!("/requests?after_us={after_us}");
    until(
        "the first state-changing call",
        STEP_LIMIT,
        LOG_POLL,
        || async {
            let log = admin.get(&path).await?;
            let first = log.as_array().into_iter().flatten().find(|record| {
                record["method"]
                    .as_str()
                    .is_some_and(methods::is_state_changing)
            });
            first.map(|record| number(record, "at_us")).transpose()
        },
    )
    .await
}

fn number(answer: &Value, field: &str) -> Result<u64, BenchError> {
    answer[field].as_u64().ok_or_else(|| {
        BenchError::Child(format!("the simulator's answer has no {field}: {answer}"))
    })
}

/// The nearest-rank percentile of sorted samples (0 for none).
fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
