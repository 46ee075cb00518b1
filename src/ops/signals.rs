//! SIGTERM / SIGINT: the first asks for a graceful stop, the second for a fast one.
//! Both leave the database consistent (every write is one transaction); the fast stop only skips
//! the wait for in-flight workflows.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Installs the SIGTERM/SIGINT handlers NOW (before anything else starts, so a signal that
/// arrives during startup is caught rather than killing the process by its default action) and
/// returns the watcher: the first signal cancels `graceful`, the second cancels `force`. The
/// watcher ends once `force` is cancelled (by a second signal or by the caller). Must be called
/// inside the runtime.
pub fn watch_termination(
    graceful: CancellationToken,
    force: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move { watch(handlers, graceful, force).await }
}

async fn watch(
    handlers: (
        std::io::Result<tokio::signal::unix::Signal>,
        std::io::Result<tokio::signal::unix::Signal>,
    ),
    graceful: CancellationToken,
    force: CancellationToken,
) {
    let (Ok(mut term), Ok(mut int)) = handlers else {
        tracing::error!("cannot install SIGTERM/SIGINT handlers; stop with SIGKILL only");
        force.cancelled().await;
        return;
    };
    let mut received = 0;
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = force.cancelled() => return,
        };
        received += 1;
        if received == 1 {
            tracing::info!(
                signal = name,
                "stopping gracefully (send it again to stop at once)"
            );
            graceful.cancel();
        } else {
            tracing::warn!(signal = name, "second signal: stopping at once");
            graceful.cancel();
            force.cancel();
            return;
        }
    }
}
