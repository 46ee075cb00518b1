//! Signals before ticks: once the event pump has committed a signal, the workflow runner's turn
//! comes before the pump's next batch. The runner's reads and writes on the way from the signal
//! to its first call (open the workflow, record the intent) then find the store's one writer
//! free instead of behind a batch transaction of price and PnL updates, which is most of the
//! reaction latency under load. Bounded: the pump holds its next batch at most
//! [`PRECEDENCE_LIMIT`] from the hand-over, however long the runner takes; the events that
//! arrive meanwhile go into that batch.
//!
//! The turn is a counted claim: the pump hands it over ([`Precedence::hand_over`]), the runner
//! takes it for its next pass ([`Precedence::take`]) and gives a clone to each workflow it
//! starts in that pass; the turn ends when the last clone is dropped.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The longest the pump holds a batch for the runner, counted from the hand-over.
pub const PRECEDENCE_LIMIT: Duration = Duration::from_millis(20);

/// The runner's turn before the pump's next batch (one per daemon run, in `Ctx`).
#[derive(Debug)]
pub struct Precedence {
    turn: Mutex<Turn>,
    ended: Notify,
    limit: Duration,
}

#[derive(Debug, Default)]
struct Turn {
    /// Claims alive, the one handed over and not taken yet included.
    holders: usize,
    /// Handed over and not taken by the runner yet.
    pending: bool,
    /// When the turn began (the first hand-over since no claim was held).
    since: Option<Instant>,
}

/// A share of the runner's turn: the pump waits (within the limit) until every one is dropped.
#[derive(Debug)]
pub struct Claim(Arc<Precedence>);

impl Precedence {
    /// No turn held; the pump waits at most `limit` per turn.
    pub fn new(limit: Duration) -> Arc<Precedence> {
        Arc::new(Precedence {
            turn: Mutex::default(),
            ended: Notify::new(),
            limit,
        })
    }

    /// The pump committed a signal: the runner's next pass goes before the next batch. A turn
    /// already handed over and not taken yet is not handed over twice.
    pub fn hand_over(&self) {
        let mut turn = self.turn();
        if !turn.pending {
            turn.pending = true;
            turn.holders += 1;
        }
        turn.since.get_or_insert_with(Instant::now);
    }

    /// The runner starting a pass: the turn handed over, if there is one.
    pub fn take(self: &Arc<Self>) -> Option<Claim> {
        let mut turn = self.turn();
        if !turn.pending {
            return None;
        }
        turn.pending = false;
        Some(Claim(self.clone()))
    }

    /// The pump before a batch: returns once no claim is held, or once the turn is as old as
    /// the limit (at once when neither the runner holds a turn nor one waits).
    pub async fn wait_turn(&self) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let deadline = match *self.turn() {
                Turn {
                    holders: 1..,
                    since: Some(since),
                    ..
                } => since + self.limit,
                _ => return,
            };
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return;
            }
        }
    }

    fn turn(&self) -> MutexGuard<'_, Turn> {
        // The counts stay consistent whatever panicked while holding the lock: each change is
        // one statement.
        self.turn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for Claim {
    fn clone(&self) -> Claim {
        self.0.turn().holders += 1;
        Claim(self.0.clone())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut turn = self.0.turn();
        turn.holders = turn.holders.saturating_sub(1);
        if turn.holders == 0 {
            turn.since = None;
            drop(turn);
            self.0.ended.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(20);

    /// Whether `wait_turn` returns within `within` (paused time: exact).
    async fn returns_within(precedence: &Precedence, within: Duration) -> bool {
        tokio::time::timeout(within, precedence.wait_turn())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_hand_over_the_pump_never_waits() {
        let precedence = Precedence::new(LIMIT);
        assert!(returns_within(&precedence, Duration::ZERO).await);
        assert!(precedence.take().is_none(), "nothing to take");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pump_waits_until_the_runner_and_its_workflows_are_done() {
        let precedence = Precedence::new(LIMIT);
        precedence.hand_over();
        precedence.hand_over();
        let pass = precedence.take().expect("handed over");
        assert!(
            precedence.take().is_none(),
            "one turn, however many signals"
        );
        let workflow = pass.clone();
        drop(pass);
        assert!(!returns_within(&precedence, Duration::from_millis(5)).await);
        let waiting = {
            let precedence = precedence.clone();
            tokio::spawn(async move { precedence.wait_turn().await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!waiting.is_finished());
        drop(workflow);
        // 6 ms into a 20 ms limit: a return within 1 ms is the release.
        tokio::time::timeout(Duration::from_millis(1), waiting)
            .await
            .expect("released at once")
            .expect("no panic");
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_holds_the_pump_at_most_the_limit_then_not_again() {
        let precedence = Precedence::new(LIMIT);
        precedence.hand_over();
        let start = Instant::now();
        precedence.wait_turn().await;
        assert_eq!(start.elapsed(), LIMIT, "not taken: the limit");
        assert!(returns_within(&precedence, Duration::ZERO).await);
        let _pass = precedence.take().expect("still handed over");
        precedence.hand_over();
        assert!(
            returns_within(&precedence, Duration::ZERO).await,
            "a turn that outlived the limit holds nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_turn_begins_once_the_last_one_ended() {
        let precedence = Precedence::new(LIMIT);
        precedence.hand_over();
        drop(precedence.take());
        tokio::time::sleep(LIMIT * 2).await;
        precedence.hand_over();
        let _pass = precedence.take();
        assert!(!returns_within(&precedence, LIMIT / 2).await);
        assert!(returns_within(&precedence, LIMIT).await);
    }
}
