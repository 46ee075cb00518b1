//! Intents on PostgreSQL (see `store/intents.rs` for the rules).

use sqlx::PgConnection;

use super::Postgres;
use crate::notifications::notice;
use crate::store::intents::{IN_FLIGHT, intent_columns, not_found, select_intents};
use crate::store::{IntentRecord, IntentState, NewIntent, Recorded, StoreError, Timestamp};

/// [`crate::store::Store::record_intent`].
pub(in crate::store) async fn record(
    db: &Postgres,
    intent: &NewIntent,
) -> Result<Recorded, StoreError> {
    let now = Timestamp::now();
    let mut write = db.begin_write().await?;
    let inserted: Option<IntentRecord> = sqlx::query_as(concat!(
        "INSERT INTO intents (idempotency_key, operation, workflow_id, args, state, attempts,
                              created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'sent', 1, $5, $5)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING ",
        intent_columns!()
    ))
    .bind(&intent.key)
    .bind(&intent.operation)
    .bind(&intent.workflow_id)
    .bind(sqlx::types::Json(&intent.args))
    .bind(now)
    .fetch_optional(&mut *write.tx)
    .await?;
    let recorded = match inserted {
        Some(row) => Recorded::ToSend(row),
        // Committed by an earlier version and never sent: this is its first send.
        None => match sqlx::query_as(concat!(
            "UPDATE intents SET state = 'sent', attempts = 1, updated_at = $1
             WHERE idempotency_key = $2 AND state = 'pending' AND attempts = 0
             RETURNING ",
            intent_columns!()
        ))
        .bind(now)
        .bind(&intent.key)
        .fetch_optional(&mut *write.tx)
        .await?
        {
            Some(row) => Recorded::ToSend(row),
            None => Recorded::Existing(
                fetch(&mut write.tx, &intent.key)
                    .await?
                    .ok_or_else(|| not_found(&intent.key))?,
            ),
        },
    };
    write.commit().await?;
    Ok(recorded)
}

/// [`crate::store::Store::mark_intent_sent`].
pub(in crate::store) async fn mark_sent(
    db: &Postgres,
    key: &str,
) -> Result<IntentRecord, StoreError> {
    let mut write = db.begin_write().await?;
    let updated = sqlx::query_as(concat!(
        "UPDATE intents SET state = 'sent', attempts = attempts + 1, updated_at = $1
         WHERE idempotency_key = $2 AND state NOT IN ('completed', 'failed')
         RETURNING ",
        intent_columns!()
    ))
    .bind(Timestamp::now())
    .bind(key)
    .fetch_optional(&mut *write.tx)
    .await?;
    let stored = transitioned(&mut write.tx, key, IntentState::Sent, updated).await?;
    write.tx.commit().await?;
    Ok(stored)
}

/// [`crate::store::Store::settle_intent`].
pub(in crate::store) async fn settle(
    db: &Postgres,
    key: &str,
    state: IntentState,
    outcome: Option<&serde_json::Value>,
    answer: Option<&str>,
) -> Result<IntentRecord, StoreError> {
    let mut write = db.begin_write().await?;
    let updated = if matches!(state, IntentState::Pending | IntentState::Sent) {
        None
    } else {
        sqlx::query_as(concat!(
            "UPDATE intents SET state = $1, outcome = COALESCE($2, outcome), updated_at = $3
             WHERE idempotency_key = $4 AND state NOT IN ('completed', 'failed')
             RETURNING ",
            intent_columns!()
        ))
        .bind(state)
        .bind(outcome.map(sqlx::types::Json))
        .bind(Timestamp::now())
        .bind(key)
        .fetch_optional(&mut *write.tx)
        .await?
    };
    let stored = transitioned(&mut write.tx, key, state, updated).await?;
    if let Some(answer) = answer.filter(|_| stored.state.is_final()) {
        write
            .notify(&notice::intent_settled(answer, &stored))
            .await?;
    }
    write.commit().await?;
    Ok(stored)
}

/// [`crate::store::Store::abandon_in_flight_intents`].
pub(in crate::store) async fn abandon_in_flight(db: &Postgres) -> Result<u64, StoreError> {
    let mut write = db.begin_write().await?;
    let abandoned = sqlx::query(
        "UPDATE intents SET state = 'abandoned', updated_at = $1
         WHERE state IN ('pending', 'sent')",
    )
    .bind(Timestamp::now())
    .execute(&mut *write.tx)
    .await?
    .rows_affected();
    write.tx.commit().await?;
    Ok(abandoned)
}

/// [`crate::store::Store::intent`].
pub(in crate::store) async fn get(
    db: &Postgres,
    key: &str,
) -> Result<Option<IntentRecord>, StoreError> {
    fetch(&mut *db.reader().await?, key).await
}

/// [`crate::store::Store::intents_in_states`].
pub(in crate::store) async fn in_states(
    db: &Postgres,
    states: &[IntentState],
) -> Result<Vec<IntentRecord>, StoreError> {
    of_states(&mut *db.reader().await?, states).await
}

/// Intents not yet final, oldest first (the `state` report).
pub(super) async fn in_flight(conn: &mut PgConnection) -> Result<Vec<IntentRecord>, StoreError> {
    of_states(conn, &IN_FLIGHT).await
}

async fn of_states(
    conn: &mut PgConnection,
    states: &[IntentState],
) -> Result<Vec<IntentRecord>, StoreError> {
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    Ok(sqlx::query_as(select_intents!(
        "WHERE state = ANY($1) ORDER BY created_at, idempotency_key"
    ))
    .bind(states)
    .fetch_all(conn)
    .await?)
}

async fn fetch(conn: &mut PgConnection, key: &str) -> Result<Option<IntentRecord>, StoreError> {
    Ok(
        sqlx::query_as(select_intents!("WHERE idempotency_key = $1"))
            .bind(key)
            .fetch_optional(conn)
            .await?,
    )
}

/// The result of a guarded update: the updated row, or why there was none.
async fn transitioned(
    conn: &mut PgConnection,
    key: &str,
    to: IntentState,
    updated: Option<IntentRecord>,
) -> Result<IntentRecord, StoreError> {
    if let Some(updated) = updated {
        return Ok(updated);
    }
    match fetch(conn, key).await? {
        Some(current) => Err(StoreError::IntentTransition {
            key: key.to_owned(),
            from: current.state,
            to,
        }),
        None => Err(not_found(key)),
    }
}
