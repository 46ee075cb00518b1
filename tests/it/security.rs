//! Security properties, tested on the real process: the API key never reaches a log line (even
//! at `trace`), an error, the metrics, the state report or any file of the database; TLS
//! certificates are verified by default and a private CA is trusted only when configured; the
//! ops listener and the simulator bind loopback by default.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mesolive_sim::SimOptions;
use mesolive_supervisor::config::Settings;
use mesolive_supervisor::store::WorkflowState;
use serde_json::json;
use testkit::wait_for;

use crate::support::daemon::{BIN, Daemon, Sim};
use crate::support::front::{Behaviour, Front, fixture_acceptor, tls_fixtures};

const READY: Duration = Duration::from_secs(20);
const SOON: Duration = Duration::from_secs(10);

/// Distinctive enough that any occurrence is the key itself.
const KEY: &str = "mlk-Q7x2Z9-distinctive-secret-4410";

/// Every file under `dir` (the database, its WAL and shared memory, the lock file, the log).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.push((path.display().to_string(), bytes));
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_reaches_logs_errors_metrics_reports_or_the_database() {
    let mut options = SimOptions {
        token: KEY.to_owned(),
        positions: 0,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    let sim = Sim::start(options).await;
    let front = Front::start(sim.hub_addr(), None).await;
    let dir = testkit::temp_dir();
    let base_url = front.base_url();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__HUBS__BASE_URL", &base_url),
            ("MESOLIVE__AUTOMATION__MODE", "paper"),
            ("MESOLIVE__LOG__FILTER", "trace"),
        ],
    );
    daemon.wait_ready(READY).await;

    // Some intents: a paper entry runs StartPreparePositionEntry and ApplyPaperFills, keyed.
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "On", "strategy_id": 101, "account": "PAPER-1"}),
    )
    .await;
    wait_for("a finished entry workflow", READY, || async {
        let store = daemon.store().await;
        let done = store
            .all_workflows()
            .await
            .unwrap()
            .iter()
            .any(|w| w.state == WorkflowState::Done);
        let _ = store.close().await;
        done
    })
    .await;
    // A reconnect of every hub.
    sim.drop_connections().await;
    daemon.wait_ready(READY).await;
    let metrics = daemon.metrics().await;
    let state_json = daemon.state_json();
    let state_table = Command::new(BIN)
        .args(["state", "--database"])
        .arg(&daemon.db)
        .env_clear()
        .output()
        .unwrap();

    // A refused WebSocket upgrade: fatal, with an error line that names the stage.
    front.set(Behaviour::UpgradeStatus(401));
    sim.drop_connections().await;
    let status = daemon.wait_exit(READY).await;
    assert_eq!(status.code(), Some(77), "log: {}", daemon.log_text());
    daemon
        .wait_log(&["credentials refused", "WebSocket upgrade"], SOON)
        .await;

    let log = daemon.log_text();
    assert!(
        log.lines().count() > 1_000 && log.contains("\"level\":\"TRACE\""),
        "the session was logged at trace level"
    );
    let mut artifacts = files_under(dir.path());
    artifacts.push(("/metrics".into(), metrics.into_bytes()));
    artifacts.push(("state --json".into(), state_json.into_bytes()));
    artifacts.push(("state".into(), state_table.stdout));
    artifacts.push(("state (stderr)".into(), state_table.stderr));
    assert!(
        artifacts
            .iter()
            .any(|(name, _)| name.ends_with("state.db-wal"))
            || artifacts.iter().any(|(name, _)| name.ends_with("state.db")),
        "the database was inspected"
    );
    for (name, bytes) in &artifacts {
        assert!(!contains(bytes, KEY), "the API key leaked into {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_filter_holds_for_every_target_and_an_empty_rust_log_counts_as_unset() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[("MESOLIVE__LOG__FILTER", "warn"), ("RUST_LOG", "")],
    );
    daemon.wait_ready(READY).await;
    // Every hub reconnects: WebSocket handshakes (whose library logs them at debug) and warnings.
    sim.drop_connections().await;
    daemon.wait_log(&["\"level\":\"WARN\""], SOON).await;
    daemon.wait_ready(READY).await;
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SOON).await.code(), Some(0));

    let log = daemon.log_text();
    for level in ["TRACE", "DEBUG", "INFO"] {
        let below = log
            .lines()
            .find(|line| line.contains(&format!("\"level\":\"{level}\"")));
        assert_eq!(below, None, "a {level} line under log.filter = warn");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_refused_unless_that_ca_is_configured() {
    let sim = Sim::start(SimOptions::default()).await;
    let front = Front::start(sim.hub_addr(), Some(fixture_acceptor())).await;
    assert!(front.base_url().starts_with("https://"));
    let dir = testkit::temp_dir();
    let base_url = front.base_url();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__HUBS__BASE_URL", &base_url)]);
    daemon
        .wait_errors("control_connect_transport", 1.0, SOON)
        .await;
    daemon
        .wait_log(&["hub unavailable", "invalid peer certificate"], SOON)
        .await;
    assert_eq!(daemon.readyz().await, Some(503));
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SOON).await.code(), Some(0));

    let ca = tls_fixtures().join("ca.pem").display().to_string();
    let mut trusted = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__HUBS__BASE_URL", &base_url),
            ("MESOLIVE__HUBS__EXTRA_CA_FILE", &ca),
        ],
    );
    trusted.wait_ready(READY).await;
    sim.emit(5).await;
    let latest = sim.latest_seq().await;
    wait_for("caught up over TLS", SOON, || async {
        trusted.cursor().await == Some(latest)
    })
    .await;
    trusted.signal(libc::SIGTERM);
    assert_eq!(trusted.wait_exit(SOON).await.code(), Some(0));
}

#[tokio::test]
async fn the_ops_listener_and_the_simulator_bind_loopback_by_default() {
    let settings = Settings::load_from(None, HashMap::new()).unwrap();
    let listen = settings.ops.listen;
    assert!(listen.ip().is_loopback(), "ops.listen defaults to {listen}");
    assert!(
        settings.hubs.extra_ca_file.as_os_str().is_empty(),
        "no extra trust by default"
    );
    assert!(settings.hubs.base_url.starts_with("https://"));

    let sim = Sim::start(SimOptions::default()).await;
    for url in [sim.running.hub_base_url(), sim.running.admin_url()] {
        let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        assert!(addr.ip().is_loopback(), "{url}");
    }
}
