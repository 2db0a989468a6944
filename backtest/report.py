"""Self-contained HTML report and JSON metrics of a backtest run.

The HTML opens offline (charts are embedded PNGs, built with `market.report`). The JSON holds
every metric and table; JSON has no NaN or infinity, so NaN is written as null and ±inf as the
strings "inf" / "-inf" (`read_metrics_json` turns them back into floats).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.colors import TwoSlopeNorm

from backtest.attribution import (
    MONTH_NAMES,
    attribution_by_exit_reason,
    attribution_by_hour,
    attribution_by_signal,
    monthly_returns,
    monthly_returns_table,
    slippage_sensitivity,
    yearly_returns,
)
from backtest.metrics import compute_metrics, equity_drawdown
from backtest.results import BacktestResult, float_from_json, json_float
from core.enums import Reason, TradingState
from core.errors import RejectedError, SchemaError
from core.time import ns_to_datetime
from market.report import Section, write_html
from market.schema import conform

PRICE_SCHEMA: dict[str, pl.DataType] = {"ts_event": pl.Int64, "close": pl.Float64}
JSON_FORMAT_VERSION = 1
MAX_PLOT_POINTS = 4000  # per line; an envelope keeps every extreme (see _envelope)
MAX_STATE_ROWS = 500

# (key, label, kind): kind picks the formatting in the HTML table.
METRIC_GROUPS: dict[str, list[tuple[str, str, str]]] = {
    "Returns and risk": [
        ("initial_equity", "Initial equity", "money"), ("final_equity", "Final equity", "money"),
        ("total_return", "Total return", "pct"), ("annual_return", "Annual return (CAGR)", "pct"),
        ("annual_volatility", "Annual volatility", "pct"), ("sharpe", "Sharpe (daily, ×√365)", "num"),
        ("sortino", "Sortino (daily, ×√365)", "num"), ("calmar", "Calmar", "num"),
        ("max_drawdown", "Max drawdown", "pct"), ("max_drawdown_duration_days", "Longest drawdown (days)", "num"),
        ("max_drawdown_recovered", "Longest drawdown recovered", "bool"),
        ("current_drawdown", "Drawdown at end", "pct"), ("best_day", "Best day", "pct"),
        ("worst_day", "Worst day", "pct"), ("positive_days", "Positive days", "pct"),
        ("span_days", "Span (days)", "num"), ("n_days", "UTC days", "int"), ("n_bars", "Bars", "int"),
        ("ruined", "Equity reached zero", "bool"),
    ],
    "Trades": [
        ("n_trades", "Trades", "int"), ("n_long", "Long", "int"), ("n_short", "Short", "int"),
        ("win_rate", "Win rate", "pct"), ("payoff_ratio", "Payoff ratio", "num"),
        ("profit_factor", "Profit factor", "num"), ("avg_trade_pnl", "Mean trade pnl", "money"),
        ("avg_trade_return", "Mean trade return", "pct"), ("best_trade_pnl", "Best trade pnl", "money"),
        ("worst_trade_pnl", "Worst trade pnl", "money"),
        ("max_consecutive_losses", "Max consecutive losses", "int"),
        ("trades_per_day", "Trades per day", "num"), ("avg_holding_hours", "Mean holding (hours)", "num"),
        ("avg_bars_held", "Mean bars held", "num"),
    ],
    "Costs, exposure and activity": [
        ("gross_pnl_total", "Gross pnl (trades)", "money"), ("trade_fees_total", "Fees (trades)", "money"),
        ("funding_total", "Funding paid (trades)", "money"), ("net_pnl_total", "Net pnl (trades)", "money"),
        ("fees_total", "Fees (all fills)", "money"), ("n_fills", "Fills", "int"),
        ("maker_fill_ratio", "Maker fills", "pct"), ("traded_notional", "Traded notional", "money"),
        ("turnover_total", "Turnover (× mean equity)", "num"), ("turnover_annual", "Turnover per year", "num"),
        ("exposure_bars", "Exposure (bars)", "pct"), ("exposure_time", "Exposure (time)", "pct"),
        ("avg_gross_exposure", "Mean gross exposure", "num"), ("max_gross_exposure", "Max gross exposure", "num"),
    ],
}


def format_value(v: Any, kind: str = "num") -> str:
    """Human form for the HTML tables: NaN "n/a", ±inf "∞"/"-∞", percentages with 2 decimals."""
    if v is None:
        return ""
    if kind == "year" or isinstance(v, str):
        return str(v)
    if isinstance(v, bool) or kind == "bool":
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) and kind in ("int", "num"):
        return f"{int(v):,}"
    v = float(v)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if kind == "pct":
        return f"{v * 100:,.2f}%"
    if kind == "money":
        return f"{v:,.2f}"
    if kind == "int":
        return f"{v:,.0f}"
    return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:,.0f}"


def _iso(ts_ns: int) -> str:
    return ns_to_datetime(ts_ns).strftime("%Y-%m-%d %H:%M:%S")


def _rows(df: pl.DataFrame, kinds: Mapping[str, str]) -> list[dict[str, str]]:
    return [{c: format_value(r[c], kinds.get(c, "num")) for c in df.columns} for r in df.iter_rows(named=True)]


def _envelope(ts: np.ndarray, y: np.ndarray, max_points: int = MAX_PLOT_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ~max_points of (ts, y) keeping each bucket's first, min, max and last point, so that
    drawdowns and spikes stay visible on long curves."""
    n = y.size
    if n <= max_points:
        return ts, y
    size = math.ceil(n / (max_points / 4))
    idx = []
    for s in range(0, n, size):
        seg = y[s:s + size]
        idx.extend((s, s + int(np.argmin(seg)), s + int(np.argmax(seg)), s + seg.size - 1))
    keep = np.unique(np.array(idx))
    return ts[keep], y[keep]


