"""The strategy interface and the signal frame every strategy produces.

A strategy is a pure function from a frame of CAUSAL features (one row per bar, the output of
`market.pipeline.batch_bars_features` / `StreamingPipeline`) to a frame of signal columns, built
from row-wise or causal-window expressions: the signal at row t reads rows <= t only. The
position / stop / sizing state machine is the engine's; a strategy only says what it would do.

`Strategy.signals` is a template method: it checks the input (required columns present and
numeric, `ts_event` Int64, non-null, non-decreasing), hands the strategy a clean Float64 frame
(null read as NaN: "not available"), and checks that the output has exactly the declared schema.
Custom strategies subclass `Strategy`, implement `compute`, and `registry.register` an instance
(see `strategies/ema_cross.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import polars as pl

from core.config import FrozenConfig
from core.errors import ConfigError, DataError, SchemaError
from market.features.config import FeatureConfig, feature_warmups
from market.schema import BAR_SCHEMA

# The signal frame of every strategy. Booleans are never null (warm-up rows are False).
SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64,  # the bar's ts_event, copied from the input row
    "enter_long": pl.Boolean,  # open (or add to) a long at this bar's close
    "enter_short": pl.Boolean,
    "exit_long": pl.Boolean,  # close a long held at this bar's close (an event, not a state)
    "exit_short": pl.Boolean,
    "strength": pl.Float64,  # size multiplier in [MIN_STRENGTH, MAX_STRENGTH]; 1.0 on rows without an entry
    "confidence": pl.Float64,  # in [0, 1]; 0.0 on rows without an entry
}

# The family combiner (`orderflow_family`) adds these four columns.
FAMILY_SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    **SIGNAL_SCHEMA,
    "source": pl.Int64,  # bitmask SOURCE_A | SOURCE_B; == core.enums.Reason SIGNAL_A/SIGNAL_B/SIGNAL_AB
    "regime": pl.Int64,  # strategies.vol_regime.Regime code
    "regime_factor": pl.Float64,  # sizing factor of the regime (0 where no new position may open)
    "flatten": pl.Boolean,  # close every position now (EXTREME regime)
}

MIN_STRENGTH = 0.5
MAX_STRENGTH = 1.5
SOURCE_A = 1  # order-flow momentum; Reason.SIGNAL_A
SOURCE_B = 2  # VWAP mean reversion; Reason.SIGNAL_B
_SIGNAL_BOOLS = ("enter_long", "enter_short", "exit_long", "exit_short")


class StrategyParams(FrozenConfig):
    """Base of every strategy's `Params`: frozen, unknown keys rejected, bounds declared with `Field`;
    a bad value raises `ConfigError` naming the key."""


class Strategy(ABC):
    """A signal generator. Subclasses set `name`, `Params` and `output_schema` and implement
    `required_features`, `warmup_bars`, `lookback_bars` and `compute`.

    Instances are stateless; one instance serves every parameter set.
    """

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    output_schema: ClassVar[dict[str, pl.DataType]] = SIGNAL_SCHEMA

    @abstractmethod
    def required_features(self, params: StrategyParams) -> list[str]:
        """Input columns (bar or feature columns) that `signals` reads, besides `ts_event`."""

    @abstractmethod
    def warmup_bars(self, params: StrategyParams) -> int:
        """Index of the first row that can carry an entry on clean input (every feature defined from
        its documented warm-up on); every earlier row has all booleans False."""

    @abstractmethod
    def lookback_bars(self, params: StrategyParams) -> int | None:
        """Rows that fully determine the last row's signals: the signals of row t computed on rows
        t-L+1..t equal those computed on the whole history (for t >= L-1). None: unbounded (a
        recursion seeded at the first row), so the live path must keep the whole history."""

    @abstractmethod
    def compute(self, features: pl.DataFrame, params: StrategyParams) -> pl.DataFrame:
        """The strategy itself. `features` holds `ts_event` (Int64) and every required column as
        Float64 (null already NaN); return the columns of `output_schema`, one row per input row."""

    def required_feature_settings(self, params: StrategyParams) -> dict[str, Any]:
        """`FeatureConfig` keys whose value the params assume although no column name shows them
        (e.g. the window of `cum_delta_slope`). Checked by `check_feature_config`."""
        return {}

    def signals(self, features: pl.DataFrame, params: StrategyParams) -> pl.DataFrame:
        """Signal frame (`output_schema`) of a causal feature frame, one row per input row.

        Raises `SchemaError` naming missing or non-numeric columns, `DataError` when `ts_event`
        decreases, `ConfigError` when `params` is not this strategy's `Params`.
        """
        if not isinstance(params, self.Params):
            raise ConfigError(
                f"strategy {self.name!r} needs params of type {self.Params.__name__}, got {type(params).__name__}"
            )
        clean = prepare_features(features, self.required_features(params), where=f"strategy {self.name!r} input")
        out = self.compute(clean, params)
        return check_signal_frame(out, self.output_schema, clean.height, where=f"strategy {self.name!r} output")


def prepare_features(features: pl.DataFrame, columns: list[str], where: str) -> pl.DataFrame:
    """`ts_event` + `columns` as Float64 with null turned into NaN, after checking the input."""
    wanted = ["ts_event", *dict.fromkeys(columns)]
    missing = [c for c in wanted if c not in features.columns]
    if missing:
        raise SchemaError(f"missing required columns {missing}", source=where)
    ts = features.get_column("ts_event")
    if ts.dtype != pl.Int64:
        raise SchemaError(f"column 'ts_event' has dtype {ts.dtype}, expected Int64", source=where)
    if ts.null_count():
        raise SchemaError(f"column 'ts_event' has {ts.null_count()} null values", source=where)
    if ts.len() > 1:
        drops = (ts.diff() < 0).arg_true()
        if drops.len():
            row = int(drops[0])
            raise DataError(f"ts_event decreases at row {row + 1} ({ts[row - 1]} -> {ts[row]})", source=where,
                            line=row + 1)
    bad = [f"{c} ({features.schema[c]})" for c in wanted[1:] if not features.schema[c].is_numeric()]
    if bad:
        raise SchemaError(f"columns must be numeric: {bad}", source=where)
    return features.select(
        pl.col("ts_event"),
        *[pl.col(c).cast(pl.Float64).fill_null(float("nan")) for c in wanted[1:]],
    )


def check_signal_frame(frame: pl.DataFrame, schema: dict[str, pl.DataType], height: int, where: str) -> pl.DataFrame:
    """The frame with exactly `schema`'s columns in order, after checking dtypes, nulls and ranges.

    A violation is a bug in the strategy, reported as `SchemaError`.
    """
    if frame.height != height:
        raise SchemaError(f"{frame.height} rows for {height} input rows", source=where)
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise SchemaError(f"missing signal columns {missing}", source=where)
    out = frame.select(list(schema))
    wrong = [f"{c}: {out.schema[c]} (expected {t})" for c, t in schema.items() if out.schema[c] != t]
    if wrong:
        raise SchemaError(f"wrong signal dtypes {wrong}", source=where)
    nulls = [c for c in schema if out.get_column(c).null_count()]
    if nulls:
        raise SchemaError(f"null values in signal columns {nulls}", source=where)
    strength = out.get_column("strength")
    if height and not strength.is_between(MIN_STRENGTH, MAX_STRENGTH).all():
        raise SchemaError(f"strength outside [{MIN_STRENGTH}, {MAX_STRENGTH}]", source=where)
    if height and not out.get_column("confidence").is_between(0.0, 1.0).all():
        raise SchemaError("confidence outside [0, 1]", source=where)
    return out


def nan_safe_gt(expr: pl.Expr, value: float | pl.Expr) -> pl.Expr:
    """expr > value, False where either side is NaN or null.

    polars orders NaN above every number (NaN > 1 is True), so a bare comparison would turn a
    warming-up feature into a firing condition.
    """
    rhs = value if isinstance(value, pl.Expr) else pl.lit(value)
    return ((expr > rhs) & expr.is_not_nan() & rhs.is_not_nan()).fill_null(False)


def nan_safe_lt(expr: pl.Expr, value: float | pl.Expr) -> pl.Expr:
    """expr < value, False where either side is NaN or null (see `nan_safe_gt`)."""
    rhs = value if isinstance(value, pl.Expr) else pl.lit(value)
    return ((expr < rhs) & expr.is_not_nan() & rhs.is_not_nan()).fill_null(False)


def check_feature_config(strategy: Strategy, params: StrategyParams, config: FeatureConfig) -> None:
    """Raise `ConfigError` unless a `FeatureConfig` produces every column `strategy` needs with the
    windows its params assume. Run it where the pipeline and strategy configs are put together."""
    produced = set(BAR_SCHEMA) | set(feature_warmups(config))
    problems = []
    missing = [c for c in strategy.required_features(params) if c not in produced]
    if missing:
        problems.append(f"the feature config does not produce columns {missing} (add the window/span to it, "
                        "or choose params naming columns it produces)")
    for key, want in strategy.required_feature_settings(params).items():
        have = getattr(config, key)
        if have != want:
            problems.append(f"features.{key} = {have!r} but strategy params assume {want!r}")
    if problems:
        raise ConfigError(f"strategy {strategy.name!r} does not fit the feature config: " + "; ".join(problems))


def no_entry_defaults(enter_any: pl.Expr, strength: pl.Expr, confidence: pl.Expr) -> list[pl.Expr]:
    """`strength` / `confidence` on entry rows, 1.0 / 0.0 elsewhere (the schema's neutral values)."""
    return [
        pl.when(enter_any).then(strength).otherwise(1.0).cast(pl.Float64).alias("strength"),
        pl.when(enter_any).then(confidence).otherwise(0.0).cast(pl.Float64).alias("confidence"),
    ]
