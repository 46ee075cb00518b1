//! The SignalR JSON codec, per message type: decoding one record (what the client's reader does
//! for every inbound record) and encoding one message (what the simulator's and the client's
//! writers do), plus splitting a WebSocket payload that carries many records.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use signalr::codec::{self, FrameDecoder, Message, Outcome};
use std::hint::black_box;

/// An `OnOrderUpdate` payload as MesoLive sends it: header, ids, state, quantities, prices.
fn order_update(seq: i64) -> Value {
    json!({
        "EventId": format!("6f1c2a9e-{seq:04}-4000-8000-1234567890ab"),
        "EventSeqId": seq,
        "EventTime": "2025-03-14T15:09:26.535Z",
        "OrderId": 50_001 + seq % 64,
        "BrokerAccountId": "U1234567",
        "ExecPlanId": 70_001,
        "LegGroupId": 1,
        "StrategyId": 7,
        "StrategyName": "SPX 45 DTE iron condor",
        "State": "PartiallyFilled",
        "FilledQty": 2,
        "RemainingQty": 1,
        "FillPrice": 1.35,
        "AvgFillPrice": 1.325,
        "Rejection": null
    })
}

/// A `StreamPositionData` item: position prices, greeks and PnL.
fn position_data() -> Value {
    json!({
        "PositionId": 1001,
        "Prices": {"SnapshotTime": "2025-03-14T15:09:26.535Z", "Bid": 2.15, "Ask": 2.35, "Last": 2.25, "Mark": 2.25, "MarkAgeMs": 120},
        "Greeks": {"SnapshotTime": "2025-03-14T15:09:26.535Z", "Delta": -0.0412, "Gamma": 0.0009, "Theta": 1.42, "Vega": -3.1},
        "PnL": {"SnapshotTime": "2025-03-14T15:09:26.535Z", "Realized": 0, "Mark": 112.5}
    })
}

/// One message of every type the client receives, by name.
fn messages() -> Vec<(&'static str, Message)> {
    vec![
        (
            "invocation",
            Message::Invocation {
                invocation_id: None,
                target: "OnOrderUpdate".into(),
                arguments: vec![order_update(12_345)],
                stream_ids: Vec::new(),
            },
        ),
        (
            "stream_item",
            Message::StreamItem {
                invocation_id: "17".into(),
                item: position_data(),
            },
        ),
        (
            "completion_result",
            Message::Completion {
                invocation_id: "18".into(),
                outcome: Outcome::Value(json!({
                    "Status": "Success",
                    "Data": {"LatestEventSeqId": 12_345, "SnapshotTime": "2025-03-14T15:09:26.535Z"}
                })),
            },
        ),
        (
            "completion_null",
            Message::Completion {
                invocation_id: "19".into(),
                outcome: Outcome::Value(Value::Null),
            },
        ),
        (
            "completion_error",
            Message::Completion {
                invocation_id: "20".into(),
                outcome: Outcome::Error(
                    "An unexpected error occurred invoking 'SendOrder'.".into(),
                ),
            },
        ),
        ("ping", Message::Ping),
        (
            "close",
            Message::Close {
                error: Some("Server is shutting down.".into()),
                allow_reconnect: true,
            },
        ),
    ]
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, message) in messages() {
        let mut record = codec::encode(&message).into_bytes();
        record.pop(); // the separator: `decode` takes one record without it
        group.throughput(Throughput::Bytes(record.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &record, |b, record| {
            b.iter(|| codec::decode(black_box(record)))
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, message) in messages() {
        group.bench_with_input(BenchmarkId::from_parameter(name), &message, |b, message| {
            b.iter(|| codec::encode(black_box(message)))
        });
    }
    group.finish();
}

/// One WebSocket payload of `n` event callbacks (the simulator coalesces up to 64 KiB), split
/// into records and each decoded, as the client's reader does.
fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_split_and_decode");
    for records in [1usize, 16, 128] {
        let payload: String = (0..records as i64)
            .map(|seq| {
                codec::encode(&Message::Invocation {
                    invocation_id: None,
                    target: "OnOrderUpdate".into(),
                    arguments: vec![order_update(seq)],
                    stream_ids: Vec::new(),
                })
            })
            .collect();
        group.throughput(Throughput::Elements(records as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(records),
            &payload,
            |b, payload| {
                let mut decoder = FrameDecoder::new(Some(4 * 1024 * 1024));
                b.iter(|| {
                    decoder.push(black_box(payload.as_bytes()));
                    let mut decoded = 0usize;
                    while let Some(record) = decoder.next_record() {
                        if record.and_then(codec::decode).is_ok() {
                            decoded += 1;
                        }
                    }
                    assert_eq!(decoded, records);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decode, encode, frames);
criterion_main!(benches);
