"""Time conventions: integer UTC nanoseconds everywhere (`ts_event`, `ts_init`)."""

from __future__ import annotations

import datetime as _dt
import time as _time
from typing import Protocol

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
NS_PER_HOUR = 60 * NS_PER_MIN
NS_PER_DAY = 24 * NS_PER_HOUR

_UNITS = {"ns": 1, "us": NS_PER_US, "ms": NS_PER_MS, "s": NS_PER_S, "m": NS_PER_MIN,
          "min": NS_PER_MIN, "h": NS_PER_HOUR, "d": NS_PER_DAY}


def parse_duration(text: str | int) -> int:
    """'1m' → 60e9 ns, '250ms' → 2.5e8 ns, '4h', '1d', '30s', '500us', '10ns'. Ints pass through as ns."""
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"duration must be positive, got {text}")
        return text
    s = str(text).strip().lower()
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num):]
    if not num or unit not in _UNITS:
        raise ValueError(f"invalid duration {text!r}: expected <int><unit> with unit in {sorted(_UNITS)}")
    value = int(num) * _UNITS[unit]
    if value <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return value


def epoch_to_ns_factor(sample: int) -> int:
    """Factor that converts an epoch timestamp of unknown unit to ns, judged by magnitude.

    Binance uses ms in most files, µs in spot public data since 2025 and in older captures,
    ns in newer captures. Valid for dates between 1973 and 2286.
    """
    a = abs(int(sample))
    if a < 10**11:
        return NS_PER_S
    if a < 10**14:
        return NS_PER_MS
    if a < 10**17:
        return NS_PER_US
    return 1


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def ns_to_datetime(ts_ns: int) -> _dt.datetime:
    """Exact to the microsecond (datetime's resolution); no float rounding."""
    return _EPOCH + _dt.timedelta(microseconds=int(ts_ns) // NS_PER_US)


def datetime_to_ns(dt: _dt.datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US


def parse_time(text: str | int) -> int:
    """ISO date/datetime (UTC if no zone) or an int of ns → ns."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    if s.lstrip("-").isdigit():
        return int(s)
    return datetime_to_ns(_dt.datetime.fromisoformat(s.replace("Z", "+00:00")))


def day_of(ts_ns: int) -> int:
    """UTC day number (days since epoch) of a timestamp."""
    return ts_ns // NS_PER_DAY


class Clock(Protocol):
    def now_ns(self) -> int: ...


class WallClock:
    """The real clock. Only shells (CLI, actors) construct one; pure code receives a Clock."""

    def now_ns(self) -> int:
        return _time.time_ns()


class FixedClock:
    """A settable clock for tests and replays."""

    def __init__(self, ts_ns: int = 0):
        self.ts_ns = ts_ns

    def now_ns(self) -> int:
        return self.ts_ns

    def advance(self, delta_ns: int) -> None:
        self.ts_ns += delta_ns
