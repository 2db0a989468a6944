"""The pipeline steps shared by the CLI and the demo: validate + store trades, then bars and features.

Bars and features are built by streaming the stored trades day by day through the same
`BarBuilder` / `FeatureEngine` objects the live feed uses, so memory stays bounded by one day
of trades and the output is identical to a single batch call (tested in the bar/feature suites).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from tqdm import tqdm

from core.time import NS_PER_DAY
from market.bars.builder import BarBuilder
from market.bars.spec import BarSpec, LargeTradeConfig, TimeBars
from market.catalog import Catalog, DatasetKey, WriteResult
from market.config import PipelineConfig
from market.features.engine import FeatureEngine
from market.features.mtf import HigherTimeframeJoiner, join_higher_timeframe
from market.quality import QualityConfig, QualityReport, TradeValidator


@dataclass
class IngestOutcome:
    key: DatasetKey
    report: QualityReport
    write: WriteResult
    quarantined_written: int


def ingest_trades(
    catalog: Catalog,
    frame: pl.DataFrame,
    key: DatasetKey,
    *,
    quality: QualityConfig = QualityConfig(),
    synthetic: bool = False,
    provenance: dict | None = None,
    validator: TradeValidator | None = None,
) -> IngestOutcome:
    """Validate a trades frame, store the clean rows and the quarantine, write the quality report."""
    kind = key.kind
    v = validator or TradeValidator(kind=kind, config=quality, dataset=_label(key))
    res = v.check(frame)
    wr = catalog.write(res.clean, exchange=key.exchange, market=key.market, symbol=key.symbol, kind=kind,
                       synthetic=synthetic, provenance=provenance)
    q = 0
    if res.quarantine.height:
        q = catalog.write_quarantine(res.quarantine, exchange=key.exchange, market=key.market,
                                     symbol=key.symbol, kind=kind)
    catalog.write_report(res.report, exchange=key.exchange, market=key.market, symbol=key.symbol, kind=kind)
    return IngestOutcome(key=key, report=res.report, write=wr, quarantined_written=q)


@dataclass
class BarsAndFeatures:
    bars: pl.DataFrame
    features: pl.DataFrame  # ts_event + features (+ higher-timeframe columns when configured)
    higher_bars: pl.DataFrame | None = None
    trades_in: int = 0


def stream_bars(
    catalog: Catalog,
    key: DatasetKey,
    specs: list[BarSpec],
    large: LargeTradeConfig = LargeTradeConfig(),
    *,
    start: int | None = None,
    end: int | None = None,
    progress: bool = True,
) -> tuple[list[pl.DataFrame], int]:
    """Feed stored trades, one UTC day at a time, through one `BarBuilder` per spec.

    Returns the closed bars per spec and the number of trades read.
    """
    builders = [BarBuilder(s, large) for s in specs]
    chunks: list[list[pl.DataFrame]] = [[] for _ in specs]
    bounds = catalog.time_bounds(exchange=key.exchange, market=key.market, symbol=key.symbol, kind=key.kind)
    trades_in = 0
    if bounds is not None:
        lo = bounds[0] if start is None else max(start, bounds[0])
        hi = bounds[1] + 1 if end is None else min(end, bounds[1] + 1)
        days = range(lo // NS_PER_DAY, (hi - 1) // NS_PER_DAY + 1) if hi > lo else range(0)
        for day in tqdm(days, desc=f"bars {key.symbol}", unit="day", disable=not progress):
            trades = catalog.read(exchange=key.exchange, market=key.market, symbol=key.symbol, kind=key.kind,
                                  start=max(lo, day * NS_PER_DAY), end=min(hi, (day + 1) * NS_PER_DAY))
            trades_in += trades.height
            for b, out in zip(builders, chunks):
                out.append(b.update(trades))
    frames = [pl.concat(c) if c else _empty_bars(s, large) for c, s in zip(chunks, specs)]
    return frames, trades_in


def bars_and_features(
    catalog: Catalog,
    key: DatasetKey,
    config: PipelineConfig,
    *,
    start: int | None = None,
    end: int | None = None,
    progress: bool = True,
) -> BarsAndFeatures:
    """Bars of the configured spec and their features, with the higher-timeframe join when configured."""
    htf = config.higher_timeframe
    specs: list[BarSpec] = [config.bars] + ([TimeBars(every=htf.every)] if htf else [])
    frames, trades_in = stream_bars(catalog, key, specs, config.large_trades, start=start, end=end,
                                    progress=progress)
    bars = frames[0]
    features = FeatureEngine(config.features).update(bars)
    hbars = None
    if htf:
        hbars = frames[1]
        features = join_higher_timeframe(features, FeatureEngine(htf.features).update(hbars), prefix=htf.prefix)
    return BarsAndFeatures(bars=bars, features=features, higher_bars=hbars, trades_in=trades_in)


class StreamingPipeline:
    """Trades in, closed bars with their features out — the live path of `bars_and_features`.

    Feed trade chunks of any size as they arrive; each call returns the base bars closed by that
    chunk joined with their features (and the higher-timeframe features visible at each bar's
    close). Higher-timeframe bars are processed before base bars of the same chunk, which is the
    order the joiner needs. The concatenated output equals the batch computation over all trades
    bit for bit (tests/integration/test_pipeline_parity.py).
    """

    def __init__(self, config: PipelineConfig):
        self.config = config
        self._bars = BarBuilder(config.bars, config.large_trades)
        self._features = FeatureEngine(config.features)
        htf = config.higher_timeframe
        self._higher = BarBuilder(TimeBars(every=htf.every), config.large_trades) if htf else None
        self._higher_features = FeatureEngine(htf.features) if htf else None
        self._joiner = None
        if htf:
            empty_higher = self._higher_features.update(_empty_bars(TimeBars(every=htf.every), config.large_trades))
            self._joiner = HigherTimeframeJoiner(htf.prefix, higher_schema=empty_higher.schema)

    def update(self, trades: pl.DataFrame) -> pl.DataFrame:
        if self._higher is not None:
            self._joiner.update_higher(self._higher_features.update(self._higher.update(trades)))
        bars = self._bars.update(trades)
        feats = self._features.update(bars)
        if self._joiner is not None:
            feats = self._joiner.join(feats)
        return bars_with_features(bars, feats)


def batch_bars_features(trades: pl.DataFrame, config: PipelineConfig) -> pl.DataFrame:
    """The batch computation `StreamingPipeline` must equal: every bar, feature and joined column."""
    from market.bars.builder import build_bars

    bars = build_bars(trades, config.bars, config.large_trades)
    feats = FeatureEngine(config.features).update(bars)
    htf = config.higher_timeframe
    if htf:
        hbars = build_bars(trades, TimeBars(every=htf.every), config.large_trades)
        feats = join_higher_timeframe(feats, FeatureEngine(htf.features).update(hbars), prefix=htf.prefix)
    return bars_with_features(bars, feats)


def bars_with_features(bars: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    """One frame: every bar column, then each feature column the bars do not already carry."""
    extra = [c for c in features.columns if c not in bars.columns]
    return pl.concat([bars, features.select(extra)], how="horizontal")


def _empty_bars(spec: BarSpec, large: LargeTradeConfig) -> pl.DataFrame:
    return BarBuilder(spec, large).partial().clear()


def _label(key: DatasetKey) -> str:
    return f"{key.exchange}/{key.market}/{key.symbol}/{key.kind}"
