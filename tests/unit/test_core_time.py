from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from core.time import (NS_PER_DAY, NS_PER_MS, NS_PER_S, NS_PER_US, datetime_to_ns, day_of, epoch_to_ns_factor,
                       ns_to_datetime, parse_duration, parse_time)


@pytest.mark.parametrize("text,ns", [("1m", 60 * NS_PER_S), ("250ms", 250 * NS_PER_MS), ("4h", 4 * 3600 * NS_PER_S),
                                     ("1d", NS_PER_DAY), ("500us", 500 * NS_PER_US), ("10ns", 10), (7, 7)])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "m", "1x", "-1m", "0s", "1.5m", 0, -5])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_epoch_unit_detection_on_real_magnitudes():
    # 2024-08-08 in each unit, as Binance files and captures carry them
    assert epoch_to_ns_factor(1723161255) == NS_PER_S
    assert epoch_to_ns_factor(1723161255342) == NS_PER_MS
    assert epoch_to_ns_factor(1723161255342123) == NS_PER_US
    assert epoch_to_ns_factor(1723161253937085768) == 1


def test_parse_time_and_day():
    assert parse_time("2024-01-02") == 19724 * NS_PER_DAY
    assert parse_time("2024-01-02T00:00:01Z") == 19724 * NS_PER_DAY + NS_PER_S
    assert parse_time("123") == 123
    assert day_of(19724 * NS_PER_DAY + 5) == 19724


@given(st.integers(min_value=0, max_value=4_000_000_000 * NS_PER_S))
def test_datetime_roundtrip_is_exact_to_the_microsecond(ts):
    assert datetime_to_ns(ns_to_datetime(ts)) == ts - ts % NS_PER_US


def test_naive_datetime_is_utc():
    assert datetime_to_ns(dt.datetime(1970, 1, 2)) == NS_PER_DAY
