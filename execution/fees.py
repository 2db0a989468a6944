"""Trading fees: maker/taker rates per venue as a params vector, and the one fee kernel.

Rates are fractions of notional (0.0002 = 0.02 %). A negative maker rate is a rebate.
Defaults are Binance USD-M VIP 0 without BNB discount; every account must check its own tier.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from core.config import FrozenConfig
from core.errors import RejectedError

P_MAKER = 0  # maker fee rate (fraction of notional)
P_TAKER = 1  # taker fee rate (fraction of notional)
N_PARAMS = 2


class FeeConfig(FrozenConfig):
    """Fee schedule of one venue account. Rates are fractions of notional (0.0004 = 4 bp)."""

    venue: str = Field("binance_usdm", min_length=1)
    maker_rate: float = Field(0.0002, ge=-0.001, le=0.01)
    taker_rate: float = Field(0.0004, ge=0.0, le=0.01)

    def to_params(self) -> np.ndarray:
        """Pack into the float64 vector read by `fee_nb` (slots `P_MAKER`, `P_TAKER`)."""
        p = np.zeros(N_PARAMS, dtype=np.float64)
        p[P_MAKER] = self.maker_rate
        p[P_TAKER] = self.taker_rate
        return p


@njit(cache=True)
def fee_nb(notional, is_maker, params):
    """Fee in quote currency for a fill of `notional` (quote units; the sign is ignored).

    `is_maker` True → maker rate, else taker rate. Positive = paid, negative = rebate received.
    """
    rate = params[P_MAKER] if is_maker else params[P_TAKER]
    return abs(notional) * rate


class FeeModel:
    """Python face of `fee_nb` for live code and tests."""

    def __init__(self, config: FeeConfig | None = None):
        self.config = config or FeeConfig()
        self.params = self.config.to_params()

    def fee(self, notional: float, is_maker: bool) -> float:
        """Fee of a fill of `notional` quote units; raises `RejectedError` for a non-finite notional."""
        if not math.isfinite(notional):
            raise RejectedError(f"fee: notional must be finite, got {notional!r}")
        return float(fee_nb(float(notional), bool(is_maker), self.params))
