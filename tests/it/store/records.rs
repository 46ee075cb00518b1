//! Typed records outside the event stream: intents, prepare jobs, orders, positions, and the
//! `state` summary and report.

use mesolive_api::FlowKind;
use mesolive_supervisor::store::report::{ReportFormat, render_json, render_table, state_report};
use mesolive_supervisor::store::{
    Effect, EventRecord, IntentState, JobStatus, NewIntent, PositionState, PositionUpdate,
    PrepareJobUpdate, Recorded, StoreError, Timestamp,
};
use serde_json::json;

use crate::support::store::{TestDb, on_both_backends, order_event};

fn send_order_intent(key: &str) -> NewIntent {
    NewIntent {
        key: key.into(),
        operation: "SendOrder".into(),
        workflow_id: Some("wf-1".into()),
        args: json!({ "ExecPlanId": 5, "LegGroupId": 1, "IdempotencyKey": key }),
    }
}

fn position(id: i64) -> PositionUpdate {
    PositionUpdate {
        position_id: id,
        strategy_id: 7,
        account: "U123".into(),
        name: format!("IC {id}"),
        state: PositionState::Open,
        status: "Open".into(),
        realized_pnl: None,
    }
}

fn entry_job(job_id: &str, intent_key: Option<&str>) -> PrepareJobUpdate {
    PrepareJobUpdate {
        job_id: job_id.into(),
        kind: FlowKind::Entry,
        intent_key: intent_key.map(Into::into),
        strategy_id: 7,
        position_id: None,
        account: Some("U123".into()),
        status: JobStatus::Pending,
        result: None,
        error: None,
    }
}

on_both_backends! {
    async fn recording_an_intent_twice_returns_the_stored_row(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        // New: committed as being sent, its first attempt counted, in one transaction.
        let Recorded::ToSend(first) = store
            .record_intent(&send_order_intent("send_order_5_1"))
            .await
            .unwrap()
        else {
            panic!("a new key is to be sent");
        };
        assert_eq!((first.state, first.attempts), (IntentState::Sent, 1));
        store.close().await.unwrap();

        // A restarted process derives the same key (with whatever args): it gets the stored row,
        // unchanged, to settle rather than send.
        let store = db.open().await;
        let mut retry = send_order_intent("send_order_5_1");
        retry.args = json!({ "different": true });
        let Recorded::Existing(again) = store.record_intent(&retry).await.unwrap() else {
            panic!("a key sent before is not sent again");
        };
        assert_eq!(again, first);
    }
}

on_both_backends! {
    async fn intents_move_through_their_states_and_final_ones_stay_final(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let Recorded::ToSend(sent) = store.record_intent(&send_order_intent("k1")).await.unwrap()
        else {
            panic!("a new key is to be sent");
        };
        assert_eq!((sent.state, sent.attempts), (IntentState::Sent, 1));
        let unknown = store
            .settle_intent("k1", IntentState::Unknown, None)
            .await
            .unwrap();
        assert_eq!(unknown.state, IntentState::Unknown);
        let resent = store.mark_intent_sent("k1").await.unwrap();
        assert_eq!((resent.state, resent.attempts), (IntentState::Sent, 2));
        let outcome = json!({ "LiveOrderIds": [11, 12] });
        let done = store
            .settle_intent("k1", IntentState::Completed, Some(&outcome))
            .await
            .unwrap();
        assert_eq!(done.state, IntentState::Completed);
        assert_eq!(done.outcome, Some(outcome));

        match store.mark_intent_sent("k1").await {
            Err(StoreError::IntentTransition { from, to, .. }) => {
                assert_eq!((from, to), (IntentState::Completed, IntentState::Sent));
            }
            other => panic!("a completed intent must not be sent again: {other:?}"),
        }
        assert!(matches!(
            store.settle_intent("k1", IntentState::Failed, None).await,
            Err(StoreError::IntentTransition { .. })
        ));
        assert!(matches!(
            store.settle_intent("k1", IntentState::Pending, None).await,
            Err(StoreError::IntentTransition { .. })
        ));
        assert!(matches!(
            store.mark_intent_sent("nope").await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.intent("k1").await.unwrap().unwrap().attempts, 2);
    }
}

on_both_backends! {
    async fn shutdown_abandons_sent_intents_only(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        for key in ["sent", "resent", "unknown", "done"] {
            store.record_intent(&send_order_intent(key)).await.unwrap();
        }
        store.mark_intent_sent("resent").await.unwrap();
        store
            .settle_intent("unknown", IntentState::Unknown, None)
            .await
            .unwrap();
        store
            .settle_intent("done", IntentState::Failed, Some(&json!("rejected")))
            .await
            .unwrap();

        assert_eq!(store.abandon_in_flight_intents().await.unwrap(), 2);
        let state_of = |key: &'static str| {
            let store = &store;
            async move { store.intent(key).await.unwrap().unwrap().state }
        };
        assert_eq!(state_of("sent").await, IntentState::Abandoned);
        assert_eq!(state_of("resent").await, IntentState::Abandoned);
        assert_eq!(state_of("unknown").await, IntentState::Unknown);
        assert_eq!(state_of("done").await, IntentState::Failed);

        let in_flight: Vec<_> = store
            .intents_in_flight()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(in_flight.len(), 3);
        assert!(!in_flight.contains(&"done".to_owned()));
        let abandoned = store
            .intents_in_states(&[IntentState::Abandoned])
            .await
            .unwrap();
        assert_eq!(abandoned.len(), 2);
    }
}

