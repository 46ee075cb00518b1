//! Property test: any sequence of batches (overlapping sequence ids, repeated keys, events
//! without sequence ids) gives the same outcomes, cursor and effects as a tiny in-memory model
//! of the exactly-once rules.

use std::collections::{HashMap, HashSet};

use mesolive_supervisor::store::{EventRecord, RecordOutcome};
use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::support::store::{Backend, TestDb, order_event};

/// What the store must do, written as plainly as possible.
#[derive(Default)]
struct Model {
    cursor: Option<i64>,
    seen: HashSet<String>,
    filled: HashMap<i64, i64>,
    applied: usize,
}

impl Model {
    fn apply(&mut self, batch: &[(EventRecord, i64, i64)]) -> Vec<RecordOutcome> {
        batch
            .iter()
            .map(|(record, order_id, filled)| {
                if let (Some(seq), Some(cursor)) = (record.seq_id, self.cursor)
                    && seq <= cursor
                {
                    return RecordOutcome::BelowCursor;
                }
                let outcome = if self.seen.insert(record.key.clone()) {
                    self.filled.insert(*order_id, *filled);
                    self.applied += 1;
                    RecordOutcome::Applied
                } else {
                    RecordOutcome::AlreadyProcessed
                };
                if let Some(seq) = record.seq_id {
                    self.cursor = Some(self.cursor.map_or(seq, |c| c.max(seq)));
                }
                outcome
            })
            .collect()
    }
}

/// (key number, optional sequence id, order id) per record; batches of 0..8 records.
fn batches() -> impl Strategy<Value = Vec<Vec<(u8, Option<i64>, i64)>>> {
    let record = (0u8..12, proptest::option::weighted(0.8, 1i64..30), 0i64..4);
    proptest::collection::vec(proptest::collection::vec(record, 0..8), 1..6)
}

/// One case: the batches applied to a fresh store on `backend` and to the model agree.
fn store_matches_model(backend: Backend, batches: Vec<Vec<(u8, Option<i64>, i64)>>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let mut model = Model::default();
        let mut unique = 0;
        for spec in batches {
            let batch: Vec<(EventRecord, i64, i64)> = spec
                .into_iter()
                .map(|(key, seq, order_id)| {
                    unique += 1;
                    let mut record = order_event(0, order_id, unique);
                    record.key = format!("k{key}");
                    record.seq_id = seq;
                    (record, order_id, unique)
                })
                .collect();
            let records: Vec<EventRecord> = batch.iter().map(|(r, _, _)| r.clone()).collect();
            let outcome = store.apply_events(&records).await.unwrap();
            assert_eq!(outcome.outcomes, model.apply(&batch));
            assert_eq!(outcome.cursor, model.cursor);
        }
        assert_eq!(store.cursor().await.unwrap(), model.cursor);
        for (order_id, filled) in &model.filled {
            let order = store.order(*order_id).await.unwrap().unwrap();
            assert_eq!(order.filled_qty, Some(Decimal::from(*filled)));
        }
        let applied: i64 = store
            .applied_event_counts()
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(applied as usize, model.applied);
        store.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn the_store_matches_the_model(batches in batches()) {
        store_matches_model(Backend::Sqlite, batches);
    }

    #[test]
    #[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
    fn the_postgres_store_matches_the_model(batches in batches()) {
        store_matches_model(Backend::Postgres, batches);
    }
}
