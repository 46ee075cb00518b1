//! The event pump's sequencing rules, without I/O: given the cursor and what arrived (a
//! latest-EventSeqId reading, a replay page, a live callback, a page too large for the
//! connection), what to do next. The pump performs the decisions; this module makes them.
//!
//! The rules:
//! * the next event expected is the cursor + 1, counting events handed out to be applied but
//!   not yet committed;
//! * a live EventSeqId past the next expected one is a jump: catch up with `GetEventsSince`
//!   to the event before it first, then apply it;
//! * level state is re-asserted, edges are sequenced: a live signal, error or agent-status
//!   event at or below the cursor (or without an EventSeqId: an on-connect push) describes a
//!   state, and applying the newest one is idempotent, so it is applied as a re-assertion that
//!   only wins over an older stored state, without moving the cursor (API §4.2, §6.5: the
//!   server pushes the active state on connect, possibly with values already below the
//!   cursor);
//! * a live order, position, leg or job event at or below the cursor with an EventId is either
//!   the replay/live overlap (the dedupe set knows its key) or a new event at an old position —
//!   the server's sequence went backwards — and is quarantined, never acted on; without an
//!   EventId the store skips it as below the cursor;
//! * a replay page is followed by the next one from the highest EventSeqId it reached; the
//!   server's continuation token only when a page did not move the cursor; the catch-up ends at
//!   an empty page, at `HasMore = false`, or once it reached its target;
//! * a server whose latest EventSeqId is below the cursor restarted its history (or is another
//!   account's): fatal; one above the cursor means events to catch up;
//! * a replay page larger than the connection's message limit costs the connection; the next
//!   pages ask for a quarter as many events (down to one) until the pump is live again;
//! * history the server no longer has is a hole, never "nothing happened" (API §6.3: a cursor
//!   older than the retention shows up as an error or a gap): a replay page whose first
//!   EventSeqId is past the next expected one (the subscription covers every strategy and the
//!   sequence is per user, so nothing may lie between), a `GetEventsSince` that refuses the
//!   cursor as too old, or a `GetLatestEventSeqId` whose oldest available EventSeqId is past the
//!   cursor. The hole's bounds say where the cursor goes once the state is resynced: to the
//!   event before the first one the server has, or to the latest when it would not say.

use crate::store::{GapForm, HistoryGap};
use mesolive_api::client::LatestReading;

/// What the pump knows of the server's sequence on the current Event Hub connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequencer {
    /// The last committed EventSeqId (the durable cursor, as this session knows it).
    cursor: i64,
    /// The highest EventSeqId handed out to be applied and not yet known to be committed.
    pending: i64,
    /// The target of the catch-up in progress (`None`: until the server has nothing more).
    until: Option<i64>,
    /// The target of the last catch-up a live jump asked for, once it is done.
    caught_up_for: Option<i64>,
    /// Events asked for per replay page now.
    page_size: u32,
    /// Events asked for per replay page while nothing is wrong (`events.replay_page_size`).
    full_page_size: u32,
    /// The end of the last hole resynced: no event up to it was ever seen, so an edge at or
    /// below it cannot be told from one the resync already covered.
    resynced_to: i64,
}

/// A `GetEventsSince` request to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Events strictly after this EventSeqId.
    pub after: i64,
    /// Send the continuation token of the page just read (it did not move the cursor).
    pub follow_token: bool,
}

/// The shape of one replay page: what the sequencing rules read of it.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The EventSeqId of every event, in page order (`None`: the event carries none).
    pub seqs: &'a [Option<i64>],
    /// What the server says of more pages (`None`: not said).
    pub has_more: Option<bool>,
    /// Whether the page came with a continuation token.
    pub has_token: bool,
}

/// What to do with a replay page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageVerdict {
    /// Events at or below the cursor in it (the store skips them; worth a warning).
    pub below_cursor: usize,
    /// The page starts past the next expected event: the server no longer has the events in
    /// between. Resync and move the cursor to the hole's end before committing the page.
    pub gap: Option<HistoryGap>,
    /// The next page to ask for; `None`: the catch-up is over once this page is committed.
    pub next: Option<Request>,
}

