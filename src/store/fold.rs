//! One row per key before a set-based upsert: a burst of updates of a few rows (PnL changes of
//! the open positions, their legs) becomes one write per row, not one per event.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// `rows` folded to one row per key, in the order each key first appears: `merge(folded,
/// later)` makes `folded` what applying `later` after it would leave.
pub(super) fn fold<T: Clone, K: Eq + Hash>(
    rows: &[&T],
    key: impl Fn(&T) -> K,
    merge: impl Fn(&mut T, &T),
) -> Vec<T> {
    let mut at: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    let mut folded: Vec<T> = Vec::with_capacity(rows.len());
    for row in rows {
        match at.entry(key(row)) {
            Entry::Occupied(first) => merge(&mut folded[*first.get()], row),
            Entry::Vacant(first) => {
                first.insert(folded.len());
                folded.push((*row).clone());
            }
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_keeps_one_row_per_key_in_first_order_merged_in_order() {
        let rows = [(1, 'a'), (2, 'b'), (1, 'c'), (1, 'd'), (3, 'e'), (2, 'f')];
        let refs: Vec<&(i32, char)> = rows.iter().collect();
        let folded = fold(&refs, |(key, _)| *key, |folded, later| folded.1 = later.1);
        assert_eq!(folded, vec![(1, 'd'), (2, 'f'), (3, 'e')]);
    }
}
