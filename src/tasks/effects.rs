//! From a hub event to what the store commits: the dedupe key, the sequence id, and the effect.
//! Pure functions — the exactly-once logic itself lives in `store::apply_events`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::store::{
    Effect, EventRecord, JobStatus, LegUpdate, OrderUpdate, PositionState, PositionUpdate,
    PrepareJobUpdate, SignalSource, SignalState as StoredSignalState, SignalUpdate, Timestamp,
};
use mesolive_api::FlowKind;
use mesolive_api::events::{EventBody, EventDecodeError, EventHeader, HubEvent};
use mesolive_api::models::{
    LiveLeg, LivePosition, Order, PositionStatus, PreparationStatus, SignalState,
};
use mesolive_api::wire::{NAIVE_DATETIME_FORMAT, callbacks, states};

/// The record for a decoded event.
pub fn record(event: &HubEvent, payload: &Value) -> EventRecord {
    EventRecord {
        key: event_key(&event.header, &event.target, payload),
        seq_id: event.header.event_seq_id,
        target: event.target.clone(),
        effect: effect(&event.header, &event.body, payload),
    }
}

/// Callbacks that describe a state rather than an edge: applying the newest one again changes
/// nothing, so one at or below the cursor is re-asserted instead of quarantined.
const STATE_TARGETS: [&str; 5] = [
    callbacks::ENTRY_SIGNAL,
    callbacks::EXIT_SIGNAL,
    callbacks::ADJUSTMENT_SIGNAL,
    callbacks::ERROR,
    callbacks::AGENT_STATUS,
];

/// Whether the record describes a state (a signal On/Off, an error Raised/Cleared, an agent
/// status) rather than an edge (an order, position, leg or job change). An undecodable event is
/// neither: it is quarantined whatever its target.
pub fn describes_state(record: &EventRecord) -> bool {
    !matches!(record.effect, Effect::Quarantine { .. })
        && STATE_TARGETS.contains(&record.target.as_str())
}

/// Whether a callback target is a signal's. The event pump ends a live batch with a signal:
/// the signal's commit (which the workflow runner waits for) carries none of the events that
/// arrived after it.
pub fn is_signal_target(target: &str) -> bool {
    matches!(
        target,
        callbacks::ENTRY_SIGNAL | callbacks::EXIT_SIGNAL | callbacks::ADJUSTMENT_SIGNAL
    )
}

/// Whether a position update may open or close a position, which is all the monitor manager
/// and the workflow runner read of positions: a realized-PnL change never does, and at a
/// steady event rate such changes are most events, so waking both for each of their batches
/// was most of their work. A PnL change of a position not known yet is picked up by their
/// periodic re-read.
pub fn may_open_or_close(update: &PositionUpdate) -> bool {
    PositionStatus::from_name(&update.status) != PositionStatus::RealizedPnLChanged
}

/// A state event applied as a re-assertion (an on-connect push, or an event at or below the
/// cursor whose key is not in the dedupe set): keyed as before, without its sequence id (it
/// never moves the cursor), and a signal update that only wins over an older stored state.
pub fn reassert(record: EventRecord) -> EventRecord {
    let effect = match record.effect {
        Effect::Signal(update) => Effect::Signal(SignalUpdate {
            source: SignalSource {
                reasserted: true,
                ..update.source
            },
            ..update
        }),
        other => other,
    };
    EventRecord {
        seq_id: None,
        effect,
        ..record
    }
}

/// An `EventTime`, read leniently (see [`NAIVE_DATETIME_FORMAT`]); `None` when unreadable.
pub fn event_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, NAIVE_DATETIME_FORMAT).map(|t| t.and_utc())
        })
        .ok()
        .map(Timestamp::from)
}

/// The record for an event that could not be decoded: quarantined, but still deduped and still
/// moving the cursor, so one bad event never stalls the pump.
pub fn quarantine(error: &EventDecodeError, payload: &Value) -> EventRecord {
    EventRecord {
        key: event_key(&error.header, &error.target, payload),
        seq_id: error.header.event_seq_id,
        target: error.target.clone(),
        effect: Effect::Quarantine {
            raw: payload.to_string(),
            error: error.reason.clone(),
        },
    }
}

