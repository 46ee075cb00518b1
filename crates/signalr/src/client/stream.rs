//! Server→client streams as a `futures` `Stream`, with a bounded drop-oldest buffer.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use super::Command;
use crate::error::SignalrError;
use crate::lock;

/// The part of a stream shared by its [`HubStream`] and the connection task.
///
/// The connection task pushes without ever waiting: when the buffer is full the oldest item
/// goes (market data is latest-value), so a slow consumer can never stall the socket reader.
pub(super) struct StreamSlot {
    method: String,
    capacity: usize,
    dropped: AtomicU64,
    queue: Mutex<StreamQueue>,
}

struct StreamQueue {
    items: VecDeque<Value>,
    /// `Some` once the stream ended: `Some(None)` cleanly, `Some(Some(e))` with an error not yet
    /// handed out.
    end: Option<Option<SignalrError>>,
    waker: Option<Waker>,
}

impl StreamSlot {
    pub(super) fn new(method: &str, capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(StreamSlot {
            method: method.to_owned(),
            capacity,
            dropped: AtomicU64::new(0),
            queue: Mutex::new(StreamQueue {
                items: VecDeque::with_capacity(capacity.min(1024)),
                end: None,
                waker: None,
            }),
        })
    }

    pub(super) fn method(&self) -> &str {
        &self.method
    }

    /// Adds an item, evicting the oldest one when the buffer is full.
    pub(super) fn push(&self, item: Value) {
        let mut queue = self.lock();
        if queue.end.is_some() {
            return;
        }
        if queue.items.len() >= self.capacity {
            queue.items.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.items.push_back(item);
        wake(queue);
    }

    /// Ends the stream; the consumer sees the buffered items first, then `error` (if any).
    pub(super) fn finish(&self, error: Option<SignalrError>) {
        let mut queue = self.lock();
        if queue.end.is_none() {
            queue.end = Some(error);
        }
        wake(queue);
    }

    fn is_finished(&self) -> bool {
        self.lock().end.is_some()
    }

    fn poll_item(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Value, SignalrError>>> {
        let mut queue = self.lock();
        if let Some(item) = queue.items.pop_front() {
            return Poll::Ready(Some(Ok(item)));
        }
        match queue.end.as_mut() {
            Some(error) => Poll::Ready(error.take().map(Err)),
            None => {
                queue.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, StreamQueue> {
        lock(&self.queue)
    }
}

/// Wakes the consumer after releasing the lock, so it does not wake into a held mutex.
fn wake(mut queue: MutexGuard<'_, StreamQueue>) {
    let waker = queue.waker.take();
    drop(queue);
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The items of a server→client stream (`Connection::stream`).
///
/// Yields the items in order, then ends; a server error or a lost connection comes as a last
/// `Err` item after the items that preceded it. Dropping it before the end sends
/// CancelInvocation and forgets the id (late items are ignored). When the consumer is slower
/// than the server, the oldest buffered items are dropped: see [`HubStream::dropped_items`].
pub struct HubStream<T> {
    invocation_id: String,
    slot: Arc<StreamSlot>,
    commands: mpsc::UnboundedSender<Command>,
    item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for HubStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubStream")
            .field("invocation_id", &self.invocation_id)
            .finish_non_exhaustive()
    }
}

impl<T> HubStream<T> {
    pub(super) fn new(
        invocation_id: String,
        slot: Arc<StreamSlot>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        HubStream {
            invocation_id,
            slot,
            commands,
            item: PhantomData,
        }
    }

    /// How many items were discarded because the consumer lagged (buffer full, drop-oldest).
    pub fn dropped_items(&self) -> u64 {
        self.slot.dropped.load(Ordering::Relaxed)
    }
}

impl<T: DeserializeOwned> Stream for HubStream<T> {
    type Item = Result<T, SignalrError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.slot.poll_item(cx).map(|next| {
            next.map(|item| {
                item.and_then(|value| {
                    serde_json::from_value(value).map_err(|error| SignalrError::InvalidResult {
                        method: self.slot.method.clone(),
                        detail: error.to_string(),
                    })
                })
            })
        })
    }
}

impl<T> Drop for HubStream<T> {
    fn drop(&mut self) {
        if !self.slot.is_finished() {
            // Fails only when the connection is gone, and then there is nothing to cancel.
            let _ = self.commands.send(Command::CancelStream {
                invocation_id: std::mem::take(&mut self.invocation_id),
            });
        }
    }
}
