//! Intents: every state-changing Control Hub call goes through [`execute`], which commits the
//! key and args before sending, commits the outcome after, and settles anything uncertain with
//! `GetIdempotencyRecord` — never by sending a second request with a new key.
//!
//! | answer | what is committed |
//! |---|---|
//! | success | `completed` with the payload |
//! | `DuplicateRequest` | the original outcome, read from the idempotency record |
//! | `Conflict` | re-checked through the record until it settles (or left `unknown`) |
//! | other API error / hub error | `failed` with the reason |
//! | timeout / connection lost | `unknown`: settled before the workflow may move on |
//! | never sent (no connection) | `unknown`: sent again later with the same key |
//!
//! Two gates hold a send:
//!
//! * the send gate ([`SendGate`], failover): a leader whose lease may be about to expire (or
//!   is gone) sends nothing; the intent stays committed, and whoever leads next settles it with
//!   the same key;
//! * the trading gate ([`TradingGate`]): this is the one place the trading state's `halted` is
//!   enforced. Through a closed trading gate nothing is committed and nothing is sent, while an
//!   intent already in flight is still settled by reading its idempotency record (reading is
//!   not acting). It is read at the moment of sending, so a halt that arrives while an intent
//!   settles holds its send.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::ha::SendGate;
use crate::ops::crash;
use crate::store::{
    IntentRecord, IntentState, NewIntent, Recorded, Store, StoreError, TradingState,
};
use crate::supervisor::child::Unauthorized;
use mesolive_api::client::{ControlHub, HubError};
use mesolive_api::models::{IdempotencyRecord, IdempotencyRecordStatus, StatusCode};

/// How often a `Processing` record is re-read while waiting for it to settle.
const PROCESSING_POLL: Duration = Duration::from_millis(250);
/// How long a `Processing` record is waited for within one settle (then: try again later).
const PROCESSING_DEADLINE: Duration = Duration::from_secs(30);

/// What became of an intent, as far as the caller's next step is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentOutcome {
    /// Done: the payload of the original successful response.
    Completed(Value),
    /// Refused or failed for good: the reason.
    Failed(String),
    /// Not settled yet (outcome unknown, still processing, or not sent): try again later.
    Unsettled,
}

/// Errors that stop the caller (the store failing); hub trouble is an [`IntentOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credentials were refused.
    #[error(transparent)]
    Unauthorized(#[from] Unauthorized),
}

/// Whether a state-changing call may leave the process now as far as the operator is
/// concerned: closed while the trading state is `halted`. Follows the daemon's trading state (a
/// watch on it), so it is read when sending.
#[derive(Debug, Clone)]
pub struct TradingGate(watch::Receiver<TradingState>);

impl TradingGate {
    /// A gate following `state`.
    pub fn new(state: watch::Receiver<TradingState>) -> TradingGate {
        TradingGate(state)
    }

    /// Whether sending is held now.
    pub fn is_closed(&self) -> bool {
        *self.0.borrow() == TradingState::Halted
    }
}

/// Commits a new intent as being sent (one transaction: key, args and the first attempt),
/// unless trading is halted — then nothing is committed and `None` says to wait for the resume.
/// `LeadershipLost` while this process may not send.
pub async fn record(
    store: &Store,
    gate: &SendGate,
    intent: &NewIntent,
    trading: &TradingGate,
) -> Result<Option<Recorded>, IntentError> {
    if trading.is_closed() {
        held(&intent.key, &intent.operation);
        return Ok(None);
    }
    gate.check()?;
    Ok(Some(store.record_intent(intent).await?))
}

