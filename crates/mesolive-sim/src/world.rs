//! The simulated world: every piece of domain state, the event log, idempotency records and the
//! ledger, behind one lock so that effects and their events are ordered the same way everywhere.
//! Domain operations live in sibling modules as `impl World` blocks (positions, execution, jobs,
//! signals); this file holds the state, ids, time and event emission.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use super::call::to_value;
use super::domain::{Account, ExecPlan, Job, Leg, Order, Position, SignalKey, Strategy};
use super::event_log::{EventLog, LoggedEvent};
use super::idempotency::Idempotency;
use super::ledger::Ledger;
use super::market::Market;
use mesolive_api::models::AgentInfo;

/// UTC now as the simulator writes every time (RFC 3339, milliseconds, `Z`).
pub(crate) fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Next ids of each kind (distinct ranges make a mixed-up id fail loudly in tests).
#[derive(Debug)]
pub(crate) struct Ids {
    position: i64,
    leg: i64,
    order: i64,
    plan: i64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            position: 1001,
            leg: 20_001,
            order: 50_001,
            plan: 70_001,
        }
    }
}

fn next(counter: &mut i64) -> i64 {
    let id = *counter;
    *counter += 1;
    id
}

/// Everything mutable, guarded by one mutex in the shared `Sim`.
#[derive(Debug)]
pub(crate) struct World {
    pub rng: fastrand::Rng,
    pub ids: Ids,
    pub agents: Vec<AgentInfo>,
    pub accounts: Vec<Account>,
    pub strategies: BTreeMap<i64, Strategy>,
    pub positions: BTreeMap<i64, Position>,
    pub legs: BTreeMap<i64, Leg>,
    pub orders: BTreeMap<i64, Order>,
    pub plans: BTreeMap<i64, ExecPlan>,
    pub jobs: HashMap<String, Job>,
    /// Active signals (state On), by what they are about; the value is the On event.
    pub signals: BTreeMap<SignalKey, Arc<LoggedEvent>>,
    /// Active (raised) errors by ErrorId; the value is the raising event.
    pub errors: BTreeMap<String, Arc<LoggedEvent>>,
    pub log: EventLog,
    pub idempotency: Idempotency,
    pub ledger: Ledger,
    pub market: Market,
    /// Round-robin cursor of generic events.
    pub generic_cursor: usize,
    live: mpsc::UnboundedSender<Arc<LoggedEvent>>,
    closed: watch::Sender<u64>,
}

impl World {
    /// An empty world; `World::seed` (seed.rs) fills it.
    pub(crate) fn new(
        seed: u64,
        live: mpsc::UnboundedSender<Arc<LoggedEvent>>,
        closed: watch::Sender<u64>,
    ) -> World {
        World {
            rng: fastrand::Rng::with_seed(seed),
            ids: Ids::default(),
            agents: Vec::new(),
            accounts: Vec::new(),
            strategies: BTreeMap::new(),
            positions: BTreeMap::new(),
            legs: BTreeMap::new(),
            orders: BTreeMap::new(),
            plans: BTreeMap::new(),
            jobs: HashMap::new(),
            signals: BTreeMap::new(),
            errors: BTreeMap::new(),
            log: EventLog::default(),
            idempotency: Idempotency::default(),
            ledger: Ledger::default(),
            market: Market::new(seed),
            generic_cursor: 0,
            live,
            closed,
        }
    }

    /// A UUID from the seeded generator, hyphenated lowercase.
    pub(crate) fn uuid(&mut self) -> String {
        uuid::Uuid::from_u128(self.rng.u128(..))
            .hyphenated()
            .to_string()
    }

    pub(crate) fn next_position_id(&mut self) -> i64 {
        next(&mut self.ids.position)
    }

    pub(crate) fn next_leg_id(&mut self) -> i64 {
        next(&mut self.ids.leg)
    }

    pub(crate) fn next_order_id(&mut self) -> i64 {
        next(&mut self.ids.order)
    }

    pub(crate) fn next_plan_id(&mut self) -> i64 {
        next(&mut self.ids.plan)
    }

    /// Logs an event and hands it to live delivery. Every event the simulator sends goes
    /// through here, so history and the live stream can never disagree on order.
    pub(crate) fn emit(
        &mut self,
        target: impl Into<String>,
        strategy_id: Option<i64>,
        body: &impl Serialize,
    ) -> Arc<LoggedEvent> {
        self.publish(target.into(), strategy_id, to_value(body), &Map::new())
    }

    /// Logs and delivers an event exactly as given, header overrides included: hostile or
    /// malformed input for tests (`POST /events/inject`).
    pub(crate) fn inject(
        &mut self,
        target: impl Into<String>,
        payload: Value,
        header: &Map<String, Value>,
    ) -> Arc<LoggedEvent> {
        self.publish(target.into(), None, payload, header)
    }

    fn publish(
        &mut self,
        target: String,
        strategy_id: Option<i64>,
        payload: Value,
        header: &Map<String, Value>,
    ) -> Arc<LoggedEvent> {
        let id = self.uuid();
        let event = self
            .log
            .append(id, &timestamp(), target, strategy_id, payload, header);
        // Live delivery ends only at shutdown; the event is in history either way.
        let _ = self.live.send(Arc::clone(&event));
        event
    }

    /// Wakes position streams after a position closed.
    pub(crate) fn notify_closed(&self) {
        self.closed.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id.eq_ignore_ascii_case(id))
    }

    /// Open positions on an account.
    pub(crate) fn active_positions(&self, account: &str) -> i64 {
        self.positions
            .values()
            .filter(|p| p.is_open() && p.account == account)
            .count() as i64
    }

    /// Open legs of a position, in creation order.
    pub(crate) fn open_legs(&self, position_id: i64) -> Vec<&Leg> {
        self.positions
            .get(&position_id)
            .map(|p| {
                p.leg_ids
                    .iter()
                    .filter_map(|id| self.legs.get(id))
                    .filter(|leg| leg.is_open())
                    .collect()
            })
            .unwrap_or_default()
    }
}
