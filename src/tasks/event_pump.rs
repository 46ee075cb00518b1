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
//! Level state is re-asserted, edges are sequenced: a live signal, error or agent-status event
//! at or below the cursor whose key was never processed (an on-connect push repeating the
//! original event, API §4.2/§6.5) is applied as a re-assertion — it only replaces an older
//! stored state and never moves the cursor — counted in `events_reasserted`.
//!
//! A server that breaks the sequence is reported, never silently followed:
//! * a live order, position, leg or job event at or below the cursor whose key was never
//!   processed (the EventSeqId went backwards) is quarantined, not acted on, and the server's
//!   latest EventSeqId is read at once;
//! * a server whose latest EventSeqId is below the cursor (its history restarted, or the
//!   database belongs to another account) stops the daemon ([`Fatal::CursorAhead`], exit 76)
//!   instead of skipping every event up to the old cursor;
//! * a replay page with events at or below the cursor is logged and counted.
//!
//! History the server no longer has is a hole, never "nothing happened" (API §6.3): a replay
//! page that starts past the next expected event, a `GetEventsSince` that refuses the cursor as
//! too old, or an oldest available EventSeqId past the cursor. The hole is logged as an error,
//! counted (`mesolive_history_gaps_total`) and, with `events.on_history_gap = "resync"` (the
//! default), answered by a resync from the Control Hub ([`super::resync`]) committed with the
//! hole's record and the cursor past it, before the pump goes (back) live; with `"stop"` it is
//! recorded and the daemon exits 66. Not ready meanwhile.
//!
//! A replay page larger than `hubs.max_message_bytes` costs the connection; the next ones ask
//! for a quarter as many events per page (down to one) until the pump is live again, so large
//! events slow the replay down instead of stopping it. A single event above the limit is
//! reported at every attempt.
//!
//! The sequencing rules themselves (what to catch up, what is out of sequence, how large the
//! next page is) are [`super::sequencer`]'s; this module performs them.
//!
//! A failed commit (busy lock, full disk, I/O error) keeps the connection: the session waits
//! with backoff and restarts from the durable cursor, so the failed batch is replayed and the
//! callbacks queued meanwhile are not lost. A damaged database file stops the daemon (74).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::{Instant, MissedTickBehavior};

