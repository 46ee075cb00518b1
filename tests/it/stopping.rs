//! Stopping never waits on a server: the daemon as a real process against servers that stop
//! answering — a black-hole hub address (accepts TCP, never answers) at startup and during a
//! reconnect, the simulator stopping at the same moment as the daemon, a simulator that never
//! answers Close frames — and a second signal in the middle of a drain. The time bounds are the
//! README's stop contract (one signal: ≤ 1 s with nothing to close, ≤ 2 s with hubs to close; a
//! second signal: ≤ 200 ms), and every stop leaves the store consistent.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesolive_sim::SimOptions;
use serde_json::{Value, json};
use testkit::wait_for;

use crate::support::daemon::{Daemon, Sim};
use crate::support::front::{Behaviour, Front};

/// How long the daemon may take to become ready.
const READY: Duration = Duration::from_secs(20);
/// Waiting for an exit that should come much sooner: beyond it the test fails on the bound.
const EXIT_WAIT: Duration = Duration::from_secs(30);
/// One signal, no hub connected: the contract.
const STOP_UNCONNECTED: Duration = Duration::from_secs(1);
/// One signal, hubs to close: the contract.
const STOP_CONNECTED: Duration = Duration::from_secs(2);
/// A second signal: the contract.
const STOP_AT_ONCE: Duration = Duration::from_millis(200);

/// The README's default handshake timeout: a pending connect must not be waited out.
const DEFAULT_HANDSHAKE: (&str, &str) = ("MESOLIVE__HUBS__HANDSHAKE_TIMEOUT", "15s");

/// Sends `signal` and returns the exit status and how long after the signal it came.
async fn signal_and_wait(daemon: &mut Daemon, signal: i32) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    daemon.signal(signal);
    let status = daemon.wait_exit(EXIT_WAIT).await;
    let took = sent.elapsed();
    eprintln!("measured: exited {took:?} after the signal");
    (status, took)
}

/// The intents `state --json` still shows as in flight, by state.
fn intents_in_flight(daemon: &Daemon) -> Vec<String> {
    let state: Value = serde_json::from_str(&daemon.state_json()).expect("state --json");
    state["intents_in_flight"]
        .as_array()
        .expect("intents_in_flight")
        .iter()
        .map(|intent| intent["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Nothing was left mid-send: every intent is final, or `abandoned` for the next start.
fn assert_consistent(daemon: &Daemon) {
    let left: Vec<String> = intents_in_flight(daemon)
        .into_iter()
        .filter(|state| state == "sending" || state == "sent" || state == "pending")
        .collect();
    assert!(
        left.is_empty(),
        "intents left in flight: {left:?}; log:\n{}",
        daemon.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_hub_connect_hangs_at_startup_exits_within_a_second() {
    let sim = Sim::start(SimOptions::default()).await;
    let front = Front::start(sim.hub_addr(), None).await;
    front.set(Behaviour::Silent);
    let dir = testkit::temp_dir();
    let base_url = front.base_url();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[("MESOLIVE__HUBS__BASE_URL", &base_url), DEFAULT_HANDSHAKE],
    );
    wait_for("a connect held by the black hole", READY, || async {
        front.held_silent() >= 1
    })
    .await;
    let (status, took) = signal_and_wait(&mut daemon, libc::SIGTERM).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        took <= STOP_UNCONNECTED,
        "exited {took:?} after SIGTERM (contract {STOP_UNCONNECTED:?}); log:\n{}",
        daemon.log_text()
    );
    assert_consistent(&daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_reconnect_hangs_after_an_outage_exits_within_a_second() {
    let sim = Sim::start(SimOptions::default()).await;
    let front = Front::start(sim.hub_addr(), None).await;
    let dir = testkit::temp_dir();
    let base_url = front.base_url();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[("MESOLIVE__HUBS__BASE_URL", &base_url), DEFAULT_HANDSHAKE],
    );
    daemon.wait_ready(READY).await;
    front.set(Behaviour::Silent);
    sim.drop_connections().await;
    wait_for("a reconnect held by the black hole", READY, || async {
        front.held_silent() >= 1
    })
    .await;
    let (status, took) = signal_and_wait(&mut daemon, libc::SIGTERM).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        took <= STOP_UNCONNECTED,
        "exited {took:?} after SIGTERM (contract {STOP_UNCONNECTED:?}); log:\n{}",
        daemon.log_text()
    );
    assert_consistent(&daemon);
}

/// `mesolive-supervisor sim` as a process, stopped with SIGTERM like the stand-in of a server
/// that shuts down (its listening socket outlives its accept loop while it says goodbye).
struct SimProcess {
    child: Child,
    hubs: String,
}

impl SimProcess {
    fn start() -> SimProcess {
        let mut child = Command::new(crate::support::daemon::BIN)
            .args(["sim", "--port", "0", "--admin-port", "0"])
            .env_clear()
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the simulator starts");
        let stderr = child.stderr.take().expect("stderr");
        let (found, listening) = std::sync::mpsc::channel();
        // Keep reading stderr to the end: a closed pipe would make its logger fail.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("admin=") {
                    let _ = found.send(line);
                }
            }
        });
        let line = listening
            .recv_timeout(Duration::from_secs(10))
            .expect("the simulator's listening line");
        let hubs = line
            .split_whitespace()
            .find_map(|part| part.strip_prefix("hubs="))
            .expect("hubs= in the listening line")
            .to_owned();
        SimProcess { child, hubs }
    }

    fn terminate(&self) {
        // SAFETY: kill(2) on a child pid we own; no memory is touched.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM to the simulator");
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator (a process) and the daemon are stopped with SIGTERM at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stopping_with_the_daemon_does_not_hold_up_its_stop() {
    // The daemon's helper wants a simulator for its defaults; the process is the server here.
    let defaults = Sim::start(SimOptions::default()).await;
    let server = SimProcess::start();
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &defaults,
        dir.path(),
        &[
            ("MESOLIVE__HUBS__BASE_URL", &server.hubs),
            ("MESOLIVE_API_KEY", mesolive_sim::DEFAULT_TOKEN),
            DEFAULT_HANDSHAKE,
        ],
    );
    daemon.wait_ready(READY).await;
    server.terminate();
    let (status, took) = signal_and_wait(&mut daemon, libc::SIGTERM).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        took <= STOP_CONNECTED,
        "exited {took:?} after SIGTERM (contract {STOP_CONNECTED:?}); log:\n{}",
        daemon.log_text()
    );
    assert_consistent(&daemon);
}

