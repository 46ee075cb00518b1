//! Test support for the daemon as a real process against the project's simulator: start a
//! simulator in the test, spawn `mesolive-supervisor run` pointed at it with a temp database,
//! drive the simulator's admin API, and wait on conditions (never on fixed sleeps).
#![allow(dead_code)] // each test binary uses a different part of this module

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mesolive_supervisor::sim::{AdminClient, RunningSim, SimOptions, Simulator};
use mesolive_supervisor::store::Store;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_mesolive-supervisor");

/// Polls `check` every 25 ms until it returns true; panics naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `probe` every 25 ms until it yields a value; panics naming `what` after `timeout`.
pub async fn wait_some<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A simulator in this process, reached over real sockets like any MesoLive server.
pub struct Sim {
    pub running: RunningSim,
    admin: AdminClient,
}

impl Sim {
    pub async fn start(options: SimOptions) -> Sim {
        mesolive_supervisor::tls::install_default_provider();
        let running = Simulator::start(options).await.expect("simulator starts");
        let admin = AdminClient::new(running.admin_url());
        Sim { running, admin }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.admin
            .post(path, body.clone())
            .await
            .unwrap_or_else(|err| panic!("POST {path} {body}: {err}"))
    }

    pub async fn get(&self, path: &str) -> Value {
        self.admin
            .get(path)
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    pub async fn delete(&self, path: &str) {
        self.admin
            .delete(path)
            .await
            .unwrap_or_else(|err| panic!("DELETE {path}: {err}"));
    }

    pub async fn latest_seq(&self) -> i64 {
        self.admin.latest_seq().await.expect("latest seq")
    }

    pub async fn emit(&self, count: u64) {
        self.admin.emit(count).await.expect("events emitted");
    }

    pub async fn drop_connections(&self) {
        self.post("/connections/drop", json!({"hub": null})).await;
    }

    pub async fn connections(&self, hub: &str) -> u64 {
        self.get("/stats").await["connections"][hub]
            .as_u64()
            .unwrap_or(0)
    }

    /// `(hub, method)` of every call the simulator received, in order.
    pub async fn requests(&self) -> Vec<(String, String)> {
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

/// A free loopback port (bound then released; fine for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `mesolive-supervisor run` as a child process with a temp database and short timings.
pub struct Daemon {
    child: Option<Child>,
    pub db: PathBuf,
    pub ops: SocketAddr,
    pub log: PathBuf,
    env: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Daemon {
    /// Environment for a daemon against `sim` with a database in `dir`; `extra` overrides.
    pub fn env(sim: &Sim, dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
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
    pub fn spawn(sim: &Sim, dir: &Path, extra: &[(&str, &str)]) -> Daemon {
        let ops = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut env = Daemon::env(sim, dir, extra);
        env.push(("MESOLIVE__OPS__LISTEN".into(), ops.to_string()));
        let mut daemon = Daemon {
            child: None,
            db: dir.join("state.db"),
            ops,
            log: dir.join("daemon.log"),
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client"),
        };
        daemon.start();
        daemon
    }

    /// Drops one variable from the environment of the next start.
    pub fn unset(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// (Re)starts the process with the same environment.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(BIN)
            .arg("run")
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("daemon spawns");
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    /// SIGKILL: no cleanup at all.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (SIGTERM, SIGINT) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child pid we own; no memory is touched.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn readyz(&self) -> Option<u16> {
        let url = format!("http://{}/readyz", self.ops);
        self.http
            .get(url)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    pub async fn wait_ready(&self, timeout: Duration) {
        let what = format!("daemon ready (log: {})", self.log.display());
        wait_for(&what, timeout, || async {
            self.readyz().await == Some(200)
        })
        .await;
    }

    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.ops);
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
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// Opens the daemon's database read-only (safe while it runs).
    pub async fn store(&self) -> Store {
        Store::open_read_only(&self.db)
            .await
            .expect("database readable")
    }

    pub async fn cursor(&self) -> Option<i64> {
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
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    mesolive_supervisor::ops::metrics::series_value(text, series)
}
