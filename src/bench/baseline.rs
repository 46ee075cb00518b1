//! (9) The Python baseline: the same workload for the Python peer ([`super::peer`]) and then
//! for the daemon, each against a fresh simulator (same seed, same world): replay a backlog
//! from a fresh database, then ingest a live burst. Each run gives daemon ÷ Python for both.
//!
//! Replay is timed from the consumer's start (the peer's `started` line, printed once the
//! interpreter and its imports are loaded; the daemon's in-process start) to its cursor
//! committing the backlog's last EventSeqId; the live burst from the emit call to the cursor
//! committing the burst's last EventSeqId.

use std::time::{Duration, Instant};

use super::harness::{BenchSim, Scratch, progress, rate};
use super::inproc::{self, InProcess};
use super::peer::{Peer, Venv};
use super::report::{Figure, Target};
use super::{BenchError, Sizes};
use crate::config::{FirstRun, Settings};

/// Longest a replay or a burst may take.
const LIMIT: Duration = Duration::from_secs(300);
/// The target for both ratios.
const TARGET_RATIO: f64 = 2.0;

/// Replay and live rates of one consumer in one run.
#[derive(Debug, Clone, Copy)]
struct Rates {
    replay: f64,
    live: f64,
}

/// Runs the scenario `runs` times (the virtualenv is made first if needed).
pub(super) async fn run(
    base: &Settings,
    runs: usize,
    sizes: &Sizes,
) -> Result<Vec<Figure>, BenchError> {
    let venv = tokio::task::spawn_blocking(Venv::ensure)
        .await
        .map_err(|err| BenchError::Peer(format!("virtualenv setup panicked: {err}")))??;
    let mut python = Vec::with_capacity(runs);
    let mut daemon = Vec::with_capacity(runs);
    for run in 1..=runs {
        let peer = python_once(&venv, sizes).await?;
        let ours = daemon_once(base, sizes).await?;
        progress(format_args!(
            "9 python run {run}/{runs}: replay {:.0} vs {:.0} events/s ({:.2}x), \
             live {:.0} vs {:.0} events/s ({:.2}x)",
            ours.replay,
            peer.replay,
            ours.replay / peer.replay,
            ours.live,
            peer.live,
            ours.live / peer.live
        ));
        python.push(peer);
        daemon.push(ours);
    }
    let pick = |of: &[Rates], f: fn(&Rates) -> f64| of.iter().map(f).collect::<Vec<f64>>();
    let ratio = |f: fn(&Rates) -> f64| {
        python
            .iter()
            .zip(&daemon)
            .map(|(p, d)| f(d) / f(p))
            .collect::<Vec<f64>>()
    };
    let workload = format!(
        "backlog {} + simulator's own, burst {}",
        sizes.replay_backlog, sizes.ingest_burst
    );
    Ok(vec![
        Figure::new(
            "9 python",
            "Python replay",
            "events/s",
            pick(&python, |r| r.replay),
        )
        .note("pysignalr + sqlite3, pages of 1000, from its `started` line"),
        Figure::new(
            "9 python",
            "daemon replay",
            "events/s",
            pick(&daemon, |r| r.replay),
        )
        .note("first_run=all, from its start in-process"),
        Figure::new("9 python", "replay daemon/Python", "x", ratio(|r| r.replay))
            .target(Target::AtLeast(TARGET_RATIO))
            .note(workload.clone()),
        Figure::new(
            "9 python",
            "Python live",
            "events/s",
            pick(&python, |r| r.live),
        )
        .note("group commit of <= 1000, from the emit call"),
        Figure::new(
            "9 python",
            "daemon live",
            "events/s",
            pick(&daemon, |r| r.live),
        )
        .note("defaults, from the emit call"),
        Figure::new("9 python", "live daemon/Python", "x", ratio(|r| r.live))
            .target(Target::AtLeast(TARGET_RATIO))
            .note(workload),
    ])
}

/// A fresh simulator with the backlog emitted; its latest EventSeqId.
async fn loaded_sim(backlog: u64) -> Result<(BenchSim, i64), BenchError> {
    let sim = BenchSim::start(2).await?;
    let latest = sim.admin.emit(backlog).await?;
    Ok((sim, latest))
}

async fn python_once(venv: &Venv, sizes: &Sizes) -> Result<Rates, BenchError> {
    let (sim, latest) = loaded_sim(sizes.replay_backlog).await?;
    let scratch = Scratch::new()?;
    let measured: Result<Rates, BenchError> = async {
        let mut peer = Peer::spawn(venv, &sim, &scratch)?;
        let (started, _) = peer.until("started", 0, LIMIT).await?;
        let (caught_up, _) = peer.until("caught_up", latest, LIMIT).await?;
        let emitted = Instant::now();
        let last = sim.admin.emit(sizes.ingest_burst).await?;
        let (committed, _) = peer.until("cursor", last, LIMIT).await?;
        Ok(Rates {
            replay: rate(latest.unsigned_abs(), caught_up - started),
            live: rate(sizes.ingest_burst, committed - emitted),
        })
    }
    .await;
    sim.stop().await;
    measured
}

async fn daemon_once(base: &Settings, sizes: &Sizes) -> Result<Rates, BenchError> {
    let (sim, latest) = loaded_sim(sizes.replay_backlog).await?;
    let scratch = Scratch::new()?;
    let mut settings = inproc::settings(base, &sim, &scratch);
    settings.events.first_run = FirstRun::All;
    let started = Instant::now();
    let daemon = InProcess::start(settings).await?;
    let measured: Result<Rates, BenchError> = async {
        let caught_up = daemon
            .wait("the daemon to replay the backlog", LIMIT, |ops| {
                ops.health.caught_up() && ops.metrics.cursor.get() >= latest
            })
            .await?;
        let emitted = Instant::now();
        let last = sim.admin.emit(sizes.ingest_burst).await?;
        let committed = daemon
            .wait("the daemon to commit the burst", LIMIT, |ops| {
                ops.metrics.cursor.get() >= last
            })
            .await?;
        Ok(Rates {
            replay: rate(latest.unsigned_abs(), caught_up - started),
            live: rate(sizes.ingest_burst, committed - emitted),
        })
    }
    .await;
    let stopped = daemon.stop().await;
    sim.stop().await;
    let rates = measured?;
    stopped?;
    Ok(rates)
}
