//! The Data Hub (API §3.2, §6.4): position and underlying snapshots, and streams of them.
//! A stream computes its item when it is polled, at most once per interval, so a slow client
//! gets the latest value instead of a backlog (nothing is buffered on its behalf). A position
//! stream ends with a Completion when the position closes. Underlying data requires `Provider`
//! when the `require_provider` fault is set (as the API says the real server does).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::call::{self, CallResult, Failure, into_envelope, to_value};
use super::market::{Quote, float, money};
use super::prepare::{greeks, prices};
use super::sim::Sim;
use super::world::{World, timestamp};
use mesolive_api::models::{LivePnL, LivePrices, PositionDataEntry};
use mesolive_api::wire::{self, methods};

/// Stream items; an `Err` ends the stream with that error.
pub(crate) type Items = BoxStream<'static, Result<Value, String>>;

/// Which blocks (`LiveDataInclude`) a caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Blocks {
    prices: bool,
    greeks: bool,
    pnl: bool,
}

/// Which quote bases (`LiveQuoteFields`) a caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    bid: bool,
    ask: bool,
    last: bool,
    mark: bool,
}

/// Flag names of a flags argument: `"All"`, `"Prices, Greeks"`, `"Bid|Mark"`, or an integer
/// (bits in declaration order; INFERRED). Absent means all.
fn flags<const N: usize>(
    args: &Value,
    name: &str,
    members: [&str; N],
) -> Result<[bool; N], Failure> {
    let invalid = || {
        Failure::invalid(
            name,
            format!("{name} must be All, None or a combination of {members:?}"),
        )
    };
    let Some(value) = wire::args::read(args, name).filter(|v| !v.is_null()) else {
        return Ok([true; N]);
    };
    if let Some(bits) = value.as_u64() {
        return Ok(std::array::from_fn(|i| bits & (1 << i) != 0));
    }
    let text = value.as_str().ok_or_else(invalid)?;
    let mut chosen = [false; N];
    for part in text
        .split([',', '|'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if part.eq_ignore_ascii_case(wire::args::ALL_BLOCKS) {
            chosen = [true; N];
        } else if !part.eq_ignore_ascii_case("None") {
            let index = members
                .iter()
                .position(|m| m.eq_ignore_ascii_case(part))
                .ok_or_else(invalid)?;
            chosen[index] = true;
        }
    }
    Ok(chosen)
}

fn blocks(args: &Value, name: &str) -> Result<Blocks, Failure> {
    let [prices, greeks, pnl] = flags(args, name, ["Prices", "Greeks", "PnL"])?;
    Ok(Blocks {
        prices,
        greeks,
        pnl,
    })
}

fn fields(args: &Value, name: &str) -> Result<Fields, Failure> {
    let [bid, ask, last, mark] = flags(args, name, ["Bid", "Ask", "Last", "Mark"])?;
    Ok(Fields {
        bid,
        ask,
        last,
        mark,
    })
}

impl Fields {
    fn prices(self, quote: Quote, time: &str) -> LivePrices {
        let mut block = prices(quote, time);
        let keep = |on: bool, value: Option<Decimal>| value.filter(|_| on);
        block.bid = keep(self.bid, block.bid);
        block.ask = keep(self.ask, block.ask);
        block.last = keep(self.last, block.last);
        block.mark = keep(self.mark, block.mark);
        block.mark_age_ms = block.mark_age_ms.filter(|_| self.mark);
        block
    }

    fn pnl(self, realized: Decimal, running: f64, time: &str) -> LivePnL {
        LivePnL {
            snapshot_time: Some(time.to_owned()),
            realized: Some(realized),
            mark: Some(money(running)).filter(|_| self.mark),
        }
    }
}

/// What a position data call asked for.
#[derive(Debug, Clone, Copy)]
struct Selection {
    position: Blocks,
    legs: Blocks,
    groups: Blocks,
    price_fields: Fields,
    pnl_fields: Fields,
}

impl Selection {
    fn read(args: &Value) -> Result<Selection, Failure> {
        Ok(Selection {
            position: blocks(args, "IncludePosition")?,
            legs: blocks(args, "IncludeLegs")?,
            groups: blocks(args, "IncludeLegGroups")?,
            price_fields: fields(args, "PriceFields")?,
            pnl_fields: fields(args, "PnlFields")?,
        })
    }
}

/// `PositionDataEntry` and the blocks it leaves out (API §3.2.2).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PositionDataView {
    #[serde(flatten)]
    entry: PositionDataEntry,
    leg_greeks: Option<BTreeMap<String, Value>>,
    #[serde(rename = "LegPnLs")]
    leg_pnls: Option<BTreeMap<String, LivePnL>>,
    leg_group_prices: Option<BTreeMap<String, LivePrices>>,
    leg_group_greeks: Option<BTreeMap<String, Value>>,
    #[serde(rename = "LegGroupPnLs")]
    leg_group_pnls: Option<BTreeMap<String, LivePnL>>,
}

