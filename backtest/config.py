"""One YAML per experiment (configs/backtest/<name>.yaml): data, instrument, strategy, risk, venue."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from core.config import FrozenConfig, load_yaml_config
from core.instrument import Instrument
from engine.config import EngineSettings
from execution import VenueConfig
from market.config import PipelineConfig
from market.synth.config import SynthConfig
from risk.gate import RiskConfig

DATA_ROOT_ENV = "FLOWTRADER_DATA"


def resolve_data_path(text: str, base: Path | None = None) -> Path:
    """`${FLOWTRADER_DATA}/binance/...` (default ../shared/data beside the repository), `~`, absolute,
    or relative to the config file's folder."""
    default_root = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    root = os.environ.get(DATA_ROOT_ENV, str(default_root))
    expanded = os.path.expanduser(text.replace("${" + DATA_ROOT_ENV + "}", root))
    p = Path(expanded)
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


class KlineSynthData(FrozenConfig):
    """Trades synthesized from real klines (each minute's OHLC, volume, count and taker-buy volume
    matched exactly), then bars and features by `pipeline`."""

    kind: Literal["klines_synth"] = "klines_synth"
    klines: str
    seed: int = 7
    limit_rows: int | None = Field(None, gt=0)


class SyntheticData(FrozenConfig):
    kind: Literal["synthetic"] = "synthetic"
    synth: SynthConfig


class CatalogData(FrozenConfig):
    kind: Literal["catalog"] = "catalog"
    store: str = "var/store"
    exchange: str = "binance"
    market: str = "usdm"
    symbol: str
    dataset: str = "agg_trades"
    start: str | None = None
    end: str | None = None


class KlineBarsData(FrozenConfig):
    """Klines used directly as bars (OHLCV only: order-flow features are not available, so rules
    that need them stay inactive — see engine.inputs)."""

    kind: Literal["klines"] = "klines"
    klines: str
    interval: str | None = None


DataSpec = Annotated[KlineSynthData | SyntheticData | CatalogData | KlineBarsData, Field(discriminator="kind")]


class StrategySpec(FrozenConfig):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class BacktestConfig(FrozenConfig):
    name: str = Field(min_length=1)
    data: DataSpec
    pipeline: PipelineConfig = PipelineConfig()
    instrument: Instrument
    strategy: StrategySpec
    engine: EngineSettings = EngineSettings()
    risk: RiskConfig = RiskConfig()
    venue: VenueConfig = VenueConfig()
    funding_file: str | None = None  # real funding series; else venue.funding's constant rate
    initial_equity: float = Field(100_000.0, gt=0)
    slippage_multipliers: tuple[float, ...] = (1.0, 2.0, 3.0)


def load_backtest_config(path: str | Path) -> BacktestConfig:
    return load_yaml_config(BacktestConfig, path)