/// A daemon, ready, against a simulator that leaves every Close handshake unanswered.
async fn ready_against_a_server_ignoring_close(sim: &Sim, dir: &std::path::Path) -> Daemon {
    let daemon = Daemon::spawn(sim, dir, &[]);
    daemon.wait_ready(READY).await;
    sim.faults(json!({"ignore_close": true})).await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_never_waits_on_a_server_that_ignores_close_frames() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = ready_against_a_server_ignoring_close(&sim, dir.path()).await;
    let (status, took) = signal_and_wait(&mut daemon, libc::SIGTERM).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        took <= STOP_CONNECTED,
        "exited {took:?} after SIGTERM (contract {STOP_CONNECTED:?}); log:\n{}",
        daemon.log_text()
    );
    let ignored = sim.get("/stats").await["faults_injected"]["ignore_close"]
        .as_u64()
        .unwrap_or(0);
    assert!(ignored >= 1, "the simulator ignored the close handshake");
    assert_consistent(&daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_while_closing_stops_at_once() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = ready_against_a_server_ignoring_close(&sim, dir.path()).await;
    let first = Instant::now();
    daemon.signal(libc::SIGTERM);
    tokio::time::sleep_until((first + Duration::from_millis(100)).into()).await;
    assert!(
        daemon.is_running(),
        "still closing the hubs 100 ms after the first SIGTERM"
    );
    let (status, took) = signal_and_wait(&mut daemon, libc::SIGTERM).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        took <= STOP_AT_ONCE,
        "exited {took:?} after the second SIGTERM, {:?} after the first (contract {STOP_AT_ONCE:?}); log:\n{}",
        first.elapsed(),
        daemon.log_text()
    );
    assert_consistent(&daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_stops_at_once_and_abandons_the_intent() {
    let mut options = SimOptions {
        positions: 0,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    let sim = Sim::start(options).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__AUTOMATION__MODE", "paper"),
            ("MESOLIVE__HUBS__INVOCATION_TIMEOUT", "60s"),
            ("MESOLIVE__SUPERVISOR__SHUTDOWN_GRACE", "60s"),
        ],
    );
    daemon.wait_ready(READY).await;
    // The prepare is applied and never answered: its intent stays in flight.
    sim.faults(json!({"lose_completion": {
        "method": "StartPreparePositionEntry", "count": 1, "mode": "silence"}}))
        .await;
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "On", "strategy_id": 101, "account": "PAPER-1"}),
    )
    .await;
    wait_for("the prepare intent sent", READY, || async {
        intents_in_flight(&daemon)
            .iter()
            .any(|state| state == "sent")
    })
    .await;
    daemon.signal(libc::SIGTERM);
    daemon
        .wait_log(&["waiting for in-flight workflows"], Duration::from_secs(5))
        .await;
    assert!(daemon.is_running(), "the drain waits for the workflow");
    let (status, took) = signal_and_wait(&mut daemon, libc::SIGTERM).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        took <= STOP_AT_ONCE,
        "exited {took:?} after the second SIGTERM (contract {STOP_AT_ONCE:?}); log:\n{}",
        daemon.log_text()
    );
    assert_eq!(
        intents_in_flight(&daemon),
        vec!["abandoned".to_owned()],
        "the in-flight intent is left for reconciliation"
    );
}
