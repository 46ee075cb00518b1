//! The resync after a hole in the server's history, committed as one operation: positions,
//! legs and orders as the Control Hub gave them, signals the hole may have turned Off set Off
//! until the server asserts them again, the cursor past the hole, and the hole's record.

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{
    Effect, EventRecord, GapForm, GapResolution, HistoryGap, LegUpdate, NewWorkflow, OrderUpdate,
    PositionState, PositionUpdate, RecordOutcome, Resync, SignalSource, SignalState, SignalUpdate,
    Store, WorkflowState,
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::support::store::{TestDb, on_both_backends, order_event};

fn position(id: i64) -> PositionUpdate {
    PositionUpdate {
        position_id: id,
        strategy_id: 101,
        account: "PAPER-1".into(),
        name: format!("p{id}"),
        state: PositionState::Open,
        status: "Open".into(),
        realized_pnl: None,
    }
}

/// An exit-signal event for `position` in sequence (`seq`) or re-asserted (`None`).
fn exit_signal(key: &str, position: i64, seq: Option<i64>, state: SignalState) -> EventRecord {
    EventRecord {
        key: key.into(),
        seq_id: seq,
        target: "OnExitSignal".into(),
        effect: Effect::Signal(SignalUpdate {
            kind: FlowKind::Exit,
            state,
            strategy_id: 101,
            position_id: Some(position),
            account: Some("PAPER-1".into()),
            condition: None,
            payload: json!({"State": state.as_str()}),
            source: SignalSource {
                seq_id: Some(seq.unwrap_or(10)),
                time: None,
                reasserted: seq.is_none(),
            },
        }),
    }
}

fn workflow(position: i64, instance: &str) -> NewWorkflow {
    NewWorkflow {
        kind: FlowKind::Exit,
        scope: format!("position:{position}"),
        signal_key: format!("exit/101/PAPER-1/{position}"),
        signal_instance: instance.into(),
        strategy_id: 101,
        account: Some("PAPER-1".into()),
        position_id: Some(position),
        condition: None,
        state: WorkflowState::Requested,
        reason: None,
        attempt: 1,
        deadline: None,
    }
}

async fn signal_state(store: &Store, position: i64) -> SignalState {
    let key = format!("exit/101/PAPER-1/{position}");
    store.signal(&key).await.unwrap().expect("stored").state
}

on_both_backends! {
    async fn a_resync_replaces_what_the_hole_hid_in_one_operation(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .upsert_positions(&[position(1), position(2)])
            .await
            .unwrap();
        store
            .apply_events(&[
                order_event(10, 5, 0),
                // Position 1's exit signal: On, its workflow finished.
                exit_signal("on-1", 1, Some(11), SignalState::On),
                // Position 2's exit signal: On, its workflow still running.
                exit_signal("on-2", 2, Some(12), SignalState::On),
            ])
            .await
            .unwrap();
        let finished = store.create_workflow(&workflow(1, "on-1")).await.unwrap();
        let finished = finished.expect("opened");
        store
            .update_workflow(
                finished.id,
                &mesolive_supervisor::store::WorkflowChange::to(WorkflowState::Done),
            )
            .await
            .unwrap();
        store.create_workflow(&workflow(2, "on-2")).await.unwrap();

        let gap = HistoryGap {
            from: 13,
            to: 5_012,
            form: GapForm::Page,
        };
        let resync = Resync {
            open_positions: vec![position(2), position(3)],
            closed_positions: vec![1],
            legs: vec![LegUpdate {
                leg_id: 30,
                position_id: 3,
                name: "ShortPut".into(),
                status: "Open".into(),
                qty: Some(Decimal::from(-1)),
            }],
            orders: vec![OrderUpdate {
                order_id: 5,
                strategy_id: 7,
                account: Some("U123".into()),
                exec_plan_id: Some(905),
                leg_group_id: None,
                state: "Filled".into(),
                filled_qty: Some(Decimal::from(1)),
                avg_fill_price: None,
            }],
        };
        let summary = store.resync_after_history_gap(&gap, &resync).await.unwrap();
        assert_eq!(summary.cursor, 5_012);
        assert_eq!(summary.closed_positions, vec![1]);
        assert_eq!(summary.signals_unconfirmed, vec!["exit/101/PAPER-1/1"]);

        assert_eq!(store.cursor().await.unwrap(), Some(5_012));
        let open: Vec<i64> = store
            .open_positions()
            .await
            .unwrap()
            .iter()
            .map(|p| p.position_id)
            .collect();
        assert_eq!(open, vec![2, 3]);
        assert_eq!(store.legs(3).await.unwrap().len(), 1);
        let order = store.order(5).await.unwrap().expect("order");
        assert_eq!(order.state.as_deref(), Some("Filled"));
        // The signal no running workflow acts on is Off until asserted again; the other stays On.
        assert_eq!(signal_state(&store, 1).await, SignalState::Off);
        assert_eq!(signal_state(&store, 2).await, SignalState::On);

        let gaps = store.history_gaps().await.unwrap();
        assert_eq!(gaps.len(), 1);
        let recorded = &gaps[0];
        assert_eq!(
            (recorded.from, recorded.to, recorded.events),
            (13, 5_012, 5_000)
        );
        assert_eq!(
            (recorded.form, recorded.resolution),
            (GapForm::Page, GapResolution::Resynced)
        );
        assert_eq!(recorded.detail.as_ref(), Some(&summary));

        // The server still asserts position 1's signal: its On, pushed again, is applied again —
        // to the same instance, which already had its workflow.
        let pushed = store
            .apply_events(&[exit_signal("on-1", 1, None, SignalState::On)])
            .await
            .unwrap();
        assert_eq!(pushed.outcomes, vec![RecordOutcome::Applied]);
        assert_eq!(signal_state(&store, 1).await, SignalState::On);
        let signal = store.signal("exit/101/PAPER-1/1").await.unwrap().unwrap();
        assert_eq!(signal.instance, "on-1");
        assert!(
            store
                .create_workflow(&workflow(1, "on-1"))
                .await
                .unwrap()
                .is_none(),
            "one workflow per signal instance"
        );
    }
}

on_both_backends! {
    async fn a_hole_the_daemon_stops_on_is_recorded_and_nothing_else_changes(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store.apply_events(&[order_event(4, 5, 0)]).await.unwrap();
        let gap = HistoryGap {
            from: 5,
            to: 5_004,
            form: GapForm::Refused,
        };
        store.record_history_gap_stop(&gap).await.unwrap();
        assert_eq!(store.cursor().await.unwrap(), Some(4));
        let gaps = store.history_gaps().await.unwrap();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].resolution, GapResolution::Stopped);
        assert_eq!(gaps[0].detail, None);
        let summary = store.summary().await.unwrap();
        assert_eq!(summary.history_gaps, gaps);
    }
}
