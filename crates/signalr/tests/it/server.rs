//! The hub host seen from a raw WebSocket: exact records, status codes and close sequences,
//! as an ASP.NET Core server would produce them.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use signalr::HubOptions;
use testkit::within;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{HUB_PATH, TestHub, TestServer};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECOND: Duration = Duration::from_secs(1);

/// No pings, so every test sees exactly the records it caused.
fn quiet_options() -> HubOptions {
    HubOptions {
        keep_alive_interval: Duration::from_secs(3_600),
        ..HubOptions::default()
    }
}

async fn open(server: &TestServer, query: &str) -> Result<Socket, tungstenite::Error> {
    let url = format!("ws://{}{HUB_PATH}{query}", server.addr);
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(socket, _)| socket)
}

/// A skip-negotiation connection whose handshake is done.
async fn handshaken(server: &TestServer) -> Socket {
    let mut socket = open(server, "").await.expect("upgrade");
    socket
        .send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}"))
        .await
        .expect("handshake");
    assert_eq!(next_text(&mut socket).await, "{}\u{1e}");
    socket
}

/// The next WS message, which must be Text (JS clients fail on Binary).
async fn next_text(socket: &mut Socket) -> String {
    match within("a WS message", SECOND, socket.next()).await {
        Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
        other => panic!("expected a Text message, got {other:?}"),
    }
}

async fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.expect("send");
}

fn status_of(result: Result<Socket, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got a socket"),
    }
}

async fn negotiate(server: &TestServer, query: &str) -> Value {
    let url = format!("http://{}{HUB_PATH}/negotiate{query}", server.addr);
    let body = post(&url).await;
    serde_json::from_str(&body).expect("JSON body")
}

