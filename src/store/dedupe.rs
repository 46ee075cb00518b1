//! The dedupe set's in-memory index: which event keys `processed_events` holds.
//!
//! The table is append-ordered (cheap to write: a commit touches a few pages at its right
//! edge), so it cannot answer "is this key there?" without a scan. This index answers it in
//! memory. It mirrors the table exactly because only the writer changes either, under the
//! writer lock (on a shared PostgreSQL store, only the lease holder writes, and the index is
//! read again whenever this process acquires the lease): it is loaded from the table on first use, extended after a commit, shrunk after
//! a prune, and dropped (to be loaded again) after any failed write, when what reached the
//! disk is in doubt.
//!
//! Keys are kept as 128-bit fingerprints (two 64-bit SipHash-1-3 values under different secret
//! per-process keys): 16 bytes per key instead of a string. Two distinct keys share a
//! fingerprint with probability about n²/2¹²⁹, under 10⁻²⁴ for a hundred million keys, and
//! with secret keys no input can be crafted to collide.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use super::StoreError;

/// A key's identity in the index.
pub(super) type Fingerprint = u128;

/// Fingerprints of every key in `processed_events`, once loaded.
#[derive(Debug, Default)]
pub(super) struct DedupeIndex {
    /// `None` until loaded, and again after a failed write.
    recorded: Option<HashSet<Fingerprint>>,
    fingerprinter: Fingerprinter,
}

/// Where the index is read from: a backend's connection to its `processed_events` table.
pub(super) trait KeySource {
    /// The keys of at most `limit` rows with an id above `after`, in id order, and the last id.
    fn key_chunk(
        &mut self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<String>, Option<i64>), StoreError>> + Send;
}

/// Capacity the index keeps however few keys it holds: below it, shrinking saves too little to
/// be worth the rehash.
const MIN_KEPT_CAPACITY: usize = 4_096;

/// A loaded index, for looking keys up.
pub(super) struct Loaded<'a> {
    recorded: &'a HashSet<Fingerprint>,
    fingerprinter: &'a Fingerprinter,
}

impl Loaded<'_> {
    /// The fingerprint of `key`.
    pub(super) fn fingerprint(&self, key: &str) -> Fingerprint {
        self.fingerprinter.of(key)
    }

    /// Whether the table holds the key with this fingerprint.
    pub(super) fn contains(&self, fingerprint: Fingerprint) -> bool {
        self.recorded.contains(&fingerprint)
    }
}

/// The two hash functions of a fingerprint, fixed for the life of the process.
#[derive(Debug, Default)]
struct Fingerprinter(RandomState, RandomState);

impl Fingerprinter {
    fn of(&self, key: &str) -> Fingerprint {
        (Fingerprint::from(self.0.hash_one(key)) << 64) | Fingerprint::from(self.1.hash_one(key))
    }
}

impl DedupeIndex {
    /// The index, read from the table first if it is not loaded.
    pub(super) async fn load(
        &mut self,
        source: &mut impl KeySource,
    ) -> Result<Loaded<'_>, StoreError> {
        let recorded = match &mut self.recorded {
            Some(recorded) => recorded,
            unloaded @ None => unloaded.insert(read_all(source, &self.fingerprinter).await?),
        };
        Ok(Loaded {
            recorded,
            fingerprinter: &self.fingerprinter,
        })
    }

    /// Forgets what it holds, to be read again at the next use: another process may have
    /// written the table since (a shared store whose lease this process just acquired).
    pub(super) fn invalidate(&mut self) {
        self.recorded = None;
    }

    /// Keeps the index in step with a write to the table: `update` it with what a committed
    /// write did, or drop it when the write failed (what reached the disk is then in doubt).
    pub(super) fn follow<T, U>(
        &mut self,
        written: Result<T, StoreError>,
        update: impl FnOnce(&mut Self, T) -> U,
    ) -> Result<U, StoreError> {
        match written {
            Ok(done) => Ok(update(self, done)),
            Err(err) => {
                self.recorded = None;
                Err(err)
            }
        }
    }

    /// Keys of a committed insert.
    pub(super) fn record(&mut self, fingerprints: impl IntoIterator<Item = Fingerprint>) {
        if let Some(recorded) = &mut self.recorded {
            recorded.extend(fingerprints);
        }
    }

    /// Keys of a committed delete. An index left at a quarter of its capacity gives the memory
    /// back, so a burst does not hold its peak until the next restart.
    pub(super) fn forget<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) {
        if let Some(recorded) = &mut self.recorded {
            for key in keys {
                recorded.remove(&self.fingerprinter.of(key));
            }
            if recorded.capacity() > 4 * recorded.len().max(MIN_KEPT_CAPACITY) {
                recorded.shrink_to(2 * recorded.len());
            }
        }
    }
}

/// Keys read per statement while loading.
const LOAD_CHUNK: u32 = 50_000;

/// The fingerprints of every key in the table, read [`LOAD_CHUNK`] keys per statement in row
/// order. One array per chunk, not a row per key: rows cross from SQLite's worker thread one
/// channel message each (loading 100,000 keys took 170 ms that way, 35 ms so).
async fn read_all(
    source: &mut impl KeySource,
    fingerprinter: &Fingerprinter,
) -> Result<HashSet<Fingerprint>, StoreError> {
    let mut recorded = HashSet::new();
    let mut after = 0;
    loop {
        let (keys, last) = source.key_chunk(after, LOAD_CHUNK).await?;
        recorded.extend(keys.iter().map(|key| fingerprinter.of(key)));
        match last {
            Some(last) if keys.len() == LOAD_CHUNK as usize => after = last,
            _ => break,
        }
    }
    tracing::debug!(keys = recorded.len(), "dedupe index loaded");
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_stable_within_the_index_and_tells_keys_apart() {
        let fingerprinter = Fingerprinter::default();
        let a = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let b = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
        assert_eq!(fingerprinter.of(a), fingerprinter.of(a));
        assert_ne!(fingerprinter.of(a), fingerprinter.of(b));
        assert_ne!(fingerprinter.of(""), fingerprinter.of(" "));
    }

    #[test]
    fn forgetting_most_keys_gives_the_memory_back() {
        let mut index = DedupeIndex {
            recorded: Some(HashSet::new()),
            ..DedupeIndex::default()
        };
        let keys: Vec<String> = (0..100_000).map(|n| format!("key-{n}")).collect();
        index.record(
            keys.iter()
                .map(|key| index.fingerprinter.of(key))
                .collect::<Vec<_>>(),
        );
        let peak = index.recorded.as_ref().map_or(0, HashSet::capacity);
        index.forget(keys[..99_000].iter().map(String::as_str));
        let recorded = index.recorded.as_ref().expect("loaded");
        assert_eq!(recorded.len(), 1_000);
        assert!(
            recorded.capacity() < peak / 10,
            "{} of {peak}",
            recorded.capacity()
        );
        assert!(
            keys[99_000..]
                .iter()
                .all(|key| recorded.contains(&index.fingerprinter.of(key)))
        );
    }

    #[test]
    fn record_and_forget_change_nothing_before_the_index_is_loaded() {
        let mut index = DedupeIndex::default();
        let fingerprint = index.fingerprinter.of("k");
        index.record([fingerprint]);
        index.forget(["k"]);
        assert!(index.recorded.is_none());
    }
}
