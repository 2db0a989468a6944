"""The order-flow family: A (momentum) and B (VWAP reversion) combined under filter C (regime).

Registered as "orderflow_family"; `configs/strategies/family.yaml` holds every default. It runs
A's and B's own `compute` (one implementation of each signal), B a second time with
`entry_quantile = low_vol_entry_quantile` for LOW_VOL rows, and C, then per row:

- allowed entry sources by regime: NORMAL A and B (B at its own quantile); HIGH_VOL A; LOW_VOL B
  (looser quantile); EXTREME and UNKNOWN none.
- a source "says enter_long" only if it is allowed on the row. If allowed sources say both
  directions (A long & B short, or A short & B long) the row opens nothing.
- otherwise the row enters in the one direction said; `source` = bitmask of the sources that said
  it (SOURCE_A = 1, SOURCE_B = 2; equal to Reason.SIGNAL_A / SIGNAL_B / SIGNAL_AB);
  strength = clip(sum of weight_i * strength_i, 0.5, max_strength) with the regime's weights
  (NORMAL: weight_a_normal, weight_b_normal; HIGH_VOL: weight_a_high_vol; LOW_VOL: weight_b_low_vol).
  The 0.5 floor is the schema's minimum entry size: a lone weak source in NORMAL (0.4 * 7/6) would
  otherwise fall below it. confidence = min(1, sum of weight_i * confidence_i).
- exit_long = (A exit_long OR B exit_long) AND no allowed source says enter_long. Exits are NOT
  gated by the regime (the regime limits new risk, never its removal), so every source counts in
  every regime once out of its own warm-up (a warming-up source says nothing). A conflict row
  therefore exits nothing either: it keeps what is open. exit_short mirrors it.
- on rows without an entry, `source` = bitmask of the sources whose (surviving) exit fired, so an
  exit fill can carry its Reason; 0 on rows with neither.
- regime, regime_factor, flatten (EXTREME) come from C unchanged.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, model_validator

from strategies.base import (
    FAMILY_SIGNAL_SCHEMA,
    MAX_STRENGTH,
    MIN_STRENGTH,
    SOURCE_A,
    SOURCE_B,
    Strategy,
    StrategyParams,
)
from strategies.orderflow_momentum import MomentumParams, OrderflowMomentum
from strategies.vol_regime import (
    Regime,
    RegimeParams,
    regime_columns,
    regime_feature_settings,
    regime_frame,
    regime_warmup_bars,
)
from strategies.vwap_reversion import ReversionParams, VwapReversion

_A = OrderflowMomentum()
_B = VwapReversion()


class FamilyParams(StrategyParams):
    """Parameters of the family: A's, B's and C's own params plus how they combine."""

    momentum: MomentumParams = MomentumParams()
    reversion: ReversionParams = ReversionParams()
    regime: RegimeParams = RegimeParams()
    low_vol_entry_quantile: float = Field(0.80, gt=0, lt=1, description="B's entry quantile in LOW_VOL rows")
    weight_a_normal: float = Field(0.4, gt=0, le=MAX_STRENGTH)
    weight_b_normal: float = Field(0.6, gt=0, le=MAX_STRENGTH)
    weight_a_high_vol: float = Field(1.0, gt=0, le=MAX_STRENGTH)
    weight_b_low_vol: float = Field(1.0, gt=0, le=MAX_STRENGTH)
    max_strength: float = Field(MAX_STRENGTH, ge=MIN_STRENGTH, le=MAX_STRENGTH)

    @model_validator(mode="after")
    def _looser(self) -> FamilyParams:
        if self.low_vol_entry_quantile > self.reversion.entry_quantile:
            raise ValueError(
                f"low_vol_entry_quantile = {self.low_vol_entry_quantile} must not exceed reversion.entry_quantile "
                f"= {self.reversion.entry_quantile} (LOW_VOL loosens B's entry)"
            )
        return self

    def loose_reversion(self) -> ReversionParams:
        """B's params for LOW_VOL rows."""
        return self.reversion.model_copy(update={"entry_quantile": self.low_vol_entry_quantile})