/// Sums of one group of legs (or of the whole position).
#[derive(Default)]
struct Totals {
    quote: Option<Quote>,
    delta: f64,
    running: f64,
    realized: Decimal,
}

impl Totals {
    fn add(&mut self, quote: Quote, delta: f64, running: f64, realized: Decimal) {
        self.quote = Some(self.quote.unwrap_or(Quote::ZERO).plus(quote));
        self.delta += delta;
        self.running += running;
        self.realized += realized;
    }
}

/// One position's data now, as the selection asks.
fn position_entry(world: &mut World, position_id: i64, sel: &Selection) -> CallResult {
    let position = world
        .positions
        .get(&position_id)
        .ok_or_else(|| Failure::not_found(format!("unknown position {position_id}")))?;
    let realized_total = position.realized_pnl;
    let legs: Vec<_> = world.open_legs(position_id).into_iter().cloned().collect();
    let time = timestamp();
    let mut total = Totals::default();
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let (mut leg_prices, mut leg_greeks, mut leg_pnls) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for leg in &legs {
        let (quote, delta) = world.market.option(&leg.contract);
        let qty = float(leg.qty);
        let running = (quote.mark - float(leg.entry_price)) * qty * 100.0;
        let id = leg.id.to_string();
        leg_prices.insert(id.clone(), sel.price_fields.prices(quote, &time));
        leg_greeks.insert(id.clone(), greeks(&time, delta, quote, &leg.contract, 1.0));
        leg_pnls.insert(id, sel.pnl_fields.pnl(leg.realized_pnl, running, &time));
        let traded = quote.times(qty);
        groups.entry(leg.group.to_string()).or_default().add(
            traded,
            delta * qty,
            running,
            leg.realized_pnl,
        );
        total.add(traded, delta * qty, running, Decimal::ZERO);
    }
    let quote = |t: &Totals| t.quote.unwrap_or(Quote::ZERO);
    let delta_block = |delta: f64| wire::greeks(&time, delta, 0.0, 0.0, 0.0);
    let view = PositionDataView {
        entry: PositionDataEntry {
            position_prices: sel
                .position
                .prices
                .then(|| sel.price_fields.prices(quote(&total), &time)),
            position_greeks: sel.position.greeks.then(|| delta_block(total.delta)),
            position_pn_ls: sel
                .position
                .pnl
                .then(|| sel.pnl_fields.pnl(realized_total, total.running, &time)),
            leg_prices: sel.legs.prices.then(|| leg_prices.into_iter().collect()),
        },
        leg_greeks: sel.legs.greeks.then_some(leg_greeks),
        leg_pnls: sel.legs.pnl.then_some(leg_pnls),
        leg_group_prices: sel.groups.prices.then(|| {
            groups
                .iter()
                .map(|(g, t)| (g.clone(), sel.price_fields.prices(quote(t), &time)))
                .collect()
        }),
        leg_group_greeks: sel.groups.greeks.then(|| {
            groups
                .iter()
                .map(|(g, t)| (g.clone(), delta_block(t.delta)))
                .collect()
        }),
        leg_group_pnls: sel.groups.pnl.then(|| {
            groups
                .iter()
                .map(|(g, t)| (g.clone(), sel.pnl_fields.pnl(t.realized, t.running, &time)))
                .collect()
        }),
    };
    Ok(to_value(&view))
}

/// The symbol and fields of an underlying call; a missing provider is an error when
/// `require_provider` (as the API says), else the server's default serves it.
fn underlying_args(args: &Value, require_provider: bool) -> Result<(String, Fields), Failure> {
    if call::opt_str(args, "Provider")?.is_none() && require_provider {
        return Err(Failure::invalid(
            "Provider",
            "Provider is required for free-standing data (underlying, contract, combo)",
        ));
    }
    let symbol = match wire::args::read(args, "Underlying").filter(|v| v.is_object()) {
        Some(underlying) => call::req_str(underlying, "Symbol")?,
        None => call::req_str(args, "Symbol")?,
    };
    Ok((symbol, fields(args, "PriceFields")?))
}

fn underlying_entry(world: &mut World, symbol: &str, fields: Fields) -> Value {
    let quote = world.market.underlying_quote(symbol);
    to_value(&fields.prices(quote, &timestamp()))
}

/// Handles one Data Hub snapshot call; `None` for an unknown method.
pub(crate) fn invoke(sim: &Sim, method: &str, args: &Value) -> Option<Value> {
    let result = match method {
        methods::GET_POSITION_SNAPSHOT => call::req_i64(args, "PositionId").and_then(|id| {
            let sel = Selection::read(args)?;
            position_entry(&mut sim.world(), id, &sel)
        }),
        methods::GET_UNDERLYING_SNAPSHOT => underlying_args(args, sim.faults().require_provider)
            .map(|(symbol, fields)| underlying_entry(&mut sim.world(), &symbol, fields)),
        _ => return None,
    };
    Some(into_envelope(result))
}

