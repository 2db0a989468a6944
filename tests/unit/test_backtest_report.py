"""HTML report and JSON output of a backtest: every section present, well-formed HTML with decodable
embedded PNGs, JSON round trips with null for NaN, result JSON round trip."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest

from backtest.metrics import compute_metrics
from backtest.report import (
    format_value,
    metrics_json_dict,
    read_metrics_json,
    write_metrics_json,
    write_report,
)
from backtest.results import (
    FILL_SCHEMA,
    STATE_CHANGE_SCHEMA,
    TRADE_SCHEMA,
    BacktestResult,
    RunMeta,
    float_from_json,
    json_float,
)
from core.enums import Reason, TradingState
from core.errors import RejectedError, SchemaError
from tests.unit.test_backtest_metrics import (
    SYM,
    T0,
    H,
    equity_frame,
    hand_result,
    make_result,
)

SECTIONS = ("Run", "Metrics", "Equity and drawdown", "Monthly returns", "Trades on price",
            "Distribution of trade returns", "Attribution by signal source", "Attribution by UTC hour of entry",
            "Attribution by exit reason", "Trading state changes", "Slippage sensitivity")


def simulated_run(seed: int = 1, days: int = 75, slip: float = 0.0) -> tuple[BacktestResult, pl.DataFrame]:
    """Hourly random-walk price and a random long/short trader with consistent cash accounting."""
    rng = np.random.default_rng(seed)
    n = days * 24
    ts = T0 + (np.arange(n) + 1) * H
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    cash, qty_held, side_held = 10_000.0, 0.0, 0
    entry = {}
    fills, trades, eq_rows = [], [], []
    fee_rate = 0.0004
    for i in range(n):
        px = close[i]
        if side_held and (rng.random() < 0.08 or i == n - 1):
            exit_px = px * (1 - side_held * slip)
            fee = qty_held * exit_px * fee_rate
            cash += side_held * qty_held * exit_px - fee
            fills.append((ts[i], SYM, -side_held, qty_held, exit_px, fee, False, int(Reason.STOP_L1), entry["sig"],
                          len(fills), entry["id"]))
            gross = side_held * (exit_px - entry["px"]) * qty_held
            fees = entry["fee"] + fee
            pnl = gross - fees
            trades.append((entry["id"], SYM, side_held, entry["ts"], int(ts[i]), entry["px"], exit_px, qty_held,
                           gross, fees, 0.0, pnl, entry["reason"],
                           int(Reason.END_OF_DATA if i == n - 1 else rng.choice([10, 11, 12, 13])),
                           entry["sig"], i - entry["bar"], pnl / (entry["px"] * qty_held)))
            side_held, qty_held = 0, 0.0
        elif not side_held and i < n - 1 and rng.random() < 0.1:
            side_held = int(rng.choice([-1, 1]))
            entry_px = px * (1 + side_held * slip)
            equity_now = cash
            qty_held = round(equity_now * 0.5 / entry_px, 6)
            fee = qty_held * entry_px * fee_rate
            cash -= side_held * qty_held * entry_px + fee
            sig = int(rng.choice([0, 1, 2, 3]))
            entry = {"id": len(trades) + 1, "ts": int(ts[i]), "px": entry_px, "fee": fee, "sig": sig, "bar": i,
                     "reason": int(Reason(sig if sig else 4))}
            fills.append((ts[i], SYM, side_held, qty_held, entry_px, fee, bool(rng.random() < 0.3), entry["reason"],
                          sig, len(fills), entry["id"]))
        notional = side_held * qty_held * px
        equity = cash + notional
        eq_rows.append((int(ts[i]), equity, notional, abs(notional) / equity, cash))
    eq = pl.DataFrame(eq_rows, schema=["ts_event", "equity", "position_notional", "gross_exposure", "cash"],
                      orient="row")
    states = pl.DataFrame([(T0 + 100 * H, 0, 2, int(Reason.DAILY_LOSS_LIMIT)), (T0 + 120 * H, 2, 0, int(Reason.NEW_DAY))],
                          schema=STATE_CHANGE_SCHEMA, orient="row")
    res = BacktestResult(eq, pl.DataFrame(fills, schema=FILL_SCHEMA, orient="row"),
                         pl.DataFrame(trades, schema=TRADE_SCHEMA, orient="row"), states, 10_000.0,
                         RunMeta((SYM,), "1h", T0, T0 + n * H), {"fee_bps": 4, "slip": slip}, "f00dcafe")
    price = pl.DataFrame({"ts_event": ts, "close": close})
    return res, price


class _StrictParser(HTMLParser):
    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.h2, self.imgs = [], [], [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def _parse(path) -> _StrictParser:
    p = _StrictParser()
    p.feed(path.read_text())
    p.close()
    assert not p.errors, p.errors[:3]
    assert not p.stack, p.stack
    return p


def test_report_has_every_section_and_valid_images(tmp_path):
    res, price = simulated_run()
    worse, _ = simulated_run(slip=0.0005)
    worst, _ = simulated_run(slip=0.001)
    out = write_report(res, tmp_path / "sub" / "report.html", sensitivity={1.0: res, 2.0: worse, 3.0: worst},
                       price=price)
    assert out == tmp_path / "sub" / "report.html"
    p = _parse(out)
    assert tuple(p.h2) == SECTIONS
    assert len(p.imgs) == 4  # equity/drawdown, monthly heatmap, trades on price, return distribution
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = out.read_text()
    m = compute_metrics(res)
    assert format_value(m["sharpe"]) in text and format_value(m["total_return"], "pct") in text
    assert "DAILY_LOSS_LIMIT" in text and "HALTED" in text and "f00dcafe" in text
    assert "http://" not in text and "https://" not in text  # nothing fetched: opens offline
    sens_rows = re.findall(r"<tr><td>([0-9.]+)</td>", text.split("Slippage sensitivity</h2>")[1])
    assert sens_rows == ["1", "2", "3"]


def test_report_without_trades_price_or_sensitivity(tmp_path):
    res = make_result(equity_frame([1, 30], [1000, 1000]))
    p = _parse(write_report(res, tmp_path / "r.html"))
    assert tuple(p.h2) == SECTIONS
    text = (tmp_path / "r.html").read_text()
    assert "(no price series given)" in text and "(no trades)" in text
    assert "(no slippage sensitivity runs given)" in text and "n/a" in text


def test_report_bad_inputs(tmp_path):
    res = hand_result()
    with pytest.raises(RejectedError, match="BacktestResult"):
        write_report({"x": 1}, tmp_path / "r.html")
    with pytest.raises(SchemaError, match="missing columns"):
        write_report(res, tmp_path / "r.html", price=pl.DataFrame({"ts_event": [T0]}))
    with pytest.raises(SchemaError, match="symbol"):
        multi = BacktestResult(res.equity, None, None, None, 1000.0, RunMeta((SYM, "ETHUSDT"), "1h", T0, T0 + 72 * H))
        write_report(multi, tmp_path / "r.html", price=pl.DataFrame({"ts_event": [T0 + H], "close": [1.0]}))
    with pytest.raises(RejectedError, match="multiplier"):
        write_report(res, tmp_path / "r.html", sensitivity={-1.0: res})


def test_metrics_json_round_trip_with_nan_and_inf(tmp_path):
    trades_all_wins = make_result(equity_frame([1, 30], [1000, 1000]))  # flat: Sharpe NaN
    path = write_metrics_json(trades_all_wins, tmp_path / "m.json", sensitivity={1.0: trades_all_wins})
    raw = json.loads(path.read_text())  # strict JSON: no NaN/Infinity tokens
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert raw["metrics"]["sharpe"] is None and raw["metrics"]["win_rate"] is None
    assert raw["metrics"]["n_trades"] == 0 and raw["metrics"]["ruined"] is False
    assert raw["slippage_sensitivity"][0]["sharpe"] is None
    back = read_metrics_json(path)
    m = compute_metrics(trades_all_wins)
    assert back["metrics"].keys() == m.keys()
    for k, v in m.items():
        assert (math.isnan(v) and math.isnan(back["metrics"][k])) if isinstance(v, float) and math.isnan(v) \
            else back["metrics"][k] == v, k
    assert back["meta"]["symbols"] == [SYM] and back["config"] == {"fee_bps": 4}


def test_metrics_json_inf_and_tables(tmp_path):
    res = hand_result()
    d = metrics_json_dict(res)
    assert [r["source"] for r in d["attribution_by_signal"]] == ["A", "B", "A+B", "other"]
    assert len(d["attribution_by_hour"]) == 24 and d["attribution_by_hour"][0]["win_rate"] is None
    assert d["monthly_returns"] == [{"year": 2024, "month": 1, "return": pytest.approx(0.01745, rel=1e-12)}]
    assert d["slippage_sensitivity"] is None
    one_bar = make_result(equity_frame([5], [1010]))
    path = write_metrics_json(one_bar, tmp_path / "one.json")
    assert json.loads(path.read_text())["metrics"]["sortino"] == "inf"
    assert read_metrics_json(path)["metrics"]["sortino"] == math.inf
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(SchemaError, match="format_version"):
        read_metrics_json(bad)


def test_json_float_helpers():
    assert json_float(float("nan")) is None and json_float(math.inf) == "inf" and json_float(-math.inf) == "-inf"
    assert json_float(1.5) == 1.5
    for v in (1.5, math.inf, -math.inf, 0.0):
        assert float_from_json(json_float(v)) == v
    assert math.isnan(float_from_json(None))


def test_result_json_round_trip():
    res, _ = simulated_run(seed=3, days=5)
    ruined = make_result(equity_frame([1, 2], [10, 0], gross=[0.0, float("nan")]))
    for r in (res, ruined, hand_result()):
        d = json.loads(json.dumps(r.to_json_dict(), allow_nan=False))
        back = BacktestResult.from_json_dict(d)
        for name in ("equity", "fills", "trades", "state_changes"):
            assert getattr(back, name).equals(getattr(r, name)), name
        assert back.meta == r.meta and back.config == r.config and back.initial_equity == r.initial_equity
    assert ruined.to_json_dict()["equity"]["gross_exposure"] == [0.0, None]
    with pytest.raises(SchemaError, match="lacks key 'meta'"):
        BacktestResult.from_json_dict({"equity": {}})


def test_format_value():
    assert format_value(float("nan")) == "n/a" and format_value(math.inf) == "∞" and format_value(-math.inf) == "-∞"
    assert format_value(0.01745, "pct") == "1.75%" and format_value(1234.5, "money") == "1,234.50"
    assert format_value(True, "bool") == "yes" and format_value(2024, "year") == "2024"
    assert format_value(3, "int") == "3" and format_value(None) == ""
    assert int(TradingState.HALTED) == 2


def test_plot_envelope_keeps_extremes_and_order():
    from backtest.report import _envelope

    rng = np.random.default_rng(5)
    y = np.cumsum(rng.normal(size=100_000))
    ts = np.arange(y.size, dtype=np.int64)
    t, v = _envelope(ts, y, max_points=400)
    assert v.size <= 404 and np.all(np.diff(t) > 0)
    assert v.min() == y.min() and v.max() == y.max() and t[0] == 0 and t[-1] == y.size - 1
    np.testing.assert_array_equal(v, y[t])
    _t2, v2 = _envelope(ts[:50], y[:50], max_points=400)
    np.testing.assert_array_equal(v2, y[:50])
