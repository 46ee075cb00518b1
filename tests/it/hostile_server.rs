//! Hostile input from the server side, the daemon as a real process: events of every target with
//! fields of the wrong type, unknown enum members and targets, missing or malformed headers, an
//! EventSeqId going backwards, malformed SignalR records, a Close with an error, an oversized
//! message, a server whose history restarted, and HTTP-level misbehaviour (error statuses,
//! garbage, silence) through a front between the daemon and the simulator. Each case is
//! quarantined or retried, logged and counted; the process keeps running (or exits with its
//! documented status), and nothing committed is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mesolive_sim::SimOptions;
use serde_json::{Value, json};
use testkit::wait_for;

use crate::support::daemon::{Daemon, Sim};
use crate::support::events::{required_field_violations, sample, unknown_enum_members, with_field};
use crate::support::front::{Behaviour, Front};

const READY: Duration = Duration::from_secs(20);
const SOON: Duration = Duration::from_secs(10);

/// The 64 KiB message limit the oversized-message case exceeds.
const SMALL_LIMIT: (&str, &str) = ("MESOLIVE__HUBS__MAX_MESSAGE_BYTES", "65536");

async fn caught_up(daemon: &Daemon, sim: &Sim) {
    let latest = sim.latest_seq().await;
    let what = format!("cursor at {latest} (log {})", daemon.log.display());
    wait_for(&what, SOON, || async {
        daemon.cursor().await == Some(latest)
    })
    .await;
}

