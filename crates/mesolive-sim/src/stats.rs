//! Counters and the request log: what the daemon called, in which order, and which faults fired.
//! Tests assert call order and that observe mode sent nothing state-changing from here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::faults::FaultKind;
use mesolive_api::Hub;

/// Requests kept in the log; older ones are dropped (the log is for tests, not an archive).
const REQUEST_LOG_CAPACITY: usize = 200_000;

/// One hub call as `GET /requests` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Which hub.
    pub hub: Hub,
    /// Method name as the client sent it.
    pub method: String,
    /// The connection that sent it (the id negotiate gave the client): tells clients apart,
    /// e.g. which of two daemons sent a state-changing call.
    pub connection: String,
    /// The call's `IdempotencyKey`, when it carries one (every state-changing call does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// Microseconds since the simulator started (for latencies below a millisecond).
    pub at_us: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: BTreeMap<String, u64>,
    requests: VecDeque<RequestRecord>,
    faults: BTreeMap<&'static str, u64>,
}

/// Shared counters.
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    counters: Mutex<Counters>,
    live_delivered: AtomicU64,
}

/// `GET /stats`.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// Newest EventSeqId (= events logged).
    pub latest_event_seq_id: i64,
    /// Events emitted since start (every one is in history).
    pub events_emitted: i64,
    /// Callbacks written to Event Hub connections (duplicates and on-connect pushes included).
    pub live_events_delivered: u64,
    /// Open connections per hub.
    pub connections: BTreeMap<&'static str, usize>,
    /// Faults that fired, by kind.
    pub faults_injected: BTreeMap<&'static str, u64>,
    /// Calls per hub method.
    pub calls: BTreeMap<String, u64>,
    /// Milliseconds since start.
    pub uptime_ms: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            counters: Mutex::default(),
            live_delivered: AtomicU64::new(0),
        }
    }
}

impl Stats {
    /// Milliseconds since the simulator started.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the simulator started.
    pub(crate) fn elapsed_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one hub call of `connection`, with its idempotency key if it has one.
    pub(crate) fn call(&self, hub: Hub, method: &str, connection: &str, key: Option<&str>) {
        let mut counters = self.counters();
        // Read under the lock, so the log is in time order (`requests_after` relies on it).
        let at_us = self.elapsed_us();
        let at_ms = at_us / 1_000;
        *counters.calls.entry(method.to_owned()).or_default() += 1;
        if counters.requests.len() == REQUEST_LOG_CAPACITY {
            counters.requests.pop_front();
        }
        counters.requests.push_back(RequestRecord {
            hub,
            method: method.to_owned(),
            connection: connection.to_owned(),
            key: key.map(str::to_owned),
            at_ms,
            at_us,
        });
    }

    /// Records a fault that fired.
    pub(crate) fn fault(&self, kind: FaultKind) {
        self.faults(kind, 1);
    }

    /// Records `n` faults of one kind.
    pub(crate) fn faults(&self, kind: FaultKind, n: u64) {
        *self.counters().faults.entry(kind.as_str()).or_default() += n;
    }

    /// Records callbacks written to connections.
    pub(crate) fn delivered(&self, n: u64) {
        self.live_delivered.fetch_add(n, Ordering::Relaxed);
    }

    /// The request log after `after_us` microseconds since the start, oldest first.
    pub(crate) fn requests_after(&self, after_us: u64) -> Vec<RequestRecord> {
        let counters = self.counters();
        let first = counters.requests.partition_point(|r| r.at_us <= after_us);
        counters.requests.range(first..).cloned().collect()
    }

    /// Everything but the figures other parts own (latest seq id, connections).
    pub(crate) fn report(
        &self,
        latest_event_seq_id: i64,
        connections: BTreeMap<&'static str, usize>,
    ) -> StatsReport {
        let counters = self.counters();
        StatsReport {
            latest_event_seq_id,
            events_emitted: latest_event_seq_id,
            live_events_delivered: self.live_delivered.load(Ordering::Relaxed),
            connections,
            faults_injected: counters.faults.clone(),
            calls: counters.calls.clone(),
            uptime_ms: self.elapsed_ms(),
        }
    }
}
