"""Entry throttle: a minimum interval between entries and a maximum number of entries in any
rolling window (24h).

An entry at ts is refused with ENTRY_INTERVAL when ts - (last entry) < min_entry_interval, and with
MAX_ENTRIES_24H when `max_entries` entries already lie in (ts - window, ts], i.e. the
max_entries-th most recent entry is less than `window` before ts. An entry at t0 therefore stops
counting at exactly t0 + window. A ring of the last `max_entries` entry timestamps is all the state
this needs.

State (int64, timestamps): `S_COUNT` (entries recorded ever), `S_LAST_TS`, ring from `S_RING`.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from core.config import FrozenConfig
from core.enums import Reason
from risk.units import DurationStr, duration_ns

P_MIN_INTERVAL_NS = 0
P_WINDOW_NS = 1
P_MAX_ENTRIES = 2
N_PARAMS = 3

S_COUNT = 0
S_LAST_TS = 1
S_RING = 2
N_HEADER = 2

_NONE = int(Reason.NONE)
_INTERVAL = int(Reason.ENTRY_INTERVAL)
_MAX = int(Reason.MAX_ENTRIES_24H)


class EntryThrottleConfig(FrozenConfig):
    """Minimum time between entries and the entry budget per rolling window."""

    min_entry_interval: DurationStr = "5m"
    max_entries: int = Field(20, ge=1, le=100_000)
    window: DurationStr = "24h"

    def to_params(self) -> np.ndarray:
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_MIN_INTERVAL_NS] = duration_ns(self.min_entry_interval)
        p[P_WINDOW_NS] = duration_ns(self.window)
        p[P_MAX_ENTRIES] = self.max_entries
        return p


def new_state(config: EntryThrottleConfig) -> np.ndarray:
    """No entries recorded."""
    return np.zeros(N_HEADER + config.max_entries, dtype=np.int64)


@njit(cache=True)
def throttle_check_nb(params, state, ts):
    """Reason an entry at `ts` (ns) is refused (ENTRY_INTERVAL, MAX_ENTRIES_24H) or NONE."""
    count = state[S_COUNT]
    if count == 0:
        return _NONE
    if ts - state[S_LAST_TS] < np.int64(params[P_MIN_INTERVAL_NS]):
        return _INTERVAL
    m = int(params[P_MAX_ENTRIES])
    if count >= m and ts - state[S_RING + count % m] < np.int64(params[P_WINDOW_NS]):
        return _MAX
    return _NONE


@njit(cache=True)
def throttle_record_nb(params, state, ts):
    """Record an entry made at `ts` (ns)."""
    m = int(params[P_MAX_ENTRIES])
    count = state[S_COUNT]
    state[S_RING + count % m] = ts
    state[S_COUNT] = count + 1
    state[S_LAST_TS] = ts


class EntryThrottle:
    """Readable wrapper over the entry-throttle kernels."""

    def __init__(self, config: EntryThrottleConfig | None = None):
        self.config = config or EntryThrottleConfig()
        self.params = self.config.to_params()
        self.state = new_state(self.config)

    def check(self, ts: int) -> Reason:
        return Reason(throttle_check_nb(self.params, self.state, int(ts)))

    def record(self, ts: int) -> None:
        throttle_record_nb(self.params, self.state, int(ts))

    @property
    def entries(self) -> int:
        return int(self.state[S_COUNT])