def _times(ts: np.ndarray) -> np.ndarray:
    return ts.astype("datetime64[ns]")


def equity_figure(result: BacktestResult):
    """Equity (top) and drawdown in % (bottom) on bar timestamps."""
    ed = equity_drawdown(result)
    ts = ed.get_column("ts_event").to_numpy()
    fig, ax = plt.subplots(2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    t, e = _envelope(ts, ed.get_column("equity").to_numpy())
    ax[0].plot(_times(t), e, lw=0.9, color="tab:blue")
    ax[0].axhline(result.initial_equity, color="#999", lw=0.6, ls="--")
    ax[0].set_ylabel("equity")
    ax[0].set_title("Equity at bar close and drawdown from the running peak", fontsize=10)
    t, d = _envelope(ts, ed.get_column("drawdown").to_numpy() * 100.0)
    ax[1].fill_between(_times(t), d, 0.0, color="tab:red", alpha=0.35, lw=0)
    ax[1].plot(_times(t), d, lw=0.7, color="tab:red")
    ax[1].set_ylabel("drawdown %")
    for a in ax:
        a.grid(alpha=0.25)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def monthly_heatmap_figure(table: pl.DataFrame):
    """Year × month grid of monthly returns in %, red losses, green gains, values written in."""
    years = table.get_column("year").to_list()
    grid = np.array([[np.nan if v is None else v for v in table.get_column(m).to_list()] for m in MONTH_NAMES],
                    dtype=np.float64).T * 100.0
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(years) + 1.3))
    finite = grid[np.isfinite(grid)]
    lim = max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-9)
    norm = TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
    ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", norm=norm, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                # dark cells (the ends of the colour map) get white text
                color = "white" if abs(grid[i, j]) > 0.6 * lim else "black"
                ax.text(j, i, f"{grid[i, j]:.1f}%", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(12), MONTH_NAMES)
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    ax.set_title("Monthly returns (%)", fontsize=10)
    fig.tight_layout()
    return fig


