//! Intents: every call that changes the world, committed before it is sent and settled after,
//! so a restarted process retries with the same idempotency key and never acts twice.

use std::fmt;

use serde::Serialize;
use sqlx::SqliteConnection;

use super::{Store, StoreError, Timestamp, begin_write, on_postgres, outbox, postgres};
use crate::notifications::notice;

/// Where an intent is. Completed and failed are final; the others need the reconciler after a
/// restart (an abandoned or sent intent with `attempts > 0` may have reached the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum IntentState {
    /// Committed, not sent yet.
    Pending,
    /// Sent at least once; no outcome yet.
    Sent,
    /// The server completed it; `outcome` holds the result.
    Completed,
    /// The server refused or failed it; `outcome` holds why.
    Failed,
    /// Sent, but the outcome was lost (timeout, disconnect): settle via the idempotency record.
    Unknown,
    /// The process stopped before it finished; resumed on the next start.
    Abandoned,
}

impl IntentState {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Pending => "pending",
            IntentState::Sent => "sent",
            IntentState::Completed => "completed",
            IntentState::Failed => "failed",
            IntentState::Unknown => "unknown",
            IntentState::Abandoned => "abandoned",
        }
    }

    /// Whether the intent is settled for good.
    pub fn is_final(self) -> bool {
        matches!(self, IntentState::Completed | IntentState::Failed)
    }
}

impl fmt::Display for IntentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An intent about to be sent. The key must be derived deterministically from the business
/// intent so that a restarted process finds the same row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntent {
    /// The idempotency key sent with the call.
    pub key: String,
    /// The Control Hub method (`SendOrder`, `StartPreparePositionEntry`…).
    pub operation: String,
    /// The workflow it belongs to, if any.
    pub workflow_id: Option<String>,
    /// The call's arguments, so a retry sends exactly the same payload.
    pub args: serde_json::Value,
}

/// A stored intent.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct IntentRecord {
    /// The idempotency key.
    #[sqlx(rename = "idempotency_key")]
    pub key: String,
    /// The Control Hub method.
    pub operation: String,
    /// The workflow it belongs to, if any.
    pub workflow_id: Option<String>,
    /// The call's arguments.
    #[sqlx(json)]
    pub args: serde_json::Value,
    /// Where it is.
    pub state: IntentState,
    /// The recorded result or failure, once known.
    #[sqlx(json(nullable))]
    pub outcome: Option<serde_json::Value>,
    /// How many times it was sent.
    pub attempts: i64,
    /// When it was first committed.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// Every [`IntentRecord`] column, for `SELECT` and `RETURNING`.
macro_rules! intent_columns {
    () => {
        "idempotency_key, operation, workflow_id, args, state, outcome, attempts, created_at, \
         updated_at"
    };
}
pub(super) use intent_columns;

/// `SELECT` of every [`IntentRecord`] column, followed by the given clause.
macro_rules! select_intents {
    ($clause:literal) => {
        concat!("SELECT ", intent_columns!(), " FROM intents ", $clause)
    };
}
pub(super) use select_intents;

/// What [`Store::record_intent`] found under the key.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// New (or committed by an earlier version and never sent): now committed as `sent`,
    /// attempt 1, in the same transaction — send it.
    ToSend(IntentRecord),
    /// Sent before (perhaps by a process that crashed) or settled: the stored row, unchanged.
    Existing(IntentRecord),
}

