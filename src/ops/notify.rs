//! systemd's notify protocol (`sd_notify`), written out: a datagram to `$NOTIFY_SOCKET`.
//!
//! The unit runs with `Type=notify` and `WatchdogSec=`: the supervisor sends `READY=1` once the
//! hubs are verified and the event pump is live, `WATCHDOG=1` at half the watchdog interval
//! while it is healthy, `STATUS=` lines for `systemctl status`, and `STOPPING=1` on shutdown.
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go, if anywhere.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` for the Linux abstract namespace).
    pub fn from_env() -> Notifier {
        match std::env::var_os("NOTIFY_SOCKET").and_then(|raw| raw.into_string().ok()) {
            Some(socket) => Notifier::to_socket(&socket),
            None => Notifier::disabled(),
        }
    }

    /// Notifies the socket `socket` names as `NOTIFY_SOCKET` would: a path, or `@name` for the
    /// Linux abstract namespace (which sd_notify(3) specifies and older service managers use;
    /// the `sd-notify` crate, 0.5, treats it as a file path and fails with ENOENT).
    pub fn to_socket(socket: &str) -> Notifier {
        let target = match socket.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            Some(name) => Some(Target::Abstract(name.as_bytes().to_vec())),
            #[cfg(not(target_os = "linux"))]
            Some(_) => None,
            None if socket.is_empty() => None,
            None => Some(Target::Path(PathBuf::from(socket))),
        };
        Notifier { target }
    }

    /// A notifier that sends nothing (tests, the demo).
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// Sends one or more `KEY=value` lines. Failures are logged, never fatal: a daemon must not
    /// stop trading because its service manager went away.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else {
            return;
        };
        if let Err(err) = send(target, state.as_bytes()) {
            tracing::warn!(error = %err, "sd_notify failed");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `WATCHDOG=1`: proof of health for systemd's watchdog.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// `STATUS=` line shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={status}"));
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping");
    }

    /// Half the watchdog interval systemd asked for (`WATCHDOG_USEC`), if it asked this process.
    pub fn watchdog_period() -> Option<Duration> {
        if let Some(pid) = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            && pid != std::process::id()
        {
            return None;
        }
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}

fn send(target: &Target, payload: &[u8]) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    match target {
        Target::Path(path) => socket.send_to(payload, path).map(drop),
        #[cfg(target_os = "linux")]
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(payload, &addr).map(drop)
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::linux::net::SocketAddrExt;

    use super::*;

    #[test]
    fn an_abstract_namespace_socket_receives_the_notifications() {
        let name = format!("mesolive-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        Notifier::to_socket(&format!("@{name}")).ready("running");
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=running");
    }
}
