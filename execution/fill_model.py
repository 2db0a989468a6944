"""Bar-based fill simulation: when and at what price market, limit and stop orders fill.

The backtest sees bars, not trades, so every rule here is a conservative reading of one bar
(ts_open, open, high, low, close, volume). All kernels are pure: they return prices, quantities
and flags; the engine applies the fills to the ledger. See docs/execution.md for the rules.

Instrument terms travel as a float64 row per symbol (`instrument_params`), so that the kernels
round quantities down to the lot step exactly as `core.instrument.Instrument.round_qty_down`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from numba import njit
from pydantic import Field

from core.config import FrozenConfig
from core.enums import Market
from core.errors import RejectedError
from core.instrument import Instrument

# --- params vector -------------------------------------------------------------------------
P_LATENCY_NS = 0  # decision → order at venue, ns (exact as float64 below 2**53 ns ≈ 104 days)
P_SLIPPAGE_BPS = 1  # fixed slippage in basis points of the reference price
P_IMPACT_COEF = 2  # multiplier of qty × |price_impact| (price units per base unit)
P_PARTICIPATION = 3  # max fraction of a bar's volume one order may take
P_QUEUE_DELAY_BARS = 4  # bars of trading through a limit before it fills
N_PARAMS = 5

# --- instrument row (instrument_params) ----------------------------------------------------
I_STEP = 0  # lot step in contracts
I_STEP_UNITS = 1  # step × I_STEP_SCALE (an integer): exact decimal rounding
I_STEP_SCALE = 2  # 10 ** (decimals of the step)
I_TICK = 3
I_MIN_QTY = 4
I_CONTRACT_SIZE = 5  # base units per contract (1 for Binance linear USD-M)
I_MAX_LEVERAGE = 6
I_IS_PERP = 7  # 1 = perpetual (shorting and funding), 0 = spot
N_INSTRUMENT = 8

# --- limit placement return codes ----------------------------------------------------------
PLACE_OK = 0
PLACE_WOULD_CROSS = 1  # post-only: the limit would take liquidity at placement → rejected
PLACE_INVALID = 2  # non-finite or non-positive price, or side not ±1


class FillModelConfig(FrozenConfig):
    """Latency, slippage, impact, participation and limit-queue settings of the bar fill model."""

    latency_ns: int = Field(0, ge=0, le=86_400_000_000_000)
    slippage_bps: float = Field(1.0, ge=0.0, le=1000.0)
    impact_coef: float = Field(1.0, ge=0.0, le=1000.0)
    participation_rate: float = Field(0.1, gt=0.0, le=1.0)
    queue_delay_bars: int = Field(0, ge=0, le=10_000)

    def to_params(self) -> np.ndarray:
        """Pack into the float64 vector read by the fill kernels (slots `P_*`)."""
        p = np.zeros(N_PARAMS, dtype=np.float64)
        p[P_LATENCY_NS] = float(self.latency_ns)
        p[P_SLIPPAGE_BPS] = self.slippage_bps
        p[P_IMPACT_COEF] = self.impact_coef
        p[P_PARTICIPATION] = self.participation_rate
        p[P_QUEUE_DELAY_BARS] = float(self.queue_delay_bars)
        return p


def instrument_row(inst: Instrument) -> np.ndarray:
    """One instrument's terms as a float64 row (slots `I_*`)."""
    decimals = max(0, -Decimal(repr(inst.step_size)).as_tuple().exponent)
    scale = 10.0 ** decimals
    row = np.zeros(N_INSTRUMENT, dtype=np.float64)
    row[I_STEP] = inst.step_size
    row[I_STEP_UNITS] = float(round(inst.step_size * scale))
    row[I_STEP_SCALE] = scale
    row[I_TICK] = inst.tick_size
    row[I_MIN_QTY] = inst.min_qty
    row[I_CONTRACT_SIZE] = inst.contract_size
    row[I_MAX_LEVERAGE] = inst.max_leverage
    row[I_IS_PERP] = 0.0 if inst.market == Market.SPOT else 1.0
    return row


