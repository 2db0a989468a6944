"""Backtest metrics and attribution against hand-computed values and independent pandas /
plain-python references written here; edge cases and bad inputs."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.attribution import (
    attribution_by_exit_reason,
    attribution_by_hour,
    attribution_by_signal,
    monthly_returns,
    monthly_returns_table,
    slippage_sensitivity,
    yearly_returns,
)
from backtest.metrics import compute_metrics, daily_equity, equity_drawdown
from backtest.results import (
    EQUITY_SCHEMA,
    FILL_SCHEMA,
    STATE_CHANGE_SCHEMA,
    TRADE_SCHEMA,
    BacktestResult,
    RunMeta,
)
from core.enums import Reason, TradingState
from core.errors import ConfigError, DataError, RejectedError, SchemaError

H = 3_600_000_000_000
DAY = 24 * H
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
SYM = "BTCUSDT"


def equity_frame(hours, equity, pos=None, gross=None) -> pl.DataFrame:
    n = len(hours)
    pos = pos if pos is not None else [0.0] * n
    gross = gross if gross is not None else [abs(p) / e if e > 0 else 0.0 for p, e in zip(pos, equity)]
    return pl.DataFrame({"ts_event": [T0 + int(h * H) for h in hours], "equity": [float(e) for e in equity],
                         "position_notional": [float(p) for p in pos], "gross_exposure": [float(g) for g in gross],
                         "cash": [float(e) for e in equity]}, schema=EQUITY_SCHEMA)


def trade_row(tid, side, entry_h, exit_h, entry_px, exit_px, qty, fees, funding, signal,
              entry_reason=Reason.SIGNAL_A, exit_reason=Reason.STOP_L1, bars=1, symbol=SYM) -> dict:
    gross = side * (exit_px - entry_px) * qty
    pnl = gross - fees - funding
    return {"trade_id": tid, "symbol": symbol, "side": side, "entry_ts": T0 + int(entry_h * H),
            "exit_ts": T0 + int(exit_h * H), "entry_price": float(entry_px), "exit_price": float(exit_px),
            "qty": float(qty), "gross_pnl": gross, "fees": float(fees), "funding": float(funding), "pnl": pnl,
            "entry_reason": int(entry_reason), "exit_reason": int(exit_reason), "signal": signal,
            "bars_held": bars, "return": pnl / (entry_px * qty)}


def fills_for(trades: list[dict], maker_every: int = 0) -> pl.DataFrame:
    """Entry and exit fill of each trade, fees split half/half, sorted by time."""
    rows = []
    for t in trades:
        for ts, side, px, reason in ((t["entry_ts"], t["side"], t["entry_price"], t["entry_reason"]),
                                     (t["exit_ts"], -t["side"], t["exit_price"], t["exit_reason"])):
            rows.append({"ts_event": ts, "symbol": t["symbol"], "side": side, "qty": t["qty"], "price": px,
                         "fee": t["fees"] / 2, "is_maker": False, "reason": reason, "signal": t["signal"],
                         "order_id": len(rows), "trade_id": t["trade_id"]})
    rows.sort(key=lambda r: (r["ts_event"], r["order_id"]))
    for i, r in enumerate(rows):
        r["is_maker"] = bool(maker_every) and i % maker_every == 0
    return pl.DataFrame(rows, schema=FILL_SCHEMA) if rows else pl.DataFrame(schema=FILL_SCHEMA)


def make_result(eq: pl.DataFrame, trades: list[dict] | None = None, initial=1000.0, start=T0,
                end=None, states=None, maker_every=0) -> BacktestResult:
    trades = trades or []
    tr = pl.DataFrame(trades, schema=TRADE_SCHEMA) if trades else pl.DataFrame(schema=TRADE_SCHEMA)
    end = end if end is not None else max(int(eq["ts_event"].max()), start)
    return BacktestResult(equity=eq, fills=fills_for(trades, maker_every), trades=tr,
                          state_changes=states, initial_equity=initial,
                          meta=RunMeta((SYM,), "1h", start, end), config={"fee_bps": 4}, config_hash="abc123")


# --- the tiny hand case: 3 days, 8 bars, 4 trades ----------------------------------------------------

HOURS = [6, 12, 24, 30, 40, 47, 60, 71]
EQUITY = [1000, 1010, 1020, 1050, 960, 969, 1000, 1017.45]
POS = [0, 500, 0, -400, -400, 0, 200, 0]
GROSS = [0, 0.5, 0, 0.4, 0.4, 0, 0.2, 0]


def hand_trades() -> list[dict]:
    return [
        trade_row(1, 1, 12, 24, 100, 102, 5, 1.0, 0.0, 1, Reason.SIGNAL_A, Reason.TAKE_PROFIT_TRAIL, 2),
        trade_row(2, -1, 30, 47, 100, 105, 4, 1.0, 0.5, 2, Reason.SIGNAL_B, Reason.STOP_L1, 3),
        trade_row(3, 1, 60, 71, 50, 52, 4, 0.5, -0.5, 3, Reason.SIGNAL_AB, Reason.SIGNAL_AB, 2),
        trade_row(4, 1, 61, 70, 10, 9.5, 2, 0.2, 0.0, 0, Reason.SIGNAL_CUSTOM, Reason.STOP_L3, 1),
    ]


def hand_result() -> BacktestResult:
    states = pl.DataFrame({"ts_event": [T0 + 40 * H, T0 + 48 * H], "from_state": [0, 2], "to_state": [2, 0],
                           "reason": [int(Reason.DAILY_LOSS_LIMIT), int(Reason.NEW_DAY)]}, schema=STATE_CHANGE_SCHEMA)
    return make_result(equity_frame(HOURS, EQUITY, POS, GROSS), hand_trades(), end=T0 + 72 * H, states=states,
                       maker_every=3)


def test_hand_case_curve_metrics():
    m = compute_metrics(hand_result())
    # Daily closes: day 1 = 1020 (the bar at exactly 24:00 closes day 1), day 2 = 969, day 3 = 1017.45.
    r = [0.02, -0.05, 0.05]
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    span = 71 / 24
    cagr = 1.01745 ** (365 / span) - 1
    assert m["total_return"] == pytest.approx(0.01745, rel=1e-12)
    assert m["final_equity"] == 1017.45
    assert m["n_days"] == 3 and m["n_bars"] == 8
    assert m["span_days"] == pytest.approx(span, rel=1e-12)
    assert m["annual_return"] == pytest.approx(cagr, rel=1e-9)
    assert m["annual_volatility"] == pytest.approx(std * math.sqrt(365), rel=1e-9)
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(365), rel=1e-9)
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.05 ** 2 / 3) * math.sqrt(365), rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(960 / 1050 - 1, rel=1e-12)
    assert m["max_drawdown_duration_days"] == pytest.approx(41 / 24, rel=1e-12)  # peak at 30 h, never recovered
    assert m["max_drawdown_recovered"] is False
    assert m["current_drawdown"] == pytest.approx(1017.45 / 1050 - 1, rel=1e-12)
    assert m["calmar"] == pytest.approx(cagr / (1 - 960 / 1050), rel=1e-9)
    assert m["best_day"] == pytest.approx(0.05, rel=1e-9) and m["worst_day"] == pytest.approx(-0.05, rel=1e-9)
    assert m["positive_days"] == pytest.approx(2 / 3)
    assert m["exposure_bars"] == 0.5
    assert m["exposure_time"] == pytest.approx((12 + 10 + 7 + 11) / 71, rel=1e-12)
    assert m["avg_gross_exposure"] == pytest.approx((0.5 * 12 + 0.4 * 10 + 0.4 * 7 + 0.2 * 11) / 71, rel=1e-12)
    assert m["max_gross_exposure"] == 0.5
    assert m["ruined"] is False


def test_hand_case_trade_and_fill_metrics():
    m = compute_metrics(hand_result())
    # pnl: +9, -21.5 (short 100 -> 105 x4, fees 1, funding 0.5), +8 (funding received 0.5), -1.2
    assert m["n_trades"] == 4 and m["n_long"] == 3 and m["n_short"] == 1
    assert m["win_rate"] == 0.5
    assert m["payoff_ratio"] == pytest.approx(8.5 / 11.35, rel=1e-12)
    assert m["profit_factor"] == pytest.approx(17 / 22.7, rel=1e-12)
    assert m["avg_trade_pnl"] == pytest.approx(-5.7 / 4, rel=1e-12)
    assert m["avg_trade_return"] == pytest.approx((0.018 - 0.05375 + 0.04 - 0.06) / 4, rel=1e-12)
    assert m["best_trade_pnl"] == 9 and m["worst_trade_pnl"] == -21.5
    assert m["max_consecutive_losses"] == 2  # by exit time: +9, -21.5, -1.2 (70 h), +8 (71 h)
    assert m["trades_per_day"] == pytest.approx(4 / (71 / 24), rel=1e-12)
    assert m["avg_holding_hours"] == pytest.approx((12 + 17 + 11 + 9) / 4, rel=1e-12)
    assert m["avg_bars_held"] == 2.0
    assert m["gross_pnl_total"] == pytest.approx(-3.0, abs=1e-12)
    assert m["trade_fees_total"] == pytest.approx(2.7, rel=1e-12)
    assert m["funding_total"] == 0.0
    assert m["net_pnl_total"] == pytest.approx(-5.7, rel=1e-12)
    assert m["n_fills"] == 8 and m["maker_fill_ratio"] == 3 / 8  # fills 0, 3, 6 are maker
    assert m["fees_total"] == pytest.approx(2.7, rel=1e-12)
    assert m["traded_notional"] == pytest.approx(500 + 510 + 400 + 420 + 200 + 208 + 20 + 19, rel=1e-12)
    mean_eq = sum(EQUITY) / 8
    assert m["turnover_total"] == pytest.approx(2277 / mean_eq, rel=1e-12)
    assert m["turnover_annual"] == pytest.approx(2277 / mean_eq * 365 / (71 / 24), rel=1e-12)


def test_hand_case_attribution():
    res = hand_result()
    sig = attribution_by_signal(res)
    assert sig["source"].to_list() == ["A", "B", "A+B", "other"]
    assert sig["trades"].to_list() == [1, 1, 1, 1]
    assert sig["pnl"].to_list() == pytest.approx([9, -21.5, 8, -1.2])
    assert sig["win_rate"].to_list() == [1.0, 0.0, 1.0, 0.0]
    hour = attribution_by_hour(res)
    assert hour.height == 24
    busy = hour.filter(pl.col("trades") > 0)
    assert busy["hour"].to_list() == [6, 12, 13]
    assert busy["trades"].to_list() == [1, 2, 1]
    assert busy["pnl"].to_list() == pytest.approx([-21.5, 17, -1.2])
    assert busy["win_rate"].to_list() == [0.0, 1.0, 0.0]
    assert busy["avg_return"].to_list() == pytest.approx([-0.05375, 0.029, -0.06])
    assert math.isnan(hour.filter(pl.col("hour") == 0)["win_rate"][0])
    ex = attribution_by_exit_reason(res)
    assert ex["exit_reason"].to_list() == ["SIGNAL_AB", "STOP_L1", "STOP_L3", "TAKE_PROFIT_TRAIL"]
    assert ex["pnl"].to_list() == pytest.approx([8, -21.5, -1.2, 9])
    mon = monthly_returns(res)
    assert mon.rows() == [(2024, 1, pytest.approx(0.01745, rel=1e-12))]
    table = monthly_returns_table(res)
    assert table["year"].to_list() == [2024]
    assert table["Jan"][0] == pytest.approx(0.01745, rel=1e-12) and table["Feb"][0] is None
    assert table["Year"][0] == pytest.approx(0.01745, rel=1e-12)
    daily = daily_equity(res)
    assert daily["equity"].to_list() == [1020, 969, 1017.45]
    assert [str(d) for d in daily["date"].to_list()] == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_drawdown_column_is_recomputed_and_input_one_ignored():
    eq = equity_frame(HOURS, EQUITY, POS, GROSS).with_columns(pl.lit(0.0).alias("drawdown"))
    res = make_result(eq)
    assert "drawdown" not in res.equity.columns
    dd = equity_drawdown(res)["drawdown"].to_numpy()
    peak = np.maximum.accumulate(np.array([1000.0] + EQUITY))[1:]
    np.testing.assert_allclose(dd, np.array(EQUITY) / peak - 1, rtol=0, atol=1e-15)


# --- references --------------------------------------------------------------------------------------


def ref_daily(hours, equity, initial) -> pd.Series:
    """Last equity per UTC day, days (start, end]; the run starts at T0 with `initial`."""
    idx = pd.to_datetime([T0 + int(h * H) for h in hours], utc=True)
    s = pd.Series(equity, index=idx, dtype=float)
    daily = s.resample("1D", closed="right", label="left").last()
    days = pd.date_range(pd.Timestamp(T0, tz="UTC"), daily.index[-1], freq="1D")
    return daily.reindex(days).ffill().fillna(initial)


def ref_longest_drawdown_ns(ts, equity, start, initial) -> int:
    highs = [(start, initial)]  # (time, level) of every new high-water mark (ties included)
    below_since_high = []
    below = False
    for t, e in zip(ts, equity):
        if e >= highs[-1][1]:
            below_since_high.append(below)
            highs.append((t, e))
            below = False
        else:
            below = True
    spells = [highs[k + 1][0] - highs[k][0] for k in range(len(highs) - 1) if below_since_high[k]]
    if below:
        spells.append(ts[-1] - highs[-1][0])
    return max(spells, default=0)


curve = st.lists(st.tuples(st.floats(0.05, 60.0), st.floats(-0.2, 0.2), st.sampled_from([0.0, 0.0, 1.0, -2.0])),
                 min_size=1, max_size=60)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=curve, initial=st.floats(100.0, 1e6))
def test_curve_metrics_match_pandas_reference(steps, initial):
    hours, equity, pos = [], [], []
    h, e = 0.0, initial
    for dh, ret, p in steps:
        h += dh
        e *= 1 + ret
        hours.append(round(h, 3))
        equity.append(e)
        pos.append(p * e)
    eq = equity_frame(hours, equity, pos)
    res = make_result(eq, initial=initial)
    m = compute_metrics(res)
    daily = ref_daily(hours, equity, initial)
    np.testing.assert_allclose(daily_equity(res)["equity"].to_numpy(), daily.to_numpy(), rtol=1e-15)
    r = pd.concat([pd.Series([initial]), pd.Series(daily.to_numpy())]).pct_change().dropna()
    assert m["n_days"] == len(daily)
    if len(r) >= 2 and r.std(ddof=1) > 0:
        assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365), rel=1e-6, abs=1e-9)
        assert m["annual_volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(365), rel=1e-6)
    else:
        assert math.isnan(m["sharpe"])
    down = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    if down > 0:
        assert m["sortino"] == pytest.approx(r.mean() / down * math.sqrt(365), rel=1e-6, abs=1e-9)
    ts = eq["ts_event"].to_list()
    span = ts[-1] - T0
    total = equity[-1] / initial - 1
    assert m["total_return"] == pytest.approx(total, rel=1e-12, abs=1e-15)
    if span > 0:
        ref_cagr = math.exp(math.log1p(total) * 365 * DAY / span) - 1 if math.log1p(total) * 365 * DAY / span < 700 \
            else math.inf
        assert m["annual_return"] == pytest.approx(ref_cagr, rel=1e-9, abs=1e-12)
    peak = pd.Series([initial] + equity).cummax().to_numpy()[1:]
    assert m["max_drawdown"] == pytest.approx(min(0.0, float((np.array(equity) / peak - 1).min())), abs=1e-15)
    assert m["max_drawdown_duration_days"] * DAY == pytest.approx(
        ref_longest_drawdown_ns(ts, equity, T0, initial), abs=1.0)
    held = sum(ts[i + 1] - ts[i] for i in range(len(ts) - 1) if pos[i] != 0)
    if span > 0:
        assert m["exposure_time"] == pytest.approx(held / span, rel=1e-12, abs=1e-15)
    assert m["exposure_bars"] == pytest.approx(sum(p != 0 for p in pos) / len(pos))
    ref_month = pd.Series(daily.to_numpy(), index=daily.index).resample("ME").last()
    ref_mret = pd.concat([pd.Series([initial]), pd.Series(ref_month.to_numpy())]).pct_change().dropna().to_numpy()
    mon = monthly_returns(res)
    np.testing.assert_allclose(mon["return"].to_numpy(), ref_mret[np.isfinite(ref_month.to_numpy())], rtol=1e-12)
    assert mon["month"].to_list() == [d.month for d in ref_month.index]
    ref_year = pd.Series(daily.to_numpy(), index=daily.index).resample("YE").last()
    ref_yret = pd.concat([pd.Series([initial]), pd.Series(ref_year.to_numpy())]).pct_change().dropna().to_numpy()
    np.testing.assert_allclose(yearly_returns(res)["return"].to_numpy(), ref_yret, rtol=1e-12)


trade_spec = st.tuples(st.integers(-1, 1).filter(lambda s: s != 0), st.floats(0.0, 48.0), st.floats(0.0, 72.0),
                       st.floats(1.0, 1000.0), st.sampled_from([-0.05, -0.01, 0.0, 0.002, 0.03]),
                       st.floats(0.01, 10.0), st.floats(-1.0, 2.0), st.integers(0, 7))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(trade_spec, min_size=0, max_size=40))
def test_trade_metrics_and_attribution_match_python_reference(specs):
    trades = []
    for i, (side, eh, dur, px, move, qty, fee, signal) in enumerate(specs):
        exit_px = px * (1 + move)
        gross = side * (exit_px - px) * qty
        fees = 0.0 if move == 0.0 else abs(fee)  # zero-move trades with zero cost: exact breakeven
        trades.append(trade_row(i + 1, side, eh, eh + dur, px, exit_px, qty, fees, 0.0, signal, bars=int(dur)))
        assert trades[-1]["gross_pnl"] == gross
    eq = equity_frame([1, 50, 121], [1000, 1001, 1002])
    res = make_result(eq, trades)
    m = compute_metrics(res)
    pnl = [t["pnl"] for t in sorted(trades, key=lambda t: (t["exit_ts"], t["trade_id"]))]
    wins, losses = [p for p in pnl if p > 0], [p for p in pnl if p < 0]
    n = len(pnl)
    assert m["n_trades"] == n
    if n == 0:
        assert math.isnan(m["win_rate"]) and math.isnan(m["profit_factor"]) and m["trades_per_day"] == 0
    else:
        assert m["win_rate"] == len(wins) / n
        assert m["avg_trade_pnl"] == pytest.approx(sum(pnl) / n, rel=1e-9, abs=1e-9)
    if losses:
        assert m["profit_factor"] == pytest.approx(sum(wins) / -sum(losses), rel=1e-9)
    elif wins:
        assert m["profit_factor"] == math.inf
    if wins and losses:
        assert m["payoff_ratio"] == pytest.approx((sum(wins) / len(wins)) / -(sum(losses) / len(losses)), rel=1e-9)
    else:
        assert math.isnan(m["payoff_ratio"])
    streak = best = 0
    for p in pnl:
        streak = streak + 1 if p < 0 else 0
        best = max(best, streak)
    assert m["max_consecutive_losses"] == best
    assert m["trades_per_day"] == pytest.approx(n / (121 / 24), rel=1e-12)
    if n:
        assert m["avg_holding_hours"] == pytest.approx(
            sum((t["exit_ts"] - t["entry_ts"]) / H for t in trades) / n, rel=1e-9)
        ref_turn = sum(t["qty"] * (t["entry_price"] + t["exit_price"]) for t in trades) / (3003 / 3)
        assert m["turnover_total"] == pytest.approx(ref_turn, rel=1e-9)

    df = pd.DataFrame(trades) if trades else pd.DataFrame(columns=list(TRADE_SCHEMA))
    labels = {1: "A", 2: "B", 3: "A+B"}
    df["source"] = [labels.get(s, "other") for s in df["signal"]]
    sig = attribution_by_signal(res)
    for row in sig.iter_rows(named=True):
        sub = df[df["source"] == row["source"]]
        assert row["trades"] == len(sub)
        assert row["pnl"] == pytest.approx(float(sub["pnl"].sum()), rel=1e-9, abs=1e-9)
        if len(sub):
            assert row["win_rate"] == pytest.approx(float((sub["pnl"] > 0).mean()))
            assert row["avg_return"] == pytest.approx(float(sub["return"].mean()), rel=1e-9, abs=1e-12)
    df["hour"] = [pd.Timestamp(ts, tz="UTC").hour for ts in df["entry_ts"]]
    hours = attribution_by_hour(res)
    for row in hours.iter_rows(named=True):
        sub = df[df["hour"] == row["hour"]]
        assert row["trades"] == len(sub)
        assert row["pnl"] == pytest.approx(float(sub["pnl"].sum()), rel=1e-9, abs=1e-9)
    assert sum(hours["trades"]) == n


# --- edge cases ------------------------------------------------------------------------------------------


def test_no_trades_one_bar_one_day():
    res = make_result(equity_frame([5], [1010]), initial=1000)
    m = compute_metrics(res)
    assert m["n_trades"] == 0 and m["n_fills"] == 0 and m["n_days"] == 1
    assert math.isnan(m["sharpe"]) and math.isnan(m["annual_volatility"])  # one daily return
    assert m["sortino"] == math.inf  # positive mean, no down day
    assert m["total_return"] == pytest.approx(0.01)
    assert m["annual_return"] == pytest.approx(1.01 ** (365 * 24 / 5) - 1, rel=1e-9)
    for k in ("win_rate", "payoff_ratio", "profit_factor", "avg_trade_pnl", "avg_holding_hours", "maker_fill_ratio"):
        assert math.isnan(m[k]), k
    assert m["trades_per_day"] == 0.0 and m["turnover_total"] == 0.0
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration_days"] == 0.0
    assert m["calmar"] == math.inf


def test_single_bar_at_start_has_undefined_annualised_values():
    res = make_result(equity_frame([0], [1000]), initial=1000)
    m = compute_metrics(res)
    assert m["span_days"] == 0 and m["n_days"] == 1
    for k in ("annual_return", "calmar", "exposure_time", "turnover_annual", "trades_per_day", "sortino"):
        assert math.isnan(m[k]), k


def test_flat_equity():
    res = make_result(equity_frame([1, 30, 60, 90], [1000] * 4), initial=1000)
    m = compute_metrics(res)
    assert m["total_return"] == 0.0 and m["annual_return"] == 0.0 and m["annual_volatility"] == 0.0
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"]) and math.isnan(m["calmar"])
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration_days"] == 0.0


def test_constant_positive_returns_sharpe_nan_when_std_exactly_zero():
    res = make_result(equity_frame([24, 48, 72], [1100, 1210, 1331]), initial=1000)
    d = daily_equity(res)["return"].to_numpy()
    m = compute_metrics(res)
    if np.std(d, ddof=1) == 0:
        assert math.isnan(m["sharpe"])
    else:
        assert m["sharpe"] > 1e6
    assert m["sortino"] == math.inf


def test_all_wins():
    trades = [trade_row(i, 1, i, i + 1, 100, 101, 1, 0.1, 0.0, 1) for i in range(1, 4)]
    m = compute_metrics(make_result(equity_frame([1, 5, 10], [1000, 1001, 1002.7]), trades))
    assert m["win_rate"] == 1.0 and m["profit_factor"] == math.inf and math.isnan(m["payoff_ratio"])
    assert m["max_consecutive_losses"] == 0


def test_all_losses():
    trades = [trade_row(i, -1, i, i + 1, 100, 101, 1, 0.1, 0.0, 2) for i in range(1, 3)]
    m = compute_metrics(make_result(equity_frame([1, 5], [999, 998]), trades))
    assert m["win_rate"] == 0.0 and m["profit_factor"] == 0.0 and math.isnan(m["payoff_ratio"])
    assert m["max_consecutive_losses"] == 2


def test_gap_days_carry_the_previous_close():
    res = make_result(equity_frame([10, 24 * 4 + 1], [1100, 1210]), initial=1000)
    d = daily_equity(res)
    assert d["equity"].to_list() == [1100, 1100, 1100, 1100, 1210]
    assert d["return"].to_list() == pytest.approx([0.1, 0, 0, 0, 0.1])


def test_ruined_account_stops_returns():
    eq = equity_frame([10, 30, 50], [500, 0, 0], gross=[0.0, float("nan"), float("nan")])
    m = compute_metrics(make_result(eq, initial=1000))
    assert m["ruined"] is True and m["annual_return"] == -1.0 and m["total_return"] == -1.0
    assert m["max_drawdown"] == -1.0
    assert m["n_days"] == 3 and m["worst_day"] == -1.0  # day 3 (base 0) has no return
    assert m["sharpe"] == pytest.approx(np.mean([-0.5, -1.0]) / np.std([-0.5, -1.0], ddof=1) * math.sqrt(365))
    assert m["max_gross_exposure"] == 0.0


def test_bar_exactly_at_start_counts_on_the_first_day():
    res = make_result(equity_frame([0, 24], [1000, 1100]), initial=1000)
    assert daily_equity(res)["equity"].to_list() == [1100]


def test_slippage_sensitivity_table():
    base = hand_result()
    worse = make_result(equity_frame(HOURS, [e - 10 for e in EQUITY], POS, GROSS), hand_trades(), end=T0 + 72 * H)
    table = slippage_sensitivity({3: worse, 1.0: base, 2.0: worse})
    assert table["multiplier"].to_list() == [1.0, 2.0, 3.0]
    assert table["total_return"].to_list() == pytest.approx([0.01745, 0.00745, 0.00745], rel=1e-9)
    assert table["n_trades"].to_list() == [4, 4, 4]
    assert table.columns[:3] == ["multiplier", "total_return", "annual_return"]
    with pytest.raises(RejectedError, match="non-empty"):
        slippage_sensitivity({})
    with pytest.raises(RejectedError, match="multiplier"):
        slippage_sensitivity({0.0: base})
    with pytest.raises(RejectedError, match="BacktestResult"):
        slippage_sensitivity({1.0: "run"})


def test_numba_kernel_on_long_curve_matches_reference():
    rng = np.random.default_rng(7)
    n = 200_000
    ts = T0 + np.cumsum(rng.integers(1, 120, n)) * 60_000_000_000
    e = 1000 * np.cumprod(1 + rng.normal(0, 0.001, n))
    eq = pl.DataFrame({"ts_event": ts, "equity": e, "position_notional": np.zeros(n),
                       "gross_exposure": np.zeros(n), "cash": e})
    res = make_result(eq, initial=1000.0)
    dd = equity_drawdown(res)["drawdown"].to_numpy()
    peak = np.maximum.accumulate(np.concatenate(([1000.0], e)))[1:]
    np.testing.assert_allclose(dd, e / peak - 1, rtol=0, atol=1e-15)
    m = compute_metrics(res)
    assert m["max_drawdown_duration_days"] * DAY == ref_longest_drawdown_ns(ts.tolist(), e.tolist(), T0, 1000.0)


# --- bad inputs --------------------------------------------------------------------------------------------


def test_bad_equity_inputs():
    good = equity_frame([1, 2, 3], [1000, 1001, 1002])
    with pytest.raises(SchemaError, match="missing columns.*cash"):
        make_result(good.drop("cash"))
    with pytest.raises(SchemaError, match="'equity'"):
        make_result(good.with_columns(pl.col("equity").cast(pl.Utf8) + "x"))
    with pytest.raises(DataError, match="null") as err:
        make_result(good.with_columns(pl.when(pl.col("ts_event") == T0 + 2 * H).then(None)
                                      .otherwise(pl.col("equity")).alias("equity")))
    assert err.value.line == 2
    with pytest.raises(DataError, match="ts_event decreases") as err:
        make_result(good.reverse())
    assert err.value.line == 2
    with pytest.raises(DataError, match="before meta.start_ns"):
        make_result(good, start=T0 + 2 * H + 1, end=T0 + 3 * H)
    with pytest.raises(DataError, match="after meta.end_ns"):
        make_result(good, end=T0 + 2 * H)
    with pytest.raises(DataError, match="empty"):
        make_result(good.head(0), end=T0)
    with pytest.raises(DataError, match="equity is not finite"):
        make_result(good.with_columns(pl.lit(float("nan")).alias("equity")))
    with pytest.raises(DataError, match="gross_exposure"):
        make_result(good.with_columns(pl.lit(-0.1).alias("gross_exposure")))


def test_bad_trade_and_fill_inputs():
    t = hand_trades()
    eq = equity_frame(HOURS, EQUITY)
    with pytest.raises(DataError, match="side is not"):
        make_result(eq, [{**t[0], "side": 0}])
    with pytest.raises(DataError, match="pnl != gross_pnl - fees - funding"):
        make_result(eq, [{**t[0], "pnl": t[0]["pnl"] + 0.01}])
    with pytest.raises(DataError, match="return != pnl"):
        make_result(eq, [{**t[0], "return": 0.5}])
    with pytest.raises(DataError, match="trade_id is not unique"):
        make_result(eq, [t[0], {**t[1], "trade_id": 1}])
    with pytest.raises(DataError, match="exit_ts is before entry_ts"):
        make_result(eq, [{**t[0], "exit_ts": t[0]["entry_ts"] - 1}])
    meta = RunMeta((SYM,), "1h", T0, T0 + 72 * H)

    def trades_only(row):
        return BacktestResult(eq, None, pl.DataFrame([row], schema=TRADE_SCHEMA), None, 1000.0, meta)

    with pytest.raises(DataError, match="exit_reason is not a valid core.enums.Reason"):
        trades_only({**t[0], "exit_reason": 99})
    with pytest.raises(DataError, match="symbol not in meta.symbols"):
        trades_only({**t[0], "symbol": "ETHUSDT"})
    with pytest.raises(DataError, match="qty is not finite and > 0"):
        make_result(eq, [{**t[0], "qty": -5.0, "return": -t[0]["return"]}])
    base = make_result(eq, t)
    fills = base.fills
    for bad, msg in ((fills.with_columns(pl.lit(0, pl.Int64).alias("side")), "side is not"),
                     (fills.with_columns(pl.lit(-1.0).alias("qty")), "qty is not finite"),
                     (fills.with_columns(pl.lit(0.0).alias("price")), "price is not finite"),
                     (fills.with_columns(pl.lit(77, pl.Int64).alias("reason")), "reason is not a valid"),
                     (fills.with_columns(pl.lit(-1, pl.Int64).alias("signal")), "signal bitmask is negative"),
                     (fills.reverse(), "ts_event decreases")):
        with pytest.raises(DataError, match=msg):
            BacktestResult(eq, bad, base.trades, None, 1000.0, base.meta)
    states = pl.DataFrame({"ts_event": [T0], "from_state": [0], "to_state": [9], "reason": [0]})
    with pytest.raises(DataError, match="to_state is not a valid core.enums.TradingState"):
        BacktestResult(eq, None, None, states, 1000.0, base.meta)
    with pytest.raises(SchemaError, match="missing columns"):
        BacktestResult(eq, fills.drop("order_id"), None, None, 1000.0, base.meta)


def test_bad_run_identity():
    eq = equity_frame([1], [1000])
    meta = RunMeta((SYM,), "1h", T0, T0 + H)
    for bad in (0.0, -1.0, float("nan"), float("inf"), True, "1000"):
        with pytest.raises(ConfigError, match="initial_equity"):
            BacktestResult(eq, None, None, None, bad, meta)
    with pytest.raises(ConfigError, match="JSON"):
        BacktestResult(eq, None, None, None, 1000.0, meta, config={"x": object()})
    with pytest.raises(ConfigError, match="end_ns"):
        RunMeta((SYM,), "1h", T0, T0 - 1)
    with pytest.raises(ConfigError, match="symbols"):
        RunMeta((), "1h", T0, T0)
    with pytest.raises(ConfigError, match="start_ns"):
        RunMeta((SYM,), "1h", 1.5, T0)
    with pytest.raises(ConfigError, match="RunMeta"):
        BacktestResult(eq, None, None, None, 1000.0, {"symbols": [SYM]})
    with pytest.raises(RejectedError, match="BacktestResult"):
        compute_metrics({"equity": eq})


def test_state_and_reason_enums_cover_schema_codes():
    res = hand_result()
    assert res.state_changes["to_state"].to_list() == [int(TradingState.HALTED), int(TradingState.ACTIVE)]
    assert res.fills.schema == pl.Schema(FILL_SCHEMA)
