//! What every scenario needs: a fresh simulator with its admin client, polling a condition with
//! a deadline, and a scratch directory for a database that is removed afterwards.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::BenchError;
use crate::config::Settings;
use crate::store::{Location, Store};
use mesolive_sim::{AdminClient, RunningSim, SimOptions, Simulator};

/// A simulator started for one run (a fresh world: no history, no old connections).
pub(super) struct BenchSim {
    /// The simulator.
    pub running: RunningSim,
    /// Its admin API.
    pub admin: AdminClient,
}

impl BenchSim {
    /// A simulator with `positions` open positions and otherwise default timing (position
    /// streams send at most 2 updates/s).
    pub(super) async fn start(positions: usize) -> Result<BenchSim, BenchError> {
        BenchSim::start_with(SimOptions {
            positions,
            ..SimOptions::default()
        })
        .await
    }

    /// A simulator with `options`.
    pub(super) async fn start_with(options: SimOptions) -> Result<BenchSim, BenchError> {
        let running = Simulator::start(options).await?;
        let admin = AdminClient::new(running.admin_url());
        Ok(BenchSim { running, admin })
    }

    /// Stops the simulator and waits for its tasks.
    pub(super) async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// Runs the future that `work` builds on a runtime of its own (2 workers) on its own thread,
/// as if in another process: its tasks do not wait behind the simulator's. The future is built
/// on that thread, so it need not be `Send`. Returns the thread (to see whether it ended) and
/// the receiver of the future's output.
pub(super) fn on_own_runtime<T, F, Fut>(
    name: &str,
    work: F,
) -> Result<(std::thread::JoinHandle<()>, oneshot::Receiver<T>), BenchError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let io = |what: String| move |source| BenchError::Io { what, source };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(io(format!("building the {name} runtime")))?;
    let (sender, receiver) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = sender.send(runtime.block_on(work()));
        })
        .map_err(io(format!("starting the {name} thread")))?;
    Ok((thread, receiver))
}

/// Polls `probe` every `every` until it yields a value, or fails naming `what` after `limit`;
/// a probe's error (the daemon died) ends the wait at once.
pub(super) async fn until<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, BenchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, BenchError>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                what: what.to_owned(),
                after: limit,
            });
        }
        tokio::time::sleep(every).await;
    }
}

/// A directory under the system temp dir, removed with everything in it on drop.
pub(super) struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A new, empty directory unique to this process and call.
    pub(super) fn new() -> Result<Scratch, BenchError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "mesolive-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).map_err(|source| BenchError::Io {
            what: format!("creating {}", path.display()),
            source,
        })?;
        Ok(Scratch { path })
    }

    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The database file inside it.
    pub(super) fn database(&self) -> PathBuf {
        self.path.join("state.db")
    }

    /// The PostgreSQL schema of this scratch: named after its directory, unique too.
    pub(super) fn schema(&self) -> String {
        let name = self
            .path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("scratch");
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// Drops the scratch schema from the PostgreSQL database of `settings`, if it has one.
    pub(super) async fn drop_schema(&self, settings: &Settings) {
        if let Location::Postgres(location) = settings.store_location()
            && let Err(err) = Store::drop_schema(&location).await
        {
            progress(format_args!(
                "scratch schema {} left: {err}",
                location.schema
            ));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Seconds as a figure.
pub(super) fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// A rate as a figure (`count` per `duration`; 0 for an empty interval).
pub(super) fn rate(count: u64, duration: Duration) -> f64 {
    let secs = duration.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Prints a progress line to stderr (stdout carries only the report).
pub(super) fn progress(line: impl std::fmt::Display) {
    eprintln!("bench: {line}");
}
