"""Tradable instruments: tick, lot step, filters and contract terms, and the one place where
prices and quantities are rounded to them."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Market


class Instrument(FrozenConfig):
    """A symbol's trading terms. Linear (USD-M) perpetuals: quantity in base units, contract_size 1.

    Spot is the special case `market=spot`, `max_leverage=1`.
    """

    symbol: str = Field(min_length=1)
    market: Market = Market.USDM
    tick_size: float = Field(gt=0)
    step_size: float = Field(gt=0)  # quantity step (lot)
    min_qty: float = Field(0.0, ge=0)
    min_notional: float = Field(0.0, ge=0)
    contract_size: float = Field(1.0, gt=0)  # base units per contract
    max_leverage: float = Field(20.0, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Instrument:
        if self.market == Market.SPOT and self.max_leverage != 1:
            raise ValueError(f"max_leverage = {self.max_leverage}: spot instruments trade without leverage (1)")
        return self

    def round_qty_down(self, qty: float) -> float:
        """Quantity rounded toward zero to the step (never more than asked: caps stay caps)."""
        return round_to_step_down(qty, self.step_size)

    def round_price(self, price: float) -> float:
        return round_to_step_nearest(price, self.tick_size)

    def decimal_qty(self, qty: float) -> Decimal:
        """Exchange/database boundary form of a quantity (exact decimal on the step grid)."""
        step = Decimal(repr(self.step_size))
        return (Decimal(repr(qty)) / step).to_integral_value(rounding=ROUND_DOWN) * step

    def decimal_price(self, price: float) -> Decimal:
        tick = Decimal(repr(self.tick_size))
        return (Decimal(repr(price)) / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


def _decimals(step: float) -> int:
    return max(0, -Decimal(repr(step)).as_tuple().exponent)


def round_to_step_down(x: float, step: float) -> float:
    """floor(|x|/step)·step with the sign of x, robust to binary representation (0.3/0.1 = 2.9999…).

    `execution.fill_model.round_qty_down_nb` is the same rule in numba (tested to agree)."""
    if not math.isfinite(x):
        raise ValueError(f"cannot round non-finite quantity {x!r}")
    r = abs(x) / step
    # a grid point divides to within a few ulps of an integer (2233345.4 / 0.1 = 22333453.999999996):
    # the tolerance is relative so large quantities are not cut a whole step
    units = math.floor(r + 1e-9 + r * 1e-12)
    return math.copysign(round(units * step, _decimals(step)), x) if units else 0.0


def round_to_step_nearest(x: float, step: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"cannot round non-finite price {x!r}")
    return round(round(x / step) * step, _decimals(step))