/// A live event, keyed by its EventId, at or below the cursor (`cursor`, as advanced so far).
/// Sent to the store under its key without its sequence id, so the dedupe set decides: a known key is the usual
/// replay/live overlap and is skipped; a new key is a new event at an old position — the
/// EventSeqId went backwards — and is quarantined with the reason, never acted on.
pub fn out_of_sequence(record: EventRecord, payload: &Value, cursor: i64) -> EventRecord {
    let seq = record.seq_id.unwrap_or_default();
    let reason = format!(
        "EventSeqId {seq} is at or below the cursor {cursor}: the server's sequence went backwards"
    );
    let error = match record.effect {
        Effect::Quarantine { error, .. } => format!("{reason}; {error}"),
        _ => reason,
    };
    EventRecord {
        seq_id: None,
        effect: Effect::Quarantine {
            raw: payload.to_string(),
            error,
        },
        ..record
    }
}

/// How a content key starts (an EventId never does).
const CONTENT_KEY_PREFIX: &str = "ck:";

/// Whether the record is keyed by its EventId, which stays the same live and in history. A
/// content key does not (a replayed payload carries header fields the live one may lack), so a
/// live event without an EventId cannot be told apart from a replayed one by its key.
pub fn keyed_by_event_id(record: &EventRecord) -> bool {
    !record.key.starts_with(CONTENT_KEY_PREFIX)
}

/// The dedupe key: the EventId (lower-cased), or for events without one (on-connect pushes) a
/// content key over the target and the payload, stable across restarts and Rust versions.
pub fn event_key(header: &EventHeader, target: &str, payload: &Value) -> String {
    if let Some(id) = header
        .event_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        return id.to_ascii_lowercase();
    }
    // serde_json's Map is ordered by key, so `to_string` is canonical.
    let content = format!("{target}\u{1f}{payload}");
    format!(
        "{CONTENT_KEY_PREFIX}{:016x}{:016x}",
        fnv1a(content.as_bytes(), 0xcbf2_9ce4_8422_2325),
        fnv1a(content.as_bytes(), 0x6c62_272e_07bb_0142)
    )
}

