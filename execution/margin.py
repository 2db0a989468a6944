"""Perpetual-futures margin: leverage caps, tiered maintenance brackets, liquidation price and the
per-bar liquidation check (Binance USD-M one-way mode).

Bracket table (per symbol, Binance `GET /fapi/v1/leverageBracket`): rows of notional floor/cap,
max leverage, maintenance margin rate (mmr) and maintenance amount (cum). A notional N belongs to
the bracket with floor ≤ N < cap (above the last cap: the last bracket). Then
    initial margin     = N / leverage
    maintenance margin = N · mmr − cum
Liquidation price (Binance's formula, one-way mode; side +1 long, −1 short; Q base units):
    LP = (WB − TMM1 + UPNL1 + cum − side·Q·EP) / (Q·mmr − side·Q)
isolated: WB = the position's isolated margin, TMM1 = UPNL1 = 0; cross: WB = wallet balance and
TMM1 / UPNL1 = maintenance margin / unrealized PnL of all OTHER positions at their last marks.
mmr and cum are those of the bracket of the notional AT the liquidation price: the kernel picks
the one bracket whose range holds Q·LP (unique because the table's cum makes maintenance margin
continuous in notional, which `check_brackets` enforces).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field, field_validator, model_validator

from core.config import FrozenConfig
from core.enums import Market, Reason
from core.errors import ConfigError, RejectedError
from core.instrument import Instrument
from execution.ledger import (
    ACC_WALLET,
    S_AVG_PRICE,
    S_CONTRACT_SIZE,
    S_IS_PERP,
    S_ISO_MARGIN,
    S_LEVERAGE,
    S_MARK,
    S_QTY,
    S_TRIP_SIGNAL_ID,
    S_UPNL,
    apply_fill_nb,
)

P_MODE = 0  # MODE_CROSS or MODE_ISOLATED
P_LIQ_FEE_RATE = 1  # liquidation (clearance) fee, fraction of notional at the liquidation price
P_LIQ_FEE_CAPPED = 2  # 1: the fee never exceeds the margin left at liquidation
N_PARAMS = 3

MODE_CROSS = 0
MODE_ISOLATED = 1

BR_FLOOR = 0
BR_CAP = 1
BR_MAX_LEVERAGE = 2
BR_MMR = 3
BR_CUM = 4
N_BRACKET = 5

_LIQUIDATION = int(Reason.LIQUIDATION)
_CUM_TOL = 1e-6  # relative tolerance of the cum continuity check (tables are published rounded)


class Bracket(FrozenConfig):
    """One notional tier: floor ≤ notional < cap."""

    notional_floor: float = Field(ge=0)
    notional_cap: float = Field(gt=0)
    max_leverage: float = Field(ge=1, le=200)
    mmr: float = Field(gt=0, lt=1)
    cum: float = Field(ge=0)


def check_brackets(table: Sequence[Bracket]) -> tuple[Bracket, ...]:
    """Validate a bracket table; raises ValueError (→ ConfigError with the key path) naming the row."""
    rows = tuple(table)
    if not rows:
        raise ValueError("bracket table is empty")
    if rows[0].notional_floor != 0:
        raise ValueError(f"bracket 0: notional_floor must be 0, got {rows[0].notional_floor}")
    if rows[0].cum != 0:
        raise ValueError(f"bracket 0: cum must be 0 (maintenance margin of a zero notional), got {rows[0].cum}")
    for b, r in enumerate(rows):
        if r.notional_cap <= r.notional_floor:
            raise ValueError(f"bracket {b}: notional_cap {r.notional_cap} <= notional_floor {r.notional_floor}")
        if r.mmr >= 1.0 / r.max_leverage:
            raise ValueError(f"bracket {b}: mmr {r.mmr} >= 1/max_leverage {1.0 / r.max_leverage:.6g}: a position "
                             f"at max leverage would be liquidated on entry")
        if b == 0:
            continue
        p = rows[b - 1]
        if r.notional_floor != p.notional_cap:
            raise ValueError(f"bracket {b}: notional_floor {r.notional_floor} != previous notional_cap "
                             f"{p.notional_cap} (tiers must be contiguous)")
        if r.max_leverage > p.max_leverage:
            raise ValueError(f"bracket {b}: max_leverage {r.max_leverage} > previous {p.max_leverage}")
        if r.mmr < p.mmr:
            raise ValueError(f"bracket {b}: mmr {r.mmr} < previous {p.mmr}")
        expect = p.cum + r.notional_floor * (r.mmr - p.mmr)
        if abs(r.cum - expect) > _CUM_TOL * max(1.0, expect):
            raise ValueError(f"bracket {b}: cum {r.cum} inconsistent with the table; expected "
                             f"{expect:.10g} = previous cum + floor·(mmr − previous mmr)")
    return rows


# Binance USD-M BTCUSDT brackets as published in 2024 (illustrative: tiers change; every account
# must check its own with GET /fapi/v1/leverageBracket). configs/venues/binance_usdm.yaml ships them.
BINANCE_BTCUSDT_BRACKETS: tuple[tuple[float, float, float, float, float], ...] = (
    (0, 50_000, 125, 0.004, 0),
    (50_000, 600_000, 100, 0.005, 50),
    (600_000, 3_000_000, 75, 0.0065, 950),
    (3_000_000, 12_000_000, 50, 0.01, 11_450),
    (12_000_000, 70_000_000, 25, 0.02, 131_450),
    (70_000_000, 100_000_000, 20, 0.025, 481_450),
    (100_000_000, 230_000_000, 10, 0.05, 2_981_450),
    (230_000_000, 480_000_000, 5, 0.1, 14_481_450),
    (480_000_000, 600_000_000, 4, 0.125, 26_481_450),
    (600_000_000, 800_000_000, 3, 0.15, 41_481_450),
    (800_000_000, 1_200_000_000, 2, 0.25, 121_481_450),
    (1_200_000_000, 1_800_000_000, 1, 0.5, 421_481_450),
)


def brackets_from_rows(rows: Sequence[Sequence[float]]) -> tuple[Bracket, ...]:
    """(floor, cap, max_leverage, mmr, cum) tuples → validated Bracket table (ConfigError if inconsistent)."""
    table = [Bracket(notional_floor=r[0], notional_cap=r[1], max_leverage=r[2], mmr=r[3], cum=r[4]) for r in rows]
    try:
        return check_brackets(table)
    except ValueError as exc:
        raise ConfigError(f"bracket table: {exc}") from None


_SPOT_TABLE = np.array([[0.0, np.inf, 1.0, 0.0, 0.0]])  # spot: no maintenance, never liquidated


class MarginConfig(FrozenConfig):
    """Margin mode, leverage per symbol with caps, bracket tables and the liquidation fee.

    The liquidation fee rate varies by venue and symbol (Binance: 0.5 % – 1.5 %; 1.25 % is a typical
    BTCUSDT value): set it per deployment.
    """

    mode: Literal["cross", "isolated"] = "cross"
    default_leverage: float = Field(1.0, ge=1, le=200)
    leverage: dict[str, float] = Field(default_factory=dict)
    max_leverage_cap: float = Field(20.0, ge=1, le=200)
    liquidation_fee_rate: float = Field(0.0125, ge=0.0, le=0.1)
    cap_liquidation_fee_to_margin: bool = True
    brackets: dict[str, tuple[Bracket, ...]] = Field(default_factory=dict)
    default_brackets: tuple[Bracket, ...] | None = None

    @field_validator("brackets")
    @classmethod
    def _check_tables(cls, v: dict[str, tuple[Bracket, ...]]) -> dict[str, tuple[Bracket, ...]]:
        for sym, table in v.items():
            try:
                check_brackets(table)
            except ValueError as exc:
                raise ValueError(f"brackets[{sym}]: {exc}") from None
        return v

    @field_validator("default_brackets")
    @classmethod
    def _check_default(cls, v: tuple[Bracket, ...] | None) -> tuple[Bracket, ...] | None:
        return None if v is None else check_brackets(v)

    @model_validator(mode="after")
    def _check_leverage(self) -> MarginConfig:
        if self.default_leverage > self.max_leverage_cap:
            raise ValueError(f"default_leverage {self.default_leverage} > max_leverage_cap {self.max_leverage_cap}")
        for sym, lev in self.leverage.items():
            if not (1 <= lev <= self.max_leverage_cap):
                raise ValueError(f"leverage[{sym}] = {lev}: must be within 1..max_leverage_cap "
                                 f"({self.max_leverage_cap})")
        return self

    def to_params(self) -> np.ndarray:
        """Pack into the float64 vector read by the margin kernels (slots `P_*`)."""
        p = np.zeros(N_PARAMS, dtype=np.float64)
        p[P_MODE] = MODE_ISOLATED if self.mode == "isolated" else MODE_CROSS
        p[P_LIQ_FEE_RATE] = self.liquidation_fee_rate
        p[P_LIQ_FEE_CAPPED] = 1.0 if self.cap_liquidation_fee_to_margin else 0.0
        return p

    def brackets_for(self, instrument: Instrument) -> tuple[Bracket, ...]:
        table = self.brackets.get(instrument.symbol, self.default_brackets)
        if table is None:
            raise ConfigError(f"margin.brackets: no bracket table for {instrument.symbol}; add "
                              f"margin.brackets.{instrument.symbol} or margin.default_brackets")
        return table

    def leverage_for(self, instrument: Instrument) -> float:
        """Leverage of a symbol: configured or default, checked against every cap (ConfigError)."""
        if instrument.market == Market.SPOT:
            if instrument.symbol in self.leverage and self.leverage[instrument.symbol] != 1:
                raise ConfigError(f"margin.leverage.{instrument.symbol} = {self.leverage[instrument.symbol]}: "
                                  f"spot trades without leverage (1)")
            return 1.0
        lev = self.leverage.get(instrument.symbol, self.default_leverage)
        if lev > instrument.max_leverage:
            raise ConfigError(f"margin.leverage.{instrument.symbol} = {lev}: above the instrument's "
                              f"max_leverage {instrument.max_leverage}")
        top = self.brackets_for(instrument)[0].max_leverage
        if lev > top:
            raise ConfigError(f"margin.leverage.{instrument.symbol} = {lev}: above the first bracket's "
                              f"max_leverage {top}")
        return float(lev)

    def leverages(self, instruments: Sequence[Instrument]) -> list[float]:
        return [self.leverage_for(i) for i in instruments]

    def bracket_params(self, instruments: Sequence[Instrument]) -> np.ndarray:
        """(n_symbols, max_brackets, N_BRACKET) float64; short tables padded with copies of their last row."""
        tables = []
        for inst in instruments:
            if inst.market == Market.SPOT:
                tables.append(_SPOT_TABLE)
            else:
                tables.append(np.array([[b.notional_floor, b.notional_cap, b.max_leverage, b.mmr, b.cum]
                                        for b in self.brackets_for(inst)], dtype=np.float64))
        nb = max(t.shape[0] for t in tables)
        out = np.zeros((len(tables), nb, N_BRACKET), dtype=np.float64)
        for i, t in enumerate(tables):
            out[i, : t.shape[0]] = t
            out[i, t.shape[0]:] = t[-1]
        return out


@njit(cache=True)
def bracket_index_nb(br, notional):
    """Index of the bracket of `notional` in one symbol's table (floor ≤ N < cap; beyond: last)."""
    nb = br.shape[0]
    for b in range(nb):
        if notional < br[b, BR_CAP]:
            return b
    return nb - 1


