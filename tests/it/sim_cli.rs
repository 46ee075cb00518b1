//! `mesolive-supervisor sim` as a process: it says where it listens, starts with the faults its
//! flags name, and stops cleanly (exit 0) on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::daemon::{BIN, admin_client};

/// Kills the simulator if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `name=` in the listening log line.
fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
        .to_owned()
}

#[tokio::test]
async fn sim_runs_with_its_fault_flags_and_stops_on_sigterm() {
    let child = Command::new(BIN)
        .args(["sim", "--port", "0", "--admin-port", "0", "--seed", "9"])
        .args([
            "--lose-completion",
            "SendOrder:2:silence",
            "--suppress-events",
            "3",
            "--reject-auth",
        ])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut child = KillOnDrop(child);
    let stderr = child.0.stderr.take().expect("stderr");
    // Keep reading stderr to the end: a closed pipe would make the logger fail at exit.
    let (found, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("admin=") {
                let _ = found.send(line);
            }
        }
    });
    let line = tokio::task::spawn_blocking(move || listening.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the listening line");

    let admin = admin_client(field(&line, "admin"));
    let health = admin.get("/healthz").await.expect("GET /healthz");
    assert_eq!(health["status"], "ok");
    let faults = admin.get("/faults").await.expect("GET /faults");
    assert_eq!(
        faults["lose_completion"],
        json!([{"method": "SendOrder", "count": 2, "mode": "silence"}])
    );
    assert_eq!(faults["suppress_events"], 3);
    let negotiate = reqwest::Client::new()
        .post(format!(
            "{}/negotiate?negotiateVersion=1",
            field(&line, "event")
        ))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        negotiate.status().as_u16(),
        401,
        "--reject-auth refuses even the right token"
    );

    // SAFETY: signalling our own child process by its pid.
    let signalled = unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(signalled, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sim did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// `sim --wire-profile random:SEED` prints the forms it plays at start.
#[test]
fn sim_prints_a_random_profile_at_start() {
    let mut child = Command::new(BIN)
        .args(["sim", "--port", "0", "--admin-port", "0"])
        .args(["--wire-profile", "random:4242", "--strict-types"])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let line = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("admin="));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("the listening line");
    assert!(line.contains("random:4242"), "{line}");
    assert!(line.contains("argument_binding=strict_stj"), "{line}");
}
