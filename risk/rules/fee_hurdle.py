"""Fee hurdle: skip an entry whose expected profit does not cover a multiple of its fees.

    expected profit = expected_move_atr * atr * qty
    round-trip fees = 2 * taker_fee * price * qty
    skip (FEE_HURDLE) when expected profit < fee_multiple * round-trip fees

Both sides are linear in qty, so for qty > 0 the verdict does not depend on the size; the gate
checks it before sizing. The taker fee rate is an argument, not config: it is a property of the
account's fee tier that the execution layer's fee model owns.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from core.config import FrozenConfig
from core.enums import Reason

P_EXPECTED_MOVE_ATR = 0
P_FEE_MULTIPLE = 1
N_PARAMS = 2

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_FEE_HURDLE = int(Reason.FEE_HURDLE)


class FeeHurdleConfig(FrozenConfig):
    """Expected move (in ATR) and how many times it must cover the round-trip taker fees."""

    expected_move_atr: float = Field(1.0, gt=0, le=100)
    fee_multiple: float = Field(3.0, ge=0, le=100)

    def to_params(self) -> np.ndarray:
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_EXPECTED_MOVE_ATR] = self.expected_move_atr
        p[P_FEE_MULTIPLE] = self.fee_multiple
        return p


@njit(cache=True)
def fee_hurdle_nb(params, price, atr, qty, taker_fee):
    """FEE_HURDLE when the entry should be skipped, INVALID_INPUT for non-finite or non-positive
    price/atr/qty or a negative fee, else NONE. price, atr in quote; qty base units; taker_fee rate."""
    if not (math.isfinite(price) and price > 0.0 and math.isfinite(atr) and atr > 0.0
            and math.isfinite(qty) and qty > 0.0 and math.isfinite(taker_fee) and taker_fee >= 0.0):
        return _INVALID
    if params[P_EXPECTED_MOVE_ATR] * atr * qty < params[P_FEE_MULTIPLE] * 2.0 * taker_fee * price * qty:
        return _FEE_HURDLE
    return _NONE


class FeeHurdle:
    """Readable wrapper over `fee_hurdle_nb`."""

    def __init__(self, config: FeeHurdleConfig | None = None):
        self.config = config or FeeHurdleConfig()
        self.params = self.config.to_params()

    def check(self, price: float, atr: float, qty: float, taker_fee: float) -> Reason:
        return Reason(fee_hurdle_nb(self.params, float(price), float(atr), float(qty), float(taker_fee)))
