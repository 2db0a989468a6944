"""Every registered strategy on a real-pipeline feature frame (synthetic trades -> volume bars ->
features): prefix causality, bounded lookback, warm-up, and plain-python references of A, B and
ema_cross."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.bars.spec import VolumeBars
from market.config import PipelineConfig
from market.pipeline import batch_bars_features
from market.synth import SynthConfig, generate_trades
from strategies import (
    EmaCrossParams,
    FamilyParams,
    MomentumParams,
    ReversionParams,
    available,
    get,
)
from strategies.ema_cross import ema_adjust_false_nb

BOOLS = ["enter_long", "enter_short", "exit_long", "exit_short"]
PARAM_SETS = {
    "orderflow_momentum": [MomentumParams(), MomentumParams(ofi_lookback=5, ofi_threshold=0.1, zscore_window=100)],
    "vwap_reversion": [ReversionParams(), ReversionParams(entry_window=50, entry_quantile=0.8)],
    "orderflow_family": [FamilyParams(), FamilyParams(reversion={"entry_window": 50, "ofi_lookback": 5},
                                                      regime={"extreme_impact_z": 2.0})],
    "ema_cross": [EmaCrossParams(), EmaCrossParams(fast_span=3, slow_span=10)],
}


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    trades = generate_trades(SynthConfig(seed=7, n_trades=60_000))
    f = batch_bars_features(trades, PipelineConfig(bars=VolumeBars(threshold=60.0), higher_timeframe=None))
    assert f.height > 1500
    return f


@pytest.fixture(scope="module")
def full(frame) -> dict[tuple[str, int], pl.DataFrame]:
    return {(name, i): get(name).signals(frame, p) for name, ps in PARAM_SETS.items() for i, p in enumerate(ps)}


def test_every_registered_strategy_is_covered_and_fires(full):
    assert sorted(PARAM_SETS) == available()
    for (name, i), sig in full.items():
        counts = sig.select(pl.col(BOOLS).sum()).row(0)
        assert counts[0] + counts[1] > 0, (name, i, counts)  # otherwise the causality checks prove nothing


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prefix_causality(frame, full, data):
    """signals(first k rows) == first k rows of signals(all rows), for every registered strategy."""
    k = data.draw(st.integers(1, frame.height), label="k")
    for (name, i), expected in full.items():
        got = get(name).signals(frame.head(k), PARAM_SETS[name][i])
        assert got.equals(expected.head(k)), (name, i, k)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bounded_lookback(frame, full, data):
    """The last row computed on only `lookback_bars` trailing rows equals the full-history row."""
    u = data.draw(st.floats(0, 1), label="u")
    for (name, i), expected in full.items():
        s, p = get(name), PARAM_SETS[name][i]
        n = s.lookback_bars(p)
        if n is None:
            continue
        t = n - 1 + int(u * (frame.height - n))
        got = s.signals(frame.slice(t - n + 1, n), p).tail(1)
        assert got.equals(expected.slice(t, 1)), (name, i, t)


def test_warmup_rows_are_quiet(full):
    for (name, i), sig in full.items():
        w = get(name).warmup_bars(PARAM_SETS[name][i])
        assert not sig.head(w).select(pl.any_horizontal("enter_long", "enter_short")).to_series().any(), name


def test_momentum_matches_plain_python(frame, full):
    p = PARAM_SETS["orderflow_momentum"][0]
    rows = frame.select("ofi_ema10", "cum_delta_slope", "trade_intensity_z20", "large_trade_ratio_z20",
                        "avg_buy_size", "avg_sell_size").rows()
    exp = {c: [] for c in BOOLS + ["strength", "confidence"]}
    prev = math.nan
    for ofi, slope, iz, lz, buy, sell in rows:
        nl = (iz > 1.5) + (lz > 1.0) + (buy > 1.2 * sell)  # comparisons with NaN are False in python
        ns = (iz > 1.5) + (lz > 1.0) + (sell > 1.2 * buy)
        el = ofi > 0.15 and slope > 0 and nl >= 2
        es = ofi < -0.15 and slope < 0 and ns >= 2
        n = nl if el else ns
        exp["enter_long"].append(el)
        exp["enter_short"].append(es)
        exp["exit_long"].append(es or (ofi < 0 and prev >= 0))
        exp["exit_short"].append(el or (ofi > 0 and prev <= 0))
        exp["strength"].append(0.5 + n / 3.0 if el or es else 1.0)
        exp["confidence"].append(n / 3.0 if el or es else 0.0)
        prev = ofi
    got = full[("orderflow_momentum", 0)]
    assert p == MomentumParams()
    for c, values in exp.items():
        assert got.get_column(c).to_list() == values, c


def test_reversion_matches_plain_python(frame, full):
    p = PARAM_SETS["vwap_reversion"][1]
    dev, ofi, rv, sell, buy = (frame.get_column(c).to_list() for c in
                               ("vwap_deviation", "ofi_ema10", "realized_vol_20", "sell_volume", "buy_volume"))

    def falling(v, t):  # OLS slope of the last 5 values < 0, by numpy's least squares
        return t >= 4 and np.polyfit(np.arange(5.0), np.array(v[t - 4:t + 1]), 1)[0] < -1e-12

    exp = {c: [] for c in BOOLS + ["strength"]}
    for t in range(frame.height):
        window = sorted(abs(x) for x in dev[max(0, t - 50):t])
        h = 49 * 0.8
        lo = math.floor(h)
        complete = len(window) == 50 and not any(map(math.isnan, window))
        e = window[lo] + (h - lo) * (window[lo + 1] - window[lo]) if complete else math.nan
        common = abs(ofi[t]) < 0.08 and t >= 3 and rv[t] < rv[t - 3]
        el = dev[t] < -e and common and falling(sell, t)
        es = dev[t] > e and common and falling(buy, t)
        reverted = abs(dev[t]) < p.deviation_exit
        exp["enter_long"].append(el)
        exp["enter_short"].append(es)
        exp["exit_long"].append(reverted and not el)
        exp["exit_short"].append(reverted and not es)
        exp["strength"].append(min(1.5, 0.5 + 0.5 * abs(dev[t]) / e) if el or es else 1.0)
    got = full[("vwap_reversion", 1)]
    assert sum(exp["enter_long"]) + sum(exp["enter_short"]) > 3
    for c, values in exp.items():
        assert got.get_column(c).to_list() == values, c


def test_reversion_threshold_starts_after_its_warmup(frame):
    from strategies.vwap_reversion import entry_threshold

    e = frame.select(entry_threshold(pl.col("vwap_deviation"), 500, 0.9)).to_series()
    first = int(e.is_not_nan().arg_true()[0])
    assert first == get("vwap_reversion").warmup_bars(ReversionParams()) == 519


# --- ema_cross ----------------------------------------------------------------------------------

@pytest.mark.parametrize("span", [1, 2, 3, 12, 48])
def test_ema_matches_pandas_bit_for_bit(frame, span):
    close = frame.get_column("close").to_numpy()
    ours = ema_adjust_false_nb(np.ascontiguousarray(close), span)
    ref = pd.Series(close).ewm(span=span, adjust=False, min_periods=span).mean().to_numpy()
    assert np.array_equal(ours, ref, equal_nan=True)


def test_ema_cross_by_hand():
    close = [10.0] * 48 + [11.0] * 6 + [1.0] * 10
    f = pl.DataFrame({"ts_event": list(range(len(close))), "close": close})
    out = get("ema_cross").signals(f, EmaCrossParams())
    # both EMAs sit exactly at 10 until row 47 (pandas keeps a constant series exact); row 48 jumps:
    # fast > slow after fast <= slow -> entry; the drop at row 54 takes fast below slow -> exit
    assert out.get_column("enter_long").arg_true().to_list() == [48]
    assert out.get_column("exit_long").arg_true().to_list() == [54]
    assert not out.get_column("enter_short").any() and not out.get_column("exit_short").any()
    assert out.filter("enter_long").select("strength", "confidence").row(0) == (1.0, 1.0)
    # a jump on row 47, where the slow EMA is first defined, has no defined previous row: no entry
    early = f.with_columns(pl.Series("close", [10.0] * 47 + [11.0] * 17))
    assert not get("ema_cross").signals(early, EmaCrossParams()).get_column("enter_long").any()


def test_ema_cross_matches_pandas_reference(frame, full):
    close = pd.Series(frame.get_column("close").to_numpy())
    fast = close.ewm(span=12, adjust=False, min_periods=12).mean()
    slow = close.ewm(span=48, adjust=False, min_periods=48).mean()
    up = (fast > slow) & (fast.shift(1) <= slow.shift(1))  # NaN comparisons are False in pandas
    down = (fast < slow) & (fast.shift(1) >= slow.shift(1))
    got = full[("ema_cross", 0)]
    assert got.get_column("enter_long").to_list() == up.tolist()
    assert got.get_column("exit_long").to_list() == down.tolist()
    assert up.sum() > 3
