"""Filter C's regime boundaries and the family combiner's per-row rules on crafted frames."""

from __future__ import annotations

import math

import polars as pl
import pytest

from core.enums import Reason
from core.errors import ConfigError
from strategies import (
    FamilyParams,
    Regime,
    RegimeParams,
    ReversionParams,
    classify_regimes,
    get,
)

NAN = math.nan
R = Regime


def regimes(rows: list[tuple[float, float, float]], params: RegimeParams | None = None) -> pl.DataFrame:
    f = pl.DataFrame({"ts_event": list(range(len(rows))), "vol_ratio": [r[0] for r in rows],
                      "duration_ratio": [r[1] for r in rows], "price_impact_z100": [r[2] for r in rows]},
                     schema={"ts_event": pl.Int64, "vol_ratio": pl.Float64, "duration_ratio": pl.Float64,
                             "price_impact_z100": pl.Float64})
    return classify_regimes(f, params or RegimeParams())


REGIME_CASES = [
    ((3.0, 1.0, 0.0), R.NORMAL),  # 3 is not > 3; 3 > 1.8 but duration 1.0 is not < 0.5
    ((3.0001, 1.0, 0.0), R.EXTREME),
    ((1.0, 1.0, 3.0), R.NORMAL),
    ((1.0, 1.0, 3.01), R.EXTREME),
    ((NAN, 1.0, 3.5), R.EXTREME),  # one extreme reading is enough
    ((4.0, NAN, NAN), R.EXTREME),
    ((NAN, 1.0, 0.0), R.UNKNOWN),
    ((1.0, NAN, 0.0), R.UNKNOWN),
    ((1.0, 1.0, NAN), R.UNKNOWN),
    ((1.8, 0.4, 0.0), R.NORMAL),  # 1.8 is not > 1.8
    ((1.81, 0.4, 0.0), R.HIGH_VOL),
    ((1.81, 0.5, 0.0), R.NORMAL),  # 0.5 is not < 0.5
    ((2.5, 0.3, 3.5), R.EXTREME),  # EXTREME is checked before HIGH_VOL
    ((0.6, 2.5, 0.0), R.NORMAL),
    ((0.59, 2.5, 0.0), R.LOW_VOL),
    ((0.59, 2.0, 0.0), R.NORMAL),
    ((0.59, 2.5, -5.0), R.LOW_VOL),  # a very negative impact z is not extreme
]


def test_regime_boundaries():
    out = regimes([c for c, _ in REGIME_CASES])
    assert out.get_column("regime").to_list() == [int(r) for _, r in REGIME_CASES]
    factor = {R.NORMAL: 1.0, R.HIGH_VOL: 0.5, R.LOW_VOL: 0.7, R.EXTREME: 0.0, R.UNKNOWN: 0.0}
    assert out.get_column("regime_factor").to_list() == [factor[r] for _, r in REGIME_CASES]
    assert out.get_column("flatten").to_list() == [r == R.EXTREME for _, r in REGIME_CASES]
    assert out.schema == {"ts_event": pl.Int64, "regime": pl.Int64, "regime_factor": pl.Float64,
                          "flatten": pl.Boolean}


def test_regime_params_validated():
    with pytest.raises(ConfigError, match="high_vol_ratio"):
        RegimeParams(high_vol_ratio=3.5)
    with pytest.raises(ConfigError, match="low_vol_duration_ratio"):
        RegimeParams(low_vol_duration_ratio=0.4)
    with pytest.raises(ConfigError, match="low_vol_factor"):
        RegimeParams(low_vol_factor=1.5)
    out = regimes([(2.1, 0.4, 0.0)], RegimeParams(high_vol_ratio=2.2))
    assert out.get_column("regime").to_list() == [int(R.NORMAL)]


# --- the combiner -------------------------------------------------------------------------------
# B reads ofi_ema5 here, A ofi_ema10: with one shared span A (|ema| > 0.15) and B (|ema| < 0.08)
# can never fire on the same bar, and the AB / conflict rules could not be exercised.
REV = {"entry_window": 4, "entry_quantile": 0.5, "vol_fall_bars": 1, "flow_slope_bars": 3, "deviation_exit": 0.1,
           "ofi_lookback": 5}
FP = FamilyParams(reversion=REV, low_vol_entry_quantile=0.25)
FAMILY = get("orderflow_family")
REGIME_INPUTS = {"normal": (1.0, 1.0, 0.0), "high": (2.0, 0.4, 0.0), "low": (0.5, 2.5, 0.0),
                 "extreme": (4.0, 1.0, 0.0), "unknown": (NAN, 1.0, 0.0)}