@njit(cache=True)
def maintenance_margin_nb(br, notional):
    """Maintenance margin (quote) of a position of |notional| quote: N·mmr − cum of its bracket."""
    n = abs(notional)
    b = bracket_index_nb(br, n)
    return n * br[b, BR_MMR] - br[b, BR_CUM]


@njit(cache=True)
def initial_margin_nb(notional, leverage):
    """Initial margin (quote) = |notional| / leverage."""
    return abs(notional) / leverage


@njit(cache=True)
def max_leverage_nb(br, notional):
    """Highest leverage the bracket table allows for a position of |notional| quote."""
    return br[bracket_index_nb(br, abs(notional)), BR_MAX_LEVERAGE]


@njit(cache=True)
def _mark_of(pos, j):
    m = pos[j, S_MARK]
    return pos[j, S_AVG_PRICE] if math.isnan(m) else m


@njit(cache=True)
def _others_nb(brackets, pos, sym):
    """(maintenance margin, unrealized PnL) of every position except `sym` at last marks."""
    tmm = 0.0
    upnl = 0.0
    for j in range(pos.shape[0]):
        if j == sym or pos[j, S_QTY] == 0.0:
            continue
        tmm += maintenance_margin_nb(brackets[j], pos[j, S_QTY] * pos[j, S_CONTRACT_SIZE] * _mark_of(pos, j))
        upnl += pos[j, S_UPNL]
    return tmm, upnl