/// Runs one recorded intent to the point of a known outcome if it can. Safe to call again with
/// the same key at any time (after a crash, a reconnect, a second wake-up): an existing intent
/// is settled, never resent under a new key; only one that [`record`] just committed goes out
/// without asking the server first. While `trading` is closed nothing is sent: an existing
/// intent is only settled by reading. While `gate` is closed nothing is sent
/// (`LeadershipLost`).
pub async fn execute(
    store: &Store,
    gate: &SendGate,
    control: &ControlHub,
    recorded: Recorded,
    trading: &TradingGate,
) -> Result<IntentOutcome, IntentError> {
    let stored = match recorded {
        Recorded::ToSend(stored) => return transmit(store, gate, control, &stored, trading).await,
        Recorded::Existing(stored) => stored,
    };
    match stored.state {
        IntentState::Completed => return Ok(IntentOutcome::Completed(outcome_payload(&stored))),
        IntentState::Failed => return Ok(IntentOutcome::Failed(failure_reason(&stored))),
        // Committed by an earlier version and never sent.
        IntentState::Pending if stored.attempts == 0 => {}
        // Sent before (perhaps by a process that crashed): ask the server what came of it.
        _ => {
            let settled = settle(store, control, &stored).await?;
            if settled != Settled::NeverSeen {
                return Ok(settled.into_outcome());
            }
        }
    }
    // Never received: sent (once more) with the same key and args, the attempt counted first.
    if trading.is_closed() {
        held(&stored.key, &stored.operation);
        return Ok(IntentOutcome::Unsettled);
    }
    gate.check()?;
    store.mark_intent_sent(&stored.key).await?;
    transmit(store, gate, control, &stored, trading).await
}

/// An intent not sent because trading is halted: it waits, under its key, for the resume.
pub(crate) fn held(key: &str, operation: &str) {
    tracing::info!(intent = %key, %operation, "not sent: trading is halted");
}

/// Puts an intent committed as `sent` on the wire and commits what came back. Held here (the
/// trading gate closed, the send gate closed) it stays `sent` without having left: settling it
/// later, the server's idempotency record says it never saw the key, and it goes out once,
/// with this key.
async fn transmit(
    store: &Store,
    gate: &SendGate,
    control: &ControlHub,
    intent: &IntentRecord,
    trading: &TradingGate,
) -> Result<IntentOutcome, IntentError> {
    if trading.is_closed() {
        held(&intent.key, &intent.operation);
        return Ok(IntentOutcome::Unsettled);
    }
    crash::point("intent.before_send");
    // Checked right before the wire: the commit before may have taken a while.
    gate.check()?;
    tracing::info!(intent = %intent.key, operation = %intent.operation, "intent sent");
    let answer = control
        .keyed_call(&intent.operation, intent.args.clone())
        .await;
    crash::point("intent.after_send");
    match answer {
        Ok(data) => {
            store
                .settle_intent(&intent.key, IntentState::Completed, Some(&data))
                .await?;
            crash::point("intent.after_commit");
            tracing::info!(intent = %intent.key, outcome = "completed", "intent settled");
            Ok(IntentOutcome::Completed(data))
        }
        Err(HubError::Api(failure))
            if matches!(
                failure.status,
                StatusCode::DuplicateRequest | StatusCode::Conflict
            ) =>
        {
            tracing::info!(intent = %intent.key, status = %failure.status, "server already has this key: reading its record");
            let answer = failure.status.to_string();
            Ok(settle_answered(store, control, intent, Some(&answer))
                .await?
                .into_outcome())
        }
        Err(HubError::Unauthorized(err)) => Err(Unauthorized(err).into()),
        Err(err) if err.outcome_unknown() => {
            record_error(store, intent, IntentState::Unknown, &err.to_string()).await?;
            tracing::warn!(intent = %intent.key, error = %err, outcome = "unknown", "intent outcome unknown; will settle via GetIdempotencyRecord");
            Ok(IntentOutcome::Unsettled)
        }
        Err(HubError::NotSent { source, .. }) => {
            // Never left this process: it stays sendable under the same key.
            record_error(store, intent, IntentState::Unknown, &source.to_string()).await?;
            Ok(IntentOutcome::Unsettled)
        }
        Err(err) => {
            let reason = err.to_string();
            record_error(store, intent, IntentState::Failed, &reason).await?;
            tracing::warn!(intent = %intent.key, error = %reason, outcome = "failed", "intent failed");
            Ok(IntentOutcome::Failed(reason))
        }
    }
}

/// Commits an intent that failed or went unanswered: `state`, with the error as its outcome.
async fn record_error(
    store: &Store,
    intent: &IntentRecord,
    state: IntentState,
    error: &str,
) -> Result<(), IntentError> {
    store
        .settle_intent(&intent.key, state, Some(&json!({ "error": error })))
        .await?;
    Ok(())
}

/// What the server's idempotency record says.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Completed: the payload to adopt.
    Completed(Value),
    /// Failed: the reason.
    Failed(String),
    /// Still processing, or the record could not be read now.
    Pending,
    /// The server never saw the key: it is safe to send it (with the same key).
    NeverSeen,
}

