//! One term: the supervision tree of the module doc, built on a fresh context, started in
//! runbook order, run until its drain closes, and stopped in order. A daemon alone on its
//! database runs one term for its whole life; a failover leader one per lease it holds.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::roles::Process;
use super::{start, stop};
use crate::ha::SendGate;
use crate::store::Store;
use crate::supervisor::context::{Ctx, hub_links};
use crate::supervisor::drain::Drain;
use crate::tasks::dedupe;

/// Runs one term on `drain` until it closes; `ready` is the status announced once started
/// (`running`, or `leader`).
pub(super) async fn run(
    process: &Process,
    store: &Arc<Store>,
    gate: Arc<SendGate>,
    drain: Drain,
    ready: &str,
) {
    let (senders, links) = hub_links();
    let ctx = Arc::new(Ctx::new(
        process.settings.clone(),
        store.clone(),
        gate,
        process.ops.metrics.clone(),
        process.ops.health.clone(),
        links,
        drain,
    ));
    let children = TaskTracker::new();
    children.spawn(dedupe::run(ctx.clone()));
    let notifier = &process.notifier;
    notifier.status("starting: connecting the Control Hub");
    let started = start::in_runbook_order(
        &ctx,
        &children,
        &process.connector,
        &Arc::new(senders),
        notifier,
    )
    .await;
    if started {
        ctx.health().set_started();
        notifier.ready(ready);
        tracing::info!(role = ready, "ready");
    }
    ctx.drain().intake_closed().await;
    // The process stopping (a signal, a fatal condition) or, with failover, only this term
    // (the lease is gone): systemd hears of the former only.
    let cause = if process.drain.is_intake_closed() {
        stop::Cause::Process
    } else {
        stop::Cause::SteppingDown
    };
    stop::in_order(&ctx, &children, notifier, cause).await;
}