impl Store {
    /// Commit an intent as being sent, in one transaction, right before sending it: the key
    /// and args are durable before anything leaves, and a crash between this commit and the
    /// wire is settled like any lost send (the server's idempotency record says it never saw
    /// the key; it is sent once, with this key). If the key exists (a restarted process derived
    /// the same key), nothing changes and the stored row is returned: settle it, do not send.
    pub async fn record_intent(&self, intent: &NewIntent) -> Result<Recorded, StoreError> {
        let db = on_postgres!(self, pg => postgres::intents::record(pg, intent));
        let now = Timestamp::now();
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let inserted: Option<IntentRecord> = sqlx::query_as(concat!(
            "INSERT INTO intents (idempotency_key, operation, workflow_id, args, state, attempts,
                                  created_at, updated_at)
             VALUES (?, ?, ?, ?, 'sent', 1, ?, ?)
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING ",
            intent_columns!()
        ))
        .bind(&intent.key)
        .bind(&intent.operation)
        .bind(&intent.workflow_id)
        .bind(intent.args.to_string())
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let recorded = match inserted {
            Some(row) => Recorded::ToSend(row),
            // Committed by an earlier version and never sent: this is its first send.
            None => match sqlx::query_as(concat!(
                "UPDATE intents SET state = 'sent', attempts = 1, updated_at = ?
                 WHERE idempotency_key = ? AND state = 'pending' AND attempts = 0
                 RETURNING ",
                intent_columns!()
            ))
            .bind(now)
            .bind(&intent.key)
            .fetch_optional(&mut *tx)
            .await?
            {
                Some(row) => Recorded::ToSend(row),
                None => Recorded::Existing(
                    fetch_intent(&mut tx, &intent.key)
                        .await?
                        .ok_or_else(|| not_found(&intent.key))?,
                ),
            },
        };
        tx.commit().await?;
        Ok(recorded)
    }

    /// Record that the intent is being sent (once more): counts the attempt. Refused for a final
    /// intent, so no path can send a completed or failed intent again.
    pub async fn mark_intent_sent(&self, key: &str) -> Result<IntentRecord, StoreError> {
        let db = on_postgres!(self, pg => postgres::intents::mark_sent(pg, key));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let updated = sqlx::query_as(concat!(
            "UPDATE intents SET state = 'sent', attempts = attempts + 1, updated_at = ?
             WHERE idempotency_key = ? AND state NOT IN ('completed', 'failed')
             RETURNING ",
            intent_columns!()
        ))
        .bind(Timestamp::now())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let stored = transitioned(&mut tx, key, IntentState::Sent, updated).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Record what became of an intent: `completed`/`failed` (final), `unknown` (outcome lost)
    /// or `abandoned`, with the outcome JSON when there is one. Refused for a final intent and
    /// for `pending`/`sent`, which are not outcomes.
    pub async fn settle_intent(
        &self,
        key: &str,
        state: IntentState,
        outcome: Option<&serde_json::Value>,
    ) -> Result<IntentRecord, StoreError> {
        self.settle_intent_answered(key, state, outcome, None).await
    }

    /// As [`Store::settle_intent`], for an intent the server answered `answer`
    /// (`DuplicateRequest` or `Conflict`) and that its idempotency record settles now: a final
    /// settlement is notified in the same transaction.
    pub async fn settle_intent_after_answer(
        &self,
        key: &str,
        state: IntentState,
        outcome: Option<&serde_json::Value>,
        answer: &str,
    ) -> Result<IntentRecord, StoreError> {
        self.settle_intent_answered(key, state, outcome, Some(answer))
            .await
    }

    async fn settle_intent_answered(
        &self,
        key: &str,
        state: IntentState,
        outcome: Option<&serde_json::Value>,
        answer: Option<&str>,
    ) -> Result<IntentRecord, StoreError> {
        let db =
            on_postgres!(self, pg => postgres::intents::settle(pg, key, state, outcome, answer));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let updated = if matches!(state, IntentState::Pending | IntentState::Sent) {
            None
        } else {
            sqlx::query_as(concat!(
                "UPDATE intents SET state = ?, outcome = COALESCE(?, outcome), updated_at = ?
                 WHERE idempotency_key = ? AND state NOT IN ('completed', 'failed')
                 RETURNING ",
                intent_columns!()
            ))
            .bind(state)
            .bind(outcome.map(serde_json::Value::to_string))
            .bind(Timestamp::now())
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?
        };
        let stored = transitioned(&mut tx, key, state, updated).await?;
        let settled = answer
            .filter(|_| stored.state.is_final())
            .map(|answer| notice::intent_settled(answer, &stored));
        if let Some(notice) = &settled {
            outbox::enqueue(&mut tx, notice).await?;
        }
        tx.commit().await?;
        if settled.is_some() {
            self.outbox_changed();
        }
        Ok(stored)
    }

    /// Shutdown: mark every pending or sent intent abandoned, for the reconciler to resume on the
    /// next start. Unknown intents keep their state (it already says what to do). Returns how many.
    pub async fn abandon_in_flight_intents(&self) -> Result<u64, StoreError> {
        let db = on_postgres!(self, pg => postgres::intents::abandon_in_flight(pg));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let abandoned = sqlx::query(
            "UPDATE intents SET state = 'abandoned', updated_at = ?
             WHERE state IN ('pending', 'sent')",
        )
        .bind(Timestamp::now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(abandoned)
    }

    /// One intent by key.
    pub async fn intent(&self, key: &str) -> Result<Option<IntentRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::intents::get(pg, key));
        let mut reader = db.readers.acquire().await?;
        fetch_intent(&mut reader, key).await
    }

    /// Intents in any of `states`, oldest first.
    pub async fn intents_in_states(
        &self,
        states: &[IntentState],
    ) -> Result<Vec<IntentRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::intents::in_states(pg, states));
        let mut reader = db.readers.acquire().await?;
        in_states(&mut reader, states).await
    }

    /// Intents not yet final, oldest first: what the reconciler works through.
    pub async fn intents_in_flight(&self) -> Result<Vec<IntentRecord>, StoreError> {
        self.intents_in_states(&IN_FLIGHT).await
    }
}

/// The states that still need work.
pub(super) const IN_FLIGHT: [IntentState; 4] = [
    IntentState::Pending,
    IntentState::Sent,
    IntentState::Unknown,
    IntentState::Abandoned,
];

/// Intents in any of `states`, oldest first.
pub(super) async fn in_states(
    conn: &mut SqliteConnection,
    states: &[IntentState],
) -> Result<Vec<IntentRecord>, StoreError> {
    let states = serde_json::Value::from(states.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    Ok(sqlx::query_as(select_intents!(
        "WHERE state IN (SELECT value FROM json_each(?)) ORDER BY created_at, idempotency_key"
    ))
    .bind(states.to_string())
    .fetch_all(conn)
    .await?)
}

async fn fetch_intent(
    conn: &mut SqliteConnection,
    key: &str,
) -> Result<Option<IntentRecord>, StoreError> {
    Ok(sqlx::query_as(select_intents!("WHERE idempotency_key = ?"))
        .bind(key)
        .fetch_optional(conn)
        .await?)
}

/// The result of a guarded update: the updated row, or why there was none.
async fn transitioned(
    conn: &mut SqliteConnection,
    key: &str,
    to: IntentState,
    updated: Option<IntentRecord>,
) -> Result<IntentRecord, StoreError> {
    if let Some(updated) = updated {
        return Ok(updated);
    }
    match fetch_intent(conn, key).await? {
        Some(current) => Err(StoreError::IntentTransition {
            key: key.to_owned(),
            from: current.state,
            to,
        }),
        None => Err(not_found(key)),
    }
}

pub(super) fn not_found(key: &str) -> StoreError {
    StoreError::NotFound {
        what: "intent",
        id: key.to_owned(),
    }
}
