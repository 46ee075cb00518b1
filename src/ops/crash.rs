//! Crash points for the crash-matrix tests: with `MESOLIVE_CRASH_AT=<point>[:<nth>]` set, the
//! process SIGKILLs itself the `nth` time (default 1) it reaches `<point>` — exactly what a
//! power cut or the OOM killer does at that instant. Unset (always, in production), a crash
//! point is one relaxed atomic load.
//!
//! Points: `intent.before_send` (the intent is committed, nothing sent), `intent.after_send`
//! (the server answered, the outcome is not committed), `intent.after_commit` (the outcome is
//! committed, the workflow has not moved on).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable naming the crash point.
pub const CRASH_AT_ENV: &str = "MESOLIVE_CRASH_AT";

struct Plan {
    point: String,
    nth: u32,
    hits: AtomicU32,
}

fn plan() -> Option<&'static Plan> {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let spec = std::env::var(CRASH_AT_ENV).ok()?;
        let (point, nth) = match spec.split_once(':') {
            Some((point, nth)) => (point.to_owned(), nth.parse().ok()?),
            None => (spec, 1),
        };
        Some(Plan {
            point,
            nth,
            hits: AtomicU32::new(0),
        })
    })
    .as_ref()
}

/// Marks a point where a crash must leave the state recoverable.
pub fn point(name: &str) {
    let Some(plan) = plan() else {
        return;
    };
    if plan.point == name && plan.hits.fetch_add(1, Ordering::SeqCst) + 1 == plan.nth {
        tracing::warn!(point = name, "crash point reached: SIGKILL");
        // SAFETY: kill(2) on our own pid with SIGKILL; no memory is touched and it does not
        // return in practice.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