on_both_backends! {
    async fn prepare_jobs_track_status_and_a_final_status_is_kept(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .record_intent(&send_order_intent("prep_entry_1"))
            .await
            .unwrap();
        store
            .upsert_prepare_job(&entry_job("job-1", Some("prep_entry_1")))
            .await
            .unwrap();
        store
            .upsert_prepare_job(&entry_job("job-2", None))
            .await
            .unwrap();
        assert_eq!(store.prepare_jobs_in_flight().await.unwrap().len(), 2);

        let result = json!({ "ExecPlanId": 77, "EntryAllowed": true });
        let done = store
            .set_prepare_job_status("job-1", JobStatus::Completed, Some(&result), None)
            .await
            .unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.result, Some(result.clone()));
        assert_eq!(done.intent_key.as_deref(), Some("prep_entry_1"));

        // A late poll saying "running" does not un-finish it.
        let late = store
            .set_prepare_job_status("job-1", JobStatus::Running, None, None)
            .await
            .unwrap();
        assert_eq!(late.status, JobStatus::Completed);
        assert_eq!(late.result, Some(result));

        let failed = store
            .set_prepare_job_status("job-2", JobStatus::Failed, None, Some("no quotes"))
            .await
            .unwrap();
        assert_eq!(failed.error.as_deref(), Some("no quotes"));
        assert!(store.prepare_jobs_in_flight().await.unwrap().is_empty());
        assert!(matches!(
            store
                .set_prepare_job_status("job-9", JobStatus::Failed, None, None)
                .await,
            Err(StoreError::NotFound { .. })
        ));
    }
}

on_both_backends! {
    async fn orders_link_to_their_intent_whichever_arrives_first(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .record_intent(&send_order_intent("send_order_5_1"))
            .await
            .unwrap();

        // The SendOrder response first, the order update event after.
        store
            .link_order_to_intent(11, "send_order_5_1", 7)
            .await
            .unwrap();
        assert_eq!(store.order(11).await.unwrap().unwrap().state, None);
        store.apply_events(&[order_event(1, 11, 2)]).await.unwrap();
        // The event first, the link after.
        store.apply_events(&[order_event(2, 12, 0)]).await.unwrap();
        store
            .link_order_to_intent(12, "send_order_5_1", 7)
            .await
            .unwrap();

        let orders = store.orders_for_intent("send_order_5_1").await.unwrap();
        assert_eq!(
            orders.iter().map(|o| o.order_id).collect::<Vec<_>>(),
            vec![11, 12]
        );
        assert_eq!(orders[0].state.as_deref(), Some("Working"));
        assert_eq!(orders[0].filled_qty, Some(rust_decimal::Decimal::from(2)));
        assert_eq!(orders[1].intent_key.as_deref(), Some("send_order_5_1"));
    }
}

