//! Failover with a real PostgreSQL and the simulator: two daemons as processes sharing one
//! schema. Exactly one leads; the leader is SIGKILLed in the middle of workflows (20 times,
//! timing each takeover), paused past its lease and resumed, and PostgreSQL is restarted and
//! stopped under both. After each: no second effect in the simulator's ledger, every event
//! applied once, the cursor at the latest EventSeqId, every workflow final. Operator control
//! follows the lease: a halt outlives a takeover, and a standby refuses `ctl`. Who leads and who
//! stands by is notified (`leader`, `standby`).
//!
//! Ignored in a plain `cargo test` (they need PostgreSQL); `.ci/run` runs them:
//! `cargo test --test it -- --ignored postgres`. `FAILOVER_KILLS=<n>` sets the number of kills
//! of the takeover measurement (default 20).

pub(crate) mod group;

use std::time::Duration;

use serde_json::Value;
use testkit::{env_u64, eventually, wait_for};

use crate::support::receiver::Receiver;

use group::{Group, Roles, STRATEGIES, TTL, kill_leader_and_time_takeover};

/// How long a start (replay, reconcile, monitors) may take on a loaded machine.
const STARTUP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn two_daemons_one_leader_the_other_standing_by_signals_acted_on_once_postgres() {
    let group = Group::start(&[]).await;
    let leader = group.leader(STARTUP).await;
    let standby = 1 - leader;
    group.wait_standby(standby, STARTUP).await;
    assert_eq!(
        group.daemons[leader].metric("mesolive_leader").await,
        Some(1.0)
    );
    assert_eq!(
        group.daemons[standby].metric("mesolive_leader").await,
        Some(0.0)
    );
    assert_eq!(
        group.daemons[leader]
            .metric("mesolive_takeovers_total")
            .await,
        Some(1.0)
    );
    let epoch = group.daemons[leader].metric("mesolive_lease_epoch").await;
    assert!(epoch.is_some_and(|e| e >= 1.0), "{epoch:?}");
    // The standby holds no hub connection.
    assert!(group.connections_of(standby).is_empty());

    for strategy in STRATEGIES {
        group.entry_on(strategy).await;
    }
    group.sim.emit(500).await;
    group.assert_quiescent_and_clean(STARTUP).await;
    let workflows = group.workflows().await;
    assert_eq!(workflows.len(), STRATEGIES.len(), "{workflows:#?}");
    let calls = group.state_changing_calls().await;
    let standby_calls: Vec<_> = calls
        .iter()
        .filter(|(_, connection, _, _)| group.connections_of(standby).contains(connection))
        .collect();
    assert!(standby_calls.is_empty(), "{standby_calls:?}");
    // A leader is briefly not ready while a renewal is late (its send gate closed): asked
    // until one answers.
    assert_eq!(
        group.leader(STARTUP).await,
        leader,
        "the leader kept leading"
    );
    // `state` shows the lease.
    let output = std::process::Command::new(crate::support::daemon::BIN)
        .arg("state")
        .env_clear()
        .env("MESOLIVE__DATABASE__URL", group.cluster.url())
        .env("MESOLIVE__DATABASE__SCHEMA", &group.schema)
        .output()
        .expect("state runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        text.contains("Leadership lease") && text.contains("held"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn the_standby_leads_within_ttl_plus_2s_of_a_sigkill_mid_workflow_postgres() {
    let kills = env_u64("FAILOVER_KILLS").unwrap_or(20) as usize;
    let seed = testkit::seed("FAILOVER_SEED");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut group = Group::start(&[]).await;
    let mut leader = group.leader(STARTUP).await;
    let mut takeovers = Vec::with_capacity(kills);
    for round in 0..kills {
        group.wait_standby(1 - leader, STARTUP).await;
        // Work in flight when the leader dies: new workflows (an intent committed, its answer
        // pending), a burst of events to replay, or both.
        let strategy = STRATEGIES[round % STRATEGIES.len()];
        match round % 3 {
            0 => group.entry_on(strategy).await,
            1 => group.sim.emit(rng.u64(500..3_000)).await,
            _ => {
                group.entry_on(strategy).await;
                group.sim.emit(rng.u64(200..1_000)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..400))).await;
        let took = kill_leader_and_time_takeover(&mut group, leader).await;
        println!("takeover {round}: {:.3} s", took.as_secs_f64());
        takeovers.push(took);
        leader = 1 - leader;
        if round % 3 != 1 {
            group.entry_off(strategy).await;
        }
    }
    group.wait_standby(1 - leader, STARTUP).await;
    group.assert_quiescent_and_clean(STARTUP * 2).await;
    takeovers.sort();
    let median = takeovers[takeovers.len() / 2];
    let max = takeovers[takeovers.len() - 1];
    println!(
        "takeover after SIGKILL over {kills} kills (ttl {TTL:?}): median {:.3} s, max {:.3} s (seed {seed})",
        median.as_secs_f64(),
        max.as_secs_f64()
    );
    assert!(
        max <= TTL + Duration::from_secs(2),
        "a takeover took {max:?} (> ttl + 2 s); all: {takeovers:?} (seed {seed})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn a_leader_paused_past_its_lease_sends_nothing_after_it_resumes_postgres() {
    let receiver = Receiver::start().await;
    let sink = format!(
        "[[notify.sinks]]\nkind = \"webhook\"\nurl = \"{}\"\nkinds = [\"leader\", \"standby\"]\n",
        receiver.url("/hook")
    );
    let mut group = Group::start_with_config(&[], Some(&sink)).await;
    let old = group.leader(STARTUP).await;
    let new = 1 - old;
    group.wait_standby(new, STARTUP).await;
    // A standby queues its notice once a sink is registered (the leader's first term registers
    // them) and it still stands by: told before the pause, or its stretch as a standby may end
    // in the takeover before it could be.
    told_at_least(&group, &receiver, 2).await;
    group.entry_on(STRATEGIES[0]).await;
    group.daemons[old].signal(libc::SIGSTOP);
    // The standby takes over once the lease expired, and acts.
    wait_for("the standby taking over", TTL * 4, || async {
        group.daemons[new]
            .readyz_answer()
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await;
    group.entry_on(STRATEGIES[1]).await;
    wait_for("the new leader's workflows final", STARTUP, || async {
        let all = group.workflows().await;
        all.len() == 2 && all.iter().all(|w| !w.state.is_active())
    })
    .await;

    let resumed_at = group.sim_now_ms().await;
    group.daemons[old].signal(libc::SIGCONT);
    group.wait_standby(old, STARTUP).await;
    group.daemons[old]
        .wait_log(&["leadership lost"], Duration::from_secs(5))
        .await;
    assert_eq!(
        group.daemons[old].metric("mesolive_leader").await,
        Some(0.0)
    );
    assert!(
        group.daemons[old].is_running(),
        "back to standby, not an exit"
    );
    // Nothing state-changing from the old leader's connections after it resumed.
    let old_connections = group.connections_of(old);
    let late: Vec<_> = group
        .state_changing_calls()
        .await
        .into_iter()
        .filter(|(at, connection, _, _)| *at >= resumed_at && old_connections.contains(connection))
        .collect();
    assert!(
        late.is_empty(),
        "the fenced leader sent after resuming: {late:?}"
    );
    group.assert_quiescent_and_clean(STARTUP).await;
    assert_eq!(
        group.leader(STARTUP).await,
        new,
        "the new leader keeps leading"
    );
    // Who led and who stood by, as the sink was told (in the transactions that made it so):
    // the first leader, the other standing by, the takeover, the old leader back to standby.
    let told = told_at_least(&group, &receiver, 4).await;
    let kinds: Vec<&str> = told.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["leader", "standby", "leader", "standby"],
        "{told:#?}"
    );
    let holder = |n: usize| told[n].1["holder"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        holder(0),
        holder(3),
        "the first leader stands by at the end"
    );
    assert_eq!(holder(1), holder(2), "the first standby took over");
    assert!(told[2].1["epoch"].as_i64() > told[0].1["epoch"].as_i64());
    assert_eq!(told[1].1["lost"], Value::Null, "at start");
    assert!(
        told[3].1["lost"].is_string(),
        "after losing: {:?}",
        told[3].1
    );
    assert_eq!(told[3].1["leader"], told[2].1["holder"]);
}

/// The `(kind, data)` of the notifications `receiver` accepted (once per id), once there are at
/// least `n`; otherwise fails with those that came and the daemons' lease and notification log
/// lines.
async fn told_at_least(group: &Group, receiver: &Receiver, n: usize) -> Vec<(String, Value)> {
    let told = || -> Vec<(String, Value)> {
        receiver
            .accepted_once()
            .iter()
            .map(|attempt| (attempt.kind().to_owned(), attempt.body["data"].clone()))
            .collect()
    };
    let came = eventually(STARTUP, || async { told().len() >= n }).await;
    let told = told();
    assert!(
        came,
        "not {n} leader/standby notifications within {STARTUP:?}: {told:#?}\n{}",
        group.log_lines(&["notification", "lease", "leadership", "standby"])
    );
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn postgres_restarted_and_stopped_under_both_daemons_loses_and_repeats_nothing_postgres() {
    let mut group = Group::start(&[]).await;
    let _ = group.leader(STARTUP).await;
    let pids: Vec<i32> = group.daemons.iter().map(|d| d.pid()).collect();

    // A restart: brief.
    group.entry_on(STRATEGIES[0]).await;
    group.sim.emit(1_000).await;
    group.cluster.restart();
    group.sim.emit(500).await;
    let leader = group.leader(STARTUP).await;
    group.wait_standby(1 - leader, STARTUP).await;
    group.assert_quiescent_and_clean(STARTUP).await;

    // Stopped for 30 s: the leader steps down once its lease could have expired; nobody leads
    // while the database is gone; one leads again after it is back.
    group.entry_on(STRATEGIES[1]).await;
    group.cluster.stop();
    let stopped = std::time::Instant::now();
    group.sim.emit(500).await;
    wait_for("no leader while PostgreSQL is down", TTL * 2, || async {
        group.roles().await == Roles::Leaderless
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
    group.cluster.start_server();
    let leader = group.leader(STARTUP * 2).await;
    group.wait_standby(1 - leader, STARTUP).await;
    group.assert_quiescent_and_clean(STARTUP).await;
    for (daemon, pid) in group.daemons.iter_mut().zip(pids) {
        assert!(daemon.is_running(), "no process restart");
        assert_eq!(daemon.pid(), pid);
    }
}

/// Operator control in a group: `ctl` on the standby is refused (it runs no term); a halt given
/// to the leader outlives a SIGKILL of it (the new leader starts halted, its signal's workflow
/// waits and nothing state-changing is sent), and a resume given to the new leader finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn a_halt_outlives_a_takeover_and_a_standby_refuses_ctl_postgres() {
    let mut group = Group::start(&[]).await;
    let old = group.leader(STARTUP).await;
    let new = 1 - old;
    group.wait_standby(new, STARTUP).await;

    let refused = group.daemons[new].ctl(&["halt", "--reason", "on the standby"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no term is running"),
        "{refused:?}"
    );
    let halted = group.daemons[old].ctl(&["halt", "--reason", "broker outage"]);
    assert!(halted.status.success(), "{halted:?}");
    let status = group.daemons[old].status();
    assert_eq!(status["trading_state"], "halted", "{status}");
    assert_eq!(status["role"], "leader", "{status}");

    kill_leader_and_time_takeover(&mut group, old).await;
    let status = group.daemons[new].status();
    assert_eq!(status["trading_state"], "halted", "{status}");
    assert_eq!(status["role"], "leader", "{status}");
    group.wait_standby(old, STARTUP).await;

    group.entry_on(STRATEGIES[0]).await;
    wait_for("the signal's workflow, waiting", STARTUP, || async {
        group
            .workflows()
            .await
            .iter()
            .any(|w| w.state == mesolive_supervisor::store::WorkflowState::Requested)
    })
    .await;
    let resumed_at = group.sim_now_ms().await;
    let resumed = group.daemons[new].ctl(&["resume", "--reason", "outage over"]);
    assert!(resumed.status.success(), "{resumed:?}");
    group.assert_quiescent_and_clean(STARTUP).await;
    let calls = group.state_changing_calls().await;
    assert!(!calls.is_empty(), "the resumed workflow acted");
    let while_halted: Vec<_> = calls.iter().filter(|(at, ..)| *at < resumed_at).collect();
    assert!(
        while_halted.is_empty(),
        "sent while halted: {while_halted:?}"
    );
    let workflows = group.workflows().await;
    assert!(
        workflows
            .iter()
            .all(|w| w.state == mesolive_supervisor::store::WorkflowState::Done),
        "{workflows:#?}"
    );
}
