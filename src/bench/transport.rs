//! (1) The raw transport ceiling: callbacks per second that the project's SignalR client
//! receives and decodes from the simulator on loopback, with a consumer that drops them. No
//! store, no effects: what any durable processing is measured against.

use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use tokio::sync::oneshot;

use super::harness::{BenchSim, on_own_runtime, progress, rate};
use super::report::Figure;
use super::{BenchError, Sizes};
use mesolive_api::client::{EventHub, HubClient};
use mesolive_sim::Hub;
use signalr::{CallbackReceiver, ConnectOptions, Connection, SignalrError};

/// Longest a burst may take to arrive.
const BURST_LIMIT: Duration = Duration::from_secs(120);

/// Runs the scenario `runs` times.
pub(super) async fn run(runs: usize, sizes: &Sizes) -> Result<Figure, BenchError> {
    let mut samples = Vec::with_capacity(runs);
    for run in 1..=runs {
        let per_second = once(sizes.transport_burst).await?;
        progress(format_args!(
            "1 transport run {run}/{runs}: {per_second:.0} callbacks/s"
        ));
        samples.push(per_second);
    }
    Ok(
        Figure::new("1 transport", "callbacks/s decoded", "events/s", samples).note(format!(
            "burst of {} events, first to last callback",
            sizes.transport_burst
        )),
    )
}

async fn once(burst: u64) -> Result<f64, BenchError> {
    let sim = BenchSim::start(2).await?;
    let measured = measure(&sim, burst).await;
    sim.stop().await;
    measured
}

/// The client connects, subscribes and counts on a runtime of its own (like the daemon in
/// (2)), so that its first callback is timed when it arrives, not when a worker shared with
/// the simulator gets to it.
async fn measure(sim: &BenchSim, burst: u64) -> Result<f64, BenchError> {
    let url = Url::parse(&sim.running.hub_url(Hub::Event))
        .map_err(|err| BenchError::Child(format!("hub URL: {err}")))?;
    let options = ConnectOptions::new(url).with_access_token(sim.running.token());
    let after = sim.admin.latest_seq().await?;
    let target = after + i64::try_from(burst).unwrap_or(i64::MAX);
    let (subscribed, ready) = oneshot::channel();
    let (_thread, counted) = on_own_runtime("client", move || {
        receive(options, subscribed, after, target)
    })?;
    // A client that failed to subscribe drops `subscribed`; its error comes with `counted`.
    if ready.await.is_ok() {
        sim.admin.emit(burst).await?;
    }
    let (received, elapsed) = match tokio::time::timeout(BURST_LIMIT, counted).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => return Err(BenchError::Child("the client thread panicked".into())),
        Err(_) => {
            return Err(BenchError::Timeout {
                what: format!("{burst} callbacks"),
                after: BURST_LIMIT,
            });
        }
    };
    Ok(rate(received, elapsed))
}

/// Connects and subscribes, says so, then receives callbacks until one carries `target`'s
/// EventSeqId; how many of the burst arrived and the time from the first to the last.
async fn receive(
    options: ConnectOptions,
    subscribed: oneshot::Sender<()>,
    after: i64,
    target: i64,
) -> Result<(u64, Duration), BenchError> {
    let connection = Arc::new(Connection::connect(options).await?);
    let mut callbacks = connection
        .take_callbacks()
        .ok_or_else(|| BenchError::Child("callback queue already taken".into()))?;
    EventHub(HubClient::new(connection.clone()))
        .subscribe(None)
        .await?;
    let _ = subscribed.send(());
    let counted = count(&mut callbacks, after, target).await;
    connection.close().await;
    counted
}

async fn count(
    callbacks: &mut CallbackReceiver,
    after: i64,
    target: i64,
) -> Result<(u64, Duration), BenchError> {
    let mut first: Option<Instant> = None;
    let mut received = 0u64;
    while let Some(callback) = callbacks.recv().await {
        let seq = callback
            .arguments
            .first()
            .and_then(|payload| payload.get("EventSeqId"))
            .and_then(serde_json::Value::as_i64);
        let Some(seq) = seq.filter(|seq| *seq > after) else {
            continue;
        };
        let start = *first.get_or_insert_with(Instant::now);
        received += 1;
        if seq >= target {
            // The first callback's own time is not measured: `received - 1` intervals.
            return Ok((received.saturating_sub(1), start.elapsed()));
        }
    }
    Err(BenchError::Signalr(SignalrError::Transport(
        "the connection ended before the burst arrived".into(),
    )))
}
