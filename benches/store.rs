//! Throughput of the event transaction: events per second through `Store::apply_events` with
//! `synchronous = FULL`, one commit per batch, at batch sizes 1, 16 and 256 (group commit).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mesolive_supervisor::store::{Effect, EventRecord, OrderUpdate, Store, StoreOptions};
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

criterion_group!(benches, apply_events);
criterion_main!(benches);
