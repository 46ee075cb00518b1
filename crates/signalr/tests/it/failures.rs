//! Connection loss in every form: killed server, silent server, timeouts, size limits, closes.
//! Whatever happens, every pending call ends promptly and `state()` says Disconnected.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use signalr::{
    ClientTimeoutMode, CloseReason, ConnectOptions, Connection, ConnectionState, HubOptions,
    SignalrError,
};
use testkit::{wait_for, within};

use crate::support::{TestServer, fast_server_options, scripted_hub};

const SECOND: Duration = Duration::from_secs(1);

fn lost_because(result: &Result<serde_json::Value, SignalrError>) -> Option<&CloseReason> {
    match result {
        Err(SignalrError::ConnectionLost(reason)) => Some(reason),
        _ => None,
    }
}

async fn assert_disconnected(connection: &Connection) -> CloseReason {
    let mut state = connection.state();
    within("state() reports Disconnected", SECOND, async {
        state
            .wait_for(|state| matches!(state, ConnectionState::Disconnected { .. }))
            .await
            .map(drop)
    })
    .await
    .expect("state watch");
    let reason = within("closed()", SECOND, connection.closed()).await;
    assert!(
        matches!(
            connection.invoke_raw("Reset", vec![]).await,
            Err(SignalrError::ConnectionLost(_))
        ),
        "later calls fail fast"
    );
    assert!(matches!(
        connection.send("Reset", vec![]),
        Err(SignalrError::ConnectionLost(_))
    ));
    reason
}

#[tokio::test]
async fn a_server_killed_mid_invoke_and_mid_stream_fails_everything_at_once() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let mut stream = connection
        .stream::<u64>("Endless", vec![json!(5)])
        .expect("stream");
    assert!(stream.next().await.expect("item").is_ok());
    let pending = connection.invoke_raw("Sleep", vec![json!(60_000)]);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.kill();
    };
    let started = Instant::now();
    let (result, ()) = tokio::join!(pending, killer);
    assert!(lost_because(&result).is_some(), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "took {:?}: the loss must be seen from the socket, not from the server timeout",
        started.elapsed()
    );
    let mut last = None;
    while let Some(item) = within("stream end", SECOND, stream.next()).await {
        last = Some(item);
    }
    assert!(
        matches!(last, Some(Err(SignalrError::ConnectionLost(_)))),
        "{last:?}"
    );
    let reason = assert_disconnected(&connection).await;
    assert!(
        matches!(reason.error, Some(SignalrError::Transport(_))),
        "{reason:?}"
    );
    assert!(reason.allow_reconnect);
}

