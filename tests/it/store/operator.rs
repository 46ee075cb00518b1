//! The operator tables, on both backends: the trading state (initialised once, stored changes
//! recorded), risk switches once per rule, account and day that never lower the state, realized
//! PnL marks written by the positions table itself, operator cancellations (a final state stays
//! final), the risk rules' counts, and — on PostgreSQL — a fenced store that changes none of it.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{
    ActionKind, ActionSource, CancelRefusal, LeaseRequest, NewIntent, NewWorkflow, PositionState,
    PositionUpdate, Store, StoreError, StoreOptions, Timestamp, TradingState, WorkflowChange,
    WorkflowState,
};
use rust_decimal::Decimal;

use crate::support::store::{Backend, TestDb, on_both_backends, order_event};

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

/// The whole second `at` falls in, `ahead` seconds later.
fn whole_second(at: Timestamp, ahead: i64) -> Timestamp {
    let millis = at.unix_millis() - at.unix_millis() % 1000 + ahead * 1000;
    Timestamp::from(chrono::DateTime::from_timestamp_millis(millis).expect("in range"))
}

on_both_backends! {
    async fn the_trading_state_is_initialised_once_and_changes_are_recorded(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
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
        let reopened = db.open().await;
        assert_eq!(
            reopened.trading_state().await.unwrap(),
            Some(TradingState::Active)
        );
    }
}