impl Settled {
    fn into_outcome(self) -> IntentOutcome {
        match self {
            Settled::Completed(data) => IntentOutcome::Completed(data),
            Settled::Failed(reason) => IntentOutcome::Failed(reason),
            Settled::Pending | Settled::NeverSeen => IntentOutcome::Unsettled,
        }
    }
}

/// Settles an intent whose outcome is not known here, through `GetIdempotencyRecord`, and
/// commits what the record says. Waits a while for a record that is still `Processing`.
pub async fn settle(
    store: &Store,
    control: &ControlHub,
    intent: &IntentRecord,
) -> Result<Settled, IntentError> {
    settle_answered(store, control, intent, None).await
}

/// [`settle`], for an intent the server just answered `answer` (`DuplicateRequest`,
/// `Conflict`) when there is one: what the record settles is then notified with the commit.
async fn settle_answered(
    store: &Store,
    control: &ControlHub,
    intent: &IntentRecord,
    answer: Option<&str>,
) -> Result<Settled, IntentError> {
    let deadline = tokio::time::Instant::now() + PROCESSING_DEADLINE;
    loop {
        let record = match control.idempotency_record(&intent.key).await {
            Ok(record) => record,
            Err(HubError::Unauthorized(err)) => return Err(Unauthorized(err).into()),
            Err(err) => {
                tracing::warn!(intent = %intent.key, error = %err, "idempotency record not readable now");
                return Ok(Settled::Pending);
            }
        };
        let Some(record) = record else {
            tracing::info!(intent = %intent.key, "server never saw this key: it will be sent with the same key");
            return Ok(Settled::NeverSeen);
        };
        match record.status {
            IdempotencyRecordStatus::Completed => {
                let data = adopted_payload(&record);
                commit_settled(store, intent, IntentState::Completed, &data, answer).await?;
                tracing::info!(intent = %intent.key, outcome = "completed", source = "idempotency record", "intent settled");
                return Ok(Settled::Completed(data));
            }
            IdempotencyRecordStatus::Failed => {
                let reason = record
                    .error_message
                    .clone()
                    .or_else(|| record.response_message.clone())
                    .unwrap_or_else(|| "failed on the server".into());
                let outcome = json!({ "error": reason });
                commit_settled(store, intent, IntentState::Failed, &outcome, answer).await?;
                tracing::warn!(intent = %intent.key, outcome = "failed", source = "idempotency record", %reason, "intent settled");
                return Ok(Settled::Failed(reason));
            }
            IdempotencyRecordStatus::Processing | IdempotencyRecordStatus::Unknown(_) => {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Settled::Pending);
                }
                tokio::time::sleep(PROCESSING_POLL).await;
            }
        }
    }
}

/// Commits what an idempotency record settled; after a `DuplicateRequest`/`Conflict` answer
/// (`answer`) the store notifies it in the same transaction.
async fn commit_settled(
    store: &Store,
    intent: &IntentRecord,
    state: IntentState,
    outcome: &Value,
    answer: Option<&str>,
) -> Result<(), StoreError> {
    match answer {
        Some(answer) => {
            store
                .settle_intent_after_answer(&intent.key, state, Some(outcome), answer)
                .await?
        }
        None => {
            store
                .settle_intent(&intent.key, state, Some(outcome))
                .await?
        }
    };
    Ok(())
}

/// The payload to continue with, rebuilt from a completed record: the original response data
/// when captured, plus the job id and order ids the record carries.
fn adopted_payload(record: &IdempotencyRecord) -> Value {
    let mut data = record
        .response_data
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut data {
        if let Some(job_id) = &record.job_id {
            map.entry("JobId").or_insert_with(|| json!(job_id));
        }
        if let Some(orders) = &record.live_order_ids {
            map.entry("LiveOrderIds").or_insert_with(|| json!(orders));
        }
        if let Some(plan) = record.live_exec_plan_id {
            map.entry("ExecPlanId").or_insert_with(|| json!(plan));
        }
    }
    data
}

fn outcome_payload(intent: &IntentRecord) -> Value {
    intent.outcome.clone().unwrap_or(Value::Null)
}

/// The reason stored with a failed intent.
pub(crate) fn failure_reason(intent: &IntentRecord) -> String {
    intent
        .outcome
        .as_ref()
        .and_then(|o| o.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("failed")
        .to_owned()
}
