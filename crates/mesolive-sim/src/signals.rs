//! Level-style signals (entry / exit / adjustment, On or Off) and strategy errors (raised or
//! cleared). The active ones are what a new Event Hub connection is told about on connect; the
//! generator turns signals On and Off on a cadence, the admin API on request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::call::Failure;
use super::domain::SignalKey;
use super::event_log::LoggedEvent;
use super::world::World;
use mesolive_api::events::{AdjustmentSignalEvent, EntrySignalEvent, ErrorEvent, ExitSignalEvent};
use mesolive_api::models::SignalState;
use mesolive_api::wire::{callbacks, states};

/// Which signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    /// Enter the strategy on an account.
    Entry,
    /// Exit a position.
    Exit,
    /// Adjust a position.
    Adjustment,
}

/// A signal change requested by the admin API or the generator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SignalRequest {
    pub kind: SignalKind,
    pub state: SignalState,
    pub strategy_id: Option<i64>,
    pub position_id: Option<i64>,
    pub account: Option<String>,
    pub condition: Option<String>,
}

/// `ErrorEvent` and the documented fields it leaves out.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorView {
    #[serde(flatten)]
    event: ErrorEvent,
    strategy_name: Option<String>,
    position_name: Option<String>,
    broker_account_id: Option<String>,
}

/// Condition evaluation behind a generated adjustment signal (model not recovered; the daemon
/// reads its `Name` as the `Condition` argument).
fn condition(name: &str) -> Value {
    json!({"Name": name, "Statement": format!("{name} condition met"), "Result": true})
}

impl World {
    /// Emits a signal event and updates the active set.
    pub(crate) fn set_signal(
        &mut self,
        request: SignalRequest,
    ) -> Result<Arc<LoggedEvent>, Failure> {
        let on = request.state == SignalState::On;
        let (key, target, strategy_id, body) =
            match request.kind {
                SignalKind::Entry => {
                    let strategy_id = request.strategy_id.ok_or_else(|| {
                        Failure::invalid("strategy_id", "an entry signal needs strategy_id")
                    })?;
                    let strategy = self.strategies.get(&strategy_id).ok_or_else(|| {
                        Failure::not_found(format!("unknown strategy {strategy_id}"))
                    })?;
                    let account = match request.account {
                        Some(account) => account,
                        None => strategy.accounts.first().cloned().unwrap_or_default(),
                    };
                    if !strategy.accounts.contains(&account) {
                        return Err(Failure::bad_request(format!(
                            "strategy {strategy_id} is not active on account '{account}'"
                        )));
                    }
                    let body = serde_json::to_value(EntrySignalEvent {
                        state: request.state.clone(),
                        strategy_id,
                        strategy_name: Some(strategy.name.clone()),
                        broker_account_id: account.clone(),
                        entry_signal_result: None,
                    });
                    (
                        SignalKey::Entry {
                            strategy_id,
                            account,
                        },
                        callbacks::ENTRY_SIGNAL,
                        strategy_id,
                        body,
                    )
                }
                SignalKind::Exit | SignalKind::Adjustment => {
                    let position_id = request.position_id.ok_or_else(|| {
                        Failure::invalid(
                            "position_id",
                            "exit and adjustment signals need position_id",
                        )
                    })?;
                    let p = self.positions.get(&position_id).ok_or_else(|| {
                        Failure::not_found(format!("unknown position {position_id}"))
                    })?;
                    if on && !p.is_open() {
                        return Err(Failure::bad_request(format!(
                            "position {position_id} is closed"
                        )));
                    }
                    let body = if request.kind == SignalKind::Exit {
                        serde_json::to_value(ExitSignalEvent {
                            state: request.state.clone(),
                            strategy_id: p.strategy_id,
                            strategy_name: Some(p.strategy_name.clone()),
                            position_id,
                            position_name: Some(p.name.clone()),
                            broker_account_id: Some(p.account.clone()),
                            exit_signal_result: None,
                        })
                    } else {
                        let name = request.condition.as_deref().unwrap_or("DeltaBreach");
                        serde_json::to_value(AdjustmentSignalEvent {
                            state: request.state.clone(),
                            strategy_id: p.strategy_id,
                            strategy_name: Some(p.strategy_name.clone()),
                            position_id,
                            position_name: Some(p.name.clone()),
                            broker_account_id: Some(p.account.clone()),
                            adjustment_time_ok: Some(true),
                            condition: Some(condition(name)),
                        })
                    };
                    let (key, target) = if request.kind == SignalKind::Exit {
                        (SignalKey::Exit { position_id }, callbacks::EXIT_SIGNAL)
                    } else {
                        (
                            SignalKey::Adjustment { position_id },
                            callbacks::ADJUSTMENT_SIGNAL,
                        )
                    };
                    (key, target, p.strategy_id, body)
                }
            };
        let body = body.map_err(|err| Failure::bad_request(err.to_string()))?;
        let event = self.emit(target, Some(strategy_id), &body);
        if on {
            self.signals.insert(key, Arc::clone(&event));
        } else {
            self.signals.remove(&key);
        }
        Ok(event)
    }

    /// Turns an active entry signal Off (a position was opened for it).
    pub(crate) fn end_entry_signal(&mut self, strategy_id: i64, account: &str) {
        let key = SignalKey::Entry {
            strategy_id,
            account: account.to_owned(),
        };
        if self.signals.contains_key(&key) {
            let _ = self.set_signal(SignalRequest {
                kind: SignalKind::Entry,
                state: SignalState::Off,
                strategy_id: Some(strategy_id),
                position_id: None,
                account: Some(account.to_owned()),
                condition: None,
            });
        }
    }

