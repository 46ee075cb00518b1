//! The stop, following the drain's phases, and never waiting on a server:
//!
//! 1. intake closed (the first signal): no new workflow or intent, no hub (re)connected, any
//!    connect in flight dropped;
//! 2. in-flight workflows get what is left of `supervisor.shutdown_grace` (counted from the
//!    first signal), then are abandoned;
//! 3. the children stop (each aborted if it has not returned within its stop budget);
//! 4. in-flight intents are marked `abandoned`, for the reconciler on the next start;
//! 5. the hubs close Event → Data → Control, each bounded by [`HUB_CLOSE`].
//!
//! A forced stop (a second signal, a fatal condition) skips every wait that is left; step 4
//! still runs, so the store is consistent either way. A failover leader that lost its lease
//! stops the same way without the grace (its children were told to stop at once, and the send
//! gate is closed); step 4 is refused by the fencing and left to the next leader.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};
use tokio_util::task::TaskTracker;

use crate::ops::notify::Notifier;
use crate::supervisor::context::Ctx;

/// Most time closing one hub may take: a server that does not answer the close handshake is
/// dropped after it (a close answered within it is one round trip; the three hubs close one
/// after the other).
pub(super) const HUB_CLOSE: Duration = Duration::from_millis(400);

/// Why a term stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// The process stops (a signal, the caller, a fatal condition).
    Process,
    /// The lease is gone: the term stops at once (its children were already told to), the
    /// process goes back to standby. systemd is not told of a stop.
    SteppingDown,
}

/// Stops the children and closes the hubs; returns once the store is consistent.
pub(super) async fn in_order(
    ctx: &Arc<Ctx>,
    children: &TaskTracker,
    notifier: &Notifier,
    cause: Cause,
) {
    let drain = ctx.drain();
    if cause == Cause::Process {
        notifier.stopping();
        ctx.health().set_stopping();
    }
    drain.close_intake();
    let grace = ctx.settings().supervisor.shutdown_grace;
    let deadline = Instant::now() + grace;
    tracing::info!(grace = ?grace, "stopping: no new signals or intents; waiting for in-flight workflows");
    tokio::select! {
        _ = drain.idle() => {}
        _ = tokio::time::sleep_until(deadline) => tracing::warn!("shutdown grace elapsed with workflows in flight"),
        // Stepping down (or forced): no grace, the children are already stopping.
        _ = drain.stopping() => {}
    }
    drain.stop_children();
    children.close();
    tokio::select! {
        _ = timeout_at(deadline, children.wait()) => {}
        _ = drain.forced() => {}
    }
    match ctx.store().abandon_in_flight_intents().await {
        Ok(n) if n > 0 => tracing::info!(
            intents = n,
            "in-flight intents left for reconciliation on next start"
        ),
        Ok(_) => {}
        // The next leader settles them as they are.
        Err(err) if err.is_leadership_lost() => {}
        Err(err) => tracing::error!(error = %err, "could not mark in-flight intents"),
    }
    tokio::select! {
        _ = ctx.links().close(HUB_CLOSE) => {}
        _ = drain.forced() => {}
    }
    let cursor = ctx.store().cursor().await.ok().flatten();
    tracing::info!(cursor = ?cursor, forced = drain.is_forced(), "stopped");
}
