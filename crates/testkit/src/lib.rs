//! Helpers that every crate's integration tests share, and nothing domain-specific: waiting on a
//! condition with a deadline (never a fixed sleep), bounding a future, temp dirs, and seeds that
//! a failing run prints so it can be replayed. A dev-dependency only; what knows about the
//! daemon, the simulator or the store lives in the owning crate's `tests/it/support`.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

pub use tempfile::TempDir;

/// How often a condition is checked again: quick enough not to slow a test, slow enough that
/// polling a process over HTTP or SQLite does not load it.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it yields a value (`Some`), or `None` once `timeout` has passed.
async fn poll<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `check` holds within `timeout`: for a caller that reports the outcome itself
/// instead of failing the test.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(timeout, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Waits until `check` holds; fails the test naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        eventually(timeout, check).await,
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Waits until `probe` yields a value and returns it; fails the test naming `what` after
/// `timeout`.
pub async fn wait_some<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(timeout, probe)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Awaits `future`; fails the test naming `what` if it takes longer than `timeout`.
pub async fn within<T>(what: &str, timeout: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// A fresh directory, removed when dropped.
pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("a temp dir")
}

/// The value of the environment variable `name` as a number, if it is set to one.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|value| value.parse().ok())
}

/// The seed of a randomized test: `name` from the environment when set, else a random one.
/// Prints `name=<seed>`, so a failing run is replayed by setting it.
pub fn seed(name: &str) -> u64 {
    let seed = env_u64(name).unwrap_or_else(|| fastrand::u64(..));
    println!("{name}={seed}");
    seed
}
