//! Throughput of the event transaction: events per second through `Store::apply_events` with
//! `synchronous = FULL`, one commit per batch, at batch sizes 1, 16 and 256 (group commit);
//! and what a restart costs the first commit: opening a database whose dedupe window holds
//! 100,000 keys, loading the dedupe index and committing one event.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mesolive_supervisor::store::{
    Effect, EventRecord, OrderUpdate, Store, StoreOptions, Synchronous,
};
use rust_decimal::Decimal;

/// An order update, as most of a trading day's events are.
fn order_event(seq: i64) -> EventRecord {
    EventRecord {
        key: format!("6f1c2a9e-0000-4000-8000-{seq:012}"),
        seq_id: Some(seq),
        target: "OnOrderUpdate".into(),
        effect: Effect::Order(OrderUpdate {
            order_id: seq % 64,
            strategy_id: 7,
            account: Some("U1234567".into()),
            exec_plan_id: Some(seq / 64),
            leg_group_id: Some(1),
            state: "PartiallyFilled".into(),
            filled_qty: Some(Decimal::from(seq % 10)),
            avg_fill_price: Some(Decimal::new(12_345, 2)),
        }),
    }
}

fn apply_events(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = runtime
        .block_on(Store::open(
            dir.path().join("bench.db"),
            &StoreOptions::default(),
        ))
        .expect("open store");
    let mut next_seq = 1i64;

    let mut group = c.benchmark_group("apply_events_sync_full");
    group.measurement_time(Duration::from_secs(5));
    for batch_size in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch_size as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(batch_size),
            &batch_size,
            |b, &size| {
                b.iter_custom(|iterations| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iterations {
                        let batch: Vec<_> = (next_seq..next_seq + size as i64)
                            .map(order_event)
                            .collect();
                        next_seq += size as i64;
                        let start = Instant::now();
                        let outcome = runtime.block_on(store.apply_events(&batch)).expect("apply");
                        elapsed += start.elapsed();
                        assert_eq!(outcome.applied_count(), size);
                    }
                    elapsed
                });
            },
        );
    }
    group.finish();
}

/// Keys in the dedupe window of the restart benchmark.
const WINDOW_KEYS: i64 = 100_000;

fn first_commit_after_a_restart(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("restart.db");
    let fill = StoreOptions {
        synchronous: Synchronous::Off,
        ..StoreOptions::default()
    };
    runtime.block_on(async {
        let store = Store::open(&path, &fill).await.expect("open store");
        for first in (1..=WINDOW_KEYS).step_by(500) {
            let batch: Vec<_> = (first..first + 500).map(order_event).collect();
            store.apply_events(&batch).await.expect("fill");
        }
        store.close().await.expect("close");
    });
    let mut next_seq = WINDOW_KEYS + 1;

    let mut group = c.benchmark_group("first_commit_after_a_restart");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("dedupe_keys", WINDOW_KEYS), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let store = Store::open(&path, &StoreOptions::default())
                    .await
                    .expect("open store");
                let outcome = store
                    .apply_events(&[order_event(next_seq)])
                    .await
                    .expect("apply");
                assert_eq!(outcome.applied_count(), 1);
                next_seq += 1;
                store.close().await.expect("close");
            })
        });
    });
    group.finish();
}

criterion_group!(benches, apply_events, first_commit_after_a_restart);
criterion_main!(benches);
