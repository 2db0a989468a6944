"""An experiment end to end: data → bars + features → signals → engine → result (+ slippage reruns).

Used by `python -m backtest run` and by the golden acceptance tests, so both run exactly this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from backtest.config import (BacktestConfig, CatalogData, KlineBarsData, KlineSynthData, SyntheticData,
                             resolve_data_path)
from backtest.results import BacktestResult
from backtest.runner import EngineRun, FundingSeries, run_engine
from core.errors import DataError
from core.time import NS_PER_MS, parse_time
from engine.inputs import build_inputs
from execution import VenueConfig
from market.bars.spec import bar_spec_label
from market.catalog import Catalog
from market.features.primitives import EMA, WilderATR
from market.ingest import read_any, read_funding_csv
from market.pipeline import batch_bars_features
from market.synth import generate_trades, synthesize_from_klines
from strategies import get as get_strategy
from strategies import params_from_dict


@dataclass
class Prepared:
    """Everything the engine needs, computed once and reused by the slippage reruns."""

    features: pl.DataFrame
    signals: pl.DataFrame
    bar_spec: str
    funding: FundingSeries | None
    trades_in: int = 0


@dataclass
class Experiment:
    config: BacktestConfig
    prepared: Prepared
    runs: dict[float, EngineRun] = field(default_factory=dict)  # slippage multiplier → run

    @property
    def result(self) -> BacktestResult:
        return self.runs[1.0].result

    def sensitivity(self) -> dict[float, BacktestResult]:
        return {m: r.result for m, r in sorted(self.runs.items())}


def _read_klines(path: Path) -> pl.DataFrame:
    data = read_any(path)
    frame = getattr(data, "frame", None)
    if frame is None or "open_time" not in frame.columns:
        raise DataError("expected a klines file", source=str(path))
    return frame


def kline_bars(klines: pl.DataFrame) -> pl.DataFrame:
    """Klines as bars: ts_open = open_time, ts_event = close_time + 1 ms (the bar end), OHLCV, and the
    OHLCV-only features (Wilder ATR 14/100, EMA 12/48 of close) from the same kernels as the feature engine."""
    h, lo, c = (np.ascontiguousarray(klines[x].to_numpy(), dtype=np.float64) for x in ("high", "low", "close"))
    return pl.DataFrame({
        "ts_event": klines["close_time"] + NS_PER_MS, "ts_open": klines["open_time"], "open": klines["open"],
        "high": klines["high"], "low": klines["low"], "close": klines["close"], "volume": klines["volume"],
        "atr14": WilderATR(14)(h, lo, c), "atr100": WilderATR(100)(h, lo, c), "ema12": EMA(12)(c),
        "ema48": EMA(48)(c),
    })


def prepare(cfg: BacktestConfig, base: Path | None = None, progress: bool = False) -> Prepared:
    d = cfg.data
    trades_in = 0
    if isinstance(d, KlineBarsData):
        features = kline_bars(_read_klines(resolve_data_path(d.klines, base)))
        spec = f"klines-{d.interval or 'file'}"
    else:
        if isinstance(d, KlineSynthData):
            klines = _read_klines(resolve_data_path(d.klines, base))
            if d.limit_rows:
                klines = klines.head(d.limit_rows)
            trades = synthesize_from_klines(klines, seed=d.seed).trades
        elif isinstance(d, SyntheticData):
            trades = generate_trades(d.synth)
        else:
            assert isinstance(d, CatalogData)
            trades = Catalog(d.store).read(exchange=d.exchange, market=d.market, symbol=d.symbol, kind=d.dataset,
                                           start=parse_time(d.start) if d.start else None,
                                           end=parse_time(d.end) if d.end else None)
        if trades.height == 0:
            raise DataError("the data source produced no trades", source=cfg.name)
        trades_in = trades.height
        features = batch_bars_features(trades, cfg.pipeline)
        spec = bar_spec_label(cfg.pipeline.bars)
    strategy = get_strategy(cfg.strategy.name)
    params = params_from_dict(cfg.strategy.name, cfg.strategy.params, f"{cfg.name}: strategy.params")
    signals = strategy.signals(features, params)
    funding = None
    if cfg.funding_file:
        f = read_funding_csv(resolve_data_path(cfg.funding_file, base)).frame
        funding = FundingSeries(ts=f["ts_event"].to_numpy(), rate=f["funding_rate"].to_numpy())
    return Prepared(features=features, signals=signals, bar_spec=spec, funding=funding, trades_in=trades_in)


def scaled_venue(venue: VenueConfig, multiplier: float) -> VenueConfig:
    """The same venue with slippage and impact scaled (the slippage-sensitivity reruns)."""
    fm = venue.fill_model.model_copy(update={"slippage_bps": venue.fill_model.slippage_bps * multiplier,
                                             "impact_coef": venue.fill_model.impact_coef * multiplier})
    return venue.model_copy(update={"fill_model": fm})


def run_experiment(cfg: BacktestConfig, base: Path | None = None, progress: bool = False,
                   sensitivity: bool = True) -> Experiment:
    prepared = prepare(cfg, base, progress)
    inputs = build_inputs(prepared.features, prepared.signals, atr_column=cfg.engine.atr_column)
    resolved = json.loads(cfg.model_dump_json())
    multipliers = sorted(set(cfg.slippage_multipliers) | {1.0}) if sensitivity else [1.0]
    exp = Experiment(config=cfg, prepared=prepared)
    for m in multipliers:
        exp.runs[m] = run_engine(inputs, instrument=cfg.instrument, engine=cfg.engine, risk=cfg.risk,
                                 venue=scaled_venue(cfg.venue, m), initial_equity=cfg.initial_equity,
                                 bar_spec=prepared.bar_spec, funding=prepared.funding, config=resolved,
                                 config_hash=cfg.config_hash(), progress=progress and m == 1.0)
    return exp
