//! A failover group for the tests: one simulator, one PostgreSQL cluster of its own (durable
//! settings; the tests restart and stop it), and two daemons as real processes in paper mode
//! with `ha.enabled`, sharing one schema. The takeover measurement and the campaign's failover
//! mode use the same harness.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mesolive_sim::SimOptions;
use mesolive_supervisor::store::{Location, PostgresLocation, SignalState, Store, WorkflowRecord};
use serde_json::{Value, json};
use testkit::{TempDir, wait_for, wait_some};

use crate::support::daemon::{Daemon, Sim, postgres_facts, violations};
use crate::support::pg::{Cluster, fresh_schema};

/// The lease timing of the tests: short, so that many takeovers fit in a test.
pub(crate) const TTL: Duration = Duration::from_secs(5);
pub(crate) const MARGIN: Duration = Duration::from_secs(1);

/// Strategies whose entry signals the tests raise (all trade on the paper account).
pub(crate) const STRATEGIES: [i64; 3] = [101, 102, 103];

pub(crate) struct Group {
    pub sim: Sim,
    pub cluster: Cluster,
    pub schema: String,
    pub daemons: Vec<Daemon>,
    /// Each daemon's directory (its log; the SQLite path it is given and does not use).
    pub dirs: Vec<TempDir>,
}

/// Which daemon leads, as their `/readyz` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Roles {
    /// Daemon `n` is ready (leading) and the other stands by (503 `standby`) or is down.
    Led(usize),
    /// Neither leads yet.
    Leaderless,
}

impl Group {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Group {
        Group::start_with_config(extra, None).await
    }

    /// As [`Group::start`], both daemons reading `toml` as their `--config` file.
    pub(crate) async fn start_with_config(extra: &[(&str, &str)], toml: Option<&str>) -> Group {
        let mut options = SimOptions {
            positions: 2,
            ..SimOptions::default()
        };
        options.timing.prepare_delay = Duration::from_millis(50);
        options.timing.fill_delay = Duration::from_millis(50);
        Group::start_on(options, extra, toml).await
    }

    /// A group against a simulator started with `options` (the campaign's failover mode plays
    /// its seed's world and wire profile).
    pub(crate) async fn start_on(
        options: SimOptions,
        extra: &[(&str, &str)],
        toml: Option<&str>,
    ) -> Group {
        let sim = Sim::start(options).await;
        let cluster = Cluster::start(false);
        let schema = fresh_schema();
        let ttl = format!("{}ms", TTL.as_millis());
        let margin = format!("{}ms", MARGIN.as_millis());
        let url = cluster.url();
        let mut daemons = Vec::new();
        let mut dirs = Vec::new();
        for node in ["a", "b"] {
            let dir = testkit::temp_dir();
            let mut env: Vec<(&str, &str)> = vec![
                ("MESOLIVE__DATABASE__URL", &url),
                ("MESOLIVE__DATABASE__SCHEMA", &schema),
                ("MESOLIVE__HA__ENABLED", "true"),
                ("MESOLIVE__HA__LEASE_TTL", &ttl),
                ("MESOLIVE__HA__SAFETY_MARGIN", &margin),
                ("MESOLIVE__HA__NODE", node),
                ("MESOLIVE__AUTOMATION__MODE", "paper"),
                ("MESOLIVE__AUTOMATION__MAX_OPEN_POSITIONS", "1000"),
                ("MESOLIVE__EVENTS__FIRST_RUN", "all"),
            ];
            env.extend_from_slice(extra);
            daemons.push(match toml {
                Some(toml) => Daemon::spawn_with_config(&sim, dir.path(), &env, toml),
                None => Daemon::spawn(&sim, dir.path(), &env),
            });
            dirs.push(dir);
        }
        Group {
            sim,
            cluster,
            schema,
            daemons,
            dirs,
        }
    }

    pub(crate) fn location(&self) -> Location {
        Location::Postgres(PostgresLocation {
            url: self.cluster.url(),
            password: None,
            schema: self.schema.clone(),
        })
    }

    /// Who leads now.
    pub(crate) async fn roles(&self) -> Roles {
        let mut ready = Vec::new();
        for (n, daemon) in self.daemons.iter().enumerate() {
            if daemon
                .readyz_answer()
                .await
                .is_some_and(|(status, _)| status == 200)
            {
                ready.push(n);
            }
        }
        match ready.as_slice() {
            [n] => Roles::Led(*n),
            [] => Roles::Leaderless,
            both => panic!("two daemons ready at once: {both:?}"),
        }
    }

    /// Waits until one daemon leads; returns it.
    pub(crate) async fn leader(&self, timeout: Duration) -> usize {
        let what = format!("a leader (logs {:?})", self.logs());
        wait_some(&what, timeout, || async {
            match self.roles().await {
                Roles::Led(n) => Some(n),
                Roles::Leaderless => None,
            }
        })
        .await
    }

    /// Waits until daemon `n` answers `/readyz` with 503 `standby`.
    pub(crate) async fn wait_standby(&self, n: usize, timeout: Duration) {
        let what = format!(
            "daemon {n} standing by (log {})",
            self.daemons[n].log.display()
        );
        wait_for(&what, timeout, || async {
            self.daemons[n]
                .readyz_answer()
                .await
                .is_some_and(|(status, body)| status == 503 && body.trim() == "standby")
        })
        .await;
    }