fn fnv1a(bytes: &[u8], offset: u64) -> u64 {
    bytes.iter().fold(offset, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A position as a Control Hub listing gives it (bootstrap, resync).
pub fn listed_position(position: &LivePosition) -> PositionUpdate {
    PositionUpdate {
        position_id: position.id,
        strategy_id: position.live_strategy_id,
        account: position.broker_account_id.clone().unwrap_or_default(),
        name: position.name.clone().unwrap_or_default(),
        state: if position.is_open() {
            PositionState::Open
        } else {
            PositionState::Closed
        },
        status: position.state.clone().unwrap_or_else(|| "Listed".into()),
        realized_pnl: None,
    }
}

/// A leg as a Control Hub listing gives it (resync).
pub fn listed_leg(leg: &LiveLeg) -> LegUpdate {
    LegUpdate {
        leg_id: leg.id,
        position_id: leg.live_position_id,
        name: leg.name.clone(),
        status: if leg.closed_at.is_some() {
            states::POSITION_CLOSED
        } else {
            states::POSITION_OPEN
        }
        .to_owned(),
        qty: Some(leg.qty),
    }
}

/// An order as a Control Hub listing gives it (resync); the listing does not carry the
/// strategy, the caller knows it.
pub fn listed_order(order: &Order, strategy_id: i64) -> OrderUpdate {
    OrderUpdate {
        order_id: order.order_id,
        strategy_id,
        account: order.broker_account_id.clone(),
        exec_plan_id: order.exec_plan_id,
        leg_group_id: order.leg_group_id,
        state: order.state.to_string(),
        filled_qty: order.cum_qty,
        avg_fill_price: order.avg_fill_price,
    }
}

/// The store-side status of a prepare job (unknown server states count as running).
pub fn job_status(status: &PreparationStatus) -> JobStatus {
    match status {
        PreparationStatus::Completed => JobStatus::Completed,
        PreparationStatus::Failed => JobStatus::Failed,
        PreparationStatus::Cancelled => JobStatus::Cancelled,
        PreparationStatus::Pending | PreparationStatus::Queued => JobStatus::Pending,
        PreparationStatus::Running
        | PreparationStatus::InProgress
        | PreparationStatus::Unknown(_) => JobStatus::Running,
    }
}

fn signal_state(state: &SignalState) -> Option<StoredSignalState> {
    match state {
        SignalState::On => Some(StoredSignalState::On),
        SignalState::Off => Some(StoredSignalState::Off),
        SignalState::Unknown(_) => None,
    }
}

fn effect(header: &EventHeader, body: &EventBody, payload: &Value) -> Effect {
    let source = SignalSource {
        seq_id: header.event_seq_id,
        time: header.event_time.as_deref().and_then(event_time),
        reasserted: false,
    };
    let signal = |kind,
                  state: &SignalState,
                  strategy_id,
                  position_id,
                  account: Option<&String>,
                  condition| {
        match signal_state(state) {
            Some(state) => Effect::Signal(SignalUpdate {
                kind,
                state,
                strategy_id,
                position_id,
                account: account.cloned(),
                condition,
                payload: payload.clone(),
                source: source.clone(),
            }),
            // A signal state this build cannot read must never start a trade.
            None => Effect::None,
        }
    };
    match body {
        EventBody::EntrySignal(e) => signal(
            FlowKind::Entry,
            &e.state,
            e.strategy_id,
            None,
            Some(&e.broker_account_id),
            None,
        ),
        EventBody::ExitSignal(e) => signal(
            FlowKind::Exit,
            &e.state,
            e.strategy_id,
            Some(e.position_id),
            e.broker_account_id.as_ref(),
            None,
        ),
        EventBody::AdjustmentSignal(e) => signal(
            FlowKind::Adjustment,
            &e.state,
            e.strategy_id,
            Some(e.position_id),
            e.broker_account_id.as_ref(),
            e.condition_id(),
        ),
        EventBody::PositionUpdate(e) => Effect::Position(PositionUpdate {
            position_id: e.position_id,
            strategy_id: e.strategy_id,
            account: e.broker_account_id.clone().unwrap_or_default(),
            name: e.position_name.clone().unwrap_or_default(),
            state: if e.status == PositionStatus::Closed {
                PositionState::Closed
            } else {
                PositionState::Open
            },
            status: e.status.to_string(),
            realized_pnl: e.realized_pnl,
        }),
        EventBody::LegUpdate(e) => Effect::Leg(LegUpdate {
            leg_id: e.leg_id,
            position_id: e.position_id,
            name: e.leg_name.clone().unwrap_or_default(),
            status: e.status.to_string(),
            qty: e.qty,
        }),
        EventBody::OrderUpdate(e) => Effect::Order(OrderUpdate {
            order_id: e.order_id,
            strategy_id: e.strategy_id,
            account: e.broker_account_id.clone(),
            exec_plan_id: e.exec_plan_id,
            leg_group_id: e.leg_group_id,
            state: e
                .state
                .clone()
                .effective(e.filled_qty, e.remaining_qty)
                .to_string(),
            filled_qty: e.filled_qty,
            avg_fill_price: e.avg_fill_price,
        }),
        EventBody::Preparation {
            kind,
            status,
            event,
        } => Effect::Job(PrepareJobUpdate {
            job_id: event.job_id.clone(),
            kind: *kind,
            intent_key: None,
            strategy_id: event.strategy_id,
            position_id: event
                .result
                .as_ref()
                .and_then(|r| mesolive_api::wire::field(r.as_object()?, &["PositionId"]))
                .and_then(mesolive_api::wire::int),
            account: event.broker_account_id.clone(),
            status: job_status(status),
            result: event.result.clone(),
            error: event.error.clone(),
        }),
        EventBody::Error(_) | EventBody::AgentStatus(_) | EventBody::Unrecognized(_) => {
            Effect::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_behind_the_cursor_keeps_its_key_loses_its_sequence_and_is_quarantined() {
        let payload = json!({"EventId": "E-9", "EventSeqId": 3, "OrderId": 1, "StrategyId": 2, "State": "Filled"});
        let event = HubEvent::from_callback("OnOrderUpdate", &payload).unwrap();
        let moved = out_of_sequence(record(&event, &payload), &payload, 10);
        assert_eq!(moved.key, "e-9");
        assert_eq!(moved.seq_id, None);
        assert_eq!(moved.target, "OnOrderUpdate");
        match moved.effect {
            Effect::Quarantine { raw, error } => {
                assert_eq!(raw, payload.to_string());
                assert!(
                    error.contains("EventSeqId 3 is at or below the cursor 10"),
                    "{error}"
                );
            }
            other => panic!("not quarantined: {other:?}"),
        }
    }

    #[test]
    fn signals_errors_and_agent_status_describe_states_orders_and_positions_do_not() {
        let state = |target: &str, payload: Value| {
            let event = HubEvent::from_callback(target, &payload).unwrap();
            describes_state(&record(&event, &payload))
        };
        let signal =
            json!({"EventId": "e", "State": "On", "StrategyId": 1, "BrokerAccountId": "A"});
        assert!(state("OnEntrySignal", signal));
        assert!(state(
            "OnError",
            json!({"State": "Raised", "ErrorId": "x", "Message": "m"})
        ));
        assert!(state(
            "OnAgentStatus",
            json!({"Status": "Connected", "Message": "m"})
        ));
        assert!(!state(
            "OnOrderUpdate",
            json!({"OrderId": 1, "StrategyId": 2, "State": "Filled"})
        ));
        assert!(!state(
            "OnPositionUpdate",
            json!({"PositionId": 1, "StrategyId": 2, "BrokerAccountId": "A", "Status": "Closed"})
        ));
    }

    #[test]
    fn a_reasserted_signal_keeps_its_key_and_origin_and_loses_its_sequence() {
        let payload = json!({"EventId": "E-4", "EventSeqId": 4, "EventTime": "2024-05-01T14:30:00.123Z",
                             "State": "On", "StrategyId": 1, "PositionId": 9});
        let event = HubEvent::from_callback("OnExitSignal", &payload).unwrap();
        let reasserted = reassert(record(&event, &payload));
        assert_eq!((reasserted.key.as_str(), reasserted.seq_id), ("e-4", None));
        let Effect::Signal(update) = reasserted.effect else {
            panic!("not a signal: {reasserted:?}");
        };
        assert!(update.source.reasserted);
        assert_eq!(update.source.seq_id, Some(4));
        assert_eq!(update.source.time, event_time("2024-05-01T14:30:00.123Z"));
    }

    #[test]
    fn event_times_are_read_in_every_form_a_net_server_writes() {
        let millis = |text: &str| event_time(text).map(Timestamp::unix_millis);
        let expected = Some(1_714_573_800_123);
        assert_eq!(millis("2024-05-01T14:30:00.123Z"), expected);
        assert_eq!(millis("2024-05-01T14:30:00.1234567Z"), expected);
        assert_eq!(millis("2024-05-01T16:30:00.123+02:00"), expected);
        assert_eq!(millis("2024-05-01T14:30:00.123"), expected);
        assert_eq!(millis("2024-05-01T14:30:00"), Some(1_714_573_800_000));
        assert_eq!(millis("yesterday"), None);
    }

    #[test]
    fn keys_prefer_event_id_and_are_stable_otherwise() {
        let with_id = EventHeader {
            event_id: Some("ABC-1".into()),
            ..Default::default()
        };
        assert_eq!(event_key(&with_id, "OnX", &json!({})), "abc-1");
        let none = EventHeader::default();
        let a = event_key(
            &none,
            "OnEntrySignal",
            &json!({"State": "On", "StrategyId": 1}),
        );
        let b = event_key(
            &none,
            "OnEntrySignal",
            &json!({"StrategyId": 1, "State": "On"}),
        );
        let c = event_key(
            &none,
            "OnEntrySignal",
            &json!({"StrategyId": 1, "State": "Off"}),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("ck:"));
    }
}
