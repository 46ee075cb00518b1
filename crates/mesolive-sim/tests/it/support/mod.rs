//! Test support for the simulator suites: start a simulator on free ports, connect the
//! project's own SignalR client to its hubs, call the admin API.

use std::time::Duration;

use mesolive_api::wire::envelope::Envelope;
use mesolive_api::wire::{self, args, history};
use mesolive_sim::{AdminClient, AdminError, Hub, RunningSim, SimOptions, Simulator, Timing};
use serde_json::{Value, json};
use signalr::{Callback, CallbackReceiver, ConnectOptions, Connection, SignalrError};

/// How long any awaited condition may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// Fast timings so the suites stay quick.
pub(crate) fn fast_options() -> SimOptions {
    SimOptions {
        timing: Timing {
            prepare_delay: Duration::from_millis(40),
            fill_delay: Duration::from_millis(40),
            stream_interval: Duration::from_millis(50),
            signal_interval: None,
        },
        ..SimOptions::default()
    }
}

/// A running simulator and an admin client for it.
pub(crate) struct TestSim {
    pub sim: RunningSim,
    pub admin: Admin,
}

pub(crate) async fn start() -> TestSim {
    start_with(fast_options()).await
}

pub(crate) async fn start_with(options: SimOptions) -> TestSim {
    let sim = Simulator::start(options).await.expect("simulator starts");
    let admin = Admin::new(sim.admin_url());
    TestSim { sim, admin }
}

impl TestSim {
    pub(crate) fn options(&self, hub: Hub) -> ConnectOptions {
        let url = self.sim.hub_url(hub).parse().expect("hub URL");
        let mut options = ConnectOptions::new(url).with_access_token(self.sim.token());
        options.invoke_timeout = Duration::from_secs(5);
        options
    }

    pub(crate) async fn connect(&self, hub: Hub) -> Connection {
        Connection::connect(self.options(hub))
            .await
            .expect("hub connects")
    }

    pub(crate) async fn try_connect(
        &self,
        hub: Hub,
        token: &str,
    ) -> Result<Connection, SignalrError> {
        let url = self.sim.hub_url(hub).parse().expect("hub URL");
        Connection::connect(ConnectOptions::new(url).with_access_token(token)).await
    }
}

/// Calls a hub method with one args object and reads the envelope.
pub(crate) async fn call(connection: &Connection, method: &str, arguments: Value) -> Envelope {
    let raw = connection
        .invoke_raw(method, wire::call_args(arguments))
        .await
        .unwrap_or_else(|err| panic!("{method} failed: {err}"));
    Envelope::from_result(raw)
}

/// Like [`call`], but the envelope must be a success; returns its data.
pub(crate) async fn ok(connection: &Connection, method: &str, arguments: Value) -> Value {
    let envelope = call(connection, method, arguments).await;
    assert_eq!(
        envelope.status.as_str(),
        "Success",
        "{method} answered {}",
        envelope.raw
    );
    envelope.data
}

/// Every event after `after` through `GetEventsSince`, following continuation tokens, with
/// `limit` per page; returns the events and the number of pages read.
pub(crate) async fn replay(events: &Connection, after: i64, limit: u32) -> (Vec<Value>, usize) {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let data = ok(
            events,
            "GetEventsSince",
            args::events_since(after, limit, token.as_deref()),
        )
        .await;
        let page = history::read_page(data).expect("a history page");
        pages += 1;
        all.extend(page.events.into_iter().map(|e| {
            let mut payload = e.payload;
            payload["EventType"] = json!(e.event_type);
            payload
        }));
        match page.continuation {
            Some(next) => token = Some(next),
            None => return (all, pages),
        }
    }
}

/// The next callback within [`PATIENCE`].
pub(crate) async fn next_callback(callbacks: &mut CallbackReceiver) -> Callback {
    tokio::time::timeout(PATIENCE, callbacks.recv())
        .await
        .expect("a callback in time")
        .expect("the connection is open")
}

/// The next callback with `target`, skipping others.
pub(crate) async fn next_of(callbacks: &mut CallbackReceiver, target: &str) -> Value {
    loop {
        let callback = next_callback(callbacks).await;
        if callback.target == target {
            return callback.arguments.into_iter().next().unwrap_or(Value::Null);
        }
    }
}

/// A JSON client of the admin API: the library's, with test assertions.
#[derive(Clone)]
pub(crate) struct Admin {
    client: AdminClient,
}

impl Admin {
    pub(crate) fn new(base: String) -> Admin {
        signalr::tls::install_default_provider();
        Admin {
            client: AdminClient::new(base),
        }
    }

    /// POST with a JSON body; returns the HTTP status and the JSON answer.
    pub(crate) async fn post_raw(&self, path: &str, body: Value) -> (u16, Value) {
        match self.client.post(path, body).await {
            Ok(answer) => (200, answer),
            Err(AdminError::Refused { status, body, .. }) => {
                (status, serde_json::from_str(&body).unwrap_or(Value::Null))
            }
            Err(err) => panic!("admin API reachable: {err}"),
        }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.post_raw(path, body).await;
        assert_eq!(status, 200, "POST {path}: {answer}");
        answer
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        self.client
            .get(path)
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    pub(crate) async fn delete(&self, path: &str) -> Value {
        self.client
            .delete(path)
            .await
            .unwrap_or_else(|err| panic!("DELETE {path}: {err}"))
    }

    pub(crate) async fn faults(&self, patch: Value) -> Value {
        self.post("/faults", patch).await
    }

    pub(crate) async fn latest_seq(&self) -> i64 {
        self.get("/stats").await["latest_event_seq_id"]
            .as_i64()
            .expect("latest_event_seq_id")
    }

    pub(crate) async fn ledger(&self) -> Value {
        self.get("/ledger").await
    }

    pub(crate) async fn fault_count(&self, kind: &str) -> u64 {
        self.get("/stats").await["faults_injected"][kind]
            .as_u64()
            .unwrap_or(0)
    }
}
