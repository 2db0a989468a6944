"""Where the P&L came from: by signal source, by UTC hour of entry, by exit reason, by month; and
how key metrics move when slippage is scaled (the slippage sensitivity table)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl

from backtest.metrics import compute_metrics, daily_equity, ratio
from backtest.results import BacktestResult
from core.enums import Reason
from core.errors import RejectedError
from core.time import NS_PER_HOUR

SIGNAL_SOURCES = ("A", "B", "A+B", "other")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Columns of the slippage sensitivity table, in order, after `multiplier`.
SENSITIVITY_METRICS = ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "calmar",
                       "n_trades", "win_rate", "profit_factor", "fees_total", "net_pnl_total")

_GROUP_SCHEMA = {"trades": pl.Int64, "pnl": pl.Float64, "win_rate": pl.Float64, "avg_return": pl.Float64}


def signal_source(signal: np.ndarray) -> np.ndarray:
    """Bitmask → source label: 1 "A", 2 "B", 3 "A+B", anything else (0, other bits) "other"."""
    out = np.full(signal.shape, "other", dtype=object)
    out[signal == 1] = "A"
    out[signal == 2] = "B"
    out[signal == 3] = "A+B"
    return out


def _grouped(keys: np.ndarray, pnl: np.ndarray, ret: np.ndarray, categories: list) -> dict[str, list]:
    rows: dict[str, list] = {name: [] for name in _GROUP_SCHEMA}
    for cat in categories:
        m = keys == cat
        n = int(m.sum())
        rows["trades"].append(n)
        rows["pnl"].append(float(pnl[m].sum()))
        rows["win_rate"].append(ratio(float((pnl[m] > 0).sum()), float(n)))
        rows["avg_return"].append(float(ret[m].mean()) if n else math.nan)
    return rows


def _trade_arrays(result: BacktestResult) -> tuple[np.ndarray, np.ndarray]:
    return result.trades.get_column("pnl").to_numpy(), result.trades.get_column("return").to_numpy()


def attribution_by_signal(result: BacktestResult) -> pl.DataFrame:
    """One row per source A, B, A+B, other: trades, net pnl, win rate, mean trade return."""
    pnl, ret = _trade_arrays(result)
    keys = signal_source(result.trades.get_column("signal").to_numpy())
    rows = _grouped(keys, pnl, ret, list(SIGNAL_SOURCES))
    return pl.DataFrame({"source": list(SIGNAL_SOURCES), **rows}, schema={"source": pl.Utf8, **_GROUP_SCHEMA})


def attribution_by_hour(result: BacktestResult) -> pl.DataFrame:
    """One row per UTC hour 0..23 of `entry_ts`: trades, net pnl, win rate, mean trade return."""
    pnl, ret = _trade_arrays(result)
    hours = (result.trades.get_column("entry_ts").to_numpy() // NS_PER_HOUR) % 24
    rows = _grouped(hours, pnl, ret, list(range(24)))
    return pl.DataFrame({"hour": list(range(24)), **rows}, schema={"hour": pl.Int64, **_GROUP_SCHEMA})


def attribution_by_exit_reason(result: BacktestResult) -> pl.DataFrame:
    """One row per exit reason that occurred (ascending code): its name, trades, pnl, win rate."""
    pnl, ret = _trade_arrays(result)
    codes = result.trades.get_column("exit_reason").to_numpy()
    present = sorted(int(c) for c in np.unique(codes))
    rows = _grouped(codes, pnl, ret, present)
    return pl.DataFrame({"exit_reason": [Reason(c).name for c in present], **rows},
                        schema={"exit_reason": pl.Utf8, **_GROUP_SCHEMA})


def monthly_returns(result: BacktestResult) -> pl.DataFrame:
    """`year`, `month`, `return`: each month's last daily close over the previous month's (the
    first month against `initial_equity`); NaN where the base is <= 0 (ruined account)."""
    daily = daily_equity(result).with_columns(pl.col("date").dt.year().alias("year"),
                                              pl.col("date").dt.month().alias("month"))
    ends = daily.group_by(["year", "month"], maintain_order=True).agg(pl.col("equity").last())
    return _period_returns(ends, result.initial_equity, ["year", "month"])


def yearly_returns(result: BacktestResult) -> pl.DataFrame:
    """`year`, `return`: the year's last daily close over the previous year's (or initial equity)."""
    daily = daily_equity(result).with_columns(pl.col("date").dt.year().alias("year"))
    ends = daily.group_by("year", maintain_order=True).agg(pl.col("equity").last())
    return _period_returns(ends, result.initial_equity, ["year"])


def _period_returns(ends: pl.DataFrame, initial_equity: float, keys: list[str]) -> pl.DataFrame:
    close = ends.get_column("equity").to_numpy()
    base = np.concatenate(([initial_equity], close[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(base > 0, close / base - 1.0, np.nan)
    out = ends.select([pl.col(k).cast(pl.Int64) for k in keys])
    return out.with_columns(pl.Series("return", ret, dtype=pl.Float64))


def monthly_returns_table(result: BacktestResult) -> pl.DataFrame:
    """Year × month grid: `year`, Jan … Dec (null where the run did not cover the month), `Year`."""
    monthly = monthly_returns(result)
    years = yearly_returns(result)
    grid: dict[str, list] = {"year": years.get_column("year").to_list()}
    lookup = {(y, m): r for y, m, r in monthly.iter_rows()}
    for k, name in enumerate(MONTH_NAMES, start=1):
        grid[name] = [lookup.get((y, k)) for y in grid["year"]]
    grid["Year"] = years.get_column("return").to_list()
    return pl.DataFrame(grid, schema={"year": pl.Int64, **{n: pl.Float64 for n in MONTH_NAMES},
                                      "Year": pl.Float64})


def slippage_sensitivity(results: Mapping[float, BacktestResult]) -> pl.DataFrame:
    """Key metrics per slippage multiplier (e.g. {1.0: run, 2.0: run, 3.0: run}), ascending.

    Columns: `multiplier` then `SENSITIVITY_METRICS`. Each run must be a `BacktestResult`; the
    multipliers must be finite and > 0.
    """
    if not isinstance(results, Mapping) or not results:
        raise RejectedError("slippage_sensitivity needs a non-empty {multiplier: BacktestResult} mapping")
    rows = []
    for mult, res in sorted(results.items(), key=lambda kv: float(kv[0])):
        m = float(mult)
        if not math.isfinite(m) or m <= 0:
            raise RejectedError(f"slippage multiplier {mult!r}: expected a finite number > 0")
        if not isinstance(res, BacktestResult):
            raise RejectedError(f"slippage multiplier {mult!r}: expected a BacktestResult, got {type(res).__name__}")
        metrics = compute_metrics(res)
        rows.append({"multiplier": m, **{k: metrics[k] for k in SENSITIVITY_METRICS}})
    schema = {"multiplier": pl.Float64, **{k: (pl.Int64 if k == "n_trades" else pl.Float64)
                                           for k in SENSITIVITY_METRICS}}
    return pl.DataFrame(rows, schema=schema)