A_ROWS = {  # ofi_ema10, cum_delta_slope, trade_intensity_z20, large_trade_ratio_z20, avg_buy, avg_sell
    "none": (0.1, 0.0, 0.0, 0.0, 1.0, 1.0),
    "long2": (0.2, 1.0, 2.0, 2.0, 1.0, 1.0),
    "long3": (0.2, 1.0, 2.0, 2.0, 2.0, 1.0),
    "short2": (-0.2, -1.0, 2.0, 2.0, 1.0, 1.0),
    "cross": (-0.01, 0.0, 0.0, 0.0, 1.0, 1.0),  # EMA(OFI) crosses below 0: A exit_long only
}
A_COLS = ("ofi_ema10", "cum_delta_slope", "trade_intensity_z20", "large_trade_ratio_z20", "avg_buy_size",
          "avg_sell_size")


def family_frame(a: str, dev: float, regime: str) -> pl.DataFrame:
    """Rows 0..3 history; row 4 under test. B's median threshold is 0.625 (0.4375 at q = 0.25)."""
    a_hist = (0.05, 0.0, 0.0, 0.0, 1.0, 1.0)
    a_rows = [a_hist] * 4 + [A_ROWS[a]]
    data = {c: [r[i] for r in a_rows] for i, c in enumerate(A_COLS)}
    data |= {"vwap_deviation": [0.25, -0.5, 0.75, -1.0, dev], "ofi_ema5": [0.0] * 5,
             "realized_vol_20": [5.0, 5.0, 5.0, 5.0, 4.0],
             "sell_volume": [9.0, 9.0, 5.0, 4.0, 3.0], "buy_volume": [9.0, 9.0, 5.0, 4.0, 3.0]}
    vr, dr, iz = REGIME_INPUTS[regime]
    data |= {"vol_ratio": [1.0] * 4 + [vr], "duration_ratio": [1.0] * 4 + [dr], "price_impact_z100": [0.0] * 4 + [iz]}
    return pl.DataFrame({"ts_event": list(range(5)), **data},
                        schema={"ts_event": pl.Int64, **{c: pl.Float64 for c in data}})


def row4(a: str, dev: float, regime: str, params: FamilyParams = FP) -> dict:
    return FAMILY.signals(family_frame(a, dev, regime), params).row(4, named=True)


S_A2, S_A3 = 0.5 + 2 / 3, 1.5
S_B = 0.5 + 0.5 * 0.75 / 0.625  # dev -0.75 against 0.625
S_B_LOOSE_05 = 0.5 + 0.5 * 0.5 / 0.4375  # dev -0.5 against the LOW_VOL threshold 0.4375
S_B_LOOSE_075 = 0.5 + 0.5 * 0.75 / 0.4375
NO_B = 0.3  # inside the threshold, outside the exit band

# (a, dev, regime) -> (enter_long, enter_short, exit_long, exit_short, strength, confidence, source)
CASES = [
    # A's long entry is also A's exit_short (the opposite entry condition)
    (("long2", NO_B, "normal"), (True, False, False, True, 0.5, 0.4 * 2 / 3, 1)),  # 0.4*7/6 floored to 0.5
    (("long3", NO_B, "normal"), (True, False, False, True, 0.4 * 1.5, 0.4, 1)),
    (("none", -0.75, "normal"), (True, False, False, False, 0.6 * S_B, 0.6 * (S_B - 0.5), 2)),
    (("long3", -0.75, "normal"), (True, False, False, True, 0.4 * 1.5 + 0.6 * S_B,
                                  0.4 + 0.6 * (S_B - 0.5), 3)),
    (("long2", 0.75, "normal"), (False, False, False, False, 1.0, 0.0, 0)),  # A long vs B short
    (("short2", -0.75, "normal"), (False, False, False, False, 1.0, 0.0, 0)),  # A short (also A exit_long) vs B long
    (("long2", -0.75, "high"), (True, False, False, True, S_A2, 2 / 3, 1)),  # B not allowed
    (("none", -0.75, "high"), (False, False, False, False, 1.0, 0.0, 0)),
    # A may not enter in LOW_VOL, but its exit_short still counts (exits are not regime-gated)
    (("long3", -0.5, "low"), (True, False, False, True, S_B_LOOSE_05, S_B_LOOSE_05 - 0.5, 2)),
    (("none", -0.5, "normal"), (False, False, False, False, 1.0, 0.0, 0)),  # looser entry only in LOW_VOL
    (("long2", 0.75, "low"), (False, True, False, False, S_B_LOOSE_075, S_B_LOOSE_075 - 0.5, 2)),  # A's exit_short muted
    (("long3", -0.75, "extreme"), (False, False, False, True, 1.0, 0.0, 1)),  # no entries; A's exit_short
    (("long3", -0.75, "unknown"), (False, False, False, True, 1.0, 0.0, 1)),
    (("cross", 0.05, "normal"), (False, False, True, True, 1.0, 0.0, 3)),  # exits: A (cross) + B (reverted)
    (("long3", 0.05, "normal"), (True, False, False, True, 0.6, 0.4, 1)),  # B exit_long muted by A's long
    (("none", 0.05, "extreme"), (False, False, True, True, 1.0, 0.0, 2)),  # exits are not regime-gated
    (("short2", NO_B, "low"), (False, False, True, False, 1.0, 0.0, 1)),  # A may not enter, its exit counts
]


