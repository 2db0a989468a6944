"""Limit entries (EngineSettings.entry_order = "limit"): post-only at close ∓ offset ticks, filled only
when a bar trades THROUGH the price, at the limit with the maker fee, cancelled after the TTL."""

from __future__ import annotations

import pytest

from core.enums import Reason
from engine.config import EngineSettings
from tests.unit.test_engine_scenarios import ATR, EQUITY0, check_books, long_at

MAKER = 0.0002


def limit_engine(**over) -> EngineSettings:
    base = {"entry_order": "limit", "limit_offset_ticks": 2, "limit_ttl_bars": 3, "cap_by_volume": False}
    base.update(over)
    return EngineSettings(**base)


def quiet(s):
    """Bars whose lows stay above the 99.98 limit (the scenario default low is 99.5)."""
    s.lo[:] = 99.99
    return s


def test_touch_does_not_fill_trade_through_does_at_the_limit_with_maker_fee():
    s = quiet(long_at(10))  # decision at bar 3, close 100.00 → buy limit 99.98 (tick 0.01, offset 2)
    s.bar(4, 100.0, 100.2, 99.98, 100.0)  # touches 99.98: no fill
    s.bar(5, 100.0, 100.1, 99.97, 99.99)  # trades through: fill at 99.98
    run = s.run(engine=limit_engine())
    f = run.result.fills.row(0, named=True)
    qty = EQUITY0 * 0.01 / (ATR * 1.5)  # ATR risk budget; caps out of the way in these scenarios
    assert f["ts_event"] == int(s.ts_event[5]) and f["price"] == pytest.approx(99.98, abs=1e-12)
    assert f["is_maker"] and f["side"] == 1 and f["reason"] == int(Reason.SIGNAL_CUSTOM)
    assert f["qty"] == pytest.approx(round(qty - 0.0005, 3), abs=1e-12)  # rounded down to the 0.001 step
    assert f["fee"] == pytest.approx(f["qty"] * 99.98 * MAKER, rel=1e-12)
    check_books(run)


def test_unfilled_limit_expires_after_ttl_and_a_later_signal_can_enter():
    s = quiet(long_at(12))
    s.el[8] = True  # a second signal after the first limit expired (bars 4, 5, 6 never trade through)
    s.bar(9, 100.0, 100.1, 99.9, 100.0)
    run = s.run(engine=limit_engine())
    fills = run.result.fills
    assert fills.height == 2  # the second entry fills on bar 9, then closes at the end
    assert fills["ts_event"][0] == int(s.ts_event[9]) and fills["price"][0] == pytest.approx(99.98)
    assert run.decisions.filter("is_entry").height == 2


def test_limit_is_cancelled_when_flatten_arrives_before_it_fills():
    s = quiet(long_at(10))
    s.flatten[4] = True
    s.bar(5, 100.0, 100.1, 99.5, 100.0)  # would trade through, but the order was cancelled at bar 4
    run = s.run(engine=limit_engine())
    assert run.result.fills.height == 0


def test_offset_must_be_at_least_one_tick():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="limit_offset_ticks"):
        EngineSettings(entry_order="limit", limit_offset_ticks=0)
