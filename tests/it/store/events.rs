//! The event transaction: exactly-once effects, a cursor that only moves forward, atomic
//! batches, and the dedupe window.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{
    Effect, EventRecord, JobStatus, LegUpdate, PositionState, PositionUpdate, PrepareJobUpdate,
    RecordOutcome, SignalState, StoreError, StoreOptions, Synchronous,
};
use rust_decimal::Decimal;
use sqlx::Connection;

use RecordOutcome::{AlreadyProcessed, Applied, BelowCursor};

use crate::support::store::{
    TestDb, dump, on_both_backends, open, order_event, raw, scalar, signal_push, temp_db,
};

async fn applied_total(store: &mesolive_supervisor::store::Store) -> i64 {
    store
        .applied_event_counts()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum()
}

on_both_backends! {
    async fn a_duplicate_event_id_is_skipped_within_a_batch_across_batches_and_reopens(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let first = store
            .apply_events(&[order_event(1, 10, 1), order_event(1, 10, 1)])
            .await
            .unwrap();
        assert_eq!(first.outcomes, vec![Applied, BelowCursor]);

        // Same EventId again without a sequence id (an on-connect push): the key dedupes it.
        let mut push = order_event(1, 10, 99);
        push.seq_id = None;
        let second = store.apply_events(&[push.clone()]).await.unwrap();
        assert_eq!(second.outcomes, vec![AlreadyProcessed]);
        store.close().await.unwrap();

        let store = db.open().await;
        let third = store.apply_events(&[push]).await.unwrap();
        assert_eq!(third.outcomes, vec![AlreadyProcessed]);
        let order = store.order(10).await.unwrap().unwrap();
        assert_eq!(
            order.filled_qty,
            Some(Decimal::from(1)),
            "the effect applied once"
        );
        assert_eq!(applied_total(&store).await, 1);
    }
}

on_both_backends! {
    async fn every_key_of_a_window_larger_than_one_load_chunk_is_known_after_a_reopen(backend: Backend) {
        // The dedupe index loads 50,000 keys per statement: one more spans two chunks.
        let db = TestDb::new(backend);
        let unsynced = StoreOptions {
            synchronous: Synchronous::Off,
            ..StoreOptions::default()
        };
        let store = db.open_with(&unsynced).await;
        let pushes: Vec<_> = (0..50_001)
            .map(|n| signal_push(&format!("push-{n}"), SignalState::On))
            .collect();
        for batch in pushes.chunks(1_000) {
            store.apply_events(batch).await.unwrap();
        }
        store.close().await.unwrap();

        let store = db.open().await;
        let batch = [
            pushes[0].clone(),
            pushes[49_999].clone(),
            pushes[50_000].clone(),
            signal_push("push-new", SignalState::On),
        ];
        let outcome = store.apply_events(&batch).await.unwrap();
        assert_eq!(
            outcome.outcomes,
            vec![
                AlreadyProcessed,
                AlreadyProcessed,
                AlreadyProcessed,
                Applied
            ]
        );
    }
}

on_both_backends! {
    async fn the_first_of_two_records_with_one_key_in_a_batch_wins(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let outcome = store
            .apply_events(&[
                signal_push("same", SignalState::On),
                signal_push("same", SignalState::Off),
            ])
            .await
            .unwrap();
        assert_eq!(outcome.outcomes, vec![Applied, AlreadyProcessed]);
        assert_eq!(outcome.cursor, None);
        let signals = store.signals().await.unwrap();
        assert_eq!(signals[0].state, SignalState::On);
    }
}