/// What to do with one live callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// The next event (or the first after a jump already caught up): apply it with its
    /// EventSeqId.
    Apply,
    /// It jumps past the next expected EventSeqId: commit what is pending, catch up to `until`,
    /// then offer it again.
    CatchUpFirst {
        /// The last EventSeqId the catch-up must reach.
        until: i64,
    },
    /// A state (signal, error, agent status) at or below the cursor, or without an
    /// EventSeqId: apply it by its key as a re-assertion, which only wins over an older stored
    /// state and never moves the cursor.
    Reassert,
    /// An edge (order, position, leg, job) at or below the cursor, keyed by its EventId: the
    /// dedupe set decides. A known key is the replay/live overlap (skipped); a new one means the
    /// server's sequence went backwards: quarantine it with this reason, do not act on it.
    OutOfSequence {
        /// The cursor it is at or below.
        cursor: i64,
    },
    /// At or below the cursor without an EventId: nothing tells it from a replayed event, the
    /// store skips it as below the cursor.
    BelowCursor,
    /// An edge without an EventSeqId: applied by its key, the cursor does not move.
    Unsequenced,
}

/// What a `GetLatestEventSeqId` reading means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latest {
    /// The server is behind the cursor: its history restarted, or it is another account's.
    /// Fatal: going on would skip every event up to the old cursor.
    Ahead {
        /// The cursor.
        cursor: i64,
        /// The reading.
        latest: i64,
    },
    /// The oldest event the server still has is past the next expected one: resync and move
    /// the cursor past the hole, then catch up.
    Gap(HistoryGap),
    /// Events exist past the cursor: catch up to `until` (they are in flight, or were lost).
    CatchUp {
        /// The reading.
        until: i64,
    },
    /// Nothing to do.
    UpToDate,
}

/// How to react to a replay page that exceeded the connection's message limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shrink {
    /// Events to ask for per page from now on.
    pub page_size: u32,
    /// The page held a single event: no smaller page can get past it.
    pub single_event: bool,
}

impl Sequencer {
    /// A sequencer asking for `full_page_size` events per replay page.
    pub fn new(full_page_size: u32) -> Sequencer {
        let full_page_size = full_page_size.max(1);
        Sequencer {
            cursor: 0,
            pending: 0,
            until: None,
            caught_up_for: None,
            page_size: full_page_size,
            full_page_size,
            resynced_to: 0,
        }
    }

    /// A session starts (or restarts after a failed commit) from the durable cursor. The page
    /// size is kept: a page that was too large stays too large on the next connection.
    pub fn start(&mut self, cursor: i64) {
        self.cursor = cursor;
        self.pending = cursor;
        self.until = None;
        self.caught_up_for = None;
    }

    /// The last committed EventSeqId.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Events to ask for per replay page now.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The highest EventSeqId applied or about to be.
    fn position(&self) -> i64 {
        self.cursor.max(self.pending)
    }

    /// A batch was committed; `cursor` is the store's cursor after it (`None`: no event with
    /// an EventSeqId was ever committed).
    pub fn committed(&mut self, cursor: Option<i64>) {
        if let Some(cursor) = cursor {
            self.cursor = self.cursor.max(cursor);
            self.pending = self.pending.max(self.cursor);
        }
    }

    /// Reads a `GetLatestEventSeqId` answer.
    pub fn latest(&self, reading: LatestReading) -> Latest {
        let LatestReading { latest, oldest } = reading;
        let position = self.position();
        if latest < self.cursor {
            Latest::Ahead {
                cursor: self.cursor,
                latest,
            }
        } else if let Some(oldest) = oldest.filter(|oldest| *oldest > position + 1) {
            Latest::Gap(HistoryGap {
                from: position + 1,
                to: oldest - 1,
                form: GapForm::Oldest,
            })
        } else if latest > position {
            Latest::CatchUp { until: latest }
        } else {
            Latest::UpToDate
        }
    }

    /// Starts a catch-up: until the server has nothing more (`None`), or until `until`.
    /// Returns the first page to ask for.
    pub fn catch_up(&mut self, until: Option<i64>) -> Request {
        self.until = until;
        Request {
            after: self.position(),
            follow_token: false,
        }
    }

