"""Performance metrics of a `BacktestResult`. Formulas and conventions: docs/metrics.md.

In short: the account holds `initial_equity` at `meta.start_ns`; the equity curve is sampled at bar
closes. Daily equity is the last bar-close equity of each UTC day, a bar closing exactly at
00:00:00 counting as the close of the day before (days are (start, end]); days without bars carry
the previous close. Daily simple returns start from `initial_equity`. Crypto trades every day, so
annualisation uses 365 days: vol = std(ddof=1)·√365, Sharpe = mean/std·√365 (rf = 0),
Sortino = mean/√mean(min(r, 0)²)·√365. A ratio x/0 is +inf for x > 0, -inf for x < 0, NaN for 0/0.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import njit

from backtest.results import BacktestResult
from core.errors import RejectedError
from core.time import NS_PER_DAY, NS_PER_HOUR

DAYS_PER_YEAR = 365
NS_PER_YEAR = DAYS_PER_YEAR * NS_PER_DAY


@njit(cache=True)
def drawdown_nb(ts, equity, start_ns, initial_equity):
    """Drawdown of each bar against the running peak (seeded with `initial_equity` at `start_ns`).

    Returns (drawdown array, longest underwater spell in ns, whether that spell recovered).
    A spell runs from the peak's timestamp to the first bar at or above the peak (or to the last
    bar when it never recovers). drawdown = equity / peak - 1 (<= 0).
    """
    n = equity.shape[0]
    dd = np.empty(n)
    peak = initial_equity
    peak_ts = start_ns
    longest = 0
    longest_recovered = True
    under = False
    for i in range(n):
        e = equity[i]
        if e >= peak:
            if under:
                spell = ts[i] - peak_ts
                if spell > longest:
                    longest = spell
                    longest_recovered = True
                under = False
            peak = e
            peak_ts = ts[i]
            dd[i] = 0.0
        else:
            under = True
            dd[i] = e / peak - 1.0
    if under:
        spell = ts[n - 1] - peak_ts
        if spell > longest:
            longest = spell
            longest_recovered = False
    return dd, longest, longest_recovered


@njit(cache=True)
def daily_close_nb(ts, equity, first_day, n_days, initial_equity):
    """Last equity of each UTC day first_day .. first_day + n_days - 1; empty days carry forward.

    A bar at ts belongs to day (ts - 1) // NS_PER_DAY (a close at exactly midnight ends the day
    before), never earlier than first_day.
    """
    out = np.empty(n_days)
    have = np.zeros(n_days, dtype=np.bool_)
    for i in range(ts.shape[0]):
        d = (ts[i] - 1) // 86_400_000_000_000 - first_day
        d = max(d, 0)
        out[d] = equity[i]
        have[d] = True
    last = initial_equity
    for d in range(n_days):
        if have[d]:
            last = out[d]
        else:
            out[d] = last
    return out


def _writable(a: np.ndarray, dtype) -> np.ndarray:
    # polars hands out read-only views; one writable specialisation avoids a second numba compile.
    return np.require(a, dtype=dtype, requirements=["C", "W"])


def ratio(num: float, den: float) -> float:
    """num / den with x/0 = ±inf and 0/0 = NaN (the convention of every ratio metric here)."""
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den == 0.0:
        return math.nan if num == 0.0 else math.copysign(math.inf, num)
    return num / den


def equity_drawdown(result: BacktestResult) -> pl.DataFrame:
    """`ts_event`, `equity`, `drawdown` (equity / running peak - 1) per bar."""
    eq = result.equity
    ts = _writable(eq.get_column("ts_event").to_numpy(), np.int64)
    e = _writable(eq.get_column("equity").to_numpy(), np.float64)
    dd, _, _ = drawdown_nb(ts, e, result.meta.start_ns, result.initial_equity)
    return pl.DataFrame({"ts_event": ts, "equity": e, "drawdown": dd})


def daily_equity(result: BacktestResult) -> pl.DataFrame:
    """One row per UTC day from the start day to the last bar's day: `date` (Date), `equity`
    (close of the day), `return` (simple, the first against `initial_equity`; NaN once the
    previous close is <= 0, i.e. after ruin)."""
    ts = _writable(result.equity.get_column("ts_event").to_numpy(), np.int64)
    e = _writable(result.equity.get_column("equity").to_numpy(), np.float64)
    first_day = result.meta.start_ns // NS_PER_DAY
    last_day = max((int(ts[-1]) - 1) // NS_PER_DAY, first_day)
    n_days = last_day - first_day + 1
    close = daily_close_nb(ts, e, first_day, n_days, result.initial_equity)
    base = np.concatenate(([result.initial_equity], close[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(base > 0, close / base - 1.0, np.nan)
    days = np.arange(first_day, last_day + 1, dtype=np.int32)
    return pl.DataFrame({"date": pl.Series(days).cast(pl.Date), "equity": close, "return": ret})


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else math.nan


def return_metrics(result: BacktestResult) -> dict[str, float | int | bool]:
    """Curve metrics: returns, volatility, Sharpe/Sortino/Calmar, drawdown, exposure."""
    eq = result.equity
    ts = _writable(eq.get_column("ts_event").to_numpy(), np.int64)
    e = _writable(eq.get_column("equity").to_numpy(), np.float64)
    start, e0 = result.meta.start_ns, result.initial_equity
    span_ns = int(ts[-1]) - start
    span_days = span_ns / NS_PER_DAY
    final = float(e[-1])
    total = final / e0 - 1.0
    ruined = bool((e <= 0).any())
    if ruined:
        cagr = -1.0
    elif span_ns == 0:
        cagr = math.nan
    else:
        with np.errstate(over="ignore"):
            cagr = float(np.expm1(np.log1p(total) * (NS_PER_YEAR / span_ns)))

    daily = daily_equity(result)
    r = daily.get_column("return").to_numpy()
    r = r[np.isfinite(r)]  # after ruin the account no longer exists: no returns
    mean = _mean(r)
    std = float(np.std(r, ddof=1)) if r.size >= 2 else math.nan
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if r.size else math.nan
    ann = math.sqrt(DAYS_PER_YEAR)

    dd, longest_ns, recovered = drawdown_nb(ts, e, start, e0)
    max_dd = float(dd.min())

    pos = eq.get_column("position_notional").to_numpy()
    gx = eq.get_column("gross_exposure").to_numpy()
    # The position at bar i's close is held over (ts_i, ts_i+1]; over (start, ts_0] the account is flat.
    dt = np.diff(ts).astype(np.float64)
    held_ns = float(np.sum(dt * (pos[:-1] != 0)))
    gross_ns = float(np.sum(dt * np.where(np.isfinite(gx[:-1]), gx[:-1], 0.0)))

    return {
        "initial_equity": e0,
        "final_equity": final,
        "total_return": total,
        "annual_return": cagr,
        "annual_volatility": std * ann if r.size >= 2 else math.nan,
        # A zero-volatility series has no Sharpe (NaN, not ±inf that would top every ranking).
        "sharpe": mean / std * ann if r.size >= 2 and std > 0 else math.nan,
        "sortino": ratio(mean, downside) * ann,
        "max_drawdown": max_dd,
        "max_drawdown_duration_days": longest_ns / NS_PER_DAY,
        "max_drawdown_recovered": bool(recovered),
        "current_drawdown": float(dd[-1]),
        "calmar": ratio(cagr, abs(max_dd)),
        "span_days": span_days,
        "n_days": int(daily.height),
        "n_bars": int(eq.height),
        "best_day": float(r.max()) if r.size else math.nan,
        "worst_day": float(r.min()) if r.size else math.nan,
        "positive_days": ratio(float((r > 0).sum()), float(r.size)),
        "ruined": ruined,
        "exposure_bars": float(np.mean(pos != 0)),
        "exposure_time": ratio(held_ns, float(span_ns)),
        "avg_gross_exposure": ratio(gross_ns, float(span_ns)),
        "max_gross_exposure": float(np.nanmax(np.where(e > 0, gx, np.nan))) if (e > 0).any() else math.nan,
    }


def trade_metrics(result: BacktestResult) -> dict[str, float | int]:
    """Round-trip statistics on net trade pnl (pnl > 0 is a win, pnl < 0 a loss, 0 neither)."""
    tr = result.trades.sort(["exit_ts", "trade_id"])
    pnl = tr.get_column("pnl").to_numpy()
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    span_days = (int(result.equity.get_column("ts_event")[-1]) - result.meta.start_ns) / NS_PER_DAY
    held = (tr.get_column("exit_ts") - tr.get_column("entry_ts")).to_numpy()
    streak = longest = 0
    for p in pnl:
        streak = streak + 1 if p < 0 else 0
        longest = max(longest, streak)
    side = tr.get_column("side").to_numpy()
    n = int(pnl.size)
    return {
        "n_trades": n,
        "n_long": int((side > 0).sum()),
        "n_short": int((side < 0).sum()),
        "win_rate": ratio(float(wins.size), float(n)),
        "payoff_ratio": ratio(_mean(wins), abs(_mean(losses))) if wins.size and losses.size else math.nan,
        "profit_factor": ratio(float(wins.sum()), abs(float(losses.sum()))),
        "avg_trade_pnl": _mean(pnl),
        "avg_trade_return": _mean(tr.get_column("return").to_numpy()),
        "best_trade_pnl": float(pnl.max()) if n else math.nan,
        "worst_trade_pnl": float(pnl.min()) if n else math.nan,
        "max_consecutive_losses": int(longest),
        "trades_per_day": ratio(float(n), span_days),
        "avg_holding_hours": _mean(held.astype(np.float64)) / NS_PER_HOUR,
        "avg_bars_held": _mean(tr.get_column("bars_held").to_numpy().astype(np.float64)),
        "gross_pnl_total": float(tr.get_column("gross_pnl").sum()),
        "trade_fees_total": float(tr.get_column("fees").sum()),
        "funding_total": float(tr.get_column("funding").sum()),
        "net_pnl_total": float(pnl.sum()),
    }


def fill_metrics(result: BacktestResult) -> dict[str, float | int]:
    """Fees and turnover from fills: turnover = Σ|qty·price| / mean bar-close equity."""
    f = result.fills
    notional = float((f.get_column("qty") * f.get_column("price")).sum())
    mean_equity = float(result.equity.get_column("equity").mean())
    span_ns = int(result.equity.get_column("ts_event")[-1]) - result.meta.start_ns
    turnover = ratio(notional, mean_equity) if mean_equity > 0 else math.nan
    return {
        "n_fills": int(f.height),
        "maker_fill_ratio": ratio(float(f.get_column("is_maker").sum()), float(f.height)),
        "traded_notional": notional,
        "fees_total": float(f.get_column("fee").sum()),
        "turnover_total": turnover,
        "turnover_annual": turnover * NS_PER_YEAR / span_ns if span_ns > 0 else math.nan,
    }


def compute_metrics(result: BacktestResult) -> dict[str, float | int | bool]:
    """Every metric of a run in one flat dict (curve, trade and fill metrics; see docs/metrics.md)."""
    if not isinstance(result, BacktestResult):
        raise RejectedError(f"compute_metrics needs a BacktestResult, got {type(result).__name__}")
    return {**return_metrics(result), **trade_metrics(result), **fill_metrics(result)}
