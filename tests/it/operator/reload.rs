//! The live reload: a valid change applies without a reconnect, a change to a key that needs a
//! restart is refused whole, and a broken file keeps the running configuration.

use std::path::Path;
use std::time::Duration;

use mesolive_api::Hub;
use testkit::wait_for;

use super::quick_sim;
use crate::support::daemon::{Daemon, Sim};

const FIRST: &str = r#"
[automation]
mode = "paper"

[risk]
max_entries_per_day = 5
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("config written");
}

async fn reconnects(daemon: &Daemon) -> Vec<Option<f64>> {
    let mut all = Vec::new();
    for hub in Hub::ALL {
        all.push(
            daemon
                .metric(&format!(
                    "mesolive_hub_reconnects_total{{hub=\"{}\"}}",
                    hub.as_str()
                ))
                .await,
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_live_keys_and_refuses_the_rest_whole() {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn_with_config(&sim, dir.path(), &[], FIRST);
    let config = dir.path().join("config.toml");
    daemon.wait_ready(Duration::from_secs(20)).await;
    let status = daemon.status();
    assert_eq!(status["risk"]["max_entries_per_day"], 5);
    assert_eq!(status["mode"], "paper");
    let reconnects_before = reconnects(&daemon).await;
    let connections_before = sim.get("/stats").await["connections"].clone();

    // A valid change, by SIGHUP: applied at once, no hub reconnected.
    let adjusting = FIRST.replace(
        "mode = \"paper\"",
        "mode = \"paper\"\nadjust_in_reduce_only = true",
    );
    write(&config, &format!("{adjusting}max_orders_per_minute = 7\n"));
    daemon.signal(libc::SIGHUP);
    daemon
        .wait_log(
            &[
                "configuration reloaded",
                "automation.adjust_in_reduce_only, risk.max_orders_per_minute",
            ],
            Duration::from_secs(10),
        )
        .await;
    let status = daemon.status();
    assert_eq!(status["risk"]["max_orders_per_minute"], 7, "{status}");
    assert_eq!(status["ready"], true);
    assert_eq!(
        daemon.metric("mesolive_config_reloads_total").await,
        Some(1.0)
    );
    assert_eq!(reconnects(&daemon).await, reconnects_before);
    assert_eq!(sim.get("/stats").await["connections"], connections_before);
    assert_eq!(status["operator_actions"][0]["action"], "reload");
    assert_eq!(status["operator_actions"][0]["source"], "sighup");

    // A forbidden key beside a live one, by `ctl reload`: refused whole, naming the key.
    write(
        &config,
        &format!("{FIRST}max_orders_per_minute = 9\n[hubs]\nmax_pending_callbacks = 5000\n"),
    );
    let out = daemon.ctl(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("hubs.max_pending_callbacks"), "{stderr}");
    assert!(stderr.contains("nothing was applied"), "{stderr}");
    assert_eq!(
        daemon.status()["risk"]["max_orders_per_minute"],
        7,
        "not half applied"
    );
    daemon
        .wait_log(
            &["reload refused", "hubs.max_pending_callbacks"],
            Duration::from_secs(5),
        )
        .await;

    // A broken file: the running configuration stays.
    write(&config, "[automation\nmode = ");
    daemon.signal(libc::SIGHUP);
    wait_for(
        "the failed reload counted",
        Duration::from_secs(10),
        || async { daemon.metric("mesolive_config_reload_failures_total").await == Some(2.0) },
    )
    .await;
    daemon
        .wait_log(
            &["reload: config: TOML parse error"],
            Duration::from_secs(5),
        )
        .await;
    // (`ctl` reads the file too, to find the socket: a valid one again for it.)
    write(&config, FIRST);
    let status = daemon.status();
    assert_eq!(status["risk"]["max_orders_per_minute"], 7);
    assert_eq!(status["mode"], "paper");
    assert_eq!(reconnects(&daemon).await, reconnects_before);
    let text = String::from_utf8_lossy(&daemon.ctl(&["status"]).stdout).into_owned();
    assert!(text.contains("trading state"), "{text}");
}

/// `config show` names the layer of every key, and never prints the API key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_show_prints_each_key_with_its_layer() {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let config = dir.path().join("mesolive.toml");
    write(&config, FIRST);
    let daemon = Daemon::new(&sim, dir.path(), &[]);
    let mut command = daemon.command(&["--config"]);
    command.arg(&config).args(["config", "show"]);
    let out = tokio::task::block_in_place(|| command.output()).expect("config show runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let row = |key: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("{key} shown: {stdout}"))
            .to_owned()
    };
    assert!(row("automation.mode").ends_with("file"), "{stdout}");
    assert!(row("risk.max_entries_per_day").contains(" 5 "), "{stdout}");
    assert!(row("hubs.base_url").ends_with("environment"), "{stdout}");
    assert!(row("risk.day_timezone").ends_with("default"), "{stdout}");
    assert!(row("api_key").contains("<redacted>"), "{stdout}");
    assert!(!stdout.contains(sim.running.token()), "{stdout}");
}
