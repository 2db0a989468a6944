"""Strategy B (VWAP mean reversion): the causal rolling quantile against a plain-python reference,
each entry condition on crafted frames, exits, strength."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import ReversionParams, get
from strategies.vwap_reversion import entry_threshold

B = get("vwap_reversion")
NAN = math.nan
# W=4 previous bars, median, 1-bar vol lag, 3-bar volume slope
P = ReversionParams(entry_window=4, entry_quantile=0.5, vol_fall_bars=1, flow_slope_bars=3, deviation_exit=0.1)


def reference_threshold(values: list[float], window: int, q: float) -> list[float]:
    """Plain python: x[lo] + (h - lo) * (x[lo+1] - x[lo]), h = (W-1) q, over the sorted |x| of rows t-W..t-1."""
    out = []
    for t in range(len(values)):
        prev = [abs(v) for v in values[max(0, t - window):t]]
        if len(prev) < window or any(math.isnan(v) for v in prev):
            out.append(NAN)
            continue
        s = sorted(prev)
        h = (window - 1) * q
        lo = math.floor(h)
        hi = min(lo + 1, window - 1)
        out.append(s[lo] + (h - lo) * (s[hi] - s[lo]))
        # numpy's quantile is the same estimator; it evaluates the interpolation from the upper
        # end for fractions >= 0.5, so it may differ in the last bits
        assert out[-1] == pytest.approx(float(np.quantile(np.array(prev), q)), rel=1e-14, abs=1e-300)
    return out


def threshold(values: list[float], window: int, q: float) -> list[float]:
    f = pl.DataFrame({"d": values}, schema={"d": pl.Float64})
    return f.select(entry_threshold(pl.col("d"), window, q)).to_series().to_list()


def same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b))


def test_threshold_by_hand():
    vals = [0.25, -0.5, 0.75, -1.0, -0.75, 2.0]
    # row 4: median of |.| over rows 0..3 = (0.5 + 0.75)/2; row 5: rows 1..4 = {0.5, 0.75, 0.75, 1.0} -> 0.75
    assert same(threshold(vals, 4, 0.5), [NAN, NAN, NAN, NAN, 0.625, 0.75])
    # q = 0.9: h = 2.7 -> 0.75 + 0.7 * 0.25 on rows 0..3
    assert threshold(vals, 4, 0.9)[4] == 0.75 + (3 * 0.9 - 2) * 0.25
    # q = 0.7 on {0, 41}: 0 + 0.7 * 41 exactly (numpy's upper-end form gives 28.699999999999996)
    assert threshold([0.0, 41.0, 0.0], 2, 0.7) [2] == 0.7 * 41.0
    # a NaN inside the window makes the threshold NaN until it has left
    assert same(threshold([NAN, 1.0, 2.0, 3.0, 4.0, 5.0], 3, 0.5), [NAN, NAN, NAN, NAN, 2.0, 3.0])


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(NAN)), min_size=0, max_size=60),
    window=st.integers(2, 12),
    q=st.floats(0.01, 0.99),
)
def test_threshold_matches_plain_python(values, window, q):
    assert same(threshold(values, window, q), reference_threshold(values, window, q))


def frame(dev, ofi, rv, sell, buy) -> pl.DataFrame:
    n = len(dev)
    return pl.DataFrame(
        {"ts_event": list(range(n)), "vwap_deviation": dev, "ofi_ema10": ofi, "realized_vol_20": rv,
         "sell_volume": sell, "buy_volume": buy},
        schema={"ts_event": pl.Int64, **{c: pl.Float64 for c in ("vwap_deviation", "ofi_ema10", "realized_vol_20",
                                                                  "sell_volume", "buy_volume")}},
    )


# rows 0..3 are history; row 4 is the bar under test (threshold 0.625)
BASE = {"dev": [0.25, -0.5, 0.75, -1.0, -0.75], "ofi": [0.0] * 5, "rv": [5.0, 5.0, 5.0, 5.0, 4.0],
            "sell": [9.0, 9.0, 5.0, 4.0, 3.0], "buy": [1.0] * 5}


def last(**changes) -> dict:
    spec = {k: list(v) for k, v in BASE.items()}
    for key, (i, value) in changes.items():
        spec[key][i] = value
    return B.signals(frame(**spec), P).row(4, named=True)


def test_long_entry_all_conditions():
    row = last()
    assert (row["enter_long"], row["enter_short"], row["exit_long"], row["exit_short"]) == (True, False, False, False)
    # strength = 0.5 + 0.5 * 0.75 / 0.625
    assert row["strength"] == 0.5 + 0.5 * 0.75 / 0.625
    assert row["confidence"] == (0.5 + 0.5 * 0.75 / 0.625) - 0.5


@pytest.mark.parametrize(
    "change",
    [
        {"dev": (4, -0.625)},  # deviation must be strictly beyond the threshold
        {"dev": (4, -0.6)},
        {"ofi": (4, 0.08)},  # |EMA(OFI)| < 0.08 strict
        {"ofi": (4, -0.09)},
        {"ofi": (4, NAN)},
        {"rv": (4, 5.0)},  # vol must fall: equal is not falling
        {"rv": (4, 6.0)},
        {"rv": (3, NAN)},  # vol 1 bar ago unknown
        {"sell": (4, 5.0)},  # sell volume 5,4,5: slope 0
        {"sell": (2, 3.0)},  # 3,4,3: slope 0
    ],
)
def test_each_long_condition_is_required(change):
    row = last(**change)
    assert not row["enter_long"] and not row["enter_short"]
    assert (row["strength"], row["confidence"]) == (1.0, 0.0)


def test_current_bar_is_excluded_from_its_threshold():
    # including row 4 would give the median of {0.5, 0.75, 1.0, 0.75} = 0.75 and -0.75 would not pass
    assert last()["enter_long"]
    assert same(threshold(BASE["dev"], 4, 0.5)[4:], [0.625])


def test_needs_a_full_previous_window():
    spec = {k: list(v)[1:] for k, v in BASE.items()}  # only 3 previous rows before the test bar
    out = B.signals(frame(**spec), P)
    assert not out.get_column("enter_long").any()


def test_short_mirrors_with_buy_volume():
    spec = {k: list(v) for k, v in BASE.items()}
    spec["dev"][4] = 0.75
    assert not B.signals(frame(**spec), P).row(4, named=True)["enter_short"]  # buy volume flat
    spec["buy"] = [9.0, 9.0, 5.0, 4.0, 3.0]
    spec["sell"] = [1.0] * 5
    row = B.signals(frame(**spec), P).row(4, named=True)
    assert (row["enter_long"], row["enter_short"]) == (False, True)
    assert row["strength"] == 0.5 + 0.5 * 0.75 / 0.625


def test_slope_uses_exactly_the_last_n_bars():
    # OLS slope over rows 2..4 of 1,2,1.5 is +0.25 -> not falling; over rows 0..4 it would be negative
    spec = {k: list(v) for k, v in BASE.items()}
    spec["sell"] = [9.0, 9.0, 1.0, 2.0, 1.5]
    assert not B.signals(frame(**spec), P).row(4, named=True)["enter_long"]
    spec["sell"] = [1.0, 1.0, 2.0, 1.9, 1.5]  # -0.25 slope over the last 3
    assert B.signals(frame(**spec), P).row(4, named=True)["enter_long"]


def test_strength_caps_at_one_and_a_half():
    row = last(dev=(4, -1.5))  # 0.5 + 0.5 * 2.4 = 1.7 -> 1.5
    assert row["enter_long"] and row["strength"] == 1.5 and row["confidence"] == 1.0


def test_exit_when_reverted_and_never_against_own_entry():
    spec = {k: list(v) for k, v in BASE.items()}
    spec["dev"] = [0.25, -0.5, 0.09, -0.1, 0.05]
    out = B.signals(frame(**spec), P)
    assert out.get_column("exit_long").to_list() == [False, False, True, False, True]
    assert out.get_column("exit_long").to_list() == out.get_column("exit_short").to_list()
    # a threshold below deviation_exit: the entry row keeps only the exit of the other side
    loose = ReversionParams(entry_window=4, entry_quantile=0.5, vol_fall_bars=1, flow_slope_bars=3,
                            deviation_exit=0.9)
    row = B.signals(frame(**BASE), loose).row(4, named=True)
    assert (row["enter_long"], row["exit_long"], row["exit_short"]) == (True, False, True)


def test_warmup_and_lookback():
    assert B.warmup_bars(ReversionParams()) == 19 + 500
    assert B.lookback_bars(ReversionParams()) == 501
    assert B.warmup_bars(P) == 19 + 4
    assert B.required_feature_settings(ReversionParams(vwap_window=30)) == {"vwap_window": 30}
