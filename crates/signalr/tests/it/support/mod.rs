//! Test support: a hub with one method per behaviour under test, served on 127.0.0.1:0. The
//! conformance test (`conformance.rs`) serves the same hub to the official JavaScript client.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use serde_json::{Value, json};
use signalr::{ConnectOptions, Hub, HubHost, HubItems, HubOptions, Reply, ServerConnection};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use url::Url;

/// What the server side observed, for assertions.
#[derive(Default)]
pub(crate) struct Observed {
    /// Items produced by `Endless` streams.
    pub endless_produced: AtomicU64,
    /// `Endless` streams whose producer was dropped (cancelled or disconnected).
    pub endless_dropped: AtomicU64,
    pub endless_dropped_signal: Notify,
    pub disconnected: AtomicU64,
    pub disconnected_signal: Notify,
    /// Non-blocking `Notify` sends received.
    pub notified: AtomicU64,
}

#[derive(Default)]
pub(crate) struct TestHub {
    pub observed: Arc<Observed>,
    /// Push a `Welcome` callback from `on_connected`.
    pub welcome: bool,
}

fn arg_u64(arguments: &[Value], index: usize) -> u64 {
    arguments.get(index).and_then(Value::as_u64).unwrap_or(0)
}

impl Hub for TestHub {
    fn on_connected(&self, connection: &ServerConnection) -> impl Future<Output = ()> + Send {
        let connection = connection.clone();
        let welcome = self.welcome;
        async move {
            if welcome {
                let _ = connection
                    .send("Welcome", vec![json!(connection.id())])
                    .await;
            }
        }
    }

    fn invoke(
        &self,
        connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> impl Future<Output = Reply> + Send {
        let connection = connection.clone();
        let method = method.to_owned();
        let observed = self.observed.clone();
        async move {
            match method.as_str() {
                "Add" => Reply::Value(json!(arguments.iter().filter_map(Value::as_i64).sum::<i64>())),
                "Echo" => Reply::Value(arguments.into_iter().next().unwrap_or(Value::Null)),
                "Reset" => Reply::void(),
                "Fail" => Reply::Error(
                    "An unexpected error occurred invoking 'Fail' on the server. HubException: boom"
                        .to_owned(),
                ),
                "Notify" => {
                    observed.notified.fetch_add(1, Ordering::SeqCst);
                    Reply::void()
                }
                "Sleep" => {
                    tokio::time::sleep(Duration::from_millis(arg_u64(&arguments, 0))).await;
                    Reply::Value(json!("slept"))
                }
                "Push" => {
                    let count = arg_u64(&arguments, 0);
                    for seq in 0..count {
                        if connection.send("Seq", vec![json!(seq)]).await.is_err() {
                            return Reply::Error("connection closed while pushing".to_owned());
                        }
                    }
                    Reply::Value(json!(count))
                }
                "Big" => Reply::Value(json!("x".repeat(arg_u64(&arguments, 0) as usize))),
                "AskClient" => match connection.invoke_client("GetValue", vec![]).await {
                    Ok(value) => Reply::Value(json!({ "ok": value })),
                    Err(error) => Reply::Value(json!({ "error": error.to_string() })),
                },
                "Swallow" => Reply::Swallow,
                "CancelledStreams" => {
                    Reply::Value(json!(observed.endless_dropped.load(Ordering::SeqCst)))
                }
                other => Reply::unknown_method(other),
            }
        }
    }

    fn stream(
        &self,
        _connection: &ServerConnection,
        method: &str,
        arguments: Vec<Value>,
    ) -> Result<HubItems, String> {
        let count = arg_u64(&arguments, 0);
        match method {
            "Counter" => Ok(stream::iter((0..count).map(|i| Ok(json!(i)))).boxed()),
            "FailAfter" => Ok(stream::iter((0..count).map(|i| Ok(json!(i))))
                .chain(stream::once(async {
                    Err("An error occurred on the server while streaming results.".to_owned())
                }))
                .boxed()),
            "Endless" => Ok(endless(self.observed.clone(), count)),
            other => Err(format!("Unknown hub method '{other}'")),
        }
    }

    fn on_disconnected(&self, _connection: &ServerConnection) -> impl Future<Output = ()> + Send {
        self.observed.disconnected.fetch_add(1, Ordering::SeqCst);
        self.observed.disconnected_signal.notify_waiters();
        async {}
    }
}

/// Counts forever, one item per `delay_ms`; tells `observed` when it is dropped.
fn endless(observed: Arc<Observed>, delay_ms: u64) -> HubItems {
    struct DropFlag(Arc<Observed>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.endless_dropped.fetch_add(1, Ordering::SeqCst);
            self.0.endless_dropped_signal.notify_waiters();
        }
    }
    stream::unfold((DropFlag(observed), 0u64), move |(flag, next)| async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        flag.0.endless_produced.fetch_add(1, Ordering::SeqCst);
        Some((Ok(json!(next)), (flag, next + 1)))
    })
    .boxed()
}