@njit(cache=True)
def liquidation_price_nb(params, brackets, pos, acc, sym):
    """Liquidation price of `sym`'s position (Binance one-way formula, bracket-consistent).

    NaN when flat; 0.0 for a long that cannot be liquidated (LP ≤ 0, e.g. 1× isolated).
    `brackets` is (n_symbols, max_brackets, N_BRACKET); marks of other positions must be current
    (`mark_nb`) in cross mode.
    """
    q = pos[sym, S_QTY]
    if q == 0.0:
        return np.nan
    side = 1.0 if q > 0.0 else -1.0
    big_q = abs(q) * pos[sym, S_CONTRACT_SIZE]
    ep = pos[sym, S_AVG_PRICE]
    if params[P_MODE] == MODE_ISOLATED:
        wb = pos[sym, S_ISO_MARGIN]
        tmm1 = 0.0
        upnl1 = 0.0
    else:
        wb = acc[ACC_WALLET]
        tmm1, upnl1 = _others_nb(brackets, pos, sym)
    br = brackets[sym]
    nb = br.shape[0]
    base = wb - tmm1 + upnl1 - side * big_q * ep
    for b in range(nb):
        lp = (base + br[b, BR_CUM]) / (big_q * br[b, BR_MMR] - side * big_q)
        n = big_q * lp if lp > 0.0 else 0.0
        if n >= br[b, BR_FLOOR] and (n < br[b, BR_CAP] or b == nb - 1):
            return max(0.0, lp)
    # Unreachable for a validated (continuous) table except at float ties on a tier boundary:
    # settle on the bracket of the notional at the last candidate.
    b = bracket_index_nb(br, big_q * ep)
    lp = 0.0
    for _ in range(nb + 1):
        lp = (base + br[b, BR_CUM]) / (big_q * br[b, BR_MMR] - side * big_q)
        b2 = bracket_index_nb(br, big_q * lp if lp > 0.0 else 0.0)
        if b2 == b:
            break
        b = b2
    return max(0.0, lp)