def trades_on_price_figure(result: BacktestResult, price: pl.DataFrame):
    """Close series per symbol with entries (blue ▲ long, purple ▼ short) and exits (green win, red loss)."""
    groups = _price_groups(result, price)
    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 3.6 * len(groups)), squeeze=False)
    for a, (sym, px) in zip(axes[:, 0], groups.items()):
        t, c = _envelope(px.get_column("ts_event").to_numpy(), px.get_column("close").to_numpy())
        a.plot(_times(t), c, lw=0.7, color="#555", label="close")
        tr = result.trades.filter(pl.col("symbol") == sym)
        for side, marker, color, label in ((1, "^", "tab:blue", "long entry"), (-1, "v", "tab:purple", "short entry")):
            s = tr.filter(pl.col("side") == side)
            a.scatter(_times(s.get_column("entry_ts").to_numpy()), s.get_column("entry_price").to_numpy(),
                      marker=marker, s=28, color=color, edgecolor="k", linewidth=0.4, zorder=3, label=label)
        win = tr.get_column("pnl").to_numpy() > 0
        a.scatter(_times(tr.get_column("exit_ts").to_numpy()), tr.get_column("exit_price").to_numpy(),
                  marker="o", s=16, c=np.where(win, "limegreen", "orangered"), edgecolor="k", linewidth=0.4,
                  zorder=3, label="exit (green win, red loss)")
        a.set_title(f"{sym}: {tr.height:,} trades", fontsize=10, loc="right")
        a.set_ylabel("price")
        a.grid(alpha=0.25)
        a.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, ncol=4, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def trade_returns_figure(result: BacktestResult):
    """Histogram of net trade returns in %, with zero and the mean marked."""
    r = result.trades.get_column("return").to_numpy() * 100.0
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bins = int(min(60, max(10, math.sqrt(r.size) * 2)))
    ax.hist(r, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.axvline(float(r.mean()), color="tab:orange", lw=1.2, ls="--", label=f"mean {r.mean():.3f}%")
    ax.set_xlabel("net trade return (%)")
    ax.set_ylabel("trades")
    ax.set_title(f"Distribution of {r.size:,} trade returns", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _price_groups(result: BacktestResult, price: pl.DataFrame) -> dict[str, pl.DataFrame]:
    if not isinstance(price, pl.DataFrame):
        raise SchemaError(f"price must be a polars DataFrame, got {type(price).__name__}", source="report price")
    if "symbol" in price.columns:
        base = conform(price, {**PRICE_SCHEMA, "symbol": pl.Utf8}, "report price")
        groups = {s: base.filter(pl.col("symbol") == s) for s in result.meta.symbols}
        groups = {s: g for s, g in groups.items() if g.height}
    elif len(result.meta.symbols) == 1:
        groups = {result.meta.symbols[0]: conform(price, PRICE_SCHEMA, "report price")}
    else:
        raise SchemaError(f"price needs a 'symbol' column for a run over {list(result.meta.symbols)}",
                          source="report price")
    if not groups:
        raise SchemaError("price has no rows for the run's symbols", source="report price")
    for g in groups.values():
        if g.get_column("ts_event").null_count() or g.get_column("close").null_count():
            raise SchemaError("price has null ts_event or close values", source="report price")
    return {s: g.sort("ts_event") for s, g in groups.items()}


def _sensitivity_frame(sensitivity) -> pl.DataFrame | None:
    if sensitivity is None:
        return None
    if isinstance(sensitivity, pl.DataFrame):
        return sensitivity
    return slippage_sensitivity(sensitivity)


def write_report(result: BacktestResult, path: str | Path, sensitivity=None,
                 price: pl.DataFrame | None = None) -> Path:
    """Write the offline HTML report of `result` to `path` and return the path.

    `sensitivity`: None, {multiplier: BacktestResult} or a `slippage_sensitivity` frame.
    `price`: None or a frame `ts_event` Int64, `close` Float64 (plus `symbol` Utf8 for multi-symbol
    runs) on which the trades are drawn.
    """
    if not isinstance(result, BacktestResult):
        raise RejectedError(f"write_report needs a BacktestResult, got {type(result).__name__}")
    sens = _sensitivity_frame(sensitivity)
    metrics = compute_metrics(result)
    meta = result.meta
    sections = []

    s = Section("Run")
    s.table([{"field": k, "value": v} for k, v in (
        ("symbols", ", ".join(meta.symbols)), ("bar spec", meta.bar_spec),
        ("period (UTC)", f"{_iso(meta.start_ns)} → {_iso(meta.end_ns)}"),
        ("config hash", result.config_hash or "(none)"))])
    if result.config:
        s.pre(json.dumps(result.config, indent=2, sort_keys=True))
    sections.append(s)

    s = Section("Metrics")
    for group, spec in METRIC_GROUPS.items():
        s.text(group)
        s.table([{"metric": label, "value": format_value(metrics[key], kind)} for key, label, kind in spec])
    s.note("Daily returns: last equity of each UTC day, first day against the initial equity; annualised with "
           "365 days, risk-free rate 0. n/a = undefined (e.g. Sharpe of a flat curve, win rate without trades); "
           "∞ = a ratio over zero (e.g. profit factor without losing trades). See docs/metrics.md.")
    sections.append(s)

    s = Section("Equity and drawdown")
    s.figure(equity_figure(result))
    sections.append(s)

    s = Section("Monthly returns")
    table = monthly_returns_table(result)
    s.figure(monthly_heatmap_figure(table))
    s.table(_rows(table, {c: "pct" for c in table.columns if c != "year"} | {"year": "year"}))
    sections.append(s)

    s = Section("Trades on price")
    if price is None:
        s.note("(no price series given)")
    else:
        s.figure(trades_on_price_figure(result, price))
    sections.append(s)

    s = Section("Distribution of trade returns")
    if result.trades.height:
        s.figure(trade_returns_figure(result))
    else:
        s.note("(no trades)")
    sections.append(s)

    kinds = {"pnl": "money", "win_rate": "pct", "avg_return": "pct", "trades": "int", "hour": "int"}
    s = Section("Attribution by signal source")
    s.table(_rows(attribution_by_signal(result), kinds))
    s.note("Entry signal bitmask: A = 1, B = 2, A+B = 3, other = anything else (0 = no signal).")
    sections.append(s)

    s = Section("Attribution by UTC hour of entry")
    s.table(_rows(attribution_by_hour(result), kinds))
    sections.append(s)

    s = Section("Attribution by exit reason")
    s.table(_rows(attribution_by_exit_reason(result), kinds))
    sections.append(s)

    s = Section("Trading state changes")
    sc = result.state_changes
    s.table([{"time (UTC)": _iso(ts), "from": TradingState(a).name, "to": TradingState(b).name,
              "reason": Reason(r).name} for ts, a, b, r in sc.head(MAX_STATE_ROWS).iter_rows()])
    if sc.height > MAX_STATE_ROWS:
        s.note(f"first {MAX_STATE_ROWS} of {sc.height:,} state changes shown; all are in the result.")
    sections.append(s)

    s = Section("Slippage sensitivity")
    if sens is None:
        s.note("(no slippage sensitivity runs given)")
    else:
        skinds = {"multiplier": "num", "n_trades": "int", "sharpe": "num", "sortino": "num", "calmar": "num",
                  "profit_factor": "num", "fees_total": "money", "net_pnl_total": "money"}
        s.table(_rows(sens, {c: skinds.get(c, "pct") for c in sens.columns}))
        s.note("Each row is a full re-run with slippage scaled by the multiplier.")
    sections.append(s)

    subtitle = (f"{', '.join(meta.symbols)} · {meta.bar_spec} · {_iso(meta.start_ns)} → {_iso(meta.end_ns)} UTC"
                f"{' · config ' + result.config_hash if result.config_hash else ''}")
    return write_html(path, "Backtest report", sections, subtitle)


def _json_rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: json_float(v) if isinstance(v, float) else v for k, v in r.items()} for r in df.iter_rows(named=True)]


