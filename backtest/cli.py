"""`python -m backtest run --config configs/backtest/<name>.yaml` — one experiment, its report and files."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.errors import TradingError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m backtest", description="Event-driven backtests of the strategies "
                                 "with the risk layer, fills, fees, funding and margin.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run one experiment YAML and write its report",
                       description="Prepare the data (synthesis / catalog / klines), build bars, features and "
                       "signals, run the engine (plus slippage reruns at the configured multipliers), and write "
                       "report.html, metrics.json, trades/fills/equity/decisions/margin Parquet and the resolved "
                       "config with its hash into the output folder.")
    p.add_argument("--config", type=Path, required=True, help="experiment YAML (configs/backtest/*.yaml)")
    p.add_argument("--out", type=Path, help="output folder (default var/backtest/<name>)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the 2x/3x slippage reruns")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except TradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from backtest.config import load_backtest_config
    from backtest.experiment import run_experiment
    from backtest.metrics import compute_metrics
    from backtest.report import write_metrics_json, write_report

    cfg = load_backtest_config(args.config)
    out = args.out or Path("var/backtest") / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    exp = run_experiment(cfg, base=args.config.parent, progress=True,
                         sensitivity=not args.no_sensitivity)
    elapsed = time.perf_counter() - t0
    result = exp.result
    sens = exp.sensitivity() if len(exp.runs) > 1 else None
    price = exp.prepared.features.select("ts_event", "close")
    write_report(result, out / "report.html", sensitivity=sens, price=price)
    write_metrics_json(result, out / "metrics.json", sensitivity=sens)
    result.trades.write_parquet(out / "trades.parquet")
    result.fills.write_parquet(out / "fills.parquet")
    result.equity.write_parquet(out / "equity.parquet")
    exp.runs[1.0].decisions.write_parquet(out / "decisions.parquet")
    exp.runs[1.0].margin.write_parquet(out / "margin.parquet")
    (out / "config.json").write_text(json.dumps({"config_hash": cfg.config_hash(), "config": result.config},
                                                indent=2, sort_keys=True))
    m = compute_metrics(result)
    print(f"{cfg.name}: {exp.prepared.features.height:,} bars ({exp.prepared.bar_spec}), "
          f"{m['n_trades']} trades, total return {m['total_return']:+.4%}, Sharpe {m['sharpe']:.3f}, "
          f"max drawdown {m['max_drawdown']:.4%} — {elapsed:.1f}s")
    print(f"report: {out / 'report.html'}")
    return 0