@njit(cache=True)
def margin_ratio_nb(params, brackets, pos, acc, sym):
    """maintenance margin / margin balance (≥ 1 means liquidation). Cross: whole account (sym unused);
    isolated: the position of `sym` (isolated margin + its unrealized PnL). inf when balance ≤ 0."""
    if params[P_MODE] == MODE_ISOLATED:
        q = pos[sym, S_QTY]
        if q == 0.0:
            return 0.0
        mm = maintenance_margin_nb(brackets[sym], q * pos[sym, S_CONTRACT_SIZE] * _mark_of(pos, sym))
        bal = pos[sym, S_ISO_MARGIN] + pos[sym, S_UPNL]
    else:
        mm, upnl = _others_nb(brackets, pos, -1)
        bal = acc[ACC_WALLET] + upnl
    if bal <= 0.0:
        return np.inf
    return mm / bal


@njit(cache=True)
def margin_used_nb(pos):
    """Σ initial margin of open positions at their last marks (quote): |qty|·cs·mark / leverage."""
    used = 0.0
    for j in range(pos.shape[0]):
        q = pos[j, S_QTY]
        if q != 0.0:
            used += abs(q) * pos[j, S_CONTRACT_SIZE] * _mark_of(pos, j) / pos[j, S_LEVERAGE]
    return used


