from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from core.enums import Market
from core.errors import ConfigError
from core.instrument import Instrument, round_to_step_down

BTC = Instrument(symbol="BTCUSDT", tick_size=0.1, step_size=0.001, min_qty=0.001, min_notional=5.0)


def test_large_quantities_on_the_grid_stay_put():
    # 2233345.4 / 0.1 = 22333453.999999996 in binary: an absolute 1e-9 tolerance cut it a whole step
    assert round_to_step_down(2233345.4, 0.1) == 2233345.4
    assert round_to_step_down(123456789.123, 0.001) == 123456789.123


def test_rounding_by_hand():
    assert BTC.round_qty_down(0.0019) == 0.001
    assert BTC.round_qty_down(0.3) == 0.3  # 0.3 / 0.001 = 299.99999999999994 in binary: still 300 steps
    assert BTC.round_qty_down(-0.0029) == -0.002
    assert BTC.round_qty_down(0.0009) == 0.0
    assert BTC.round_price(61000.06) == 61000.1 and BTC.round_price(61000.04) == 61000.0
    assert BTC.decimal_qty(0.0019) == Decimal("0.001") and BTC.decimal_price(61000.06) == Decimal("61000.1")


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from([0.001, 0.01, 0.1, 1.0, 0.00001]))
def test_round_down_is_exact_on_grid_points_and_never_rounds_up(units, step):
    x = units * step
    r = round_to_step_down(x, step)
    assert r == round(units * step, 12) or abs(r - x) <= abs(x) * 1e-15  # a grid point stays itself
    assert round_to_step_down(x + step * 0.5, step) <= x + step * 0.5


def test_spot_cannot_have_leverage_and_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="max_leverage"):
        Instrument(symbol="BTCUSDT", market=Market.SPOT, tick_size=0.01, step_size=0.0001, max_leverage=3)
    with pytest.raises(ConfigError, match="tick_size = 0"):
        Instrument(symbol="BTCUSDT", tick_size=0, step_size=0.001)
    with pytest.raises(ValueError, match="non-finite"):
        BTC.round_qty_down(float("nan"))
