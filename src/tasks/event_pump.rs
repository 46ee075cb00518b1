//! The event pump: the one ordered consumer of replayed and live Event Hub events.
//!
//! For every Event Hub connection (a new generation of the link):
//! 1. take the connection's callback queue (it has buffered every callback since connect, so
//!    the on-connect pushes are not lost);
//! 2. replay from the persisted cursor with `GetEventsSince` pages;
//! 3. `SubscribeToStrategies(null)`;
//! 4. replay again (catch-up: whatever happened between the first replay and the subscribe);
//! 5. live: drain callbacks in batches (group commit). A live EventSeqId that jumps past
//!    cursor+1 first triggers a `GetEventsSince` catch-up, so an event missed while connected is
//!    applied before the jump. A periodic `GetLatestEventSeqId` does the same for a gap that no
//!    later live event would reveal, and feeds the lag metric.
//!
//! Every batch is ONE store transaction (dedupe by EventId, effect, cursor), so a crash at any
//! instant either replays an event (dedupe skips it) or never saw it (replay brings it).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;
use tokio::time::{Instant, MissedTickBehavior};

use super::effects;
use crate::config::FirstRun;
use crate::hubs::client::{EventHub, HubError};
use crate::hubs::events::HubEvent;
use crate::hubs::wire::history::{HistoricEvent, HistoryPage};
use crate::ops::metrics::Metrics;
use crate::signalr::{Callback, CallbackReceiver};
use crate::store::{EventRecord, RecordOutcome, StoreError};
use crate::supervisor::child::ChildError;
use crate::supervisor::context::{Ctx, Linked, next_link};

/// How often the pump reports it is alive and checks the stop token while idle.
const BEAT: Duration = Duration::from_secs(1);
/// How often the server's latest EventSeqId is read (lag metric, silent-gap catch-up).
const LATEST_POLL: Duration = Duration::from_secs(15);
/// Most replay pages read in one catch-up before yielding to live events.
const MAX_REPLAY_PAGES: usize = 100_000;

/// Runs the pump across Event Hub reconnects until the daemon stops.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), ChildError> {
    let mut link = ctx.links.event.clone();
    let mut last_generation = None;
    loop {
        let Some(linked) = wait_for_connection(&ctx, &mut link, last_generation).await else {
            return Ok(());
        };
        last_generation = Some(linked.generation);
        let mut session = Session::new(ctx.clone(), linked)?;
        let ended = session.run().await;
        ctx.health.set_caught_up(false);
        match ended {
            Ok(()) => {}
            Err(PumpError::Stopped) => return Ok(()),
            Err(PumpError::Hub(err)) => {
                tracing::warn!(error = %err, "event hub session ended; waiting for the next connection");
            }
            Err(PumpError::Store(err)) => {
                return Err(ChildError::Failed(format!("event store: {err}")));
            }
        }
    }
}

/// Waits for a new Event Hub connection, beating so the watchdog knows the pump is alive.
async fn wait_for_connection(
    ctx: &Ctx,
    link: &mut tokio::sync::watch::Receiver<Option<Linked<EventHub>>>,
    after: Option<u64>,
) -> Option<Linked<EventHub>> {
    let mut beat = tokio::time::interval(BEAT);
    let wait = next_link(link, after, &ctx.shutdown.children);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            linked = &mut wait => return linked,
            _ = beat.tick() => ctx.health.pump_beat(),
        }
    }
}

impl From<HubError> for PumpError {
    fn from(err: HubError) -> Self {
        PumpError::Hub(Box::new(err))
    }
}

