//! Server→client streams: order, errors, cancel on drop, slow consumers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use signalr::{ConnectOptions, Connection, SignalrError};
use testkit::{wait_for, within};

use crate::support::{TestServer, fast_server_options};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_stream_yields_its_items_in_order_then_ends() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let items: Vec<u64> = connection
        .stream::<u64>("Counter", vec![json!(5)])
        .expect("stream")
        .map(|item| item.expect("item"))
        .collect()
        .await;
    assert_eq!(items, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_stream_error_comes_after_the_items_before_it() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let mut stream = connection
        .stream::<u64>("FailAfter", vec![json!(3)])
        .expect("stream");
    for expected in 0..3 {
        assert_eq!(
            stream.next().await.expect("item").expect("ok item"),
            expected
        );
    }
    match stream.next().await {
        Some(Err(SignalrError::Hub { method, message })) => {
            assert_eq!(method, "FailAfter");
            assert_eq!(
                message,
                "An error occurred on the server while streaming results."
            );
        }
        other => panic!("expected the stream error, got {other:?}"),
    }
    assert!(stream.next().await.is_none());

    let mut refused = connection.stream::<u64>("Nope", vec![]).expect("stream");
    assert!(matches!(
        refused.next().await,
        Some(Err(SignalrError::Hub { message, .. })) if message == "Unknown hub method 'Nope'"
    ));
    assert!(refused.next().await.is_none());
}

#[tokio::test]
async fn dropping_a_stream_cancels_it_on_the_server() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let mut stream = connection
        .stream::<u64>("Endless", vec![json!(1)])
        .expect("stream");
    for expected in 0..3 {
        assert_eq!(stream.next().await.expect("item").expect("ok"), expected);
    }
    assert_eq!(server.observed().endless_dropped.load(Ordering::SeqCst), 0);
    drop(stream);
    wait_for(
        "the server drops the cancelled stream's producer",
        SECOND,
        || async { server.observed().endless_dropped.load(Ordering::SeqCst) == 1 },
    )
    .await;
    let produced = server.observed().endless_produced.load(Ordering::SeqCst);
    // The connection stays usable, and the producer really is gone.
    let () = connection
        .invoke("Reset", vec![])
        .await
        .expect("still usable");
    connection
        .invoke_raw("Sleep", vec![json!(20)])
        .await
        .expect("Sleep");
    assert_eq!(
        server.observed().endless_produced.load(Ordering::SeqCst),
        produced
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_consumer_drops_the_oldest_items_and_never_blocks_invokes() {
    const TOTAL: u64 = 20_000;
    const BUFFER: usize = 8;
    let server = TestServer::start(fast_server_options()).await;
    let options = ConnectOptions {
        stream_buffer: BUFFER,
        ..server.client_options()
    };
    let connection = Connection::connect(options).await.expect("connect");
    let mut stream = connection
        .stream::<u64>("Counter", vec![json!(TOTAL)])
        .expect("stream");
    // Items arrive faster than this consumer polls: the first one seen may already be late.
    let first = stream.next().await.expect("first").expect("ok");
    assert!(first < TOTAL);

    // The consumer now stalls; the socket reader must keep going.
    let sum: i64 = within("an invoke while the stream is backed up", SECOND, async {
        connection.invoke("Add", vec![json!(2), json!(3)]).await
    })
    .await
    .expect("Add");
    assert_eq!(sum, 5);
    let evicted = TOTAL - 1 - BUFFER as u64;
    wait_for(
        "every item has been received",
        Duration::from_secs(10),
        || async { stream.dropped_items() == evicted },
    )
    .await;

    // Only the newest BUFFER items are left, then the end.
    let rest: Vec<u64> = stream
        .by_ref()
        .map(|item| item.expect("item"))
        .collect()
        .await;
    let newest: Vec<u64> = (TOTAL - BUFFER as u64..TOTAL).collect();
    assert_eq!(rest, newest);
    assert_eq!(stream.dropped_items(), evicted);
}

#[tokio::test]
async fn a_disconnect_cancels_server_streams_and_fails_client_streams() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let mut stream = connection
        .stream::<u64>("Endless", vec![json!(1)])
        .expect("stream");
    assert!(stream.next().await.expect("item").is_ok());
    let reason = connection.close().await;
    assert!(reason.error.is_none(), "a local close is clean: {reason}");
    wait_for("the server drops the producer", SECOND, || async {
        server.observed().endless_dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut last = None;
    while let Some(item) = within("the stream ends", SECOND, stream.next()).await {
        last = Some(item);
    }
    assert!(
        matches!(last, Some(Err(SignalrError::ConnectionLost(_)))),
        "{last:?}"
    );
    assert!(matches!(
        connection.stream::<u64>("Counter", vec![json!(1)]),
        Err(SignalrError::ConnectionLost(_))
    ));
}
