//! A hostile server against the SignalR client (`Connection`): malformed records of every kind,
//! a record split across messages, a malformed Completion for a pending call, a never-ending
//! record, broken handshake replies, and negotiate/upgrade answers that are errors, garbage or
//! silence. Each ends in a typed error (or a skipped record reported to the hook) within its
//! timeout, and a connection that can go on, goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::json;
use signalr::codec::CodecError;
use signalr::{
    AuthStage, ConnectOptions, Connection, ConnectionState, MalformedRecordHook, SignalrError,
};
use testkit::within;
use url::Url;

use crate::support::{fast_client_options, scripted_hub, serve};

const SECOND: Duration = Duration::from_secs(1);

/// Reads the client's handshake and accepts it.
async fn accept_handshake(socket: &mut WebSocket) {
    let _ = socket.recv().await;
    let _ = socket.send(WsMessage::text("{}\u{1e}")).await;
}

/// Options whose hook collects every malformed record reported.
fn collecting(url: Url) -> (ConnectOptions, Arc<Mutex<Vec<CodecError>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = ConnectOptions {
        on_malformed_record: Some(MalformedRecordHook::new(move |error| {
            sink.lock().unwrap().push(error.clone());
        })),
        ..fast_client_options(url)
    };
    (options, seen)
}

#[tokio::test]
async fn malformed_records_are_skipped_reported_and_the_connection_goes_on() {
    let url = scripted_hub(|mut socket| async move {
        accept_handshake(&mut socket).await;
        let hostile = [
            "not json\u{1e}",
            "{\"type\":1,\"target\":\"Seq\",\"argu\u{1e}",
            "[1,2,3]\u{1e}",
            "{\"target\":\"Seq\",\"arguments\":[]}\u{1e}",
            "{\"type\":1,\"target\":5,\"arguments\":[]}\u{1e}",
            "{\"type\":1,\"target\":\"Seq\"}\u{1e}",
            "{\"type\":2,\"item\":1}\u{1e}",
            "{\"type\":\"1\",\"target\":\"Seq\",\"arguments\":[]}\u{1e}",
        ];
        for text in hostile {
            let _ = socket.send(WsMessage::text(text)).await;
        }
        let _ = socket
            .send(WsMessage::Binary(vec![0xff, 0xfe, 0x00, 0x1e].into()))
            .await;
        let _ = socket
            .send(WsMessage::text("{\"type\":42,\"future\":true}\u{1e}"))
            .await;
        // A good record split across two messages still arrives whole.
        let _ = socket
            .send(WsMessage::text("{\"type\":1,\"target\":\"Seq\","))
            .await;
        let _ = socket
            .send(WsMessage::text("\"arguments\":[7]}\u{1e}"))
            .await;
        while socket.recv().await.is_some() {}
    })
    .await;
    let (options, seen) = collecting(url);
    let connection = Connection::connect(options).await.expect("connect");
    let mut callbacks = connection.take_callbacks().expect("callbacks");
    let callback = within("the good callback", SECOND, callbacks.recv())
        .await
        .expect("delivered");
    assert_eq!(callback.target, "Seq");
    assert_eq!(callback.arguments, vec![json!(7)]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        9,
        "every malformed record reported once: {seen:#?}"
    );
    assert!(seen.iter().any(|e| matches!(e, CodecError::MissingType)));
    assert!(seen.iter().any(|e| matches!(
        e,
        CodecError::MissingField {
            field: "arguments",
            ..
        }
    )));
    assert!(seen.iter().any(|e| matches!(e, CodecError::InvalidJson(_))));
    assert!(matches!(
        *connection.state().borrow(),
        ConnectionState::Connected
    ));
}

#[tokio::test]
async fn a_malformed_completion_fails_its_call_at_once_instead_of_timing_out() {
    let url = scripted_hub(|mut socket| async move {
        accept_handshake(&mut socket).await;
        let _ = socket.recv().await; // the first invocation, id "0"
        let conflicting = "{\"type\":3,\"invocationId\":\"0\",\"result\":1,\"error\":\"x\"}\u{1e}";
        let _ = socket.send(WsMessage::text(conflicting)).await;
        while socket.recv().await.is_some() {}
    })
    .await;
    let (options, seen) = collecting(url);
    let connection = Connection::connect(ConnectOptions {
        invoke_timeout: Duration::from_secs(30),
        ..options
    })
    .await
    .expect("connect");
    let result = within(
        "the call fails",
        SECOND,
        connection.invoke_raw("Anything", vec![]),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(SignalrError::Protocol(
                CodecError::ConflictingCompletion { .. }
            ))
        ),
        "{result:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_record_that_never_ends_is_refused_at_the_size_limit() {
    let url = scripted_hub(|mut socket| async move {
        accept_handshake(&mut socket).await;
        // 1 KiB messages, none with a separator: one record growing without end.
        let chunk = "x".repeat(1_024);
        for _ in 0..64 {
            if socket.send(WsMessage::text(chunk.clone())).await.is_err() {
                return;
            }
        }
        while socket.recv().await.is_some() {}
    })
    .await;
    let connection = Connection::connect(ConnectOptions {
        max_message_bytes: 8 * 1_024,
        ..fast_client_options(url)
    })
    .await
    .expect("connect");
    let reason = within("the connection ends", SECOND, connection.closed()).await;
    assert!(
        matches!(
            reason.error,
            Some(SignalrError::MessageTooLarge { limit: 8_192 })
        ),
        "{reason:?}"
    );
    assert!(reason.allow_reconnect);
}