    pub(crate) fn logs(&self) -> Vec<String> {
        self.daemons
            .iter()
            .map(|d| d.log.display().to_string())
            .collect()
    }

    /// The last lines of each daemon's log that mention any of `words`, for a failure message.
    pub(crate) fn log_lines(&self, words: &[&str]) -> String {
        const LAST: usize = 40;
        let mut out = String::new();
        for daemon in &self.daemons {
            let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter(|line| words.iter().any(|word| line.contains(word)))
                .collect();
            out.push_str(&format!(
                "--- {} (last {LAST} of {} lines)\n",
                daemon.log.display(),
                lines.len()
            ));
            for line in &lines[lines.len().saturating_sub(LAST)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Raises strategy `strategy`'s entry signal On (a new signal instance: a new workflow).
    pub(crate) async fn entry_on(&self, strategy: i64) {
        self.sim
            .post(
                "/signals",
                json!({"kind": "entry", "state": "On", "strategy_id": strategy, "account": mesolive_sim::PAPER_ACCOUNT}),
            )
            .await;
    }

    /// Turns strategy `strategy`'s entry signal Off.
    pub(crate) async fn entry_off(&self, strategy: i64) {
        self.sim
            .post(
                "/signals",
                json!({"kind": "entry", "state": "Off", "strategy_id": strategy, "account": mesolive_sim::PAPER_ACCOUNT}),
            )
            .await;
    }

    pub(crate) async fn workflows(&self) -> Vec<WorkflowRecord> {
        let store = Store::connect_read_only(&self.location())
            .await
            .expect("store readable");
        let all = store.all_workflows().await.expect("workflows");
        let _ = store.close().await;
        all
    }

    /// Waits until every event is applied (the cursor is the simulator's latest), every signal
    /// that is On has its workflow and every workflow is final; then checks every invariant: no
    /// second effect in the ledger, every event applied once. (A signal is applied before its
    /// workflow is opened: without the second condition the check could start in between and
    /// race the workflow's own events.)
    pub(crate) async fn assert_quiescent_and_clean(&self, timeout: Duration) {
        let latest = self.sim.latest_seq().await;
        wait_for(
            &format!(
                "the cursor at {latest}, every On signal with its workflow, every workflow final \
                 (logs {:?})",
                self.logs()
            ),
            timeout,
            || async {
                let location = self.location();
                let Ok(store) = Store::connect_read_only(&location).await else {
                    return false;
                };
                let cursor = store.cursor().await.ok().flatten();
                let signals = store.signals().await;
                let workflows = store.all_workflows().await;
                let _ = store.close().await;
                let (Ok(signals), Ok(workflows)) = (signals, workflows) else {
                    return false;
                };
                let opened = signals
                    .iter()
                    .filter(|s| s.state == SignalState::On)
                    .all(|s| {
                        workflows.iter().any(|w| {
                            w.signal_key == s.signal_key && w.signal_instance == s.instance
                        })
                    });
                let done = workflows.iter().all(|w| !w.state.is_active());
                cursor == Some(self.sim.latest_seq().await) && opened && done
            },
        )
        .await;
        let ledger = self.ledger().await;
        assert_eq!(ledger["second_effects"], 0, "second effects: {ledger}");
        let facts = postgres_facts(&self.cluster.url(), &self.schema).await;
        let found = violations(&self.sim, &facts).await;
        assert!(found.is_empty(), "exactly-once violated: {found:#?}");
    }

    pub(crate) async fn ledger(&self) -> Value {
        self.sim.get("/ledger").await
    }

    /// The state-changing calls the simulator received: `(at_ms, connection, key, method)`.
    pub(crate) async fn state_changing_calls(&self) -> Vec<(u64, String, String, String)> {
        let list = self.sim.get("/requests").await;
        list.as_array()
            .or_else(|| list["requests"].as_array())
            .expect("request log")
            .iter()
            .filter_map(|r| {
                Some((
                    r["at_ms"].as_u64()?,
                    r["connection"].as_str()?.to_owned(),
                    r["key"].as_str()?.to_owned(),
                    r["method"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    /// The simulator's clock (milliseconds since it started), for comparing with its log.
    pub(crate) async fn sim_now_ms(&self) -> u64 {
        self.sim.get("/stats").await["uptime_ms"]
            .as_u64()
            .expect("uptime")
    }

    /// The connection ids daemon `n` logged.
    pub(crate) fn connections_of(&self, n: usize) -> HashSet<String> {
        self.daemons[n].connection_ids()
    }
}

/// Measures one takeover: SIGKILL the leader, wait for the other to be ready. Returns the time
/// from the kill to the new leader's `/readyz` 200, and restarts the killed daemon (it comes
/// back as a standby).
pub(crate) async fn kill_leader_and_time_takeover(group: &mut Group, leader: usize) -> Duration {
    let other = 1 - leader;
    group.daemons[leader].kill();
    let killed = Instant::now();
    let what = format!(
        "daemon {other} taking over (log {})",
        group.daemons[other].log.display()
    );
    wait_for(&what, TTL * 4, || async {
        group.daemons[other]
            .readyz_answer()
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await;
    let took = killed.elapsed();
    group.daemons[leader].start();
    took
}