/// Starts a Data Hub stream; `None` for an unknown method, `Some(Err)` when the arguments are
/// refused (the stream fails with that text).
pub(crate) fn stream(sim: &Arc<Sim>, method: &str, args: &Value) -> Option<Result<Items, String>> {
    let started = match method {
        methods::STREAM_POSITION_DATA => position_stream(sim, args),
        methods::STREAM_UNDERLYING_DATA => underlying_stream(sim, args),
        _ => return None,
    };
    Some(started.map_err(|failure| failure.message))
}

fn ticker(sim: &Sim) -> Interval {
    let mut ticker = tokio::time::interval(sim.timing.stream_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}

struct PositionFeed {
    sim: Arc<Sim>,
    position_id: i64,
    selection: Selection,
    ticker: Interval,
    closed: watch::Receiver<u64>,
}

impl PositionFeed {
    fn is_open(&self) -> bool {
        self.sim
            .world()
            .positions
            .get(&self.position_id)
            .is_some_and(|p| p.is_open())
    }

    /// The next update, or `None` once the position is closed (or the simulator stops).
    async fn next(mut self) -> Option<(Result<Value, String>, PositionFeed)> {
        loop {
            tokio::select! {
                () = self.sim.shutdown.cancelled() => return None,
                changed = self.closed.changed() => {
                    if changed.is_err() || !self.is_open() {
                        return None;
                    }
                }
                _ = self.ticker.tick() => {
                    let entry = {
                        let mut world = self.sim.world();
                        match world.positions.get(&self.position_id) {
                            Some(p) if p.is_open() => position_entry(&mut world, self.position_id, &self.selection),
                            _ => return None,
                        }
                    };
                    return Some((entry.map_err(|f| f.message), self));
                }
            }
        }
    }
}

fn position_stream(sim: &Arc<Sim>, args: &Value) -> Result<Items, Failure> {
    let position_id = call::req_i64(args, "PositionId")?;
    let selection = Selection::read(args)?;
    if !sim.world().positions.contains_key(&position_id) {
        return Err(Failure::not_found(format!(
            "unknown position {position_id}"
        )));
    }
    let feed = PositionFeed {
        sim: Arc::clone(sim),
        position_id,
        selection,
        ticker: ticker(sim),
        closed: sim.closed.clone(),
    };
    Ok(stream::unfold(feed, PositionFeed::next).boxed())
}

fn underlying_stream(sim: &Arc<Sim>, args: &Value) -> Result<Items, Failure> {
    let (symbol, fields) = underlying_args(args, sim.faults().require_provider)?;
    let state = (Arc::clone(sim), ticker(sim));
    Ok(stream::unfold(state, move |(sim, mut ticker)| {
        let symbol = symbol.clone();
        async move {
            tokio::select! {
                () = sim.shutdown.cancelled() => None,
                _ = ticker.tick() => {
                    let entry = underlying_entry(&mut sim.world(), &symbol, fields);
                    Some((Ok(entry), (sim, ticker)))
                }
            }
        }
    })
    .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_parse_names_lists_and_bits() {
        let all = blocks(&json!({}), "IncludeLegs").unwrap();
        assert!(all.prices && all.greeks && all.pnl);
        let some = blocks(&json!({"IncludeLegs": "Prices, pnl"}), "IncludeLegs").unwrap();
        assert_eq!(
            some,
            Blocks {
                prices: true,
                greeks: false,
                pnl: true
            }
        );
        let none = blocks(&json!({"IncludeLegs": "None"}), "IncludeLegs").unwrap();
        assert!(!none.prices && !none.greeks && !none.pnl);
        let bits = fields(&json!({"PriceFields": 8}), "PriceFields").unwrap();
        assert_eq!(
            bits,
            Fields {
                bid: false,
                ask: false,
                last: false,
                mark: true
            }
        );
        assert!(blocks(&json!({"IncludeLegs": "Colors"}), "IncludeLegs").is_err());
        assert!(blocks(&json!({"IncludeLegs": [1]}), "IncludeLegs").is_err());
    }

    #[test]
    fn underlying_needs_a_provider_when_required() {
        assert!(underlying_args(&json!({"Symbol": "SPX"}), true).is_err());
        assert!(underlying_args(&json!({"Symbol": "SPX", "Provider": ""}), true).is_err());
        assert!(underlying_args(&json!({"Symbol": "SPX"}), false).is_ok());
        let (symbol, _) = underlying_args(
            &json!({"Underlying": {"Symbol": "RUT"}, "Provider": "IBKR"}),
            true,
        )
        .unwrap();
        assert_eq!(symbol, "RUT");
    }
}
