//! Durable workflows: signal → prepare → execute, one small state machine per signal instance,
//! persisted in SQLite so a restarted process resumes exactly where it stopped.
//!
//! ```text
//! requested ─prepare intent─▶ preparing(JobId) ─job completed─▶ prepared(plan) ─▶ executing(groups)
//!     │                           │ job failed → failed            │ gate closed → cancelled
//!     │ signal Off / not allowed  │ signal Off → cancel intent → cancelled
//!     ▼                           ▼                                 ▼ all groups executed (and, live,
//!  cancelled / observed        cancelled                            every order filled) → done
//! ```
//!
//! * One workflow per signal *instance* (the Off→On transition that started it), and never two
//!   active workflows for one scope (strategy+account for entries, the position otherwise): both
//!   are unique constraints in the store.
//! * Every call that changes the world is an intent with a key derived from the workflow and the
//!   step (`{db instance}-w{id}-prep`, `…-cancel`, `…-exec-g{group}`), so a restarted process
//!   derives the same key and `intent::execute` settles instead of resending.
//! * The runner is level-triggered: on every wake-up it re-reads signals and active workflows
//!   and drives each (one task per workflow at most) until it has to wait for the server.
//!
//! Layout: this file is the runner (wake-ups, one drive task per workflow, drain guards);
//! `admission` decides whether a signal instance may act, `decide` the next step of a workflow
//! from the facts (both pure); `steps` is the I/O that gathers the facts and performs the
//! decided change.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

mod admission;
mod decide;
mod retry;
mod steps;

use steps::Step;

use super::intent::IntentError;
use crate::store::{StoreError, WorkflowRecord};
use crate::supervisor::child::{ChildError, Unauthorized};
use crate::supervisor::context::Ctx;
use crate::supervisor::drain::InFlight;
use crate::supervisor::precedence::Claim;
use mesolive_api::client::ControlHub;

/// TEST ONLY — never set in production: with this variable set to `1`, the runner ignores exit
/// signals (opens no exit workflow). It exists so the fault campaign can show that its
/// liveness check catches a daemon that does not do its job.
pub const IGNORE_EXIT_SIGNALS_ENV: &str = "MESOLIVE_TEST_IGNORE_EXIT_SIGNALS";

/// Whether the test-only [`IGNORE_EXIT_SIGNALS_ENV`] switch is on (read once).
fn ignores_exit_signals() -> bool {
    static IGNORE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IGNORE.get_or_init(|| {
        let on = std::env::var(IGNORE_EXIT_SIGNALS_ENV).is_ok_and(|v| v == "1");
        if on {
            tracing::warn!("{IGNORE_EXIT_SIGNALS_ENV}=1: exit signals are ignored (test only)");
        }
        on
    })
}

/// How often active workflows are re-driven without a wake-up.
const TICK: Duration = Duration::from_secs(1);

/// Runs the workflow runner until the daemon stops.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), ChildError> {
    let mut driving: HashMap<i64, JoinHandle<Result<(), DriveError>>> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let result = loop {
        if let Err(err) = reap(&mut driving).await {
            break Err(err);
        }
        // The turn the event pump handed over after a signal, if any: this pass and the
        // workflows it starts go before the pump's next batch.
        let turn = ctx.precedence().take();
        if !ctx.drain().is_intake_closed() {
            let control = ctx.links().current_control();
            if let Some(control) = control {
                let mut start = |workflow: WorkflowRecord| {
                    // Each drive is in-flight work: the stop waits for it (within its grace);
                    // none starts once the stop began.
                    if let Entry::Vacant(slot) = driving.entry(workflow.id)
                        && let Some(in_flight) = ctx.drain().in_flight()
                    {
                        slot.insert(spawn_drive(
                            ctx.clone(),
                            control.client.clone(),
                            workflow,
                            in_flight,
                            turn.clone(),
                        ));
                    }
                };
                // Signals are only as current as the event pump: none is acted on while it
                // replays, catches up or resyncs a hole in the server's history.
                if ctx.health().caught_up() {
                    match steps::open_workflows(&ctx).await {
                        // The workflows just opened start first: a signal waits for their call.
                        Ok(opened) => opened
                            .into_iter()
                            .filter(|workflow| workflow.state.is_active())
                            .for_each(&mut start),
                        Err(err) => break Err(ChildError::store("opening workflows", err)),
                    }
                }
                match ctx.store().active_workflows().await {
                    Ok(active) => active.into_iter().for_each(&mut start),
                    Err(err) => break Err(ChildError::store("reading active workflows", err)),
                }
            }
        }
        drop(turn);
        tokio::select! {
            _ = ctx.wake().workflows.notified() => {}
            _ = tick.tick() => {}
            _ = ctx.drain().stopping() => break Ok(()),
        }
    };
    // The grace is over: whatever is still mid-call is settled on the next start.
    for (_, handle) in driving.drain() {
        handle.abort();
    }
    result
}

async fn reap(
    driving: &mut HashMap<i64, JoinHandle<Result<(), DriveError>>>,
) -> Result<(), ChildError> {
    let finished: Vec<i64> = driving
        .iter()
        .filter(|(_, handle)| handle.is_finished())
        .map(|(id, _)| *id)
        .collect();
    for id in finished {
        let Some(handle) = driving.remove(&id) else {
            continue;
        };
        match handle.await {
            Ok(Ok(())) => {}
            Ok(Err(DriveError::Unauthorized(refused))) => return Err(refused.into()),
            Ok(Err(DriveError::Store(err))) => {
                return Err(ChildError::store(format!("workflow {id}"), err));
            }
            Err(join) if join.is_panic() => {
                return Err(ChildError::Broken(format!("workflow {id}: step panicked")));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Drives one workflow in its own task until it has to wait, holding `in_flight` (the stop
/// waits for it) and its share of `turn` (so does the event pump's next batch, within the limit).
fn spawn_drive(
    ctx: Arc<Ctx>,
    control: ControlHub,
    workflow: WorkflowRecord,
    in_flight: InFlight,
    turn: Option<Claim>,
) -> JoinHandle<Result<(), DriveError>> {
    let span = tracing::info_span!("workflow", id = workflow.id, kind = workflow.kind.as_str());
    tokio::spawn(
        async move {
            let _guards = (in_flight, turn);
            drive(&ctx, &control, workflow).await
        }
        .instrument(span),
    )
}

/// Why driving a workflow stopped the runner.
#[derive(Debug, thiserror::Error)]
enum DriveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unauthorized(#[from] Unauthorized),
}

impl From<IntentError> for DriveError {
    fn from(err: IntentError) -> Self {
        match err {
            IntentError::Store(err) => DriveError::Store(err),
            IntentError::Unauthorized(refused) => DriveError::Unauthorized(refused),
        }
    }
}

/// Advances one workflow until it has to wait or ends: gather the facts, decide, perform;
/// from the record it was started with (just read), then as each change left it in the store.
async fn drive(
    ctx: &Ctx,
    control: &ControlHub,
    mut workflow: WorkflowRecord,
) -> Result<(), DriveError> {
    loop {
        let facts = steps::gather(ctx, &workflow).await?;
        let change = decide::decide(&workflow, &facts);
        if steps::perform(ctx, control, &workflow, change).await? == Step::Waiting {
            return Ok(());
        }
        workflow = match ctx.store().workflow(workflow.id).await? {
            Some(workflow) => workflow,
            None => return Ok(()),
        };
    }
}