pub(crate) const HUB_PATH: &str = "/hub";

/// A hub host serving [`TestHub`] on an ephemeral port.
pub(crate) struct TestServer {
    pub host: HubHost<TestHub>,
    pub addr: SocketAddr,
    serving: JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(options: HubOptions) -> TestServer {
        Self::start_with(TestHub::default(), options).await
    }

    pub(crate) async fn start_with(hub: TestHub, options: HubOptions) -> TestServer {
        let host = HubHost::new(HUB_PATH, hub, options);
        let (addr, serving) = serve(host.router()).await;
        TestServer {
            host,
            addr,
            serving,
        }
    }

    pub(crate) fn observed(&self) -> &Observed {
        &self.host.hub().observed
    }

    pub(crate) fn hub_url(&self) -> Url {
        Url::parse(&format!("http://{}{HUB_PATH}", self.addr)).expect("valid URL")
    }

    /// Client options with short intervals, so timing tests take well under a second.
    pub(crate) fn client_options(&self) -> ConnectOptions {
        fast_client_options(self.hub_url())
    }

    /// The server process "dies": no new connections, and every socket is dropped without a
    /// goodbye.
    pub(crate) fn kill(&self) {
        self.serving.abort();
        self.host.abort_all();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Serves `router` on 127.0.0.1:0.
pub(crate) async fn serve(router: axum::Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local address");
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, serving)
}

pub(crate) fn fast_client_options(url: Url) -> ConnectOptions {
    ConnectOptions {
        http_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(2),
        keep_alive_interval: Duration::from_millis(100),
        server_timeout: Duration::from_secs(2),
        invoke_timeout: Duration::from_secs(10),
        ..ConnectOptions::new(url)
    }
}

/// Server options with short intervals.
pub(crate) fn fast_server_options() -> HubOptions {
    HubOptions {
        keep_alive_interval: Duration::from_millis(100),
        client_timeout: Duration::from_secs(2),
        ..HubOptions::default()
    }
}

/// A hub whose WebSocket endpoint runs `on_socket` instead of SignalR (negotiate answers a
/// well-formed v1 response): a server that breaks the protocol in a scripted way.
pub(crate) async fn scripted_hub<F, Fut>(on_socket: F) -> Url
where
    F: Fn(axum::extract::ws::WebSocket) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let router = axum::Router::new()
        .route(
            "/scripted/negotiate",
            axum::routing::post(|| async {
                axum::Json(json!({
                    "negotiateVersion": 1, "connectionId": "c", "connectionToken": "t",
                    "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text"]}]
                }))
            }),
        )
        .route(
            "/scripted",
            axum::routing::get(
                move |upgrade: axum::extract::ws::WebSocketUpgrade| async move {
                    upgrade.on_upgrade(on_socket)
                },
            ),
        );
    // The serving task is detached; it ends with the test's runtime.
    let (addr, _) = serve(router).await;
    Url::parse(&format!("http://{addr}/scripted")).expect("URL")
}