fn event_id(answer: &Value) -> String {
    answer["event_id"]
        .as_str()
        .expect("event id")
        .to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_are_quarantined_or_reported_and_the_pump_goes_on() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(READY).await;
    sim.emit(5).await;
    caught_up(&daemon, &sim).await;

    // Key of every event that must end in quarantine, and what it was.
    let mut quarantined = BTreeMap::new();
    // Every target with a typed field of the wrong type.
    for (target, field, wrong) in required_field_violations() {
        let payload = with_field(sample(&target), field, wrong);
        let answer = sim.inject(&target, payload, json!({})).await;
        quarantined.insert(event_id(&answer), format!("{target}.{field} {answer}"));
    }
    // A header field of the wrong type: the event cannot be placed in the sequence.
    let bad_header = sim
        .inject(
            "OnOrderUpdate",
            sample("OnOrderUpdate"),
            json!({"EventSeqId": "seven"}),
        )
        .await;
    quarantined.insert(event_id(&bad_header), format!("bad header {bad_header}"));
    // Unknown enum members: applied as sent, reported.
    for (target, field) in unknown_enum_members() {
        let payload = with_field(sample(target), field, json!("Exploded"));
        sim.inject(target, payload, json!({})).await;
    }
    // Unknown targets, one with a multi-byte character where "On" would be.
    sim.inject("OnSomethingNew", json!({"Anything": [1, 2]}), json!({}))
        .await;
    sim.inject("Xé-hostile", json!({"Anything": true}), json!({}))
        .await;
    // Missing EventId (deduplicated by content), missing EventSeqId (like an on-connect push).
    sim.inject(
        "OnAgentStatus",
        sample("OnAgentStatus"),
        json!({"EventId": null}),
    )
    .await;
    sim.inject(
        "OnAgentStatus",
        sample("OnAgentStatus"),
        json!({"EventSeqId": null}),
    )
    .await;
    // A new event whose EventSeqId went backwards.
    let regression = sim
        .inject(
            "OnOrderUpdate",
            sample("OnOrderUpdate"),
            json!({"EventSeqId": 2}),
        )
        .await;
    quarantined.insert(event_id(&regression), format!("regression {regression}"));
    sim.emit(5).await;
    caught_up(&daemon, &sim).await;

    // The cursor can reach the latest event through a catch-up before the live copies queued
    // meanwhile are drained; the live copy of the regression is what gets it quarantined.
    let what = format!("every hostile event quarantined: {quarantined:#?}");
    wait_for(&what, SOON, || async {
        let rows = daemon.quarantined().await;
        quarantined
            .keys()
            .all(|key| rows.iter().any(|row| &row.event_key == key))
    })
    .await;
    let rows = daemon.quarantined().await;
    let keys: BTreeSet<&String> = rows.iter().map(|row| &row.event_key).collect();
    assert_eq!(
        keys.len(),
        quarantined.len(),
        "only the hostile events: {rows:#?}"
    );
    let regression_row = rows
        .iter()
        .find(|row| row.event_key == event_id(&regression))
        .unwrap();
    assert!(
        regression_row.error.contains("at or below the cursor"),
        "{regression_row:?}"
    );
    for (target, field, _) in required_field_violations() {
        assert!(
            rows.iter()
                .any(|row| row.target == target && row.error.starts_with(field)),
            "{target}: the reason names {field}: {rows:#?}"
        );
    }

    let metrics = daemon.metrics().await;
    let metric =
        |series: &str| crate::support::daemon::metric_value(&metrics, series).unwrap_or(0.0);
    let error = |kind: &str| metric(&format!("mesolive_errors_total{{kind=\"{kind}\"}}"));
    assert_eq!(
        metric("mesolive_events_quarantined_total"),
        quarantined.len() as f64
    );
    assert!(
        error("event_decode") >= (quarantined.len() - 1) as f64,
        "{metrics}"
    );
    assert!(
        error("event_unknown_enum") >= unknown_enum_members().len() as f64,
        "{metrics}"
    );
    assert!(error("event_unrecognized") >= 2.0, "{metrics}");
    assert!(error("event_without_id") >= 1.0, "{metrics}");
    assert_eq!(error("event_seq_regression"), 1.0, "{metrics}");
    assert!(
        metric("mesolive_events_unsequenced_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric("mesolive_hub_reconnects_total{hub=\"event\"}"),
        0.0,
        "bad events never cost the connection"
    );

    let log = daemon.log_text();
    for expected in [
        "undecodable event quarantined",
        "unknown enum members",
        "unrecognized callback target",
        "event without EventId",
        "EventSeqId went backwards",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}");
    }
    assert!(daemon.is_running());
    assert_eq!(daemon.readyz().await, Some(200));
    assert!(daemon.state_json().contains("at or below the cursor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_skipped_and_a_close_or_an_oversized_message_recycles_the_connection()
{
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[SMALL_LIMIT]);
    daemon.wait_ready(READY).await;

    let malformed = [
        "not json\u{1e}",
        "{\"type\":1,\"target\":\"OnOrderUpdate\",\"argu\u{1e}",
        "[1,2,3]\u{1e}",
        "{\"target\":\"OnOrderUpdate\",\"arguments\":[]}\u{1e}",
        "{\"type\":1,\"target\":5,\"arguments\":[]}\u{1e}",
        "{\"type\":1,\"target\":\"OnOrderUpdate\"}\u{1e}",
        "{\"type\":3,\"invocationId\":\"999\",\"result\":1,\"error\":\"both\"}\u{1e}",
    ];
    for text in malformed {
        assert_eq!(sim.raw(Some("event"), text).await, 1);
    }
    // A well-formed record of a type this client ignores is not an error.
    sim.raw(Some("event"), "{\"type\":99,\"x\":1}\u{1e}").await;
    daemon
        .wait_errors("event_protocol", malformed.len() as f64, SOON)
        .await;
    daemon
        .wait_log(&["skipping a malformed record"], SOON)
        .await;
    sim.emit(3).await;
    caught_up(&daemon, &sim).await;
    assert_eq!(
        daemon.errors("event_protocol").await,
        malformed.len() as f64
    );
    assert_eq!(
        daemon
            .metric("mesolive_hub_reconnects_total{hub=\"event\"}")
            .await,
        Some(0.0),
        "malformed records do not cost the connection"
    );

    // A Close with an error: the connection ends, the daemon reconnects and replays.
    sim.raw(
        Some("event"),
        "{\"type\":7,\"error\":\"hostile close\",\"allowReconnect\":true}\u{1e}",
    )
    .await;
    daemon
        .wait_errors("event_lost_server_closed", 1.0, SOON)
        .await;
    daemon.wait_log(&["hostile close"], SOON).await;
    sim.emit(3).await;
    daemon.wait_ready(READY).await;
    caught_up(&daemon, &sim).await;

    // A message above hubs.max_message_bytes: refused before it is buffered whole.
    let oversized = format!(
        "{{\"type\":1,\"target\":\"OnOrderUpdate\",\"arguments\":[\"{}\"]}}\u{1e}",
        "x".repeat(100_000)
    );
    sim.raw(Some("event"), &oversized).await;
    daemon
        .wait_errors("event_lost_message_too_large", 1.0, SOON)
        .await;
    daemon
        .wait_log(&["exceeded the 65536-byte limit"], SOON)
        .await;
    sim.emit(3).await;
    daemon.wait_ready(READY).await;
    caught_up(&daemon, &sim).await;

    assert!(daemon.is_running());
    assert!(
        daemon.quarantined().await.is_empty(),
        "records are not events"
    );
    let reconnects = daemon
        .metric("mesolive_hub_reconnects_total{hub=\"event\"}")
        .await
        .unwrap_or(0.0);
    assert!(reconnects >= 2.0, "{reconnects}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_pages_above_the_message_limit_are_asked_for_in_smaller_pages() {
    let sim = Sim::start(SimOptions::default()).await;
    let blob = "x".repeat(10_000);
    for _ in 0..40 {
        sim.inject("OnBlob", json!({"Blob": blob}), json!({})).await;
    }
    let dir = testkit::temp_dir();
    // 100 events of 10 kB per page would be 1 MB against a 64 KiB limit.
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            SMALL_LIMIT,
            ("MESOLIVE__EVENTS__FIRST_RUN", "all"),
            ("MESOLIVE__EVENTS__REPLAY_PAGE_SIZE", "100"),
        ],
    );
    daemon.wait_ready(READY).await;
    caught_up(&daemon, &sim).await;
    assert!(daemon.errors("replay_page_too_large").await >= 1.0);
    assert!(daemon.errors("event_lost_message_too_large").await >= 1.0);
    daemon
        .wait_log(&["a replay page exceeded hubs.max_message_bytes"], SOON)
        .await;
    assert!(daemon.quarantined().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_behind_the_cursor_stops_the_daemon_with_76_and_leaves_the_database_alone() {
    let first = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(&first, dir.path(), &[]);
    daemon.wait_ready(READY).await;
    first.emit(40).await;
    caught_up(&daemon, &first).await;
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SOON).await.code(), Some(0));
    let cursor = daemon.cursor().await.expect("a cursor");

    // Another server (history restarted, or another account): its latest is far behind.
    let second = Sim::start(SimOptions::default()).await;
    assert!(second.latest_seq().await < cursor);
    let mut daemon = Daemon::spawn(&second, dir.path(), &[]);
    let status = daemon.wait_exit(READY).await;
    assert_eq!(status.code(), Some(76), "log: {}", daemon.log_text());
    daemon
        .wait_log(&["is ahead of the server's latest EventSeqId"], SOON)
        .await;
    assert_eq!(
        daemon.cursor().await,
        Some(cursor),
        "the cursor is untouched"
    );
    assert!(daemon.quarantined().await.is_empty());
}

/// The kinds counted in `errors_total` for a failed Event Hub connect, and a log fragment.
fn expected_failure(behaviour: Behaviour) -> (&'static str, &'static str) {
    match behaviour {
        Behaviour::Status(500) => ("event_connect_negotiate", "unexpected status code 500"),
        Behaviour::Status(404) => ("event_connect_negotiate", "unexpected status code 404"),
        Behaviour::GarbageBody => ("event_connect_negotiate", "unreadable response"),
        Behaviour::NotHttp => ("event_connect_transport", "negotiate request failed"),
        Behaviour::Silent => ("event_connect_transport", "negotiate request timed out"),
        Behaviour::UpgradeStatus(502) => (
            "event_connect_transport",
            "upgrade was answered with HTTP 502",
        ),
        other => panic!("no expectation for {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_level_misbehaviour_is_retried_until_the_server_behaves_and_403_stops_with_77() {
    let sim = Sim::start(SimOptions::default()).await;
    let front = Front::start(sim.hub_addr(), None).await;
    let dir = testkit::temp_dir();
    let base_url = front.base_url();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__HUBS__BASE_URL", &base_url),
            ("MESOLIVE__HUBS__HANDSHAKE_TIMEOUT", "1s"),
        ],
    );
    daemon.wait_ready(READY).await;
    sim.emit(10).await;
    caught_up(&daemon, &sim).await;

    for behaviour in [
        Behaviour::Status(500),
        Behaviour::Status(404),
        Behaviour::GarbageBody,
        Behaviour::NotHttp,
        Behaviour::Silent,
        Behaviour::UpgradeStatus(502),
    ] {
        let (kind, text) = expected_failure(behaviour);
        let before = daemon.errors(kind).await;
        front.set(behaviour);
        sim.drop_connections().await;
        sim.emit(5).await; // committed on the server while the daemon cannot reach it
        daemon.wait_errors(kind, before + 1.0, SOON).await;
        daemon.wait_log(&["hub unavailable", text], SOON).await;
        assert_eq!(daemon.readyz().await, Some(503), "{behaviour:?}");
        assert!(daemon.is_running(), "{behaviour:?}");
        front.set(Behaviour::Pass);
        daemon.wait_ready(READY).await;
        caught_up(&daemon, &sim).await;
    }

    front.set(Behaviour::Status(403));
    sim.drop_connections().await;
    let status = daemon.wait_exit(READY).await;
    assert_eq!(status.code(), Some(77), "log: {}", daemon.log_text());
    daemon.wait_log(&["credentials refused", "403"], SOON).await;
    assert_eq!(daemon.cursor().await, Some(sim.latest_seq().await));
}
