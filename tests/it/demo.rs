//! The README's first command: `demo` runs the simulator and the daemon, prints a view that
//! updates, does real work (workflows complete), and exits 0 at `--duration`.

use std::process::Command;

use crate::support::daemon::BIN;

#[test]
fn demo_shows_a_live_view_and_exits_cleanly() {
    let dir = testkit::temp_dir();
    let out = Command::new(BIN)
        .args(["demo", "--duration", "8s", "--chaos", "--data-dir"])
        .arg(dir.path())
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let views: Vec<&str> = stdout.lines().filter(|l| l.starts_with("hubs ")).collect();
    assert!(views.len() >= 5, "a line per second: {stdout}");
    assert!(views.iter().any(|l| l.contains("ready")), "{stdout}");
    let cursors: Vec<i64> = views
        .iter()
        .filter_map(|l| {
            l.split("cursor")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        cursors.last() > cursors.first(),
        "the cursor moves: {cursors:?}"
    );
    let done: i64 = stdout
        .lines()
        .last()
        .and_then(|l| {
            l.split("workflows done")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(done >= 1, "workflows completed: {stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("stopped:"))
    );
}
