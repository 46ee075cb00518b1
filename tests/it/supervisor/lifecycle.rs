//! The daemon as a real process against the simulator: startup order, readiness across an
//! outage, gap catch-up, metrics, bad credentials, graceful stop with sd_notify.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use mesolive_sim::SimOptions;
use serde_json::json;
use testkit::wait_for;

use crate::support::daemon::{Daemon, Sim, metric_value};

fn position_of(calls: &[(String, String)], hub: &str, method: &str) -> usize {
    calls
        .iter()
        .position(|(h, m)| h == hub && m == method)
        .unwrap_or_else(|| panic!("{hub}.{method} never called: {calls:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_in_runbook_order_and_reports_ready() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(Duration::from_secs(20)).await;

    let calls = sim.requests().await;
    let first_data = calls
        .iter()
        .position(|(h, _)| h == "data")
        .expect("a data call");
    let first_event = calls
        .iter()
        .position(|(h, _)| h == "event")
        .expect("an event call");
    for method in ["ListAgents", "ListAccounts", "ListStrategies"] {
        assert!(
            position_of(&calls, "control", method) < first_data,
            "{method} after data: {calls:?}"
        );
    }
    assert!(first_data < first_event, "data after event: {calls:?}");
    let replay = position_of(&calls, "event", "GetEventsSince");
    let subscribe = position_of(&calls, "event", "SubscribeToStrategies");
    assert!(
        replay < subscribe,
        "replay must precede subscribe: {calls:?}"
    );

    let text = daemon.metrics().await;
    assert_openmetrics_text(&text);
    assert_eq!(
        metric_value(&text, "mesolive_hub_connected{hub=\"event\"}"),
        Some(1.0)
    );
    assert!(metric_value(&text, "mesolive_monitors_running").is_some());
}

/// OpenMetrics text: every sample line is `name[{labels}] value` after its family's HELP and
/// TYPE (a counter family `x` has samples `x_total`), and the text ends with `# EOF`.
fn assert_openmetrics_text(text: &str) {
    assert!(text.ends_with("# EOF\n"), "no # EOF terminator: {text}");
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            let sample = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            typed.insert(sample);
            continue;
        }
        if line.starts_with("# HELP ") || line == "# EOF" || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
        let labels = &series[name.len()..];
        assert!(
            labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
            "bad labels: {line}"
        );
        assert!(typed.contains(name), "sample before its TYPE: {line}");
    }
    assert!(typed.len() > 10, "few metric families: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_an_outage_and_recovers() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(Duration::from_secs(20)).await;

    sim.post("/outage", json!({"ms": 1500})).await;
    wait_for(
        "readyz 503 during the outage",
        Duration::from_secs(5),
        || async { daemon.readyz().await == Some(503) },
    )
    .await;
    daemon.wait_ready(Duration::from_secs(15)).await;
    let reconnects = daemon
        .metric("mesolive_hub_reconnects_total{hub=\"event\"}")
        .await
        .unwrap_or(0.0);
    assert!(
        reconnects >= 1.0,
        "event hub reconnect counted: {reconnects}"
    );
    assert_eq!(daemon.cursor().await, Some(sim.latest_seq().await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_gap_is_caught_up_without_reconnecting() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(Duration::from_secs(20)).await;

    sim.post("/faults", json!({"suppress_events": 5})).await;
    sim.emit(5).await;
    // The suppressed events are in history only; the next live one reveals the jump.
    sim.emit(3).await;
    let latest = sim.latest_seq().await;
    wait_for(
        "cursor at the latest event",
        Duration::from_secs(5),
        || async { daemon.cursor().await == Some(latest) },
    )
    .await;
    let text = daemon.metrics().await;
    assert!(
        metric_value(&text, "mesolive_gap_catchups_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "mesolive_hub_reconnects_total{hub=\"event\"}"),
        Some(0.0),
        "no reconnect was needed"
    );
    let suppressed = sim.get("/stats").await["faults_injected"]["suppress_event"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(suppressed, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_fatal_without_a_retry_loop() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE_API_KEY", "wrong-key")]);
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(77), "log: {}", daemon.log_text());
    let log = daemon.log_text();
    let fatal: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("credentials refused"))
        .collect();
    assert!(!fatal.is_empty(), "a clear fatal line: {log}");
    assert!(!log.contains("wrong-key"), "the key never reaches the log");
    assert!(
        !log.contains("hub unavailable"),
        "a refused key is not retried: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_with_the_sd_notify_sequence() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let socket_env = socket_path.display().to_string();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "400000")],
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    sim.emit(200).await;
    // Let a few watchdog pings (every 200 ms) arrive, then stop.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let received = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let done = text.contains("STOPPING=1");
                    received.lock().unwrap().push(text);
                    if done {
                        return;
                    }
                }
            }
        })
    };
    wait_for(
        "two watchdog pings after READY",
        Duration::from_secs(5),
        || async {
            let messages = received.lock().unwrap();
            let ready = messages.iter().position(|m| m.contains("READY=1"));
            ready.is_some_and(|r| {
                messages[r..]
                    .iter()
                    .filter(|m| m.contains("WATCHDOG=1"))
                    .count()
                    >= 2
            })
        },
    )
    .await;
    let started = std::time::Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped within the grace"
    );
    reader.join().unwrap();

    let messages = received.lock().unwrap().clone();
    let ready = messages.iter().position(|m| m.contains("READY=1"));
    let stopping = messages.iter().position(|m| m.contains("STOPPING=1"));
    let pings_between = match (ready, stopping) {
        (Some(r), Some(s)) if r < s => messages[r..s]
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count(),
        _ => 0,
    };
    assert!(
        pings_between >= 2,
        "sequence READY → WATCHDOG… → STOPPING: {messages:?}"
    );
    // Everything received before the stop is committed.
    let latest = sim.latest_seq().await;
    let store = mesolive_supervisor::store::Store::open_read_only(&daemon.db)
        .await
        .unwrap();
    let cursor = store.cursor().await.unwrap();
    assert!(
        cursor.is_some_and(|c| c <= latest),
        "cursor {cursor:?} vs latest {latest}"
    );
    // The database reopens for writing (consistent, lock released).
    drop(store);
    let reopened = mesolive_supervisor::store::Store::open(
        &daemon.db,
        &mesolive_supervisor::store::StoreOptions::default(),
    )
    .await;
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_restarting_past_its_intensity_stops_the_daemon_non_zero() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__SUPERVISOR__RESTART_MAX", "2"),
            ("MESOLIVE__SUPERVISOR__RESTART_WINDOW", "60s"),
        ],
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    for drop in 1..=3 {
        sim.drop_connections().await;
        if drop < 3 {
            daemon.wait_ready(Duration::from_secs(10)).await;
        }
    }
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "log: {}", daemon.log_text());
    assert!(
        daemon.log_text().contains("restarted 3 times"),
        "{}",
        daemon.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probe_and_a_second_signal_stop_at_once() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    let probe = |ops: String| {
        std::process::Command::new(crate::support::daemon::BIN)
            .arg("health")
            .env_clear()
            .env("MESOLIVE__OPS__LISTEN", ops)
            .status()
            .unwrap()
    };
    let ops = daemon.ops().expect("ops address logged").to_string();
    let healthy = tokio::task::block_in_place(|| probe(ops.clone()));
    assert!(healthy.success(), "health probe of a ready daemon");
    sim.emit(2000).await;
    daemon.signal(libc::SIGTERM);
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    let unhealthy = tokio::task::block_in_place(|| probe(ops));
    assert_eq!(
        unhealthy.code(),
        Some(1),
        "health probe of a stopped daemon"
    );
    let reopened = mesolive_supervisor::store::Store::open(
        &daemon.db,
        &mesolive_supervisor::store::StoreOptions::default(),
    )
    .await;
    assert!(
        reopened.is_ok(),
        "consistent after a forced stop: {:?}",
        reopened.err()
    );
}