@njit(cache=True)
def liquidation_check_nb(params, brackets, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts,
                         sym, ts, bar, bar_open, bar_low, bar_high):
    """Forced close of `sym` if this bar reaches its liquidation price; returns (liquidated, price).

    Long: bar low ≤ LP; short: bar high ≥ LP. The whole position closes as a taker fill at LP, or at
    the bar's open when the bar opens already beyond LP (a gap, or an account already under
    maintenance at the open): min(LP, open) for a long, max(LP, open) for a short, as for stops.
    Fee = liquidation_fee_rate · |qty|·cs·price, capped (when configured) at the margin left for this
    position after the close (never below 0). Reason.LIQUIDATION, order id −1. Call after the bar's
    stop checks and with the other symbols marked (cross mode). Spot symbols are never liquidated.
    """
    q = pos[sym, S_QTY]
    if q == 0.0 or pos[sym, S_IS_PERP] == 0.0:
        return False, np.nan
    lp = liquidation_price_nb(params, brackets, pos, acc, sym)
    if q > 0.0:
        if not (lp > 0.0 and bar_low <= lp):
            return False, np.nan
        price = min(lp, bar_open)
    else:
        if bar_high < lp:
            return False, np.nan
        price = max(lp, bar_open)
    side = 1.0 if q > 0.0 else -1.0
    big_q = abs(q) * pos[sym, S_CONTRACT_SIZE]
    realized = side * big_q * (price - pos[sym, S_AVG_PRICE])
    fee = params[P_LIQ_FEE_RATE] * big_q * price
    if params[P_LIQ_FEE_CAPPED] != 0.0:
        if params[P_MODE] == MODE_ISOLATED:
            left = pos[sym, S_ISO_MARGIN] + realized
        else:
            tmm1, upnl1 = _others_nb(brackets, pos, sym)
            left = acc[ACC_WALLET] + realized + upnl1 - tmm1
        left = max(left, 0.0)
        fee = min(fee, left)
    apply_fill_nb(pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, sym, ts, bar, -side, abs(q), price,
                  fee, False, float(_LIQUIDATION), pos[sym, S_TRIP_SIGNAL_ID], -1.0)
    return True, price


class MarginModel:
    """Python face of the margin kernels over a `execution.ledger.Ledger`."""

    def __init__(self, config: MarginConfig, instruments: Sequence[Instrument]):
        self.config = config
        self.params = config.to_params()
        self.brackets = config.bracket_params(instruments)
        self.instruments = list(instruments)

    def leverages(self) -> list[float]:
        return self.config.leverages(self.instruments)

    def maintenance_margin(self, sym: int, notional: float) -> float:
        if not math.isfinite(notional):
            raise RejectedError(f"notional must be finite, got {notional!r}")
        return float(maintenance_margin_nb(self.brackets[sym], float(notional)))

    def liquidation_price(self, ledger, sym: int | str) -> float:
        return float(liquidation_price_nb(self.params, self.brackets, ledger.pos, ledger.acc, ledger._sym(sym)))

    def margin_ratio(self, ledger, sym: int | str = 0) -> float:
        return float(margin_ratio_nb(self.params, self.brackets, ledger.pos, ledger.acc, ledger._sym(sym)))

    def check_liquidation(self, ledger, sym: int | str, ts: int, bar_open: float, bar_low: float,
                          bar_high: float, bar: int = 0) -> tuple[bool, float]:
        """Run `liquidation_check_nb` on one bar of `sym`; the ledger journals the forced fill."""
        s = ledger._sym(sym)
        for name, v in (("bar_open", bar_open), ("bar_low", bar_low), ("bar_high", bar_high)):
            if not math.isfinite(v):
                raise RejectedError(f"{name} must be finite, got {v!r}")
        ledger._grow()
        hit, price = liquidation_check_nb(self.params, self.brackets, ledger.pos, ledger.pos_ts, ledger.acc,
                                          ledger.fills, ledger.fill_ts, ledger.trades, ledger.trade_ts, s,
                                          np.int64(ts), np.int64(bar), float(bar_open), float(bar_low),
                                          float(bar_high))
        return bool(hit), float(price)
