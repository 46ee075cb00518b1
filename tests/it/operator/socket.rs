//! The control socket is the daemon's user's only: mode 0600, owned by that user, and a
//! connection from anyone else is refused — by the file mode, and where the mode was
//! loosened, by the daemon itself (SO_PEERCRED). The tests run as root; the other user is
//! `nobody` (uid 65534), set on the `ctl` process.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use mesolive_supervisor::config::CONTROL_SOCKET_NAME;

use super::{ok, quick_sim};
use crate::support::daemon::{Daemon, Sim};

const NOBODY: u32 = 65534;

fn ctl_as_nobody(daemon: &Daemon) -> std::process::Output {
    let mut command = daemon.command(&["ctl", "status"]);
    command.uid(NOBODY).gid(NOBODY);
    tokio::task::block_in_place(|| command.output()).expect("ctl runs as nobody")
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_refuses_another_user() {
    // SAFETY: geteuid(2) has no preconditions.
    let me = unsafe { libc::geteuid() };
    assert_eq!(
        me, 0,
        "this test switches to uid {NOBODY}: it needs to run as root"
    );
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    let socket = daemon
        .db
        .parent()
        .expect("the database's directory")
        .join(CONTROL_SOCKET_NAME);
    let meta = std::fs::metadata(&socket).expect("the socket exists");
    assert_eq!(meta.mode() & 0o777, 0o600, "mode 0600");
    assert_eq!(meta.uid(), me, "owned by the daemon's user");
    ok(&daemon.ctl(&["status"]));

    // Stopped by the file mode (and the 0700 directory): connect() itself is refused.
    let out = ctl_as_nobody(&daemon);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");

    // Loosened on purpose: the connection is made, and the daemon refuses the peer.
    chmod(dir.path(), 0o755);
    chmod(&socket, 0o666);
    let out = ctl_as_nobody(&daemon);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(
        stderr.contains(&format!("uid {NOBODY} is neither the daemon's user")),
        "{stderr}"
    );
    daemon
        .wait_log(
            &["refused a peer that is not the daemon's user"],
            Duration::from_secs(5),
        )
        .await;
    // The owner is still served, and nothing changed.
    assert_eq!(daemon.status()["trading_state"], "active");
}
