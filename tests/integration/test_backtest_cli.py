"""`python -m backtest run` end to end on a seeded synthetic market: report, metrics, journals."""

from __future__ import annotations

import json

import polars as pl
import pytest

from backtest.cli import build_parser, main
from tests.conftest import REPO_ROOT


def test_run_writes_report_metrics_and_journals(tmp_path, capsys):
    out = tmp_path / "bt"
    assert main(["run", "--config", str(REPO_ROOT / "configs/backtest/synthetic_family.yaml"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "synthetic_family:" in text and "report:" in text
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "http://" not in html and "https://" not in html
    metrics = json.loads((out / "metrics.json").read_text())
    trades = pl.read_parquet(out / "trades.parquet")
    fills = pl.read_parquet(out / "fills.parquet")
    equity = pl.read_parquet(out / "equity.parquet")
    decisions = pl.read_parquet(out / "decisions.parquet")
    assert trades.height > 0 and fills.height >= 2 * trades.height - 1
    assert json.dumps(metrics).count("n_trades") >= 1
    # every entry fill follows its decision (made at an earlier bar close)
    entries = decisions.filter(pl.col("is_entry"))
    assert entries.height >= trades.height
    cfg = json.loads((out / "config.json").read_text())
    assert len(cfg["config_hash"]) == 16 and cfg["config"]["name"] == "synthetic_family"
    assert equity.height > 1000


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text((REPO_ROOT / "configs/backtest/synthetic_family.yaml").read_text()
                 .replace("initial_equity: 100000", "initial_equity: -5"))
    assert main(["run", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "initial_equity = -5" in err and str(p) in err


def test_help():
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["run", "--help"])
    assert e.value.code == 0
