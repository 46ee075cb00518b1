//! The one ordered queue of server→client invocations.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::SignalrError;

/// One server→client invocation (a hub's `Clients.X.SendAsync(target, args…)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    /// The client method name, exactly as sent.
    pub target: String,
    /// Its arguments.
    pub arguments: Vec<Value>,
}

/// Every server→client invocation of one connection, in arrival order (`Connection::take_callbacks`).
///
/// Nothing is dropped: see the module documentation for why the queue is unbounded up to
/// `max_pending_callbacks` and what happens past it. `recv` returns `None` once the connection
/// has ended and every queued callback was received.
#[derive(Debug)]
pub struct CallbackReceiver {
    receiver: mpsc::UnboundedReceiver<Callback>,
    backlog: Arc<AtomicUsize>,
}

impl CallbackReceiver {
    /// The next callback, waiting for one if needed.
    pub async fn recv(&mut self) -> Option<Callback> {
        let callback = self.receiver.recv().await?;
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        Some(callback)
    }

    /// The next callback if one is already queued, without waiting. Unlike `recv`, it does
    /// not spend the task's cooperative budget, so a consumer draining a batch gets every queued
    /// callback (`recv().now_or_never()` stops at tokio's budget of 128 per poll).
    pub fn try_recv(&mut self) -> Option<Callback> {
        let callback = self.receiver.try_recv().ok()?;
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        Some(callback)
    }

    /// How many callbacks are queued and not yet received.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }
}

/// The connection task's end of the queue; it never waits.
pub(super) struct CallbackSender {
    sender: mpsc::UnboundedSender<Callback>,
    backlog: Arc<AtomicUsize>,
    limit: usize,
}

impl CallbackSender {
    /// Queues a callback, or reports that the consumer is `limit` callbacks behind.
    pub(super) fn deliver(&self, callback: Callback) -> Result<(), SignalrError> {
        // Counted before sending so the receiver's decrement can never run first.
        let queued = self.backlog.fetch_add(1, Ordering::Relaxed);
        if queued >= self.limit {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            return Err(SignalrError::CallbackBacklog { limit: self.limit });
        }
        if self.sender.send(callback).is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!("callback receiver was dropped; callback discarded");
        }
        Ok(())
    }
}

/// A connected pair of sender and receiver for `limit` pending callbacks.
pub(super) fn callback_queue(limit: usize) -> (CallbackSender, CallbackReceiver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    (
        CallbackSender {
            sender,
            backlog: backlog.clone(),
            limit: limit.max(1),
        },
        CallbackReceiver { receiver, backlog },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(n: usize) -> Callback {
        Callback {
            target: format!("T{n}"),
            arguments: Vec::new(),
        }
    }

    #[tokio::test]
    async fn one_poll_drains_more_than_the_cooperative_budget_in_order() {
        let (sender, mut receiver) = callback_queue(10_000);
        for n in 0..1_000 {
            sender.deliver(callback(n)).expect("under the limit");
        }
        let drained: Vec<Callback> = std::iter::from_fn(|| receiver.try_recv()).collect();
        assert_eq!(drained.len(), 1_000);
        assert!(
            drained
                .iter()
                .enumerate()
                .all(|(n, c)| c.target == format!("T{n}"))
        );
        assert_eq!(receiver.backlog(), 0);
        assert_eq!(receiver.try_recv(), None);
    }
}
