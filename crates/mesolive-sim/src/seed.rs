//! The initial world: two agents, a paper account `PAPER-1` and a live-like account `LIVE-1`,
//! three strategies, and a few open positions (their Created events open the event log). Same
//! seed, same world.

use rust_decimal::Decimal;

use super::domain::{Account, Strategy};
use super::world::{World, timestamp};
use mesolive_api::models::AgentInfo;

/// The paper account.
pub const PAPER_ACCOUNT: &str = "PAPER-1";
/// The live-like broker account.
pub const LIVE_ACCOUNT: &str = "LIVE-1";

impl World {
    /// Fills an empty world; `positions` open positions are spread over the strategies.
    pub(crate) fn seed(&mut self, positions: usize) {
        let now = timestamp();
        self.agents = vec![
            AgentInfo {
                name: Some("Agent-IBKR".into()),
                connector: Some("IBKR".into()),
                connected: Some(true),
                last_snapshot_time: Some(now.clone()),
            },
            AgentInfo {
                name: Some("Agent-Paper".into()),
                connector: Some("MesoLivePaper".into()),
                connected: Some(true),
                last_snapshot_time: Some(now.clone()),
            },
        ];
        let mut nlv = |base: i64| Decimal::from(base + self.rng.i64(0..10_000));
        self.accounts = vec![
            Account {
                id: PAPER_ACCOUNT.into(),
                paper: true,
                broker_type: "Paper",
                net_liquidation: nlv(100_000),
                created_at: now.clone(),
            },
            Account {
                id: LIVE_ACCOUNT.into(),
                paper: false,
                broker_type: "IBKR",
                net_liquidation: nlv(250_000),
                created_at: now,
            },
        ];
        let strategies = [
            (101, "SPX Iron Condor 45DTE", "SPX", vec![PAPER_ACCOUNT]),
            (102, "RUT Iron Condor 30DTE", "RUT", vec![PAPER_ACCOUNT]),
            (
                103,
                "SPX Iron Condor Live",
                "SPX",
                vec![LIVE_ACCOUNT, PAPER_ACCOUNT],
            ),
        ];
        for (id, name, symbol, accounts) in strategies {
            self.strategies.insert(
                id,
                Strategy {
                    id,
                    name: name.into(),
                    symbol: symbol.into(),
                    accounts: accounts.into_iter().map(String::from).collect(),
                },
            );
        }
        self.open_positions(positions);
    }
}

#[cfg(test)]
mod tests {
    use super::super::world::World;
    use tokio::sync::{mpsc, watch};

    fn world(seed: u64) -> World {
        let (live, _) = mpsc::unbounded_channel();
        let (closed, _) = watch::channel(0);
        let mut world = World::new(seed, live, closed);
        world.seed(2);
        world
    }

    #[test]
    fn same_seed_same_world() {
        let (mut a, mut b) = (world(42), world(42));
        assert_eq!(a.positions.len(), 2);
        assert_eq!(a.log.latest(), 10, "4 legs + 1 position, twice");
        let strikes = |w: &World| {
            w.legs
                .values()
                .map(|l| l.contract.strike)
                .collect::<Vec<_>>()
        };
        assert_eq!(strikes(&a), strikes(&b));
        assert_eq!(a.uuid(), b.uuid());
        assert_ne!(
            world(43).accounts[0].net_liquidation,
            a.accounts[0].net_liquidation
        );
    }
}
