//! From a hub event to what the store commits: the dedupe key, the sequence id, and the effect.
//! Pure functions — the exactly-once logic itself lives in `store::apply_events`.

use serde_json::Value;

use crate::store::{
    Effect, EventRecord, JobStatus, LegUpdate, OrderUpdate, PositionState, PositionUpdate,
    PrepareJobUpdate, SignalState as StoredSignalState, SignalUpdate,
};
use mesolive_api::FlowKind;
use mesolive_api::events::{EventBody, EventDecodeError, EventHeader, HubEvent};
use mesolive_api::models::{PositionStatus, PreparationStatus, SignalState};

/// The record for a decoded event.
pub fn record(event: &HubEvent, payload: &Value) -> EventRecord {
    EventRecord {
        key: event_key(&event.header, &event.target, payload),
        seq_id: event.header.event_seq_id,
        target: event.target.clone(),
        effect: effect(&event.body, payload),
    }
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

fn effect(body: &EventBody, payload: &Value) -> Effect {
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
