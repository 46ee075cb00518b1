//! Client ↔ server over real sockets: invocations, callbacks, auth, negotiate redirects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use signalr::{AuthStage, Connection, ConnectionState, HubOptions, ServerAuth, SignalrError};
use testkit::{wait_for, within};
use url::Url;

use crate::support::{TestServer, fast_server_options};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn invoke_returns_results_nulls_and_errors() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");

    let sum: i64 = connection
        .invoke("Add", vec![json!(40), json!(2)])
        .await
        .expect("Add");
    assert_eq!(sum, 42);

    let void = connection.invoke_raw("Reset", vec![]).await.expect("Reset");
    assert_eq!(void, Value::Null, "a void method answers \"result\":null");
    let () = connection
        .invoke("Reset", vec![])
        .await
        .expect("() from a void method");
    let nothing: Option<String> = connection
        .invoke("Echo", vec![Value::Null])
        .await
        .expect("null result");
    assert_eq!(nothing, None);

    match connection.invoke_raw("Fail", vec![]).await {
        Err(SignalrError::Hub { method, message }) => {
            assert_eq!(method, "Fail");
            assert!(message.ends_with("HubException: boom"), "{message}");
        }
        other => panic!("expected a hub error, got {other:?}"),
    }
    match connection.invoke_raw("Nope", vec![]).await {
        Err(SignalrError::Hub { message, .. }) => assert_eq!(message, "Unknown hub method 'Nope'"),
        other => panic!("expected unknown method, got {other:?}"),
    }
    match connection.invoke::<i64>("Echo", vec![json!("text")]).await {
        Err(SignalrError::InvalidResult { method, .. }) => assert_eq!(method, "Echo"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert!(matches!(
        *connection.state().borrow(),
        ConnectionState::Connected
    ));
}

#[tokio::test]
async fn a_push_sharing_the_handshake_reply_message_is_delivered() {
    let hub = crate::support::TestHub {
        welcome: true,
        ..crate::support::TestHub::default()
    };
    let server = TestServer::start_with(hub, fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let mut callbacks = connection.take_callbacks().expect("callbacks");
    let welcome = within("Welcome", SECOND, callbacks.recv())
        .await
        .expect("a callback");
    assert_eq!(welcome.target, "Welcome");
    assert_eq!(welcome.arguments, vec![json!(connection.connection_id())]);
}

#[tokio::test]
async fn unusable_options_are_refused_before_any_network_traffic() {
    let options = signalr::ConnectOptions {
        keep_alive_interval: Duration::ZERO,
        ..crate::support::fast_client_options(Url::parse("http://127.0.0.1:9/hub").expect("URL"))
    };
    let error = Connection::connect(options).await.expect_err("invalid");
    assert!(matches!(error, SignalrError::InvalidConfig(_)), "{error:?}");
    let ftp = crate::support::fast_client_options(Url::parse("ftp://127.0.0.1/hub").expect("URL"));
    let error = Connection::connect(ftp).await.expect_err("invalid");
    assert!(matches!(error, SignalrError::InvalidConfig(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invokes_from_many_tasks_each_get_their_own_result() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let server = TestServer::start(fast_server_options()).await;
    let connection = Arc::new(
        Connection::connect(server.client_options())
            .await
            .expect("connect"),
    );
    shareable(&connection);
    let calls = (0..200i64).map(|n| {
        let connection = connection.clone();
        tokio::spawn(async move {
            let doubled: i64 = connection.invoke("Add", vec![json!(n), json!(n)]).await?;
            Ok::<_, SignalrError>((n, doubled))
        })
    });
    for call in calls.collect::<Vec<_>>() {
        let (n, doubled) = call.await.expect("task").expect("Add");
        assert_eq!(doubled, 2 * n);
    }
}

#[tokio::test]
async fn send_gets_no_reply_and_the_connection_stays_usable() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    for _ in 0..3 {
        connection.send("Notify", vec![json!("hi")]).expect("send");
    }
    wait_for("three Notify sends reach the hub", SECOND, || async {
        server
            .observed()
            .notified
            .load(std::sync::atomic::Ordering::SeqCst)
            == 3
    })
    .await;
    let echoed: String = connection
        .invoke("Echo", vec![json!("still here")])
        .await
        .expect("Echo");
    assert_eq!(echoed, "still here");
}

#[tokio::test]
async fn invoke_timeout_forgets_the_call_and_a_late_completion_is_ignored() {
    let server = TestServer::start(fast_server_options()).await;
    let options = signalr::ConnectOptions {
        invoke_timeout: Duration::from_millis(100),
        ..server.client_options()
    };
    let connection = Connection::connect(options).await.expect("connect");
    match connection.invoke_raw("Sleep", vec![json!(300)]).await {
        Err(SignalrError::Timeout { method, after }) => {
            assert_eq!(method, "Sleep");
            assert_eq!(after, Duration::from_millis(100));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The late Completion of Sleep arrives while this call waits (calls run in order).
    let value: String = within("Echo after the late Completion", SECOND, async {
        loop {
            match connection.invoke("Echo", vec![json!("after")]).await {
                Err(SignalrError::Timeout { .. }) => continue,
                other => break other,
            }
        }
    })
    .await
    .expect("Echo");
    assert_eq!(value, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_callbacks_arrive_in_order_with_none_missing() {
    const COUNT: u64 = 100_000;
    let server = TestServer::start(fast_server_options()).await;
    let options = signalr::ConnectOptions {
        max_pending_callbacks: 2 * COUNT as usize,
        invoke_timeout: Duration::from_secs(20),
        ..server.client_options()
    };
    let connection = Arc::new(Connection::connect(options).await.expect("connect"));
    let mut callbacks = connection.take_callbacks().expect("first take");
    assert!(connection.take_callbacks().is_none(), "a single consumer");

    let consumer = tokio::spawn(async move {
        let mut expected = 0u64;
        let mut inversions = 0u64;
        while expected < COUNT {
            let Some(callback) = callbacks.recv().await else {
                break;
            };
            assert_eq!(callback.target, "Seq");
            let seq = callback.arguments[0].as_u64().expect("sequence number");
            if seq != expected {
                inversions += 1;
            }
            expected = seq + 1;
        }
        (expected, inversions)
    });
    let pushed: u64 = connection
        .invoke("Push", vec![json!(COUNT)])
        .await
        .expect("Push");
    assert_eq!(pushed, COUNT);
    let (received, inversions) = within("all callbacks", Duration::from_secs(20), consumer)
        .await
        .expect("consumer");
    assert_eq!(inversions, 0, "callbacks were reordered or skipped");
    assert_eq!(received, COUNT);
}

#[tokio::test]
async fn a_consumer_too_far_behind_closes_the_connection_with_callback_backlog() {
    let server = TestServer::start(fast_server_options()).await;
    let options = signalr::ConnectOptions {
        max_pending_callbacks: 100,
        ..server.client_options()
    };
    let connection = Connection::connect(options).await.expect("connect");
    let mut callbacks = connection.take_callbacks().expect("callbacks");
    let pushing = connection.invoke_raw("Push", vec![json!(1_000)]).await;
    assert!(
        matches!(&pushing, Err(SignalrError::ConnectionLost(reason))
            if matches!(reason.error, Some(SignalrError::CallbackBacklog { limit: 100 }))),
        "{pushing:?}"
    );
    let reason = within("closed", SECOND, connection.closed()).await;
    assert!(reason.allow_reconnect);
    // Nothing queued is lost: the 100 accepted callbacks are still there, in order.
    for expected in 0..100u64 {
        let callback = callbacks.recv().await.expect("queued callback");
        assert_eq!(callback.arguments, vec![json!(expected)]);
    }
    assert!(callbacks.recv().await.is_none(), "then the queue ends");
}

#[tokio::test]
async fn a_client_result_request_is_answered_with_an_error() {
    let server = TestServer::start(fast_server_options()).await;
    let connection = Connection::connect(server.client_options())
        .await
        .expect("connect");
    let answer = connection
        .invoke_raw("AskClient", vec![])
        .await
        .expect("AskClient");
    assert_eq!(
        answer,
        json!({ "error": "the client answered with an error: Client didn't provide a result." })
    );
}

#[tokio::test]
async fn unauthorized_negotiate_is_a_distinct_error_without_the_token() {
    let server = TestServer::start(HubOptions {
        auth: Some(ServerAuth::bearer("right-key")),
        ..fast_server_options()
    })
    .await;
    let options = server
        .client_options()
        .with_access_token("wrong-key-secret");
    assert!(!format!("{options:?}").contains("wrong-key-secret"));
    let error = Connection::connect(options).await.expect_err("refused");
    assert!(
        matches!(
            error,
            SignalrError::Unauthorized {
                stage: AuthStage::Negotiate,
                status: 401
            }
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong-key-secret"));

    let accepted = server.client_options().with_access_token("right-key");
    let connection = Connection::connect(accepted)
        .await
        .expect("the right key connects");
    let () = connection.invoke("Reset", vec![]).await.expect("usable");
}

#[tokio::test]
async fn unauthorized_upgrade_is_a_distinct_error() {
    let mut auth = ServerAuth::bearer("right-key");
    auth.on_negotiate = false;
    let server = TestServer::start(HubOptions {
        auth: Some(auth),
        ..fast_server_options()
    })
    .await;
    let error = Connection::connect(server.client_options().with_access_token("wrong-key"))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            error,
            SignalrError::Unauthorized {
                stage: AuthStage::Upgrade,
                status: 401
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_token_travels_in_the_header_and_in_the_query_on_the_upgrade() {
    for source in [signalr::TokenSource::Header, signalr::TokenSource::Query] {
        let mut auth = ServerAuth::bearer("key");
        auth.source = source;
        auth.on_negotiate = false;
        let server = TestServer::start(HubOptions {
            auth: Some(auth),
            ..fast_server_options()
        })
        .await;
        let connection = Connection::connect(server.client_options().with_access_token("key"))
            .await
            .unwrap_or_else(|error| panic!("{source:?}: {error}"));
        let () = connection.invoke("Reset", vec![]).await.expect("usable");
    }
}

#[tokio::test]
async fn negotiate_redirects_are_followed_with_the_replaced_token() {
    let server = TestServer::start(HubOptions {
        auth: Some(ServerAuth::bearer("token-from-redirect")),
        ..fast_server_options()
    })
    .await;
    let seen_authorization = Arc::new(Mutex::new(Vec::<String>::new()));
    let redirect = {
        let hub = server.hub_url().to_string();
        let seen = seen_authorization.clone();
        axum::Router::new().route(
            "/entry/negotiate",
            post(move |headers: HeaderMap| async move {
                let authorization = headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().expect("lock").push(authorization);
                Json(json!({ "url": hub, "accessToken": "token-from-redirect" }))
            }),
        )
    };
    let (entry_addr, _serving) = crate::support::serve(redirect).await;
    let entry = Url::parse(&format!("http://{entry_addr}/entry")).expect("URL");
    let options = crate::support::fast_client_options(entry).with_access_token("original-token");

    let connection = Connection::connect(options)
        .await
        .expect("connect via redirect");
    let sum: i64 = connection
        .invoke("Add", vec![json!(1), json!(2)])
        .await
        .expect("Add");
    assert_eq!(sum, 3);
    assert_eq!(
        *seen_authorization.lock().expect("lock"),
        vec!["Bearer original-token".to_owned()]
    );
}

#[tokio::test]
async fn negotiate_errors_and_redirect_loops_fail_the_connect() {
    let router = axum::Router::new()
        .route(
            "/refused/negotiate",
            post(|| async { Json(json!({ "error": "This connection is not allowed." })) }),
        )
        .route(
            "/loop/negotiate",
            post(|headers: HeaderMap| async move {
                let host = headers
                    .get("host")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                Json(json!({ "url": format!("http://{host}/loop") }))
            }),
        );
    let (addr, _serving) = crate::support::serve(router).await;
    let url = |path: &str| Url::parse(&format!("http://{addr}{path}")).expect("URL");

    let refused = Connection::connect(crate::support::fast_client_options(url("/refused")))
        .await
        .expect_err("refused");
    assert!(
        matches!(&refused, SignalrError::Negotiate(text) if text == "This connection is not allowed."),
        "{refused:?}"
    );
    let looped = Connection::connect(crate::support::fast_client_options(url("/loop")))
        .await
        .expect_err("loop");
    assert!(
        matches!(&looped, SignalrError::Negotiate(text) if text == "Negotiate redirection limit exceeded."),
        "{looped:?}"
    );
    let missing = Connection::connect(crate::support::fast_client_options(url("/absent")))
        .await
        .expect_err("404");
    assert!(
        matches!(&missing, SignalrError::Negotiate(text) if text.contains("404")),
        "{missing:?}"
    );
}