use super::effects;
use super::resync::{self, ResyncError};
use super::sequencer::{Latest, Live, Page, Request, Sequencer};
use crate::config::{FirstRun, OnHistoryGap};
use crate::ops::metrics::Metrics;
use crate::store::{Effect, EventRecord, HistoryGap, RecordOutcome, StoreError};
use crate::supervisor::child::{ChildError, Fatal};
use crate::supervisor::context::{Ctx, Linked, next_link};
use crate::supervisor::policy::backoff;
use mesolive_api::client::{EventHub, HubError, LatestReading};
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
    let mut link = ctx.links().event();
    let mut last_generation = None;
    let mut sequencer = Sequencer::new(ctx.settings().events.replay_page_size);
    loop {
        let next = next_link(&mut link, last_generation, ctx.drain().stopping());
        let Some(linked) = beating(&ctx, next).await.flatten() else {
            return Ok(());
        };
        last_generation = Some(linked.generation);
        // The sequencer outlives the connection: a page too large stays too large.
        let mut session = Session::new(ctx.clone(), linked, sequencer)?;
        if !session.run_until_disconnected().await? {
            return Ok(());
        }
        sequencer = session.sequencer;
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
            _ = beat.tick() => ctx.health().pump_beat(),
            _ = ctx.drain().stopping() => return None,
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
    #[error("a replay page exceeded hubs.max_message_bytes")]
    PageTooLarge,
    #[error("the server no longer has EventSeqIds {}..={}", .0.from, .0.to)]
    HistoryGap(HistoryGap),
    #[error("resync after a history gap: {0}")]
    Resync(#[from] ResyncError),
}

/// One Event Hub connection's worth of pumping.
struct Session {
    ctx: Arc<Ctx>,
    hub: EventHub,
    callbacks: CallbackReceiver,
    /// The sequencing rules and where the pump stands in the server's sequence.
    sequencer: Sequencer,
    /// Whether this session went live (a resync after a hole met while live restores it).
    live: bool,
    /// Live events whose EventSeqId went backwards, by key, until their batch is committed.
    out_of_sequence: HashMap<String, i64>,
    /// Live states re-asserted at or below the cursor, by key, until their batch is committed.
    reasserted: HashMap<String, i64>,
    /// Unknown callback targets already reported in this session (later ones are only counted).
    unrecognized_targets: HashSet<String>,
}

impl Session {
    fn new(
        ctx: Arc<Ctx>,
        linked: Linked<EventHub>,
        sequencer: Sequencer,
    ) -> Result<Session, ChildError> {
        let callbacks = linked
            .client
            .0
            .connection()
            .take_callbacks()
            .ok_or_else(|| {
                ChildError::Broken("the event hub callback queue was already taken".into())
            })?;
        Ok(Session {
            ctx,
            hub: linked.client,
            callbacks,
            sequencer,
            live: false,
            out_of_sequence: HashMap::new(),
            reasserted: HashMap::new(),
            unrecognized_targets: HashSet::new(),
        })
    }

    /// Pumps this connection until it ends (`Ok(true)`: wait for the next one) or the daemon
    /// stops (`Ok(false)`). A store failure that may pass, or a resync that could not be
    /// committed, is retried here, on the same connection, from the durable cursor.
    async fn run_until_disconnected(&mut self) -> Result<bool, ChildError> {
        let ctx = self.ctx.clone();
        let settings = &ctx.settings().supervisor;
        let mut delays = backoff(settings);
        loop {
            let started = Instant::now();
            let ended = self.run().await;
            self.ctx.health().set_caught_up(false);
            let (kind, error, what) = match ended {
                Ok(()) => return Ok(true),
                Err(PumpError::Stopped) => return Ok(false),
                Err(PumpError::Hub(err)) => {
                    if let Some(unsupported) = err.unsupported() {
                        return Err(Fatal::Unsupported(unsupported.to_string()).into());
                    }
                    tracing::warn!(error = %err, "event hub session ended; waiting for the next connection");
                    return Ok(true);
                }
                Err(PumpError::PageTooLarge) => {
                    let shrink = self.sequencer.page_too_large();
                    let cursor = self.sequencer.cursor();
                    self.ctx.metrics().error("replay_page_too_large");
                    if shrink.single_event {
                        tracing::error!(
                            cursor,
                            "the next event alone exceeds hubs.max_message_bytes: raise it, or the replay cannot get past it"
                        );
                    } else {
                        tracing::warn!(
                            cursor,
                            page_size = shrink.page_size,
                            "a replay page exceeded hubs.max_message_bytes; asking for fewer events per page"
                        );
                    }
                    return Ok(true);
                }
                Err(PumpError::CursorAhead { cursor, latest }) => {
                    return Err(Fatal::CursorAhead { cursor, latest }.into());
                }
                Err(PumpError::HistoryGap(gap)) => {
                    let (from, to, events) = (gap.from, gap.to, gap.events());
                    return Err(Fatal::HistoryGap { from, to, events }.into());
                }
                Err(PumpError::Store(err) | PumpError::Resync(ResyncError::Store(err)))
                    if err.is_damage() =>
                {
                    return Err(Fatal::Store(err).into());
                }
                Err(PumpError::Resync(ResyncError::Unauthorized(refused))) => {
                    return Err(Fatal::Unauthorized(refused).into());
                }
                Err(PumpError::Store(err)) => (
                    format!("store_{}", err.kind()),
                    err.to_string(),
                    "event store failed; nothing was committed, retrying from the durable cursor",
                ),
                Err(PumpError::Resync(err)) => (
                    "history_resync".to_owned(),
                    err.to_string(),
                    "resync after a history gap failed; nothing of it was committed, retrying from the durable cursor",
                ),
            };
            self.ctx.metrics().error(&kind);
            if started.elapsed() > settings.backoff_max * 2 {
                delays = backoff(settings);
            }
            let delay = delays.next().unwrap_or(settings.backoff_max);
            tracing::warn!(error = %error, retry_in = ?delay, cursor = self.sequencer.cursor(), "{what}");
            if beating(&self.ctx, tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return Ok(false);
            }
        }
    }

    async fn run(&mut self) -> Result<(), PumpError> {
        self.ctx.health().pump_beat();
        self.live = false;
        let cursor = self.start_cursor().await?;
        self.sequencer.start(cursor);
        // Until the first commit the gauge would read 0 (and the lag gauge the whole history).
        Metrics::set(&self.ctx.metrics().cursor, cursor);
        let reading = self.hub.latest_reading().await?;
        if let Latest::Gap(gap) = self.read_latest(reading)? {
            self.history_gap(gap).await?;
        }
        self.catch_up(None).await?;
        let subscribed = self.hub.subscribe(None).await?;
        if !subscribed.failed_strategies.is_empty() {
            tracing::warn!(failed = ?subscribed.failed_strategies, "SubscribeToStrategies: some strategies failed");
            self.ctx.metrics().error("subscribe_failed");
        }
        self.catch_up(None).await?;
        self.sequencer.went_live();
        self.live = true;
        self.ctx.health().set_caught_up(true);
        self.ctx.wake().reconcile.notify_one();
        tracing::info!(cursor = self.sequencer.cursor(), "event pump live");
        self.live().await
    }

    /// The persisted cursor, or on a first run the configured starting point.
    async fn start_cursor(&self) -> Result<i64, PumpError> {
        if let Some(cursor) = self.ctx.store().cursor().await? {
            return Ok(cursor);
        }
        match self.ctx.settings().events.first_run {
            FirstRun::All => Ok(0),
            FirstRun::Latest => {
                let latest = self.hub.latest_seq_id().await?;
                let cursor = self.ctx.store().init_cursor(latest).await?;
                tracing::info!(cursor, "first run: starting at the server's latest event");
                Ok(cursor)
            }
        }
    }

    /// Replays history after the cursor until the server has nothing more (or, with `until`,
    /// until the cursor reaches it); [`Sequencer::page`] decides which page comes next.
    ///
    /// The next page is requested as soon as this one is read, so the server, the socket and
    /// the decoding work on it while this page commits: the commit cannot change where the
    /// next page starts (the cursor only moves to the page's highest EventSeqId), and a failed
    /// commit ends the replay before the prefetched page is used.
    ///
    /// A page that starts past a hole, or a refusal of the cursor as too old, is answered by
    /// [`Session::history_gap`] before anything else is committed.
    async fn catch_up(&mut self, until: Option<i64>) -> Result<(), PumpError> {
        let first = self.sequencer.catch_up(until);
        let fetched = self.fetch(first, None).await;
        let Some(mut page) = self.unless_refused(fetched).await? else {
            return Ok(());
        };
        for _ in 0..MAX_REPLAY_PAGES {
            self.stop_requested()?;
            let records: Vec<EventRecord> = page
                .events
                .into_iter()
                .map(|historic| self.record_historic(historic))
                .collect();
            let seqs: Vec<Option<i64>> = records.iter().map(|record| record.seq_id).collect();
            let verdict = self.sequencer.page(Page {
                seqs: &seqs,
                has_more: page.has_more,
                has_token: page.continuation.is_some(),
            });
            self.report_replay_below_cursor(verdict.below_cursor);
            if let Some(gap) = verdict.gap {
                self.history_gap(gap).await?;
            }
            let Some(next) = verdict.next else {
                return self.commit(&records).await.map(drop);
            };
            let token = page.continuation.filter(|_| next.follow_token);
            let request = self.fetch(next, token);
            let (committed, fetched) = tokio::join!(self.commit(&records), request);
            committed?;
            match self.unless_refused(fetched).await? {
                Some(next) => page = next,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// A page, or `None` when `GetEventsSince` refused the cursor as older than the history the
    /// server keeps and the hole (up to the catch-up's target, or the latest event) was
    /// answered: the catch-up is over.
    async fn unless_refused(
        &mut self,
        fetched: Result<HistoryPage, PumpError>,
    ) -> Result<Option<HistoryPage>, PumpError> {
        match fetched {
            Err(PumpError::Hub(err)) if err.history_too_old() => {
                let latest = self.hub.latest_seq_id().await?;
                let Some(gap) = self.sequencer.history_refused(latest) else {
                    return Err(PumpError::Hub(err));
                };
                tracing::info!(error = %err, "GetEventsSince refused the cursor as older than the server's history");
                self.history_gap(gap).await?;
                Ok(None)
            }
            fetched => fetched.map(Some),
        }
    }

    /// Answers a hole in the server's history: said loudly, then resynced from the Control Hub
    /// (the cursor moves to the hole's end) or, with `events.on_history_gap = "stop"`,
    /// recorded and fatal. Not ready until the resync is committed.
    async fn history_gap(&mut self, gap: HistoryGap) -> Result<(), PumpError> {
        let ctx = self.ctx.clone();
        ctx.health().set_caught_up(false);
        Metrics::add(&ctx.metrics().history_gaps, 1);
        let policy = ctx.settings().events.on_history_gap;
        tracing::error!(
            from = gap.from,
            to = gap.to,
            events = gap.events(),
            form = gap.form.as_str(),
            on_history_gap = policy.as_str(),
            "history gap: the server no longer has the events after the cursor; they are never replayed"
        );
        if policy == OnHistoryGap::Stop {
            ctx.store().record_history_gap_stop(&gap).await?;
            return Err(PumpError::HistoryGap(gap));
        }
        let mut link = ctx.links().control();
        let control = beating(&ctx, next_link(&mut link, None, ctx.drain().stopping()))
            .await
            .flatten()
            .ok_or(PumpError::Stopped)?;
        let summary = resync::resync(&ctx, &control.client, &gap).await?;
        self.sequencer.resynced(&gap);
        Metrics::set(&ctx.metrics().cursor, self.sequencer.cursor());
        tracing::info!(
            cursor = summary.cursor,
            open_positions = summary.open_positions,
            closed_positions = ?summary.closed_positions,
            legs = summary.legs,
            orders = summary.orders,
            signals_unconfirmed = ?summary.signals_unconfirmed,
            "history gap resynced from the Control Hub; the cursor moved past the hole"
        );
        if self.live {
            ctx.health().set_caught_up(true);
        }
        Ok(())
    }

    /// One replay page as `request` says; owns what it needs, so it can be awaited together
    /// with a commit. A page too large for the connection's message limit is reported as such,
    /// so the next request asks for fewer events.
    fn fetch(
        &self,
        request: Request,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<HistoryPage, PumpError>> + use<> {
        let hub = self.hub.clone();
        let page_size = self.sequencer.page_size();
        async move {
            hub.events_since(request.after, page_size, continuation.as_deref())
                .await
                .map_err(|err| match err.transport().map(SignalrError::kind) {
                    Some("message_too_large") => PumpError::PageTooLarge,
                    _ => PumpError::from(err),
                })
        }
    }

    async fn live(&mut self) -> Result<(), PumpError> {
        let mut beat = tokio::time::interval(BEAT);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_latest_poll = Instant::now() + LATEST_POLL;
        let batch_max = self.ctx.settings().events.batch_max;
        loop {
            let first = tokio::select! {
                biased;
                _ = self.ctx.drain().stopping() => return Err(PumpError::Stopped),
                callback = self.callbacks.recv() => match callback {
                    Some(callback) => callback,
                    None => return Ok(()),
                },
                _ = beat.tick() => {
                    self.ctx.health().pump_beat();
                    if Instant::now() >= next_latest_poll {
                        next_latest_poll = Instant::now() + LATEST_POLL;
                        self.poll_latest().await?;
                    }
                    continue;
                }
            };
            // A signal just committed: the workflow runner acts on it first (bounded), and what
            // arrives meanwhile joins this batch.
            self.ctx.precedence().wait_turn().await;
            let mut batch = vec![first];
            while batch.len() < batch_max
                && !batch
                    .last()
                    .is_some_and(|last| effects::is_signal_target(&last.target))
                && let Some(callback) = self.callbacks.try_recv()
            {
                batch.push(callback);
            }
            self.apply_live(batch).await?;
            self.ctx.health().pump_beat();
        }
    }

    /// Applies live callbacks in order, as [`Sequencer::live`] decides: catching up first
    /// whenever one jumps past the next expected EventSeqId; a state at or below the cursor (or
    /// unsequenced) is re-asserted ([`effects::reassert`]); an edge with an EventId at or below
    /// the cursor goes to the store under its key only (see [`effects::out_of_sequence`]).
    async fn apply_live(&mut self, batch: Vec<Callback>) -> Result<(), PumpError> {
        let mut pending: Vec<EventRecord> = Vec::with_capacity(batch.len());
        let mut went_backwards = false;
        for callback in batch {
            let payload = mesolive_api::wire::callback_payload(callback.arguments);
            let mut record = self.record_payload(&callback.target, &payload);
            if let Some(seq) = record.seq_id {
                Metrics::raise(&self.ctx.metrics().latest_seq, seq);
            }
            loop {
                let keyed = effects::keyed_by_event_id(&record);
                let state = effects::describes_state(&record);
                match self.sequencer.live(record.seq_id, keyed, state) {
                    Live::CatchUpFirst { until } => {
                        went_backwards |= self.commit(&pending).await?;
                        pending.clear();
                        Metrics::add(&self.ctx.metrics().gap_catchups, 1);
                        tracing::info!(
                            cursor = self.sequencer.cursor(),
                            live = until + 1,
                            "EventSeqId jumped: catching up before applying it"
                        );
                        self.catch_up(Some(until)).await?;
                    }
                    Live::Reassert => {
                        if let Some(seq) = record.seq_id {
                            self.reasserted.insert(record.key.clone(), seq);
                        }
                        record = effects::reassert(record);
                        break;
                    }
                    Live::OutOfSequence { cursor } => {
                        let seq = record.seq_id.unwrap_or_default();
                        self.out_of_sequence.insert(record.key.clone(), seq);
                        record = effects::out_of_sequence(record, &payload, cursor);
                        break;
                    }
                    // Below the cursor without an EventId: nothing tells it from a replayed
                    // event; the store skips it (its missing EventId was reported already).
                    Live::Apply | Live::BelowCursor | Live::Unsequenced => break,
                }
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
        let reading = self.hub.latest_reading().await?;
        Metrics::set(&self.ctx.metrics().latest_seq, reading.latest);
        match self.read_latest(reading)? {
            // Either events are in flight right now, or some were lost on the way: a replay
            // settles both (dedupe skips whatever also arrives live).
            Latest::CatchUp { until } => self.catch_up(Some(until)).await,
            Latest::Gap(gap) => {
                self.history_gap(gap).await?;
                self.catch_up(Some(reading.latest)).await
            }
            Latest::UpToDate | Latest::Ahead { .. } => Ok(()),
        }
    }

    /// A server behind our cursor would have every new event skipped as already seen: fatal.
    fn read_latest(&self, reading: LatestReading) -> Result<Latest, PumpError> {
        match self.sequencer.latest(reading) {
            Latest::Ahead { cursor, latest } => {
                self.ctx.metrics().error("cursor_ahead");
                Err(PumpError::CursorAhead { cursor, latest })
            }
            reading => Ok(reading),
        }
    }

    fn report_replay_below_cursor(&self, below: usize) {
        if below > 0 {
            self.ctx.metrics().error("replay_below_cursor");
            tracing::warn!(
                cursor = self.sequencer.cursor(),
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
                self.ctx.metrics().error("event_decode");
                effects::quarantine(&error, payload)
            }
        }
    }

    /// Logs and counts what a decodable event tells about the server: an unknown target, unknown
    /// enum members, a missing EventId or EventSeqId.
    fn report_oddities(&mut self, event: &HubEvent) {
        let metrics = &self.ctx.metrics();
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
        let outcome = self.ctx.store().apply_events(records).await;
        let out_of_sequence = std::mem::take(&mut self.out_of_sequence);
        let reasserted = std::mem::take(&mut self.reasserted);
        let outcome = outcome?;
        let metrics = &self.ctx.metrics();
        Metrics::add(&metrics.event_batches, 1);
        let mut applied = 0u64;
        let mut quarantined = 0u64;
        let mut went_backwards = false;
        let (mut positions_changed, mut workflows_affected, mut signalled) = (false, false, false);
        for (record, result) in records.iter().zip(&outcome.outcomes) {
            if *result == RecordOutcome::Applied {
                applied += 1;
                match record.effect {
                    Effect::Quarantine { .. } => quarantined += 1,
                    Effect::Position(ref update) if effects::may_open_or_close(update) => {
                        positions_changed = true;
                        workflows_affected = true;
                    }
                    Effect::Signal(_) => {
                        signalled = true;
                        workflows_affected = true;
                    }
                    Effect::Job(_) | Effect::Order(_) => workflows_affected = true,
                    Effect::Position(_) | Effect::Leg(_) | Effect::None => {}
                }
                if let Some(seq) = reasserted.get(&record.key) {
                    Metrics::add(&metrics.events_reasserted, 1);
                    tracing::debug!(target = %record.target, seq, key = %record.key, cursor = self.sequencer.cursor(), "state re-asserted at or below the cursor: applied where newer than the stored state, the cursor does not move");
                }
                if let Some(seq) = out_of_sequence.get(&record.key) {
                    went_backwards = true;
                    metrics.error("event_seq_regression");
                    tracing::warn!(target = %record.target, seq, key = %record.key, cursor = self.sequencer.cursor(), "EventSeqId went backwards: a new event at or below the cursor; quarantined, not acted on");
                }
            }
        }
        Metrics::add(&metrics.events_applied, applied);
        Metrics::add(&metrics.events_quarantined, quarantined);
        Metrics::add(&metrics.events_duplicate, records.len() as u64 - applied);
        self.sequencer.committed(outcome.cursor);
        if outcome.cursor.is_some() {
            Metrics::set(&metrics.cursor, self.sequencer.cursor());
        }
        // Wake only who can care: the monitor manager re-reads every open position, the
        // workflow runner every signal and active workflow.
        if positions_changed {
            self.ctx.wake().positions.notify_one();
        }
        if signalled {
            self.ctx.precedence().hand_over();
        }
        if workflows_affected {
            self.ctx.wake().workflows.notify_one();
        }
        Ok(went_backwards)
    }

    fn stop_requested(&self) -> Result<(), PumpError> {
        if self.ctx.drain().is_stopping() {
            return Err(PumpError::Stopped);
        }
        Ok(())
    }
}
