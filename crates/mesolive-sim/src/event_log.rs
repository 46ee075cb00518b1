//! The per-user event log: every event the simulator ever emitted, numbered 1, 2, 3… with no
//! gaps. Live delivery (and its faults) reads from it; `GetEventsSince` pages through it, so an
//! event suppressed or delayed on the live path is still replayed exactly.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

/// One logged event. `payload` already carries the header (`EventId`, `EventSeqId`,
/// `EventTime`), exactly as the live callback's single argument.
#[derive(Debug)]
pub(crate) struct LoggedEvent {
    pub seq: i64,
    pub id: String,
    pub target: String,
    /// The strategy group it is delivered to; `None` reaches every connection.
    pub strategy_id: Option<i64>,
    pub payload: Value,
    /// When it was logged: the reference point of the live-delay fault.
    pub logged_at: Instant,
}

impl LoggedEvent {
    /// The payload without `EventSeqId`, as pushed on connect (API §4.2/§6.5).
    pub(crate) fn without_seq_id(&self) -> Value {
        let mut payload = self.payload.clone();
        if let Some(object) = payload.as_object_mut() {
            object.remove("EventSeqId");
        }
        payload
    }
}

/// The log. Sequence ids are positions: event `n` is at index `n - 1`.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    events: Vec<Arc<LoggedEvent>>,
}

impl EventLog {
    /// The newest sequence id (0 when nothing was logged yet).
    pub(crate) fn latest(&self) -> i64 {
        self.events.len() as i64
    }

    /// Logs an event; `payload` gets the header fields inserted, then `overrides` applied
    /// field by field (`null` removes one; empty for every well-formed event): a malformed event
    /// still takes its place in the sequence, as a broken server would send it live and in
    /// history.
    pub(crate) fn append(
        &mut self,
        id: String,
        time: &str,
        target: String,
        strategy_id: Option<i64>,
        mut payload: Value,
        overrides: &Map<String, Value>,
    ) -> Arc<LoggedEvent> {
        let seq = self.latest() + 1;
        if let Some(object) = payload.as_object_mut() {
            object.insert("EventId".into(), Value::String(id.clone()));
            object.insert("EventSeqId".into(), Value::from(seq));
            object.insert("EventTime".into(), Value::String(time.to_owned()));
            for (name, value) in overrides {
                match value {
                    Value::Null => object.remove(name),
                    other => object.insert(name.clone(), other.clone()),
                };
            }
        }
        let event = Arc::new(LoggedEvent {
            seq,
            id,
            target,
            strategy_id,
            payload,
            logged_at: Instant::now(),
        });
        self.events.push(Arc::clone(&event));
        event
    }

    /// The oldest EventSeqId still served when only the latest `retention` events are kept
    /// (0 keeps everything).
    pub(crate) fn oldest_retained(&self, retention: u64) -> i64 {
        match i64::try_from(retention) {
            Ok(kept) if kept > 0 => (self.latest() - kept + 1).max(1),
            _ => 1,
        }
    }

    /// Up to `limit` events strictly after `after`, and whether more follow them.
    pub(crate) fn since(&self, after: i64, limit: usize) -> (&[Arc<LoggedEvent>], bool) {
        let start = usize::try_from(after.max(0))
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        let end = start.saturating_add(limit).min(self.events.len());
        (&self.events[start..end], end < self.events.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_of(n: usize) -> EventLog {
        let mut log = EventLog::default();
        for i in 0..n {
            log.append(
                format!("id-{i}"),
                "t",
                "OnX".into(),
                None,
                json!({"N": i}),
                &Map::new(),
            );
        }
        log
    }

    #[test]
    fn sequence_ids_are_contiguous_and_in_the_payload() {
        let log = log_of(3);
        assert_eq!(log.latest(), 3);
        let (events, more) = log.since(0, 10);
        assert!(!more);
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(events[1].payload["EventSeqId"], 2);
        assert_eq!(events[1].payload["EventId"], "id-1");
        assert!(events[1].without_seq_id().get("EventSeqId").is_none());
    }

    #[test]
    fn header_overrides_replace_or_remove_fields_but_keep_the_sequence() {
        let mut log = log_of(1);
        let overrides = json!({"EventSeqId": "x", "EventId": null});
        let event = log.append(
            "id-1".into(),
            "t",
            "OnX".into(),
            None,
            json!({"N": 1}),
            overrides.as_object().unwrap(),
        );
        assert_eq!(event.seq, 2);
        assert_eq!(event.payload["EventSeqId"], "x");
        assert!(event.payload.get("EventId").is_none());
        assert_eq!(log.latest(), 2);
    }

    #[test]
    fn the_oldest_retained_event_is_the_first_of_the_latest_kept() {
        let log = log_of(5);
        assert_eq!(log.oldest_retained(0), 1);
        assert_eq!(log.oldest_retained(2), 4);
        assert_eq!(log.oldest_retained(99), 1);
    }

    #[test]
    fn since_is_exclusive_and_bounded() {
        let log = log_of(5);
        let (events, more) = log.since(2, 2);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert!(more);
        assert_eq!(log.since(5, 10).0.len(), 0);
        assert_eq!(log.since(99, 10).0.len(), 0);
        assert_eq!(log.since(-7, 1).0[0].seq, 1);
    }
}
