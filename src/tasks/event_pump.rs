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
//!
//! A server that breaks the sequence is reported, never silently followed:
//! * a live event at or below the cursor whose key was never processed (the EventSeqId went
//!   backwards) is quarantined, not acted on, and the server's latest EventSeqId is read at once;
//! * a server whose latest EventSeqId is below the cursor (its history restarted, or the
//!   database belongs to another account) stops the daemon ([`Fatal::CursorAhead`], exit 76)
//!   instead of skipping every event up to the old cursor;
//! * a replay page with events at or below the cursor is logged and counted.
//!
//! A replay page larger than `hubs.max_message_bytes` costs the connection; the next ones ask
//! for a quarter as many events per page (down to one) until the pump is live again, so large
//! events slow the replay down instead of stopping it. A single event above the limit is
//! reported at every attempt.
//!
//! A failed commit (busy lock, full disk, I/O error) keeps the connection: the session waits
//! with backoff and restarts from the durable cursor, so the failed batch is replayed and the
//! callbacks queued meanwhile are not lost. A damaged database file stops the daemon (74).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;
use tokio::time::{Instant, MissedTickBehavior};

use super::effects;
use crate::config::FirstRun;
use crate::ops::metrics::Metrics;
use crate::store::{Effect, EventRecord, RecordOutcome, StoreError};
use crate::supervisor::child::{ChildError, Fatal};
use crate::supervisor::context::{Ctx, Linked, next_link};
use crate::supervisor::policy::backoff;
use mesolive_api::client::{EventHub, HubError};
use mesolive_api::events::HubEvent;
use mesolive_api::wire::history::{HistoricEvent, HistoryPage};
use signalr::{Callback, CallbackReceiver, SignalrError};

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
    let mut page_size = ctx.settings.events.replay_page_size;
    loop {
        let next = next_link(&mut link, last_generation, &ctx.shutdown.children);
        let Some(linked) = beating(&ctx, next).await.flatten() else {
            return Ok(());
        };
        last_generation = Some(linked.generation);
        let mut session = Session::new(ctx.clone(), linked, page_size)?;
        if !session.run_until_disconnected().await? {
            return Ok(());
        }
        page_size = session.page_size;
    }
}

/// Awaits `work` while telling the watchdog the pump is alive (it waits for a hub or for the
/// store, it is not hung); `None` if the daemon stops first.
async fn beating<T>(ctx: &Ctx, work: impl Future<Output = T>) -> Option<T> {
    let mut beat = tokio::time::interval(BEAT);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            _ = beat.tick() => ctx.health.pump_beat(),
            _ = ctx.shutdown.children.cancelled() => return None,
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
    #[error("the cursor {cursor} is ahead of the server's latest EventSeqId {latest}")]
    CursorAhead { cursor: i64, latest: i64 },
    #[error("a replay page of {0} events exceeded hubs.max_message_bytes")]
    PageTooLarge(u32),
}

/// One Event Hub connection's worth of pumping.
struct Session {
    ctx: Arc<Ctx>,
    hub: EventHub,
    callbacks: CallbackReceiver,
    cursor: i64,
    /// Events asked for per replay page; cut when a page exceeded the message size limit.
    page_size: u32,
    /// Live events whose EventSeqId went backwards, by key, until their batch is committed.
    out_of_sequence: HashMap<String, i64>,
    /// Unknown callback targets already reported in this session (later ones are only counted).
    unrecognized_targets: HashSet<String>,
}

