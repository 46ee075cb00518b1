//! The leadership lease of a shared (PostgreSQL) store: one row per `ha.group` with its holder,
//! a fencing epoch that grows with every acquisition, and an expiry computed with the database
//! server's clock (never a daemon's). Acquiring it fences the store: from then on every write
//! transaction of this process checks, in the same transaction, that the lease is still at the
//! granted epoch, and fails with [`StoreError::LeadershipLost`] otherwise — an old leader that
//! wakes up late cannot commit anything.

use std::time::Duration;

use serde::Serialize;

use super::{Backend, Store, StoreError, Timestamp, postgres};

/// What a daemon asks for when it tries to lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The `ha.group`: daemons that share one group share one leader.
    pub group: String,
    /// Who asks (host and process), shown by `state` and in the other daemon's logs.
    pub holder: String,
    /// How long the lease lasts after each acquisition or renewal (`ha.lease_ttl`).
    pub ttl: Duration,
}

/// A lease held: the fencing token every write of this process is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The group.
    pub group: String,
    /// This holder.
    pub holder: String,
    /// The fencing token: higher than any earlier holder's.
    pub epoch: i64,
    /// When it expires unless renewed (the database server's clock).
    pub expires_at: Timestamp,
}

/// The lease of a group as stored, for `state` and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LeaseRecord {
    /// The group.
    #[sqlx(rename = "grp")]
    pub group: String,
    /// Who holds it; `None` once released.
    pub holder: Option<String>,
    /// The epoch of the latest acquisition.
    pub epoch: i64,
    /// When it was last acquired.
    pub acquired_at: Timestamp,
    /// When it was last renewed.
    pub renewed_at: Timestamp,
    /// When it expires (the database server's clock).
    pub expires_at: Timestamp,
    /// The database server's clock when this was read: whether it has expired is
    /// `expires_at <= read_at`.
    pub read_at: Timestamp,
}

impl LeaseRecord {
    /// Whether someone holds it now (by the server's clock as read).
    pub fn is_held(&self) -> bool {
        self.holder.is_some() && self.expires_at > self.read_at
    }
}

impl Store {
    /// Try to take the lease of `request.group`: it is granted when nobody holds it or its
    /// expiry has passed (by the server's clock), with the epoch one higher than before.
    /// `None` while another holder's lease runs. Granted, the store is fenced by the new epoch
    /// and its in-memory dedupe index is read again (the previous holder wrote the table).
    pub async fn acquire_lease(
        &self,
        request: &LeaseRequest,
    ) -> Result<Option<LeaseGrant>, StoreError> {
        postgres::lease::acquire(self.shared()?, request).await
    }

    /// Extend the lease by its ttl from now (the server's clock). `None`: it is no longer
    /// ours (its epoch moved on); the store is then fenced off and refuses every write.
    pub async fn renew_lease(
        &self,
        grant: &LeaseGrant,
        ttl: Duration,
    ) -> Result<Option<Timestamp>, StoreError> {
        postgres::lease::renew(self.shared()?, grant, ttl).await
    }

    /// Queues the `standby` notification of `request.holder`: it stands by at start (`lost`
    /// is `None`) or after losing its leadership (`lost` says how). `false` when no sink
    /// registered in the database wants it (yet: try again later). A standby's one write: in a
    /// lease transaction, not fenced, ordered with the leader's writes by the lease row.
    pub async fn tell_standby(
        &self,
        request: &LeaseRequest,
        lost: Option<&str>,
    ) -> Result<bool, StoreError> {
        postgres::lease::tell_standby(self.shared()?, request, lost).await
    }

    /// Give the lease up (a clean stop): another daemon may take it at once. The store refuses
    /// writes from then on.
    pub async fn release_lease(&self, grant: &LeaseGrant) -> Result<(), StoreError> {
        postgres::lease::release(self.shared()?, grant).await
    }

    /// Refuse every write until a lease is granted: a standby must not write, and a daemon
    /// that lost its lease must not write again.
    pub fn fence_off(&self, group: &str) {
        if let Backend::Postgres(db) = &self.backend {
            db.fence().lose(group);
        }
    }

    /// Resolves when a write of this process was refused because the lease moved on (the
    /// lease keeper then steps down at once instead of at its next renewal). May resolve for a
    /// refusal of an earlier lease: check with a renewal.
    pub async fn fenced_write_refused(&self) {
        match &self.backend {
            Backend::Postgres(db) => db.fence().refused().await,
            Backend::Sqlite(_) => std::future::pending().await,
        }
    }

    /// Every group's lease (empty on SQLite, which has none).
    pub async fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        match &self.backend {
            Backend::Postgres(db) => postgres::lease::all(db).await,
            Backend::Sqlite(_) => Ok(Vec::new()),
        }
    }

    fn shared(&self) -> Result<&postgres::Postgres, StoreError> {
        match &self.backend {
            Backend::Postgres(db) => Ok(db),
            Backend::Sqlite(db) => Err(StoreError::LeaseUnsupported {
                database: db.path.display().to_string(),
            }),
        }
    }
}
