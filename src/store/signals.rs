//! Latest state of level-style signals (On/Off, re-evaluated by the server about every minute).

use serde::Serialize;
use sqlx::SqliteConnection;

use super::{Store, StoreError, Timestamp, execute_for_rows, on_postgres, postgres};
use mesolive_api::FlowKind;

/// Whether a signal currently fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(type_name = "text")]
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
    /// Which event this is and how it applies (read by the upsert, not stored as such).
    #[serde(skip)]
    pub source: SignalSource,
}

/// Where a signal update stands in the server's history, and how it applies. An update in
/// sequence always replaces the stored state (events are applied in EventSeqId order); a
/// re-assertion — an on-connect push, or an event at or below the cursor that the dedupe set
/// does not know — replaces it only when it is newer: a higher EventSeqId when both carry one,
/// else a later EventTime when both carry one, else (nothing to compare) it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalSource {
    /// The event's EventSeqId, when it carries one.
    pub seq_id: Option<i64>,
    /// The event's EventTime, when it carries a readable one.
    pub time: Option<Timestamp>,
    /// Applied as a re-assertion of a state, not in sequence.
    pub reasserted: bool,
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
pub(super) use select_signals;

impl Store {
    /// Every signal's latest state, ordered by key.
    pub async fn signals(&self) -> Result<Vec<SignalRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::signals::all(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_signals!("ORDER BY signal_key"))
            .fetch_all(&mut *reader)
            .await?)
    }

    /// One signal's latest state, by [`SignalUpdate::key`].
    pub async fn signal(&self, signal_key: &str) -> Result<Option<SignalRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::signals::get(pg, signal_key));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_signals!("WHERE signal_key = ?"))
            .bind(signal_key)
            .fetch_optional(&mut *reader)
            .await?)
    }
}

/// A signal row as the upsert reads it: the update, its key, the key of the event, and where
/// the event stands (unix milliseconds for the time, as every stored instant).
#[derive(Serialize)]
pub(super) struct KeyedSignal<'a> {
    pub(super) signal_key: String,
    event_key: &'a str,
    event_seq_id: Option<i64>,
    event_time: Option<i64>,
    #[serde(flatten)]
    update: &'a SignalUpdate,
}

/// What an upsert of a signal changes on a stored one (both backends). An Off→On transition
/// (or a first On) starts a new instance named after the event that caused it; the event's
/// key, EventSeqId and EventTime are kept to judge later re-assertions.
macro_rules! signal_update_set {
    () => {
        "instance = CASE WHEN signals.state = 'Off' AND excluded.state = 'On'
                         THEN excluded.instance ELSE signals.instance END,
         state = excluded.state,
         account = COALESCE(excluded.account, signals.account),
         payload = excluded.payload,
         event_key = excluded.event_key,
         event_seq_id = excluded.event_seq_id,
         event_time = excluded.event_time,
         updated_at = excluded.updated_at"
    };
}
pub(super) use signal_update_set;

/// When a re-assertion replaces a stored state: it is newer (see [`SignalSource`]).
macro_rules! reassertion_is_newer {
    () => {
        "CASE
             WHEN excluded.event_seq_id IS NOT NULL AND signals.event_seq_id IS NOT NULL
                 THEN excluded.event_seq_id > signals.event_seq_id
             WHEN excluded.event_time IS NOT NULL AND signals.event_time IS NOT NULL
                 THEN excluded.event_time > signals.event_time
             ELSE true
         END"
    };
}
pub(super) use reassertion_is_newer;

/// The SQLite signal upsert, with the condition under which an update replaces a stored state.
macro_rules! upsert_signals {
    ($condition:expr) => {
        concat!(
            "INSERT INTO signals
                 (signal_key, kind, state, strategy_id, position_id, account, condition, instance,
                  payload, event_key, event_seq_id, event_time, updated_at)
             SELECT s.value ->> 'signal_key', s.value ->> 'kind', s.value ->> 'state',
                    s.value ->> 'strategy_id', s.value ->> 'position_id', s.value ->> 'account',
                    s.value ->> 'condition', s.value ->> 'event_key', s.value -> 'payload',
                    s.value ->> 'event_key', s.value ->> 'event_seq_id', s.value ->> 'event_time',
                    ?2
             FROM jsonb_each(?1) AS s WHERE true ORDER BY s.key
             ON CONFLICT (signal_key) DO UPDATE SET ",
            signal_update_set!(),
            " WHERE ",
            $condition
        )
    };
}

/// The rows of signal updates, split into re-assertions and updates in sequence.
pub(super) fn keyed_rows<'a>(
    updates: &[(&'a SignalUpdate, &'a str)],
) -> (Vec<KeyedSignal<'a>>, Vec<KeyedSignal<'a>>) {
    updates
        .iter()
        .map(|(update, event_key)| KeyedSignal {
            signal_key: update.key(),
            event_key,
            event_seq_id: update.source.seq_id,
            event_time: update.source.time.map(Timestamp::unix_millis),
            update,
        })
        .partition(|row| row.update.source.reasserted)
}

/// Store signals' new states (the event effect), later updates of a key winning: first those
/// in sequence (always), then the re-assertions (only over an older state; see
/// [`SignalSource`]). A re-assertion is never newer than an event in sequence of the same batch
/// (its EventSeqId is at or below the cursor), so the order between the two loses nothing.
pub(super) async fn upsert(
    conn: &mut SqliteConnection,
    updates: &[(&SignalUpdate, &str)],
    now: Timestamp,
) -> Result<(), StoreError> {
    let (reasserted, sequenced) = keyed_rows(updates);
    execute_for_rows(conn, upsert_signals!("true"), &sequenced, now).await?;
    execute_for_rows(
        conn,
        upsert_signals!(reassertion_is_newer!()),
        &reasserted,
        now,
    )
    .await
}
