//! A re-asserted signal state (an on-connect push, an event at or below the cursor) replaces
//! the stored state only when it is newer: by EventSeqId when both carry one, else by
//! EventTime; an update in sequence always replaces it. Real SQLite files in temp dirs.

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{
    Effect, EventRecord, SignalRecord, SignalSource, SignalState, SignalUpdate, Store, Timestamp,
};
use serde_json::json;

use crate::support::store::{TestDb, on_both_backends};

const KEY: &str = "exit/101/PAPER-1/1001";

/// An exit-signal event for position 1001 with the given key, state and origin.
fn exit(event: &str, state: SignalState, source: SignalSource) -> EventRecord {
    EventRecord {
        key: event.into(),
        seq_id: source.seq_id.filter(|_| !source.reasserted),
        target: "OnExitSignal".into(),
        effect: Effect::Signal(SignalUpdate {
            kind: FlowKind::Exit,
            state,
            strategy_id: 101,
            position_id: Some(1001),
            account: Some("PAPER-1".into()),
            condition: None,
            payload: json!({"State": state.as_str()}),
            source,
        }),
    }
}

fn at(seq: Option<i64>, millis: Option<i64>, reasserted: bool) -> SignalSource {
    SignalSource {
        seq_id: seq,
        time: millis.map(|m| Timestamp::from(chrono::DateTime::from_timestamp_millis(m).unwrap())),
        reasserted,
    }
}

async fn stored(store: &Store) -> SignalRecord {
    store
        .signal(KEY)
        .await
        .unwrap()
        .expect("the signal is stored")
}

on_both_backends! {
    async fn an_older_reassertion_changes_nothing_a_newer_one_wins(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .apply_events(&[exit(
                "off-50",
                SignalState::Off,
                at(Some(50), Some(5_000), false),
            )])
            .await
            .unwrap();

        // The On of seq 40, pushed again: older than the stored Off by EventSeqId.
        let outcome = store
            .apply_events(&[exit(
                "on-40",
                SignalState::On,
                at(Some(40), Some(9_000), true),
            )])
            .await
            .unwrap();
        assert_eq!(outcome.applied_count(), 1, "recorded in the dedupe set");
        assert_eq!(
            outcome.cursor,
            Some(50),
            "a re-assertion never moves the cursor"
        );
        assert_eq!(stored(&store).await.state, SignalState::Off);

        // Pushed without its EventSeqId: older by EventTime.
        store
            .apply_events(&[exit(
                "on-bare-old",
                SignalState::On,
                at(None, Some(4_000), true),
            )])
            .await
            .unwrap();
        assert_eq!(stored(&store).await.state, SignalState::Off);

        // A newer On, re-asserted: wins, and starts a new instance named after it.
        store
            .apply_events(&[exit(
                "on-60",
                SignalState::On,
                at(Some(60), Some(6_000), true),
            )])
            .await
            .unwrap();
        let signal = stored(&store).await;
        assert_eq!(
            (signal.state, signal.instance.as_str()),
            (SignalState::On, "on-60")
        );
    }
}

on_both_backends! {
    async fn an_update_in_sequence_always_wins_and_an_unknown_age_is_replaced(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        // A push whose age cannot be told (no EventSeqId, no EventTime) over nothing: stored.
        store
            .apply_events(&[exit("on-bare", SignalState::On, at(None, None, true))])
            .await
            .unwrap();
        assert_eq!(stored(&store).await.state, SignalState::On);
        // In sequence, even with an earlier EventTime: an event in sequence is newer by definition.
        store
            .apply_events(&[exit("off-7", SignalState::Off, at(Some(7), Some(1), false))])
            .await
            .unwrap();
        assert_eq!(stored(&store).await.state, SignalState::Off);
        // A re-assertion without anything to compare with the stored one (no time): it wins.
        store
            .apply_events(&[exit("on-bare-2", SignalState::On, at(None, None, true))])
            .await
            .unwrap();
        assert_eq!(stored(&store).await.state, SignalState::On);
    }
}

on_both_backends! {
    async fn in_one_batch_a_reassertion_never_overrides_a_newer_update_in_sequence(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .apply_events(&[
                exit("off-90", SignalState::Off, at(Some(90), Some(9_000), false)),
                exit("on-40", SignalState::On, at(Some(40), Some(4_000), true)),
            ])
            .await
            .unwrap();
        assert_eq!(stored(&store).await.state, SignalState::Off);
    }
}
