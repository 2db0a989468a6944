"""Run the decision kernel over bars + signals and assemble a `BacktestResult`.

The loop itself is `engine.kernel.run_nb`; this module allocates its arrays, runs it in chunks
(for the progress bar), closes what is still open at the end, and turns the journals into the
result frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from tqdm import tqdm

from backtest.results import BacktestResult, RunMeta
from core.enums import Reason
from core.instrument import Instrument
from engine import kernel as k
from engine.config import EngineSettings
from engine.inputs import BarInputs
from execution import VenueConfig
from execution.fees import fee_nb
from execution.fill_model import instrument_params
from execution.funding import prepare_series
from execution.ledger import (ACC_N_FILLS, ACC_N_TRADES, EQ_EQUITY, EQ_GROSS_EXPOSURE, EQ_NET_EXPOSURE,
                              EQ_WALLET, FL_FEE, FL_IS_MAKER, FL_ORDER_ID, FL_POSITION_AFTER, FL_PRICE, FL_QTY,
                              FL_REASON, FL_SIDE, FL_SIGNAL_ID, N_EQ, S_QTY, TR_BARS_HELD, TR_ENTRY_PRICE,
                              TR_ENTRY_REASON, TR_EXIT_PRICE, TR_EXIT_REASON, TR_FEES, TR_FUNDING, TR_GROSS_PNL,
                              TR_NET_PNL, TR_QTY, TR_SIDE, TR_SIGNAL_ID, TRADE_TS_ENTRY, TRADE_TS_EXIT, apply_fill_nb,
                              mark_nb, new_account_state, new_fills_journal, new_position_state, new_trades_journal,
                              record_equity_nb)
from risk.gate import RiskConfig, new_arrays
from risk.state import L_FROM, L_REASON, L_TO, L_TS, S_LOG_COUNT
from risk.stops import new_state as new_stop_state


@dataclass(frozen=True)
class FundingSeries:
    """Real funding events: ts (ns), rate, mark (NaN = use the bar close)."""

    ts: np.ndarray
    rate: np.ndarray
    mark: np.ndarray | None = None


@dataclass
class EngineRun:
    """A finished run: the result, the decision journal (for parity checks) and the margin ratio
    (maintenance margin / margin balance; 0 when flat) at every bar close."""

    result: BacktestResult
    decisions: pl.DataFrame
    margin: pl.DataFrame


def run_engine(inputs: BarInputs, *, instrument: Instrument, engine: EngineSettings, risk: RiskConfig,
               venue: VenueConfig, initial_equity: float, bar_spec: str, funding: FundingSeries | None = None,
               config: dict | None = None, config_hash: str = "", progress: bool = False,
               chunks: int = 50) -> EngineRun:
    n = inputs.n
    if n == 0:
        raise ValueError("no bars to backtest")
    insts = [instrument]
    inst = np.ascontiguousarray(instrument_params(insts)[0])
    fee_p = venue.fees.to_params()
    fill_p = venue.fill_model.to_params()
    margin_p = venue.margin.to_params()
    brackets = venue.margin.bracket_params(insts)
    fund_p = venue.funding.to_params()
    if funding is not None:
        f_ts, f_rate, f_mark = prepare_series(funding.ts, funding.rate, funding.mark)
        funding_mode = 2
    else:
        f_ts, f_rate, f_mark = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        funding_mode = 0 if venue.funding.source == "series" else 1
    ep = engine.to_params(instrument, venue.fees.taker_rate, funding_mode)
    es, ei = k.new_engine_state()
    ra = new_arrays(risk)
    stop_p = risk.stops.to_params()
    stop_state = new_stop_state()
    pos, pos_ts = new_position_state(insts, venue.margin.leverages(insts))
    acc = new_account_state(initial_equity)
    cap = engine.journal_capacity or max(1024, n // 2 + 16)
    fills, fill_ts = new_fills_journal(cap)
    trades, trade_ts = new_trades_journal(cap)
    # column-major, so each equity column becomes a frame column without a strided copy
    eq = np.empty((n, N_EQ + 1), dtype=np.float64, order="F")  # + the margin ratio column
    eq_ts = np.zeros(n, dtype=np.int64)
    dec = np.zeros((cap, k.N_DECISION), dtype=np.float64)
    dec_ts = np.zeros(cap, dtype=np.int64)

    b = inputs
    # chunks also bound how many trading-state changes accumulate between two reads of the ring log
    n_chunks = min(n, max(chunks, n // 20_000))
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    changes: list[np.ndarray] = []
    with tqdm(total=n, unit="bar", desc="backtest", disable=not progress) as bar:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            k.run_nb(int(lo), int(hi), b.ts_event, b.ts_open, b.open, b.high, b.low, b.close, b.volume, b.atr,
                     b.price_impact, b.ofi_ema5, b.cum_delta_slope, b.trade_intensity, b.enter_long, b.enter_short,
                     b.exit_long, b.exit_short, b.strength, b.source, b.regime_factor, b.flatten, ep, fee_p, fill_p,
                     inst, margin_p, brackets, fund_p, f_ts, f_rate, f_mark, es, ei, *ra[:8], ra.sm_log, stop_p,
                     stop_state, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, eq, eq_ts, dec, dec_ts)
            changes.append(_drain_state_log(ra.sm, ra.sm_log, sum(c.shape[0] for c in changes)))
            bar.update(int(hi - lo))
    if engine.close_at_end and pos[k.SYM, S_QTY] != 0.0:
        _close_at_end(b, inst, fee_p, es, ei, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, eq, eq_ts)
    if int(acc[ACC_N_FILLS]) > cap or int(acc[ACC_N_TRADES]) > cap or int(ei[k.EI_N_DECISIONS]) > cap:
        raise RuntimeError(f"journal capacity {cap} exceeded: set engine.journal_capacity higher")

    symbols = [instrument.symbol]
    result = BacktestResult(
        equity=_equity(eq, eq_ts),
        fills=_fills(fills[: int(acc[ACC_N_FILLS])], fill_ts[: int(acc[ACC_N_FILLS])], instrument.symbol),
        trades=_trades(trades[: int(acc[ACC_N_TRADES])], trade_ts[: int(acc[ACC_N_TRADES])], instrument.symbol),
        state_changes=_state_changes(changes),
        initial_equity=float(initial_equity),
        meta=RunMeta(symbols=tuple(symbols), bar_spec=bar_spec, start_ns=int(b.ts_open[0]),
                     end_ns=int(b.ts_event[-1])),
        config=config or {},
        config_hash=config_hash,
    )
    nd = int(ei[k.EI_N_DECISIONS])
    decisions = pl.DataFrame({
        "ts_event": dec_ts[:nd], "bar": dec[:nd, k.D_BAR].astype(np.int64), "side": dec[:nd, k.D_SIDE].astype(np.int64),
        "qty": dec[:nd, k.D_QTY], "reason": dec[:nd, k.D_REASON].astype(np.int64),
        "signal": dec[:nd, k.D_SIGNAL].astype(np.int64), "is_entry": dec[:nd, k.D_IS_ENTRY] != 0.0,
    })
    margin = pl.DataFrame({"ts_event": eq_ts, "margin_ratio": eq[:, N_EQ]})
    return EngineRun(result=result, decisions=decisions, margin=margin)


def _close_at_end(b, inst, fee_p, es, ei, pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, eq, eq_ts):
    """Close the open position at the last close (taker fee, no slippage), re-record the last equity row."""
    i = b.n - 1
    q = pos[k.SYM, S_QTY]
    price = float(b.close[i])
    fee = fee_nb(abs(q) * price, False, fee_p)
    ei[k.EI_ORDER_ID] += 1
    apply_fill_nb(pos, pos_ts, acc, fills, fill_ts, trades, trade_ts, k.SYM, int(b.ts_event[i]), i,
                  -1 if q > 0 else 1, abs(q), price, fee, False, int(Reason.END_OF_DATA), int(es[k.E_POS_SOURCE]),
                  int(ei[k.EI_ORDER_ID]))
    mark_nb(pos, acc, k.SYM, price)
    record_equity_nb(pos, acc, eq, eq_ts, i, int(b.ts_event[i]))


def _equity(eq: np.ndarray, eq_ts: np.ndarray) -> pl.DataFrame:
    e = eq
    equity = e[:, EQ_EQUITY]
    with np.errstate(divide="ignore", invalid="ignore"):
        gross = np.where(equity > 0, e[:, EQ_GROSS_EXPOSURE] / equity, np.inf)
    return pl.DataFrame({"ts_event": eq_ts, "equity": equity, "position_notional": e[:, EQ_NET_EXPOSURE],
                         "gross_exposure": gross, "cash": e[:, EQ_WALLET]})


def _fills(f: np.ndarray, ts: np.ndarray, symbol: str) -> pl.DataFrame:
    """Fills journal rows → FILL_SCHEMA, with the round trip each fill belongs to."""
    pos_after = f[:, FL_POSITION_AFTER]
    closed_before = np.concatenate([[0], np.cumsum(pos_after[:-1] == 0.0)]) if f.shape[0] else np.zeros(0)
    return pl.DataFrame({
        "ts_event": ts, "symbol": [symbol] * f.shape[0], "side": f[:, FL_SIDE].astype(np.int64),
        "qty": f[:, FL_QTY], "price": f[:, FL_PRICE], "fee": f[:, FL_FEE], "is_maker": f[:, FL_IS_MAKER] != 0.0,
        "reason": f[:, FL_REASON].astype(np.int64), "signal": f[:, FL_SIGNAL_ID].astype(np.int64),
        "order_id": f[:, FL_ORDER_ID].astype(np.int64), "trade_id": closed_before.astype(np.int64),
    })


def _trades(t: np.ndarray, ts: np.ndarray, symbol: str) -> pl.DataFrame:
    """Round-trip journal rows → TRADE_SCHEMA."""
    notional = t[:, TR_ENTRY_PRICE] * t[:, TR_QTY]
    return pl.DataFrame({
        "trade_id": np.arange(t.shape[0], dtype=np.int64), "symbol": [symbol] * t.shape[0],
        "side": t[:, TR_SIDE].astype(np.int64), "entry_ts": ts[:, TRADE_TS_ENTRY], "exit_ts": ts[:, TRADE_TS_EXIT],
        "entry_price": t[:, TR_ENTRY_PRICE], "exit_price": t[:, TR_EXIT_PRICE], "qty": t[:, TR_QTY],
        "gross_pnl": t[:, TR_GROSS_PNL], "fees": t[:, TR_FEES], "funding": t[:, TR_FUNDING], "pnl": t[:, TR_NET_PNL],
        "entry_reason": t[:, TR_ENTRY_REASON].astype(np.int64), "exit_reason": t[:, TR_EXIT_REASON].astype(np.int64),
        "signal": t[:, TR_SIGNAL_ID].astype(np.int64), "bars_held": t[:, TR_BARS_HELD].astype(np.int64),
        "return": t[:, TR_NET_PNL] / notional,
    }, schema_overrides={"symbol": pl.Utf8})


def _drain_state_log(sm: np.ndarray, log: np.ndarray, already: int) -> np.ndarray:
    """Rows of the trading-state ring log written since `already` changes had been read."""
    count = int(sm[S_LOG_COUNT])
    new = count - already
    cap = log.shape[0]
    if new > cap:
        raise RuntimeError(f"{new} trading-state changes within one chunk overflowed the log (capacity {cap}): "
                           "raise risk.trading_state.log_capacity")
    idx = np.arange(already, count) % cap
    return log[idx].copy()


def _state_changes(chunks: list[np.ndarray]) -> pl.DataFrame:
    rows = np.concatenate(chunks) if chunks else np.zeros((0, 4), dtype=np.int64)
    return pl.DataFrame({"ts_event": rows[:, L_TS], "from_state": rows[:, L_FROM], "to_state": rows[:, L_TO],
                         "reason": rows[:, L_REASON]}, schema={"ts_event": pl.Int64, "from_state": pl.Int64,
                                                               "to_state": pl.Int64, "reason": pl.Int64})


__all__ = ["EngineRun", "FundingSeries", "run_engine"]
