//! The operator tables: the trading state (initialised once, stored changes recorded), risk
//! switches once per rule, account and day that never lower the state, realized PnL marks
//! written by the positions table itself, and operator cancellations.

use mesolive_supervisor::store::{
    ActionKind, ActionSource, CancelRefusal, PositionState, PositionUpdate, Timestamp, TradingState,
};
use rust_decimal::Decimal;

use crate::support::store::{open, temp_db};

fn pnl(position_id: i64, realized: i64) -> PositionUpdate {
    PositionUpdate {
        position_id,
        strategy_id: 7,
        account: "U123".into(),
        name: format!("IC {position_id}"),
        state: PositionState::Open,
        status: "RealizedPnLChanged".into(),
        realized_pnl: Some(Decimal::from(realized)),
    }
}

#[tokio::test]
async fn the_trading_state_is_initialised_once_and_changes_are_recorded() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    assert_eq!(store.trading_state().await.unwrap(), None);
    let first = store
        .trading_state_or_init(TradingState::Halted)
        .await
        .unwrap();
    assert_eq!(first, TradingState::Halted);
    let again = store
        .trading_state_or_init(TradingState::Active)
        .await
        .unwrap();
    assert_eq!(again, TradingState::Halted, "the stored state wins");
    let same = store
        .set_trading_state(TradingState::Halted, "again", ActionSource::Ctl)
        .await
        .unwrap();
    assert!(!same.changed());
    let resumed = store
        .set_trading_state(TradingState::Active, "fixed", ActionSource::Ctl)
        .await
        .unwrap();
    assert_eq!(
        (resumed.from, resumed.to),
        (TradingState::Halted, TradingState::Active)
    );
    let actions = store.operator_actions(10).await.unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0].reason, "fixed");
    assert_eq!(actions[1].source, ActionSource::Config);
    assert_eq!(actions[1].to_state, Some(TradingState::Halted));
    store.close().await.unwrap();
    let reopened = open(&path).await;
    assert_eq!(
        reopened.trading_state().await.unwrap(),
        Some(TradingState::Active)
    );
}

#[tokio::test]
async fn a_risk_switch_fires_once_per_rule_account_and_day_and_never_lowers_the_state() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    let fired = store
        .risk_switch(
            "max_daily_loss",
            "A",
            "2026-01-02",
            TradingState::ReduceOnly,
            "loss",
        )
        .await
        .unwrap()
        .expect("fires");
    assert_eq!(
        (fired.from, fired.to),
        (TradingState::Active, TradingState::ReduceOnly)
    );
    let twice = store
        .risk_switch(
            "max_daily_loss",
            "A",
            "2026-01-02",
            TradingState::Halted,
            "loss",
        )
        .await
        .unwrap();
    assert_eq!(twice, None, "once a day");
    store
        .set_trading_state(TradingState::Halted, "operator", ActionSource::Ctl)
        .await
        .unwrap();
    let other_account = store
        .risk_switch(
            "max_daily_loss",
            "B",
            "2026-01-02",
            TradingState::ReduceOnly,
            "loss",
        )
        .await
        .unwrap()
        .expect("another account fires");
    assert!(
        !other_account.changed(),
        "halted is not lowered to reduce_only"
    );
    assert_eq!(
        store.trading_state().await.unwrap(),
        Some(TradingState::Halted)
    );
    let next_day = store
        .risk_switch(
            "max_daily_loss",
            "A",
            "2026-01-03",
            TradingState::ReduceOnly,
            "loss",
        )
        .await
        .unwrap();
    assert!(next_day.is_some(), "a new trading day");
    let risk_actions = store
        .operator_actions(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.source == ActionSource::Risk)
        .count();
    assert_eq!(risk_actions, 1, "only real changes are recorded");
}

#[tokio::test]
async fn realized_pnl_marks_follow_position_updates() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    let before = Timestamp::now();
    store.upsert_positions(&[pnl(9, -100)]).await.unwrap();
    store.upsert_positions(&[pnl(9, -100)]).await.unwrap();
    store
        .upsert_positions(&[pnl(9, -300), pnl(10, 50)])
        .await
        .unwrap();
    // A listing without PnL keeps the last one and marks nothing.
    let mut listed = pnl(10, 0);
    listed.realized_pnl = None;
    store.upsert_positions(&[listed]).await.unwrap();
    let movements = store.realized_pnl_movements(before).await.unwrap();
    assert_eq!(movements.len(), 2, "{movements:?}");
    assert_eq!(movements[0].position_id, 9);
    assert_eq!(movements[0].latest, Decimal::from(-300));
    assert_eq!(movements[0].opening, None);
    assert_eq!(movements[1].latest, Decimal::from(50));
    // A period that starts after those marks: their last one is the opening.
    let boundary = Timestamp::now();
    testkit::wait_for(
        "the clock past the last mark",
        std::time::Duration::from_secs(1),
        || async { Timestamp::now() > boundary },
    )
    .await;
    let since = Timestamp::now();
    store.upsert_positions(&[pnl(9, -350)]).await.unwrap();
    let period = store.realized_pnl_movements(since).await.unwrap();
    assert_eq!(period.len(), 1, "{period:?}");
    assert_eq!(period[0].opening, Some(Decimal::from(-300)));
    assert_eq!(period[0].latest, Decimal::from(-350));
}

#[tokio::test]
async fn an_operator_cancels_only_an_active_workflow() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    let refused = store
        .cancel_workflow(404, "by hand", ActionSource::Ctl)
        .await
        .unwrap();
    assert_eq!(refused, Err(CancelRefusal::Unknown));
    assert!(
        store
            .operator_actions(10)
            .await
            .unwrap()
            .iter()
            .all(|a| a.action != ActionKind::CancelWorkflow)
    );
}
