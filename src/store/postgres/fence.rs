//! Fencing: which lease epoch this process's writes are checked against, and the check itself.
//!
//! ```text
//! unfenced ──lease granted──▶ held(epoch) ──epoch moved / released / lost──▶ fenced off
//!     └──────────────fence_off (a standby)───────────────────────────────────────▲
//! ```
//!
//! A store nobody asked for a lease (a test, a tool) writes unfenced; the daemon fences it off
//! before anything else, so it writes only while it holds the lease.

use std::sync::{Mutex, PoisonError};

use sqlx::Postgres as Pg;
use sqlx::Transaction;
use tokio::sync::Notify;

use crate::store::StoreError;

/// Where this process's writes stand.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No lease involved: writes are not checked.
    Unfenced,
    /// Writes are checked against this epoch of this group.
    Held { group: String, epoch: i64 },
    /// Writes are refused: the lease is someone else's, or not taken.
    Off { group: String, epoch: i64 },
}

/// The fencing state shared by every write of one store.
#[derive(Debug)]
pub(in crate::store) struct Fence {
    state: Mutex<State>,
    /// Told when a write found the epoch moved.
    refused: Notify,
}

impl Default for Fence {
    fn default() -> Self {
        Fence {
            state: Mutex::new(State::Unfenced),
            refused: Notify::new(),
        }
    }
}

impl Fence {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes are checked against `epoch` of `group` from now on.
    pub(super) fn hold(&self, group: &str, epoch: i64) {
        *self.state() = State::Held {
            group: group.to_owned(),
            epoch,
        };
    }

    /// Writes are refused from now on (the epoch held, if any, is kept for the error).
    pub(in crate::store) fn lose(&self, group: &str) {
        let mut state = self.state();
        let epoch = match &*state {
            State::Held { epoch, .. } | State::Off { epoch, .. } => *epoch,
            State::Unfenced => 0,
        };
        *state = State::Off {
            group: group.to_owned(),
            epoch,
        };
    }

    /// Resolves when a write was refused because the epoch moved.
    pub(in crate::store) async fn refused(&self) {
        self.refused.notified().await;
    }

    /// The check at the start of every write transaction: the lease row at our epoch, locked
    /// `FOR SHARE` until the transaction ends (a takeover's update of that row waits for it).
    /// Not there: the lease moved on; the transaction is rolled back, writes are refused from
    /// now on, and the lease keeper is told.
    pub(super) async fn check(&self, tx: &mut Transaction<'static, Pg>) -> Result<(), StoreError> {
        let (group, epoch) = match self.state().clone() {
            State::Unfenced => return Ok(()),
            State::Off { group, epoch } => return Err(StoreError::LeadershipLost { group, epoch }),
            State::Held { group, epoch } => (group, epoch),
        };
        let held: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM lease WHERE grp = $1 AND epoch = $2 FOR SHARE")
                .bind(&group)
                .bind(epoch)
                .fetch_optional(&mut **tx)
                .await?;
        if held.is_some() {
            return Ok(());
        }
        self.lose(&group);
        self.refused.notify_one();
        Err(StoreError::LeadershipLost { group, epoch })
    }
}