on_both_backends! {
    async fn the_cursor_only_moves_forward_and_only_for_events_with_a_sequence_id(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let outcome = store
            .apply_events(&[
                order_event(5, 1, 5),
                signal_push("push-a", SignalState::On),
                order_event(3, 2, 3),
                order_event(8, 3, 8),
                order_event(7, 4, 7),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcome.outcomes,
            vec![Applied, Applied, BelowCursor, Applied, BelowCursor]
        );
        assert_eq!(outcome.cursor, Some(8));

        let pushes = store
            .apply_events(&[signal_push("push-b", SignalState::Off)])
            .await
            .unwrap();
        assert_eq!(pushes.outcomes, vec![Applied]);
        assert_eq!(
            pushes.cursor,
            Some(8),
            "an event without a sequence id never moves it"
        );

        let stale = store.apply_events(&[order_event(2, 9, 2)]).await.unwrap();
        assert_eq!(stale.outcomes, vec![BelowCursor]);
        assert_eq!(store.cursor().await.unwrap(), Some(8));
        assert_eq!(
            store.order(9).await.unwrap(),
            None,
            "a skipped event has no effect"
        );
        assert_eq!(applied_total(&store).await, 4);
    }
}

on_both_backends! {
    async fn init_cursor_starts_a_first_run_at_the_latest_and_never_moves_an_existing_cursor(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        assert_eq!(store.init_cursor(100).await.unwrap(), 100);
        assert_eq!(store.init_cursor(50).await.unwrap(), 100, "never backwards");
        assert_eq!(
            store.init_cursor(500).await.unwrap(),
            100,
            "a no-op once set"
        );
        let outcome = store
            .apply_events(&[order_event(100, 1, 1), order_event(101, 1, 2)])
            .await
            .unwrap();
        assert_eq!(outcome.outcomes, vec![BelowCursor, Applied]);
        assert_eq!(outcome.cursor, Some(101));
    }
}

#[tokio::test]
async fn an_injected_failure_mid_batch_leaves_everything_exactly_as_before() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    store
        .apply_events(&[order_event(1, 1, 1), signal_push("push-0", SignalState::On)])
        .await
        .unwrap();
    let before = dump(&path).await;

    let mut conn = raw(&path).await;
    sqlx::query(
        "CREATE TRIGGER inject_failure BEFORE INSERT ON orders WHEN NEW.order_id = 666
         BEGIN SELECT RAISE(ABORT, 'injected'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let batch = vec![
        order_event(2, 1, 2),
        signal_push("push-1", SignalState::Off),
        order_event(3, 2, 3),
        order_event(4, 666, 4),
        order_event(5, 3, 5),
    ];
    let error = store.apply_events(&batch).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Database(_)) && error.to_string().contains("injected"),
        "{error:?}"
    );
    assert_eq!(
        dump(&path).await,
        before,
        "cursor, dedupe set, stats and effects unchanged"
    );

    // The store is still usable, and the same batch applies once the fault is gone.
    sqlx::query("DROP TRIGGER inject_failure")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let outcome = store.apply_events(&batch).await.unwrap();
    assert_eq!(outcome.applied_count(), 5);
    assert_eq!(outcome.cursor, Some(5));
    assert_eq!(applied_total(&store).await, 7);
}

#[tokio::test]
async fn pruning_drops_old_dedupe_keys_and_keeps_the_window() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    let batch: Vec<_> = (1..=10).map(|seq| order_event(seq, seq, seq)).collect();
    store.apply_events(&batch).await.unwrap();

    // Age the first six keys by two hours (fixture injection: the store has no clock to fake).
    let mut conn = raw(&path).await;
    sqlx::query(
        "UPDATE processed_events SET processed_at = processed_at - 7200000
         WHERE seq_id <= 6",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let hour = Duration::from_secs(3600);
    assert_eq!(
        store.prune_processed_events(hour, 4).await.unwrap(),
        4,
        "at most the limit per call"
    );
    assert_eq!(store.prune_processed_events(hour, 4).await.unwrap(), 2);
    let kept: Vec<i64> = sqlx::query_scalar("SELECT seq_id FROM processed_events ORDER BY seq_id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, vec![7, 8, 9, 10]);
    assert_eq!(
        store.prune_processed_events(hour, 100).await.unwrap(),
        0,
        "young keys stay, however many there are"
    );
    // A pruned event that is replayed is still skipped: its sequence id is below the cursor.
    let replay = store.apply_events(&[order_event(3, 3, 3)]).await.unwrap();
    assert_eq!(replay.outcomes, vec![BelowCursor]);
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM processed_events").await,
        4
    );
}

#[tokio::test]
async fn a_pruned_key_without_a_sequence_id_is_new_again_and_a_kept_one_is_not() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    let pushes = [
        signal_push("push-old", SignalState::On),
        signal_push("push-young", SignalState::On),
    ];
    store.apply_events(&pushes).await.unwrap();
    let mut conn = raw(&path).await;
    sqlx::query(
        "UPDATE processed_events SET processed_at = processed_at - 7200000
         WHERE event_key = 'push-old'",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let hour = Duration::from_secs(3600);
    assert_eq!(store.prune_processed_events(hour, 10).await.unwrap(), 1);
    let again = store.apply_events(&pushes).await.unwrap();
    assert_eq!(again.outcomes, vec![Applied, AlreadyProcessed]);
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM processed_events").await,
        2
    );
}

