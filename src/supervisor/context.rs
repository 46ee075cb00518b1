//! What every child of the supervisor shares ([`Ctx`]): settings, the store, the send gate,
//! metrics, health, the current hub connections, change notifications, the drain and the
//! trading state. Fields are private: a child reads through accessors and changes shared state
//! through the few methods here.
//!
//! Settings can be replaced while the daemon runs (a reload): [`Ctx::settings`] hands out the
//! current snapshot, whole, so a reader never sees half of an old and half of a new one. The
//! trading state is the store's (persisted first); the copy here is a watch channel updated on
//! every change, so the hot path never queries the store for it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::timeout;

use super::drain::Drain;
use super::precedence::{PRECEDENCE_LIMIT, Precedence};
use crate::config::Settings;
use crate::ha::SendGate;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::store::{Store, TradingState};
use mesolive_api::Hub;
use mesolive_api::client::{ControlHub, DataHub, EventHub, HubClient};
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

/// A watch of one hub's current connection (`None` while it is down).
pub type LinkWatch<T> = watch::Receiver<Option<Linked<T>>>;

/// The receiving side of the three hub links.
#[derive(Debug, Clone)]
pub struct HubLinks {
    control: LinkWatch<ControlHub>,
    data: LinkWatch<DataHub>,
    event: LinkWatch<EventHub>,
}

impl HubLinks {
    /// Follows the Control Hub connection.
    pub fn control(&self) -> LinkWatch<ControlHub> {
        self.control.clone()
    }

    /// Follows the Data Hub connection.
    pub fn data(&self) -> LinkWatch<DataHub> {
        self.data.clone()
    }

    /// Follows the Event Hub connection.
    pub fn event(&self) -> LinkWatch<EventHub> {
        self.event.clone()
    }

    /// The Control Hub client now, if connected.
    pub fn current_control(&self) -> Option<Linked<ControlHub>> {
        self.control.borrow().clone()
    }

    /// Whether `hub` has a connection published now.
    pub fn is_up(&self, hub: Hub) -> bool {
        match hub {
            Hub::Control => self.control.borrow().is_some(),
            Hub::Data => self.data.borrow().is_some(),
            Hub::Event => self.event.borrow().is_some(),
        }
    }

    /// Closes the connected hubs in the stop order, Event → Data → Control (the reverse of
    /// the runbook's start order), each bounded by `per_hub`: a server that does not answer
    /// the close handshake costs at most that, never the close handshake's own timeout.
    pub async fn close(&self, per_hub: Duration) {
        let event = self.event.borrow().as_ref().map(|l| l.client.0.clone());
        let data = self.data.borrow().as_ref().map(|l| l.client.0.clone());
        let control = self.control.borrow().as_ref().map(|l| l.client.0.clone());
        for (hub, client) in [
            (Hub::Event, event),
            (Hub::Data, data),
            (Hub::Control, control),
        ] {
            let Some(client) = client else { continue };
            if timeout(per_hub, client.connection().close()).await.is_err() {
                tracing::warn!(
                    hub = hub.as_str(),
                    after = ?per_hub,
                    "the hub did not answer the close handshake; connection dropped"
                );
            }
        }
    }
}

/// The sending side, owned by the link children.
#[derive(Debug)]
pub struct HubLinkSenders {
    control: watch::Sender<Option<Linked<ControlHub>>>,
    data: watch::Sender<Option<Linked<DataHub>>>,
    event: watch::Sender<Option<Linked<EventHub>>>,
}

impl HubLinkSenders {
    /// Publishes `hub`'s new connection (`Some`) or its loss (`None`) to the dependents.
    pub fn publish(&self, hub: Hub, generation: u64, client: Option<HubClient>) {
        match hub {
            Hub::Control => {
                self.control.send_replace(client.map(|c| Linked {
                    generation,
                    client: ControlHub(c),
                }));
            }
            Hub::Data => {
                self.data.send_replace(client.map(|c| Linked {
                    generation,
                    client: DataHub(c),
                }));
            }
            Hub::Event => {
                self.event.send_replace(client.map(|c| Linked {
                    generation,
                    client: EventHub(c),
                }));
            }
        }
    }
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

/// Accounts and strategies as last read from the Control Hub.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    /// Accounts by BrokerAccountId.
    pub accounts: HashMap<String, LiveAccount>,
    /// Strategies by id.
    pub strategies: HashMap<i64, LiveStrategy>,
    /// The data provider of a connected agent (ListAgents), for free-standing data calls when
    /// `hubs.probe_provider` is empty.
    pub data_provider: Option<String>,
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
    settings: RwLock<Arc<Settings>>,
    store: Arc<Store>,
    gate: Arc<SendGate>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    links: HubLinks,
    wake: Wakeups,
    precedence: Arc<Precedence>,
    drain: Drain,
    directory: RwLock<Directory>,
    /// The Control Hub generation whose position listing the monitors last bootstrapped from
    /// (0: not yet); startup waits for it before READY.
    bootstrapped: watch::Sender<u64>,
    /// The trading state as last committed to the store.
    trading: watch::Sender<TradingState>,
}

