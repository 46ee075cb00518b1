//! The resync after a hole in the server's event history (API §6.3: "fall back to a full state
//! resync from the Control Hub and reset the cursor"): what the missing events would have told
//! the daemon is read from the Control Hub instead, and committed together with the hole's
//! record and the cursor past it, as one store operation
//! ([`crate::store::Store::resync_after_history_gap`]).
//!
//! In order:
//! 1. in-flight intents and prepare jobs are settled as the reconciler does (at startup every
//!    intent and job; later every job, each workflow's drive settling its own intents);
//! 2. every open position is listed (paged); a position the store holds open that the listing
//!    lacks is closed only once `GetPosition` confirms it (closed, or unknown to the server);
//! 3. the legs of every open position are listed (paged);
//! 4. the orders of every execution plan still running — an active workflow's plan, or the plan
//!    of an order not known to be final — are listed (paged);
//! 5. the store commits all of it; there, every signal held On that no running workflow acts
//!    on is set Off until the server asserts it again (the hole may hold its Off), so a stale
//!    signal never starts a workflow.
//!
//! The position monitors follow the store, and are woken; so is the workflow runner.

use std::collections::{BTreeMap, HashSet};

use super::effects;
use super::reconciler::{self, ReconcileError};
use crate::store::{HistoryGap, Resync, ResyncSummary, StoreError};
use crate::supervisor::child::Unauthorized;
use crate::supervisor::context::Ctx;
use mesolive_api::client::{ControlHub, HubError};
use mesolive_api::lenient::decode_ref;
use mesolive_api::models::PreparedPlan;

/// Items asked for per page of the Control Hub lists.
const PAGE_SIZE: u32 = 200;

/// Why a resync could not be committed; nothing of it was (the hole is met again and the
/// resync retried).
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    /// A Control Hub read failed.
    #[error("control hub: {0}")]
    Hub(#[from] HubError),
    /// The Control Hub is not connected.
    #[error("control hub not connected")]
    NoControl,
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credentials were refused.
    #[error(transparent)]
    Unauthorized(#[from] Unauthorized),
}

impl From<ReconcileError> for ResyncError {
    fn from(err: ReconcileError) -> Self {
        match err {
            ReconcileError::NoControl => ResyncError::NoControl,
            ReconcileError::Store(err) => ResyncError::Store(err),
            ReconcileError::Unauthorized(refused) => ResyncError::Unauthorized(refused),
        }
    }
}

/// Resyncs the state after `gap` from `control` and commits it with the hole's record and the
/// cursor at the hole's end.
pub async fn resync(
    ctx: &Ctx,
    control: &ControlHub,
    gap: &HistoryGap,
) -> Result<ResyncSummary, ResyncError> {
    reconciler::settle_in_flight(ctx, ctx.health().started()).await?;
    let open = open_positions(ctx, control).await?;
    let mut legs = Vec::new();
    for position in &open.listed {
        let listed = control.list_legs(position.position_id, PAGE_SIZE).await?;
        legs.extend(listed.iter().map(effects::listed_leg));
    }
    let orders = running_orders(ctx, control).await?;
    let resync = Resync {
        open_positions: open.listed,
        closed_positions: open.closed,
        legs,
        orders,
    };
    let summary = ctx.store().resync_after_history_gap(gap, &resync).await?;
    ctx.wake().positions.notify_one();
    ctx.wake().workflows.notify_one();
    Ok(summary)
}

/// What the Control Hub says of the positions.
struct OpenPositions {
    /// Every position open on the server.
    listed: Vec<crate::store::PositionUpdate>,
    /// Positions the store holds open that the server confirmed closed or does not know.
    closed: Vec<i64>,
}

async fn open_positions(ctx: &Ctx, control: &ControlHub) -> Result<OpenPositions, ResyncError> {
    let mut listed: Vec<_> = control
        .list_open_positions(PAGE_SIZE)
        .await?
        .iter()
        .map(effects::listed_position)
        .collect();
    let on_server: HashSet<i64> = listed.iter().map(|p| p.position_id).collect();
    let mut closed = Vec::new();
    for held in ctx.store().open_position_keys().await? {
        if on_server.contains(&held.position_id) {
            continue;
        }
        match control.get_position(held.position_id).await? {
            // The listing missed it (it opened while the pages were read): still open.
            Some(position) if position.is_open() => {
                listed.push(effects::listed_position(&position))
            }
            _ => closed.push(held.position_id),
        }
    }
    Ok(OpenPositions { listed, closed })
}

/// The orders of every execution plan still running: an active workflow's plan, or the plan of
/// an order not known to be final. Keyed by plan, with the strategy the orders belong to.
async fn running_orders(
    ctx: &Ctx,
    control: &ControlHub,
) -> Result<Vec<crate::store::OrderUpdate>, ResyncError> {
    let mut plans: BTreeMap<i64, i64> = BTreeMap::new();
    for workflow in ctx.store().active_workflows().await? {
        if let Some(plan) = workflow
            .plan
            .as_ref()
            .and_then(|plan| decode_ref::<PreparedPlan>(plan).ok())
        {
            plans.insert(plan.exec_plan_id, workflow.strategy_id);
        }
    }
    for order in ctx.store().unsettled_orders().await? {
        if let Some(plan) = order.exec_plan_id {
            plans.entry(plan).or_insert(order.strategy_id);
        }
    }
    let mut orders = Vec::new();
    for (plan, strategy_id) in plans {
        let listed = control.list_orders(plan, PAGE_SIZE).await?;
        orders.extend(
            listed
                .iter()
                .map(|order| effects::listed_order(order, strategy_id)),
        );
    }
    Ok(orders)
}
