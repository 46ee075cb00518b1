//! Helpers that every crate's integration tests share, and nothing domain-specific: waiting on a
//! condition with a deadline (never a fixed sleep), bounding a future, temp dirs, seeds that a
//! failing run prints so it can be replayed, and running a Node.js script of a test's own npm
//! project. A dev-dependency only; what knows about the daemon, the simulator or the store lives
//! in the owning crate's `tests/it/support`.

use std::future::Future;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

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
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

/// The seed of a randomized test: `name` from the environment when set, else a random one.
/// Prints `name=<seed>`, so a failing run is replayed by setting it.
pub fn seed(name: &str) -> u64 {
    let seed = env_u64(name).unwrap_or_else(|| fastrand::u64(..));
    println!("{name}={seed}");
    seed
}

/// How long `npm ci` may take (a fresh machine downloads the packages).
const NPM_CI_PATIENCE: Duration = Duration::from_secs(600);
/// How long a Node.js script may take.
const NODE_PATIENCE: Duration = Duration::from_secs(180);

/// Runs `node <script> <args>` in the npm project at `project` and fails the test, showing
/// node's output, unless it exits 0. Installs the project's locked packages first (`npm ci`)
/// when `node_modules` is missing or older than `package-lock.json`. Needs Node.js and npm: a
/// test that calls this is `#[ignore]`d with how to run it, and `.ci/run` runs it.
pub async fn run_node(project: &Path, script: &str, args: &[&str]) {
    if !packages_installed(project) {
        let npm = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(project)
            .kill_on_drop(true)
            .output();
        let output = within("npm ci", NPM_CI_PATIENCE, npm).await;
        succeeded(&format!("npm ci in {}", project.display()), output);
    }
    let node = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(project)
        .kill_on_drop(true)
        .output();
    let output = within(script, NODE_PATIENCE, node).await;
    succeeded(&format!("node {script} {}", args.join(" ")), output);
}

/// Whether `node_modules` was installed from the current lock file.
fn packages_installed(project: &Path) -> bool {
    let modified = |path: &Path| -> Option<SystemTime> { path.metadata().ok()?.modified().ok() };
    let installed = modified(&project.join("node_modules/.package-lock.json"));
    let locked = modified(&project.join("package-lock.json"));
    matches!((installed, locked), (Some(installed), Some(locked)) if installed >= locked)
}

/// Fails the test unless `command` ran and exited 0; shows its output when it did not.
fn succeeded(command: &str, output: std::io::Result<Output>) {
    let output = output.unwrap_or_else(|err| {
        panic!("{command}: cannot run it ({err}); this test needs Node.js and npm on PATH")
    });
    assert!(
        output.status.success(),
        "{command}: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));
}