def instrument_params(instruments: Sequence[Instrument]) -> np.ndarray:
    """(n_symbols, N_INSTRUMENT) float64 array; row i = symbol index i everywhere in execution."""
    if len(instruments) == 0:
        raise RejectedError("instrument_params: at least one instrument is required")
    return np.ascontiguousarray(np.stack([instrument_row(i) for i in instruments]))


@njit(cache=True)
def round_qty_down_nb(qty, inst):
    """`Instrument.round_qty_down` in numba: toward zero to the lot step, bit-identical result.

    floor(|qty|/step + 1e-9 + 1e-12·|qty|/step) steps; the integer numerator divided by 10**decimals gives the double
    nearest the decimal value, which is what Python's round(units*step, decimals) returns.
    """
    r = abs(qty) / inst[I_STEP]
    units = math.floor(r + 1e-9 + r * 1e-12)  # relative tolerance: see core.instrument.round_to_step_down
    if units <= 0.0:
        return 0.0
    q = units * inst[I_STEP_UNITS] / inst[I_STEP_SCALE]
    return q if qty >= 0.0 else -q


@njit(cache=True)
def slippage_nb(params, ref_price, qty, price_impact):
    """Adverse price move in price units: slippage_bps·1e-4·ref_price + impact_coef·qty·|price_impact|.

    `qty` in base units (unsigned); `price_impact` is the feature of the same name (price units per
    base unit, (close − open)/volume of the last closed bar).
    """
    return (params[P_SLIPPAGE_BPS] * 1e-4 * ref_price
            + params[P_IMPACT_COEF] * abs(qty) * abs(price_impact))


@njit(cache=True)
def market_fill_price_nb(params, side, qty, bar_open, price_impact):
    """Fill price of a market order (side +1 buy / −1 sell) at `bar_open`, slippage adverse to side."""
    return bar_open + side * slippage_nb(params, bar_open, qty, price_impact)


@njit(cache=True)
def market_eligible_nb(params, decision_ts, bar_ts_open):
    """True when a bar opening at `bar_ts_open` may fill an order decided at `decision_ts` (ns).

    Call only for bars after the decision bar (a bar whose first trade shares the decision
    bar's last timestamp is still a later bar).
    """
    return bar_ts_open >= decision_ts + np.int64(params[P_LATENCY_NS])


@njit(cache=True)
def first_fill_bar_nb(params, ts_open, decision_bar, decision_ts):
    """Index of the first bar after `decision_bar` whose ts_open ≥ decision_ts + latency; −1 if none."""
    earliest = decision_ts + np.int64(params[P_LATENCY_NS])
    for j in range(decision_bar + 1, ts_open.shape[0]):
        if ts_open[j] >= earliest:
            return j
    return -1


@njit(cache=True)
def fillable_qty_nb(params, inst, remaining, bar_volume):
    """Contracts of an open order that fill on one bar: min(remaining, participation·volume/contract_size),
    rounded down to the lot step. `bar_volume` in base units. 0 when the cap is below one step."""
    cap = params[P_PARTICIPATION] * bar_volume / inst[I_CONTRACT_SIZE]
    q = min(cap, remaining)
    if q <= 0.0:
        return 0.0
    return round_qty_down_nb(q, inst)


@njit(cache=True)
def limit_place_check_nb(side, limit_price, ref_price):
    """Post-only check at placement against the last traded price `ref_price`.

    A buy at or above the last price (a sell at or below it) would take liquidity: PLACE_WOULD_CROSS.
    """
    if side != 1 and side != -1:
        return PLACE_INVALID
    if not (limit_price > 0.0) or not math.isfinite(limit_price) or not math.isfinite(ref_price):
        return PLACE_INVALID
    if side == 1 and limit_price >= ref_price:
        return PLACE_WOULD_CROSS
    if side == -1 and limit_price <= ref_price:
        return PLACE_WOULD_CROSS
    return PLACE_OK


@njit(cache=True)
def limit_fill_nb(params, side, limit_price, bar_low, bar_high, bars_through):
    """Does a resting limit fill on this bar? Returns (filled, bars_through_after).

    The market must trade THROUGH the price (buy: low < limit; sell: high > limit); touching is not
    enough. `bars_through` counts such bars since placement (start at 0, keep it with the order);
    the order fills on the bar that makes the count exceed queue_delay_bars, at the limit price.
    """
    through = bar_low < limit_price if side == 1 else bar_high > limit_price
    if not through:
        return False, bars_through
    n = bars_through + 1
    return n > np.int64(params[P_QUEUE_DELAY_BARS]), n