on_both_backends! {
    async fn a_risk_switch_fires_once_per_rule_account_and_day_and_never_lowers_the_state(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
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
}

on_both_backends! {
    async fn realized_pnl_marks_follow_position_updates(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        // Marks are kept per whole second, and the rule asks from a whole second (a trading
        // day's start).
        let before = whole_second(Timestamp::now(), 0);
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
        // A period that starts after those marks: their last one is the opening. Two changes
        // just after the second began share its mark: the later one is kept.
        let since = whole_second(Timestamp::now(), 1);
        testkit::wait_for(
            "the clock at the next whole second",
            std::time::Duration::from_secs(2),
            || async { Timestamp::now() >= since },
        )
        .await;
        store.upsert_positions(&[pnl(9, -350)]).await.unwrap();
        store.upsert_positions(&[pnl(9, -360)]).await.unwrap();
        let period = store.realized_pnl_movements(since).await.unwrap();
        assert_eq!(period.len(), 1, "{period:?}");
        assert_eq!(period[0].opening, Some(Decimal::from(-300)));
        assert_eq!(period[0].latest, Decimal::from(-360));
    }
}

on_both_backends! {
    async fn an_operator_cancels_only_an_active_workflow(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
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

        let open = store
            .create_workflow(&workflow("A", "1"))
            .await
            .unwrap()
            .expect("opened");
        store
            .update_workflow(open.id, &WorkflowChange::to(WorkflowState::Preparing))
            .await
            .unwrap();
        let cancelled = store
            .cancel_workflow(open.id, "manual exit done", ActionSource::Ctl)
            .await
            .unwrap()
            .expect("an active workflow is cancelled");
        assert_eq!(cancelled.state, WorkflowState::Cancelled);
        assert_eq!(cancelled.reason.as_deref(), Some("manual exit done"));
        let actions = store.operator_actions(10).await.unwrap();
        assert_eq!(actions[0].action, ActionKind::CancelWorkflow);
        assert_eq!(actions[0].workflow_id, Some(open.id));
        assert_eq!(
            store
                .cancel_workflow(open.id, "again", ActionSource::Ctl)
                .await
                .unwrap(),
            Err(CancelRefusal::Finished(WorkflowState::Cancelled))
        );
        // A step that was in flight when it was cancelled does not bring it back.
        let late = store
            .update_workflow(
                open.id,
                &WorkflowChange::to(WorkflowState::Executing).job("job-9"),
            )
            .await
            .unwrap();
        assert_eq!(late.state, WorkflowState::Cancelled);
        assert_eq!(late.job_id.as_deref(), Some("job-9"));
    }
}

fn workflow(account: &str, instance: &str) -> NewWorkflow {
    NewWorkflow {
        kind: FlowKind::Entry,
        scope: format!("strategy:7:{account}:{instance}"),
        signal_key: format!("entry/7/{account}"),
        signal_instance: instance.into(),
        strategy_id: 7,
        account: Some(account.into()),
        position_id: None,
        condition: None,
        state: WorkflowState::Requested,
        reason: None,
        attempt: 1,
        deadline: None,
    }
}

fn intent_of(workflow_id: i64, key: &str, operation: &str) -> NewIntent {
    NewIntent {
        key: key.into(),
        operation: operation.into(),
        workflow_id: Some(workflow_id.to_string()),
        args: serde_json::json!({ "IdempotencyKey": key }),
    }
}

on_both_backends! {
    async fn the_risk_rules_count_the_intents_of_an_account_since_an_instant(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let before = Timestamp::now();
        let a = store.create_workflow(&workflow("A", "1")).await.unwrap().expect("a");
        let b = store.create_workflow(&workflow("B", "1")).await.unwrap().expect("b");
        for (workflow, key, operation) in [
            (a.id, "a-prep", "PrepareEntry"),
            (a.id, "a-send", "SendOrder"),
            (a.id, "a-send-2", "SendOrder"),
            (b.id, "b-send", "SendOrder"),
        ] {
            store.record_intent(&intent_of(workflow, key, operation)).await.unwrap();
        }
        assert_eq!(store.account_intents_since("A", None, before).await.unwrap(), 3);
        assert_eq!(
            store.account_intents_since("A", Some("SendOrder"), before).await.unwrap(),
            2
        );
        assert_eq!(store.account_intents_since("B", None, before).await.unwrap(), 1);
        assert_eq!(store.account_intents_since("C", None, before).await.unwrap(), 0);
        let later = Timestamp::now();
        testkit::wait_for("the clock past the intents", Duration::from_secs(1), || async {
            Timestamp::now() > later
        })
        .await;
        assert_eq!(
            store.account_intents_since("A", None, Timestamp::now()).await.unwrap(),
            0
        );
    }
}

on_both_backends! {
    async fn the_orders_of_a_leg_group_are_found_by_plan_and_group(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let mut events = Vec::new();
        for (seq, order, group) in [(1, 31, Some(1)), (2, 32, Some(1)), (3, 33, Some(2)), (4, 34, None)] {
            let mut event = order_event(seq, order, 0);
            if let mesolive_supervisor::store::Effect::Order(update) = &mut event.effect {
                update.exec_plan_id = Some(900);
                update.leg_group_id = group;
            }
            events.push(event);
        }
        store.apply_events(&events).await.unwrap();
        let ids = |orders: Vec<mesolive_supervisor::store::OrderRecord>| {
            orders.iter().map(|o| o.order_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(store.orders_of_leg_group(900, 1).await.unwrap()), vec![31, 32]);
        assert_eq!(ids(store.orders_of_leg_group(900, 2).await.unwrap()), vec![33]);
        assert!(store.orders_of_leg_group(901, 1).await.unwrap().is_empty());
    }
}

/// A standby (a store that tried the lease and did not get it) changes no trading state, records
/// no action and cancels nothing; it reads what the leader wrote, and so does the next leader.
#[tokio::test]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn a_fenced_store_changes_no_operator_state_postgres() {
    let db = TestDb::new(Backend::Postgres);
    let leader = db.open().await;
    let standby = Store::connect(&db.location, &StoreOptions::default())
        .await
        .expect("second store");
    let request = |holder: &str| LeaseRequest {
        group: "default".into(),
        holder: holder.into(),
        ttl: Duration::from_secs(30),
    };
    leader
        .acquire_lease(&request("a"))
        .await
        .unwrap()
        .expect("free lease");
    assert!(
        standby
            .acquire_lease(&request("b"))
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        leader
            .trading_state_or_init(TradingState::Active)
            .await
            .unwrap(),
        TradingState::Active
    );
    leader
        .set_trading_state(TradingState::Halted, "broker outage", ActionSource::Ctl)
        .await
        .unwrap();
    let open = leader
        .create_workflow(&workflow("A", "1"))
        .await
        .unwrap()
        .expect("opened");

    let fenced = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::LeadershipLost { .. })),
            "{what}: {result:?}"
        );
    };
    fenced(
        standby
            .trading_state_or_init(TradingState::Active)
            .await
            .map(drop),
        "init",
    );
    fenced(
        standby
            .set_trading_state(TradingState::Active, "resume", ActionSource::Ctl)
            .await
            .map(drop),
        "set",
    );
    fenced(
        standby
            .risk_switch(
                "max_daily_loss",
                "A",
                "2026-01-02",
                TradingState::Halted,
                "loss",
            )
            .await
            .map(drop),
        "risk switch",
    );
    fenced(
        standby
            .record_operator_action(ActionKind::Reload, "applied: risk", ActionSource::Sighup)
            .await,
        "action",
    );
    fenced(
        standby
            .cancel_workflow(open.id, "by hand", ActionSource::Ctl)
            .await
            .map(drop),
        "cancel",
    );

    // Nothing of it landed; the standby reads the leader's state.
    assert_eq!(
        standby.trading_state().await.unwrap(),
        Some(TradingState::Halted)
    );
    let actions = standby.operator_actions(10).await.unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0].reason, "broker outage");
    assert_eq!(
        standby
            .workflow(open.id)
            .await
            .unwrap()
            .expect("workflow")
            .state,
        WorkflowState::Requested
    );
}
