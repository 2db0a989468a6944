"""Config field types shared by the risk configs: durations written as '5m', '4h', '24h'."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from core.time import parse_duration

# Durations are packed into float64 parameter vectors; float64 holds integers exactly up to 2**53 ns
# (about 104 days), so longer durations would be silently rounded inside the kernels.
MAX_DURATION_NS = 2**53


def _check_duration(value: str) -> str:
    ns = parse_duration(value)  # ValueError names the accepted units
    if ns > MAX_DURATION_NS:
        raise ValueError(f"duration {value!r} is longer than the supported maximum of 104 days")
    return value


DurationStr = Annotated[str, AfterValidator(_check_duration)]
"""A positive duration such as '5m', '4h', '7d' (see `core.time.parse_duration`)."""


def duration_ns(value: str) -> int:
    """Nanoseconds of a validated duration string."""
    return parse_duration(value)
