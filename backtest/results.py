"""The result of one backtest run: frames with fixed schemas, the run's identity, and JSON form.

Every frame is checked on construction (`BacktestResult.__post_init__`): exact columns and dtypes
(lossless casts allowed, extra columns dropped), no nulls, and the invariants the metrics rely on.
A violation raises `SchemaError` (columns/dtypes) or `DataError` naming the frame, the column and
the first offending 1-based row. Nothing is dropped or clamped.

Sign conventions: `fee` and trade `fees`/`funding` are costs (positive = paid, negative = rebate or
funding received), so `pnl = gross_pnl - fees - funding`; `return = pnl / (entry_price * qty)`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from core.enums import Reason, TradingState
from core.errors import ConfigError, DataError, SchemaError
from market.schema import conform

# Mark-to-market at each bar close. An input `drawdown` column is accepted and ignored: the metrics
# recompute it from `equity` so that it cannot disagree with the curve.
EQUITY_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,  # bar close, UTC ns
    "equity": pl.Float64,  # cash + mark-to-market of open positions
    "position_notional": pl.Float64,  # signed sum of position notionals
    "gross_exposure": pl.Float64,  # sum |notional| / equity
    "cash": pl.Float64,
}
EQUITY_OPTIONAL = ("drawdown",)

FILL_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,
    "symbol": pl.Utf8,
    "side": pl.Int64,  # +1 buy, -1 sell
    "qty": pl.Float64,  # > 0
    "price": pl.Float64,
    "fee": pl.Float64,  # cost: positive paid, negative rebate
    "is_maker": pl.Boolean,
    "reason": pl.Int64,  # core.enums.Reason
    "signal": pl.Int64,  # bitmask: 1 = A, 2 = B, 0 = none
    "order_id": pl.Int64,
    "trade_id": pl.Int64,
}

TRADE_SCHEMA: dict[str, pl.DataType] = {
    "trade_id": pl.Int64,
    "symbol": pl.Utf8,
    "side": pl.Int64,  # +1 long, -1 short
    "entry_ts": pl.Int64,
    "exit_ts": pl.Int64,
    "entry_price": pl.Float64,  # volume-weighted over entry fills
    "exit_price": pl.Float64,
    "qty": pl.Float64,
    "gross_pnl": pl.Float64,
    "fees": pl.Float64,  # cost
    "funding": pl.Float64,  # cost: positive paid
    "pnl": pl.Float64,  # net = gross_pnl - fees - funding
    "entry_reason": pl.Int64,
    "exit_reason": pl.Int64,
    "signal": pl.Int64,  # bitmask of the entry signal
    "bars_held": pl.Int64,
    "return": pl.Float64,  # pnl / (entry_price * qty)
}

STATE_CHANGE_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,
    "from_state": pl.Int64,  # core.enums.TradingState
    "to_state": pl.Int64,
    "reason": pl.Int64,  # core.enums.Reason
}

_REASONS = np.array(sorted(int(r) for r in Reason), dtype=np.int64)
_STATES = np.array(sorted(int(s) for s in TradingState), dtype=np.int64)
# Invariants computed from other columns hold to this relative tolerance (float accumulation order).
_REL_TOL = 1e-9


@dataclass(frozen=True)
class RunMeta:
    """What was run: the symbols, the bar specification and the period [start_ns, end_ns].

    `start_ns` is the instant at which the account held `initial_equity` (before the first bar
    closed); it anchors total return, CAGR, drawdowns and the first daily return.
    """

    symbols: tuple[str, ...]
    bar_spec: str
    start_ns: int
    end_ns: int

    def __post_init__(self) -> None:
        syms = tuple(self.symbols) if not isinstance(self.symbols, str) else (self.symbols,)
        if not syms or not all(isinstance(s, str) and s for s in syms):
            raise ConfigError(f"meta.symbols = {self.symbols!r}: expected a non-empty list of symbol names")
        object.__setattr__(self, "symbols", syms)
        for name in ("start_ns", "end_ns"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ConfigError(f"meta.{name} = {v!r}: expected an integer UTC timestamp in ns")
            object.__setattr__(self, name, int(v))
        if self.end_ns < self.start_ns:
            raise ConfigError(f"meta.end_ns = {self.end_ns} is before meta.start_ns = {self.start_ns}")
        if not isinstance(self.bar_spec, str):
            raise ConfigError(f"meta.bar_spec = {self.bar_spec!r}: expected a string")

    def to_json_dict(self) -> dict[str, Any]:
        return {"symbols": list(self.symbols), "bar_spec": self.bar_spec,
                "start_ns": self.start_ns, "end_ns": self.end_ns}


@dataclass(frozen=True)
class BacktestResult:
    """Frames of one run plus its identity. Frames are validated and normalised on construction.

    `equity` must have at least one row. `fills`, `trades` and `state_changes` may be empty; pass
    `empty_frame(SCHEMA)` or None (None becomes an empty frame).
    """

    equity: pl.DataFrame
    fills: pl.DataFrame | None
    trades: pl.DataFrame | None
    state_changes: pl.DataFrame | None
    initial_equity: float
    meta: RunMeta
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.meta, RunMeta):
            raise ConfigError(f"meta must be a RunMeta, got {type(self.meta).__name__}")
        ie = self.initial_equity
        if isinstance(ie, bool) or not isinstance(ie, (int, float, np.floating, np.integer)) \
                or not math.isfinite(ie) or ie <= 0:
            raise ConfigError(f"initial_equity = {ie!r}: expected a finite number > 0")
        object.__setattr__(self, "initial_equity", float(ie))
        if not isinstance(self.config, dict):
            raise ConfigError(f"config must be a dict, got {type(self.config).__name__}")
        try:
            json.dumps(self.config, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config is not JSON-serialisable: {exc}") from None
        if not isinstance(self.config_hash, str):
            raise ConfigError(f"config_hash = {self.config_hash!r}: expected a string")
        object.__setattr__(self, "equity", _check_equity(self.equity, self.meta))
        object.__setattr__(self, "fills", _check_fills(self.fills, self.meta))
        object.__setattr__(self, "trades", _check_trades(self.trades, self.meta))
        object.__setattr__(self, "state_changes", _check_state_changes(self.state_changes))

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict: frames as {column: [values]}; NaN becomes null, ±inf "inf"/"-inf"."""
        return {
            "initial_equity": self.initial_equity,
            "config": self.config,
            "config_hash": self.config_hash,
            "meta": self.meta.to_json_dict(),
            "equity": _frame_to_json(self.equity),
            "fills": _frame_to_json(self.fills),
            "trades": _frame_to_json(self.trades),
            "state_changes": _frame_to_json(self.state_changes),
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> BacktestResult:
        """Inverse of `to_json_dict` (null back to NaN in float columns)."""
        try:
            m = d["meta"]
            return cls(
                equity=_frame_from_json(d["equity"], EQUITY_SCHEMA),
                fills=_frame_from_json(d["fills"], FILL_SCHEMA),
                trades=_frame_from_json(d["trades"], TRADE_SCHEMA),
                state_changes=_frame_from_json(d["state_changes"], STATE_CHANGE_SCHEMA),
                initial_equity=d["initial_equity"],
                meta=RunMeta(tuple(m["symbols"]), m["bar_spec"], m["start_ns"], m["end_ns"]),
                config=d.get("config", {}),
                config_hash=d.get("config_hash", ""),
            )
        except KeyError as exc:
            raise SchemaError(f"backtest result JSON lacks key {exc.args[0]!r}") from None


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def json_float(v: float) -> float | str | None:
    """The JSON form of a float: NaN → null, +inf → "inf", -inf → "-inf" (JSON has no NaN/inf)."""
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def float_from_json(v: Any) -> float:
    """Inverse of `json_float`."""
    if v is None:
        return math.nan
    if v == "inf":
        return math.inf
    if v == "-inf":
        return -math.inf
    return float(v)


def _frame_to_json(df: pl.DataFrame) -> dict[str, list]:
    out = {}
    for name, dtype in df.schema.items():
        values = df.get_column(name).to_list()
        out[name] = [json_float(v) for v in values] if dtype == pl.Float64 else values
    return out


def _frame_from_json(cols: dict[str, list], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    data = {}
    for name, dtype in schema.items():
        if name not in cols:
            raise SchemaError(f"backtest result JSON frame lacks column {name!r}")
        vals = cols[name]
        data[name] = [float_from_json(v) for v in vals] if dtype == pl.Float64 else vals
    return pl.DataFrame(data, schema=schema)


# --- validation -------------------------------------------------------------------------------


def _normalise(df: pl.DataFrame | None, schema: dict[str, pl.DataType], where: str) -> pl.DataFrame:
    if df is None:
        return empty_frame(schema)
    if not isinstance(df, pl.DataFrame):
        raise SchemaError(f"expected a polars DataFrame, got {type(df).__name__}", source=where)
    out = conform(df, schema, where)
    for name in schema:
        nulls = out.get_column(name).null_count()
        if nulls:
            row = int(out.get_column(name).is_null().arg_max()) + 1
            raise DataError(f"column {name!r} has {nulls} null value(s)", source=where, line=row)
    return out


def _fail_at(mask: np.ndarray, message: str, where: str) -> None:
    """Raise DataError at the first True of `mask` (1-based row)."""
    if mask.any():
        raise DataError(f"{message} ({int(mask.sum())} row(s))", source=where, line=int(np.argmax(mask)) + 1)


def _col(df: pl.DataFrame, name: str) -> np.ndarray:
    return df.get_column(name).to_numpy()


def _check_sorted(ts: np.ndarray, name: str, where: str) -> None:
    if ts.size > 1:
        bad = np.zeros(ts.size, dtype=bool)
        bad[1:] = ts[1:] < ts[:-1]
        _fail_at(bad, f"{name} decreases", where)


def _check_in(values: np.ndarray, allowed: np.ndarray, name: str, what: str, where: str) -> None:
    _fail_at(~np.isin(values, allowed), f"{name} is not a valid {what} code", where)


def _check_symbols(df: pl.DataFrame, meta: RunMeta, where: str) -> None:
    known = pl.Series(list(meta.symbols), dtype=pl.Utf8)
    bad = (~df.get_column("symbol").is_in(known.implode())).to_numpy()
    _fail_at(bad, f"symbol not in meta.symbols {list(meta.symbols)}", where)


def _check_equity(df: pl.DataFrame, meta: RunMeta) -> pl.DataFrame:
    where = "backtest equity curve"
    out = _normalise(df, EQUITY_SCHEMA, where)
    if out.height == 0:
        raise DataError("equity curve is empty: a run has at least one bar", source=where)
    ts = _col(out, "ts_event")
    _check_sorted(ts, "ts_event", where)
    _fail_at(ts < meta.start_ns, f"ts_event before meta.start_ns = {meta.start_ns}", where)
    _fail_at(ts > meta.end_ns, f"ts_event after meta.end_ns = {meta.end_ns}", where)
    for name in ("equity", "position_notional", "cash"):
        _fail_at(~np.isfinite(_col(out, name)), f"{name} is not finite", where)
    eq, gx = _col(out, "equity"), _col(out, "gross_exposure")
    # Where equity <= 0 the ratio has no meaning (the account is ruined); elsewhere it must be sane.
    _fail_at((eq > 0) & ~(np.isfinite(gx) & (gx >= 0)), "gross_exposure is not finite and >= 0", where)
    return out


def _check_fills(df: pl.DataFrame | None, meta: RunMeta) -> pl.DataFrame:
    where = "backtest fills"
    out = _normalise(df, FILL_SCHEMA, where)
    if out.height == 0:
        return out
    _check_sorted(_col(out, "ts_event"), "ts_event", where)
    _check_symbols(out, meta, where)
    _fail_at(~np.isin(_col(out, "side"), [-1, 1]), "side is not +1 or -1", where)
    qty, price = _col(out, "qty"), _col(out, "price")
    _fail_at(~(np.isfinite(qty) & (qty > 0)), "qty is not finite and > 0", where)
    _fail_at(~(np.isfinite(price) & (price > 0)), "price is not finite and > 0", where)
    _fail_at(~np.isfinite(_col(out, "fee")), "fee is not finite", where)
    _check_in(_col(out, "reason"), _REASONS, "reason", "core.enums.Reason", where)
    _fail_at(_col(out, "signal") < 0, "signal bitmask is negative", where)
    return out


def _check_trades(df: pl.DataFrame | None, meta: RunMeta) -> pl.DataFrame:
    where = "backtest trades"
    out = _normalise(df, TRADE_SCHEMA, where)
    if out.height == 0:
        return out
    _check_symbols(out, meta, where)
    _fail_at(out.get_column("trade_id").is_duplicated().to_numpy(), "trade_id is not unique", where)
    _fail_at(~np.isin(_col(out, "side"), [-1, 1]), "side is not +1 or -1", where)
    entry_ts, exit_ts = _col(out, "entry_ts"), _col(out, "exit_ts")
    _fail_at(exit_ts < entry_ts, "exit_ts is before entry_ts", where)
    _fail_at(entry_ts < meta.start_ns, f"entry_ts before meta.start_ns = {meta.start_ns}", where)
    for name in ("entry_price", "exit_price", "qty"):
        v = _col(out, name)
        _fail_at(~(np.isfinite(v) & (v > 0)), f"{name} is not finite and > 0", where)
    for name in ("gross_pnl", "fees", "funding", "pnl", "return"):
        _fail_at(~np.isfinite(_col(out, name)), f"{name} is not finite", where)
    for name in ("entry_reason", "exit_reason"):
        _check_in(_col(out, name), _REASONS, name, "core.enums.Reason", where)
    _fail_at(_col(out, "signal") < 0, "signal bitmask is negative", where)
    _fail_at(_col(out, "bars_held") < 0, "bars_held is negative", where)
    gross, fees, funding, pnl = (_col(out, c) for c in ("gross_pnl", "fees", "funding", "pnl"))
    scale = np.maximum.reduce([np.abs(gross), np.abs(fees), np.abs(funding), np.ones_like(pnl)])
    _fail_at(np.abs(gross - fees - funding - pnl) > _REL_TOL * scale,
             "pnl != gross_pnl - fees - funding", where)
    notional = _col(out, "entry_price") * _col(out, "qty")
    ret = _col(out, "return")
    _fail_at(np.abs(ret * notional - pnl) > _REL_TOL * np.maximum(np.abs(pnl), notional),
             "return != pnl / (entry_price * qty)", where)
    return out


def _check_state_changes(df: pl.DataFrame | None) -> pl.DataFrame:
    where = "backtest state changes"
    out = _normalise(df, STATE_CHANGE_SCHEMA, where)
    if out.height == 0:
        return out
    _check_sorted(_col(out, "ts_event"), "ts_event", where)
    _check_in(_col(out, "from_state"), _STATES, "from_state", "core.enums.TradingState", where)
    _check_in(_col(out, "to_state"), _STATES, "to_state", "core.enums.TradingState", where)
    _check_in(_col(out, "reason"), _REASONS, "reason", "core.enums.Reason", where)
    return out
