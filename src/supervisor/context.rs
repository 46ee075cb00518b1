//! What every child of the supervisor shares: settings, the store, metrics, health, the current
//! hub connections, change notifications and the shutdown tokens.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::store::Store;
use mesolive_api::client::{ControlHub, DataHub, EventHub};
use mesolive_api::models::{LiveAccount, LiveStrategy};

/// A hub connection as published by its link: the client and a generation number that grows
/// with every new connection, so dependents notice a reconnect even if they missed the gap.
#[derive(Debug, Clone)]
pub struct Linked<T> {
    /// Increments on every new connection of this hub.
    pub generation: u64,
    /// The typed client over the current connection.
    pub client: T,
}

/// The receiving side of the three hub links (`None` while a hub is down).
#[derive(Debug, Clone)]
pub struct HubLinks {
    /// Control Hub.
    pub control: watch::Receiver<Option<Linked<ControlHub>>>,
    /// Data Hub.
    pub data: watch::Receiver<Option<Linked<DataHub>>>,
    /// Event Hub.
    pub event: watch::Receiver<Option<Linked<EventHub>>>,
}

/// The sending side, owned by the link children.
#[derive(Debug)]
pub struct HubLinkSenders {
    /// Control Hub.
    pub control: watch::Sender<Option<Linked<ControlHub>>>,
    /// Data Hub.
    pub data: watch::Sender<Option<Linked<DataHub>>>,
    /// Event Hub.
    pub event: watch::Sender<Option<Linked<EventHub>>>,
}

/// Creates the three links, all down.
pub fn hub_links() -> (HubLinkSenders, HubLinks) {
    let (control_tx, control) = watch::channel(None);
    let (data_tx, data) = watch::channel(None);
    let (event_tx, event) = watch::channel(None);
    (
        HubLinkSenders {
            control: control_tx,
            data: data_tx,
            event: event_tx,
        },
        HubLinks {
            control,
            data,
            event,
        },
    )
}

/// Level-triggered wake-ups: the receiver re-reads the store, so a missed or merged
/// notification loses nothing (no event queues between tasks).
#[derive(Debug, Default)]
pub struct Wakeups {
    /// Positions changed (open/close): the monitor manager reconciles its set.
    pub positions: Notify,
    /// Signals, jobs or orders changed: the workflow runner re-evaluates.
    pub workflows: Notify,
    /// A hub reconnected or the daemon started: settle in-flight intents and jobs.
    pub reconcile: Notify,
}

/// The stop sequence's tokens, from gentle to immediate.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// First SIGTERM: stop accepting new signals and intents; finish in-flight work.
    pub intake: CancellationToken,
    /// In-flight work is done (or its grace expired): stop the pump, monitors and reconciler.
    pub children: CancellationToken,
    /// Second signal or an escalation: stop at once.
    pub force: CancellationToken,
}

/// Accounts and strategies as last read from the Control Hub.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    /// Accounts by BrokerAccountId.
    pub accounts: HashMap<String, LiveAccount>,
    /// Strategies by id.
    pub strategies: HashMap<i64, LiveStrategy>,
}

impl Directory {
    /// Whether an account is a paper account (`None` if unknown).
    pub fn is_paper(&self, account: &str) -> Option<bool> {
        self.accounts.get(account).map(|a| a.is_paper_account)
    }
}

/// Everything a child needs. Shared as `Arc<Ctx>`.
#[derive(Debug)]
pub struct Ctx {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The state database.
    pub store: Arc<Store>,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// Readiness and liveness.
    pub health: Arc<Health>,
    /// Current hub connections.
    pub links: HubLinks,
    /// Wake-ups between children.
    pub wake: Wakeups,
    /// Stop tokens.
    pub shutdown: Shutdown,
    /// Accounts and strategies from the Control Hub.
    pub directory: RwLock<Directory>,
    /// Workflow steps running now (shutdown waits for zero, within its grace).
    pub drives: watch::Sender<usize>,
    /// The Control Hub generation whose position listing the monitors last bootstrapped from
    /// (0: not yet); startup waits for it before READY.
    pub bootstrapped: watch::Sender<u64>,
}

impl Ctx {
    /// A copy of the directory (cheap: a few accounts and strategies).
    pub fn directory(&self) -> Directory {
        self.directory.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// Replaces the directory after a Control Hub verification.
    pub fn set_directory(&self, directory: Directory) {
        if let Ok(mut current) = self.directory.write() {
            *current = directory;
        }
    }
}

/// Waits until `link` carries a connection other than `after` (a generation), or until
/// `stop` is cancelled (then `None`).
pub async fn next_link<T: Clone>(
    link: &mut watch::Receiver<Option<Linked<T>>>,
    after: Option<u64>,
    stop: &CancellationToken,
) -> Option<Linked<T>> {
    loop {
        if let Some(current) = link.borrow_and_update().as_ref()
            && Some(current.generation) != after
        {
            return Some(current.clone());
        }
        tokio::select! {
            changed = link.changed() => {
                if changed.is_err() {
                    // The link's owner is gone: the supervisor is stopping.
                    stop.cancelled().await;
                    return None;
                }
            }
            _ = stop.cancelled() => return None,
        }
    }
}

/// Waits until the current connection of `link` (generation `generation`) is replaced or gone.
pub async fn link_lost<T>(link: &mut watch::Receiver<Option<Linked<T>>>, generation: u64) {
    loop {
        let same = link
            .borrow_and_update()
            .as_ref()
            .is_some_and(|l| l.generation == generation);
        if !same || link.changed().await.is_err() {
            return;
        }
    }
}