#[tokio::test]
async fn a_server_killed_while_idle_is_noticed() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    server.kill();
    let reason = assert_disconnected(&connection).await;
    assert!(reason.error.is_some());
    let refused = Connection::connect(server.client_options()).await;
    assert!(
        matches!(refused, Err(SignalrError::Transport(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_silent_server_is_declared_dead_after_the_server_timeout() {
    // The server never pings and never answers `Swallow`: nothing at all comes back.
    let server = TestServer::start(HubOptions {
        keep_alive_interval: Duration::from_secs(3_600),
        ..fast_server_options()
    })
    .await;
    let server_timeout = Duration::from_millis(400);
    let connection = Connection::connect(ConnectOptions {
        server_timeout,
        ..server.client_options()
    })
    .await
    .expect("connect");
    let started = Instant::now();
    let result = within(
        "the pending call fails",
        SECOND,
        connection.invoke_raw("Swallow", vec![]),
    )
    .await;
    let elapsed = started.elapsed();
    let reason = lost_because(&result).expect("ConnectionLost");
    assert!(
        matches!(reason.error, Some(SignalrError::ServerTimeout(after)) if after == server_timeout),
        "{reason:?}"
    );
    assert!(
        elapsed >= server_timeout - Duration::from_millis(50),
        "{elapsed:?}"
    );
    assert_disconnected(&connection).await;
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_times_out() {
    let url = crate::support::scripted_hub(|mut socket| async move {
        // Reads the handshake and never replies.
        while socket.recv().await.is_some() {}
    })
    .await;
    let options = ConnectOptions {
        handshake_timeout: Duration::from_millis(300),
        ..crate::support::fast_client_options(url)
    };
    let error = within("connect fails", SECOND, Connection::connect(options))
        .await
        .expect_err("no handshake reply");
    assert!(matches!(error, SignalrError::Handshake(_)), "{error:?}");
}

#[tokio::test]
async fn a_refused_handshake_fails_the_connect_with_the_server_text() {
    let url = crate::support::scripted_hub(|mut socket| async move {
        let _ = socket.recv().await;
        let refusal = "{\"error\":\"The protocol 'json' is not supported.\"}\u{1e}";
        let _ = socket.send(axum::extract::ws::Message::text(refusal)).await;
    })
    .await;
    let error = within(
        "connect fails",
        SECOND,
        Connection::connect(crate::support::fast_client_options(url)),
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(&error, SignalrError::Handshake(text) if text == "The protocol 'json' is not supported."),
        "{error:?}"
    );
}

/// A server that keeps sending client-result invocations (each needs an answer) but never
/// reads: the client's unsent answers would pile up without bound once the socket buffers are
/// full. The client must end the connection instead, well before the server runs out of things
/// to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_reads_is_dropped_before_unsent_records_pile_up() {
    const MAX_RECORDS: usize = 3_000_000;
    const PER_MESSAGE: usize = 1_000;
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let sent_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(sent_tx)));
    let url = scripted_hub(move |mut socket| {
        let sent_tx = sent_tx.clone();
        async move {
            let _ = socket.recv().await;
            let _ = socket
                .send(axum::extract::ws::Message::text("{}\u{1e}"))
                .await;
            let record =
                "{\"type\":1,\"invocationId\":\"ask\",\"target\":\"Ask\",\"arguments\":[]}\u{1e}";
            let message = record.repeat(PER_MESSAGE);
            let mut sent = 0;
            // Never reads again: only writes, until the client hangs up.
            while sent < MAX_RECORDS
                && socket
                    .send(axum::extract::ws::Message::text(message.clone()))
                    .await
                    .is_ok()
            {
                sent += PER_MESSAGE;
            }
            if let Some(tx) = sent_tx.lock().unwrap().take() {
                let _ = tx.send(sent);
            }
        }
    })
    .await;
    let connection = Connection::connect(crate::support::fast_client_options(url))
        .await
        .expect("connect");
    let reason = within(
        "the client gives up on a server that never reads",
        20 * SECOND,
        connection.closed(),
    )
    .await;
    assert!(
        matches!(&reason.error, Some(SignalrError::Transport(text)) if text.contains("stopped reading")),
        "{reason:?}"
    );
    let sent = within("the server notices", 20 * SECOND, sent_rx)
        .await
        .expect("sent count");
    assert!(sent < MAX_RECORDS, "the server sent {sent} records");
}

#[tokio::test]
async fn an_idle_connection_stays_up_with_pings_both_ways() {
    let server = TestServer::start(HubOptions {
        keep_alive_interval: Duration::from_millis(100),
        client_timeout: Duration::from_millis(400),
        ..HubOptions::default()
    })
    .await;
    let connection = Connection::connect(ConnectOptions {
        keep_alive_interval: Duration::from_millis(100),
        server_timeout: Duration::from_millis(400),
        ..server.client_options()
    })
    .await
    .expect("connect");
    let idle = tokio::time::timeout(Duration::from_millis(1_500), connection.closed()).await;
    assert!(idle.is_err(), "the connection ended while idle: {idle:?}");
    assert!(matches!(
        *connection.state().borrow(),
        ConnectionState::Connected
    ));
    let client = connection.stats();
    assert!(client.pings_sent >= 5, "{client:?}");
    assert!(client.pings_received >= 5, "{client:?}");
    let server_side = server.host.connections()[0].stats();
    assert!(server_side.pings_received >= 5, "{server_side:?}");
    assert!(server_side.pings_sent >= 5, "{server_side:?}");
    let () = connection
        .invoke("Reset", vec![])
        .await
        .expect("still usable");
}

#[tokio::test]
async fn a_client_that_stops_pinging_is_closed_by_a_strict_server() {
    let server = TestServer::start(HubOptions {
        client_timeout: Duration::from_millis(300),
        client_timeout_mode: ClientTimeoutMode::Strict,
        ..fast_server_options()
    })
    .await;
    let connection = Connection::connect(ConnectOptions {
        keep_alive_interval: Duration::from_secs(3_600),
        ..server.client_options()
    })
    .await
    .expect("connect");
    let reason = within(
        "the server closes the silent client",
        SECOND,
        connection.closed(),
    )
    .await;
    assert!(
        matches!(
            &reason.error,
            Some(SignalrError::ServerClosed { message: None })
        ),
        "{reason:?}"
    );
    assert!(
        reason.allow_reconnect,
        "a client timeout allows a reconnect"
    );
}

#[tokio::test]
async fn an_oversized_inbound_message_closes_the_connection() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(ConnectOptions {
        max_message_bytes: 1_024,
        ..server.client_options()
    })
    .await
    .expect("connect");
    let small: String = connection
        .invoke("Big", vec![json!(100)])
        .await
        .expect("small");
    assert_eq!(small.len(), 100);
    let result = connection.invoke_raw("Big", vec![json!(4_096)]).await;
    let reason = lost_because(&result).expect("ConnectionLost");
    assert!(
        matches!(
            reason.error,
            Some(SignalrError::MessageTooLarge { limit: 1_024 })
        ),
        "{reason:?}"
    );
    assert_disconnected(&connection).await;
}

#[tokio::test]
async fn an_oversized_outbound_record_is_refused_by_the_server_with_a_close() {
    let server = TestServer::start(fast_server_options()).await; // 32 KB server limit
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let result = connection
        .invoke_raw("Echo", vec![json!("y".repeat(40 * 1024))])
        .await;
    let reason = lost_because(&result).expect("ConnectionLost");
    assert!(
        matches!(&reason.error, Some(SignalrError::ServerClosed { message: Some(text) })
            if text == "Connection closed with an error."),
        "{reason:?}"
    );
    assert!(reason.allow_reconnect);
}

#[tokio::test]
async fn a_server_close_surfaces_its_error_and_allow_reconnect() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    wait_for("the server lists the connection", SECOND, || async {
        server.host.connections().len() == 1
    })
    .await;
    server.host.connections()[0].close(Some("maintenance".to_owned()), false);
    let reason = within("closed", SECOND, connection.closed()).await;
    assert!(
        matches!(&reason.error, Some(SignalrError::ServerClosed { message: Some(text) }) if text == "maintenance"),
        "{reason:?}"
    );
    assert!(!reason.allow_reconnect);
}

#[tokio::test]
async fn a_graceful_client_close_ends_the_server_side_too() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let reason = within("close", SECOND, connection.close()).await;
    assert!(reason.error.is_none());
    assert!(!reason.allow_reconnect);
    wait_for("the server runs on_disconnected", SECOND, || async {
        server.observed().disconnected.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(server.host.connections().is_empty());
    assert_disconnected(&connection).await;
}

#[tokio::test]
async fn dropping_the_connection_closes_it() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    wait_for("connected", SECOND, || async {
        server.host.connections().len() == 1
    })
    .await;
    drop(connection);
    wait_for("the server sees the client leave", SECOND, || async {
        server.observed().disconnected.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn refusing_connections_answers_503_until_the_window_ends() {
    let server = TestServer::start(fast_server_options()).await;
    server.host.refuse_for(Duration::from_secs(60));
    let refused = Connection::connect(server.client_options()).await;
    assert!(
        matches!(&refused, Err(SignalrError::Negotiate(text)) if text.contains("503")),
        "{refused:?}"
    );
    server.host.refuse_for(Duration::ZERO);
    Connection::connect(server.client_options())
        .await
        .expect("accepted again");
}