class OrderflowFamily(Strategy):
    """A + B under C (registered as "orderflow_family"); see the module docstring."""

    name = "orderflow_family"
    Params = FamilyParams
    output_schema = FAMILY_SIGNAL_SCHEMA

    def required_features(self, params: FamilyParams) -> list[str]:
        cols = (_A.required_features(params.momentum) + _B.required_features(params.reversion)
                + regime_columns(params.regime))
        return list(dict.fromkeys(cols))

    def required_feature_settings(self, params: FamilyParams) -> dict[str, Any]:
        return {**_A.required_feature_settings(params.momentum), **_B.required_feature_settings(params.reversion),
                **regime_feature_settings(params.regime)}

    def warmup_bars(self, params: FamilyParams) -> int:
        # the first source to warm up can enter once the regime is known (B's looser run has B's window)
        first_source = min(_A.warmup_bars(params.momentum), _B.warmup_bars(params.reversion))
        return max(first_source, regime_warmup_bars(params.regime))

    def lookback_bars(self, params: FamilyParams) -> int:
        return max(_A.lookback_bars(params.momentum), _B.lookback_bars(params.reversion), 1)

    def compute(self, features: pl.DataFrame, params: FamilyParams) -> pl.DataFrame:
        a = _A.compute(features, params.momentum)
        b = _B.compute(features, params.reversion)
        b_loose = _B.compute(features, params.loose_reversion())
        c = regime_frame(features, params.regime)
        regime = pl.col("regime")
        normal, high, low = (regime == int(r) for r in (Regime.NORMAL, Regime.HIGH_VOL, Regime.LOW_VOL))

        def b_col(name: str) -> pl.Expr:  # B's column, from the looser run on LOW_VOL rows
            return pl.when(low).then(pl.col(f"bl_{name}")).otherwise(pl.col(f"b_{name}"))

        frame = pl.concat(
            [
                c,
                a.drop("ts_event").rename(lambda n: f"a_{n}"),
                b.drop("ts_event").rename(lambda n: f"b_{n}"),
                b_loose.drop("ts_event").rename(lambda n: f"bl_{n}"),
            ],
            how="horizontal",
        )
        allow_a, allow_b = normal | high, normal | low
        w_a = pl.when(high).then(params.weight_a_high_vol).otherwise(params.weight_a_normal)
        w_b = pl.when(low).then(params.weight_b_low_vol).otherwise(params.weight_b_normal)
        frame = frame.with_columns(
            (allow_a & pl.col("a_enter_long")).alias("_al"),
            (allow_a & pl.col("a_enter_short")).alias("_as"),
            (allow_b & b_col("enter_long")).alias("_bl"),
            (allow_b & b_col("enter_short")).alias("_bs"),
            w_a.alias("_wa"),
            w_b.alias("_wb"),
            b_col("strength").alias("_b_strength"),
            b_col("confidence").alias("_b_confidence"),
        )
        says_long = pl.col("_al") | pl.col("_bl")
        says_short = pl.col("_as") | pl.col("_bs")
        enter_long = says_long & ~says_short
        enter_short = says_short & ~says_long
        frame = frame.with_columns(
            enter_long.alias("enter_long"),
            enter_short.alias("enter_short"),
            ((pl.col("a_exit_long") | pl.col("b_exit_long")) & ~says_long).alias("exit_long"),
            ((pl.col("a_exit_short") | pl.col("b_exit_short")) & ~says_short).alias("exit_short"),
        )
        # On an entry row exactly one direction is said, so "A contributed" is "A said something".
        a_in = pl.col("_al") | pl.col("_as")
        b_in = pl.col("_bl") | pl.col("_bs")
        entered = pl.col("enter_long") | pl.col("enter_short")
        weighted = (pl.when(a_in).then(pl.col("_wa") * pl.col("a_strength")).otherwise(0.0)
                    + pl.when(b_in).then(pl.col("_wb") * pl.col("_b_strength")).otherwise(0.0))
        conf = (pl.when(a_in).then(pl.col("_wa") * pl.col("a_confidence")).otherwise(0.0)
                + pl.when(b_in).then(pl.col("_wb") * pl.col("_b_confidence")).otherwise(0.0))
        exit_a = ((pl.col("exit_long") & pl.col("a_exit_long")) | (pl.col("exit_short") & pl.col("a_exit_short")))
        exit_b = ((pl.col("exit_long") & pl.col("b_exit_long")) | (pl.col("exit_short") & pl.col("b_exit_short")))
        entry_bits = pl.when(a_in).then(SOURCE_A).otherwise(0) + pl.when(b_in).then(SOURCE_B).otherwise(0)
        exit_bits = pl.when(exit_a).then(SOURCE_A).otherwise(0) + pl.when(exit_b).then(SOURCE_B).otherwise(0)
        return frame.select(
            "ts_event",
            "enter_long",
            "enter_short",
            "exit_long",
            "exit_short",
            pl.when(entered).then(weighted.clip(MIN_STRENGTH, params.max_strength)).otherwise(1.0)
            .cast(pl.Float64).alias("strength"),
            pl.when(entered).then(pl.min_horizontal(conf, pl.lit(1.0))).otherwise(0.0)
            .cast(pl.Float64).alias("confidence"),
            pl.when(entered).then(entry_bits).otherwise(exit_bits).cast(pl.Int64).alias("source"),
            "regime",
            "regime_factor",
            "flatten",
        )
