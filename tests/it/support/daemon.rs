//! The daemon as a real process against the project's simulator: start a simulator in the
//! test, spawn `mesolive-supervisor run` pointed at it with a temp database, drive the
//! simulator's admin API, and read what the daemon reports (readiness, metrics, its database).

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use mesolive_sim::{AdminClient, RunningSim, SimOptions, Simulator};
use mesolive_supervisor::daemon::ops_addr_in_log;
use mesolive_supervisor::store::{Location, PostgresLocation, QuarantinedEvent, Store};
use serde_json::{Value, json};
use sqlx::Connection as _;
use testkit::wait_for;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_mesolive-supervisor");

/// A simulator in this process, reached over real sockets like any MesoLive server.
pub(crate) struct Sim {
    pub running: RunningSim,
    admin: AdminClient,
}

/// A client of the admin API at `base`, of an in-process simulator or of `mesolive-supervisor
/// sim` run as a process.
pub(crate) fn admin_client(base: String) -> AdminClient {
    signalr::tls::install_default_provider();
    AdminClient::new(base)
}

impl Sim {
    pub(crate) async fn start(options: SimOptions) -> Sim {
        let running = Simulator::start(options).await.expect("simulator starts");
        let admin = admin_client(running.admin_url());
        Sim { running, admin }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        let answer = self.try_post(path, body.clone()).await;
        answer.unwrap_or_else(|refusal| panic!("POST {path} {body}: {refusal}"))
    }

    /// Like [`Sim::post`], but a refusal (e.g. a signal On for a closed position) is returned.
    pub(crate) async fn try_post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.admin
            .post(path, body)
            .await
            .map_err(|err| err.to_string())
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        self.admin
            .get(path)
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    pub(crate) async fn delete(&self, path: &str) {
        self.admin
            .delete(path)
            .await
            .unwrap_or_else(|err| panic!("DELETE {path}: {err}"));
    }

    pub(crate) async fn latest_seq(&self) -> i64 {
        self.admin.latest_seq().await.expect("latest seq")
    }

    /// The hubs' listening address (what a front forwards to).
    pub(crate) fn hub_addr(&self) -> SocketAddr {
        self.running
            .hub_base_url()
            .trim_start_matches("http://")
            .parse()
            .expect("hub address")
    }

    /// Logs and delivers one event exactly as given (`header` fields replace the generated
    /// ones; `null` removes one); answers its `event_seq_id` and `event_id`.
    pub(crate) async fn inject(&self, target: &str, payload: Value, header: Value) -> Value {
        self.post(
            "/events/inject",
            json!({"target": target, "payload": payload, "header": header}),
        )
        .await
    }

    /// Sends `text` as is on every connection of `hub` (`None`: all hubs); answers how many.
    pub(crate) async fn raw(&self, hub: Option<&str>, text: &str) -> u64 {
        self.post("/raw", json!({"hub": hub, "text": text})).await["sent"]
            .as_u64()
            .unwrap_or(0)
    }

    pub(crate) async fn emit(&self, count: u64) {
        self.admin.emit(count).await.expect("events emitted");
    }

    pub(crate) async fn drop_connections(&self) {
        self.post("/connections/drop", json!({"hub": null})).await;
    }

    /// Drops the connections of one hub (`"control"`, `"data"`, `"event"`), or all with `None`.
    pub(crate) async fn drop_hub(&self, hub: Option<&str>) {
        self.post("/connections/drop", json!({"hub": hub})).await;
    }

    /// Merges a fault patch (`src/sim/faults.rs`) into the active faults.
    pub(crate) async fn faults(&self, patch: Value) {
        self.post("/faults", patch).await;
    }

    /// `(seq, EventId, callback)` of every logged event up to `latest`, as the simulator's log
    /// holds them (`GET /events`): the same whatever wire forms the hubs play.
    pub(crate) async fn history(&self, latest: i64) -> Vec<(i64, String, String)> {
        let mut events = Vec::new();
        let mut after = 0;
        while after < latest {
            let page = self.get(&format!("/events?after={after}")).await;
            let listed = page["events"].as_array().cloned().unwrap_or_default();
            assert!(!listed.is_empty(), "the log ends before {latest}");
            for event in listed {
                let seq = event["event_seq_id"].as_i64().expect("event_seq_id");
                let id = event["event_id"].as_str().expect("event_id").to_owned();
                // The daemon counts effects per canonical callback name.
                let target = mesolive_api::wire::callbacks::canonical_target(
                    event["target"].as_str().expect("target"),
                );
                after = seq;
                events.push((seq, id, target));
            }
        }
        events
    }

