//! Latest state of level-style signals (On/Off, re-evaluated by the server about every minute).

use serde::Serialize;
use sqlx::SqliteConnection;

use super::{Store, StoreError, Timestamp, execute_for_rows};
use mesolive_api::FlowKind;

/// Whether a signal currently fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
pub enum SignalState {
    /// The condition holds.
    On,
    /// The condition does not hold.
    Off,
}

impl SignalState {
    /// The stored (and displayed) name, as the hub spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalState::On => "On",
            SignalState::Off => "Off",
        }
    }
}

/// A signal event's new state. Signals are upserts keyed by [`SignalUpdate::key`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalUpdate {
    /// Entry, exit or adjustment.
    pub kind: FlowKind,
    /// On or Off.
    pub state: SignalState,
    /// The strategy it belongs to.
    pub strategy_id: i64,
    /// The position (exit and adjustment signals).
    pub position_id: Option<i64>,
    /// The broker account (always for entry signals; may be absent for the others).
    pub account: Option<String>,
    /// The adjustment condition's identifier: one position can have several adjustment signals.
    pub condition: Option<String>,
    /// The event as received, for the workflow that acts on it.
    pub payload: serde_json::Value,
}

impl SignalUpdate {
    /// The identity of the signal this update replaces: kind, strategy, account, position and,
    /// for adjustments, the condition. Stable across restarts, so it can be looked up.
    pub fn key(&self) -> String {
        let mut key = format!(
            "{}/{}/{}/{}",
            self.kind.as_str(),
            self.strategy_id,
            self.account.as_deref().unwrap_or("-"),
            self.position_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
        );
        if let Some(condition) = &self.condition {
            key.push('/');
            key.push_str(condition);
        }
        key
    }
}

/// The stored latest state of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SignalRecord {
    /// See [`SignalUpdate::key`].
    pub signal_key: String,
    /// Entry, exit or adjustment.
    #[sqlx(try_from = "String")]
    pub kind: FlowKind,
    /// On or Off.
    pub state: SignalState,
    /// The strategy it belongs to.
    pub strategy_id: i64,
    /// The position, for exit and adjustment signals.
    pub position_id: Option<i64>,
    /// The broker account, when known.
    pub account: Option<String>,
    /// The adjustment condition, for adjustment signals.
    pub condition: Option<String>,
    /// The key of the event that turned the signal On (one workflow per instance).
    pub instance: String,
    /// The last event as received.
    #[sqlx(json)]
    pub payload: serde_json::Value,
    /// When this state was stored.
    pub updated_at: Timestamp,
}

/// `SELECT` of every [`SignalRecord`] column, followed by the given clause.
macro_rules! select_signals {
    ($clause:literal) => {
        concat!(
            "SELECT signal_key, kind, state, strategy_id, position_id, account, condition, instance,
                    payload, updated_at
             FROM signals ",
            $clause
        )
    };
}

impl Store {
    /// Every signal's latest state, ordered by key.
    pub async fn signals(&self) -> Result<Vec<SignalRecord>, StoreError> {
        let mut reader = self.readers.acquire().await?;
        Ok(sqlx::query_as(select_signals!("ORDER BY signal_key"))
            .fetch_all(&mut *reader)
            .await?)
    }

    /// One signal's latest state, by [`SignalUpdate::key`].
    pub async fn signal(&self, signal_key: &str) -> Result<Option<SignalRecord>, StoreError> {
        let mut reader = self.readers.acquire().await?;
        Ok(sqlx::query_as(select_signals!("WHERE signal_key = ?"))
            .bind(signal_key)
            .fetch_optional(&mut *reader)
            .await?)
    }
}

/// A signal row as the upsert reads it: the update, its key, and the key of the event.
#[derive(Serialize)]
struct KeyedSignal<'a> {
    signal_key: String,
    event_key: &'a str,
    #[serde(flatten)]
    update: &'a SignalUpdate,
}

/// Store signals' new states (the event effect), later updates of a key winning. An Off→On
/// transition (or a first On) starts a new instance named after the event that caused it.
pub(super) async fn upsert(
    conn: &mut SqliteConnection,
    updates: &[(&SignalUpdate, &str)],
    now: Timestamp,
) -> Result<(), StoreError> {
    let rows: Vec<KeyedSignal<'_>> = updates
        .iter()
        .map(|(update, event_key)| KeyedSignal {
            signal_key: update.key(),
            event_key,
            update,
        })
        .collect();
    execute_for_rows(
        conn,
        "INSERT INTO signals
             (signal_key, kind, state, strategy_id, position_id, account, condition, instance,
              payload, updated_at)
         SELECT s.value ->> 'signal_key', s.value ->> 'kind', s.value ->> 'state',
                s.value ->> 'strategy_id', s.value ->> 'position_id', s.value ->> 'account',
                s.value ->> 'condition', s.value ->> 'event_key', s.value -> 'payload', ?2
         FROM jsonb_each(?1) AS s WHERE true ORDER BY s.key
         ON CONFLICT (signal_key) DO UPDATE SET
             instance = CASE WHEN signals.state = 'Off' AND excluded.state = 'On'
                             THEN excluded.instance ELSE signals.instance END,
             state = excluded.state,
             account = COALESCE(excluded.account, signals.account),
             payload = excluded.payload,
             updated_at = excluded.updated_at",
        &rows,
        now,
    )
    .await
}
