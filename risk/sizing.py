"""Position sizing: an ATR risk budget scaled by regime, signal strength, Kelly and risk multipliers,
then capped by exposure and loss-at-stop limits.

    base = equity * risk_per_trade / (atr * stop_atr_multiple)
           * regime_factor * clip(strength, min_strength, max_strength) * kelly_factor * size_multiplier

Caps, applied in this order (each one can only lower the quantity):

1. `POSITION_CAP`: qty * price <= max_position_pct * equity
2. `SAME_DIRECTION_CAP`: same_dir_notional + qty * price <= max_same_direction_pct * equity
3. `CAPITAL_IN_USE_CAP`: total_abs_notional + qty * price <= max_capital_in_use * equity
   (capital in use = sum of |notional| of all positions / equity, leverage ignored on purpose: it
   bounds exposure, not margin)
4. `LOSS_AT_STOP_CAP`: qty * (stop distance + round-trip taker fees) <= max_loss_at_stop_pct * equity,
   where the fees are taker_fee * qty * (entry price + stop price), i.e. the exact cost of entering
   at `price` and leaving at the L1 stop.

The reported Reason is the cap that produced the final quantity: a cap "binds" only when it is
strictly below the quantity it is applied to, so a later cap that binds replaces an earlier one
and a cap exactly equal to the quantity is not reported. Existing exposure already beyond a cap
gives quantity 0 with that cap's Reason.

The quantity is in base units and unrounded; the caller rounds it down to the lot step
(`core.instrument.Instrument.round_qty_down`) so caps remain caps.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.enums import Reason

P_RISK_PER_TRADE = 0
P_STOP_ATR_MULTIPLE = 1
P_MIN_STRENGTH = 2
P_MAX_STRENGTH = 3
P_MAX_POSITION_PCT = 4
P_MAX_SAME_DIRECTION_PCT = 5
P_MAX_CAPITAL_IN_USE = 6
P_MAX_LOSS_AT_STOP_PCT = 7
N_PARAMS = 8

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_POSITION_CAP = int(Reason.POSITION_CAP)
_SAME_DIRECTION_CAP = int(Reason.SAME_DIRECTION_CAP)
_CAPITAL_IN_USE_CAP = int(Reason.CAPITAL_IN_USE_CAP)
_LOSS_AT_STOP_CAP = int(Reason.LOSS_AT_STOP_CAP)


class SizingConfig(FrozenConfig):
    """ATR risk budget and exposure caps (fractions of equity)."""

    risk_per_trade: float = Field(0.01, gt=0, le=0.05)
    stop_atr_multiple: float = Field(1.5, gt=0, le=20)
    min_strength: float = Field(0.5, ge=0, le=10)
    max_strength: float = Field(1.5, gt=0, le=10)
    max_position_pct: float = Field(0.05, gt=0, le=10)
    max_same_direction_pct: float = Field(0.10, gt=0, le=20)
    max_capital_in_use: float = Field(0.50, gt=0, le=50)
    max_loss_at_stop_pct: float = Field(0.02, ge=0.01, le=0.03)

    @model_validator(mode="after")
    def _check(self) -> SizingConfig:
        if self.min_strength > self.max_strength:
            raise ValueError(f"min_strength ({self.min_strength}) must be <= max_strength ({self.max_strength})")
        return self

    def to_params(self) -> np.ndarray:
        """Parameters packed at the `P_*` slots."""
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_RISK_PER_TRADE] = self.risk_per_trade
        p[P_STOP_ATR_MULTIPLE] = self.stop_atr_multiple
        p[P_MIN_STRENGTH] = self.min_strength
        p[P_MAX_STRENGTH] = self.max_strength
        p[P_MAX_POSITION_PCT] = self.max_position_pct
        p[P_MAX_SAME_DIRECTION_PCT] = self.max_same_direction_pct
        p[P_MAX_CAPITAL_IN_USE] = self.max_capital_in_use
        p[P_MAX_LOSS_AT_STOP_PCT] = self.max_loss_at_stop_pct
        return p


@njit(cache=True)
def _finite_non_negative(x):
    return math.isfinite(x) and x >= 0.0


@njit(cache=True)
def position_size_nb(params, side, equity, price, atr, regime_factor, strength, kelly_factor,
                     size_multiplier, same_dir_notional, total_abs_notional, taker_fee):
    """Entry quantity in base units (>= 0, unrounded) and the binding Reason.

    side: +1 long / -1 short. equity, price, atr in quote currency. regime_factor, kelly_factor,
    size_multiplier: >= 0 scale factors. strength: signal strength, clipped to
    [min_strength, max_strength]. same_dir_notional: sum of |notional| of open positions on the same
    side; total_abs_notional: sum of |notional| of all open positions (quote). taker_fee: fee rate
    (0.0005 = 5 bp). Invalid inputs (side not +-1, non-finite or non-positive equity/price/atr,
    negative or non-finite factors, exposures or fee) return (0.0, INVALID_INPUT), never NaN.
    """
    if side != 1 and side != -1:
        return 0.0, _INVALID
    if not (math.isfinite(equity) and equity > 0.0 and math.isfinite(price) and price > 0.0
            and math.isfinite(atr) and atr > 0.0):
        return 0.0, _INVALID
    if not (_finite_non_negative(regime_factor) and math.isfinite(strength)
            and _finite_non_negative(kelly_factor) and _finite_non_negative(size_multiplier)
            and _finite_non_negative(same_dir_notional) and _finite_non_negative(total_abs_notional)
            and _finite_non_negative(taker_fee) and taker_fee < 1.0):
        return 0.0, _INVALID
    s = min(max(strength, params[P_MIN_STRENGTH]), params[P_MAX_STRENGTH])
    stop_dist = atr * params[P_STOP_ATR_MULTIPLE]
    qty = (equity * params[P_RISK_PER_TRADE] / stop_dist) * regime_factor * s * kelly_factor * size_multiplier
    reason = _NONE

    cap = params[P_MAX_POSITION_PCT] * equity / price
    if cap < qty:
        qty = cap
        reason = _POSITION_CAP
    cap = max(params[P_MAX_SAME_DIRECTION_PCT] * equity - same_dir_notional, 0.0) / price
    if cap < qty:
        qty = cap
        reason = _SAME_DIRECTION_CAP
    cap = max(params[P_MAX_CAPITAL_IN_USE] * equity - total_abs_notional, 0.0) / price
    if cap < qty:
        qty = cap
        reason = _CAPITAL_IN_USE_CAP
    stop_price = price - side * stop_dist
    loss_per_unit = stop_dist + taker_fee * (price + stop_price)
    cap = params[P_MAX_LOSS_AT_STOP_PCT] * equity / loss_per_unit
    if cap < qty:
        qty = cap
        reason = _LOSS_AT_STOP_CAP
    return qty, reason


class Sizer:
    """Readable wrapper over `position_size_nb` (live code and tests)."""

    def __init__(self, config: SizingConfig | None = None):
        self.config = config or SizingConfig()
        self.params = self.config.to_params()

    def size(self, side: int, equity: float, price: float, atr: float, *, regime_factor: float = 1.0,
             strength: float = 1.0, kelly_factor: float = 1.0, size_multiplier: float = 1.0,
             same_dir_notional: float = 0.0, total_abs_notional: float = 0.0,
             taker_fee: float = 0.0) -> tuple[float, Reason]:
        """(qty in base units, binding Reason); see `position_size_nb`."""
        qty, reason = position_size_nb(self.params, int(side), float(equity), float(price), float(atr),
                                       float(regime_factor), float(strength), float(kelly_factor),
                                       float(size_multiplier), float(same_dir_notional),
                                       float(total_abs_notional), float(taker_fee))
        return qty, Reason(reason)
