//! Live delivery of Event Hub callbacks: the strategy groups each connection joined and one
//! forwarder per connection. The dispatcher that feeds it (in EventSeqId order, through the
//! live-path faults) is `Sim::dispatch`.
//!
//! Each connection has a bounded backlog. When it is full the dispatcher waits (back-pressure,
//! as a real server's writes do); a client still that far behind after a few seconds is closed
//! (it reconnects and replays from its cursor). So a burst to a healthy client is delivered
//! whole, a stuck client cannot stall the others for long, and nothing grows without bound.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::event_log::LoggedEvent;
use mesolive_api::models::SubscriptionResult;

/// Events queued for one connection before the dispatcher waits for it.
pub(crate) const CONNECTION_BACKLOG: usize = 100_000;

/// How long the dispatcher waits for a connection with a full backlog before closing it.
const STALL_LIMIT: Duration = Duration::from_secs(5);

/// The far end of one Event Hub connection, as live delivery needs it.
pub(crate) trait LivePeer: Send + Sync + 'static {
    /// Sends one callback; false once the connection is gone.
    fn send(&self, target: &str, payload: Value) -> impl Future<Output = bool> + Send;
    /// Closes the connection with an error the client sees.
    fn close(&self, reason: &str);
}

/// The strategy groups of one connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Groups {
    /// Joined with `Strategies: null`: every strategy, present and future.
    all: bool,
    ids: BTreeSet<i64>,
}

impl Groups {
    /// Whether an event of `strategy_id` reaches this connection (strategy-less events reach
    /// every connection).
    pub(crate) fn wants(&self, strategy_id: Option<i64>) -> bool {
        strategy_id.is_none_or(|id| self.all || self.ids.contains(&id))
    }

    /// `SubscribeToStrategies`: `None` joins all; unknown ids fail.
    pub(crate) fn subscribe(
        &mut self,
        strategies: Option<Vec<i64>>,
        known: &BTreeSet<i64>,
    ) -> SubscriptionResult {
        let Some(ids) = strategies else {
            self.all = true;
            return SubscriptionResult {
                successful_strategies: known.iter().copied().collect(),
                failed_strategies: Vec::new(),
            };
        };
        let (successful, failed): (Vec<i64>, Vec<i64>) =
            ids.into_iter().partition(|id| known.contains(id));
        self.ids.extend(&successful);
        SubscriptionResult {
            successful_strategies: successful,
            failed_strategies: failed,
        }
    }

    /// `UnsubscribeFromStrategies`: `None` leaves all; unknown ids fail.
    pub(crate) fn unsubscribe(
        &mut self,
        strategies: Option<Vec<i64>>,
        known: &BTreeSet<i64>,
    ) -> SubscriptionResult {
        let Some(ids) = strategies else {
            let left = if self.all {
                known.clone()
            } else {
                std::mem::take(&mut self.ids)
            };
            *self = Groups::default();
            return SubscriptionResult {
                successful_strategies: left.into_iter().collect(),
                failed_strategies: Vec::new(),
            };
        };
        if self.all {
            self.all = false;
            self.ids = known.clone();
        }
        let (successful, failed): (Vec<i64>, Vec<i64>) =
            ids.into_iter().partition(|id| known.contains(id));
        for id in &successful {
            self.ids.remove(id);
        }
        SubscriptionResult {
            successful_strategies: successful,
            failed_strategies: failed,
        }
    }
}

struct Member {
    groups: Groups,
    backlog: mpsc::Sender<Arc<LoggedEvent>>,
    close: Box<dyn Fn(&str) + Send + Sync>,
}

/// The Event Hub connections and their groups, by connection id.
#[derive(Default)]
pub(crate) struct LiveRegistry {
    members: Mutex<HashMap<String, Member>>,
}

impl LiveRegistry {
    fn members(&self) -> MutexGuard<'_, HashMap<String, Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a connection with no groups; returns the receiving end of its backlog, to be
    /// forwarded by [`forward`] once the on-connect pushes are out.
    pub(crate) fn join<P: LivePeer>(
        &self,
        id: &str,
        peer: &Arc<P>,
    ) -> mpsc::Receiver<Arc<LoggedEvent>> {
        let (backlog, queued) = mpsc::channel(CONNECTION_BACKLOG);
        let peer = Arc::clone(peer);
        self.members().insert(
            id.to_owned(),
            Member {
                groups: Groups::default(),
                backlog,
                close: Box::new(move |reason| peer.close(reason)),
            },
        );
        queued
    }

    pub(crate) fn leave(&self, id: &str) {
        self.members().remove(id);
    }

    /// Runs `change` on a connection's groups (a default, unsaved set if it is unknown).
    pub(crate) fn with_groups<T>(&self, id: &str, change: impl FnOnce(&mut Groups) -> T) -> T {
        match self.members().get_mut(id) {
            Some(member) => change(&mut member.groups),
            None => change(&mut Groups::default()),
        }
    }

    /// Queues an event `copies` times for every connection that wants it; returns how many
    /// callbacks were queued. A full backlog makes the dispatcher wait (back-pressure) up to
    /// [`STALL_LIMIT`]; a connection still full then is closed and removed.
    pub(crate) async fn deliver(&self, event: &Arc<LoggedEvent>, copies: usize) -> u64 {
        let mut queued = 0;
        let mut stalled = Vec::new();
        self.members().retain(|id, member| {
            if !member.groups.wants(event.strategy_id) {
                return true;
            }
            for sent in 0..copies {
                match member.backlog.try_send(Arc::clone(event)) {
                    Ok(()) => queued += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        stalled.push((id.clone(), member.backlog.clone(), copies - sent));
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
        for (id, backlog, remaining) in stalled {
            for _ in 0..remaining {
                match tokio::time::timeout(STALL_LIMIT, backlog.send(Arc::clone(event))).await {
                    Ok(Ok(())) => queued += 1,
                    Ok(Err(_)) => break,
                    Err(_) => {
                        self.expel(&id);
                        break;
                    }
                }
            }
        }
        queued
    }

    /// Closes and forgets a connection that stopped taking live events.
    fn expel(&self, id: &str) {
        if let Some(member) = self.members().remove(id) {
            (member.close)("The client fell too far behind on live events; reconnect and replay.");
        }
    }
}

/// Sends one connection's backlog until the connection or the backlog ends.
pub(crate) async fn forward<P: LivePeer>(
    peer: Arc<P>,
    mut backlog: mpsc::Receiver<Arc<LoggedEvent>>,
) {
    while let Some(event) = backlog.recv().await {
        if !peer.send(&event.target, event.payload.clone()).await {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_semantics() {
        let known: BTreeSet<i64> = [101, 102, 103].into();
        let mut groups = Groups::default();
        assert!(groups.wants(None), "strategy-less events reach everyone");
        assert!(!groups.wants(Some(101)));
        let result = groups.subscribe(Some(vec![101, 999]), &known);
        assert_eq!(result.successful_strategies, vec![101]);
        assert_eq!(result.failed_strategies, vec![999]);
        assert!(groups.wants(Some(101)) && !groups.wants(Some(102)));
        groups.subscribe(Some(vec![]), &known);
        assert!(!groups.wants(Some(102)), "an empty list is a no-op");
        groups.subscribe(None, &known);
        assert!(
            groups.wants(Some(102)) && groups.wants(Some(555)),
            "null means all, future ones too"
        );
        groups.unsubscribe(Some(vec![102]), &known);
        assert!(groups.wants(Some(101)) && !groups.wants(Some(102)));
        groups.unsubscribe(None, &known);
        assert!(!groups.wants(Some(101)) && groups.wants(None));
    }
}
