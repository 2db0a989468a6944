"""Golden backtests on real data, pinned to exact numbers; a rerun must give identical trades.

1. configs/backtest/fil_family.yaml — the order-flow family with every risk rule, on trades
   synthesized (seed 7) from the real FILUSDT 1m klines of August 2023.
2. configs/backtest/btc_1h_ema.yaml — EMA cross 12/48 risk-sized on the real BTCUSDT 1h klines
   2023-01 → 2025-06 with the real funding series.

The pinned values were produced by this code on the reference machine; any change to a decision,
a fill, a fee or a metric moves them. Change them only with a commit that says why.
"""

from __future__ import annotations

import pytest

from backtest.config import load_backtest_config
from backtest.experiment import run_experiment
from backtest.metrics import compute_metrics
from core.enums import Reason
from tests.conftest import REPO_ROOT, shared_data_path

CONFIGS = REPO_ROOT / "configs" / "backtest"

GOLDEN = {
    "fil_family": {
        "data": ("binance", "klines_1m", "FILUSDT-1m-2023-08.csv"),
        "bars": 9316, "fills": 62,
        "metrics": {"n_trades": 31, "final_equity": 100179.42115706734, "total_return": 0.0017942115706732764,
                    "sharpe": 1.9476219279803257, "sortino": 7.088228332795543,
                    "max_drawdown": -0.0015011053010571818, "win_rate": 0.4838709677419355,
                    "profit_factor": 1.5227901148790322, "fees_total": 124.18858647813798},
        "slippage_final_equity": {1.0: 100179.42115706734, 2.0: 100137.84304424936, 3.0: 100096.44189504761},
        "exit_reasons": {Reason.SIGNAL_A: 7, Reason.STOP_L1: 10, Reason.TAKE_PROFIT_TRAIL: 14},
    },
    "btc_1h_ema": {
        "data": ("binance", "klines_1h", "BTCUSDT-usdm-1h-2023-01-01_2025-06-30.csv"),
        "bars": 21888, "fills": 532,
        "metrics": {"n_trades": 266, "final_equity": 93279.54304528687, "total_return": -0.06720456954713128,
                    "sharpe": -1.1707358768981364, "sortino": -1.541720037336414,
                    "max_drawdown": -0.09047702617493059, "win_rate": 0.5263157894736842,
                    "profit_factor": 0.750214038487849, "fees_total": 5515.089278301082,
                    "funding_total": 337.595204414946},
        "slippage_final_equity": {1.0: 93279.54304528687, 2.0: 91950.12314439622, 3.0: 89989.95182603109},
        "exit_reasons": {Reason.SIGNAL_CUSTOM: 42, Reason.STOP_L1: 78, Reason.TAKE_PROFIT_TRAIL: 146},
    },
}


@pytest.fixture(scope="module", params=sorted(GOLDEN))
def golden(request):
    name = request.param
    shared_data_path(*GOLDEN[name]["data"])  # skip with a reason when the real data is absent
    cfg = load_backtest_config(CONFIGS / f"{name}.yaml")
    return name, cfg, run_experiment(cfg, CONFIGS)


def test_pinned_numbers(golden):
    name, _cfg, exp = golden
    g = GOLDEN[name]
    assert exp.prepared.features.height == g["bars"]
    assert exp.result.fills.height == g["fills"]
    m = compute_metrics(exp.result)
    for key, value in g["metrics"].items():
        assert m[key] == value, f"{name}: {key} = {m[key]!r}, pinned {value!r}"
    got = {mult: compute_metrics(r)["final_equity"] for mult, r in exp.sensitivity().items()}
    assert got == g["slippage_final_equity"]
    reasons = dict(exp.result.trades.group_by("exit_reason").len().rows())
    assert reasons == {int(k): v for k, v in g["exit_reasons"].items()}


def test_accounting_closes(golden):
    _name, cfg, exp = golden
    r = exp.result
    # everything is closed at the end, so equity = initial + the sum of the round trips' net pnl
    assert r.equity["equity"][-1] == pytest.approx(cfg.initial_equity + r.trades["pnl"].sum(), rel=1e-12)
    fees = r.fills["fee"].sum()
    assert fees == pytest.approx(r.trades["fees"].sum(), rel=1e-9)
    # more slippage never helps
    eq = [compute_metrics(x)["final_equity"] for _m, x in sorted(exp.sensitivity().items())]
    assert eq == sorted(eq, reverse=True)


def test_rerun_is_identical(golden):
    name, cfg, exp = golden
    again = run_experiment(cfg, CONFIGS, sensitivity=False)
    assert again.result.trades.equals(exp.result.trades)
    assert again.result.fills.equals(exp.result.fills)
    assert again.result.equity.equals(exp.result.equity)
    assert again.runs[1.0].decisions.equals(exp.runs[1.0].decisions)
