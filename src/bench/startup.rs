//! (6) Start and stop of the daemon as a child process with open positions: from spawning
//! `run` to `/readyz` answering 200 (hubs in runbook order, replay, monitor bootstrap,
//! reconciliation), and, once idle, from SIGTERM to the process having exited; and from SIGTERM
//! to exit while a hub is unreachable — its address accepts TCP and never answers, so a connect
//! is pending (the stop must not wait for it to time out).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

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
/// The target for the figures, in seconds.
const TARGET_SECONDS: f64 = 1.0;

/// Runs the scenario `runs` times.
pub(super) async fn run(runs: usize, sizes: &Sizes) -> Result<Vec<Figure>, BenchError> {
    let mut ready = Vec::with_capacity(runs);
    let mut exit = Vec::with_capacity(runs);
    let mut exit_unreachable = Vec::with_capacity(runs);
    for run in 1..=runs {
        let (to_ready, to_exit) = once(sizes.startup_positions).await?;
        let unreachable = once_unreachable().await?;
        progress(format_args!(
            "6 startup run {run}/{runs}: ready in {:.3} s, exited {:.3} s after SIGTERM, {:.3} s with a hub unreachable",
            seconds(to_ready),
            seconds(to_exit),
            seconds(unreachable)
        ));
        ready.push(seconds(to_ready));
        exit.push(seconds(to_exit));
        exit_unreachable.push(seconds(unreachable));
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
        Figure::new(
            "6 startup",
            "SIGTERM to exit (hub unreachable)",
            "s",
            exit_unreachable,
        )
        .target(Target::AtMost(TARGET_SECONDS))
        .note("child process starting, its Control Hub connect pending on a black hole"),
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
    let daemon = ChildDaemon::spawn(sim, scratch, &[])?;
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
    Ok((ready - spawned, stop(&daemon).await?))
}

/// SIGTERM, and the time until the process has exited (status 0).
async fn stop(daemon: &ChildDaemon) -> Result<Duration, BenchError> {
    let signalled = Instant::now();
    daemon.terminate()?;
    let status = daemon.wait_exit(LIMIT).await?;
    let exited = signalled.elapsed();
    if !status.success() {
        return Err(BenchError::Child(format!(
            "exited with {status} after SIGTERM"
        )));
    }
    Ok(exited)
}

/// The daemon starts against a hub address that accepts TCP and never answers; once its
/// connect is pending there, SIGTERM: the time to exit.
async fn once_unreachable() -> Result<Duration, BenchError> {
    let sim = BenchSim::start(0).await?;
    let scratch = Scratch::new()?;
    let hole = BlackHole::open().await?;
    let measured = async {
        let daemon = ChildDaemon::spawn_against(&hole.origin, &sim, &scratch, &[])?;
        until(
            "a hub connect held by the black hole",
            LIMIT,
            POLL,
            || async {
                daemon.check_alive()?;
                Ok((hole.accepted() > 0).then_some(()))
            },
        )
        .await?;
        stop(&daemon).await
    }
    .await;
    sim.stop().await;
    measured
}

/// A listener on 127.0.0.1 that accepts connections and never answers (held until dropped).
struct BlackHole {
    origin: String,
    accepted: Arc<AtomicUsize>,
    serving: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    async fn open() -> Result<BlackHole, BenchError> {
        let io = |source| BenchError::Io {
            what: "opening the black-hole listener".into(),
            source,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
        let origin = format!("http://{}", listener.local_addr().map_err(io)?);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let serving = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                held.push(socket);
            }
        });
        Ok(BlackHole {
            origin,
            accepted,
            serving,
        })
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.serving.abort();
    }
}