#[derive(Debug, thiserror::Error)]
enum PumpError {
    #[error("stopping")]
    Stopped,
    #[error(transparent)]
    Hub(#[from] Box<HubError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One Event Hub connection's worth of pumping.
struct Session {
    ctx: Arc<Ctx>,
    hub: EventHub,
    callbacks: CallbackReceiver,
    cursor: i64,
}

impl Session {
    fn new(ctx: Arc<Ctx>, linked: Linked<EventHub>) -> Result<Session, ChildError> {
        let callbacks = linked
            .client
            .0
            .connection()
            .take_callbacks()
            .ok_or_else(|| {
                ChildError::Failed("the event hub callback queue was already taken".into())
            })?;
        Ok(Session {
            ctx,
            hub: linked.client,
            callbacks,
            cursor: 0,
        })
    }

    async fn run(&mut self) -> Result<(), PumpError> {
        self.ctx.health.pump_beat();
        self.cursor = self.start_cursor().await?;
        // Until the first commit the gauge would read 0 (and the lag gauge the whole history).
        Metrics::set(&self.ctx.metrics.cursor, self.cursor);
        self.catch_up(None).await?;
        let subscribed = self.hub.subscribe(None).await?;
        if !subscribed.failed_strategies.is_empty() {
            tracing::warn!(failed = ?subscribed.failed_strategies, "SubscribeToStrategies: some strategies failed");
            self.ctx.metrics.error("subscribe_failed");
        }
        self.catch_up(None).await?;
        self.ctx.health.set_caught_up(true);
        self.ctx.wake.reconcile.notify_one();
        tracing::info!(cursor = self.cursor, "event pump live");
        self.live().await
    }

    /// The persisted cursor, or on a first run the configured starting point.
    async fn start_cursor(&self) -> Result<i64, PumpError> {
        if let Some(cursor) = self.ctx.store.cursor().await? {
            return Ok(cursor);
        }
        match self.ctx.settings.events.first_run {
            FirstRun::All => Ok(0),
            FirstRun::Latest => {
                let latest = self.hub.latest_seq_id().await?;
                let cursor = self.ctx.store.init_cursor(latest).await?;
                tracing::info!(cursor, "first run: starting at the server's latest event");
                Ok(cursor)
            }
        }
    }

    /// Replays history after the cursor until the server has nothing more (or, with `until`,
    /// until the cursor reaches it). Pages are requested by the advancing cursor; the server's
    /// continuation token is only followed when a page did not move the cursor.
    ///
    /// The next page is requested as soon as this one is read, so the server, the socket and
    /// the decoding work on it while this page commits: the commit cannot change where the
    /// next page starts (the cursor only moves to the page's highest EventSeqId), and a failed
    /// commit ends the replay before the prefetched page is used.
    async fn catch_up(&mut self, until: Option<i64>) -> Result<(), PumpError> {
        let mut page = self.fetch(self.cursor, None).await?;
        for _ in 0..MAX_REPLAY_PAGES {
            self.stop_requested()?;
            if page.events.is_empty() {
                return Ok(());
            }
            let before = self.cursor;
            let records: Vec<EventRecord> = page
                .events
                .into_iter()
                .map(|historic| self.record_historic(historic))
                .collect();
            let reached = records
                .iter()
                .filter_map(|record| record.seq_id)
                .fold(before, i64::max);
            let done =
                until.is_some_and(|target| reached >= target) || page.has_more == Some(false);
            let request = match (done, reached > before, page.continuation) {
                (true, _, _) => None,
                (false, true, _) => Some(self.fetch(reached, None)),
                (false, false, Some(token)) => Some(self.fetch(before, Some(token))),
                // Events we already had and no way forward: stop rather than loop.
                (false, false, None) => None,
            };
            let Some(request) = request else {
                return self.commit(&records).await;
            };
            let (committed, fetched) = tokio::join!(self.commit(&records), request);
            committed?;
            page = fetched?;
        }
        Ok(())
    }

    /// One replay page after `after` (or at `continuation`); owns what it needs, so it can be
    /// awaited together with a commit.
    fn fetch(
        &self,
        after: i64,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<HistoryPage, HubError>> + use<> {
        let hub = self.hub.clone();
        let page_size = self.ctx.settings.events.replay_page_size;
        async move {
            hub.events_since(after, page_size, continuation.as_deref())
                .await
        }
    }

    async fn live(&mut self) -> Result<(), PumpError> {
        let mut beat = tokio::time::interval(BEAT);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_latest_poll = Instant::now() + LATEST_POLL;
        let batch_max = self.ctx.settings.events.batch_max;
        loop {
            let first = tokio::select! {
                biased;
                _ = self.ctx.shutdown.children.cancelled() => return Err(PumpError::Stopped),
                callback = self.callbacks.recv() => match callback {
                    Some(callback) => callback,
                    None => return Ok(()),
                },
                _ = beat.tick() => {
                    self.ctx.health.pump_beat();
                    if Instant::now() >= next_latest_poll {
                        next_latest_poll = Instant::now() + LATEST_POLL;
                        self.poll_latest().await?;
                    }
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < batch_max {
                match self.callbacks.recv().now_or_never() {
                    Some(Some(callback)) => batch.push(callback),
                    _ => break,
                }
            }
            self.apply_live(batch).await?;
            self.ctx.health.pump_beat();
        }
    }

    /// Applies live callbacks in order, catching up first whenever one jumps past cursor+1.
    async fn apply_live(&mut self, batch: Vec<Callback>) -> Result<(), PumpError> {
        let mut pending: Vec<EventRecord> = Vec::with_capacity(batch.len());
        let mut expected = self.cursor + 1;
        for callback in batch {
            let record = self.record_callback(callback);
            if let Some(seq) = record.seq_id {
                Metrics::raise(&self.ctx.metrics.latest_seq, seq);
                if seq > expected {
                    self.commit(&pending).await?;
                    pending.clear();
                    Metrics::add(&self.ctx.metrics.gap_catchups, 1);
                    tracing::info!(
                        cursor = self.cursor,
                        live = seq,
                        "EventSeqId jumped: catching up before applying it"
                    );
                    self.catch_up(Some(seq - 1)).await?;
                    expected = self.cursor + 1;
                }
                expected = expected.max(seq + 1);
            }
            pending.push(record);
        }
        self.commit(&pending).await
    }

    async fn poll_latest(&mut self) -> Result<(), PumpError> {
        let latest = self.hub.latest_seq_id().await?;
        Metrics::set(&self.ctx.metrics.latest_seq, latest);
        if latest > self.cursor {
            // Either events are in flight right now, or some were lost on the way: a replay
            // settles both (dedupe skips whatever also arrives live).
            self.catch_up(Some(latest)).await?;
        }
        Ok(())
    }

    fn record_callback(&self, callback: Callback) -> EventRecord {
        let payload = callback.arguments.into_iter().next().unwrap_or(Value::Null);
        self.record_payload(&callback.target, payload)
    }

    fn record_historic(&self, historic: HistoricEvent) -> EventRecord {
        let target = historic.event_type.unwrap_or_else(|| "?".to_owned());
        self.record_payload(&target, historic.payload)
    }

    fn record_payload(&self, target: &str, payload: Value) -> EventRecord {
        match HubEvent::from_callback(target, &payload) {
            Ok(event) => {
                if !event.is_recognized() {
                    tracing::debug!(target = %event.target, "unrecognized callback: recorded, not acted on");
                }
                effects::record(&event, &payload)
            }
            Err(error) => {
                tracing::warn!(target = %error.target, seq = ?error.header.event_seq_id, reason = %error.reason, "undecodable event quarantined");
                self.ctx.metrics.error("event_decode");
                effects::quarantine(&error, &payload)
            }
        }
    }

    /// One transaction for `records`; afterwards, reactions for what was applied.
    async fn commit(&mut self, records: &[EventRecord]) -> Result<(), PumpError> {
        if records.is_empty() {
            return Ok(());
        }
        let outcome = self.ctx.store.apply_events(records).await?;
        let metrics = &self.ctx.metrics;
        Metrics::add(&metrics.event_batches, 1);
        let mut applied = 0u64;
        let mut quarantined = 0u64;
        for (record, result) in records.iter().zip(&outcome.outcomes) {
            if *result == RecordOutcome::Applied {
                applied += 1;
                if matches!(record.effect, crate::store::Effect::Quarantine { .. }) {
                    quarantined += 1;
                }
            }
        }
        Metrics::add(&metrics.events_applied, applied);
        Metrics::add(&metrics.events_quarantined, quarantined);
        Metrics::add(&metrics.events_duplicate, records.len() as u64 - applied);
        if let Some(cursor) = outcome.cursor {
            self.cursor = self.cursor.max(cursor);
            Metrics::set(&metrics.cursor, self.cursor);
        }
        if applied > 0 {
            self.ctx.wake.positions.notify_one();
            self.ctx.wake.workflows.notify_one();
        }
        Ok(())
    }

    fn stop_requested(&self) -> Result<(), PumpError> {
        if self.ctx.shutdown.children.is_cancelled() {
            return Err(PumpError::Stopped);
        }
        Ok(())
    }
}
