//! (3) Replay: from daemon start to caught up with a backlog it has never seen
//! (`events.first_run = "all"`, a fresh database): connect the hubs in runbook order, page
//! through `GetEventsSince`, commit every page, subscribe, catch up — until the pump is live.

use std::time::{Duration, Instant};

use super::harness::{BenchSim, Scratch, progress, rate, seconds};
use super::inproc::{self, InProcess};
use super::report::{Figure, Target};
use super::{BenchError, Sizes};
use crate::config::{FirstRun, Settings};

/// Longest a replay may take.
const REPLAY_LIMIT: Duration = Duration::from_secs(300);
/// The target, in seconds.
const TARGET_SECONDS: f64 = 3.0;

/// Runs the scenario `runs` times.
pub(super) async fn run(
    base: &Settings,
    runs: usize,
    sizes: &Sizes,
) -> Result<Vec<Figure>, BenchError> {
    let mut times = Vec::with_capacity(runs);
    let mut rates = Vec::with_capacity(runs);
    for run in 1..=runs {
        let elapsed = once(base, sizes.replay_backlog).await?;
        let per_second = rate(sizes.replay_backlog, elapsed);
        progress(format_args!(
            "3 replay run {run}/{runs}: {:.3} s ({per_second:.0} events/s)",
            seconds(elapsed)
        ));
        times.push(seconds(elapsed));
        rates.push(per_second);
    }
    let note = format!(
        "{} events, first_run=all, fresh database, start to caught up",
        sizes.replay_backlog
    );
    Ok(vec![
        Figure::new("3 replay", "start to caught up", "s", times)
            .target(Target::AtMost(TARGET_SECONDS))
            .note(note),
        Figure::new("3 replay", "replay rate", "events/s", rates),
    ])
}

/// One replay of `backlog` events from a fresh database; start to caught up.
pub(super) async fn once(base: &Settings, backlog: u64) -> Result<Duration, BenchError> {
    let sim = BenchSim::start(2).await?;
    let latest = sim.admin.emit(backlog).await?;
    let scratch = Scratch::new()?;
    let mut settings = inproc::settings(base, &sim, &scratch);
    settings.events.first_run = FirstRun::All;
    let started = Instant::now();
    let daemon = InProcess::start(settings.clone()).await?;
    let caught_up = daemon
        .wait("the pump to catch up", REPLAY_LIMIT, |ops| {
            ops.health.caught_up() && ops.metrics.cursor.get() >= latest
        })
        .await;
    let stopped = daemon.stop().await;
    sim.stop().await;
    scratch.drop_schema(&settings).await;
    let elapsed = caught_up? - started;
    stopped?;
    Ok(elapsed)
}
