//! Startup in runbook order: each hub link is started and waited for in turn (Control → Data →
//! Event), then the pump must be live, the monitors bootstrapped and the in-flight intents and
//! jobs reconciled before the daemon reports READY. Every wait gives way to the drain.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::ops::notify::Notifier;
use crate::supervisor::child::supervise;
use crate::supervisor::context::{Ctx, HubLinkSenders, LinkWatch, next_link};
use crate::supervisor::links::{Connector, Generations, run_link};
use crate::tasks::{event_pump, position_monitor, reconciler, workflow};
use mesolive_api::Hub;

/// Starts every child; returns whether the daemon got to READY (false if it was asked to
/// stop or a fatal condition came first).
pub(super) async fn in_runbook_order(
    ctx: &Arc<Ctx>,
    children: &TaskTracker,
    connector: &Connector,
    senders: &Arc<HubLinkSenders>,
    notifier: &Notifier,
) -> bool {
    let drain = ctx.drain();
    let generations = Arc::new(Generations::default());
    // The pump starts first and waits (beating) for the Event Hub, which comes up last.
    children.spawn(supervise("event_pump", ctx.clone(), event_pump::run));
    for hub in Hub::ALL {
        let (connector, senders, generations) =
            (connector.clone(), senders.clone(), generations.clone());
        children.spawn(supervise(link_name(hub), ctx.clone(), move |ctx| {
            run_link(
                ctx,
                hub,
                connector.clone(),
                senders.clone(),
                generations.clone(),
            )
        }));
        notifier.status(&format!("starting: waiting for the {} hub", hub.as_str()));
        let links = ctx.links();
        let up = match hub {
            Hub::Control => wait_up(ctx, links.control()).await,
            Hub::Data => wait_up(ctx, links.data()).await,
            Hub::Event => wait_up(ctx, links.event()).await,
        };
        if !up {
            return false;
        }
    }
    notifier.status("starting: replaying events");
    let mut live = ctx.health().subscribe_caught_up();
    let caught_up = tokio::select! {
        result = live.wait_for(|live| *live) => result.is_ok(),
        _ = drain.intake_closed() => false,
    };
    if !caught_up {
        return false;
    }
    notifier.status("starting: bootstrapping position monitors");
    children.spawn(supervise("monitors", ctx.clone(), position_monitor::run));
    let monitors_up = tokio::select! {
        _ = ctx.bootstrapped() => true,
        _ = drain.intake_closed() => false,
    };
    if !monitors_up {
        return false;
    }
    notifier.status("starting: reconciling in-flight intents and jobs");
    tokio::select! {
        reconciled = reconciler::reconcile_once(ctx) => {
            if let Err(err) = reconciled {
                tracing::warn!(error = %err, "startup reconciliation incomplete; the reconciler retries");
            }
        }
        // Settling is reads and single-transaction writes: what it did not finish is settled
        // on the next start.
        _ = drain.intake_closed() => return false,
    }
    children.spawn(supervise("reconciler", ctx.clone(), reconciler::run));
    children.spawn(supervise("workflows", ctx.clone(), workflow::run));
    !drain.is_intake_closed()
}

fn link_name(hub: Hub) -> &'static str {
    match hub {
        Hub::Control => "link/control",
        Hub::Data => "link/data",
        Hub::Event => "link/event",
    }
}

/// Waits for the first connection of a hub; `false` if the stop began first.
async fn wait_up<T: Clone>(ctx: &Ctx, mut link: LinkWatch<T>) -> bool {
    next_link(&mut link, None, ctx.drain().intake_closed())
        .await
        .is_some()
}
