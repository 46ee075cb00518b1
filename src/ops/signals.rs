//! SIGTERM / SIGINT: the first asks for a graceful stop, the second for a fast one.
//! Both leave the database consistent (every write is one transaction); the fast stop only skips
//! the wait for in-flight workflows.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Listens for termination signals: the first cancels `graceful`, the second cancels `force`.
/// Returns once `force` is cancelled (by a second signal or by the caller).
pub async fn watch_termination(graceful: CancellationToken, force: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
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