on_both_backends! {
    async fn positions_keep_snapshots_and_close(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store.upsert_positions(&[position(1)]).await.unwrap();
        store.upsert_positions(&[position(2)]).await.unwrap();
        let taken_at = Timestamp::now();
        let snapshot = json!({ "PnL": { "Unrealized": "12.50" } });
        store
            .set_position_snapshot(1, &snapshot, taken_at)
            .await
            .unwrap();
        let stored = store.position(1).await.unwrap().unwrap();
        assert_eq!(stored.last_snapshot, Some(snapshot));
        assert_eq!(stored.snapshot_at, Some(taken_at));

        store.mark_position_closed(2).await.unwrap();
        let open_ids: Vec<_> = store
            .open_positions()
            .await
            .unwrap()
            .iter()
            .map(|p| p.position_id)
            .collect();
        assert_eq!(open_ids, vec![1]);
        assert_eq!(store.monitored_positions().await.unwrap().len(), 1);
        assert!(matches!(
            store.mark_position_closed(3).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.set_position_snapshot(3, &json!({}), taken_at).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}

on_both_backends! {
    async fn the_state_report_shows_cursor_counts_and_what_is_in_flight(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store.apply_events(&[order_event(41, 1, 1)]).await.unwrap();
        store
            .apply_events(&[EventRecord {
                key: "evt-42".into(),
                seq_id: Some(42),
                target: "OnOrderUpdate".into(),
                effect: Effect::Quarantine {
                    raw: "{oops".into(),
                    error: "expected value at line 1".into(),
                },
            }])
            .await
            .unwrap();
        store
            .record_intent(&send_order_intent("send_order_5_1"))
            .await
            .unwrap();
        store
            .upsert_prepare_job(&entry_job("job-1", Some("send_order_5_1")))
            .await
            .unwrap();
        store.upsert_positions(&[position(9)]).await.unwrap();

        let summary = store.summary().await.unwrap();
        assert_eq!(summary.cursor, Some(42));
        assert_eq!(summary.intents_in_flight.len(), 1);
        assert_eq!(summary.prepare_jobs_in_flight.len(), 1);
        assert_eq!(summary.monitored_positions.len(), 1);
        assert_eq!(summary.quarantined_events.len(), 1);
        let count = |table: &str, state: Option<&str>| {
            summary
                .counts
                .iter()
                .find(|c| c.table == table && c.state.as_deref() == state)
                .map(|c| c.count)
        };
        assert_eq!(count("processed_events", None), Some(2));
        assert_eq!(count("applied_events", Some("OnOrderUpdate")), Some(2));
        assert_eq!(count("intents", Some("sent")), Some(1));
        assert_eq!(count("quarantined_events", None), Some(1));

        let table = render_table(&summary);
        assert!(table.contains("event cursor   42 (moved "), "{table}");
        assert!(
            table.contains("trading state  none (never started)"),
            "{table}"
        );
        assert!(
            table.contains("send_order_5_1  SendOrder  sent"),
            "{table}"
        );
        assert!(table.contains("Quarantined events (newest) (1)"), "{table}");
        assert!(table.contains("expected value at line 1"), "{table}");
        let header = table
            .lines()
            .find(|l| l.trim_start().starts_with("TABLE"))
            .expect("counts header");
        let row = table
            .lines()
            .find(|l| l.trim_start().starts_with("processed_events"))
            .expect("counts row");
        assert_eq!(
            header.find("COUNT"),
            row.rfind('2'),
            "columns are aligned:\n{table}"
        );

        let parsed: serde_json::Value = serde_json::from_str(&render_json(&summary)).unwrap();
        assert_eq!(parsed["cursor"], 42);
        assert_eq!(parsed["intents_in_flight"][0]["key"], "send_order_5_1");
        assert_eq!(parsed["intents_in_flight"][0]["state"], "sent");
        assert_eq!(parsed["monitored_positions"][0]["state"], "open");
        assert!(parsed["cursor_updated_at"].as_str().unwrap().ends_with('Z'));

        // The subcommand's entry point reads the same through a read-only view of a running store.
        let json = state_report(&db.location, ReportFormat::Json).await.unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["cursor"],
            42
        );
        let text = state_report(&db.location, ReportFormat::Table).await.unwrap();
        assert!(text.contains("Monitored positions (1)"), "{text}");
    }
}

on_both_backends! {
    async fn the_store_is_shared_across_spawned_tasks(backend: Backend) {
        let db = TestDb::new(backend);
        let store = std::sync::Arc::new(db.open().await);
        let tasks: Vec<_> = (0..4)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = format!("intent-{task}");
                    store.record_intent(&send_order_intent(&key)).await.unwrap();
                    store
                        .apply_events(&[order_event(task + 1, task, task)])
                        .await
                        .unwrap();
                    store.summary().await.unwrap()
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.intents_in_flight().await.unwrap().len(), 4);
        assert_eq!(store.cursor().await.unwrap(), Some(4));
    }
}
