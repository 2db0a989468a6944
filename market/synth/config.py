"""Configuration of the seeded synthetic market (`SynthConfig` and its parts).

Every parameter has a market meaning and a unit (see docs/synthesis.md). A bad value raises
`ConfigError` naming the key and the value, whether the config comes from YAML, a dict
(`core.config.build_config`) or direct construction (`SynthConfig(seed=1, ...)`).
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from core.config import FrozenConfig
from core.time import datetime_to_ns, parse_duration, parse_time

# A 24-hour UTC activity profile typical of crypto perpetuals: quiet in the late Asian night,
# rising through the European morning, peaking at the US open (13:30-16:00 UTC). Relative weights.
DEFAULT_HOUR_PROFILE: tuple[float, ...] = (
    0.95, 0.85, 0.75, 0.70, 0.65, 0.65, 0.70, 0.80, 0.95, 1.00, 1.00, 1.00,
    1.05, 1.20, 1.45, 1.55, 1.45, 1.25, 1.10, 1.05, 1.00, 1.00, 0.95, 0.95,
)


class _SynthModel(FrozenConfig):
    """Base of the synthesis configs (FrozenConfig already raises ConfigError with full key paths)."""


class SizeConfig(_SynthModel):
    """Trade sizes (base-asset units): a log-normal body mixed with a Pareto tail, rounded to lots.

    With probability `tail_prob` a size is Pareto(x_min = median * tail_scale, index `tail_index`),
    otherwise log-normal(median, sigma). Sizes round to the nearest lot, at least one lot.
    """

    median: float = Field(1.0, gt=0, description="median of the log-normal body, base units")
    sigma: float = Field(1.0, ge=0, le=4, description="log-std of the log-normal body")
    tail_prob: float = Field(0.05, ge=0, lt=1, description="share of trades drawn from the Pareto tail")
    tail_scale: float = Field(5.0, ge=1, description="Pareto x_min as a multiple of the median")
    tail_index: float = Field(1.8, gt=1, le=10, description="Pareto tail index (1.5-2.5 is typical)")
    mean_extra_fills: float = Field(
        0.5, ge=0, le=1000,
        description="mean number of extra maker fills in a median-size aggregate trade (scales with sqrt(size))",
    )


class RegimeConfig(_SynthModel):
    """Volatility regimes: a Markov chain stepped once per UTC minute.

    `daily_vol[r]` is the standard deviation of the log mid-price's diffusive part over 24 h in
    regime r (impact comes on top); `rate_multiplier[r]` scales the arrival baseline in regime r;
    `transition_per_minute[r][k]` is P(regime k next minute | regime r now); rows sum to 1.
    """

    names: tuple[str, ...] = ("calm", "normal", "turbulent")
    daily_vol: tuple[float, ...] = (0.015, 0.03, 0.08)
    rate_multiplier: tuple[float, ...] = (0.6, 1.0, 2.0)
    transition_per_minute: tuple[tuple[float, ...], ...] = (
        (0.995, 0.005, 0.0),
        (0.003, 0.994, 0.003),
        (0.0, 0.02, 0.98),
    )
    initial: str = "normal"

    @model_validator(mode="after")
    def _check(self) -> RegimeConfig:
        k = len(self.names)
        if k < 3:
            raise ValueError(f"regimes.names = {self.names!r}: need at least 3 regimes (calm/normal/turbulent)")
        if len(set(self.names)) != k:
            raise ValueError(f"regimes.names = {self.names!r}: names must be unique")
        for key in ("daily_vol", "rate_multiplier"):
            vals = getattr(self, key)
            if len(vals) != k:
                raise ValueError(f"regimes.{key} = {vals!r}: need one value per regime ({k})")
            if any(not math.isfinite(v) or v < 0 for v in vals):
                raise ValueError(f"regimes.{key} = {vals!r}: values must be finite and >= 0")
        if all(v == 0 for v in self.rate_multiplier):
            raise ValueError("regimes.rate_multiplier: all zero, no trade would ever arrive")
        m = self.transition_per_minute
        if len(m) != k or any(len(row) != k for row in m):
            raise ValueError(f"regimes.transition_per_minute: must be a {k}x{k} matrix, got {m!r}")
        for i, row in enumerate(m):
            if any(not math.isfinite(p) or p < 0 or p > 1 for p in row):
                raise ValueError(f"regimes.transition_per_minute[{i}] = {row!r}: probabilities must be in [0, 1]")
            if abs(sum(row) - 1.0) > 1e-9:
                raise ValueError(f"regimes.transition_per_minute[{i}] = {row!r}: row sums to {sum(row)!r}, not 1")
        if self.initial not in self.names:
            raise ValueError(f"regimes.initial = {self.initial!r}: not one of {self.names!r}")
        return self

    def stationary(self) -> np.ndarray:
        """Long-run share of time in each regime (the chain's stationary distribution)."""
        p = np.asarray(self.transition_per_minute, dtype=np.float64)
        k = p.shape[0]
        a = np.vstack([p.T - np.eye(k), np.ones(k)])
        b = np.zeros(k + 1)
        b[-1] = 1.0
        pi = np.linalg.lstsq(a, b, rcond=None)[0]
        return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


class FlowConfig(_SynthModel):
    """Order flow and price impact.

    Signs: each trade belongs with probability `metaorder_share` to the current metaorder (a
    parent order split into child trades, all on one side) and is otherwise an independent coin
    flip. Metaorder lengths (in child trades) are Pareto(`metaorder_min_len`, `metaorder_tail_index`);
    a tail index in (1, 2) gives long-memory sign autocorrelation (Lillo-Farmer).
    Impact: each trade moves the log mid by `impact_bps`·1e-4 · sign · sqrt(size / sizes.median);
    a share `impact_permanent` is permanent and applies to the sign's surprise, sign −
    metaorder_share·metaorder_side (so long-memory flow does not make prices superdiffusive), the rest decays by exp(−1/`impact_decay_trades`) per subsequent trade
    (a propagator in trade time, as in Bouchaud et al. 2004).
    """

    impact_bps: float = Field(0.2, ge=0, le=1000, description="log-mid impact of a median-size trade, bps")
    impact_permanent: float = Field(0.3, ge=0, le=1)
    impact_decay_trades: float = Field(
        200.0, gt=0, le=1e9, description="e-folding time of the transient impact, in trades (trade time)"
    )
    metaorder_share: float = Field(0.5, ge=0, lt=1)
    metaorder_min_len: float = Field(4.0, ge=1)
    metaorder_tail_index: float = Field(1.5, gt=1, le=10)


class SynthConfig(_SynthModel):
    """A seeded synthetic market of aggregate trades (see `market.synth.generate_trades`).

    Exactly one of `duration` (e.g. "1d", or ns) and `n_trades` says when to stop. `start` is an
    ISO date/datetime (UTC when no zone) or int ns; it and `duration` are stored resolved to ns.
    `base_rate` is the mean trade rate (trades/s) in a regime with rate multiplier 1, averaged
    over the day profile: the exogenous Hawkes baseline is base_rate · (1 − alpha/beta) ·
    hour_profile[h] · rate_multiplier[r], so self-excitation does not change the mean rate.
    """

    seed: int = Field(ge=0, lt=2**64)
    symbol: str = Field("SYNTHUSDT", min_length=1, max_length=40)
    start: int = Field(default="2024-01-01", description="first instant, int64 UTC ns")
    duration: int | None = Field(None, description="length of the generated span, ns")
    n_trades: int | None = Field(None, gt=0, le=2_000_000_000)
    initial_price: float = Field(100.0, gt=0)
    tick_size: float = Field(0.01, gt=0)
    lot_size: float = Field(0.001, gt=0)
    spread_ticks: int = Field(1, ge=1, le=1000)
    base_rate: float = Field(20.0, gt=0, le=1e6, description="mean trades per second (see class doc)")
    hawkes_alpha: float = Field(3.5, ge=0, description="intensity jump per trade, 1/s")
    hawkes_beta: float = Field(5.0, gt=0, description="intensity decay rate, 1/s")
    hour_profile: tuple[float, ...] = DEFAULT_HOUR_PROFILE
    first_id: int = Field(1, ge=0)
    first_fill_id: int = Field(1, ge=0, description="first_trade_id of the first aggregate trade")
    sizes: SizeConfig = SizeConfig()
    regimes: RegimeConfig = RegimeConfig()
    flow: FlowConfig = FlowConfig()

    @field_validator("start", mode="before")
    @classmethod
    def _parse_start(cls, v: Any) -> int:
        if isinstance(v, bool):
            raise ValueError(f"start = {v!r}: expected an ISO date/datetime or int ns")
        if isinstance(v, _dt.datetime):
            return datetime_to_ns(v)
        if isinstance(v, _dt.date):  # YAML turns `2024-01-01` into a date
            return datetime_to_ns(_dt.datetime(v.year, v.month, v.day))
        if isinstance(v, (str, int)):
            try:
                ns = parse_time(v)
            except ValueError as exc:
                raise ValueError(f"start = {v!r}: not an ISO date/datetime or int ns ({exc})") from None
            if ns < 0:
                raise ValueError(f"start = {v!r}: before 1970")
            return ns
        raise ValueError(f"start = {v!r}: expected an ISO date/datetime or int ns")

    @field_validator("duration", mode="before")
    @classmethod
    def _parse_duration(cls, v: Any) -> int | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise ValueError(f"duration = {v!r}: expected e.g. '6h', '1d' or int ns")
        return parse_duration(v)  # its ValueError names the value

    @field_validator("hour_profile")
    @classmethod
    def _check_profile(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 24:
            raise ValueError(f"hour_profile has {len(v)} values, need 24 (one per UTC hour)")
        if any(not math.isfinite(x) or x < 0 for x in v):
            raise ValueError(f"hour_profile = {v!r}: weights must be finite and >= 0")
        if sum(v) <= 0:
            raise ValueError("hour_profile: all weights are zero, no trade would ever arrive")
        return v

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        if (self.duration is None) == (self.n_trades is None):
            raise ValueError(
                f"give exactly one of duration and n_trades (got duration={self.duration!r}, n_trades={self.n_trades!r})"
            )
        ratio = self.hawkes_alpha / self.hawkes_beta
        if ratio >= 1.0:
            raise ValueError(
                f"hawkes_alpha / hawkes_beta = {self.hawkes_alpha!r} / {self.hawkes_beta!r} = {ratio:.4g} >= 1: "
                "the branching ratio must be < 1, otherwise the trade intensity explodes"
            )
        if self.initial_price / self.tick_size < 100:
            raise ValueError(
                f"initial_price / tick_size = {self.initial_price!r} / {self.tick_size!r} < 100: "
                "a one-tick move would exceed 1% of the price"
            )
        if self.initial_price / self.tick_size > 1e12:
            raise ValueError(f"initial_price / tick_size = {self.initial_price!r} / {self.tick_size!r} > 1e12 ticks")
        if self.sizes.median / self.lot_size > 1e12:
            raise ValueError(f"sizes.median / lot_size = {self.sizes.median!r} / {self.lot_size!r} > 1e12 lots")
        if self.first_id + (self.n_trades or 0) >= 2**62:
            raise ValueError(f"first_id = {self.first_id!r} leaves no room for int64 ids")
        return self

    @property
    def start_ns(self) -> int:
        return self.start

    @property
    def regime_names(self) -> tuple[str, ...]:
        return self.regimes.names
