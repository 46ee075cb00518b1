//! The stop, following the drain's phases: intake closed → in-flight workflows get the grace →
//! children stop → in-flight intents are marked for reconciliation → hubs close
//! Event → Data → Control. A forced stop skips every wait.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;
use tokio_util::task::TaskTracker;

use crate::ops::notify::Notifier;
use crate::supervisor::context::Ctx;

/// Most time closing one hub may take.
const HUB_CLOSE: Duration = Duration::from_secs(5);

/// Stops the children and closes the hubs; returns once the store is consistent.
pub(super) async fn in_order(ctx: &Arc<Ctx>, children: &TaskTracker, notifier: &Notifier) {
    let drain = ctx.drain();
    notifier.stopping();
    ctx.health().set_stopping();
    drain.close_intake();
    let grace = ctx.settings().supervisor.shutdown_grace;
    tracing::info!(grace = ?grace, "stopping: no new signals or intents; waiting for in-flight workflows");
    tokio::select! {
        _ = drain.idle() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed with workflows in flight"),
        _ = drain.forced() => {}
    }
    drain.stop_children();
    children.close();
    tokio::select! {
        _ = timeout(grace, children.wait()) => {}
        _ = drain.forced() => {}
    }
    match ctx.store().abandon_in_flight_intents().await {
        Ok(n) if n > 0 => tracing::info!(
            intents = n,
            "in-flight intents left for reconciliation on next start"
        ),
        Ok(_) => {}
        Err(err) => tracing::error!(error = %err, "could not mark in-flight intents"),
    }
    ctx.links().close(HUB_CLOSE).await;
    let cursor = ctx.store().cursor().await.ok().flatten();
    tracing::info!(cursor = ?cursor, "stopped");
}
