//! Admission: whether a signal instance may lead to actions at all, decided once when its
//! workflow is opened, from the configured mode, the allow list, the account, the trading
//! state and the limits.
//! Pure: the I/O gathers the [`Applicant`], these functions decide.

use crate::config::AutomationMode;
use crate::store::{TradingState, WorkflowState};
use mesolive_api::FlowKind;

/// What admission looks at for one signal instance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Applicant<'a> {
    /// Entry, exit or adjustment.
    pub kind: FlowKind,
    /// The strategy.
    pub strategy_id: i64,
    /// The broker account, from the signal or its position.
    pub account: Option<&'a str>,
    /// Whether the strategy is in `automation.allow_strategies` (or the list is empty).
    pub allowed: bool,
    /// `automation.mode`.
    pub mode: AutomationMode,
    /// Whether the account is a paper account, as the directory knows it.
    pub paper: Option<bool>,
    /// Open positions of the strategy on the account (entries).
    pub open_positions: u64,
    /// The strategy's `max_open_positions` (entries).
    pub max_open_positions: u32,
    /// The trading state now.
    pub trading_state: TradingState,
    /// `automation.adjust_in_reduce_only`.
    pub adjust_in_reduce_only: bool,
}

/// Why a workflow of `kind` does not start in `state`, if it does not: reduce_only starts no
/// entry, and no adjustment unless `automation.adjust_in_reduce_only`. (Halted starts
/// everything, to wait in `requested` for the resume.)
pub(crate) fn refused_by_trading_state(
    kind: FlowKind,
    state: TradingState,
    adjust_in_reduce_only: bool,
) -> Option<String> {
    match (state, kind) {
        (TradingState::ReduceOnly, FlowKind::Entry) => {
            Some("trading state reduce_only: entries are not started".to_owned())
        }
        (TradingState::ReduceOnly, FlowKind::Adjustment) if !adjust_in_reduce_only => Some(
            "trading state reduce_only: adjustments are refused (automation.adjust_in_reduce_only = false)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// The state a new workflow starts in, and why when it starts final.
pub(crate) fn admit(applicant: &Applicant<'_>) -> (WorkflowState, Option<String>) {
    let what = format!(
        "{} for strategy {}",
        applicant.kind.as_str(),
        applicant.strategy_id
    );
    if !applicant.allowed {
        return (
            WorkflowState::Cancelled,
            Some(format!(
                "{what}: strategy not in automation.allow_strategies"
            )),
        );
    }
    if applicant.mode == AutomationMode::Observe {
        return (
            WorkflowState::Observed,
            Some(format!(
                "observe mode: would prepare and execute {what} on account {}",
                applicant.account.unwrap_or("?")
            )),
        );
    }
    let Some(account) = applicant.account else {
        return (
            WorkflowState::Cancelled,
            Some(format!("{what}: account unknown")),
        );
    };
    if applicant.mode == AutomationMode::Paper && applicant.paper != Some(true) {
        return (
            WorkflowState::Cancelled,
            Some(format!(
                "paper mode: account {account} is not a known paper account"
            )),
        );
    }
    if let Some(reason) = refused_by_trading_state(
        applicant.kind,
        applicant.trading_state,
        applicant.adjust_in_reduce_only,
    ) {
        return (WorkflowState::Cancelled, Some(reason));
    }
    if applicant.kind == FlowKind::Entry
        && applicant.open_positions >= u64::from(applicant.max_open_positions)
    {
        return (
            WorkflowState::Cancelled,
            Some(format!(
                "strategy {} already has {} open position(s) on {account} (automation.max_open_positions)",
                applicant.strategy_id, applicant.open_positions
            )),
        );
    }
    (WorkflowState::Requested, None)
}

/// What may have only one active workflow: the strategy on the account for entries (and for
/// signals without a position), the position otherwise.
pub(crate) fn scope(
    kind: FlowKind,
    strategy_id: i64,
    account: Option<&str>,
    position_id: Option<i64>,
) -> String {
    match (kind, position_id) {
        (FlowKind::Entry, _) | (_, None) => {
            format!("entry:{strategy_id}:{}", account.unwrap_or("?"))
        }
        (_, Some(position_id)) => format!("position:{position_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applicant(kind: FlowKind) -> Applicant<'static> {
        Applicant {
            kind,
            strategy_id: 101,
            account: Some("PAPER-1"),
            allowed: true,
            mode: AutomationMode::Paper,
            paper: Some(true),
            open_positions: 0,
            max_open_positions: 1,
            trading_state: TradingState::Active,
            adjust_in_reduce_only: false,
        }
    }

    fn reason(applicant: &Applicant<'_>) -> String {
        admit(applicant).1.unwrap_or_default()
    }

    #[test]
    fn an_allowed_signal_in_paper_mode_on_a_paper_account_is_requested() {
        assert_eq!(
            admit(&applicant(FlowKind::Entry)),
            (WorkflowState::Requested, None)
        );
        assert_eq!(
            admit(&applicant(FlowKind::Exit)),
            (WorkflowState::Requested, None)
        );
    }

    #[test]
    fn the_allow_list_comes_first_then_observe_mode() {
        let refused = Applicant {
            allowed: false,
            mode: AutomationMode::Observe,
            ..applicant(FlowKind::Exit)
        };
        assert_eq!(admit(&refused).0, WorkflowState::Cancelled);
        assert!(reason(&refused).contains("automation.allow_strategies"));
        let observe = Applicant {
            mode: AutomationMode::Observe,
            account: None,
            ..applicant(FlowKind::Entry)
        };
        assert_eq!(admit(&observe).0, WorkflowState::Observed);
        assert!(reason(&observe).contains("would prepare and execute entry"));
    }

    #[test]
    fn an_unknown_account_or_a_broker_account_in_paper_mode_is_refused() {
        let unknown = Applicant {
            account: None,
            ..applicant(FlowKind::Exit)
        };
        assert!(reason(&unknown).ends_with("account unknown"));
        for paper in [Some(false), None] {
            let broker = Applicant {
                paper,
                ..applicant(FlowKind::Entry)
            };
            assert!(reason(&broker).starts_with("paper mode"));
            let live = Applicant {
                mode: AutomationMode::Live,
                ..broker
            };
            assert_eq!(admit(&live).0, WorkflowState::Requested);
        }
    }

    #[test]
    fn entries_respect_the_open_position_limit_exits_do_not() {
        let full = Applicant {
            open_positions: 1,
            ..applicant(FlowKind::Entry)
        };
        assert!(reason(&full).contains("automation.max_open_positions"));
        let exit = Applicant {
            open_positions: 5,
            ..applicant(FlowKind::Exit)
        };
        assert_eq!(admit(&exit).0, WorkflowState::Requested);
        let roomy = Applicant {
            max_open_positions: 2,
            ..full
        };
        assert_eq!(admit(&roomy).0, WorkflowState::Requested);
    }

    #[test]
    fn reduce_only_starts_exits_only_and_halted_starts_everything_to_wait() {
        let in_state = |kind, trading_state, adjust_in_reduce_only| Applicant {
            trading_state,
            adjust_in_reduce_only,
            ..applicant(kind)
        };
        let entry = in_state(FlowKind::Entry, TradingState::ReduceOnly, true);
        assert_eq!(admit(&entry).0, WorkflowState::Cancelled);
        assert!(reason(&entry).contains("trading state reduce_only"));
        let adjustment = in_state(FlowKind::Adjustment, TradingState::ReduceOnly, false);
        assert!(reason(&adjustment).contains("automation.adjust_in_reduce_only = false"));
        let allowed = in_state(FlowKind::Adjustment, TradingState::ReduceOnly, true);
        assert_eq!(admit(&allowed).0, WorkflowState::Requested);
        let exit = in_state(FlowKind::Exit, TradingState::ReduceOnly, false);
        assert_eq!(admit(&exit).0, WorkflowState::Requested);
        for kind in [FlowKind::Entry, FlowKind::Exit, FlowKind::Adjustment] {
            let halted = in_state(kind, TradingState::Halted, false);
            assert_eq!(admit(&halted), (WorkflowState::Requested, None));
        }
    }

    #[test]
    fn scopes_are_the_strategy_account_for_entries_and_the_position_otherwise() {
        assert_eq!(
            scope(FlowKind::Entry, 101, Some("A"), Some(5)),
            "entry:101:A"
        );
        assert_eq!(scope(FlowKind::Exit, 101, Some("A"), Some(5)), "position:5");
        assert_eq!(scope(FlowKind::Adjustment, 101, None, None), "entry:101:?");
    }
}