@njit(cache=True)
def stop_fill_nb(params, side, stop_price, qty, bar_open, bar_low, bar_high, price_impact):
    """Protective stop on one bar. `side` is the ORDER side: −1 sells (a long's stop), +1 buys (a short's).

    Sell stop triggers when low ≤ stop; the reference is min(stop, open) (a gap through the level
    fills at the open), then slippage on that reference is subtracted. Buy stop mirrored (high ≥ stop,
    max(stop, open), slippage added). Returns (triggered, fill_price); price is NaN when not triggered.
    """
    if side == -1:
        if bar_low > stop_price:
            return False, np.nan
        ref = min(stop_price, bar_open)
    else:
        if bar_high < stop_price:
            return False, np.nan
        ref = max(stop_price, bar_open)
    return True, ref + side * slippage_nb(params, ref, qty, price_impact)


def _finite(name: str, x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise RejectedError(f"{name} must be finite, got {x!r}")
    return x


def _positive(name: str, x: float) -> float:
    x = _finite(name, x)
    if x <= 0:
        raise RejectedError(f"{name} must be > 0, got {x!r}")
    return x


def _side(side: int) -> int:
    if side not in (1, -1):
        raise RejectedError(f"side must be +1 (buy) or -1 (sell), got {side!r}")
    return int(side)


class FillModel:
    """Python face of the fill kernels (validates inputs, then calls the `_nb` function)."""

    def __init__(self, config: FillModelConfig | None = None):
        self.config = config or FillModelConfig()
        self.params = self.config.to_params()

    def first_fill_bar(self, ts_open: np.ndarray, decision_bar: int, decision_ts: int) -> int:
        """Index of the bar whose open fills a market order decided at bar `decision_bar`; −1 if none."""
        ts = np.ascontiguousarray(ts_open, dtype=np.int64)
        if not 0 <= decision_bar < ts.shape[0]:
            raise RejectedError(f"decision_bar {decision_bar} outside 0..{ts.shape[0] - 1}")
        return int(first_fill_bar_nb(self.params, ts, int(decision_bar), np.int64(decision_ts)))

    def market_fill_price(self, side: int, qty: float, bar_open: float, price_impact: float) -> float:
        return float(market_fill_price_nb(self.params, _side(side), _positive("qty", qty),
                                          _positive("bar_open", bar_open), _finite("price_impact", price_impact)))

    def fillable_qty(self, instrument: Instrument, remaining: float, bar_volume: float) -> float:
        vol = _finite("bar_volume", bar_volume)
        if vol < 0:
            raise RejectedError(f"bar_volume must be >= 0, got {vol!r}")
        return float(fillable_qty_nb(self.params, instrument_row(instrument), _positive("remaining", remaining), vol))

    def check_limit_placement(self, side: int, limit_price: float, ref_price: float) -> int:
        """PLACE_OK, PLACE_WOULD_CROSS (post-only reject) or PLACE_INVALID."""
        return int(limit_place_check_nb(_side(side), float(limit_price), float(ref_price)))

    def limit_fill(self, side: int, limit_price: float, bar_low: float, bar_high: float,
                   bars_through: int = 0) -> tuple[bool, int]:
        filled, n = limit_fill_nb(self.params, _side(side), _positive("limit_price", limit_price),
                                  _finite("bar_low", bar_low), _finite("bar_high", bar_high), np.int64(bars_through))
        return bool(filled), int(n)

    def stop_fill(self, side: int, stop_price: float, qty: float, bar_open: float, bar_low: float,
                  bar_high: float, price_impact: float = 0.0) -> tuple[bool, float]:
        trig, price = stop_fill_nb(self.params, _side(side), _positive("stop_price", stop_price),
                                   _positive("qty", qty), _positive("bar_open", bar_open),
                                   _finite("bar_low", bar_low), _finite("bar_high", bar_high),
                                   _finite("price_impact", price_impact))
        return bool(trig), float(price)