    /// Turns a closed position's active exit and adjustment signals Off.
    pub(crate) fn end_position_signals(&mut self, position_id: i64) {
        for (kind, key) in [
            (SignalKind::Exit, SignalKey::Exit { position_id }),
            (
                SignalKind::Adjustment,
                SignalKey::Adjustment { position_id },
            ),
        ] {
            if self.signals.contains_key(&key) {
                let _ = self.set_signal(SignalRequest {
                    kind,
                    state: SignalState::Off,
                    strategy_id: None,
                    position_id: Some(position_id),
                    account: None,
                    condition: None,
                });
            }
        }
    }

    /// Raises a strategy error (`error_id: None` → a new id) or clears an active one.
    pub(crate) fn set_error(
        &mut self,
        raise: bool,
        error_id: Option<String>,
        strategy_id: Option<i64>,
        position_id: Option<i64>,
        message: Option<String>,
    ) -> Result<Arc<LoggedEvent>, Failure> {
        let error_id = match (raise, error_id) {
            (_, Some(id)) => id,
            (true, None) => self.uuid(),
            (false, None) => return Err(Failure::invalid("error_id", "clearing needs error_id")),
        };
        let position = position_id.and_then(|id| self.positions.get(&id));
        let strategy_id = strategy_id.or(position.map(|p| p.strategy_id));
        let strategy_name = strategy_id
            .and_then(|id| self.strategies.get(&id))
            .map(|s| s.name.clone());
        let view = ErrorView {
            event: ErrorEvent {
                state: Some(Value::String(
                    if raise {
                        states::ERROR_RAISED
                    } else {
                        states::ERROR_CLEARED
                    }
                    .into(),
                )),
                error_id: Some(error_id.clone()),
                strategy_id,
                position_id,
                message: Some(message.unwrap_or_else(|| "simulated strategy error".into())),
            },
            strategy_name,
            position_name: position.map(|p| p.name.clone()),
            broker_account_id: position.map(|p| p.account.clone()),
        };
        let event = self.emit(callbacks::ERROR, strategy_id, &view);
        if raise {
            self.errors.insert(error_id, Arc::clone(&event));
        } else {
            self.errors.remove(&error_id);
        }
        Ok(event)
    }

    /// The events that turned the active signals On and raised the active errors: what a new
    /// connection is told on connect, in the form the connect-push setting asks for.
    pub(crate) fn active_state(&self) -> Vec<Arc<LoggedEvent>> {
        self.signals
            .values()
            .chain(self.errors.values())
            .cloned()
            .collect()
    }

    /// One step of the signal generator: ends some active signals, then raises entry signals
    /// for paper strategies with nothing open, exit signals and occasional adjustment signals
    /// for open positions. Driven only by the seeded generator.
    pub(crate) fn generate_signals(&mut self) {
        let active: Vec<SignalKey> = self.signals.keys().cloned().collect();
        for key in active {
            if self.rng.bool() {
                let (kind, strategy_id, position_id, account) = match key {
                    SignalKey::Entry {
                        strategy_id,
                        account,
                    } => (SignalKind::Entry, Some(strategy_id), None, Some(account)),
                    SignalKey::Exit { position_id } => {
                        (SignalKind::Exit, None, Some(position_id), None)
                    }
                    SignalKey::Adjustment { position_id } => {
                        (SignalKind::Adjustment, None, Some(position_id), None)
                    }
                };
                let _ = self.set_signal(SignalRequest {
                    kind,
                    state: SignalState::Off,
                    strategy_id,
                    position_id,
                    account,
                    condition: None,
                });
            }
        }
        let mut raise = Vec::new();
        for strategy in self.strategies.values() {
            for account in &strategy.accounts {
                let paper = self.account(account).is_some_and(|a| a.paper);
                let open = self
                    .positions
                    .values()
                    .any(|p| p.is_open() && p.strategy_id == strategy.id && &p.account == account);
                let key = SignalKey::Entry {
                    strategy_id: strategy.id,
                    account: account.clone(),
                };
                if paper && !open && !self.signals.contains_key(&key) {
                    raise.push((
                        SignalKind::Entry,
                        Some(strategy.id),
                        None,
                        Some(account.clone()),
                    ));
                }
            }
        }
        for position in self.positions.values().filter(|p| p.is_open()) {
            let id = position.id;
            if !self
                .signals
                .contains_key(&SignalKey::Exit { position_id: id })
            {
                raise.push((SignalKind::Exit, None, Some(id), None));
            }
            if !self
                .signals
                .contains_key(&SignalKey::Adjustment { position_id: id })
            {
                raise.push((SignalKind::Adjustment, None, Some(id), None));
            }
        }
        for (kind, strategy_id, position_id, account) in raise {
            let odds = match kind {
                SignalKind::Entry => 0.5,
                SignalKind::Exit => 0.2,
                SignalKind::Adjustment => 0.1,
            };
            if self.rng.f64() < odds {
                let _ = self.set_signal(SignalRequest {
                    kind,
                    state: SignalState::On,
                    strategy_id,
                    position_id,
                    account,
                    condition: None,
                });
            }
        }
    }
}