impl Session {
    fn new(ctx: Arc<Ctx>, linked: Linked<EventHub>, page_size: u32) -> Result<Session, ChildError> {
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
            page_size,
            out_of_sequence: HashMap::new(),
            unrecognized_targets: HashSet::new(),
        })
    }

    /// Pumps this connection until it ends (`Ok(true)`: wait for the next one) or the daemon
    /// stops (`Ok(false)`). A store failure that may pass is retried here, on the same
    /// connection, from the durable cursor.
    async fn run_until_disconnected(&mut self) -> Result<bool, ChildError> {
        let ctx = self.ctx.clone();
        let settings = &ctx.settings.supervisor;
        let mut delays = backoff(settings);
        loop {
            let started = Instant::now();
            let ended = self.run().await;
            self.ctx.health.set_caught_up(false);
            let err = match ended {
                Ok(()) => return Ok(true),
                Err(PumpError::Stopped) => return Ok(false),
                Err(PumpError::Hub(err)) => {
                    if let Some(unsupported) = err.unsupported() {
                        return Err(Fatal::Unsupported(unsupported.to_string()).into());
                    }
                    tracing::warn!(error = %err, "event hub session ended; waiting for the next connection");
                    return Ok(true);
                }
                Err(PumpError::PageTooLarge(size)) => {
                    self.page_size = (size / 4).max(1);
                    self.ctx.metrics.error("replay_page_too_large");
                    if size == 1 {
                        tracing::error!(
                            cursor = self.cursor,
                            "the next event alone exceeds hubs.max_message_bytes: raise it, or the replay cannot get past it"
                        );
                    } else {
                        tracing::warn!(
                            cursor = self.cursor,
                            page_size = self.page_size,
                            "a replay page exceeded hubs.max_message_bytes; asking for fewer events per page"
                        );
                    }
                    return Ok(true);
                }
                Err(PumpError::CursorAhead { cursor, latest }) => {
                    return Err(Fatal::CursorAhead { cursor, latest }.into());
                }
                Err(PumpError::Store(err)) if err.is_damage() => {
                    return Err(Fatal::Store(err.to_string()).into());
                }
                Err(PumpError::Store(err)) => err,
            };
            self.ctx.metrics.error(&format!("store_{}", err.kind()));
            if started.elapsed() > settings.backoff_max * 2 {
                delays = backoff(settings);
            }
            let delay = delays.next().unwrap_or(settings.backoff_max);
            tracing::warn!(error = %err, retry_in = ?delay, cursor = self.cursor, "event store failed; nothing was committed, retrying from the durable cursor");
            if beating(&self.ctx, tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return Ok(false);
            }
        }
    }

    async fn run(&mut self) -> Result<(), PumpError> {
        self.ctx.health.pump_beat();
        self.cursor = self.start_cursor().await?;
        let latest = self.hub.latest_seq_id().await?;
        self.check_not_ahead(latest)?;
        // Until the first commit the gauge would read 0 (and the lag gauge the whole history).
        Metrics::set(&self.ctx.metrics.cursor, self.cursor);
        self.catch_up(None).await?;
        let subscribed = self.hub.subscribe(None).await?;
        if !subscribed.failed_strategies.is_empty() {
            tracing::warn!(failed = ?subscribed.failed_strategies, "SubscribeToStrategies: some strategies failed");
            self.ctx.metrics.error("subscribe_failed");
        }
        self.catch_up(None).await?;
        self.page_size = self.ctx.settings.events.replay_page_size;
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
            self.report_replay_below_cursor(&records);
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
                return self.commit(&records).await.map(drop);
            };
            let (committed, fetched) = tokio::join!(self.commit(&records), request);
            committed?;
            page = fetched?;
        }
        Ok(())
    }

    /// One replay page after `after` (or at `continuation`); owns what it needs, so it can be
    /// awaited together with a commit. A page too large for the connection's message limit is
    /// reported as such, so the next request asks for fewer events.
    fn fetch(
        &self,
        after: i64,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<HistoryPage, PumpError>> + use<> {
        let hub = self.hub.clone();
        let page_size = self.page_size;
        async move {
            hub.events_since(after, page_size, continuation.as_deref())
                .await
                .map_err(|err| match err.transport().map(SignalrError::kind) {
                    Some("message_too_large") => PumpError::PageTooLarge(page_size),
                    _ => PumpError::from(err),
                })
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

    /// Applies live callbacks in order, catching up first whenever one jumps past cursor+1. A
    /// callback with an EventId at or below the cursor goes to the store under its key only
    /// (see [`effects::out_of_sequence`]).
    async fn apply_live(&mut self, batch: Vec<Callback>) -> Result<(), PumpError> {
        let mut pending: Vec<EventRecord> = Vec::with_capacity(batch.len());
        let mut expected = self.cursor + 1;
        let mut went_backwards = false;
        for callback in batch {
            let payload = mesolive_api::wire::callback_payload(callback.arguments);
            let mut record = self.record_payload(&callback.target, &payload);
            if let Some(seq) = record.seq_id {
                Metrics::raise(&self.ctx.metrics.latest_seq, seq);
                if seq > expected {
                    went_backwards |= self.commit(&pending).await?;
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
                if seq >= expected {
                    expected = seq + 1;
                } else if effects::keyed_by_event_id(&record) {
                    self.out_of_sequence.insert(record.key.clone(), seq);
                    record = effects::out_of_sequence(record, &payload, expected - 1);
                }
                // Else: no EventId to tell a new event from a replayed one; the store skips it
                // as at or below the cursor (its missing EventId was reported already).
            }
            pending.push(record);
        }
        went_backwards |= self.commit(&pending).await?;
        if went_backwards {
            // A server whose sequence restarted is caught now, not at the next periodic poll.
            self.poll_latest().await?;
        }
        Ok(())
    }

    async fn poll_latest(&mut self) -> Result<(), PumpError> {
        let latest = self.hub.latest_seq_id().await?;
        Metrics::set(&self.ctx.metrics.latest_seq, latest);
        self.check_not_ahead(latest)?;
        if latest > self.cursor {
            // Either events are in flight right now, or some were lost on the way: a replay
            // settles both (dedupe skips whatever also arrives live).
            self.catch_up(Some(latest)).await?;
        }
        Ok(())
    }

    /// A server behind our cursor would have every new event skipped as already seen.
    fn check_not_ahead(&self, latest: i64) -> Result<(), PumpError> {
        if latest >= self.cursor {
            return Ok(());
        }
        self.ctx.metrics.error("cursor_ahead");
        Err(PumpError::CursorAhead {
            cursor: self.cursor,
            latest,
        })
    }

    fn report_replay_below_cursor(&self, records: &[EventRecord]) {
        let below = records
            .iter()
            .filter(|record| record.seq_id.is_some_and(|seq| seq <= self.cursor))
            .count();
        if below > 0 {
            self.ctx.metrics.error("replay_below_cursor");
            tracing::warn!(
                cursor = self.cursor,
                events = below,
                "GetEventsSince returned events at or below the cursor; skipped as already applied"
            );
        }
    }

    fn record_historic(&mut self, historic: HistoricEvent) -> EventRecord {
        let target = historic.event_type.unwrap_or_else(|| "?".to_owned());
        self.record_payload(&target, &historic.payload)
    }

    fn record_payload(&mut self, target: &str, payload: &Value) -> EventRecord {
        match HubEvent::from_callback(target, payload) {
            Ok(event) => {
                self.report_oddities(&event);
                effects::record(&event, payload)
            }
            Err(error) => {
                tracing::warn!(target = %error.target, seq = ?error.header.event_seq_id, reason = %error.reason, "undecodable event quarantined");
                self.ctx.metrics.error("event_decode");
                effects::quarantine(&error, payload)
            }
        }
    }

    /// Logs and counts what a decodable event tells about the server: an unknown target, unknown
    /// enum members, a missing EventId or EventSeqId.
    fn report_oddities(&mut self, event: &HubEvent) {
        let metrics = &self.ctx.metrics;
        let target = event.target.as_str();
        let seq = event.header.event_seq_id;
        if !event.is_recognized() {
            metrics.error("event_unrecognized");
            if self.unrecognized_targets.insert(target.to_owned()) {
                tracing::warn!(
                    target,
                    ?seq,
                    "unrecognized callback target: recorded (deduplicated, cursor moved), not acted on; later ones of this target are only counted"
                );
            }
        }
        let unknown = event.unknown_members();
        if !unknown.is_empty() {
            metrics.error("event_unknown_enum");
            tracing::warn!(target, ?seq, members = ?unknown, "unknown enum members: stored as sent; an unknown signal state is never acted on");
        }
        let has_id = event
            .header
            .event_id
            .as_deref()
            .is_some_and(|id| !id.trim().is_empty());
        match (has_id, seq) {
            (_, None) => {
                Metrics::add(&metrics.events_unsequenced, 1);
                tracing::debug!(
                    target,
                    "event without EventSeqId (an on-connect push): deduplicated by key, the cursor does not move"
                );
            }
            (false, Some(seq)) => {
                metrics.error("event_without_id");
                tracing::warn!(
                    target,
                    seq,
                    "event without EventId: deduplicated by its content"
                );
            }
            (true, Some(_)) => {}
        }
    }

    /// One transaction for `records`; afterwards, reactions for what was applied. Returns
    /// whether a live event whose EventSeqId went backwards was among them.
    async fn commit(&mut self, records: &[EventRecord]) -> Result<bool, PumpError> {
        if records.is_empty() {
            return Ok(false);
        }
        let outcome = self.ctx.store.apply_events(records).await;
        let out_of_sequence = std::mem::take(&mut self.out_of_sequence);
        let outcome = outcome?;
        let metrics = &self.ctx.metrics;
        Metrics::add(&metrics.event_batches, 1);
        let mut applied = 0u64;
        let mut quarantined = 0u64;
        let mut went_backwards = false;
        let (mut positions_changed, mut workflows_affected) = (false, false);
        for (record, result) in records.iter().zip(&outcome.outcomes) {
            if *result == RecordOutcome::Applied {
                applied += 1;
                match record.effect {
                    Effect::Quarantine { .. } => quarantined += 1,
                    Effect::Position(_) => {
                        positions_changed = true;
                        workflows_affected = true;
                    }
                    Effect::Signal(_) | Effect::Job(_) | Effect::Order(_) => {
                        workflows_affected = true
                    }
                    Effect::Leg(_) | Effect::None => {}
                }
                if let Some(seq) = out_of_sequence.get(&record.key) {
                    went_backwards = true;
                    metrics.error("event_seq_regression");
                    tracing::warn!(target = %record.target, seq, key = %record.key, cursor = self.cursor, "EventSeqId went backwards: a new event at or below the cursor; quarantined, not acted on");
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
        // Wake only who can care: the monitor manager re-reads every open position.
        if positions_changed {
            self.ctx.wake.positions.notify_one();
        }
        if workflows_affected {
            self.ctx.wake.workflows.notify_one();
        }
        Ok(went_backwards)
    }

    fn stop_requested(&self) -> Result<(), PumpError> {
        if self.ctx.shutdown.children.is_cancelled() {
            return Err(PumpError::Stopped);
        }
        Ok(())
    }
}
