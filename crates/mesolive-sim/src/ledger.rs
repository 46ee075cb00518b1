//! The ledger of effects: every order sent and every paper fill applied, by idempotency key.
//! It is the ground truth for the daemon's "nothing twice" invariant: an effect is a *second*
//! effect when its intent — the same key, or the same leg group of the same execution plan
//! under another key — already had one.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

/// What an effect was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    /// `SendOrder` placed an order.
    Order,
    /// `ApplyPaperFills` filled a leg group.
    PaperFill,
}

/// One effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effect {
    /// Order or paper fill.
    pub kind: EffectKind,
    /// Plan executed.
    pub exec_plan_id: i64,
    /// Leg group executed.
    pub leg_group_id: i64,
    /// Orders created (empty for paper fills).
    pub order_ids: Vec<i64>,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// Whether it repeated an earlier effect's intent.
    pub second: bool,
}

/// The effects of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyEffects {
    /// The idempotency key.
    pub key: String,
    /// Its effects, in order.
    pub effects: Vec<Effect>,
}

/// `GET /ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerReport {
    /// Every key with at least one effect, in key order.
    pub keys: Vec<KeyEffects>,
    /// Effects in total.
    pub total_effects: u64,
    /// Effects that repeated an intent (must stay 0).
    pub second_effects: u64,
}

/// Effects recorded so far.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    by_key: BTreeMap<String, Vec<Effect>>,
    executed: HashSet<(i64, i64)>,
    total: u64,
    second: u64,
}

impl Ledger {
    /// Records an effect of `key` on leg group `leg_group_id` of plan `exec_plan_id`.
    pub(crate) fn record(
        &mut self,
        key: &str,
        kind: EffectKind,
        exec_plan_id: i64,
        leg_group_id: i64,
        order_ids: Vec<i64>,
        at_ms: u64,
    ) {
        let effects = self.by_key.entry(key.to_owned()).or_default();
        let first_for_intent = self.executed.insert((exec_plan_id, leg_group_id));
        let second = !effects.is_empty() || !first_for_intent;
        effects.push(Effect {
            kind,
            exec_plan_id,
            leg_group_id,
            order_ids,
            at_ms,
            second,
        });
        self.total += 1;
        self.second += u64::from(second);
    }

    pub(crate) fn report(&self) -> LedgerReport {
        LedgerReport {
            keys: self
                .by_key
                .iter()
                .map(|(key, effects)| KeyEffects {
                    key: key.clone(),
                    effects: effects.clone(),
                })
                .collect(),
            total_effects: self.total,
            second_effects: self.second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leg_group_executed_under_two_keys_is_a_second_effect() {
        let mut ledger = Ledger::default();
        ledger.record("a", EffectKind::PaperFill, 1, 1, vec![], 0);
        ledger.record("b", EffectKind::PaperFill, 1, 2, vec![], 0);
        assert_eq!(ledger.report().second_effects, 0);
        ledger.record("c", EffectKind::Order, 1, 1, vec![9], 0);
        let report = ledger.report();
        assert_eq!(report.total_effects, 3);
        assert_eq!(report.second_effects, 1);
        assert!(report.keys[2].effects[0].second);
    }
}
