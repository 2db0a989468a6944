"""Integer tick/lot units: inferring a grid step from decimal data and converting both ways exactly.

Exactness of kline-conditioned synthesis is proved in integer units of the tick and the lot; the
float64 columns are then `units / 10**k` (the double nearest the decimal value, what a CSV parser
gives for the same text) rather than `units * step`, which can be one ulp off.
"""

from __future__ import annotations

import numpy as np

from core.errors import DataError

_MAX_DECIMALS = 12
# A value is on the grid when value/step is within 1e-9 relative (at least 1e-9 absolute) of an
# integer: decimals parsed from text are ~1e-16 relative off, far inside; a real off-grid digit is not.
_REL_TOL = 1e-9


def grid_divisor(step: float) -> float:
    """n when step == 1/n for an integer n >= 1 (then value = units / n exactly), else 0.0."""
    n = round(1.0 / step)
    if n >= 1 and abs(1.0 / n - step) <= 1e-12 * step:
        return float(n)
    return 0.0


def from_units(units: np.ndarray, step: float) -> np.ndarray:
    """float64 values of integer grid units: units / n when step = 1/n, else units * step."""
    div = grid_divisor(step)
    u = units.astype(np.float64)
    return u / div if div > 0.0 else u * step


def infer_step(values: np.ndarray) -> float:
    """The decimal step 10**-k with the fewest decimals k (0..12) that puts every value on its grid.

    Raises DataError when no such k exists (values not decimal-like, e.g. already scaled floats).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    for k in range(_MAX_DECIMALS + 1):
        scaled = v * 10.0**k
        if np.all(np.abs(scaled - np.rint(scaled)) <= _REL_TOL * np.maximum(1.0, np.abs(scaled))):
            return 10.0**-k
    raise DataError(f"values have more than {_MAX_DECIMALS} decimals; pass the step explicitly")


def to_units(values: np.ndarray, step: float, what: str, source: str) -> np.ndarray:
    """Integer grid units of `values` (int64); DataError naming the first off-grid row (1-based)."""
    v = np.asarray(values, dtype=np.float64)
    scaled = v / step
    units = np.rint(scaled)
    bad = np.flatnonzero(np.abs(scaled - units) > _REL_TOL * np.maximum(1.0, np.abs(scaled)))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{what} {v[i]!r} is not a multiple of the step {step!r} ({bad.size} such rows)",
                        source=source, line=i + 1)
    if np.any(np.abs(units) > 2.0**53):
        raise DataError(f"{what} has more than 2**53 units of {step!r}: step too small", source=source)
    return units.astype(np.int64)
