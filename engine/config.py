"""Engine settings: how the decision kernel sizes, rounds and which rule families are on."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Market
from core.instrument import Instrument
from engine import kernel as k


class EngineSettings(FrozenConfig):
    """`sizing: risk` is the product (the risk layer sizes every entry and every account rule is
    on); `sizing: fraction` buys a fixed fraction of the wallet with the rules off — the setting
    used to compare with other backtesters on simple strategies."""

    sizing: Literal["risk", "fraction"] = "risk"
    fraction: float = Field(1.0, gt=0.0, le=1.0)
    round_qty: bool = True  # lot step, min qty and min notional enforced
    cap_by_volume: bool = True  # market orders limited by the fill model's participation rate
    risk_rules: bool = True
    stops: bool = True
    reduce_fraction: float = Field(0.5, gt=0.0, le=1.0)
    exit_source_match: bool = True  # a signal exit closes only positions its sources opened
    close_at_end: bool = True  # close what is still open at the last bar's close (Reason.END_OF_DATA)
    entry_order: Literal["market", "limit"] = "market"
    limit_offset_ticks: int = Field(1, ge=1)  # post-only: a limit at the last price would take liquidity
    limit_ttl_bars: int = Field(5, ge=1)
    atr_column: str = "atr100"
    journal_capacity: int = Field(0, ge=0)  # fills journal rows; 0 = sized from the number of bars

    @model_validator(mode="after")
    def _check(self) -> EngineSettings:
        if self.sizing == "fraction" and self.risk_rules:
            raise ValueError("sizing = 'fraction' bypasses the risk layer: set risk_rules: false (or sizing: risk)")
        return self

    def to_params(self, instrument: Instrument, taker_fee: float, funding_mode: int) -> np.ndarray:
        p = np.zeros(k.N_PARAMS, dtype=np.float64)
        p[k.P_SIZING_MODE] = 0.0 if self.sizing == "risk" else 1.0
        p[k.P_FRACTION] = self.fraction
        p[k.P_ROUND_QTY] = float(self.round_qty)
        p[k.P_CAP_BY_VOLUME] = float(self.cap_by_volume)
        p[k.P_RISK] = float(self.risk_rules)
        p[k.P_STOPS] = float(self.stops)
        p[k.P_ALLOW_SHORT] = 0.0 if instrument.market == Market.SPOT else 1.0
        p[k.P_REDUCE_FRACTION] = self.reduce_fraction
        p[k.P_EXIT_SOURCE_MATCH] = float(self.exit_source_match)
        p[k.P_MIN_NOTIONAL] = instrument.min_notional
        p[k.P_FUNDING] = float(funding_mode)
        p[k.P_TAKER_FEE] = taker_fee
        p[k.P_ENTRY_LIMIT] = 1.0 if self.entry_order == "limit" else 0.0
        p[k.P_LIMIT_OFFSET_TICKS] = self.limit_offset_ticks
        p[k.P_LIMIT_TTL_BARS] = self.limit_ttl_bars
        return p
