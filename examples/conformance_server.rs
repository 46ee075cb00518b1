//! A hub for `tests/conformance/run.sh`: the official @microsoft/signalr client checks our
//! server side against it.
//!
//! Usage: `conformance_server [PORT]` (default 0: any free port). Prints
//! `listening on http://127.0.0.1:PORT/hubs/conformance` once it accepts connections, then
//! serves until killed. The bearer token is `conformance-token`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use mesolive_supervisor::signalr::{
    Hub, HubHost, HubItems, HubOptions, Reply, ServerAuth, ServerConnection,
};
use serde_json::{Value, json};

const HUB_PATH: &str = "/hubs/conformance";
const TOKEN: &str = "conformance-token";

#[derive(Default)]
struct ConformanceHub {
    /// `Endless` producers dropped by a cancel or a disconnect.
    cancelled_streams: Arc<AtomicU64>,
}

fn number(arguments: &[Value], index: usize) -> u64 {
    arguments.get(index).and_then(Value::as_u64).unwrap_or(0)
}

impl Hub for ConformanceHub {
    fn on_connected(&self, connection: &ServerConnection) -> impl Future<Output = ()> + Send {
        let connection = connection.clone();
        async move {
            let _ = connection
                .send("Welcome", vec![json!(connection.id())])
                .await;
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
        let cancelled = self.cancelled_streams.load(Ordering::SeqCst);
        async move {
            match method.as_str() {
                "Add" => Reply::Value(json!(
                    arguments.iter().filter_map(Value::as_i64).sum::<i64>()
                )),
                "Echo" => Reply::Value(arguments.into_iter().next().unwrap_or(Value::Null)),
                "Reset" => Reply::void(),
                "Fail" => Reply::Error(
                    "An unexpected error occurred invoking 'Fail' on the server. HubException: boom"
                        .to_owned(),
                ),
                "PushSequence" => {
                    let count = number(&arguments, 0);
                    for seq in 0..count {
                        if connection.send("Seq", vec![json!(seq)]).await.is_err() {
                            return Reply::Error("the connection closed".to_owned());
                        }
                    }
                    Reply::Value(json!(count))
                }
                "AskClient" => match connection.invoke_client("GetValue", vec![]).await {
                    Ok(value) => Reply::Value(json!({ "ok": value })),
                    Err(error) => Reply::Value(json!({ "error": error.to_string() })),
                },
                "CancelledStreams" => Reply::Value(json!(cancelled)),
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
        let count = number(&arguments, 0);
        match method {
            "Counter" => Ok(stream::iter((0..count).map(|i| Ok(json!(i)))).boxed()),
            "FailAfter" => Ok(stream::iter((0..count).map(|i| Ok(json!(i))))
                .chain(stream::once(async {
                    Err("An error occurred on the server while streaming results.".to_owned())
                }))
                .boxed()),
            "Endless" => Ok(endless(self.cancelled_streams.clone(), count)),
            other => Err(format!("Unknown hub method '{other}'")),
        }
    }
}

/// One item every `delay_ms`, forever; counts itself in `cancelled` when dropped.
fn endless(cancelled: Arc<AtomicU64>, delay_ms: u64) -> HubItems {
    struct CountDrop(Arc<AtomicU64>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    stream::unfold(
        (CountDrop(cancelled), 0u64),
        move |(guard, next)| async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Some((Ok(json!(next)), (guard, next + 1)))
        },
    )
    .boxed()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|port| port.parse().ok())
        .unwrap_or(0);
    let options = HubOptions {
        auth: Some(ServerAuth::bearer(TOKEN)),
        ..HubOptions::default()
    };
    let host = HubHost::new(HUB_PATH, ConformanceHub::default(), options);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}{HUB_PATH}", listener.local_addr()?);
    axum::serve(listener, host.router()).await
}