def metrics_json_dict(result: BacktestResult, sensitivity=None) -> dict[str, Any]:
    """Everything `write_metrics_json` writes, as a JSON-ready dict."""
    if not isinstance(result, BacktestResult):
        raise RejectedError(f"metrics_json_dict needs a BacktestResult, got {type(result).__name__}")
    sens = _sensitivity_frame(sensitivity)
    metrics = {k: json_float(v) if isinstance(v, float) else v for k, v in compute_metrics(result).items()}
    return {
        "format_version": JSON_FORMAT_VERSION,
        "meta": result.meta.to_json_dict(),
        "config_hash": result.config_hash,
        "config": result.config,
        "metrics": metrics,
        "attribution_by_signal": _json_rows(attribution_by_signal(result)),
        "attribution_by_hour": _json_rows(attribution_by_hour(result)),
        "attribution_by_exit_reason": _json_rows(attribution_by_exit_reason(result)),
        "monthly_returns": _json_rows(monthly_returns(result)),
        "yearly_returns": _json_rows(yearly_returns(result)),
        "slippage_sensitivity": None if sens is None else _json_rows(sens),
    }


def write_metrics_json(result: BacktestResult, path: str | Path, sensitivity=None) -> Path:
    """Write all metrics and tables of `result` as JSON (NaN → null, ±inf → "inf"/"-inf")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics_json_dict(result, sensitivity), indent=2, allow_nan=False))
    return path


def _restore(v: Any) -> Any:
    if v is None or v in ("inf", "-inf"):
        return float_from_json(v)
    return v


def read_metrics_json(path: str | Path) -> dict[str, Any]:
    """Read a `write_metrics_json` file; null and "inf"/"-inf" in metrics and tables become floats."""
    d = json.loads(Path(path).read_text())
    if d.get("format_version") != JSON_FORMAT_VERSION:
        raise SchemaError(f"unsupported metrics JSON format_version {d.get('format_version')!r}", source=str(path))
    d["metrics"] = {k: _restore(v) for k, v in d["metrics"].items()}
    for key in ("attribution_by_signal", "attribution_by_hour", "attribution_by_exit_reason",
                "monthly_returns", "yearly_returns", "slippage_sensitivity"):
        if d.get(key) is not None:
            d[key] = [{k: _restore(v) for k, v in row.items()} for row in d[key]]
    return d