async fn handshake_reply_error(reply: Option<&'static str>) -> SignalrError {
    let url = scripted_hub(move |mut socket| async move {
        let _ = socket.recv().await;
        match reply {
            Some(text) => {
                let _ = socket.send(WsMessage::text(text)).await;
                while socket.recv().await.is_some() {}
            }
            None => {
                let _ = socket.send(WsMessage::Close(None)).await;
            }
        }
    })
    .await;
    within(
        "connect fails",
        SECOND * 3,
        Connection::connect(fast_client_options(url)),
    )
    .await
    .expect_err("a broken handshake")
}

#[tokio::test]
async fn broken_handshake_replies_fail_the_connect_with_a_handshake_error() {
    for (reply, expected) in [
        (Some("garbage\u{1e}"), "invalid record"),
        (Some("{\"type\":6}\u{1e}"), "Expected a handshake response"),
        (Some("{\"error\":5}\u{1e}"), "invalid record"),
        (None, "closed the WebSocket before replying"),
    ] {
        let error = handshake_reply_error(reply).await;
        assert!(
            matches!(&error, SignalrError::Handshake(text) if text.contains(expected)),
            "{reply:?}: {error:?}"
        );
    }
}

/// A hub whose negotiate answers `status` with `body`.
async fn negotiate_answering(status: StatusCode, body: &'static str) -> Url {
    let router =
        axum::Router::new().route("/h/negotiate", post(move || async move { (status, body) }));
    let (addr, _) = serve(router).await;
    Url::parse(&format!("http://{addr}/h")).expect("URL")
}

#[tokio::test]
async fn negotiate_errors_garbage_and_refusals_are_typed() {
    let forbidden = negotiate_answering(StatusCode::FORBIDDEN, "").await;
    let error = Connection::connect(fast_client_options(forbidden).with_access_token("k"))
        .await
        .expect_err("403");
    assert!(
        matches!(
            error,
            SignalrError::Unauthorized {
                stage: AuthStage::Negotiate,
                status: 403
            }
        ),
        "{error:?}"
    );
    for (status, body, expected) in [
        (StatusCode::NOT_FOUND, "", "unexpected status code 404"),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "boom",
            "unexpected status code 500",
        ),
        (
            StatusCode::OK,
            "<html>not json</html>",
            "unreadable response",
        ),
        (
            StatusCode::OK,
            "{\"negotiateVersion\":1}",
            "no connectionId",
        ),
        (StatusCode::OK, "[1,2]", "unreadable response"),
    ] {
        let url = negotiate_answering(status, body).await;
        let error = Connection::connect(fast_client_options(url))
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, SignalrError::Negotiate(text) if text.contains(expected)),
            "{status} {body}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_server_that_accepts_the_socket_and_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accepted, never read, never answered
        }
    });
    let url = Url::parse(&format!("http://{addr}/h")).unwrap();
    let started = std::time::Instant::now();
    let error = within(
        "connect gives up",
        SECOND * 3,
        Connection::connect(ConnectOptions {
            http_timeout: Duration::from_millis(500),
            ..fast_client_options(url)
        }),
    )
    .await
    .expect_err("silence");
    assert!(
        matches!(&error, SignalrError::Transport(text) if text.contains("timed out")),
        "{error:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(450));
}

#[tokio::test]
async fn an_upgrade_answered_with_an_error_status_is_a_transport_error() {
    let router = axum::Router::new()
        .route(
            "/h/negotiate",
            post(|| async {
                axum::Json(
                    json!({"negotiateVersion": 1, "connectionId": "c", "connectionToken": "t"}),
                )
            }),
        )
        .route("/h", get(|| async { StatusCode::BAD_GATEWAY }));
    let (addr, _) = serve(router).await;
    let url = Url::parse(&format!("http://{addr}/h")).unwrap();
    let error = Connection::connect(fast_client_options(url))
        .await
        .expect_err("502");
    assert!(
        matches!(&error, SignalrError::Transport(text) if text.contains("HTTP 502")),
        "{error:?}"
    );
    assert_eq!(error.kind(), "transport");
}