impl Ctx {
    /// The context of one daemon run (or, with failover, of one term as leader).
    pub fn new(
        settings: Arc<Settings>,
        store: Arc<Store>,
        gate: Arc<SendGate>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        links: HubLinks,
        drain: Drain,
    ) -> Ctx {
        Ctx {
            settings: RwLock::new(settings),
            store,
            gate,
            metrics,
            health,
            links,
            wake: Wakeups::default(),
            precedence: Precedence::new(PRECEDENCE_LIMIT),
            drain,
            directory: RwLock::default(),
            bootstrapped: watch::Sender::new(0),
            trading: watch::Sender::new(TradingState::Active),
        }
    }

    /// Starts in `state` (the store's, read before the children start).
    pub fn with_trading_state(self, state: TradingState) -> Ctx {
        self.trading.send_replace(state);
        self
    }

    /// The current settings: one consistent snapshot (a reload replaces it whole).
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the settings after a reload was validated (readers holding the old snapshot
    /// finish with it).
    pub fn replace_settings(&self, settings: Arc<Settings>) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
    }

    /// The trading state now.
    pub fn trading_state(&self) -> TradingState {
        *self.trading.borrow()
    }

    /// Follows the trading state (the trading gate reads it at the moment of sending).
    pub fn subscribe_trading_state(&self) -> watch::Receiver<TradingState> {
        self.trading.subscribe()
    }

    /// Publishes a trading state the store has committed; wakes the workflow runner (paused
    /// workflows continue on a resume).
    pub fn publish_trading_state(&self, state: TradingState) {
        self.trading.send_replace(state);
        self.wake.workflows.notify_one();
    }

    /// The state database.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Whether a state-changing call may be sent now (always, without a lease).
    pub fn gate(&self) -> &SendGate {
        &self.gate
    }

    /// Counters and gauges.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Readiness and liveness.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The current hub connections.
    pub fn links(&self) -> &HubLinks {
        &self.links
    }

    /// Wake-ups between children.
    pub fn wake(&self) -> &Wakeups {
        &self.wake
    }

    /// The workflow runner's turn before the event pump's next batch, after a signal.
    pub fn precedence(&self) -> &Arc<Precedence> {
        &self.precedence
    }

    /// The stop: phases to wait on, in-flight guards, the escalation of a fatal condition.
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// A copy of the directory (cheap: a few accounts and strategies). A writer that panicked
    /// left the whole directory it was replacing or the previous one — both complete — so a
    /// poisoned lock is recovered, not read as an empty directory (which would make every
    /// account look unknown and cancel every paper workflow).
    pub fn directory(&self) -> Directory {
        self.directory
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the directory after a Control Hub verification.
    pub fn set_directory(&self, directory: Directory) {
        *self
            .directory
            .write()
            .unwrap_or_else(PoisonError::into_inner) = directory;
    }

    /// The monitors bootstrapped their positions from Control Hub connection `generation`.
    pub fn set_bootstrapped(&self, generation: u64) {
        self.bootstrapped.send_replace(generation);
    }

    /// The store, once the run is over (to close it when no child holds it any more).
    pub fn into_store(self) -> Arc<Store> {
        self.store
    }

    /// Resolves once the monitors bootstrapped from any Control Hub connection.
    pub async fn bootstrapped(&self) {
        let mut bootstrapped = self.bootstrapped.subscribe();
        let _ = bootstrapped.wait_for(|generation| *generation > 0).await;
    }
}

/// Waits until `link` carries a connection other than `after` (a generation), or until
/// `stop` resolves (then `None`).
pub async fn next_link<T: Clone>(
    link: &mut LinkWatch<T>,
    after: Option<u64>,
    stop: impl Future<Output = ()>,
) -> Option<Linked<T>> {
    tokio::pin!(stop);
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
                    stop.await;
                    return None;
                }
            }
            _ = &mut stop => return None,
        }
    }
}

/// Waits until the current connection of `link` (generation `generation`) is replaced or gone.
pub async fn link_lost<T>(link: &mut LinkWatch<T>, generation: u64) {
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