@pytest.mark.parametrize("case,expected", CASES)
def test_combiner_rules(case, expected):
    row = row4(*case)
    got = tuple(row[k] for k in ("enter_long", "enter_short", "exit_long", "exit_short", "strength", "confidence",
                                 "source"))
    assert got[:4] == expected[:4]
    assert got[4] == pytest.approx(expected[4], abs=1e-12)
    assert got[5] == pytest.approx(min(1.0, expected[5]), abs=1e-12)
    assert got[6] == expected[6]
    regime = {"normal": R.NORMAL, "high": R.HIGH_VOL, "low": R.LOW_VOL, "extreme": R.EXTREME,
              "unknown": R.UNKNOWN}[case[2]]
    assert row["regime"] == int(regime)
    assert row["flatten"] == (regime == R.EXTREME)
    assert row["regime_factor"] == {R.NORMAL: 1.0, R.HIGH_VOL: 0.5, R.LOW_VOL: 0.7}.get(regime, 0.0)


def test_source_maps_to_reason():
    assert [Reason(row4(a, d, "normal")["source"]) for a, d in (("long3", NO_B), ("none", -0.75),
                                                                ("long3", -0.75))] == [
        Reason.SIGNAL_A, Reason.SIGNAL_B, Reason.SIGNAL_AB]


def test_strength_caps_and_weights():
    capped = FamilyParams(reversion=REV, low_vol_entry_quantile=0.25, max_strength=1.2)
    assert row4("long3", -0.75, "normal", capped)["strength"] == 1.2
    heavy = FamilyParams(reversion=REV, low_vol_entry_quantile=0.25, weight_a_normal=1.0, weight_b_normal=1.0)
    row = row4("long3", -0.75, "normal", heavy)
    assert (row["strength"], row["confidence"]) == (1.5, 1.0)
    half = FamilyParams(reversion=REV, low_vol_entry_quantile=0.25, weight_a_high_vol=0.5)
    assert row4("long3", NO_B, "high", half)["strength"] == 0.75


def test_history_rows_are_quiet_and_schema_exact():
    out = FAMILY.signals(family_frame("long3", -0.75, "normal"), FP)
    assert out.columns == ["ts_event", "enter_long", "enter_short", "exit_long", "exit_short", "strength",
                           "confidence", "source", "regime", "regime_factor", "flatten"]
    head = out.head(4)
    assert not head.select(pl.any_horizontal("enter_long", "enter_short")).to_series().any()


def test_family_params_validated():
    with pytest.raises(ConfigError, match="low_vol_entry_quantile"):
        FamilyParams(low_vol_entry_quantile=0.95)
    with pytest.raises(ConfigError, match="reversion.entry_window"):
        FamilyParams(reversion={"entry_window": 1})
    with pytest.raises(ConfigError, match="max_strength"):
        FamilyParams(max_strength=2.0)
    assert FamilyParams().loose_reversion() == ReversionParams(entry_quantile=0.80)


def test_family_requirements_are_the_union():
    p = FamilyParams()
    assert FAMILY.required_features(p) == [
        "ofi_ema10", "cum_delta_slope", "trade_intensity_z20", "large_trade_ratio_z20", "avg_buy_size",
        "avg_sell_size", "vwap_deviation", "realized_vol_20", "sell_volume", "buy_volume", "vol_ratio",
        "duration_ratio", "price_impact_z100"]
    assert FAMILY.warmup_bars(p) == 199  # A (19) can enter once C (199) knows the regime
    assert FAMILY.warmup_bars(FamilyParams(momentum={"zscore_window": 500})) == 499
    assert FAMILY.lookback_bars(p) == 501
    assert FAMILY.required_feature_settings(p) == {
        "cum_delta_slope_window": 20, "vwap_window": 20, "realized_vol_short": 20, "realized_vol_long": 200,
        "duration_window": 50}