    /// Reads one replay page of the catch-up in progress. Every event of it is to be
    /// committed (the store skips those at or below the cursor); the verdict says how many
    /// were, whether the page starts past a hole, and which page to ask for next.
    pub fn page(&mut self, page: Page<'_>) -> PageVerdict {
        let before = self.position();
        let below_cursor = page
            .seqs
            .iter()
            .filter(|seq| seq.is_some_and(|seq| seq <= before))
            .count();
        // Events before the first sequenced one whose EventSeqId cannot be read still take a
        // place each in the sequence: they may be what lies between.
        let gap = page
            .seqs
            .iter()
            .position(Option::is_some)
            .and_then(|index| Some((index as i64, page.seqs[index]?)))
            .filter(|(unsequenced, first)| *first > before + 1 + unsequenced)
            .map(|(unsequenced, first)| HistoryGap {
                from: before + 1 + unsequenced,
                to: first - 1,
                form: GapForm::Page,
            });
        let reached = page.seqs.iter().flatten().copied().fold(before, i64::max);
        self.pending = reached;
        let done = page.seqs.is_empty()
            || self.until.is_some_and(|target| reached >= target)
            || page.has_more == Some(false);
        let next = match (done, reached > before, page.has_token) {
            (true, _, _) => None,
            (false, true, _) => Some(Request {
                after: reached,
                follow_token: false,
            }),
            (false, false, true) => Some(Request {
                after: before,
                follow_token: true,
            }),
            // Events we already had and no way forward: stop rather than loop.
            (false, false, false) => None,
        };
        if next.is_none() {
            self.caught_up_for = self.until.take();
        }
        PageVerdict {
            below_cursor,
            gap,
            next,
        }
    }

    /// `GetEventsSince` refused the cursor as older than the history the server keeps, and the
    /// server's latest EventSeqId is `latest`: the hole runs from the next expected event to the
    /// latest (the server does not say where its history starts), or to the target of the
    /// catch-up in progress when it is lower (a live event past it is applied next). `None`
    /// when nothing is missing, and the refusal is an ordinary failure.
    pub fn history_refused(&self, latest: i64) -> Option<HistoryGap> {
        let from = self.position() + 1;
        let to = self.until.map_or(latest, |until| until.min(latest));
        (to >= from).then_some(HistoryGap {
            from,
            to,
            form: GapForm::Refused,
        })
    }

    /// The state was resynced after `gap`: the cursor is at its end.
    pub fn resynced(&mut self, gap: &HistoryGap) {
        self.committed(Some(gap.to));
        self.resynced_to = self.resynced_to.max(gap.to);
    }

    /// Decides what to do with one live callback (`seq`: its EventSeqId; `keyed`: whether its
    /// dedupe key is its EventId, which stays the same live and in history; `state`: whether it
    /// describes a state — a signal, an error, an agent status — rather than an edge).
    pub fn live(&mut self, seq: Option<i64>, keyed: bool, state: bool) -> Live {
        let Some(seq) = seq else {
            return if state {
                Live::Reassert
            } else {
                Live::Unsequenced
            };
        };
        let expected = self.position() + 1;
        if seq > expected && self.caught_up_for != Some(seq - 1) {
            return Live::CatchUpFirst { until: seq - 1 };
        }
        if seq >= expected {
            self.pending = seq;
            self.caught_up_for = None;
            return Live::Apply;
        }
        match (state, keyed && seq > self.resynced_to) {
            (true, _) => Live::Reassert,
            (false, true) => Live::OutOfSequence {
                cursor: expected - 1,
            },
            (false, false) => Live::BelowCursor,
        }
    }

    /// A replay page exceeded the connection's message limit: ask for a quarter as many
    /// events from now on (down to one).
    pub fn page_too_large(&mut self) -> Shrink {
        let failed = self.page_size;
        self.page_size = (failed / 4).max(1);
        Shrink {
            page_size: self.page_size,
            single_event: failed == 1,
        }
    }

