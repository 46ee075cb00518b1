//! Notifications end to end, the daemon as a real process against the simulator and a webhook
//! receiver on a real socket: a scripted scenario arrives exactly, in order and signed; a
//! notification committed before a SIGKILL is delivered after the restart under the same id; a
//! receiver down for a while gets everything once back; 4xx is not retried, 5xx and timeouts
//! are; the outbox's bound drops the oldest and counts them; `notify test` reaches every sink
//! format and prints each answer.

use std::path::Path;
use std::time::Duration;

use mesolive_sim::SimOptions;
use serde_json::json;
use sqlx::Connection;
use testkit::{wait_for, wait_some};

use crate::support::daemon::{BIN, Daemon, Sim};
use crate::support::events::sample;
use crate::support::receiver::{Answer, Attempt, Receiver, signed_by};

const READY: Duration = Duration::from_secs(20);
const SOON: Duration = Duration::from_secs(15);
const PAPER: (&str, &str) = ("MESOLIVE__AUTOMATION__MODE", "paper");

/// The webhook's HMAC key; distinctive, so that a leak would be found by a grep.
pub(crate) const WEBHOOK_SECRET: &str = "whsec-5Jt8-distinctive-hmac-9921";

fn quick_sim() -> SimOptions {
    let mut options = SimOptions {
        positions: 0,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    options
}

/// A config file with one signed webhook sink at `receiver` and short timings; `notify` adds
/// keys to `[notify]`.
fn webhook_config(receiver: &Receiver, dir: &Path, notify: &str) -> String {
    let secret = dir.join("webhook-secret");
    std::fs::write(&secret, format!("{WEBHOOK_SECRET}\n")).expect("secret written");
    set_private(&secret);
    format!(
        r#"
[notify]
hub_down_after = "2s"
timeout = "1s"
backoff_initial = "100ms"
backoff_max = "400ms"
{notify}

[[notify.sinks]]
kind = "webhook"
url = "{url}"
secret_file = "{secret}"
"#,
        url = receiver.url("/hook"),
        secret = secret.display(),
    )
}

/// chmod 600, so the daemon does not warn about a readable secret.
pub(crate) fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Waits until the receiver accepted `count` notifications; returns them.
async fn accepted(receiver: &Receiver, count: usize, daemon: &Daemon) -> Vec<Attempt> {
    let what = format!(
        "{count} notifications accepted (log {})",
        daemon.log.display()
    );
    wait_some(&what, SOON, || async {
        let accepted = receiver.accepted();
        (accepted.len() >= count).then_some(accepted)
    })
    .await
}

/// Each notification as `kind` (with its hub for hub notices), runs of the same kind sorted:
/// the three hubs of one outage go down (and come back) in the same tick, in any order.
fn kinds(attempts: &[Attempt]) -> Vec<String> {
    let mut named: Vec<String> = attempts
        .iter()
        .map(|a| match a.body["data"]["hub"].as_str() {
            Some(hub) => format!("{} {hub}", a.kind()),
            None => a.kind().to_owned(),
        })
        .collect();
    let mut start = 0;
    while start < named.len() {
        let kind = |s: &str| s.split(' ').next().unwrap_or_default().to_owned();
        let head = kind(&named[start]);
        let end = start
            + named[start..]
                .iter()
                .take_while(|n| kind(n) == head)
                .count();
        named[start..end].sort();
        start = end;
    }
    named
}

/// The seq in an id `<db>-n<seq>[.<revision>]`.
fn seq_of(id: &str) -> i64 {
    id.rsplit_once("-n")
        .and_then(|(_, rest)| rest.split('.').next())
        .and_then(|seq| seq.parse().ok())
        .unwrap_or_else(|| panic!("an outbox id: {id}"))
}

async fn entry_signal(sim: &Sim, strategy: i64) {
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "On", "strategy_id": strategy, "account": "PAPER-1"}),
    )
    .await;
}

