"""Configuration of the market-data quality checks."""

from __future__ import annotations

from pydantic import field_validator

from core.config import FrozenConfig
from core.time import parse_duration


class QualityConfig(FrozenConfig):
    """Thresholds of the trade and kline checks.

    The outlier rule (trades): a trade is flagged when the window of the last `outlier_window`
    kept trades is full and |ln p - median| > max(outlier_mad_k * 1.4826 * MAD, outlier_min_jump),
    median and MAD taken over the window's log prices. Only past kept trades enter the window.

    `outlier_reset_after`: after this many consecutive flagged trades the window is cleared and
    refilled from the following trades. A genuine level shift (flash crash, listing spike) would
    otherwise quarantine every later trade, because the window only ever holds pre-shift prices.
    0 disables the reset. The flagged trades stay in quarantine (recoverable) and the report
    counts resets in `outlier_resets`.
    """

    outlier_window: int = 64
    outlier_mad_k: float = 12.0
    outlier_min_jump: float = 0.05
    outlier_reset_after: int = 64
    max_time_gap: str = "5m"
    max_listed_gaps: int = 100

    @field_validator("outlier_window")
    @classmethod
    def _window_ok(cls, v: int) -> int:
        if v < 3:
            raise ValueError("outlier_window must be >= 3 (a median and MAD need a few points)")
        return v

    @field_validator("outlier_mad_k")
    @classmethod
    def _k_ok(cls, v: float) -> float:
        if not (v > 0.0 and v < float("inf")):
            raise ValueError("outlier_mad_k must be a finite number > 0")
        return v

    @field_validator("outlier_min_jump")
    @classmethod
    def _jump_ok(cls, v: float) -> float:
        if not (v >= 0.0 and v < float("inf")):
            raise ValueError("outlier_min_jump must be a finite number >= 0 (a log-price distance)")
        return v

    @field_validator("outlier_reset_after", "max_listed_gaps")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("max_time_gap")
    @classmethod
    def _gap_ok(cls, v: str) -> str:
        parse_duration(v)  # raises ValueError with the accepted units
        return v

    @property
    def max_time_gap_ns(self) -> int:
        """`max_time_gap` in nanoseconds."""
        return parse_duration(self.max_time_gap)