    /// The pump is live: the next catch-ups ask for full pages again.
    pub fn went_live(&mut self) {
        self.page_size = self.full_page_size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seqs: &[Option<i64>], has_more: Option<bool>, has_token: bool) -> Page<'_> {
        Page {
            seqs,
            has_more,
            has_token,
        }
    }

    fn reading(latest: i64, oldest: Option<i64>) -> LatestReading {
        LatestReading { latest, oldest }
    }

    fn at(cursor: i64) -> Sequencer {
        let mut sequencer = Sequencer::new(100);
        sequencer.start(cursor);
        sequencer
    }

    #[test]
    fn a_latest_reading_below_the_cursor_is_fatal_above_it_a_catch_up() {
        let sequencer = at(10);
        assert_eq!(
            sequencer.latest(reading(9, None)),
            Latest::Ahead {
                cursor: 10,
                latest: 9
            }
        );
        assert_eq!(sequencer.latest(reading(10, None)), Latest::UpToDate);
        assert_eq!(
            sequencer.latest(reading(12, None)),
            Latest::CatchUp { until: 12 }
        );
    }

    #[test]
    fn a_catch_up_asks_from_the_highest_event_reached_and_ends_at_an_empty_page() {
        let mut sequencer = at(4);
        assert_eq!(
            sequencer.catch_up(None),
            Request {
                after: 4,
                follow_token: false
            }
        );
        let verdict = sequencer.page(page(&[Some(5), Some(6)], None, true));
        assert_eq!(
            verdict.next,
            Some(Request {
                after: 6,
                follow_token: false
            })
        );
        sequencer.committed(Some(6));
        assert_eq!(sequencer.page(page(&[], None, false)).next, None);
        assert_eq!(sequencer.cursor(), 6);
    }

    #[test]
    fn a_catch_up_ends_when_the_server_says_no_more_or_the_target_is_reached() {
        let mut sequencer = at(0);
        sequencer.catch_up(None);
        assert_eq!(
            sequencer.page(page(&[Some(1)], Some(false), true)).next,
            None
        );
        let mut sequencer = at(0);
        sequencer.catch_up(Some(2));
        assert_eq!(
            sequencer
                .page(page(&[Some(1), Some(2)], Some(true), true))
                .next,
            None
        );
    }

    #[test]
    fn the_token_is_followed_only_when_a_page_did_not_move_the_cursor() {
        let mut sequencer = at(10);
        sequencer.catch_up(None);
        let verdict = sequencer.page(page(&[Some(9), Some(10)], None, true));
        assert_eq!(verdict.below_cursor, 2);
        assert_eq!(
            verdict.next,
            Some(Request {
                after: 10,
                follow_token: true
            })
        );
        // No token and no progress: stop rather than ask for the same page forever.
        assert_eq!(sequencer.page(page(&[Some(10)], None, false)).next, None);
    }

    #[test]
    fn live_events_in_order_are_applied_and_a_jump_catches_up_first() {
        let mut sequencer = at(5);
        assert_eq!(sequencer.live(Some(6), true, false), Live::Apply);
        assert_eq!(sequencer.live(Some(7), true, false), Live::Apply);
        assert_eq!(
            sequencer.live(Some(10), true, false),
            Live::CatchUpFirst { until: 9 }
        );
        sequencer.committed(Some(7));
        assert_eq!(
            sequencer.catch_up(Some(9)),
            Request {
                after: 7,
                follow_token: false
            }
        );
        sequencer.page(page(&[Some(8), Some(9)], None, false));
        sequencer.committed(Some(9));
        assert_eq!(sequencer.live(Some(10), true, false), Live::Apply);
    }

    #[test]
    fn a_jump_the_catch_up_could_not_fill_is_applied_rather_than_retried_forever() {
        let mut sequencer = at(5);
        assert_eq!(
            sequencer.live(Some(9), true, false),
            Live::CatchUpFirst { until: 8 }
        );
        sequencer.catch_up(Some(8));
        assert_eq!(sequencer.page(page(&[], None, false)).next, None);
        assert_eq!(sequencer.live(Some(9), true, false), Live::Apply);
        // The next jump catches up again.
        assert_eq!(
            sequencer.live(Some(12), true, false),
            Live::CatchUpFirst { until: 11 }
        );
    }

    #[test]
    fn a_live_event_at_or_below_the_cursor_is_out_of_sequence_or_skipped() {
        let mut sequencer = at(5);
        assert_eq!(sequencer.live(Some(6), true, false), Live::Apply);
        // The batch has not committed 6 yet: 6 is already taken.
        assert_eq!(
            sequencer.live(Some(6), true, false),
            Live::OutOfSequence { cursor: 6 }
        );
        assert_eq!(
            sequencer.live(Some(3), true, false),
            Live::OutOfSequence { cursor: 6 }
        );
        assert_eq!(sequencer.live(Some(3), false, false), Live::BelowCursor);
        assert_eq!(sequencer.live(None, true, false), Live::Unsequenced);
    }

    #[test]
    fn a_state_at_or_below_the_cursor_or_unsequenced_is_reasserted_without_moving_it() {
        let mut sequencer = at(5);
        assert_eq!(sequencer.live(Some(3), true, true), Live::Reassert);
        assert_eq!(sequencer.live(Some(5), false, true), Live::Reassert);
        assert_eq!(sequencer.live(None, true, true), Live::Reassert);
        // A state past the cursor is sequenced like any event.
        assert_eq!(sequencer.live(Some(6), true, true), Live::Apply);
        assert_eq!(
            sequencer.live(Some(9), true, true),
            Live::CatchUpFirst { until: 8 }
        );
    }

    #[test]
    fn a_page_starting_past_the_next_expected_event_is_a_hole_up_to_its_first_event() {
        let mut sequencer = at(4);
        sequencer.catch_up(None);
        let verdict = sequencer.page(page(&[Some(5_004), Some(5_005)], None, true));
        assert_eq!(
            verdict.gap,
            Some(HistoryGap {
                from: 5,
                to: 5_003,
                form: GapForm::Page
            })
        );
        assert_eq!(verdict.gap.map(|gap| gap.events()), Some(4_999));
        sequencer.resynced(&HistoryGap {
            from: 5,
            to: 5_003,
            form: GapForm::Page,
        });
        assert_eq!(sequencer.cursor(), 5_003);
        assert_eq!(
            verdict.next,
            Some(Request {
                after: 5_005,
                follow_token: false
            })
        );
        // Pages that start at, or before, the next expected event are no hole.
        let mut sequencer = at(4);
        sequencer.catch_up(None);
        assert_eq!(sequencer.page(page(&[Some(5)], None, false)).gap, None);
        let mut sequencer = at(4);
        sequencer.catch_up(None);
        assert_eq!(
            sequencer.page(page(&[Some(4), Some(5)], None, false)).gap,
            None
        );
        // An event whose EventSeqId cannot be read takes the place it lacks.
        let mut sequencer = at(4);
        sequencer.catch_up(None);
        assert_eq!(
            sequencer.page(page(&[None, Some(6)], None, false)).gap,
            None
        );
        let mut sequencer = at(4);
        sequencer.catch_up(None);
        assert_eq!(
            sequencer.page(page(&[None, Some(9)], None, false)).gap,
            Some(HistoryGap {
                from: 6,
                to: 8,
                form: GapForm::Page
            })
        );
    }

    #[test]
    fn a_live_jump_whose_catch_up_page_starts_late_is_a_hole() {
        let mut sequencer = at(10);
        assert_eq!(
            sequencer.live(Some(3_000), true, false),
            Live::CatchUpFirst { until: 2_999 }
        );
        sequencer.catch_up(Some(2_999));
        let verdict = sequencer.page(page(&[Some(2_001), Some(2_002)], Some(true), true));
        assert_eq!(
            verdict.gap,
            Some(HistoryGap {
                from: 11,
                to: 2_000,
                form: GapForm::Page
            })
        );
    }

    #[test]
    fn a_refused_cursor_is_a_hole_up_to_the_latest_event() {
        let sequencer = at(4);
        assert_eq!(
            sequencer.history_refused(5_004),
            Some(HistoryGap {
                from: 5,
                to: 5_004,
                form: GapForm::Refused
            })
        );
        // Nothing after the cursor: nothing missing, an ordinary failure.
        assert_eq!(sequencer.history_refused(4), None);
        // Met by a live jump's catch-up: the hole ends before the live event.
        let mut sequencer = at(4);
        sequencer.catch_up(Some(6_999));
        assert_eq!(
            sequencer.history_refused(7_020).map(|gap| gap.to),
            Some(6_999)
        );
    }

    #[test]
    fn an_edge_inside_a_resynced_hole_is_skipped_not_quarantined() {
        let mut sequencer = at(4);
        sequencer.resynced(&HistoryGap {
            from: 5,
            to: 5_004,
            form: GapForm::Refused,
        });
        // Seen live before the resync's reads: its effect is in what the resync read.
        assert_eq!(sequencer.live(Some(5_000), true, false), Live::BelowCursor);
        assert_eq!(sequencer.live(Some(5_000), true, true), Live::Reassert);
        assert_eq!(sequencer.live(Some(5_005), true, false), Live::Apply);
        // Past the hole, a new event at an old position is a broken sequence again.
        assert_eq!(
            sequencer.live(Some(5_005), true, false),
            Live::OutOfSequence { cursor: 5_005 }
        );
    }

    #[test]
    fn an_oldest_event_past_the_cursor_is_a_hole_before_any_replay() {
        let sequencer = at(4);
        assert_eq!(
            sequencer.latest(reading(5_004, Some(4_005))),
            Latest::Gap(HistoryGap {
                from: 5,
                to: 4_004,
                form: GapForm::Oldest
            })
        );
        assert_eq!(
            sequencer.latest(reading(5_004, Some(5))),
            Latest::CatchUp { until: 5_004 }
        );
        // Behind the cursor is fatal before anything else.
        assert!(matches!(
            sequencer.latest(reading(3, Some(1))),
            Latest::Ahead { .. }
        ));
    }

    proptest::proptest! {
        /// For any page layout without holes — pages of any size, overlapping what was read
        /// before or starting at the cursor itself, with events that carry no EventSeqId, with
        /// or without tokens — no gap is reported.
        #[test]
        fn no_gap_is_reported_for_pages_without_holes(
            cursor in 0i64..1_000,
            pages in proptest::collection::vec(
                (0i64..4, 1usize..20, proptest::collection::vec(proptest::bool::ANY, 0..3), proptest::option::of(proptest::bool::ANY)),
                1..20,
            ),
        ) {
            let mut sequencer = at(cursor);
            sequencer.catch_up(None);
            let mut reached = cursor;
            for (overlap, len, unsequenced, has_more) in pages {
                let first = (reached + 1 - overlap).max(1);
                let mut seqs: Vec<Option<i64>> = unsequenced.iter().map(|_| None).collect();
                seqs.extend((first..first + len as i64).map(Some));
                let verdict = sequencer.page(Page { seqs: &seqs, has_more, has_token: true });
                proptest::prop_assert_eq!(verdict.gap, None);
                reached = reached.max(first + len as i64 - 1);
                sequencer.committed(Some(reached));
            }
        }
    }

    #[test]
    fn oversized_pages_shrink_to_a_quarter_down_to_one_until_live() {
        let mut sequencer = Sequencer::new(100);
        assert_eq!(
            sequencer.page_too_large(),
            Shrink {
                page_size: 25,
                single_event: false
            }
        );
        // A new session keeps the smaller pages.
        sequencer.start(3);
        assert_eq!(sequencer.page_size(), 25);
        for _ in 0..3 {
            sequencer.page_too_large();
        }
        assert_eq!(sequencer.page_size(), 1);
        assert!(sequencer.page_too_large().single_event);
        sequencer.went_live();
        assert_eq!(sequencer.page_size(), 100);
    }

    /// A model of the server, the store and the pump's loops, driving the sequencer through a
    /// generated interleaving of server activity, live delivery faults, on-connect pushes,
    /// broken sequences, reconnects, polls and oversized pages.
    mod model {
        use std::collections::{HashSet, VecDeque};

        use proptest::prelude::*;

        use super::super::*;

        /// What happens to one emitted event on the live path.
        #[derive(Debug, Clone, Copy)]
        enum Fate {
            Delivered,
            Suppressed,
            Duplicated,
        }

        #[derive(Debug, Clone)]
        enum Op {
            /// The server logs events; the live path delivers each by its fate.
            Emit(Vec<Fate>),
            /// A new event at an old position (`back` below the horizon) arrives live: a state
            /// (re-asserted) or an edge (a broken sequence).
            Regression { back: u8, state: bool },
            /// An event the server already sent arrives again live, with its EventSeqId.
            Repeat(u8),
            /// A state event of history pushed without its EventSeqId (any position).
            Push(u8),
            /// The pump drains up to this many callbacks as one batch.
            Deliver(u8),
            /// The connection ends: queued callbacks are lost; a new session starts.
            Reconnect,
            /// The periodic `GetLatestEventSeqId`.
            Poll,
            /// The next replay page exceeds the message limit (the connection ends).
            Oversize,
            /// The server's page size limit for the next pages.
            ServerLimit(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            let fate = prop_oneof![
                6 => Just(Fate::Delivered),
                2 => Just(Fate::Suppressed),
                2 => Just(Fate::Duplicated),
            ];
            prop_oneof![
                6 => prop::collection::vec(fate, 1..6).prop_map(Op::Emit),
                1 => (any::<u8>(), any::<bool>())
                    .prop_map(|(back, state)| Op::Regression { back, state }),
                1 => any::<u8>().prop_map(Op::Repeat),
                1 => any::<u8>().prop_map(Op::Push),
                5 => (1u8..8).prop_map(Op::Deliver),
                1 => Just(Op::Reconnect),
                1 => Just(Op::Poll),
                1 => Just(Op::Oversize),
                1 => (1u8..6).prop_map(Op::ServerLimit),
            ]
        }

        /// Event `n` of history has key `e{n}`; every third one describes a state.
        fn history_is_state(seq: i64) -> bool {
            seq % 3 == 0
        }

        /// A callback: its dedupe key, EventSeqId (`None`: a push without one), kind, and
        /// whether it is a new event at an old position.
        #[derive(Debug, Clone)]
        struct Callback {
            key: String,
            seq: Option<i64>,
            state: bool,
            regression: bool,
        }

        /// A record as the pump hands it to the store.
        struct Record {
            key: String,
            seq: Option<i64>,
            quarantined: bool,
        }

        #[derive(Default)]
        struct World {
            latest: i64,
            server_limit: usize,
            queue: VecDeque<Callback>,
            /// The highest EventSeqId the pump has applied or will before the next callback.
            horizon: i64,
            regressions: u64,
            oversize: bool,
            // The store.
            cursor: Option<i64>,
            keys: HashSet<String>,
            /// History events applied (by any path), in order.
            applied: Vec<i64>,
            /// EventSeqIds applied in sequence, in order.
            sequenced: Vec<i64>,
            quarantined: u64,
            reasserted: u64,
            // What the pump was handed.
            edge_regressions: u64,
            state_regressions: u64,
        }

        /// Why a session ended early.
        enum End {
            Disconnected,
        }

        impl World {
            fn commit(&mut self, sequencer: &mut Sequencer, records: Vec<Record>) {
                for record in records {
                    if let (Some(seq), Some(cursor)) = (record.seq, self.cursor)
                        && seq <= cursor
                    {
                        continue;
                    }
                    if let Some(seq) = record.seq {
                        self.cursor = Some(self.cursor.map_or(seq, |c| c.max(seq)));
                    }
                    if !self.keys.insert(record.key.clone()) {
                        continue;
                    }
                    if record.quarantined {
                        self.quarantined += 1;
                    } else if let Some(n) = record.key.strip_prefix('e') {
                        self.applied.push(n.parse().expect("history key"));
                        self.sequenced.extend(record.seq);
                    } else {
                        self.reasserted += 1;
                    }
                }
                sequencer.committed(self.cursor);
            }

            fn page(&mut self, request: Request, sequencer: &Sequencer) -> Result<Vec<i64>, End> {
                if std::mem::take(&mut self.oversize) {
                    return Err(End::Disconnected);
                }
                let limit = (sequencer.page_size() as usize).min(self.server_limit.max(1));
                let first = request.after + 1;
                Ok((first..=self.latest).take(limit).collect())
            }

            fn catch_up(
                &mut self,
                sequencer: &mut Sequencer,
                until: Option<i64>,
            ) -> Result<(), End> {
                let mut request = sequencer.catch_up(until);
                loop {
                    let seqs = match self.page(request, sequencer) {
                        Ok(seqs) => seqs,
                        Err(end) => {
                            sequencer.page_too_large();
                            return Err(end);
                        }
                    };
                    let wrapped: Vec<Option<i64>> = seqs.iter().copied().map(Some).collect();
                    let has_more = seqs.last().is_some_and(|last| *last < self.latest);
                    let verdict = sequencer.page(Page {
                        seqs: &wrapped,
                        has_more: Some(has_more),
                        has_token: has_more,
                    });
                    assert_eq!(verdict.gap, None, "the model's server keeps everything");
                    let records = seqs
                        .iter()
                        .map(|seq| Record {
                            key: format!("e{seq}"),
                            seq: Some(*seq),
                            quarantined: false,
                        })
                        .collect();
                    self.commit(sequencer, records);
                    match verdict.next {
                        Some(next) => request = next,
                        None => return Ok(()),
                    }
                }
            }

            /// A new session: read the cursor, replay, subscribe, replay again, live.
            fn session(&mut self, sequencer: &mut Sequencer) {
                loop {
                    self.queue.clear();
                    sequencer.start(self.cursor.unwrap_or(0));
                    assert!(!matches!(
                        sequencer.latest(LatestReading {
                            latest: self.latest,
                            oldest: Some(1),
                        }),
                        Latest::Ahead { .. }
                    ));
                    if self.catch_up(sequencer, None).is_ok()
                        && self.catch_up(sequencer, None).is_ok()
                    {
                        sequencer.went_live();
                        self.horizon = self.latest;
                        return;
                    }
                }
            }

            fn deliver(&mut self, sequencer: &mut Sequencer, max: usize) -> Result<(), End> {
                let batch: Vec<Callback> = (0..max).map_while(|_| self.queue.pop_front()).collect();
                let mut pending = Vec::new();
                for callback in batch {
                    let record = loop {
                        match sequencer.live(callback.seq, true, callback.state) {
                            Live::Apply => {
                                break Record {
                                    key: callback.key.clone(),
                                    seq: callback.seq,
                                    quarantined: false,
                                };
                            }
                            Live::CatchUpFirst { until } => {
                                self.commit(sequencer, std::mem::take(&mut pending));
                                self.catch_up(sequencer, Some(until))?;
                            }
                            Live::Reassert => {
                                self.state_regressions += u64::from(callback.regression);
                                break Record {
                                    key: callback.key.clone(),
                                    seq: None,
                                    quarantined: false,
                                };
                            }
                            Live::OutOfSequence { .. } => {
                                self.edge_regressions += u64::from(callback.regression);
                                break Record {
                                    key: callback.key.clone(),
                                    seq: None,
                                    quarantined: true,
                                };
                            }
                            Live::BelowCursor | Live::Unsequenced => {
                                unreachable!("keyed, and only states come unsequenced")
                            }
                        }
                    };
                    pending.push(record);
                }
                self.commit(sequencer, pending);
                Ok(())
            }

            fn poll(&mut self, sequencer: &mut Sequencer) -> Result<(), End> {
                let reading = LatestReading {
                    latest: self.latest,
                    oldest: Some(1),
                };
                match sequencer.latest(reading) {
                    Latest::CatchUp { until } => self.catch_up(sequencer, Some(until)),
                    Latest::UpToDate => Ok(()),
                    Latest::Ahead { .. } => panic!("the model's server never restarts"),
                    Latest::Gap(gap) => panic!("the model's server keeps everything: {gap:?}"),
                }
            }

            fn enqueue(&mut self, callback: Callback) {
                if let (Some(seq), false) = (callback.seq, callback.regression) {
                    self.horizon = self.horizon.max(seq);
                }
                self.queue.push_back(callback);
            }

            fn history(seq: i64) -> Callback {
                Callback {
                    key: format!("e{seq}"),
                    seq: Some(seq),
                    state: history_is_state(seq),
                    regression: false,
                }
            }

            fn apply(&mut self, sequencer: &mut Sequencer, op: Op) {
                let below_horizon = |back: u8, horizon: i64| (horizon - i64::from(back)).max(1);
                let ended = match op {
                    Op::Emit(fates) => {
                        for fate in fates {
                            self.latest += 1;
                            let callback = World::history(self.latest);
                            match fate {
                                Fate::Suppressed => {}
                                Fate::Delivered => self.enqueue(callback),
                                Fate::Duplicated => {
                                    self.enqueue(callback.clone());
                                    self.enqueue(callback);
                                }
                            }
                        }
                        Ok(())
                    }
                    Op::Regression { back, state } if self.horizon > 0 => {
                        self.regressions += 1;
                        self.enqueue(Callback {
                            key: format!("r{}", self.regressions),
                            seq: Some(below_horizon(back, self.horizon)),
                            state,
                            regression: true,
                        });
                        Ok(())
                    }
                    Op::Repeat(back) if self.horizon > 0 => {
                        self.enqueue(World::history(below_horizon(back, self.horizon)));
                        Ok(())
                    }
                    Op::Push(at) if self.latest > 0 => {
                        let seq = (i64::from(at) % self.latest + 1) / 3 * 3;
                        if seq > 0 {
                            self.enqueue(Callback {
                                seq: None,
                                ..World::history(seq)
                            });
                        }
                        Ok(())
                    }
                    Op::Regression { .. } | Op::Repeat(_) | Op::Push(_) => Ok(()),
                    Op::Deliver(max) => self.deliver(sequencer, usize::from(max)),
                    Op::Reconnect => Err(End::Disconnected),
                    Op::Poll => self.poll(sequencer),
                    Op::Oversize => {
                        self.oversize = true;
                        Ok(())
                    }
                    Op::ServerLimit(limit) => {
                        self.server_limit = usize::from(limit);
                        Ok(())
                    }
                };
                if let Err(End::Disconnected) = ended {
                    self.session(sequencer);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn every_event_is_applied_once_and_only_edges_below_the_cursor_are_quarantined(
                start in 0i64..5,
                ops in prop::collection::vec(op(), 0..80),
            ) {
                let mut world = World { latest: start, server_limit: 3, ..World::default() };
                let mut sequencer = Sequencer::new(4);
                world.session(&mut sequencer);
                for op in ops {
                    world.apply(&mut sequencer, op);
                }
                // Quiesce: whatever is queued, then a poll and a reconnect (both catch up).
                world.apply(&mut sequencer, Op::Deliver(u8::MAX));
                world.apply(&mut sequencer, Op::Poll);
                world.apply(&mut sequencer, Op::Reconnect);
                let mut applied = world.applied.clone();
                applied.sort_unstable();
                let expected: Vec<i64> = (1..=world.latest).collect();
                prop_assert_eq!(applied, expected, "every event once");
                prop_assert!(world.sequenced.windows(2).all(|w| w[0] < w[1]), "in order");
                prop_assert_eq!(world.cursor.unwrap_or(0), world.latest);
                prop_assert_eq!(world.quarantined, world.edge_regressions);
                prop_assert_eq!(world.reasserted, world.state_regressions);
                prop_assert_eq!(sequencer.page_size(), 4);
            }
        }
    }
}
