"""Engine wiring through `backtest.runner.run_engine`: hand-made bars and signals, hand-computed fills.

Each test builds a tiny bar frame and a signal frame, runs the engine with explicit configs (every
account rule that is not under test is switched off or made unreachable) and checks the decision
journal, the fills, the trades and the equity curve against arithmetic written in the test.

Time grid: 1-minute bars, ts_open[i] = t0 + i·60 s, ts_event[i] = ts_open[i] + 59 s (so the next
bar opens 1 s after a decision). Prices are flat at 100 (high 100.5, low 99.5) unless a test shapes
them; ATR is 2, so the L1 stop sits 3 below the entry and the trail arms 2 above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pytest

from backtest.runner import EngineRun, FundingSeries, run_engine
from core.enums import Market, Reason, TradingState
from core.instrument import Instrument
from core.time import NS_PER_S
from engine.config import EngineSettings
from engine.inputs import build_inputs
from execution import (
    BINANCE_BTCUSDT_BRACKETS,
    FeeConfig,
    FillModelConfig,
    FundingConfig,
    MarginConfig,
    VenueConfig,
)
from execution.margin import brackets_from_rows
from risk.gate import RiskConfig
from risk.kelly import KellyConfig
from risk.rules import (
    ConsecutiveLossesConfig,
    DailyLossConfig,
    DrawdownThrottleConfig,
    EntryThrottleConfig,
    FeeHurdleConfig,
    LiquidityPauseConfig,
)
from risk.sizing import SizingConfig
from risk.stops import StopConfig

MIN = 60 * NS_PER_S
DAY0 = 1_700_006_400 * NS_PER_S  # 2023-11-15 00:00:00 UTC
EQUITY0 = 90_000.0
TAKER = 0.0004
BPS = 1.0  # fixed slippage, basis points
ATR = 2.0
BRACKETS = brackets_from_rows(BINANCE_BTCUSDT_BRACKETS)

PERP = Instrument(symbol="BTCUSDT", market=Market.USDM, tick_size=0.01, step_size=0.001, min_qty=0.001,
                  min_notional=5.0, max_leverage=20.0)
SPOT = Instrument(symbol="BTCUSDT", market=Market.SPOT, tick_size=0.01, step_size=0.001, min_qty=0.001,
                  min_notional=5.0, max_leverage=1.0)


# --- configs -----------------------------------------------------------------------------------
def sizing(**over) -> SizingConfig:
    """Caps out of the way by default: the ATR risk budget binds."""
    base = {"risk_per_trade": 0.01, "stop_atr_multiple": 1.5, "min_strength": 0.5, "max_strength": 1.5,
                "max_position_pct": 1.0, "max_same_direction_pct": 1.0, "max_capital_in_use": 1.0,
                "max_loss_at_stop_pct": 0.03}
    base.update(over)
    return SizingConfig(**base)


def stops(**over) -> StopConfig:
    base = {"l1_atr": 1.5, "l2_threshold": 0.25, "l2_bars": 3, "max_holding_bars": 10_000, "trail_start_atr": 1.0,
                "trail_atr": 0.8, "trail_wide_atr": 1.2}
    base.update(over)
    return StopConfig(**base)


def risk_config(*, sizing_cfg: SizingConfig | None = None, stop_cfg: StopConfig | None = None,
                daily_loss_pct: float = 1.0) -> RiskConfig:
    """Every account rule explicit; all but the daily loss (off by default: 100 %) unreachable."""
    return RiskConfig(
        sizing=sizing_cfg or sizing(),
        kelly=KellyConfig(window=50, min_trades=20, kelly_fraction=0.5, cap=1.0, prior_factor=1.0),
        stops=stop_cfg or stops(),
        daily_loss=DailyLossConfig(daily_loss_pct=daily_loss_pct),
        consecutive_losses=ConsecutiveLossesConfig(half_after=1000, pause_after=1000),
        drawdown=DrawdownThrottleConfig(throttle_drawdown=0.9, release_drawdown=0.5),
        liquidity=LiquidityPauseConfig(window=100, min_ratio=0.3),
        entry_throttle=EntryThrottleConfig(min_entry_interval="1s", max_entries=1000, window="24h"),
        fee_hurdle=FeeHurdleConfig(expected_move_atr=1.0, fee_multiple=0.0),
    )


def venue_config(*, latency_ns: int = 0, slippage_bps: float = BPS, impact_coef: float = 1.0,
                 participation: float = 0.1, funding_rate: float = 0.0,
                 margin: MarginConfig | None = None) -> VenueConfig:
    return VenueConfig(
        fees=FeeConfig(maker_rate=0.0002, taker_rate=TAKER),
        fill_model=FillModelConfig(latency_ns=latency_ns, slippage_bps=slippage_bps, impact_coef=impact_coef,
                                   participation_rate=participation, queue_delay_bars=0),
        margin=margin or MarginConfig(mode="cross", default_leverage=1.0, default_brackets=BRACKETS),
        funding=FundingConfig(source="constant", rate=funding_rate, interval="8h", offset="0h"),
    )


def market_price(bar_open: float, side: int, qty: float, impact: float, *, bps: float = BPS,
                 coef: float = 1.0) -> float:
    """docs/execution.md: open ± (slippage_bps·1e-4·open + impact_coef·qty·|price_impact|)."""
    return bar_open + side * (bps * 1e-4 * bar_open + coef * abs(qty) * abs(impact))


# --- scenario ----------------------------------------------------------------------------------
@dataclass
class Scenario:
    """Per-bar arrays (mutable) for bars and signals; `run` wires them through the engine."""

    n: int
    t0: int = DAY0
    o: np.ndarray = field(init=False)
    h: np.ndarray = field(init=False)
    lo: np.ndarray = field(init=False)
    c: np.ndarray = field(init=False)
    vol: np.ndarray = field(init=False)
    atr: np.ndarray = field(init=False)
    impact: np.ndarray = field(init=False)
    ofi: np.ndarray = field(init=False)
    cds: np.ndarray = field(init=False)
    intensity: np.ndarray = field(init=False)
    el: np.ndarray = field(init=False)
    es: np.ndarray = field(init=False)
    xl: np.ndarray = field(init=False)
    xs: np.ndarray = field(init=False)
    strength: np.ndarray = field(init=False)
    source: np.ndarray = field(init=False)
    regime: np.ndarray = field(init=False)
    flatten: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.n
        self.o = np.full(n, 100.0)
        self.h = np.full(n, 100.5)
        self.lo = np.full(n, 99.5)
        self.c = np.full(n, 100.0)
        self.vol = np.full(n, 1e6)
        self.atr = np.full(n, ATR)
        self.impact = np.zeros(n)
        self.ofi = np.zeros(n)
        self.cds = np.full(n, np.nan)
        self.intensity = np.ones(n)
        self.el = np.zeros(n, bool)
        self.es = np.zeros(n, bool)
        self.xl = np.zeros(n, bool)
        self.xs = np.zeros(n, bool)
        self.strength = np.ones(n)
        self.source = np.zeros(n, np.int64)
        self.regime = np.ones(n)
        self.flatten = np.zeros(n, bool)

    @property
    def ts_open(self) -> np.ndarray:
        return self.t0 + np.arange(self.n, dtype=np.int64) * MIN

    @property
    def ts_event(self) -> np.ndarray:
        return self.ts_open + 59 * NS_PER_S

    def bar(self, i: int, o: float, h: float, lo: float, c: float) -> None:
        self.o[i], self.h[i], self.lo[i], self.c[i] = o, h, lo, c

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        bars = pl.DataFrame({
            "ts_event": self.ts_event, "ts_open": self.ts_open, "open": self.o, "high": self.h, "low": self.lo,
            "close": self.c, "volume": self.vol, "atr100": self.atr, "price_impact": self.impact,
            "ofi_ema5": self.ofi, "cum_delta_slope": self.cds, "trade_intensity": self.intensity,
        })
        sig = pl.DataFrame({
            "ts_event": self.ts_event, "enter_long": self.el, "enter_short": self.es, "exit_long": self.xl,
            "exit_short": self.xs, "strength": self.strength, "confidence": np.ones(self.n),
            "source": self.source, "regime_factor": self.regime, "flatten": self.flatten,
        })
        return bars, sig

    def run(self, *, instrument: Instrument = PERP, engine: EngineSettings | None = None,
            risk: RiskConfig | None = None, venue: VenueConfig | None = None,
            equity: float = EQUITY0, funding: FundingSeries | None = None) -> EngineRun:
        bars, sig = self.frames()
        return run_engine(build_inputs(bars, sig), instrument=instrument, engine=engine or EngineSettings(),
                          risk=risk or risk_config(), venue=venue or venue_config(), initial_equity=equity,
                          bar_spec="1m", funding=funding)


def long_at(n: int, bar: int = 3, source: int = 0) -> Scenario:
    s = Scenario(n)
    s.el[bar] = True
    s.source[bar] = source
    return s


def rows(df: pl.DataFrame) -> list[dict]:
    return df.to_dicts()


def check_books(run: EngineRun, initial: float = EQUITY0) -> None:
    """Accounting: with everything closed, final equity = initial + Σ trade pnl (1e-9 relative)."""
    res = run.result
    final = res.equity["equity"][-1]
    expect = initial + float(res.trades["pnl"].sum())
    assert final == pytest.approx(expect, rel=1e-9, abs=1e-9)
    assert float(res.fills["fee"].sum()) == pytest.approx(float(res.trades["fees"].sum()), rel=1e-9, abs=1e-12)


# --- market entries ------------------------------------------------------------------------------
def test_entry_fills_at_next_open_with_risk_size_slippage_impact_and_fee():
    s = long_at(8)
    s.o[4] = 101.0
    s.impact[3] = 0.0001  # the last CLOSED bar's impact is used ...
    s.impact[4] = 0.5  # ... not the fill bar's own
    run = s.run()
    # qty = 90 000 × 0.01 / (2 × 1.5) = 300 (caps: position 100 %, loss at stop 3 % → 2700 / 3.0788 ≫ 300)
    qty = 300.0
    price = 101.0 + (1.0 * 1e-4 * 101.0 + 1.0 * 300.0 * 0.0001)  # 101.0401
    assert rows(run.decisions) == [{"ts_event": int(s.ts_event[3]), "bar": 3, "side": 1, "qty": qty,
                                        "reason": int(Reason.SIGNAL_CUSTOM), "signal": 0, "is_entry": True}]
    f = run.result.fills
    assert f.height == 2  # the entry and the close at the end of the data
    e = f.row(0, named=True)
    assert e["ts_event"] == s.ts_open[4] and e["side"] == 1 and e["qty"] == qty
    assert e["price"] == pytest.approx(price, rel=1e-12)
    assert e["fee"] == pytest.approx(qty * price * TAKER, rel=1e-12)
    assert e["reason"] == int(Reason.SIGNAL_CUSTOM) and not e["is_maker"]
    # equity at the close of bar 3 is untouched, at bar 4 it is wallet + unrealized at the close (100)
    eq = run.result.equity
    assert eq["equity"][3] == EQUITY0
    assert eq["equity"][4] == pytest.approx(EQUITY0 - qty * price * TAKER + qty * (100.0 - price), rel=1e-12)
    check_books(run)


@pytest.mark.parametrize("source, reason", [(1, Reason.SIGNAL_A), (2, Reason.SIGNAL_B), (3, Reason.SIGNAL_AB)])
def test_entry_reason_and_signal_follow_the_source_bits(source, reason):
    run = long_at(6, source=source).run()
    d = run.decisions.row(0, named=True)
    assert (d["reason"], d["signal"]) == (int(reason), source)
    f = run.result.fills.row(0, named=True)
    assert (f["reason"], f["signal"]) == (int(reason), source)
    t = run.result.trades.row(0, named=True)
    assert (t["entry_reason"], t["signal"], t["exit_reason"]) == (int(reason), source, int(Reason.END_OF_DATA))


@pytest.mark.parametrize("over, strength, regime, expect", [
    # the ATR budget binds: 90 000 × 0.01 / 3 = 300
    ({}, 1.0, 1.0, 300.0),
    # strength clipped to 1.5 and regime 0.5: 300 × 1.5 × 0.5 = 225
    ({}, 7.0, 0.5, 225.0),
    # strength clipped up to 0.5: 150
    ({}, 0.1, 1.0, 150.0),
    # position cap 5 %: 0.05 × 90 000 / 100 (the decision close) = 45
    ({"max_position_pct": 0.05}, 1.0, 1.0, 45.0),
    # capital in use 20 %: 18 000 / 100 = 180
    ({"max_capital_in_use": 0.2}, 1.0, 1.0, 180.0),
    # loss at stop 1 %: 900 / (3 + 0.0004 × (100 + 97)) = 292.3216..., rounded down to the lot step
    ({"max_loss_at_stop_pct": 0.01}, 1.0, 1.0, math.floor(900.0 / (3.0 + 0.0004 * 197.0) * 1000) / 1000),
])
def test_entry_quantity_follows_the_sizing_formula_and_the_binding_cap(over, strength, regime, expect):
    s = long_at(6)
    s.strength[3] = strength
    s.regime[3] = regime
    run = s.run(risk=risk_config(sizing_cfg=sizing(**over)))
    assert run.decisions["qty"].to_list() == [pytest.approx(expect, rel=1e-12)]
    assert run.result.fills["qty"][0] == pytest.approx(expect, rel=1e-12)


def test_entry_sizing_uses_the_decision_bar_atr_and_close_not_the_fill_bar():
    s = long_at(6)
    s.atr[3] = 2.5  # 900 / 3.75 = 240
    s.atr[4] = 0.5  # (would give 1200)
    s.c[3] = 100.0
    s.o[4] = 150.0  # a position cap would use 100, not 150
    run = s.run(risk=risk_config(sizing_cfg=sizing(max_position_pct=0.2)))  # 18 000 / 100 = 180 < 240
    assert run.decisions["qty"].to_list() == [180.0]


@pytest.mark.parametrize("latency, fill_bar", [
    (0, 4),
    (NS_PER_S, 4),  # the next bar opens exactly at decision + latency: eligible
    (NS_PER_S + 1, 5),
    (61 * NS_PER_S, 5),
    (61 * NS_PER_S + 1, 6),
    (121 * NS_PER_S, 6),
    (150 * NS_PER_S, 7),
])
def test_latency_moves_the_fill_to_the_first_bar_opening_after_decision_plus_latency(latency, fill_bar):
    s = long_at(9)
    s.o[:] = 100.0 + np.arange(9)  # a different open per bar
    s.h[:] = s.o + 0.5
    s.lo[:] = s.o - 0.5
    s.c[:] = s.o
    s.c[3] = 100.0
    s.impact[:] = 0.0
    run = s.run(venue=venue_config(latency_ns=latency), engine=EngineSettings(close_at_end=False))
    assert run.decisions["bar"].to_list() == [3]
    f = run.result.fills
    assert f.height == 1
    assert f["ts_event"][0] == s.ts_open[fill_bar]
    assert f["ts_event"][0] >= s.ts_event[3] + latency
    assert f["price"][0] == pytest.approx(market_price(s.o[fill_bar], 1, 300.0, 0.0), rel=1e-12)
    # nothing is held (and the equity does not move) before the fill bar
    eq = run.result.equity
    assert (eq["position_notional"][:fill_bar] == 0.0).all()
    assert eq["position_notional"][fill_bar] != 0.0


def test_participation_cap_splits_an_entry_into_partial_fills():
    s = long_at(10)
    s.vol[4] = 1000.0  # 10 % → 100
    s.vol[5] = 0.005  # 10 % → 0.0005 < one lot step: nothing fills on this bar
    s.vol[6] = 1500.0  # → 150
    s.vol[7] = 1e6  # → the remaining 50
    s.o[4:8] = [100.0, 101.0, 102.0, 103.0]
    s.impact[3:7] = [0.001, 0.002, 0.003, 0.004]
    run = s.run(engine=EngineSettings(close_at_end=False))
    assert run.decisions.height == 1 and run.decisions["qty"][0] == 300.0
    f = run.result.fills
    assert f["ts_event"].to_list() == [s.ts_open[4], s.ts_open[6], s.ts_open[7]]
    assert f["qty"].to_list() == [100.0, 150.0, 50.0]
    expect = [market_price(100.0, 1, 100.0, 0.001), market_price(102.0, 1, 150.0, 0.003),
              market_price(103.0, 1, 50.0, 0.004)]
    assert f["price"].to_list() == pytest.approx(expect, rel=1e-12)
    assert f["fee"].to_list() == pytest.approx([q * p * TAKER for q, p in zip([100, 150, 50], expect)], rel=1e-12)
    assert f["order_id"].n_unique() == 1
    notional = [q * s.c[i] for q, i in ((100, 4), (100, 5), (250, 6), (300, 7))]
    assert run.result.equity["position_notional"][4:8].to_list() == pytest.approx(notional, rel=1e-12)


def test_participation_cap_splits_an_exit_too():
    s = long_at(12)
    s.xl[6] = True
    s.vol[7] = 1200.0  # 120 of the 300
    s.vol[8] = 1000.0  # 100
    run = s.run(engine=EngineSettings(close_at_end=False))
    f = run.result.fills
    assert f["ts_event"].to_list() == [s.ts_open[4], s.ts_open[7], s.ts_open[8], s.ts_open[9]]
    assert f["qty"].to_list() == [300.0, 120.0, 100.0, 80.0]
    assert f["reason"].to_list()[1:] == [int(Reason.SIGNAL_CUSTOM)] * 3
    assert run.decisions["bar"].to_list() == [3, 6]  # one exit decision, no new one while it fills
    t = run.result.trades
    assert t.height == 1 and t["qty"][0] == 300.0 and t["exit_ts"][0] == s.ts_open[9]


# --- protective stops ---------------------------------------------------------------------------
def _entry_price(s: Scenario, qty: float = 300.0) -> float:
    return market_price(s.o[4], 1, qty, s.impact[3])


def test_l1_stop_fills_at_the_level_on_exactly_the_touching_bar():
    s = long_at(12)
    s.atr[4:] = 5.0  # the level uses the ATR at the decision (bar 3), not later bars
    entry = _entry_price(s)
    level = entry - 1.5 * ATR
    s.bar(6, 99.0, 99.5, level + 1e-6, 99.0)  # close, no touch
    s.bar(7, 98.0, 98.5, level, 98.0)  # touches exactly
    s.impact[6] = 0.002
    run = s.run()
    f = run.result.fills
    assert f.height == 2
    x = f.row(1, named=True)
    assert x["ts_event"] == s.ts_event[7] and x["reason"] == int(Reason.STOP_L1) and x["side"] == -1
    assert x["qty"] == 300.0
    expect = level - (1.0 * 1e-4 * level + 300.0 * 0.002)
    assert x["price"] == pytest.approx(expect, rel=1e-12)
    assert x["fee"] == pytest.approx(300.0 * expect * TAKER, rel=1e-12)
    t = run.result.trades.row(0, named=True)
    assert t["exit_reason"] == int(Reason.STOP_L1) and t["exit_ts"] == s.ts_event[7] and t["bars_held"] == 3
    # a stop is not a decision: only the entry is in the journal
    assert run.decisions["bar"].to_list() == [3]
    assert (run.result.equity["position_notional"][7:] == 0.0).all()
    check_books(run)


def test_l1_stop_gapped_through_fills_at_the_open():
    s = long_at(10)
    entry = _entry_price(s)
    s.bar(6, 90.0, 91.0, 89.0, 90.0)
    run = s.run()
    x = run.result.fills.row(1, named=True)
    assert x["reason"] == int(Reason.STOP_L1) and x["ts_event"] == s.ts_event[6]
    assert x["price"] == pytest.approx(90.0 - 1e-4 * 90.0, rel=1e-12)
    assert entry - 3.0 > 90.0


def test_l1_stop_of_a_short():
    s = Scenario(10)
    s.es[3] = True
    entry = market_price(100.0, -1, 300.0, 0.0)
    level = entry + 3.0
    s.bar(5, 101.0, level - 1e-6, 100.5, 101.0)
    s.bar(6, 101.0, level, 100.5, 101.0)
    run = s.run()
    f = run.result.fills
    assert f["side"].to_list() == [-1, 1]
    assert f["ts_event"][1] == s.ts_event[6] and f["reason"][1] == int(Reason.STOP_L1)
    assert f["price"][1] == pytest.approx(level + 1e-4 * level, rel=1e-12)
    check_books(run)


def test_trailing_take_profit_arms_after_one_atr_and_exits_at_the_trail():
    s = long_at(12)
    entry = _entry_price(s)  # 100.01; arms when the best high ≥ 102.01
    s.bar(4, 100.0, 101.0, 99.5, 100.5)
    s.bar(5, 101.0, 103.0, 100.8, 102.5)  # best 103 → armed at this close, trail = 103 − 0.8 × 2 = 101.4
    s.bar(6, 102.5, 102.9, 101.4 + 1e-6, 102.0)  # not touched
    s.bar(7, 102.0, 102.2, 101.0, 101.2)  # touched
    run = s.run()
    x = run.result.fills.row(1, named=True)
    trail = 103.0 - 0.8 * 2.0
    assert x["reason"] == int(Reason.TAKE_PROFIT_TRAIL) and x["ts_event"] == s.ts_event[7]
    assert x["price"] == pytest.approx(trail - 1e-4 * trail, rel=1e-12)
    assert entry + 1.0 * ATR <= 103.0
    check_books(run)


def test_trailing_take_profit_does_not_arm_below_one_atr():
    s = long_at(12)
    entry = _entry_price(s)
    s.bar(5, 101.0, entry + ATR - 1e-6, 100.8, 101.5)  # just short of arming
    s.bar(7, 101.0, 101.2, 99.0, 99.5)  # would touch a trail, is far above L1
    run = s.run()
    assert run.result.fills["reason"].to_list() == [int(Reason.SIGNAL_CUSTOM), int(Reason.END_OF_DATA)]


def test_l2_order_flow_stop_after_three_adverse_closes():
    s = long_at(14)
    s.ofi[5:8] = -0.3
    s.o[8] = 99.0
    run = s.run()
    d = run.decisions.rows(named=True)
    assert [(r["bar"], r["reason"], r["side"], r["qty"]) for r in d] == [
        (3, int(Reason.SIGNAL_CUSTOM), 1, 300.0), (7, int(Reason.STOP_L2), -1, 300.0)]
    x = run.result.fills.row(1, named=True)
    assert x["ts_event"] == s.ts_open[8] and x["reason"] == int(Reason.STOP_L2)
    assert x["price"] == pytest.approx(market_price(99.0, -1, 300.0, 0.0), rel=1e-12)


def test_l2_run_is_broken_by_a_bar_at_the_threshold_and_by_nan():
    s = long_at(16)
    s.ofi[5:7] = -0.3
    s.ofi[7] = -0.25  # not < −0.25
    s.ofi[8:10] = -0.3
    s.ofi[10] = np.nan
    s.ofi[11:14] = -0.3  # third adverse close: bar 13
    run = s.run()
    assert run.decisions["bar"].to_list() == [3, 13]
    assert run.decisions["reason"][1] == int(Reason.STOP_L2)


@pytest.mark.parametrize("max_bars", [1, 3, 5])
def test_l3_time_stop_after_max_holding_bars(max_bars):
    s = long_at(14)
    run = s.run(risk=risk_config(stop_cfg=stops(max_holding_bars=max_bars)))
    # bars closed with the position: 4, 5, ...; the max_bars-th is bar 3 + max_bars
    assert run.decisions["bar"].to_list() == [3, 3 + max_bars]
    assert run.decisions["reason"][1] == int(Reason.STOP_L3)
    t = run.result.trades.row(0, named=True)
    assert t["exit_reason"] == int(Reason.STOP_L3) and t["exit_ts"] == s.ts_open[4 + max_bars]
    assert t["bars_held"] == max_bars


def test_stops_off_means_no_stop_exit():
    s = long_at(10)
    s.bar(6, 90.0, 91.0, 89.0, 90.0)
    s.ofi[5:9] = -0.9
    run = s.run(engine=EngineSettings(stops=False))
    assert run.result.fills["reason"].to_list() == [int(Reason.SIGNAL_CUSTOM), int(Reason.END_OF_DATA)]


# --- signal exits, flatten ----------------------------------------------------------------------
def test_signal_exit_closes_at_the_next_open():
    s = long_at(10)
    s.xl[6] = True
    s.o[7] = 101.0
    s.impact[6] = 0.001
    run = s.run()
    assert [(r["bar"], r["side"], r["is_entry"]) for r in run.decisions.rows(named=True)] == [
        (3, 1, True), (6, -1, False)]
    x = run.result.fills.row(1, named=True)
    assert x["ts_event"] == s.ts_open[7] and x["reason"] == int(Reason.SIGNAL_CUSTOM)
    assert x["price"] == pytest.approx(market_price(101.0, -1, 300.0, 0.001), rel=1e-12)
    t = run.result.trades.row(0, named=True)
    entry = _entry_price(s)
    gross = 300.0 * (x["price"] - entry)
    assert t["gross_pnl"] == pytest.approx(gross, rel=1e-9)
    assert t["pnl"] == pytest.approx(gross - 300.0 * (entry + x["price"]) * TAKER, rel=1e-9)
    assert t["bars_held"] == 3
    check_books(run)


def test_exit_short_signal_does_not_close_a_long():
    s = long_at(10)
    s.xs[6] = True
    run = s.run()
    assert run.decisions["bar"].to_list() == [3]


def test_exit_source_match():
    s = long_at(12, source=1)  # an A position
    s.xl[6], s.source[6] = True, 2  # a B exit: ignored
    s.xl[8], s.source[8] = True, 1  # an A exit: closes
    run = s.run()
    assert run.decisions["bar"].to_list() == [3, 8]
    assert run.result.fills["reason"][1] == int(Reason.SIGNAL_A)
    assert run.result.fills["ts_event"][1] == s.ts_open[9]
    # without source matching the B exit closes the A position
    run = s.run(engine=EngineSettings(exit_source_match=False))
    assert run.decisions["bar"].to_list() == [3, 6]
    assert run.result.fills["reason"][1] == int(Reason.SIGNAL_B)


def test_exit_with_both_sources_closes_an_a_position():
    s = long_at(10, source=1)
    s.xl[6], s.source[6] = True, 3
    run = s.run()
    assert run.decisions["bar"].to_list() == [3, 6]


def test_flatten_closes_at_the_next_open_and_blocks_entries_while_set():
    s = long_at(14)
    s.flatten[6] = True
    s.el[8] = True
    s.flatten[8] = True  # entry signal under the flag: refused
    s.el[9] = True  # flag cleared: allowed
    run = s.run(engine=EngineSettings(close_at_end=False))
    d = run.decisions.rows(named=True)
    assert [(r["bar"], r["reason"], r["is_entry"]) for r in d] == [
        (3, int(Reason.SIGNAL_CUSTOM), True), (6, int(Reason.FLATTEN_REGIME), False),
        (9, int(Reason.SIGNAL_CUSTOM), True)]
    f = run.result.fills
    assert f["ts_event"].to_list() == [s.ts_open[4], s.ts_open[7], s.ts_open[10]]
    assert f["reason"][1] == int(Reason.FLATTEN_REGIME)
    sc = run.result.state_changes.rows(named=True)
    F, A = int(TradingState.FLATTEN), int(TradingState.ACTIVE)
    assert [(r["ts_event"], r["from_state"], r["to_state"], r["reason"]) for r in sc] == [
        (s.ts_event[6], A, F, int(Reason.FLATTEN_REGIME)), (s.ts_event[7], F, A, int(Reason.RECOVERED)),
        (s.ts_event[8], A, F, int(Reason.FLATTEN_REGIME)), (s.ts_event[9], F, A, int(Reason.RECOVERED))]


def test_flatten_flag_blocks_entries_with_the_risk_rules_off():
    s = long_at(8)
    s.flatten[3] = True
    run = s.run(engine=EngineSettings(sizing="fraction", fraction=0.5, risk_rules=False))
    assert run.decisions.height == 0


def test_flatten_flag_closes_with_the_risk_rules_off():
    s = long_at(10)
    s.flatten[6] = True
    run = s.run(engine=EngineSettings(sizing="fraction", fraction=0.5, risk_rules=False))
    # fraction sizing: 0.5 × 90 000 / (100 × 1.0004) = 449.82..., rounded down to the lot step
    assert run.decisions["qty"][0] == PERP.round_qty_down(0.5 * EQUITY0 / (100.0 * (1.0 + TAKER)))
    assert run.decisions["bar"].to_list() == [3, 6]
    assert run.result.fills["reason"][1] == int(Reason.FLATTEN_REGIME)


def test_flatten_cancels_an_entry_still_waiting_for_its_latency():
    s = long_at(10)
    s.flatten[4] = True
    run = s.run(venue=venue_config(latency_ns=61 * NS_PER_S), engine=EngineSettings(close_at_end=False))
    assert run.result.fills.height == 0


def test_entry_signal_while_a_position_is_open_is_ignored():
    s = long_at(10)
    s.el[5] = True
    s.es[6] = True
    run = s.run()
    assert run.decisions["bar"].to_list() == [3]
    assert run.result.fills.height == 2


# --- account rules ------------------------------------------------------------------------------
def test_daily_loss_limit_blocks_entries_for_the_rest_of_the_utc_day():
    s = long_at(16)
    s.t0 = DAY0 - 10 * MIN  # bar 10 opens at 00:00 of the next UTC day
    s.bar(5, 85.0, 86.0, 84.0, 85.0)  # gap through the L1 stop: −15 × 300 = −4500 ≈ −5 % of the day start
    s.el[[6, 9, 10]] = True
    run = s.run(risk=risk_config(daily_loss_pct=0.03))
    f = run.result.fills
    assert f["reason"].to_list()[:2] == [int(Reason.SIGNAL_CUSTOM), int(Reason.STOP_L1)]
    assert run.decisions["bar"].to_list() == [3, 10]
    t0 = run.result.trades.row(0, named=True)
    assert t0["pnl"] < -0.03 * EQUITY0
    # the new entry is sized from the equity at the close of bar 10
    eq10 = run.result.equity["equity"][10]
    assert eq10 == pytest.approx(EQUITY0 + t0["pnl"], rel=1e-12)
    assert run.decisions["qty"][1] == PERP.round_qty_down(eq10 * 0.01 / 3.0)
    sc = run.result.state_changes.rows(named=True)
    H, A = int(TradingState.HALTED), int(TradingState.ACTIVE)
    assert [(r["ts_event"], r["from_state"], r["to_state"], r["reason"]) for r in sc] == [
        (s.ts_event[5], A, H, int(Reason.DAILY_LOSS_LIMIT)), (s.ts_event[10], H, A, int(Reason.NEW_DAY))]


def test_daily_loss_below_the_limit_does_not_halt():
    s = long_at(12)
    s.bar(5, 85.0, 86.0, 84.0, 85.0)
    s.el[6] = True
    run = s.run(risk=risk_config(daily_loss_pct=0.06))  # −4500 − fees > −5400
    assert run.decisions["bar"].to_list() == [3, 6]
    assert run.result.state_changes.height == 0


def test_entry_interval_throttle_through_the_engine():
    s = long_at(14)
    s.xl[5] = True  # flat again at bar 6's open
    s.el[[6, 7, 8]] = True  # bar 3 + 5 min = bar 8
    r = risk_config()
    r = r.model_copy(update={"entry_throttle": EntryThrottleConfig(min_entry_interval="5m", max_entries=1000,
                                                                   window="24h")})
    run = s.run(risk=r)
    assert run.decisions.filter(pl.col("is_entry"))["bar"].to_list() == [3, 8]


# --- end of data, funding, spot ---------------------------------------------------------------
def test_close_at_end_closes_at_the_last_close():
    s = long_at(8)
    s.c[7] = 104.0
    run = s.run()
    x = run.result.fills.row(1, named=True)
    assert x["ts_event"] == s.ts_event[7] and x["reason"] == int(Reason.END_OF_DATA)
    assert x["price"] == 104.0 and x["fee"] == pytest.approx(300.0 * 104.0 * TAKER, rel=1e-12)
    eq = run.result.equity
    assert eq["position_notional"][7] == 0.0 and eq["equity"][7] == eq["cash"][7]
    check_books(run)
    run = s.run(engine=EngineSettings(close_at_end=False))
    assert run.result.trades.height == 0 and run.result.fills.height == 1
    entry = _entry_price(s)
    assert run.result.equity["equity"][7] == pytest.approx(
        EQUITY0 - 300.0 * entry * TAKER + 300.0 * (104.0 - entry), rel=1e-12)


@pytest.mark.parametrize("side", [1, -1])
def test_funding_paid_once_at_the_8h_stamp(side):
    s = Scenario(10)
    s.t0 = DAY0 + 8 * 3600 * NS_PER_S - 450 * NS_PER_S  # 08:00:00 falls inside bar 7 (opens 07:59:30)
    (s.el if side == 1 else s.es)[3] = True
    s.c[7] = 102.0
    rate = 0.0001
    run = s.run(venue=venue_config(funding_rate=rate))
    t = run.result.trades.row(0, named=True)
    assert t["funding"] == pytest.approx(side * 300.0 * 102.0 * rate, rel=1e-12)
    assert t["pnl"] == pytest.approx(t["gross_pnl"] - t["fees"] - t["funding"], rel=1e-12)
    eq = run.result.equity
    # cash drops by the payment at the close of bar 7, not before
    assert eq["cash"][7] - eq["cash"][6] == pytest.approx(-side * 300.0 * 102.0 * rate, rel=1e-9)
    check_books(run)


def test_funding_not_paid_by_a_position_opened_after_the_stamp():
    s = Scenario(10)
    s.t0 = DAY0 + 8 * 3600 * NS_PER_S - 150 * NS_PER_S  # 08:00 inside bar 2
    s.el[3] = True
    run = s.run(venue=venue_config(funding_rate=0.0001))
    assert run.result.trades["funding"][0] == 0.0


@pytest.mark.parametrize("mark, expect_mark", [(np.nan, 102.0), (101.5, 101.5)])
def test_funding_series_events_are_paid_at_their_own_mark_or_the_close(mark, expect_mark):
    s = long_at(10)
    s.c[6] = 102.0
    stamp = int(s.ts_open[6]) + 10 * NS_PER_S  # inside bar 6
    before = int(s.ts_open[2])  # before the entry: not paid
    series = FundingSeries(ts=np.array([before, stamp], dtype=np.int64), rate=np.array([0.01, 0.0002]),
                           mark=np.array([100.0, mark]))
    run = s.run(funding=series)
    assert run.result.trades["funding"][0] == pytest.approx(300.0 * expect_mark * 0.0002, rel=1e-12)
    check_books(run)


def test_spot_ignores_short_entries_and_pays_no_funding():
    s = Scenario(12)
    s.t0 = DAY0 + 8 * 3600 * NS_PER_S - 450 * NS_PER_S
    s.es[2] = True
    s.el[3] = True
    s.xl[8] = True
    s.es[10] = True
    spot_margin = MarginConfig(mode="cross", default_leverage=1.0)
    run = s.run(instrument=SPOT, venue=venue_config(funding_rate=0.0001, margin=spot_margin))
    assert [(r["bar"], r["side"]) for r in run.decisions.rows(named=True)] == [(3, 1), (8, -1)]
    assert run.result.trades.height == 1 and run.result.trades["funding"][0] == 0.0
    check_books(run)


# --- liquidation ---------------------------------------------------------------------------------
def test_isolated_liquidation_at_the_liquidation_price_within_the_bar():
    s = long_at(10)
    s.atr[3] = 0.3  # qty = 900 / 0.45 = 2000 → notional ≈ 200 000, 10× isolated
    s.impact[:] = 0.0
    entry = market_price(100.0, 1, 2000.0, 0.0)  # 100.01
    q = 2000.0
    iso = q * entry / 10.0
    # Binance isolated long: LP = (WB + cum − Q·EP) / (Q·mmr − Q), bracket 50k–600k: mmr 0.005, cum 50
    lp = (iso + 50.0 - q * entry) / (q * 0.005 - q)
    assert 50_000 <= q * lp < 600_000
    s.bar(5, 99.0, 99.5, lp + 1e-6, 99.0)  # close, not reached
    s.bar(6, 95.0, 95.5, lp, 92.0)  # reached
    margin = MarginConfig(mode="isolated", default_leverage=10.0, max_leverage_cap=20.0,
                          liquidation_fee_rate=0.0125, default_brackets=BRACKETS)
    run = s.run(venue=venue_config(margin=margin), engine=EngineSettings(stops=False),
                risk=risk_config(sizing_cfg=sizing(max_position_pct=10.0, max_same_direction_pct=20.0,
                                                   max_capital_in_use=50.0)))
    assert run.decisions["qty"][0] == q
    f = run.result.fills
    assert f.height == 2
    x = f.row(1, named=True)
    assert x["reason"] == int(Reason.LIQUIDATION) and x["ts_event"] == s.ts_event[6]
    assert x["price"] == pytest.approx(lp, rel=1e-12)
    # fee capped at the margin left: the position loses exactly its isolated margin
    assert x["fee"] == pytest.approx(iso + q * (lp - entry), rel=1e-9)
    t = run.result.trades.row(0, named=True)
    assert t["pnl"] == pytest.approx(-iso - q * entry * TAKER, rel=1e-9)
    check_books(run)


# --- documented NaN handling of optional columns ---------------------------------------------
def _no_column_run(drop: str, **kw) -> EngineRun:
    s = long_at(8)
    bars, sig = s.frames()
    bars = bars.drop(drop)
    return run_engine(build_inputs(bars, sig), instrument=PERP, engine=EngineSettings(), initial_equity=EQUITY0,
                      bar_spec="1m", venue=venue_config(), **kw)


def test_missing_price_impact_means_no_impact_term():
    """engine/inputs.py: price_impact NaN → impact term 0 (a NaN must not reach the fill price)."""
    run = _no_column_run("price_impact", risk=risk_config())
    assert run.result.fills["price"][0] == pytest.approx(market_price(100.0, 1, 300.0, 0.0), rel=1e-12)


def test_missing_trade_intensity_with_the_liquidity_rule_off_allows_entries():
    """Bars from klines carry no trade intensity; with the liquidity pause disabled they trade.

    (engine/inputs.py says "trade_intensity: NaN → not paused on that bar", but the rule pauses on
    an unknown intensity when it is enabled; the config's `enabled` flag is the documented way out.)
    """
    base = risk_config()
    if "enabled" not in LiquidityPauseConfig.model_fields:
        pytest.skip("LiquidityPauseConfig has no `enabled` flag in this tree")
    r = base.model_copy(update={"liquidity": LiquidityPauseConfig(enabled=False, window=100, min_ratio=0.3)})
    s = long_at(8)
    bars, sig = s.frames()
    run = run_engine(build_inputs(bars.drop("trade_intensity"), sig), instrument=PERP, engine=EngineSettings(),
                     risk=r, venue=venue_config(), initial_equity=EQUITY0, bar_spec="1m")
    assert run.decisions["bar"].to_list() == [3]
