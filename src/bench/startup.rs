//! (6) Start and stop of the daemon as a child process with open positions: from spawning
//! `run` to `/readyz` answering 200 (hubs in runbook order, replay, monitor bootstrap,
//! reconciliation), and, once idle, from SIGTERM to the process having exited.

use std::time::{Duration, Instant};

use super::child::ChildDaemon;
use super::harness::{BenchSim, Scratch, progress, seconds, until};
use super::report::{Figure, Target};
use super::{BenchError, Sizes};

/// Longest the daemon may take to become ready, or to exit.
const LIMIT: Duration = Duration::from_secs(60);
/// How often `/readyz` is probed.
const POLL: Duration = Duration::from_millis(5);
/// Idle time between ready-and-streaming and SIGTERM.
const IDLE: Duration = Duration::from_secs(1);
/// The target for both figures, in seconds.
const TARGET_SECONDS: f64 = 1.0;

/// Runs the scenario `runs` times.
pub(super) async fn run(runs: usize, sizes: &Sizes) -> Result<Vec<Figure>, BenchError> {
    let mut ready = Vec::with_capacity(runs);
    let mut exit = Vec::with_capacity(runs);
    for run in 1..=runs {
        let (to_ready, to_exit) = once(sizes.startup_positions).await?;
        progress(format_args!(
            "6 startup run {run}/{runs}: ready in {:.3} s, exited {:.3} s after SIGTERM",
            seconds(to_ready),
            seconds(to_exit)
        ));
        ready.push(seconds(to_ready));
        exit.push(seconds(to_exit));
    }
    let note = format!(
        "{} positions, child process, fresh database",
        sizes.startup_positions
    );
    Ok(vec![
        Figure::new("6 startup", "spawn to READY", "s", ready)
            .target(Target::AtMost(TARGET_SECONDS))
            .note(note.clone()),
        Figure::new("6 startup", "SIGTERM to exit (idle)", "s", exit)
            .target(Target::AtMost(TARGET_SECONDS))
            .note(note),
    ])
}

async fn once(positions: usize) -> Result<(Duration, Duration), BenchError> {
    let sim = BenchSim::start(positions).await?;
    let scratch = Scratch::new()?;
    let measured = measure(&sim, &scratch, positions).await;
    sim.stop().await;
    measured
}

async fn measure(
    sim: &BenchSim,
    scratch: &Scratch,
    positions: usize,
) -> Result<(Duration, Duration), BenchError> {
    let spawned = Instant::now();
    let daemon = ChildDaemon::spawn(sim, scratch)?;
    let ready = until("/readyz to answer 200", LIMIT, POLL, || async {
        daemon.check_alive()?;
        Ok(daemon.ready().await.then(Instant::now))
    })
    .await?;
    let wanted = positions as f64;
    until("every monitor streaming", LIMIT, POLL * 10, || async {
        Ok((daemon.metric("mesolive_monitors_streaming").await == Some(wanted)).then_some(()))
    })
    .await?;
    tokio::time::sleep(IDLE).await;
    let signalled = Instant::now();
    daemon.terminate()?;
    let status = daemon.wait_exit(LIMIT).await?;
    let exited = signalled.elapsed();
    if !status.success() {
        return Err(BenchError::Child(format!(
            "exited with {status} after SIGTERM"
        )));
    }
    Ok((ready - spawned, exited))
}
