//! The daemon as a child process (`<this executable> run`), configured through the environment
//! like a deployment, for the figures that must not include the simulator: resident memory and
//! CPU time from `/proc/<pid>`, `/readyz`, and SIGTERM to exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::BenchError;
use super::harness::{BenchSim, Scratch};
use crate::daemon::ops_addr_in_log;
use crate::ops::metrics::series_value;

/// How often a child is checked for having exited.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// A running `mesolive-supervisor run`; killed (SIGKILL) if still running when dropped.
pub(super) struct ChildDaemon {
    /// `None` once it exited and was reaped. Behind a mutex so that probes can share `&self`.
    child: Mutex<Option<Child>>,
    pid: u32,
    /// Its standard output: the ops address it bound (port 0) is read from there.
    out: PathBuf,
    ops: Mutex<Option<SocketAddr>>,
    http: reqwest::Client,
}

impl ChildDaemon {
    /// Spawns the daemon against `sim`, with its database and log (stderr) in `scratch`.
    /// Logging stays at the default `info`, as deployed.
    /// `settings` are further `MESOLIVE__…` variables (name, value) for the scenario.
    pub(super) fn spawn(
        sim: &BenchSim,
        scratch: &Scratch,
        settings: &[(&str, &str)],
    ) -> Result<ChildDaemon, BenchError> {
        ChildDaemon::spawn_against(&sim.running.hub_base_url(), sim, scratch, settings)
    }

    /// As [`ChildDaemon::spawn`], with the hubs at `hubs` (an origin that may not be `sim`'s).
    pub(super) fn spawn_against(
        hubs: &str,
        sim: &BenchSim,
        scratch: &Scratch,
        settings: &[(&str, &str)],
    ) -> Result<ChildDaemon, BenchError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| BenchError::Io { what, source }
        };
        let exe = std::env::current_exe().map_err(io("locating this executable"))?;
        let log = std::fs::File::create(scratch.path().join("daemon.log"))
            .map_err(io("creating the daemon log"))?;
        let out_path = scratch.path().join("daemon.out");
        let out = std::fs::File::create(&out_path).map_err(io("creating the daemon output"))?;
        let child = Command::new(exe)
            .arg("run")
            .env_clear()
            .env("MESOLIVE_API_KEY", sim.running.token())
            .env("MESOLIVE__HUBS__BASE_URL", hubs)
            .env("MESOLIVE__HUBS__PROBE_PROVIDER", "Sim")
            .env("MESOLIVE__DATABASE__PATH", scratch.database())
            .env("MESOLIVE__OPS__LISTEN", "127.0.0.1:0")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .spawn()
            .map_err(io("spawning the daemon"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|err| BenchError::Child(format!("HTTP client: {err}")))?;
        Ok(ChildDaemon {
            pid: child.id(),
            child: Mutex::new(Some(child)),
            out: out_path,
            ops: Mutex::new(None),
            http,
        })
    }

    /// The process id (`/proc/<pid>`).
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// The ops address the daemon bound, once it has said so.
    fn ops(&self) -> Option<SocketAddr> {
        let mut known = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        if known.is_none() {
            *known = std::fs::read_to_string(&self.out)
                .ok()
                .and_then(|log| ops_addr_in_log(&log));
        }
        *known
    }

    /// Whether `/readyz` answers 200 now.
    pub(super) async fn ready(&self) -> bool {
        let Some(ops) = self.ops() else {
            return false;
        };
        let url = format!("http://{ops}/readyz");
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// One series of `/metrics` now (`None` if unreachable or absent).
    pub(super) async fn metric(&self, series: &str) -> Option<f64> {
        series_value(&self.scrape().await?, series)
    }

    /// The whole of `/metrics` now (`None` if unreachable), for reading several series of one
    /// moment with [`series_value`].
    pub(super) async fn scrape(&self) -> Option<String> {
        let url = format!("http://{}/metrics", self.ops()?);
        self.http.get(url).send().await.ok()?.text().await.ok()
    }

    /// Fails if the daemon has exited (it must run until the benchmark stops it).
    pub(super) fn check_alive(&self) -> Result<(), BenchError> {
        match self.try_wait()? {
            None => Ok(()),
            Some(status) => Err(BenchError::Child(format!("exited early: {status}"))),
        }
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    fn try_wait(&self) -> Result<Option<ExitStatus>, BenchError> {
        let mut slot = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let child = slot
            .as_mut()
            .ok_or_else(|| BenchError::Child("the daemon already exited".into()))?;
        let status = child.try_wait().map_err(|source| BenchError::Io {
            what: "checking the daemon".into(),
            source,
        })?;
        if status.is_some() {
            *slot = None;
        }
        Ok(status)
    }

    /// Sends SIGTERM.
    pub(super) fn terminate(&self) -> Result<(), BenchError> {
        self.signal(libc::SIGTERM, "SIGTERM")
    }

    /// Sends SIGKILL: the machine dies under it.
    pub(super) fn kill(&self) -> Result<(), BenchError> {
        self.signal(libc::SIGKILL, "SIGKILL")
    }

    fn signal(&self, signal: libc::c_int, name: &str) -> Result<(), BenchError> {
        let pid = libc::pid_t::try_from(self.pid)
            .map_err(|_| BenchError::Child("pid out of range".into()))?;
        // SAFETY: kill(2) on our own, not yet reaped child's pid touches no memory.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(BenchError::Io {
                what: format!("sending {name}"),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit; its status.
    pub(super) async fn wait_exit(&self, limit: Duration) -> Result<ExitStatus, BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: "the daemon to exit".into(),
                    after: limit,
                });
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let slot = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut child) = slot.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system) of a process so far, from `/proc/<pid>/stat`.
pub(super) fn cpu_time(pid: u32) -> Result<Duration, BenchError> {
    let stat = read_proc(pid, "stat")?;
    // The command name (field 2) may contain spaces; fields after its ')' are unambiguous.
    // utime and stime are fields 14 and 15, i.e. the 12th and 13th after the ')'.
    let times: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|field| field.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [utime, stime] = times[..] else {
        return Err(BenchError::Child(format!("unreadable /proc/{pid}/stat")));
    };
    let ticks = utime + stime;
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).unwrap_or(100).max(1);
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// Resident memory of a process now, in bytes, from `VmRSS` of `/proc/<pid>/status`.
pub(super) fn resident_bytes(pid: u32) -> Result<u64, BenchError> {
    let status = read_proc(pid, "status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| BenchError::Child(format!("no VmRSS in /proc/{pid}/status")))
}

fn read_proc(pid: u32, file: &str) -> Result<String, BenchError> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).map_err(|source| BenchError::Io { what: path, source })
}