/// Waits until the daemon's outbox holds a notification of `kind`; returns its seq.
async fn queued(daemon: &Daemon, kind: &str) -> i64 {
    let what = format!("a {kind} notification in the outbox");
    wait_some(&what, SOON, || async {
        outbox_rows(&daemon.db)
            .await
            .into_iter()
            .find(|(_, queued)| queued == kind)
            .map(|(seq, _)| seq)
    })
    .await
}

/// `(seq, kind)` of every notification in the daemon's outbox (raw: inspection only).
async fn outbox_rows(db: &Path) -> Vec<(i64, String)> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("database readable");
    let rows = sqlx::query_as("SELECT seq, kind FROM notifications ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .expect("notifications");
    let _ = conn.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_run_notifies_exactly_its_causes_in_order_and_signed() {
    let sim = Sim::start(quick_sim()).await;
    let receiver = Receiver::start().await;
    let dir = testkit::temp_dir();
    let toml = webhook_config(&receiver, dir.path(), "");
    let mut daemon = Daemon::spawn_with_config(&sim, dir.path(), &[PAPER], &toml);
    daemon.wait_ready(READY).await;
    accepted(&receiver, 2, &daemon).await;

    // An entry executed.
    entry_signal(&sim, 101).await;
    accepted(&receiver, 3, &daemon).await;
    // A prepare that fails.
    sim.faults(json!({"fail_prepares": 1})).await;
    entry_signal(&sim, 102).await;
    accepted(&receiver, 4, &daemon).await;
    // A hub outage past notify.hub_down_after (2 s): the three hubs down, then back.
    sim.post("/outage", json!({"ms": 4_000})).await;
    accepted(&receiver, 10, &daemon).await;
    daemon.wait_ready(READY).await;
    // A halt and a resume by the operator.
    let halted = daemon.ctl(&["halt", "--reason", "scripted halt"]);
    assert!(halted.status.success(), "ctl halt: {halted:?}");
    accepted(&receiver, 11, &daemon).await;
    let resumed = daemon.ctl(&["resume"]);
    assert!(resumed.status.success(), "ctl resume: {resumed:?}");
    accepted(&receiver, 12, &daemon).await;
    let metrics = daemon.metrics().await;

    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SOON).await.code(), Some(0));
    let received = receiver.accepted();
    assert_eq!(
        kinds(&received),
        [
            "first_run",
            "ready",
            "workflow_done",
            "workflow_failed",
            "hub_down control",
            "hub_down data",
            "hub_down event",
            "hub_up control",
            "hub_up data",
            "hub_up event",
            "trading_state",
            "trading_state",
        ],
        "log: {}",
        daemon.log.display()
    );
    assert_eq!(
        received.len(),
        receiver.attempts().len(),
        "each accepted at the first attempt"
    );
    let mut last_seq = 0;
    for attempt in &received {
        assert_eq!(attempt.path, "/hook");
        assert!(
            signed_by(WEBHOOK_SECRET, &attempt.raw, attempt.signature.as_deref()),
            "a valid X-Mesolive-Signature on {}",
            attempt.body
        );
        let seq = seq_of(attempt.id());
        assert!(seq > last_seq, "in outbox order: {}", attempt.body);
        last_seq = seq;
        for field in ["severity", "at", "text"] {
            assert!(attempt.body[field].is_string(), "{field}: {}", attempt.body);
        }
        assert!(attempt.body["data"].is_object(), "{}", attempt.body);
    }
    let done = &received[2].body;
    assert_eq!(done["severity"], "info");
    assert_eq!(done["data"]["strategy"], 101);
    let failed = &received[3].body;
    assert_eq!(failed["severity"], "warning");
    assert_eq!(failed["data"]["strategy"], 102);
    assert!(
        failed["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("entry workflow") && t.contains("failed")),
        "{failed}"
    );
    assert_eq!(received[4].body["severity"], "critical");
    let halt = &received[10].body;
    assert_eq!(halt["severity"], "warning", "{halt}");
    assert_eq!(halt["data"]["to"], "halted", "{halt}");
    assert_eq!(halt["data"]["source"], "ctl", "{halt}");
    assert!(
        halt["text"]
            .as_str()
            .is_some_and(|t| t.contains("scripted halt")),
        "{halt}"
    );
    assert_eq!(received[11].body["data"]["to"], "active");
    let state_text = daemon.state_json();
    let state: serde_json::Value = serde_json::from_str(&state_text).expect("state --json");
    assert_eq!(state["notifications"]["pending"], 0, "{state}");
    // The HMAC key never leaves the sink: not in the log, `state` or `/metrics`.
    for (what, text) in [
        ("log", daemon.log_text()),
        ("state", state_text),
        ("metrics", metrics),
    ] {
        assert!(
            !text.contains(WEBHOOK_SECRET),
            "the webhook secret is in the {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_committed_before_a_sigkill_is_delivered_after_the_restart_same_id() {
    let sim = Sim::start(quick_sim()).await;
    let receiver = Receiver::start().await;
    receiver.otherwise(Answer::Status(503));
    let dir = testkit::temp_dir();
    let toml = webhook_config(&receiver, dir.path(), "");
    let mut daemon = Daemon::spawn_with_config(&sim, dir.path(), &[PAPER], &toml);
    daemon.wait_ready(READY).await;
    queued(&daemon, "ready").await;
    entry_signal(&sim, 101).await;
    // The cause is committed with its notification; the receiver has not taken it.
    let done_seq = queued(&daemon, "workflow_done").await;
    let instance = {
        let store = daemon.store().await;
        let id = store.instance_id().to_owned();
        let _ = store.close().await;
        id
    };
    daemon.kill();
    assert!(receiver.accepted().is_empty());

    receiver.otherwise(Answer::Status(200));
    daemon.start();
    let received = accepted(&receiver, 5, &daemon).await;
    assert_eq!(
        kinds(&received),
        ["first_run", "ready", "workflow_done", "startup", "ready"]
    );
    assert_eq!(received[2].id(), format!("{instance}-n{done_seq}"));
    let retried = receiver
        .attempts()
        .iter()
        .filter(|a| a.id() == received[0].id())
        .count();
    assert!(
        retried >= 2,
        "the first process tried it (503) before the SIGKILL"
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SOON).await.code(), Some(0));
    assert_eq!(receiver.accepted().len(), 5, "each delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_once_it_is_back() {
    let sim = Sim::start(quick_sim()).await;
    let mut receiver = Receiver::start().await;
    receiver.stop().await;
    let dir = testkit::temp_dir();
    let toml = webhook_config(&receiver, dir.path(), "");
    let daemon = Daemon::spawn_with_config(&sim, dir.path(), &[PAPER], &toml);
    daemon.wait_ready(READY).await;
    queued(&daemon, "ready").await;
    entry_signal(&sim, 101).await;
    queued(&daemon, "workflow_done").await;
    daemon.wait_errors("notify_unreachable", 5.0, SOON).await;
    assert_eq!(
        daemon
            .metric("mesolive_notifications_delivered_total")
            .await,
        Some(0.0)
    );

    receiver.restart().await;
    let received = accepted(&receiver, 3, &daemon).await;
    assert_eq!(kinds(&received), ["first_run", "ready", "workflow_done"]);
    // The gauge is read from the store and the counter counts after the commit: both settle.
    wait_for("the pending gauge at 0 and 3 delivered", SOON, || async {
        daemon.metric("mesolive_notifications_pending").await == Some(0.0)
            && daemon
                .metric("mesolive_notifications_delivered_total")
                .await
                == Some(3.0)
    })
    .await;
    assert_eq!(receiver.accepted().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_failed_for_good_while_5xx_and_timeouts_are_retried() {
    let sim = Sim::start(quick_sim()).await;
    let receiver = Receiver::start().await;
    // first_run: refused. ready: 500, 503, an answer after the 1 s timeout, then 200.
    receiver.script(&[
        Answer::Status(400),
        Answer::Status(500),
        Answer::Status(503),
        Answer::Late(Duration::from_secs(3)),
    ]);
    let dir = testkit::temp_dir();
    let toml = webhook_config(&receiver, dir.path(), "");
    let mut daemon = Daemon::spawn_with_config(&sim, dir.path(), &[PAPER], &toml);
    daemon.wait_ready(READY).await;
    let received = accepted(&receiver, 1, &daemon).await;
    assert_eq!(kinds(&received), ["ready"]);
    let attempts = receiver.attempts();
    let per_kind = |kind: &str| attempts.iter().filter(|a| a.kind() == kind).count();
    assert_eq!(per_kind("first_run"), 1, "a 4xx is not retried");
    assert_eq!(per_kind("ready"), 4, "500, 503, timeout, 200");
    let ready_ids: Vec<&str> = attempts
        .iter()
        .filter(|a| a.kind() == "ready")
        .map(Attempt::id)
        .collect();
    assert!(ready_ids.windows(2).all(|w| w[0] == w[1]), "one id");

    wait_for("the counters", SOON, || async {
        let metrics = daemon.metrics().await;
        let value = |series: &str| crate::support::daemon::metric_value(&metrics, series);
        value("mesolive_notifications_failed_total") == Some(1.0)
            && value("mesolive_notifications_delivered_total") == Some(1.0)
            && value("mesolive_errors_total{kind=\"notify_refused\"}") == Some(1.0)
            && value("mesolive_errors_total{kind=\"notify_http_status\"}") == Some(2.0)
            && value("mesolive_errors_total{kind=\"notify_timeout\"}") == Some(1.0)
    })
    .await;
    daemon
        .wait_log(&["notification refused by the sink", "HTTP 400"], SOON)
        .await;
    let state: serde_json::Value =
        serde_json::from_str(&daemon.state_json()).expect("state --json");
    let failures = &state["notifications"]["failures"];
    assert_eq!(failures.as_array().map(Vec::len), Some(1), "{state}");
    assert_eq!(failures[0]["kind"], "first_run");
    assert_eq!(failures[0]["status"], 400);
    assert_eq!(failures[0]["reason"], "HTTP 400");
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SOON).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_pending_the_oldest_are_dropped_counted_and_said() {
    let sim = Sim::start(quick_sim()).await;
    let mut receiver = Receiver::start().await;
    receiver.stop().await;
    let dir = testkit::temp_dir();
    let toml = webhook_config(&receiver, dir.path(), "max_pending = 4");
    let daemon = Daemon::spawn_with_config(&sim, dir.path(), &[], &toml);
    daemon.wait_ready(READY).await;
    queued(&daemon, "ready").await;
    // first_run, ready, then one notification per quarantined event (one batch each).
    for n in 1..=5 {
        sim.inject(
            "OnOrderUpdate",
            sample("OnOrderUpdate"),
            json!({"EventSeqId": "not a number"}),
        )
        .await;
        wait_for(&format!("{n} events quarantined"), SOON, || async {
            daemon.quarantined().await.len() == n
        })
        .await;
    }
    // 7 queued, 4 kept: first_run, ready, q1 and q2 dropped; the summary counts all four.
    wait_for(
        "the dropped counter and the pending gauge",
        SOON,
        || async {
            let metrics = daemon.metrics().await;
            let value = |series: &str| crate::support::daemon::metric_value(&metrics, series);
            value("mesolive_notifications_dropped_total") == Some(4.0)
                && value("mesolive_notifications_pending") == Some(4.0)
        },
    )
    .await;

    receiver.restart().await;
    let received = accepted(&receiver, 4, &daemon).await;
    assert_eq!(
        received.iter().map(Attempt::kind).collect::<Vec<_>>(),
        [
            "events_quarantined",
            "notifications_dropped",
            "events_quarantined",
            "events_quarantined",
        ]
    );
    let summary = &received[1].body;
    assert_eq!(summary["data"]["dropped"], 4, "{summary}");
    assert!(
        summary["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("4 notifications dropped")),
        "{summary}"
    );
    assert!(
        received[1].id().ends_with(".2"),
        "the summary grew twice: {}",
        received[1].id()
    );
    wait_for("nothing pending", SOON, || async {
        daemon.metric("mesolive_notifications_pending").await == Some(0.0)
    })
    .await;
    assert_eq!(receiver.accepted().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_reaches_every_sink_in_its_format_and_prints_each_answer() {
    let receiver = Receiver::start().await;
    let dir = testkit::temp_dir();
    let hmac = dir.path().join("webhook-secret");
    std::fs::write(&hmac, WEBHOOK_SECRET).expect("secret written");
    set_private(&hmac);
    let token = dir.path().join("telegram-token");
    std::fs::write(&token, "4242:bot-token-distinctive\n").expect("token written");
    set_private(&token);
    let config = dir.path().join("config.toml");
    let toml = format!(
        r#"
[notify]
timeout = "2s"

[[notify.sinks]]
kind = "webhook"
url = "{webhook}"
secret_file = "{hmac}"

[[notify.sinks]]
kind = "slack"
url = "{slack}"

[[notify.sinks]]
kind = "discord"
url = "{discord}"

[[notify.sinks]]
kind = "telegram"
url = "{telegram}"
secret_file = "{token}"
chat_id = "-100777"
"#,
        webhook = receiver.url("/hook"),
        slack = receiver.url("/services/T0/B0/slack-token"),
        discord = receiver.url("/api/webhooks/1/discord-token"),
        telegram = receiver.url("/tg"),
        hmac = hmac.display(),
        token = token.display(),
    );
    std::fs::write(&config, toml).expect("config written");
    let run = || {
        tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["notify", "test"])
            .env_clear()
            .output()
    };

    let output = run().await.expect("notify test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for label in [
        "webhook 127.0.0.1",
        "slack 127.0.0.1",
        "discord 127.0.0.1",
        "telegram 127.0.0.1",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.contains(label) && line.contains("delivered: HTTP 200")),
            "{label}: {stdout}"
        );
    }
    let attempts = receiver.attempts();
    let at = |path: &str| {
        attempts
            .iter()
            .find(|a| a.path == path)
            .unwrap_or_else(|| panic!("a POST to {path}: {attempts:#?}"))
    };
    let webhook = at("/hook");
    assert_eq!(webhook.kind(), "test");
    assert!(webhook.id().starts_with("test-"));
    assert!(signed_by(
        WEBHOOK_SECRET,
        &webhook.raw,
        webhook.signature.as_deref()
    ));
    let slack = &at("/services/T0/B0/slack-token").body;
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[INFO] test notification from mesolive-supervisor")),
        "{slack}"
    );
    assert!(at("/api/webhooks/1/discord-token").body["content"].is_string());
    let telegram = at("/tg/bot4242:bot-token-distinctive/sendMessage");
    assert_eq!(telegram.body["chat_id"], "-100777");
    assert!(telegram.body["text"].is_string());
    assert!(telegram.signature.is_none() && slack.get("id").is_none());

    // One sink refusing: its answer is printed, the others still get theirs, the status says so.
    receiver.script(&[Answer::Status(403)]);
    let output = run().await.expect("notify test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(stdout.matches("delivered: HTTP 200").count(), 3, "{stdout}");
    assert!(stdout.contains("refused: HTTP 403"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("1 of 4 sinks"),
        "{output:?}"
    );
    assert!(
        !stdout.contains("bot-token") && !stdout.contains("slack-token"),
        "a sink is named by kind and host, never its URL: {stdout}"
    );
}
