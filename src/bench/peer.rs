//! The Python baseline of scenario (9): `benches/peer/peer.py` (pysignalr + the standard
//! `sqlite3` module), run from a virtualenv under `target/` that the first run makes and fills
//! with pip, as a child process whose stdout lines are timed the moment they arrive.
//!
//! Nothing is skipped: without `python3`, its `venv` module or a working pip, the scenario
//! fails and says which.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::BenchError;
use super::harness::{BenchSim, Scratch};
use mesolive_sim::Hub;

/// The peer's sources, in the source tree this binary was built from.
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer");
/// The virtualenv, beside the build's outputs.
const VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-peer-venv");
/// The copy of `requirements.txt` that the virtualenv was filled from.
const INSTALLED: &str = "requirements.installed";
/// Lines of the peer's stderr quoted when it fails.
const STDERR_TAIL: usize = 20;

/// A virtualenv with the peer's requirements installed.
pub(super) struct Venv {
    python: PathBuf,
    script: PathBuf,
}

impl Venv {
    /// The virtualenv, made and filled with pip unless it already holds exactly the current
    /// `requirements.txt`. Blocking: it runs `python3 -m venv` and pip.
    pub(super) fn ensure() -> Result<Venv, BenchError> {
        let sources = Path::new(SOURCES);
        let script = sources.join("peer.py");
        let requirements_path = sources.join("requirements.txt");
        let requirements = std::fs::read_to_string(&requirements_path).map_err(|err| {
            BenchError::Peer(format!(
                "cannot read {} ({err}): scenario 9 runs from the source checkout it was built in",
                requirements_path.display()
            ))
        })?;
        let venv = Path::new(VENV);
        let python = venv.join("bin").join("python");
        let marker = venv.join(INSTALLED);
        if python.exists() && std::fs::read_to_string(&marker).ok() == Some(requirements.clone()) {
            return Ok(Venv { python, script });
        }
        super::harness::progress(format_args!(
            "9 python: creating {} and installing {} with pip",
            venv.display(),
            requirements_path.display()
        ));
        let mut make = Command::new("python3");
        make.args(["-m", "venv", "--clear"]).arg(venv);
        run_tool(
            make,
            "python3 -m venv (scenario 9 needs python3 with its venv module and pip; \
             on Debian: apt-get install python3-venv)",
        )?;
        let mut install = Command::new(&python);
        install
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements_path);
        run_tool(install, "pip install -r benches/peer/requirements.txt")?;
        std::fs::write(&marker, requirements).map_err(|source| BenchError::Io {
            what: format!("writing {}", marker.display()),
            source,
        })?;
        Ok(Venv { python, script })
    }
}

/// Runs a setup command to completion; a missing program or a failure names `what`.
fn run_tool(mut command: Command, what: &str) -> Result<(), BenchError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| BenchError::Peer(format!("{what}: cannot run it: {err}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(BenchError::Peer(format!(
        "{what}: {}\n{}",
        output.status,
        tail(&stderr)
    )))
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(STDERR_TAIL)..].join("\n")
}

/// The running peer; killed when dropped.
pub(super) struct Peer {
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    stderr: PathBuf,
}

impl Peer {
    /// Starts the peer against `sim`'s Event Hub, with its database in `scratch`.
    pub(super) fn spawn(
        venv: &Venv,
        sim: &BenchSim,
        scratch: &Scratch,
    ) -> Result<Peer, BenchError> {
        let io = |what: &'static str| {
            move |source| BenchError::Io {
                what: what.into(),
                source,
            }
        };
        let stderr = scratch.path().join("peer.err");
        let errors = std::fs::File::create(&stderr).map_err(io("creating the peer's stderr"))?;
        let mut child = Command::new(&venv.python)
            .arg(&venv.script)
            .arg("--url")
            .arg(sim.running.hub_url(Hub::Event))
            .arg("--token")
            .arg(sim.running.token())
            .arg("--database")
            .arg(scratch.database())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errors)
            .spawn()
            .map_err(io("spawning the Python peer"))?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Peer("no stdout pipe".into()))?;
        let (sender, lines) = mpsc::unbounded_channel();
        // A thread of its own: a line is timed when it arrives, not when a busy runtime polls.
        std::thread::Builder::new()
            .name("peer-stdout".into())
            .spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if sender.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            })
            .map_err(io("starting the peer's reader thread"))?;
        Ok(Peer {
            child,
            lines,
            stderr,
        })
    }

    /// Waits for the first line `word` or `word <n>` with `n >= at_least`; when it arrived and
    /// its number (0 without one).
    pub(super) async fn until(
        &mut self,
        word: &str,
        at_least: i64,
        limit: Duration,
    ) -> Result<(Instant, i64), BenchError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline, self.lines.recv()).await;
            let (at, line) = match next {
                Ok(Some(line)) => line,
                Ok(None) => return Err(self.exited()),
                Err(_) => {
                    return Err(BenchError::Timeout {
                        what: format!("the Python peer to print `{word} {at_least}`"),
                        after: limit,
                    });
                }
            };
            let mut parts = line.split_whitespace();
            if parts.next() != Some(word) {
                continue;
            }
            let number = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            if number >= at_least {
                return Ok((at, number));
            }
        }
    }

    /// The error for a peer whose output ended: its status and the tail of its stderr.
    fn exited(&mut self) -> BenchError {
        let status = self
            .child
            .wait()
            .map_or_else(|err| err.to_string(), |status| status.to_string());
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        BenchError::Peer(format!(
            "the Python peer stopped ({status}):\n{}",
            tail(&stderr)
        ))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