/// A bare HTTP/1.1 POST, to keep the test independent of the client under test.
async fn post(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(url).expect("URL");
    let addr = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[tokio::test]
async fn negotiate_answers_v1_with_a_distinct_token_and_v0_without_one() {
    let server = TestServer::start(quiet_options()).await;
    let v1 = negotiate(&server, "?negotiateVersion=1").await;
    assert_eq!(v1["negotiateVersion"], 1);
    assert_ne!(v1["connectionId"], v1["connectionToken"]);
    assert_eq!(
        v1["availableTransports"],
        json!([{ "transport": "WebSockets", "transferFormats": ["Text", "Binary"] }])
    );
    let v0 = negotiate(&server, "").await;
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(v0.get("connectionToken").is_none());
    let bad = negotiate(&server, "?negotiateVersion=abc").await;
    assert_eq!(
        bad,
        json!({ "error": "The client requested a non-integer protocol version." })
    );

    // v0: the connection id is what goes into `id=`.
    let v0_id = v0["connectionId"].as_str().expect("id").to_owned();
    assert!(open(&server, &format!("?id={v0_id}")).await.is_ok());
}

#[tokio::test]
async fn the_upgrade_answers_404_for_unknown_ids_and_409_for_a_second_socket() {
    let server = TestServer::start(quiet_options()).await;
    assert_eq!(status_of(open(&server, "?id=unknown").await), 404);
    let negotiated = negotiate(&server, "?negotiateVersion=1").await;
    let token = negotiated["connectionToken"].as_str().expect("token");
    let _first = open(&server, &format!("?id={token}"))
        .await
        .expect("first socket");
    assert_eq!(status_of(open(&server, &format!("?id={token}")).await), 409);
    let by_public_id = negotiated["connectionId"].as_str().expect("id");
    assert_eq!(
        status_of(open(&server, &format!("?id={by_public_id}")).await),
        404,
        "the public id is not the token"
    );
}

#[tokio::test]
async fn handshake_refusals_use_the_aspnet_core_texts() {
    let server = TestServer::start(quiet_options()).await;
    for (request, reply) in [
        (
            "{\"protocol\":\"xml\",\"version\":1}\u{1e}",
            "{\"error\":\"The protocol 'xml' is not supported.\"}\u{1e}",
        ),
        (
            "{\"protocol\":\"json\",\"version\":3}\u{1e}",
            "{\"error\":\"The server does not support version 3 of the 'json' protocol.\"}\u{1e}",
        ),
    ] {
        let mut socket = open(&server, "").await.expect("upgrade");
        send(&mut socket, request).await;
        assert_eq!(next_text(&mut socket).await, reply);
        assert!(matches!(
            within("close", SECOND, socket.next()).await,
            Some(Ok(Message::Close(_))) | None
        ));
    }
}

#[tokio::test]
async fn records_sharing_the_handshake_message_are_handled() {
    let server = TestServer::start(quiet_options()).await;
    let mut socket = open(&server, "").await.expect("upgrade");
    send(
        &mut socket,
        "{\"protocol\":\"json\",\"version\":1}\u{1e}{\"type\":1,\"invocationId\":\"0\",\"target\":\"Add\",\"arguments\":[40,2]}\u{1e}",
    )
    .await;
    let mut received = String::new();
    while !received.contains("\"result\"") {
        received.push_str(&next_text(&mut socket).await);
    }
    assert_eq!(
        received,
        "{}\u{1e}{\"type\":3,\"invocationId\":\"0\",\"result\":42}\u{1e}"
    );
}

#[tokio::test]
async fn the_handshake_reply_and_on_connected_pushes_share_one_message() {
    let hub = TestHub {
        welcome: true,
        ..TestHub::default()
    };
    let server = TestServer::start_with(hub, quiet_options()).await;
    let mut socket = open(&server, "").await.expect("upgrade");
    send(&mut socket, "{\"protocol\":\"json\",\"version\":1}\u{1e}").await;
    let first = next_text(&mut socket).await;
    assert!(
        first.starts_with("{}\u{1e}{\"type\":1,\"target\":\"Welcome\",\"arguments\":[\""),
        "{first:?}"
    );
    assert!(first.ends_with("\"]}\u{1e}"));
}

#[tokio::test]
async fn results_errors_and_non_blocking_calls_follow_aspnet_core() {
    let server = TestServer::start(quiet_options()).await;
    let mut socket = handshaken(&server).await;
    send(
        &mut socket,
        "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Reset\",\"arguments\":[]}\u{1e}",
    )
    .await;
    assert_eq!(
        next_text(&mut socket).await,
        "{\"type\":3,\"invocationId\":\"1\",\"result\":null}\u{1e}"
    );
    // No invocation id: no reply, not even for an unknown method.
    send(
        &mut socket,
        "{\"type\":1,\"target\":\"Nope\",\"arguments\":[]}\u{1e}",
    )
    .await;
    send(&mut socket, "{\"type\":1,\"invocationId\":\"9\",\"target\":\"Nope\",\"arguments\":[],\"headers\":{\"a\":\"b\"}}\u{1e}").await;
    assert_eq!(
        next_text(&mut socket).await,
        "{\"type\":3,\"invocationId\":\"9\",\"error\":\"Unknown hub method 'Nope'\"}\u{1e}"
    );
    // Unknown types are ignored.
    send(&mut socket, "{\"type\":99,\"x\":1}\u{1e}{\"type\":1,\"invocationId\":\"2\",\"target\":\"Add\",\"arguments\":[1]}\u{1e}").await;
    assert_eq!(
        next_text(&mut socket).await,
        "{\"type\":3,\"invocationId\":\"2\",\"result\":1}\u{1e}"
    );
}

#[tokio::test]
async fn a_missing_arguments_property_closes_with_an_error_and_no_completion() {
    let server = TestServer::start(quiet_options()).await;
    let mut socket = handshaken(&server).await;
    send(
        &mut socket,
        "{\"type\":1,\"invocationId\":\"5\",\"target\":\"Reset\"}\u{1e}",
    )
    .await;
    assert_eq!(
        next_text(&mut socket).await,
        "{\"type\":7,\"error\":\"Connection closed with an error.\",\"allowReconnect\":true}\u{1e}"
    );
    match within("WS close", SECOND, socket.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected WS close 1000, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cancelled_stream_still_ends_with_a_completion() {
    let server = TestServer::start(quiet_options()).await;
    let mut socket = handshaken(&server).await;
    send(
        &mut socket,
        "{\"type\":4,\"invocationId\":\"3\",\"target\":\"Counter\",\"arguments\":[2]}\u{1e}",
    )
    .await;
    let mut received = String::new();
    while !received.contains("\"type\":3") {
        received.push_str(&next_text(&mut socket).await);
    }
    assert_eq!(
        received,
        "{\"type\":2,\"invocationId\":\"3\",\"item\":0}\u{1e}{\"type\":2,\"invocationId\":\"3\",\"item\":1}\u{1e}{\"type\":3,\"invocationId\":\"3\"}\u{1e}"
    );

    send(
        &mut socket,
        "{\"type\":4,\"invocationId\":\"4\",\"target\":\"Endless\",\"arguments\":[1]}\u{1e}",
    )
    .await;
    assert!(next_text(&mut socket).await.contains("\"item\":0"));
    send(&mut socket, "{\"type\":5,\"invocationId\":\"4\"}\u{1e}").await;
    let mut tail = String::new();
    while !tail.contains("\"type\":3") {
        tail.push_str(&next_text(&mut socket).await);
    }
    assert!(
        tail.ends_with("{\"type\":3,\"invocationId\":\"4\"}\u{1e}"),
        "{tail:?}"
    );
}

#[tokio::test]
async fn a_client_close_is_answered_with_close_and_ws_close() {
    let server = TestServer::start(quiet_options()).await;
    let mut socket = handshaken(&server).await;
    send(&mut socket, "{\"type\":7}\u{1e}").await;
    assert_eq!(next_text(&mut socket).await, "{\"type\":7}\u{1e}");
    assert!(matches!(
        within("WS close", SECOND, socket.next()).await,
        Some(Ok(Message::Close(_)))
    ));
}
