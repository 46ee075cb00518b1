//! The crash matrix: the daemon SIGKILLs itself at every workflow step boundary — after the
//! intent is committed but before it is sent, after the server answered but before the outcome
//! is committed, after the outcome is committed but before the workflow moves on — for every
//! intent of an entry and of an exit, in randomized order; restarted, every workflow ends done
//! and the simulator's ledger shows zero second effects.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_sim::{SimOptions, WireProfile};
use mesolive_supervisor::ops::crash::CRASH_AT_ENV;
use mesolive_supervisor::store::WorkflowState;
use serde_json::json;
use testkit::wait_some;

use crate::support::daemon::{Daemon, Sim};

const POINTS: [&str; 3] = [
    "intent.before_send",
    "intent.after_send",
    "intent.after_commit",
];
/// Intents of a workflow, in order: prepare, leg group 1, leg group 2.
const STEPS: [u32; 3] = [1, 2, 3];
const REPEATS: usize = 6;
const PARALLEL: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Case {
    flow: FlowKind,
    point: &'static str,
    nth: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_boundary_crash_recovers_without_a_second_effect() {
    let seed = testkit::seed("CHAOS_SEED");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut cases = Vec::new();
    for _ in 0..REPEATS {
        for flow in [FlowKind::Entry, FlowKind::Exit] {
            for point in POINTS {
                for nth in STEPS {
                    cases.push(Case { flow, point, nth });
                }
            }
        }
    }
    rng.shuffle(&mut cases);
    assert!(cases.len() >= 100);
    let runs = cases.len();
    for batch in cases.chunks(PARALLEL) {
        let mut set = tokio::task::JoinSet::new();
        for case in batch.iter().copied() {
            set.spawn(run(case));
        }
        while let Some(result) = set.join_next().await {
            if let Err(err) = result {
                std::panic::resume_unwind(err.into_panic());
            }
        }
    }
    println!("{runs} crash runs recovered");
}

async fn run(case: Case) {
    let mut options = SimOptions {
        positions: usize::from(case.flow == FlowKind::Exit),
        wire: WireProfile::strict_types(),
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(20);
    options.timing.fill_delay = Duration::from_millis(20);
    let sim = Sim::start(options).await;
    let dir = testkit::temp_dir();
    let crash_at = format!("{}:{}", case.point, case.nth);
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__AUTOMATION__MODE", "paper"),
            (CRASH_AT_ENV, &crash_at),
        ],
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    let signal = match case.flow {
        FlowKind::Entry => {
            json!({"kind": "entry", "state": "On", "strategy_id": 101, "account": "PAPER-1"})
        }
        _ => {
            let store = daemon.store().await;
            let position = store.open_positions().await.unwrap().remove(0);
            assert_eq!(position.account, "PAPER-1", "{case:?}");
            json!({"kind": "exit", "state": "On", "strategy_id": position.strategy_id,
                   "position_id": position.position_id})
        }
    };
    sim.post("/signals", signal).await;
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{case:?} crashed: {}",
        daemon.log_text()
    );

    daemon.unset(CRASH_AT_ENV);
    daemon.start();
    let what = format!(
        "{case:?} finished after the restart (log {})",
        daemon.log.display()
    );
    let workflow = wait_some(&what, Duration::from_secs(20), || async {
        let store = daemon.store().await;
        let all = store.all_workflows().await.unwrap();
        let _ = store.close().await;
        all.into_iter()
            .find(|w| w.kind == case.flow && !w.state.is_active())
    })
    .await;
    assert_eq!(
        workflow.state,
        WorkflowState::Done,
        "{case:?}: {workflow:?}"
    );
    let ledger = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{case:?}: {ledger}");
    assert_eq!(
        ledger["total_effects"], 2,
        "{case:?}: one effect per leg group: {ledger}"
    );
    let store = daemon.store().await;
    let intents = store.intents_in_flight().await.unwrap();
    assert!(
        intents.is_empty(),
        "{case:?}: intents left in flight: {intents:?}"
    );
    daemon.kill();
    sim.running.shutdown().await;
}
