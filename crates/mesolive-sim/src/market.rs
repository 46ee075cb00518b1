//! Simulated market data: one seeded random walk per underlying, stepped lazily by wall time, and
//! option prices derived from it with a crude closed form. Each walk has its own generator forked
//! from the seed, so how often data is read never changes ids or events elsewhere.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use super::domain::Contract;
use super::idempotency::fnv1a;
use mesolive_api::models::MesoOptionType;

/// Time between two steps of every walk.
const STEP: Duration = Duration::from_millis(250);
/// Relative size of one step.
const STEP_SIZE: f64 = 0.0008;
/// Implied volatility of every option.
const VOLATILITY: f64 = 0.18;

#[derive(Debug)]
struct Walk {
    rng: fastrand::Rng,
    price: f64,
    steps: u64,
}

/// A two-sided quote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quote {
    pub bid: f64,
    pub ask: f64,
    pub mark: f64,
}

impl Quote {
    /// Scales a quote by a signed quantity (a short leg's bid is the negated ask).
    pub(crate) fn times(self, qty: f64) -> Quote {
        let (bid, ask) = if qty >= 0.0 {
            (self.bid * qty, self.ask * qty)
        } else {
            (self.ask * qty, self.bid * qty)
        };
        Quote {
            bid,
            ask,
            mark: self.mark * qty,
        }
    }

    pub(crate) fn plus(self, other: Quote) -> Quote {
        Quote {
            bid: self.bid + other.bid,
            ask: self.ask + other.ask,
            mark: self.mark + other.mark,
        }
    }

    pub(crate) const ZERO: Quote = Quote {
        bid: 0.0,
        ask: 0.0,
        mark: 0.0,
    };
}

/// Rounds to cents for the wire.
pub(crate) fn money(value: f64) -> Decimal {
    Decimal::from_f64((value * 100.0).round() / 100.0).unwrap_or_default()
}

/// A decimal as f64 for pricing.
pub(crate) fn float(value: Decimal) -> f64 {
    value.to_f64().unwrap_or_default()
}

/// Every walk, keyed by symbol.
#[derive(Debug)]
pub(crate) struct Market {
    seed: u64,
    started: Instant,
    walks: HashMap<String, Walk>,
}

fn base_price(symbol: &str) -> f64 {
    match symbol.to_ascii_uppercase().as_str() {
        "SPX" => 5000.0,
        "RUT" => 2100.0,
        "NDX" => 18000.0,
        _ => 100.0 + (fnv1a(symbol.as_bytes()) % 400) as f64,
    }
}

impl Market {
    pub(crate) fn new(seed: u64) -> Market {
        Market {
            seed,
            started: Instant::now(),
            walks: HashMap::new(),
        }
    }

    /// The underlying's price now.
    pub(crate) fn spot(&mut self, symbol: &str) -> f64 {
        let due = (self.started.elapsed().as_millis() / STEP.as_millis()) as u64;
        let seed = self.seed;
        let walk = self.walks.entry(symbol.to_owned()).or_insert_with(|| {
            let mut rng = fastrand::Rng::with_seed(seed ^ fnv1a(symbol.as_bytes()));
            let price = base_price(symbol) * (1.0 + (rng.f64() - 0.5) * 0.02);
            Walk {
                rng,
                price,
                steps: 0,
            }
        });
        while walk.steps < due {
            walk.price *= 1.0 + (walk.rng.f64() * 2.0 - 1.0) * STEP_SIZE;
            walk.steps += 1;
        }
        walk.price
    }

    /// The underlying as a quote (a one-cent-wide market).
    pub(crate) fn underlying_quote(&mut self, symbol: &str) -> Quote {
        let mark = self.spot(symbol);
        Quote {
            bid: mark - 0.05,
            ask: mark + 0.05,
            mark,
        }
    }

    /// One option's quote and delta now.
    pub(crate) fn option(&mut self, contract: &Contract) -> (Quote, f64) {
        let spot = self.spot(&contract.symbol);
        let strike = float(contract.strike);
        let sd = spot * VOLATILITY * (contract.days.max(1.0) / 365.0).sqrt();
        let call = contract.option_type == MesoOptionType::Call;
        let moneyness = if call { spot - strike } else { strike - spot };
        let d = moneyness / sd;
        let mark = moneyness.max(0.0) + sd * 0.4 * (-0.5 * d * d).exp();
        let half_spread = (mark * 0.01).max(0.05);
        let call_delta = 1.0 / (1.0 + (-1.7 * (spot - strike) / sd).exp());
        let delta = if call { call_delta } else { call_delta - 1.0 };
        (
            Quote {
                bid: (mark - half_spread).max(0.0),
                ask: mark + half_spread,
                mark,
            },
            delta,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(option_type: MesoOptionType, strike: i64) -> Contract {
        Contract {
            symbol: "SPX".into(),
            option_type,
            strike: Decimal::from(strike),
            expiration: "2030-01-01T00:00:00Z".into(),
            days: 45.0,
        }
    }

    #[test]
    fn same_seed_same_prices() {
        let (mut a, mut b) = (Market::new(7), Market::new(7));
        assert_eq!(a.spot("SPX"), b.spot("SPX"));
        assert_ne!(a.spot("SPX"), Market::new(8).spot("SPX"));
    }

    #[test]
    fn options_are_priced_sensibly() {
        let mut market = Market::new(1);
        let spot = market.spot("SPX");
        let (itm_call, delta) =
            market.option(&contract(MesoOptionType::Call, (spot - 500.0) as i64));
        assert!(itm_call.mark > 490.0 && delta > 0.9);
        let (otm_put, delta) = market.option(&contract(MesoOptionType::Put, (spot - 500.0) as i64));
        assert!(otm_put.mark < itm_call.mark && delta < 0.0 && delta > -0.2);
        assert!(otm_put.bid <= otm_put.mark && otm_put.mark <= otm_put.ask);
        let short = otm_put.times(-2.0);
        assert!(short.bid <= short.ask && short.mark < 0.0);
    }
}