    /// `(hub, method)` of every call the simulator received, in order.
    pub(crate) async fn requests(&self) -> Vec<(String, String)> {
        let list = self.get("/requests").await;
        list.as_array()
            .or_else(|| list["requests"].as_array())
            .expect("request log")
            .iter()
            .map(|r| {
                (
                    r["hub"].as_str().unwrap_or_default().to_owned(),
                    r["method"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// A loopback port nothing listens on (bound, then released): a hub address that refuses
/// connections. The daemon's own ops port is never chosen this way: it binds port 0.
pub(crate) fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What a process holds, as /proc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resources {
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// `mesolive-supervisor run` as a child process with a temp database and short timings.
pub(crate) struct Daemon {
    child: Option<Child>,
    /// The SQLite file (unused when the daemon is on PostgreSQL).
    pub db: PathBuf,
    /// Where its state is: the SQLite file, or the PostgreSQL schema its environment names.
    pub location: Location,
    /// The ops address the current process bound (read from its standard output).
    ops: std::sync::Mutex<Option<SocketAddr>>,
    /// Its standard output (appended across restarts): the bound ops address, nothing else.
    out: PathBuf,
    /// Where the current process's lines start in `out`.
    out_from: usize,
    pub log: PathBuf,
    env: Vec<(String, String)>,
    /// `--config FILE`, when the daemon reads one.
    config: Option<PathBuf>,
    http: reqwest::Client,
}

impl Daemon {
    /// Environment for a daemon against `sim` with a database in `dir`; `extra` overrides.
    pub(crate) fn env(sim: &Sim, dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("MESOLIVE_API_KEY", sim.running.token()),
            ("MESOLIVE__HUBS__BASE_URL", &sim.running.hub_base_url()),
            ("MESOLIVE__HUBS__PROBE_PROVIDER", "Sim"),
            ("MESOLIVE__HUBS__KEEP_ALIVE_INTERVAL", "1s"),
            ("MESOLIVE__HUBS__SERVER_TIMEOUT", "3s"),
            ("MESOLIVE__HUBS__INVOCATION_TIMEOUT", "3s"),
            ("MESOLIVE__HUBS__HANDSHAKE_TIMEOUT", "3s"),
            (
                "MESOLIVE__DATABASE__PATH",
                &dir.join("state.db").display().to_string(),
            ),
            ("MESOLIVE__SUPERVISOR__BACKOFF_INITIAL", "50ms"),
            ("MESOLIVE__SUPERVISOR__BACKOFF_MAX", "400ms"),
            ("MESOLIVE__SUPERVISOR__RESTART_MAX", "100000"),
            ("MESOLIVE__SUPERVISOR__SHUTDOWN_GRACE", "5s"),
            ("MESOLIVE__MONITOR__SNAPSHOT_RESYNC_INTERVAL", "5s"),
            ("MESOLIVE__AUTOMATION__JOB_POLL_AFTER", "1s"),
            ("MESOLIVE__LOG__FORMAT", "json"),
            ("MESOLIVE__LOG__FILTER", "info"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        env
    }

    /// Spawns the daemon; its stderr goes to `<dir>/daemon.log` (appended across restarts).
    /// Its ops listener binds any free port, which the probes read from the log.
    pub(crate) fn spawn(sim: &Sim, dir: &Path, extra: &[(&str, &str)]) -> Daemon {
        let mut daemon = Daemon::new(sim, dir, extra);
        daemon.start();
        daemon
    }

    /// As [`Daemon::spawn`], with `toml` written to `<dir>/config.toml` and passed as
    /// `--config` (the environment still wins over it).
    pub(crate) fn spawn_with_config(
        sim: &Sim,
        dir: &Path,
        extra: &[(&str, &str)],
        toml: &str,
    ) -> Daemon {
        let mut daemon = Daemon::new(sim, dir, extra);
        let path = dir.join("config.toml");
        std::fs::write(&path, toml).expect("config file written");
        daemon.config = Some(path);
        daemon.start();
        daemon
    }

    /// `mesolive-supervisor <args>` with this daemon's environment and configuration (`ctl`,
    /// `config show`): a command to run, as another process would.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        command
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Runs `mesolive-supervisor ctl <args>` against this daemon.
    pub(crate) fn ctl(&self, args: &[&str]) -> std::process::Output {
        let mut command = self.command(&["ctl"]);
        command.args(args);
        tokio::task::block_in_place(|| command.output()).expect("ctl runs")
    }

    /// `ctl status --json`, parsed.
    pub(crate) fn status(&self) -> Value {
        let out = self.ctl(&["status", "--json"]);
        assert!(out.status.success(), "ctl status: {out:?}");
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// A daemon not started yet ([`Daemon::start`] starts it).
    pub(crate) fn new(sim: &Sim, dir: &Path, extra: &[(&str, &str)]) -> Daemon {
        let mut env = Daemon::env(sim, dir, extra);
        env.push(("MESOLIVE__OPS__LISTEN".into(), "127.0.0.1:0".into()));
        let db = env
            .iter()
            .find(|(key, _)| key == "MESOLIVE__DATABASE__PATH")
            .map(|(_, path)| PathBuf::from(path))
            .expect("a database path");
        let var = |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, v)| v.clone())
        };
        let location = match var("MESOLIVE__DATABASE__URL") {
            Some(url) => Location::Postgres(PostgresLocation {
                url,
                password: None,
                schema: var("MESOLIVE__DATABASE__SCHEMA").unwrap_or_else(|| "mesolive".into()),
            }),
            None => Location::Sqlite(db.clone()),
        };
        Daemon {
            child: None,
            db,
            location,
            ops: std::sync::Mutex::new(None),
            out: dir.join("daemon.out"),
            out_from: 0,
            log: dir.join("daemon.log"),
            env,
            config: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client"),
        }
    }

    /// Drops one variable from the environment of the next start.
    pub(crate) fn unset(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// (Re)starts the process with the same environment.
    pub(crate) fn start(&mut self) {
        self.out_from = std::fs::metadata(&self.out).map_or(0, |m| m.len() as usize);
        *self.ops.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .expect("output file");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut command = Command::new(BIN);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let child = command
            .arg("run")
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("daemon spawns");
        self.child = Some(child);
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    /// The exit status if the process ended on its own (it is then no longer tracked).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("wait")?;
        self.child = None;
        Some(status)
    }

    /// Resident memory, threads and open file descriptors of the running process, from /proc.
    pub(crate) fn resources(&self) -> Option<Resources> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse().ok())
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
        Some(Resources {
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
            fds,
        })
    }

    /// SIGKILL: no cleanup at all.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (SIGTERM, SIGINT) to the process.
    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child pid we own; no memory is touched.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!(
                    "daemon did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds a line containing every one of `needles`.
    pub(crate) async fn wait_log(&self, needles: &[&str], timeout: Duration) {
        let what = format!("a log line with {needles:?} in {}", self.log.display());
        wait_for(&what, timeout, || async {
            self.log_text()
                .lines()
                .any(|line| needles.iter().all(|needle| line.contains(needle)))
        })
        .await;
    }

    /// Whether the process is still running (it has not exited).
    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("wait").is_none(),
            None => false,
        }
    }

    /// `mesolive_errors_total{kind}`, 0 when never counted or while the listener is not up.
    pub(crate) async fn errors(&self, kind: &str) -> f64 {
        let Some(ops) = self.ops() else {
            return 0.0;
        };
        let url = format!("http://{ops}/metrics");
        let Ok(response) = self.http.get(url).send().await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        metric_value(&text, &format!("mesolive_errors_total{{kind=\"{kind}\"}}")).unwrap_or(0.0)
    }

    /// Waits until `mesolive_errors_total{kind}` reaches `at_least`.
    pub(crate) async fn wait_errors(&self, kind: &str, at_least: f64, timeout: Duration) {
        let what = format!(
            "errors_total{{kind={kind}}} >= {at_least} (log {})",
            self.log.display()
        );
        wait_for(&what, timeout, || async {
            self.errors(kind).await >= at_least
        })
        .await;
    }

    /// The quarantined events, newest first.
    pub(crate) async fn quarantined(&self) -> Vec<QuarantinedEvent> {
        let store = self.store().await;
        let rows = store.quarantined_events(1_000).await.expect("quarantine");
        let _ = store.close().await;
        rows
    }

    /// `mesolive-supervisor state --json` on this daemon's database.
    pub(crate) fn state_json(&self) -> String {
        let output = Command::new(BIN)
            .args(["state", "--json", "--database"])
            .arg(&self.db)
            .env_clear()
            .output()
            .expect("state runs");
        assert!(output.status.success(), "state --json: {output:?}");
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    /// The ops address the running process bound, once it has said so.
    pub(crate) fn ops(&self) -> Option<SocketAddr> {
        let mut known = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        if known.is_none() {
            let out = std::fs::read_to_string(&self.out).unwrap_or_default();
            *known = ops_addr_in_log(out.get(self.out_from..).unwrap_or_default());
        }
        *known
    }

    pub(crate) async fn readyz(&self) -> Option<u16> {
        let url = format!("http://{}/readyz", self.ops()?);
        self.http
            .get(url)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// `/readyz` status and body, `None` while the listener is not up.
    pub(crate) async fn readyz_answer(&self) -> Option<(u16, String)> {
        let url = format!("http://{}/readyz", self.ops()?);
        let response = self.http.get(url).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// The ids of every hub connection this daemon logged (its log is kept across restarts).
    pub(crate) fn connection_ids(&self) -> HashSet<String> {
        self.log_text()
            .lines()
            .filter(|line| line.contains("hub connected"))
            .filter_map(|line| {
                let value: Value = serde_json::from_str(line).ok()?;
                Some(value["fields"]["connection_id"].as_str()?.to_owned())
            })
            .collect()
    }

    pub(crate) async fn wait_ready(&self, timeout: Duration) {
        let what = format!("daemon ready (log: {})", self.log.display());
        wait_for(&what, timeout, || async {
            self.readyz().await == Some(200)
        })
        .await;
    }

    pub(crate) async fn metrics(&self) -> String {
        let ops = self.ops().expect("the daemon logged its ops address");
        let url = format!("http://{ops}/metrics");
        self.http
            .get(url)
            .send()
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text")
    }

    /// The value of an unlabelled metric, or of a labelled series given as `name{labels}`.
    pub(crate) async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// Opens the daemon's database read-only (safe while it runs).
    pub(crate) async fn store(&self) -> Store {
        Store::connect_read_only(&self.location)
            .await
            .expect("database readable")
    }

    /// The facts the exactly-once invariants read from its database.
    pub(crate) async fn facts(&self) -> StoreFacts {
        match &self.location {
            Location::Sqlite(path) => sqlite_facts(path).await,
            Location::Postgres(pg) => postgres_facts(&pg.url, &pg.schema).await,
        }
    }

    /// The cursor, or `None` while the database is not created and migrated yet.
    pub(crate) async fn cursor_if_any(&self) -> Option<i64> {
        let store = Store::connect_read_only(&self.location).await.ok()?;
        let cursor = store.cursor().await.ok().flatten();
        let _ = store.close().await;
        cursor
    }

    pub(crate) async fn cursor(&self) -> Option<i64> {
        let store = self.store().await;
        let cursor = store.cursor().await.expect("cursor");
        let _ = store.close().await;
        cursor
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one series from Prometheus text.
pub(crate) fn metric_value(text: &str, series: &str) -> Option<f64> {
    mesolive_supervisor::ops::metrics::series_value(text, series)
}

/// What the exactly-once invariants read from a daemon's database.
pub(crate) struct StoreFacts {
    /// Every key in the dedupe set.
    keys: HashSet<String>,
    /// Effects applied per callback.
    applied: BTreeMap<String, i64>,
    /// EventSeqIds processed more than once.
    twice: i64,
    cursor: Option<i64>,
    /// `(seq, target, error)` of every quarantined event.
    quarantined: Vec<(i64, String, String)>,
    /// Intents per operation.
    pub intents: BTreeMap<String, i64>,
}

/// The [`StoreFacts`] read through `conn`, an open connection of either backend (the same
/// statements serve SQLite and PostgreSQL; a macro because sqlx's executor types differ).
macro_rules! read_facts {
    ($conn:ident) => {
        StoreFacts {
            keys: sqlx::query_scalar("SELECT event_key FROM processed_events")
                .fetch_all(&mut $conn)
                .await
                .expect("processed_events")
                .into_iter()
                .collect(),
            applied: sqlx::query_as("SELECT target, applied FROM event_stats")
                .fetch_all(&mut $conn)
                .await
                .expect("event_stats")
                .into_iter()
                .collect(),
            twice: sqlx::query_scalar(
                "SELECT COUNT(seq_id) - COUNT(DISTINCT seq_id) FROM processed_events",
            )
            .fetch_one(&mut $conn)
            .await
            .expect("processed_events"),
            cursor: sqlx::query_scalar("SELECT seq_id FROM event_cursor WHERE id = 1")
                .fetch_optional(&mut $conn)
                .await
                .expect("cursor"),
            quarantined: sqlx::query_as(
                "SELECT COALESCE(seq_id, -1), target, error FROM quarantined_events",
            )
            .fetch_all(&mut $conn)
            .await
            .expect("quarantined_events"),
            intents: sqlx::query_as("SELECT operation, COUNT(*) FROM intents GROUP BY operation")
                .fetch_all(&mut $conn)
                .await
                .expect("intents")
                .into_iter()
                .collect(),
        }
    };
}

/// The facts of an SQLite database (read-only, safe while the daemon runs).
pub(crate) async fn sqlite_facts(db: &Path) -> StoreFacts {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .expect("database readable");
    let facts = read_facts!(conn);
    let _ = conn.close().await;
    facts
}

/// The facts of a PostgreSQL schema.
pub(crate) async fn postgres_facts(url: &str, schema: &str) -> StoreFacts {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("postgres reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path = {schema}")))
        .execute(&mut conn)
        .await
        .expect("search_path");
    let facts = read_facts!(conn);
    let _ = conn.close().await;
    facts
}

/// The exactly-once invariants between the simulator's event log and a daemon's SQLite
/// database (see [`violations`]).
pub(crate) async fn exactly_once_violations(sim: &Sim, db: &Path) -> Vec<String> {
    violations(sim, &sqlite_facts(db).await).await
}

/// [`exactly_once_violations`] for a daemon whose first cursor was `first_cursor` (see
/// [`violations_after`]).
pub(crate) async fn exactly_once_violations_after(
    sim: &Sim,
    db: &Path,
    first_cursor: i64,
) -> Vec<String> {
    violations_after(sim, &sqlite_facts(db).await, first_cursor).await
}

/// The exactly-once invariants between the simulator's event log and a database's facts,
/// checked after quiescence: every logged EventId is in the dedupe set, effects applied per
/// callback equal the events logged per callback, no EventSeqId was processed twice, the
/// cursor is the simulator's latest EventSeqId, and nothing valid was quarantined. Returns the
/// violations (empty when every invariant holds).
pub(crate) async fn violations(sim: &Sim, facts: &StoreFacts) -> Vec<String> {
    violations_after(sim, facts, 0).await
}

/// [`violations`] for a daemon whose first cursor was `first_cursor` (a first run that started
/// at the server's latest event): the events after it must all be applied; those at or below
/// it count only if the daemon received them anyway (an on-connect push).
pub(crate) async fn violations_after(
    sim: &Sim,
    facts: &StoreFacts,
    first_cursor: i64,
) -> Vec<String> {
    let latest = sim.latest_seq().await;
    let logged = sim.history(latest).await;
    let mut violations = Vec::new();
    if logged.len() as i64 != latest {
        violations.push(format!(
            "the simulator logged {} events, latest is {latest}",
            logged.len()
        ));
    }
    let history: Vec<&(i64, String, String)> = logged
        .iter()
        .filter(|(seq, id, _)| *seq > first_cursor || facts.keys.contains(&id.to_ascii_lowercase()))
        .collect();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (_, _, target) in &history {
        *expected.entry(target.clone()).or_default() += 1;
    }
    let missing: Vec<i64> = history
        .iter()
        .filter(|(_, id, _)| !facts.keys.contains(&id.to_ascii_lowercase()))
        .map(|(seq, _, _)| *seq)
        .collect();
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(20).collect();
        violations.push(format!(
            "{} events never applied, e.g. EventSeqIds {shown:?}",
            missing.len()
        ));
    }
    if facts.applied != expected {
        violations.push(format!(
            "effects applied per callback {:?} != events logged per callback {expected:?}",
            facts.applied
        ));
    }
    if facts.twice != 0 {
        violations.push(format!("{} EventSeqIds processed twice", facts.twice));
    }
    if facts.cursor != Some(latest) {
        violations.push(format!(
            "cursor {:?} != latest EventSeqId {latest}",
            facts.cursor
        ));
    }
    if !facts.quarantined.is_empty() {
        violations.push(format!("valid events quarantined: {:?}", facts.quarantined));
    }
    violations
}