on_both_backends! {
    async fn effects_upsert_positions_legs_jobs_signals_and_quarantine(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let position = |status: &str, state, pnl: Option<i64>| PositionUpdate {
            position_id: 42,
            strategy_id: 7,
            account: "U123".into(),
            name: "IC 42".into(),
            state,
            status: status.into(),
            realized_pnl: pnl.map(Decimal::from),
        };
        let event = |seq: i64, target: &str, effect| EventRecord {
            key: format!("evt-{seq}"),
            seq_id: Some(seq),
            target: target.into(),
            effect,
        };
        store
            .apply_events(&[
                event(
                    1,
                    "OnPositionUpdate",
                    Effect::Position(position("Created", PositionState::Open, None)),
                ),
                event(
                    2,
                    "OnLegUpdate",
                    Effect::Leg(LegUpdate {
                        leg_id: 420,
                        position_id: 42,
                        name: "short put".into(),
                        status: "Created".into(),
                        qty: Some(Decimal::from(-1)),
                    }),
                ),
                event(
                    3,
                    "OnPositionEntryPreparationCompleted",
                    Effect::Job(PrepareJobUpdate {
                        job_id: "job-1".into(),
                        kind: FlowKind::Entry,
                        intent_key: None,
                        strategy_id: 7,
                        position_id: None,
                        account: None,
                        status: JobStatus::Completed,
                        result: Some(serde_json::json!({ "ExecPlanId": 5 })),
                        error: None,
                    }),
                ),
                event(
                    4,
                    "OnOrderUpdate",
                    Effect::Quarantine {
                        raw: "{\"OrderId\": \"not a number\"}".into(),
                        error: "invalid type: string".into(),
                    },
                ),
                event(5, "OnAgentStatus", Effect::None),
            ])
            .await
            .unwrap();
        assert_eq!(store.monitored_positions().await.unwrap().len(), 1);
        assert_eq!(
            store.legs(42).await.unwrap()[0].qty,
            Some(Decimal::from(-1))
        );
        let job = store.prepare_job("job-1").await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.result, Some(serde_json::json!({ "ExecPlanId": 5 })));
        let quarantined = store.quarantined_events(10).await.unwrap();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].seq_id, Some(4));
        assert_eq!(quarantined[0].raw, "{\"OrderId\": \"not a number\"}");

        // Closed is final: a late PnL correction updates the PnL but does not reopen it.
        store
            .apply_events(&[
                event(
                    6,
                    "OnPositionUpdate",
                    Effect::Position(position("Closed", PositionState::Closed, Some(150))),
                ),
                event(
                    7,
                    "OnPositionUpdate",
                    Effect::Position(position(
                        "RealizedPnLChanged",
                        PositionState::Open,
                        Some(155),
                    )),
                ),
            ])
            .await
            .unwrap();
        let closed = store.position(42).await.unwrap().unwrap();
        assert_eq!(closed.state, PositionState::Closed);
        assert!(!closed.monitored);
        assert_eq!(closed.realized_pnl, Some(Decimal::from(155)));
        assert_eq!(closed.last_status.as_deref(), Some("RealizedPnLChanged"));
        assert!(store.monitored_positions().await.unwrap().is_empty());

        // Signals keep their latest state per key.
        store
            .apply_events(&[
                signal_push("p1", SignalState::On),
                signal_push("p2", SignalState::Off),
            ])
            .await
            .unwrap();
        let signals = store.signals().await.unwrap();
        assert_eq!(signals.len(), 1);
        assert_eq!(signals[0].state, SignalState::Off);
        assert_eq!(signals[0].signal_key, "entry/7/U123/-");
        assert_eq!(
            signals[0].payload,
            serde_json::json!({ "State": "Off", "StrategyId": 7 }),
            "the payload is stored as JSON text and reads back unchanged"
        );
        assert_eq!(
            store
                .signal("entry/7/U123/-")
                .await
                .unwrap()
                .map(|s| s.state),
            Some(SignalState::Off)
        );
        assert_eq!(applied_total(&store).await, 9);
    }
}

#[tokio::test]
async fn a_commit_that_failed_on_a_full_disk_leaves_the_store_usable_once_space_is_back() {
    let dir = testkit::temp_dir();
    let Some(fs) = crate::support::fs::Tmpfs::mount(&dir.path().join("fs"), "4m") else {
        panic!("this test needs a tmpfs it can fill: run it as root with mount(8)");
    };
    let path = fs.path.join("state.db");
    let store = open(&path).await;
    store.apply_events(&[order_event(1, 1, 1)]).await.unwrap();
    let filler = fs.fill();
    let batch: Vec<EventRecord> = (2..2_000).map(|seq| order_event(seq, seq, 1)).collect();
    let error = store
        .apply_events(&batch)
        .await
        .expect_err("no room for the batch");
    assert!(
        ["full", "io"].contains(&error.kind()),
        "{error} ({})",
        error.kind()
    );
    assert_eq!(store.cursor().await.unwrap(), Some(1), "nothing committed");

    std::fs::remove_file(filler).unwrap();
    // The failed COMMIT left sqlx's writer marked inside a transaction; the store replaces it.
    let outcome = store.apply_events(&batch).await.unwrap();
    assert_eq!(outcome.applied_count(), batch.len());
    assert_eq!(store.cursor().await.unwrap(), Some(1_999));
    store.close().await.unwrap();
}
