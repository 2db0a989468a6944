"""Benchmark: the backtest loop (signals + decision kernel + risk + fills + ledger), not a test.

    .venv/bin/python bench/backtest.py                                  # 1M / 100k / 5M bars
    .venv/bin/python bench/backtest.py --bars 2e5 --bt-bars 2e4 --family-bars 1e6   # quicker

Needs the `bench` extra (`pip install -e .[bench]`: vectorbt, backtrader). Measured in one run:

1. *EMA crossover* (fast 12 / slow 48 on close, long only, market orders at the next bar's open,
   0.04 % fee, no slippage, all-in sizing) on a seeded gapless random walk of 1-minute bars:
   - this engine: `strategies.get("ema_cross")` signals, `build_inputs`, `run_engine` with
     `sizing: fraction` (rules, stops, rounding, volume cap off) on a spot instrument — timed
     whole, and the bare `engine.kernel.run_nb` call alone (allocations excluded);
   - vectorbt `Portfolio.from_signals` on the same signals shifted by one bar, `price=open`;
   - backtrader on the first `--bt-bars` bars (it is slow), the same signals fed as extra lines;
   and checks that every engine makes the same orders (bar, side, price; size within 1e-9
   relative) and the same final equity (within 1e-9 relative); exit status 1 if not.
2. *Order-flow family* (A + B under the regime filter C) with risk sizing and every risk rule and
   stop on, on a USD-M perpetual with the Binance BTCUSDT bracket table, on `--family-bars` bars:
   bars + features are built once from synthetic trades (volume bars of ~200 trades, ~7 min) and the frame is
   tiled with shifted timestamps up to the requested length (prices jump back at each seam; this
   measures throughput, not a strategy). Reported: the signal computation rate and the kernel
   loop rate (run_engine and bare run_nb).

Why the sizing agrees: the engine sizes an all-in entry at the decision bar's close,
qty = fraction · wallet / (close_t · (1 + fee)), and fills it at open_{t+1}; vectorbt's
`size=np.inf` buys (cash / (1 + fee)) / open_{t+1}. The bars here are gapless
(open_{t+1} = close_t, as in a continuous 1-minute market), so both are the same quantity. With
gapped bars the engine's quantity differs from vectorbt's by open_{t+1}/close_t (see
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl

import strategies
from backtest.runner import run_engine
from core.enums import Market
from core.instrument import Instrument
from engine import kernel as k
from engine.config import EngineSettings
from engine.inputs import BarInputs, build_inputs
from execution import (
    BINANCE_BTCUSDT_BRACKETS,
    FeeConfig,
    FillModelConfig,
    MarginConfig,
    VenueConfig,
)
from execution.fill_model import instrument_params
from execution.ledger import (
    ACC_N_FILLS,
    N_EQ,
    new_account_state,
    new_fills_journal,
    new_position_state,
    new_trades_journal,
)
from execution.margin import brackets_from_rows
from market.features.primitives import WilderATR
from risk.gate import RiskConfig, new_arrays
from risk.stops import new_state as new_stop_state

FEE = 0.0004
INITIAL = 100_000.0
FAST, SLOW = 12, 48
NS_MIN = 60_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01 UTC
REL_TOL = 1e-9


# ---------------------------------------------------------------- helpers
def best_of(fn, reps: int) -> tuple[float, object]:
    """Fastest wall time of `reps` calls (GC off while timing) and the last result."""
    best, out = float("inf"), None
    for _ in range(reps):
        gc.collect()
        gc.disable()
        try:
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
        finally:
            gc.enable()
    return best, out


def rate(n: int, seconds: float) -> str:
    r = n / seconds
    return f"{r / 1e6:.2f}M" if r >= 1e6 else f"{r / 1e3:.1f}k"


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def walk_bars(n: int, seed: int) -> pl.DataFrame:
    """Seeded gapless random walk of 1-minute bars (open_t = close_{t-1}), OHLC consistent,
    large volume, and a Wilder ATR(100) column (required by build_inputs; unused by fraction sizing)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    wick = np.abs(rng.normal(0.0, 5e-4, (2, n)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    ts_open = T0 + np.arange(n, dtype=np.int64) * NS_MIN
    atr = WilderATR(100)(high, low, close)
    atr = np.where(np.isfinite(atr), atr, atr[np.isfinite(atr)][0] if np.isfinite(atr).any() else 1.0)
    return pl.DataFrame({"ts_event": ts_open + NS_MIN, "ts_open": ts_open, "open": open_, "high": high, "low": low,
                         "close": close, "volume": np.full(n, 1e12), "atr100": atr})


def kernel_args(b: BarInputs, *, instrument: Instrument, engine: EngineSettings, risk: RiskConfig,
                venue: VenueConfig, initial_equity: float) -> tuple:
    """Everything `run_nb` takes, allocated exactly as `backtest.runner.run_engine` does."""
    n = b.n
    insts = [instrument]
    inst = np.ascontiguousarray(instrument_params(insts)[0])
    funding_mode = 0 if venue.funding.source == "series" else 1
    ep = engine.to_params(instrument, venue.fees.taker_rate, funding_mode)
    es, ei = k.new_engine_state()
    ra = new_arrays(risk)
    pos, pos_ts = new_position_state(insts, venue.margin.leverages(insts))
    cap = engine.journal_capacity or max(1024, n // 2 + 16)
    fills, fill_ts = new_fills_journal(cap)
    trades, trade_ts = new_trades_journal(cap)
    # the runner's layout: column-major, one extra column for the per-bar margin ratio
    eq, eq_ts = np.empty((n, N_EQ + 1), order="F"), np.zeros(n, dtype=np.int64)
    return (0, n, b.ts_event, b.ts_open, b.open, b.high, b.low, b.close, b.volume, b.atr, b.price_impact, b.ofi_ema5,
            b.cum_delta_slope, b.trade_intensity, b.enter_long, b.enter_short, b.exit_long, b.exit_short,
            b.strength, b.source, b.regime_factor, b.flatten, ep, venue.fees.to_params(),
            venue.fill_model.to_params(), inst, venue.margin.to_params(), venue.margin.bracket_params(insts),
            venue.funding.to_params(), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), es, ei, *ra[:8], ra.sm_log,
            risk.stops.to_params(), new_stop_state(), pos, pos_ts, new_account_state(initial_equity), fills,
            fill_ts, trades, trade_ts, eq, eq_ts, np.zeros((cap, k.N_DECISION)), np.zeros(cap, dtype=np.int64))


def time_kernel(b: BarInputs, reps: int, **kw) -> tuple[float, int]:
    """Best time of the bare run_nb over all bars (fresh state each rep, allocation not timed)."""
    best, fills = float("inf"), 0
    for _ in range(reps):
        args = kernel_args(b, **kw)
        gc.collect()
        gc.disable()
        try:
            t = time.perf_counter()
            k.run_nb(*args)
            best = min(best, time.perf_counter() - t)
        finally:
            gc.enable()
        fills = int(args[-9][ACC_N_FILLS])  # acc
    return best, fills


# ---------------------------------------------------------------- EMA crossover: ours
SPOT = Instrument(symbol="WALKUSDT", market=Market.SPOT, tick_size=1e-8, step_size=1e-8, max_leverage=1)
EMA_ENGINE = EngineSettings(sizing="fraction", fraction=1.0, round_qty=False, cap_by_volume=False, risk_rules=False,
                            stops=False, close_at_end=False)
EMA_VENUE = VenueConfig(fees=FeeConfig(maker_rate=FEE, taker_rate=FEE),
                        fill_model=FillModelConfig(slippage_bps=0, impact_coef=0))


def ours_orders(run) -> dict:
    """Orders (bar, side, price, size) and final equity of an engine run."""
    f = run.result.fills
    eq = run.result.equity["equity"].to_numpy()
    return {"bar": ((f["ts_event"].to_numpy() - T0) // NS_MIN).astype(np.int64), "side": f["side"].to_numpy(),
            "price": f["price"].to_numpy(), "size": f["qty"].to_numpy(), "fees": f["fee"].to_numpy(),
            "final": float(eq[-1]), "equity": eq, "n_trades": run.result.trades.height + int(len(f) % 2)}


def run_ours(bars: pl.DataFrame, reps: int) -> dict:
    strat = strategies.get("ema_cross")
    params = strategies.params_from_dict("ema_cross", {"fast_span": FAST, "slow_span": SLOW})
    strat.signals(bars.head(500), params)  # compile / warm
    t_sig, sig = best_of(lambda: strat.signals(bars, params), reps)
    t_inp, inputs = best_of(lambda: build_inputs(bars, sig, atr_column="atr100"), reps)
    kw = {"instrument": SPOT, "engine": EMA_ENGINE, "risk": RiskConfig(), "venue": EMA_VENUE, "initial_equity": INITIAL}
    run_engine(inputs.slice(0, 1000), bar_spec="1m", **kw)  # compile / warm
    t_run, run = best_of(lambda: run_engine(inputs, bar_spec="1m", **kw), reps)
    t_nb, _ = time_kernel(inputs, reps, **kw)
    return {"t_signals": t_sig, "t_inputs": t_inp, "t_run": t_run, "t_kernel": t_nb, "signals": sig,
            "inputs": inputs, **ours_orders(run)}


# ---------------------------------------------------------------- EMA crossover: vectorbt
def run_vectorbt(bars: pl.DataFrame, sig: pl.DataFrame, reps: int) -> dict:
    import pandas as pd
    import vectorbt as vbt

    idx = pd.date_range("2024-01-01", periods=bars.height, freq="1min")
    close = pd.Series(bars["close"].to_numpy(), index=idx)
    open_ = pd.Series(bars["open"].to_numpy(), index=idx)
    # signal at bar t's close -> order at bar t+1's open
    entries = pd.Series(sig["enter_long"].to_numpy(), index=idx).shift(1, fill_value=False)
    exits = pd.Series(sig["exit_long"].to_numpy(), index=idx).shift(1, fill_value=False)

    def go(c, o, en, ex):
        return vbt.Portfolio.from_signals(c, en, ex, price=o, fees=FEE, init_cash=INITIAL, size=np.inf,
                                          direction="longonly", accumulate=False, freq="1min")

    go(close.iloc[:2000], open_.iloc[:2000], entries.iloc[:2000], exits.iloc[:2000])  # numba compile (~13 s)
    t, pf = best_of(lambda: go(close, open_, entries, exits), reps)
    o = pf.orders.records
    trades = pf.trades.records
    return {"t_run": t, "bar": o["idx"].astype(np.int64), "side": np.where(o["side"] == 0, 1, -1),
            "price": o["price"], "size": o["size"], "fees": o["fees"], "final": float(pf.final_value()),
            "equity": pf.value().to_numpy(), "n_trades": len(trades)}


# ---------------------------------------------------------------- EMA crossover: backtrader
def run_backtrader(bars: pl.DataFrame, sig: pl.DataFrame) -> dict:
    import backtrader as bt
    import pandas as pd

    class SignalData(bt.feeds.PandasData):
        """OHLCV plus our precomputed enter/exit flags (so the comparison is about the engine)."""
        lines = ("enter", "exit")
        params = (("enter", -1), ("exit", -1), ("openinterest", None))

    class AllIn(bt.Strategy):
        """Market orders at the next bar's open (cheat-on-open off). Entry size as in our engine:
        cash / (close_t · (1 + fee)), nudged down by ulps if backtrader's cash check
        (cost + commission <= cash) would refuse it by rounding."""

        def __init__(self):
            self.log = []
            self.pending = None

        def notify_order(self, order):
            if order.status == order.Completed:
                ex = order.executed
                self.log.append((len(self.data) - 1, 1 if order.isbuy() else -1, ex.price, abs(ex.size), ex.comm))
            if order.status in (order.Completed, order.Canceled, order.Margin, order.Rejected):
                if order.status != order.Completed:  # a refused order makes the comparison FAIL
                    self.log.append((len(self.data) - 1, 0, float(order.status), np.nan, np.nan))
                self.pending = None

        def next(self):
            if self.pending is not None:
                return
            if not self.position:
                if self.data.enter[0] > 0.5:
                    cash = self.broker.getcash()
                    px = self.data.close[0]
                    size = cash / (px * (1.0 + FEE))
                    while (cash - abs(size) * px) - abs(size) * FEE * px < 0.0:  # backtrader's own check
                        size = np.nextafter(size, 0.0)
                    self.pending = self.buy(size=size)
            elif self.data.exit[0] > 0.5:
                self.pending = self.close()

    df = pd.DataFrame({c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
                      index=pd.to_datetime(bars["ts_open"].to_numpy(), unit="ns"))
    df["enter"] = sig["enter_long"].to_numpy().astype(np.float64)
    df["exit"] = sig["exit_long"].to_numpy().astype(np.float64)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(SignalData(dataname=df))
    cerebro.addstrategy(AllIn)
    cerebro.broker.setcash(INITIAL)
    cerebro.broker.addcommissioninfo(bt.CommInfoBase(commission=FEE, commtype=bt.CommInfoBase.COMM_PERC,
                                                     percabs=True, stocklike=True))
    t = time.perf_counter()
    strat = cerebro.run(preload=True)[0]
    t = time.perf_counter() - t
    log = np.array(strat.log, dtype=np.float64).reshape(-1, 5)
    n_entries = int((log[:, 1] == 1).sum())
    return {"t_run": t, "bar": log[:, 0].astype(np.int64), "side": log[:, 1].astype(np.int64), "price": log[:, 2],
            "size": log[:, 3], "fees": log[:, 4], "final": float(cerebro.broker.getvalue()), "n_trades": n_entries}


def agree(name: str, ours: dict, other: dict) -> tuple[bool, str]:
    """Same orders (bar, side; price and size within REL_TOL) and final equity within REL_TOL."""
    n_o, n_x = len(ours["bar"]), len(other["bar"])
    problems = []
    if n_o != n_x:
        problems.append(f"{n_o} orders vs {n_x}")
    m = min(n_o, n_x)
    size_rel = fee_rel = price_rel = 0.0
    if m:
        price_rel = float(np.max(np.abs(ours["price"][:m] - other["price"][:m]) / np.abs(ours["price"][:m])))
        bad = np.flatnonzero((ours["bar"][:m] != other["bar"][:m]) | (ours["side"][:m] != other["side"][:m])
                             | ~(np.abs(ours["price"][:m] - other["price"][:m]) <= REL_TOL * np.abs(ours["price"][:m])))
        if bad.size:
            j = int(bad[0])
            problems.append(f"order {j} differs: ours bar {ours['bar'][j]} side {ours['side'][j]} price "
                            f"{ours['price'][j]!r}, {name} bar {other['bar'][j]} side {other['side'][j]} price "
                            f"{other['price'][j]!r}")
        size_rel = float(np.max(np.abs(ours["size"][:m] - other["size"][:m]) / np.abs(ours["size"][:m])))
        fee_rel = float(np.max(np.abs(ours["fees"][:m] - other["fees"][:m]) / np.abs(ours["fees"][:m])))
        if not size_rel <= REL_TOL:
            problems.append(f"order size rel diff {size_rel:.2e}")
    eq_rel = rel(ours["final"], other["final"])
    if not eq_rel <= REL_TOL:
        problems.append(f"final equity {ours['final']!r} vs {other['final']!r}")
    curve = ""
    if "equity" in other and "equity" in ours and len(other["equity"]) == len(ours["equity"]):
        c = float(np.max(np.abs(ours["equity"] - other["equity"]) / np.abs(ours["equity"])))
        curve = f", equity curve max rel diff {c:.1e}"
        if not c <= REL_TOL:
            problems.append(f"equity curve rel diff {c:.2e}")
    ok = not problems
    msg = (f"{'PASS' if ok else 'FAIL'}  ours vs {name}: {n_o} / {n_x} orders, {ours['n_trades']} / "
           f"{other['n_trades']} trades, final equity {ours['final']:.6f} / {other['final']:.6f} "
           f"(rel diff {eq_rel:.1e}{curve}), max rel diff of order price {price_rel:.1e}, size {size_rel:.1e}, "
           f"fee {fee_rel:.1e}")
    if problems:
        msg += "\n      " + "; ".join(problems)
    return ok, msg


# ---------------------------------------------------------------- order-flow family
PERP = Instrument(symbol="SYNBTCUSDT", market=Market.USDM, tick_size=0.1, step_size=0.001, min_qty=0.001,
                  min_notional=5.0, max_leverage=125)
FAMILY_VENUE = VenueConfig(margin=MarginConfig(default_brackets=brackets_from_rows(BINANCE_BTCUSDT_BRACKETS)))


def family_features(n_bars: int, base_bars: int, seed: int) -> tuple[pl.DataFrame, int, float]:
    """Bars + features from synthetic trades (volume bars of ~200 trades, ~7 min at 0.5 trades/s), tiled to n_bars rows with
    timestamps shifted by the span of the base frame per copy."""
    from market.bars.spec import VolumeBars
    from market.config import PipelineConfig
    from market.pipeline import batch_bars_features
    from market.synth import SynthConfig, generate_trades

    t = time.perf_counter()
    trades = generate_trades(SynthConfig(seed=seed, symbol="SYNBTCUSDT", initial_price=60_000.0, tick_size=0.1,
                                         lot_size=0.001, base_rate=0.5, n_trades=base_bars * 200))
    thr = float(trades["quantity"].sum()) / base_bars
    base = batch_bars_features(trades, PipelineConfig(bars=VolumeBars(threshold=round(thr, 3)),
                                                      higher_timeframe=None))
    t_build = time.perf_counter() - t
    span = int(base["ts_event"][-1] - base["ts_open"][0]) + 1
    reps = -(-n_bars // base.height)
    ts_cols = [c for c in ("ts_event", "ts_open", "ts_close", "ts_init") if c in base.columns]
    parts = [base.with_columns([(pl.col(c) + r * span).alias(c) for c in ts_cols]) for r in range(reps)]
    return pl.concat(parts).head(n_bars), base.height, t_build


def run_family(n_bars: int, base_bars: int, reps: int) -> dict:
    feats, n_base, t_build = family_features(n_bars, base_bars, seed=1)
    strat = strategies.get("orderflow_family")
    params = strategies.params_from_dict("orderflow_family", None)
    strat.signals(feats.head(5000), params)  # warm
    t_sig, sig = best_of(lambda: strat.signals(feats, params), max(1, reps - 1))
    inputs = build_inputs(feats, sig, atr_column="atr100")
    # every rule at its default; only the state-change log is sized for millions of bars
    risk = RiskConfig.model_validate({"trading_state": {"log_capacity": max(4096, n_bars // 20)}})
    kw = {"instrument": PERP, "engine": EngineSettings(), "risk": risk, "venue": FAMILY_VENUE,
              "initial_equity": INITIAL}
    run_engine(inputs.slice(0, 5000), bar_spec="volume", **kw)  # warm
    t_run, run = best_of(lambda: run_engine(inputs, bar_spec="volume", **kw), reps)
    t_nb, _ = time_kernel(inputs, reps, **kw)
    r = run.result
    return {"n": feats.height, "n_base": n_base, "t_build": t_build, "t_signals": t_sig, "t_run": t_run,
            "t_kernel": t_nb, "n_fills": r.fills.height, "n_trades": r.trades.height,
            "n_entries": int(sig["enter_long"].sum() + sig["enter_short"].sum()),
            "final": float(r.equity["equity"][-1]), "state_changes": r.state_changes.height}


# ---------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=float, default=1e6, help="bars of the EMA comparison (ours, vectorbt)")
    ap.add_argument("--bt-bars", type=float, default=1e5, help="bars for backtrader (a prefix of the same bars)")
    ap.add_argument("--family-bars", type=float, default=5e6, help="bars of the order-flow family loop")
    ap.add_argument("--family-base", type=float, default=5e4, help="bars built from trades before tiling")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (best time kept)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-vectorbt", action="store_true")
    ap.add_argument("--no-backtrader", action="store_true")
    a = ap.parse_args()
    n, n_bt, n_fam = int(a.bars), int(a.bt_bars), int(a.family_bars)
    warnings.filterwarnings("ignore")
    ok_all = True
    print(f"EMA crossover {FAST}/{SLOW}, long only, next-bar-open market orders, fee {FEE:.2%}, all-in; "
          f"gapless random walk, seed {a.seed}")

    bars = walk_bars(n, a.seed)
    ours = run_ours(bars, a.reps)
    print(f"  ours: {len(ours['bar'])} orders, final equity {ours['final']:.4f}")
    rows = [("ours: run_engine (fills/trades/equity frames incl.)", n, ours["t_run"]),
            ("ours: bare kernel run_nb", n, ours["t_kernel"]),
            ("ours: ema_cross signals", n, ours["t_signals"]),
            ("ours: build_inputs", n, ours["t_inputs"])]
    checks = []
    vb = bt_ = None
    if not a.no_vectorbt:
        vb = run_vectorbt(bars, ours["signals"], a.reps)
        rows.append(("vectorbt Portfolio.from_signals", n, vb["t_run"]))
        ok, msg = agree("vectorbt", ours, vb)
        ok_all &= ok
        checks.append(msg)
    if not a.no_backtrader and n_bt > 0:
        bars_bt = bars.head(n_bt)
        ours_bt = run_ours(bars_bt, 1) if n_bt != n else ours
        bt_ = run_backtrader(bars_bt, ours_bt["signals"])
        rows.append(("backtrader (preload, stdstats off)", n_bt, bt_["t_run"]))
        rows.append(("ours: run_engine on the backtrader bars", n_bt, ours_bt["t_run"]))
        ours_bt = {kk: v for kk, v in ours_bt.items() if kk != "equity"}
        ok, msg = agree("backtrader", ours_bt, bt_)
        ok_all &= ok
        checks.append(msg)

    print()
    print(f"| {'stage':<56} | {'bars':>10} | {'seconds':>8} | {'bars/s':>8} |")
    print(f"|{'-' * 58}|{'-' * 12}|{'-' * 10}|{'-' * 10}|")
    for name, nb, t in rows:
        print(f"| {name:<56} | {nb:>10,} | {t:>8.3f} | {rate(nb, t):>8} |")
    print()
    ours_run, ours_nb = n / ours["t_run"], n / ours["t_kernel"]
    if vb:
        v = n / vb["t_run"]
        print(f"ratio ours/vectorbt:   run_engine {ours_run / v:.2f}x, bare kernel {ours_nb / v:.2f}x")
    if bt_:
        b = n_bt / bt_["t_run"]
        print(f"ratio ours/backtrader: run_engine {ours_run / b:,.0f}x, bare kernel {ours_nb / b:,.0f}x "
              f"(ours at {n:,} bars, backtrader at {n_bt:,})")
    print(f"target >= 5M bars/s on 1M bars: run_engine {rate(n, ours['t_run'])}, bare kernel "
          f"{rate(n, ours['t_kernel'])}")
    print()
    for msg in checks:
        print(msg)

    if n_fam > 0:
        print()
        fam = run_family(n_fam, int(a.family_base), a.reps)
        print(f"Order-flow family, risk sizing, all risk rules and stops on, USD-M perp with BTCUSDT brackets: "
              f"{fam['n']:,} bars ({fam['n_base']:,} volume bars built from synthetic trades in "
              f"{fam['t_build']:.1f} s, tiled)")
        print(f"  {fam['n_entries']:,} entry signals, {fam['n_fills']:,} fills, {fam['n_trades']:,} trades, "
              f"{fam['state_changes']} trading-state changes, final equity {fam['final']:.2f}")
        print(f"| {'stage':<56} | {'bars':>10} | {'seconds':>8} | {'bars/s':>8} |")
        print(f"|{'-' * 58}|{'-' * 12}|{'-' * 10}|{'-' * 10}|")
        for name, t in (("family signals (A + B + C)", fam["t_signals"]),
                        ("run_engine (all rules)", fam["t_run"]), ("bare kernel run_nb (all rules)", fam["t_kernel"])):
            print(f"| {name:<56} | {fam['n']:>10,} | {t:>8.3f} | {rate(fam['n'], t):>8} |")
        print(f"target >= 2M bars/s: run_engine {rate(fam['n'], fam['t_run'])}, "
              f"bare kernel {rate(fam['n'], fam['t_kernel'])}")
    print()
    print("agreement:", "PASS" if ok_all else "FAIL")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
